"""The OCPP 1.6 simulator answers CSMS commands as a real charge point does: driven over a real
websocket by a fake CSMS that checks every frame against the 1.6 schemas."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simulators.clock import wire_time
from simulators.events import StepKind
from simulators.profiles import Purpose
from simulators.station import ConnectorStatus
from simulators.v16 import V16Charger

from .conftest import START, Connect16, FakeClock, eventually
from .fake_csms import FakeCsms

LATER = wire_time(START + timedelta(hours=1))


def reserve(reservation_id: int, connector_id: int, tag: str, **extra: Any) -> dict[str, Any]:
    return {
        "connectorId": connector_id,
        "expiryDate": LATER,
        "idTag": tag,
        "reservationId": reservation_id,
        **extra,
    }


def profile(
    profile_id: int,
    purpose: str,
    limit: float,
    unit: str = "A",
    stack_level: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": wire_time(START),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


async def started(csms: FakeCsms, cp: V16Charger, connector_id: int, since: int) -> int:
    """Wait until the session on the connector charges; its transaction id."""
    await csms.expect("StatusNotification", since, connectorId=connector_id, status="Charging")
    record = cp.transaction_on(connector_id)
    assert record is not None
    return record.transaction_id


# -- reservations ---------------------------------------------------------------------------


async def test_reserved_connector_takes_only_its_tag_and_the_reservation_is_used(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(connectors=2) as cp:
        mark = csms16.mark()
        assert await csms16.call("ReserveNow", reserve(7, 1, "Alice")) == {"status": "Accepted"}
        assert await csms16.statuses(1, mark) == [(1, "Reserved")]
        assert cp.station.status(1) is ConnectorStatus.RESERVED

        start = {"idTag": "Bob", "connectorId": 1}
        assert await csms16.call("RemoteStartTransaction", start) == {"status": "Rejected"}
        assert cp.start_session(1, "Bob") is not None  # a card at the charger ...
        await cp.sessions.wait_idle(5)  # ... is refused there, before any Authorize
        assert csms16.sent("Authorize", mark) == []
        assert cp.tally[StepKind.SESSION_REFUSED] == 1

        mark = csms16.mark()
        accepted = await csms16.call("RemoteStartTransaction", {"idTag": "Bob"})
        assert accepted == {"status": "Accepted"}  # on the free connector
        bob = await csms16.expect("StartTransaction", mark)
        assert bob["connectorId"] == 2 and "reservationId" not in bob

        mark = csms16.mark()
        accepted = await csms16.call("RemoteStartTransaction", {"idTag": "alice"})
        assert accepted == {"status": "Accepted"}
        alice = await csms16.expect("StartTransaction", mark)
        assert alice["connectorId"] == 1 and alice["reservationId"] == 7
        assert cp.reservations.all() == ()
        await started(csms16, cp, 1, mark)


async def test_reserve_now_refusals(csms16: FakeCsms, charger16: Connect16) -> None:
    async with charger16(connectors=2) as cp:
        assert await csms16.call("ReserveNow", reserve(1, 3, "A")) == {"status": "Rejected"}
        assert await csms16.call("ReserveNow", reserve(1, 0, "A")) == {"status": "Rejected"}
        past = {**reserve(1, 1, "A"), "expiryDate": wire_time(START - timedelta(seconds=1))}
        assert await csms16.call("ReserveNow", past) == {"status": "Rejected"}
        assert await csms16.call("ReserveNow", reserve(1, 1, "A")) == {"status": "Accepted"}
        assert await csms16.call("ReserveNow", reserve(2, 1, "B")) == {"status": "Occupied"}
        cp.station.set_status(2, ConnectorStatus.FAULTED)
        assert await csms16.call("ReserveNow", reserve(2, 2, "B")) == {"status": "Faulted"}
        cp.station.set_status(2, ConnectorStatus.AVAILABLE)
        inoperative = {"connectorId": 2, "type": "Inoperative"}
        assert await csms16.call("ChangeAvailability", inoperative) == {"status": "Accepted"}
        assert await csms16.call("ReserveNow", reserve(2, 2, "B")) == {"status": "Unavailable"}
        assert [r.reservation_id for r in cp.reservations.all()] == [1]


async def test_same_id_replaces_and_cancel_frees_the_connector(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(connectors=2) as cp:
        mark = csms16.mark()
        await csms16.call("ReserveNow", reserve(5, 1, "A"))
        assert await csms16.call("ReserveNow", reserve(5, 2, "A")) == {"status": "Accepted"}
        assert await csms16.statuses(3, mark) == [
            (1, "Reserved"),
            (1, "Available"),
            (2, "Reserved"),
        ]
        (held,) = cp.reservations.all()
        assert held.connector_id == 2

        mark = csms16.mark()
        assert await csms16.call("CancelReservation", {"reservationId": 5}) == {
            "status": "Accepted"
        }
        assert await csms16.statuses(1, mark) == [(2, "Available")]
        assert await csms16.call("CancelReservation", {"reservationId": 5}) == {
            "status": "Rejected"
        }


async def test_reservation_expires_at_its_expiry_date(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16() as cp:
        mark = csms16.mark()
        soon = {**reserve(3, 1, "A"), "expiryDate": wire_time(START + timedelta(seconds=0.2))}
        assert await csms16.call("ReserveNow", soon) == {"status": "Accepted"}
        assert await csms16.statuses(2, mark) == [(1, "Reserved"), (1, "Available")]
        assert cp.reservations.all() == ()


async def test_connector_zero_reservation_when_supported(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(connectors=2) as cp:
        cp.configuration.set("ReserveConnectorZeroSupported", "true")
        mark = csms16.mark()
        assert await csms16.call("ReserveNow", reserve(9, 0, "A")) == {"status": "Accepted"}
        assert cp.station.status(1) is ConnectorStatus.AVAILABLE  # two free, one is held
        assert await csms16.call("RemoteStartTransaction", {"idTag": "B"}) == {"status": "Accepted"}
        await started(csms16, cp, 1, mark)
        # the last free connector is now the reservation's: it shows Reserved, others wait
        assert cp.station.status(2) is ConnectorStatus.RESERVED
        assert await csms16.call("RemoteStartTransaction", {"idTag": "C"}) == {"status": "Rejected"}
        mark = csms16.mark()
        assert await csms16.call("RemoteStartTransaction", {"idTag": "A"}) == {"status": "Accepted"}
        used = await csms16.expect("StartTransaction", mark)
        assert used["connectorId"] == 2 and used["reservationId"] == 9


async def test_parent_tag_may_use_the_reservation(csms16: FakeCsms, charger16: Connect16) -> None:
    async with charger16() as cp:
        await csms16.call("ReserveNow", reserve(4, 1, "Boss", parentIdTag="Fleet"))
        csms16.tag_info["Driver"] = {"status": "Accepted", "parentIdTag": "Fleet"}
        csms16.tag_info["Stranger"] = {"status": "Accepted", "parentIdTag": "Other"}

        mark = csms16.mark()
        start = {"idTag": "Stranger", "connectorId": 1}
        assert await csms16.call("RemoteStartTransaction", start) == {"status": "Accepted"}
        await csms16.expect("Authorize", mark, idTag="Stranger")
        await cp.sessions.wait_idle(5)
        assert csms16.sent("StartTransaction", mark) == []  # refused once its parent was known
        assert cp.station.status(1) is ConnectorStatus.RESERVED

        mark = csms16.mark()
        start = {"idTag": "Driver", "connectorId": 1}
        assert await csms16.call("RemoteStartTransaction", start) == {"status": "Accepted"}
        used = await csms16.expect("StartTransaction", mark)
        assert used["reservationId"] == 4


# -- local authorization list ---------------------------------------------------------------


def entry(tag: str, status: str | None = "Accepted", **info: Any) -> dict[str, Any]:
    return (
        {"idTag": tag}
        if status is None
        else {"idTag": tag, "idTagInfo": {"status": status, **info}}
    )


async def test_local_list_full_and_differential_updates(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16() as cp:
        assert await csms16.call("GetLocalListVersion", {}) == {"listVersion": 0}
        full = {
            "listVersion": 3,
            "updateType": "Full",
            "localAuthorizationList": [entry("A"), entry("B", "Blocked")],
        }
        assert await csms16.call("SendLocalList", full) == {"status": "Accepted"}
        assert await csms16.call("GetLocalListVersion", {}) == {"listVersion": 3}

        stale = {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": []}
        assert await csms16.call("SendLocalList", stale) == {"status": "VersionMismatch"}
        diff = {
            "listVersion": 4,
            "updateType": "Differential",
            "localAuthorizationList": [entry("B", None), entry("C", parentIdTag="P")],
        }
        assert await csms16.call("SendLocalList", diff) == {"status": "Accepted"}
        assert cp.local_list.version == 4
        assert {(e.id_tag, e.status, e.parent_id_tag) for e in cp.local_list.entries()} == {
            ("A", "Accepted", None),
            ("C", "Accepted", "P"),
        }
        too_many = {
            "listVersion": 5,
            "updateType": "Full",
            "localAuthorizationList": [entry(f"T{n}") for n in range(51)],
        }
        assert await csms16.call("SendLocalList", too_many) == {"status": "Failed"}
        no_info = {
            "listVersion": 5,
            "updateType": "Full",
            "localAuthorizationList": [entry("A", None)],
        }
        assert await csms16.call("SendLocalList", no_info) == {"status": "Failed"}
        assert cp.local_list.version == 4

        change = {"key": "LocalAuthListEnabled", "value": "false"}
        assert await csms16.call("ChangeConfiguration", change) == {"status": "Accepted"}
        assert await csms16.call("GetLocalListVersion", {}) == {"listVersion": -1}
        assert await csms16.call("SendLocalList", full) == {"status": "NotSupported"}


async def test_local_list_decides_offline_and_pre_authorizes(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(connectors=2) as cp:
        full = {
            "listVersion": 1,
            "updateType": "Full",
            "localAuthorizationList": [entry("Good"), entry("Bad", "Blocked")],
        }
        await csms16.call("SendLocalList", full)
        cp.configuration.set("LocalPreAuthorize", "true")
        mark = csms16.mark()
        assert cp.start_session(1, "Good", 0.05) is not None
        await cp.sessions.wait_idle(5)
        assert len(csms16.sent("StopTransaction", mark)) == 1
        assert csms16.sent("Authorize", mark) == []  # the list was enough

        await cp.go_offline()
        assert cp.start_session(1, "Bad", 0.05) is not None
        await cp.sessions.wait_idle(5)
        assert not cp.queued  # refused by the list
        assert cp.start_session(2, "Good", 0.05) is not None
        await cp.sessions.wait_idle(5)
        assert [m.action for m in cp.queued] == ["StartTransaction", "StopTransaction"]


# -- firmware and diagnostics ---------------------------------------------------------------


async def test_update_firmware_steps_then_reboots_with_the_new_version(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16() as cp:
        mark = csms16.mark()
        soon = wire_time(START + timedelta(seconds=0.1))
        update = {"location": "https://fw.example.com/sim-2.1.0.bin", "retrieveDate": soon}
        cp.step_seconds = 0.3
        assert await csms16.call("UpdateFirmware", update) == {}
        trigger = {"requestedMessage": "FirmwareStatusNotification"}
        assert await csms16.call("TriggerMessage", trigger) == {"status": "Accepted"}
        assert await csms16.expect("FirmwareStatusNotification", mark) == {"status": "Idle"}
        await csms16.expect("FirmwareStatusNotification", mark, status="Downloading")
        during = csms16.mark()
        assert await csms16.call("TriggerMessage", trigger) == {"status": "Accepted"}
        assert await csms16.expect("FirmwareStatusNotification", during) == {
            "status": "Downloading"  # the state it is in, not Idle
        }
        boot = await csms16.expect("BootNotification", mark, timeout=10)
        steps = [p["status"] for p in csms16.sent("FirmwareStatusNotification", during)]
        assert steps == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert boot["firmwareVersion"] == "2.1.0"
        assert cp.firmware_version == "2.1.0"
        mark = csms16.mark()
        await csms16.call("TriggerMessage", trigger)
        assert await csms16.expect("FirmwareStatusNotification", mark) == {"status": "Idle"}


async def test_firmware_waits_for_the_transaction_and_bad_location_fails(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16() as cp:
        mark = csms16.mark()
        await csms16.call("RemoteStartTransaction", {"idTag": "A", "connectorId": 1})
        tx = await started(csms16, cp, 1, mark)
        update = {"location": "https://fw.example.com/image.bin", "retrieveDate": wire_time(START)}
        await csms16.call("UpdateFirmware", update)
        await csms16.expect("FirmwareStatusNotification", mark, status="Downloaded")
        assert csms16.sent("BootNotification", mark) == []
        assert not [
            p
            for p in csms16.sent("FirmwareStatusNotification", mark)
            if p["status"] == "Installing"
        ]
        await csms16.call("RemoteStopTransaction", {"transactionId": tx})
        boot = await csms16.expect("BootNotification", mark, timeout=10)
        assert boot["firmwareVersion"] == "1.0.1"  # no version in the file name: counted up
        stop = await csms16.expect("StopTransaction", mark)
        assert stop["reason"] == "Remote"

        mark = csms16.mark()
        bad = {"location": "file:///tmp/x.bin", "retrieveDate": wire_time(START)}
        await csms16.call("UpdateFirmware", bad)
        await csms16.expect("FirmwareStatusNotification", mark, status="DownloadFailed")
        assert [p["status"] for p in csms16.sent("FirmwareStatusNotification", mark)] == [
            "Downloading",
            "DownloadFailed",
        ]
        await eventually(lambda: cp.firmware_state == "Idle")


async def test_get_diagnostics_uploads_and_trigger_reports_the_state(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16() as cp:
        mark = csms16.mark()
        trigger = {"requestedMessage": "DiagnosticsStatusNotification"}
        await csms16.call("TriggerMessage", trigger)
        assert await csms16.expect("DiagnosticsStatusNotification", mark) == {"status": "Idle"}
        mark = csms16.mark()
        answer = await csms16.call("GetDiagnostics", {"location": "ftp://logs.example.com/up"})
        assert answer == {"fileName": "CP16-diagnostics-20250101T100000000Z.log"}
        await csms16.expect("DiagnosticsStatusNotification", mark, status="Uploaded")
        assert [p["status"] for p in csms16.sent("DiagnosticsStatusNotification", mark)] == [
            "Uploading",
            "Uploaded",
        ]
        await eventually(lambda: cp.upload_state == "Idle")


# -- smart charging -------------------------------------------------------------------------


async def test_profiles_are_checked_against_connector_purpose_and_transaction(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(connectors=2) as cp:

        async def set_profile(connector_id: int, body: dict[str, Any]) -> str:
            payload = {"connectorId": connector_id, "csChargingProfiles": body}
            return str((await csms16.call("SetChargingProfile", payload))["status"])

        assert await set_profile(1, profile(1, "ChargePointMaxProfile", 20)) == "Rejected"
        assert await set_profile(0, profile(1, "ChargePointMaxProfile", 20)) == "Accepted"
        assert await set_profile(1, profile(2, "TxProfile", 10)) == "Rejected"  # no transaction
        assert await set_profile(0, profile(2, "TxProfile", 10)) == "Rejected"
        assert await set_profile(3, profile(2, "TxDefaultProfile", 10)) == "Rejected"
        assert await set_profile(1, profile(2, "TxDefaultProfile", 10, stack_level=9)) == "Rejected"
        assert await set_profile(2, profile(2, "TxDefaultProfile", 10, unit="W")) == "Accepted"
        mark = csms16.mark()
        await csms16.call("RemoteStartTransaction", {"idTag": "A", "connectorId": 1})
        tx = await started(csms16, cp, 1, mark)
        assert await set_profile(1, profile(3, "TxProfile", 10, transactionId=tx + 1)) == "Rejected"
        assert await set_profile(1, profile(3, "TxProfile", 10, transactionId=tx)) == "Accepted"
        assert {p.profile_id for p in cp.profiles.all()} == {1, 2, 3}

        clear = await csms16.call("ClearChargingProfile", {"id": 2})
        assert clear == {"status": "Accepted"}
        assert await csms16.call("ClearChargingProfile", {"id": 2}) == {"status": "Unknown"}
        by_purpose = {"chargingProfilePurpose": "ChargePointMaxProfile", "connectorId": 0}
        assert await csms16.call("ClearChargingProfile", by_purpose) == {"status": "Accepted"}
        await csms16.call("RemoteStopTransaction", {"transactionId": tx})
        await cp.sessions.wait_idle(5)
        assert cp.profiles.all() == ()  # the TxProfile ended with its transaction


async def test_profile_caps_power_energy_and_composite_schedule(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    clock = FakeClock()
    async with charger16(clock=clock, connectors=2) as cp:
        mark = csms16.mark()
        await csms16.call("RemoteStartTransaction", {"idTag": "A", "connectorId": 1})
        tx = await started(csms16, cp, 1, mark)
        payload = {"connectorId": 1, "csChargingProfiles": profile(1, "TxProfile", 10)}
        assert await csms16.call("SetChargingProfile", payload) == {"status": "Accepted"}
        before = cp.reading(1).energy_wh
        clock.now += timedelta(hours=1)
        mark = csms16.mark()
        trigger = {"requestedMessage": "MeterValues", "connectorId": 1}
        await csms16.call("TriggerMessage", trigger)
        sent = await csms16.expect("MeterValues", mark)
        assert sent["transactionId"] == tx
        values = {
            v["measurand"]: v for v in sent["meterValue"][0]["sampledValue"] if "phase" not in v
        }
        power = int(values["Power.Active.Import"]["value"])
        energy = int(values["Energy.Active.Import.Register"]["value"]) - before
        assert 0 < power <= 3 * 230 * 10
        assert 0.9 * 3 * 230 * 10 <= energy <= 3 * 230 * 10  # one hour at the cap

        in_amps = {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"}
        assert await csms16.call("GetCompositeSchedule", in_amps) == {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": wire_time(clock.now),
            "chargingSchedule": {
                "duration": 3600,
                "startSchedule": wire_time(clock.now),
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
            },
        }
        in_watts = await csms16.call("GetCompositeSchedule", {"connectorId": 2, "duration": 60})
        assert in_watts["chargingSchedule"]["chargingRateUnit"] == "W"
        assert in_watts["chargingSchedule"]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 3 * 230 * 32}  # no profile: the rating
        ]
        grid = await csms16.call("GetCompositeSchedule", {"connectorId": 0, "duration": 60})
        assert grid["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 6900 + 22080
        unknown = {"connectorId": 3, "duration": 60}
        assert await csms16.call("GetCompositeSchedule", unknown) == {"status": "Rejected"}

        await csms16.call("RemoteStopTransaction", {"transactionId": tx})
        await cp.sessions.wait_idle(5)
        assert cp.station.connector(1).limit_w is None


async def test_remote_start_with_a_tx_profile(csms16: FakeCsms, charger16: Connect16) -> None:
    async with charger16(connectors=2) as cp:
        mark = csms16.mark()
        start = {"idTag": "A", "connectorId": 1, "chargingProfile": profile(8, "TxProfile", 6)}
        assert await csms16.call("RemoteStartTransaction", start) == {"status": "Accepted"}
        await started(csms16, cp, 1, mark)
        assert [p.purpose for p in cp.profiles.all()] == [Purpose.TX]
        assert cp.station.connector(1).limit_w == 3 * 230 * 6
        wrong = {"idTag": "B", "chargingProfile": profile(9, "TxDefaultProfile", 6)}
        assert await csms16.call("RemoteStartTransaction", wrong) == {"status": "Rejected"}


# -- configuration and triggers -------------------------------------------------------------


async def test_configuration_lists_the_feature_profiles_and_smart_charging_keys(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16():
        keys = [
            "SupportedFeatureProfiles",
            "ChargeProfileMaxStackLevel",
            "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods",
            "MaxChargingProfilesInstalled",
            "LocalAuthListEnabled",
            "LocalAuthListMaxLength",
            "SendLocalListMaxLength",
            "ReserveConnectorZeroSupported",
        ]
        answer = await csms16.call("GetConfiguration", {"key": keys})
        got = {k["key"]: (k["value"], k["readonly"]) for k in answer["configurationKey"]}
        assert set(got["SupportedFeatureProfiles"][0].split(",")) == {
            "Core",
            "FirmwareManagement",
            "LocalAuthListManagement",
            "Reservation",
            "SmartCharging",
            "RemoteTrigger",
        }
        assert got["ChargeProfileMaxStackLevel"] == ("8", True)
        assert got["ChargingScheduleAllowedChargingRateUnit"] == ("Current,Power", True)
        assert got["LocalAuthListEnabled"] == ("true", False)
        assert got["ReserveConnectorZeroSupported"] == ("false", True)
        change = {"key": "MaxChargingProfilesInstalled", "value": "1"}
        assert await csms16.call("ChangeConfiguration", change) == {"status": "Rejected"}


async def test_reserved_connector_made_inoperative_and_back_is_reserved_again(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16() as cp:
        mark = csms16.mark()
        await csms16.call("ReserveNow", reserve(1, 1, "A"))
        off = {"connectorId": 1, "type": "Inoperative"}
        assert await csms16.call("ChangeAvailability", off) == {"status": "Accepted"}
        on = {"connectorId": 1, "type": "Operative"}
        assert await csms16.call("ChangeAvailability", on) == {"status": "Accepted"}
        assert await csms16.statuses(3, mark) == [
            (1, "Reserved"),
            (1, "Unavailable"),
            (1, "Reserved"),
        ]
        assert cp.station.status(1) is ConnectorStatus.RESERVED
