"""Repository of OCPI partners, their roles and endpoints.

Takes an AsyncConnection; returns csms.core.partners values. Token hashes go in and are
matched here, but never come out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.partners import (
    Direction,
    Endpoint,
    InterfaceRole,
    Partner,
    PartnerHealth,
    PartnerProfile,
    PartnerStatus,
    PartyRole,
    Registration,
    Role,
    TokenEncoding,
    acting_roles,
    hash_token,
)
from csms.storage.models import OutboxRow, PartnerEndpointRow, PartnerRoleRow, PartnerRow

_p = cast(Table, PartnerRow.__table__)
_role = cast(Table, PartnerRoleRow.__table__)
_ep = cast(Table, PartnerEndpointRow.__table__)
_out = cast(Table, OutboxRow.__table__)


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """A partner found by a token hash, and whether it was its one-time token."""

    partner: Partner
    token_hash: str
    one_time: bool


async def _load(conn: AsyncConnection, rows: Sequence[Any]) -> list[Partner]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    roles: dict[int, list[PartyRole]] = {i: [] for i in ids}
    for r in (
        await conn.execute(
            select(_role)
            .where(_role.c.partner_id.in_(ids))
            .order_by(_role.c.partner_id, _role.c.country_code, _role.c.party_id, _role.c.role)
        )
    ).all():
        roles[r.partner_id].append(
            PartyRole(Role(r.role), r.country_code, r.party_id, dict(r.business_details or {}))
        )
    endpoints: dict[int, list[Endpoint]] = {i: [] for i in ids}
    for e in (
        await conn.execute(
            select(_ep)
            .where(_ep.c.partner_id.in_(ids))
            .order_by(_ep.c.partner_id, _ep.c.identifier, _ep.c.role)
        )
    ).all():
        endpoints[e.partner_id].append(Endpoint(e.identifier, InterfaceRole(e.role), e.url))
    profiles = {r.id: PartnerProfile.from_stored(r.profile) for r in rows}
    return [
        Partner(
            id=r.id,
            name=r.name,
            status=PartnerStatus(r.status),
            direction=None if r.direction is None else Direction(r.direction),
            token_encoding=TokenEncoding(r.token_encoding),
            # As we treat them: a partner with a hub profile acts as a HUB.
            roles=acting_roles(tuple(roles[r.id]), profiles[r.id]),
            endpoints=tuple(endpoints[r.id]),
            versions_url=r.versions_url,
            version=r.version,
            their_token=r.their_token,
            created_at=r.created_at,
            updated_at=r.updated_at,
            registered_at=r.registered_at,
            profile=profiles[r.id],
            last_success_at=r.last_success_at,
            last_error_at=r.last_error_at,
            last_error=r.last_error,
        )
        for r in rows
    ]


async def get(conn: AsyncConnection, partner_id: int) -> Partner | None:
    rows = (await conn.execute(select(_p).where(_p.c.id == partner_id))).all()
    found = await _load(conn, rows)
    return found[0] if found else None


async def get_by_name(conn: AsyncConnection, name: str) -> Partner | None:
    rows = (await conn.execute(select(_p).where(_p.c.name == name))).all()
    found = await _load(conn, rows)
    return found[0] if found else None


async def list_all(conn: AsyncConnection) -> list[Partner]:
    return await _load(conn, (await conn.execute(select(_p).order_by(_p.c.name))).all())


async def registered_with_endpoint(
    conn: AsyncConnection, identifier: str, role: InterfaceRole
) -> list[tuple[Partner, str]]:
    """Registered partners that have the given endpoint, with its URL (for pushes)."""
    rows = (
        await conn.execute(
            select(_p, _ep.c.url.label("endpoint_url"))
            .join(_ep, _ep.c.partner_id == _p.c.id)
            .where(
                _p.c.status == PartnerStatus.REGISTERED.value,
                _ep.c.identifier == identifier,
                _ep.c.role == role.value,
            )
            .order_by(_p.c.id)
        )
    ).all()
    partners = await _load(conn, rows)
    return [(p, r.endpoint_url) for p, r in zip(partners, rows, strict=True)]


async def find_by_token_hash(
    conn: AsyncConnection, hashes: Sequence[str], known: dict[int, Partner] | None = None
) -> TokenMatch | None:
    """The partner whose one-time or registered token has one of these hashes (in the order
    given: the first hash that matches wins). `known` caches loaded partners between calls:
    one is reused while its row's updated_at is unchanged (every change of a partner, its
    roles or endpoints moves it), saving the roles and endpoints queries."""
    rows = (
        await conn.execute(
            select(_p).where(or_(_p.c.token_a_hash.in_(hashes), _p.c.our_token_hash.in_(hashes)))
        )
    ).all()
    if not rows:
        return None
    for h in hashes:
        for row in rows:
            if h in (row.token_a_hash, row.our_token_hash):
                cached = None if known is None else known.get(row.id)
                if cached is not None and cached.updated_at == row.updated_at:
                    partner = cached
                else:
                    (partner,) = await _load(conn, [row])
                    if known is not None:
                        known[row.id] = partner
                return TokenMatch(partner, h, one_time=row.token_a_hash == h)
    return None  # pragma: no cover - a row matched one of the hashes


async def create(
    conn: AsyncConnection,
    name: str,
    token_a_hash: str,
    direction: Direction,
    encoding: TokenEncoding,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(_p).values(
            name=name,
            status=PartnerStatus.PENDING.value,
            direction=direction.value,
            token_a_hash=token_a_hash,
            token_encoding=encoding.value,
            created_at=now,
            updated_at=now,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def complete(
    conn: AsyncConnection,
    partner_id: int,
    *,
    expect_status: PartnerStatus,
    expect_token_hash: str,
    registration: Registration,
    now: datetime,
) -> bool:
    """Store a finished handshake, provided the partner is still in `expect_status` with
    the token `expect_token_hash` (one-time while pending, registered token otherwise).
    False (and nothing written) when something changed meanwhile."""
    column = _p.c.token_a_hash if expect_status == PartnerStatus.PENDING else _p.c.our_token_hash
    result = await conn.execute(
        update(_p)
        .where(
            _p.c.id == partner_id,
            _p.c.status == expect_status.value,
            column == expect_token_hash,
        )
        .values(
            status=PartnerStatus.REGISTERED.value,
            direction=registration.direction.value,
            token_a_hash=None,
            our_token_hash=hash_token(registration.our_token),
            their_token=registration.their_token,
            token_encoding=registration.token_encoding.value,
            versions_url=registration.versions_url,
            version=registration.version,
            updated_at=now,
            registered_at=now,
        )
    )
    if not result.rowcount:
        return False
    await _replace_details(conn, partner_id, registration.roles, registration.endpoints)
    return True


async def _replace_details(
    conn: AsyncConnection,
    partner_id: int,
    roles: Sequence[PartyRole],
    endpoints: Sequence[Endpoint],
) -> None:
    await conn.execute(delete(_role).where(_role.c.partner_id == partner_id))
    await conn.execute(delete(_ep).where(_ep.c.partner_id == partner_id))
    if roles:
        await conn.execute(
            insert(_role),
            [
                {
                    "partner_id": partner_id,
                    "role": r.role.value,
                    "country_code": r.country_code,
                    "party_id": r.party_id,
                    "business_details": r.business_details,
                }
                for r in roles
            ],
        )
    if endpoints:
        await conn.execute(
            insert(_ep),
            [
                {
                    "partner_id": partner_id,
                    "identifier": e.identifier,
                    "role": e.role.value,
                    "url": e.url,
                }
                for e in endpoints
            ],
        )


async def unregister(
    conn: AsyncConnection, partner_id: int, expect_token_hash: str, now: datetime
) -> bool:
    """Forget every token and endpoint of a registered partner (its roles stay for the
    record). False when it was no longer registered with that token."""
    result = await conn.execute(
        update(_p)
        .where(
            _p.c.id == partner_id,
            _p.c.status == PartnerStatus.REGISTERED.value,
            _p.c.our_token_hash == expect_token_hash,
        )
        .values(
            status=PartnerStatus.UNREGISTERED.value,
            token_a_hash=None,
            our_token_hash=None,
            their_token=None,
            updated_at=now,
        )
    )
    if not result.rowcount:
        return False
    await conn.execute(delete(_ep).where(_ep.c.partner_id == partner_id))
    return True


async def set_encoding(
    conn: AsyncConnection, partner_id: int, encoding: TokenEncoding, now: datetime
) -> None:
    await conn.execute(
        update(_p)
        .where(_p.c.id == partner_id)
        .values(token_encoding=encoding.value, updated_at=now)
    )


async def remove(conn: AsyncConnection, partner_id: int) -> bool:
    await conn.execute(delete(_role).where(_role.c.partner_id == partner_id))
    await conn.execute(delete(_ep).where(_ep.c.partner_id == partner_id))
    return bool((await conn.execute(delete(_p).where(_p.c.id == partner_id))).rowcount)


async def remove_pending(conn: AsyncConnection, partner_id: int, token_a_hash: str) -> bool:
    """Delete a partner that is still pending with this one-time token (an abandoned
    registration of ours)."""
    result = await conn.execute(
        delete(_p).where(
            _p.c.id == partner_id,
            _p.c.status == PartnerStatus.PENDING.value,
            _p.c.token_a_hash == token_a_hash,
        )
    )
    return bool(result.rowcount)


async def set_profile(
    conn: AsyncConnection, partner_id: int, profile: PartnerProfile, now: datetime
) -> None:
    await conn.execute(
        update(_p).where(_p.c.id == partner_id).values(profile=profile.stored(), updated_at=now)
    )


async def record_push(
    conn: AsyncConnection, partner_id: int, now: datetime, error: str | None
) -> None:
    """The outcome of a push to the partner (in the write that records the push's own).
    updated_at stays: it marks changes of the partner itself (csms.services.partners
    reloads a cached partner when it moves), which a push is not."""
    values: dict[str, Any] = (
        {"last_success_at": now}
        if error is None
        else {"last_error_at": now, "last_error": error[:500]}
    )
    await conn.execute(update(_p).where(_p.c.id == partner_id).values(**values))


async def backlogs(conn: AsyncConnection) -> list[tuple[int, str, PartnerHealth]]:
    """Partners with undelivered pushes (id, name): how many, and when the oldest was
    enqueued. Partners with none are absent."""
    stmt = (
        select(_out.c.partner_id, _p.c.name, func.count(), func.min(_out.c.created_at))
        .join(_p, _p.c.id == _out.c.partner_id)
        .where(_out.c.delivered_at.is_(None))
        .group_by(_out.c.partner_id, _p.c.name)
    )
    # func.min keeps the column's type, so the time comes back timezone-aware.
    return [
        (int(r[0]), str(r[1]), PartnerHealth(int(r[2]), r[3]))
        for r in (await conn.execute(stmt)).all()
    ]


async def health(conn: AsyncConnection) -> dict[int, PartnerHealth]:
    """Per partner id with undelivered pushes: its PartnerHealth."""
    return {pid: h for pid, _name, h in await backlogs(conn)}


async def with_health(conn: AsyncConnection, partners: Sequence[Partner]) -> list[Partner]:
    """These partners with their outbox health filled in (for staff and /metrics)."""
    found = await health(conn)
    return [replace(p, health=found.get(p.id, PartnerHealth())) for p in partners]
