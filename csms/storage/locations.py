"""Repository of locations and of which charger stands where.

Takes an AsyncConnection; returns csms.core Location and ConnectorSpec values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.locations import ConnectorSpec, Location
from csms.storage.models import ChargerLocationRow, LocationRow

_loc = cast(Table, LocationRow.__table__)
_link = cast(Table, ChargerLocationRow.__table__)


def _to_location(row: Any) -> Location:
    return Location(
        id=row.id,
        name=row.name,
        address=row.address,
        city=row.city,
        postal_code=row.postal_code,
        country=row.country,
        latitude=row.latitude,
        longitude=row.longitude,
        time_zone=row.time_zone,
        publish=row.publish,
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _to_spec(row: Any) -> ConnectorSpec:
    return ConnectorSpec(
        standard=row.connector_standard,
        format=row.connector_format,
        power_type=row.power_type,
        max_voltage=row.max_voltage,
        max_amperage=row.max_amperage,
        max_electric_power=row.max_electric_power,
    )


async def get(conn: AsyncConnection, location_id: str) -> Location | None:
    row = (await conn.execute(select(_loc).where(_loc.c.id == location_id))).first()
    return None if row is None else _to_location(row)


async def list_all(conn: AsyncConnection) -> list[Location]:
    return [_to_location(r) for r in (await conn.execute(select(_loc).order_by(_loc.c.id))).all()]


async def save(conn: AsyncConnection, location: Location, now: datetime) -> bool:
    """Insert or replace; True when it was new."""
    values = {
        "name": location.name,
        "address": location.address,
        "city": location.city,
        "postal_code": location.postal_code,
        "state": location.state,
        "country": location.country,
        "latitude": location.latitude,
        "longitude": location.longitude,
        "time_zone": location.time_zone,
        "publish": location.publish,
        "updated_at": now,
    }
    result = await conn.execute(update(_loc).where(_loc.c.id == location.id).values(values))
    if result.rowcount:
        return False
    await conn.execute(insert(_loc).values(id=location.id, created_at=now, **values))
    return True


async def remove(conn: AsyncConnection, location_id: str) -> bool:
    await conn.execute(delete(_link).where(_link.c.location_id == location_id))
    return bool((await conn.execute(delete(_loc).where(_loc.c.id == location_id))).rowcount)


async def link(
    conn: AsyncConnection, cp_id: str, location_id: str, spec: ConnectorSpec, now: datetime
) -> None:
    values = {
        "location_id": location_id,
        "connector_standard": spec.standard,
        "connector_format": spec.format,
        "power_type": spec.power_type,
        "max_voltage": spec.max_voltage,
        "max_amperage": spec.max_amperage,
        "max_electric_power": spec.max_electric_power,
        "updated_at": now,
    }
    result = await conn.execute(
        update(_link).where(_link.c.charge_point_id == cp_id).values(values)
    )
    if not result.rowcount:
        await conn.execute(insert(_link).values(charge_point_id=cp_id, **values))


async def unlink(conn: AsyncConnection, cp_id: str) -> bool:
    return bool(
        (await conn.execute(delete(_link).where(_link.c.charge_point_id == cp_id))).rowcount
    )


async def of_charger(conn: AsyncConnection, cp_id: str) -> tuple[Location, ConnectorSpec] | None:
    row = (
        await conn.execute(
            select(_loc, _link)
            .join(_link, _link.c.location_id == _loc.c.id)
            .where(_link.c.charge_point_id == cp_id)
        )
    ).first()
    return None if row is None else (_to_location(row), _to_spec(row))


async def chargers_at(conn: AsyncConnection, location_id: str) -> list[str]:
    stmt = select(_link.c.charge_point_id).where(_link.c.location_id == location_id)
    return [r[0] for r in (await conn.execute(stmt.order_by(_link.c.charge_point_id))).all()]
