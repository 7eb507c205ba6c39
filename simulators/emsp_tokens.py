"""The eMSP simulator's own tokens (the OCPI 2.2.1 Token objects it issues, listed page by page
as a tokens Sender) and how it answers a CPO's real-time authorization request.

Pure values and rules, no HTTP: the answer modes, the AuthorizationInfo, the list's pages.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulators.clock import parse_wire_time, wire_time
from simulators.errors import OptionsError, PushRefused

__all__ = [
    "DEFAULT_TYPE",
    "DENIALS",
    "MAX_LIMIT",
    "TOKEN_TYPES",
    "WHITELISTS",
    "AuthorizeMode",
    "TokenBook",
    "authorization_info",
    "location_references",
    "new_token",
    "parse_mode",
    "parse_token_spec",
    "token_type",
    "where",
    "whitelist_type",
]

Json = dict[str, Any]

#: WhitelistType: when the CPO may accept a token without asking us.
WHITELISTS = ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")
TOKEN_TYPES = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
#: The type a URL means when it names none.
DEFAULT_TYPE = "RFID"
#: AllowedType values that refuse a token (`deny:` modes).
DENIALS = ("NOT_ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT")
#: Largest page of the token list, whatever limit a CPO asks for (announced in X-Limit).
MAX_LIMIT = 100
#: Seconds a `slow` answer takes when the mode names none.
SLOW_SECONDS = 10.0

INVALID = 2001
UNKNOWN_TOKEN = 2004

# A uid goes into URL paths as it is: letters, digits and a few marks, at most 36.
_UID = re.compile(r"^[A-Za-z0-9*._-]{1,36}$")
_ID36 = 36


def token_type(value: str | None) -> str:
    """A TokenType (case-insensitive; none: RFID), else OptionsError."""
    if value is None or value == "":
        return DEFAULT_TYPE
    upper = value.upper()
    if upper not in TOKEN_TYPES:
        raise OptionsError(f"token type must be one of {', '.join(TOKEN_TYPES)}, not {value!r}")
    return upper


def whitelist_type(value: str) -> str:
    """A WhitelistType (case-insensitive; the same in 2.1.1 and 2.2.1), else OptionsError."""
    upper = value.upper()
    if upper not in WHITELISTS:
        raise OptionsError(f"whitelist must be one of {', '.join(WHITELISTS)}, not {value!r}")
    return upper


def new_token(
    country_code: str,
    party_id: str,
    issuer: str,
    uid: str,
    *,
    last_updated: datetime,
    whitelist: str = "ALWAYS",
    type: str = DEFAULT_TYPE,
    valid: bool = True,
    contract_id: str | None = None,
) -> Json:
    """A whole Token object of party `country_code`/`party_id`; OptionsError for a bad uid,
    type or whitelist. The contract id follows the eMA ID pattern unless given."""
    if not _UID.match(uid):
        raise OptionsError(f"token uid must be 1 to 36 letters, digits or *._-, not {uid!r}")
    cc, pid = country_code.upper(), party_id.upper()
    contract = contract_id or f"{cc}-{pid}-C{uid.upper()}"
    return {
        "country_code": cc,
        "party_id": pid,
        "uid": uid,
        "type": token_type(type),
        "contract_id": contract[:_ID36],
        "visual_number": contract[:_ID36],
        "issuer": issuer[:64],
        "valid": valid,
        "whitelist": whitelist_type(whitelist),
        "last_updated": wire_time(last_updated),
    }


def parse_token_spec(spec: str) -> tuple[str, str]:
    """`UID[:WHITELIST]` (as `--token` takes it) -> (uid, whitelist); ALWAYS when none."""
    uid, colon, rule = spec.rpartition(":")
    if not colon:
        return spec, "ALWAYS"
    return uid, whitelist_type(rule)


class TokenBook:
    """The simulator's tokens in the order they were issued, by (uid upper-cased, type): uids
    compare case-insensitively (CiString). Objects are copied in and out, never aliased."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], Json] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def __iter__(self) -> Iterator[Json]:
        return iter([copy.deepcopy(t) for t in self._tokens.values()])

    def add(self, token: Json) -> bool:
        """Keep `token` (a new one, or in place of the one with its uid and type); True if new."""
        k = (str(token["uid"]).upper(), str(token["type"]))
        created = k not in self._tokens
        self._tokens[k] = copy.deepcopy(token)
        return created

    def get(self, uid: str, type: str = DEFAULT_TYPE) -> Json | None:
        found = self._tokens.get((uid.upper(), type))
        return None if found is None else copy.deepcopy(found)

    def patch(self, uid: str, type: str, fields: Json, last_updated: datetime) -> Json:
        """Change some fields of a held token; returns the PATCH body (the fields and the new
        last_updated). OptionsError for an unknown token or a field that cannot change."""
        held = self._tokens.get((uid.upper(), type))
        if held is None:
            raise OptionsError(f"no token {uid} of type {type}")
        fixed = {"country_code", "party_id", "uid", "type"} & fields.keys()
        if fixed:
            raise OptionsError(f"a token's {', '.join(sorted(fixed))} cannot change")
        if "whitelist" in fields:
            fields = {**fields, "whitelist": whitelist_type(str(fields["whitelist"]))}
        if "valid" in fields and not isinstance(fields["valid"], bool):
            raise OptionsError("valid must be true or false")
        body = {**copy.deepcopy(fields), "last_updated": wire_time(last_updated)}
        held.update(body)
        return body

    def page(
        self,
        offset: int,
        limit: int,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> tuple[list[Json], int]:
        """The tokens at `offset` (at most `limit`) of those last updated in
        [date_from, date_to), and how many there are in all."""
        chosen = [
            t
            for t in self._tokens.values()
            if _within(parse_wire_time(t.get("last_updated")), date_from, date_to)
        ]
        return copy.deepcopy(chosen[offset : offset + limit]), len(chosen)


def _within(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if moment is None:
        return start is None and end is None
    return (start is None or moment >= start) and (end is None or moment < end)


# --- real-time authorization -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizeMode:
    """How `POST {tokens}/{uid}/authorize` is answered.

    accept: ALLOWED (BLOCKED for a token that is not valid); deny: `allowed` (NOT_ALLOWED,
    BLOCKED, EXPIRED or NO_CREDIT); slow: as accept, after `seconds`; down: HTTP 503 and no
    OCPI answer, as a proxy in front of a stopped eMSP says."""

    kind: str = "accept"
    allowed: str = "ALLOWED"
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("accept", "deny", "slow", "down"):
            raise OptionsError(f"authorize mode must be accept, deny, slow or down: {self.kind}")
        if self.kind == "deny" and self.allowed not in DENIALS:
            raise OptionsError(f"deny answers one of {', '.join(DENIALS)}, not {self.allowed}")
        if self.seconds < 0:
            raise OptionsError("slow needs a number of seconds >= 0")

    @property
    def line(self) -> str:
        if self.kind == "deny":
            return f"deny:{self.allowed}"
        if self.kind == "slow":
            return f"slow:{self.seconds:g}"
        return self.kind

    def answer(self, token: Json) -> str:
        """The AllowedType for a known token."""
        if self.kind == "deny":
            return self.allowed
        return "ALLOWED" if token.get("valid") is True else "BLOCKED"


def parse_mode(text: str) -> AuthorizeMode:
    """`accept`, `deny[:NOT_ALLOWED|BLOCKED|EXPIRED|NO_CREDIT]`, `slow[:SECONDS]`, `down`."""
    kind, colon, arg = text.strip().partition(":")
    kind = kind.lower()
    if kind == "deny":
        return AuthorizeMode("deny", arg.upper() if colon else "NOT_ALLOWED")
    if kind == "slow":
        try:
            seconds = float(arg) if colon else SLOW_SECONDS
        except ValueError:
            raise OptionsError(f"slow:SECONDS needs a number, not {arg!r}") from None
        return AuthorizeMode("slow", seconds=seconds)
    if colon:
        raise OptionsError(f"authorize mode {kind} takes no argument")
    return AuthorizeMode(kind)


def location_references(body: Any) -> Json | None:
    """The LocationReferences of an authorization request (none: None), else PushRefused
    2001 saying what is wrong."""
    if body is None or body == {}:
        return None
    if not isinstance(body, dict):
        raise PushRefused(200, INVALID, "LocationReferences must be a JSON object")
    location_id = body.get("location_id")
    if not isinstance(location_id, str) or not 0 < len(location_id) <= _ID36:
        raise PushRefused(200, INVALID, "LocationReferences: location_id is required")
    evse_uids = body.get("evse_uids", [])
    if evse_uids is None:
        evse_uids = []
    if not isinstance(evse_uids, list) or not all(
        isinstance(u, str) and 0 < len(u) <= _ID36 for u in evse_uids
    ):
        raise PushRefused(200, INVALID, "LocationReferences: evse_uids must be a list of ids")
    return {"location_id": location_id, "evse_uids": list(evse_uids)}


def authorization_info(
    token: Json, allowed: str, location: Json | None, reference: str | None
) -> Json:
    """The AuthorizationInfo: the location (when given) only with an ALLOWED answer, and the
    reference only then too."""
    info: Json = {"allowed": allowed, "token": copy.deepcopy(token)}
    if allowed == "ALLOWED":
        if location is not None:
            info["location"] = copy.deepcopy(location)
        if reference is not None:
            info["authorization_reference"] = reference
    return info


def where(location: Json | None) -> str:
    """`LOC1 [E1,E2]` for a person; `no location` when none was given."""
    if location is None:
        return "no location"
    evses = location.get("evse_uids") or []
    return f"{location['location_id']} [{','.join(evses)}]" if evses else location["location_id"]
