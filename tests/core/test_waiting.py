"""A worker woken in the same loop step as it is cancelled still stops: the bounded wait
passes the cancellation on (Python 3.11's `asyncio.wait_for` swallowed it and the worker
carried on, which hung the server's shutdown)."""

from __future__ import annotations

import asyncio
import time

import pytest

from csms.core.waiting import TimeSlice, wait_event


async def test_a_set_event_ends_the_wait() -> None:
    event = asyncio.Event()
    event.set()
    assert await wait_event(event, 5) is True


async def test_the_bound_ends_the_wait() -> None:
    assert await wait_event(asyncio.Event(), 0.01) is False


@pytest.mark.parametrize("steps_between", [0, 1, 2, 3])
async def test_cancel_is_not_lost_when_the_wake_comes_in_the_same_step(
    steps_between: int,
) -> None:
    event = asyncio.Event()
    passes = 0

    async def worker() -> None:
        nonlocal passes
        while True:
            passes += 1
            event.clear()
            await wait_event(event, 60)

    task = asyncio.create_task(worker())
    for _ in range(3):
        await asyncio.sleep(0)
    assert passes == 1
    event.set()
    for _ in range(steps_between):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done, "the worker went on waiting after it was cancelled"
    assert task.cancelled()


async def test_a_time_slice_lets_other_work_run_while_a_long_pass_goes_on() -> None:
    ran: list[int] = []

    async def other() -> None:
        while True:
            ran.append(len(ran))
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    before = len(ran)
    slicer = TimeSlice(budget=0.001)
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:  # 50 ms of busy work, breathing between items
        await slicer.breathe()
    task.cancel()
    # Handed back about every millisecond: the other task ran in between, many times.
    assert slicer.yields >= 20
    assert len(ran) - before >= 20


async def test_a_time_slice_does_not_yield_before_its_budget() -> None:
    slicer = TimeSlice(budget=60)
    for _ in range(1000):
        await slicer.breathe()
    assert slicer.yields == 0
