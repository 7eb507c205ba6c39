"""Repository of the EVSEs as published over OCPI (ocpi_evses): the rendered object, its
digest and when it last really changed, per charger EVSE.

Written only by the OCPI location publisher; read by the locations module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.storage.models import OcpiEvseRow

_e = cast(Table, OcpiEvseRow.__table__)


@dataclass(frozen=True, slots=True)
class PublishedEvse:
    charge_point_id: str
    evse_id: int
    uid: str
    location_id: str
    status: str
    digest: str
    data: dict[str, Any]
    last_updated: datetime


def _to_evse(row: Any) -> PublishedEvse:
    return PublishedEvse(
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        uid=row.uid,
        location_id=row.location_id,
        status=row.status,
        digest=row.digest,
        data=row.data,
        last_updated=row.last_updated,
    )


async def of_chargers(
    conn: AsyncConnection, cp_ids: Iterable[str] | None = None
) -> dict[tuple[str, int], PublishedEvse]:
    stmt = select(_e)
    if cp_ids is not None:
        stmt = stmt.where(_e.c.charge_point_id.in_(list(cp_ids)))
    return {(r.charge_point_id, r.evse_id): _to_evse(r) for r in (await conn.execute(stmt)).all()}


async def at_locations(
    conn: AsyncConnection, location_ids: Sequence[str]
) -> dict[str, list[PublishedEvse]]:
    """The EVSEs of these locations, in a stable order (charger id, EVSE number)."""
    out: dict[str, list[PublishedEvse]] = {i: [] for i in location_ids}
    if not location_ids:
        return out
    stmt = (
        select(_e)
        .where(_e.c.location_id.in_(list(location_ids)))
        .order_by(_e.c.location_id, _e.c.charge_point_id, _e.c.evse_id)
    )
    for r in (await conn.execute(stmt)).all():
        out[r.location_id].append(_to_evse(r))
    return out


_UPDATE = (
    update(_e)
    .where(
        _e.c.charge_point_id == bindparam("b_cp"),
        _e.c.evse_id == bindparam("b_evse"),
    )
    .values(
        uid=bindparam("uid"),
        location_id=bindparam("location_id"),
        status=bindparam("status"),
        digest=bindparam("digest"),
        data=bindparam("data"),
        last_updated=bindparam("last_updated"),
    )
)


async def save_many(conn: AsyncConnection, evses: Sequence[tuple[PublishedEvse, bool]]) -> None:
    """Store EVSEs (True: new) with one statement per kind."""

    def values(e: PublishedEvse) -> dict[str, Any]:
        return {
            "uid": e.uid,
            "location_id": e.location_id,
            "status": e.status,
            "digest": e.digest,
            "data": e.data,
            "last_updated": e.last_updated,
        }

    new = [
        {"charge_point_id": e.charge_point_id, "evse_id": e.evse_id, **values(e)}
        for e, is_new in evses
        if is_new
    ]
    changed = [
        {"b_cp": e.charge_point_id, "b_evse": e.evse_id, **values(e)}
        for e, is_new in evses
        if not is_new
    ]
    if new:
        await conn.execute(insert(_e), new)
    if changed:
        await conn.execute(_UPDATE, changed)
