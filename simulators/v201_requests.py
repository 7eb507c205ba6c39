"""Answers of a simulated OCPP 2.0.1 station to CALLs from the CSMS, one `on_<action>` each.

Each handler decides the answer at once; any work that sends messages runs after the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from simulators.answering import SharedAnswering
from simulators.answers import Answers
from simulators.certificates import CertificateHolder, answers_v201, request_certificate
from simulators.charger import Timestamp
from simulators.clock import parse_wire_time, wire_time
from simulators.events import StepKind
from simulators.firmware import Device, update_firmware, upload
from simulators.link import Reply
from simulators.local_list import ListEntry
from simulators.profiles import Purpose
from simulators.reservations import Reservation
from simulators.station import ConnectorStatus
from simulators.v201_profiles import PURPOSES, composite_answer, profile_from_wire
from simulators.v201_script import ScriptedCharger, reboot
from simulators.v201_session import (
    announce_changes,
    charge,
    end_open_transaction,
    notify_evse,
)
from simulators.v201_transaction import charging_state

__all__ = ["AnsweringCharger", "RequestHandler"]

Payload = dict[str, Any]


class AnsweringCharger(ScriptedCharger, SharedAnswering, Device, CertificateHolder, Protocol):
    """What the answers ask of the 2.0.1 station (simulators.v201.V201Charger), beyond its
    script: reservations, the local list, charging profiles, the device model, reports,
    firmware and log uploads."""

    firmware_request_id: int | None
    upload_request_id: int | None

    def sync_device_model(self) -> None: ...

    def has_queued(self, transaction_id: str | None = None) -> bool: ...

    async def boot(self, reason: str | None = None) -> dict[str, Any]: ...

    async def meter_values(
        self, evse_id: int, meter_value: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[str, Any]: ...

    async def notify_report(
        self,
        request_id: int,
        report_data: Sequence[Mapping[str, Any]],
        seq_no: int = 0,
        tbc: bool = False,
        generated_at: Timestamp = None,
    ) -> dict[str, Any]: ...

    async def reservation_status(self, reservation_id: int, status: str) -> dict[str, Any]: ...

    async def firmware_status(
        self, status: str, request_id: int | None = None
    ) -> dict[str, Any]: ...

    async def log_status(self, status: str, request_id: int | None = None) -> dict[str, Any]: ...


class RequestHandler(Answers[AnsweringCharger]):
    """Called by the link with (action, camelCase payload); returns the reply."""

    def __init__(self, cp: AnsweringCharger) -> None:
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
            "SendLocalList": self.on_send_local_list,
            "GetLocalListVersion": self.on_get_local_list_version,
            "GetCompositeSchedule": self.on_get_composite_schedule,
            **answers_v201(cp),
        }
        self._firmware: asyncio.Task[Any] | None = None

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
        """Rejected when no EVSE (the one asked for, else any) can take the token: busy,
        inoperative, or reserved for another token; an EV plugged in first is authorized.
        A chargingProfile must be a TxProfile the station accepts."""
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
        check = cp.device.flag("AuthCtrlr", "AuthorizeRemoteStart")
        evse_id = cp.remote_start_target(tag, candidates, authorizes=check)
        if evse_id is None:
            return Reply({"status": "Rejected"})
        profile = payload.get("chargingProfile")
        if profile is not None:
            installed = profile_from_wire(evse_id, profile)
            rules = cp.device.profile_rules()
            if installed.purpose is not Purpose.TX or cp.profile_refusal(installed, rules):
                return Reply({"status": "Rejected"})
            cp.profiles.install(installed)
            cp.apply_charging_limits()
        control = cp.sessions.open(evse_id, tag)

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
        changed += [e for e in cp.refresh_reserved() if e not in changed]
        after = (lambda: announce_changes(cp, changed)) if changed else None
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
            action = lambda: announce_changes(cp, list(targets))  # noqa: E731
        elif requested == "MeterValues":
            action = lambda: self._meter_triggered(targets)  # noqa: E731
        elif requested == "TransactionEvent":
            ongoing = [r.transaction_id for e in targets if (r := cp.transaction_on(e))]
            if not ongoing:
                return Reply({"status": "Rejected"})
            action = lambda: self._transactions_triggered(ongoing)  # noqa: E731
        elif requested == "FirmwareStatusNotification":
            action = self._firmware_triggered
        elif requested == "LogStatusNotification":
            action = self._log_triggered
        elif requested == "SignChargingStationCertificate":
            action = lambda: request_certificate(cp, "2.0.1")  # noqa: E731
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

    # -- smart charging ---------------------------------------------------------------

    def on_set_charging_profile(self, payload: Payload) -> Reply:
        """Rejected with SmartChargingCtrlr disabled, for an unknown EVSE, a
        ChargingStationMaxProfile off EVSE 0, a TxProfile without a transaction on its EVSE
        (or for another transactionId), or a profile beyond SmartChargingCtrlr's limits."""
        cp = self._cp
        evse_id = payload["evseId"]
        if not cp.device.flag("SmartChargingCtrlr", "Enabled"):
            return Reply({"status": "Rejected"})
        if evse_id != 0 and not self._exists(evse_id):
            return Reply({"status": "Rejected"})
        profile = profile_from_wire(evse_id, payload["chargingProfile"])
        if (profile.purpose is Purpose.STATION_MAX and evse_id != 0) or (
            profile.purpose is Purpose.TX and evse_id == 0
        ):
            return Reply({"status": "Rejected"})
        if profile.purpose is Purpose.TX:
            record = cp.transaction_on(evse_id)
            wanted = profile.transaction_id
            if record is None or (wanted is not None and wanted != record.transaction_id):
                return Reply({"status": "Rejected"})
        if cp.profile_refusal(profile, cp.device.profile_rules()) is not None:
            return Reply({"status": "Rejected"})
        cp.profiles.install(profile)
        cp.apply_charging_limits()
        return Reply({"status": "Accepted"})

    def on_clear_charging_profile(self, payload: Payload) -> Reply:
        """Accepted when a profile matched the id and every criterion given, else Unknown."""
        cp = self._cp
        criteria = payload.get("chargingProfileCriteria") or {}
        purpose = criteria.get("chargingProfilePurpose")
        cleared = cp.profiles.clear(
            payload.get("chargingProfileId"),
            criteria.get("evseId"),
            None if purpose is None else PURPOSES[purpose],
            criteria.get("stackLevel"),
        )
        cp.apply_charging_limits()
        return Reply({"status": "Accepted" if cleared else "Unknown"})

    def on_get_composite_schedule(self, payload: Payload) -> Reply:
        """The cap over `duration` seconds from now in the unit asked for (default W); the
        rated power where no profile limits; EVSE 0 is the grid connection. Rejected for an
        unknown EVSE."""
        cp = self._cp
        evse_id = payload["evseId"]
        if evse_id != 0 and not self._exists(evse_id):
            return Reply({"status": "Rejected"})
        duration = int(payload["duration"])
        unit = str(payload.get("chargingRateUnit") or "W")
        periods = cp.composite_schedule(evse_id, duration)
        return Reply(composite_answer(evse_id, periods, unit, wire_time(cp.now()), duration))

    # -- reservations -------------------------------------------------------------------

    def on_reserve_now(self, payload: Payload) -> Reply:
        """Accepted, or Faulted / Unavailable / Occupied for an EVSE that cannot be held,
        Rejected with ReservationCtrlr disabled, for an unknown EVSE, no EVSE without
        NonEvseSpecific, or an expiry in the past. A reserved EVSE shows Reserved; a
        reservation of no EVSE in particular shows only once it needs every free EVSE."""
        cp = self._cp
        if not cp.device.flag("ReservationCtrlr", "Enabled"):
            return Reply({"status": "Rejected"})
        wanted = payload.get("evseId")
        expires_at = parse_wire_time(payload["expiryDateTime"])
        if wanted is None:
            if not cp.device.flag("ReservationCtrlr", "NonEvseSpecific"):
                return Reply({"status": "Rejected"})
            wanted = 0
        elif not self._exists(wanted):
            return Reply({"status": "Rejected"})
        if expires_at is None or expires_at <= cp.now():
            return Reply({"status": "Rejected"})
        group = payload.get("groupIdToken") or {}
        reservation = Reservation(
            int(payload["id"]),
            wanted,
            str(payload["idToken"]["idToken"]),
            expires_at,
            group.get("idToken"),
        )
        status, changed = cp.reserve(reservation)
        if status != "Accepted":
            return Reply({"status": status})

        async def announce_and_expire() -> None:
            await announce_changes(cp, changed)
            await cp.expire_reservation(reservation, self._expired)

        return Reply({"status": "Accepted"}, after=announce_and_expire)

    def on_cancel_reservation(self, payload: Payload) -> Reply:
        reservation, changed = self._cp.cancel_reservation(int(payload["reservationId"]))
        if reservation is None:
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, after=lambda: announce_changes(self._cp, changed))

    async def _expired(self, reservation: Reservation, changed: list[int]) -> None:
        cp = self._cp
        await cp.reservation_status(reservation.reservation_id, "Expired")
        await announce_changes(cp, changed)

    # -- local authorization list -------------------------------------------------------

    def on_send_local_list(self, payload: Payload) -> Reply:
        """Failed with LocalAuthListCtrlr disabled, for more entries than ItemsPerMessage, a
        repeated token or a full update entry without idTokenInfo; VersionMismatch for a
        differential update that is not newer; Accepted otherwise."""
        cp = self._cp
        items = payload.get("localAuthorizationList") or []
        most = cp.device.integer("LocalAuthListCtrlr", "ItemsPerMessage")
        if not cp.local_list_enabled() or len(items) > most:
            return Reply({"status": "Failed"})
        changes = [(str(item["idToken"]["idToken"]), _list_entry(item)) for item in items]
        full = payload["updateType"] == "Full"
        status = cp.local_list.update(int(payload["versionNumber"]), full, changes)
        return Reply({"status": status.value})

    def on_get_local_list_version(self, payload: Payload) -> Reply:
        """The list version: 0 before any list and while LocalAuthListCtrlr is disabled."""
        cp = self._cp
        return Reply({"versionNumber": cp.local_list.version if cp.local_list_enabled() else 0})

    # -- firmware and logs --------------------------------------------------------------

    def on_update_firmware(self, payload: Payload) -> Reply:
        """Accepted (AcceptedCanceled when it replaces an update under way); at
        retrieveDateTime Downloading, Downloaded (SignatureVerified when signed), between
        sessions Installing, InstallRebooting, a reboot (BootNotification FirmwareUpdate
        with the new firmware version), Installed."""
        cp = self._cp
        request_id = int(payload["requestId"])
        firmware = payload["firmware"]
        location = str(firmware["location"])
        retrieve_at = parse_wire_time(firmware["retrieveDateTime"])
        running = self._firmware
        status = "Accepted"
        if running is not None and not running.done():
            running.cancel()
            status = "AcceptedCanceled"

        async def install() -> None:
            self._firmware = asyncio.current_task()
            cp.firmware_request_id = request_id
            try:
                await update_firmware(
                    cp,
                    location,
                    retrieve_at,
                    lambda step: cp.firmware_status(step, request_id),
                    self._firmware_reboot,
                    installed_after_reboot=True,
                    signed="signature" in firmware,
                )
            finally:
                if cp.firmware_request_id == request_id:
                    cp.firmware_request_id = None

        return Reply({"status": status}, after=install)

    async def _firmware_reboot(self) -> None:
        await reboot(self._cp, "Immediate", boot_reason="FirmwareUpdate")

    def on_get_log(self, payload: Payload) -> Reply:
        """Accepted with a file name; LogStatusNotification Uploading, Uploaded (UploadFailure
        for a location the station cannot use)."""
        cp = self._cp
        request_id = int(payload["requestId"])
        location = str(payload["log"]["remoteLocation"])
        filename = f"{cp.id}-{payload['logType']}-{request_id}.log"

        async def send() -> None:
            cp.upload_request_id = request_id
            try:
                await upload(
                    cp,
                    location,
                    lambda step: cp.log_status(step, request_id),
                    done="Uploaded",
                    failed="UploadFailure",
                )
            finally:
                if cp.upload_request_id == request_id:
                    cp.upload_request_id = None

        return Reply({"status": "Accepted", "filename": filename[:255]}, after=send)

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

    async def _firmware_triggered(self) -> None:
        """The current firmware state (with its requestId), Idle when no update runs."""
        cp = self._cp
        state = cp.firmware_state
        await cp.firmware_status(state, None if state == "Idle" else cp.firmware_request_id)

    async def _log_triggered(self) -> None:
        cp = self._cp
        state = cp.upload_state
        await cp.log_status(state, None if state == "Idle" else cp.upload_request_id)

    # -- helpers --------------------------------------------------------------------------

    def _exists(self, evse_id: Any) -> bool:
        return isinstance(evse_id, int) and self._cp.station.has_connector(evse_id)


def _list_entry(item: Payload) -> ListEntry | None:
    info = item.get("idTokenInfo")
    if info is None:
        return None
    group = info.get("groupIdToken") or {}
    return ListEntry(
        str(item["idToken"]["idToken"]),
        str(info["status"]),
        parse_wire_time(info.get("cacheExpiryDateTime")),
        group.get("idToken"),
        dict(info),
    )
