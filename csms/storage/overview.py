"""What the network at a glance reads (csms.core.overview): chargers and their connection,
every connector's current status, the running sessions and their newest power reading.

Takes an AsyncConnection from csms.storage.database; returns plain values. A handful of
aggregate reads over the current-state tables (no history is scanned): the power reading
of each running session comes through the (transaction_id, timestamp) index of
meter_values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.status import ConnectorStatus
from csms.core.transactions import TransactionState
from csms.storage.models import ChargePointRow, ConnectorRow, MeterValueRow, TransactionRow

_cp = cast(Table, ChargePointRow.__table__)
_conn = cast(Table, ConnectorRow.__table__)
_tx = cast(Table, TransactionRow.__table__)
_mv = cast(Table, MeterValueRow.__table__)


@dataclass(frozen=True, slots=True)
class NetworkState:
    chargers: int
    connected: int
    # (charge point id, EVSE id, status) of every connector row; EVSE 0 is the charger.
    statuses: list[tuple[str, int, ConnectorStatus]]
    charger_ids: list[str]
    sessions_running: int
    power_w: float


async def network_state(conn: AsyncConnection) -> NetworkState:
    ids = [
        (row.id, bool(row.connected))
        for row in await conn.execute(select(_cp.c.id, _cp.c.connected).order_by(_cp.c.id))
    ]
    statuses: list[tuple[str, int, ConnectorStatus]] = []
    for row in await conn.execute(select(_conn.c.charge_point_id, _conn.c.evse_id, _conn.c.status)):
        try:
            status = ConnectorStatus(row.status)
        except ValueError:
            continue  # not a status we know: counted as no report
        statuses.append((row.charge_point_id, int(row.evse_id), status))
    active = _tx.c.state == TransactionState.ACTIVE.value
    running = int((await conn.execute(select(func.count()).where(active))).scalar_one())
    return NetworkState(
        chargers=len(ids),
        connected=sum(1 for _, connected in ids if connected),
        statuses=statuses,
        charger_ids=[cp_id for cp_id, _ in ids],
        sessions_running=running,
        power_w=await _power_now(conn) if running else 0.0,
    )


async def _power_now(conn: AsyncConnection) -> float:
    """The newest active-power reading of each running session, summed (of two readings
    with one timestamp, the later stored). Per session, the (transaction_id, timestamp)
    index is read backwards from its newest reading to the first with a power value."""
    newest = (
        select(_mv.c.power_w)
        .where(_mv.c.transaction_id == _tx.c.id, _mv.c.power_w.is_not(None))
        .order_by(_mv.c.timestamp.desc(), _mv.c.id.desc())
        .limit(1)
        .correlate(_tx)
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(newest.label("power_w")).where(_tx.c.state == TransactionState.ACTIVE.value)
    )
    return sum(float(power) for power in rows.scalars() if power is not None)
