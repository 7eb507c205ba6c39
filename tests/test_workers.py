"""Background work in one shape: a TaskSet keeps its tasks until they end and logs what
they fail with; a Worker runs passes when woken or at its period, backs off after a failed
pass, and stops cleanly."""

from __future__ import annotations

import asyncio
import gc

from structlog.testing import capture_logs

from csms.core.retries import Backoff
from csms.workers import TaskSet, Worker


async def test_a_task_nobody_else_holds_runs_to_its_end() -> None:
    tasks = TaskSet("test")
    reached = asyncio.Event()
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()
        reached.set()

    tasks.spawn(work(), name="held")
    gc.collect()  # nothing but the set refers to the task
    assert len(tasks) == 1
    release.set()
    await asyncio.wait_for(reached.wait(), 5)
    await asyncio.sleep(0)
    assert len(tasks) == 0


async def test_what_a_task_fails_with_is_logged_with_its_name() -> None:
    tasks = TaskSet("test")

    async def broken() -> None:
        raise RuntimeError("boom")

    with capture_logs() as logs:
        task = tasks.spawn(broken(), name="broken-one")
        await asyncio.wait([task])
        await asyncio.sleep(0)
    (event,) = [e for e in logs if e["event"] == "task_failed"]
    assert event["owner"] == "test" and event["task"] == "broken-one"
    assert isinstance(event["exc_info"], RuntimeError)
    assert len(tasks) == 0


async def test_close_cancels_and_waits() -> None:
    tasks = TaskSet("test")
    task = tasks.spawn(asyncio.sleep(60))
    await tasks.close()
    assert task.cancelled() and len(tasks) == 0


async def test_a_wake_runs_the_next_pass_at_once_and_the_period_bounds_the_wait() -> None:
    passes: list[int] = []
    seen = asyncio.Event()

    async def step() -> None:
        passes.append(len(passes))
        seen.set()

    worker = Worker("test", step, period=60.0)
    async with worker.running():
        await asyncio.wait_for(seen.wait(), 5)
        seen.clear()
        worker.wake()
        await asyncio.wait_for(seen.wait(), 5)
    assert passes == [0, 1]

    fast = Worker("test", step, period=0.01)
    seen.clear()
    async with fast.running():
        for _ in range(3):
            await asyncio.wait_for(seen.wait(), 5)
            seen.clear()


async def test_a_pass_may_ask_for_an_earlier_next_pass() -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def step() -> float:
        seen.append(1)
        if len(seen) == 3:
            done.set()
        return 0.0  # more is due at once

    async with Worker("test", step, period=60.0).running():
        await asyncio.wait_for(done.wait(), 5)


async def test_a_failing_pass_is_logged_and_retried_after_a_back_off() -> None:
    outcomes = iter([RuntimeError("first"), RuntimeError("second"), None])
    succeeded = asyncio.Event()

    async def step() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        succeeded.set()

    worker = Worker("flaky", step, period=60.0, backoff=Backoff(first=0.01, cap=0.02))
    with capture_logs() as logs:
        async with worker.running():
            await asyncio.wait_for(succeeded.wait(), 5)
    failed = [e for e in logs if e["event"] == "worker_failed"]
    assert [(e["worker"], e["failures"], e["retry_in_s"]) for e in failed] == [
        ("flaky", 1, 0.01),
        ("flaky", 2, 0.02),
    ]
    assert failed[0]["log_level"] == "error"
    assert worker.failures == 0


async def test_wakes_do_not_cut_a_back_off_short() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("always")

    worker = Worker("stuck", step, period=60.0, backoff=Backoff(first=60.0, cap=60.0))
    with capture_logs():
        async with worker.running():
            for _ in range(20):
                worker.wake()
                await asyncio.sleep(0)
    assert calls == 1


async def test_stop_ends_a_pass_under_way() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.sleep(60)

    worker = Worker("slow", step, period=1.0)
    worker.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(worker.stop(), 5)
    await worker.stop()  # a second stop is harmless
