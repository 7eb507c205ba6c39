"""Cost engine benchmark: prices many 2-hour sessions under a 4-element tariff; prints sessions/s.

Pure CPU on one core, no I/O: sessions are built first (not timed), then priced with
csms.core.cost.price_session (timed), then turned into OCPI JSON with cost_to_ocpi (timed apart).

    .venv/bin/python bench/price.py [--sessions 10000] [--interval 60] [--hours 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from csms.core.cost import Reading, Usage, cost_to_ocpi, price_session
from csms.core.tariffs import Tariff, parse_tariff

TARGET = 2000  # sessions per second

TARIFF = {
    "id": "BENCH-4",
    "currency": "EUR",
    "min_price": {"excl_vat": 1.00, "incl_vat": 1.21},
    "elements": [
        # a start fee
        {"price_components": [{"type": "FLAT", "price": 0.50, "vat": 21.0, "step_size": 1}]},
        # fast charging costs more, per kWh and per hour
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.39, "vat": 21.0, "step_size": 1},
                {"type": "TIME", "price": 1.20, "vat": 21.0, "step_size": 60},
            ],
            "restrictions": {"min_power": 11.0},
        },
        # weekday daytime
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.32, "vat": 21.0, "step_size": 1},
                {"type": "PARKING_TIME", "price": 6.00, "vat": 21.0, "step_size": 300},
            ],
            "restrictions": {
                "start_time": "07:00",
                "end_time": "21:00",
                "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
            },
        },
        # everything else
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.25, "vat": 21.0, "step_size": 1},
                {"type": "TIME", "price": 0.60, "vat": 21.0, "step_size": 60},
            ]
        },
    ],
}


def build_tariff() -> Tariff:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return parse_tariff(TARIFF, country_code="NL", party_id="CSM", now=now)


def build_session(rng: random.Random, hours: float, interval_s: int) -> Usage:
    """A session starting some time in a fortnight of 2026: ramps up, charges at 7 to 22 kW,
    tapers, then stays plugged in (parking) for its last 0 to 40 minutes."""
    start = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=rng.randrange(14 * 24 * 60))
    total_s = int(hours * 3600)
    parking_s = rng.randrange(0, 40 * 60)
    peak_w = rng.choice((7_400.0, 11_000.0, 16_500.0, 22_000.0))
    register = rng.uniform(0, 5e6)
    readings = []
    for s in range(0, total_s + 1, interval_s):
        if s >= total_s - parking_s:
            power = 0.0
        elif s < 120:
            power = peak_w * s / 120
        else:
            left = total_s - parking_s - s
            power = peak_w * min(1.0, left / 1800) * rng.uniform(0.97, 1.0)
        readings.append(
            Reading(
                at=start + timedelta(seconds=s),
                energy_wh=round(register, 1),
                power_w=round(power, 1),
                current_a=round(power / 690, 2),  # 3 x 230 V
            )
        )
        register += power * interval_s / 3600
    return Usage(start=start, end=start + timedelta(seconds=total_s), readings=tuple(readings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--interval", type=int, default=60, help="seconds between readings")
    parser.add_argument("--hours", type=float, default=2.0, help="session length")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best counts")
    args = parser.parse_args()

    tariff = build_tariff()
    tz = ZoneInfo("Europe/Amsterdam")
    rng = random.Random(args.seed)
    sessions = [build_session(rng, args.hours, args.interval) for _ in range(args.sessions)]
    readings = len(sessions[0].readings)

    price_session(tariff, sessions[0], tz)  # warm up imports and caches
    gc.collect()
    gc.disable()
    try:
        rounds = []
        for _ in range(max(1, args.rounds)):
            began = time.perf_counter()
            costs = [price_session(tariff, usage, tz) for usage in sessions]
            rounds.append(time.perf_counter() - began)
        began = time.perf_counter()
        for cost in costs:
            cost_to_ocpi(cost)
        to_json = time.perf_counter() - began
    finally:
        gc.enable()

    best = min(rounds)
    rate = args.sessions / best
    periods = statistics.mean(len(c.charging_periods) for c in costs)
    revenue = sum(c.total_cost.excl_vat for c in costs)
    print(
        f"price_session: {args.sessions} sessions of {args.hours:g} h, {readings} readings each, "
        f"{len(tariff.elements)}-element tariff"
    )
    print(
        f"  best of {len(rounds)}: {best:.3f} s = {rate:,.0f} sessions/s "
        f"({best / args.sessions * 1e6:.0f} us/session); rounds: "
        + ", ".join(f"{r:.3f} s" for r in rounds)
    )
    print(f"  mean charging periods per session: {periods:.2f}; total excl. VAT {revenue:.2f} EUR")
    print(
        f"cost_to_ocpi: {args.sessions / to_json:,.0f} costs/s "
        f"({to_json / args.sessions * 1e6:.0f} us/cost)"
    )
    print(f"target {TARGET:,} sessions/s: {'met' if rate >= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
