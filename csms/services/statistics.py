"""Statistics and uptime for staff (`csms stats`, `GET /api/stats...`, the dashboard).

Reads the period's sessions, status history, connectivity history, staff's availability
commands and maintenance windows (csms.storage.statistics: a few index-backed statements),
and hands them to the pure rules of csms.core.statistics (figures per group and period)
and csms.core.uptime (NEVI uptime). Everything the CLI, the API and the page show comes
from here, so they agree by construction.

A scope narrows what is read: chargers named, the chargers at locations, the chargers
linked to sites (their union); none: the whole network.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from csms.config import StatisticsConfig
from csms.core.clock import Clock
from csms.core.errors import InvalidInput, NotFound
from csms.core.statistics import (
    EvseActivity,
    EvseKey,
    Figures,
    GroupBy,
    Interval,
    Period,
    bucket_start,
    buckets,
    evse_label,
    group_function,
    summarise,
)
from csms.core.uptime import StatusChange, Uptime, outage_intervals, uptime_buckets
from csms.gcpolicy import CollectorPause
from csms.storage import rollups
from csms.storage import statistics as stats_repo
from csms.storage.database import Database

GROUP_BYS: tuple[GroupBy, ...] = ("evse", "charger", "location", "site", "network")
PERIODS: tuple[Period, ...] = ("hour", "day", "week", "month")
# Rows one answer may hold (groups x buckets): more is a range or grouping asked by mistake.
MAX_ROWS = 200_000
# Without a range: the last 30 days up to now.
DEFAULT_DAYS = 30
# One pause shared by every query under way (see csms.gcpolicy.CollectorPause).
_PAUSE = CollectorPause()


class UnknownScope(NotFound):
    """A charger, location or site named in the scope does not exist."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What to count: these chargers, the chargers at these locations and on these sites
    (their union); all empty: every charger."""

    chargers: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.chargers or self.locations or self.sites)

    def as_query(self) -> dict[str, list[str]]:
        return {
            key: list(values)
            for key, values in (
                ("charger", self.chargers),
                ("location", self.locations),
                ("site", self.sites),
            )
            if values
        }


@dataclass(frozen=True, slots=True)
class StatsReport:
    by: GroupBy
    period: Period
    start: datetime
    end: datetime
    scope: Scope
    rows: list[Figures]


@dataclass(frozen=True, slots=True)
class UptimeRow:
    """A group's uptime in one bucket: its EVSEs' period, outage and excluded time summed
    (for an EVSE, its own)."""

    group: str
    start: datetime
    end: datetime
    evses: int
    period_s: float
    outage_s: float
    excluded_s: float
    uptime_pct: float


@dataclass(frozen=True, slots=True)
class UptimeReport:
    by: GroupBy
    period: Period
    start: datetime
    end: datetime
    scope: Scope
    grace_s: float
    rows: list[UptimeRow]


@dataclass(frozen=True, slots=True)
class HeatCell:
    """Utilisation in one hour of the week (weekday 0 = Monday, UTC) over the range."""

    weekday: int
    hour: int
    utilisation_pct: float


@dataclass(frozen=True, slots=True)
class Heatmap:
    start: datetime
    end: datetime
    scope: Scope
    cells: list[HeatCell]


def pick(value: str, allowed: Sequence[str], what: str) -> Any:
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


class StatisticsService:
    def __init__(
        self, db: Database, clock: Clock, settings: StatisticsConfig | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings or StatisticsConfig()

    # --- ranges -----------------------------------------------------------------------

    def range(
        self, start: datetime | None, end: datetime | None, period: Period | None = None
    ) -> tuple[datetime, datetime]:
        """The range asked for: defaults to the last DEFAULT_DAYS days up to now, ends now at
        the latest; checked (ends after it starts, at most [statistics] max_range_days
        long)."""
        now = self._clock()
        if end is None:
            end = now if start is None else min(now, start + timedelta(days=DEFAULT_DAYS))
            if start is not None and end <= start:
                end = start + timedelta(days=DEFAULT_DAYS)
        if start is None:
            start = end - timedelta(days=DEFAULT_DAYS)
            if period is not None:  # from the start of that period: whole rows only
                start = bucket_start(start, period)
        for at, name in ((start, "from"), (end, "to")):
            if at.tzinfo is None:
                raise InvalidInput(f"{name} has no time zone")
        if start >= now:
            raise InvalidInput(f"the range starts in the future ({start.isoformat()})")
        # Nothing is known of the future: a range reaching past now ends now (this month so
        # far; a running session counts up to now, an offline charger is offline until now).
        end = min(end, now)
        if end <= start:
            raise InvalidInput(
                f"the range must end after it starts ({start.isoformat()} .. {end.isoformat()})"
            )
        longest = self.settings.max_range_days
        if end - start > timedelta(days=longest):
            raise InvalidInput(
                f"the range is longer than {longest} days ([statistics] max_range_days)"
            )
        return start, end

    def _check_size(self, groups: int, start: datetime, end: datetime, period: Period) -> None:
        cells = len(buckets(start, end, period))
        if groups * cells > MAX_ROWS:
            raise InvalidInput(
                f"{groups} groups x {cells} {period}s is more than {MAX_ROWS} rows: "
                "narrow the range or the scope, or choose a longer period or a wider grouping"
            )

    # --- figures ----------------------------------------------------------------------

    async def figures(
        self,
        by: str,
        period: str,
        start: datetime | None,
        end: datetime | None,
        scope: Scope = Scope(),
    ) -> StatsReport:
        """Sessions, energy, revenue, time and utilisation per group and period."""
        group_by: GroupBy = pick(by, GROUP_BYS, "by")
        per: Period = pick(period, PERIODS, "period")
        start, end = self.range(start, end, per)
        # Hundreds of thousands of rows become objects: the cyclic collector, which would
        # walk them again and again as they are made, waits until they are summed.
        with _PAUSE:
            async with (
                self._db.read() as conn,
                self._db.read() as counts,
                self._db.read() as revenue,
            ):
                chargers = await self._chargers(conn, scope)
                evses = await stats_repo.evses_in_scope(conn, chargers)
                group_of = await self._grouping(conn, group_by, chargers)
                self._check_size(_groups(evses, group_of), start, end, per)

                async def timing() -> tuple[list[EvseKey], Any, Any]:
                    sessions = await stats_repo.session_evses(conn, start, end, chargers)
                    universe = sorted({e[0] for e in evses} | {e[0] for e in sessions})
                    activity, made = await self._time(
                        conn, start, end, universe, group_by, per, everyone=chargers is None
                    )
                    return sessions, activity, made

                # Three statements at once, each on a connection of its own (the database
                # works without the GIL): the sessions' counts, their revenue, the time.
                totals, (sessions, activity, made) = await asyncio.gather(
                    stats_repo.session_totals(
                        counts, start, end, per, group_by, chargers, revenue_conn=revenue
                    ),
                    timing(),
                )
            # Sessions on an EVSE that never reported a status still count (and their EVSE).
            every = sorted(set(evses) | set(sessions) | set(activity))
            more = _more_time(made, group_of, group_by, start, end, per)
            # Pure and long: beside the event loop. The sessions' own figures were summed by
            # the database (`totals`); summarise adds the time of the raw `activity` (which
            # holds the sessions' spans) and of the rolled-up hours (`more`).
            edges = _edges(start, end, per)
            by_index = {
                (group, bisect_right(edges, max(at, start)) - 1): cell
                for (group, at), cell in totals.items()
            }
            rows = await asyncio.to_thread(
                partial(summarise, more_time=more, totals=by_index),
                (),
                activity,
                group_of,
                every,
                start,
                end,
                per,
            )
        return StatsReport(group_by, per, start, end, scope, rows)

    async def heatmap(
        self, start: datetime | None, end: datetime | None, scope: Scope = Scope()
    ) -> Heatmap:
        """Utilisation by weekday and hour of day (UTC) over the range: each hour-of-week
        cell is the occupied time of those hours over their length times the EVSEs."""
        report = await self.figures("network", "hour", start, end, scope)
        occupied = [[0.0] * 24 for _ in range(7)]
        capacity = [[0.0] * 24 for _ in range(7)]
        for row in report.rows:
            day, hour = row.start.weekday(), row.start.hour
            occupied[day][hour] += row.occupied_s
            capacity[day][hour] += (row.end - row.start).total_seconds() * row.evses
        cells = [
            HeatCell(
                day,
                hour,
                round(occupied[day][hour] / capacity[day][hour] * 100, 2)
                if capacity[day][hour]
                else 0.0,
            )
            for day in range(7)
            for hour in range(24)
        ]
        return Heatmap(report.start, report.end, scope, cells)

    # --- uptime -----------------------------------------------------------------------

    async def uptime(
        self,
        by: str,
        period: str,
        start: datetime | None,
        end: datetime | None,
        scope: Scope = Scope(),
    ) -> UptimeReport:
        """NEVI uptime per EVSE (or group of EVSEs) and period: see csms.core.uptime."""
        group_by: GroupBy = pick(by, GROUP_BYS, "by")
        per: Period = pick(period, PERIODS, "period")
        start, end = self.range(start, end, per)
        grace = timedelta(seconds=self.settings.offline_grace)
        with _PAUSE:
            async with self._db.read() as conn:
                chargers = await self._chargers(conn, scope)
                evses = await stats_repo.evses_in_scope(conn, chargers)
                group_of = await self._grouping(conn, group_by, chargers)
                self._check_size(_groups(evses, group_of), start, end, per)
                statuses = await stats_repo.status_changes(conn, start, end, chargers)
                offline = await stats_repo.offline_intervals(conn, start, end, chargers)
                staff = await stats_repo.staff_unavailable(conn, start, end, chargers)
                windows = await stats_repo.exclusions(conn, start, end, chargers)
            rows = await asyncio.to_thread(
                _uptime_rows,
                evses,
                group_of,
                _UptimeInput(statuses, offline, staff, windows),
                start,
                end,
                per,
                grace,
            )
        return UptimeReport(group_by, per, start, end, scope, grace.total_seconds(), rows)

    async def _time(
        self,
        conn: Any,
        start: datetime,
        end: datetime,
        chargers: list[str],
        by: GroupBy,
        per: Period,
        *,
        everyone: bool,
    ) -> tuple[dict[EvseKey, EvseActivity], list[tuple[tuple[Any, ...], int, int, int]]]:
        """The occupied and charging time of `chargers` over [start, end): the whole hours
        the roll-up has made (csms.storage.rollups), summed per group and bucket by the
        database, and the raw activity of the rest: the part hour at the range's start, and
        each charger's hours after its mark or after history arrived since the roll-up
        last looked (so a status change of a second ago counts, and so does a late one)."""
        lo = rollups.hour_number(start)
        if rollups.hour_at(lo) < start:
            lo += 1
        hi = rollups.hour_number(end)
        seen = await rollups.seen_until(conn)
        rolled: dict[str, int] = {}
        if seen is not None and lo < hi:
            marks = await rollups.marks(conn, None if everyone else chargers)
            changed = await rollups.changed_since(conn, seen - rollups.OVERLAP)
            for cp_id in chargers:
                until = min(marks.get(cp_id, lo), hi)
                if cp_id in changed:
                    until = min(until, rollups.hour_number(changed[cp_id]))
                if until > lo:
                    rolled[cp_id] = until
        made: list[tuple[tuple[Any, ...], int, int, int]] = []
        if rolled:
            numbering = rollups.bucket_numbering(per, _edges(start, end, per))
            # The whole network: hours are stored only for chargers with a mark, and those
            # not read from `lo` on are few (late history), so the rest is "all but them".
            others = [c for c in marks if c not in rolled] if everyone else None
            made = await rollups.hour_totals(conn, rolled, lo, by, numbering, others=others)
        # The raw rest: each charger from its first hour not made (the range's start for
        # those without), and the part hour before the made ones.
        tails: dict[datetime, list[str]] = {}
        for cp_id in chargers:
            made_until = rolled.get(cp_id)
            begin = start if made_until is None else rollups.hour_at(made_until)
            tails.setdefault(begin, []).append(cp_id)
        activity: dict[EvseKey, EvseActivity] = {}
        if rolled and start < rollups.hour_at(lo):
            _join(
                activity,
                await stats_repo.evse_activity(conn, start, rollups.hour_at(lo), list(rolled)),
            )
        for begin, group in tails.items():
            if begin < end:
                _join(activity, await stats_repo.evse_activity(conn, begin, end, group))
        return activity, made

    # --- scope ------------------------------------------------------------------------

    async def _chargers(self, conn: Any, scope: Scope) -> list[str] | None:
        """The chargers in the scope (None: every one); a name that matches nothing is an
        error, not an empty answer."""
        if scope.everything:
            return None
        found = await stats_repo.scope_chargers(conn, scope.chargers, scope.locations, scope.sites)
        for kind, names, known in (
            ("charger", scope.chargers, found.chargers_known),
            ("location", scope.locations, found.locations_known),
            ("site", scope.sites, found.sites_known),
        ):
            missing = [n for n in names if n not in known]
            if missing:
                raise UnknownScope(f"no {kind} {', '.join(missing)}")
        return sorted(found.chargers)

    async def _grouping(self, conn: Any, by: GroupBy, chargers: list[str] | None) -> Any:
        location_of = site_of = None
        if by == "location":
            location_of = await stats_repo.charger_locations(conn, chargers)
        elif by == "site":
            site_of = await stats_repo.charger_sites(conn, chargers)
        return group_function(by, location_of, site_of)


@dataclass(frozen=True, slots=True)
class _UptimeInput:
    statuses: dict[EvseKey, list[StatusChange]]
    offline: dict[str, list[Interval]]
    staff: dict[EvseKey, list[Interval]]
    windows: dict[EvseKey, list[Interval]]


def _uptime_rows(
    evses: Sequence[EvseKey],
    group_of: Any,
    given: _UptimeInput,
    start: datetime,
    end: datetime,
    per: Period,
    grace: timedelta,
) -> list[UptimeRow]:
    """Each EVSE's outage and exclusions per bucket, summed per group (pure)."""
    statuses, offline, staff, windows = given.statuses, given.offline, given.staff, given.windows
    sums: dict[tuple[str, datetime], list[Any]] = {}
    for evse in evses:
        group = group_of(evse)
        if group is None:
            continue
        cp_id = evse[0]
        whole = (cp_id, 0)
        outages = outage_intervals(
            statuses.get(evse, []),
            offline.get(cp_id, []),
            _joined(staff.get(evse, []), staff.get(whole, [])),
            start,
            end,
            grace,
            charger_statuses=statuses.get(whole, []),
        )
        excluded = _joined(windows.get(evse, []), windows.get(whole, []))
        for u in uptime_buckets(evse, outages, excluded, start, end, per):
            _add(sums, group, u)
    rows = [
        UptimeRow(
            group,
            at,
            cell_end,
            count,
            period_s,
            outage_s,
            excluded_s,
            _pct(period_s, outage_s - excluded_s),
        )
        for (group, at), (cell_end, count, period_s, outage_s, excluded_s) in sorted(sums.items())
    ]
    return rows


def _join(into: dict[EvseKey, EvseActivity], more: dict[EvseKey, EvseActivity]) -> None:
    """Activities of one EVSE over disjoint parts of the range, as one."""
    for evse, act in more.items():
        had = into.get(evse)
        into[evse] = (
            act
            if had is None
            else EvseActivity(had.occupied + act.occupied, had.charging + act.charging)
        )


def _edges(start: datetime, end: datetime, per: Period) -> list[datetime]:
    cells = buckets(start, end, per)
    return [c.start for c in cells] + [end]


def _more_time(
    made: list[tuple[tuple[Any, ...], int, int, int]],
    group_of: Any,
    by: GroupBy,
    start: datetime,
    end: datetime,
    per: Period,
) -> dict[tuple[str, int], tuple[timedelta, timedelta]]:
    """The rolled-up sums as `summarise`'s more_time: per group name and bucket index."""
    edges = _edges(start, end, per)
    out: dict[tuple[str, int], tuple[timedelta, timedelta]] = {}
    for key, number, occupied_us, charging_us in made:
        if by == "evse":
            name = group_of((key[0], int(key[1])))
        elif by == "charger":
            name = group_of((key[0], 1))
        else:
            name = key[0] if key else "network"
        if name is None:
            continue
        if per == "month":
            index = number
        else:
            if per == "week":
                first = rollups.EPOCH + timedelta(days=number * 7 - 3)
            else:
                first = rollups.hour_at(number * (24 if per == "day" else 1))
            index = bisect_right(edges, max(first, start)) - 1
        occ, chg = out.get((name, index), (_NONE, _NONE))
        out[(name, index)] = (
            occ + timedelta(microseconds=occupied_us),
            chg + timedelta(microseconds=charging_us),
        )
    return out


_NONE = timedelta(0)


def _groups(evses: Sequence[EvseKey], group_of: Any) -> int:
    return max(1, len({g for g in map(group_of, evses) if g is not None}))


def _joined(a: list[Interval], b: list[Interval]) -> list[Interval]:
    return a + b if a and b else a or b


def _add(sums: dict[tuple[str, datetime], list[Any]], group: str, u: Uptime) -> None:
    key = (group, u.start)
    cell = sums.get(key)
    if cell is None:
        sums[key] = [u.end, 1, u.period_s, u.outage_s, u.excluded_s]
        return
    cell[1] += 1
    cell[2] += u.period_s
    cell[3] += u.outage_s
    cell[4] += u.excluded_s


def _pct(period_s: float, down_s: float) -> float:
    return round((period_s - down_s) / period_s * 100, 2) if period_s > 0 else 100.0


__all__ = [
    "GROUP_BYS",
    "PERIODS",
    "HeatCell",
    "Heatmap",
    "Scope",
    "StatisticsService",
    "StatsReport",
    "UnknownScope",
    "UptimeReport",
    "UptimeRow",
    "evse_label",
]
