"""Repository of charge points and their connectors' current status and history.

Takes an AsyncConnection from csms.storage.database; returns csms.core objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.charger import (
    BootInfo,
    ChargePoint,
    ConnectorState,
    RegistrationStatus,
    StatusReport,
)
from csms.core.status import ConnectorStatus
from csms.storage.database import BulkStatement, WriteTx
from csms.storage.models import (
    ChargePointRow,
    ConnectivityRow,
    ConnectorRow,
    StatusHistoryRow,
    UtcDateTime,
)
from csms.storage.paging import Page, keyset_page, newest_page

_cp = cast(Table, ChargePointRow.__table__)
_conn = cast(Table, ConnectorRow.__table__)
_hist = cast(Table, StatusHistoryRow.__table__)
_links = cast(Table, ConnectivityRow.__table__)


def _to_charge_point(row: Any) -> ChargePoint:
    return ChargePoint(
        id=row.id,
        registration=RegistrationStatus(row.registration),
        ocpp_version=row.ocpp_version,
        vendor=row.vendor,
        model=row.model,
        serial_number=row.serial_number,
        charge_box_serial=row.charge_box_serial,
        firmware_version=row.firmware_version,
        iccid=row.iccid,
        imsi=row.imsi,
        meter_type=row.meter_type,
        meter_serial=row.meter_serial,
        password_hash=row.password_hash,
        validation=row.validation,
        connected=bool(row.connected),
        last_boot_at=row.last_boot_at,
        last_heartbeat_at=row.last_heartbeat_at,
        last_seen_at=row.last_seen_at,
        connected_at=row.connected_at,
        disconnected_at=row.disconnected_at,
        firmware_status=row.firmware_status,
        firmware_status_at=row.firmware_status_at,
        diagnostics_status=row.diagnostics_status,
        diagnostics_status_at=row.diagnostics_status_at,
        base_report_firmware=row.base_report_firmware,
        auto_registered=bool(row.auto_registered),
        created_at=row.created_at,
        security_profile=int(row.security_profile),
        node_id=row.node_id,
    )


async def get(conn: AsyncConnection, cp_id: str) -> ChargePoint | None:
    row = (await conn.execute(select(_cp).where(_cp.c.id == cp_id))).first()
    return None if row is None else _to_charge_point(row)


async def get_many(conn: AsyncConnection, cp_ids: Sequence[str]) -> dict[str, ChargePoint]:
    rows = (await conn.execute(select(_cp).where(_cp.c.id.in_(list(cp_ids))))).all()
    return {row.id: _to_charge_point(row) for row in rows}


async def list_all(conn: AsyncConnection) -> list[ChargePoint]:
    rows = (await conn.execute(select(_cp).order_by(_cp.c.id))).all()
    return [_to_charge_point(r) for r in rows]


async def create(
    conn: AsyncConnection,
    cp_id: str,
    registration: RegistrationStatus,
    now: datetime,
    *,
    password_hash: str | None = None,
    validation: str | None = None,
    security_profile: int = 1,
) -> ChargePoint:
    await conn.execute(
        insert(_cp).values(
            id=cp_id,
            registration=registration.value,
            password_hash=password_hash,
            validation=validation,
            security_profile=security_profile,
            connected=False,
            created_at=now,
            updated_at=now,
        )
    )
    created = await get(conn, cp_id)
    assert created is not None
    return created


async def update_fields(conn: AsyncConnection, cp_id: str, now: datetime, **values: Any) -> bool:
    result = await conn.execute(
        update(_cp).where(_cp.c.id == cp_id).values(updated_at=now, **values)
    )
    return bool(result.rowcount)


_BOOT_FIELDS = (
    "vendor",
    "model",
    "serial_number",
    "charge_box_serial",
    "firmware_version",
    "iccid",
    "imsi",
    "meter_type",
    "meter_serial",
    "ocpp_version",
    "last_boot_at",
)
_BOOT = BulkStatement(
    update(_cp)
    .where(_cp.c.id == bindparam("b_id"))
    .values(
        {
            **{name: bindparam(f"b_{name}") for name in _BOOT_FIELDS},
            "last_seen_at": bindparam("b_last_boot_at"),
            "updated_at": bindparam("b_last_boot_at"),
        }
    )
)


def record_boot_later(tx: WriteTx, cp_id: str, info: BootInfo, version: str, now: datetime) -> None:
    tx.defer_bulk(
        _BOOT,
        {
            "b_id": cp_id,
            "b_vendor": info.vendor,
            "b_model": info.model,
            "b_serial_number": info.serial_number,
            "b_charge_box_serial": info.charge_box_serial,
            "b_firmware_version": info.firmware_version,
            "b_iccid": info.iccid,
            "b_imsi": info.imsi,
            "b_meter_type": info.meter_type,
            "b_meter_serial": info.meter_serial,
            "b_ocpp_version": version,
            "b_last_boot_at": tx.db_time(now),
        },
        ("charge_point", cp_id),
    )


_TOUCH = BulkStatement(
    update(_cp).where(_cp.c.id == bindparam("b_id")).values(last_seen_at=bindparam("b_seen"))
)
# Rows per statement of the SQLite multi-row form (two parameters each, under 999).
_TOUCH_CHUNK = 400


async def touch_many(tx: WriteTx, seen: Sequence[tuple[str, datetime]]) -> None:
    """Record when each charger was last heard from (a periodic write for all of them).

    On SQLite one UPDATE ... FROM (VALUES ...) per few hundred chargers: an executemany
    would give up the GIL once per row and stall behind a busy event loop."""
    if not seen:
        return
    conn = await tx.connection()
    if tx.dialect != "sqlite":
        await _TOUCH.execute(conn, [{"b_id": i, "b_seen": tx.db_time(at)} for i, at in seen])
        return
    for start in range(0, len(seen), _TOUCH_CHUNK):
        chunk = seen[start : start + _TOUCH_CHUNK]
        groups = ", ".join(["(?, ?)"] * len(chunk))
        params: list[Any] = []
        for cp_id, at in chunk:
            params += (cp_id, tx.db_time(at))
        sql = (
            "UPDATE charge_points SET last_seen_at = v.column2 "  # noqa: S608 - placeholders only
            f"FROM (VALUES {groups}) AS v WHERE charge_points.id = v.column1"
        )
        await conn.exec_driver_sql(sql, tuple(params))


async def delete_charge_point(conn: AsyncConnection, cp_id: str) -> bool:
    await conn.execute(delete(_conn).where(_conn.c.charge_point_id == cp_id))
    result = await conn.execute(delete(_cp).where(_cp.c.id == cp_id))
    return bool(result.rowcount)


async def mark_all_disconnected(conn: AsyncConnection, now: datetime) -> None:
    await record_disconnects(conn, now, _cp.c.connected.is_(True))
    await conn.execute(
        update(_cp).where(_cp.c.connected.is_(True)).values(connected=False, disconnected_at=now)
    )


async def mark_node_disconnected(conn: AsyncConnection, node_id: str, now: datetime) -> int:
    """Mark disconnected the chargers `node_id` holds (it started afresh, or it died);
    how many."""
    held = (_cp.c.node_id == node_id, _cp.c.connected.is_(True))
    await record_disconnects(conn, now, *held)
    result = await conn.execute(
        update(_cp).where(*held).values(connected=False, disconnected_at=now, updated_at=now)
    )
    return int(result.rowcount or 0)


async def record_disconnects(conn: AsyncConnection, now: datetime, *where: Any) -> None:
    """A disconnect in the connectivity history for each charger `where` selects, as
    recorded by the node that held it; run before the UPDATE that marks them."""
    await conn.execute(
        insert(_links).from_select(
            ["charge_point_id", "connected", "at", "node_id"],
            select(_cp.c.id, false(), literal(now, UtcDateTime()), _cp.c.node_id).where(*where),
        )
    )


_HEARTBEAT = BulkStatement(
    update(_cp)
    .where(_cp.c.id == bindparam("b_id"))
    .values(last_heartbeat_at=bindparam("b_now"), last_seen_at=bindparam("b_now"))
)


# Only while the node recorded is the one that lost the socket: the charger may already
# have connected to another node, which recorded itself.
_DISCONNECTED = BulkStatement(
    update(_cp)
    .where(_cp.c.id == bindparam("b_id"), _cp.c.node_id == bindparam("b_node"))
    .values(
        connected=false(),
        disconnected_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
        last_seen_at=bindparam("b_seen"),
    )
)
# Its line in the connectivity history, under the same condition and only while it is
# marked connected (so that a disconnect another node or a restart recorded is not
# recorded twice). Deferred ahead of _DISCONNECTED, which it must see unapplied. An
# INSERT ... SELECT: the writer runs it as an executemany, never as multi-row VALUES.
_DISCONNECTED_HISTORY = insert(_links).from_select(
    ["charge_point_id", "connected", "at", "node_id"],
    select(_cp.c.id, false(), bindparam("h_now", type_=UtcDateTime()), _cp.c.node_id).where(
        _cp.c.id == bindparam("h_id"),
        _cp.c.node_id == bindparam("h_node"),
        _cp.c.connected.is_(True),
    ),
)


def disconnected_later(
    tx: WriteTx, cp_id: str, node_id: str, last_seen: datetime, now: datetime
) -> None:
    """Mark a charger disconnected unless another node than `node_id` holds it now, and
    say so in its connectivity history."""
    touches = ("charge_point", cp_id)
    tx.defer(_DISCONNECTED_HISTORY, {"h_id": cp_id, "h_node": node_id, "h_now": now}, touches)
    tx.defer_bulk(
        _DISCONNECTED,
        {
            "b_id": cp_id,
            "b_node": node_id,
            "b_now": tx.db_time(now),
            "b_seen": tx.db_time(last_seen),
        },
        touches,
    )


_BASE_REPORT = BulkStatement(
    update(_cp)
    .where(_cp.c.id == bindparam("b_id"))
    .values(base_report_firmware=bindparam("b_firmware"))
)


def base_report_asked_later(tx: WriteTx, cp_id: str, firmware: str) -> None:
    tx.defer_bulk(_BASE_REPORT, {"b_id": cp_id, "b_firmware": firmware}, ("charge_point", cp_id))


def heartbeat_later(tx: WriteTx, cp_id: str, now: datetime) -> None:
    tx.defer_bulk(_HEARTBEAT, {"b_id": cp_id, "b_now": tx.db_time(now)}, ("charge_point", cp_id))


def _upsert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _params(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: bindparam(name) for name in names}


_CONNECTED_NEW = (
    "id",
    "registration",
    "auto_registered",
    "connected",
    "connected_at",
    "last_seen_at",
    "ocpp_version",
    "node_id",
    "created_at",
    "updated_at",
)


def _connected_upsert(dialect: str) -> BulkStatement:
    stmt = _upsert(dialect)(_cp).values(_params(_CONNECTED_NEW))
    return BulkStatement(
        stmt.on_conflict_do_update(
            index_elements=[_cp.c.id],
            set_={
                name: stmt.excluded[name]
                for name in (
                    "connected",
                    "connected_at",
                    "last_seen_at",
                    "ocpp_version",
                    "node_id",
                    "updated_at",
                )
            },
        )
    )


_CONNECTED = {d: _connected_upsert(d) for d in ("sqlite", "postgresql")}
_CONNECTED_HISTORY = BulkStatement(
    insert(_links).values(
        charge_point_id=bindparam("h_id"),
        connected=true(),
        at=bindparam("h_at"),
        node_id=bindparam("h_node"),
    )
)


def connected_later(
    tx: WriteTx,
    cp_id: str,
    version: str,
    registration_if_new: RegistrationStatus,
    now: datetime,
    node_id: str,
) -> None:
    """Mark a charger connected to node `node_id`, creating it (with `registration_if_new`,
    as registered by itself) when unknown."""
    at = tx.db_time(now)
    touches = ("charge_point", cp_id)
    tx.defer_bulk(
        _CONNECTED[tx.dialect],
        {
            "id": cp_id,
            "registration": registration_if_new.value,
            "auto_registered": True,
            "connected": True,
            "connected_at": at,
            "last_seen_at": at,
            "ocpp_version": version,
            "node_id": node_id,
            "created_at": at,
            "updated_at": at,
        },
        touches,
    )
    # With the charger's key: its lines stay in the order of its connects and disconnects.
    tx.defer_bulk(_CONNECTED_HISTORY, {"h_id": cp_id, "h_at": at, "h_node": node_id}, touches)


# --- connectors -------------------------------------------------------------------------


def _to_connector(row: Any) -> ConnectorState:
    return ConnectorState(
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        connector_id=row.connector_id,
        status=ConnectorStatus(row.status),
        error_code=row.error_code,
        info=row.info,
        vendor_id=row.vendor_id,
        vendor_error_code=row.vendor_error_code,
        status_at=row.status_at,
        updated_at=row.updated_at,
    )


_STATUS_FIELDS = ("status", "error_code", "info", "vendor_id", "vendor_error_code", "status_at")
_STATUS_KEY = ("charge_point_id", "evse_id", "connector_id")


def _status_upsert(dialect: str) -> BulkStatement:
    stmt = _upsert(dialect)(_conn).values(_params((*_STATUS_KEY, *_STATUS_FIELDS, "updated_at")))
    return BulkStatement(
        stmt.on_conflict_do_update(
            index_elements=[_conn.c.charge_point_id, _conn.c.evse_id, _conn.c.connector_id],
            set_={name: stmt.excluded[name] for name in (*_STATUS_FIELDS, "updated_at")},
            # An older status arriving late (a charger's offline queue) goes to history only.
            where=_conn.c.status_at <= stmt.excluded.status_at,
        )
    )


_STATUS = {d: _status_upsert(d) for d in ("sqlite", "postgresql")}
_HISTORY = BulkStatement(
    insert(_hist).values(_params((*_STATUS_KEY, *_STATUS_FIELDS, "received_at")))
)


def record_status_later(tx: WriteTx, cp_id: str, report: StatusReport, now: datetime) -> None:
    """Keep the newest status per connector (by the charger's timestamp) and the history."""
    at = tx.db_time(now)
    values = {
        "charge_point_id": cp_id,
        "evse_id": report.evse_id,
        "connector_id": report.connector_id,
        "status": report.status.value,
        "error_code": report.error_code,
        "info": report.info,
        "vendor_id": report.vendor_id,
        "vendor_error_code": report.vendor_error_code,
        "status_at": tx.db_time(report.timestamp),
    }
    # The history is only appended to, by this statement alone: it needs no key.
    tx.defer_bulk(_HISTORY, {**values, "received_at": at})
    tx.defer_bulk(
        _STATUS[tx.dialect],
        {**values, "updated_at": at},
        ("connector", cp_id, report.evse_id, report.connector_id),
    )


async def connectors_of(
    conn: AsyncConnection, cp_ids: Iterable[str] | None = None
) -> list[ConnectorState]:
    stmt = select(_conn).order_by(_conn.c.charge_point_id, _conn.c.evse_id, _conn.c.connector_id)
    if cp_ids is not None:
        stmt = stmt.where(_conn.c.charge_point_id.in_(list(cp_ids)))
    return [_to_connector(r) for r in (await conn.execute(stmt)).all()]


async def status_history(
    conn: AsyncConnection, cp_id: str, limit: int = 20
) -> list[tuple[StatusReport, datetime]]:
    rows = (
        await conn.execute(
            select(_hist)
            .where(_hist.c.charge_point_id == cp_id)
            .order_by(_hist.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [
        (
            StatusReport(
                evse_id=r.evse_id,
                connector_id=r.connector_id,
                status=ConnectorStatus(r.status),
                error_code=r.error_code,
                timestamp=r.status_at,
                info=r.info,
                vendor_id=r.vendor_id,
                vendor_error_code=r.vendor_error_code,
            ),
            r.received_at,
        )
        for r in rows
    ]


async def statuses_between(
    conn: AsyncConnection, cp_id: str, evse_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, ConnectorStatus]]:
    """An EVSE's status changes from the last one before `start` up to `end`, oldest first."""
    base = select(_hist.c.status_at, _hist.c.status).where(
        _hist.c.charge_point_id == cp_id, _hist.c.evse_id == evse_id
    )
    before = (
        await conn.execute(
            base.where(_hist.c.status_at < start).order_by(_hist.c.status_at.desc()).limit(1)
        )
    ).all()
    during = (
        await conn.execute(
            base.where(_hist.c.status_at >= start, _hist.c.status_at <= end).order_by(
                _hist.c.status_at, _hist.c.id
            )
        )
    ).all()
    return [(r.status_at, ConnectorStatus(r.status)) for r in (*before, *during)]


# --- change scans (the OCPI location publisher) -----------------------------------------


async def changed_since(conn: AsyncConnection, since: datetime) -> dict[str, datetime]:
    """Chargers whose own row or a connector status changed after `since` (both times are
    written with every change), with the time of their latest change."""
    a = select(_cp.c.id.label("cp"), _cp.c.updated_at.label("at")).where(_cp.c.updated_at > since)
    b = select(_conn.c.charge_point_id, _conn.c.updated_at).where(_conn.c.updated_at > since)
    latest: dict[str, datetime] = {}
    for cp_id, at in (await conn.execute(a.union_all(b))).all():
        moment = _as_utc(at)
        if cp_id not in latest or latest[cp_id] < moment:
            latest[cp_id] = moment
    return latest


async def offline_between(conn: AsyncConnection, after: datetime, until: datetime) -> set[str]:
    """Disconnected chargers that went away in (after, until]."""
    stmt = select(_cp.c.id).where(
        _cp.c.connected.is_(False), _cp.c.disconnected_at > after, _cp.c.disconnected_at <= until
    )
    return {r[0] for r in (await conn.execute(stmt)).all()}


async def count_auto_registered(conn: AsyncConnection) -> int:
    """Charge points that registered themselves and staff have not acted on since."""
    stmt = select(func.count()).select_from(_cp).where(_cp.c.auto_registered)
    return int((await conn.execute(stmt)).scalar_one())


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(_cp))).scalar_one())


def _as_utc(value: Any) -> datetime:
    """A timestamp read through a UNION (the driver's value: SQLite gives text)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def browse(
    conn: AsyncConnection,
    *,
    registration: RegistrationStatus | None = None,
    connected: bool | None = None,
    ocpp_version: str | None = None,
    status: ConnectorStatus | None = None,
    after: str | None = None,
    limit: int,
    newest_first: bool = False,
) -> Page[ChargePoint]:
    """A page of charge points by id for staff; `status`: one of its connectors (or the
    charger itself, EVSE 0) has it."""
    conditions = []
    if registration is not None:
        conditions.append(_cp.c.registration == registration.value)
    if connected is not None:
        conditions.append(_cp.c.connected == connected)
    if ocpp_version is not None:
        conditions.append(_cp.c.ocpp_version == ocpp_version)
    if status is not None:
        conditions.append(
            select(_conn.c.charge_point_id)
            .where(_conn.c.charge_point_id == _cp.c.id, _conn.c.status == status.value)
            .exists()
        )
    if newest_first:  # the CLI: the most recently added first
        return await newest_page(
            conn,
            select(_cp),
            _cp,
            conditions,
            _cp.c.created_at,
            _cp.c.id,
            limit=limit,
            convert=_to_charge_point,
        )
    return await keyset_page(
        conn,
        select(_cp),
        _cp,
        conditions,
        _cp.c.id,
        descending=False,
        after=after,
        limit=limit,
        convert=_to_charge_point,
    )
