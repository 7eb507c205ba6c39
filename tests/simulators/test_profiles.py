"""Unit tests of the charging profiles both simulators keep: which prevails, the cap over time,
the composite schedule, refusals, and how each version's wire form reads."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.profiles import (
    ChargingProfiles,
    CompositePeriod,
    Limit,
    Period,
    Profile,
    ProfileRules,
    Purpose,
    Rating,
    schedule_periods,
)
from simulators.v16_profiles import composite_answer as composite16
from simulators.v16_profiles import profile_from_wire as from16
from simulators.v201_profiles import composite_answer as composite201
from simulators.v201_profiles import profile_from_wire as from201

from .schemas import check_response

T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
AMPS = 3 * 230  # watts per ampere on three phases
RATINGS = {1: Rating(32), 2: Rating(32)}


def make(
    profile_id: int,
    purpose: Purpose,
    limit: float,
    *,
    connector: int = 1,
    level: int = 0,
    unit: str = "W",
    periods: tuple[Period, ...] | None = None,
    **extra: Any,
) -> Profile:
    return Profile(
        profile_id,
        connector,
        purpose,
        level,
        unit,
        periods or (Period(0, limit),),
        start=extra.pop("start", T0),
        **extra,
    )


def watts(profiles: ChargingProfiles, connector: int, at: datetime = T0) -> float | None:
    """The cap on a three-phase outlet with no rating of its own, in W."""
    cap = profiles.limit(connector, at)
    return None if cap is None else Rating(math.inf).resolve(cap).watts


def test_tx_profile_overrides_the_default_and_the_station_maximum_caps_both() -> None:
    profiles = ChargingProfiles()
    assert watts(profiles, 1) is None
    profiles.install(make(1, Purpose.TX_DEFAULT, 16, connector=0, unit="A"))
    assert watts(profiles, 2) == 16 * AMPS  # a default on connector 0 covers them all
    profiles.install(make(2, Purpose.TX_DEFAULT, 8000))
    assert watts(profiles, 1) == 8000  # the connector's own default wins over 0's
    profiles.install(make(3, Purpose.TX, 20_000))
    assert watts(profiles, 1) == 20_000  # TxProfile over TxDefaultProfile, even if higher
    profiles.install(make(4, Purpose.STATION_MAX, 10, connector=0, unit="A"))
    assert watts(profiles, 1) == 10 * AMPS
    assert watts(profiles, 0) == 10 * AMPS


def test_highest_stack_level_in_force_wins() -> None:
    profiles = ChargingProfiles()
    profiles.install(make(1, Purpose.TX_DEFAULT, 5000, level=0))
    profiles.install(make(2, Purpose.TX_DEFAULT, 9000, level=2, duration_s=60))
    assert watts(profiles, 1) == 9000
    assert watts(profiles, 1, T0 + timedelta(seconds=60)) == 5000  # level 2 has run out


def test_same_id_or_same_slot_replaces_and_clear_matches_every_criterion() -> None:
    profiles = ChargingProfiles()
    profiles.install(make(1, Purpose.TX_DEFAULT, 5000))
    profiles.install(make(1, Purpose.TX_DEFAULT, 7000, connector=2))
    profiles.install(make(2, Purpose.TX_DEFAULT, 6000, connector=2))  # same connector and level
    assert [(p.profile_id, p.connector_id) for p in profiles.all()] == [(2, 2)]
    profiles.install(make(3, Purpose.TX_DEFAULT, 6000, level=3))
    assert not profiles.clear(profile_id=3, stack_level=2)
    assert profiles.clear(connector_id=1, purpose=Purpose.TX_DEFAULT)
    assert profiles.clear()
    assert len(profiles) == 0


def test_periods_durations_validity_and_recurrence_follow_the_clock() -> None:
    periods = (Period(0, 11_000), Period(3600, 4000))
    profiles = ChargingProfiles()
    profiles.install(make(1, Purpose.TX_DEFAULT, 0, periods=periods, duration_s=7200))
    assert watts(profiles, 1, T0 - timedelta(seconds=1)) is None  # not started
    assert watts(profiles, 1, T0 + timedelta(minutes=30)) == 11_000
    assert watts(profiles, 1, T0 + timedelta(minutes=90)) == 4000
    assert watts(profiles, 1, T0 + timedelta(hours=2)) is None
    daily = make(2, Purpose.TX_DEFAULT, 0, connector=2, periods=periods, kind="Recurring")
    profiles.install(replace(daily, recurrency="Daily"))
    assert watts(profiles, 2, T0 + timedelta(days=3, minutes=90)) == 4000
    assert watts(profiles, 2, T0 + timedelta(days=3, minutes=10)) == 11_000
    limited = make(3, Purpose.STATION_MAX, 1000, connector=0, valid_to=T0 + timedelta(hours=1))
    profiles.install(limited)
    assert watts(profiles, 2, T0) == 1000
    assert watts(profiles, 2, T0 + timedelta(hours=1)) == 4000  # the maximum has ended


def test_relative_profiles_count_from_the_transaction_start() -> None:
    profiles = ChargingProfiles()
    periods = (Period(0, 7000), Period(600, 3000))
    profiles.install(make(1, Purpose.TX_DEFAULT, 0, periods=periods, kind="Relative", start=None))
    assert watts(profiles, 1, T0) == 7000  # no transaction: the first period
    profiles.transaction_started(1, T0)
    assert watts(profiles, 1, T0 + timedelta(minutes=11)) == 3000
    assert watts(profiles, 2, T0 + timedelta(minutes=11)) is None  # not for other connectors


def test_tx_profiles_end_with_their_transaction() -> None:
    profiles = ChargingProfiles()
    profiles.install(make(1, Purpose.TX, 5000))
    profiles.install(make(2, Purpose.TX_DEFAULT, 9000))
    assert profiles.end_transaction(1)
    assert watts(profiles, 1) == 9000
    assert not profiles.end_transaction(1)


def test_refusals_follow_the_rules() -> None:
    profiles = ChargingProfiles()
    rules = ProfileRules(max_stack_level=2, max_periods=2, max_installed=1, units=frozenset("A"))
    assert profiles.refusal(make(1, Purpose.TX, 5, unit="A", level=3), rules)
    three = (Period(0, 1), Period(10, 2), Period(20, 3))
    assert profiles.refusal(make(1, Purpose.TX, 5, unit="A", periods=three), rules)
    assert profiles.refusal(make(1, Purpose.TX, 5, unit="A", periods=(Period(5, 1),)), rules)
    assert profiles.refusal(make(1, Purpose.TX, 5000), rules)  # W not allowed
    assert profiles.refusal(make(1, Purpose.TX, 5, unit="A"), rules) is None
    profiles.install(make(1, Purpose.TX, 5, unit="A"))
    assert profiles.refusal(make(2, Purpose.TX_DEFAULT, 5, unit="A"), rules)  # full
    assert profiles.refusal(make(1, Purpose.TX_DEFAULT, 5, unit="A"), rules) is None  # replaces


def test_composite_schedule_merges_periods_under_the_rating() -> None:
    profiles = ChargingProfiles()
    periods = (Period(0, 32), Period(600, 10), Period(1200, 10, 1))
    profiles.install(make(1, Purpose.TX_DEFAULT, 0, unit="A", periods=periods))
    composite = profiles.composite(1, RATINGS, T0, 1800)
    assert composite == [
        CompositePeriod(0, Limit(22_080.0)),
        CompositePeriod(600, Limit(10 * AMPS)),
        CompositePeriod(1200, Limit(2300, 1)),
    ]
    assert schedule_periods(composite, "A") == [
        {"startPeriod": 0, "limit": 32},
        {"startPeriod": 600, "limit": 10},
        {"startPeriod": 1200, "limit": 10, "numberPhases": 1},
    ]
    assert profiles.composite(2, RATINGS, T0, 60) == [CompositePeriod(0, Limit(22_080.0))]
    grid = profiles.composite(0, RATINGS, T0 + timedelta(seconds=1200), 60)
    assert grid == [CompositePeriod(0, Limit(2300 + 22_080.0))]


def test_odd_limits_keep_one_decimal() -> None:
    periods = [CompositePeriod(0, Limit(7.3 * AMPS))]
    assert schedule_periods(periods, "A") == [{"startPeriod": 0, "limit": 7.3}]
    assert schedule_periods([CompositePeriod(0, Limit(1234.56))], "W")[0]["limit"] == 1234.5


def test_wire_forms_of_both_versions_read_alike() -> None:
    schedule = {
        "startSchedule": "2025-01-01T10:00:00Z",
        "duration": 3600,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 900, "limit": 8.5, "numberPhases": 1},
            {"startPeriod": 0, "limit": 16},
        ],
    }
    common = {"stackLevel": 2, "chargingProfileKind": "Absolute", "validTo": "2025-02-01T00:00:00Z"}
    one = from16(
        0,
        {
            "chargingProfileId": 5,
            "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingSchedule": schedule,
            **common,
        },
    )
    two = from201(
        0,
        {
            "id": 5,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingSchedule": [{"id": 1, **schedule}],
            **common,
        },
    )
    assert one == two
    assert one.purpose is Purpose.STATION_MAX
    assert one.periods == (Period(0, 16.0), Period(900, 8.5, 1))
    assert one.start == T0 and one.duration_s == 3600
    assert one.valid_to == datetime(2025, 2, 1, tzinfo=UTC)


def test_composite_answers_fit_the_schemas() -> None:
    periods = [CompositePeriod(0, Limit(7.3 * AMPS)), CompositePeriod(60, Limit(2300, 1))]
    answer16 = composite16(1, periods, "A", "2025-01-01T10:00:00.000Z", 120)
    check_response("GetCompositeSchedule", answer16, "1.6")
    answer201 = composite201(1, periods, "W", "2025-01-01T10:00:00.000Z", 120)
    check_response("GetCompositeSchedule", answer201)
    assert answer201["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 5037},
        {"startPeriod": 60, "limit": 2300, "numberPhases": 1},
    ]
