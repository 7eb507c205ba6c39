"""Fuzz: frames of both versions built from the OCPP schemas and bent by one family of
hostile values, sent to a real server over a real WebSocket. Every CALL gets an answer
that is not InternalError, nothing logs a traceback, and the charger's Heartbeat is
answered afterwards.

Seeded and bounded (FRAMES per version and family, within BUDGET_S): a failure lists
the frames that broke and the seed, so it can be replayed (FUZZ_SEED, FUZZ_FRAMES and
FUZZ_SECONDS override the three).
"""

from __future__ import annotations

import asyncio
import os
import time

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Running
from tests.e2e.fuzz import FAMILIES, Generator
from tests.e2e.logs import captured_logs
from tests.e2e.raw import call, exchange, open_booted

# Another seed, or more frames, by hand: FUZZ_SEED=7 FUZZ_FRAMES=2000 pytest ...
SEED = int(os.environ.get("FUZZ_SEED", "15"))
FRAMES = int(os.environ.get("FUZZ_FRAMES", "200"))
# Per version and family: 12 runs stay under a minute on a slow machine.
BUDGET_S = float(os.environ.get("FUZZ_SECONDS", "4"))


# Timestamps outside datetime's range and absurd readings (multiplier 400, meterStart
# -(2^63 - 1) then a stop, a value of 2^63 - 1 Wh) are the timestamp and reading bounds'
# (README, timebounds): answered with a CALLERROR, or stored without a value and flagged.
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_fuzzed_frames_never_break_the_server(
    server: Running, version: str, family: str
) -> None:
    ws = await open_booted(server.url, f"FUZZ-{version}-{family}", version)
    generator = Generator(version, family, SEED)
    broken: list[str] = []
    sent = 0
    deadline = time.monotonic() + BUDGET_S
    with captured_logs() as logs:
        while sent < FRAMES and time.monotonic() < deadline:
            frame = generator.frame()
            sent += 1
            try:
                reply = await exchange(ws, frame.text, timeout=10)
            except (ConnectionClosed, TimeoutError) as exc:
                broken.append(f"{frame.action} {frame.what}: no answer ({exc!r})")
                break
            generator.learn(frame.action, reply)
            if not isinstance(reply, list) or reply[0] not in (3, 4):
                broken.append(f"{frame.action} {frame.what}: answered {reply!r}"[:300])
            elif reply[0] == 4 and reply[2] == "InternalError":
                broken.append(f"{frame.action} {frame.what}: InternalError")
        heartbeat = await asyncio.wait_for(call(ws, "Heartbeat", {}), 10)
    await ws.close()
    where = f"seed {SEED}, {version}, {family}, {sent} frames"
    assert broken == [], f"{where}:\n" + "\n".join(broken)
    assert logs.tracebacks() == [], f"{where}:\n" + "\n".join(logs.tracebacks())[:5000]
    assert heartbeat[0] == 3 and "currentTime" in heartbeat[2]
    assert sent >= 20, f"{where}: too few frames in {BUDGET_S} s"
    assert orjson.loads(orjson.dumps(heartbeat))  # the answer is plain JSON
