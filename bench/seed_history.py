"""Seed a database with an operating history, for `bench/load.py sessions --database FILE`:
does a start cost more once many transactions were made?

    python bench/seed_history.py OUT.db [--finished 100000] [--open 10000] [--chargers 2000]
                                        [--readings 10] [--cards 20000]

Builds the schema with the project's migrations, then writes with plain sqlite3 in one
transaction (a few seconds per 100,000 transactions):

- `--chargers` chargers HIST00001... (half 1.6, half 2.0.1), none of which the load
  generator uses;
- `--finished` completed, billed transactions spread over the last 90 days, each with
  `--readings` meter readings (seven sampled values, as the generator sends) and, for 2.0.1,
  its Started, Updated and Ended events;
- `--open` running transactions on those chargers (one per EVSE), accepted, half with the
  generator's shared card (bench/load.py --shared-card) and half with personal cards, each
  with its readings so far;
- `--cards` personal cards in the token table (the shared card is not: load.py --cards
  known adds it).

The figures this serves are in the README (Benchmarks, sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import SHARED_CARD
from csms.storage.database import Database
from csms.storage.migrate import upgrade


def db_time(moment: datetime) -> str:
    """How the models store a timestamp on SQLite (naive UTC text with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def samples(energy_wh: int, context: str, rng: random.Random) -> str:
    """A reading's sampled values as stored (measurand, value, unit, phase, location,
    context, raw value, signed)."""
    power = rng.choice((7360.0, 11040.0, 22080.0))
    amps = round(power / 690.0, 2)
    rows = [
        ["Energy.Active.Import.Register", float(energy_wh), "Wh", None, "Outlet", context,
         str(energy_wh), False],
        ["Power.Active.Import", power, "W", None, "Outlet", context, str(power), False],
        *[["Current.Import", amps, "A", p, "Outlet", context, str(amps), False]
          for p in ("L1", "L2", "L3")],
        ["Voltage", 230.0, "V", "L1-N", "Outlet", context, "230.0", False],
        ["SoC", 55.0, "Percent", None, "EV", context, "55", False],
    ]  # fmt: skip
    return orjson.dumps(rows).decode()


async def schema(path: Path) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(db.engine)
    finally:
        await db.engine.dispose()


def seed(path: Path, args: argparse.Namespace) -> dict[str, int]:
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    chargers = [f"HIST{i:05d}" for i in range(1, args.chargers + 1)]
    stamp = db_time(now)
    conn.executemany(
        "INSERT INTO charge_points (id, registration, ocpp_version, vendor, model, connected,"
        " created_at, updated_at) VALUES (?, 'Accepted', ?, 'Hist', 'H1', 0, ?, ?)",
        [(cp, "1.6" if i % 2 else "2.0.1", stamp, stamp) for i, cp in enumerate(chargers)],
    )
    cards = [f"04{0xA0000000 + i:012X}" for i in range(args.cards)]
    conn.executemany(
        "INSERT INTO id_tokens (uid_key, uid, type, status, origin, max_concurrent,"
        " created_at, updated_at) VALUES (?, ?, 'ISO14443', 'Accepted', 'local', 1, ?, ?)",
        [(c.upper(), c, stamp, stamp) for c in cards],
    )
    counts = {"transactions": 0, "meter_values": 0, "transaction_events": 0}

    def transaction(
        tx_id: int, cp_index: int, card: str, start: datetime, running: bool, evse: int = 1
    ) -> None:
        cp = chargers[cp_index]
        v201 = cp_index % 2 == 0
        minutes = rng.randint(20, 240)
        stop = start + timedelta(minutes=minutes)
        meter_start = rng.randint(100_000, 40_000_000)
        energy = int(minutes / 60 * rng.choice((7360, 11040, 22080)))
        ocpp_id = str(uuid.UUID(int=rng.getrandbits(128))) if v201 else None
        conn.execute(
            "INSERT INTO transactions (id, charge_point_id, ocpp_version, ocpp_transaction_id,"
            " evse_id, connector_id, id_tag, id_tag_key, auth_status, state, start_at,"
            " meter_start_wh, stop_at, meter_stop_wh, energy_wh, stop_reason, billing,"
            " received_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, 'Accepted', ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?)",
            (
                tx_id,
                cp,
                "2.0.1" if v201 else "1.6",
                ocpp_id,
                evse,
                card,
                card.upper(),
                "active" if running else "completed",
                db_time(start),
                meter_start,
                None if running else db_time(stop),
                None if running else meter_start + energy,
                None if running else energy,
                None if running else "Local",
                None if running else "billed",
                db_time(start),
                db_time(start if running else stop),
            ),
        )
        counts["transactions"] += 1
        readings = []
        for k in range(args.readings):
            at = start + timedelta(minutes=minutes * k / max(1, args.readings))
            wh = meter_start + energy * k // max(1, args.readings)
            readings.append(
                (tx_id, cp, evse, db_time(at), float(wh), samples(wh, "Sample.Periodic", rng))
            )
        conn.executemany(
            "INSERT INTO meter_values (transaction_id, charge_point_id, evse_id, connector_id,"
            " timestamp, energy_wh, power_w, samples) VALUES (?, ?, ?, 1, ?, ?, 11040.0, ?)",
            readings,
        )
        counts["meter_values"] += len(readings)
        if v201:
            kinds = [("Started", "Authorized", start), ("Updated", "MeterValuePeriodic", start)]
            if not running:
                kinds.append(("Ended", "StopAuthorized", stop))
            conn.executemany(
                "INSERT INTO transaction_events (transaction_id, charge_point_id,"
                " ocpp_transaction_id, seq_no, event_type, trigger_reason, timestamp, offline,"
                " payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [
                    (
                        tx_id,
                        cp,
                        ocpp_id,
                        seq,
                        kind,
                        trigger,
                        db_time(at),
                        orjson.dumps({"eventType": kind, "seqNo": seq}).decode(),
                        db_time(at),
                    )
                    for seq, (kind, trigger, at) in enumerate(kinds)
                ],
            )
            counts["transaction_events"] += len(kinds)

    tx_id = 0
    for _ in range(args.finished):
        tx_id += 1
        start = now - timedelta(days=rng.uniform(1, 90))
        transaction(tx_id, rng.randrange(len(chargers)), rng.choice(cards), start, False)
    # Running transactions: spread over the chargers, one per EVSE (a charger gets EVSE 2,
    # 3 ... once every charger has one).
    for k in range(args.open):
        tx_id += 1
        card = SHARED_CARD if k % 2 == 0 else cards[k % len(cards)]
        start = now - timedelta(minutes=rng.uniform(1, 180))
        transaction(tx_id, k % len(chargers), card, start, True, 1 + k // len(chargers))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/seed_history.py", description=__doc__)
    parser.add_argument("out", type=Path, help="database file to create")
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--chargers", type=int, default=2_000)
    parser.add_argument("--readings", type=int, default=10, help="per transaction")
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists: give a new file")
    if min(args.finished, args.open, args.readings) < 0 or min(args.chargers, args.cards) < 1:
        parser.error("counts must not be negative (chargers and cards at least 1)")
    started = time.monotonic()
    asyncio.run(schema(args.out))
    counts = seed(args.out, args)
    size = args.out.stat().st_size / 2**20
    print(
        f"{args.out}: {counts['transactions']} transactions ({args.finished} finished, "
        f"{args.open} running), {counts['meter_values']} meter readings, "
        f"{counts['transaction_events']} 2.0.1 events, {args.cards} cards; {size:.0f} MB "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
