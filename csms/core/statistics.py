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
from itertools import pairwise
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

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
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


def _after(first: datetime, period: Period) -> datetime:
    """The start of the bucket after the one starting at `first`."""
    if period == "hour":
        return first + _HOUR
    if period == "day":
        return first + _DAY
    if period == "week":
        return first + _WEEK
    if first.month == 12:
        return first.replace(year=first.year + 1, month=1)
    return first.replace(month=first.month + 1)


def bucket_end(at: datetime, period: Period) -> datetime:
    """The end (exclusive) of the UTC bucket holding `at`: the start of the next one."""
    return _after(bucket_start(at, period), period)


def buckets(start: datetime, end: datetime, period: Period) -> list[Interval]:
    """The period buckets covering `[start, end)`, the first and the last clipped to it;
    none when the range is empty."""
    start, end = _utc(start), _utc(end)
    if end < start:
        raise InvalidInput(f"the range ends ({end.isoformat()}) before it starts")
    if end == start:
        return []
    edges = [start]
    at = bucket_end(start, period)
    while at < end:
        edges.append(at)
        at = _after(at, period)
    edges.append(end)
    return [Interval(a, b) for a, b in pairwise(edges)]


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
    """One group in one bucket; see the module docstring for what counts where.

    `energy_kwh` has 3 decimals (exact from Wh); `revenue` maps each currency met to the sums
    (excl., incl. VAT) of the CDRs, sorted by currency; `by_origin` always has local, roaming
    and remote; the averages are over the sessions that started in the bucket and have
    ended (None when none has); times are seconds, exact to the microsecond; utilisation
    has 2 decimals.
    """

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


_NO_TIME = timedelta(0)


class _Spans:
    """The intervals of one EVSE as two lists, their starts and their ends: no object per
    interval (150,000 sessions and their status intervals would otherwise make as many
    tuples, and the garbage collector would walk them all)."""

    __slots__ = ("ends", "starts")

    def __init__(self, intervals: Sequence[Interval] = ()) -> None:
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
        self.extend(intervals)

    def extend(self, intervals: Sequence[Interval]) -> None:
        self.starts.extend([interval.start for interval in intervals])
        self.ends.extend([interval.end for interval in intervals])


def _spread(
    spans: _Spans, edges: Sequence[datetime], acc: list[timedelta], cover: list[int], base: int
) -> None:
    """Add the union of `spans`, clipped to `[edges[0], edges[-1])`, to the buckets: the overlap
    with bucket i (`[edges[i], edges[i+1])`) goes to acc[base + i], except for buckets a span
    covers whole: those are counted in `cover` as differences (+1 where a run of whole
    buckets starts, -1 after it ends, none when it runs to the last bucket), to be summed up
    bucket by bucket and multiplied by the bucket's length (`summarise` does it as it makes
    the rows).

    The union is found by sorting the starts and the ends apart and sweeping them (inside
    while more have started than ended; every interval ends no earlier than it starts, so
    the k-th end is never before the k-th start). Each merged span costs two bisects at most
    (from where the previous one ended), whatever its length: a charger stuck in Preparing
    for a month costs no more per hour bucket than a short session. Works on the datetimes
    as they are (comparisons and subtraction in C); the sums stay exact in microseconds.
    """
    starts, ends = spans.starts, spans.ends
    n = len(starts)
    if not n:
        return
    starts.sort()
    ends.sort()
    lo = edges[0]
    last = len(edges) - 1  # the number of buckets
    hi = edges[last]
    b = 0  # the bucket the last merged span ended in
    nxt = edges[1]
    i = j = 0
    while i < n:
        cur_s = starts[i]
        i += 1
        depth = 1
        while True:
            cur_e = ends[j]
            if i < n and starts[i] <= cur_e:
                depth += 1
                i += 1
            else:
                j += 1
                depth -= 1
                if not depth:
                    break
        # The merged span [cur_s, cur_e): clip it and add it to its buckets.
        if cur_e <= lo or cur_s >= hi:
            continue
        if cur_s < lo:
            cur_s = lo
        if cur_e > hi:
            cur_e = hi
        if cur_s >= nxt:
            b = bisect_right(edges, cur_s, b) - 1
            nxt = edges[b + 1]
        if cur_e <= nxt:
            acc[base + b] += cur_e - cur_s
            continue
        acc[base + b] += nxt - cur_s
        k = bisect_right(edges, cur_e, b + 1) - 1  # the bucket it ends in; `last` at hi
        if k > b + 1:
            cover[base + b + 1] += 1
            if k < last:
                cover[base + k] -= 1
        if k < last:
            acc[base + k] += cur_e - edges[k]
            b = k
        else:
            b = last - 1
        nxt = edges[b + 1]


class _Cell:
    """What the sessions that started in one bucket of one group add up to. It holds no
    container the collector tracks but itself (a month per EVSE makes 60,000 of them):
    revenue in two dicts of Decimals, tokens as a count (`summarise` keeps the pairs seen)."""

    __slots__ = ("ended", "ended_energy", "ended_energy_wh", "ended_time", "energy_wh",
                 "excl", "incl", "origins", "sessions", "tokens")  # fmt: skip

    def __init__(self) -> None:
        self.sessions = 0
        self.energy_wh = 0
        self.ended = 0
        self.ended_time = _NO_TIME
        self.ended_energy = 0
        self.ended_energy_wh = 0
        self.excl: dict[str, Decimal] = {}
        self.incl: dict[str, Decimal] = {}
        self.tokens = 0
        self.origins: dict[str, int] = dict.fromkeys(ORIGINS, 0)


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
    edges = [c.start for c in cells]
    edges.append(end)
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

    # Per EVSE: the spans it was occupied (status, charging, sessions) and charging.
    occupied: dict[EvseKey, _Spans] = {}
    charging: dict[EvseKey, _Spans] = {}
    for evse, act in activity.items():
        if group_for(evse) < 0:
            continue
        charging[evse] = _Spans(act.charging)
        spans = occupied[evse] = _Spans(act.occupied)
        spans.extend(act.charging)

    # Per (group, bucket) cell, flat index g * nb + i, made when a session lands in it.
    landed: dict[int, _Cell] = {}
    token_numbers: dict[str, int] = {}
    token_pairs: set[int] = set()
    for fact in facts:
        evse = fact.evse
        g = evse_group.get(evse)
        if g is None:
            g = group_for(evse)
        if g < 0:
            continue
        s = fact.start_at
        stop = fact.stop_at
        e = end if stop is None else stop
        if s < e:
            mine = occupied.get(evse)
            if mine is None:
                mine = occupied[evse] = _Spans()
            mine.starts.append(s)
            mine.ends.append(e)
        if s < start or s >= end:
            continue
        key = g * nb + bisect_right(edges, s) - 1
        cell = landed.get(key)
        if cell is None:
            cell = landed[key] = _Cell()
        cell.sessions += 1
        energy = fact.energy_wh
        if energy is not None:
            cell.energy_wh += energy
        if stop is not None and stop >= s:
            cell.ended += 1
            cell.ended_time += stop - s
            if energy is not None:
                cell.ended_energy += 1
                cell.ended_energy_wh += energy
        currency = fact.currency
        if currency is not None:
            cell.excl[currency] = cell.excl.get(currency, _ZERO) + (fact.revenue_excl or _ZERO)
            cell.incl[currency] = cell.incl.get(currency, _ZERO) + (fact.revenue_incl or _ZERO)
        token = fact.token_key
        if token is not None:
            number = token_numbers.get(token)
            if number is None:
                number = token_numbers[token] = len(token_numbers)
            pair = number << 48 | key  # an int: nothing for the collector to track
            if pair not in token_pairs:
                token_pairs.add(pair)
                cell.tokens += 1
        cell.origins[fact.origin] = cell.origins.get(fact.origin, 0) + 1

    groups = len(group_index)
    occupied_td = [_NO_TIME] * (groups * nb)
    charging_td = [_NO_TIME] * (groups * nb)
    occupied_cover = [0] * (groups * nb)
    charging_cover = [0] * (groups * nb)
    members = [0] * groups
    for evse, g in evse_group.items():
        if g < 0:
            continue
        members[g] += 1
        if evse in occupied:
            _spread(occupied[evse], edges, occupied_td, occupied_cover, g * nb)
        if evse in charging:
            _spread(charging[evse], edges, charging_td, charging_cover, g * nb)

    zero_kwh = _kwh(0)
    rows: list[Figures] = []
    append = rows.append
    for name, g in sorted(group_index.items()):
        evse_count = members[g]
        occupied_whole = charging_whole = 0  # EVSEs occupied (charging) all through bucket i
        for i, bucket in enumerate(cells):
            key = g * nb + i
            occ = occupied_td[key]
            chg = charging_td[key]
            occupied_whole += occupied_cover[key]
            charging_whole += charging_cover[key]
            if occupied_whole:
                occ += (edges[i + 1] - edges[i]) * occupied_whole
            if charging_whole:
                chg += (edges[i + 1] - edges[i]) * charging_whole
            occ_s = occ.total_seconds()
            chg_s = chg.total_seconds()
            utilisation = round(occ / ((edges[i + 1] - edges[i]) * evse_count) * 100, 2)
            cell = landed.get(key)
            if cell is None:
                append(
                    Figures(
                        group=name,
                        start=bucket.start,
                        end=bucket.end,
                        evses=evse_count,
                        sessions=0,
                        energy_kwh=zero_kwh,
                        revenue={},
                        charging_s=chg_s,
                        occupied_s=occ_s,
                        idle_s=(occ - chg).total_seconds() if occ > chg else 0.0,
                        utilisation_pct=utilisation,
                        unique_tokens=0,
                        avg_session_s=None,
                        avg_energy_kwh=None,
                        by_origin=dict.fromkeys(ORIGINS, 0),
                    )
                )
                continue
            append(
                Figures(
                    group=name,
                    start=bucket.start,
                    end=bucket.end,
                    evses=evse_count,
                    sessions=cell.sessions,
                    energy_kwh=_kwh(cell.energy_wh),
                    revenue={
                        currency: (excl, cell.incl[currency])
                        for currency, excl in sorted(cell.excl.items())
                    },
                    charging_s=chg_s,
                    occupied_s=occ_s,
                    idle_s=(occ - chg).total_seconds() if occ > chg else 0.0,
                    utilisation_pct=utilisation,
                    unique_tokens=cell.tokens,
                    avg_session_s=(cell.ended_time / cell.ended).total_seconds()
                    if cell.ended
                    else None,
                    avg_energy_kwh=_kwh(Decimal(cell.ended_energy_wh) / cell.ended_energy)
                    if cell.ended_energy
                    else None,
                    by_origin=cell.origins,
                )
            )
    return rows


def _kwh(wh: int | Decimal) -> Decimal:
    """Wh as kWh with 3 decimals (an integer exactly, an average rounded half-even)."""
    if isinstance(wh, int):
        return Decimal(wh).scaleb(-3)
    return (wh / 1000).quantize(_KWH)
