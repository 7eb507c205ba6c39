"""Password guessing at one charger id over real WebSockets: how many wrong guesses the
CSMS answers a second and how many of them were refused with 429 (back-off, no hashing).

A CSMS on 127.0.0.1 with a temporary SQLite file, in this process; `--clients` guessers
send `--guesses` wrong passwords in all, then the right password is tried after the
back-off. Before the abuse limits (issue 18) every guess was answered 401 after a
PBKDF2 check: 71 guesses/s, 14 ms of hashing each. Prints figures; asserts nothing.

    .venv/bin/python bench/auth_guess.py [--guesses 1000] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from csms.app import CsmsApp
from csms.config import build_config
from csms.core.clock import utc_now
from csms.services.staff import StaffService

CP_ID = "CP-BENCH"
RIGHT = "the-right-password"


async def attempt(url: str, password: str) -> int:
    token = base64.b64encode(f"{CP_ID}:{password}".encode()).decode()
    try:
        ws = await connect(
            f"{url}/{CP_ID}",
            subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers={"Authorization": f"Basic {token}"},
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def run(guesses: int, clients: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="csms-bench-auth-"))
    config = build_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{workdir / 'csms.db'}"},
            "ocpp": {"host": "127.0.0.1", "port": 0, "ping_interval": 0},
            "api": {"host": "127.0.0.1", "port": 0, "token": "bench-token"},
            "ocpi": {"host": "127.0.0.1", "port": 0, "base_url": ""},
        },
        {},
    )
    app = CsmsApp(config, utc_now)
    await app.start()
    try:
        await StaffService(app.db, utc_now).add_charger(CP_ID, password=RIGHT)
        url = f"ws://127.0.0.1:{app.ocpp.port}/ocpp"
        statuses: Counter[int] = Counter()
        sent = iter(range(guesses))

        async def guesser() -> None:
            for n in sent:
                statuses[await attempt(url, f"wrong-{n}")] += 1

        start = time.perf_counter()
        await asyncio.gather(*(guesser() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        wait = max(app.ocpp.failures.wait(f"cp:{CP_ID}"), app.ocpp.failures.wait("addr:127.0.0.1"))
        await asyncio.sleep(wait + 0.05)
        right = await attempt(url, RIGHT)
    finally:
        await app.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{guesses} wrong passwords from {clients} clients in {elapsed:.2f} s: "
        f"{guesses / elapsed:.0f} guesses/s answered"
    )
    print(
        f"  401 (password checked): {statuses[401]}, 429 (back-off, not checked): "
        f"{statuses[429]}, other: {sum(statuses.values()) - statuses[401] - statuses[429]}"
    )
    print(f"  the right password after a {wait:.1f} s wait: HTTP {right}")
    print("  before the limits: 71 guesses/s, every one checked (14 ms of hashing each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(run(args.guesses, args.clients))


if __name__ == "__main__":
    main()
