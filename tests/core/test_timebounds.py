"""The bounds on what a charger reports and on what a CDR may cost to make (README,
"timebounds"): the timestamp window, readings no reader can use, transaction flags, and the
period bound of the cost engine, without a socket or a database."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from csms.config import ConfigError, build_config, time_window
from csms.core.clock import (
    DEFAULT_EARLIEST,
    TimestampOutOfRange,
    TimeWindow,
    out_of_range,
    parse_timestamp,
)
from csms.core.cost import StatusChange, TooManyPeriods, Usage, price_session
from csms.core.errors import InvalidTimestamp
from csms.core.metering import (
    MAX_READING,
    MAX_REGISTER_WH,
    make_sample,
    usable_reading,
    usable_register,
)
from csms.core.transactions import (
    EnergyFlag,
    EnergyResult,
    InputFlag,
    flagged,
    with_energy,
)
from tests.core.test_tariffs import parse

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 4, 6, 12, 0, tzinfo=UTC)

# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"]
)
def test_a_timestamp_beyond_utc_is_out_of_range_not_an_overflow(text: str) -> None:
    with pytest.raises(TimestampOutOfRange, match="outside the years 1 to 9999"):
        parse_timestamp(text)
    assert out_of_range(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("0001-01-01T01:00:00+01:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("2026-04-06T14:00:00+02:00", NOW),
    ],
)
def test_the_edges_of_utc_still_parse(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert not out_of_range(text)


def test_a_malformed_timestamp_is_not_called_out_of_range() -> None:
    with pytest.raises(InvalidTimestamp, match="Invalid isoformat") as info:
        parse_timestamp("yesterday")
    assert not isinstance(info.value, TimestampOutOfRange)
    assert not out_of_range("yesterday")


def test_the_window_holds_plausible_times_only() -> None:
    window = TimeWindow()
    assert window.earliest == DEFAULT_EARLIEST == datetime(2010, 1, 1, tzinfo=UTC)
    assert window.holds(NOW, NOW)
    assert window.holds(DEFAULT_EARLIEST, NOW)
    assert window.holds(NOW + timedelta(days=1), NOW)
    assert not window.holds(NOW + timedelta(days=1, seconds=1), NOW)
    assert not window.holds(DEFAULT_EARLIEST - timedelta(microseconds=1), NOW)
    assert not window.holds(datetime(1970, 1, 1, tzinfo=UTC), NOW)
    assert not window.holds(datetime(3026, 1, 1, tzinfo=UTC), NOW)


def test_the_window_never_overflows_at_the_end_of_time() -> None:
    window = TimeWindow(ahead=timedelta(days=36600))
    end = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert window.latest(end) == datetime.max.replace(tzinfo=UTC)
    assert window.holds(end, end)


def test_the_window_refuses_naive_or_negative_bounds() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeWindow(datetime(2010, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="negative"):
        TimeWindow(ahead=timedelta(seconds=-1))


def test_config_keys_make_the_window() -> None:
    config = build_config(
        {"ocpp": {"earliest_timestamp": "2020-06-01", "max_clock_ahead": 600.0}}, {}
    )
    window = time_window(config.ocpp)
    assert window == TimeWindow(datetime(2020, 6, 1, tzinfo=UTC), timedelta(minutes=10))
    env = build_config({}, {"CSMS_OCPP_EARLIEST_TIMESTAMP": "2015-01-01T00:00:00+01:00"})
    assert time_window(env.ocpp).earliest == datetime(2014, 12, 31, 23, tzinfo=UTC)
    defaults = build_config({}, {})
    assert time_window(defaults.ocpp) == TimeWindow()
    assert (defaults.billing.max_periods, defaults.billing.max_cdr_bytes) == (1000, 1_000_000)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ocpp": {"earliest_timestamp": "last year"}}, "ocpp.earliest_timestamp must be"),
        ({"ocpp": {"max_clock_ahead": -1.0}}, "ocpp.max_clock_ahead must be between"),
        ({"ocpp": {"max_clock_ahead": 1e12}}, "ocpp.max_clock_ahead must be between"),
        ({"billing": {"max_periods": 0}}, "billing.max_periods must be at least 1"),
        ({"billing": {"max_cdr_bytes": 100}}, "billing.max_cdr_bytes must be at least"),
    ],
)
def test_bad_bounds_name_their_key(raw: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(raw, {})


# --- readings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "unit", "multiplier", "measurand"),
    [
        ("1e308", "kWh", 0, "Energy.Active.Import.Register"),  # +inf once in Wh
        ("NaN", "Wh", 0, "Energy.Active.Import.Register"),
        ("inf", "Wh", 0, "Energy.Active.Import.Register"),
        ("-Infinity", "W", 0, "Power.Active.Import"),
        ("1e400", "Wh", 0, "Energy.Active.Import.Register"),
        ("1000000000001", "Wh", 0, "Energy.Active.Import.Register"),
        ("-1e13", "W", 0, "Power.Active.Import"),
        ("-5", "Wh", 0, "Energy.Active.Import.Register"),
        ("12", "Wh", 400, "Energy.Active.Import.Register"),
        ("12", "Wh", -400, "Energy.Active.Import.Register"),
        ("2", "kWh", 10, "Energy.Active.Import.Register"),  # 2e13 Wh
    ],
)
def test_unusable_numbers_are_kept_as_text_without_a_value(
    raw: str, unit: str, multiplier: int, measurand: str
) -> None:
    sample = make_sample(
        timestamp=NOW, raw_value=raw, unit=unit, multiplier=multiplier, measurand=measurand
    )
    assert sample.value is None
    assert sample.refused
    assert sample.raw_value == raw


def test_a_huge_integer_from_json_is_refused_too() -> None:
    sample = make_sample(timestamp=NOW, raw_value=10**400)
    assert (sample.value, sample.refused) == (None, True)


@pytest.mark.parametrize(
    ("raw", "unit", "multiplier", "measurand", "value"),
    [
        ("1000000000", "kWh", 0, "Energy.Active.Import.Register", 1e12),
        ("-7000", "W", 0, "Power.Active.Import", -7000.0),
        ("-3", "varh", 0, "Energy.Reactive.Export.Interval", -3.0),
        ("1.5", "Wh", 3, "Energy.Active.Import.Register", 1500.0),
        ("230", "V", -1, "Voltage", 23.0),
    ],
)
def test_usable_numbers_keep_their_value(
    raw: str, unit: str, multiplier: int, measurand: str, value: float
) -> None:
    sample = make_sample(
        timestamp=NOW, raw_value=raw, unit=unit, multiplier=multiplier, measurand=measurand
    )
    assert sample.value == pytest.approx(value)
    assert not sample.refused


def test_text_and_signed_values_are_not_refused_readings() -> None:
    assert not make_sample(timestamp=NOW, raw_value="n/a").refused
    assert not make_sample(timestamp=NOW, raw_value="1e308", signed=True).refused


def test_reading_and_register_bounds() -> None:
    assert usable_reading(MAX_READING, "Energy.Active.Import.Register")
    assert not usable_reading(math.nextafter(MAX_READING, math.inf), "Power.Active.Import")
    assert not usable_reading(math.nan, "Voltage")
    assert usable_reading(-1.0, "Power.Active.Import")
    assert not usable_reading(-1.0, "Energy.Active.Import.Register")
    assert usable_register(0) and usable_register(MAX_REGISTER_WH)
    assert not usable_register(-1)
    assert not usable_register(-(2**63))
    assert not usable_register(MAX_REGISTER_WH + 1)
    assert not usable_register(None)


# --- transaction flags -----------------------------------------------------------------------


def test_input_flags_survive_a_new_energy_result() -> None:
    flags = flagged((), InputFlag.IMPLAUSIBLE_TIMESTAMP)
    flags = flagged(flags, InputFlag.IMPLAUSIBLE_TIMESTAMP, InputFlag.UNUSABLE_READING)
    assert flags == ("implausible_timestamp", "unusable_reading")
    backwards = EnergyResult(None, (EnergyFlag.METER_BACKWARDS,))
    flags = with_energy(flags, backwards)
    assert flags == ("implausible_timestamp", "unusable_reading", "meter_backwards")
    # The energy computed again (a late event) replaces the energy flags, not the others.
    assert with_energy(flags, EnergyResult(500)) == ("implausible_timestamp", "unusable_reading")
    assert with_energy((), EnergyResult(500)) == ()


# --- the period bound --------------------------------------------------------------------------

# Cheaper at night: two time-of-day boundaries every day.
TIME_OF_DAY: dict[str, Any] = {
    "id": "TOD",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.2, "step_size": 1}],
            "restrictions": {"start_time": "22:00", "end_time": "06:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]},
    ],
}


def _usage(start: datetime, end: datetime, energy_wh: int = 10_000, **more: object) -> Usage:
    return Usage(start=start, end=end, readings=(), energy_wh=energy_wh, **more)  # type: ignore[arg-type]


def test_a_session_of_a_thousand_years_is_refused_before_any_work() -> None:
    tariff = parse(TIME_OF_DAY)
    usage = _usage(datetime(2000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC))
    started = time.perf_counter()
    with pytest.raises(TooManyPeriods, match=r"about 730\d+ charging periods, more than the 1000"):
        price_session(tariff, usage, AMS, max_periods=1000)
    assert time.perf_counter() - started < 0.05  # counted, not computed


def test_the_whole_calendar_is_refused_as_quickly() -> None:
    tariff = parse(TIME_OF_DAY)
    usage = _usage(datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC))
    started = time.perf_counter()
    with pytest.raises(TooManyPeriods):
        price_session(tariff, usage, AMS, max_periods=1000)
    assert time.perf_counter() - started < 0.05


def test_a_long_session_within_the_bound_is_priced() -> None:
    tariff = parse(TIME_OF_DAY)
    start = datetime(2026, 4, 1, 12, tzinfo=UTC)
    usage = _usage(start, start + timedelta(days=100), energy_wh=100_000)
    cost = price_session(tariff, usage, AMS, max_periods=1000)
    assert 195 <= len(cost.charging_periods) <= 202  # two per day
    assert cost.total_energy_kwh == Decimal(100)


def test_without_a_time_of_day_a_long_session_is_one_period() -> None:
    flat = parse({**TIME_OF_DAY, "elements": TIME_OF_DAY["elements"][1:]})
    usage = _usage(datetime(2010, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    cost = price_session(flat, usage, AMS, max_periods=10)
    assert len(cost.charging_periods) == 1
    assert cost.total_cost.excl_vat == Decimal("3.0")


def test_periods_counted_after_the_work_are_bounded_too() -> None:
    flat = parse({**TIME_OF_DAY, "elements": TIME_OF_DAY["elements"][1:]})
    start = datetime(2026, 4, 1, 12, tzinfo=UTC)
    # The vehicle stops and starts drawing every minute: a period each time.
    statuses = tuple(StatusChange(start + timedelta(minutes=k), k % 2 == 0) for k in range(0, 40))
    usage = _usage(start, start + timedelta(minutes=40), statuses=statuses)
    assert len(price_session(flat, usage, AMS, max_periods=40).charging_periods) == 40
    with pytest.raises(TooManyPeriods, match="more than the 39 allowed"):
        price_session(flat, usage, AMS, max_periods=39)


def test_without_a_bound_nothing_changes() -> None:
    tariff = parse(TIME_OF_DAY)
    start = datetime(2026, 4, 1, 12, tzinfo=UTC)
    usage = _usage(start, start + timedelta(days=3))
    assert price_session(tariff, usage, AMS) == price_session(tariff, usage, AMS, max_periods=1000)


def test_years_before_1000_are_written_with_four_digits() -> None:
    from csms.core.clock import format_timestamp
    from csms.core.tariffs import ocpi_datetime

    first = datetime(1, 1, 1, tzinfo=UTC)
    assert format_timestamp(first) == "0001-01-01T00:00:00.000Z"
    assert ocpi_datetime(first) == "0001-01-01T00:00:00Z"
    assert parse_timestamp(format_timestamp(first)) == first
