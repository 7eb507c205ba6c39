"""The scripted life of a simulated charger of any OCPP version: connect, boot until Accepted,
announce, sessions, heartbeats, reconnects and reboots.

Only the charger's methods and the version's `Play` hooks are used; no frames are built here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from simulators.errors import ConnectError, NotConnectedError, SimulatorError
from simulators.events import StepKind, Summary, Tally
from simulators.offline import Delivery
from simulators.options import ChargerOptions

__all__ = [
    "Play",
    "Scripted",
    "boot_until_accepted",
    "connect_with_backoff",
    "heartbeat_loop",
    "keep_connected",
    "reboot",
    "run_script",
]

MAX_BACKOFF_SECONDS = 60.0
REBOOT_PAUSE_SECONDS = 0.5
#: How long stopping the open transactions may take when the charger shuts down.
WIND_DOWN_SECONDS = 5.0


class Scripted(Protocol):
    """What the script asks of a charger of any version (simulators.charger.ChargerBase
    gives it all): its connection, boot, heartbeat, tasks and report."""

    @property
    def id(self) -> str: ...
    @property
    def options(self) -> ChargerOptions: ...
    @property
    def tally(self) -> Tally: ...
    @property
    def online(self) -> bool: ...
    @property
    def booted(self) -> bool: ...
    @property
    def heartbeat_interval(self) -> float: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_online(self) -> None: ...

    async def wait_lost(self) -> None: ...

    async def boot(self) -> dict[str, Any]: ...

    async def wait_booted(self, seconds: float | None = None) -> bool: ...

    def forget_boot(self) -> None: ...

    def set_ready(self) -> None: ...

    async def heartbeat(self) -> dict[str, Any]: ...

    async def wait_heartbeat_change(self, seconds: float | None) -> bool: ...

    async def flush(self) -> list[Delivery]: ...

    def jittered(self, seconds: float) -> float: ...

    def spawn(
        self, coro: Coroutine[Any, Any, None], name: str | None = None
    ) -> asyncio.Task[None]: ...

    def report(self, kind: StepKind, text: str) -> None: ...


C = TypeVar("C", bound=Scripted)


@dataclass(frozen=True, slots=True)
class Play(Generic[C]):
    """The version-specific steps of the script."""

    #: Report the status of the station and every connector or EVSE.
    announce: Callable[[C], Awaitable[None]]
    #: Play the scripted sessions (`options.sessions` of them).
    sessions: Callable[[C], Awaitable[None]]
    #: Stop running sessions and open transactions with a reason, within some seconds.
    wind_down: Callable[[C, str, float], Awaitable[None]]
    #: The reason a shut-down charger gives when it stops its transactions.
    shutdown_reason: str


async def run_script(cp: C, play: Play[C]) -> Summary:
    """Connect, boot until Accepted, announce, play the sessions, then keep heartbeating and
    answering the CSMS until cancelled (or return if `exit_when_done`).

    The first connection failing raises `ConnectError`; later drops are retried with backoff.
    """
    await cp.connect()
    try:
        cp.spawn(keep_connected(cp, play), name=f"{cp.id} reconnect")
        await boot_until_accepted(cp)
        await play.announce(cp)
        cp.set_ready()
        cp.spawn(heartbeat_loop(cp), name=f"{cp.id} heartbeat")
        await play.sessions(cp)
        if cp.options.exit_when_done:
            cp.report(StepKind.INFO, "all sessions done, exiting")
            return cp.tally.summary()
        cp.report(
            StepKind.INFO,
            f"done: {cp.options.sessions} session(s); staying connected for the CSMS "
            "(heartbeats, remote commands); Ctrl-C to stop",
        )
        await asyncio.Event().wait()  # serve the CSMS until cancelled
        return cp.tally.summary()
    finally:
        await play.wind_down(cp, play.shutdown_reason, WIND_DOWN_SECONDS)
        await cp.close()


async def boot_until_accepted(cp: Scripted) -> None:
    """Send BootNotification until Accepted, waiting the interval the CSMS asks for.

    While Pending or Rejected nothing else is sent (the CSMS may still trigger a boot)."""
    while True:
        await cp.wait_online()
        delay = cp.options.boot_retry_seconds
        try:
            answer = await cp.boot()
        except NotConnectedError:
            continue
        except SimulatorError as exc:
            cp.report(StepKind.ERROR, f"BootNotification failed: {exc}")
        else:
            if answer.get("status") == "Accepted":
                return
            delay = float(answer.get("interval") or delay)
        if await cp.wait_booted(delay):
            return  # a boot triggered by the CSMS was accepted meanwhile


async def heartbeat_loop(cp: Scripted) -> None:
    """Heartbeat every HeartbeatInterval seconds while connected and booted."""
    while True:
        interval = cp.heartbeat_interval
        if await cp.wait_heartbeat_change(interval if interval > 0 else None):
            continue
        if not (cp.online and cp.booted):
            continue
        try:
            await cp.heartbeat()
        except NotConnectedError:
            continue
        except SimulatorError as exc:
            cp.report(StepKind.ERROR, f"Heartbeat failed: {exc}")
        else:
            cp.report(StepKind.HEARTBEAT_SENT, "heartbeat")


async def connect_with_backoff(cp: Scripted) -> None:
    """Connect with exponential backoff and jitter until it works."""
    delay = 1.0
    while True:
        try:
            await cp.connect()
        except ConnectError as exc:
            cp.report(StepKind.INFO, f"{exc}; retrying in {delay:.0f}s")
        else:
            return
        await asyncio.sleep(cp.jittered(delay))
        delay = min(delay * 2, MAX_BACKOFF_SECONDS)


async def keep_connected(cp: C, play: Play[C]) -> None:
    """Whenever the connection drops, reconnect, send the queue and announce again."""
    while True:
        await cp.wait_lost()
        await asyncio.sleep(cp.jittered(1.0))
        await connect_with_backoff(cp)
        await cp.flush()
        if cp.booted:
            await play.announce(cp)


async def reboot(cp: C, play: Play[C], reason: str, label: str) -> None:
    """Reset: stop transactions with `reason`, close, reconnect, boot again, send the queue,
    announce. `label` names the reset in the report."""
    cp.forget_boot()  # from now on the script waits, heartbeats pause
    await play.wind_down(cp, reason, cp.options.response_timeout)
    cp.report(StepKind.INFO, f"{label} reset: rebooting")
    await cp.disconnect()
    await asyncio.sleep(REBOOT_PAUSE_SECONDS)
    await connect_with_backoff(cp)
    await boot_until_accepted(cp)
    await cp.flush()
    await play.announce(cp)
    cp.set_ready()
