"""Helpers to drive our charger simulator against the test server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.options import ChargerOptions
from simulators.v16 import V16Charger


@asynccontextmanager
async def charger(
    url: str, cp_id: str, *, boot: bool = True, **options: Any
) -> AsyncIterator[V16Charger]:
    cp = V16Charger(ChargerOptions(url=url, charger_id=cp_id, response_timeout=10, **options))
    await cp.connect()
    try:
        if boot:
            answer = await cp.boot()
            assert answer["status"] == "Accepted", answer
        yield cp
    finally:
        await cp.close()


def ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def register(moment: datetime, wh: int, context: str = "Sample.Periodic") -> dict[str, Any]:
    """A meterValue with the energy register and a power reading."""
    return {
        "timestamp": ts(moment),
        "sampledValue": [
            {
                "value": str(wh),
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
                "context": context,
            },
            {"value": "11000", "measurand": "Power.Active.Import", "unit": "W", "context": context},
        ],
    }


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours)


async def until(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy (returned), failing after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
