"""Authorization of id tokens: the decision from a token and the charger's situation.

Shared by both OCPP versions; loading tokens and active transactions is the services' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.core.errors import InvalidInput


class AuthStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    # Not in the token table (OCPP 1.6 has no such status and says Invalid).
    UNKNOWN = "Unknown"
    # The EVSE is reserved for another token (2.0.1; 1.6 says Invalid).
    NOT_AT_THIS_TIME = "NotAtThisTime"


class TokenStatus(StrEnum):
    """What staff set on a token; Expired is derived from the expiry date as well."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


@dataclass(frozen=True, slots=True)
class Token:
    uid: str
    status: TokenStatus
    type: str = "ISO14443"
    expires_at: datetime | None = None
    parent_uid: str | None = None
    origin: str = "local"
    # Another party's token an eMSP gave us over OCPI: its WhitelistType (None otherwise).
    whitelist: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # How many transactions it may hold at once (None: any number, as a fleet card or a
    # free-vend charger's fixed idTag needs).
    max_concurrent: int | None = 1
    # Its sessions' priority on a load-managed site (higher first; None: 0).
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class AuthResult:
    status: AuthStatus
    expires_at: datetime | None = None
    parent_uid: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is AuthStatus.ACCEPTED


def over_limit(limit: int | None, holding: int) -> bool:
    """Whether a token that may hold `limit` transactions at once (None: any number) and
    already holds `holding` others must be refused (ConcurrentTx). Which of its running
    transactions count is the caller's to say: never the one being decided, and not one on
    the same EVSE when starting (its stop was lost: the new start replaces it)."""
    return limit is not None and holding >= limit


def limit_text(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


def parse_limit(text: str) -> int | None:
    """`N` (at least 1) or `unlimited` (None); InvalidInput otherwise."""
    word = text.strip()
    if word.lower() == "unlimited":
        return None
    if not (word.isascii() and word.isdigit()) or int(word) < 1:
        raise InvalidInput(f"must be a number of at least 1 or 'unlimited', not {text!r}")
    return int(word)


def decide(
    token: Token | None,
    now: datetime,
    *,
    busy_elsewhere: bool = False,
) -> AuthResult:
    """The answer for a token presented at a charger.

    `busy_elsewhere`: the token already has an active transaction that this request
    cannot be part of (another charger, or another connector when starting).
    """
    if token is None:
        return AuthResult(AuthStatus.UNKNOWN)
    parent = token.parent_uid
    if token.status is TokenStatus.BLOCKED:
        return AuthResult(AuthStatus.BLOCKED, token.expires_at, parent)
    if token.status is TokenStatus.INVALID:
        return AuthResult(AuthStatus.INVALID, token.expires_at, parent)
    if token.status is TokenStatus.EXPIRED or (
        token.expires_at is not None and token.expires_at <= now
    ):
        return AuthResult(AuthStatus.EXPIRED, token.expires_at, parent)
    if busy_elsewhere:
        return AuthResult(AuthStatus.CONCURRENT_TX, token.expires_at, parent)
    return AuthResult(AuthStatus.ACCEPTED, token.expires_at, parent)
