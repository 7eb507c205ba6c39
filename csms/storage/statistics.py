"""Repository of what the statistics and the uptime figures read: sessions with their
revenue and token origin, EVSE activity and status changes, connectivity, staff's
availability commands, maintenance windows, and which EVSE belongs to which charger,
location and site. Takes an AsyncConnection; returns csms.core values, never rows.

Every read is one or a few statements over the range, index-backed (a per-EVSE or
per-charger seek from the small tables to the history's composite indexes), never a query
per charger. In keys, EVSE 0 stands for the whole charger (a status, a command or a
window that concerns every EVSE of it).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Numeric,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy import cast as cast_
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.maintenance import MaintenanceWindow, WindowKind
from csms.core.statistics import (
    EvseActivity,
    EvseKey,
    GroupBy,
    Interval,
    Period,
    SessionFact,
    SessionTotals,
)
from csms.core.uptime import StatusChange
from csms.storage.models import (
    CdrRow,
    ChargePointRow,
    ChargerLocationRow,
    CommandRow,
    ConnectivityRow,
    ConnectorRow,
    LocationRow,
    MaintenanceWindowRow,
    SiteLinkRow,
    SiteRow,
    StatusHistoryRow,
    TransactionEventRow,
    TransactionRow,
)

_tx = cast(Table, TransactionRow.__table__)
_cp = cast(Table, ChargePointRow.__table__)
_cdr = cast(Table, CdrRow.__table__)
_events = cast(Table, TransactionEventRow.__table__)
_hist = cast(Table, StatusHistoryRow.__table__)
_conn = cast(Table, ConnectorRow.__table__)
_links = cast(Table, ConnectivityRow.__table__)
_cmd = cast(Table, CommandRow.__table__)
_windows = cast(Table, MaintenanceWindowRow.__table__)
_locations = cast(Table, ChargerLocationRow.__table__)
_sites = cast(Table, SiteLinkRow.__table__)
_location_rows = cast(Table, LocationRow.__table__)
_site_rows = cast(Table, SiteRow.__table__)

# How long before the range a session may have started and still count as running at its
# start: the start-time index bounds the look-up. A session running longer than that
# still shows in its EVSE's occupancy through the status history; one left open for days
# is data to fix, not a charger in use.
LOOKBACK = timedelta(days=2)

# Plugged in: the 1.6 detail of Occupied, and 2.0.1's Occupied.
OCCUPIED_STATUSES = frozenset(
    {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"}
)
# Energy flowing, by a 1.6 status (2.0.1 says so in its TransactionEvents' chargingState).
CHARGING_STATUSES = frozenset({"Charging"})
CHARGING_STATE = "Charging"

# The audit log's command of ChangeAvailability (csms.core.commands.CommandName).
_AVAILABILITY = "availability"
_ZERO = Decimal(0)


# --- time ---------------------------------------------------------------------------------


def _text_db(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "sqlite"


def _raw(column: Any, conn: AsyncConnection, name: str | None = None) -> Any:
    """A timestamp column as the driver gives it, for `_parser(conn)`: SQLite's naive UTC
    text with its offset appended, PostgreSQL's aware datetime. Hundreds of thousands are
    read at once: the column type's processing (and a Python function per value) would
    cost more than the query."""
    label = name or column.key
    if _text_db(conn):
        return type_coerce(column, String).concat("+00:00").label(label)
    return type_coerce(column, String).label(label)


def _parser(conn: AsyncConnection) -> Callable[[Any], datetime]:
    """Turns what `_raw` selected into an aware UTC datetime; a C function, no frame."""
    if _text_db(conn):
        return datetime.fromisoformat
    return partial(datetime.astimezone, tz=UTC)


def _clip(start: datetime, end: datetime, lo: datetime, hi: datetime) -> Interval | None:
    a, b = max(start, lo), min(end, hi)
    return Interval(a, b) if a < b else None


def _merged(spans: Iterable[Any]) -> list[Interval]:
    """The union of [start, end) pairs, in order, as Intervals (empty ones dropped)."""
    out: list[list[datetime]] = []
    for a, b in sorted(spans):  # all lists, or all tuples, of two
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return [Interval(a, b) for a, b in out]


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    return _merged((i.start, i.end) for i in intervals)


def _in(column: Any, charger_ids: Sequence[str] | None) -> list[ColumnElement[bool]]:
    return [] if charger_ids is None else [column.in_(list(charger_ids))]


# --- sessions -----------------------------------------------------------------------------


def _overlapping(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """Transactions that started in [start, end) or were running at `start`."""
    return [
        _tx.c.start_at >= start - LOOKBACK,
        _tx.c.start_at < end,
        or_(_tx.c.start_at >= start, _tx.c.stop_at.is_(None), _tx.c.stop_at > start),
    ]


async def session_facts(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
) -> list[SessionFact]:
    """Sessions that started in [start, end) or were running at `start`, oldest first,
    with the revenue of their newest CDR that is neither a credit nor credited (None: no
    such CDR yet) and the origin of their token: roaming when OCPI set how it was
    authorized (`auth_method`, set with the CdrToken: a partner's token or command),
    remote when a RemoteStart began it, else local. One statement: the transactions by
    their start-time index, their CDRs by transaction (a credit by the CDR it cancels)."""
    utc = _parser(conn)
    credits = _cdr.alias("credits")
    standing = and_(
        _cdr.c.transaction_id == _tx.c.id,
        _cdr.c.credit.is_(False),
        ~select(credits.c.seq).where(credits.c.credit_reference_id == _cdr.c.id).exists(),
    )
    stmt = (
        select(
            _tx.c.id,
            _tx.c.charge_point_id,
            _tx.c.evse_id,
            _raw(_tx.c.start_at, conn),
            _raw(_tx.c.stop_at, conn),
            _tx.c.energy_wh,
            _tx.c.id_tag_key,
            _tx.c.remote_start_id,
            _tx.c.auth_method,
            _cdr.c.currency,
            _cdr.c.total_excl_vat,
            _cdr.c.total_incl_vat,
        )
        .select_from(_tx.outerjoin(_cdr, standing))
        .where(*_overlapping(start, end), *_in(_tx.c.charge_point_id, charger_ids))
        .order_by(_tx.c.start_at, _tx.c.id, _cdr.c.seq)
    )
    rows = (await conn.execute(stmt)).all()
    facts: list[SessionFact] = []
    last = len(rows) - 1
    for index, row in enumerate(rows):
        (tx_id, cp_id, evse_id, started, stopped, energy, token, remote, auth, currency, excl,
         incl) = row  # fmt: skip
        if index < last and rows[index + 1][0] == tx_id:
            continue  # billed twice without a credit between: the newest CDR stands
        facts.append(
            SessionFact(
                tx_id,
                (cp_id, evse_id),
                utc(started),
                None if stopped is None else utc(stopped),
                energy,
                token,
                "roaming" if auth is not None else "remote" if remote is not None else "local",
                currency,
                None if excl is None else Decimal(excl),
                None if excl is None else Decimal(incl or excl),
            )
        )
    return facts


# --- status history -----------------------------------------------------------------------


_Key3 = tuple[str, int, int]  # (charger, EVSE, connector)


async def _history(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None,
    *,
    min_evse: int,
) -> Iterator[tuple[_Key3, Any, str]]:
    """Each connector's status changes in [start, end), after the last one before `start`
    (when there is one), oldest first, connector by connector: (key, time as the driver
    gives it, status). The connectors table lists the connectors; each is one seek into
    the history's (charger, EVSE, time) index, and the rows come in the index's order."""
    known = (
        select(_conn.c.charge_point_id, _conn.c.evse_id, _conn.c.connector_id)
        .where(_conn.c.evse_id >= min_evse, *_in(_conn.c.charge_point_id, charger_ids))
        .subquery("known")
    )
    columns = (
        _hist.c.charge_point_id,
        _hist.c.evse_id,
        _hist.c.connector_id,
        _raw(_hist.c.status_at, conn),
        _hist.c.status,
    )
    during = (
        select(*columns)
        .select_from(
            known.join(
                _hist,
                and_(
                    _hist.c.charge_point_id == known.c.charge_point_id,
                    _hist.c.evse_id == known.c.evse_id,
                    _hist.c.status_at >= start,
                    _hist.c.status_at < end,
                ),
            )
        )
        .where(_hist.c.connector_id == known.c.connector_id)
        .order_by(
            known.c.charge_point_id,
            known.c.evse_id,
            known.c.connector_id,
            _hist.c.status_at,
            _hist.c.id,
        )
    )
    first = {
        key: (raw, status)
        for key, (raw, status, _, _) in (
            await _last_before(conn, start, charger_ids, min_evse=min_evse)
        ).items()
    }
    rows = (await conn.execute(during)).all()
    return _with_first(first, rows)


def _with_first(
    first: dict[_Key3, tuple[Any, str]], rows: Sequence[Any]
) -> Iterator[tuple[_Key3, Any, str]]:
    """The rows of each connector after its change before the range."""
    current: _Key3 | None = None
    for cp_id, evse_id, connector_id, at, status in rows:
        key = (cp_id, evse_id, connector_id)
        if key != current:
            current = key
            found = first.pop(key, None)
            if found is not None:
                yield key, found[0], found[1]
        yield key, at, status
    for key, (at, status) in first.items():  # nothing in the range
        yield key, at, status


def _kind(status: str) -> int:
    """What a status means to uptime: 0 in service, 1 Faulted, 2 Unavailable."""
    return 1 if status == "Faulted" else 2 if status == "Unavailable" else 0


async def status_changes(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
) -> dict[EvseKey, list[StatusChange]]:
    """Each EVSE's status changes in [start, end) after the last one before `start`, oldest
    first (EVSE 0: the charger itself), where its meaning to uptime changes: into or out
    of Faulted or Unavailable (a change between two statuses in service, Preparing to
    Charging, is left out: the first of them stands). The connectors of an EVSE are read
    as one.

    Only the rows that can be such a change are read (`_outage_rows`): a month of a large
    network has hundreds of thousands of status changes and a few thousand outages."""
    return _changes_of(await _outage_rows(conn, start, end, charger_ids), start, _parser(conn))


def _changes_of(
    history: Iterable[tuple[_Key3, Any, str]], start: datetime, utc: Callable[[Any], datetime]
) -> dict[EvseKey, list[StatusChange]]:
    """`status_changes` from connector histories as `_history` yields them (each
    connector's rows together, oldest first, the one before `start` first)."""
    found: dict[EvseKey, list[StatusChange]] = defaultdict(list)
    current: _Key3 | None = None
    kind = -1
    for key, at, status in history:
        now_kind = _kind(status)
        if key != current:
            current, kind = key, -1
        if now_kind == kind:
            continue
        kind = now_kind
        found[(key[0], int(key[1]))].append(StatusChange(utc(at), status))
    out: dict[EvseKey, list[StatusChange]] = {}
    for evse, changes in found.items():
        changes.sort(key=lambda c: c.at)
        # Of several connectors, only the latest change before the range counts.
        first = max((i for i, c in enumerate(changes) if c.at < start), default=0)
        out[evse] = changes[first:]
    return out


async def _outage_rows(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None,
) -> list[tuple[_Key3, Any, str]]:
    """The rows of each connector's history that `_changes_of` can keep, in the shape and
    order `_history` gives: the last row before `start`, every Faulted or Unavailable row in
    [start, end) (a partial index holds them), and the row after each of those (and after
    the row before `start` when it is one of them), where an outage ends.

    Why that is enough: `_changes_of` keeps a connector's row when its meaning (in service,
    Faulted, Unavailable) differs from the row before it. A kept row is an outage row, or
    an in-service row after an outage row, which is read as that row's successor. A row
    left out is in service and follows one in service, so the rows kept around it are
    unchanged."""
    utc = _parser(conn)
    before = await _last_before(conn, start, charger_ids, min_evse=0)
    # Written out as the partial index's condition is: a bound parameter would not match it.
    outage = text("status_history.status IN ('Faulted', 'Unavailable')")
    columns = (
        _hist.c.charge_point_id,
        _hist.c.evse_id,
        _hist.c.connector_id,
        _raw(_hist.c.status_at, conn),
        _hist.c.status,
        _hist.c.id,
    )
    known = select(_conn.c.charge_point_id).where(
        _conn.c.charge_point_id == _hist.c.charge_point_id,
        _conn.c.evse_id == _hist.c.evse_id,
        _conn.c.connector_id == _hist.c.connector_id,
    )
    outages = (
        await conn.execute(
            select(*columns).where(
                outage,
                _hist.c.status_at >= start,
                _hist.c.status_at < end,
                *_in(_hist.c.charge_point_id, charger_ids),
                known.exists(),
            )
        )
    ).all()
    ended = [row_id for (_, status, _, row_id) in before.values() if _kind(status)]
    mark = _hist.alias("mark")
    successor = (
        select(_hist.c.id)
        .where(
            _hist.c.charge_point_id == mark.c.charge_point_id,
            _hist.c.evse_id == mark.c.evse_id,
            _hist.c.connector_id == mark.c.connector_id,
            _hist.c.status_at < end,
            tuple_(_hist.c.status_at, _hist.c.id) > tuple_(mark.c.status_at, mark.c.id),
        )
        .order_by(_hist.c.status_at, _hist.c.id)
        .limit(1)
        .correlate(mark)
        .scalar_subquery()
    )
    marked = [row_id for *_, row_id in outages] + ended
    successors: list[Any] = []
    for chunk in range(0, len(marked), 5_000):
        ids = select(successor).where(mark.c.id.in_(marked[chunk : chunk + 5_000]))
        successors += (
            await conn.execute(
                select(*columns).where(_hist.c.id.in_(ids.scalar_subquery().correlate(None)))
            )
        ).all()
    rows: dict[_Key3, dict[int, tuple[datetime, Any, str]]] = defaultdict(dict)
    for key, (raw, status, _, row_id) in before.items():
        rows[key][row_id] = (utc(raw), raw, status)
    firsts = await _first_from(conn, start, end, charger_ids)
    for cp_id, evse_id, connector_id, raw, status, row_id in [*outages, *successors, *firsts]:
        rows[(cp_id, int(evse_id), int(connector_id))][int(row_id)] = (utc(raw), raw, status)
    return [
        (key, raw, status)
        for key in sorted(rows)
        for (_, _, raw, status) in sorted(
            (at, row_id, raw, status) for row_id, (at, raw, status) in rows[key].items()
        )
    ]


async def _first_from(
    conn: AsyncConnection, start: datetime, end: datetime, charger_ids: Sequence[str] | None
) -> list[Any]:
    """Each known connector's first status change in [start, end) (a seek each): the first
    row a connector without history before `start` is known by."""
    return await _one_per_connector(
        conn,
        charger_ids,
        [_hist.c.status_at >= start, _hist.c.status_at < end],
        newest=False,
    )


async def _last_before(
    conn: AsyncConnection, start: datetime, charger_ids: Sequence[str] | None, *, min_evse: int
) -> dict[_Key3, tuple[Any, str, datetime, int]]:
    """Each known connector's last status change before `start`: (time as the driver gives
    it, status, time, row id)."""
    rows = await _one_per_connector(
        conn, charger_ids, [_hist.c.status_at < start], newest=True, min_evse=min_evse
    )
    utc = _parser(conn)
    return {
        (cp_id, int(evse_id), int(connector_id)): (raw, status, utc(raw), int(row_id))
        for cp_id, evse_id, connector_id, raw, status, row_id in rows
    }


async def _one_per_connector(
    conn: AsyncConnection,
    charger_ids: Sequence[str] | None,
    within: list[ColumnElement[bool]],
    *,
    newest: bool,
    min_evse: int | None = None,
) -> list[Any]:
    """For each known connector (of EVSE `min_evse` or above), its oldest (or `newest`)
    status change matching `within`, found by one index seek each: (charger, EVSE,
    connector, time as the driver gives it, status, row id)."""
    evses = [] if min_evse is None else [_conn.c.evse_id >= min_evse]
    known = (
        select(_conn.c.charge_point_id, _conn.c.evse_id, _conn.c.connector_id)
        .where(*evses, *_in(_conn.c.charge_point_id, charger_ids))
        .subquery("known")
    )
    order = (
        (_hist.c.status_at.desc(), _hist.c.id.desc()) if newest else (_hist.c.status_at, _hist.c.id)
    )
    one_id = (
        select(_hist.c.id)
        .where(
            _hist.c.charge_point_id == known.c.charge_point_id,
            _hist.c.evse_id == known.c.evse_id,
            _hist.c.connector_id == known.c.connector_id,
            *within,
        )
        .order_by(*order)
        .limit(1)
        .correlate(known)
        .scalar_subquery()
    )
    picked = select(one_id.label("hid")).select_from(known).subquery("picked")
    stmt = select(
        _hist.c.charge_point_id,
        _hist.c.evse_id,
        _hist.c.connector_id,
        _raw(_hist.c.status_at, conn),
        _hist.c.status,
        _hist.c.id,
    ).join(picked, picked.c.hid == _hist.c.id)
    return list((await conn.execute(stmt)).all())


def _spans_of(
    history: Iterable[tuple[_Key3, Any, str]],
    occupied: dict[EvseKey, list[list[datetime]]],
    charging: dict[EvseKey, list[list[datetime]]],
    start: datetime,
    end: datetime,
    utc: Callable[[Any], datetime],
) -> None:
    """Add each connector's occupied and charging spans to its EVSE's, in [start, end).
    Only a change into or out of either costs a timestamp's parsing (this loop sees every
    status change of the month)."""
    occupied_statuses, charging_statuses = OCCUPIED_STATUSES, CHARGING_STATUSES
    current: _Key3 | None = None
    occ: list[list[datetime]] = []
    chg: list[list[datetime]] = []
    occ_since: Any = None  # the raw time the open span began; None: none is open
    chg_since: Any = None
    for key, raw, status in history:
        if key != current:
            if occ_since is not None:
                occ.append([max(utc(occ_since), start), end])
            if chg_since is not None:
                chg.append([max(utc(chg_since), start), end])
            occ_since = chg_since = None
            current = key
            evse = (key[0], int(key[1]))
            occ, chg = occupied[evse], charging[evse]
        if status in occupied_statuses:
            if occ_since is None:
                occ_since = raw
            if status in charging_statuses:
                if chg_since is None:
                    chg_since = raw
            elif chg_since is not None:
                chg.append([max(utc(chg_since), start), utc(raw)])
                chg_since = None
        else:
            if occ_since is not None:
                occ.append([max(utc(occ_since), start), utc(raw)])
                occ_since = None
            if chg_since is not None:
                chg.append([max(utc(chg_since), start), utc(raw)])
                chg_since = None
    if occ_since is not None:
        occ.append([max(utc(occ_since), start), end])
    if chg_since is not None:
        chg.append([max(utc(chg_since), start), end])


async def evse_activity(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
    *,
    sessions: Sequence[SessionFact] | None = None,
) -> dict[EvseKey, EvseActivity]:
    """When each EVSE (>= 1) was occupied (a plugged-in status of one of its connectors, or
    a running session) and charging (1.6 Charging; 2.0.1 chargingState Charging), inside
    [start, end). EVSEs without either in the range are left out. `sessions`: what
    `session_facts` returned for the same range and chargers, which saves reading them
    again."""
    utc = _parser(conn)
    occupied: dict[EvseKey, list[list[datetime]]] = defaultdict(list)
    charging: dict[EvseKey, list[list[datetime]]] = defaultdict(list)
    history = await _history(conn, start, end, charger_ids, min_evse=1)
    _spans_of(history, occupied, charging, start, end, utc)
    spans: Iterable[tuple[int, EvseKey, datetime, datetime | None]]
    if sessions is None:
        read = await conn.execute(
            select(
                _tx.c.id,
                _tx.c.charge_point_id,
                _tx.c.evse_id,
                _raw(_tx.c.start_at, conn),
                _raw(_tx.c.stop_at, conn),
            ).where(*_overlapping(start, end), *_in(_tx.c.charge_point_id, charger_ids))
        )
        spans = (
            (tx_id, (cp_id, evse_id), utc(started), None if stopped is None else utc(stopped))
            for tx_id, cp_id, evse_id, started, stopped in read.all()
        )
    else:
        spans = ((f.transaction_id, f.evse, f.start_at, f.stop_at) for f in sessions)
    stops: dict[int, tuple[EvseKey, datetime]] = {}
    for tx_id, evse, started, stopped in spans:
        until = end if stopped is None else min(stopped, end)
        occupied[evse].append([max(started, start), until])
        stops[tx_id] = (evse, until)
    # 2.0.1: each TransactionEvent that says what the vehicle does holds until the next.
    events = (
        await conn.execute(
            select(
                _events.c.transaction_id, _raw(_events.c.timestamp, conn), _events.c.charging_state
            )
            .select_from(_tx.join(_events, _events.c.transaction_id == _tx.c.id))
            .where(
                *_overlapping(start, end),
                *_in(_tx.c.charge_point_id, charger_ids),
                _events.c.charging_state.is_not(None),
            )
        )
    ).all()
    by_tx: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for tx_id, at, charging_state in events:
        by_tx[int(tx_id)].append((utc(at), charging_state))
    for tx_id, states in by_tx.items():
        if tx_id not in stops:
            continue  # not among the sessions given
        evse, until = stops[tx_id]
        states.sort()
        for index, (at, charging_state) in enumerate(states):
            if charging_state != CHARGING_STATE:
                continue
            upto = states[index + 1][0] if index + 1 < len(states) else until
            charging[evse].append([max(at, start), min(upto, until)])
    out: dict[EvseKey, EvseActivity] = {}
    for evse in sorted({*occupied, *charging}):
        activity = EvseActivity(_merged(occupied.get(evse, ())), _merged(charging.get(evse, ())))
        if activity.occupied or activity.charging:
            out[evse] = activity
    return out


# --- uptime inputs ------------------------------------------------------------------------


async def offline_intervals(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
) -> dict[str, list[Interval]]:
    """When each charger was offline inside [start, end), from its connectivity history
    (the last change before `start` says how it began). Before its first recorded change
    a charger counts as online: history starts with this table, not with the charger."""
    utc = _parser(conn)
    chargers = (
        select(_cp.c.id.label("charge_point_id"))
        .where(*_in(_cp.c.id, charger_ids))
        .subquery("chargers")
    )
    before_id = (
        select(_links.c.id)
        .where(_links.c.charge_point_id == chargers.c.charge_point_id, _links.c.at < start)
        .order_by(_links.c.at.desc(), _links.c.id.desc())
        .limit(1)
        .correlate(chargers)
        .scalar_subquery()
    )
    last = select(before_id.label("lid")).select_from(chargers).subquery("last")
    columns = (_links.c.charge_point_id, _raw(_links.c.at, conn), _links.c.connected, _links.c.id)
    before = select(*columns).join(last, last.c.lid == _links.c.id)
    during = select(*columns).select_from(
        chargers.join(
            _links,
            and_(
                _links.c.charge_point_id == chargers.c.charge_point_id,
                _links.c.at >= start,
                _links.c.at < end,
            ),
        )
    )
    changes: dict[str, list[tuple[datetime, int, bool]]] = defaultdict(list)
    for stmt in (before, during):
        for cp_id, at, connected, row_id in (await conn.execute(stmt)).all():
            changes[cp_id].append((utc(at), int(row_id), bool(connected)))
    out: dict[str, list[Interval]] = {}
    for cp_id, found in changes.items():
        found.sort()
        spans: list[Interval] = []
        for index, (at, _, connected) in enumerate(found):
            if connected:
                continue
            until = found[index + 1][0] if index + 1 < len(found) else end
            span = _clip(at, until, start, end)
            if span is not None:
                spans.append(span)
        if spans:
            out[cp_id] = _union(spans)
    return out


async def staff_unavailable(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
) -> dict[EvseKey, list[Interval]]:
    """When staff had set a charger (EVSE 0) or an EVSE inoperative, inside [start, end):
    from each ChangeAvailability Inoperative the charger accepted until the next accepted
    Operative of the same EVSE or of the whole charger (which makes every EVSE operative)."""
    utc = _parser(conn)
    rows = (
        await conn.execute(
            select(
                _cmd.c.charge_point_id,
                _raw(func.coalesce(_cmd.c.finished_at, _cmd.c.created_at), conn, "at"),
                _cmd.c.params,
                _cmd.c.id,
            )
            .where(
                _cmd.c.command == _AVAILABILITY,
                _cmd.c.outcome == "accepted",
                _cmd.c.created_at < end,
                *_in(_cmd.c.charge_point_id, charger_ids),
            )
            .order_by(_cmd.c.charge_point_id, _cmd.c.id)
        )
    ).all()
    by_charger: dict[str, list[tuple[datetime, int, int, bool]]] = defaultdict(list)
    for cp_id, at, params, row_id in rows:
        evse = params.get("evse")
        state = params.get("state")
        if state not in ("operative", "inoperative"):
            continue
        by_charger[cp_id].append(
            (utc(at), int(row_id), int(evse) if evse is not None else 0, state == "operative")
        )
    out: dict[EvseKey, list[Interval]] = defaultdict(list)
    for cp_id, commands in by_charger.items():
        commands.sort()
        for evse_id, spans in _inoperative(commands, start, end).items():
            out[(cp_id, evse_id)] += spans
    return {key: _union(spans) for key, spans in out.items()}


def _inoperative(
    commands: Sequence[tuple[datetime, int, int, bool]], start: datetime, end: datetime
) -> dict[int, list[Interval]]:
    """One charger's inoperative time per EVSE (0: the charger) from its availability
    commands (at, id, EVSE, operative), in order."""
    out: dict[int, list[Interval]] = defaultdict(list)
    off_since: dict[int, datetime] = {}

    def close(evse_id: int, at: datetime) -> None:
        since = off_since.pop(evse_id, None)
        span = None if since is None else _clip(since, at, start, end)
        if span is not None:
            out[evse_id].append(span)

    for at, _, evse_id, operative in commands:
        if not operative:
            off_since.setdefault(evse_id, at)
        elif evse_id == 0:
            for held in list(off_since):
                close(held, at)
        else:
            close(evse_id, at)
    for held in list(off_since):
        close(held, end)
    return out


async def exclusions(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
) -> dict[EvseKey, list[Interval]]:
    """The maintenance windows (planned and excluded) inside [start, end), per EVSE they
    name (EVSE 0: the whole charger). Windows are read by charger and start; one may have
    started before the range, so those ending after its start are kept."""
    rows = (
        await conn.execute(
            select(
                _windows.c.charge_point_id,
                _windows.c.evse_id,
                _windows.c.starts_at,
                _windows.c.ends_at,
            ).where(
                _windows.c.starts_at < end,
                _windows.c.ends_at > start,
                *_in(_windows.c.charge_point_id, charger_ids),
            )
        )
    ).all()
    out: dict[EvseKey, list[Interval]] = defaultdict(list)
    for cp_id, evse_id, starts_at, ends_at in rows:
        span = _clip(starts_at, ends_at, start, end)
        if span is not None:
            out[(cp_id, 0 if evse_id is None else int(evse_id))].append(span)
    return {key: _union(spans) for key, spans in out.items()}


# --- scope and groupings ------------------------------------------------------------------


async def evses_in_scope(
    conn: AsyncConnection, charger_ids: Sequence[str] | None = None
) -> list[EvseKey]:
    """Every EVSE (>= 1) of the chargers (all when None) that has reported a status."""
    stmt = (
        select(_conn.c.charge_point_id, _conn.c.evse_id)
        .where(_conn.c.evse_id >= 1, *_in(_conn.c.charge_point_id, charger_ids))
        .distinct()
        .order_by(_conn.c.charge_point_id, _conn.c.evse_id)
    )
    return [(cp_id, int(evse_id)) for cp_id, evse_id in (await conn.execute(stmt)).all()]


async def charger_locations(
    conn: AsyncConnection, charger_ids: Sequence[str] | None = None
) -> dict[str, str]:
    """Charger -> the location it stands at (chargers without one are left out)."""
    stmt = select(_locations.c.charge_point_id, _locations.c.location_id).where(
        *_in(_locations.c.charge_point_id, charger_ids)
    )
    return {cp_id: loc for cp_id, loc in (await conn.execute(stmt)).all()}


async def charger_sites(
    conn: AsyncConnection, charger_ids: Sequence[str] | None = None
) -> dict[str, str]:
    """Charger -> the smart-charging site it is linked to (others are left out)."""
    stmt = select(_sites.c.charge_point_id, _sites.c.site_id).where(
        *_in(_sites.c.charge_point_id, charger_ids)
    )
    return {cp_id: site for cp_id, site in (await conn.execute(stmt)).all()}


@dataclass(frozen=True, slots=True)
class ScopeChargers:
    """The chargers a statistics scope names, and which of the names it was given exist."""

    chargers: frozenset[str]
    chargers_known: frozenset[str]
    locations_known: frozenset[str]
    sites_known: frozenset[str]


async def scope_chargers(
    conn: AsyncConnection,
    chargers: Sequence[str],
    locations: Sequence[str],
    sites: Sequence[str],
) -> ScopeChargers:
    """The union of `chargers`, the chargers at `locations` and those linked to `sites`."""
    found: set[str] = set()
    chargers_known: set[str] = set()
    locations_known: set[str] = set()
    sites_known: set[str] = set()
    if chargers:
        rows = await conn.execute(select(_cp.c.id).where(_cp.c.id.in_(list(chargers))))
        chargers_known = {cp_id for (cp_id,) in rows}
        found |= chargers_known
    if locations:
        rows = await conn.execute(
            select(_location_rows.c.id).where(_location_rows.c.id.in_(list(locations)))
        )
        locations_known = {loc for (loc,) in rows}
        rows = await conn.execute(
            select(_locations.c.charge_point_id).where(
                _locations.c.location_id.in_(list(locations))
            )
        )
        found |= {cp_id for (cp_id,) in rows}
    if sites:
        rows = await conn.execute(select(_site_rows.c.id).where(_site_rows.c.id.in_(list(sites))))
        sites_known = {site for (site,) in rows}
        rows = await conn.execute(
            select(_sites.c.charge_point_id).where(_sites.c.site_id.in_(list(sites)))
        )
        found |= {cp_id for (cp_id,) in rows}
    return ScopeChargers(
        frozenset(found),
        frozenset(chargers_known),
        frozenset(locations_known),
        frozenset(sites_known),
    )


# --- maintenance windows ------------------------------------------------------------------


def _to_window(row: Any) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=int(row.id),
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        kind=WindowKind(row.kind),
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
    )


async def add_window(
    conn: AsyncConnection,
    cp_id: str,
    evse_id: int | None,
    starts_at: datetime,
    ends_at: datetime,
    kind: WindowKind,
    reason: str,
    created_by: str | None,
    now: datetime,
) -> MaintenanceWindow:
    result = await conn.execute(
        insert(_windows)
        .values(
            charge_point_id=cp_id,
            evse_id=evse_id,
            starts_at=starts_at,
            ends_at=ends_at,
            kind=kind.value,
            reason=reason,
            created_by=created_by,
            created_at=now,
        )
        .returning(_windows.c.id)
    )
    found = await get_window(conn, int(result.scalar_one()))
    assert found is not None
    return found


async def get_window(conn: AsyncConnection, window_id: int) -> MaintenanceWindow | None:
    row = (await conn.execute(select(_windows).where(_windows.c.id == window_id))).first()
    return None if row is None else _to_window(row)


async def list_windows(
    conn: AsyncConnection, cp_id: str | None = None, *, limit: int
) -> tuple[list[MaintenanceWindow], int]:
    """Windows (of one charger, or all), the latest start first, at most `limit`; and how
    many there are."""
    where = [] if cp_id is None else [_windows.c.charge_point_id == cp_id]
    rows = (
        await conn.execute(
            select(_windows)
            .where(*where)
            .order_by(_windows.c.starts_at.desc(), _windows.c.id.desc())
            .limit(limit)
        )
    ).all()
    total = (
        await conn.execute(select(func.count()).select_from(_windows).where(*where))
    ).scalar_one()
    return [_to_window(r) for r in rows], int(total)


async def remove_window(conn: AsyncConnection, window_id: int) -> bool:
    result = await conn.execute(delete(_windows).where(_windows.c.id == window_id))
    return bool(result.rowcount)


# --- session totals in the database -------------------------------------------------------


def _bucket_key(conn: AsyncConnection, period: Period) -> Any:
    """The start of the UTC bucket a transaction started in, as text (SQLite) or a naive
    UTC timestamp (PostgreSQL); `_bucket_of` reads it back."""
    at = _tx.c.start_at
    if _text_db(conn):
        if period == "hour":
            return func.substr(at, 1, 13).concat(":00")
        if period == "day":
            return func.substr(at, 1, 10)
        if period == "week":
            return func.date(at, "weekday 0", "-6 days")
        return func.substr(at, 1, 7).concat("-01")
    return func.date_trunc(period, func.timezone("UTC", at))


def _bucket_of(conn: AsyncConnection, value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return cast(datetime, value).replace(tzinfo=UTC)


def _length_us(conn: AsyncConnection) -> Any:
    """A transaction's length (stop - start) in whole microseconds, exactly."""
    start, stop = _tx.c.start_at, _tx.c.stop_at
    if _text_db(conn):
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff': strftime('%s') rounds fractions, so the
        # seconds and the microseconds are read apart.
        def seconds(column: Any) -> Any:
            return cast_(func.strftime("%s", func.substr(column, 1, 19)), BigInteger)

        def micros(column: Any) -> Any:
            return cast_(func.substr(column, 21, 6), BigInteger)

        return (seconds(stop) - seconds(start)) * 1_000_000 + micros(stop) - micros(start)
    return cast_(func.extract("epoch", stop - start) * 1_000_000, BigInteger)


def _grouped(
    conn: AsyncConnection, by: GroupBy, charger_ids: Sequence[str] | None
) -> tuple[list[Any], Any, Callable[[Sequence[Any]], str]]:
    """The columns a grouping groups by, the FROM it needs, and how a row's group is named
    from those columns (csms.core.statistics.group_function's names)."""
    if by == "evse":
        return [_tx.c.charge_point_id, _tx.c.evse_id], _tx, lambda r: f"{r[0]}/{r[1]}"
    if by == "charger":
        return [_tx.c.charge_point_id], _tx, lambda r: str(r[0])
    if by == "location":
        joined = _tx.join(_locations, _locations.c.charge_point_id == _tx.c.charge_point_id)
        return [_locations.c.location_id], joined, lambda r: str(r[0])
    if by == "site":
        joined = _tx.join(_sites, _sites.c.charge_point_id == _tx.c.charge_point_id)
        return [_sites.c.site_id], joined, lambda r: str(r[0])
    return [], _tx, lambda r: "network"


# Revenue text that SQLite may sum as integers of its smallest unit: digits, a sign and a
# point, short enough that a month of sums stays inside 64 bits.
_PLAIN_MONEY = 12


async def session_totals(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    period: Period,
    by: GroupBy,
    charger_ids: Sequence[str] | None = None,
    *,
    revenue_conn: AsyncConnection | None = None,
) -> dict[tuple[str, datetime], SessionTotals]:
    """What the sessions that started in [start, end) add up to per group and (unclipped)
    bucket, summed by the database: exactly what csms.core.statistics.summarise sums from
    `session_facts` (the same transactions, the same standing CDR, the same origin), without
    a Python object per session. Two statements over the start-time index: the counts,
    energy, lengths, origins and distinct tokens; and the revenue of the standing CDRs per
    currency, summed exactly (PostgreSQL as numeric; SQLite as integers of each amount's
    smallest unit, by its number of decimals, and any amount not written plainly in
    Python)."""
    columns, source, name_of = _grouped(conn, by, charger_ids)
    bucket = _bucket_key(conn, period).label("bucket")
    where = [
        _tx.c.start_at >= start,
        _tx.c.start_at < end,
        *_in(_tx.c.charge_point_id, charger_ids),
    ]
    ended = and_(_tx.c.stop_at.is_not(None), _tx.c.stop_at >= _tx.c.start_at)
    with_energy = and_(ended, _tx.c.energy_wh.is_not(None))

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    stmt = (
        select(
            *columns,
            bucket,
            func.count(),
            func.coalesce(func.sum(_tx.c.energy_wh), 0),
            count(ended),
            func.coalesce(func.sum(case((ended, _length_us(conn)), else_=0)), 0),
            count(with_energy),
            func.coalesce(func.sum(case((with_energy, _tx.c.energy_wh), else_=0)), 0),
            count(_tx.c.auth_method.is_not(None)),
            count(and_(_tx.c.auth_method.is_(None), _tx.c.remote_start_id.is_not(None))),
            func.count(_tx.c.id_tag_key.distinct()),
        )
        .select_from(source)
        .where(*where)
        .group_by(*columns, bucket)
    )
    width = len(columns)
    out: dict[tuple[str, datetime], SessionTotals] = {}
    # The revenue's statement runs beside the counts' on a connection of its own when
    # given one (SQLite runs both without holding the GIL: a second core halves the wait).
    if revenue_conn is None:
        counted = (await conn.execute(stmt)).all()
        sums = await _revenue(conn, columns, source, bucket, where)
    else:
        counted, sums = await asyncio.gather(
            _rows(conn, stmt), _revenue(revenue_conn, columns, source, bucket, where)
        )
    for row in counted:
        (key, sessions, energy, ended_n, ended_us, ended_energy, ended_energy_wh, roaming,
         remote, tokens) = row[width:]  # fmt: skip
        cell = SessionTotals()
        cell.sessions = int(sessions)
        cell.energy_wh = int(energy)
        cell.ended = int(ended_n)
        cell.ended_time = timedelta(microseconds=int(ended_us))
        cell.ended_energy = int(ended_energy)
        cell.ended_energy_wh = int(ended_energy_wh)
        cell.tokens = int(tokens)
        cell.origins["local"] = cell.sessions - int(roaming) - int(remote)
        cell.origins["roaming"] = int(roaming)
        cell.origins["remote"] = int(remote)
        out[(name_of(row[:width]), _bucket_of(conn, key))] = cell
    for group, key, currency, e, i in sums:
        cell = out[(name_of(group), _bucket_of(conn, key))]
        cell.excl[currency] = cell.excl.get(currency, _ZERO) + e
        cell.incl[currency] = cell.incl.get(currency, _ZERO) + i
    return out


async def _rows(conn: AsyncConnection, stmt: Any) -> Sequence[Any]:
    return (await conn.execute(stmt)).all()


async def _revenue(
    conn: AsyncConnection,
    columns: list[Any],
    source: Any,
    bucket: Any,
    where: list[Any],
) -> list[tuple[Any, Any, str, Decimal, Decimal]]:
    """Each group's and bucket's revenue per currency, from the CDR that stands for each of
    its sessions (the newest that is neither a credit nor credited): (group columns, bucket
    as the database gives it, currency, excl., incl.), several rows for one of them at
    times."""
    credits = _cdr.alias("credits")
    later = _cdr.alias("later")
    later_credits = _cdr.alias("later_credits")
    standing = and_(
        _cdr.c.transaction_id == _tx.c.id,
        _cdr.c.credit.is_(False),
        ~select(credits.c.seq).where(credits.c.credit_reference_id == _cdr.c.id).exists(),
        ~select(later.c.seq)
        .where(
            later.c.transaction_id == _cdr.c.transaction_id,
            later.c.seq > _cdr.c.seq,
            later.c.credit.is_(False),
            ~select(later_credits.c.seq)
            .where(later_credits.c.credit_reference_id == later.c.id)
            .exists(),
        )
        .exists(),
    )
    excl = _cdr.c.total_excl_vat
    incl = case(
        (or_(_cdr.c.total_incl_vat.is_(None), _cdr.c.total_incl_vat == ""), excl),
        else_=_cdr.c.total_incl_vat,
    )
    joined = source.join(_cdr, standing)
    width = len(columns)
    sums: list[tuple[Any, ...]] = []
    if _text_db(conn):

        def plain(amount: Any) -> Any:
            return and_(
                amount.op("NOT GLOB", is_comparison=True)("*[^0-9.+-]*"),
                func.length(amount) <= _PLAIN_MONEY,
            )

        def places(amount: Any) -> Any:
            point = func.instr(amount, ".")
            return case((point == 0, 0), else_=func.length(amount) - point)

        both = and_(plain(excl), plain(incl))

        def units(amount: Any) -> Any:
            # Only the length guards the sum (the rows not plain are grouped apart anyway):
            # each test more is evaluated for every row.
            short = func.length(amount) <= _PLAIN_MONEY
            return func.sum(
                case((short, cast_(func.replace(amount, ".", ""), BigInteger)), else_=0)
            )

        # Amounts not written plainly are grouped apart (their sums unused) and read one by
        # one below, only when there are any.
        exact = (
            select(
                *columns,
                bucket,
                _cdr.c.currency,
                case((both, 1), else_=0).label("plain"),
                places(excl).label("pe"),
                places(incl).label("pi"),
                units(excl),
                units(incl),
            )
            .select_from(joined)
            .where(*where)
            .group_by(*columns, bucket, _cdr.c.currency, "plain", "pe", "pi")
        )
        odd_found = False
        for row in (await conn.execute(exact)).all():
            (key, currency, is_plain, pe, pi, se, si) = row[width:]
            if not is_plain:
                odd_found = True
                continue
            sums.append(
                (
                    row[:width],
                    key,
                    currency,
                    Decimal(int(se)).scaleb(-int(pe)),
                    Decimal(int(si)).scaleb(-int(pi)),
                )
            )
        odd = (
            select(*columns, bucket, _cdr.c.currency, excl, incl)
            .select_from(joined)
            .where(*where, ~both)
        )
        for row in (await conn.execute(odd)).all() if odd_found else ():
            (key, currency, e, i) = row[width:]
            sums.append((row[:width], key, currency, Decimal(e), Decimal(i)))
    else:
        stmt = (
            select(
                *columns,
                bucket,
                _cdr.c.currency,
                func.sum(cast_(excl, Numeric)),
                func.sum(cast_(incl, Numeric)),
            )
            .select_from(joined)
            .where(*where)
            .group_by(*columns, bucket, _cdr.c.currency)
        )
        for row in (await conn.execute(stmt)).all():
            (key, currency, e, i) = row[width:]
            sums.append((row[:width], key, currency, Decimal(e), Decimal(i)))
    return sums


async def session_evses(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    charger_ids: Sequence[str] | None = None,
) -> list[EvseKey]:
    """The EVSEs of the sessions `session_facts` would read (they count in their group even
    when the connectors table does not list them)."""
    stmt = (
        select(_tx.c.charge_point_id, _tx.c.evse_id)
        .where(*_overlapping(start, end), *_in(_tx.c.charge_point_id, charger_ids))
        .distinct()
    )
    return [(cp_id, int(evse_id)) for cp_id, evse_id in (await conn.execute(stmt)).all()]
