"""Fixtures for driving simulated chargers: a fake CSMS per version, a settable clock, and
chargers connected and booted against the fake CSMS."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger

from .fake_csms import FakeCsms

START = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


class FakeClock:
    """Time stands still until a test moves it (`clock.now += timedelta(...)`)."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until `condition()` holds: the charger acts on an answer after the CSMS sent it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def _csms(version: str) -> AsyncIterator[FakeCsms]:
    csms = await FakeCsms(version).start()
    try:
        yield csms
    finally:
        await csms.stop()
    assert csms.problems == []


@pytest.fixture
async def csms16() -> AsyncIterator[FakeCsms]:
    async for csms in _csms("1.6"):
        yield csms


@pytest.fixture
async def csms201() -> AsyncIterator[FakeCsms]:
    async for csms in _csms("2.0.1"):
        yield csms


Connect16 = Callable[..., AbstractAsyncContextManager[V16Charger]]
Connect201 = Callable[..., AbstractAsyncContextManager[V201Charger]]


@pytest.fixture
def charger16(csms16: FakeCsms) -> Connect16:
    """`async with charger16(clock=..., connectors=2) as cp:` a booted 1.6 charger."""

    @asynccontextmanager
    async def connect(
        clock: Callable[[], datetime] | None = None, **options: Any
    ) -> AsyncIterator[V16Charger]:
        opts = ChargerOptions(
            url=csms16.url, charger_id="CP16", seed=1, response_timeout=5, **options
        )
        cp = V16Charger(opts, clock=clock or FakeClock(), rng=random.Random(1))
        cp.step_seconds = 0.01
        await cp.connect()
        try:
            await cp.boot()
            yield cp
        finally:
            await cp.close()

    return connect


@pytest.fixture
def charger201(csms201: FakeCsms) -> Connect201:
    """`async with charger201(clock=..., connectors=2) as cp:` a booted 2.0.1 station."""

    @asynccontextmanager
    async def connect(
        clock: Callable[[], datetime] | None = None, **options: Any
    ) -> AsyncIterator[V201Charger]:
        opts = ChargerOptions(
            url=csms201.url,
            charger_id="CS201",
            version="2.0.1",
            seed=1,
            response_timeout=5,
            **options,
        )
        cp = V201Charger(opts, clock=clock or FakeClock(), rng=random.Random(1))
        cp.step_seconds = 0.01
        await cp.connect()
        try:
            await cp.boot()
            yield cp
        finally:
            await cp.close()

    return connect
