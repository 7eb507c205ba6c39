"""Bounded waits that never lose a cancellation.

On Python 3.11, `asyncio.wait_for` returns the inner result when its caller is cancelled in
the same loop step as the awaited thing completes (CPython gh-86296, fixed in 3.12). A worker
woken at the moment it is stopped then carries on with its loop, and whoever awaits the
cancelled task waits for ever. `asyncio.timeout` delivers the cancellation into the awaited
coroutine itself, so these helpers use it; use them (or `asyncio.timeout`) instead of
`asyncio.wait_for` everywhere.
"""

from __future__ import annotations

import asyncio
import time


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait up to `seconds` (None: for ever) for `event`; True if it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class TimeSlice:
    """Long work on the event loop that hands the loop back every `budget` seconds: a
    background pass over a thousand rows then delays a charger's answer by a slice, not by
    the whole pass (`await breathe()` between items costs a clock read when not due)."""

    def __init__(self, budget: float = 0.002) -> None:
        self.budget = budget
        self._since = time.perf_counter()
        self.yields = 0

    async def breathe(self) -> None:
        if time.perf_counter() - self._since >= self.budget:
            await asyncio.sleep(0)
            self.yields += 1
            self._since = time.perf_counter()
