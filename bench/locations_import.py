"""Bulk import benchmark: `csms locations import` of 10,000 locations with 2 EVSEs each
(20,000 EVSEs), once from OCPI-style JSON and once from CSV, each as a subprocess on a
fresh SQLite database, then the same file again (a re-import: every location updated).

    python bench/locations_import.py [--locations 10000] [--runs 1] [--keep DIR]

Prints one line per run and format: seconds for the first import and for the re-import,
with the command's own summary line. The time is the whole command (start-up, parsing,
validation, writing), as an operator sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CSV_HEADER = [
    "location_id",
    "name",
    "address",
    "city",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "time_zone",
    "parking_type",
    "facilities",
    "opening_hours",
    "charger_id",
    "evse",
    "evse_id",
    "max_power",
]


def site(n: int) -> dict[str, Any]:
    return {
        "id": f"LOC-{n:05d}",
        "name": f"Bench site {n}",
        "address": f"Benchstraat {n % 999 + 1}",
        "city": "Amsterdam",
        "postal_code": "1011AA",
        "country": "NLD",
        "coordinates": {
            "latitude": f"{52 + n / 100000:.6f}",
            "longitude": f"{4 + n / 100000:.6f}",
        },
        "time_zone": "Europe/Amsterdam",
        "parking_type": "ON_STREET",
        "facilities": ["WIFI"],
        "opening_times": "24/7",
        "chargers": [
            {
                "id": f"BENCH-{n:05d}",
                "connector": {"max_electric_power": 22000},
                "evses": [
                    {"evse": 1, "evse_id": f"NL*CSM*E{n:05d}*1"},
                    {"evse": 2, "evse_id": f"NL*CSM*E{n:05d}*2"},
                ],
            }
        ],
    }


def write_files(directory: Path, count: int) -> tuple[Path, Path]:
    sites = [site(n) for n in range(count)]
    as_json = directory / "locations.json"
    as_json.write_text(json.dumps(sites, indent=1))
    as_csv = directory / "locations.csv"
    with as_csv.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_HEADER)
        for s in sites:
            charger = s["chargers"][0]
            for evse in charger["evses"]:
                out.writerow(
                    [
                        s["id"],
                        s["name"],
                        s["address"],
                        s["city"],
                        s["postal_code"],
                        s["country"],
                        s["coordinates"]["latitude"],
                        s["coordinates"]["longitude"],
                        s["time_zone"],
                        s["parking_type"],
                        ",".join(s["facilities"]),
                        s["opening_times"],
                        charger["id"],
                        evse["evse"],
                        evse["evse_id"],
                        charger["connector"]["max_electric_power"],
                    ]
                )
    return as_json, as_csv


def csms_command() -> list[str]:
    beside = Path(sys.executable).with_name("csms")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("csms")
    if found is None:
        raise SystemExit("the csms command is not installed (pip install -e .)")
    return [found]


def fresh_database(path: Path) -> str:
    from csms.storage.database import Database
    from csms.storage.migrate import upgrade

    url = f"sqlite+aiosqlite:///{path}"

    async def make() -> None:
        db = Database.from_url(url)
        await upgrade(db.engine)
        await db.engine.dispose()

    asyncio.run(make())
    return url


def timed_import(url: str, file: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env["CSMS_DATABASE_URL"] = url
    started = time.perf_counter()
    ran = subprocess.run(
        [*csms_command(), "locations", "import", str(file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if ran.returncode != 0:
        raise SystemExit(f"import of {file} failed: {ran.stderr}")
    return took, ran.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="Leave the files and databases here.")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-import-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        files = write_files(directory, args.locations)
        print(f"{args.locations} locations, {2 * args.locations} EVSEs")
        for run in range(1, args.runs + 1):
            for file in files:
                db_path = directory / f"{file.suffix.lstrip('.')}-{run}.db"
                db_path.unlink(missing_ok=True)
                url = fresh_database(db_path)
                first, said = timed_import(url, file)
                again, said_again = timed_import(url, file)
                print(
                    f"run {run} {file.suffix.lstrip('.'):4} import {first:5.1f} s ({said}); "
                    f"re-import {again:5.1f} s ({said_again})"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(directory)


if __name__ == "__main__":
    main()
