"""Pure model of a charging station: connectors, their status, energy meter, power and vehicle.

No I/O, no clock and no OCPP framing live here; time passes only through `Station.advance()`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "Connector",
    "ConnectorStatus",
    "Reading",
    "Station",
    "Vehicle",
]

NOMINAL_VOLTAGE_V = 230.0
PHASES = 3
JOULES_PER_WH = 3600.0
CHARGE_EFFICIENCY = 0.92
TAPER_FROM_SOC = 80.0
METER_START_RANGE_WH = (1_000_000, 5_000_000)
BATTERY_CAPACITIES_WH = (40_000, 58_000, 77_000, 100_000)
ONBOARD_CHARGER_CURRENTS_A = (16, 32)


class ConnectorStatus(StrEnum):
    """The nine connector states of OCPP 1.6; the names are the wire values."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


#: States in which a vehicle is plugged in.
OCCUPIED = frozenset(
    {
        ConnectorStatus.PREPARING,
        ConnectorStatus.CHARGING,
        ConnectorStatus.SUSPENDED_EV,
        ConnectorStatus.SUSPENDED_EVSE,
        ConnectorStatus.FINISHING,
    }
)


@dataclass(frozen=True, slots=True)
class Vehicle:
    """An electric vehicle plugged into a connector."""

    capacity_wh: int
    stored_wh: float
    max_current_a: int

    @property
    def soc_percent(self) -> float:
        return 100.0 * self.stored_wh / self.capacity_wh

    @property
    def full(self) -> bool:
        return self.stored_wh >= self.capacity_wh


@dataclass(frozen=True, slots=True)
class Connector:
    """One connector: what it reports and what its meter and outlet are doing."""

    connector_id: int
    status: ConnectorStatus
    meter_wh: int
    power_w: int
    voltage_v: tuple[float, float, float]
    rated_current_a: int
    limit_w: int | None = None
    operative: bool = True
    vehicle: Vehicle | None = None
    carry_j: float = 0.0

    @property
    def rated_power_w(self) -> int:
        return round(PHASES * NOMINAL_VOLTAGE_V * self.rated_current_a)

    @property
    def offered_power_w(self) -> int:
        """The most the station would deliver now: rating capped by the limit."""
        if self.limit_w is None:
            return self.rated_power_w
        return min(self.rated_power_w, self.limit_w)

    @property
    def idle_status(self) -> ConnectorStatus:
        """The status to fall back to when no vehicle is plugged in."""
        return ConnectorStatus.AVAILABLE if self.operative else ConnectorStatus.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Reading:
    """What the meter of one connector shows at one moment."""

    connector_id: int
    energy_wh: int
    power_w: int
    offered_power_w: int
    current_a: tuple[float, float, float]
    offered_current_a: float
    voltage_v: tuple[float, float, float]
    soc_percent: int | None


class Station:
    """A station with connectors 1..N; connector 0 is the station as a whole.

    All randomness comes from the `random.Random` given, so a seeded generator and the
    same sequence of calls give the same readings.
    """

    def __init__(
        self,
        connectors: int,
        rng: random.Random,
        *,
        rated_current_a: int = 32,
    ) -> None:
        if connectors < 1:
            raise ValueError("a station needs at least one connector")
        if rated_current_a < 6:
            raise ValueError("rated current must be at least 6 A")
        self._rng = rng
        self._station_status = ConnectorStatus.AVAILABLE
        self._connectors = {
            cid: Connector(
                connector_id=cid,
                status=ConnectorStatus.AVAILABLE,
                meter_wh=rng.randint(*METER_START_RANGE_WH),
                power_w=0,
                voltage_v=self._voltages(),
                rated_current_a=rated_current_a,
            )
            for cid in range(1, connectors + 1)
        }

    @property
    def connector_ids(self) -> tuple[int, ...]:
        return tuple(self._connectors)

    def connector(self, connector_id: int) -> Connector:
        try:
            return self._connectors[connector_id]
        except KeyError:
            raise ValueError(f"no connector {connector_id}") from None

    def has_connector(self, connector_id: int) -> bool:
        return connector_id in self._connectors

    def status(self, connector_id: int) -> ConnectorStatus:
        """Status of a connector, or of the whole station for connector 0."""
        if connector_id == 0:
            return self._station_status
        return self.connector(connector_id).status

    def set_status(self, connector_id: int, status: ConnectorStatus) -> None:
        """Record a new status; plugging in or unplugging follows from it."""
        if connector_id == 0:
            self._station_status = status
            return
        conn = self.connector(connector_id)
        vehicle = conn.vehicle
        if status in OCCUPIED and vehicle is None:
            vehicle = self._plug_in()
        elif status not in OCCUPIED:
            vehicle = None
        conn = replace(conn, status=status, vehicle=vehicle)
        self._connectors[connector_id] = replace(conn, power_w=self._draw(conn))

    def set_operative(self, connector_id: int, operative: bool) -> None:
        """Mark a connector (or all, for 0) operative; idle connectors change status at once."""
        ids = self.connector_ids if connector_id == 0 else (connector_id,)
        if connector_id == 0:
            self._station_status = (
                ConnectorStatus.AVAILABLE if operative else ConnectorStatus.UNAVAILABLE
            )
        for cid in ids:
            conn = replace(self.connector(cid), operative=operative)
            self._connectors[cid] = conn
            if conn.status not in OCCUPIED:
                self.set_status(cid, conn.idle_status)

    def set_limit(self, connector_id: int, limit_w: int | None) -> None:
        """Cap the power of a connector (smart charging); None removes the cap."""
        if limit_w is not None and limit_w < 0:
            raise ValueError("a power limit cannot be negative")
        conn = replace(self.connector(connector_id), limit_w=limit_w)
        self._connectors[connector_id] = replace(conn, power_w=self._draw(conn))

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on every connector: meters count, vehicles fill up."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        for cid, conn in self._connectors.items():
            self._connectors[cid] = self._advance_one(conn, seconds)

    def reading(self, connector_id: int) -> Reading:
        conn = self.connector(connector_id)
        current = tuple(round(conn.power_w / PHASES / v, 1) for v in conn.voltage_v)
        return Reading(
            connector_id=connector_id,
            energy_wh=conn.meter_wh,
            power_w=conn.power_w,
            offered_power_w=conn.offered_power_w,
            current_a=(current[0], current[1], current[2]),
            offered_current_a=round(conn.offered_power_w / PHASES / NOMINAL_VOLTAGE_V, 1),
            voltage_v=conn.voltage_v,
            soc_percent=None if conn.vehicle is None else int(conn.vehicle.soc_percent),
        )

    def _advance_one(self, conn: Connector, seconds: float) -> Connector:
        joules = conn.power_w * seconds + conn.carry_j
        whole_wh = int(joules // JOULES_PER_WH)
        vehicle = conn.vehicle
        status = conn.status
        if vehicle is not None and conn.power_w > 0:
            stored = vehicle.stored_wh + conn.power_w * seconds / JOULES_PER_WH * CHARGE_EFFICIENCY
            vehicle = replace(vehicle, stored_wh=min(stored, float(vehicle.capacity_wh)))
            if vehicle.full and status is ConnectorStatus.CHARGING:
                status = ConnectorStatus.SUSPENDED_EV
        moved = replace(
            conn,
            meter_wh=conn.meter_wh + whole_wh,
            carry_j=joules - whole_wh * JOULES_PER_WH,
            vehicle=vehicle,
            status=status,
            voltage_v=self._voltages(),
        )
        return replace(moved, power_w=self._draw(moved))

    def _draw(self, conn: Connector) -> int:
        """Power the vehicle draws now: onboard charger and rating, tapered, noisy, capped."""
        vehicle = conn.vehicle
        if conn.status is not ConnectorStatus.CHARGING or vehicle is None or vehicle.full:
            return 0
        current = min(conn.rated_current_a, vehicle.max_current_a)
        power = PHASES * NOMINAL_VOLTAGE_V * current * self._rng.uniform(0.96, 1.0)
        soc = vehicle.soc_percent
        if soc > TAPER_FROM_SOC:
            power *= max(0.2, 1.0 - 0.8 * (soc - TAPER_FROM_SOC) / (100.0 - TAPER_FROM_SOC))
        if conn.limit_w is not None:
            power = min(power, conn.limit_w)
        return max(0, round(power))

    def _plug_in(self) -> Vehicle:
        capacity = self._rng.choice(BATTERY_CAPACITIES_WH)
        return Vehicle(
            capacity_wh=capacity,
            stored_wh=capacity * self._rng.uniform(0.10, 0.70),
            max_current_a=self._rng.choice(ONBOARD_CHARGER_CURRENTS_A),
        )

    def _voltages(self) -> tuple[float, float, float]:
        return (self._volt(), self._volt(), self._volt())

    def _volt(self) -> float:
        return round(NOMINAL_VOLTAGE_V * self._rng.uniform(0.98, 1.02), 1)
