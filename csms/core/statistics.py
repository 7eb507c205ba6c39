"""Usage figures of EVSEs per period bucket (issue 21): time intervals, UTC buckets and the
aggregation of sessions and plugged-in time into one row per group and bucket.

Pure functions on values handed in (no clock, no I/O, no logging); storage reads the facts,
the statistics service chooses the grouping. Uptime by the NEVI rule lives in core.uptime.

The rules `summarise` follows:

- Buckets are UTC: an hour; a day; a week from Monday 00:00; a calendar month. The first and
  the last bucket are clipped to the asked range `[start, end)`, and so is every time.
- A session counts in the bucket in which it started, and only when it started inside the
  range: its count, its energy, its revenue, its token and its origin all go there, however
  long it ran. A session that started before the range adds only its plugged-in time.
- Time (charging, occupied, idle) is split over the buckets by overlap: a session plugged in
  from 09:30 to 11:15 adds 30 min to the 09:00 bucket, 60 min to 10:00 and 15 min to 11:00.
- An EVSE is occupied while any of these holds: its status says plugged in
  (`EvseActivity.occupied`), it is charging (`EvseActivity.charging`), or one of its sessions
  runs (`[start_at, stop_at)`; a session still running runs to the range's end). Overlaps
  count once. Idle = occupied - charging, never below zero.
- Utilisation = occupied seconds / (bucket seconds x EVSEs in the group) x 100.
- Every EVSE in `evses`, in the facts or in the activity belongs to the group `group_of`
  names (None leaves it out); a group has a row for every bucket, zeros included.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, get_args

from csms.core.errors import InvalidInput

__all__ = [
    "GROUP_BYS",
    "ORIGINS",
    "PERIODS",
    "EvseActivity",
    "EvseKey",
    "Figures",
    "GroupBy",
    "Interval",
    "Origin",
    "Period",
    "SessionFact",
    "bucket_end",
    "bucket_start",
    "buckets",
    "evse_label",
    "group_function",
    "intersect",
    "merge",
    "subtract",
    "summarise",
    "total_seconds",
]

Period = Literal["hour", "day", "week", "month"]
GroupBy = Literal["evse", "charger", "location", "site", "network"]
Origin = Literal["local", "roaming", "remote"]

PERIODS: tuple[Period, ...] = get_args(Period)
GROUP_BYS: tuple[GroupBy, ...] = get_args(GroupBy)
ORIGINS: tuple[Origin, ...] = get_args(Origin)

EvseKey = tuple[str, int]

_US = timedelta(microseconds=1)
_KWH = Decimal("0.001")
_ZERO = Decimal(0)


# --- intervals ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """The half-open time span `[start, end)`; an empty one (start == end) is allowed."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"interval ends ({self.end}) before it starts ({self.start})")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def empty(self) -> bool:
        return self.end == self.start

    def clip(self, lo: datetime, hi: datetime) -> Interval | None:
        """The part inside `[lo, hi)`, or None when nothing (not even a point) is left."""
        start = max(self.start, lo)
        end = min(self.end, hi)
        if end <= start:
            return None
        return Interval(start, end)

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union, as disjoint intervals sorted by start; touching ones are joined and empty
    ones dropped."""
    ordered = sorted((i for i in intervals if i.end > i.start), key=lambda i: i.start)
    merged: list[Interval] = []
    for interval in ordered:
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Where both hold; the inputs need not be merged (they are), the result is."""
    left, right = merge(a), merge(b)
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i].start, right[j].start)
        end = min(left[i].end, right[j].end)
        if start < end:
            result.append(Interval(start, end))
        if left[i].end < right[j].end:
            i += 1
        else:
            j += 1
    return result


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """What of `a` is outside `b`, merged."""
    cuts = merge(b)
    result: list[Interval] = []
    j = 0
    for interval in merge(a):
        start = interval.start
        while j < len(cuts) and cuts[j].end <= start:
            j += 1
        k = j
        while k < len(cuts) and cuts[k].start < interval.end:
            if cuts[k].start > start:
                result.append(Interval(start, cuts[k].start))
            start = max(start, cuts[k].end)
            k += 1
        if start < interval.end:
            result.append(Interval(start, interval.end))
    return result


def total_seconds(intervals: Iterable[Interval]) -> float:
    """The length of the union (overlaps count once)."""
    return sum((i.end - i.start for i in merge(intervals)), timedelta(0)).total_seconds()


# --- buckets --------------------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise InvalidInput(f"{at.isoformat()} has no time zone: statistics need UTC times")
    return at.astimezone(UTC)


def _period(period: str) -> Period:
    for known in PERIODS:
        if period == known:
            return known
    raise InvalidInput(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def bucket_start(at: datetime, period: Period) -> datetime:
    """The start of the UTC bucket holding `at`: the hour, the day (00:00), the ISO week
    (Monday 00:00) or the calendar month (the 1st, 00:00)."""
    at = _utc(at)
    period = _period(period)
    if period == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def bucket_end(at: datetime, period: Period) -> datetime:
    """The end (exclusive) of the UTC bucket holding `at`: the start of the next one."""
    first = bucket_start(at, period)
    if period == "hour":
        return first + timedelta(hours=1)
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    if first.month == 12:
        return first.replace(year=first.year + 1, month=1)
    return first.replace(month=first.month + 1)


def buckets(start: datetime, end: datetime, period: Period) -> list[Interval]:
    """The period buckets covering `[start, end)`, the first and the last clipped to it;
    none when the range is empty."""
    start, end = _utc(start), _utc(end)
    if end < start:
        raise InvalidInput(f"the range ends ({end.isoformat()}) before it starts")
    result: list[Interval] = []
    at = start
    while at < end:
        nxt = min(bucket_end(at, period), end)
        result.append(Interval(at, nxt))
        at = nxt
    return result


# --- facts and figures ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionFact:
    """One transaction as the figures need it. `stop_at` None: still running (it runs to the
    range's end); `token_key` None: not counted among unique tokens; `currency` None: no CDR
    yet, so no revenue."""

    transaction_id: int
    evse: EvseKey
    start_at: datetime
    stop_at: datetime | None
    energy_wh: int | None
    token_key: str | None
    origin: Origin
    currency: str | None
    revenue_excl: Decimal | None
    revenue_incl: Decimal | None


@dataclass(frozen=True, slots=True)
class EvseActivity:
    """One EVSE inside the asked range: when it was plugged in (1.6 Preparing, Charging,
    SuspendedEV, SuspendedEVSE, Finishing; 2.0.1 Occupied) and when energy flowed (1.6
    Charging; 2.0.1 chargingState Charging). Need not be merged or clipped."""

    occupied: list[Interval]
    charging: list[Interval]


@dataclass(frozen=True, slots=True)
class Figures:
    """One group in one bucket; see the module docstring for what counts where."""

    group: str
    start: datetime
    end: datetime
    evses: int
    sessions: int
    energy_kwh: Decimal
    revenue: dict[str, tuple[Decimal, Decimal]]
    charging_s: float
    occupied_s: float
    idle_s: float
    utilisation_pct: float
    unique_tokens: int
    avg_session_s: float | None
    avg_energy_kwh: Decimal | None
    by_origin: dict[str, int]


def evse_label(evse: EvseKey) -> str:
    """How an EVSE is named as a group: `CP1/1`."""
    return f"{evse[0]}/{evse[1]}"


def group_function(
    by: GroupBy,
    location_of: Mapping[str, str] | None = None,
    site_of: Mapping[str, str] | None = None,
) -> Callable[[EvseKey], str | None]:
    """The `group_of` for `summarise`: the EVSE's label, its charger, the location or site its
    charger belongs to (a charger in none is left out), or the whole network."""
    if by == "evse":
        return evse_label
    if by == "charger":
        return lambda evse: evse[0]
    if by == "network":
        return lambda evse: "network"
    if by == "location":
        locations = location_of or {}
        return lambda evse: locations.get(evse[0])
    if by == "site":
        sites = site_of or {}
        return lambda evse: sites.get(evse[0])
    raise InvalidInput(f"group by must be one of {', '.join(GROUP_BYS)}, not {by!r}")


Span = tuple[int, int]  # microseconds from the range's start, half-open


def _merged_spans(spans: list[Span], limit: int) -> list[Span]:
    """Sorted, disjoint, clipped to [0, limit)."""
    spans.sort()
    merged: list[Span] = []
    for s, e in spans:
        s = max(s, 0)
        e = min(e, limit)
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _split(spans: Iterable[Span], bounds: Sequence[int], acc: list[int], base: int) -> None:
    """Add each span's overlap with bucket i (`[bounds[i], bounds[i+1])`) to acc[base + i].
    Each span starts its walk at its own bucket (bisect), so the cost is the number of
    buckets the spans touch, not spans x buckets."""
    last = len(bounds) - 1
    for s, e in spans:
        i = bisect_right(bounds, s) - 1
        while s < e and i < last:
            edge = bounds[i + 1]
            acc[base + i] += min(e, edge) - s
            s = edge
            i += 1


def _offset(at: datetime, start: datetime) -> int:
    return (at - start) // _US


def summarise(
    facts: Iterable[SessionFact],
    activity: Mapping[EvseKey, EvseActivity],
    group_of: Callable[[EvseKey], str | None],
    evses: Iterable[EvseKey],
    start: datetime,
    end: datetime,
    period: Period,
) -> list[Figures]:
    """One row per group per bucket of `[start, end)`, sorted by (group, start), by the rules
    in the module docstring. Linear in facts and intervals (plus the buckets each interval
    touches), plus groups x buckets for the rows."""
    period = _period(period)
    start, end = _utc(start), _utc(end)
    cells = buckets(start, end, period)
    if not cells:
        return []
    bounds = [_offset(c.start, start) for c in cells]
    bounds.append(_offset(end, start))
    limit = bounds[-1]
    nb = len(cells)

    # Which group each EVSE counts in, as an index; EVSEs left out map to -1.
    group_index: dict[str, int] = {}
    evse_group: dict[EvseKey, int] = {}

    def group_for(evse: EvseKey) -> int:
        found = evse_group.get(evse)
        if found is None:
            name = group_of(evse)
            found = -1 if name is None else group_index.setdefault(name, len(group_index))
            evse_group[evse] = found
        return found

    for evse in evses:
        group_for(evse)

    # Per EVSE: the spans it was occupied (sessions, status, charging) and charging.
    occupied: dict[EvseKey, list[Span]] = {}
    charging: dict[EvseKey, list[Span]] = {}
    for evse, act in activity.items():
        if group_for(evse) < 0:
            continue
        occupied[evse] = [(_offset(i.start, start), _offset(i.end, start)) for i in act.occupied]
        spans = [(_offset(i.start, start), _offset(i.end, start)) for i in act.charging]
        charging[evse] = spans
        occupied[evse].extend(spans)

    # Sparse per (group, bucket) cell, flat index g * nb + i, created when a session lands.
    sessions: dict[int, int] = {}
    energy_wh: dict[int, int] = {}
    ended: dict[int, list[int]] = {}  # [count, total us, with energy, their Wh]
    revenue: dict[int, dict[str, list[Decimal]]] = {}
    tokens: dict[int, set[str]] = {}
    origins: dict[int, dict[str, int]] = {}
    first = bounds[0]
    for fact in facts:
        g = group_for(fact.evse)
        if g < 0:
            continue
        s = _offset(fact.start_at, start)
        e = limit if fact.stop_at is None else _offset(fact.stop_at, start)
        if s < e:
            occupied.setdefault(fact.evse, []).append((s, e))
        if s < first or s >= limit:
            continue
        cell = g * nb + bisect_right(bounds, s) - 1
        sessions[cell] = sessions.get(cell, 0) + 1
        if fact.energy_wh is not None:
            energy_wh[cell] = energy_wh.get(cell, 0) + fact.energy_wh
        if fact.stop_at is not None and e >= s:
            done = ended.get(cell)
            if done is None:
                done = ended[cell] = [0, 0, 0, 0]
            done[0] += 1
            done[1] += e - s
            if fact.energy_wh is not None:
                done[2] += 1
                done[3] += fact.energy_wh
        if fact.currency is not None:
            money = revenue.setdefault(cell, {}).get(fact.currency)
            if money is None:
                money = revenue[cell][fact.currency] = [_ZERO, _ZERO]
            money[0] += fact.revenue_excl or _ZERO
            money[1] += fact.revenue_incl or _ZERO
        if fact.token_key is not None:
            tokens.setdefault(cell, set()).add(fact.token_key)
        by = origins.get(cell)
        if by is None:
            by = origins[cell] = dict.fromkeys(ORIGINS, 0)
        by[fact.origin] = by.get(fact.origin, 0) + 1

    groups = len(group_index)
    occupied_us = [0] * (groups * nb)
    charging_us = [0] * (groups * nb)
    members = [0] * groups
    for evse, g in evse_group.items():
        if g < 0:
            continue
        members[g] += 1
        base = g * nb
        _split(_merged_spans(occupied.get(evse, []), limit), bounds, occupied_us, base)
        _split(_merged_spans(charging.get(evse, []), limit), bounds, charging_us, base)

    rows: list[Figures] = []
    for name, g in sorted(group_index.items()):
        for i, cell_span in enumerate(cells):
            cell = g * nb + i
            occ = occupied_us[cell]
            chg = charging_us[cell]
            span_us = bounds[i + 1] - bounds[i]
            done = ended.get(cell)
            rows.append(
                Figures(
                    group=name,
                    start=cell_span.start,
                    end=cell_span.end,
                    evses=members[g],
                    sessions=sessions.get(cell, 0),
                    energy_kwh=_kwh(energy_wh.get(cell, 0)),
                    revenue={
                        currency: (excl, incl)
                        for currency, (excl, incl) in sorted(revenue.get(cell, {}).items())
                    },
                    charging_s=chg / 1e6,
                    occupied_s=occ / 1e6,
                    idle_s=max(occ - chg, 0) / 1e6,
                    utilisation_pct=round(occ / (span_us * members[g]) * 100, 2),
                    unique_tokens=len(tokens.get(cell, ())),
                    avg_session_s=done[1] / done[0] / 1e6 if done else None,
                    avg_energy_kwh=_kwh(Decimal(done[3]) / done[2]) if done and done[2] else None,
                    by_origin=origins.get(cell) or dict.fromkeys(ORIGINS, 0),
                )
            )
    return rows


def _kwh(wh: int | Decimal) -> Decimal:
    return (Decimal(wh) / 1000).quantize(_KWH)
