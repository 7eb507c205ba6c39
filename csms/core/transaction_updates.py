"""How what chargers report changes a transaction: a new one from its first message, the
merge of an OCPP 2.0.1 TransactionEvent in any order (a typed change set), its settled energy.

Pure rules: no I/O. csms.services.transactions loads and stores; csms.storage applies a
TransactionChanges to the stored row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from csms.core.authorization import AuthResult
from csms.core.metering import MAX_READING, Sample, usable_register
from csms.core.roaming import Grant
from csms.core.transactions import (
    BillingState,
    EnergyFlag,
    EnergyResult,
    InputFlag,
    Transaction,
    TransactionEvent,
    TransactionState,
    TxEventType,
    flagged,
    register_bounds,
    session_energy,
)

# The 2.0.1 stop reason of an Ended event that names none (OCPP 2.0.1 E06: Local).
DEFAULT_STOP_REASON = "Local"
BEGIN = "Transaction.Begin"
END = "Transaction.End"

_T = TypeVar("_T")


def new_transaction(
    tx_id: int,
    *,
    cp_id: str,
    ocpp_version: str,
    evse_id: int,
    connector_id: int,
    id_tag: str | None,
    auth_status: str | None,
    start_at: datetime,
    meter_start_wh: int | None,
    reservation_id: int | None = None,
    remote_start_id: int | None = None,
    ocpp_transaction_id: str | None = None,
    grant: Grant | None = None,
    flags: tuple[str, ...] = (),
) -> Transaction:
    """A running transaction as it is stored (and read back) once written; `grant`: another
    party's decision for its token (its OCPI method, reference and CdrToken)."""
    return Transaction(
        id=tx_id,
        charge_point_id=cp_id,
        evse_id=evse_id,
        connector_id=connector_id,
        id_tag=id_tag,
        auth_status=auth_status,
        start_at=start_at.astimezone(UTC),
        meter_start_wh=meter_start_wh,
        state=TransactionState.ACTIVE,
        ocpp_transaction_id=ocpp_transaction_id,
        reservation_id=reservation_id,
        remote_start_id=remote_start_id,
        ocpp_version=ocpp_version,
        flags=flags,
        auth_method=None if grant is None else grant.method.value,
        authorization_reference=None if grant is None else grant.authorization_reference,
        cdr_token=None if grant is None else dict(grant.cdr_token),
    )


def context_reading(samples: Sequence[Sample], context: str) -> int | None:
    """The register reading of that context (Transaction.Begin: its lowest, else its
    highest), or None."""
    found = register_bounds([s for s in samples if s.context == context])
    return None if found is None else round(found[0] if context.endswith("Begin") else found[1])


def _low(bounds: tuple[float, float] | None) -> int | None:
    return None if bounds is None else round(bounds[0])


def _high(bounds: tuple[float, float] | None) -> int | None:
    return None if bounds is None else round(bounds[1])


def opened_by(
    tx_id: int,
    cp_id: str,
    ocpp_version: str,
    event: TransactionEvent,
    *,
    auth_status: str | None,
    reservation_id: int | None,
    grant: Grant | None,
    flags: tuple[InputFlag, ...] = (),
) -> Transaction:
    """The transaction a 2.0.1 event of an unknown transaction creates (its Started, or
    any event of a station that began it offline): its EVSE (connector 1 when it names
    none), its start reading (Transaction.Begin, else the lowest register reading)."""
    begin = context_reading(event.samples, BEGIN)
    return new_transaction(
        tx_id,
        cp_id=cp_id,
        ocpp_version=ocpp_version,
        evse_id=event.evse_id or 0,
        connector_id=event.connector_id or (1 if event.evse_id else 0),
        id_tag=event.id_token,
        auth_status=auth_status,
        start_at=event.timestamp,
        meter_start_wh=begin if begin is not None else _low(register_bounds(event.samples)),
        reservation_id=reservation_id,
        remote_start_id=event.remote_start_id,
        ocpp_transaction_id=event.ocpp_transaction_id,
        grant=grant,
        flags=flagged((), *flags),
    )


@dataclass(frozen=True, slots=True)
class TransactionChanges:
    """What a message changes in a stored transaction; None: unchanged. `roaming`: the
    grant whose OCPI method, reference and CdrToken the transaction takes; `energy`: its
    (re)computed session energy (energy_wh is written even when the result has none)."""

    start_at: datetime | None = None
    meter_start_wh: int | None = None
    id_tag: str | None = None
    auth_status: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None
    roaming: Grant | None = None
    flags: tuple[str, ...] | None = None
    billing: BillingState | None = None
    state: TransactionState | None = None
    stop_at: datetime | None = None
    stop_reason: str | None = None
    meter_stop_wh: int | None = None
    stop_id_tag: str | None = None
    energy: EnergyResult | None = None

    @property
    def empty(self) -> bool:
        return self == _NOTHING

    def applied_to(self, tx: Transaction) -> Transaction:
        """The transaction as stored once these changes are written."""
        grant = self.roaming
        return replace(
            tx,
            start_at=tx.start_at if self.start_at is None else self.start_at.astimezone(UTC),
            meter_start_wh=_or(self.meter_start_wh, tx.meter_start_wh),
            id_tag=_or(self.id_tag, tx.id_tag),
            auth_status=_or(self.auth_status, tx.auth_status),
            evse_id=_or(self.evse_id, tx.evse_id),
            connector_id=_or(self.connector_id, tx.connector_id),
            remote_start_id=_or(self.remote_start_id, tx.remote_start_id),
            reservation_id=_or(self.reservation_id, tx.reservation_id),
            auth_method=tx.auth_method if grant is None else grant.method.value,
            authorization_reference=(
                tx.authorization_reference if grant is None else grant.authorization_reference
            ),
            cdr_token=tx.cdr_token if grant is None else dict(grant.cdr_token),
            flags=_or(self.flags, tx.flags),
            billing=tx.billing if self.billing is None else self.billing.value,
            state=_or(self.state, tx.state),
            stop_at=tx.stop_at if self.stop_at is None else self.stop_at.astimezone(UTC),
            stop_reason=_or(self.stop_reason, tx.stop_reason),
            meter_stop_wh=_or(self.meter_stop_wh, tx.meter_stop_wh),
            stop_id_tag=_or(self.stop_id_tag, tx.stop_id_tag),
            energy_wh=tx.energy_wh if self.energy is None else self.energy.energy_wh,
        )


_NOTHING = TransactionChanges()


def _or(new: _T | None, old: _T) -> _T:
    return old if new is None else new


def adds_only_readings(tx: Transaction, event: TransactionEvent) -> bool:
    """Whether an event adds nothing to a running transaction but its readings (an
    in-order Updated without a token): the common case, written without reading the
    transaction back. Allocates nothing."""
    if not tx.active or event.event_type is not TxEventType.UPDATED or event.id_token is not None:
        return False
    if event.timestamp < tx.start_at:
        return False
    bounds = register_bounds(event.samples)
    if bounds is not None and (tx.meter_start_wh is None or round(bounds[0]) < tx.meter_start_wh):
        return False
    if event.evse_id and not tx.evse_id:
        return False
    return not (
        (event.remote_start_id is not None and tx.remote_start_id is None)
        or (event.reservation_id is not None and tx.reservation_id is None)
    )


def merge_event(
    tx: Transaction,
    event: TransactionEvent,
    *,
    auth: AuthResult | None = None,
    grant: Grant | None = None,
    flags: tuple[InputFlag, ...] = (),
    created: bool = False,
) -> TransactionChanges:
    """What one TransactionEvent changes in a stored transaction, whatever the order the
    station's events arrive in (offline queues replay late; a repeat changes nothing):

    - the start is the earliest event's time; the start reading the Transaction.Begin one,
      else the lowest register reading, whichever is lowest so far;
    - the token, EVSE (connector 1 when none is named), remote start and reservation come
      from the first event naming them; the token's `auth` status with the token, and
      another party's `grant` (OCPI method, reference, CdrToken) when none is stored yet;
    - an Ended event completes it: stop time, stop reason (Local when none is given), the
      token that stopped it, the stop reading (Transaction.End, else the highest register
      reading, never below one stored); only a running transaction becomes due for billing;
    - a late event of a finished transaction may still raise its stop reading;
    - `flags`: what the event earned it (implausible times, unusable readings).

    `created`: the transaction was just made from this very event (opened_by): only its
    end can change it.
    """
    bounds = register_bounds(event.samples)
    start_at = meter_start = id_tag = auth_status = evse_id = connector_id = None
    remote_start_id = reservation_id = None
    if not created:
        if event.timestamp < tx.start_at:
            start_at = event.timestamp
        begin = context_reading(event.samples, BEGIN)
        low = begin if begin is not None else _low(bounds)
        if low is not None and (tx.meter_start_wh is None or low < tx.meter_start_wh):
            meter_start = low
        if event.id_token is not None and tx.id_tag is None:
            id_tag = event.id_token
            if auth is not None:
                auth_status = auth.status.value
        if event.evse_id and not tx.evse_id:
            evse_id = event.evse_id
            connector_id = event.connector_id or 1
        if event.remote_start_id is not None and tx.remote_start_id is None:
            remote_start_id = event.remote_start_id
        if event.reservation_id is not None and tx.reservation_id is None:
            reservation_id = event.reservation_id
    marked = flagged(tx.flags, *flags)
    roaming = grant if grant is not None and tx.cdr_token is None and id_tag is not None else None
    ended = event.event_type is TxEventType.ENDED
    meter_stop: int | None = None
    if ended:
        end = context_reading(event.samples, END)
        high = end if end is not None else _high(bounds)
        if high is not None:
            meter_stop = max(high, tx.meter_stop_wh or high)
    elif not tx.active and bounds is not None and tx.meter_stop_wh is not None:
        meter_stop = max(tx.meter_stop_wh, round(bounds[1]))
    return TransactionChanges(
        start_at=start_at,
        meter_start_wh=meter_start,
        id_tag=id_tag,
        auth_status=auth_status,
        evse_id=evse_id,
        connector_id=connector_id,
        remote_start_id=remote_start_id,
        reservation_id=reservation_id,
        roaming=roaming,
        flags=marked if marked != tx.flags else None,
        billing=BillingState.PENDING if ended and tx.active else None,
        state=TransactionState.COMPLETED if ended else None,
        stop_at=event.timestamp if ended else None,
        stop_reason=(event.stopped_reason or DEFAULT_STOP_REASON) if ended else None,
        meter_stop_wh=meter_stop,
        stop_id_tag=event.id_token if ended else None,
    )


def settled_energy(
    meter_start: int | None,
    meter_stop: int | None,
    start_at: datetime,
    stop_at: datetime,
    readings: list[tuple[datetime, float]],
) -> EnergyResult:
    """Session energy from whatever the charger told us (1.6 meterStart/meterStop, or 2.0.1
    Transaction.Begin/End readings), cross-checked with the register readings. A register
    or reading that is no usable number (a row stored before they were bounded) counts as
    missing; a missing start or stop is the lowest or highest reading."""
    if not usable_register(meter_start):
        meter_start = None
    if not usable_register(meter_stop):
        meter_stop = None
    readings = [(t, v) for t, v in readings if math.isfinite(v) and abs(v) <= MAX_READING]
    if meter_start is None and readings:
        meter_start = round(min(v for _, v in readings))
    if meter_stop is None and readings:
        meter_stop = round(max(v for _, v in readings))
    if meter_start is None or meter_stop is None:
        return EnergyResult(None, (EnergyFlag.NO_METER_READINGS,))
    return session_energy(
        meter_start_wh=meter_start,
        meter_stop_wh=meter_stop,
        start_at=start_at,
        stop_at=max(stop_at, start_at),
        register_samples=readings,
    )
