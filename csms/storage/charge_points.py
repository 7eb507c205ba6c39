"""Repository of charge points and their connectors' current status and history.

Takes an AsyncConnection from csms.storage.database; returns csms.core objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

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
    ConnectorRow,
    StatusHistoryRow,
)

_cp = cast(Table, ChargePointRow.__table__)
_conn = cast(Table, ConnectorRow.__table__)
_hist = cast(Table, StatusHistoryRow.__table__)


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
        created_at=row.created_at,
    )


async def get(conn: AsyncConnection, cp_id: str) -> ChargePoint | None:
    row = (await conn.execute(select(_cp).where(_cp.c.id == cp_id))).first()
    return None if row is None else _to_charge_point(row)


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
) -> ChargePoint:
    await conn.execute(
        insert(_cp).values(
            id=cp_id,
            registration=registration.value,
            password_hash=password_hash,
            validation=validation,
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


async def record_boot(
    conn: AsyncConnection, cp_id: str, info: BootInfo, version: str, now: datetime
) -> None:
    await conn.execute(
        update(_cp)
        .where(_cp.c.id == cp_id)
        .values(
            vendor=info.vendor,
            model=info.model,
            serial_number=info.serial_number,
            charge_box_serial=info.charge_box_serial,
            firmware_version=info.firmware_version,
            iccid=info.iccid,
            imsi=info.imsi,
            meter_type=info.meter_type,
            meter_serial=info.meter_serial,
            ocpp_version=version,
            last_boot_at=now,
            last_seen_at=now,
            updated_at=now,
        )
    )


async def touch_many(conn: AsyncConnection, seen: Sequence[tuple[str, datetime]]) -> None:
    """Record when each charger was last heard from (a periodic, batched write)."""
    if not seen:
        return
    stmt = update(_cp).where(_cp.c.id == bindparam("b_id")).values(last_seen_at=bindparam("b_seen"))
    await conn.execute(stmt, [{"b_id": cp_id, "b_seen": at} for cp_id, at in seen])


async def delete_charge_point(conn: AsyncConnection, cp_id: str) -> bool:
    await conn.execute(delete(_conn).where(_conn.c.charge_point_id == cp_id))
    result = await conn.execute(delete(_cp).where(_cp.c.id == cp_id))
    return bool(result.rowcount)


async def mark_all_disconnected(conn: AsyncConnection, now: datetime) -> None:
    await conn.execute(
        update(_cp).where(_cp.c.connected.is_(True)).values(connected=False, disconnected_at=now)
    )


_HEARTBEAT = BulkStatement(
    update(_cp)
    .where(_cp.c.id == bindparam("b_id"))
    .values(last_heartbeat_at=bindparam("b_now"), last_seen_at=bindparam("b_now"))
)


def heartbeat_later(tx: WriteTx, cp_id: str, now: datetime) -> None:
    tx.defer_bulk(_HEARTBEAT, {"b_id": cp_id, "b_now": tx.db_time(now)})


def _upsert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _connected_upsert(dialect: str) -> Insert:
    stmt = _upsert(dialect)(_cp)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[_cp.c.id],
        set_={
            name: stmt.excluded[name]
            for name in ("connected", "connected_at", "last_seen_at", "ocpp_version", "updated_at")
        },
    )


_CONNECTED = {d: _connected_upsert(d) for d in ("sqlite", "postgresql")}


def connected_later(
    tx: WriteTx, cp_id: str, version: str, registration_if_new: RegistrationStatus, now: datetime
) -> None:
    """Mark a charger connected, creating it (with `registration_if_new`) when unknown."""
    tx.defer(
        _CONNECTED[tx.dialect],
        {
            "id": cp_id,
            "registration": registration_if_new.value,
            "connected": True,
            "connected_at": now,
            "last_seen_at": now,
            "ocpp_version": version,
            "created_at": now,
            "updated_at": now,
        },
    )


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


def _status_upsert(dialect: str) -> Insert:
    stmt = _upsert(dialect)(_conn)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[_conn.c.charge_point_id, _conn.c.evse_id, _conn.c.connector_id],
        set_={name: stmt.excluded[name] for name in (*_STATUS_FIELDS, "updated_at")},
        # An older status arriving late (a charger's offline queue) goes to history only.
        where=_conn.c.status_at <= stmt.excluded.status_at,
    )


_STATUS_FIELDS = ("status", "error_code", "info", "vendor_id", "vendor_error_code", "status_at")
_STATUS = {d: _status_upsert(d) for d in ("sqlite", "postgresql")}
_HISTORY = insert(_hist)


def record_status_later(tx: WriteTx, cp_id: str, report: StatusReport, now: datetime) -> None:
    """Keep the newest status per connector (by the charger's timestamp) and the history."""
    values = {
        "charge_point_id": cp_id,
        "evse_id": report.evse_id,
        "connector_id": report.connector_id,
        "status": report.status.value,
        "error_code": report.error_code,
        "info": report.info,
        "vendor_id": report.vendor_id,
        "vendor_error_code": report.vendor_error_code,
        "status_at": report.timestamp,
    }
    tx.defer(_HISTORY, {**values, "received_at": now})
    tx.defer(_STATUS[tx.dialect], {**values, "updated_at": now})


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


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(_cp))).scalar_one())
