"""Roaming authorization: other parties' tokens (OCPI Token objects an eMSP gave us), their
whitelist rule, and the decision for one presented at our charger, with or without a
real-time answer from its eMSP.

Pure values and rules; storing tokens is csms.storage.ocpi_tokens' job, asking the eMSP
ocpi_cpo.roaming's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from csms.core.authorization import AuthResult, AuthStatus
from csms.core.ocpi_sessions import TOKEN_MAX, AuthMethod, TokenType
from csms.core.parties import Party


class Whitelist(StrEnum):
    """When a token may be accepted without asking its eMSP (OCPI WhitelistType)."""

    ALWAYS = "ALWAYS"  # never ask: accept from the stored token
    ALLOWED = "ALLOWED"  # ask; if no answer in time, the stored token decides
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"  # ask; only if the eMSP is unreachable, the token decides
    NEVER = "NEVER"  # ask; without an answer, refuse


class Allowed(StrEnum):
    """The eMSP's real-time answer (OCPI AllowedType)."""

    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


_ALLOWED_STATUS = {
    Allowed.ALLOWED: AuthStatus.ACCEPTED,
    Allowed.BLOCKED: AuthStatus.BLOCKED,
    Allowed.EXPIRED: AuthStatus.EXPIRED,
    Allowed.NO_CREDIT: AuthStatus.INVALID,
    Allowed.NOT_ALLOWED: AuthStatus.INVALID,
}

# OCPI TokenType -> the OCPP id token type it is sent to chargers as (local lists, remote
# starts). An RFID card is ISO 14443; app and ad-hoc users are made up by a server.
_OCPP_TYPES = {
    TokenType.RFID: "ISO14443",
    TokenType.APP_USER: "Central",
    TokenType.AD_HOC_USER: "Central",
    TokenType.OTHER: "Central",
}

# OCPP id token types a charger presents -> the OCPI token types they may be (most likely
# first). 1.6 has no type: its tags are RFID cards.
_PRESENTED = {
    None: (TokenType.RFID,),
    "ISO14443": (TokenType.RFID,),
    "ISO15693": (TokenType.RFID,),
    "Local": (TokenType.RFID,),
    "Central": (TokenType.APP_USER, TokenType.AD_HOC_USER, TokenType.OTHER),
    "eMAID": (TokenType.OTHER, TokenType.APP_USER),
    "KeyCode": (TokenType.OTHER,),
    "MacAddress": (TokenType.OTHER,),
}


def ocpp_token_type(ocpi_type: str) -> str:
    try:
        return _OCPP_TYPES[TokenType(ocpi_type)]
    except ValueError:
        return "Central"


def presented_types(ocpp_type: str | None) -> tuple[TokenType, ...]:
    """The OCPI token types an id token of this OCPP type may be stored as."""
    return _PRESENTED.get(ocpp_type, tuple(TokenType))


@dataclass(frozen=True, slots=True)
class PartnerToken:
    """An OCPI Token object as stored (`data` is the whole object, JSON-ready)."""

    country_code: str
    party_id: str
    uid: str
    type: str
    contract_id: str
    whitelist: Whitelist
    valid: bool
    last_updated: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    partner_id: int | None = None

    @property
    def party(self) -> Party:
        return Party(self.country_code, self.party_id)

    @property
    def group_id(self) -> str | None:
        value = self.data.get("group_id")
        return value if isinstance(value, str) and value else None

    def cdr_token(self) -> dict[str, str]:
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": self.uid[:TOKEN_MAX],
            "type": self.type,
            "contract_id": self.contract_id[:TOKEN_MAX],
        }


@dataclass(frozen=True, slots=True)
class Grant:
    """The decision for another party's token: the answer for the charger, how it was
    reached (OCPI AuthMethod), the eMSP's reference and the token as the session and CDR
    name it (a CdrToken)."""

    status: AuthStatus
    method: AuthMethod
    cdr_token: Mapping[str, str]
    authorization_reference: str | None = None
    # Why, for the log: "whitelist", "realtime", "fallback: <why the eMSP gave no answer>".
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is AuthStatus.ACCEPTED

    def auth(self) -> AuthResult:
        return AuthResult(self.status)


class NoAnswer(StrEnum):
    """Why the eMSP's real-time answer is missing."""

    UNREACHABLE = "unreachable"  # connection refused, no route, HTTP 5xx, not OCPI
    TIMED_OUT = "timed out"  # reached, but no answer within the bound
    NO_ENDPOINT = "no endpoint"  # the eMSP offers no tokens endpoint to ask


@dataclass(frozen=True, slots=True)
class RealtimeAnswer:
    """An eMSP's AuthorizationInfo, as far as the decision needs it. `unknown`: it answered
    2004 (it does not know the token)."""

    allowed: Allowed
    authorization_reference: str | None = None
    unknown: bool = False


def needs_realtime(token: PartnerToken) -> bool:
    return token.valid and token.whitelist is not Whitelist.ALWAYS


def decide_roaming(token: PartnerToken, answer: RealtimeAnswer | NoAnswer | None) -> Grant:
    """The decision for `token` given the eMSP's real-time answer (None: not asked, for
    ALWAYS tokens and invalid ones; NoAnswer: asked, no answer).

    A token marked invalid is Blocked without asking. An answer decides by itself (its
    authorization_reference is kept). Without one: ALLOWED falls back to the stored token
    whatever the reason, ALLOWED_OFFLINE only when the eMSP could not be reached (a slow
    eMSP is not an offline one), NEVER never does."""
    cdr = token.cdr_token()
    if not token.valid:
        return Grant(AuthStatus.BLOCKED, AuthMethod.WHITELIST, cdr, reason="token not valid")
    if isinstance(answer, RealtimeAnswer):
        status = AuthStatus.INVALID if answer.unknown else _ALLOWED_STATUS[answer.allowed]
        reference = answer.authorization_reference
        return Grant(status, AuthMethod.AUTH_REQUEST, cdr, reference, "realtime")
    if answer is None:
        if token.whitelist is Whitelist.ALWAYS:
            return Grant(AuthStatus.ACCEPTED, AuthMethod.WHITELIST, cdr, reason="whitelist ALWAYS")
        # Not asked although the rule says to: nothing better than "no answer" to go by.
        answer = NoAnswer.NO_ENDPOINT
    fallback = token.whitelist is Whitelist.ALLOWED or (
        token.whitelist is Whitelist.ALLOWED_OFFLINE and answer is not NoAnswer.TIMED_OUT
    )
    if fallback:
        return Grant(
            AuthStatus.ACCEPTED,
            AuthMethod.WHITELIST,
            cdr,
            reason=f"fallback ({token.whitelist.value}): eMSP {answer.value}",
        )
    return Grant(
        AuthStatus.INVALID,
        AuthMethod.AUTH_REQUEST,
        cdr,
        reason=f"refused ({token.whitelist.value}): eMSP {answer.value}",
    )


def mirror_status(token: PartnerToken) -> str:
    """The status of the id token row that lets chargers and staff see a partner token
    (csms.core.authorization.TokenStatus values)."""
    return "Accepted" if token.valid else "Blocked"


def offline_usable(whitelist: str | None) -> bool:
    """Whether a partner token may go into a charger's local authorization list (where the
    charger accepts it without asking us, so without asking its eMSP)."""
    return whitelist in (None, Whitelist.ALWAYS.value, Whitelist.ALLOWED_OFFLINE.value)
