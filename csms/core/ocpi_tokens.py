"""Partners' Token objects (OCPI 2.2.1 tokens module) as they arrive: validating a whole
object (a PUT, a pulled list), merging a PATCH into the stored one, checking an object
against the URL it was sent to, and whose party a partner may write tokens for.

Pure functions and values; storing tokens is csms.storage.ocpi_tokens' job, HTTP ocpi_cpo's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, TypeVar

from csms.core.ids import token_key
from csms.core.ocpi_fields import FieldError
from csms.core.ocpi_fields import at as _at
from csms.core.ocpi_fields import cistring as _cistring
from csms.core.ocpi_fields import required as _required
from csms.core.ocpi_fields import string as _string
from csms.core.ocpi_sessions import TokenType
from csms.core.parties import Party, audience
from csms.core.partners import PartyRole
from csms.core.roaming import PartnerToken, Whitelist
from csms.core.tariffs import ocpi_datetime

# TokenType when a URL names none (the `type` parameter of the Receiver interface).
DEFAULT_TYPE = TokenType.RFID

# Lengths of the Token object's fields (CiString(n) and string(n) of the spec).
UID_MAX = 36
CONTRACT_ID_MAX = 36
GROUP_ID_MAX = 36
VISUAL_NUMBER_MAX = 64
ISSUER_MAX = 64
SUPPLIER_MAX = 64

_COUNTRY = re.compile(r"[A-Za-z]{2}")
_PARTY = re.compile(r"[A-Za-z0-9]{3}")
_LANGUAGE = re.compile(r"[A-Za-z]{2}")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})?"
)
_E = TypeVar("_E", bound=StrEnum)
_T = TypeVar("_T")


# A Token object, a PATCH or a URL that cannot be accepted (`path` names the field).
InvalidToken = FieldError


class ProfileType(StrEnum):
    """A token's default charging preference (OCPI ProfileType)."""

    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


@dataclass(frozen=True, slots=True)
class TokenKey:
    """What identifies a partner token: its owner party, uid and type (a uid compares
    case-insensitively: CiString)."""

    party: Party
    uid: str
    type: str

    def __str__(self) -> str:
        return f"{self.party}/{self.uid}/{self.type}"


def key_of(token: PartnerToken) -> TokenKey:
    return TokenKey(token.party, token.uid, token.type)


# --- field parsers -------------------------------------------------------------------------


def _plain(max_length: int) -> Callable[[object, str], str]:
    def parse(value: object, path: str) -> str:
        return _string(value, path, max_length)

    return parse


def _country_code(value: object, path: str) -> str:
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
        raise InvalidToken(path, "must be an ISO 3166-1 alpha-2 country code (2 letters)")
    return value.upper()


def _party_id(value: object, path: str) -> str:
    if not isinstance(value, str) or not _PARTY.fullmatch(value):
        raise InvalidToken(path, "must be 3 letters or digits")
    return value.upper()


def _language(value: object, path: str) -> str:
    if not isinstance(value, str) or not _LANGUAGE.fullmatch(value):
        raise InvalidToken(path, "must be an ISO 639-1 language code (2 letters)")
    return value.lower()


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidToken(path, "must be true or false")
    return value


def _enum(kind: type[_E]) -> Callable[[object, str], _E]:
    def parse(value: object, path: str) -> _E:
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
        raise InvalidToken(path, f"must be one of {', '.join(kind)}, not {value!r}")

    return parse


def parse_ocpi_datetime(value: object, path: str = "last_updated") -> datetime:
    """An OCPI DateTime (RFC 3339; `Z` or no designator means UTC, an explicit offset is
    converted) as an aware UTC datetime."""
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
        micro = int((match[7] or "")[:6].ljust(6, "0"))
        zone = match[8]
        tz: timezone = UTC
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        try:
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(
                UTC
            )
        except ValueError:
            pass
    raise InvalidToken(path, f"must be an OCPI DateTime (2026-01-31T12:00:00Z), not {value!r}")


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidToken(path, "must be a JSON object")
    return value


def _optional(
    obj: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], _T]
) -> _T | None:
    """An optional field; absent, null and "" all mean not given."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    return parse(value, _at(path, key))


def _energy_contract(value: object, path: str) -> dict[str, str]:
    obj = _object(value, path)
    contract: dict[str, str] = {
        "supplier_name": _required(obj, "supplier_name", path, _plain(SUPPLIER_MAX))
    }
    contract_id = _optional(obj, "contract_id", path, _plain(SUPPLIER_MAX))
    if contract_id is not None:
        contract["contract_id"] = contract_id
    return contract


# --- the Token object ----------------------------------------------------------------------


def parse_token(obj: object, where: str = "") -> PartnerToken:
    """A whole Token object as a partner sent it (a PUT body, one item of a pulled list).

    country_code and party_id are upper-cased (CiString); optional fields that are absent,
    null or empty are left out; unknown fields are dropped. `data` is the object as stored
    and served back: JSON-ready, last_updated in the OCPI form. Raises InvalidToken naming
    the first field that is wrong (prefixed with `where`)."""
    body = _object(obj, where)
    country_code = _required(body, "country_code", where, _country_code)
    party_id = _required(body, "party_id", where, _party_id)
    uid = _required(body, "uid", where, _cistring(UID_MAX))
    type_ = _required(body, "type", where, _enum(TokenType))
    contract_id = _required(body, "contract_id", where, _cistring(CONTRACT_ID_MAX))
    visual_number = _optional(body, "visual_number", where, _plain(VISUAL_NUMBER_MAX))
    issuer = _required(body, "issuer", where, _plain(ISSUER_MAX))
    group_id = _optional(body, "group_id", where, _cistring(GROUP_ID_MAX))
    valid = _required(body, "valid", where, _boolean)
    whitelist = _required(body, "whitelist", where, _enum(Whitelist))
    language = _optional(body, "language", where, _language)
    profile = _optional(body, "default_profile_type", where, _enum(ProfileType))
    energy_contract = _optional(body, "energy_contract", where, _energy_contract)
    last_updated = _required(body, "last_updated", where, parse_ocpi_datetime)

    data: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "uid": uid,
        "type": type_.value,
        "contract_id": contract_id,
    }
    if visual_number is not None:
        data["visual_number"] = visual_number
    data["issuer"] = issuer
    if group_id is not None:
        data["group_id"] = group_id
    data["valid"] = valid
    data["whitelist"] = whitelist.value
    if language is not None:
        data["language"] = language
    if profile is not None:
        data["default_profile_type"] = profile.value
    if energy_contract is not None:
        data["energy_contract"] = energy_contract
    data["last_updated"] = ocpi_datetime(last_updated)
    return PartnerToken(
        country_code=country_code,
        party_id=party_id,
        uid=uid,
        type=type_.value,
        contract_id=contract_id,
        whitelist=whitelist,
        valid=valid,
        last_updated=last_updated,
        data=data,
    )


def merge_patch(current: PartnerToken, patch: object) -> PartnerToken:
    """The stored token with a PATCH applied: the fields the PATCH names replace the stored
    ones (an object, such as energy_contract, as a whole; null removes an optional field),
    the others are kept. The PATCH must carry last_updated. The result is validated as a
    whole; whether it still matches the URL is `check_key`'s business."""
    body = _object(patch, "")
    if body.get("last_updated") is None:
        raise InvalidToken("last_updated", "is required in a PATCH")
    merged: dict[str, Any] = dict(current.data)
    for key, value in body.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return parse_token(merged)


def parse_key(country_code: str, party_id: str, uid: str, type_: str | None) -> TokenKey:
    """The token a Receiver URL names: `{country_code}/{party_id}/{uid}[?type=]` (type
    defaults to RFID). Raises InvalidToken naming the bad segment."""
    country = _country_code(country_code, "country_code (URL)")
    party = _party_id(party_id, "party_id (URL)")
    uid = _cistring(UID_MAX)(uid, "uid (URL)")
    kind = DEFAULT_TYPE if type_ is None or type_ == "" else _enum(TokenType)(type_, "type (URL)")
    return TokenKey(Party(country, party), uid, kind.value)


def check_key(token: PartnerToken, key: TokenKey) -> None:
    """A token must be sent to its own URL: its country_code, party_id, uid (compared
    case-insensitively) and type are those of the URL. Raises InvalidToken otherwise."""
    if token.party != key.party:
        raise InvalidToken(
            "country_code/party_id",
            f"the token is of party {token.party}, the URL names {key.party}",
        )
    if token_key(token.uid) != token_key(key.uid):
        raise InvalidToken("uid", f"the token's uid is {token.uid!r}, the URL's {key.uid!r}")
    if token.type != key.type:
        raise InvalidToken(
            "type",
            f"the token is of type {token.type}, the URL names {key.type}"
            + (" (the default; add ?type=...)" if key.type == DEFAULT_TYPE.value else ""),
        )


def may_write(roles: Iterable[PartyRole], us: Party, party: Party) -> bool:
    """Whether a partner with these credentials roles may write (or read) tokens of `party`:
    a party of its own roles, or, for a hub, any party but us."""
    return audience(roles, us).sees(party)
