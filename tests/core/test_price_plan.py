"""Time-of-use prices (csms.core.price_plan): daily schedules as slots across DST changes,
day-ahead CSV imports and their errors, and charging plans computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.errors import InvalidInput
from csms.core.price_plan import (
    PriceSlot,
    charging_at,
    daily_slots,
    next_change,
    parse_price_csv,
    plan_windows,
)

AMS = ZoneInfo("Europe/Amsterdam")


def utc(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def slots_of(*rows: tuple[datetime, datetime, str]) -> list[PriceSlot]:
    return [PriceSlot(start, end, Decimal(price)) for start, end, price in rows]


def table(slots: list[PriceSlot]) -> list[tuple[str, str, str]]:
    return [(s.start.strftime("%d %H:%M"), s.end.strftime("%d %H:%M"), str(s.price)) for s in slots]


# --- daily schedules -------------------------------------------------------------------------

NIGHT_AND_DAY = [
    (time(7), Decimal("0.35")),
    (time(0), Decimal("0.20")),  # order does not matter
    (time(23), Decimal("0.22")),
]


def test_a_daily_schedule_covers_the_range_in_the_site_s_time_zone() -> None:
    # Winter: Amsterdam is UTC+1.
    slots = daily_slots(NIGHT_AND_DAY, AMS, utc(10, 0), utc(11, 0))
    assert table(slots) == [
        ("10 00:00", "10 06:00", "0.20"),  # from 23:00 the day before (0.22) only after 00:00
        ("10 06:00", "10 22:00", "0.35"),
        ("10 22:00", "10 23:00", "0.22"),
        ("10 23:00", "11 00:00", "0.20"),
    ]
    assert all(slot.start.tzinfo is UTC for slot in slots)


def test_the_previous_day_s_last_entry_holds_until_the_first_one() -> None:
    slots = daily_slots(
        [(time(6), Decimal("1")), (time(22), Decimal("2"))], UTC, utc(10, 3), utc(10, 7)
    )
    assert table(slots) == [("10 03:00", "10 06:00", "2"), ("10 06:00", "10 07:00", "1")]
    # One entry: one price all day, joined into one slot.
    one = daily_slots([(time(12), Decimal("0.3"))], AMS, utc(10, 0), utc(13, 0))
    assert table(one) == [("10 00:00", "13 00:00", "0.3")]


def test_the_spring_dst_day_has_23_hourly_slots_and_skipped_times_start_at_the_jump() -> None:
    hourly = [(time(hour), Decimal(hour)) for hour in range(24)]
    # 2026-03-29: the clock goes from 02:00 CET to 03:00 CEST at 01:00 UTC.
    day = daily_slots(hourly, AMS, utc(28, 23, month=3), utc(29, 22, month=3))
    assert len(day) == 23
    assert [str(s.price) for s in day] == [str(h) for h in range(24) if h != 2]
    assert table(day)[1:3] == [("29 00:00", "29 01:00", "1"), ("29 01:00", "29 02:00", "3")]
    # 02:30 does not exist that day: its price starts when the clock jumps (03:00 CEST).
    gap = daily_slots(
        [(time(0), Decimal("0.2")), (time(2, 30), Decimal("0.5")), (time(7), Decimal("0.4"))],
        AMS,
        utc(28, 23, month=3),
        utc(29, 22, month=3),
    )
    assert table(gap) == [
        ("28 23:00", "29 01:00", "0.2"),
        ("29 01:00", "29 05:00", "0.5"),
        ("29 05:00", "29 22:00", "0.4"),
    ]


def test_the_autumn_dst_day_lasts_25_hours_and_a_repeated_hour_keeps_its_price() -> None:
    hourly = [(time(hour), Decimal(hour)) for hour in range(24)]
    # 2026-10-25: the clock goes back from 03:00 CEST to 02:00 CET at 01:00 UTC.
    day = daily_slots(hourly, AMS, utc(24, 22, month=10), utc(25, 23, month=10))
    assert len(day) == 24
    assert sum((s.end - s.start for s in day), timedelta()) == timedelta(hours=25)
    assert table(day)[2] == ("25 00:00", "25 02:00", "2")  # 02:00-03:00, twice


def test_a_schedule_must_name_each_time_once_without_an_offset() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        daily_slots([], AMS, utc(10, 0), utc(11, 0))
    with pytest.raises(InvalidInput, match="twice"):
        daily_slots([(time(1), Decimal(1)), (time(1), Decimal(2))], AMS, utc(10, 0), utc(11, 0))
    with pytest.raises(InvalidInput, match="offset"):
        daily_slots([(time(1, tzinfo=UTC), Decimal(1))], AMS, utc(10, 0), utc(11, 0))
    with pytest.raises(InvalidInput, match="price"):
        daily_slots([(time(1), Decimal("NaN"))], AMS, utc(10, 0), utc(11, 0))
    with pytest.raises(ValueError, match="aware"):
        daily_slots(NIGHT_AND_DAY, AMS, datetime(2026, 1, 10), utc(11, 0))  # noqa: DTZ001
    assert daily_slots(NIGHT_AND_DAY, AMS, utc(11, 0), utc(10, 0)) == []


# --- day-ahead CSV ---------------------------------------------------------------------------


def test_a_csv_with_starts_only_lasts_until_the_next_start_and_the_last_60_minutes() -> None:
    text = (
        "\ufeffStart,Price\n"
        "2026-01-10T00:00:00Z,0.12\n"
        "\n"
        "2026-01-10T02:00:00+01:00,-0.01\n"  # 01:00 UTC; day-ahead prices go negative
        "2026-01-10T01:30:00Z,0.305\n"
    )
    assert table(parse_price_csv(text)) == [
        ("10 00:00", "10 01:00", "0.12"),
        ("10 01:00", "10 01:30", "-0.01"),
        ("10 01:30", "10 02:30", "0.305"),
    ]


def test_a_csv_with_ends_may_leave_gaps() -> None:
    text = (
        "start,end,price\n"
        "2026-01-10T00:00Z,2026-01-10T00:15Z,0.10\n"
        "2026-01-10T01:00Z,2026-01-10T01:15Z,0.20\n"
    )
    assert table(parse_price_csv(text)) == [
        ("10 00:00", "10 00:15", "0.10"),
        ("10 01:00", "10 01:15", "0.20"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("start,price\n", "no prices"),
        ("begin,price\n2026-01-10T00:00Z,1\n", "line 1: the header must be"),
        ("start,price\n2026-01-10T00:00Z\n", "line 2: 1 fields"),
        ("start,price\n2026-01-10T00:00Z,1\nyesterday,1\n", "line 3: the start 'yesterday'"),
        ("start,price\n2026-01-10T00:00,1\n", "line 2: .* no offset"),
        ("start,price\n2026-01-10T00:00Z,cheap\n", "line 2: the price 'cheap'"),
        ("start,price\n2026-01-10T00:00Z,Infinity\n", "line 2: the price"),
        ("start,price\n\n2026-01-10T01:00Z,1\n2026-01-10T00:00Z,1\n", "line 4: .* time order"),
        (
            "start,end,price\n2026-01-10T01:00Z,2026-01-10T01:00Z,1\n",
            "line 2: the end .* not after the start",
        ),
        (
            "start,end,price\n2026-01-10T00:00Z,2026-01-10T02:00Z,1\n"
            "2026-01-10T01:00Z,2026-01-10T03:00Z,1\n",
            "line 3: .* before the end of line 2",
        ),
        ("start,price\n0001-01-01T00:00+01:00,1\n", "line 2: .* outside the years"),
    ],
)
def test_a_bad_csv_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_price_csv(text)


# --- plans -----------------------------------------------------------------------------------

# Hourly prices from 18:00 to 07:00 UTC on 10-11 January.
NIGHT = slots_of(
    (utc(10, 18), utc(10, 19), "0.40"),
    (utc(10, 19), utc(10, 22), "0.30"),
    (utc(10, 22), utc(11, 1), "0.15"),
    (utc(11, 1), utc(11, 2), "0.25"),
    (utc(11, 2), utc(11, 4), "0.10"),
    (utc(11, 4), utc(11, 7), "0.35"),
)


def test_a_plan_takes_the_cheapest_hours_and_ends_when_enough_is_planned() -> None:
    # 11 kWh x 1.15 = 12.65 kWh at 11 kW: 1 h 9 min, all in the cheapest slot (02:00-04:00).
    windows = plan_windows(
        now=utc(10, 18), departure=utc(11, 7), need_wh=11_000, rate_w=11_000, slots=NIGHT
    )
    assert windows == [(utc(11, 2), utc(11, 3, 9))]


def test_a_need_spanning_two_cheap_windows_fills_the_cheapest_then_the_next() -> None:
    # 55 kWh at 11 kW without margin: 5 h = 02:00-04:00 (0.10) and 3 h of 22:00-01:00 (0.15).
    windows = plan_windows(
        now=utc(10, 18),
        departure=utc(11, 7),
        need_wh=55_000,
        rate_w=11_000,
        slots=NIGHT,
        margin=1.0,
    )
    assert windows == [(utc(10, 22), utc(11, 1)), (utc(11, 2), utc(11, 4))]
    # 6 h: then the earliest part of 01:00-02:00 (0.25), which joins both into one window.
    windows = plan_windows(
        now=utc(10, 18),
        departure=utc(11, 7),
        need_wh=66_000,
        rate_w=11_000,
        slots=NIGHT,
        margin=1.0,
    )
    assert windows == [(utc(10, 22), utc(11, 4))]
    # 5.25 h: a quarter of an hour more, at the start of 01:00-02:00.
    windows = plan_windows(
        now=utc(10, 18),
        departure=utc(11, 7),
        need_wh=57_750,
        rate_w=11_000,
        slots=NIGHT,
        margin=1.0,
    )
    assert windows == [(utc(10, 22), utc(11, 1, 15)), (utc(11, 2), utc(11, 4))]


def test_a_plan_starts_no_earlier_than_now_and_ends_by_departure() -> None:
    # Now is 03:00: one hour of 0.10 is left, then 0.35 from 04:00 (01:00-02:00 is past).
    windows = plan_windows(
        now=utc(11, 3), departure=utc(11, 6), need_wh=16_500, rate_w=11_000, slots=NIGHT, margin=1.0
    )
    assert windows == [(utc(11, 3), utc(11, 4, 30))]


def test_equal_prices_take_the_earlier_time_first() -> None:
    flat = slots_of((utc(10, 0), utc(10, 4), "0.2"), (utc(10, 6), utc(10, 8), "0.2"))
    windows = plan_windows(
        now=utc(10, 0), departure=utc(10, 8), need_wh=3_000, rate_w=1_000, slots=flat, margin=1.0
    )
    assert windows == [(utc(10, 0), utc(10, 3))]


def test_times_no_slot_covers_count_at_the_dearest_price() -> None:
    # 04:00-06:00 is unknown: it costs as much as the dearest slot (0.5), so it comes after
    # 0.3 but before nothing; the earlier 0.5 hour wins the tie with the unknown time.
    known = slots_of(
        (utc(10, 0), utc(10, 2), "0.5"),
        (utc(10, 2), utc(10, 4), "0.3"),
        (utc(10, 6), utc(10, 8), "0.3"),
    )
    windows = plan_windows(
        now=utc(10, 0), departure=utc(10, 8), need_wh=5_000, rate_w=1_000, slots=known, margin=1.0
    )
    assert windows == [(utc(10, 0), utc(10, 1)), (utc(10, 2), utc(10, 4)), (utc(10, 6), utc(10, 8))]
    # After the last slot, up to departure, likewise.
    windows = plan_windows(
        now=utc(10, 6), departure=utc(10, 10), need_wh=3_000, rate_w=1_000, slots=known, margin=1.0
    )
    assert windows == [(utc(10, 6), utc(10, 9))]


def test_without_prices_or_after_departure_it_charges_at_once() -> None:
    # 7 kWh x 1.15 at 7 kW: 1 h 9 min.
    expected = [(utc(10, 18), utc(10, 19, 9))]
    assert (
        plan_windows(now=utc(10, 18), departure=utc(11, 7), need_wh=7_000, rate_w=7_000, slots=[])
        == expected
    )
    assert (
        plan_windows(
            now=utc(10, 18), departure=utc(10, 17), need_wh=7_000, rate_w=7_000, slots=NIGHT
        )
        == expected
    )


def test_not_enough_time_charges_all_the_way_and_no_need_plans_nothing() -> None:
    assert plan_windows(
        now=utc(11, 3), departure=utc(11, 5), need_wh=30_000, rate_w=11_000, slots=NIGHT
    ) == [(utc(11, 3), utc(11, 5))]
    assert (
        plan_windows(now=utc(11, 3), departure=utc(11, 5), need_wh=0, rate_w=11_000, slots=NIGHT)
        == []
    )
    assert (
        plan_windows(now=utc(11, 3), departure=utc(11, 5), need_wh=-5, rate_w=11_000, slots=NIGHT)
        == []
    )


def test_a_plan_needs_a_positive_rate_and_aware_times() -> None:
    with pytest.raises(ValueError, match="rate_w"):
        plan_windows(now=utc(10, 0), departure=utc(10, 5), need_wh=1, rate_w=0, slots=NIGHT)
    with pytest.raises(ValueError, match="need_wh"):
        plan_windows(now=utc(10, 0), departure=utc(10, 5), need_wh=math.inf, rate_w=1, slots=[])
    # An absurd need is planned for ten years at most, not past the calendar's end.
    [(start, end)] = plan_windows(
        now=utc(10, 0), departure=utc(10, 5), need_wh=1e300, rate_w=1, slots=[]
    )
    assert end - start == timedelta(days=3660)
    with pytest.raises(ValueError, match="aware"):
        plan_windows(
            now=datetime(2026, 1, 10),  # noqa: DTZ001
            departure=utc(10, 5),
            need_wh=1,
            rate_w=1,
            slots=NIGHT,
        )


def test_a_plan_across_the_dst_day_uses_the_schedule_s_cheap_hours() -> None:
    # Cheap from 01:00 to 05:00 local: on the spring day that is 00:00-03:00 UTC (3 hours).
    schedule = [(time(1), Decimal("0.10")), (time(5), Decimal("0.30"))]
    slots = daily_slots(schedule, AMS, utc(28, 18, month=3), utc(29, 12, month=3))
    assert [(s.start, s.end) for s in slots if s.price == Decimal("0.10")] == [
        (utc(29, 0, month=3), utc(29, 3, month=3))
    ]
    windows = plan_windows(
        now=utc(28, 18, month=3),
        departure=utc(29, 12, month=3),
        need_wh=33_000,
        rate_w=11_000,
        slots=slots,
        margin=1.0,
    )
    assert windows == [(utc(29, 0, month=3), utc(29, 3, month=3))]


def test_charging_at_and_next_change_follow_the_windows() -> None:
    windows = [(utc(10, 1), utc(10, 2)), (utc(10, 4), utc(10, 5))]
    assert [charging_at(windows, utc(10, h)) for h in range(6)] == [
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    assert next_change(windows, utc(10, 0)) == utc(10, 1)
    assert next_change(windows, utc(10, 1)) == utc(10, 2)
    assert next_change(windows, utc(10, 2)) == utc(10, 4)
    assert next_change(windows, utc(10, 4, 30)) == utc(10, 5)
    assert next_change(windows, utc(10, 5)) is None
    assert next_change([], utc(10, 5)) is None


# --- properties of plans ---------------------------------------------------------------------

BASE = utc(10, 0)


@st.composite
def day_ahead(draw: st.DrawFn) -> list[PriceSlot]:
    """Up to 24 slots of 15 to 120 minutes from BASE, some with gaps between them."""
    slots = []
    at = BASE + timedelta(minutes=draw(st.integers(0, 120)))
    for _ in range(draw(st.integers(0, 24))):
        length = timedelta(minutes=draw(st.sampled_from([15, 30, 60, 120])))
        price = Decimal(draw(st.integers(-2, 6))) / 10
        slots.append(PriceSlot(at, at + length, price))
        at += length + timedelta(minutes=draw(st.sampled_from([0, 0, 0, 45])))
    return slots


@settings(max_examples=200, deadline=None)
@given(
    day_ahead(),
    st.integers(0, 600),
    st.integers(0, 1800),
    st.floats(min_value=-1_000, max_value=80_000),
    st.sampled_from([3_700.0, 7_400.0, 11_000.0, 22_000.0]),
)
def test_a_plan_is_the_cheapest_and_exactly_long_enough(
    slots: list[PriceSlot], start_min: int, length_min: int, need_wh: float, rate_w: float
) -> None:
    now = BASE + timedelta(minutes=start_min)
    departure = now + timedelta(minutes=length_min)
    windows = plan_windows(
        now=now, departure=departure, need_wh=need_wh, rate_w=rate_w, slots=slots
    )
    needed = timedelta(hours=max(0.0, need_wh) * 1.15 / rate_w)
    if needed == timedelta(0):  # nothing needed, or less than a microsecond's worth
        assert windows == []
        return
    assert all(start < end for start, end in windows)
    assert all(a[1] < b[0] for a, b in pairwise(windows)), "sorted, apart, joined"
    if not slots or departure <= now:
        assert windows == [(now, now + needed)]
        return
    if departure - now <= needed:
        assert windows == [(now, departure)]
        return
    assert sum((end - start for start, end in windows), timedelta()) == needed
    assert now <= windows[0][0] and windows[-1][1] <= departure

    dearest = max(slot.price for slot in slots)

    def price_at(moment: datetime) -> Decimal:
        return next((s.price for s in slots if s.start <= moment < s.end), dearest)

    edges = sorted(
        {now, departure}
        | {t for s in slots for t in (s.start, s.end) if now < t < departure}
        | {t for w in windows for t in w}
    )
    chosen: list[tuple[Decimal, datetime]] = []
    left: list[tuple[Decimal, datetime]] = []
    for a in edges[:-1]:
        (chosen if charging_at(windows, a) else left).append((price_at(a), a))
    # Nothing left out is cheaper than what was chosen; at equal prices the earlier is chosen.
    for price, at in chosen:
        assert all(price < other or (price == other and at < other_at) for other, other_at in left)
