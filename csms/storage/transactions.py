"""Repository of transactions, their meter samples and unmatched transaction messages.

Takes an AsyncConnection; returns csms.core Transaction and Sample objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.ids import token_key
from csms.core.metering import ENERGY_REGISTER, Sample
from csms.core.transactions import Transaction, TransactionState
from csms.storage.database import BulkStatement, WriteTx
from csms.storage.models import MeterSampleRow, TransactionRow, UnmatchedMessageRow

_tx = cast(Table, TransactionRow.__table__)
_ms = cast(Table, MeterSampleRow.__table__)
_um = cast(Table, UnmatchedMessageRow.__table__)


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
        last_meter_wh=_opt_round(getattr(row, "last_register", None)),
        last_meter_at=getattr(row, "last_register_at", None),
        ocpp_version=row.ocpp_version,
    )


def _opt_round(value: float | None) -> int | None:
    return None if value is None else round(value)


def _latest_register(column: Any) -> Any:
    """The newest energy register sample of each transaction (live energy for staff)."""
    return (
        select(column)
        .where(
            (_ms.c.transaction_id == _tx.c.id)
            & (_ms.c.measurand == ENERGY_REGISTER)
            & (_ms.c.unit == "Wh")
            & _ms.c.phase.is_(None)
            & _ms.c.value.is_not(None)
        )
        .order_by(_ms.c.timestamp.desc())
        .limit(1)
        .scalar_subquery()
    )


_WITH_METER = select(
    _tx,
    _latest_register(_ms.c.value).label("last_register"),
    _latest_register(_ms.c.timestamp).label("last_register_at"),
)


async def get(conn: AsyncConnection, tx_id: int) -> Transaction | None:
    row = (await conn.execute(select(_tx).where(_tx.c.id == tx_id))).first()
    return None if row is None else _to_transaction(row)


async def find_start(
    conn: AsyncConnection,
    cp_id: str,
    connector_id: int,
    evse_id: int,
    id_tag: str,
    start_at: datetime,
) -> Transaction | None:
    """A transaction already created by the same StartTransaction (a resend)."""
    row = (
        await conn.execute(
            select(_tx).where(
                (_tx.c.charge_point_id == cp_id)
                & (_tx.c.start_at == start_at)
                & (_tx.c.evse_id == evse_id)
                & (_tx.c.connector_id == connector_id)
                & (_tx.c.id_tag_key == token_key(id_tag))
            )
        )
    ).first()
    return None if row is None else _to_transaction(row)


async def active_for_tag(conn: AsyncConnection, id_tag: str) -> list[Transaction]:
    rows = (
        await conn.execute(
            select(_tx).where(
                (_tx.c.id_tag_key == token_key(id_tag))
                & (_tx.c.state == TransactionState.ACTIVE.value)
            )
        )
    ).all()
    return [_to_transaction(r) for r in rows]


async def create(
    conn: AsyncConnection,
    *,
    cp_id: str,
    ocpp_version: str,
    evse_id: int,
    connector_id: int,
    id_tag: str | None,
    auth_status: str | None,
    start_at: datetime,
    meter_start_wh: int,
    reservation_id: int | None,
    now: datetime,
    ocpp_transaction_id: str | None = None,
) -> int:
    result = await conn.execute(
        insert(_tx)
        .values(
            charge_point_id=cp_id,
            ocpp_version=ocpp_version,
            ocpp_transaction_id=ocpp_transaction_id,
            evse_id=evse_id,
            connector_id=connector_id,
            id_tag=id_tag,
            id_tag_key=None if id_tag is None else token_key(id_tag),
            auth_status=auth_status,
            state=TransactionState.ACTIVE.value,
            start_at=start_at,
            meter_start_wh=meter_start_wh,
            reservation_id=reservation_id,
            received_at=now,
            updated_at=now,
        )
        .returning(_tx.c.id)
    )
    return int(result.scalar_one())


async def finish(
    conn: AsyncConnection,
    tx_id: int,
    *,
    stop_at: datetime,
    meter_stop_wh: int,
    energy_wh: int | None,
    flags: Sequence[str],
    stop_reason: str | None,
    stop_id_tag: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        update(_tx)
        .where(_tx.c.id == tx_id)
        .values(
            state=TransactionState.COMPLETED.value,
            stop_at=stop_at,
            meter_stop_wh=meter_stop_wh,
            energy_wh=energy_wh,
            flags=",".join(flags) or None,
            stop_reason=stop_reason,
            stop_id_tag=stop_id_tag,
            updated_at=now,
        )
    )


_SAMPLES = BulkStatement(
    insert(_ms).values(
        {
            name: bindparam(name)
            for name in (
                "transaction_id",
                "charge_point_id",
                "evse_id",
                "connector_id",
                "timestamp",
                "measurand",
                "phase",
                "location",
                "context",
                "unit",
                "value",
                "raw_value",
                "signed",
            )
        }
    )
)


def add_samples_later(
    tx: WriteTx,
    *,
    cp_id: str,
    evse_id: int,
    connector_id: int,
    transaction_id: int | None,
    samples: Sequence[Sample],
) -> None:
    times: dict[datetime, Any] = {}  # a meter value's samples share one timestamp
    for s in samples:
        at = times.get(s.timestamp)
        if at is None:
            at = times[s.timestamp] = tx.db_time(s.timestamp)
        tx.defer_bulk(
            _SAMPLES,
            {
                "transaction_id": transaction_id,
                "charge_point_id": cp_id,
                "evse_id": evse_id,
                "connector_id": connector_id,
                "timestamp": at,
                "measurand": s.measurand,
                "phase": s.phase,
                "location": s.location,
                "context": s.context,
                "unit": s.unit,
                "value": s.value,
                "raw_value": s.raw_value,
                "signed": s.signed,
            },
        )


async def register_readings(conn: AsyncConnection, tx_id: int) -> list[tuple[datetime, float]]:
    rows = (
        await conn.execute(
            select(_ms.c.timestamp, _ms.c.value).where(
                (_ms.c.transaction_id == tx_id)
                & (_ms.c.measurand == ENERGY_REGISTER)
                & (_ms.c.unit == "Wh")
                & (_ms.c.phase.is_(None))
                & (_ms.c.value.is_not(None))
            )
        )
    ).all()
    return [(r.timestamp, float(r.value)) for r in rows]


async def samples_of(conn: AsyncConnection, tx_id: int) -> list[Sample]:
    rows = (
        await conn.execute(
            select(_ms).where(_ms.c.transaction_id == tx_id).order_by(_ms.c.timestamp, _ms.c.id)
        )
    ).all()
    return [
        Sample(
            timestamp=r.timestamp,
            measurand=r.measurand,
            value=r.value,
            unit=r.unit,
            raw_value=r.raw_value,
            phase=r.phase,
            location=r.location,
            context=r.context,
            signed=bool(r.signed),
        )
        for r in rows
    ]


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


async def count_samples(conn: AsyncConnection, tx_id: int) -> int:
    return int(
        (
            await conn.execute(
                select(func.count()).select_from(_ms).where(_ms.c.transaction_id == tx_id)
            )
        ).scalar_one()
    )


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
