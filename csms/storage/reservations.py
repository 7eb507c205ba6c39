"""Repository of reservations (ReserveNow); the row id is the reservationId on the wire.

Takes an AsyncConnection; returns csms.core Reservation objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.ids import token_key
from csms.core.reservations import OPEN_STATES, Reservation, ReservationState
from csms.storage.database import FastSelect
from csms.storage.models import ReservationRow

_res = cast(Table, ReservationRow.__table__)
_OPEN = [s.value for s in OPEN_STATES]


def _to_reservation(row: Any) -> Reservation:
    return Reservation(
        id=row.id,
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        id_tag=row.id_tag,
        parent_id_tag=row.parent_id_tag,
        state=ReservationState(row.state),
        expires_at=row.expires_at,
        transaction_id=row.transaction_id,
        source=row.source,
        created_at=row.created_at,
    )


async def create(
    conn: AsyncConnection,
    *,
    cp_id: str,
    evse_id: int | None,
    id_tag: str,
    parent_id_tag: str | None,
    expires_at: datetime,
    source: str,
    now: datetime,
    ocpi_partner_id: int | None = None,
    ocpi_reservation_id: str | None = None,
    ocpi: Mapping[str, Any] | None = None,
) -> int:
    """A new Pending reservation; the ocpi_* values are an OCPI partner's (RESERVE_NOW)."""
    result = await conn.execute(
        insert(_res)
        .values(
            charge_point_id=cp_id,
            evse_id=evse_id,
            id_tag=id_tag,
            id_tag_key=token_key(id_tag),
            parent_id_tag=parent_id_tag,
            state=ReservationState.PENDING.value,
            expires_at=expires_at,
            source=source,
            ocpi_partner_id=ocpi_partner_id,
            ocpi_reservation_id=ocpi_reservation_id,
            ocpi=None if ocpi is None else dict(ocpi),
            created_at=now,
            updated_at=now,
        )
        .returning(_res.c.id)
    )
    return int(result.scalar_one())


async def get(conn: AsyncConnection, reservation_id: int) -> Reservation | None:
    row = (await conn.execute(select(_res).where(_res.c.id == reservation_id))).first()
    return None if row is None else _to_reservation(row)


async def open_for(conn: AsyncConnection, cp_id: str) -> list[Reservation]:
    """Pending and active reservations of a charger (expired ones included until swept)."""
    stmt = (
        select(_res)
        .where(_res.c.charge_point_id == cp_id, _res.c.state.in_(_OPEN))
        .order_by(_res.c.id)
    )
    return [_to_reservation(r) for r in (await conn.execute(stmt)).all()]


# Built once: the hot path's look-up (every start) needs no statement built per call.
_OPEN_FOR = FastSelect(
    select(_res)
    .where(_res.c.charge_point_id.in_(bindparam("cp_ids", expanding=True)), _res.c.state.in_(_OPEN))
    .order_by(_res.c.id)
)


async def open_for_many(
    conn: AsyncConnection, cp_ids: Sequence[str]
) -> dict[str, list[Reservation]]:
    """`open_for` of several chargers in one query."""
    found: dict[str, list[Reservation]] = {cp_id: [] for cp_id in cp_ids}
    for row in await _OPEN_FOR.rows(conn, {"cp_ids": list(cp_ids)}):
        found[row.charge_point_id].append(_to_reservation(row))
    return found


async def has_open(conn: AsyncConnection, cp_id: str) -> bool:
    stmt = select(_res.c.id).where(_res.c.charge_point_id == cp_id, _res.c.state.in_(_OPEN))
    return (await conn.execute(stmt.limit(1))).first() is not None


async def recent(
    conn: AsyncConnection, cp_id: str | None = None, limit: int = 50
) -> list[Reservation]:
    stmt = select(_res).order_by(_res.c.id.desc()).limit(limit)
    if cp_id is not None:
        stmt = stmt.where(_res.c.charge_point_id == cp_id)
    return [_to_reservation(r) for r in (await conn.execute(stmt)).all()]


async def set_state(
    conn: AsyncConnection,
    reservation_id: int,
    state: ReservationState,
    now: datetime,
    *,
    transaction_id: int | None = None,
    only_open: bool = True,
) -> bool:
    """Move a reservation to `state`; with only_open, only while it is still open."""
    stmt = update(_res).where(_res.c.id == reservation_id)
    if only_open:
        stmt = stmt.where(_res.c.state.in_(_OPEN))
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if transaction_id is not None:
        values["transaction_id"] = transaction_id
    return bool((await conn.execute(stmt.values(**values))).rowcount)


async def expire_due(conn: AsyncConnection, now: datetime) -> list[Reservation]:
    """Mark every open reservation whose time has come as Expired; returns them."""
    due = [
        _to_reservation(r)
        for r in (
            await conn.execute(
                select(_res).where(_res.c.state.in_(_OPEN), _res.c.expires_at <= now)
            )
        ).all()
    ]
    if due:
        await conn.execute(
            update(_res)
            .where(_res.c.id.in_([r.id for r in due]), _res.c.state.in_(_OPEN))
            .values(state=ReservationState.EXPIRED.value, updated_at=now)
        )
    return due


async def next_expiry(conn: AsyncConnection) -> datetime | None:
    stmt = (
        select(_res.c.expires_at)
        .where(_res.c.state.in_(_OPEN))
        .order_by(_res.c.expires_at)
        .limit(1)
    )
    return (await conn.execute(stmt)).scalar_one_or_none()


# --- reservations OCPI partners made (RESERVE_NOW) ------------------------------------------


@dataclass(frozen=True, slots=True)
class PartnerReservation:
    """A reservation an OCPI partner made: its id for it (never sent to the charger), what
    the reservation's Session shows (`data`, csms.core.ocpi_commands.reservation_info plus
    what was pushed) and when the reservation last changed."""

    reservation: Reservation
    partner_id: int
    reservation_id: str
    data: dict[str, Any]
    updated_at: datetime


def _to_partner(row: Any) -> PartnerReservation:
    return PartnerReservation(
        _to_reservation(row),
        row.ocpi_partner_id,
        row.ocpi_reservation_id,
        dict(row.ocpi or {}),
        row.updated_at,
    )


async def of_partner(
    conn: AsyncConnection, partner_id: int, reservation_id: str
) -> PartnerReservation | None:
    """The partner's latest reservation with its id `reservation_id` (any case)."""
    stmt = (
        select(_res)
        .where(
            _res.c.ocpi_partner_id == partner_id,
            func.upper(_res.c.ocpi_reservation_id) == reservation_id.upper(),
        )
        .order_by(_res.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else _to_partner(row)


async def partners_changed(
    conn: AsyncConnection, since: datetime | None, limit: int = 500
) -> list[PartnerReservation]:
    """Partners' reservations that are open or changed at/after `since` (None: all), in
    the order they last changed."""
    stmt = select(_res).where(_res.c.ocpi_partner_id.is_not(None))
    if since is not None:
        stmt = stmt.where(or_(_res.c.state.in_(_OPEN), _res.c.updated_at >= since))
    stmt = stmt.order_by(_res.c.updated_at, _res.c.id).limit(limit)
    return [_to_partner(r) for r in (await conn.execute(stmt)).all()]


async def set_partner_data(
    conn: AsyncConnection, reservation_id: int, data: Mapping[str, Any], seen_at: datetime
) -> bool:
    """Replace the partner data kept with a reservation, unless the reservation changed
    after `seen_at` (its updated_at when read); updated_at stays as it is."""
    stmt = update(_res).where(_res.c.id == reservation_id, _res.c.updated_at == seen_at)
    return bool((await conn.execute(stmt.values(ocpi=dict(data)))).rowcount)


async def replace(
    conn: AsyncConnection,
    reservation_id: int,
    *,
    evse_id: int | None,
    id_tag: str,
    parent_id_tag: str | None,
    expires_at: datetime,
    ocpi: Mapping[str, Any] | None,
    now: datetime,
) -> bool:
    """The charger accepted a ReserveNow with the id of an open reservation: it holds the
    new one (now Active) instead. False when the reservation is no longer open."""
    values: dict[str, Any] = {
        "evse_id": evse_id,
        "id_tag": id_tag,
        "id_tag_key": token_key(id_tag),
        "parent_id_tag": parent_id_tag,
        "expires_at": expires_at,
        "state": ReservationState.ACTIVE.value,
        "updated_at": now,
    }
    if ocpi is not None:
        values["ocpi"] = dict(ocpi)
    stmt = update(_res).where(_res.c.id == reservation_id, _res.c.state.in_(_OPEN))
    return bool((await conn.execute(stmt.values(**values))).rowcount)
