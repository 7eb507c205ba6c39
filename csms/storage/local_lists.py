"""Repository of the local authorization list each charger holds, as we last sent it.

Takes an AsyncConnection; entries are uid -> {"status", "type", "expires_at", "parent"}.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.storage.models import LocalListRow

_ll = cast(Table, LocalListRow.__table__)


@dataclass(frozen=True, slots=True)
class LocalList:
    version: int
    entries: dict[str, dict[str, Any]]
    sent_at: datetime


async def get(conn: AsyncConnection, cp_id: str) -> LocalList | None:
    row = (await conn.execute(select(_ll).where(_ll.c.charge_point_id == cp_id))).first()
    return None if row is None else LocalList(row.version, dict(row.entries), row.sent_at)


async def put(
    conn: AsyncConnection,
    cp_id: str,
    version: int,
    entries: dict[str, dict[str, Any]],
    now: datetime,
) -> None:
    values = {"version": version, "entries": entries, "sent_at": now}
    result = await conn.execute(update(_ll).where(_ll.c.charge_point_id == cp_id).values(values))
    if not result.rowcount:
        await conn.execute(insert(_ll).values(charge_point_id=cp_id, **values))
