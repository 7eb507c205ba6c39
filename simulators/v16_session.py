"""Charging sessions of a simulated OCPP 1.6 charger: the running ones and how one plays out.

A session drives the charger's message methods; it opens no connection and parses no frames.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

from simulators.errors import NotConnectedError, SimulatorError
from simulators.events import StepKind
from simulators.station import OCCUPIED, ConnectorStatus

if TYPE_CHECKING:
    from simulators.v16 import V16Charger

__all__ = ["SessionBook", "SessionControl", "charge", "end_transaction", "notify"]


class SessionControl:
    """Handle on one running session: where it runs, for whom, and how to stop it."""

    def __init__(self, number: int, connector_id: int, id_tag: str) -> None:
        self.number = number
        self.connector_id = connector_id
        self.id_tag = id_tag
        self.transaction_id: int | None = None
        self.reason = "Local"
        self._stop = asyncio.Event()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def stop(self, reason: str) -> None:
        """Ask the session to end with this StopTransaction reason (first reason wins)."""
        if not self._stop.is_set():
            self.reason = reason
            self._stop.set()

    async def wait_stop(self, seconds: float | None) -> bool:
        """Wait up to `seconds` (None: forever); True if a stop was requested."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True


class SessionBook:
    """The sessions running on a charger, at most one per connector; numbers count from 1."""

    def __init__(self) -> None:
        self._by_connector: dict[int, SessionControl] = {}
        self._numbers = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()

    def open(self, connector_id: int, id_tag: str) -> SessionControl:
        if connector_id in self._by_connector:
            raise ValueError(f"connector {connector_id} already has a session")
        control = SessionControl(next(self._numbers), connector_id, id_tag)
        self._by_connector[connector_id] = control
        self._idle.clear()
        return control

    def close(self, control: SessionControl) -> None:
        if self._by_connector.get(control.connector_id) is control:
            del self._by_connector[control.connector_id]
        if not self._by_connector:
            self._idle.set()

    def on_connector(self, connector_id: int) -> SessionControl | None:
        return self._by_connector.get(connector_id)

    def by_transaction(self, transaction_id: int) -> SessionControl | None:
        for control in self._by_connector.values():
            if control.transaction_id == transaction_id:
                return control
        return None

    def all(self) -> tuple[SessionControl, ...]:
        return tuple(self._by_connector.values())

    def retarget(self, provisional: int, real: int) -> None:
        """A transaction started offline got its id from the CSMS."""
        control = self.by_transaction(provisional)
        if control is not None:
            control.transaction_id = real

    async def wait_idle(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True


def is_free(cp: V16Charger, connector_id: int) -> bool:
    """A connector can take a new session: operative, no vehicle, no session."""
    connector = cp.station.connector(connector_id)
    return (
        connector.operative
        and connector.status not in OCCUPIED
        and connector.status is not ConnectorStatus.FAULTED
        and cp.sessions.on_connector(connector_id) is None
    )


async def notify(
    cp: V16Charger, connector_id: int, status: ConnectorStatus, note: str = ""
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


async def charge(
    cp: V16Charger, control: SessionControl, seconds: float | None, *, authorize: bool = True
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


async def _charge(
    cp: V16Charger, control: SessionControl, seconds: float | None, authorize: bool
) -> bool:
    note = f"#{control.number} "
    cid, tag = control.connector_id, control.id_tag
    if authorize and not await _authorized(cp, control):
        return False
    await notify(cp, cid, ConnectorStatus.PREPARING, note)
    meter_start = cp.reading(cid).energy_wh
    try:
        started = await cp.start_transaction(cid, tag, meter_start)
    except SimulatorError:
        await notify(cp, cid, cp.station.connector(cid).idle_status, note)
        raise
    control.transaction_id = int(started["transactionId"])
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


async def _authorized(cp: V16Charger, control: SessionControl) -> bool:
    note = f"#{control.number} "
    try:
        answer = await cp.authorize(control.id_tag)
    except NotConnectedError:
        cp.report(StepKind.AUTHORIZED, f"{note}authorized tag={control.id_tag} locally (offline)")
        return True
    status = _tag_status(answer)
    if status != "Accepted":
        cp.report(StepKind.SESSION_REFUSED, f"{note}tag={control.id_tag} not authorized: {status}")
        return False
    cp.report(StepKind.AUTHORIZED, f"{note}authorized tag={control.id_tag}")
    return True


async def _sample_until_stopped(
    cp: V16Charger, control: SessionControl, seconds: float | None, note: str
) -> None:
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    cid = control.connector_id
    reported = cp.station.status(cid)
    while not control.stop_requested:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return
        interval = cp.meter_interval or None
        wait = remaining if interval is None else min(interval, remaining or interval)
        if await control.wait_stop(wait):
            return
        if remaining is not None and wait is not None and wait >= remaining:
            return  # the last stretch is reported by the stop
        try:
            await cp.meter_values(cid, control.transaction_id, [cp.sample(cid)])
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


async def _stop(cp: V16Charger, control: SessionControl, meter_start: int, note: str) -> None:
    cid = control.connector_id
    final = cp.sample(cid, "Transaction.End", cp.configuration.items("StopTxnSampledData"))
    meter_stop = cp.station.reading(cid).energy_wh
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
    await notify(cp, cid, cp.station.connector(cid).idle_status, note)


async def end_transaction(cp: V16Charger, transaction_id: int, reason: str) -> None:
    """Stop a transaction that no session runs (one started through the message methods)."""
    record = cp.open_transactions.get(transaction_id)
    if record is None:
        return
    cid = record.connector_id
    meter_stop = record.meter_start
    if cp.station.has_connector(cid):
        meter_stop = max(meter_stop, cp.reading(cid).energy_wh)
    await cp.stop_transaction(transaction_id, meter_stop, id_tag=record.id_tag, reason=reason)
    cp.report(StepKind.INFO, f"transaction {transaction_id} stopped: {reason}")
    if cp.station.has_connector(cid):
        await notify(cp, cid, ConnectorStatus.FINISHING)
        await notify(cp, cid, cp.station.connector(cid).idle_status)


def _tag_status(answer: dict[str, Any]) -> str:
    info = answer.get("idTagInfo")
    return str(info.get("status")) if isinstance(info, dict) else "Accepted"
