"""Command families that need no database, with a charger channel of either version: the
version's limits and names decide (no socket, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from csms.core.charger import RegistrationStatus
from csms.core.command_requests import (
    ConfigSetRequest,
    DiagnosticsRequest,
    FirmwareRequest,
    TriggerRequest,
)
from csms.core.commands import (
    Answer,
    Command,
    CommandRefused,
    GetDiagnostics,
    SetConfiguration,
    Trigger,
    UpdateFirmware,
)
from csms.core.versions import OcppVersion, ProtocolLimits
from csms.handlers.v16.limits import LIMITS as V16_LIMITS
from csms.handlers.v201.limits import LIMITS as V201_LIMITS
from csms.services.commands.base import Order, PartnerReservation, Requester, Vouched
from csms.services.commands.configuration import Configuration
from csms.services.commands.control import prepare as prepare_control
from csms.services.commands.firmware import FirmwareAndLogs
from csms.storage.database import Database

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


class Channel:
    """A connected, accepted charger of one version that is never called here."""

    def __init__(self, version: OcppVersion) -> None:
        self._version = version

    @property
    def version(self) -> OcppVersion:
        return self._version

    @property
    def registration(self) -> RegistrationStatus | None:
        return RegistrationStatus.ACCEPTED

    def encode_command(self, command: Command) -> tuple[str, dict[str, Any]]:
        raise AssertionError("not sent in these tests")

    def decode_answer(self, command: Command, action: str, answer: dict[str, Any]) -> Answer:
        raise AssertionError("not sent in these tests")

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise AssertionError("not sent in these tests")


def order(limits: ProtocolLimits, entry_id: int = 17) -> Order:
    return Order("CP1", entry_id, Requester(), Channel(limits.version), limits, 30.0)


def test_a_trigger_goes_by_the_chargers_version_name() -> None:
    request = TriggerRequest("logstatusnotification", 1)
    v16 = prepare_control(request, order(V16_LIMITS)).command
    v201 = prepare_control(request, order(V201_LIMITS)).command
    assert v16 == Trigger("DiagnosticsStatusNotification", 1)
    assert v201 == Trigger("LogStatusNotification", 1)
    with pytest.raises(CommandRefused, match=r"cannot be triggered on an OCPP 1\.6 charger"):
        prepare_control(TriggerRequest("TransactionEvent"), order(V16_LIMITS))


def test_firmware_and_logs_carry_the_audit_entry_as_request_id() -> None:
    family = FirmwareAndLogs(lambda: NOW)
    firmware = family.prepare(FirmwareRequest("https://fw.example/1.bin"), order(V16_LIMITS, 5))
    assert firmware.command == UpdateFirmware(5, "https://fw.example/1.bin", NOW)
    assert firmware.data == {"request_id": 5}
    logs = family.prepare(DiagnosticsRequest("ftp://logs.example/"), order(V201_LIMITS, 6))
    assert logs.command == GetDiagnostics(6, "ftp://logs.example/")


def test_configuration_keys_by_the_chargers_version() -> None:
    # Neither path below reaches the database: a key is checked before anything is kept.
    family = Configuration(Database.__new__(Database), lambda: NOW)
    flat = family.prepare(ConfigSetRequest("HeartbeatInterval", "300"), order(V16_LIMITS))
    assert flat.command == SetConfiguration("HeartbeatInterval", "300") and flat.after is None
    with pytest.raises(CommandRefused, match="'key' is longer than 50 characters"):
        family.prepare(ConfigSetRequest("K" * 51, "1"), order(V16_LIMITS))
    with pytest.raises(CommandRefused, match=r"is not a 2\.0\.1 variable"):
        family.prepare(ConfigSetRequest("HeartbeatInterval", "300"), order(V201_LIMITS))
    kept = family.prepare(
        ConfigSetRequest("OCPPCommCtrlr.HeartbeatInterval", "300"), order(V201_LIMITS)
    )
    assert kept.after is not None  # the device model keeps what the station accepted


def test_a_vouched_token_survives_its_json_form_for_another_node() -> None:
    plain = Vouched("eMAID", "GROUP-1")
    reserved = Vouched(
        "RFID",
        None,
        PartnerReservation(7, "RES-9", {"location_id": "LOC1", "evse_uid": "E1"}, replaces=3),
    )
    for vouched in (plain, reserved):
        assert Vouched.from_json(orjson.loads(orjson.dumps(vouched.to_json()))) == vouched
