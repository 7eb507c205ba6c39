"""Charging sessions of a simulated OCPP 2.0.1 station: how one plays out, from Authorize to
the Ended TransactionEvent, and how an open transaction is stopped from outside.

A session drives the charger's message methods; it opens no connection and parses no frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from simulators.charger import Timestamp
from simulators.clock import wire_time
from simulators.errors import NotConnectedError, SimulatorError
from simulators.events import StepKind
from simulators.options import ChargerOptions
from simulators.profiles import ChargingProfiles
from simulators.sessions import Admission, SessionBook, SessionControl, admit, sample_until_stopped
from simulators.signed_meter import SIGNING_METHOD, SignedMeter
from simulators.station import ConnectorStatus, Reading, Station
from simulators.v201_device import DeviceModel
from simulators.v201_meter import energy_value, register_wh, signed_meter_value, with_signed
from simulators.v201_transaction import OpenTransaction, charging_state

__all__ = [
    "SessionCharger",
    "announce_changes",
    "charge",
    "end_open_transaction",
    "is_free",
    "notify",
    "notify_evse",
    "settle",
]

Control = SessionControl[str]


class SessionCharger(Admission, Protocol):
    """What a session asks of the 2.0.1 station (simulators.v201.V201Charger): its EVSEs and
    meter, its device model, its TransactionEvents, and what authorizes a token."""

    @property
    def options(self) -> ChargerOptions: ...
    @property
    def signed_meter(self) -> SignedMeter | None: ...
    @property
    def station(self) -> Station: ...
    @property
    def sessions(self) -> SessionBook[str]: ...
    @property
    def profiles(self) -> ChargingProfiles: ...
    @property
    def device(self) -> DeviceModel: ...
    @property
    def meter_interval(self) -> float: ...
    @property
    def open_transactions(self) -> Mapping[str, OpenTransaction]: ...

    def transaction_on(self, evse_id: int) -> OpenTransaction | None: ...

    def connector_for(
        self, id_tag: str, candidates: Iterable[int], parent_id_tag: str | None = None
    ) -> int | None: ...

    def idle_status(self, connector_id: int) -> ConnectorStatus: ...

    def wire_status(self, evse_id: int) -> str: ...

    def refresh_reserved(self) -> list[int]: ...

    def apply_charging_limits(self) -> None: ...

    def reading(self, connector_id: int) -> Reading: ...

    def sample(
        self,
        evse_id: int,
        context: str = "Sample.Periodic",
        measurands: Sequence[str] | None = None,
    ) -> dict[str, Any]: ...

    async def authorize(self, id_token: str, token_type: str = "ISO14443") -> dict[str, Any]: ...

    async def status(
        self,
        evse_id: int,
        connector_id: int,
        connector_status: str,
        timestamp: Timestamp = None,
    ) -> dict[str, Any]: ...

    async def start_transaction(
        self,
        evse_id: int,
        id_token: str | None,
        meter_start_wh: int,
        timestamp: Timestamp = None,
        trigger_reason: str = "Authorized",
        remote_start_id: int | None = None,
        token_type: str = "ISO14443",
        *,
        connector_id: int = 1,
        charging_state: str | None = "Charging",
        reservation_id: int | None = None,
        meter_value: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[str, dict[str, Any]]: ...

    async def update_transaction(
        self,
        transaction_id: str,
        *,
        meter_wh: int | None = None,
        trigger_reason: str = "MeterValuePeriodic",
        id_token: str | None = None,
        charging_state: str | None = None,
        timestamp: Timestamp = None,
        meter_value: Sequence[Mapping[str, Any]] | None = None,
        token_type: str = "ISO14443",
        remote_start_id: int | None = None,
    ) -> dict[str, Any]: ...

    async def notify_charging_needs(
        self, evse_id: int, departure: Timestamp, energy_wh: int
    ) -> dict[str, Any]: ...

    async def end_transaction(
        self,
        transaction_id: str,
        meter_stop_wh: int,
        *,
        stopped_reason: str = "Local",
        trigger_reason: str | None = None,
        id_token: str | None = None,
        timestamp: Timestamp = None,
        token_type: str = "ISO14443",
        meter_value: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]: ...


def is_free(cp: SessionCharger, evse_id: int, token: str | None = None) -> bool:
    """An EVSE can take a new session of `token`: operative, no vehicle, no session or
    transaction, not reserved for another token."""
    return cp.connector_for(token or "", (evse_id,)) is not None


async def notify_evse(cp: SessionCharger, evse_id: int, note: str = "") -> None:
    """Send the EVSE's current status if connected (a reconnect announces it otherwise)."""
    status = cp.wire_status(evse_id)
    try:
        await cp.status(evse_id, 1, status)
    except NotConnectedError:
        return
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"{note}StatusNotification {status} failed: {exc}")
        return
    cp.report(StepKind.STATUS_SENT, f"{note}evse={evse_id} {status}")


async def notify(cp: SessionCharger, evse_id: int, status: ConnectorStatus, note: str = "") -> None:
    """Record a station-model status and report the EVSE's connector status."""
    cp.station.set_status(evse_id, status)
    await notify_evse(cp, evse_id, note)


async def announce_changes(cp: SessionCharger, evse_ids: list[int]) -> None:
    """Send the status of EVSEs the model already changed (reservations, availability)."""
    for evse_id in evse_ids:
        await notify_evse(cp, evse_id)


async def settle(cp: SessionCharger, evse_id: int, note: str = "") -> None:
    """The vehicle is gone: Available (Reserved or Unavailable when so), and any other EVSE
    a reservation of any EVSE now holds or lets go."""
    await notify(cp, evse_id, cp.idle_status(evse_id), note)
    await announce_changes(cp, cp.refresh_reserved())


async def charge(
    cp: SessionCharger,
    control: Control,
    seconds: float | None,
    *,
    authorize: bool = True,
    remote_start_id: int | None = None,
    token_type: str = "ISO14443",
) -> bool:
    """Play one session: Authorize, Occupied, TransactionEvent Started, Updated every
    TxUpdatedInterval until `seconds` pass (or forever when None) or a stop is requested,
    Ended, Available. Returns True when the transaction was ended."""
    try:
        return await _charge(cp, control, seconds, authorize, remote_start_id, token_type)
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
    cp: SessionCharger,
    control: Control,
    seconds: float | None,
    authorize: bool,
    remote_start_id: int | None,
    token_type: str,
) -> bool:
    note = f"#{control.number} "
    evse_id, tag = control.connector_id, control.id_tag
    ask = (lambda: cp.authorize(tag, token_type)) if authorize else None
    admitted, reservation_id = await admit(cp, control, ask, _token_info)
    if not admitted:
        return False
    await notify(cp, evse_id, ConnectorStatus.PREPARING, note)
    await announce_changes(cp, cp.refresh_reserved())  # a reservation of any may need the rest
    meter_start = cp.reading(evse_id).energy_wh
    trigger = "RemoteStart" if remote_start_id is not None else "Authorized"
    stamp = wire_time(cp.now())
    begin = signed(cp, energy_value(meter_start, stamp, "Transaction.Begin"), evse_id, "B", tag)
    try:
        transaction_id, answer = await cp.start_transaction(
            evse_id,
            tag,
            meter_start,
            timestamp=stamp,
            meter_value=[begin],
            trigger_reason=trigger,
            remote_start_id=remote_start_id,
            token_type=token_type,
            reservation_id=reservation_id,
        )
    except SimulatorError:
        await settle(cp, evse_id, note)
        raise
    control.transaction_id = transaction_id
    cp.report(
        StepKind.SESSION_STARTED,
        f"{note}session started tx={transaction_id} evse={evse_id} tag={tag}",
    )
    token_status = _token_status(answer)
    if token_status != "Accepted":
        cp.report(StepKind.INFO, f"{note}idToken {token_status} at start: stopping")
        control.stop("DeAuthorized")
    else:
        await _tell_needs(cp, evse_id, note)
    await _sample_until_stopped(cp, control, seconds, note)
    await _stop(cp, control, meter_start, note)
    return True


async def _tell_needs(cp: SessionCharger, evse_id: int, note: str) -> None:
    """The vehicle states its departure and energy need (`--departure`, `--energy-need`)."""
    options = cp.options
    if options.departure_s is None or options.energy_need_wh is None:
        return
    departure = cp.now() + timedelta(seconds=options.departure_s)
    try:
        answer = await cp.notify_charging_needs(evse_id, departure, options.energy_need_wh)
    except NotConnectedError:
        return
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"{note}NotifyEVChargingNeeds failed: {exc}")
        return
    cp.report(
        StepKind.INFO,
        f"{note}charging needs {options.energy_need_wh} Wh by {wire_time(departure)}: "
        f"{answer.get('status')}",
    )


async def _sample_until_stopped(
    cp: SessionCharger, control: Control, seconds: float | None, note: str
) -> None:
    evse_id = control.connector_id
    # what the start told the CSMS: the model may have moved on since (a profile of 0 A
    # that came meanwhile pauses the session), and that is news for the first sample
    reported = ConnectorStatus.CHARGING

    async def sample() -> None:
        nonlocal reported
        transaction_id = control.transaction_id
        assert transaction_id is not None
        entry = signed(cp, cp.sample(evse_id), evse_id, "C", control.id_tag)
        status = cp.station.status(evse_id)
        changed = status is not reported
        reported = status
        try:
            await cp.update_transaction(
                transaction_id,
                trigger_reason="ChargingStateChanged" if changed else "MeterValuePeriodic",
                charging_state=charging_state(status) if changed else None,
                meter_value=[entry],
            )
        except SimulatorError as exc:
            cp.report(StepKind.ERROR, f"{note}TransactionEvent Updated failed: {exc}")
            return
        reading = cp.station.reading(evse_id)
        soc = "" if reading.soc_percent is None else f" soc={reading.soc_percent}%"
        cp.report(
            StepKind.METER_SENT,
            f"{note}meter tx={transaction_id} register={reading.energy_wh} Wh "
            f"power={reading.power_w} W{soc}",
        )

    await sample_until_stopped(control, seconds, lambda: cp.meter_interval, sample)


async def _stop(cp: SessionCharger, control: Control, meter_start: int, note: str) -> None:
    evse_id = control.connector_id
    transaction_id = control.transaction_id
    assert transaction_id is not None
    measurands = cp.device.items("SampledDataCtrlr", "TxEndedMeasurands")
    final = cp.sample(evse_id, "Transaction.End", measurands)
    meter_stop = cp.station.reading(evse_id).energy_wh
    final = signed(cp, final, evse_id, "E", control.id_tag, meter_stop)
    await cp.end_transaction(
        transaction_id,
        meter_stop,
        stopped_reason=control.reason,
        id_token=control.id_tag if control.reason == "Local" else None,
        meter_value=[final],
    )
    cp.report(
        StepKind.SESSION_COMPLETED,
        f"{note}session completed tx={transaction_id} "
        f"energy={meter_stop - meter_start} Wh reason={control.reason}",
    )
    await settle(cp, evse_id, note)


async def end_open_transaction(cp: SessionCharger, transaction_id: str, reason: str) -> None:
    """End a transaction that no session runs (one started through the message methods)."""
    record = cp.open_transactions.get(transaction_id)
    if record is None:
        return
    evse_id = record.evse_id
    meter_stop = record.meter_start_wh
    if cp.station.has_connector(evse_id):
        meter_stop = max(meter_stop, cp.reading(evse_id).energy_wh)
    values = None
    if cp.signed_meter is not None:
        token = None if record.id_token is None else str(record.id_token.get("idToken"))
        end = energy_value(meter_stop, wire_time(cp.now()), "Transaction.End")
        values = [signed(cp, end, evse_id, "E", token)]
    await cp.end_transaction(transaction_id, meter_stop, stopped_reason=reason, meter_value=values)
    cp.report(StepKind.INFO, f"transaction {transaction_id} ended: {reason}")
    if cp.station.has_connector(evse_id):
        await settle(cp, evse_id)


def signed(
    cp: SessionCharger,
    entry: dict[str, Any],
    evse_id: int,
    tx: str,
    id_token: str | None,
    energy_wh: int | None = None,
) -> dict[str, Any]:
    """`entry` with `signedMeterValue` (the meter's record of its energy register, TX `tx`:
    B, C or E) when the station has a signing meter; the register is added when the entry
    lacks it, so that the plain value and the signed one are the same reading."""
    meter = cp.signed_meter
    if meter is None:
        return entry
    wh = register_wh(entry)
    if wh is None:
        wh = energy_wh if energy_wh is not None else cp.station.reading(evse_id).energy_wh
        context = str(entry["sampledValue"][0]["context"])
        plain = energy_value(wh, str(entry["timestamp"]), context)["sampledValue"]
        entry = {**entry, "sampledValue": [*entry["sampledValue"], *plain]}
    record = meter.record(evse_id, wh, cp.now(), tx, id_token, charge_point=cp.options.charger_id)
    if record is None:
        return entry
    return with_signed(entry, signed_meter_value(record, meter.public_key_base64, SIGNING_METHOD))


def _token_status(answer: dict[str, Any]) -> str:
    return _token_info(answer)[0]


def _token_info(answer: dict[str, Any]) -> tuple[str, str | None]:
    """Status and group idToken of the idTokenInfo of an answer."""
    info = answer.get("idTokenInfo")
    if not isinstance(info, dict):
        return "Accepted", None
    group = info.get("groupIdToken")
    group_token = group.get("idToken") if isinstance(group, dict) else None
    return str(info.get("status")), None if group_token is None else str(group_token)
