"""Charging sessions of a simulated OCPP 2.0.1 station: how one plays out, from Authorize to
the Ended TransactionEvent, and how an open transaction is stopped from outside.

A session drives the charger's message methods; it opens no connection and parses no frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.errors import NotConnectedError, SimulatorError
from simulators.events import StepKind
from simulators.sessions import SessionControl, admit, sample_until_stopped
from simulators.station import ConnectorStatus
from simulators.v201_transaction import charging_state

if TYPE_CHECKING:
    from simulators.v201 import V201Charger

__all__ = [
    "announce_changes",
    "charge",
    "end_open_transaction",
    "is_free",
    "notify",
    "notify_evse",
    "settle",
]

Control = SessionControl[str]


def is_free(cp: V201Charger, evse_id: int, token: str | None = None) -> bool:
    """An EVSE can take a new session of `token`: operative, no vehicle, no session or
    transaction, not reserved for another token."""
    return cp.connector_for(token or "", (evse_id,)) is not None


async def notify_evse(cp: V201Charger, evse_id: int, note: str = "") -> None:
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


async def notify(cp: V201Charger, evse_id: int, status: ConnectorStatus, note: str = "") -> None:
    """Record a station-model status and report the EVSE's connector status."""
    cp.station.set_status(evse_id, status)
    await notify_evse(cp, evse_id, note)


async def announce_changes(cp: V201Charger, evse_ids: list[int]) -> None:
    """Send the status of EVSEs the model already changed (reservations, availability)."""
    for evse_id in evse_ids:
        await notify_evse(cp, evse_id)


async def settle(cp: V201Charger, evse_id: int, note: str = "") -> None:
    """The vehicle is gone: Available (Reserved or Unavailable when so), and any other EVSE
    a reservation of any EVSE now holds or lets go."""
    await notify(cp, evse_id, cp.idle_status(evse_id), note)
    await announce_changes(cp, cp.refresh_reserved())


async def charge(
    cp: V201Charger,
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
    cp: V201Charger,
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
    try:
        transaction_id, answer = await cp.start_transaction(
            evse_id,
            tag,
            meter_start,
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
    await _sample_until_stopped(cp, control, seconds, note)
    await _stop(cp, control, meter_start, note)
    return True


async def _sample_until_stopped(
    cp: V201Charger, control: Control, seconds: float | None, note: str
) -> None:
    evse_id = control.connector_id
    reported = cp.station.status(evse_id)

    async def sample() -> None:
        nonlocal reported
        transaction_id = control.transaction_id
        assert transaction_id is not None
        entry = cp.sample(evse_id)
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


async def _stop(cp: V201Charger, control: Control, meter_start: int, note: str) -> None:
    evse_id = control.connector_id
    transaction_id = control.transaction_id
    assert transaction_id is not None
    measurands = cp.device.items("SampledDataCtrlr", "TxEndedMeasurands")
    final = cp.sample(evse_id, "Transaction.End", measurands)
    meter_stop = cp.station.reading(evse_id).energy_wh
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


async def end_open_transaction(cp: V201Charger, transaction_id: str, reason: str) -> None:
    """End a transaction that no session runs (one started through the message methods)."""
    record = cp.open_transactions.get(transaction_id)
    if record is None:
        return
    evse_id = record.evse_id
    meter_stop = record.meter_start_wh
    if cp.station.has_connector(evse_id):
        meter_stop = max(meter_stop, cp.reading(evse_id).energy_wh)
    await cp.end_transaction(transaction_id, meter_stop, stopped_reason=reason)
    cp.report(StepKind.INFO, f"transaction {transaction_id} ended: {reason}")
    if cp.station.has_connector(evse_id):
        await settle(cp, evse_id)


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
