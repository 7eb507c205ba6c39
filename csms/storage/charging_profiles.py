"""Repository of charging profiles sent to chargers; the row id is the profile id on the wire.

Takes an AsyncConnection; returns csms.core ChargingProfile values with their state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.commands import ChargingProfile, ProfilePurpose
from csms.storage.database import WriteTx
from csms.storage.models import ChargingProfileRow

_prof = cast(Table, ChargingProfileRow.__table__)

PENDING = "Pending"
INSTALLED = "Installed"
REJECTED = "Rejected"
CLEARED = "Cleared"


@dataclass(frozen=True, slots=True)
class StoredProfile:
    profile: ChargingProfile
    state: str
    transaction_id: int | None
    created_at: datetime


def _to_stored(row: Any) -> StoredProfile:
    return StoredProfile(
        ChargingProfile(
            profile_id=row.id,
            evse_id=row.evse_id,
            purpose=ProfilePurpose(row.purpose),
            stack_level=row.stack_level,
            limit=row.limit,
            unit=row.unit,
            start_at=row.start_at,
            duration_s=row.duration_s,
        ),
        row.state,
        row.transaction_id,
        row.created_at,
    )


async def create(
    conn: AsyncConnection,
    *,
    cp_id: str,
    evse_id: int,
    purpose: ProfilePurpose,
    stack_level: int,
    limit: float,
    unit: str,
    start_at: datetime,
    duration_s: int | None,
    transaction_id: int | None,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(_prof)
        .values(
            charge_point_id=cp_id,
            evse_id=evse_id,
            purpose=purpose.value,
            stack_level=stack_level,
            limit=limit,
            unit=unit,
            start_at=start_at,
            duration_s=duration_s,
            transaction_id=transaction_id,
            state=PENDING,
            created_at=now,
            updated_at=now,
        )
        .returning(_prof.c.id)
    )
    return int(result.scalar_one())


async def set_state(conn: AsyncConnection, profile_id: int, state: str, now: datetime) -> None:
    await conn.execute(
        update(_prof).where(_prof.c.id == profile_id).values(state=state, updated_at=now)
    )


async def replace_same_slot(
    conn: AsyncConnection, cp_id: str, profile: ChargingProfile, now: datetime
) -> None:
    """A charger replaces a profile with the same EVSE, purpose and stack level: so do we."""
    await conn.execute(
        update(_prof)
        .where(
            _prof.c.charge_point_id == cp_id,
            _prof.c.state == INSTALLED,
            _prof.c.evse_id == profile.evse_id,
            _prof.c.purpose == profile.purpose.value,
            _prof.c.stack_level == profile.stack_level,
            _prof.c.id != profile.profile_id,
        )
        .values(state=CLEARED, updated_at=now)
    )


async def clear(conn: AsyncConnection, cp_id: str, profile_id: int | None, now: datetime) -> int:
    stmt = update(_prof).where(_prof.c.charge_point_id == cp_id, _prof.c.state == INSTALLED)
    if profile_id is not None:
        stmt = stmt.where(_prof.c.id == profile_id)
    return int((await conn.execute(stmt.values(state=CLEARED, updated_at=now))).rowcount)


async def end_with_transaction(
    conn: AsyncConnection, cp_id: str, transaction_id: int, now: datetime
) -> None:
    """TxProfiles end with their transaction (the charger and state narrow it to the
    (charge_point_id, state) index: this runs at every transaction stop)."""
    await conn.execute(
        update(_prof)
        .where(
            _prof.c.charge_point_id == cp_id,
            _prof.c.state == INSTALLED,
            _prof.c.transaction_id == transaction_id,
        )
        .values(state=CLEARED, updated_at=now)
    )


_END_WITH = (
    update(_prof)
    .where(
        _prof.c.charge_point_id == bindparam("b_cp"),
        _prof.c.state == INSTALLED,
        _prof.c.transaction_id == bindparam("b_tx"),
    )
    .values(state=CLEARED, updated_at=bindparam("b_now"))
)


def end_with_transaction_later(w: WriteTx, cp_id: str, transaction_id: int, now: datetime) -> None:
    """`end_with_transaction`, merged with the same statement of other units of the batch
    (no `touches` key: the only deferred statement on charging profiles)."""
    w.defer(_END_WITH, {"b_cp": cp_id, "b_tx": transaction_id, "b_now": now})


async def installed(conn: AsyncConnection, cp_id: str) -> list[StoredProfile]:
    stmt = (
        select(_prof)
        .where(_prof.c.charge_point_id == cp_id, _prof.c.state == INSTALLED)
        .order_by(_prof.c.id)
    )
    return [_to_stored(r) for r in (await conn.execute(stmt)).all()]


async def get(conn: AsyncConnection, profile_id: int) -> tuple[str, StoredProfile] | None:
    row = (await conn.execute(select(_prof).where(_prof.c.id == profile_id))).first()
    return None if row is None else (row.charge_point_id, _to_stored(row))
