"""Use cases on OCPI partners: invite (token A), find a caller by its token, store or undo a
credentials handshake, unregister, forget.

No HTTP here: the handshake's calls to the partner are ocpi_cpo's business; this service
only decides and stores, each change in one transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from csms.core.clock import Clock
from csms.core.errors import BadPartnerName as BadPartnerName
from csms.core.errors import BadProfile as BadProfile
from csms.core.errors import PartnerExists as PartnerExists
from csms.core.errors import StateChanged as StateChanged
from csms.core.errors import UnknownPartner as UnknownPartner
from csms.core.partners import (
    PROFILES,
    Direction,
    InterfaceRole,
    Partner,
    PartnerStatus,
    Registration,
    TokenEncoding,
    hash_token,
    new_token,
)
from csms.storage import partners as repo
from csms.storage.database import Database, Unit, WriteTx
from csms.storage.partners import TokenMatch

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Seconds an answer of `authenticate` is reused (changes by another process show after it).
AUTH_TTL = 1.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Invitation:
    """A new pending partner and the token A to hand to it (shown once, stored hashed)."""

    partner: Partner
    token_a: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the partner its token belongs to, the token as presented (after
    decoding), the encoding it arrived in, and whether it was a one-time token (token A)."""

    partner: Partner
    token: str = field(repr=False)
    encoding: TokenEncoding
    one_time: bool

    @property
    def registered(self) -> bool:
        return not self.one_time and self.partner.status == PartnerStatus.REGISTERED


class PartnerService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        # Partners as last loaded for `authenticate`, checked against their row each time.
        self._known: dict[int, Partner] = {}
        # Recent `authenticate` answers (token hashes -> caller, until a monotonic time):
        # a partner paging through a list is not looked up again for every page. Any change
        # made through this service empties it; one made by another process (the CLI
        # removing a partner) is seen within AUTH_TTL.
        self._recent: dict[tuple[str, ...], tuple[float, Caller]] = {}

    async def _write(self, unit: Unit[T]) -> T:
        try:
            return await self.db.write(unit)
        finally:
            self._recent.clear()

    async def list_all(self) -> list[Partner]:
        async with self.db.read() as conn:
            return await repo.list_all(conn)

    async def receivers(self, identifier: str) -> list[tuple[Partner, str]]:
        """Registered partners offering `identifier` as RECEIVER, with that endpoint's URL
        (whom to push to)."""
        async with self.db.read() as conn:
            return await repo.registered_with_endpoint(conn, identifier, InterfaceRole.RECEIVER)

    async def get(self, name: str, *, health: bool = False) -> Partner:
        """The partner named; with `health`, its outbox backlog filled in."""
        async with self.db.read() as conn:
            partner = await repo.get_by_name(conn, name)
            if partner is None:
                raise UnknownPartner(f"no partner {name}")
            if health:
                (partner,) = await repo.with_health(conn, [partner])
        return partner

    async def set_profile(
        self, name: str, profile: str | None, switches: Mapping[str, bool | int | None]
    ) -> Partner:
        """Give a partner a preset profile (`profile`: its switches replace all set
        before) and/or set switches apart from its preset."""
        if profile is not None and profile not in PROFILES:
            raise BadProfile(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")

        async def unit(w: WriteTx) -> int:
            conn = await w.connection()
            partner = await repo.get_by_name(conn, name)
            if partner is None:
                raise UnknownPartner(f"no partner {name}")
            chosen = partner.profile if profile is None else PROFILES[profile]
            try:
                chosen = chosen.with_switches(switches) if switches else chosen
            except ValueError as exc:
                raise BadProfile(str(exc)) from None
            await repo.set_profile(conn, partner.id, chosen, self.clock())
            return partner.id

        return await self._by_id(await self._write(unit))

    async def add(self, name: str) -> Invitation:
        """A pending partner with a fresh token A."""
        return await self._create(name, Direction.INBOUND, new_token(), TokenEncoding.BASE64)

    async def begin_outbound(
        self, name: str, offered_token: str, encoding: TokenEncoding
    ) -> Invitation:
        """Before we POST our credentials to a partner: a pending partner whose one-time
        token is the one we offer, so that it may call our versions and credentials with it
        while it answers."""
        return await self._create(name, Direction.OUTBOUND, offered_token, encoding)

    async def _create(
        self, name: str, direction: Direction, token: str, encoding: TokenEncoding
    ) -> Invitation:
        if not NAME.match(name):
            raise BadPartnerName(
                f"partner name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
            )
        now = self.clock()

        async def unit(w: WriteTx) -> int:
            conn = await w.connection()
            if await repo.get_by_name(conn, name) is not None:
                raise PartnerExists(f"partner {name} exists")
            return await repo.create(conn, name, hash_token(token), direction, encoding, now)

        partner_id = await self._write(unit)
        return Invitation(await self._by_id(partner_id), token)

    async def abandon_outbound(self, partner: Partner, offered_token: str) -> None:
        """Undo `begin_outbound` (the partner is deleted if it is still pending)."""

        async def unit(w: WriteTx) -> None:
            await repo.remove_pending(await w.connection(), partner.id, hash_token(offered_token))

        await self._write(unit)

    async def authenticate(self, candidates: Sequence[tuple[str, TokenEncoding]]) -> Caller | None:
        """The caller whose token is one of the candidates (a header value read as Base64
        and as raw); the first candidate that matches wins."""
        if not candidates:
            return None
        hashes = [hash_token(token) for token, _ in candidates]
        key = tuple(hashes)
        recent = self._recent.get(key)
        if recent is not None and recent[0] > time.monotonic():
            return recent[1]
        async with self.db.read() as conn:
            match: TokenMatch | None = await repo.find_by_token_hash(conn, hashes, self._known)
        if match is None:
            self._recent.pop(key, None)
            return None
        token, encoding = candidates[hashes.index(match.token_hash)]
        caller = Caller(match.partner, token, encoding, match.one_time)
        if len(self._recent) > 1000:
            self._recent.clear()
        self._recent[key] = (time.monotonic() + AUTH_TTL, caller)
        return caller

    async def note_encoding(self, partner: Partner, encoding: TokenEncoding) -> None:
        """Remember how a partner writes its token, to write ours the same way."""
        now = self.clock()

        async def unit(w: WriteTx) -> None:
            await repo.set_encoding(await w.connection(), partner.id, encoding, now)

        await self._write(unit)

    async def complete(self, caller: Caller, registration: Registration) -> Partner:
        """Store a finished handshake for the partner that `caller` authenticated as: a
        first registration (the caller used its one-time token) or an update (its
        registered token, which stops working). Raises StateChanged if the partner changed
        meanwhile; then nothing is stored."""
        expect = PartnerStatus.PENDING if caller.one_time else PartnerStatus.REGISTERED
        now = self.clock()

        async def unit(w: WriteTx) -> bool:
            return await repo.complete(
                await w.connection(),
                caller.partner.id,
                expect_status=expect,
                expect_token_hash=hash_token(caller.token),
                registration=registration,
                now=now,
            )

        if not await self._write(unit):
            raise StateChanged(f"partner {caller.partner.name} changed during the handshake")
        return await self._by_id(caller.partner.id)

    async def unregister(self, caller: Caller) -> Partner:
        now = self.clock()

        async def unit(w: WriteTx) -> bool:
            return await repo.unregister(
                await w.connection(), caller.partner.id, hash_token(caller.token), now
            )

        if not await self._write(unit):
            raise StateChanged(f"partner {caller.partner.name} is not registered")
        return await self._by_id(caller.partner.id)

    async def remove(self, name: str) -> Partner:
        """Forget a partner: its tokens stop working at once."""

        async def unit(w: WriteTx) -> Partner:
            conn = await w.connection()
            partner = await repo.get_by_name(conn, name)
            if partner is None:
                raise UnknownPartner(f"no partner {name}")
            await repo.remove(conn, partner.id)
            return partner

        return await self._write(unit)

    async def _by_id(self, partner_id: int) -> Partner:
        async with self.db.read() as conn:
            partner = await repo.get(conn, partner_id)
        if partner is None:
            raise StateChanged(f"partner {partner_id} was removed meanwhile")
        return partner
