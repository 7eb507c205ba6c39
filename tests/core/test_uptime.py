"""NEVI uptime (csms.core.uptime): hand-computed outages, exclusions and percentages, then
properties over generated histories.

Properties: uptime stays within 0..100 and excluded within outage; the buckets' outage and
excluded time add up to the whole range's, whatever the period; outage intervals are merged
and inside the range.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.core.errors import InvalidInput
from csms.core.statistics import EvseKey, Interval, Period, merge
from csms.core.uptime import StatusChange, Uptime, outage_intervals, uptime, uptime_buckets

H = 3600.0
EVSE: EvseKey = ("CP1", 1)
NO_GRACE = timedelta(0)
GRACE = timedelta(minutes=10)


def t(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def iv(start: datetime, end: datetime) -> Interval:
    return Interval(start, end)


def changes(*pairs: tuple[datetime, str]) -> list[StatusChange]:
    return [StatusChange(at, status) for at, status in pairs]


# --- the issue's example and month boundaries ------------------------------------------------


def test_the_issue_example_720_h_with_10_h_faulted_5_h_in_a_window_is_99_31() -> None:
    # April 2026 has 30 days: 720 h. Faulted 10 Apr 08:00-18:00; a maintenance window
    # 13:00-20:00 overlaps the last 5 h of it (and 2 h with no outage, which adds nothing).
    statuses = changes(
        (t(3, 28), "Available"), (t(4, 10, 8), "Faulted"), (t(4, 10, 18), "Available")
    )
    outages = outage_intervals(statuses, [], [], t(4, 1), t(5, 1), GRACE)
    assert outages == [iv(t(4, 10, 8), t(4, 10, 18))]
    got = uptime(EVSE, outages, [iv(t(4, 10, 13), t(4, 10, 20))], t(4, 1), t(5, 1))
    assert got == Uptime(
        evse=EVSE,
        start=t(4, 1),
        end=t(5, 1),
        period_s=720 * H,
        outage_s=10 * H,
        excluded_s=5 * H,
        uptime_pct=99.31,  # (720 - (10 - 5)) / 720 = 99.305..
    )
    assert got.downtime_s == 5 * H


def test_a_window_that_starts_before_the_outage_excludes_only_the_overlap() -> None:
    # Faulted 10:00-16:00 on 10 April; window 06:00-12:00: 2 h excluded, 4 h count.
    got = uptime(
        EVSE, [iv(t(4, 10, 10), t(4, 10, 16))], [iv(t(4, 10, 6), t(4, 10, 12))], t(4, 1), t(5, 1)
    )
    assert (got.outage_s, got.excluded_s, got.uptime_pct) == (6 * H, 2 * H, 99.44)  # 716/720


def test_an_outage_across_a_month_boundary_is_split_between_the_months() -> None:
    # Faulted from 31 March 18:00 to 1 April 04:00: 6 h in March (744 h), 4 h in April (720 h).
    statuses = changes((t(3, 1), "Available"), (t(3, 31, 18), "Faulted"), (t(4, 1, 4), "Available"))
    outages = outage_intervals(statuses, [], [], t(3, 1), t(5, 1), GRACE)
    months = uptime_buckets(EVSE, outages, [], t(3, 1), t(5, 1), "month")
    assert [(m.start, m.period_s, m.outage_s, m.uptime_pct) for m in months] == [
        (t(3, 1), 744 * H, 6 * H, 99.19),  # 738 / 744 = 99.193..
        (t(4, 1), 720 * H, 4 * H, 99.44),  # 716 / 720 = 99.444..
    ]
    # A window over the first night of April excludes 2 h of April's part only.
    months = uptime_buckets(EVSE, outages, [iv(t(4, 1, 2), t(4, 1, 6))], t(3, 1), t(5, 1), "month")
    assert [(m.outage_s, m.excluded_s, m.uptime_pct) for m in months] == [
        (6 * H, 0.0, 99.19),
        (4 * H, 2 * H, 99.72),  # 718 / 720 = 99.722..
    ]
    # The whole range at once: 10 h of 1,464 h.
    whole = uptime(EVSE, outages, [], t(3, 1), t(5, 1))
    assert (whole.outage_s, whole.uptime_pct) == (10 * H, 99.32)  # 1454 / 1464 = 99.316..


def test_daily_buckets_of_an_outage_still_open_at_the_end() -> None:
    statuses = changes((t(4, 2, 20), "Faulted"))
    outages = outage_intervals(statuses, [], [], t(4, 1), t(4, 4), GRACE)
    assert outages == [iv(t(4, 2, 20), t(4, 4))]
    days = uptime_buckets(EVSE, outages, [], t(4, 1), t(4, 4), "day")
    assert [(d.outage_s, d.uptime_pct) for d in days] == [
        (0.0, 100.0),
        (4 * H, 83.33),
        (24 * H, 0.0),
    ]


# --- what counts as outage -------------------------------------------------------------------


def test_unavailable_set_by_staff_does_not_count_the_rest_does() -> None:
    # Staff set it inoperative 10:00 and operative again 12:00, but it reported Unavailable
    # until 14:00: the last 2 h count. Faulted during the staff time counts anyway.
    statuses = changes(
        (t(4, 10, 0), "Available"),
        (t(4, 10, 10), "Unavailable"),
        (t(4, 10, 14), "Available"),
        (t(4, 10, 20), "Faulted"),
        (t(4, 10, 21), "Available"),
    )
    staff = [iv(t(4, 10, 10), t(4, 10, 12)), iv(t(4, 10, 19), t(4, 10, 23))]
    got = outage_intervals(statuses, [], staff, t(4, 10), t(4, 11), GRACE)
    assert got == [iv(t(4, 10, 12), t(4, 10, 14)), iv(t(4, 10, 20), t(4, 10, 21))]


def test_offline_shorter_than_the_grace_is_forgiven_longer_counts_beyond_it() -> None:
    offline = [
        iv(t(4, 10, 1), t(4, 10, 1, 5)),  # 5 min: forgiven
        iv(t(4, 10, 3), t(4, 10, 3, 10)),  # exactly the grace: forgiven
        iv(t(4, 10, 6), t(4, 10, 7)),  # 1 h: 50 min count
    ]
    got = outage_intervals([], offline, [], t(4, 10), t(4, 11), GRACE)
    assert got == [iv(t(4, 10, 6, 10), t(4, 10, 7))]
    assert uptime(EVSE, got, [], t(4, 10), t(4, 11)).outage_s == 50 * 60.0


def test_the_grace_runs_from_when_the_charger_really_went_offline() -> None:
    # Offline since 23:55 the day before: 5 min of grace are left for the range.
    got = outage_intervals([], [iv(t(4, 9, 23, 55), t(4, 10, 1))], [], t(4, 10), t(4, 11), GRACE)
    assert got == [iv(t(4, 10, 0, 5), t(4, 10, 1))]
    # Touching pieces are one offline interval: one grace.
    pieces = [iv(t(4, 10, 2), t(4, 10, 2, 6)), iv(t(4, 10, 2, 6), t(4, 10, 2, 12))]
    got = outage_intervals([], pieces, [], t(4, 10), t(4, 11), GRACE)
    assert got == [iv(t(4, 10, 2, 10), t(4, 10, 2, 12))]


def test_overlapping_causes_count_once_and_the_charger_status_counts_too() -> None:
    # EVSE Faulted 08:00-10:00, charger offline 09:00-11:00 (no grace), the whole charger
    # (EVSE 0) Unavailable 10:30-12:00 while the EVSE itself says Available.
    statuses = changes((t(4, 10, 8), "Faulted"), (t(4, 10, 10), "Available"))
    charger = changes(
        (t(4, 10, 0), "Available"), (t(4, 10, 10, 30), "Unavailable"), (t(4, 10, 12), "Available")
    )
    got = outage_intervals(
        statuses,
        [iv(t(4, 10, 9), t(4, 10, 11))],
        [],
        t(4, 10),
        t(4, 11),
        NO_GRACE,
        charger_statuses=charger,
    )
    assert got == [iv(t(4, 10, 8), t(4, 10, 12))]


def test_nothing_counts_before_the_first_known_status_and_outage_is_clipped() -> None:
    statuses = changes((t(4, 10, 6), "Faulted"), (t(4, 10, 9), "Available"))
    assert outage_intervals(statuses, [], [], t(4, 10, 7), t(4, 10, 8), GRACE) == [
        iv(t(4, 10, 7), t(4, 10, 8))
    ]
    assert outage_intervals(statuses, [], [], t(4, 10, 9), t(4, 11), GRACE) == []
    # Other statuses (1.6 detail included) are not outage.
    busy = changes((t(4, 10), "Charging"), (t(4, 10, 5), "SuspendedEV"), (t(4, 10, 6), "Occupied"))
    assert outage_intervals(busy, [], [], t(4, 10), t(4, 11), GRACE) == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInput, match="grace"):
        outage_intervals([], [], [], t(4, 1), t(4, 2), timedelta(seconds=-1))
    with pytest.raises(InvalidInput, match="ends"):
        uptime(EVSE, [], [], t(4, 2), t(4, 2))
    assert uptime_buckets(EVSE, [], [], t(4, 2), t(4, 2), "day") == []


# --- properties ------------------------------------------------------------------------------

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = t(3, 20, 5)
END = t(4, 12, 17)
SPAN_S = int((END - START).total_seconds())
STATUSES = ["Available", "Faulted", "Unavailable", "Charging", "Occupied"]


@st.composite
def spans(draw: st.DrawFn) -> Interval:
    start = draw(st.integers(-86_400, SPAN_S + 86_400))
    length = draw(st.integers(0, 5 * 86_400))
    return iv(START + timedelta(seconds=start), START + timedelta(seconds=start + length))


@st.composite
def histories(draw: st.DrawFn) -> list[StatusChange]:
    offsets = sorted(draw(st.lists(st.integers(-86_400, SPAN_S), max_size=10)))
    return [
        StatusChange(START + timedelta(seconds=s), draw(st.sampled_from(STATUSES))) for s in offsets
    ]


@SETTINGS
@given(
    histories(),
    st.lists(spans(), max_size=5),
    st.lists(spans(), max_size=5),
    st.lists(spans(), max_size=5),
    st.integers(0, 7200),
    st.sampled_from(["hour", "day", "week", "month"]),
)
def test_uptime_is_a_percentage_and_buckets_add_up(
    statuses: list[StatusChange],
    offline: list[Interval],
    staff: list[Interval],
    exclusions: list[Interval],
    grace_s: int,
    period: Period,
) -> None:
    outages = outage_intervals(
        statuses, merge(offline), staff, START, END, timedelta(seconds=grace_s)
    )
    assert merge(outages) == outages
    assert all(o.start >= START and o.end <= END for o in outages)
    whole = uptime(EVSE, outages, exclusions, START, END)
    assert 0.0 <= whole.uptime_pct <= 100.0
    assert 0.0 <= whole.excluded_s <= whole.outage_s <= whole.period_s
    parts = uptime_buckets(EVSE, outages, exclusions, START, END, period)
    assert sum(p.period_s for p in parts) == whole.period_s
    assert sum(p.outage_s for p in parts) == whole.outage_s
    assert sum(p.excluded_s for p in parts) == whole.excluded_s
    for part in parts:
        assert 0.0 <= part.uptime_pct <= 100.0
        assert part.excluded_s <= part.outage_s <= part.period_s
