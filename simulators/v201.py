"""`V201Charger`: one simulated OCPP 2.0.1 charging station with its messages, device model,
transactions and offline queue.

Connection and bookkeeping come from `ChargerBase`; the scripted run is in `v201_script`, answers
to CSMS requests in `v201_requests`, sessions in `v201_session`, payloads in `v201_transaction`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any

from simulators.charger import ChargerBase, Timestamp
from simulators.clock import Clock, utc_now
from simulators.errors import NotConnectedError, SimulatorError
from simulators.events import Sink, StepKind, Summary, discard
from simulators.link import OCPP201
from simulators.offline import Delivery, QueuedMessage
from simulators.options import ChargerOptions
from simulators.sessions import SessionBook, SessionControl
from simulators.station import OCCUPIED, ConnectorStatus
from simulators.v201_device import ComponentKey, DeviceModel, VariableKey
from simulators.v201_meter import energy_value, meter_value
from simulators.v201_offline import FlushOrder, SequenceCounter, TransactionEventQueue
from simulators.v201_requests import RequestHandler
from simulators.v201_script import run_script
from simulators.v201_session import charge
from simulators.v201_transaction import (
    OpenTransaction,
    charging_needs,
    connector_status,
    ended_event,
    model_status,
    started_event,
    station_status,
    stop_trigger,
    updated_event,
)
from simulators.v201_transaction import id_token as token_dict

__all__ = ["ChargerOptions", "FlushOrder", "OpenTransaction", "V201Charger"]

#: HeartbeatInterval until a BootNotification answer says otherwise.
DEFAULT_HEARTBEAT_SECONDS = 300.0
TRANSACTION_EVENT = "TransactionEvent"


class V201Charger(ChargerBase):
    """A charging station speaking OCPP 2.0.1 to a CSMS; its EVSEs are 1..`connectors`, each
    with one connector (id 1).

    Message methods take and return camelCase dicts exactly as on the wire, and raise
    `simulators.errors.SimulatorError` subclasses: `CallErrorReceived` for a CALLERROR,
    `NotConnectedError` when offline (except TransactionEvents, which are queued).
    """

    dialect = OCPP201

    def __init__(
        self,
        options: ChargerOptions,
        *,
        sink: Sink = discard,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(options, sink=sink, clock=clock, rng=rng)
        self.device = DeviceModel.defaults(
            evses=options.connectors,
            heartbeat_interval=DEFAULT_HEARTBEAT_SECONDS,
            meter_interval=options.meter_interval,
            vendor=options.vendor[:50],
            model=options.model[:20],
            serial_number=options.serial_number[:25],
            firmware=options.firmware[:50],
            rated_power_w=self.station.connector(1).rated_power_w,
            local_list_max_length=self.local_list.max_length,
            signed_readings=self.signed_meter is not None,
        )
        self.sessions: SessionBook[str] = SessionBook()
        #: seqNo of TransactionEvents: one counter for the station, kept across reconnects.
        self.seq = SequenceCounter()
        #: Reason of the next BootNotification sent without one (RemoteReset after a Reset,
        #: FirmwareUpdate after installing firmware).
        self.next_boot_reason = "PowerUp"
        #: requestId of the firmware update or log upload under way (for triggered statuses).
        self.firmware_request_id: int | None = None
        self.upload_request_id: int | None = None
        self._queue = TransactionEventQueue()
        self._shuffle = random.Random(None if options.seed is None else options.seed + 2)
        self._transactions: dict[str, OpenTransaction] = {}
        self._requests = RequestHandler(self)
        self._tx_lock = asyncio.Lock()
        self._no_transactions = asyncio.Event()
        self._no_transactions.set()

    # -- offline queue ------------------------------------------------------------------

    async def flush(self, order: FlushOrder | str = FlushOrder.QUEUED) -> list[Delivery]:
        """Send the queued TransactionEvents: as queued (seqNo order), or `"reverse"` /
        `"shuffled"` to test how the CSMS reorders. Stops early (keeping the rest) if the
        connection drops; an event the CSMS refuses is dropped and reported."""
        chosen = FlushOrder(order)
        delivered: list[Delivery] = []
        async with self._tx_lock:
            for item in self._queue.plan(chosen, self._shuffle):
                payload = item.message.payload
                try:
                    answer = await self._call(TRANSACTION_EVENT, payload, validate=item.validate)
                except NotConnectedError:
                    break
                except SimulatorError as exc:
                    self._queue.remove(item)
                    delivered.append(Delivery(TRANSACTION_EVENT, payload, None, str(exc)))
                    self.report(StepKind.ERROR, f"queued {TRANSACTION_EVENT} failed: {exc}")
                    continue
                self._queue.remove(item)
                delivered.append(Delivery(TRANSACTION_EVENT, payload, answer, None))
        if delivered:
            self.report(StepKind.QUEUE_FLUSHED, f"sent {len(delivered)} queued messages")
        return delivered

    async def reconnect(
        self, *, boot: bool = False, order: FlushOrder | str = FlushOrder.QUEUED
    ) -> list[Delivery]:
        """Connect again (optionally boot) and send the queued events in `order`."""
        await self.connect()
        if boot:
            await self.boot()
        return await self.flush(order)

    @property
    def queued(self) -> tuple[QueuedMessage, ...]:
        """TransactionEvents waiting for the connection, oldest first, as they will be sent."""
        return self._queue.messages

    def has_queued(self, transaction_id: str | None = None) -> bool:
        """Whether events (of one transaction, or any) wait for the connection."""
        return self._queue.holds(transaction_id) if transaction_id else bool(self._queue)

    # -- messages to the CSMS -----------------------------------------------------------

    async def boot(self, reason: str | None = None) -> dict[str, Any]:
        """BootNotification with `reason` (default `next_boot_reason`: PowerUp, or
        RemoteReset after a Reset)."""
        opts = self.options
        firmware = self.firmware_version[:50]
        self.device.set(ComponentKey("ChargingStation"), VariableKey("FirmwareVersion"), firmware)
        answer = await self._call(
            "BootNotification",
            {
                "chargingStation": {
                    "model": opts.model[:20],
                    "vendorName": opts.vendor[:50],
                    "serialNumber": opts.serial_number[:25],
                    "firmwareVersion": firmware,
                },
                "reason": reason or self.next_boot_reason,
            },
        )
        self._booted_with(answer)
        return answer

    async def status(
        self,
        evse_id: int,
        connector_id: int,
        connector_status: str,
        timestamp: Timestamp = None,
    ) -> dict[str, Any]:
        """StatusNotification; a valid status of a known EVSE is also recorded in the model."""
        if connector_id == 1 and self.station.has_connector(evse_id):
            current = self.station.status(evse_id)
            new = station_status(connector_status, current)
            if new is not None and new is not current:
                self._advance()
                self.station.set_status(evse_id, new)
                self.apply_charging_limits()  # a station maximum is shared anew
        payload = {
            "timestamp": self._stamp(timestamp),
            "connectorStatus": connector_status,
            "evseId": evse_id,
            "connectorId": connector_id,
        }
        return await self._call("StatusNotification", payload)

    async def authorize(self, id_token: str, token_type: str = "ISO14443") -> dict[str, Any]:
        return await self._call("Authorize", {"idToken": token_dict(id_token, token_type)})

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
    ) -> tuple[str, dict[str, Any]]:
        """TransactionEvent Started with a new uuid4 transactionId, the next seqNo, the EVSE,
        the idToken (None: started before authorization, e.g. trigger CablePluggedIn with
        charging state EVConnected) and the start register (context Transaction.Begin).

        A reservation of the EVSE for this token is used up (its id sent as reservationId);
        a reservation id given is ended too.
        Returns the transaction id and the CSMS answer (`{}` when queued offline)."""
        transaction_id = str(uuid.uuid4())
        token = None if id_token is None else token_dict(id_token, token_type)
        if reservation_id is None:
            reservation_id = None if id_token is None else self.use_reservation(evse_id, id_token)
        else:
            self.reservations.remove(reservation_id)
        if self.station.has_connector(evse_id):
            self._advance()
            self.profiles.transaction_started(evse_id, self.now())
        tx = OpenTransaction(
            transaction_id,
            evse_id,
            connector_id,
            token,
            meter_start_wh,
            remote_start_id,
            reservation_id,
        )
        stamp = self._stamp(timestamp)
        values = (
            list(meter_value)
            if meter_value is not None
            else [energy_value(meter_start_wh, stamp, "Transaction.Begin")]
        )
        self._transactions[transaction_id] = tx
        self._no_transactions.clear()
        self._charging(evse_id, charging_state)
        payload = started_event(
            tx,
            seq_no=self.seq.take(),
            timestamp=stamp,
            trigger_reason=trigger_reason,
            charging_state=charging_state,
            meter_value=values,
        )
        return transaction_id, await self._transactional(payload)

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
    ) -> dict[str, Any]:
        """TransactionEvent Updated with the next seqNo: `meter_value` entries as given, or the
        register `meter_wh` (context Trigger or Sample.Periodic), or no meter value; an idToken
        authorizes a transaction started without one."""
        stamp = self._stamp(timestamp)
        if meter_value is not None:
            values = list(meter_value)
        elif meter_wh is not None:
            context = "Trigger" if trigger_reason == "Trigger" else "Sample.Periodic"
            values = [energy_value(meter_wh, stamp, context)]
        else:
            values = []
        token = None if id_token is None else token_dict(id_token, token_type)
        record = self._transactions.get(transaction_id)
        if record is not None:
            if token is not None and record.id_token is None:
                record = replace(record, id_token=token)
            if remote_start_id is not None:
                record = replace(record, remote_start_id=remote_start_id)
            self._transactions[transaction_id] = record
            self._charging(record.evse_id, charging_state)
        payload = updated_event(
            transaction_id,
            seq_no=self.seq.take(),
            timestamp=stamp,
            trigger_reason=trigger_reason,
            charging_state=charging_state,
            token=token,
            remote_start_id=remote_start_id,
            meter_value=values,
        )
        return await self._transactional(payload)

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
    ) -> dict[str, Any]:
        """TransactionEvent Ended with the next seqNo, chargingState Idle, `stopped_reason`,
        and the stop register (context Transaction.End) unless `meter_value` is given.
        `trigger_reason` defaults to the one that goes with the reason (Local: StopAuthorized,
        Remote: RemoteStop, DeAuthorized: Deauthorized, ImmediateReset: ResetCommand)."""
        stamp = self._stamp(timestamp)
        values = (
            list(meter_value)
            if meter_value is not None
            else [energy_value(meter_stop_wh, stamp, "Transaction.End")]
        )
        record = self._transactions.pop(transaction_id, None)
        if not self._transactions:
            self._no_transactions.set()
        if record is not None and self.station.has_connector(record.evse_id):
            self._advance()
            if self.station.status(record.evse_id) in OCCUPIED:
                self.station.set_status(record.evse_id, ConnectorStatus.FINISHING)
            self.profiles.end_transaction(record.evse_id)
            self.apply_charging_limits()
        payload = ended_event(
            transaction_id,
            seq_no=self.seq.take(),
            timestamp=stamp,
            trigger_reason=trigger_reason or stop_trigger(stopped_reason),
            stopped_reason=stopped_reason,
            token=None if id_token is None else token_dict(id_token, token_type),
            meter_value=values,
        )
        return await self._transactional(payload)

    async def transaction_event(
        self, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        """Any TransactionEvent as given (seqNo and timestamp are added only when missing);
        queued like the others when offline (with `offline: true` unless the payload says).
        It does not touch the open transactions; `validate=False` sends broken payloads."""
        event = dict(payload)
        if "seqNo" not in event:
            event["seqNo"] = self.seq.take()
        if "timestamp" not in event:
            event["timestamp"] = self._stamp(None)
        return await self._transactional(event, validate=validate)

    async def meter_values(
        self, evse_id: int, meter_value: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """MeterValues (outside transactions; never queued) with the given entries, or one
        fresh sample of the EVSE (for EVSE 0: the station's total energy register)."""
        if meter_value is not None:
            values = [dict(entry) for entry in meter_value]
        elif evse_id == 0:
            self._advance()
            total = sum(self.station.connector(cid).meter_wh for cid in self.station.connector_ids)
            values = [energy_value(total, self._stamp(None), "Sample.Periodic")]
        else:
            values = [self.sample(evse_id)]
        return await self._call("MeterValues", {"evseId": evse_id, "meterValue": values})

    async def notify_charging_needs(
        self, evse_id: int, departure: Timestamp, energy_wh: int
    ) -> dict[str, Any]:
        """NotifyEVChargingNeeds of the vehicle on an EVSE (its phases and onboard charger's
        current; the rated current when none is plugged in): leaving at `departure`,
        wanting `energy_wh`."""
        connector = self.station.connector(evse_id)
        vehicle = connector.vehicle
        max_current = connector.rated_current_a if vehicle is None else vehicle.max_current_a
        payload = charging_needs(
            evse_id,
            phases=connector.phases_available,
            departure=self._stamp(departure),
            energy_wh=energy_wh,
            max_current_a=max_current,
        )
        return await self._call("NotifyEVChargingNeeds", payload)

    async def notify_report(
        self,
        request_id: int,
        report_data: Sequence[Mapping[str, Any]],
        seq_no: int = 0,
        tbc: bool = False,
        generated_at: Timestamp = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "requestId": request_id,
            "generatedAt": self._stamp(generated_at),
            "seqNo": seq_no,
            "tbc": tbc,
        }
        if report_data:
            payload["reportData"] = [dict(entry) for entry in report_data]
        return await self._call("NotifyReport", payload)

    async def notify_event(
        self,
        event_data: Sequence[Mapping[str, Any]],
        seq_no: int = 0,
        tbc: bool = False,
        generated_at: Timestamp = None,
    ) -> dict[str, Any]:
        payload = {
            "generatedAt": self._stamp(generated_at),
            "seqNo": seq_no,
            "tbc": tbc,
            "eventData": [dict(entry) for entry in event_data],
        }
        return await self._call("NotifyEvent", payload)

    async def security_event(
        self, event_type: str, timestamp: Timestamp = None, tech_info: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": event_type, "timestamp": self._stamp(timestamp)}
        if tech_info is not None:
            payload["techInfo"] = tech_info
        return await self._call("SecurityEventNotification", payload)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        return await self._call("DataTransfer", payload)

    async def firmware_status(self, status: str, request_id: int | None = None) -> dict[str, Any]:
        """FirmwareStatusNotification; the status is kept as `firmware_state`."""
        self.firmware_state = status
        payload: dict[str, Any] = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        return await self._call("FirmwareStatusNotification", payload)

    async def log_status(self, status: str, request_id: int | None = None) -> dict[str, Any]:
        """LogStatusNotification; the status is kept as `upload_state`."""
        self.upload_state = status
        payload: dict[str, Any] = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        return await self._call("LogStatusNotification", payload)

    async def reservation_status(self, reservation_id: int, status: str) -> dict[str, Any]:
        """ReservationStatusUpdate (Expired or Removed)."""
        payload = {"reservationId": reservation_id, "reservationUpdateStatus": status}
        return await self._call("ReservationStatusUpdate", payload)

    # -- station ------------------------------------------------------------------------

    def sample(
        self,
        evse_id: int,
        context: str = "Sample.Periodic",
        measurands: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """One `meterValue` entry of the EVSE now; measurands default to
        SampledDataCtrlr.TxUpdatedMeasurands."""
        chosen = measurands or self.device.items("SampledDataCtrlr", "TxUpdatedMeasurands")
        return meter_value(self.reading(evse_id), self._stamp(None), chosen, context)

    def wire_status(self, evse_id: int) -> str:
        """The connectorStatus of an EVSE's connector as StatusNotification reports it."""
        return connector_status(self.station.status(evse_id))

    @property
    def open_transactions(self) -> Mapping[str, OpenTransaction]:
        return dict(self._transactions)

    def transaction_on(self, evse_id: int) -> OpenTransaction | None:
        for record in self._transactions.values():
            if record.evse_id == evse_id:
                return record
        return None

    async def wait_idle(self) -> None:
        """Wait until no session runs and no transaction is open."""
        while self.sessions.all() or self._transactions:
            await self._no_transactions.wait()
            await self.sessions.wait_idle(None)

    def connector_busy(self, connector_id: int) -> bool:
        return (
            self.sessions.on_connector(connector_id) is not None
            or self.transaction_on(connector_id) is not None
        )

    def local_list_enabled(self) -> bool:
        return self.device.flag("LocalAuthListCtrlr", "Enabled")

    @property
    def pre_authorize(self) -> bool:
        return self.device.flag("AuthCtrlr", "LocalPreAuthorize")

    def start_session(
        self, evse_id: int, id_token: str, seconds: float | None = None
    ) -> SessionControl[str] | None:
        """A driver presents `id_token` at an EVSE and charges for `seconds` (None: until
        stopped), as the scripted sessions do. None when the EVSE cannot take a session
        (unknown, busy, inoperative); a reserved EVSE refuses other tokens as the session
        starts (reported as session_refused)."""
        if not self.station.has_connector(evse_id) or not self.connector_free(evse_id):
            return None
        control = self.sessions.open(evse_id, id_token)
        self.spawn(_played(charge(self, control, seconds)), name=f"{self.id} session")
        return control

    @property
    def heartbeat_interval(self) -> float:
        return self.device.seconds("OCPPCommCtrlr", "HeartbeatInterval")

    @property
    def meter_interval(self) -> float:
        """SampledDataCtrlr.TxUpdatedInterval: seconds between Updated meter events."""
        return self.device.seconds("SampledDataCtrlr", "TxUpdatedInterval")

    def sync_device_model(self) -> None:
        """Copy the availability of the station, EVSEs and connectors, and how many local-list
        entries and charging profiles it holds, into the device model."""
        station_state = connector_status(self.station.status(0))
        self.device.set_availability(ComponentKey("ChargingStation"), station_state)
        self.device.set(
            ComponentKey("LocalAuthListCtrlr"), VariableKey("Entries"), str(len(self.local_list))
        )
        self.device.set(
            ComponentKey("SmartChargingCtrlr"),
            VariableKey("Entries", "ChargingProfiles"),
            str(len(self.profiles)),
        )
        for evse_id in self.station.connector_ids:
            state = self.wire_status(evse_id)
            for component in (
                ComponentKey("EVSE", evse_id=evse_id),
                ComponentKey("Connector", evse_id=evse_id, connector_id=1),
            ):
                self.device.set_availability(component, state)

    # -- scripted run -------------------------------------------------------------------

    async def run(self) -> Summary:
        """The scripted station of the CLI: see `simulators.script.run_script`."""
        return await run_script(self)

    # -- internals ----------------------------------------------------------------------

    async def _transactional(
        self, payload: dict[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        """Send now if connected and nothing is queued before it; otherwise queue it (marked
        `offline` when the station was offline as it happened)."""
        happened_offline = not self.online
        async with self._tx_lock:
            if self.online and not self._queue:
                with contextlib.suppress(NotConnectedError):
                    return await self._call(TRANSACTION_EVENT, payload, validate=validate)
            if happened_offline and "offline" not in payload:
                payload = {**payload, "offline": True}
            self._queue.push(payload, validate=validate)
            return {}

    def _charging(self, evse_id: int, charging_state: str | None) -> None:
        if charging_state is None or not self.station.has_connector(evse_id):
            return
        status = model_status(charging_state)
        if status is not None and status is not self.station.status(evse_id):
            self._advance()
            self.station.set_status(evse_id, status)
            self.apply_charging_limits()  # a station maximum is shared anew

    def _set_heartbeat_interval(self, seconds: int) -> None:
        self.device.set(
            ComponentKey("OCPPCommCtrlr"), VariableKey("HeartbeatInterval"), str(seconds)
        )


async def _played(session: Coroutine[Any, Any, bool]) -> None:
    await session
