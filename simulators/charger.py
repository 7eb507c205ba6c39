"""`ChargerBase`: what every simulated charger does whatever its OCPP version: the connection
over time, boot and heartbeat state, owned tasks, step reports, the station model and its clock.

No message of any OCPP version is built here; `V16Charger` and `V201Charger` build theirs.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from simulators.clock import Clock, wire_time
from simulators.errors import NotConnectedError, OptionsError, SimulatorError
from simulators.events import Sink, Step, StepKind, Tally
from simulators.link import CallHandler, Dialect, Link, open_link
from simulators.offline import Delivery
from simulators.options import ChargerOptions
from simulators.station import Reading, Station

__all__ = ["ChargerBase", "Timestamp"]

log = logging.getLogger(__name__)

#: A moment as given to message methods: aware datetime, wire text as is, or None for now.
Timestamp = datetime | str | None


class ChargerBase(abc.ABC):
    """Connection, tasks and bookkeeping shared by the chargers of every OCPP version.

    A subclass names its `dialect`, sets `_requests` (its answers to CSMS CALLs) in its
    constructor, and provides `boot()`, `flush()` and the HeartbeatInterval it keeps.
    """

    dialect: ClassVar[Dialect]
    _requests: CallHandler

    def __init__(
        self,
        options: ChargerOptions,
        *,
        sink: Sink,
        clock: Clock,
        rng: random.Random | None,
    ) -> None:
        if options.version != self.dialect.version:
            raise OptionsError(
                f"{type(self).__name__} plays OCPP {self.dialect.version}, not {options.version}"
            )
        self.options = options
        self.id = options.charger_id
        self.tally = Tally()
        self.station = Station(
            options.connectors,
            rng if rng is not None else random.Random(options.seed),
            rated_current_a=options.rated_current_a,
        )
        self._jitter = random.Random(None if options.seed is None else options.seed + 1)
        self.boot_status: str | None = None
        self._sink = sink
        self._clock = clock
        self._last_advance = clock()
        self._link: Link | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._online = asyncio.Event()
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        self._ready = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()

    # -- what each version provides -----------------------------------------------------

    @abc.abstractmethod
    async def boot(self) -> dict[str, Any]:
        """BootNotification; an answer is passed to `_booted_with()`."""

    @abc.abstractmethod
    async def flush(self) -> list[Delivery]:
        """Send the messages queued while offline."""

    @property
    @abc.abstractmethod
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats (0: none)."""

    @abc.abstractmethod
    def _set_heartbeat_interval(self, seconds: int) -> None:
        """Record the interval an accepted BootNotification asked for."""

    # -- connection ---------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._link is not None and not self._link.closed

    @property
    def booted(self) -> bool:
        """True once a BootNotification was accepted (until a reset)."""
        return self._booted.is_set()

    async def connect(self) -> None:
        """Open the websocket; raises `ConnectError` with a one-line reason."""
        if self.online:
            return
        link = await open_link(
            self.dialect,
            self.options.endpoint,
            self.id,
            self.options.password,
            self._requests,
            self.spawn,
            response_timeout=self.options.response_timeout,
        )
        self._link = link
        self._lost.clear()
        self._reader = asyncio.create_task(self._read(link), name=f"{self.id} reader")
        self._online.set()
        self.report(StepKind.CONNECTED, f"connected to {self.options.endpoint}")

    async def close(self) -> None:
        """Stop everything this charger runs and close the websocket."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        was_online = self.online
        await self.disconnect()
        if was_online:
            self.report(StepKind.DISCONNECTED, "disconnected")

    async def go_offline(self) -> None:
        """Lose the connection on purpose; transaction messages are queued until `reconnect()`."""
        await self.disconnect()
        self.report(StepKind.DISCONNECTED, "offline: transaction messages are queued")

    async def disconnect(self) -> None:
        """Close the websocket on purpose; tasks keep running and no reconnect follows."""
        link, reader = self._link, self._reader
        self._link, self._reader = None, None
        self._online.clear()
        if link is not None:
            await link.close()
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.gather(reader, return_exceptions=True)

    async def reconnect(self, *, boot: bool = False) -> list[Delivery]:
        """Connect again (optionally boot) and send the queued messages in order."""
        await self.connect()
        if boot:
            await self.boot()
        return await self.flush()

    async def wait_online(self) -> None:
        await self._online.wait()

    async def wait_lost(self) -> None:
        """Wait until the connection drops without us closing it."""
        await self._lost.wait()

    async def wait_booted(self, seconds: float | None = None) -> bool:
        """Wait up to `seconds` for an accepted boot; True if there is one."""
        try:
            await asyncio.wait_for(self._booted.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def set_ready(self) -> None:
        """Booted and connectors announced: the script may start sessions."""
        self._ready.set()

    async def wait_ready(self) -> None:
        """Wait until connected, booted and announced (see `set_ready`)."""
        while not (self.online and self._ready.is_set()):
            await self._online.wait()
            await self._ready.wait()

    def forget_boot(self) -> None:
        """A reboot is under way: the next BootNotification must be accepted again."""
        self._booted.clear()
        self._ready.clear()
        self.boot_status = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- messages of every version ------------------------------------------------------

    async def call(
        self, action: str, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        """Any charger-initiated action with a camelCase payload; never queued.

        `validate=False` skips the schema check of the request and the answer."""
        return await self._call(action, payload, validate=validate)

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call("Heartbeat", {})

    async def send_raw(self, text: str, timeout: float = 5.0) -> str | None:  # noqa: ASYNC109
        """Send any text frame on the socket; return the reply frame as received, or None
        when nothing came within `timeout`. Raises `NotConnectedError` if the CSMS closes."""
        link = self._link
        if link is None or link.closed:
            raise NotConnectedError(f"{self.id} is not connected")
        return await link.send_raw(text, timeout)

    # -- station ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The charger's clock (timezone-aware UTC)."""
        return self._clock()

    def reading(self, connector_id: int) -> Reading:
        """The meter of a connector now (time since the last look is counted first)."""
        self._advance()
        return self.station.reading(connector_id)

    def heartbeat_changed(self) -> None:
        self._heartbeat_changed.set()

    async def wait_heartbeat_change(self, seconds: float | None) -> bool:
        """Wait `seconds` (None: forever); True if HeartbeatInterval changed meanwhile."""
        try:
            await asyncio.wait_for(self._heartbeat_changed.wait(), seconds)
        except TimeoutError:
            return False
        self._heartbeat_changed.clear()
        return True

    # -- tasks and reporting ------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], name: str | None = None) -> asyncio.Task[None]:
        """Run a coroutine as a task owned by this charger; `close()` cancels it."""
        task = asyncio.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def jittered(self, seconds: float) -> float:
        """`seconds` give or take 20 %, so that many chargers do not retry in lockstep."""
        return seconds * self._jitter.uniform(0.8, 1.2)

    def report(self, kind: StepKind, text: str) -> None:
        step = Step(self.id, kind, text)
        self.tally.count(step)
        self._sink(step)

    # -- internals ----------------------------------------------------------------------

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except NotConnectedError:
            pass
        except SimulatorError as exc:
            self.report(StepKind.ERROR, str(exc))
        except Exception:  # task boundary: report and keep the charger alive
            log.exception("%s: background task failed", self.id)
            self.report(StepKind.ERROR, "internal error in a background task (see log)")

    async def _read(self, link: Link) -> None:
        try:
            await link.serve()
        except Exception:  # task boundary
            log.exception("%s: reading from the CSMS failed", self.id)
            with contextlib.suppress(Exception):
                await link.close()
        finally:
            if self._link is link:  # not closed by us: the connection was lost
                self._link = None
                self._online.clear()
                self._lost.set()
                self.report(StepKind.DISCONNECTED, "connection lost")

    async def _call(
        self, action: str, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        link = self._link
        if link is None or link.closed:
            raise NotConnectedError(f"{self.id} is not connected")
        return await link.call(action, payload, validate=validate)

    def _booted_with(self, answer: Mapping[str, Any]) -> None:
        status = str(answer.get("status"))
        interval = int(answer.get("interval", 0))
        self.boot_status = status
        if status == "Accepted":
            if interval > 0:
                self._set_heartbeat_interval(interval)
                self._heartbeat_changed.set()
            self._booted.set()
            self.report(StepKind.BOOT_ACCEPTED, f"boot Accepted heartbeat={interval}s")
        else:
            self.report(StepKind.BOOT_REFUSED, f"boot {status} interval={interval}s")

    def _advance(self) -> None:
        now = self._clock()
        seconds = (now - self._last_advance).total_seconds()
        if seconds > 0:
            self.station.advance(seconds)
            self._last_advance = now

    def _stamp(self, timestamp: Timestamp) -> str:
        if isinstance(timestamp, str):
            return timestamp
        return wire_time(timestamp if timestamp is not None else self._clock())
