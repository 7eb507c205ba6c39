"""Typed command requests without I/O: read from the API's JSON parameters, their JSON form
for the audit log (what OCPI built as dicts before), and the versions' limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.core.command_params import check_length
from csms.core.command_requests import (
    AvailabilityRequest,
    CancelReservationRequest,
    CommandRequest,
    ConfigGetRequest,
    ConfigSetRequest,
    FirmwareRequest,
    LocalListSendRequest,
    ProfileClearRequest,
    ProfileCompositeRequest,
    ProfileSetRequest,
    ReserveRequest,
    ResetRequest,
    StartRequest,
    StopRequest,
    TriggerRequest,
    UnlockRequest,
    parse_request,
)
from csms.core.commands import CommandName, CommandRefused, ProfilePurpose, SchedulePeriod
from csms.core.versions import OcppVersion, ProtocolLimits
from csms.handlers.v16 import V16Adapter
from csms.handlers.v16.limits import LIMITS as V16_LIMITS
from csms.handlers.v201 import V201Adapter
from csms.handlers.v201.limits import LIMITS as V201_LIMITS

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
BOTH = (V16_LIMITS, V201_LIMITS)


def test_each_adapter_states_its_versions_limits() -> None:
    assert V16Adapter.version is OcppVersion.V16 and V16Adapter.limits is V16_LIMITS
    assert V201Adapter.version is OcppVersion.V201 and V201Adapter.limits is V201_LIMITS
    assert (V16_LIMITS.id_token_max, V201_LIMITS.id_token_max) == (20, 36)
    assert (V16_LIMITS.config_key_max, V201_LIMITS.config_key_max) == (50, 500)
    assert not V16_LIMITS.device_model and V201_LIMITS.device_model
    assert not V16_LIMITS.start_carries_remote_start_id
    assert V201_LIMITS.start_carries_remote_start_id
    assert V16_LIMITS.fits_id_token("A" * 20) and not V16_LIMITS.fits_id_token("A" * 21)


def test_stored_version_names() -> None:
    assert OcppVersion.of("1.6") is OcppVersion.V16
    assert OcppVersion.of("2.0.1") is OcppVersion.V201
    assert OcppVersion.of(None) is None and OcppVersion.of("2.1") is None
    # Stored values and configuration keep their names.
    assert str(OcppVersion.V201) == "2.0.1" and f"{OcppVersion.V16}" == "1.6"


@pytest.mark.parametrize(
    ("request_", "params"),
    [
        # What OCPI commands and charging profile requests built as dicts before.
        (StartRequest("UID-1", 2), {"tag": "UID-1", "evse": 2}),
        (StopRequest(41), {"transaction": 41}),
        (
            ReserveRequest("UID-1", datetime(2026, 12, 5, 9, 30, 1, 234567, tzinfo=UTC), 1),
            {"tag": "UID-1", "expires": "2026-12-05T09:30:01.234Z", "evse": 1},
        ),
        (
            ReserveRequest("UID-1", datetime(2026, 12, 5, 9, 30, tzinfo=UTC)),
            {"tag": "UID-1", "expires": "2026-12-05T09:30:00.000Z"},
        ),
        (CancelReservationRequest(7), {"reservation": 7}),
        (UnlockRequest(3), {"evse": 3}),
        (ProfileClearRequest(transaction=5), {"transaction": 5}),
        (ProfileCompositeRequest(1, 900), {"evse": 1, "duration": 900}),
        (LocalListSendRequest(), {"mode": "full"}),
        (LocalListSendRequest(full=False), {"mode": "differential"}),
        (
            ConfigSetRequest("HeartbeatInterval", "300"),
            {"key": "HeartbeatInterval", "value": "300"},
        ),
        (AvailabilityRequest(False, 2), {"state": "inoperative", "evse": 2}),
        (ResetRequest(), {}),
        (ConfigGetRequest(), {}),
    ],
)
def test_the_json_form_the_audit_log_keeps(
    request_: CommandRequest, params: dict[str, Any]
) -> None:
    assert request_.params() == params
    assert list(request_.params()) == list(params)  # in the same order


@pytest.mark.parametrize(
    "request_",
    [
        StartRequest("CARD1"),
        StartRequest("C" * 36, 1),
        StopRequest(7),
        ResetRequest(hard=True),
        UnlockRequest(1),
        AvailabilityRequest(True),
        ConfigGetRequest(("HeartbeatInterval", "MeterValueSampleInterval")),
        ConfigSetRequest("OCPPCommCtrlr.HeartbeatInterval", ""),
        TriggerRequest("heartbeat", 1),
        ReserveRequest("A", NOW + timedelta(hours=1), 2),
        FirmwareRequest("https://fw.example/image.bin", NOW + timedelta(minutes=5)),
        ProfileSetRequest(evse=0, unit="W", limit=11000.0, purpose=ProfilePurpose.CHARGER_MAX),
        ProfileSetRequest(
            evse=1,
            unit="A",
            periods=(SchedulePeriod(0, 16.0), SchedulePeriod(600, 8.0)),
            purpose=ProfilePurpose.TX,
            duration=3600,
            relative=True,
            min_rate=6.0,
            transaction=9,
        ),
        ProfileClearRequest(profile_id=4),
        ProfileCompositeRequest(0, 600, "A"),
    ],
)
def test_a_request_reads_back_from_its_json_form(request_: CommandRequest) -> None:
    assert parse_request(request_.name, request_.params(), NOW, BOTH) == request_


def test_the_api_parameters_become_typed_requests() -> None:
    start = parse_request(CommandName.START, {"tag": "CARD1", "evse": "2"}, NOW, BOTH)
    assert start == StartRequest("CARD1", 2)
    profile = parse_request(
        CommandName.PROFILE_SET,
        {"evse": 1, "periods": ["0:16", "600:8"], "unit": "a", "purpose": "txprofile"},
        NOW,
        BOTH,
    )
    assert profile == ProfileSetRequest(
        evse=1,
        unit="A",
        periods=(SchedulePeriod(0, 16.0), SchedulePeriod(600, 8.0)),
        purpose=ProfilePurpose.TX,
    )
    assert isinstance(profile, ProfileSetRequest) and profile.first_limit == 16.0
    value = parse_request(CommandName.CONFIG_SET, {"key": "K", "value": True}, NOW, BOTH)
    assert value == ConfigSetRequest("K", "true")


def test_lengths_are_the_widest_versions_until_the_charger_is_known() -> None:
    parse_request(CommandName.START, {"tag": "T" * 36}, NOW, BOTH)
    with pytest.raises(CommandRefused, match="'tag' is longer than 36 characters"):
        parse_request(CommandName.START, {"tag": "T" * 37}, NOW, BOTH)
    with pytest.raises(CommandRefused, match="'tag' is longer than 20 characters"):
        parse_request(CommandName.START, {"tag": "T" * 21}, NOW, (V16_LIMITS,))
    narrow = ProtocolLimits(OcppVersion.V16, 8, 10, False, False)
    with pytest.raises(CommandRefused, match="'key' is longer than 10 characters"):
        parse_request(CommandName.CONFIG_SET, {"key": "K" * 11, "value": "1"}, NOW, (narrow,))
    with pytest.raises(CommandRefused, match="'tag' is longer than 20 characters"):
        check_length("tag", "T" * 21, V16_LIMITS.id_token_max)
