"""Answers of a simulated OCPP 1.6 charger to CALLs from the CSMS, one `on_<action>` each.

Each handler decides the answer at once; any work that sends messages runs after the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from simulators.answering import SharedAnswering
from simulators.answers import Answers
from simulators.certificates import CertificateHolder, answers_v16
from simulators.clock import parse_wire_time, wire_time
from simulators.events import StepKind
from simulators.firmware import Device, update_firmware, upload
from simulators.link import Reply
from simulators.local_list import ListEntry
from simulators.profiles import Purpose
from simulators.reservations import Reservation
from simulators.v16_config import SEND_LOCAL_LIST_MAX_LENGTH
from simulators.v16_profiles import PURPOSES, composite_answer, profile_from_wire
from simulators.v16_script import ScriptedCharger, reboot
from simulators.v16_session import announce_changes, charge, end_transaction

__all__ = ["AnsweringCharger", "RequestHandler"]

Payload = dict[str, Any]


class AnsweringCharger(ScriptedCharger, SharedAnswering, Device, CertificateHolder, Protocol):
    """What the answers ask of the 1.6 charger (simulators.v16.V16Charger), beyond its
    script: reservations, the local list, charging profiles, status messages."""

    def connector_busy(self, connector_id: int) -> bool: ...

    async def firmware_status(self, status: str) -> dict[str, Any]: ...

    async def diagnostics_status(self, status: str) -> dict[str, Any]: ...


class RequestHandler(Answers[AnsweringCharger]):
    """Called by the link with (action, camelCase payload); returns the reply."""

    def __init__(self, cp: AnsweringCharger) -> None:
        self._cp = cp
        self._handlers: dict[str, Callable[[Payload], Reply]] = {
            "GetConfiguration": self.on_get_configuration,
            "ChangeConfiguration": self.on_change_configuration,
            "TriggerMessage": self.on_trigger_message,
            "Reset": self.on_reset,
            "RemoteStartTransaction": self.on_remote_start_transaction,
            "RemoteStopTransaction": self.on_remote_stop_transaction,
            "UnlockConnector": self.on_unlock_connector,
            "ChangeAvailability": self.on_change_availability,
            "ClearCache": self.on_clear_cache,
            "DataTransfer": self.on_data_transfer,
            "ReserveNow": self.on_reserve_now,
            "CancelReservation": self.on_cancel_reservation,
            "SendLocalList": self.on_send_local_list,
            "GetLocalListVersion": self.on_get_local_list_version,
            "UpdateFirmware": self.on_update_firmware,
            "GetDiagnostics": self.on_get_diagnostics,
            "SetChargingProfile": self.on_set_charging_profile,
            "ClearChargingProfile": self.on_clear_charging_profile,
            "GetCompositeSchedule": self.on_get_composite_schedule,
            **answers_v16(cp),
        }
        self._firmware: asyncio.Task[Any] | None = None

    def on_get_configuration(self, payload: Payload) -> Reply:
        known, unknown = self._cp.configuration.get(payload.get("key"))
        answer: Payload = {"configurationKey": [entry.wire() for entry in known]}
        if unknown:
            answer["unknownKey"] = unknown
        return Reply(answer)

    def on_change_configuration(self, payload: Payload) -> Reply:
        key = str(payload["key"])
        status = self._cp.configuration.change(key, str(payload["value"]))
        if status == "Accepted" and key == "HeartbeatInterval":
            self._cp.heartbeat_changed()
        return Reply({"status": status.value})

    def on_trigger_message(self, payload: Payload) -> Reply:
        requested = str(payload["requestedMessage"])
        connector_id = payload.get("connectorId")
        if connector_id is not None and not self._exists(connector_id, allow_zero=True):
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, after=lambda: self._triggered(requested, connector_id))

    def on_reset(self, payload: Payload) -> Reply:
        kind = str(payload["type"])
        return Reply({"status": "Accepted"}, after=lambda: reboot(self._cp, kind))

    def on_remote_start_transaction(self, payload: Payload) -> Reply:
        """Rejected when no connector (the one asked for, else any) can take the tag: busy,
        inoperative, or reserved for another tag. A chargingProfile must be a TxProfile the
        charger accepts; it ends with the transaction."""
        cp = self._cp
        tag = str(payload["idTag"])
        wanted = payload.get("connectorId")
        if wanted is not None:
            candidates: tuple[int, ...] = (wanted,) if self._exists(wanted) else ()
        else:
            candidates = cp.station.connector_ids
        check = cp.configuration.flag("AuthorizeRemoteTxRequests")
        connector_id = cp.remote_start_target(tag, candidates, authorizes=check)
        if connector_id is None:
            return Reply({"status": "Rejected"})
        profile = payload.get("chargingProfile")
        if profile is not None:
            installed = profile_from_wire(connector_id, profile)
            rules = cp.configuration.profile_rules()
            if installed.purpose is not Purpose.TX or cp.profile_refusal(installed, rules):
                return Reply({"status": "Rejected"})
            cp.profiles.install(installed)
            cp.apply_charging_limits()
        control = cp.sessions.open(connector_id, tag)
        return Reply(
            {"status": "Accepted"}, after=lambda: _quiet(charge(cp, control, None, authorize=check))
        )

    def on_remote_stop_transaction(self, payload: Payload) -> Reply:
        cp = self._cp
        transaction_id = int(payload["transactionId"])
        control = cp.sessions.by_transaction(transaction_id)
        if control is not None:
            control.stop("Remote")
            return Reply({"status": "Accepted"})
        if transaction_id in cp.open_transactions:
            return Reply(
                {"status": "Accepted"},
                after=lambda: end_transaction(cp, transaction_id, "Remote"),
            )
        return Reply({"status": "Rejected"})

    def on_unlock_connector(self, payload: Payload) -> Reply:
        connector_id = payload["connectorId"]
        if not self._exists(connector_id):
            return Reply({"status": "NotSupported"})
        control = self._cp.sessions.on_connector(connector_id)
        if control is not None:
            control.stop("UnlockCommand")
        return Reply({"status": "Unlocked"})

    def on_change_availability(self, payload: Payload) -> Reply:
        cp = self._cp
        connector_id = payload["connectorId"]
        if not self._exists(connector_id, allow_zero=True):
            return Reply({"status": "Rejected"})
        operative = payload["type"] == "Operative"
        affected = cp.station.connector_ids if connector_id == 0 else (connector_id,)
        busy = any(cp.connector_busy(cid) for cid in affected)
        before = {cid: cp.station.status(cid) for cid in (0, *affected)}
        cp.station.set_operative(connector_id, operative)
        changed = [cid for cid, status in before.items() if cp.station.status(cid) != status]
        # The model already holds the new statuses; the notifications only report them.
        changed += [c for c in cp.refresh_reserved() if c not in changed]
        after = (lambda: announce_changes(cp, changed)) if changed else None
        return Reply({"status": "Scheduled" if busy else "Accepted"}, after=after)

    def on_clear_cache(self, payload: Payload) -> Reply:
        return Reply({"status": "Accepted"})

    def on_data_transfer(self, payload: Payload) -> Reply:
        if payload.get("vendorId") != self._cp.options.vendor:
            return Reply({"status": "UnknownVendorId"})
        answer: Payload = {"status": "Accepted"}
        if "data" in payload:
            answer["data"] = payload["data"]
        return Reply(answer)

    # -- reservations -------------------------------------------------------------------

    def on_reserve_now(self, payload: Payload) -> Reply:
        """Accepted, or Faulted / Unavailable / Occupied for a connector that cannot be held,
        Rejected for an unknown connector, connector 0 without ReserveConnectorZeroSupported,
        or an expiry date in the past. The connector shows Reserved until the reservation is
        used, cancelled or expires."""
        cp = self._cp
        connector_id = payload["connectorId"]
        zero_ok = cp.configuration.flag("ReserveConnectorZeroSupported")
        expires_at = parse_wire_time(payload["expiryDate"])
        if (
            not self._exists(connector_id, allow_zero=zero_ok)
            or expires_at is None
            or expires_at <= cp.now()
        ):
            return Reply({"status": "Rejected"})
        parent = payload.get("parentIdTag")
        reservation = Reservation(
            int(payload["reservationId"]),
            connector_id,
            str(payload["idTag"]),
            expires_at,
            None if parent is None else str(parent),
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
        self._cp.report(StepKind.INFO, f"reservation {reservation.reservation_id} expired")
        await announce_changes(self._cp, changed)

    # -- local authorization list -------------------------------------------------------

    def on_send_local_list(self, payload: Payload) -> Reply:
        """NotSupported with LocalAuthListEnabled false; VersionMismatch for a differential
        update that is not newer; Failed for too many entries, a repeated tag, or a full
        update entry without idTagInfo; Accepted otherwise."""
        cp = self._cp
        if not cp.local_list_enabled():
            return Reply({"status": "NotSupported"})
        items = payload.get("localAuthorizationList") or []
        if len(items) > SEND_LOCAL_LIST_MAX_LENGTH:
            return Reply({"status": "Failed"})
        changes = [(str(item["idTag"]), _list_entry(item)) for item in items]
        full = payload["updateType"] == "Full"
        status = cp.local_list.update(int(payload["listVersion"]), full, changes)
        return Reply({"status": status.value})

    def on_get_local_list_version(self, payload: Payload) -> Reply:
        """The list version: 0 before any list, -1 with LocalAuthListEnabled false."""
        cp = self._cp
        return Reply({"listVersion": cp.local_list.version if cp.local_list_enabled() else -1})

    # -- firmware and diagnostics -------------------------------------------------------

    def on_update_firmware(self, payload: Payload) -> Reply:
        """`{}`; at retrieveDate FirmwareStatusNotification Downloading, Downloaded, then
        (between sessions) Installing, Installed, and a reboot with the new firmware. A new
        request replaces an update under way."""
        cp = self._cp
        location = str(payload["location"])
        retrieve_at = parse_wire_time(payload["retrieveDate"])
        if self._firmware is not None and not self._firmware.done():
            self._firmware.cancel()

        async def install() -> None:
            self._firmware = asyncio.current_task()
            await update_firmware(
                cp,
                location,
                retrieve_at,
                cp.firmware_status,
                lambda: reboot(cp, "Soft"),
                installed_after_reboot=False,
            )

        return Reply({}, after=install)

    def on_get_diagnostics(self, payload: Payload) -> Reply:
        """`{fileName}`; then DiagnosticsStatusNotification Uploading, Uploaded (UploadFailed
        for a location the charger cannot use)."""
        cp = self._cp
        location = str(payload["location"])
        stamp = wire_time(cp.now()).replace(":", "").replace("-", "").replace(".", "")
        file_name = f"{cp.id}-diagnostics-{stamp}.log"[:255]

        async def send() -> None:
            await upload(
                cp, location, cp.diagnostics_status, done="Uploaded", failed="UploadFailed"
            )

        return Reply({"fileName": file_name}, after=send)

    # -- smart charging -----------------------------------------------------------------

    def on_set_charging_profile(self, payload: Payload) -> Reply:
        """Rejected for an unknown connector, a ChargePointMaxProfile off connector 0, a
        TxProfile without a transaction on its connector (or for another transactionId), or
        a profile beyond the smart charging keys; Accepted and in force otherwise."""
        cp = self._cp
        connector_id = payload["connectorId"]
        if not self._exists(connector_id, allow_zero=True):
            return Reply({"status": "Rejected"})
        profile = profile_from_wire(connector_id, payload["csChargingProfiles"])
        station_wide = connector_id == 0
        if (profile.purpose is Purpose.STATION_MAX and not station_wide) or (
            profile.purpose is Purpose.TX and station_wide
        ):
            return Reply({"status": "Rejected"})
        if profile.purpose is Purpose.TX:
            record = cp.transaction_on(connector_id)
            wanted = profile.transaction_id
            if record is None or (wanted is not None and wanted != record.transaction_id):
                return Reply({"status": "Rejected"})
        if cp.profile_refusal(profile, cp.configuration.profile_rules()) is not None:
            return Reply({"status": "Rejected"})
        cp.profiles.install(profile)
        cp.apply_charging_limits()
        return Reply({"status": "Accepted"})

    def on_clear_charging_profile(self, payload: Payload) -> Reply:
        """Accepted when a profile matched every criterion given (none: all), else Unknown."""
        cp = self._cp
        purpose = payload.get("chargingProfilePurpose")
        cleared = cp.profiles.clear(
            payload.get("id"),
            payload.get("connectorId"),
            None if purpose is None else PURPOSES[purpose],
            payload.get("stackLevel"),
        )
        cp.apply_charging_limits()
        return Reply({"status": "Accepted" if cleared else "Unknown"})

    def on_get_composite_schedule(self, payload: Payload) -> Reply:
        """The cap over `duration` seconds from now in the unit asked for (default W); the
        rated power where no profile limits. Rejected for an unknown connector."""
        cp = self._cp
        connector_id = payload["connectorId"]
        if not self._exists(connector_id, allow_zero=True):
            return Reply({"status": "Rejected"})
        duration = int(payload["duration"])
        unit = str(payload.get("chargingRateUnit") or "W")
        periods = cp.composite_schedule(connector_id, duration)
        return Reply(composite_answer(connector_id, periods, unit, wire_time(cp.now()), duration))

    # -- helpers --------------------------------------------------------------------------

    def _exists(self, connector_id: Any, *, allow_zero: bool = False) -> bool:
        if not isinstance(connector_id, int):
            return False
        return (allow_zero and connector_id == 0) or self._cp.station.has_connector(connector_id)

    async def _triggered(self, requested: str, connector_id: int | None) -> None:
        cp = self._cp
        connectors = cp.station.connector_ids if not connector_id else (connector_id,)
        if requested == "BootNotification":
            await cp.boot()
        elif requested == "Heartbeat":
            await cp.heartbeat()
            cp.report(StepKind.HEARTBEAT_SENT, "heartbeat (triggered)")
        elif requested == "StatusNotification":
            targets = (0, *connectors) if connector_id is None else (connector_id,)
            await announce_changes(cp, list(targets))
        elif requested == "MeterValues":
            for cid in connectors:
                record = cp.transaction_on(cid)
                tx = None if record is None else record.transaction_id
                await cp.meter_values(cid, tx, [cp.sample(cid, "Trigger")])
        elif requested == "FirmwareStatusNotification":
            await cp.firmware_status(cp.firmware_state)
        elif requested == "DiagnosticsStatusNotification":
            await cp.diagnostics_status(cp.upload_state)


def _list_entry(item: Payload) -> ListEntry | None:
    info = item.get("idTagInfo")
    if info is None:
        return None
    parent = info.get("parentIdTag")
    return ListEntry(
        str(item["idTag"]),
        str(info["status"]),
        parse_wire_time(info.get("expiryDate")),
        None if parent is None else str(parent),
        dict(info),
    )


async def _quiet(coro: Coroutine[Any, Any, bool]) -> None:
    await coro
