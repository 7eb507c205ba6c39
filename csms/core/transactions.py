"""Transactions: session energy from meter start/stop, cross-checked with register samples.

A meter that runs backwards, or a lifetime register reported as the start value, flags the
transaction instead of producing a bill; storage of transactions lives in csms.storage.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from csms.core.metering import ENERGY_REGISTER, Sample, SignedMeterValue

# Above this, a charging session is physically implausible (ultra-fast DC chargers top out
# around 400 kW); used to spot lifetime registers reported as session energy.
MAX_PLAUSIBLE_POWER_W = 450_000
# Slack for rounding and meters that report in coarse steps.
TOLERANCE_WH = 100


class TransactionState(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


class BillingState(StrEnum):
    """Where a finished transaction stands with its CDR."""

    PENDING = "pending"  # ended, its CDR not built yet (or its last attempt failed)
    BILLED = "billed"  # a CDR exists
    # No CDR until staff resolve it: flagged meter data, a credited CDR, or a CDR that
    # could not be built after several attempts (the transaction's held_reason says which).
    HELD = "held"
    VOID = "void"  # staff decided it is not billed


class SignatureState(StrEnum):
    """What billing found of a transaction's signed meter values (Eichrecht); None: the
    transaction has no signed values and its meter no key, nothing was checked."""

    VERIFIED = "verified"  # every rule held: billed, its CDR carries the signed data
    FAILED = "failed"  # a rule failed: held for staff (signature_problem says which)
    RELEASED = "released"  # staff released it after a failure: billed without the check


class EnergyFlag(StrEnum):
    NO_METER_READINGS = "no_meter_readings"
    METER_BACKWARDS = "meter_backwards"
    START_LOOKS_LIKE_ZERO_RESET = "meter_start_not_register"
    IMPLAUSIBLE_ENERGY = "implausible_energy"
    SAMPLES_OUTSIDE_RANGE = "samples_outside_range"


class InputFlag(StrEnum):
    """What a charger sent about a transaction that the CSMS could not take as sent: it was
    stored in a safe form (see README, timebounds) and the transaction waits for staff."""

    # A start, stop, event or reading time outside the plausible window (ocpp.earliest_
    # timestamp, ocpp.max_clock_ahead): the time of receipt was stored instead.
    IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
    # A reading that is not a usable number (NaN, infinite, beyond the register bound, an
    # absurd multiplier): stored as text without a value.
    UNUSABLE_READING = "unusable_reading"
    # A 1.6 meterStart or meterStop outside 0 .. MAX_REGISTER_WH: stored as unknown.
    UNUSABLE_REGISTER = "unusable_register"


_ENERGY_FLAGS = frozenset(f.value for f in EnergyFlag)


def flagged(flags: tuple[str, ...], *new: InputFlag) -> tuple[str, ...]:
    """`flags` with `new` added (each once, in order)."""
    return tuple(dict.fromkeys([*flags, *(f.value for f in new)]))


def with_energy(flags: tuple[str, ...], energy: EnergyResult) -> tuple[str, ...]:
    """The flags of a transaction whose energy was (re)computed: its earlier energy flags
    are replaced by `energy`'s, the others (InputFlag) stay."""
    kept = [f for f in flags if f not in _ENERGY_FLAGS]
    return tuple(dict.fromkeys([*kept, *(f.value for f in energy.flags)]))


@dataclass(frozen=True, slots=True)
class EnergyResult:
    energy_wh: int | None
    flags: tuple[EnergyFlag, ...] = ()

    @property
    def billable(self) -> bool:
        return self.energy_wh is not None and not self.flags


@dataclass(frozen=True, slots=True)
class Transaction:
    id: int
    charge_point_id: str
    evse_id: int
    connector_id: int
    id_tag: str | None
    auth_status: str | None
    start_at: datetime
    meter_start_wh: int | None
    state: TransactionState
    ocpp_transaction_id: str | None = None
    stop_at: datetime | None = None
    meter_stop_wh: int | None = None
    energy_wh: int | None = None
    stop_reason: str | None = None
    stop_id_tag: str | None = None
    flags: tuple[str, ...] = ()
    reservation_id: int | None = None
    remote_start_id: int | None = None
    last_meter_wh: int | None = None
    last_meter_at: datetime | None = None
    ocpp_version: str | None = None
    billing: str | None = None  # see BillingState
    # Roaming (another party's token): OCPI AuthMethod, the eMSP's authorization reference
    # and the token as a CdrToken, as decided when the token was authorized.
    auth_method: str | None = None
    authorization_reference: str | None = None
    cdr_token: Mapping[str, str] | None = None
    # Failed attempts at its CDR, the last one's error and when to try again; why it is
    # held (see BillingState.HELD).
    billing_attempts: int = 0
    billing_error: str | None = None
    billing_retry_at: datetime | None = None
    held_reason: str | None = None
    # Eichrecht: see SignatureState; the problem found (`<problem>: <detail>`), kept after
    # a release so that staff can see what was released.
    signature_state: str | None = None
    signature_problem: str | None = None

    @property
    def active(self) -> bool:
        return self.state is TransactionState.ACTIVE

    def live_energy_wh(self) -> int | None:
        """Energy so far from the last register reading (None until one arrives)."""
        if self.energy_wh is not None:
            return self.energy_wh
        if self.last_meter_wh is None or self.meter_start_wh is None:
            return None
        return max(0, self.last_meter_wh - self.meter_start_wh)


def session_energy(
    *,
    meter_start_wh: int,
    meter_stop_wh: int,
    start_at: datetime,
    stop_at: datetime,
    register_samples: list[tuple[datetime, float]],
) -> EnergyResult:
    """Energy of a finished session = stop - start, unless the data says it cannot be.

    `register_samples` are (timestamp, Wh) readings of Energy.Active.Import.Register taken
    during the session, in any order.
    """
    flags: list[EnergyFlag] = []
    energy = meter_stop_wh - meter_start_wh
    if energy < 0:
        flags.append(EnergyFlag.METER_BACKWARDS)
    readings = sorted(register_samples)
    for (_, earlier), (_, later) in itertools.pairwise(readings):
        if later < earlier - TOLERANCE_WH:
            if EnergyFlag.METER_BACKWARDS not in flags:
                flags.append(EnergyFlag.METER_BACKWARDS)
            break
    if readings and energy >= 0:
        low = min(v for _, v in readings)
        high = max(v for _, v in readings)
        if low < meter_start_wh - TOLERANCE_WH or high > meter_stop_wh + TOLERANCE_WH:
            flags.append(EnergyFlag.SAMPLES_OUTSIDE_RANGE)
        # Energy outside the sampled span must fit in the unsampled time at full power.
        first_at, first = readings[0]
        last_at, last = readings[-1]
        unsampled_s = max(0.0, (first_at - start_at).total_seconds()) + max(
            0.0, (stop_at - last_at).total_seconds()
        )
        unexplained = energy - (last - first)
        if unexplained > unsampled_s / 3600.0 * MAX_PLAUSIBLE_POWER_W + TOLERANCE_WH:
            flags.append(
                EnergyFlag.START_LOOKS_LIKE_ZERO_RESET
                if meter_start_wh == 0
                else EnergyFlag.IMPLAUSIBLE_ENERGY
            )
    duration_h = max(0.0, (stop_at - start_at).total_seconds()) / 3600.0
    if energy > duration_h * MAX_PLAUSIBLE_POWER_W + TOLERANCE_WH and not any(
        f in flags for f in (EnergyFlag.START_LOOKS_LIKE_ZERO_RESET, EnergyFlag.IMPLAUSIBLE_ENERGY)
    ):
        flags.append(
            EnergyFlag.START_LOOKS_LIKE_ZERO_RESET
            if meter_start_wh == 0
            else EnergyFlag.IMPLAUSIBLE_ENERGY
        )
    if EnergyFlag.METER_BACKWARDS in flags and energy < 0:
        return EnergyResult(None, tuple(flags))
    return EnergyResult(energy, tuple(flags))


class ChargingState(StrEnum):
    """What the vehicle is doing during a transaction, as a 2.0.1 station reports it with
    its TransactionEvents (billing tells charging from parking by it)."""

    CHARGING = "Charging"
    EV_CONNECTED = "EVConnected"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    IDLE = "Idle"


class TxEventType(StrEnum):
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


class TransactionEvent(NamedTuple):
    """One OCPP 2.0.1 TransactionEvent in version-neutral terms (a NamedTuple, like Sample:
    one is built per message)."""

    ocpp_transaction_id: str
    event_type: TxEventType
    seq_no: int
    timestamp: datetime
    trigger_reason: str
    offline: bool = False
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    token_type: str | None = None
    charging_state: ChargingState | None = None
    stopped_reason: str | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None
    samples: tuple[Sample, ...] = ()
    # Values the meter signed, as sent (stored beside the readings, never re-encoded).
    signed: tuple[SignedMeterValue, ...] = ()


def register_bounds(samples: tuple[Sample, ...] | list[Sample]) -> tuple[float, float] | None:
    """(lowest, highest) energy import register reading in Wh among `samples`."""
    values = [
        s.value
        for s in samples
        if s.measurand == ENERGY_REGISTER
        and s.value is not None
        and s.unit == "Wh"
        and s.phase is None
    ]
    if not values:
        return None
    return min(values), max(values)
