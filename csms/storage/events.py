"""Repository of charger messages kept as sent (DataTransfer, firmware/diagnostics status...).

Takes an AsyncConnection; returns plain records for staff views.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.storage.models import ChargerEventRow

_ev = cast(Table, ChargerEventRow.__table__)


@dataclass(frozen=True, slots=True)
class ChargerEvent:
    id: int
    charge_point_id: str
    action: str
    payload: dict[str, Any]
    received_at: datetime


async def record(
    conn: AsyncConnection, cp_id: str, action: str, payload: dict[str, Any], now: datetime
) -> None:
    await conn.execute(
        insert(_ev).values(charge_point_id=cp_id, action=action, payload=payload, received_at=now)
    )


async def recent(
    conn: AsyncConnection, cp_id: str, limit: int = 20, action: str | None = None
) -> list[ChargerEvent]:
    stmt = select(_ev).where(_ev.c.charge_point_id == cp_id).order_by(_ev.c.id.desc()).limit(limit)
    if action is not None:
        stmt = stmt.where(_ev.c.action == action)
    return [
        ChargerEvent(r.id, r.charge_point_id, r.action, r.payload, r.received_at)
        for r in (await conn.execute(stmt)).all()
    ]
