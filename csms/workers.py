"""Background work in one shape: tasks held until they end (`TaskSet`) and loops over stored
work (`Worker`: wake event, period, error boundary with back-off, clean cancellation).

asyncio keeps only a weak reference to a task: one nobody holds may be collected before it
ends, and the exception of one nobody awaits is lost. Every background task of the system
is therefore owned here until it ends, and its failure is logged. Nothing here knows what
the work is; what a pass does and how it backs off per stored item is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

from csms.core.retries import Backoff
from csms.core.waiting import wait_event

T = TypeVar("T")

log = structlog.get_logger("csms.workers")

# A pass that raised is followed by this back-off (1 s, 2 s, 4 s ... at most a minute), so a
# broken database or a bug is neither hammered nor hidden.
FAILED_PASS = Backoff(first=1.0, cap=60.0)

# One pass over stored work; returns how long the loop may wait before the next pass at
# most (None: the worker's period).
Step = Callable[[], Awaitable[float | None]]


class TaskSet:
    """Tasks kept referenced until they end; an exception a task ends with is logged with
    its name (never lost). `close()` cancels what still runs and waits for it."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task_failed", owner=self.owner, task=task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class Worker:
    """A loop over stored work, run as one task from `start()` (or `running()`, for an
    aiohttp cleanup_ctx) until `stop()`.

    Each pass calls `step`. The next pass comes when `wake()` is called (a producer in this
    process committed work), after the delay the pass returned, or after `period` seconds
    at the latest (work stored by other processes); `min_gap` seconds at least separate two
    passes, so that a burst of wakes makes one pass. A pass that raises is logged
    (`worker_failed`) and the next one waits out `backoff`, wakes notwithstanding. The first
    pass comes at once, or `first_after` seconds later (or at a wake before).
    """

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        period: float,
        min_gap: float = 0.0,
        backoff: Backoff = FAILED_PASS,
        first_after: float = 0.0,
    ) -> None:
        if not period > 0:
            raise ValueError(f"a worker's period must be positive, not {period!r}")
        self.name = name
        self.period = period
        self.min_gap = min_gap
        self.first_after = first_after
        self._step = step
        self._backoff = backoff
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Passes that failed in a row (0 after a pass that did not).
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """The loop itself, until cancelled."""
        if self.first_after > 0:
            await wait_event(self._wake, self.first_after)
        while True:
            self._wake.clear()
            try:
                delay = await self._step()
            except Exception:  # the loop's boundary: the next pass tries again
                self.failures += 1
                pause = self._backoff.delay(self.failures)
                log.exception(
                    "worker_failed", worker=self.name, failures=self.failures, retry_in_s=pause
                )
                await asyncio.sleep(pause)
                continue
            self.failures = 0
            if self.min_gap > 0:
                await asyncio.sleep(self.min_gap)
            wait = self.period if delay is None else max(0.0, min(delay, self.period))
            await wait_event(self._wake, wait)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)
            self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        # run() only ends by cancellation; anything else (a BaseException) is a bug to see.
        log.error("worker_ended", worker=self.name, exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel the loop (a pass under way is interrupted; stored work stays stored) and
        wait until it has ended."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # asyncio.wait neither raises what the task ended with (logged by _ended) nor
        # cancels it again if this caller is cancelled meanwhile.
        await asyncio.wait([task])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            await self.stop()


RunningFactory = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


class _Hosted:
    """One piece of singleton work: how to run it (a `running()` context) and, while it
    runs, the exit stack that stops it."""

    def __init__(self, name: str, running: RunningFactory) -> None:
        self.name = name
        self._running = running
        self._stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(self._running())
        self._stack = stack

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


class Singletons:
    """Work whose double run would duplicate effects (a CDR made twice, a push sent twice):
    it runs only while this process leads its `group`, which whoever decides leadership
    (one process on a SQLite file, a PostgreSQL advisory lock among nodes) says with
    `lead()` and `follow()`.

    Work joins with `hosting(name, running)` for as long as its owner runs (an aiohttp
    cleanup_ctx, the app's exit stack): `running()` is entered at once if this process
    leads, else when it comes to lead, and left when it stops leading or the owner leaves.
    A new instance follows until told to lead (`leading=True`: leads from the start, for a
    process alone on its database); `on_change` hooks hear every change."""

    def __init__(self, group: str, *, leading: bool = False) -> None:
        self.group = group
        self.leading = leading
        self._hosted: list[_Hosted] = []
        # Called with True when this process comes to lead, False when it stops.
        self.on_change: list[Callable[[bool], None]] = []

    @property
    def names(self) -> list[str]:
        return [h.name for h in self._hosted]

    @contextlib.asynccontextmanager
    async def hosting(self, name: str, running: RunningFactory) -> AsyncIterator[None]:
        hosted = _Hosted(name, running)
        self._hosted.append(hosted)
        try:
            if self.leading:
                await hosted.start()
            yield
        finally:
            self._hosted.remove(hosted)
            await hosted.stop()

    async def lead(self) -> None:
        """Start every hosted work (those that join later start as they join)."""
        if self.leading:
            return
        self.leading = True
        for hook in self.on_change:
            hook(True)
        for hosted in list(self._hosted):
            await hosted.start()

    async def follow(self) -> None:
        """Stop every hosted work (passes under way are cancelled; stored work stays)."""
        if not self.leading:
            return
        self.leading = False
        for hook in self.on_change:
            hook(False)
        for hosted in reversed(list(self._hosted)):
            try:
                await hosted.stop()
            except Exception:  # one that fails to stop does not keep the others running
                log.exception("singleton_stop_failed", group=self.group, work=hosted.name)
