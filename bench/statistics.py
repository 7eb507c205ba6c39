"""How long `csms stats` and `csms stats uptime` take on a month of a large network.

    python bench/statistics.py [--chargers 1000] [--sessions 150000] [--days 30]
                               [--database FILE] [--repeat 3]

Builds (or reuses, with --database FILE that exists) a SQLite database with the project's
migrations and writes with plain sqlite3 in one transaction:

- `--chargers` chargers STAT00001... with two EVSEs each (half 1.6, half 2.0.1);
- `--sessions` finished sessions over the last `--days` days, each 20 to 240 minutes,
  with a CDR (EUR, 95 % of them) and its status history: Preparing, Charging,
  SuspendedEV for its last part, Finishing, Available (five rows per session);
- a fault of one to five hours on 2 % of the EVSEs a day, and a disconnection of the
  charger for 2 to 40 minutes once a day on average (connectivity history);
- staff's ChangeAvailability Inoperative/Operative for a few chargers, and maintenance
  windows on some.

Then times, through csms.services.statistics exactly as the CLI and the API call it (the
database read and the aggregation), each query `--repeat` times, and prints the best and
the worst of each. The issue's target: a month of 1,000 chargers in < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.config import StatisticsConfig
from csms.services.statistics import Scope, StatisticsService
from csms.storage.database import Database
from csms.storage.migrate import upgrade

# The audit log's name of ChangeAvailability (csms.core.commands.CommandName.AVAILABILITY).
AVAILABILITY = "availability"
STATUSES = ("Preparing", "Charging", "SuspendedEV", "Finishing", "Available")


def db_time(moment: datetime) -> str:
    """How the models store a timestamp on SQLite (naive UTC text with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def schema(path: Path) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(db.engine)
    finally:
        await db.engine.dispose()


def seed(path: Path, args: argparse.Namespace, end: datetime) -> dict[str, int]:
    rng = random.Random(args.seed)
    start = end - timedelta(days=args.days)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    chargers = [f"STAT{i:05d}" for i in range(1, args.chargers + 1)]
    stamp = db_time(start)
    conn.executemany(
        "INSERT INTO charge_points (id, registration, ocpp_version, vendor, model, connected,"
        " created_at, updated_at) VALUES (?, 'Accepted', ?, 'Stat', 'S2', 1, ?, ?)",
        [(cp, "1.6" if i % 2 else "2.0.1", stamp, stamp) for i, cp in enumerate(chargers)],
    )
    conn.executemany(
        "INSERT INTO connectors (charge_point_id, evse_id, connector_id, status, error_code,"
        " status_at, updated_at) VALUES (?, ?, 1, 'Available', 'NoError', ?, ?)",
        [(cp, evse, stamp, stamp) for cp in chargers for evse in (1, 2)],
    )
    counts = {"transactions": 0, "status_history": 0, "cdrs": 0, "connectivity": 0}
    history: list[tuple[str, int, str, str, str]] = []
    # Where each EVSE is free again: sessions on one EVSE do not overlap.
    free_at: dict[tuple[str, int], datetime] = {}
    tx_rows = []
    cdr_rows = []
    span = (end - start).total_seconds()
    starts = sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(args.sessions))
    tx_id = 0
    for begin in starts:
        cp = chargers[rng.randrange(len(chargers))]
        evse = rng.choice((1, 2))
        key = (cp, evse)
        begin = max(begin, free_at.get(key, begin))
        minutes = rng.randint(20, 240)
        stop = begin + timedelta(minutes=minutes)
        if stop >= end:
            continue
        free_at[key] = stop + timedelta(minutes=3)
        tx_id += 1
        energy = int(minutes / 60 * rng.choice((3700, 7360, 11040)) * 0.8)
        card = f"04{0xA0000000 + rng.randrange(20_000):012X}"
        tx_rows.append(
            (
                tx_id,
                cp,
                "1.6" if int(cp[4:]) % 2 else "2.0.1",
                evse,
                card,
                card,
                db_time(begin),
                0,
                db_time(stop),
                energy,
                energy,
                None if rng.random() > 0.1 else rng.randrange(1, 1 << 30),
                db_time(begin),
                db_time(stop),
            )
        )
        if rng.random() < 0.95:
            excl = round(0.5 + energy / 1000 * 0.39, 2)
            cdr_rows.append(
                (
                    f"CDR{tx_id:09d}",
                    tx_id,
                    cp,
                    db_time(begin),
                    db_time(stop),
                    "EUR",
                    f"{excl:.2f}",
                    f"{excl * 1.21:.2f}",
                    energy,
                    db_time(stop),
                )
            )
        suspended = stop - timedelta(minutes=minutes // 4)
        for status, at in zip(
            STATUSES,
            (
                begin - timedelta(minutes=1),
                begin,
                suspended,
                stop,
                stop + timedelta(minutes=1),
            ),
            strict=True,
        ):
            history.append((cp, evse, status, db_time(at), db_time(at)))
    conn.executemany(
        "INSERT INTO transactions (id, charge_point_id, ocpp_version, evse_id, connector_id,"
        " id_tag, id_tag_key, auth_status, state, start_at, meter_start_wh, stop_at,"
        " meter_stop_wh, energy_wh, stop_reason, billing, remote_start_id, received_at,"
        " updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, 'Accepted', 'completed', ?, ?, ?, ?, ?,"
        " 'Local', 'billed', ?, ?, ?)",
        tx_rows,
    )
    counts["transactions"] = len(tx_rows)
    conn.executemany(
        "INSERT INTO cdrs (id, transaction_id, charge_point_id, start_at, end_at, currency,"
        " total_excl_vat, total_incl_vat, energy_wh, credit, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '{}', ?)",
        cdr_rows,
    )
    counts["cdrs"] = len(cdr_rows)
    # Faults: 2 % of the EVSEs a day, one to five hours each.
    days = args.days
    for day in range(days):
        for cp in chargers:
            for evse in (1, 2):
                if rng.random() < 0.02:
                    at = start + timedelta(days=day, seconds=rng.uniform(0, 86_400))
                    back = at + timedelta(hours=rng.uniform(1, 5))
                    history.append((cp, evse, "Faulted", db_time(at), db_time(at)))
                    history.append((cp, evse, "Available", db_time(back), db_time(back)))
    history.sort(key=lambda row: row[3])
    conn.executemany(
        "INSERT INTO status_history (charge_point_id, evse_id, connector_id, status,"
        " error_code, status_at, received_at) VALUES (?, ?, 1, ?, 'NoError', ?, ?)",
        history,
    )
    counts["status_history"] = len(history)
    # Connectivity: about one drop a day per charger, 2 to 40 minutes.
    drops = []
    for cp in chargers:
        for day in range(days):
            if rng.random() < 0.9:
                at = start + timedelta(days=day, seconds=rng.uniform(0, 86_000))
                back = at + timedelta(minutes=rng.uniform(2, 40))
                drops.append((cp, 0, db_time(at)))
                drops.append((cp, 1, db_time(back)))
    conn.executemany(
        "INSERT INTO connectivity_history (charge_point_id, connected, at) VALUES (?, ?, ?)",
        drops,
    )
    counts["connectivity"] = len(drops)
    # Staff took 20 chargers out of service for a day; 50 maintenance windows.
    commands = []
    for k in range(20):
        cp = chargers[k * 7 % len(chargers)]
        at = start + timedelta(days=rng.uniform(0, days - 2))
        for state, moment in (("inoperative", at), ("operative", at + timedelta(days=1))):
            commands.append(
                (cp, f'{{"evse": null, "state": "{state}"}}', db_time(moment), db_time(moment))
            )
    conn.executemany(
        "INSERT INTO commands (charge_point_id, command, params, source, outcome, status,"
        " created_at, finished_at) VALUES (?, ?, ?, 'cli', 'accepted', 'Accepted', ?, ?)",
        [(cp, AVAILABILITY, params, a, b) for cp, params, a, b in commands],
    )
    conn.executemany(
        "INSERT INTO maintenance_windows (charge_point_id, evse_id, starts_at, ends_at, kind,"
        " reason, created_by, created_at) VALUES (?, NULL, ?, ?, 'planned', 'bench', 'bench', ?)",
        [
            (
                chargers[k * 13 % len(chargers)],
                db_time(at := start + timedelta(days=rng.uniform(0, days - 1))),
                db_time(at + timedelta(hours=4)),
                stamp,
            )
            for k in range(50)
        ],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return counts


async def measure(path: Path, args: argparse.Namespace, end: datetime) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{path}")
    service = StatisticsService(db, lambda: end, StatisticsConfig())
    start = end - timedelta(days=args.days)
    one = Scope(chargers=("STAT00001",))
    queries = [
        ("network by day", lambda: service.figures("network", "day", start, end)),
        ("charger by day", lambda: service.figures("charger", "day", start, end)),
        ("evse by month", lambda: service.figures("evse", "month", start, end)),
        ("network by hour", lambda: service.figures("network", "hour", start, end)),
        ("heat map", lambda: service.heatmap(start, end)),
        ("uptime evse by month", lambda: service.uptime("evse", "month", start, end)),
        ("uptime network by day", lambda: service.uptime("network", "day", start, end)),
        ("one charger by hour", lambda: service.figures("charger", "hour", start, end, one)),
    ]
    try:
        print(f"{'query':26} {'rows':>7} {'best s':>8} {'worst s':>8}")
        for name, query in queries:
            times = []
            rows = 0
            for _ in range(args.repeat):
                began = time.perf_counter()
                report = await query()
                times.append(time.perf_counter() - began)
                rows = len(getattr(report, "rows", None) or getattr(report, "cells", []))
            print(f"{name:26} {rows:>7} {min(times):>8.3f} {max(times):>8.3f}")
    finally:
        await db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/statistics.py", description=__doc__)
    parser.add_argument("--chargers", type=int, default=1_000)
    parser.add_argument("--sessions", type=int, default=150_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database", type=Path, help="database file (seeded when it does not exist; kept)"
    )
    args = parser.parse_args(argv)
    # A fixed end, so that a kept database is measured over the range it was seeded for.
    end = datetime(2026, 12, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="csms-stats-") as tmp:
        path = args.database or Path(tmp) / "stats.db"
        if not path.exists():
            began = time.perf_counter()
            asyncio.run(schema(path))
            counts = seed(path, args, end)
            print(
                f"seeded in {time.perf_counter() - began:.1f} s: "
                + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            )
        asyncio.run(measure(path, args, end))
    return 0


if __name__ == "__main__":
    sys.exit(main())
