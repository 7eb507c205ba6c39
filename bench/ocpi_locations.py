"""OCPI locations benchmark: a registered partner pages through GET /ocpi/2.2.1/locations
(pages of 100) over 10,000 published locations with 2 EVSEs each.

    python bench/ocpi_locations.py [--locations 10000] [--clients 4] [--duration 10]
                                   [--keep DIR] [--json]

Seeds a fresh SQLite file through the real services (locations imported, chargers linked
with two EVSEs each, the location publisher's full pass, a registered partner), then starts
`csms serve --only ocpi` on it in a child process and measures from this one:

1. a cold walk of every page (following Link, as a partner does; the server renders);
2. `--clients` concurrent partners asking for random pages for `--duration` seconds:
   pages per second and latency percentiles;
3. page 1 against page 100, alternately, one request at a time: the cost of a deep offset.

Targets (issue 7): >= 500 pages/s, p99 < 50 ms, page 100 no more than twice page 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

CONFIG = """\
[database]
url = "sqlite+aiosqlite:///{db}"
[ocpi]
host = "127.0.0.1"
port = {port}
base_url = ""
[log]
level = "warning"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def seed(db_path: Path, count: int) -> tuple[str, dict[str, float]]:
    """Locations, chargers and a registered partner; returns the partner's token."""
    from csms.core.clock import utc_now
    from csms.core.parties import Party
    from csms.core.partners import (
        Direction,
        PartyRole,
        Registration,
        Role,
        TokenEncoding,
        new_token,
    )
    from csms.services.locations import LocationService
    from csms.services.partners import PartnerService
    from csms.storage.database import Database
    from csms.storage.migrate import upgrade
    from ocpi_cpo.locations_publisher import Identity, LocationPublisher

    db = Database.from_url(f"sqlite+aiosqlite:///{db_path}")
    await upgrade(db.engine)
    db.start()
    figures: dict[str, float] = {}
    try:
        document = [
            {
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
            for n in range(count)
        ]
        started = time.perf_counter()
        await LocationService(db, utc_now).import_document(document, ours=Party("NL", "CSM"))
        figures["import_s"] = time.perf_counter() - started
        publisher = LocationPublisher(
            db, utc_now, Identity("NL", "CSM", "Bench CPO"), grace=timedelta(minutes=5)
        )
        started = time.perf_counter()
        changed = await publisher.publish(full=True)
        figures["full_publish_s"] = time.perf_counter() - started
        figures["evses_published"] = changed
        partners = PartnerService(db, utc_now)
        invitation = await partners.add("bench")
        caller = await partners.authenticate([(invitation.token_a, TokenEncoding.BASE64)])
        assert caller is not None
        token = new_token()
        await partners.complete(
            caller,
            Registration(
                direction=Direction.INBOUND,
                roles=(PartyRole(Role.EMSP, "DE", "BEN", {"name": "Bench eMSP"}),),
                endpoints=(),
                versions_url="http://127.0.0.1:9/ocpi/versions",
                version="2.2.1",
                their_token=new_token(),
                our_token=token,
                token_encoding=TokenEncoding.BASE64,
            ),
        )
        return token, figures
    finally:
        await db.close()


def headers(token: str) -> dict[str, str]:
    return {
        "Authorization": "Token " + base64.b64encode(token.encode()).decode(),
        "X-Request-ID": str(uuid.uuid4()),
        "X-Correlation-ID": str(uuid.uuid4()),
    }


async def get(session: aiohttp.ClientSession, url: str, token: str) -> tuple[float, Any, str]:
    started = time.perf_counter()
    async with session.get(url, headers=headers(token)) as response:
        raw = await response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"GET {url}: HTTP {response.status}: {raw[:200]!r}")
        return elapsed, orjson.loads(raw), response.headers.get("Link", "")


async def measure(
    base: str, token: str, count: int, clients: int, duration: float
) -> dict[str, Any]:
    url = f"{base}/ocpi/2.2.1/locations"
    pages = (count + 99) // 100
    out: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=clients * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        # 1. Cold walk, following Link.
        walk: list[float] = []
        seen = 0
        next_url: str | None = url + "?limit=100"
        while next_url:
            elapsed, body, link = await get(session, next_url, token)
            walk.append(elapsed)
            seen += len(body["data"])
            next_url = link[1:].split(">", 1)[0] if link else None
        if seen != count:
            raise SystemExit(f"walk saw {seen} locations, expected {count}")
        out["cold_walk_pages"] = len(walk)
        out["cold_walk_p50_ms"] = statistics.median(walk) * 1000
        out["cold_walk_p99_ms"] = percentile(walk, 0.99) * 1000

        # 2. Concurrent random pages.
        latencies: list[float] = []
        deadline = time.perf_counter() + duration
        rng = random.Random(7)

        async def client() -> None:
            while time.perf_counter() < deadline:
                page = rng.randrange(pages)
                elapsed, body, _ = await get(session, f"{url}?offset={page * 100}&limit=100", token)
                assert len(body["data"]) == min(100, count - page * 100)
                latencies.append(elapsed)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
        out["clients"] = clients
        out["requests"] = len(latencies)
        out["pages_per_s"] = len(latencies) / wall
        out["p50_ms"] = statistics.median(latencies) * 1000
        out["p99_ms"] = percentile(latencies, 0.99) * 1000

        # 3. Page 1 against the last page, alternately, one at a time.
        first: list[float] = []
        last: list[float] = []
        last_offset = (pages - 1) * 100
        for _ in range(200):
            first.append((await get(session, f"{url}?offset=0&limit=100", token))[0])
            last.append((await get(session, f"{url}?offset={last_offset}&limit=100", token))[0])
        out["page_1_ms"] = statistics.median(first) * 1000
        out[f"page_{pages}_ms"] = statistics.median(last) * 1000
        out["deep_page_ratio"] = statistics.median(last) / statistics.median(first)
    return out


def csms_command() -> list[str]:
    beside = Path(sys.executable).with_name("csms")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("csms")
    if found is None:
        raise SystemExit("the csms command is not installed (pip install -e .)")
    return [found]


async def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not start in time")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--keep",
        type=Path,
        help="seed into DIR once and reuse it on later runs (seeding 10,000 "
        "locations through the services takes minutes)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="csms-bench-ocpi-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        db_path = workdir / "csms.db"
        token_file = workdir / "token"
        if args.keep and token_file.exists():
            token, figures = (
                token_file.read_text(),
                {"import_s": 0.0, "full_publish_s": 0.0, "evses_published": 0},
            )
        else:
            db_path.unlink(missing_ok=True)
            token, figures = await seed(db_path, args.locations)
            token_file.write_text(token)
        port = free_port()
        config = workdir / "csms.toml"
        config.write_text(CONFIG.format(db=db_path, port=port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        log = (workdir / "server.log").open("wb")
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
            [*csms_command(), "serve", "--config", str(config), "--only", "ocpi"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
        try:
            await wait_for_port(port, proc)
            figures |= await measure(
                f"http://127.0.0.1:{port}", token, args.locations, args.clients, args.duration
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(orjson.dumps(figures).decode())
        return
    print(
        f"seed: {args.locations} locations imported in {figures['import_s']:.1f} s, "
        f"{int(figures['evses_published'])} EVSEs published in {figures['full_publish_s']:.1f} s"
    )
    print(
        f"cold walk: {figures['cold_walk_pages']} pages, p50 {figures['cold_walk_p50_ms']:.1f} ms, "
        f"p99 {figures['cold_walk_p99_ms']:.1f} ms"
    )
    print(
        f"{figures['clients']} clients, {figures['requests']} pages: "
        f"{figures['pages_per_s']:.0f} pages/s, p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms  (target >= 500 pages/s, p99 < 50 ms)"
    )
    last = next(k for k in figures if k.startswith("page_") and k != "page_1_ms")
    print(
        f"page 1: {figures['page_1_ms']:.1f} ms, {last[:-3].replace('_', ' ')}: "
        f"{figures[last]:.1f} ms, ratio {figures['deep_page_ratio']:.2f}  (target <= 2)"
    )


if __name__ == "__main__":
    asyncio.run(main())
