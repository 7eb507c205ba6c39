"""Answers of a simulated OCPP 2.0.1 station to CALLs from the CSMS, one `on_<action>` each.

Each handler decides the answer at once; any work that sends messages runs after the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulators.answers import Answers
from simulators.events import StepKind
from simulators.link import Reply
from simulators.station import OCCUPIED, ConnectorStatus
from simulators.v201_script import reboot
from simulators.v201_session import charge, end_open_transaction, is_free, notify_evse
from simulators.v201_transaction import Reservation, charging_state

if TYPE_CHECKING:
    from simulators.v201 import V201Charger

__all__ = ["RequestHandler"]

Payload = dict[str, Any]

#: Pause between the status notifications of a simulated firmware update or log upload.
STEP_SECONDS = 0.5
_FIRMWARE_STEPS = ("Downloading", "Downloaded", "Installing", "Installed")
_LOG_STEPS = ("Uploading", "Uploaded")


class RequestHandler(Answers["V201Charger"]):
    """Called by the link with (action, camelCase payload); returns the reply."""

    def __init__(self, cp: V201Charger) -> None:
        self._cp = cp
        self._handlers: dict[str, Callable[[Payload], Reply]] = {
            "GetVariables": self.on_get_variables,
            "SetVariables": self.on_set_variables,
            "GetBaseReport": self.on_get_base_report,
            "GetReport": self.on_get_report,
            "RequestStartTransaction": self.on_request_start_transaction,
            "RequestStopTransaction": self.on_request_stop_transaction,
            "Reset": self.on_reset,
            "UnlockConnector": self.on_unlock_connector,
            "ChangeAvailability": self.on_change_availability,
            "TriggerMessage": self.on_trigger_message,
            "ClearCache": self.on_clear_cache,
            "DataTransfer": self.on_data_transfer,
            "GetTransactionStatus": self.on_get_transaction_status,
            "SetChargingProfile": self.on_set_charging_profile,
            "ClearChargingProfile": self.on_clear_charging_profile,
            "ReserveNow": self.on_reserve_now,
            "CancelReservation": self.on_cancel_reservation,
            "UpdateFirmware": self.on_update_firmware,
            "GetLog": self.on_get_log,
        }

    # -- device model -------------------------------------------------------------------

    def on_get_variables(self, payload: Payload) -> Reply:
        self._cp.sync_device_model()
        return Reply(
            {"getVariableResult": self._cp.device.get_variables(payload["getVariableData"])}
        )

    def on_set_variables(self, payload: Payload) -> Reply:
        results, changed = self._cp.device.set_variables(payload["setVariableData"])
        if any(v.key.name == "HeartbeatInterval" for v in changed):
            self._cp.heartbeat_changed()
        return Reply({"setVariableResult": results})

    def on_get_base_report(self, payload: Payload) -> Reply:
        self._cp.sync_device_model()
        data = self._cp.device.report(str(payload["reportBase"]))
        return self._report(int(payload["requestId"]), data)

    def on_get_report(self, payload: Payload) -> Reply:
        """componentVariable selects; componentCriteria are not modelled (everything is
        Available and Enabled, nothing is Active or a Problem)."""
        self._cp.sync_device_model()
        data = self._cp.device.select(payload.get("componentVariable") or [])
        return self._report(int(payload["requestId"]), data)

    def _report(self, request_id: int, data: list[Payload]) -> Reply:
        if not data:
            return Reply({"status": "EmptyResultSet"})
        return Reply({"status": "Accepted"}, after=lambda: self._send_report(request_id, data))

    async def _send_report(self, request_id: int, data: list[Payload]) -> None:
        cp = self._cp
        size = max(1, int(cp.device.value("DeviceDataCtrlr", "ItemsPerMessage", "GetReport")))
        parts = [data[i : i + size] for i in range(0, len(data), size)]
        generated_at = cp.now()
        for seq_no, part in enumerate(parts):
            await cp.notify_report(
                request_id, part, seq_no, tbc=seq_no < len(parts) - 1, generated_at=generated_at
            )
        cp.report(StepKind.INFO, f"report {request_id} sent in {len(parts)} NotifyReport(s)")

    # -- transactions -------------------------------------------------------------------

    def on_request_start_transaction(self, payload: Payload) -> Reply:
        cp = self._cp
        token = payload["idToken"]
        tag, token_type = str(token["idToken"]), str(token["type"])
        remote_start_id = int(payload["remoteStartId"])
        wanted = payload.get("evseId")
        if wanted is not None:
            if not self._exists(wanted):
                return Reply({"status": "Rejected"})
            waiting = cp.transaction_on(wanted)
            if waiting is not None and waiting.id_token is None:  # EV plugged in first
                tx = waiting.transaction_id
                return Reply(
                    {"status": "Accepted", "transactionId": tx},
                    after=lambda: self._authorize_started(tx, tag, token_type, remote_start_id),
                )
            candidates: tuple[int, ...] = (wanted,)
        else:
            candidates = cp.station.connector_ids
        free = [evse_id for evse_id in candidates if is_free(cp, evse_id, tag)]
        if not free:
            return Reply({"status": "Rejected"})
        profile = payload.get("chargingProfile")
        if profile is not None:
            cp.profiles.install(free[0], profile)
            cp.apply_charging_limits()
        control = cp.sessions.open(free[0], tag)
        check = cp.device.flag("AuthCtrlr", "AuthorizeRemoteStart")

        async def play() -> None:
            await charge(
                cp,
                control,
                None,
                authorize=check,
                remote_start_id=remote_start_id,
                token_type=token_type,
            )

        return Reply({"status": "Accepted"}, after=play)

    async def _authorize_started(
        self, transaction_id: str, tag: str, token_type: str, remote_start_id: int
    ) -> None:
        cp = self._cp
        record = cp.open_transactions.get(transaction_id)
        if record is None:
            return
        cp.station.set_status(record.evse_id, ConnectorStatus.CHARGING)
        await cp.update_transaction(
            transaction_id,
            trigger_reason="RemoteStart",
            id_token=tag,
            token_type=token_type,
            remote_start_id=remote_start_id,
            charging_state="Charging",
        )

    def on_request_stop_transaction(self, payload: Payload) -> Reply:
        cp = self._cp
        transaction_id = str(payload["transactionId"])
        control = cp.sessions.by_transaction(transaction_id)
        if control is not None:
            control.stop("Remote")
            return Reply({"status": "Accepted"})
        if transaction_id in cp.open_transactions:
            return Reply(
                {"status": "Accepted"},
                after=lambda: end_open_transaction(cp, transaction_id, "Remote"),
            )
        return Reply({"status": "Rejected"})

    def on_get_transaction_status(self, payload: Payload) -> Reply:
        cp = self._cp
        transaction_id = payload.get("transactionId")
        answer: Payload = {"messagesInQueue": cp.has_queued(transaction_id)}
        if transaction_id is not None:
            answer["ongoingIndicator"] = transaction_id in cp.open_transactions
        return Reply(answer)

    # -- station control ----------------------------------------------------------------

    def on_reset(self, payload: Payload) -> Reply:
        cp = self._cp
        kind = str(payload["type"])
        evse_id = payload.get("evseId")
        if evse_id is not None:
            if not self._exists(evse_id):
                return Reply({"status": "Rejected"})
            return self._reset_evse(evse_id, kind)
        busy = bool(cp.sessions.all() or cp.open_transactions)
        if kind == "OnIdle" and busy:
            return Reply({"status": "Scheduled"}, after=self._reboot_when_idle)
        return Reply({"status": "Accepted"}, after=lambda: reboot(cp, kind))

    def _reset_evse(self, evse_id: int, kind: str) -> Reply:
        cp = self._cp
        record = cp.transaction_on(evse_id)
        if record is None:
            return Reply({"status": "Accepted"}, after=lambda: notify_evse(cp, evse_id))
        if kind == "OnIdle":
            return Reply({"status": "Scheduled"})
        control = cp.sessions.by_transaction(record.transaction_id)
        if control is not None:
            control.stop("ImmediateReset")
            return Reply({"status": "Accepted"})
        transaction_id = record.transaction_id
        return Reply(
            {"status": "Accepted"},
            after=lambda: end_open_transaction(cp, transaction_id, "ImmediateReset"),
        )

    async def _reboot_when_idle(self) -> None:
        cp = self._cp
        await cp.wait_idle()
        await reboot(cp, "OnIdle")

    def on_unlock_connector(self, payload: Payload) -> Reply:
        cp = self._cp
        evse_id, connector_id = payload["evseId"], payload["connectorId"]
        if not self._exists(evse_id) or connector_id != 1:
            return Reply({"status": "UnknownConnector"})
        record = cp.transaction_on(evse_id)
        if record is not None and record.id_token is not None:
            return Reply({"status": "OngoingAuthorizedTransaction"})
        return Reply({"status": "Unlocked"})

    def on_change_availability(self, payload: Payload) -> Reply:
        cp = self._cp
        evse = payload.get("evse") or {}
        target = evse.get("id", 0)
        if target != 0 and (not self._exists(target) or evse.get("connectorId", 1) != 1):
            return Reply({"status": "Rejected"})
        operative = payload["operationalStatus"] == "Operative"
        affected = cp.station.connector_ids if target == 0 else (target,)
        busy = any(
            cp.sessions.on_connector(e) is not None or cp.transaction_on(e) is not None
            for e in affected
        )
        before = {e: cp.station.status(e) for e in affected}
        cp.station.set_operative(target, operative)
        changed = [e for e, status in before.items() if cp.station.status(e) != status]
        after = (lambda: self._announce(changed)) if changed else None
        return Reply({"status": "Scheduled" if busy else "Accepted"}, after=after)

    def on_trigger_message(self, payload: Payload) -> Reply:
        cp = self._cp
        requested = str(payload["requestedMessage"])
        evse = payload.get("evse")
        evse_id = None if evse is None else evse.get("id")
        if evse_id is not None and evse_id != 0 and not self._exists(evse_id):
            return Reply({"status": "Rejected"})
        targets = cp.station.connector_ids if not evse_id else (evse_id,)
        action: Callable[[], Coroutine[Any, Any, None]]
        if requested == "BootNotification":
            if cp.booted:
                return Reply({"status": "Rejected"})
            action = self._boot_triggered
        elif requested == "Heartbeat":
            action = self._heartbeat_triggered
        elif requested == "StatusNotification":
            action = lambda: self._announce(list(targets))  # noqa: E731
        elif requested == "MeterValues":
            action = lambda: self._meter_triggered(targets)  # noqa: E731
        elif requested == "TransactionEvent":
            ongoing = [r.transaction_id for e in targets if (r := cp.transaction_on(e))]
            if not ongoing:
                return Reply({"status": "Rejected"})
            action = lambda: self._transactions_triggered(ongoing)  # noqa: E731
        elif requested == "FirmwareStatusNotification":
            action = lambda: self._status_triggered(cp.firmware_state, _FIRMWARE_STEPS)  # noqa: E731
        elif requested == "LogStatusNotification":
            action = lambda: self._status_triggered(cp.log_state, _LOG_STEPS, log=True)  # noqa: E731
        else:
            return Reply({"status": "NotImplemented"})
        return Reply({"status": "Accepted"}, after=action)

    def on_clear_cache(self, payload: Payload) -> Reply:
        return Reply({"status": "Accepted"})

    def on_data_transfer(self, payload: Payload) -> Reply:
        if payload.get("vendorId") != self._cp.options.vendor:
            return Reply({"status": "UnknownVendorId"})
        answer: Payload = {"status": "Accepted"}
        if "data" in payload:
            answer["data"] = payload["data"]
        return Reply(answer)

    # -- smart charging and reservations ------------------------------------------------

    def on_set_charging_profile(self, payload: Payload) -> Reply:
        cp = self._cp
        evse_id = payload["evseId"]
        profile = payload["chargingProfile"]
        purpose = profile["chargingProfilePurpose"]
        if evse_id != 0 and not self._exists(evse_id):
            return Reply({"status": "Rejected"})
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            return Reply({"status": "Rejected"})
        if purpose == "TxProfile":
            record = cp.transaction_on(evse_id) if evse_id else None
            wanted = profile.get("transactionId")
            if record is None or (wanted is not None and wanted != record.transaction_id):
                return Reply({"status": "Rejected"})
        cp.profiles.install(evse_id, profile)
        cp.apply_charging_limits()
        return Reply({"status": "Accepted"})

    def on_clear_charging_profile(self, payload: Payload) -> Reply:
        cp = self._cp
        cleared = cp.profiles.clear(
            payload.get("chargingProfileId"), payload.get("chargingProfileCriteria")
        )
        cp.apply_charging_limits()
        return Reply({"status": "Accepted" if cleared else "Unknown"})

    def on_reserve_now(self, payload: Payload) -> Reply:
        cp = self._cp
        if not cp.device.flag("ReservationCtrlr", "Enabled"):
            return Reply({"status": "Rejected"})
        reservation_id = int(payload["id"])
        token = payload["idToken"]
        wanted = payload.get("evseId")
        previous = cp.reservations.pop(reservation_id, None)  # the same id replaces it
        if previous is not None:
            self._release(previous)
        if wanted is not None:
            if not self._exists(wanted):
                return Reply({"status": "Rejected"})
            refusal = self._reservation_refusal(wanted)
            if refusal is not None:
                return Reply({"status": refusal})
            evse_id = wanted
        else:
            free = [e for e in cp.station.connector_ids if self._reservation_refusal(e) is None]
            if not free:
                return Reply({"status": "Occupied"})
            evse_id = free[0]
        expires_at = str(payload["expiryDateTime"])
        reservation = Reservation(reservation_id, evse_id, dict(token), expires_at)
        cp.reservations[reservation_id] = reservation
        cp.station.set_status(evse_id, ConnectorStatus.RESERVED)

        async def announce_and_expire() -> None:
            await notify_evse(cp, evse_id)
            await self._expire(reservation)

        return Reply({"status": "Accepted"}, after=announce_and_expire)

    def on_cancel_reservation(self, payload: Payload) -> Reply:
        reservation = self._cp.reservations.pop(int(payload["reservationId"]), None)
        if reservation is None:
            return Reply({"status": "Rejected"})
        evse_id = self._release(reservation)
        after = None if evse_id is None else (lambda: notify_evse(self._cp, evse_id))
        return Reply({"status": "Accepted"}, after=after)

    def _reservation_refusal(self, evse_id: int) -> str | None:
        cp = self._cp
        connector = cp.station.connector(evse_id)
        if connector.status is ConnectorStatus.FAULTED:
            return "Faulted"
        if not connector.operative:
            return "Unavailable"
        busy = cp.sessions.on_connector(evse_id) or cp.transaction_on(evse_id)
        if connector.status in OCCUPIED or connector.status is ConnectorStatus.RESERVED or busy:
            return "Occupied"
        return None

    def _release(self, reservation: Reservation) -> int | None:
        """Put a reserved EVSE back to idle; returns its id when its status changed."""
        station = self._cp.station
        if station.status(reservation.evse_id) is not ConnectorStatus.RESERVED:
            return None
        station.set_status(reservation.evse_id, station.connector(reservation.evse_id).idle_status)
        return reservation.evse_id

    async def _expire(self, reservation: Reservation) -> None:
        cp = self._cp
        try:
            expiry = datetime.fromisoformat(reservation.expires_at.replace("Z", "+00:00"))
            seconds = (expiry - cp.now()).total_seconds()
        except (ValueError, TypeError):
            return
        await asyncio.sleep(max(0.0, seconds))
        if cp.reservations.get(reservation.reservation_id) is not reservation:
            return  # used, cancelled or replaced meanwhile
        del cp.reservations[reservation.reservation_id]
        evse_id = self._release(reservation)
        await cp.reservation_status(reservation.reservation_id, "Expired")
        if evse_id is not None:
            await notify_evse(cp, evse_id)

    # -- firmware and logs --------------------------------------------------------------

    def on_update_firmware(self, payload: Payload) -> Reply:
        request_id = int(payload["requestId"])
        return Reply({"status": "Accepted"}, after=lambda: self._steps(_FIRMWARE_STEPS, request_id))

    def on_get_log(self, payload: Payload) -> Reply:
        request_id = int(payload["requestId"])
        filename = f"{self._cp.id}-{payload['logType']}-{request_id}.log"
        return Reply(
            {"status": "Accepted", "filename": filename[:255]},
            after=lambda: self._steps(_LOG_STEPS, request_id, log=True),
        )

    async def _steps(self, steps: tuple[str, ...], request_id: int, *, log: bool = False) -> None:
        send = self._cp.log_status if log else self._cp.firmware_status
        for index, step in enumerate(steps):
            if index:
                await asyncio.sleep(STEP_SECONDS)
            await send(step, request_id)

    # -- triggered messages -------------------------------------------------------------

    async def _boot_triggered(self) -> None:
        await self._cp.boot("Triggered")

    async def _heartbeat_triggered(self) -> None:
        await self._cp.heartbeat()
        self._cp.report(StepKind.HEARTBEAT_SENT, "heartbeat (triggered)")

    async def _meter_triggered(self, evse_ids: tuple[int, ...]) -> None:
        for evse_id in evse_ids:
            await self._cp.meter_values(evse_id, [self._cp.sample(evse_id, "Trigger")])

    async def _transactions_triggered(self, transaction_ids: list[str]) -> None:
        cp = self._cp
        for transaction_id in transaction_ids:
            record = cp.open_transactions.get(transaction_id)
            if record is None:
                continue
            await cp.update_transaction(
                transaction_id,
                trigger_reason="Trigger",
                charging_state=charging_state(cp.station.status(record.evse_id)),
                meter_value=[cp.sample(record.evse_id, "Trigger")],
            )

    async def _status_triggered(
        self, state: str, steps: tuple[str, ...], *, log: bool = False
    ) -> None:
        """The current firmware or log state; Idle once the last step is done."""
        current = "Idle" if state == steps[-1] else state
        if log:
            await self._cp.log_status(current)
        else:
            await self._cp.firmware_status(current)

    # -- helpers --------------------------------------------------------------------------

    def _exists(self, evse_id: Any) -> bool:
        return isinstance(evse_id, int) and self._cp.station.has_connector(evse_id)

    async def _announce(self, evse_ids: list[int]) -> None:
        for evse_id in evse_ids:
            await notify_evse(self._cp, evse_id)
