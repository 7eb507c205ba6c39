"""OCPI partners (eMSPs, hubs) as the domain sees them: status, roles, endpoints, and the
credentials tokens exchanged with them (generated here, only their hashes stored).

Pure values and token rules; HTTP and storage live in ocpi_cpo and csms.storage.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
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
