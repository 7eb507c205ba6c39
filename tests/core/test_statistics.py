"""Usage figures (csms.core.statistics): interval algebra, UTC buckets, and summarise on
hand-computed fixtures, then properties over generated sessions and status intervals.

Properties: the occupied (and charging) time summed over the buckets equals the union of
each EVSE's intervals clipped to the range, whatever the period; idle = occupied - charging
and utilisation stays within 0..100; every session that started in the range is counted in
exactly one bucket; the interval algebra splits a set exactly into its part inside and
outside another.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.core.errors import InvalidInput
from csms.core.statistics import (
    EvseActivity,
    EvseKey,
    Figures,
    Interval,
    Origin,
    Period,
    SessionFact,
    bucket_end,
    bucket_start,
    buckets,
    evse_label,
    group_function,
    intersect,
    merge,
    subtract,
    summarise,
    total_seconds,
)

H = 3600.0
DAY = 24 * H
CP1_1: EvseKey = ("CP1", 1)
CP1_2: EvseKey = ("CP1", 2)
CP2_1: EvseKey = ("CP2", 1)


def t(day: int, hour: int = 0, minute: int = 0, month: int = 3, year: int = 2026) -> datetime:
    """March 2026 by default: the 1st is a Sunday, the 2nd a Monday."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def iv(start: datetime, end: datetime) -> Interval:
    return Interval(start, end)


def fact(
    tid: int,
    evse: EvseKey,
    start: datetime,
    stop: datetime | None,
    energy_wh: int | None = None,
    *,
    token: str | None = None,
    origin: Origin = "local",
    currency: str | None = None,
    excl: str | None = None,
    incl: str | None = None,
) -> SessionFact:
    return SessionFact(
        transaction_id=tid,
        evse=evse,
        start_at=start,
        stop_at=stop,
        energy_wh=energy_wh,
        token_key=token,
        origin=origin,
        currency=currency,
        revenue_excl=None if excl is None else Decimal(excl),
        revenue_incl=None if incl is None else Decimal(incl),
    )


def activity(
    occupied: list[Interval] | None = None, charging: list[Interval] | None = None
) -> EvseActivity:
    return EvseActivity(occupied=occupied or [], charging=charging or [])


def table(rows: list[Figures], *fields: str) -> list[tuple[object, ...]]:
    return [(row.group, row.start, *(getattr(row, f) for f in fields)) for row in rows]


def network(evse: EvseKey) -> str:
    return "network"


# --- intervals -------------------------------------------------------------------------------


def test_interval_helpers() -> None:
    a = iv(t(2, 10), t(2, 12))
    assert a.seconds == 2 * H
    assert a.clip(t(2, 11), t(3)) == iv(t(2, 11), t(2, 12))
    assert a.clip(t(2, 12), t(3)) is None
    assert a.overlaps(iv(t(2, 11), t(2, 13)))
    assert not a.overlaps(iv(t(2, 12), t(2, 13)))
    assert a.contains(t(2, 10)) and not a.contains(t(2, 12))
    with pytest.raises(ValueError, match="before it starts"):
        Interval(t(2, 12), t(2, 10))


def test_merge_joins_overlapping_and_touching_and_drops_empty() -> None:
    got = merge(
        [
            iv(t(2, 14), t(2, 15)),
            iv(t(2, 10), t(2, 11)),
            iv(t(2, 11), t(2, 12)),
            iv(t(2, 10, 30), t(2, 10, 45)),
            iv(t(2, 16), t(2, 16)),
        ]
    )
    assert got == [iv(t(2, 10), t(2, 12)), iv(t(2, 14), t(2, 15))]
    assert total_seconds([iv(t(2, 10), t(2, 12)), iv(t(2, 11), t(2, 13))]) == 3 * H


def test_subtract_and_intersect() -> None:
    a = [iv(t(2, 8), t(2, 12)), iv(t(2, 14), t(2, 18))]
    b = [iv(t(2, 9), t(2, 10)), iv(t(2, 11), t(2, 15)), iv(t(2, 17), t(2, 20))]
    assert subtract(a, b) == [
        iv(t(2, 8), t(2, 9)),
        iv(t(2, 10), t(2, 11)),
        iv(t(2, 15), t(2, 17)),
    ]
    assert intersect(a, b) == [
        iv(t(2, 9), t(2, 10)),
        iv(t(2, 11), t(2, 12)),
        iv(t(2, 14), t(2, 15)),
        iv(t(2, 17), t(2, 18)),
    ]
    assert subtract(a, []) == a
    assert intersect(a, []) == []


# --- buckets ---------------------------------------------------------------------------------


def test_bucket_start_and_end_per_period() -> None:
    at = datetime(2026, 3, 1, 23, 17, 5, 9, tzinfo=UTC)  # a Sunday
    assert bucket_start(at, "hour") == t(1, 23)
    assert bucket_start(at, "day") == t(1)
    assert bucket_start(at, "week") == datetime(2026, 2, 23, tzinfo=UTC)  # Monday
    assert bucket_start(at, "month") == t(1)
    assert bucket_end(at, "week") == t(2)
    assert bucket_end(at, "month") == t(1, month=4)
    assert bucket_end(t(5, month=12), "month") == datetime(2027, 1, 1, tzinfo=UTC)
    # A Monday is the first day of its own week.
    assert bucket_start(t(2, 0), "week") == t(2)
    # Times in another zone are bucketed by their UTC instant: 01:30+02:00 is 23:30 UTC.
    east = datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert bucket_start(east, "day") == t(1)
    assert bucket_start(east, "week") == datetime(2026, 2, 23, tzinfo=UTC)


def test_week_buckets_start_on_monday_and_the_ends_are_clipped() -> None:
    # Thursday 5 March 12:00 to Wednesday 18 March 06:00.
    got = buckets(t(5, 12), t(18, 6), "week")
    assert got == [iv(t(5, 12), t(9)), iv(t(9), t(16)), iv(t(16), t(18, 6))]
    assert [b.start.weekday() for b in got[1:]] == [0, 0]


def test_month_buckets_have_their_calendar_lengths() -> None:
    got = buckets(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC), "month")
    assert [b.seconds / DAY for b in got] == [31, 29, 31, 30]  # 2024 is a leap year
    got = buckets(t(1, month=2), t(1, month=3), "month")
    assert [b.seconds / DAY for b in got] == [28]


def test_hour_buckets_clip_a_range_that_starts_and_ends_inside_an_hour() -> None:
    got = buckets(t(2, 10, 15), t(2, 12, 30), "hour")
    assert got == [iv(t(2, 10, 15), t(2, 11)), iv(t(2, 11), t(2, 12)), iv(t(2, 12), t(2, 12, 30))]
    assert buckets(t(2), t(2), "day") == []


def test_bad_ranges_and_periods_are_refused() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        bucket_start(datetime(2026, 3, 2), "day")  # noqa: DTZ001 - the naive time under test
    with pytest.raises(InvalidInput, match="before it starts"):
        buckets(t(3), t(2), "day")
    with pytest.raises(InvalidInput, match="period"):
        buckets(t(2), t(3), "year")  # type: ignore[arg-type]


# --- summarise: hand-computed ----------------------------------------------------------------


def test_a_session_across_hour_and_day_edges_is_split_by_overlap_and_counted_where_it_started() -> (
    None
):
    # Plugged in 22:30 on the 2nd to 01:15 on the 3rd; energy flows 22:40 to 00:30.
    session = fact(1, CP1_1, t(2, 22, 30), t(3, 1, 15), 12_345, token="A")
    act = {CP1_1: activity(charging=[iv(t(2, 22, 40), t(3, 0, 30))])}
    rows = summarise([session], act, network, [CP1_1], t(2, 22), t(3, 2), "hour")
    assert table(rows, "sessions", "energy_kwh", "occupied_s", "charging_s", "idle_s") == [
        ("network", t(2, 22), 1, Decimal("12.345"), 1800.0, 1200.0, 600.0),
        ("network", t(2, 23), 0, Decimal("0.000"), 3600.0, 3600.0, 0.0),
        ("network", t(3, 0), 0, Decimal("0.000"), 3600.0, 1800.0, 1800.0),
        ("network", t(3, 1), 0, Decimal("0.000"), 900.0, 0.0, 900.0),
    ]
    assert [r.utilisation_pct for r in rows] == [50.0, 100.0, 100.0, 25.0]
    assert [r.avg_session_s for r in rows] == [2 * H + 45 * 60, None, None, None]
    assert [r.unique_tokens for r in rows] == [1, 0, 0, 0]

    daily = summarise([session], act, network, [CP1_1], t(2), t(4), "day")
    assert table(daily, "sessions", "occupied_s", "charging_s", "utilisation_pct") == [
        ("network", t(2), 1, 5400.0, 4800.0, 6.25),  # 5400 / 86400
        ("network", t(3), 0, 4500.0, 1800.0, 5.21),  # 4500 / 86400 = 5.208..
    ]


def test_utilisation_of_a_group_counts_every_evse_in_it() -> None:
    # CP1/1: plugged in 08:00-14:00 (status), a session inside it counts once.
    # CP1/2: a session 10:00-12:00 and a status 11:00-13:00 overlapping it: 3 h.
    # CP2/1: idle all day.
    facts = [
        fact(1, CP1_1, t(2, 9), t(2, 13), 20_000),
        fact(2, CP1_2, t(2, 10), t(2, 12), 7_000),
    ]
    act = {
        CP1_1: activity(occupied=[iv(t(2, 8), t(2, 14))]),
        CP1_2: activity(occupied=[iv(t(2, 11), t(2, 13))]),
    }
    evses = [CP1_1, CP1_2, CP2_1]
    by_charger = summarise(facts, act, group_function("charger"), evses, t(2), t(3), "day")
    assert table(
        by_charger, "evses", "sessions", "energy_kwh", "occupied_s", "utilisation_pct"
    ) == [
        ("CP1", t(2), 2, 2, Decimal("27.000"), 9 * H, 18.75),  # 9 h / (24 h x 2)
        ("CP2", t(2), 1, 0, Decimal("0.000"), 0.0, 0.0),
    ]
    whole = summarise(facts, act, network, evses, t(2), t(3), "day")
    assert table(whole, "evses", "occupied_s", "utilisation_pct") == [
        ("network", t(2), 3, 9 * H, 12.5),  # 9 h / (24 h x 3)
    ]
    by_evse = summarise(facts, act, group_function("evse"), evses, t(2), t(3), "day")
    assert table(by_evse, "evses", "occupied_s", "utilisation_pct") == [
        ("CP1/1", t(2), 1, 6 * H, 25.0),
        ("CP1/2", t(2), 1, 3 * H, 12.5),
        ("CP2/1", t(2), 1, 0.0, 0.0),
    ]


def test_idle_evses_get_rows_of_zeros_for_every_bucket() -> None:
    rows = summarise([], {}, group_function("evse"), [CP2_1], t(2), t(2, 3), "hour")
    assert rows == [
        Figures(
            group="CP2/1",
            start=start,
            end=start + timedelta(hours=1),
            evses=1,
            sessions=0,
            energy_kwh=Decimal("0.000"),
            revenue={},
            charging_s=0.0,
            occupied_s=0.0,
            idle_s=0.0,
            utilisation_pct=0.0,
            unique_tokens=0,
            avg_session_s=None,
            avg_energy_kwh=None,
            by_origin={"local": 0, "roaming": 0, "remote": 0},
        )
        for start in (t(2, 0), t(2, 1), t(2, 2))
    ]


def test_revenue_per_currency_unique_tokens_and_origins() -> None:
    facts = [
        fact(
            1, CP1_1, t(2, 8), t(2, 9), 10_000, token="A", currency="EUR", excl="5.00", incl="5.95"
        ),
        fact(
            2,
            CP1_1,
            t(2, 10),
            t(2, 12),
            5_000,
            token="B",
            origin="roaming",
            currency="EUR",
            excl="2.50",
            incl="2.98",
        ),
        fact(
            3,
            CP1_2,
            t(2, 11),
            t(2, 12),
            3_000,
            token="A",
            origin="remote",
            currency="CHF",
            excl="4.10",
            incl="4.42",
        ),
        # No CDR yet: no revenue; no token key: not among the unique tokens.
        fact(4, CP1_2, t(2, 13), t(2, 14), 1_000, origin="roaming"),
        # Still running: counted as a session with its energy so far, not in the averages.
        fact(5, CP1_2, t(2, 20), None, 2_222, token="C"),
    ]
    (row,) = summarise(facts, {}, network, [CP1_1, CP1_2], t(2), t(3), "day")
    assert row.sessions == 5
    assert row.energy_kwh == Decimal("21.222")
    assert str(row.energy_kwh) == "21.222"  # kWh with 3 decimals, exact
    assert row.revenue == {
        "CHF": (Decimal("4.10"), Decimal("4.42")),
        "EUR": (Decimal("7.50"), Decimal("8.93")),
    }
    assert row.unique_tokens == 3
    assert row.by_origin == {"local": 2, "roaming": 2, "remote": 1}
    # Ended sessions: 1 h, 2 h, 1 h, 1 h; 10, 5, 3 and 1 kWh.
    assert row.avg_session_s == 1.25 * H
    assert str(row.avg_energy_kwh) == "4.750"
    # The running one is plugged in until the range's end: CP1/1 3 h, CP1/2 1 + 1 + 4 h.
    assert row.occupied_s == 9 * H


def test_a_session_that_started_before_the_range_adds_only_its_time() -> None:
    facts = [
        fact(1, CP1_1, t(1, 22), t(2, 2), 40_000, token="A", currency="EUR", excl="9", incl="10")
    ]
    (row,) = summarise(facts, {}, network, [CP1_1], t(2), t(3), "day")
    assert (row.sessions, row.energy_kwh, row.revenue, row.unique_tokens) == (
        0,
        Decimal("0.000"),
        {},
        0,
    )
    assert row.occupied_s == 2 * H
    # A session that starts exactly at the range's end is not in it.
    late = [fact(2, CP1_1, t(3), t(3, 1), 1_000)]
    (row,) = summarise(late, {}, network, [CP1_1], t(2), t(3), "day")
    assert (row.sessions, row.occupied_s) == (0, 0.0)


def test_a_grouping_leaves_out_evses_without_a_group() -> None:
    group_of = group_function("location", location_of={"CP1": "LOC1"})
    facts = [fact(1, CP1_1, t(2, 8), t(2, 9), 1_000), fact(2, CP2_1, t(2, 8), t(2, 9), 2_000)]
    rows = summarise(facts, {}, group_of, [CP1_1, CP2_1], t(2), t(3), "day")
    assert table(rows, "evses", "sessions", "energy_kwh") == [
        ("LOC1", t(2), 1, 1, Decimal("1.000"))
    ]
    # An EVSE seen only in the facts still counts in its group.
    rows = summarise(facts, {}, network, [CP1_1], t(2), t(3), "day")
    assert table(rows, "evses", "sessions") == [("network", t(2), 2, 2)]
    assert group_function("site", site_of={"CP2": "S1"})(CP2_1) == "S1"
    assert group_function("site")(CP2_1) is None
    assert evse_label(CP1_2) == "CP1/2"


def test_month_buckets_use_their_own_length_for_utilisation() -> None:
    # Plugged in 7 days in February (28 days) and 7 days in March (31 days).
    act = {CP1_1: activity(occupied=[iv(t(22, month=2), t(8))])}
    rows = summarise([], act, network, [CP1_1], t(1, month=2), t(1, month=4), "month")
    assert table(rows, "occupied_s", "utilisation_pct") == [
        ("network", t(1, month=2), 7 * DAY, 25.0),
        ("network", t(1), 7 * DAY, 22.58),  # 7 / 31 = 0.22580..
    ]


def test_an_evse_occupied_all_through_fills_every_bucket_and_its_group_share() -> None:
    # CP1/1 stuck in Preparing from before the range to after it; CP1/2 plugged in from
    # 01:30 to the range's end; CP2/1 idle.
    act = {
        CP1_1: activity(occupied=[iv(t(1), t(9))]),
        CP1_2: activity(occupied=[iv(t(2, 1, 30), t(2, 4))], charging=[iv(t(2, 2), t(2, 5))]),
    }
    rows = summarise([], act, network, [CP1_1, CP1_2, CP2_1], t(2), t(2, 4), "hour")
    assert table(rows, "occupied_s", "charging_s", "idle_s", "utilisation_pct") == [
        ("network", t(2, 0), H, 0.0, H, 33.33),
        ("network", t(2, 1), 1.5 * H, 0.0, 1.5 * H, 50.0),
        ("network", t(2, 2), 2 * H, H, H, 66.67),
        ("network", t(2, 3), 2 * H, H, H, 66.67),
    ]


def test_week_buckets_in_summarise_start_on_monday() -> None:
    # Sunday 8 March 23:00 to Monday 9 March 01:00: one hour in each ISO week.
    facts = [fact(1, CP1_1, t(8, 23), t(9, 1), 2_000)]
    rows = summarise(facts, {}, network, [CP1_1], t(2), t(16), "week")
    assert table(rows, "sessions", "occupied_s") == [
        ("network", t(2), 1, H),
        ("network", t(9), 0, H),
    ]


def test_an_empty_range_has_no_rows() -> None:
    assert summarise([], {}, network, [CP1_1], t(2), t(2), "day") == []


# --- properties ------------------------------------------------------------------------------

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RANGE_START = t(2, 6)
RANGE_END = t(5, 18)
DAY_S = 86_400
RANGE_S = int((RANGE_END - RANGE_START).total_seconds())
EVSES: list[EvseKey] = [CP1_1, CP1_2, CP2_1]


@st.composite
def spans(draw: st.DrawFn) -> Interval:
    """Whole seconds around [RANGE_START, RANGE_END): some start before, some end after, a
    few span the whole range."""
    start = draw(st.integers(-DAY_S, RANGE_S + DAY_S))
    length = draw(st.integers(0, 2 * DAY_S) | st.integers(0, RANGE_S + 2 * DAY_S))
    return iv(
        RANGE_START + timedelta(seconds=start), RANGE_START + timedelta(seconds=start + length)
    )


@st.composite
def inputs(draw: st.DrawFn) -> tuple[list[SessionFact], dict[EvseKey, EvseActivity]]:
    facts = []
    for tid in range(draw(st.integers(0, 12))):
        span = draw(spans())
        running = draw(st.booleans())
        facts.append(
            fact(
                tid,
                draw(st.sampled_from(EVSES)),
                span.start,
                None if running else span.end,
                draw(st.none() | st.integers(0, 80_000)),
                token=draw(st.none() | st.sampled_from("ABCD")),
                origin=draw(st.sampled_from(["local", "roaming", "remote"])),
            )
        )
    act = {
        evse: activity(draw(st.lists(spans(), max_size=5)), draw(st.lists(spans(), max_size=5)))
        for evse in draw(st.sets(st.sampled_from(EVSES)))
    }
    return facts, act


def occupied_intervals(
    facts: list[SessionFact], act: dict[EvseKey, EvseActivity], evse: EvseKey
) -> list[Interval]:
    own = [
        iv(f.start_at, f.stop_at or RANGE_END)
        for f in facts
        if f.evse == evse and f.start_at < (f.stop_at or RANGE_END)
    ]
    if evse in act:
        own += act[evse].occupied + act[evse].charging
    return own


def seconds_in(intervals: list[Interval], bucket: Interval) -> float:
    return total_seconds(intersect(intervals, [bucket]))


@SETTINGS
@given(inputs(), st.sampled_from(["hour", "day", "week", "month"]))
def test_time_summed_over_buckets_is_the_union_clipped_to_the_range(
    data: tuple[list[SessionFact], dict[EvseKey, EvseActivity]], period: Period
) -> None:
    facts, act = data
    rows = summarise(facts, act, group_function("evse"), EVSES, RANGE_START, RANGE_END, period)
    assert len(rows) == len(EVSES) * len(buckets(RANGE_START, RANGE_END, period))
    whole = iv(RANGE_START, RANGE_END)
    for evse in EVSES:
        mine = [r for r in rows if r.group == evse_label(evse)]
        occupied = occupied_intervals(facts, act, evse)
        charging = act[evse].charging if evse in act else []
        assert sum(r.occupied_s for r in mine) == seconds_in(occupied, whole)
        assert sum(r.charging_s for r in mine) == seconds_in(charging, whole)
        # Bucket by bucket, as a plain intersection would have it.
        for row in mine:
            bucket = iv(row.start, row.end)
            assert (row.occupied_s, row.charging_s) == (
                seconds_in(occupied, bucket),
                seconds_in(charging, bucket),
            )
    for row in rows:
        assert row.idle_s == row.occupied_s - row.charging_s >= 0
        assert 0.0 <= row.utilisation_pct <= 100.0
    started = [f for f in facts if RANGE_START <= f.start_at < RANGE_END]
    assert sum(r.sessions for r in rows) == len(started)
    assert sum(sum(r.by_origin.values()) for r in rows) == len(started)
    assert sum(r.energy_kwh for r in rows) == Decimal(sum(f.energy_wh or 0 for f in started)) / 1000


@SETTINGS
@given(st.lists(spans(), max_size=8), st.lists(spans(), max_size=8))
def test_a_set_splits_exactly_into_its_part_inside_and_outside_another(
    a: list[Interval], b: list[Interval]
) -> None:
    inside, outside = intersect(a, b), subtract(a, b)
    assert total_seconds(inside) + total_seconds(outside) == total_seconds(a)
    assert intersect(inside, outside) == []
    merged = merge(a)
    assert merge(merged) == merged
    assert all(x.end < y.start for x, y in itertools.pairwise(merged))
