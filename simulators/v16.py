"""`V16Charger`: one simulated OCPP 1.6J charge point with its connection, messages and queue.

Connection and bookkeeping come from `ChargerBase`; the scripted run is in `v16_script`, answers
to CSMS requests in `v16_requests`, sessions in `v16_session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from simulators.charger import LOCAL_LIST_MAX_LENGTH, ChargerBase, Timestamp
from simulators.clock import Clock, utc_now
from simulators.errors import NotConnectedError, SimulatorError
from simulators.events import Sink, StepKind, Summary, discard
from simulators.link import OCPP16
from simulators.options import ChargerOptions
from simulators.station import ConnectorStatus
from simulators.v16_config import Configuration
from simulators.v16_meter import meter_value
from simulators.v16_offline import Delivery, OfflineQueue, QueuedMessage
from simulators.v16_requests import RequestHandler
from simulators.v16_script import run_script
from simulators.v16_session import OpenTransaction, SessionBook, SessionControl, charge

__all__ = ["ChargerOptions", "OpenTransaction", "V16Charger"]

#: HeartbeatInterval until a BootNotification answer says otherwise.
DEFAULT_HEARTBEAT_SECONDS = 300.0


class V16Charger(ChargerBase):
    """A charge point speaking OCPP 1.6J to a CSMS.

    Message methods return the CSMS answer as a camelCase dict exactly as received, and raise
    `simulators.errors.SimulatorError` subclasses: `CallErrorReceived` for a CALLERROR,
    `NotConnectedError` when offline (except transaction messages, which are queued).
    """

    dialect = OCPP16

    def __init__(
        self,
        options: ChargerOptions,
        *,
        sink: Sink = discard,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(options, sink=sink, clock=clock, rng=rng)
        self.configuration = Configuration.defaults(
            connectors=options.connectors,
            heartbeat_interval=DEFAULT_HEARTBEAT_SECONDS,
            meter_interval=options.meter_interval,
            local_list_max_length=LOCAL_LIST_MAX_LENGTH,
            meter_public_key=None
            if self.signed_meter is None
            else self.signed_meter.public_key_hex,
        )
        self.sessions: SessionBook[int] = SessionBook()
        self._queue = OfflineQueue()
        self._transactions: dict[int, OpenTransaction] = {}
        self._requests = RequestHandler(self)
        self._tx_lock = asyncio.Lock()
        self._no_transactions = asyncio.Event()
        self._no_transactions.set()

    # -- offline queue -----------------------------------------------------------------

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

    # -- messages to the CSMS -----------------------------------------------------------

    async def boot(self) -> dict[str, Any]:
        opts = self.options
        answer = await self._call(
            "BootNotification",
            {
                "chargePointVendor": opts.vendor,
                "chargePointModel": opts.model,
                "chargePointSerialNumber": opts.serial_number[:25],
                "chargeBoxSerialNumber": opts.serial_number[:25],
                "firmwareVersion": self.firmware_version[:50],
                "meterType": f"SimMeter {opts.phases}P",
                "meterSerialNumber": f"M-{opts.serial_number}"[:25],
            },
        )
        self._booted_with(answer)
        return answer

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
            self.apply_charging_limits()  # a station maximum is shared anew
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
        (negative) transactionId with idTagInfo Accepted.

        A reservation of the connector for this tag is used up (its id sent as reservationId);
        a reservation id given is ended too."""
        if reservation_id is None:
            reservation_id = self.use_reservation(connector_id, id_tag)
        else:
            self.reservations.remove(reservation_id)
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start,
            "timestamp": self._stamp(timestamp),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        if self.station.has_connector(connector_id):
            self._advance()
            self.profiles.transaction_started(connector_id, self.now())
        answer = await self._transactional("StartTransaction", payload)
        tx = int(answer["transactionId"])
        self._transactions[tx] = OpenTransaction(tx, connector_id, id_tag, meter_start)
        self._no_transactions.clear()
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
        record = self._transactions.pop(tx, None)
        if not self._transactions:
            self._no_transactions.set()
        if record is not None and self.station.has_connector(record.connector_id):
            self._advance()
            self.profiles.end_transaction(record.connector_id)
            self.apply_charging_limits()
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
        """FirmwareStatusNotification; the status is kept as `firmware_state`."""
        self.firmware_state = status
        return await self._call("FirmwareStatusNotification", {"status": status})

    async def diagnostics_status(self, status: str) -> dict[str, Any]:
        """DiagnosticsStatusNotification; the status is kept as `upload_state`."""
        self.upload_state = status
        return await self._call("DiagnosticsStatusNotification", {"status": status})

    # -- station ------------------------------------------------------------------------

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

    def transaction_on(self, connector_id: int) -> OpenTransaction | None:
        for record in self._transactions.values():
            if record.connector_id == connector_id:
                return record
        return None

    def connector_busy(self, connector_id: int) -> bool:
        return (
            self.sessions.on_connector(connector_id) is not None
            or self.transaction_on(connector_id) is not None
        )

    async def wait_idle(self) -> None:
        """Wait until no session runs and no transaction is open."""
        while self.sessions.all() or self._transactions:
            await self._no_transactions.wait()
            await self.sessions.wait_idle(None)

    def local_list_enabled(self) -> bool:
        return self.configuration.flag("LocalAuthListEnabled")

    @property
    def pre_authorize(self) -> bool:
        return self.configuration.flag("LocalPreAuthorize")

    def start_session(
        self, connector_id: int, id_tag: str, seconds: float | None = None
    ) -> SessionControl[int] | None:
        """A driver presents `id_tag` at a connector and charges for `seconds` (None: until
        stopped), as the scripted sessions do. None when the connector cannot take a session
        (unknown, busy, inoperative); a reserved connector refuses other tags as the session
        starts (reported as session_refused)."""
        if not self.station.has_connector(connector_id) or not self.connector_free(connector_id):
            return None
        control = self.sessions.open(connector_id, id_tag)
        self.spawn(_played(charge(self, control, seconds)), name=f"{self.id} session")
        return control

    @property
    def heartbeat_interval(self) -> float:
        return self.configuration.seconds("HeartbeatInterval")

    @property
    def meter_interval(self) -> float:
        return self.configuration.seconds("MeterValueSampleInterval")

    # -- scripted run ------------------------------------------------------------------

    async def run(self) -> Summary:
        """The scripted charger of the CLI: see `simulators.v16_script.run_script`."""
        return await run_script(self)

    # -- internals ----------------------------------------------------------------------

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

    def _set_heartbeat_interval(self, seconds: int) -> None:
        self.configuration.set("HeartbeatInterval", str(seconds))


async def _played(session: Coroutine[Any, Any, bool]) -> None:
    await session
