"""Pure model of a charging station: connectors, their status, energy meter, power and vehicle.

No I/O, no clock and no OCPP framing live here; time passes only through `Station.advance()`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "Cap",
    "Connector",
    "ConnectorStatus",
    "EvProfile",
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
#: A vehicle that states an energy need (2.0.1 NotifyEVChargingNeeds) reaches this state of
#: charge once the need is delivered, so that tapering does not slow the need down.
NEED_TARGET_SOC = 0.8
DRAW_NOISE = (0.96, 1.0)


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
class Cap:
    """What the charging profiles in force allow a connector: at most `amps` per phase, at
    most `watts`, on at most `phases` phases (numberPhases; None: not limited).

    Watts become amperes only with the phases actually used, which the station knows and the
    profiles do not (an EV that charges on one phase gets three times the current)."""

    amps: float | None = None
    watts: float | None = None
    phases: int | None = None

    def phases_used(self, available: int) -> int:
        return available if self.phases is None else max(1, min(available, self.phases))

    def amps_on(self, phases_used: int) -> float:
        """The cap per phase when `phases_used` phases carry the current."""
        limits = [math.inf if self.amps is None else self.amps]
        if self.watts is not None:
            limits.append(self.watts / (NOMINAL_VOLTAGE_V * phases_used))
        return max(0.0, min(limits))

    def shared(self, ways: int) -> Cap:
        """An equal part of this cap for each of `ways` outlets."""
        amps = None if self.amps is None else self.amps / ways
        watts = None if self.watts is None else self.watts / ways
        return Cap(amps, watts, self.phases)

    def lower(self, other: Cap | None) -> Cap:
        """The tighter of two caps, field by field (both are in force)."""
        if other is None:
            return self
        return Cap(
            _least(self.amps, other.amps),
            _least(self.watts, other.watts),
            _least_int(self.phases, other.phases),
        )


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _least_int(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Vehicle:
    """An electric vehicle plugged into a connector; `phases` it can charge on (1 or 3)."""

    capacity_wh: int
    stored_wh: float
    max_current_a: int
    phases: int = PHASES

    @property
    def soc_percent(self) -> float:
        return 100.0 * self.stored_wh / self.capacity_wh

    @property
    def full(self) -> bool:
        return self.stored_wh >= self.capacity_wh


@dataclass(frozen=True, slots=True)
class Connector:
    """One connector: what it reports and what its meter and outlet are doing.

    `phases` is how the outlet is wired (1 or 3); `current_a` is the current drawn on each
    phase in use, `cap` what the charging profiles allow now."""

    connector_id: int
    status: ConnectorStatus
    meter_wh: int
    power_w: int
    voltage_v: tuple[float, float, float]
    rated_current_a: int
    cap: Cap | None = None
    operative: bool = True
    vehicle: Vehicle | None = None
    carry_j: float = 0.0
    phases: int = PHASES
    current_a: float = 0.0
    #: Charging was suspended (SuspendedEVSE) because the cap fell to 0 A; it resumes when
    #: the cap rises again.
    capped_off: bool = False

    @property
    def phases_available(self) -> int:
        """Phases the outlet could use now: its wiring, fewer for a vehicle that takes fewer."""
        return self.phases if self.vehicle is None else min(self.phases, self.vehicle.phases)

    @property
    def phases_used(self) -> int:
        """Phases that carry current: those available, fewer when numberPhases says so."""
        return _phases_used(self.phases, self.vehicle, self.cap)

    @property
    def offered_current_a(self) -> float:
        """The most the station would deliver per phase now: rating capped by the profiles."""
        return _offered(self.rated_current_a, self.cap, self.phases_used)

    @property
    def rated_power_w(self) -> int:
        return round(self.phases * NOMINAL_VOLTAGE_V * self.rated_current_a)

    @property
    def offered_power_w(self) -> int:
        """The most the station would deliver now: rating capped by the profiles."""
        return round(self.offered_current_a * NOMINAL_VOLTAGE_V * self.phases_used)

    @property
    def limit_w(self) -> int | None:
        """The profiles' cap in watts on the phases in use (None: no cap)."""
        if self.cap is None:
            return None
        return round(self.cap.amps_on(self.phases_used) * NOMINAL_VOLTAGE_V * self.phases_used)

    @property
    def charging(self) -> bool:
        """A vehicle charges here, or would but for a cap of 0 A."""
        return self.vehicle is not None and (
            self.status is ConnectorStatus.CHARGING or self.capped_off
        )

    @property
    def idle_status(self) -> ConnectorStatus:
        """The status to fall back to when no vehicle is plugged in."""
        return ConnectorStatus.AVAILABLE if self.operative else ConnectorStatus.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Reading:
    """What the meter of one connector shows at one moment; `current_a` per phase, 0 on the
    phases not in use."""

    connector_id: int
    energy_wh: int
    power_w: int
    offered_power_w: int
    current_a: tuple[float, float, float]
    offered_current_a: float
    voltage_v: tuple[float, float, float]
    soc_percent: int | None


@dataclass(frozen=True, slots=True)
class EvProfile:
    """The vehicles that plug in: phases they charge on, their onboard charger's current
    (None: 16 or 32 A at random) and the energy they ask for (None: not stated)."""

    phases: int = PHASES
    max_current_a: int | None = None
    energy_need_wh: int | None = None


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
        phases: int = PHASES,
        ev: EvProfile | None = None,
    ) -> None:
        if connectors < 1:
            raise ValueError("a station needs at least one connector")
        if rated_current_a < 6:
            raise ValueError("rated current must be at least 6 A")
        if phases not in (1, 3):
            raise ValueError("a station is wired on 1 or 3 phases")
        self._rng = rng
        self._ev = ev or EvProfile()
        self._station_status = ConnectorStatus.AVAILABLE
        self._connectors = {
            cid: Connector(
                connector_id=cid,
                status=ConnectorStatus.AVAILABLE,
                meter_wh=rng.randint(*METER_START_RANGE_WH),
                power_w=0,
                voltage_v=self._voltages(),
                rated_current_a=rated_current_a,
                phases=phases,
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
        capped_off = conn.capped_off and status is conn.status  # announcing it keeps it
        conn = replace(conn, status=status, vehicle=vehicle, capped_off=capped_off)
        self._connectors[connector_id] = self._drawing(conn)

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

    def set_limit(self, connector_id: int, limit_w: float | None) -> None:
        """Cap the power of a connector in watts (None removes the cap)."""
        self.set_cap(connector_id, None if limit_w is None else Cap(watts=limit_w))

    def set_cap(self, connector_id: int, cap: Cap | None) -> None:
        """Cap a connector (smart charging); None removes the cap. At 0 A a charging
        connector turns SuspendedEVSE, and Charging again when the cap rises."""
        if cap is not None and any(v is not None and v < 0 for v in (cap.amps, cap.watts)):
            raise ValueError("a power limit cannot be negative")
        if cap is not None and cap.phases is not None and cap.phases < 1:
            raise ValueError("a cap needs at least one phase")
        conn = replace(self.connector(connector_id), cap=cap)
        self._connectors[connector_id] = self._drawing(_follow_cap(conn))

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on every connector: meters count, vehicles fill up."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        for cid, conn in self._connectors.items():
            self._connectors[cid] = self._advance_one(conn, seconds)

    def reading(self, connector_id: int) -> Reading:
        conn = self.connector(connector_id)
        used = conn.phases_used if conn.power_w > 0 else 0
        amps = round(conn.current_a, 1)
        current = tuple(amps if phase < used else 0.0 for phase in range(PHASES))
        return Reading(
            connector_id=connector_id,
            energy_wh=conn.meter_wh,
            power_w=conn.power_w,
            offered_power_w=conn.offered_power_w,
            current_a=(current[0], current[1], current[2]),
            offered_current_a=round(conn.offered_current_a, 1),
            voltage_v=conn.voltage_v,
            soc_percent=None if conn.vehicle is None else int(conn.vehicle.soc_percent),
        )

    def _advance_one(self, conn: Connector, seconds: float) -> Connector:
        """`conn` after `seconds`: energy counted at the power drawn so far, then the new
        draw (built in one go: this runs for every connector at every meter reading)."""
        joules = conn.power_w * seconds + conn.carry_j
        whole_wh = int(joules // JOULES_PER_WH)
        vehicle = conn.vehicle
        status = conn.status
        if vehicle is not None and conn.power_w > 0:
            stored = vehicle.stored_wh + conn.power_w * seconds / JOULES_PER_WH * CHARGE_EFFICIENCY
            vehicle = replace(vehicle, stored_wh=min(stored, float(vehicle.capacity_wh)))
            if vehicle.full and status is ConnectorStatus.CHARGING:
                status = ConnectorStatus.SUSPENDED_EV
        used = _phases_used(conn.phases, vehicle, conn.cap)
        offered = _offered(conn.rated_current_a, conn.cap, used)
        status, capped_off = _capped_status(status, conn.capped_off, offered, vehicle)
        voltages = self._voltages()
        amps, power = self._draw(status, vehicle, conn.cap, conn.rated_current_a, used, voltages)
        return Connector(
            connector_id=conn.connector_id,
            status=status,
            meter_wh=conn.meter_wh + whole_wh,
            power_w=power,
            voltage_v=voltages,
            rated_current_a=conn.rated_current_a,
            cap=conn.cap,
            operative=conn.operative,
            vehicle=vehicle,
            carry_j=joules - whole_wh * JOULES_PER_WH,
            phases=conn.phases,
            current_a=amps,
            capped_off=capped_off,
        )

    def _drawing(self, conn: Connector) -> Connector:
        """`conn` with the current and power its vehicle draws now."""
        amps, power = self._draw(
            conn.status,
            conn.vehicle,
            conn.cap,
            conn.rated_current_a,
            conn.phases_used,
            conn.voltage_v,
        )
        return replace(conn, current_a=amps, power_w=power)

    def _draw(
        self,
        status: ConnectorStatus,
        vehicle: Vehicle | None,
        cap: Cap | None,
        rated_a: int,
        used: int,
        voltages: tuple[float, float, float],
    ) -> tuple[float, int]:
        """Current per phase and power the vehicle draws now: onboard charger and rating,
        tapered near full, capped by the profiles, a little under what it may take."""
        if status is not ConnectorStatus.CHARGING or vehicle is None or vehicle.full:
            return 0.0, 0
        amps = float(min(rated_a, vehicle.max_current_a))
        soc = vehicle.soc_percent
        if soc > TAPER_FROM_SOC:
            amps *= max(0.2, 1.0 - 0.8 * (soc - TAPER_FROM_SOC) / (100.0 - TAPER_FROM_SOC))
        if cap is not None:
            amps = min(amps, cap.amps_on(used))
        amps *= self._rng.uniform(*DRAW_NOISE)
        power = sum(amps * volts for volts in voltages[:used])
        if cap is not None and cap.watts is not None and power > cap.watts:
            amps *= cap.watts / power  # a cap in W holds at the real voltages too
            power = cap.watts
        return amps, max(0, round(power))

    def _plug_in(self) -> Vehicle:
        ev = self._ev
        capacity = self._rng.choice(BATTERY_CAPACITIES_WH)
        stored = capacity * self._rng.uniform(0.10, 0.70)
        max_current = ev.max_current_a or self._rng.choice(ONBOARD_CHARGER_CURRENTS_A)
        if ev.energy_need_wh is not None:
            room = ev.energy_need_wh * CHARGE_EFFICIENCY
            fitting = [c for c in BATTERY_CAPACITIES_WH if c * NEED_TARGET_SOC >= room]
            capacity = min(fitting) if fitting else math.ceil(room / NEED_TARGET_SOC)
            stored = capacity * NEED_TARGET_SOC - room
        return Vehicle(capacity, stored, max_current, ev.phases)

    def _voltages(self) -> tuple[float, float, float]:
        return (self._volt(), self._volt(), self._volt())

    def _volt(self) -> float:
        return round(NOMINAL_VOLTAGE_V * self._rng.uniform(0.98, 1.02), 1)


def _follow_cap(conn: Connector) -> Connector:
    """Charging pauses (SuspendedEVSE) while the cap is 0 A and resumes when it rises."""
    status, capped_off = _capped_status(
        conn.status, conn.capped_off, conn.offered_current_a, conn.vehicle
    )
    if status is conn.status and capped_off == conn.capped_off:
        return conn
    return replace(conn, status=status, capped_off=capped_off)


def _capped_status(
    status: ConnectorStatus, capped_off: bool, offered_a: float, vehicle: Vehicle | None
) -> tuple[ConnectorStatus, bool]:
    if status is ConnectorStatus.CHARGING and offered_a <= 0:
        return ConnectorStatus.SUSPENDED_EVSE, True
    if capped_off and status is ConnectorStatus.SUSPENDED_EVSE and offered_a > 0:
        full = vehicle is not None and vehicle.full
        return (ConnectorStatus.SUSPENDED_EV if full else ConnectorStatus.CHARGING), False
    return status, capped_off


def _phases_used(phases: int, vehicle: Vehicle | None, cap: Cap | None) -> int:
    available = phases if vehicle is None else min(phases, vehicle.phases)
    return available if cap is None else cap.phases_used(available)


def _offered(rated_a: int, cap: Cap | None, used: int) -> float:
    return float(rated_a) if cap is None else min(float(rated_a), cap.amps_on(used))
