"""Every command becomes a schema-valid CALL of both OCPP versions, and answers read back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.core.authorization import AuthResult, AuthStatus
from csms.core.commands import (
    Answer,
    CancelReservation,
    ChangeAvailability,
    ChargingProfile,
    ClearCache,
    ClearChargingProfile,
    Command,
    CommandRefused,
    DataTransfer,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetLocalListVersion,
    LocalListEntry,
    ProfilePurpose,
    RemoteStart,
    RemoteStop,
    Reserve,
    Reset,
    SendLocalList,
    SetChargingProfile,
    SetConfiguration,
    Trigger,
    Unlock,
    UpdateFirmware,
)
from csms.handlers.schemas import SchemaSet
from csms.handlers.v16 import commands as v16
from csms.handlers.v201 import commands as v201

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PROFILE = ChargingProfile(7, 1, ProfilePurpose.TX, 2, 16.0, "A", AT, 3600, "42")
COMMANDS: list[Command] = [
    RemoteStart("TAG1", "ISO14443", 1, 11),
    RemoteStart("TAG1", "ISO14443", None, 12),
    RemoteStop(42, "42"),
    Reset(hard=True),
    Reset(hard=False),
    Unlock(2),
    ChangeAvailability(False, None),
    ChangeAvailability(True, 2),
    SetConfiguration("OCPPCommCtrlr.HeartbeatInterval", "60"),
    Trigger("StatusNotification", 1),
    Trigger("Heartbeat", None),
    ClearCache(),
    DataTransfer("Acme", "ping", "hello"),
    Reserve(5, "TAG1", "ISO14443", "FLEET", AT, 1),
    Reserve(6, "TAG1", "ISO14443", None, AT, None),
    CancelReservation(5),
    SendLocalList(
        3,
        False,
        (
            LocalListEntry("A", "ISO14443", AuthResult(AuthStatus.ACCEPTED, AT, "FLEET")),
            LocalListEntry("B", "ISO14443", AuthResult(AuthStatus.UNKNOWN)),
            LocalListEntry("C", "ISO14443", None),
        ),
    ),
    SendLocalList(1, True, ()),
    GetLocalListVersion(),
    UpdateFirmware(9, "https://example.com/fw.bin", AT),
    GetDiagnostics(10, "ftp://example.com/logs/"),
    SetChargingProfile(PROFILE),
    SetChargingProfile(ChargingProfile(8, 0, ProfilePurpose.CHARGER_MAX, 0, 11000, "W", AT)),
    ClearChargingProfile(7),
    ClearChargingProfile(None),
    GetCompositeSchedule(1, 600, "W"),
    GetCompositeSchedule(0, 60, None),
]


@pytest.mark.parametrize(("version", "codec"), [("1.6", v16), ("2.0.1", v201)])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_is_a_valid_call(version: str, codec: object, command: Command) -> None:
    action, payload = codec.encode(command)  # type: ignore[attr-defined]
    validate = SchemaSet(version).request_validator(action)
    assert validate is not None, action
    validate(payload)


def test_version_specific_fields() -> None:
    assert v16.encode(RemoteStop(42, "42")) == ("RemoteStopTransaction", {"transactionId": 42})
    assert v201.encode(RemoteStop(42, "abc-1")) == (
        "RequestStopTransaction",
        {"transactionId": "abc-1"},
    )
    assert v201.encode(Reset(hard=False)) == ("Reset", {"type": "OnIdle"})
    assert v16.encode(ChangeAvailability(False, None))[1] == {
        "connectorId": 0,
        "type": "Inoperative",
    }
    assert v201.encode(GetConfiguration(("Comp.inst.Var",)))[1] == {
        "getVariableData": [
            {"component": {"name": "Comp", "instance": "inst"}, "variable": {"name": "Var"}}
        ]
    }
    _, local = v16.encode(COMMANDS[16])
    assert local["localAuthorizationList"][1]["idTagInfo"] == {"status": "Invalid"}
    assert "idTagInfo" not in local["localAuthorizationList"][2]
    _, profile = v201.encode(SetChargingProfile(PROFILE))
    assert profile["chargingProfile"]["transactionId"] == "42"
    _, profile16 = v16.encode(SetChargingProfile(PROFILE))
    assert profile16["csChargingProfiles"]["transactionId"] == 42
    max201 = v201.encode(COMMANDS[22])[1]["chargingProfile"]
    assert max201["chargingProfilePurpose"] == "ChargingStationMaxProfile"


def test_v201_variables_need_names() -> None:
    with pytest.raises(CommandRefused, match="name the variables"):
        v201.encode(GetConfiguration(()))
    with pytest.raises(CommandRefused, match=r"Component\.Variable"):
        v201.encode(SetConfiguration("HeartbeatInterval", "5"))


def test_answers() -> None:
    assert v16.decode(Unlock(1), {"status": "Unlocked"}) == Answer("Unlocked", True)
    assert v16.decode(Unlock(1), {"status": "UnlockFailed"}).ok is False
    assert v16.decode(ChangeAvailability(True, 1), {"status": "Scheduled"}).ok is True
    config = v16.decode(
        GetConfiguration(("A", "Nope")),
        {
            "configurationKey": [{"key": "A", "value": "1", "readonly": True}],
            "unknownKey": ["Nope"],
        },
    )
    assert config.data == {
        "keys": [{"key": "A", "value": "1", "readonly": True}],
        "unknown": ["Nope"],
    }
    assert v16.decode(UpdateFirmware(1, "x", AT), {}) == Answer("Accepted", True)
    assert v16.decode(GetLocalListVersion(), {"listVersion": 4}).data == {"list_version": 4}
    reboot = v201.decode(
        SetConfiguration("A.B", "1"),
        {
            "setVariableResult": [
                {
                    "attributeStatus": "RebootRequired",
                    "component": {"name": "A"},
                    "variable": {"name": "B"},
                }
            ]
        },
    )
    assert reboot.ok and reboot.status == "RebootRequired"
    got = v201.decode(
        GetConfiguration(("A.B", "C.D")),
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "5",
                    "component": {"name": "A"},
                    "variable": {"name": "B"},
                },
                {
                    "attributeStatus": "UnknownComponent",
                    "component": {"name": "C"},
                    "variable": {"name": "D"},
                },
            ]
        },
    )
    assert got.data["unknown"] == ["C.D"]
    assert got.data["keys"][0] == {"key": "A.B", "value": "5"}
    rejected = v201.decode(
        RemoteStart("T", "ISO14443", 1, 3),
        {"status": "Rejected", "statusInfo": {"reasonCode": "Occupied", "additionalInfo": "x"}},
    )
    assert rejected == Answer("Rejected", False, "Occupied: x", {})
    schedule = v201.decode(
        GetCompositeSchedule(1, 60, "W"),
        {
            "status": "Accepted",
            "schedule": {
                "evseId": 1,
                "duration": 60,
                "scheduleStart": "2026-11-23T12:00:00Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400}],
            },
        },
    )
    assert schedule.data["periods"] == [{"start_s": 0, "limit": 7400, "phases": None}]
