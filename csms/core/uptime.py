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

_NO_TIME = timedelta(0)


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
    evse: EvseKey, start: datetime, end: datetime, outage: timedelta, excluded: timedelta
) -> Uptime:
    period = end - start
    return Uptime(
        evse=evse,
        start=start,
        end=end,
        period_s=period.total_seconds(),
        outage_s=outage.total_seconds(),
        excluded_s=excluded.total_seconds(),
        uptime_pct=round((period - (outage - excluded)) / period * 100, 2),
    )


def _length(intervals: Sequence[Interval]) -> timedelta:
    return sum((i.end - i.start for i in intervals), _NO_TIME)


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
    return _measure(evse, start, end, _length(outage), _length(intersect(outage, exclusions)))


def _per_bucket(intervals: list[Interval], edges: list[datetime]) -> list[timedelta]:
    """How much of the merged, sorted `intervals` falls in each bucket `[edges[i],
    edges[i+1])`; one walk over both."""
    result = [_NO_TIME] * (len(edges) - 1)
    i = 0
    last = len(edges) - 1
    for interval in intervals:
        s, e = interval.start, interval.end
        while i < last and edges[i + 1] <= s:
            i += 1
        while i < last and s < e:
            edge = edges[i + 1]
            if e <= edge:
                result[i] += e - s
                break
            result[i] += edge - s
            s = edge
            i += 1
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
    edges = [cell.start for cell in cells]
    edges.append(cells[-1].end)
    outage = _clipped(outages, edges[0], edges[-1])
    outage_by = _per_bucket(outage, edges)
    excluded_by = _per_bucket(intersect(outage, exclusions), edges)
    return [
        _measure(evse, edges[i], edges[i + 1], outage_by[i], excluded_by[i])
        for i in range(len(cells))
    ]
