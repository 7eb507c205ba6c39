"""The OCPP 2.0.1 simulator answers CSMS commands as a real charging station does: driven over a
real websocket by a fake CSMS that checks every frame against the 2.0.1 schemas."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simulators.clock import wire_time
from simulators.events import StepKind
from simulators.station import ConnectorStatus
from simulators.v201 import V201Charger

from .conftest import START, Connect201, FakeClock, eventually
from .fake_csms import FakeCsms

LATER = wire_time(START + timedelta(hours=1))


def token(tag: str) -> dict[str, str]:
    return {"idToken": tag, "type": "ISO14443"}


def reserve(reservation_id: int, tag: str, evse_id: int | None = None, **extra: Any) -> Any:
    payload = {"id": reservation_id, "expiryDateTime": LATER, "idToken": token(tag), **extra}
    if evse_id is not None:
        payload["evseId"] = evse_id
    return payload


def start(tag: str, evse_id: int | None = None, remote_start_id: int = 1) -> dict[str, Any]:
    payload: dict[str, Any] = {"idToken": token(tag), "remoteStartId": remote_start_id}
    if evse_id is not None:
        payload["evseId"] = evse_id
    return payload


def charging_profile(profile_id: int, purpose: str, limit: float, unit: str = "A") -> Any:
    return {
        "id": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": wire_time(START),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            }
        ],
    }


def variable(component: str, name: str, value: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"component": {"name": component}, "variable": {"name": name}}
    if value is not None:
        item["attributeValue"] = value
    return item


async def started(csms: FakeCsms, cp: V201Charger, evse_id: int, since: int) -> dict[str, Any]:
    """Wait for the Started event of a session on the EVSE; the event."""
    event = await csms.expect(
        "TransactionEvent",
        since,
        eventType="Started",
        match=lambda p: p["evse"]["id"] == evse_id,
    )
    await eventually(lambda: cp.transaction_on(evse_id) is not None)
    return event


# -- local authorization list ---------------------------------------------------------------


async def test_local_list_versions_and_the_device_model(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        assert await csms201.call("GetLocalListVersion", {}) == {"versionNumber": 0}
        full = {
            "versionNumber": 2,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idToken": token("A"), "idTokenInfo": {"status": "Accepted"}},
                {
                    "idToken": token("B"),
                    "idTokenInfo": {"status": "Accepted", "groupIdToken": token("G")},
                },
            ],
        }
        assert await csms201.call("SendLocalList", full) == {"status": "Accepted"}
        assert await csms201.call("GetLocalListVersion", {}) == {"versionNumber": 2}
        stale = {"versionNumber": 2, "updateType": "Differential"}
        assert await csms201.call("SendLocalList", stale) == {"status": "VersionMismatch"}
        diff = {
            "versionNumber": 3,
            "updateType": "Differential",
            "localAuthorizationList": [{"idToken": token("A")}],
        }
        assert await csms201.call("SendLocalList", diff) == {"status": "Accepted"}
        listed = cp.local_list.lookup("b")
        assert listed is not None and listed.parent_id_tag == "G"
        answer = await csms201.call(
            "GetVariables", {"getVariableData": [variable("LocalAuthListCtrlr", "Entries")]}
        )
        assert answer["getVariableResult"][0]["attributeValue"] == "1"

        off = {"setVariableData": [variable("LocalAuthListCtrlr", "Enabled", "false")]}
        result = await csms201.call("SetVariables", off)
        assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert await csms201.call("SendLocalList", full) == {"status": "Failed"}
        assert await csms201.call("GetLocalListVersion", {}) == {"versionNumber": 0}


# -- smart charging -------------------------------------------------------------------------


async def test_composite_schedule_and_meter_values_follow_the_cap(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    clock = FakeClock()
    async with charger201(clock=clock, connectors=2) as cp:
        default = {"evseId": 0, "chargingProfile": charging_profile(1, "TxDefaultProfile", 16)}
        assert await csms201.call("SetChargingProfile", default) == {"status": "Accepted"}
        station_max = {
            "evseId": 1,
            "chargingProfile": charging_profile(2, "ChargingStationMaxProfile", 10),
        }
        assert await csms201.call("SetChargingProfile", station_max) == {"status": "Rejected"}
        tx = {"evseId": 1, "chargingProfile": charging_profile(3, "TxProfile", 10)}
        assert await csms201.call("SetChargingProfile", tx) == {"status": "Rejected"}

        ask = {"duration": 300, "evseId": 1, "chargingRateUnit": "A"}
        assert await csms201.call("GetCompositeSchedule", ask) == {
            "status": "Accepted",
            "schedule": {
                "evseId": 1,
                "duration": 300,
                "scheduleStart": wire_time(START),
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
            },
        }
        grid = await csms201.call("GetCompositeSchedule", {"duration": 60, "evseId": 0})
        assert grid["schedule"]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 2 * 16 * 690}
        ]
        unknown = {"duration": 60, "evseId": 3}
        assert await csms201.call("GetCompositeSchedule", unknown) == {"status": "Rejected"}

        mark = csms201.mark()
        await csms201.call("RequestStartTransaction", start("A", 1))
        event = await started(csms201, cp, 1, mark)
        tx["chargingProfile"]["transactionId"] = event["transactionInfo"]["transactionId"]
        assert await csms201.call("SetChargingProfile", tx) == {"status": "Accepted"}
        before = cp.reading(1).energy_wh
        clock.now += timedelta(minutes=30)
        mark = csms201.mark()
        trigger = {"requestedMessage": "MeterValues", "evse": {"id": 1}}
        assert await csms201.call("TriggerMessage", trigger) == {"status": "Accepted"}
        sent = await csms201.expect("MeterValues", mark)
        values = {
            v["measurand"]: v["value"]
            for v in sent["meterValue"][0]["sampledValue"]
            if "phase" not in v
        }
        assert 0 < values["Power.Active.Import"] <= 6900
        # 10 A a phase for half an hour, the EV a little under the cap, the mains near 230 V
        delivered = values["Energy.Active.Import.Register"] - before
        assert 0.96 * 0.98 * 6900 / 2 <= delivered <= 1.02 * 6900 / 2

        await csms201.call(
            "RequestStopTransaction",
            {"transactionId": event["transactionInfo"]["transactionId"]},
        )
        await cp.sessions.wait_idle(5)
        assert cp.station.connector(1).limit_w == 16 * 690  # back to the default
        answer = await csms201.call(
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "SmartChargingCtrlr"},
                        "variable": {"name": "Entries", "instance": "ChargingProfiles"},
                    }
                ]
            },
        )
        assert answer["getVariableResult"][0]["attributeValue"] == "1"
        clear = {"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile"}}
        assert await csms201.call("ClearChargingProfile", clear) == {"status": "Accepted"}
        assert await csms201.call("ClearChargingProfile", clear) == {"status": "Unknown"}


# -- reservations ---------------------------------------------------------------------------


async def test_reserved_evse_starts_only_for_its_token(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201(connectors=2) as cp:
        mark = csms201.mark()
        assert await csms201.call("ReserveNow", reserve(7, "Alice", 1)) == {"status": "Accepted"}
        assert await csms201.statuses(1, mark) == [(1, "Reserved")]
        refused = await csms201.call("RequestStartTransaction", start("Bob", 1))
        assert refused == {"status": "Rejected"}
        assert cp.start_session(1, "Bob") is not None  # a card at the station is refused
        await cp.sessions.wait_idle(5)
        assert cp.tally[StepKind.SESSION_REFUSED] == 1
        assert csms201.sent("Authorize", mark) == []

        mark = csms201.mark()
        assert await csms201.call("RequestStartTransaction", start("Bob")) == {"status": "Accepted"}
        bob = await started(csms201, cp, 2, mark)
        assert "reservationId" not in bob

        mark = csms201.mark()
        assert await csms201.call("RequestStartTransaction", start("ALICE")) == {
            "status": "Accepted"
        }
        alice = await started(csms201, cp, 1, mark)
        assert alice["reservationId"] == 7
        assert cp.reservations.all() == ()


async def test_reservation_refusals_expiry_and_cancel(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        assert await csms201.call("ReserveNow", reserve(1, "A", 2)) == {"status": "Rejected"}
        mark = csms201.mark()
        assert await csms201.call("ReserveNow", reserve(1, "A")) == {"status": "Accepted"}
        assert await csms201.statuses(1, mark) == [(1, "Reserved")]  # the only EVSE is held
        assert await csms201.call("ReserveNow", reserve(2, "B")) == {"status": "Occupied"}
        assert await csms201.call("CancelReservation", {"reservationId": 1}) == {
            "status": "Accepted"
        }
        assert await csms201.call("CancelReservation", {"reservationId": 1}) == {
            "status": "Rejected"
        }

        mark = csms201.mark()
        soon = {**reserve(3, "A", 1), "expiryDateTime": wire_time(START + timedelta(seconds=0.2))}
        assert await csms201.call("ReserveNow", soon) == {"status": "Accepted"}
        update = await csms201.expect("ReservationStatusUpdate", mark)
        assert update == {"reservationId": 3, "reservationUpdateStatus": "Expired"}
        assert await csms201.statuses(2, mark) == [(1, "Reserved"), (1, "Available")]

        off = {"setVariableData": [variable("ReservationCtrlr", "NonEvseSpecific", "false")]}
        await csms201.call("SetVariables", off)
        assert await csms201.call("ReserveNow", reserve(4, "A")) == {"status": "Rejected"}
        cp.station.set_status(1, ConnectorStatus.FAULTED)
        assert await csms201.call("ReserveNow", reserve(4, "A", 1)) == {"status": "Faulted"}


# -- station control ------------------------------------------------------------------------


async def test_reset_on_idle_waits_for_the_session_and_immediate_ends_it(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        mark = csms201.mark()
        await csms201.call("RequestStartTransaction", start("A", 1))
        event = await started(csms201, cp, 1, mark)
        assert await csms201.call("Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
        assert csms201.sent("BootNotification", mark) == []
        transaction_id = event["transactionInfo"]["transactionId"]
        await csms201.call("RequestStopTransaction", {"transactionId": transaction_id})
        boot = await csms201.expect("BootNotification", mark, timeout=10)
        assert boot["reason"] == "RemoteReset"
        ended = await csms201.expect("TransactionEvent", mark, eventType="Ended")
        assert ended["transactionInfo"]["stoppedReason"] == "Remote"
        await eventually(lambda: cp.booted)

        mark = csms201.mark()
        await csms201.call("RequestStartTransaction", start("A", 1, 2))
        await started(csms201, cp, 1, mark)
        assert await csms201.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}
        ended = await csms201.expect("TransactionEvent", mark, eventType="Ended")
        assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended["triggerReason"] == "ResetCommand"
        await csms201.expect("BootNotification", mark, timeout=10)


async def test_change_availability_is_reported(csms201: FakeCsms, charger201: Connect201) -> None:
    async with charger201(connectors=2) as cp:
        mark = csms201.mark()
        off = {"operationalStatus": "Inoperative", "evse": {"id": 2}}
        assert await csms201.call("ChangeAvailability", off) == {"status": "Accepted"}
        assert await csms201.statuses(1, mark) == [(2, "Unavailable")]
        assert await csms201.call("RequestStartTransaction", start("A", 2)) == {
            "status": "Rejected"
        }
        mark = csms201.mark()
        await csms201.call("RequestStartTransaction", start("A", 1))
        await started(csms201, cp, 1, mark)
        station_off = {"operationalStatus": "Inoperative"}
        assert await csms201.call("ChangeAvailability", station_off) == {"status": "Scheduled"}
        on = {"operationalStatus": "Operative"}
        mark = csms201.mark()
        assert await csms201.call("ChangeAvailability", on) == {"status": "Scheduled"}
        assert await csms201.statuses(1, mark) == [(2, "Available")]
        assert cp.wire_status(1) == "Occupied"


async def test_unlock_clear_cache_and_data_transfer(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        unlock = {"evseId": 1, "connectorId": 1}
        assert await csms201.call("UnlockConnector", unlock) == {"status": "Unlocked"}
        assert await csms201.call("UnlockConnector", {"evseId": 2, "connectorId": 1}) == {
            "status": "UnknownConnector"
        }
        mark = csms201.mark()
        await csms201.call("RequestStartTransaction", start("A", 1))
        await started(csms201, cp, 1, mark)
        assert await csms201.call("UnlockConnector", unlock) == {
            "status": "OngoingAuthorizedTransaction"
        }
        assert await csms201.call("ClearCache", {}) == {"status": "Accepted"}
        echo = {"vendorId": "CsmsSim", "messageId": "ping", "data": "x"}
        assert await csms201.call("DataTransfer", echo) == {"status": "Accepted", "data": "x"}
        other = {"vendorId": "Else"}
        assert await csms201.call("DataTransfer", other) == {"status": "UnknownVendorId"}


async def test_variables_set_persist_across_a_reset(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        change = {"setVariableData": [variable("SampledDataCtrlr", "TxUpdatedInterval", "30")]}
        result = await csms201.call("SetVariables", change)
        assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"
        mark = csms201.mark()
        assert await csms201.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}
        await csms201.expect("BootNotification", mark, timeout=10)
        await eventually(lambda: cp.booted)
        read = {"getVariableData": [variable("SampledDataCtrlr", "TxUpdatedInterval")]}
        answer = await csms201.call("GetVariables", read)
        assert answer["getVariableResult"][0]["attributeValue"] == "30"
        assert cp.meter_interval == 30


# -- firmware and logs ----------------------------------------------------------------------


async def test_update_firmware_reboots_into_the_new_version(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        mark = csms201.mark()
        trigger = {"requestedMessage": "FirmwareStatusNotification"}
        await csms201.call("TriggerMessage", trigger)
        assert await csms201.expect("FirmwareStatusNotification", mark) == {"status": "Idle"}
        mark = csms201.mark()
        update = {
            "requestId": 3,
            "firmware": {
                "location": "https://fw.example.com/station-3.2.1.bin",
                "retrieveDateTime": wire_time(START),
            },
        }
        assert await csms201.call("UpdateFirmware", update) == {"status": "Accepted"}
        boot = await csms201.expect("BootNotification", mark, timeout=10)
        assert boot["reason"] == "FirmwareUpdate"
        assert boot["chargingStation"]["firmwareVersion"] == "3.2.1"
        await csms201.expect("FirmwareStatusNotification", mark, status="Installed")
        steps = [
            (p["status"], p["requestId"]) for p in csms201.sent("FirmwareStatusNotification", mark)
        ]
        assert steps == [
            ("Downloading", 3),
            ("Downloaded", 3),
            ("Installing", 3),
            ("InstallRebooting", 3),
            ("Installed", 3),
        ]
        await eventually(lambda: cp.firmware_state == "Idle")
        read = {"getVariableData": [variable("ChargingStation", "FirmwareVersion")]}
        answer = await csms201.call("GetVariables", read)
        assert answer["getVariableResult"][0]["attributeValue"] == "3.2.1"


async def test_get_log_uploads_and_a_second_update_cancels_the_first(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201() as cp:
        mark = csms201.mark()
        get_log = {
            "logType": "DiagnosticsLog",
            "requestId": 4,
            "log": {"remoteLocation": "https://logs.example.com/upload"},
        }
        answer = await csms201.call("GetLog", get_log)
        assert answer == {"status": "Accepted", "filename": "CS201-DiagnosticsLog-4.log"}
        await csms201.expect("LogStatusNotification", mark, status="Uploaded")
        assert [p["status"] for p in csms201.sent("LogStatusNotification", mark)] == [
            "Uploading",
            "Uploaded",
        ]
        await eventually(lambda: cp.upload_state == "Idle")

        later: dict[str, Any] = {
            "requestId": 5,
            "firmware": {"location": "https://fw.example.com/a.bin", "retrieveDateTime": LATER},
        }
        assert await csms201.call("UpdateFirmware", later) == {"status": "Accepted"}
        now = {**later, "requestId": 6, "firmware": {**later["firmware"], "location": "x:y"}}
        now["firmware"]["retrieveDateTime"] = wire_time(START)
        mark = csms201.mark()
        assert await csms201.call("UpdateFirmware", now) == {"status": "AcceptedCanceled"}
        await csms201.expect("FirmwareStatusNotification", mark, status="DownloadFailed")
        assert csms201.sent("FirmwareStatusNotification", mark) == [
            {"status": "Downloading", "requestId": 6},
            {"status": "DownloadFailed", "requestId": 6},
        ]
