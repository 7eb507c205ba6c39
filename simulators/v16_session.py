"""Charging sessions of a simulated OCPP 1.6 charger: the running ones and how one plays out.

A session drives the charger's message methods; it opens no connection and parses no frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from simulators.charger import Timestamp
from simulators.clock import wire_time
from simulators.errors import NotConnectedError, SimulatorError
from simulators.events import StepKind
from simulators.profiles import ChargingProfiles
from simulators.sessions import (
    Admission,
    SessionBook,
    SessionControl,
    admit,
    sample_until_stopped,
)
from simulators.signed_meter import SignedMeter
from simulators.station import ConnectorStatus, Reading, Station
from simulators.v16_config import Configuration
from simulators.v16_meter import register_value, register_wh, with_signed

__all__ = [
    "OpenTransaction",
    "SessionBook",
    "SessionCharger",
    "SessionControl",
    "announce_changes",
    "charge",
    "end_transaction",
    "is_free",
    "notify",
    "settle",
]

Control = SessionControl[int]


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction this charger started and has not stopped yet."""

    transaction_id: int
    connector_id: int
    id_tag: str
    meter_start: int


class SessionCharger(Admission, Protocol):
    """What a session asks of the 1.6 charger (simulators.v16.V16Charger): its connectors
    and meter, its transaction messages, and what authorizes a tag."""

    @property
    def station(self) -> Station: ...
    @property
    def sessions(self) -> SessionBook[int]: ...
    @property
    def profiles(self) -> ChargingProfiles: ...
    @property
    def configuration(self) -> Configuration: ...
    @property
    def meter_interval(self) -> float: ...
    @property
    def open_transactions(self) -> Mapping[int, OpenTransaction]: ...
    @property
    def signed_meter(self) -> SignedMeter | None: ...
    @property
    def id(self) -> str: ...

    def transaction_on(self, connector_id: int) -> OpenTransaction | None: ...

    def connector_for(
        self, id_tag: str, candidates: Iterable[int], parent_id_tag: str | None = None
    ) -> int | None: ...

    def idle_status(self, connector_id: int) -> ConnectorStatus: ...

    def refresh_reserved(self) -> list[int]: ...

    def apply_charging_limits(self) -> None: ...

    def reading(self, connector_id: int) -> Reading: ...

    def sample(
        self,
        connector_id: int,
        context: str = "Sample.Periodic",
        measurands: Sequence[str] | None = None,
    ) -> dict[str, Any]: ...

    async def authorize(self, id_tag: str) -> dict[str, Any]: ...

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        info: str | None = None,
        timestamp: Timestamp = None,
    ) -> dict[str, Any]: ...

    async def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: Timestamp = None,
        reservation_id: int | None = None,
    ) -> dict[str, Any]: ...

    async def meter_values(
        self,
        connector_id: int,
        transaction_id: int | None = None,
        meter_value: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]: ...

    async def stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        timestamp: Timestamp = None,
        id_tag: str | None = None,
        reason: str | None = None,
        transaction_data: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]: ...


def is_free(cp: SessionCharger, connector_id: int, id_tag: str | None = None) -> bool:
    """A connector can take a new session of `id_tag`: operative, no vehicle, no session or
    transaction, not reserved for another tag."""
    return cp.connector_for(id_tag or "", (connector_id,)) is not None


async def notify(
    cp: SessionCharger, connector_id: int, status: ConnectorStatus, note: str = ""
) -> None:
    """Record a status and send it if connected (a reconnect announces it otherwise)."""
    try:
        await cp.status(connector_id, status)
    except NotConnectedError:
        cp.station.set_status(connector_id, status)
        return
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"{note}StatusNotification {status} failed: {exc}")
        return
    cp.report(StepKind.STATUS_SENT, f"{note}connector={connector_id} {status}")


async def announce_changes(cp: SessionCharger, connector_ids: list[int]) -> None:
    """Send the status of connectors the model already changed (reservations, availability)."""
    for connector_id in connector_ids:
        await notify(cp, connector_id, cp.station.status(connector_id))


async def settle(cp: SessionCharger, connector_id: int, note: str = "") -> None:
    """The vehicle is gone: Available (Reserved or Unavailable when so), and any other
    connector a reservation of any connector now holds or lets go."""
    await notify(cp, connector_id, cp.idle_status(connector_id), note)
    await announce_changes(cp, cp.refresh_reserved())


async def charge(
    cp: SessionCharger, control: Control, seconds: float | None, *, authorize: bool = True
) -> bool:
    """Play one session: Authorize, Preparing, StartTransaction, Charging, MeterValues
    until `seconds` pass (or forever when None) or a stop is requested, StopTransaction,
    Finishing, Available. Returns True when the transaction was stopped."""
    try:
        return await _charge(cp, control, seconds, authorize)
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"#{control.number} session failed: {exc}")
        return False
    finally:
        cp.sessions.close(control)
        if cp.transaction_on(control.connector_id) is None and cp.profiles.end_transaction(
            control.connector_id
        ):  # a TxProfile given with a remote start that never started
            cp.apply_charging_limits()


async def _charge(
    cp: SessionCharger, control: Control, seconds: float | None, authorize: bool
) -> bool:
    note = f"#{control.number} "
    cid, tag = control.connector_id, control.id_tag
    ask = (lambda: cp.authorize(tag)) if authorize else None
    admitted, reservation_id = await admit(cp, control, ask, _tag_info)
    if not admitted:
        return False
    await notify(cp, cid, ConnectorStatus.PREPARING, note)
    await announce_changes(cp, cp.refresh_reserved())  # a reservation of any may need the rest
    meter_start = cp.reading(cid).energy_wh
    started_at = cp.now()
    try:
        started = await cp.start_transaction(
            cid, tag, meter_start, timestamp=started_at, reservation_id=reservation_id
        )
    except SimulatorError:
        await settle(cp, cid, note)
        raise
    control.transaction_id = int(started["transactionId"])
    await _signed_begin(cp, control, meter_start, started_at, note)
    cp.report(
        StepKind.SESSION_STARTED,
        f"{note}session started tx={control.transaction_id} connector={cid} tag={tag}",
    )
    tag_status = _tag_status(started)
    if tag_status != "Accepted":
        cp.report(StepKind.INFO, f"{note}tag {tag_status} at start: stopping")
        control.stop("DeAuthorized")
    else:
        await notify(cp, cid, ConnectorStatus.CHARGING, note)
    await _sample_until_stopped(cp, control, seconds, note)
    await _stop(cp, control, meter_start, note)
    return True


async def _sample_until_stopped(
    cp: SessionCharger, control: Control, seconds: float | None, note: str
) -> None:
    cid = control.connector_id
    # what the start told the CSMS: the model may have moved on since (a profile of 0 A
    # that came meanwhile pauses the session), and that is news for the first sample
    reported = ConnectorStatus.CHARGING

    async def sample() -> None:
        nonlocal reported
        entry = signed(cp, cp.sample(cid), cid, "C", control.id_tag)
        try:
            await cp.meter_values(cid, control.transaction_id, [entry])
        except NotConnectedError:
            pass
        except SimulatorError as exc:
            cp.report(StepKind.ERROR, f"{note}MeterValues failed: {exc}")
        else:
            reading = cp.station.reading(cid)
            soc = "" if reading.soc_percent is None else f" soc={reading.soc_percent}%"
            cp.report(
                StepKind.METER_SENT,
                f"{note}meter tx={control.transaction_id} register={reading.energy_wh} Wh "
                f"power={reading.power_w} W{soc}",
            )
        status = cp.station.status(cid)
        if status is not reported:
            reported = status
            await notify(cp, cid, status, note)  # e.g. SuspendedEV when the battery is full

    await sample_until_stopped(control, seconds, lambda: cp.meter_interval, sample)


async def _stop(cp: SessionCharger, control: Control, meter_start: int, note: str) -> None:
    cid = control.connector_id
    final = cp.sample(cid, "Transaction.End", cp.configuration.items("StopTxnSampledData"))
    meter_stop = cp.station.reading(cid).energy_wh
    final = signed(cp, final, cid, "E", control.id_tag, meter_stop)
    assert control.transaction_id is not None
    await cp.stop_transaction(
        control.transaction_id,
        meter_stop,
        id_tag=control.id_tag,
        reason=control.reason,
        transaction_data=[final],
    )
    cp.report(
        StepKind.SESSION_COMPLETED,
        f"{note}session completed tx={control.transaction_id} "
        f"energy={meter_stop - meter_start} Wh reason={control.reason}",
    )
    await notify(cp, cid, ConnectorStatus.FINISHING, note)
    await settle(cp, cid, note)


async def end_transaction(cp: SessionCharger, transaction_id: int, reason: str) -> None:
    """Stop a transaction that no session runs (one started through the message methods)."""
    record = cp.open_transactions.get(transaction_id)
    if record is None:
        return
    cid = record.connector_id
    meter_stop = record.meter_start
    if cp.station.has_connector(cid):
        meter_stop = max(meter_stop, cp.reading(cid).energy_wh)
    data = None
    if cp.signed_meter is not None:
        end = register_value(meter_stop, wire_time(cp.now()), "Transaction.End")
        data = [signed(cp, end, cid, "E", record.id_tag)]
    await cp.stop_transaction(
        transaction_id, meter_stop, id_tag=record.id_tag, reason=reason, transaction_data=data
    )
    cp.report(StepKind.INFO, f"transaction {transaction_id} stopped: {reason}")
    if cp.station.has_connector(cid):
        await notify(cp, cid, ConnectorStatus.FINISHING)
        await settle(cp, cid)


def signed(
    cp: SessionCharger,
    entry: dict[str, Any],
    connector_id: int,
    tx: str,
    id_tag: str | None,
    energy_wh: int | None = None,
) -> dict[str, Any]:
    """`entry` with the meter's signed record of its energy register (TX `tx`: B, C, E) when
    the charger has a signing meter; the plain register is added when the entry lacks it, so
    that the plain value and the signed one are the same reading."""
    meter = cp.signed_meter
    if meter is None:
        return entry
    context = str(entry["sampledValue"][0]["context"])
    wh = register_wh(entry)
    if wh is None:
        wh = energy_wh if energy_wh is not None else cp.station.reading(connector_id).energy_wh
        plain = register_value(wh, str(entry["timestamp"]), context)["sampledValue"]
        entry = {**entry, "sampledValue": [*entry["sampledValue"], *plain]}
    record = meter.record(connector_id, wh, cp.now(), tx, id_tag, charge_point=cp.id)
    return entry if record is None else with_signed(entry, record, context)


async def _signed_begin(
    cp: SessionCharger, control: Control, meter_start: int, at: datetime, note: str
) -> None:
    """The begin record: 1.6 StartTransaction has no meter values, so it follows in a
    MeterValues of context Transaction.Begin beside the start register."""
    if cp.signed_meter is None:
        return
    entry = signed(
        cp,
        register_value(meter_start, wire_time(at), "Transaction.Begin"),
        control.connector_id,
        "B",
        control.id_tag,
    )
    try:
        await cp.meter_values(control.connector_id, control.transaction_id, [entry])
    except NotConnectedError:
        pass
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"{note}MeterValues Transaction.Begin failed: {exc}")


def _tag_status(answer: dict[str, Any]) -> str:
    return _tag_info(answer)[0]


def _tag_info(answer: dict[str, Any]) -> tuple[str, str | None]:
    """Status and parentIdTag of the idTagInfo of an answer."""
    info = answer.get("idTagInfo")
    if not isinstance(info, dict):
        return "Accepted", None
    parent = info.get("parentIdTag")
    return str(info.get("status")), None if parent is None else str(parent)
