"""OCPI charging profiles as pure rules: requests checked, the command parameters they
become, and chargers' answers as OCPI results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.core.commands import MAX_PERIODS, Outcome, SchedulePeriod
from csms.core.ocpi_profiles import (
    MAX_DURATION_S,
    STACK_LEVEL,
    BadProfileRequest,
    OcpiProfile,
    active_profile,
    active_profile_result,
    clear_request,
    clear_result,
    composite_request,
    duration,
    parse_charging_profile,
    parse_set_charging_profile,
    response_url,
    session_tx_id,
    set_request,
    set_result,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
URL = "https://emsp.example.com/ocpi/results/42"


def profile_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "start_date_time": "2026-11-23T12:00:00Z",
        "duration": 3600,
        "charging_rate_unit": "A",
        "min_charging_rate": 6.5,
        "charging_profile_period": [
            {"start_period": 0, "limit": 16},
            {"start_period": 900, "limit": 8.1},
            {"start_period": 1800, "limit": 0},
        ],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_a_full_profile_is_read() -> None:
    profile, url = parse_set_charging_profile(
        {"charging_profile": profile_json(), "response_url": URL}
    )
    assert url == URL
    assert profile == OcpiProfile(
        unit="A",
        periods=(SchedulePeriod(0, 16.0), SchedulePeriod(900, 8.1), SchedulePeriod(1800, 0.0)),
        start_at=NOW,
        duration_s=3600,
        min_rate=6.5,
    )


def test_a_minimal_profile_is_relative() -> None:
    profile = parse_charging_profile(
        {"charging_rate_unit": "W", "charging_profile_period": [{"start_period": 0, "limit": 7400}]}
    )
    assert profile == OcpiProfile("W", (SchedulePeriod(0, 7400.0),))
    assert profile.start_at is None and profile.duration_s is None and profile.min_rate is None


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"charging_rate_unit": "kW"}, "charging_rate_unit"),
        ({"charging_rate_unit": None}, "charging_rate_unit"),
        ({"start_date_time": "tomorrow"}, "start_date_time"),
        ({"start_date_time": 12}, "start_date_time"),
        ({"duration": 0}, "duration"),
        ({"duration": 60.5}, "duration"),
        ({"duration": True}, "duration"),
        ({"min_charging_rate": -1}, "min_charging_rate"),
        ({"min_charging_rate": 6.55}, "min_charging_rate"),
        ({"charging_profile_period": None}, "1 to"),
        ({"charging_profile_period": []}, "1 to"),
        ({"charging_profile_period": [{"start_period": 0}]}, "limit"),
        ({"charging_profile_period": [{"start_period": 0, "limit": "16"}]}, "limit"),
        ({"charging_profile_period": [{"start_period": 0, "limit": 16.25}]}, "limit"),
        ({"charging_profile_period": [{"start_period": 0, "limit": float("nan")}]}, "limit"),
        ({"charging_profile_period": [{"start_period": -5, "limit": 16}]}, "start_period"),
        ({"charging_profile_period": [{"start_period": 1.5, "limit": 16}]}, "start_period"),
        ({"charging_profile_period": [{"start_period": 60, "limit": 16}]}, "start at 0"),
        ({"charging_profile_period": ["0:16"]}, "start_period"),
        (
            {
                "charging_profile_period": [
                    {"start_period": 0, "limit": 16},
                    {"start_period": 600, "limit": 10},
                    {"start_period": 600, "limit": 8},
                ]
            },
            "ascending",
        ),
    ],
)
def test_what_ocpp_cannot_carry_is_refused(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(BadProfileRequest, match=complaint):
        parse_charging_profile(profile_json(**changes))


def test_too_many_periods_are_refused() -> None:
    periods = [{"start_period": i * 60, "limit": 16} for i in range(MAX_PERIODS + 1)]
    with pytest.raises(BadProfileRequest, match="1 to 1024"):
        parse_charging_profile(profile_json(charging_profile_period=periods))
    assert len(parse_charging_profile(profile_json(charging_profile_period=periods[:-1])).periods)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"response_url": URL},
        {"charging_profile": profile_json()},
        {"charging_profile": profile_json(), "response_url": "ftp://x/y"},
        {"charging_profile": "profile", "response_url": URL},
    ],
)
def test_a_set_charging_profile_needs_both_parts(body: Any) -> None:
    with pytest.raises(BadProfileRequest):
        parse_set_charging_profile(body)


def test_response_urls() -> None:
    assert response_url("http://127.0.0.1:8000/r?id=1") == "http://127.0.0.1:8000/r?id=1"
    for bad in (None, "", "results/1", "mailto:a@b.c", "http://", 42, "https://x/" + "a" * 600):
        with pytest.raises(BadProfileRequest, match="response_url"):
            response_url(bad)


def test_durations() -> None:
    assert duration("900") == 900
    assert duration(" 60 ") == 60
    assert duration(str(MAX_DURATION_S)) == MAX_DURATION_S
    for bad in (None, "", "0", "-5", "1.5", "ten", "٣", str(MAX_DURATION_S + 1)):
        with pytest.raises(BadProfileRequest, match="duration"):
            duration(bad)


def test_session_ids_are_our_transaction_ids() -> None:
    assert session_tx_id("42") == 42
    for other in ("0", "042", "-1", "abc", "4 2", "٤٢", "1" * 19, ""):
        assert session_tx_id(other) is None


def test_the_profile_becomes_a_tx_profile_of_the_session() -> None:
    profile = parse_charging_profile(profile_json())
    assert set_request(profile, 2, 77).params() == {
        "evse": 2,
        "purpose": "TxProfile",
        "stack": STACK_LEVEL,
        "transaction": 77,
        "unit": "A",
        "periods": ["0:16.0", "900:8.1", "1800:0.0"],
        "start": "2026-11-23T12:00:00.000Z",
        "duration": 3600,
        "min_rate": 6.5,
    }
    relative = parse_charging_profile(
        {"charging_rate_unit": "W", "charging_profile_period": [{"start_period": 0, "limit": 7400}]}
    )
    assert set_request(relative, 1, 5).params() == {
        "evse": 1,
        "purpose": "TxProfile",
        "stack": STACK_LEVEL,
        "transaction": 5,
        "unit": "W",
        "periods": ["0:7400.0"],
        "relative": True,
    }
    assert clear_request(5).params() == {"transaction": 5}
    assert composite_request(1, 900, None).params() == {"evse": 1, "duration": 900}
    assert composite_request(1, 900, "A").params() == {"evse": 1, "duration": 900, "unit": "A"}


def test_set_results() -> None:
    assert set_result(Outcome.ACCEPTED) == {"result": "ACCEPTED"}
    for outcome in (
        Outcome.REJECTED,
        Outcome.CALL_ERROR,
        Outcome.TIMED_OUT,
        Outcome.NOT_CONNECTED,
        Outcome.INVALID,
    ):
        assert set_result(outcome) == {"result": "REJECTED"}


def test_clear_results() -> None:
    assert clear_result(Outcome.ACCEPTED, "Accepted") == {"result": "ACCEPTED"}
    assert clear_result(Outcome.REJECTED, "Unknown") == {"result": "UNKNOWN"}
    assert clear_result(Outcome.REJECTED, "Rejected") == {"result": "REJECTED"}
    assert clear_result(Outcome.CALL_ERROR, "NotSupported") == {"result": "REJECTED"}
    assert clear_result(Outcome.TIMED_OUT, None) == {"result": "REJECTED"}


COMPOSITE = {
    "evse_id": 1,
    "start": "2026-11-23T12:00:05.250Z",
    "duration_s": 900,
    "unit": "W",
    "periods": [
        {"start_s": 0, "limit": 7400, "phases": None},
        {"start_s": 600, "limit": 3680.06, "phases": 1},
    ],
}


def test_a_composite_schedule_is_the_active_profile() -> None:
    assert active_profile_result(Outcome.ACCEPTED, COMPOSITE, NOW) == {
        "result": "ACCEPTED",
        "profile": {
            "start_date_time": "2026-11-23T12:00:05.250Z",
            "charging_profile": {
                "start_date_time": "2026-11-23T12:00:05.250Z",
                "charging_rate_unit": "W",
                "duration": 900,
                "charging_profile_period": [
                    {"start_period": 0, "limit": 7400},
                    {"start_period": 600, "limit": 3680},
                ],
            },
        },
    }
    amps = {**COMPOSITE, "unit": "A", "periods": [{"start_s": 0, "limit": 15.99}]}
    profile = active_profile(amps, NOW)
    assert profile is not None
    assert profile["charging_profile"]["charging_profile_period"] == [
        {"start_period": 0, "limit": 15.9}
    ]


def test_a_composite_schedule_without_a_start_counts_from_now() -> None:
    data = {k: v for k, v in COMPOSITE.items() if k not in ("start", "duration_s")}
    profile = active_profile(data, NOW)
    assert profile is not None
    assert profile["start_date_time"] == "2026-11-23T12:00:00Z"
    assert "duration" not in profile["charging_profile"]


def test_no_schedule_is_unknown_and_a_refusal_rejected() -> None:
    assert active_profile_result(Outcome.ACCEPTED, {}, NOW) == {"result": "UNKNOWN"}
    no_periods = {**COMPOSITE, "periods": []}
    assert active_profile_result(Outcome.ACCEPTED, no_periods, NOW) == {"result": "UNKNOWN"}
    no_unit = {k: v for k, v in COMPOSITE.items() if k != "unit"}
    assert active_profile_result(Outcome.ACCEPTED, no_unit, NOW) == {"result": "UNKNOWN"}
    garbled = {**COMPOSITE, "periods": [{"start_s": "0", "limit": 10}]}
    assert active_profile_result(Outcome.ACCEPTED, garbled, NOW) == {"result": "UNKNOWN"}
    assert active_profile_result(Outcome.REJECTED, COMPOSITE, NOW) == {"result": "REJECTED"}
    assert active_profile_result(Outcome.TIMED_OUT, {}, NOW) == {"result": "REJECTED"}
