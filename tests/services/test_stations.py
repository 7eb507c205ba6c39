"""Station rules of the service, without a database: who may register at boot, when the
device model is asked for, status times, presence and messages kept as sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.charger import (
    BootInfo,
    ChargePoint,
    RegistrationPolicy,
    RegistrationStatus,
    StatusReport,
)
from csms.core.clock import TimeWindow
from csms.core.device_model import ReportedVariable
from csms.core.overview import ConnectionChanged, StationEvent, StatusChanged
from csms.core.reservations import ReservationState
from csms.core.status import NO_ERROR, ConnectorStatus
from csms.services.charger_input import ChargingSettings, InputChecks
from csms.services.stations import Boot, Progress, StationService
from tests.services.fakes import Admission, Clock, Stations

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
INFO = BootInfo(vendor="ACME", model="Wallbox", firmware_version="1.2")


def service(
    *known: ChargePoint,
    policy: RegistrationPolicy = "accept",
    admission: Admission | None = None,
) -> tuple[StationService, Stations, list[tuple[str, str]]]:
    store = Stations(*known)
    checks = InputChecks(TimeWindow())
    flagged: list[tuple[str, str]] = []
    checks.on_flagged.append(lambda kind, action: flagged.append((kind, action)))
    stations = StationService(
        store,
        Clock(NOW),
        ChargingSettings(registration=policy, heartbeat_interval=120),
        checks,
        admission or Admission(),
    )
    return stations, store, flagged


@pytest.mark.parametrize(
    ("policy", "status"),
    [
        ("accept", RegistrationStatus.ACCEPTED),
        ("pending", RegistrationStatus.PENDING),
        ("reject", RegistrationStatus.REJECTED),
    ],
)
async def test_an_unknown_charger_registers_itself_as_the_policy_says(
    policy: RegistrationPolicy, status: RegistrationStatus
) -> None:
    stations, store, _ = service(policy=policy)
    woken: list[int] = []
    stations.on_status.append(lambda: woken.append(1))
    decision = await stations.boot("NEW", "1.6", INFO)
    assert (decision.status, decision.interval, decision.now) == (status, 120, NOW)
    assert store.writes == [("booted", "NEW", Boot(INFO, "1.6", registered=status))]
    assert woken == [1]


async def test_a_known_charger_keeps_what_staff_decided() -> None:
    known = ChargePoint("CP1", RegistrationStatus.PENDING)
    stations, store, _ = service(known, policy="accept")
    woken: list[int] = []
    stations.on_status.append(lambda: woken.append(1))
    decision = await stations.boot("CP1", "2.0.1", INFO)
    assert decision.status is RegistrationStatus.PENDING
    assert store.writes == [("booted", "CP1", Boot(INFO, "2.0.1"))]
    assert woken == []


async def test_an_unknown_charger_over_the_enrolment_quota_is_rejected_and_not_stored() -> None:
    admission = Admission(refusal="auto_register_limit")
    stations, store, _ = service(admission=admission)
    decision = await stations.boot("NEW", "1.6", INFO)
    assert decision.status is RegistrationStatus.REJECTED
    assert store.writes == []
    assert admission.refused_ids == ["NEW"]
    # Known chargers do not count against it.
    stations, store, _ = service(
        ChargePoint("CP1", RegistrationStatus.ACCEPTED), admission=admission
    )
    assert (await stations.boot("CP1", "1.6", INFO)).status is RegistrationStatus.ACCEPTED


async def test_the_base_report_is_due_once_per_firmware_of_an_accepted_station() -> None:
    asked = ChargePoint("CP1", RegistrationStatus.ACCEPTED, base_report_firmware="1.2")
    stations, store, _ = service(asked)
    assert not (await stations.boot("CP1", "2.0.1", INFO, base_report=True)).base_report
    newer = BootInfo(vendor="ACME", model="Wallbox", firmware_version="1.3")
    assert (await stations.boot("CP1", "2.0.1", newer, base_report=True)).base_report
    assert store.writes[-1] == ("booted", "CP1", Boot(newer, "2.0.1", base_report_firmware="1.3"))
    # Not without the setting, and not for a station that is not Accepted.
    assert not (await stations.boot("CP1", "2.0.1", newer)).base_report
    pending, _, _ = service(ChargePoint("CP2", RegistrationStatus.PENDING))
    assert not (await pending.boot("CP2", "2.0.1", newer, base_report=True)).base_report


async def test_a_new_station_accepted_at_boot_is_asked_for_its_device_model() -> None:
    stations, store, _ = service()
    decision = await stations.boot("NEW", "2.0.1", INFO, base_report=True)
    assert decision.base_report
    boot = store.writes[0][2]
    assert isinstance(boot, Boot)
    assert (boot.registered, boot.base_report_firmware) == (RegistrationStatus.ACCEPTED, "1.2")


async def test_a_status_is_stored_with_its_time_or_the_time_of_receipt() -> None:
    stations, store, flagged = service()
    woken: list[int] = []
    stations.on_status.append(lambda: woken.append(1))
    report = StatusReport(1, 1, ConnectorStatus.CHARGING, NO_ERROR, NOW - timedelta(minutes=1))
    await stations.status("CP1", report)
    assert store.writes[-1] == ("status", "CP1", report)
    future = StatusReport(1, 1, ConnectorStatus.AVAILABLE, NO_ERROR, NOW + timedelta(days=400))
    await stations.status("CP1", future)
    stored = store.writes[-1][2]
    assert isinstance(stored, StatusReport)
    assert (stored.status, stored.timestamp) == (ConnectorStatus.AVAILABLE, NOW)
    assert flagged == [("timestamp", "StatusNotification")]
    assert woken == [1, 1]


async def test_presence_only_for_stored_chargers() -> None:
    known = ChargePoint("CP1", RegistrationStatus.PENDING)
    stations, store, _ = service(known)
    assert await stations.connected("GHOST", "1.6", None) is None
    assert store.writes == []
    assert await stations.connected("CP1", "1.6", known) is RegistrationStatus.PENDING
    await stations.disconnected("CP1", NOW)
    assert store.writes == [
        ("connected", "CP1", "1.6", RegistrationStatus.PENDING),
        ("disconnected", "CP1", NOW),
    ]


async def test_device_reports_and_messages_within_the_quota() -> None:
    variable = ReportedVariable("EVSE", "", 1, None, "Power", "")
    stations, store, _ = service()
    assert await stations.device_report("CP1", [variable, variable], {"seqNo": 0}) == 2
    assert store.variables == [variable, variable]
    assert await stations.record_event("CP1", "DataTransfer", {"vendorId": "X"})
    full, full_store, _ = service(admission=Admission(full=True))
    assert await full.device_report("CP1", [variable], {}) is None
    assert not await full.record_event("CP1", "DataTransfer", {"vendorId": "X"})
    # Firmware progress is tracked over the quota too, without the message.
    assert not await full.record_event(
        "CP1",
        "FirmwareStatusNotification",
        {"status": "Installed"},
        progress=Progress("firmware", "Installed"),
    )
    assert full_store.variables == []
    assert full_store.writes == [
        ("message", "CP1", "FirmwareStatusNotification", None, Progress("firmware", "Installed"))
    ]


async def test_a_reservation_the_station_ended_expired_or_was_removed() -> None:
    stations, store, _ = service()
    await stations.reservation_update("CP1", 4, expired=True)
    await stations.reservation_update("CP1", 5, expired=False)
    assert store.writes == [
        ("reservation", "CP1", 4, ReservationState.EXPIRED),
        ("reservation", "CP1", 5, ReservationState.CANCELLED),
    ]


async def test_changes_are_told_with_what_changed_after_they_are_stored() -> None:
    known = ChargePoint("CP1", RegistrationStatus.ACCEPTED)
    stations, store, _ = service(known)
    told: list[tuple[StationEvent, int]] = []
    stations.on_event.append(lambda event: told.append((event, len(store.writes))))
    await stations.connected("GHOST", "1.6", None)  # not stored: nothing to tell
    await stations.connected("CP1", "1.6", known)
    report = StatusReport(2, 1, ConnectorStatus.FAULTED, "GroundFailure", NOW - timedelta(1))
    await stations.status("CP1", report)
    await stations.disconnected("CP1", NOW - timedelta(seconds=5))
    assert told == [
        (ConnectionChanged("CP1", True, NOW), 1),
        (StatusChanged("CP1", 2, 1, ConnectorStatus.FAULTED, "GroundFailure", report.timestamp), 2),
        (ConnectionChanged("CP1", False, NOW), 3),
    ]
