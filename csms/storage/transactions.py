"""Repository of transactions, their meter samples and unmatched transaction messages.

Takes an AsyncConnection; returns csms.core Transaction and Sample objects.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.ids import token_key
from csms.core.metering import MAX_READING, Sample, active_power_w, register_wh
from csms.core.transaction_updates import TransactionChanges
from csms.core.transactions import (
    ChargingState,
    Transaction,
    TransactionEvent,
    TransactionState,
)
from csms.storage.database import BulkStatement, FastSelect, WriteTx
from csms.storage.models import (
    MeterValueRow,
    TransactionEventRow,
    TransactionRow,
    UnmatchedMessageRow,
)
from csms.storage.paging import Page, keyset_page

_tx = cast(Table, TransactionRow.__table__)
_mv = cast(Table, MeterValueRow.__table__)
_um = cast(Table, UnmatchedMessageRow.__table__)
_te = cast(Table, TransactionEventRow.__table__)


def _to_transaction(row: Any) -> Transaction:
    return Transaction(
        id=row.id,
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        connector_id=row.connector_id,
        id_tag=row.id_tag,
        auth_status=row.auth_status,
        start_at=row.start_at,
        meter_start_wh=row.meter_start_wh,
        state=TransactionState(row.state),
        ocpp_transaction_id=row.ocpp_transaction_id,
        stop_at=row.stop_at,
        meter_stop_wh=row.meter_stop_wh,
        energy_wh=row.energy_wh,
        stop_reason=row.stop_reason,
        stop_id_tag=row.stop_id_tag,
        flags=tuple(f for f in (row.flags or "").split(",") if f),
        reservation_id=row.reservation_id,
        remote_start_id=row.remote_start_id,
        last_meter_wh=_opt_round(getattr(row, "last_register", None)),
        last_meter_at=getattr(row, "last_register_at", None),
        ocpp_version=row.ocpp_version,
        billing=row.billing,
        auth_method=row.auth_method,
        authorization_reference=row.authorization_reference,
        cdr_token=row.cdr_token,
        billing_attempts=row.billing_attempts,
        billing_error=row.billing_error,
        billing_retry_at=row.billing_retry_at,
        held_reason=row.held_reason,
        signature_state=row.signature_state,
        signature_problem=row.signature_problem,
    )


def _opt_round(value: float | None) -> int | None:
    return None if _unusable(value) else round(value)  # type: ignore[arg-type]


def _unusable(value: Any) -> bool:
    """A stored reading no reader can compute with: missing, not a number, non-finite or
    beyond MAX_READING (rows written before readings were bounded may hold +inf)."""
    return (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or abs(value) > MAX_READING
    )


def _value(value: Any) -> float | None:
    return None if _unusable(value) else float(value)


def _latest_register(column: Any) -> Any:
    """The newest energy register reading of each transaction (live energy for staff)."""
    return (
        select(column)
        .where((_mv.c.transaction_id == _tx.c.id) & _mv.c.energy_wh.is_not(None))
        .order_by(_mv.c.timestamp.desc())
        .limit(1)
        .scalar_subquery()
    )


_WITH_METER = select(
    _tx,
    _latest_register(_mv.c.energy_wh).label("last_register"),
    _latest_register(_mv.c.timestamp).label("last_register_at"),
)


async def get(conn: AsyncConnection, tx_id: int) -> Transaction | None:
    row = (await conn.execute(select(_tx).where(_tx.c.id == tx_id))).first()
    return None if row is None else _to_transaction(row)


# The coalesced look-ups of the hot path: statements built once with expanding parameters,
# so that SQLAlchemy neither builds nor cache-keys a statement per call.
def _many(column: Any) -> Any:
    return column.in_(bindparam(f"{column.name}_list", expanding=True))


def _pairs(first: Any, second: Any, keys: Sequence[tuple[Any, Any]]) -> Any:
    """Rows matching any of the (first, second) pairs, each through an index on both
    columns: one OR term per pair (SQLite scans the whole index for a row-value IN of
    several pairs, and a pair of IN lists would probe every combination). The statement
    for a number of pairs is built once: the count is rounded up to a power of two and
    the last pair repeated."""
    size = 1 << (len(keys) - 1).bit_length()
    cache_key = (first.name, second.name, size)
    statement = _BY_PAIRS.get(cache_key)
    if statement is None:
        statement = FastSelect(
            select(_tx).where(
                or_(
                    *(
                        (first == bindparam(f"f{i}")) & (second == bindparam(f"s{i}"))
                        for i in range(size)
                    )
                )
            )
        )
        _BY_PAIRS[cache_key] = statement
    params: dict[str, Any] = {}
    last = len(keys) - 1
    for i in range(size):
        a, b = keys[min(i, last)]
        params[f"f{i}"] = a
        params[f"s{i}"] = b
    return statement, params


_BY_PAIRS: dict[tuple[str, str, int], FastSelect] = {}


async def warm_up(dialect: Dialect, most: int) -> None:
    """Build the pair look-ups for every batch size up to `most` pairs before the first
    burst needs them (together about 0.1 s of CPU), yielding to the event loop between
    statements."""
    pairs = (
        (_tx.c.charge_point_id, _tx.c.ocpp_transaction_id),
        (_tx.c.charge_point_id, _tx.c.start_at),
    )
    for first, second in pairs:
        size = 1
        while size < most * 2:
            statement, _ = _pairs(first, second, [(None, None)] * size)
            statement.prepare(dialect)
            await asyncio.sleep(0)
            size *= 2


_ACTIVE = TransactionState.ACTIVE.value
_BY_IDS = FastSelect(select(_tx).where(_many(_tx.c.id)))
_ACTIVE_AT = FastSelect(select(_tx).where(_many(_tx.c.charge_point_id), _tx.c.state == _ACTIVE))
_HOLDERS = FastSelect(
    select(_tx.c.id, _tx.c.id_tag_key, _tx.c.charge_point_id, _tx.c.evse_id).where(
        _many(_tx.c.id_tag_key), _tx.c.state == _ACTIVE, _tx.c.auth_status == "Accepted"
    )
)
_STATES_OF = FastSelect(
    select(
        _te.c.transaction_id,
        _te.c.timestamp,
        _te.c.charging_state,
    )
    .where(_many(_te.c.transaction_id), _te.c.charging_state.is_not(None))
    .order_by(_te.c.seq_no, _te.c.id)
)
_SAMPLES_OF = FastSelect(
    select(_mv.c.transaction_id, _mv.c.timestamp, _mv.c.samples)
    .where(_many(_mv.c.transaction_id))
    .order_by(_mv.c.timestamp, _mv.c.id)
)
_READINGS_OF = FastSelect(
    select(_mv.c.transaction_id, _mv.c.timestamp, _mv.c.energy_wh).where(
        _many(_mv.c.transaction_id), _mv.c.energy_wh.is_not(None)
    )
)


async def get_many(conn: AsyncConnection, tx_ids: Sequence[int]) -> dict[int, Transaction]:
    """Transactions by id (a batch of look-ups in one query, by primary key)."""
    rows = await _BY_IDS.rows(conn, {"id_list": list(tx_ids)})
    return {row.id: _to_transaction(row) for row in rows}


async def by_ocpp_ids(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Transaction]:
    """Transactions by (charge point, 2.0.1 transactionId), through their unique index."""
    if not keys:
        return {}
    statement, params = _pairs(_tx.c.charge_point_id, _tx.c.ocpp_transaction_id, keys)
    rows = await statement.rows(conn, params)
    return {(row.charge_point_id, row.ocpp_transaction_id): _to_transaction(row) for row in rows}


async def starts_at(
    conn: AsyncConnection, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], list[Transaction]]:
    """Transactions by (charge point, start time), through (charge_point_id, start_at): what
    a resent 1.6 StartTransaction would have created."""
    if not keys:
        return {}
    statement, params = _pairs(_tx.c.charge_point_id, _tx.c.start_at, keys)
    found: dict[tuple[str, datetime], list[Transaction]] = {}
    for row in await statement.rows(conn, params):
        tx = _to_transaction(row)
        found.setdefault((tx.charge_point_id, tx.start_at), []).append(tx)
    return found


async def active_on_evses(
    conn: AsyncConnection, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], Transaction]:
    """The newest active transaction on each (charge point, EVSE). (Sorted here: ordering
    in SQL would walk the chargers' whole history by start time.)"""
    params = {"charge_point_id_list": sorted({cp for cp, _ in keys})}
    wanted = set(keys)
    found: dict[tuple[str, int], Transaction] = {}
    for row in await _ACTIVE_AT.rows(conn, params):
        key = (row.charge_point_id, row.evse_id)
        if key in wanted and (key not in found or found[key].start_at <= row.start_at):
            found[key] = _to_transaction(row)
    return found


async def holders(
    conn: AsyncConnection, tag_keys: Sequence[str]
) -> dict[str, dict[int, tuple[str, int]]]:
    """Per token key: its running transactions that were accepted (the ones that count
    against its limit of concurrent transactions), as id -> (charge point, EVSE). One look-up
    in the (id_tag_key, state) index."""
    found: dict[str, dict[int, tuple[str, int]]] = {key: {} for key in tag_keys}
    for row in await _HOLDERS.rows(conn, {"id_tag_key_list": list(tag_keys)}):
        found[row.id_tag_key][row.id] = (row.charge_point_id, row.evse_id)
    return found


async def readings_of(
    conn: AsyncConnection, tx_ids: Sequence[int]
) -> dict[int, list[tuple[datetime, float]]]:
    """The energy register readings of several transactions (the (transaction_id,
    timestamp) index)."""
    found: dict[int, list[tuple[datetime, float]]] = {tx_id: [] for tx_id in tx_ids}
    rows = await _READINGS_OF.rows(conn, {"transaction_id_list": list(tx_ids)})
    for row in rows:
        if not _unusable(row.energy_wh):
            found[row.transaction_id].append((row.timestamp, float(row.energy_wh)))
    return found


class TransactionIds:
    """Ids for new transactions, handed out before their row is written, so that the row
    can go with the group commit's bulk statements and the charger's answer needs no trip
    to the database.

    Only the transaction service of the process serving chargers creates transactions: on
    SQLite the next id counts on from the largest stored one (read once); on PostgreSQL ids
    come from the table's own sequence, a block at a time, so several processes never
    collide. `resync()` after a failed write makes the next call read again.
    """

    BLOCK = 100

    def __init__(self) -> None:
        self._next: int | None = None
        self._synced = False
        self._free: list[int] = []

    def resync(self) -> None:
        """Read the largest id again before the next one (ids never go back: those handed
        out meanwhile may still be on their way to the database)."""
        self._synced = False

    def take_now(self) -> int | None:
        """The next id if it needs no database, else None (call `take`)."""
        if self._free:
            return self._free.pop()
        if self._synced and self._next is not None:
            taken, self._next = self._next, self._next + 1
            return taken
        return None

    async def take(self, conn: AsyncConnection) -> int:
        if conn.dialect.name == "postgresql":
            if not self._free:
                rows = await conn.execute(
                    select(
                        func.nextval(func.pg_get_serial_sequence("transactions", "id"))
                    ).select_from(func.generate_series(1, self.BLOCK))
                )
                self._free = sorted((int(r[0]) for r in rows), reverse=True)
            return self._free.pop()
        if not self._synced:
            largest = (await conn.execute(select(func.max(_tx.c.id)))).scalar_one()
            self._next = max(int(largest or 0) + 1, self._next or 0)
            self._synced = True
        taken = self.take_now()
        assert taken is not None
        return taken


async def find_by_ocpp_id(
    conn: AsyncConnection, cp_id: str, ocpp_transaction_id: str
) -> Transaction | None:
    row = (
        await conn.execute(
            select(_tx).where(
                (_tx.c.charge_point_id == cp_id)
                & (_tx.c.ocpp_transaction_id == ocpp_transaction_id)
            )
        )
    ).first()
    return None if row is None else _to_transaction(row)


async def update_fields(conn: AsyncConnection, tx_id: int, now: datetime, **values: Any) -> None:
    if "flags" in values and not isinstance(values["flags"], str | None):
        values["flags"] = ",".join(values["flags"]) or None
    await conn.execute(update(_tx).where(_tx.c.id == tx_id).values(updated_at=now, **values))


async def event_seen(conn: AsyncConnection, tx_id: int, seq_no: int) -> bool:
    row = (
        await conn.execute(
            select(_te.c.id).where((_te.c.transaction_id == tx_id) & (_te.c.seq_no == seq_no))
        )
    ).first()
    return row is not None


def _event_insert(dialect: str) -> BulkStatement:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return BulkStatement(
        insert_(_te)
        .values({name: bindparam(name) for name in _EVENT_COLUMNS})
        .on_conflict_do_nothing(index_elements=[_te.c.transaction_id, _te.c.seq_no])
    )


_EVENT_COLUMNS = (
    "transaction_id",
    "charge_point_id",
    "ocpp_transaction_id",
    "seq_no",
    "event_type",
    "trigger_reason",
    "timestamp",
    "offline",
    "charging_state",
    "payload",
    "received_at",
)
_EVENTS = {d: _event_insert(d) for d in ("sqlite", "postgresql")}


def record_event_later(
    tx: WriteTx,
    *,
    transaction_id: int,
    cp_id: str,
    event: TransactionEvent,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """Keep an event in the log (bulk, with the batch); a repeated seqNo is ignored. No
    `touches` key: the only deferred statement on the log, which it only appends to."""
    tx.defer_bulk(
        _EVENTS[tx.dialect],
        {
            "transaction_id": transaction_id,
            "charge_point_id": cp_id,
            "ocpp_transaction_id": event.ocpp_transaction_id,
            "seq_no": event.seq_no,
            "event_type": event.event_type.value,
            "trigger_reason": event.trigger_reason,
            "timestamp": tx.db_time(event.timestamp),
            "offline": event.offline,
            "charging_state": None if event.charging_state is None else event.charging_state.value,
            "payload": orjson.dumps(payload).decode(),
            "received_at": tx.db_time(now),
        },
    )


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq_no: int
    event_type: str
    trigger_reason: str
    timestamp: datetime
    offline: bool
    payload: dict[str, Any]


async def events_of(conn: AsyncConnection, tx_id: int) -> list[StoredEvent]:
    rows = (
        await conn.execute(
            select(_te).where(_te.c.transaction_id == tx_id).order_by(_te.c.seq_no, _te.c.id)
        )
    ).all()
    return [
        StoredEvent(
            r.seq_no, r.event_type, r.trigger_reason, r.timestamp, bool(r.offline), r.payload
        )
        for r in rows
    ]


async def charging_states_of(
    conn: AsyncConnection, tx_ids: Sequence[int]
) -> dict[int, list[tuple[datetime, ChargingState]]]:
    """The charging state each event of these transactions reported, with its time, in
    event order (events without one left out)."""
    found: dict[int, list[tuple[datetime, ChargingState]]] = {tx_id: [] for tx_id in tx_ids}
    rows = await _STATES_OF.rows(conn, {"transaction_id_list": list(tx_ids)})
    for r in rows:
        found[r.transaction_id].append((r.timestamp, ChargingState(r.charging_state)))
    return found


async def seq_nos_of(conn: AsyncConnection, tx_id: int) -> set[int]:
    rows = (await conn.execute(select(_te.c.seq_no).where(_te.c.transaction_id == tx_id))).all()
    return {r.seq_no for r in rows}


async def active_on_evse(conn: AsyncConnection, cp_id: str, evse_id: int) -> Transaction | None:
    """The newest active transaction on the EVSE."""
    return (await active_on_evses(conn, [(cp_id, evse_id)])).get((cp_id, evse_id))


_INSERT_COLUMNS = (
    "id",
    "charge_point_id",
    "ocpp_version",
    "ocpp_transaction_id",
    "evse_id",
    "connector_id",
    "id_tag",
    "id_tag_key",
    "auth_status",
    "state",
    "start_at",
    "meter_start_wh",
    "reservation_id",
    "remote_start_id",
    "auth_method",
    "authorization_reference",
    "cdr_token",
    "flags",
    "received_at",
    "updated_at",
)
_INSERT = BulkStatement(insert(_tx).values({name: bindparam(name) for name in _INSERT_COLUMNS}))


def insert_later(w: WriteTx, tx: Transaction, now: datetime) -> None:
    """Write a new running transaction (id from TransactionIds) with the batch's bulk
    statements: no trip to the database of its own."""
    w.defer_bulk(
        _INSERT,
        {
            "id": tx.id,
            "charge_point_id": tx.charge_point_id,
            "ocpp_version": tx.ocpp_version,
            "ocpp_transaction_id": tx.ocpp_transaction_id,
            "evse_id": tx.evse_id,
            "connector_id": tx.connector_id,
            "id_tag": tx.id_tag,
            "id_tag_key": None if tx.id_tag is None else token_key(tx.id_tag),
            "auth_status": tx.auth_status,
            "state": TransactionState.ACTIVE.value,
            "start_at": w.db_time(tx.start_at),
            "meter_start_wh": tx.meter_start_wh,
            "reservation_id": tx.reservation_id,
            "remote_start_id": tx.remote_start_id,
            "auth_method": tx.auth_method,
            "authorization_reference": tx.authorization_reference,
            "cdr_token": None if tx.cdr_token is None else orjson.dumps(tx.cdr_token).decode(),
            "flags": ",".join(tx.flags) or None,
            "received_at": w.db_time(now),
            "updated_at": w.db_time(now),
        },
        ("transaction", tx.id),
    )


_FINISH = update(_tx).where(_tx.c.id == bindparam("b_id"))


def update_later(w: WriteTx, tx_id: int, now: datetime, **values: Any) -> None:
    """`update_fields`, merged with the same update of other units of the batch."""
    if "flags" in values and not isinstance(values["flags"], str | None):
        values["flags"] = ",".join(values["flags"]) or None
    names = tuple(sorted(values))
    statement = _UPDATES.get(names)
    if statement is None:
        statement = _FINISH.values(
            updated_at=bindparam("b_updated_at"), **{n: bindparam(f"b_{n}") for n in names}
        )
        _UPDATES[names] = statement
    w.defer(
        statement,
        {"b_id": tx_id, "b_updated_at": now, **{f"b_{n}": v for n, v in values.items()}},
        ("transaction", tx_id),
    )


_UPDATES: dict[tuple[str, ...], Any] = {}


def _columns(changes: TransactionChanges) -> dict[str, Any]:
    """The columns and values of a change set (the unchanged ones left out)."""
    values: dict[str, Any] = {}
    for name in _CHANGED_COLUMNS:
        value = getattr(changes, name)
        if value is not None:
            values[name] = value
    if changes.id_tag is not None:
        values["id_tag_key"] = token_key(changes.id_tag)
    if changes.billing is not None:
        values["billing"] = changes.billing.value
    if changes.state is not None:
        values["state"] = changes.state.value
    if changes.roaming is not None:
        grant = changes.roaming
        values["auth_method"] = grant.method.value
        values["authorization_reference"] = grant.authorization_reference
        values["cdr_token"] = dict(grant.cdr_token)
    if changes.energy is not None:
        values["energy_wh"] = changes.energy.energy_wh
    return values


# TransactionChanges fields stored as they are, under their own name.
_CHANGED_COLUMNS = (
    "start_at",
    "meter_start_wh",
    "id_tag",
    "auth_status",
    "evse_id",
    "connector_id",
    "remote_start_id",
    "reservation_id",
    "flags",
    "stop_at",
    "stop_reason",
    "meter_stop_wh",
    "stop_id_tag",
)


async def apply(
    conn: AsyncConnection, tx_id: int, now: datetime, changes: TransactionChanges
) -> None:
    """Write a change set now."""
    await update_fields(conn, tx_id, now, **_columns(changes))


def apply_later(w: WriteTx, tx_id: int, now: datetime, changes: TransactionChanges) -> None:
    """Write a change set with the batch (merged with the same update of other units)."""
    update_later(w, tx_id, now, **_columns(changes))


_READINGS = BulkStatement(
    insert(_mv).values(
        {
            name: bindparam(name)
            for name in (
                "transaction_id",
                "charge_point_id",
                "evse_id",
                "connector_id",
                "timestamp",
                "energy_wh",
                "power_w",
                "samples",
            )
        }
    )
)


def _encode(samples: list[Sample]) -> str:
    return orjson.dumps(
        [
            [s.measurand, s.value, s.unit, s.phase, s.location, s.context, s.raw_value, s.signed]
            for s in samples
        ]
    ).decode()


def _decode(timestamp: datetime, stored: list[list[Any]]) -> list[Sample]:
    return [
        Sample(
            timestamp=timestamp,
            measurand=m,
            value=_value(v),
            unit=u,
            raw_value=raw,
            phase=p,
            location=loc,
            context=c,
            signed=bool(signed),
        )
        for m, v, u, p, loc, c, raw, signed in stored
    ]


def _readings(samples: Sequence[Sample]) -> dict[datetime, list[Sample]]:
    """Samples grouped into readings (one per timestamp), as they are stored."""
    readings: dict[datetime, list[Sample]] = {}
    for s in samples:
        readings.setdefault(s.timestamp, []).append(s)
    return readings


def register_points(samples: Sequence[Sample]) -> list[tuple[datetime, float]]:
    """What `register_readings` will return for these samples once they are stored."""
    points = []
    for at, group in _readings(samples).items():
        energy = register_wh(group)
        if energy is not None:
            points.append((at.astimezone(UTC), float(energy)))
    return points


def add_samples_later(
    tx: WriteTx,
    *,
    cp_id: str,
    evse_id: int,
    connector_id: int,
    transaction_id: int | None,
    samples: Sequence[Sample],
) -> None:
    """One row per reading (samples sharing a timestamp). No `touches` key: readings are
    only appended to, by this deferred statement alone."""
    for at, group in _readings(samples).items():
        tx.defer_bulk(
            _READINGS,
            {
                "transaction_id": transaction_id,
                "charge_point_id": cp_id,
                "evse_id": evse_id,
                "connector_id": connector_id,
                "timestamp": tx.db_time(at),
                "energy_wh": register_wh(group),
                "power_w": active_power_w(group),
                "samples": _encode(group),
            },
        )


async def register_readings(conn: AsyncConnection, tx_id: int) -> list[tuple[datetime, float]]:
    rows = (
        await conn.execute(
            select(_mv.c.timestamp, _mv.c.energy_wh).where(
                (_mv.c.transaction_id == tx_id) & _mv.c.energy_wh.is_not(None)
            )
        )
    ).all()
    return [(r.timestamp, float(r.energy_wh)) for r in rows if not _unusable(r.energy_wh)]


async def samples_of(conn: AsyncConnection, tx_id: int) -> list[Sample]:
    rows = (
        await conn.execute(
            select(_mv.c.timestamp, _mv.c.samples)
            .where(_mv.c.transaction_id == tx_id)
            .order_by(_mv.c.timestamp, _mv.c.id)
        )
    ).all()
    return [sample for r in rows for sample in _decode(r.timestamp, r.samples)]


# A sampled value as pricing reads it: (timestamp, measurand, value normalised, phase).
Value = tuple[datetime, str, float | None, str | None]


@dataclass(frozen=True, slots=True)
class Metered:
    """A transaction's meter data for pricing: every sampled value (light tuples, not
    Samples: a session has hundreds). Signed values are csms.storage.signed_values'."""

    values: list[Value]


async def metered_of(conn: AsyncConnection, tx_ids: Sequence[int]) -> dict[int, Metered]:
    """The meter data of several transactions in one query, in time order."""
    found = {tx_id: Metered([]) for tx_id in tx_ids}
    rows = await _SAMPLES_OF.rows(conn, {"transaction_id_list": list(tx_ids)})
    for r in rows:
        at, metered = r.timestamp, found[r.transaction_id]
        values = metered.values
        for stored in r.samples:
            value = stored[1]
            if value is not None and not -MAX_READING <= value <= MAX_READING:
                value = None  # NaN, infinite or absurd (rows from before the bound)
            values.append((at, stored[0], value, stored[3]))
    return found


async def get_with_meter(conn: AsyncConnection, tx_id: int) -> Transaction | None:
    """A transaction with its newest register reading (for staff views)."""
    row = (await conn.execute(_WITH_METER.where(_tx.c.id == tx_id))).first()
    return None if row is None else _to_transaction(row)


async def list_transactions(
    conn: AsyncConnection,
    *,
    active_only: bool = False,
    cp_id: str | None = None,
    limit: int | None = None,
) -> list[Transaction]:
    stmt = _WITH_METER.order_by(_tx.c.id.desc())
    if active_only:
        stmt = stmt.where(_tx.c.state == TransactionState.ACTIVE.value)
    if cp_id is not None:
        stmt = stmt.where(_tx.c.charge_point_id == cp_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_to_transaction(r) for r in (await conn.execute(stmt)).all()]


async def count_active(conn: AsyncConnection) -> int:
    stmt = select(func.count()).where(_tx.c.state == TransactionState.ACTIVE.value)
    return int((await conn.execute(stmt)).scalar_one())


# --- messages about transactions we do not know ----------------------------------------


async def record_unmatched(
    conn: AsyncConnection,
    cp_id: str,
    action: str,
    ocpp_transaction_id: str | None,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    await conn.execute(
        insert(_um).values(
            charge_point_id=cp_id,
            action=action,
            ocpp_transaction_id=ocpp_transaction_id,
            payload=payload,
            received_at=now,
        )
    )


async def count_unmatched(conn: AsyncConnection, cp_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(_um)
    if cp_id is not None:
        stmt = stmt.where(_um.c.charge_point_id == cp_id)
    return int((await conn.execute(stmt)).scalar_one())


async def list_unmatched(
    conn: AsyncConnection, cp_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    stmt = select(_um).order_by(_um.c.id.desc()).limit(limit)
    if cp_id is not None:
        stmt = stmt.where(_um.c.charge_point_id == cp_id)
    return [
        {
            "id": r.id,
            "charge_point_id": r.charge_point_id,
            "action": r.action,
            "transaction_id": r.ocpp_transaction_id,
            "payload": r.payload,
            "received_at": r.received_at,
        }
        for r in (await conn.execute(stmt)).all()
    ]


async def browse(
    conn: AsyncConnection,
    *,
    cp_id: str | None = None,
    state: TransactionState | None = None,
    tag_key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    billing: str | None = None,
    after: int | None = None,
    limit: int,
) -> Page[Transaction]:
    """A page of transactions for staff, newest first (by id), with the newest register
    reading of each; `since` (inclusive) and `until` (exclusive) bound the start;
    `tag_key`: the token_key of the id tag that started it."""
    conditions = []
    if cp_id is not None:
        conditions.append(_tx.c.charge_point_id == cp_id)
    if state is not None:
        conditions.append(_tx.c.state == state.value)
    if tag_key is not None:
        conditions.append(_tx.c.id_tag_key == tag_key)
    if since is not None:
        conditions.append(_tx.c.start_at >= since)
    if until is not None:
        conditions.append(_tx.c.start_at < until)
    if billing is not None:
        conditions.append(_tx.c.billing == billing)
    return await keyset_page(
        conn,
        _WITH_METER,
        _tx,
        conditions,
        _tx.c.id,
        descending=True,
        after=after,
        limit=limit,
        convert=_to_transaction,
    )
