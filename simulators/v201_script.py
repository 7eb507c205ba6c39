"""The OCPP 2.0.1 steps of the scripted station (`simulators.script`): announce, sessions,
wind down, reboot. They only use the charger's methods; no frames are built here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from simulators import script
from simulators.errors import SimulatorError
from simulators.events import StepKind, Summary
from simulators.v201_session import charge, end_open_transaction, is_free, notify_evse

if TYPE_CHECKING:
    from simulators.v201 import V201Charger

__all__ = ["PLAY", "announce", "reboot", "run_script", "run_sessions", "wind_down"]


async def run_script(cp: V201Charger) -> Summary:
    """The scripted station of the CLI: see `simulators.script.run_script`."""
    return await script.run_script(cp, PLAY)


async def announce(cp: V201Charger) -> None:
    """StatusNotification for the connector of every EVSE, with its current status."""
    for evse_id in cp.station.connector_ids:
        await notify_evse(cp, evse_id)


async def run_sessions(cp: V201Charger) -> None:
    """The scripted sessions, one after another, rotating over the EVSEs."""
    opts = cp.options
    evses = cp.station.connector_ids
    for index in range(opts.sessions):
        evse_id = evses[index % len(evses)]
        await cp.wait_ready()
        if not is_free(cp, evse_id, opts.tag):
            cp.report(StepKind.INFO, f"evse={evse_id} busy or unavailable: session skipped")
            continue
        control = cp.sessions.open(evse_id, opts.tag)
        await charge(cp, control, opts.session_seconds)


async def wind_down(cp: V201Charger, reason: str, seconds: float) -> None:
    """End every running session and open transaction with `reason`, within `seconds`."""
    if not cp.sessions.all() and not cp.open_transactions:
        return
    for control in cp.sessions.all():
        control.stop(reason)
    try:
        async with asyncio.timeout(seconds):
            await cp.sessions.wait_idle(seconds)
            for transaction_id in list(cp.open_transactions):
                await end_open_transaction(cp, transaction_id, reason)
    except TimeoutError:
        cp.report(StepKind.INFO, f"open transactions not ended within {seconds:g}s")
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"ending open transactions failed: {exc}")


async def reboot(cp: V201Charger, kind: str, *, boot_reason: str = "RemoteReset") -> None:
    """Reset (Immediate or OnIdle once idle): end transactions (ImmediateReset), close,
    reconnect, BootNotification `boot_reason` until Accepted, send the queue, announce."""
    cp.next_boot_reason = boot_reason
    await script.reboot(cp, PLAY, "ImmediateReset", kind)


PLAY: script.Play[V201Charger] = script.Play(
    announce=announce, sessions=run_sessions, wind_down=wind_down, shutdown_reason="Reboot"
)
