"""`V16Charger`: one simulated OCPP 1.6J charge point with its connection, messages and queue.

The scripted run is in `v16_script`, answers to CSMS requests in `v16_requests`, sessions in
`v16_session`; only `v16_link` touches the `ocpp` library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from simulators.clock import Clock, utc_now, wire_time
from simulators.errors import NotConnectedError, OptionsError, SimulatorError
from simulators.events import Sink, Step, StepKind, Summary, Tally, discard
from simulators.options import ChargerOptions
from simulators.station import ConnectorStatus, Reading, Station
from simulators.v16_config import Configuration
from simulators.v16_link import Link, open_link
from simulators.v16_meter import meter_value
from simulators.v16_offline import Delivery, OfflineQueue, QueuedMessage
from simulators.v16_requests import RequestHandler
from simulators.v16_script import run_script
from simulators.v16_session import SessionBook

__all__ = ["ChargerOptions", "OpenTransaction", "V16Charger"]

log = logging.getLogger(__name__)

#: HeartbeatInterval until a BootNotification answer says otherwise.
DEFAULT_HEARTBEAT_SECONDS = 300.0
Timestamp = datetime | str | None


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction this charger started and has not stopped yet."""

    transaction_id: int
    connector_id: int
    id_tag: str
    meter_start: int


class V16Charger:
    """A charge point speaking OCPP 1.6J to a CSMS.

    Message methods return the CSMS answer as a camelCase dict exactly as received, and raise
    `simulators.errors.SimulatorError` subclasses: `CallErrorReceived` for a CALLERROR,
    `NotConnectedError` when offline (except transaction messages, which are queued).
    """

    def __init__(
        self,
        options: ChargerOptions,
        *,
        sink: Sink = discard,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        if options.version != "1.6":
            raise OptionsError(f"V16Charger plays OCPP 1.6, not {options.version}")
        self.options = options
        self.id = options.charger_id
        self.tally = Tally()
        self.station = Station(
            options.connectors,
            rng if rng is not None else random.Random(options.seed),
            rated_current_a=options.rated_current_a,
        )
        self.configuration = Configuration.defaults(
            connectors=options.connectors,
            heartbeat_interval=DEFAULT_HEARTBEAT_SECONDS,
            meter_interval=options.meter_interval,
        )
        self.sessions = SessionBook()
        self._jitter = random.Random(None if options.seed is None else options.seed + 1)
        self.boot_status: str | None = None
        self._sink = sink
        self._clock = clock
        self._last_advance = clock()
        self._queue = OfflineQueue()
        self._transactions: dict[int, OpenTransaction] = {}
        self._requests = RequestHandler(self)
        self._link: Link | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tx_lock = asyncio.Lock()
        self._online = asyncio.Event()
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        self._ready = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()

    # -- connection ---------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._link is not None and not self._link.closed

    @property
    def booted(self) -> bool:
        """True once a BootNotification was accepted (until a reset)."""
        return self._booted.is_set()

    async def connect(self) -> None:
        """Open the websocket; raises `ConnectError` with a one-line reason."""
        if self.online:
            return
        link = await open_link(
            self.options.endpoint,
            self.id,
            self.options.password,
            self._requests,
            self.spawn,
            response_timeout=self.options.response_timeout,
        )
        self._link = link
        self._lost.clear()
        self._reader = asyncio.create_task(self._read(link), name=f"{self.id} reader")
        self._online.set()
        self.report(StepKind.CONNECTED, f"connected to {self.options.endpoint}")

    async def close(self) -> None:
        """Stop everything this charger runs and close the websocket."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        was_online = self.online
        await self.disconnect()
        if was_online:
            self.report(StepKind.DISCONNECTED, "disconnected")

    async def go_offline(self) -> None:
        """Lose the connection on purpose; transaction messages are queued until `reconnect()`."""
        await self.disconnect()
        self.report(StepKind.DISCONNECTED, "offline: transaction messages are queued")

    async def disconnect(self) -> None:
        """Close the websocket on purpose; tasks keep running and no reconnect follows."""
        link, reader = self._link, self._reader
        self._link, self._reader = None, None
        self._online.clear()
        if link is not None:
            await link.close()
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.gather(reader, return_exceptions=True)

    async def reconnect(self, *, boot: bool = False) -> list[Delivery]:
        """Connect again (optionally boot) and send the queued messages in order."""
        await self.connect()
        if boot:
            await self.boot()
        return await self.flush()

    async def flush(self) -> list[Delivery]:
        """Send the offline queue; stops early (keeping the rest) if the connection drops."""
        delivered: list[Delivery] = []
        async with self._tx_lock:
            while (item := self._queue.head()) is not None:
                try:
                    answer = await self._call(item.action, item.payload)
                except NotConnectedError:
                    break
                except SimulatorError as exc:
                    self._queue.pop()
                    delivered.append(Delivery(item.action, item.payload, None, str(exc)))
                    self.report(StepKind.ERROR, f"queued {item.action} failed: {exc}")
                    continue
                self._queue.pop()
                if item.provisional_id is not None:
                    self._resolve(item.provisional_id, int(answer["transactionId"]))
                delivered.append(Delivery(item.action, item.payload, answer, None))
        if delivered:
            self.report(StepKind.QUEUE_FLUSHED, f"sent {len(delivered)} queued messages")
        return delivered

    @property
    def queued(self) -> tuple[QueuedMessage, ...]:
        """Transaction messages waiting for the connection, oldest first."""
        return self._queue.messages

    def real_transaction_id(self, transaction_id: int) -> int:
        """The CSMS id for a provisional (negative, offline) id once known; others unchanged."""
        return self._queue.real_id(transaction_id)

    async def wait_online(self) -> None:
        await self._online.wait()

    async def wait_lost(self) -> None:
        """Wait until the connection drops without us closing it."""
        await self._lost.wait()

    async def wait_booted(self, seconds: float | None = None) -> bool:
        """Wait up to `seconds` for an accepted boot; True if there is one."""
        try:
            await asyncio.wait_for(self._booted.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def set_ready(self) -> None:
        """Booted and connectors announced: the script may start sessions."""
        self._ready.set()

    async def wait_ready(self) -> None:
        """Wait until connected, booted and announced (see `set_ready`)."""
        while not (self.online and self._ready.is_set()):
            await self._online.wait()
            await self._ready.wait()

    def forget_boot(self) -> None:
        """A reboot is under way: the next BootNotification must be accepted again."""
        self._booted.clear()
        self._ready.clear()
        self.boot_status = None

    async def __aenter__(self) -> V16Charger:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- messages to the CSMS -----------------------------------------------------------

    async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Any charge-point-initiated action with a camelCase payload; never queued."""
        return await self._call(action, payload)

    async def boot(self) -> dict[str, Any]:
        opts = self.options
        answer = await self._call(
            "BootNotification",
            {
                "chargePointVendor": opts.vendor,
                "chargePointModel": opts.model,
                "chargePointSerialNumber": opts.serial_number[:25],
                "chargeBoxSerialNumber": opts.serial_number[:25],
                "firmwareVersion": opts.firmware,
                "meterType": "SimMeter 3P",
                "meterSerialNumber": f"M-{opts.serial_number}"[:25],
            },
        )
        self._booted_with(answer)
        return answer

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call("Heartbeat", {})

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        info: str | None = None,
        timestamp: Timestamp = None,
    ) -> dict[str, Any]:
        """StatusNotification; a valid status is also recorded in the station model."""
        known = status in set(ConnectorStatus)
        if known and (connector_id == 0 or self.station.has_connector(connector_id)):
            self._advance()
            self.station.set_status(connector_id, ConnectorStatus(status))
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "errorCode": error_code,
            "status": status,
            "timestamp": self._stamp(timestamp),
        }
        if info is not None:
            payload["info"] = info
        return await self._call("StatusNotification", payload)

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        return await self._call("Authorize", {"idTag": id_tag})

    async def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: Timestamp = None,
        reservation_id: int | None = None,
    ) -> dict[str, Any]:
        """StartTransaction; offline it is queued and the answer carries a provisional
        (negative) transactionId with idTagInfo Accepted."""
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start,
            "timestamp": self._stamp(timestamp),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        answer = await self._transactional("StartTransaction", payload)
        tx = int(answer["transactionId"])
        self._transactions[tx] = OpenTransaction(tx, connector_id, id_tag, meter_start)
        return answer

    async def stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        timestamp: Timestamp = None,
        id_tag: str | None = None,
        reason: str | None = None,
        transaction_data: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """StopTransaction; offline it is queued and the answer is `{}`."""
        tx = self._queue.real_id(transaction_id)
        payload: dict[str, Any] = {
            "transactionId": tx,
            "meterStop": meter_stop,
            "timestamp": self._stamp(timestamp),
        }
        if id_tag is not None:
            payload["idTag"] = id_tag
        if reason is not None:
            payload["reason"] = reason
        if transaction_data is not None:
            payload["transactionData"] = [dict(entry) for entry in transaction_data]
        answer = await self._transactional("StopTransaction", payload)
        self._transactions.pop(tx, None)
        return answer

    async def meter_values(
        self,
        connector_id: int,
        transaction_id: int | None = None,
        meter_value: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """MeterValues with the given `meterValue` list, or one fresh sample of the station.

        With a transaction id it is a transaction message (queued when offline)."""
        values = (
            [dict(entry) for entry in meter_value]
            if meter_value is not None
            else [self.sample(connector_id)]
        )
        payload: dict[str, Any] = {"connectorId": connector_id, "meterValue": values}
        if transaction_id is None:
            return await self._call("MeterValues", payload)
        payload["transactionId"] = self._queue.real_id(transaction_id)
        return await self._transactional("MeterValues", payload)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        return await self._call("DataTransfer", payload)

    async def firmware_status(self, status: str) -> dict[str, Any]:
        return await self._call("FirmwareStatusNotification", {"status": status})

    async def diagnostics_status(self, status: str) -> dict[str, Any]:
        return await self._call("DiagnosticsStatusNotification", {"status": status})

    async def send_raw(self, text: str, timeout: float = 5.0) -> str | None:  # noqa: ASYNC109
        """Send any text frame on the socket; return the reply frame as received, or None
        when nothing came within `timeout`. Raises `NotConnectedError` if the CSMS closes."""
        link = self._link
        if link is None or link.closed:
            raise NotConnectedError(f"{self.id} is not connected")
        return await link.send_raw(text, timeout)

    # -- station ------------------------------------------------------------------------

    def reading(self, connector_id: int) -> Reading:
        """The meter of a connector now (time since the last look is counted first)."""
        self._advance()
        return self.station.reading(connector_id)

    def sample(
        self,
        connector_id: int,
        context: str = "Sample.Periodic",
        measurands: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """One `meterValue` entry of the connector now; measurands default to
        MeterValuesSampledData."""
        chosen = measurands or self.configuration.items("MeterValuesSampledData")
        return meter_value(self.reading(connector_id), self._stamp(None), chosen, context)

    @property
    def open_transactions(self) -> Mapping[int, OpenTransaction]:
        return dict(self._transactions)

    @property
    def heartbeat_interval(self) -> float:
        return self.configuration.seconds("HeartbeatInterval")

    @property
    def meter_interval(self) -> float:
        return self.configuration.seconds("MeterValueSampleInterval")

    def heartbeat_changed(self) -> None:
        self._heartbeat_changed.set()

    async def wait_heartbeat_change(self, seconds: float | None) -> bool:
        """Wait `seconds` (None: forever); True if HeartbeatInterval changed meanwhile."""
        try:
            await asyncio.wait_for(self._heartbeat_changed.wait(), seconds)
        except TimeoutError:
            return False
        self._heartbeat_changed.clear()
        return True

    # -- scripted run, tasks, reporting -------------------------------------------------

    async def run(self) -> Summary:
        """The scripted charger of the CLI: see `simulators.v16_script.run_script`."""
        return await run_script(self)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str | None = None) -> asyncio.Task[None]:
        """Run a coroutine as a task owned by this charger; `close()` cancels it."""
        task = asyncio.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def jittered(self, seconds: float) -> float:
        """`seconds` give or take 20 %, so that many chargers do not retry in lockstep."""
        return seconds * self._jitter.uniform(0.8, 1.2)

    def report(self, kind: StepKind, text: str) -> None:
        step = Step(self.id, kind, text)
        self.tally.count(step)
        self._sink(step)

    # -- internals ----------------------------------------------------------------------

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except NotConnectedError:
            pass
        except SimulatorError as exc:
            self.report(StepKind.ERROR, str(exc))
        except Exception:  # task boundary: report and keep the charger alive
            log.exception("%s: background task failed", self.id)
            self.report(StepKind.ERROR, "internal error in a background task (see log)")

    async def _read(self, link: Link) -> None:
        try:
            await link.serve()
        except Exception:  # task boundary
            log.exception("%s: reading from the CSMS failed", self.id)
            with contextlib.suppress(Exception):
                await link.close()
        finally:
            if self._link is link:  # not closed by us: the connection was lost
                self._link = None
                self._online.clear()
                self._lost.set()
                self.report(StepKind.DISCONNECTED, "connection lost")

    async def _call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        link = self._link
        if link is None or link.closed:
            raise NotConnectedError(f"{self.id} is not connected")
        return await link.call(action, payload)

    async def _transactional(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send now if connected and nothing is queued before it; otherwise queue it."""
        async with self._tx_lock:
            if self.online and not self._queue:
                with contextlib.suppress(NotConnectedError):
                    return await self._call(action, payload)
            if action == "StartTransaction":
                provisional = self._queue.push_start(payload)
                return {"transactionId": provisional, "idTagInfo": {"status": "Accepted"}}
            self._queue.push(action, payload)
            return {}

    def _resolve(self, provisional: int, real: int) -> None:
        self._queue.resolve(provisional, real)
        record = self._transactions.pop(provisional, None)
        if record is not None:
            self._transactions[real] = OpenTransaction(
                real, record.connector_id, record.id_tag, record.meter_start
            )
        self.sessions.retarget(provisional, real)

    def _booted_with(self, answer: Mapping[str, Any]) -> None:
        status = str(answer.get("status"))
        interval = int(answer.get("interval", 0))
        self.boot_status = status
        if status == "Accepted":
            if interval > 0:
                self.configuration.set("HeartbeatInterval", str(interval))
                self._heartbeat_changed.set()
            self._booted.set()
            self.report(StepKind.BOOT_ACCEPTED, f"boot Accepted heartbeat={interval}s")
        else:
            self.report(StepKind.BOOT_REFUSED, f"boot {status} interval={interval}s")

    def _advance(self) -> None:
        now = self._clock()
        seconds = (now - self._last_advance).total_seconds()
        if seconds > 0:
            self.station.advance(seconds)
            self._last_advance = now

    def _stamp(self, timestamp: Timestamp) -> str:
        if isinstance(timestamp, str):
            return timestamp
        return wire_time(timestamp if timestamp is not None else self._clock())
