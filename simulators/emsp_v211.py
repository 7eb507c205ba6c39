"""OCPI 2.1.1 for the eMSP simulator, read from the 2.1.1 specification: the raw Token header,
the one-party Credentials, version details without roles, the 2.1.1 Token, AuthorizationInfo,
the four command requests and the CommandResponse that is both answer and result.

Pure functions of JSON values; where 2.1.1 is the same as 2.2.1 (envelope, pagination, the
Location/Session/Tariff receiver paths) simulators.emsp_wire and simulators.emsp_store serve.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

from simulators.clock import wire_time
from simulators.emsp_commands import Build, CommandResponse, text_of
from simulators.errors import EmspError, OptionsError

__all__ = [
    "COMMANDS",
    "DEFAULT_TYPE",
    "MODULES",
    "RESPONSES",
    "TOKEN_TYPES",
    "VERSION",
    "accepted_token",
    "authorization",
    "authorization_info",
    "credentials",
    "details",
    "new_token",
    "read_response",
    "reserve_now",
    "start_session",
    "their_credentials",
    "token_type",
]

VERSION = "2.1.1"
#: TokenType in 2.1.1: no AD_HOC_USER or APP_USER yet.
TOKEN_TYPES = ("OTHER", "RFID")
DEFAULT_TYPE = "RFID"
COMMANDS = ("RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")
#: CommandResponseType: the CPO's answer to a command and, later, the charger's result.
RESPONSES = ("ACCEPTED", "NOT_SUPPORTED", "REJECTED", "TIMEOUT", "UNKNOWN_SESSION")
#: The modules an eMSP offers in 2.1.1 (no roles: one URL per module).
MODULES = ("credentials", "locations", "sessions", "cdrs", "tariffs", "tokens", "commands")

Json = dict[str, Any]
_UID = re.compile(r"^[A-Za-z0-9*._-]{1,36}$")
_ID39 = 39


def authorization(token: str) -> str:
    """The Authorization header of 2.1.1: the token as it is (2.2.1 Base64-encodes it)."""
    return "Token " + token


def accepted_token(header: str | None, tokens: Collection[str]) -> str | None:
    """The token of `Authorization: Token X` if X, as it is, is one of `tokens`: a 2.1.1
    party does not Base64-encode it, so an encoded one is a different (unknown) token."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or value not in tokens:
        return None
    return value


def credentials(token: str, url: str, country_code: str, party_id: str, name: str) -> Json:
    """Our 2.1.1 Credentials: one party, its business details, no roles list."""
    return {
        "token": token,
        "url": url,
        "business_details": {"name": name},
        "party_id": party_id.upper(),
        "country_code": country_code.upper(),
    }


def their_credentials(data: Any) -> tuple[str, tuple[Json, ...]]:
    """The token of a CPO's 2.1.1 Credentials and its one party as a one-item roles tuple
    (role CPO), the form the simulator keeps for either version; EmspError when unusable."""
    if not isinstance(data, dict):
        raise EmspError("the CPO's credentials are not an object")
    token = data.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= 64:
        raise EmspError("the CPO's credentials have no usable token")
    country, party = data.get("country_code"), data.get("party_id")
    if not (isinstance(country, str) and isinstance(party, str)):
        raise EmspError("the CPO's 2.1.1 credentials lack country_code or party_id")
    details = data.get("business_details")
    if not isinstance(details, dict) or not isinstance(details.get("name"), str):
        raise EmspError("the CPO's 2.1.1 credentials lack business_details.name")
    role = {
        "role": "CPO",
        "business_details": copy.deepcopy(details),
        "party_id": party,
        "country_code": country,
    }
    return token, (role,)


def details(base: str) -> Json:
    """Our 2.1.1 version details under `base` (`.../ocpi/emsp/2.1.1`): identifiers and URLs."""
    return {
        "version": VERSION,
        "endpoints": [{"identifier": m, "url": f"{base}/{m}"} for m in MODULES],
    }


def token_type(value: str | None) -> str:
    """A 2.1.1 TokenType (case-insensitive; none: RFID), else OptionsError."""
    if value is None or value == "":
        return DEFAULT_TYPE
    upper = value.upper()
    if upper not in TOKEN_TYPES:
        raise OptionsError(f"a 2.1.1 token type is {' or '.join(TOKEN_TYPES)}, not {value!r}")
    return upper


def new_token(
    country_code: str,
    party_id: str,
    issuer: str,
    uid: str,
    *,
    last_updated: datetime,
    whitelist: str,
    type: str = DEFAULT_TYPE,
    valid: bool = True,
    auth_id: str | None = None,
) -> Json:
    """A whole 2.1.1 Token: no country_code or party_id (the URL carries them), the contract
    in `auth_id` (eMA ID pattern of our party unless given). OptionsError for a bad uid or
    type; the whitelist is checked by the caller (the same WhitelistType as 2.2.1)."""
    if not _UID.match(uid):
        raise OptionsError(f"token uid must be 1 to 36 letters, digits or *._-, not {uid!r}")
    contract = (auth_id or f"{country_code.upper()}-{party_id.upper()}-C{uid.upper()}")[:36]
    return {
        "uid": uid,
        "type": token_type(type),
        "auth_id": contract,
        "visual_number": contract,
        "issuer": issuer[:64],
        "valid": valid,
        "whitelist": whitelist,
        "last_updated": wire_time(last_updated),
    }


def authorization_info(allowed: str, location: Json | None) -> Json:
    """The 2.1.1 AuthorizationInfo: `allowed`, and the location asked about only when the
    answer is ALLOWED (2.1.1 has no token or authorization_reference in it)."""
    info: Json = {"allowed": allowed}
    if allowed == "ALLOWED" and location is not None:
        info["location"] = copy.deepcopy(location)
    return info


def _id(value: str | None, what: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise OptionsError(f"{what} is required")
        return None
    if len(value) > _ID39:
        raise OptionsError(f"{what} must be at most {_ID39} characters: {value!r}")
    return value


def _token(token: Json) -> Json:
    fields = ("uid", "type", "auth_id", "issuer", "valid", "whitelist", "last_updated")
    missing = [f for f in fields if token.get(f) is None]
    if missing:
        raise OptionsError(f"the command's 2.1.1 token lacks {', '.join(missing)}")
    return copy.deepcopy(token)


def start_session(token: Json, location_id: str, evse_uid: str | None = None) -> Build:
    """StartSession in 2.1.1: a token at a location, an EVSE of it optional (2.1.1 names no
    connector and carries no authorization_reference)."""
    _id(location_id, "location_id")
    _id(evse_uid, "evse_uid", required=False)
    checked = _token(token)

    def build(url: str) -> Json:
        body: Json = {"response_url": url, "token": checked, "location_id": location_id}
        if evse_uid:
            body["evse_uid"] = evse_uid
        return body

    return build


def reserve_now(
    token: Json,
    expiry_date: datetime,
    reservation_id: str | int,
    location_id: str,
    evse_uid: str | None = None,
) -> Build:
    """ReserveNow in 2.1.1: the reservation id is an int."""
    text = str(reservation_id)
    if not text.isdigit() or int(text) > 2**31 - 1:
        raise OptionsError(f"a 2.1.1 reservation_id is a whole number, not {reservation_id!r}")
    _id(location_id, "location_id")
    _id(evse_uid, "evse_uid", required=False)
    checked = _token(token)
    expiry = wire_time(expiry_date)

    def build(url: str) -> Json:
        body: Json = {
            "response_url": url,
            "token": checked,
            "expiry_date": expiry,
            "reservation_id": int(text),
            "location_id": location_id,
        }
        if evse_uid:
            body["evse_uid"] = evse_uid
        return body

    return build


def read_response(data: Any, where: str) -> CommandResponse:
    """The 2.1.1 CommandResponse (`result` only: no timeout, no message) in a CPO's answer;
    a plain CommandResponseType string is taken too (the spec's table names the type)."""
    if isinstance(data, str):
        data = {"result": data}
    if not isinstance(data, dict):
        raise EmspError(f"{where}: the answer's data is not a CommandResponse")
    result = data.get("result")
    if result not in RESPONSES:
        raise EmspError(f"{where}: CommandResponse result {result!r} is not a CommandResponseType")
    return CommandResponse(str(result), None, text_of(data.get("message")))
