"""Statistics core benchmark: csms.core.statistics.summarise over a month of a 1,000-charger
network (2,000 EVSEs, ~150,000 sessions) per day and per hour, and csms.core.uptime over the
2,000 EVSEs (issue 21: the whole month, database read included, in < 2 s).

Pure CPU on one core, no I/O: this is the core's share of that budget. The input is built
first (not timed): sessions of 20 min to 4 h, each plugged in a little longer than it runs
and charging in one to three pieces; 20,000 tokens, three origins, a CDR in EUR or CHF for
most; per EVSE a few Faulted and Unavailable spells, per charger a few offline spells, a
maintenance window and some staff Inoperative time. Each call is timed --repeat times and
the best and the median are printed (wall clock and this process's CPU time).

    .venv/bin/python bench/statistics_core.py [--chargers 1000] [--evses 2]
        [--sessions 150000] [--days 30] [--repeat 3] [--seed 1] [--evse-hourly]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from csms.core.statistics import (
    ORIGINS,
    EvseActivity,
    EvseKey,
    GroupBy,
    Interval,
    Period,
    SessionFact,
    group_function,
    summarise,
)
from csms.core.uptime import StatusChange, outage_intervals, uptime, uptime_buckets

START = datetime(2026, 4, 1, tzinfo=UTC)
TARGET_S = 2.0


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def build_sessions(
    rng: random.Random, evses: list[EvseKey], count: int, end: datetime
) -> tuple[list[SessionFact], dict[EvseKey, EvseActivity]]:
    """`count` sessions spread evenly over the EVSEs, one after the other on each EVSE."""
    span_min = (end - START).total_seconds() / 60
    per_evse = count // len(evses)
    facts: list[SessionFact] = []
    activity: dict[EvseKey, EvseActivity] = {}
    tid = 0
    for evse in evses:
        occupied: list[Interval] = []
        charging: list[Interval] = []
        slot = span_min / per_evse
        for k in range(per_evse):
            begin = START + minutes(k * slot + rng.uniform(0, slot * 0.3))
            length = rng.uniform(20, min(240, slot * 0.6))
            stop: datetime | None = begin + minutes(length)
            if stop is not None and stop >= end:
                stop = None
            tid += 1
            has_cdr = stop is not None and rng.random() < 0.95
            currency = "EUR" if rng.random() < 0.9 else "CHF"
            excl = Decimal(rng.randrange(100, 5000)) / 100
            facts.append(
                SessionFact(
                    transaction_id=tid,
                    evse=evse,
                    start_at=begin,
                    stop_at=stop,
                    energy_wh=rng.randrange(1_000, 60_000),
                    token_key=f"tok{rng.randrange(20_000)}" if rng.random() < 0.97 else None,
                    origin=rng.choice(ORIGINS),
                    currency=currency if has_cdr else None,
                    revenue_excl=excl if has_cdr else None,
                    revenue_incl=(excl * Decimal("1.19")).quantize(Decimal("0.01"))
                    if has_cdr
                    else None,
                )
            )
            plugged_out = (stop or end) + minutes(rng.uniform(0, 10))
            occupied.append(Interval(begin - minutes(rng.uniform(0, 3)), plugged_out))
            at = begin + minutes(1)
            for _ in range(rng.randint(1, 3)):
                piece_end = min(at + minutes(rng.uniform(5, length / 2)), stop or end)
                if piece_end > at:
                    charging.append(Interval(at, piece_end))
                at = piece_end + minutes(rng.uniform(1, 10))
        activity[evse] = EvseActivity(occupied=occupied, charging=charging)
    return facts, activity


def build_history(
    rng: random.Random, chargers: list[str], evses: list[EvseKey], end: datetime
) -> dict[EvseKey, tuple[list[StatusChange], list[Interval], list[Interval], list[Interval]]]:
    """Per EVSE: its status changes, its charger's offline spells, the staff Inoperative
    time and the exclusions (a maintenance window)."""
    span_min = (end - START).total_seconds() / 60
    offline: dict[str, list[Interval]] = {}
    staff: dict[str, list[Interval]] = {}
    windows: dict[str, list[Interval]] = {}
    for charger in chargers:
        spells = []
        for _ in range(rng.randint(2, 12)):
            at = START + minutes(rng.uniform(-60, span_min))
            spells.append(Interval(at, at + minutes(rng.expovariate(1 / 15))))
        offline[charger] = sorted(spells, key=lambda i: i.start)
        at = START + minutes(rng.uniform(0, span_min))
        staff[charger] = [Interval(at, at + minutes(rng.uniform(30, 300)))]
        at = START + minutes(rng.uniform(0, span_min))
        windows[charger] = [Interval(at, at + minutes(rng.uniform(60, 480)))]
    history = {}
    for evse in evses:
        changes = [StatusChange(START - timedelta(days=2), "Available")]
        at = START
        while True:
            at += minutes(rng.expovariate(1 / 1440))
            if at >= end:
                break
            status = rng.choice(["Faulted", "Unavailable", "Charging", "Preparing"])
            changes.append(StatusChange(at, status))
            at += minutes(rng.expovariate(1 / 120))
            changes.append(StatusChange(at, "Available"))
        history[evse] = (changes, offline[evse[0]], staff[evse[0]], windows[evse[0]])
    return history


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float, float, object]:
    """(best wall s, median wall s, best CPU s, the last result)."""
    walls, cpus = [], []
    result: object = None
    for _ in range(repeat):
        result = None
        gc.collect()
        began, began_cpu = time.perf_counter(), time.process_time()
        result = call()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
    return min(walls), statistics.median(walls), min(cpus), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=1_000)
    parser.add_argument("--evses", type=int, default=2, help="per charger")
    parser.add_argument("--sessions", type=int, default=150_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--evse-hourly", action="store_true", help="also per EVSE per hour (groups x 720 rows)"
    )
    args = parser.parse_args()

    rng = random.Random(args.seed)
    end = START + timedelta(days=args.days)
    chargers = [f"CP{i:04d}" for i in range(args.chargers)]
    evses = [(c, n) for c in chargers for n in range(1, args.evses + 1)]
    built = time.perf_counter()
    facts, activity = build_sessions(rng, evses, args.sessions, end)
    history = build_history(rng, chargers, evses, end)
    location_of = {c: f"LOC{i // 5:03d}" for i, c in enumerate(chargers)}
    site_of = {c: f"SITE{i // 20:02d}" for i, c in enumerate(chargers)}
    intervals = sum(len(a.occupied) + len(a.charging) for a in activity.values())
    print(
        f"input: {len(chargers)} chargers, {len(evses)} EVSEs, {len(facts)} sessions, "
        f"{intervals} status intervals, {args.days} days "
        f"(built in {time.perf_counter() - built:.1f} s, not timed)"
    )

    cases: list[tuple[GroupBy, Period]] = [
        ("network", "day"),
        ("site", "day"),
        ("location", "day"),
        ("charger", "day"),
        ("evse", "day"),
        ("network", "hour"),
        ("site", "hour"),
        ("charger", "hour"),
    ]
    if args.evse_hourly:
        cases.append(("evse", "hour"))
    worst = 0.0
    for by, period in cases:
        group_of = group_function(by, location_of, site_of)

        def run(
            group_of: Callable[[EvseKey], str | None] = group_of, period: Period = period
        ) -> object:
            return summarise(facts, activity, group_of, evses, START, end, period)

        best, median, cpu, rows = timed(run, args.repeat)
        assert isinstance(rows, list)
        if period == "day" or by == "network":
            worst = max(worst, cpu)
        print(
            f"summarise by {by:<8} per {period:<4}: {len(rows):>7} rows, "
            f"best {best * 1000:6.0f} ms, median {median * 1000:6.0f} ms, CPU {cpu * 1000:6.0f} ms"
        )

    grace = timedelta(minutes=10)

    def uptimes() -> object:
        result = []
        for evse, (changes, offline, staff, windows) in history.items():
            outages = outage_intervals(changes, offline, staff, START, end, grace)
            result.append(uptime(evse, outages, windows, START, end))
        return result

    def uptimes_daily() -> object:
        result = []
        for evse, (changes, offline, staff, windows) in history.items():
            outages = outage_intervals(changes, offline, staff, START, end, grace)
            result.extend(uptime_buckets(evse, outages, windows, START, end, "day"))
        return result

    changes_n = sum(len(h[0]) for h in history.values())
    for name, call in (("uptime per month", uptimes), ("uptime per day  ", uptimes_daily)):
        best, median, cpu, rows = timed(call, args.repeat)
        assert isinstance(rows, list)
        print(
            f"{name} over {len(history)} EVSEs ({changes_n} status changes): {len(rows)} rows, "
            f"best {best * 1000:.0f} ms, median {median * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms"
        )
    print(
        f"slowest summarise per day (any grouping) or per hour (network), best CPU: "
        f"{worst * 1000:.0f} ms of the {TARGET_S:g} s budget (the database read comes on top)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
