"""OCPI partners (eMSPs, hubs) as the domain sees them: status, roles, endpoints, and the
credentials tokens exchanged with them (generated here, only their hashes stored).

Pure values and token rules; HTTP and storage live in ocpi_cpo and csms.storage.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

# OCPI 2.2.1 credentials token: string(64), printable ASCII without whitespace.
TOKEN_MAX = 64


class PartnerStatus(StrEnum):
    PENDING = "pending"  # token A issued (or our own registration with them under way)
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"  # the partner sent DELETE to our credentials endpoint


class Direction(StrEnum):
    """Who sent the credentials POST: the partner to us, or we to the partner."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class TokenEncoding(StrEnum):
    """How a partner writes `Authorization: Token ...`: Base64 (2.2.1) or raw (older)."""

    BASE64 = "base64"
    RAW = "raw"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class Role(StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


@dataclass(frozen=True, slots=True)
class PartyRole:
    """One CredentialsRole of a partner (country_code and party_id upper-cased: CiString)."""

    role: Role
    country_code: str
    party_id: str
    business_details: dict[str, Any] = field(default_factory=dict)

    @property
    def party(self) -> str:
        return f"{self.country_code}/{self.party_id}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint from a partner's version details."""

    identifier: str
    role: InterfaceRole
    url: str


# --- profiles: a partner's documented habits ------------------------------------------------

DEFAULT_PROFILE = "default"
# Switches that take a whole number (the others are on/off).
_NUMBER_SWITCHES = frozenset({"page_limit"})


@dataclass(frozen=True, slots=True)
class PartnerProfile:
    """How we talk to one partner where hubs depart from the letter of OCPI: a named preset
    (`PROFILES`) and the switches it sets, each of which staff may set apart from it
    (`custom` names those). The README ("Connecting to a hub") says which hub asked for each
    switch and why; ocpi_cpo.profiles applies them."""

    name: str = DEFAULT_PROFILE
    # Session updates as a PUT of the whole session instead of a PATCH of what changed.
    session_put: bool = False
    # eMI3 EVSE ids (`evse_id`) without separators and upper-cased, in what we send and serve.
    compact_evse_ids: bool = False
    # Ids the partner sends (EVSE uids, connector ids) compared as sent, not case-insensitively.
    case_sensitive_ids: bool = False
    # Required strings the partner leaves empty or out (in tokens it sends) filled with "-".
    fill_empty: bool = False
    # OCPI-from/to-* routing headers on our requests (off: none sent).
    routing_headers: bool = True
    # Largest page we serve that partner, and ask it for (None: our ocpi.page_limit).
    page_limit: int | None = None
    # A hub whatever its credentials say (OCPI 2.1.1 credentials carry one party and no
    # role, so a hub registering in 2.1.1 looks like one eMSP): it sees every party's
    # sessions and CDRs but ours and may give tokens of any party.
    hub: bool = False
    custom: frozenset[str] = frozenset()

    @staticmethod
    def switch_names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(PartnerProfile) if f.name not in ("name", "custom"))

    def switches(self) -> dict[str, bool | int | None]:
        return {n: getattr(self, n) for n in self.switch_names()}

    def with_switches(self, changes: Mapping[str, bool | int | None]) -> PartnerProfile:
        """This profile with some switches set apart from its preset."""
        unknown = set(changes) - set(self.switch_names())
        if unknown:
            raise ValueError(f"unknown profile switch {sorted(unknown)[0]!r}")
        return replace(self, **changes, custom=self.custom | frozenset(changes))  # type: ignore[arg-type]

    def stored(self) -> dict[str, Any]:
        """What the partner's row keeps: the preset's name and the switches set apart."""
        return {"name": self.name, **{n: getattr(self, n) for n in sorted(self.custom)}}

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | None) -> PartnerProfile:
        """The profile a row keeps (None or {}: the default). An unknown preset name (a
        newer version's) reads as the default preset with its switches."""
        if not data:
            return PROFILES[DEFAULT_PROFILE]
        base = PROFILES.get(str(data.get("name")), PROFILES[DEFAULT_PROFILE])
        changes: dict[str, bool | int | None] = {}
        for n in cls.switch_names():
            if n in data:
                value = data[n]
                if n in _NUMBER_SWITCHES:
                    changes[n] = None if value is None else int(value)
                else:
                    changes[n] = bool(value)
        return base.with_switches(changes) if changes else base


def acting_roles(roles: tuple[PartyRole, ...], profile: PartnerProfile) -> tuple[PartyRole, ...]:
    """A partner's credentials roles as we treat them: with a `hub` profile and no HUB role
    among them, the first one acts as the HUB (a hub registered in 2.1.1). Every rule that
    reads roles (who sees what, routing, whose tokens it may give) then treats it as one."""
    if not profile.hub or not roles or any(r.role is Role.HUB for r in roles):
        return roles
    first, *rest = roles
    return (replace(first, role=Role.HUB), *rest)


# The presets `csms ocpi partners set NAME --profile ...` offers (see the README for the
# public sources behind each).
PROFILES: dict[str, PartnerProfile] = {
    DEFAULT_PROFILE: PartnerProfile(),
    "gireve": PartnerProfile(name="gireve", session_put=True, routing_headers=False, hub=True),
    "e-clearing": PartnerProfile(
        name="e-clearing",
        compact_evse_ids=True,
        case_sensitive_ids=True,
        fill_empty=True,
        hub=True,
    ),
}


@dataclass(frozen=True, slots=True)
class PartnerHealth:
    """How pushes to a partner fare: the outbox's backlog for it and when the oldest
    undelivered push was enqueued (None: nothing waits)."""

    backlog: int = 0
    oldest_push_at: datetime | None = None

    def oldest_age(self, now: datetime) -> float | None:
        """Seconds the oldest undelivered push has waited (None: none waits)."""
        if self.oldest_push_at is None:
            return None
        return max(0.0, (now - self.oldest_push_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Partner:
    id: int
    name: str
    status: PartnerStatus
    direction: Direction | None
    token_encoding: TokenEncoding
    roles: tuple[PartyRole, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    versions_url: str | None = None
    version: str | None = None
    # The credentials token we present when we call the partner (token B when it registered
    # with us, token C when we registered with it). Kept in clear: we must send it.
    their_token: str | None = field(default=None, repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    registered_at: datetime | None = None
    profile: PartnerProfile = PartnerProfile()
    # The outcome of the last push: when one was last accepted, when one last failed and why.
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    # Filled only where staff look (csms.storage.partners.with_health), else None.
    health: PartnerHealth | None = None

    def endpoint(self, identifier: str, role: InterfaceRole | None = None) -> Endpoint | None:
        for e in self.endpoints:
            if e.identifier == identifier and (role is None or e.role == role):
                return e
        return None

    @property
    def parties(self) -> str:
        return ", ".join(f"{r.party} {r.role.value}" for r in self.roles) or "-"


@dataclass(frozen=True, slots=True)
class Registration:
    """What a finished credentials handshake leaves behind."""

    direction: Direction
    roles: tuple[PartyRole, ...]
    endpoints: tuple[Endpoint, ...]
    versions_url: str
    version: str
    their_token: str = field(repr=False)
    our_token: str = field(repr=False)
    token_encoding: TokenEncoding


def new_token() -> str:
    """A fresh credentials token: 43 URL-safe characters, 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What we store of a token we issued. The tokens are random and long, so one SHA-256
    suffices (no salt, no stretching) and lets a request find its partner by index."""
    return hashlib.sha256(token.encode()).hexdigest()


def valid_token(token: object) -> bool:
    """A credentials token as OCPI allows it: 1..64 printable ASCII, no whitespace."""
    return (
        isinstance(token, str)
        and 0 < len(token) <= TOKEN_MAX
        and all("!" <= c <= "~" for c in token)
    )
