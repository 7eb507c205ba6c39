"""Uptime of an EVSE by the NEVI rule (23 CFR 680.116(b)): which time counts as outage, which
of it is excluded, and the percentage per range or per period bucket.

Pure functions on the status and connectivity history handed in (no clock, no I/O); storage
reads the history and the maintenance windows, the statistics service calls these.

The rules:

- Outage is time the EVSE (or its whole charger) reported Faulted, time it reported
  Unavailable except while staff had set it inoperative (an accepted ChangeAvailability
  Inoperative), and time its charger was offline beyond the grace period: of each offline
  interval the first `grace` is forgiven (a reboot, a short network loss) and only the rest
  counts. Overlaps count once. A status holds from its change until the next change; before
  the first known change nothing counts.
- Excluded is outage inside exclusions: planned maintenance windows staff entered, and
  spans staff marked excluded after the fact (grid loss, vandalism), with a reason.
- uptime % = (period - (outage - excluded)) / period x 100, rounded to 2 decimals.
  Example: a 720 h month with 10 h faulted, 5 h of it in a maintenance window:
  (720 - (10 - 5)) / 720 x 100 = 99.31 %.
- Per bucket (`uptime_buckets`) every outage and exclusion is split at the bucket edges, so an
  outage from 30 Jan 20:00 to 1 Feb 04:00 counts 28 h in January and 4 h in February.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.core.errors import InvalidInput
from csms.core.statistics import (
    EvseKey,
    Interval,
    Period,
    buckets,
    intersect,
    merge,
    subtract,
)

__all__ = [
    "FAULTED",
    "UNAVAILABLE",
    "StatusChange",
    "Uptime",
    "outage_intervals",
    "uptime",
    "uptime_buckets",
]

# The stored status names (the same in OCPP 1.6 and 2.0.1) that are outage.
FAULTED = "Faulted"
UNAVAILABLE = "Unavailable"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One EVSE's (or, at EVSE 0, the whole charger's) status from `at` on."""

    at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class Uptime:
    """One EVSE over `[start, end)`: outage seconds, the part of them excluded, and the
    NEVI percentage."""

    evse: EvseKey
    start: datetime
    end: datetime
    period_s: float
    outage_s: float
    excluded_s: float
    uptime_pct: float

    @property
    def downtime_s(self) -> float:
        """The outage that counts against uptime: outage - excluded."""
        return self.outage_s - self.excluded_s


def _clipped(intervals: Sequence[Interval], start: datetime, end: datetime) -> list[Interval]:
    result = []
    for interval in merge(intervals):
        part = interval.clip(start, end)
        if part is not None:
            result.append(part)
    return result


def _status_spans(
    statuses: Sequence[StatusChange], end: datetime
) -> tuple[list[Interval], list[Interval]]:
    """(Faulted spans, Unavailable spans): each status holds until the next change."""
    faulted: list[Interval] = []
    unavailable: list[Interval] = []
    ordered = sorted(statuses, key=lambda change: change.at)
    for index, change in enumerate(ordered):
        until = ordered[index + 1].at if index + 1 < len(ordered) else max(end, change.at)
        if until <= change.at:
            continue
        if change.status == FAULTED:
            faulted.append(Interval(change.at, until))
        elif change.status == UNAVAILABLE:
            unavailable.append(Interval(change.at, until))
    return faulted, unavailable


def outage_intervals(
    statuses: Sequence[StatusChange],
    offline: Sequence[Interval],
    staff_unavailable: Sequence[Interval],
    start: datetime,
    end: datetime,
    grace: timedelta,
    charger_statuses: Sequence[StatusChange] = (),
) -> list[Interval]:
    """The outage of one EVSE inside `[start, end)`, merged: Faulted, or Unavailable outside
    `staff_unavailable`, or its charger offline beyond `grace`.

    `statuses` are the EVSE's changes (with the last one before `start`), `charger_statuses`
    the whole charger's (EVSE 0), kept apart so that one does not end the other's state.
    `offline` are the charger's offline intervals, unclipped: the grace runs from an
    interval's real start, even when that is before `start` (one still offline ends at `end`
    or later). Interval pieces that touch are joined before the grace is taken off.
    """
    if grace < timedelta(0):
        raise InvalidInput("the offline grace period must not be negative")
    if end < start:
        raise InvalidInput(f"the range ends ({end.isoformat()}) before it starts")
    faulted, unavailable = _status_spans(statuses, end)
    charger_faulted, charger_unavailable = _status_spans(charger_statuses, end)
    not_by_staff = subtract(unavailable + charger_unavailable, staff_unavailable)
    beyond_grace = [
        Interval(interval.start + grace, interval.end)
        for interval in merge(offline)
        if interval.end - interval.start > grace
    ]
    return _clipped(faulted + charger_faulted + not_by_staff + beyond_grace, start, end)


def _measure(
    evse: EvseKey, outage: list[Interval], excluded: list[Interval], span: Interval
) -> Uptime:
    period = span.end - span.start
    outage_td = sum((i.end - i.start for i in outage), timedelta(0))
    excluded_td = sum((i.end - i.start for i in excluded), timedelta(0))
    counted = outage_td - excluded_td
    return Uptime(
        evse=evse,
        start=span.start,
        end=span.end,
        period_s=period.total_seconds(),
        outage_s=outage_td.total_seconds(),
        excluded_s=excluded_td.total_seconds(),
        uptime_pct=round((period - counted) / period * 100, 2),
    )


def uptime(
    evse: EvseKey,
    outages: Sequence[Interval],
    exclusions: Sequence[Interval],
    start: datetime,
    end: datetime,
) -> Uptime:
    """The NEVI uptime of one EVSE over `[start, end)`: outages and exclusions are clipped to
    it, excluded is the outage inside an exclusion (an exclusion without outage adds
    nothing)."""
    if end <= start:
        raise InvalidInput("uptime needs a range that ends after it starts")
    outage = _clipped(outages, start, end)
    return _measure(evse, outage, intersect(outage, exclusions), Interval(start, end))


def _per_bucket(intervals: list[Interval], cells: list[Interval]) -> list[list[Interval]]:
    """The merged, sorted `intervals` cut at the bucket edges, one list per bucket; one walk
    over both."""
    result: list[list[Interval]] = [[] for _ in cells]
    j = 0
    for index, cell in enumerate(cells):
        while j < len(intervals) and intervals[j].end <= cell.start:
            j += 1
        k = j
        while k < len(intervals) and intervals[k].start < cell.end:
            part = intervals[k].clip(cell.start, cell.end)
            if part is not None:
                result[index].append(part)
            k += 1
    return result


def uptime_buckets(
    evse: EvseKey,
    outages: Sequence[Interval],
    exclusions: Sequence[Interval],
    start: datetime,
    end: datetime,
    period: Period,
) -> list[Uptime]:
    """`uptime` for each period bucket of `[start, end)` (the first and last clipped to it);
    an outage across a bucket edge counts in both buckets, each its own part."""
    cells = buckets(start, end, period)
    if not cells:
        return []
    outage = _clipped(outages, cells[0].start, cells[-1].end)
    excluded = intersect(outage, exclusions)
    outage_by = _per_bucket(outage, cells)
    excluded_by = _per_bucket(excluded, cells)
    return [_measure(evse, outage_by[i], excluded_by[i], cell) for i, cell in enumerate(cells)]
