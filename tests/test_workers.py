"""Background work in one shape: a TaskSet keeps its tasks until they end and logs what
they fail with; a Worker runs passes when woken or at its period, backs off after a failed
pass, and stops cleanly; the garbage-collector policy is one. SIGTERM and SIGINT set the
stop event."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator

from structlog.testing import capture_logs

from csms.core.retries import Backoff
from csms.gcpolicy import gc_policy
from csms.signals import SIGNALS, stop_on_signals
from csms.workers import Singletons, TaskSet, Worker


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


async def test_a_first_pass_may_wait_its_time() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    began = loop.time()

    async def step() -> None:
        times.append(loop.time() - began)

    worker = Worker("late", step, period=60.0, first_after=0.2)
    async with worker.running():
        await asyncio.sleep(0.1)
        assert times == []  # not yet
        for _ in range(100):
            if times:
                break
            await asyncio.sleep(0.02)
    assert len(times) == 1 and 0.2 <= times[0] < 2.0


async def test_the_gc_policy_freezes_at_once_and_at_its_period() -> None:
    gc.unfreeze()
    worker = gc_policy(freeze_every=0.05, full_every=3600.0)
    try:
        async with worker.running():
            await asyncio.sleep(0.01)
            assert gc.get_freeze_count() > 0  # the first pass came at once
            gc.unfreeze()
            await asyncio.sleep(0.2)
            assert gc.get_freeze_count() > 0  # and again a period later
    finally:
        gc.unfreeze()


async def test_signals_set_the_stop_event() -> None:
    stop = stop_on_signals()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(stop.wait(), 5)
    stop.clear()
    os.kill(os.getpid(), signal.SIGINT)  # again: a server's handler stays
    await asyncio.wait_for(stop.wait(), 5)
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.remove_signal_handler(sig)


async def test_once_a_second_signal_is_not_caught() -> None:
    loop = asyncio.get_running_loop()
    stop = stop_on_signals(once=True)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(stop.wait(), 5)
    assert not loop.remove_signal_handler(signal.SIGTERM)  # gone: the next one interrupts
    assert loop.remove_signal_handler(signal.SIGINT)  # not fired yet: still there


class _Work:
    """A piece of singleton work that records when it runs."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.log.append(f"start {self.name}")
        try:
            yield
        finally:
            self.log.append(f"stop {self.name}")


async def test_singleton_work_runs_only_while_its_process_leads() -> None:
    log: list[str] = []
    group = Singletons("ocpi")
    changes: list[bool] = []
    group.on_change.append(changes.append)
    push, publish = _Work(log, "push"), _Work(log, "publish")
    async with group.hosting("push", push.running):
        assert log == []  # a follower runs nothing
        await group.lead()
        assert log == ["start push"]
        async with group.hosting("publish", publish.running):
            assert log == ["start push", "start publish"]  # joining a leader: at once
            await group.follow()
            assert log[2:] == ["stop publish", "stop push"]  # last started, first stopped
            await group.lead()
            await group.lead()  # leading already: nothing more starts
            assert log[4:] == ["start push", "start publish"]
        assert log[6:] == ["stop publish"]  # its owner left: it stops
        assert group.names == ["push"]
    assert log[7:] == ["stop push"]
    assert changes == [True, False, True]


async def test_a_process_alone_on_its_database_leads_from_the_start() -> None:
    log: list[str] = []
    group = Singletons("ocpi", leading=True)
    async with group.hosting("push", _Work(log, "push").running):
        assert log == ["start push"]
    assert log == ["start push", "stop push"]
