"""What the load manager reads of the chargers linked to sites: whether they are connected
and when they last booted, their running sessions, and each session's newest meter
reading (current per phase, power, energy register).

One query each for any number of chargers or sessions; nothing here runs unless a site
has chargers linked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.metering import Sample, active_power_w, register_wh
from csms.core.transactions import TransactionState
from csms.core.waiting import TimeSlice
from csms.storage.models import ChargePointRow, ConnectorRow, MeterValueRow, TransactionRow

_cp = cast(Table, ChargePointRow.__table__)
_conn = cast(Table, ConnectorRow.__table__)
_tx = cast(Table, TransactionRow.__table__)
_mv = cast(Table, MeterValueRow.__table__)

_PHASES = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}


@dataclass(frozen=True, slots=True)
class ChargerState:
    charge_point_id: str
    connected: bool
    last_boot_at: datetime | None
    evses: int  # EVSEs (1.6 connectors) it reported, at least 1


@dataclass(frozen=True, slots=True)
class RunningSession:
    transaction_id: int
    charge_point_id: str
    evse_id: int
    meter_start_wh: int | None
    ocpp_transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class LastReading:
    """A session's newest meter reading: current per phase (None: not sampled), active
    power and the energy register."""

    timestamp: datetime
    currents: tuple[float | None, float | None, float | None]
    power_w: float | None
    energy_wh: float | None


async def charger_states(
    conn: AsyncConnection,
    cp_ids: Collection[str],
    evses: Mapping[str, int],
    slicer: TimeSlice | None = None,
) -> dict[str, ChargerState]:
    """Whether each charger is connected and when it booted; `evses` (see `evse_counts`)
    says how many EVSEs each has (1 when not given). With `slicer`, the rows are made into
    records a slice at a time (the event loop serves the chargers in between)."""
    if not cp_ids:
        return {}
    found: dict[str, ChargerState] = {}
    rows = await conn.execute(
        select(_cp.c.id, _cp.c.connected, _cp.c.last_boot_at).where(_cp.c.id.in_(sorted(cp_ids)))
    )
    for r in rows:
        found[r.id] = ChargerState(r.id, bool(r.connected), r.last_boot_at, evses.get(r.id, 1))
        if slicer is not None:
            await slicer.breathe()
    return found


async def evse_counts(conn: AsyncConnection, cp_ids: Collection[str]) -> dict[str, int]:
    """How many EVSEs (1.6 connectors) each charger reported, at least 1."""
    if not cp_ids:
        return {}
    counts = dict.fromkeys(cp_ids, 1)
    rows = await conn.execute(
        select(_conn.c.charge_point_id, func.count(func.distinct(_conn.c.evse_id)))
        .where(_conn.c.charge_point_id.in_(sorted(cp_ids)), _conn.c.evse_id > 0)
        .group_by(_conn.c.charge_point_id)
    )
    for cp_id, count in rows:
        counts[cp_id] = max(1, int(count))
    return counts


async def running_sessions(
    conn: AsyncConnection, cp_ids: Collection[str], slicer: TimeSlice | None = None
) -> list[RunningSession]:
    """The active transactions of the chargers (the (charge_point_id, state) index), a
    slice at a time with `slicer`."""
    if not cp_ids:
        return []
    rows = await conn.execute(
        select(
            _tx.c.id,
            _tx.c.charge_point_id,
            _tx.c.evse_id,
            _tx.c.meter_start_wh,
            _tx.c.ocpp_transaction_id,
        )
        .where(
            _tx.c.charge_point_id.in_(sorted(cp_ids)),
            _tx.c.state == TransactionState.ACTIVE.value,
        )
        .order_by(_tx.c.id)
    )
    found: list[RunningSession] = []
    for r in rows:
        found.append(
            RunningSession(
                r.id,
                r.charge_point_id,
                r.evse_id,
                r.meter_start_wh,
                r.ocpp_transaction_id,
            )
        )
        if slicer is not None:
            await slicer.breathe()
    return found


async def last_readings(conn: AsyncConnection, tx_ids: Collection[int]) -> dict[int, LastReading]:
    """Each session's newest reading (the (transaction_id, timestamp) index)."""
    if not tx_ids:
        return {}
    newest = (
        select(_mv.c.transaction_id, func.max(_mv.c.timestamp).label("at"))
        .where(_mv.c.transaction_id.in_(sorted(tx_ids)))
        .group_by(_mv.c.transaction_id)
        .subquery()
    )
    rows = await conn.execute(
        select(_mv.c.transaction_id, _mv.c.timestamp, _mv.c.power_w, _mv.c.energy_wh, _mv.c.samples)
        .join(
            newest,
            and_(_mv.c.transaction_id == newest.c.transaction_id, _mv.c.timestamp == newest.c.at),
        )
        .order_by(_mv.c.id)
    )
    found: dict[int, LastReading] = {}
    for r in rows:
        # Rows of one timestamp (rare: two messages for one moment) merge, the later wins.
        currents: list[float | None] = [None, None, None]
        previous = found.get(r.transaction_id)
        if previous is not None:
            currents = list(previous.currents)
        for stored in _samples(r.samples):
            if stored[0] != "Current.Import" or stored[1] is None:
                continue
            phase = _PHASES.get(stored[3] or "")
            value = float(stored[1])
            if phase is None:
                # No phase given: the current of each phase it charges on.
                currents = [value if c is None else c for c in currents]
            else:
                currents[phase] = value
        found[r.transaction_id] = LastReading(
            r.timestamp,
            (currents[0], currents[1], currents[2]),
            None if r.power_w is None else float(r.power_w),
            None if r.energy_wh is None else float(r.energy_wh),
        )
    return found


def _samples(stored: Any) -> list[list[Any]]:
    return stored if isinstance(stored, list) else []


def reading_of(samples: Sequence[Sample]) -> LastReading | None:
    """The newest reading among freshly received samples (as `last_readings` makes of
    stored ones); None when they hold no current, power or energy."""
    newest = max(s.timestamp for s in samples)
    group = [s for s in samples if s.timestamp == newest]
    currents: list[float | None] = [None, None, None]
    for s in group:
        if s.measurand != "Current.Import" or s.value is None:
            continue
        phase = _PHASES.get(s.phase or "")
        if phase is None:
            currents = [s.value if c is None else c for c in currents]
        else:
            currents[phase] = s.value
    power, energy = active_power_w(group), register_wh(group)
    if power is None and energy is None and all(c is None for c in currents):
        return None
    return LastReading(newest, (currents[0], currents[1], currents[2]), power, energy)
