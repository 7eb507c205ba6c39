"""The scripted life of a simulated OCPP 1.6 charger: boot, announce, sessions, heartbeats,
reconnects and reboots. It only uses the charger's methods; no frames are built here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from simulators.errors import ConnectError, NotConnectedError, SimulatorError
from simulators.events import StepKind, Summary
from simulators.v16_session import charge, end_transaction, is_free, notify

if TYPE_CHECKING:
    from simulators.v16 import V16Charger

__all__ = [
    "announce",
    "boot_until_accepted",
    "connect_with_backoff",
    "heartbeat_loop",
    "keep_connected",
    "reboot",
    "run_script",
    "run_sessions",
    "wind_down",
]

MAX_BACKOFF_SECONDS = 60.0
REBOOT_PAUSE_SECONDS = 0.5
#: How long stopping the open transactions may take when the charger shuts down.
WIND_DOWN_SECONDS = 5.0


async def run_script(cp: V16Charger) -> Summary:
    """Connect, boot until Accepted, announce every connector, play the sessions, then keep
    heartbeating and answering the CSMS until cancelled (or return if `exit_when_done`).

    The first connection failing raises `ConnectError`; later drops are retried with backoff.
    """
    await cp.connect()
    try:
        cp.spawn(keep_connected(cp), name=f"{cp.id} reconnect")
        await boot_until_accepted(cp)
        await announce(cp)
        cp.set_ready()
        cp.spawn(heartbeat_loop(cp), name=f"{cp.id} heartbeat")
        await run_sessions(cp)
        if cp.options.exit_when_done:
            cp.report(StepKind.INFO, "all sessions done, exiting")
            return cp.tally.summary()
        await asyncio.Event().wait()  # serve the CSMS until cancelled
        return cp.tally.summary()
    finally:
        await wind_down(cp, "Reboot", WIND_DOWN_SECONDS)
        await cp.close()


async def boot_until_accepted(cp: V16Charger) -> None:
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


async def announce(cp: V16Charger) -> None:
    """StatusNotification for connector 0 and every connector, with their current status."""
    for connector_id in (0, *cp.station.connector_ids):
        await notify(cp, connector_id, cp.station.status(connector_id))


async def run_sessions(cp: V16Charger) -> None:
    """The scripted sessions, one after another, rotating over the connectors."""
    opts = cp.options
    connectors = cp.station.connector_ids
    for index in range(opts.sessions):
        connector_id = connectors[index % len(connectors)]
        await cp.wait_ready()
        if not is_free(cp, connector_id):
            cp.report(
                StepKind.INFO, f"connector={connector_id} busy or unavailable: session skipped"
            )
            continue
        control = cp.sessions.open(connector_id, opts.tag)
        await charge(cp, control, opts.session_seconds)


async def heartbeat_loop(cp: V16Charger) -> None:
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


async def connect_with_backoff(cp: V16Charger) -> None:
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


async def keep_connected(cp: V16Charger) -> None:
    """Whenever the connection drops, reconnect and announce the connectors again."""
    while True:
        await cp.wait_lost()
        await asyncio.sleep(cp.jittered(1.0))
        await connect_with_backoff(cp)
        await cp.flush()
        if cp.booted:
            await announce(cp)


async def wind_down(cp: V16Charger, reason: str, seconds: float) -> None:
    """Stop every running session and open transaction with `reason`, within `seconds`."""
    if not cp.sessions.all() and not cp.open_transactions:
        return
    for control in cp.sessions.all():
        control.stop(reason)
    try:
        async with asyncio.timeout(seconds):
            await cp.sessions.wait_idle(seconds)
            for transaction_id in list(cp.open_transactions):
                await end_transaction(cp, transaction_id, reason)
    except TimeoutError:
        cp.report(StepKind.INFO, f"open transactions not stopped within {seconds:g}s")
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"stopping open transactions failed: {exc}")


async def reboot(cp: V16Charger, kind: str) -> None:
    """Reset: stop transactions (reason SoftReset/HardReset), close, reconnect, boot again."""
    reason = "HardReset" if kind == "Hard" else "SoftReset"
    cp.forget_boot()  # from now on the script waits, heartbeats pause
    await wind_down(cp, reason, cp.options.response_timeout)
    cp.report(StepKind.INFO, f"{kind} reset: rebooting")
    await cp.disconnect()
    await asyncio.sleep(REBOOT_PAUSE_SECONDS)
    await connect_with_backoff(cp)
    await boot_until_accepted(cp)
    await cp.flush()
    await announce(cp)
    cp.set_ready()
