"""Repository of locations and of which charger stands where.

Takes an AsyncConnection; returns csms.core Location and ConnectorSpec values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from csms.core.locations import ConnectorSpec, Location
from csms.storage.models import ChargerLocationRow, EvseLinkRow, LocationRow
from csms.storage.paging import Page, keyset_page, newest_page

_loc = cast(Table, LocationRow.__table__)
_link = cast(Table, ChargerLocationRow.__table__)
_evl = cast(Table, EvseLinkRow.__table__)


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
        parking_type=row.parking_type,
        facilities=tuple(row.facilities or ()),
        opening_hours=row.opening_hours,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_updated=row.last_updated,
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


async def get_any_case(conn: AsyncConnection, location_id: str) -> Location | None:
    """The location with this id compared case-insensitively (OCPI ids are CiString);
    the exact id is tried first."""
    found = await get(conn, location_id)
    if found is not None:
        return found
    stmt = select(_loc).where(func.lower(_loc.c.id) == location_id.lower()).limit(1)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _to_location(row)


async def list_all(conn: AsyncConnection) -> list[Location]:
    return [_to_location(r) for r in (await conn.execute(select(_loc).order_by(_loc.c.id))).all()]


async def save(conn: AsyncConnection, location: Location, now: datetime) -> bool:
    """Insert or replace; True when it was new. `last_updated` moves only when the location
    says something new (an identical save only touches `updated_at`)."""
    old = await get(conn, location.id)
    values = _location_values(location, now)
    if old is not None:
        if not old.same_content(location):
            values["last_updated"] = now
        await conn.execute(update(_loc).where(_loc.c.id == location.id).values(values))
        return False
    await conn.execute(
        insert(_loc).values(id=location.id, created_at=now, last_updated=now, **values)
    )
    return True


async def touch(conn: AsyncConnection, location_ids: Iterable[str], now: datetime) -> None:
    """An EVSE of these locations really changed: their last_updated becomes `now`."""
    ids = sorted(set(location_ids))
    if ids:
        await conn.execute(
            update(_loc)
            .where(_loc.c.id.in_(ids), _loc.c.last_updated < now)
            .values(last_updated=now)
        )


async def published_digests(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, str | None]:
    stmt = select(_loc.c.id, _loc.c.published_digest).where(_loc.c.id.in_(sorted(set(ids))))
    return {r[0]: r[1] for r in (await conn.execute(stmt)).all()}


async def set_published_digest(conn: AsyncConnection, location_id: str, value: str) -> None:
    await conn.execute(update(_loc).where(_loc.c.id == location_id).values(published_digest=value))


async def changed_since(conn: AsyncConnection, since: datetime) -> list[Location]:
    rows = (await conn.execute(select(_loc).where(_loc.c.updated_at > since))).all()
    return [_to_location(r) for r in rows]


async def published_keys(
    conn: AsyncConnection,
    *,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[tuple[str, datetime]], int]:
    """One page of published locations as (id, last_updated), in a stable order (oldest
    first: creation time, then id) that does not move when a location changes, filtered
    on last_updated; with the total matching the filters."""
    where: list[ColumnElement[bool]] = [_loc.c.publish.is_(True)]
    if date_from is not None:
        where.append(_loc.c.last_updated >= date_from)
    if date_to is not None:
        where.append(_loc.c.last_updated < date_to)
    counted = select(func.count()).select_from(_loc).where(*where)
    total = int((await conn.execute(counted)).scalar_one())
    if limit == 0 or offset >= total:
        return [], total
    # (A window count in the same query makes SQLite sort every row: 20x slower.)
    rows = (
        await conn.execute(
            select(_loc.c.id, _loc.c.last_updated)
            .where(*where)
            .order_by(_loc.c.created_at, _loc.c.id)
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return [(r[0], r[1]) for r in rows], total


async def counts(conn: AsyncConnection) -> tuple[int, int, int]:
    """How many locations, charger links and EVSE details there are."""
    row = (
        await conn.execute(
            select(
                select(func.count()).select_from(_loc).scalar_subquery(),
                select(func.count()).select_from(_link).scalar_subquery(),
                select(func.count()).select_from(_evl).scalar_subquery(),
            )
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def get_many(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, Location]:
    stmt = select(_loc).where(_loc.c.id.in_(sorted(set(ids))))
    return {r.id: _to_location(r) for r in (await conn.execute(stmt)).all()}


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
    await conn.execute(delete(_evl).where(_evl.c.charge_point_id == cp_id))
    return bool(
        (await conn.execute(delete(_link).where(_link.c.charge_point_id == cp_id))).rowcount
    )


@dataclass(frozen=True, slots=True)
class ChargerLink:
    """A charger placed at a location: its connector defaults and per-EVSE details."""

    charge_point_id: str
    location_id: str
    spec: ConnectorSpec
    evses: dict[int, EvseDetail]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EvseDetail:
    """What staff said about one EVSE; None fields fall back to the charger's defaults."""

    evse_code: str | None = None
    standard: str | None = None
    format: str | None = None
    power_type: str | None = None
    max_voltage: int | None = None
    max_amperage: int | None = None
    max_electric_power: int | None = None

    def spec(self, default: ConnectorSpec) -> ConnectorSpec:
        return ConnectorSpec(
            standard=self.standard or default.standard,
            format=self.format or default.format,
            power_type=self.power_type or default.power_type,
            max_voltage=self.max_voltage or default.max_voltage,
            max_amperage=self.max_amperage or default.max_amperage,
            max_electric_power=self.max_electric_power
            if self.max_electric_power is not None
            else default.max_electric_power,
        )


async def link_evse(
    conn: AsyncConnection, cp_id: str, evse_id: int, detail: EvseDetail, now: datetime
) -> None:
    values = {
        "evse_code": detail.evse_code,
        "connector_standard": detail.standard,
        "connector_format": detail.format,
        "power_type": detail.power_type,
        "max_voltage": detail.max_voltage,
        "max_amperage": detail.max_amperage,
        "max_electric_power": detail.max_electric_power,
        "updated_at": now,
    }
    result = await conn.execute(
        update(_evl)
        .where(_evl.c.charge_point_id == cp_id, _evl.c.evse_id == evse_id)
        .values(values)
    )
    if not result.rowcount:
        await conn.execute(insert(_evl).values(charge_point_id=cp_id, evse_id=evse_id, **values))


async def evse_code_owner(conn: AsyncConnection, code: str) -> tuple[str, int] | None:
    row = (
        await conn.execute(
            select(_evl.c.charge_point_id, _evl.c.evse_id).where(_evl.c.evse_code == code)
        )
    ).first()
    return None if row is None else (row[0], row[1])


def _to_detail(row: Any) -> EvseDetail:
    return EvseDetail(
        evse_code=row.evse_code,
        standard=row.connector_standard,
        format=row.connector_format,
        power_type=row.power_type,
        max_voltage=row.max_voltage,
        max_amperage=row.max_amperage,
        max_electric_power=row.max_electric_power,
    )


async def evse_detail(conn: AsyncConnection, cp_id: str, evse_id: int) -> EvseDetail | None:
    """What staff said about one EVSE (None: nothing, the charger's defaults apply)."""
    row = (
        await conn.execute(
            select(_evl).where(_evl.c.charge_point_id == cp_id, _evl.c.evse_id == evse_id)
        )
    ).first()
    return None if row is None else _to_detail(row)


async def links(conn: AsyncConnection, cp_ids: Iterable[str] | None = None) -> list[ChargerLink]:
    """Charger links with their EVSE details (every charger, or the ones named)."""
    stmt = select(_link)
    evl = select(_evl)
    if cp_ids is not None:
        ids = list(cp_ids)
        stmt = stmt.where(_link.c.charge_point_id.in_(ids))
        evl = evl.where(_evl.c.charge_point_id.in_(ids))
    details: dict[str, dict[int, EvseDetail]] = {}
    for r in (await conn.execute(evl)).all():
        details.setdefault(r.charge_point_id, {})[r.evse_id] = _to_detail(r)
    return [
        ChargerLink(
            charge_point_id=r.charge_point_id,
            location_id=r.location_id,
            spec=_to_spec(r),
            evses=details.get(r.charge_point_id, {}),
            updated_at=r.updated_at,
        )
        for r in (await conn.execute(stmt.order_by(_link.c.charge_point_id))).all()
    ]


async def links_changed_since(conn: AsyncConnection, since: datetime) -> set[str]:
    """Chargers whose link or EVSE details changed after `since`."""
    a = select(_link.c.charge_point_id).where(_link.c.updated_at > since)
    b = select(_evl.c.charge_point_id).where(_evl.c.updated_at > since)
    return {r[0] for r in (await conn.execute(a.union(b))).all()}


async def evse_details(
    conn: AsyncConnection, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], EvseDetail]:
    """`evse_detail` of several EVSEs: one query for their chargers."""
    stmt = select(_evl).where(_evl.c.charge_point_id.in_(sorted({cp for cp, _ in keys})))
    wanted = set(keys)
    found = {}
    for row in (await conn.execute(stmt)).all():
        if (row.charge_point_id, row.evse_id) in wanted:
            found[(row.charge_point_id, row.evse_id)] = _to_detail(row)
    return found


async def of_chargers(
    conn: AsyncConnection, cp_ids: Sequence[str]
) -> dict[str, tuple[Location, ConnectorSpec]]:
    """`of_charger` of several chargers in one query."""
    stmt = (
        select(_loc, _link)
        .join(_link, _link.c.location_id == _loc.c.id)
        .where(_link.c.charge_point_id.in_(sorted(set(cp_ids))))
    )
    return {
        row.charge_point_id: (_to_location(row), _to_spec(row))
        for row in (await conn.execute(stmt)).all()
    }


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


async def browse(
    conn: AsyncConnection,
    *,
    published: bool | None = None,
    country: str | None = None,
    after: str | None = None,
    limit: int,
    newest_first: bool = False,
) -> Page[Location]:
    """A page of locations for staff, by id; `country`: ISO 3166-1 alpha-3."""
    conditions = []
    if published is not None:
        conditions.append(_loc.c.publish == published)
    if country is not None:
        conditions.append(_loc.c.country == country)
    if newest_first:  # the CLI: the most recently added first
        return await newest_page(
            conn,
            select(_loc),
            _loc,
            conditions,
            _loc.c.created_at,
            _loc.c.id,
            limit=limit,
            convert=_to_location,
        )
    return await keyset_page(
        conn,
        select(_loc),
        _loc,
        conditions,
        _loc.c.id,
        descending=False,
        after=after,
        limit=limit,
        convert=_to_location,
    )


async def chargers_at_many(
    conn: AsyncConnection, location_ids: Sequence[str]
) -> dict[str, list[str]]:
    """`chargers_at` of several locations in one query."""
    found: dict[str, list[str]] = {i: [] for i in location_ids}
    stmt = (
        select(_link.c.location_id, _link.c.charge_point_id)
        .where(_link.c.location_id.in_(list(location_ids)))
        .order_by(_link.c.charge_point_id)
    )
    for row in (await conn.execute(stmt)).all():
        found[row.location_id].append(row.charge_point_id)
    return found


# Bulk forms for `csms locations import`: a handful of statements per batch instead of
# several round trips per location (10,000 locations took 107 s one by one).


def _location_values(location: Location, now: datetime) -> dict[str, Any]:
    return {
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
        "parking_type": location.parking_type,
        "facilities": list(location.facilities) or None,
        "opening_hours": location.opening_hours,
        "updated_at": now,
    }


async def save_many(conn: AsyncConnection, locations: Sequence[Location], now: datetime) -> int:
    """`save` for many locations with the same outcome (last_updated moves only for those
    that say something new); returns how many were new."""
    old = await get_many(conn, [loc.id for loc in locations])
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    same: list[dict[str, Any]] = []
    for location in locations:
        values = _location_values(location, now)
        before = old.get(location.id)
        if before is None:
            new_rows.append({"id": location.id, "created_at": now, "last_updated": now, **values})
        elif before.same_content(location):
            same.append({"b_id": location.id, **values})
        else:
            changed.append({"b_id": location.id, "last_updated": now, **values})
    if new_rows:
        await conn.execute(insert(_loc), new_rows)
    for rows in (changed, same):
        if rows:
            await conn.execute(update(_loc).where(_loc.c.id == bindparam("b_id")), rows)
    return len(new_rows)


async def link_many(
    conn: AsyncConnection, links: Sequence[tuple[str, str, ConnectorSpec]], now: datetime
) -> None:
    """`link` for many (charger, location, connector defaults)."""
    cp_ids = [cp for cp, _, _ in links]
    stmt = select(_link.c.charge_point_id).where(_link.c.charge_point_id.in_(cp_ids))
    existing = {r[0] for r in (await conn.execute(stmt)).all()}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for cp_id, location_id, spec in links:
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
        if cp_id in existing:
            updates.append({"b_cp": cp_id, **values})
        else:
            inserts.append({"charge_point_id": cp_id, **values})
    if inserts:
        await conn.execute(insert(_link), inserts)
    if updates:
        await conn.execute(
            update(_link).where(_link.c.charge_point_id == bindparam("b_cp")), updates
        )


async def link_evse_many(
    conn: AsyncConnection, evses: Sequence[tuple[str, int, EvseDetail]], now: datetime
) -> None:
    """`link_evse` for many (charger, EVSE number, detail)."""
    cp_ids = sorted({cp for cp, _, _ in evses})
    stmt = select(_evl.c.charge_point_id, _evl.c.evse_id).where(_evl.c.charge_point_id.in_(cp_ids))
    existing = {(r[0], r[1]) for r in (await conn.execute(stmt)).all()}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for cp_id, number, detail in evses:
        values = {
            "evse_code": detail.evse_code,
            "connector_standard": detail.standard,
            "connector_format": detail.format,
            "power_type": detail.power_type,
            "max_voltage": detail.max_voltage,
            "max_amperage": detail.max_amperage,
            "max_electric_power": detail.max_electric_power,
            "updated_at": now,
        }
        if (cp_id, number) in existing:
            updates.append({"b_cp": cp_id, "b_evse": number, **values})
        else:
            inserts.append({"charge_point_id": cp_id, "evse_id": number, **values})
    if updates:
        # Before the inserts: an EVSE id may move from an updated EVSE to a new one.
        await conn.execute(
            update(_evl).where(
                _evl.c.charge_point_id == bindparam("b_cp"), _evl.c.evse_id == bindparam("b_evse")
            ),
            updates,
        )
    if inserts:
        await conn.execute(insert(_evl), inserts)


async def evse_code_owners(
    conn: AsyncConnection, codes: Iterable[str]
) -> dict[str, tuple[str, int]]:
    """Which (charger, EVSE) holds each of these eMI3 EVSE ids today."""
    wanted = sorted(set(codes))
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(_evl.c.evse_code, _evl.c.charge_point_id, _evl.c.evse_id).where(
            _evl.c.evse_code.in_(wanted[start : start + 500])
        )
        found.update({r[0]: (r[1], r[2]) for r in (await conn.execute(stmt)).all()})
    return found
