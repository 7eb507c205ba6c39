"""Repository of the statistics roll-up: each EVSE's occupied and charging time per whole UTC
hour (`evse_hours`), how far each charger's hours are made (`rollup_marks`), and the cursor
over the history that arrived (`rollup_cursor`). Takes an AsyncConnection; no policy.

The hours are made from the raw history by the same reads and rules the statistics use
without them (csms.storage.statistics.evse_activity, csms.core.statistics.hour_sums), so a
charger's hours before its mark are what the raw path would count. Whatever changes the
past (a status change or a transaction that arrives late) lowers its charger's mark to
the hour it changes and drops the hours from there; the roll-up makes them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.statistics import EvseKey, GroupBy, Period, hour_sums
from csms.storage.models import (
    ChargePointRow,
    ChargerLocationRow,
    EvseHourRow,
    RollupCursorRow,
    RollupMarkRow,
    SiteLinkRow,
    StatusHistoryRow,
    TransactionRow,
)
from csms.storage.statistics import evse_activity

_hours = cast(Table, EvseHourRow.__table__)
_marks = cast(Table, RollupMarkRow.__table__)
_cursor = cast(Table, RollupCursorRow.__table__)
_cp = cast(Table, ChargePointRow.__table__)
_hist = cast(Table, StatusHistoryRow.__table__)
_tx = cast(Table, TransactionRow.__table__)
_locations = cast(Table, ChargerLocationRow.__table__)
_sites = cast(Table, SiteLinkRow.__table__)

CURSOR = "evse_hours"
# Each EVSE's made hours: (hour, occupied, charging).
Hours = dict[EvseKey, list[tuple[datetime, timedelta, timedelta]]]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_US = timedelta(microseconds=1)


def hour_number(at: datetime) -> int:
    """The hour holding `at`, as hours since the epoch."""
    return (at - EPOCH) // _HOUR


def hour_at(number: int) -> datetime:
    return EPOCH + number * _HOUR


async def seen_until(conn: AsyncConnection) -> datetime | None:
    """Up to when arrived history has been looked at (None: never, nothing is rolled up)."""
    found = (
        await conn.execute(select(_cursor.c.seen_until).where(_cursor.c.name == CURSOR))
    ).scalar_one_or_none()
    return None if found is None else cast(datetime, found)


async def marks(conn: AsyncConnection, charger_ids: Sequence[str] | None = None) -> dict[str, int]:
    """Each charger's mark: its hours before it are made."""
    stmt = select(_marks.c.charge_point_id, _marks.c.rolled_until)
    if charger_ids is not None:
        stmt = stmt.where(_marks.c.charge_point_id.in_(list(charger_ids)))
    return {cp_id: int(mark) for cp_id, mark in (await conn.execute(stmt)).all()}


async def changed_since(conn: AsyncConnection, since: datetime) -> dict[str, datetime]:
    """Each charger whose history changed since `since` (status changes received, or its
    transactions started, updated or stopped), and the earliest time the change concerns:
    the status's own time, the transaction's start. One index seek per charger for the
    status history (by charger and time received), one range of the transactions' update
    index."""
    status = (
        select(func.min(_hist.c.status_at))
        .where(_hist.c.charge_point_id == _cp.c.id, _hist.c.received_at >= since)
        .correlate(_cp)
        .scalar_subquery()
    )
    out: dict[str, datetime] = {}
    for cp_id, at in (await conn.execute(select(_cp.c.id, status.label("at")))).all():
        if at is not None:
            out[cp_id] = _aware(at)
    # Few rows, by the update index (grouped in the database, SQLite would rather scan).
    rows = await conn.execute(
        select(_tx.c.charge_point_id, _tx.c.start_at).where(_tx.c.updated_at >= since)
    )
    for cp_id, at in rows.all():
        moment = _aware(at)
        if cp_id not in out or moment < out[cp_id]:
            out[cp_id] = moment
    return out


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    moment = cast(datetime, value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def lower_marks(
    conn: AsyncConnection, changes: Mapping[str, datetime], now_seen: datetime
) -> None:
    """Chargers whose past changed lose their hours from the hour of the change on, and the
    cursor moves to `now_seen`: in one transaction (the caller's), so a crash leaves either
    both or neither."""
    for cp_id, at in changes.items():
        hour = hour_number(at)
        await conn.execute(
            update(_marks)
            .where(_marks.c.charge_point_id == cp_id, _marks.c.rolled_until > hour)
            .values(rolled_until=hour)
        )
        await conn.execute(
            delete(_hours).where(_hours.c.charge_point_id == cp_id, _hours.c.hour >= hour)
        )
    moved = await conn.execute(
        update(_cursor).where(_cursor.c.name == CURSOR).values(seen_until=now_seen)
    )
    if not moved.rowcount:
        await conn.execute(insert(_cursor).values(name=CURSOR, seen_until=now_seen))


async def first_hour(conn: AsyncConnection) -> int | None:
    """The hour of the oldest history there is (status changes, transactions), where a
    charger without a mark starts."""
    oldest = [
        (await conn.execute(select(func.min(column)))).scalar_one_or_none()
        for column in (_hist.c.status_at, _tx.c.start_at)
    ]
    found = [_aware(at) for at in oldest if at is not None]
    return hour_number(min(found)) if found else None


async def behind(conn: AsyncConnection, until: int, first: int) -> dict[str, int]:
    """The chargers whose hours are not made up to `until`, and where theirs end (`first`
    for a charger without a mark)."""
    rows = await conn.execute(
        select(_cp.c.id, _marks.c.rolled_until).select_from(
            _cp.outerjoin(_marks, _marks.c.charge_point_id == _cp.c.id)
        )
    )
    out: dict[str, int] = {}
    for cp_id, mark in rows.all():
        begin = first if mark is None else int(mark)
        if begin < until:
            out[cp_id] = begin
    return out


async def made_hours(
    conn: AsyncConnection, chargers: Sequence[str], begin: int, until: int
) -> Hours:
    """The hours [begin, until) of these chargers, made from the raw history as the
    statistics count them (read here; `store` writes them)."""
    start, end = hour_at(begin), hour_at(until)
    activity = await evse_activity(conn, start, end, chargers)
    return await asyncio.to_thread(hour_sums, activity, start, end)


async def store(
    conn: AsyncConnection,
    chargers: Sequence[str],
    begin: int,
    until: int,
    hours: Mapping[EvseKey, list[tuple[datetime, timedelta, timedelta]]],
) -> int:
    """Replace the hours [begin, until) of these chargers (whose marks are at `begin`) with
    `hours` and move their marks to `until`, in the caller's transaction: a crash leaves
    both or neither, and storing again changes nothing. Returns the rows written."""
    rows = [
        {
            "charge_point_id": evse[0],
            "evse_id": evse[1],
            "hour": hour_number(hour),
            "occupied_us": occupied // _US,
            "charging_us": charging // _US,
        }
        for evse, made in hours.items()
        for hour, occupied, charging in made
    ]
    await conn.execute(
        delete(_hours).where(
            _hours.c.charge_point_id.in_(list(chargers)),
            _hours.c.hour >= begin,
            _hours.c.hour < until,
        )
    )
    for chunk in range(0, len(rows), 5_000):
        await conn.execute(insert(_hours), rows[chunk : chunk + 5_000])
    await conn.execute(
        update(_marks)
        .where(_marks.c.charge_point_id.in_(list(chargers)))
        .values(rolled_until=until)
    )
    present = set(await marks(conn, chargers))
    missing = [cp_id for cp_id in chargers if cp_id not in present]
    if missing:
        await conn.execute(
            insert(_marks), [{"charge_point_id": c, "rolled_until": until} for c in missing]
        )
    return len(rows)


async def hour_totals(
    conn: AsyncConnection,
    rolled: Mapping[str, int],
    lo: int,
    by: GroupBy,
    bucket_of: tuple[str, Sequence[int]],
    *,
    others: Sequence[str] | None = None,
) -> list[tuple[tuple[Any, ...], int, int, int]]:
    """The made hours from `lo` of the chargers in `rolled`, each up to (not including) the
    hour given, summed in the database per group and bucket: (group key, bucket number,
    occupied us, charging us), one row per group, bucket and set of chargers with the same
    end. The group key: (charger, EVSE), (charger,), (location,), (site,) or () for the
    network. `bucket_of`: ("div", (n,)) numbers a bucket as hour // n (hours, days),
    ("week", ()) as the ISO week since the epoch (its Monday is day 7n - 3), ("edges", (e1,
    e2, ...)) as the number of edges at or before the hour (months).

    `others`: every other charger whose hours may be stored (when `rolled` is the whole
    network): the largest set of chargers with one end is then read as "all but the
    others", by the hour index alone, instead of a seek per charger."""
    how, args = bucket_of
    hour = _hours.c.hour
    bucket: Any
    if how == "div":
        bucket = hour // args[0] if args[0] > 1 else hour
    elif how == "week":
        # 1970-01-01 was a Thursday: days + 3 counts from the Monday before it.
        bucket = (hour // 24 + 3) // 7
    elif args:
        bucket = case(*((hour < edge, n) for n, edge in enumerate(args)), else_=len(args))
    else:
        bucket = literal(0)
    source: Any = _hours
    keys: list[Any]
    if by == "evse":
        keys = [_hours.c.charge_point_id, _hours.c.evse_id]
    elif by == "charger":
        keys = [_hours.c.charge_point_id]
    elif by == "location":
        source = _hours.join(_locations, _locations.c.charge_point_id == _hours.c.charge_point_id)
        keys = [_locations.c.location_id]
    elif by == "site":
        source = _hours.join(_sites, _sites.c.charge_point_id == _hours.c.charge_point_id)
        keys = [_sites.c.site_id]
    else:
        keys = []
    label = bucket.label("bucket")
    ends: dict[int, list[str]] = {}
    for cp_id, until in rolled.items():
        if until > lo:
            ends.setdefault(until, []).append(cp_id)
    width = len(keys)
    out: list[tuple[tuple[Any, ...], int, int, int]] = []
    largest = max(ends, key=lambda until: len(ends[until])) if ends else None
    outside: list[str] = []
    if others is not None and largest is not None:
        outside = [c for until, cs in ends.items() if until != largest for c in cs]
        outside += list(others)
        if len(outside) > 500:
            largest = None  # as many seeks either way
    for until, chargers in ends.items():
        if until == largest and others is not None:
            parts: list[Any] = [_hours.c.charge_point_id.not_in(outside)] if outside else []
            filters = [parts]
        else:
            filters = [[_hours.c.charge_point_id.in_(chunk)] for chunk in _chunks(chargers, 2_000)]
        for which in filters:
            stmt = (
                select(*keys, label, func.sum(_hours.c.occupied_us), func.sum(_hours.c.charging_us))
                .select_from(source)
                .where(hour >= lo, hour < until, *which)
                .group_by(*keys, label)
            )
            for row in (await conn.execute(stmt)).all():
                out.append((tuple(row[:width]), int(row[width]), int(row[-2]), int(row[-1])))
    return out


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for at in range(0, len(items), size):
        yield list(items[at : at + size])


def bucket_numbering(period: Period, edges: Sequence[datetime]) -> tuple[str, Sequence[int]]:
    """How `hour_totals` numbers the buckets of `period` (see there); `edges` the range's
    bucket edges (for months)."""
    if period == "hour":
        return ("div", (1,))
    if period == "day":
        return ("div", (24,))
    if period == "week":
        return ("week", ())
    return ("edges", tuple(hour_number(e) for e in edges[1:-1]))


# How far before the cursor arrived history is looked for again: a row stamped as received
# before the cursor may commit after a pass read (the writer's batch, another node).
OVERLAP = timedelta(minutes=5)
