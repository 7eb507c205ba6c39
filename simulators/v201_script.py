"""The OCPP 2.0.1 steps of the scripted station (`simulators.script`): announce, sessions,
wind down, reboot. They only use the charger's methods; no frames are built here.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from simulators import script
from simulators.errors import SimulatorError
from simulators.events import StepKind, Summary
from simulators.v201_session import (
    SessionCharger,
    charge,
    end_open_transaction,
    is_free,
    notify_evse,
)

__all__ = [
    "PLAY",
    "ScriptedCharger",
    "announce",
    "reboot",
    "run_script",
    "run_sessions",
    "wind_down",
]


class ScriptedCharger(SessionCharger, script.Scripted, Protocol):
    """What the 2.0.1 script asks of the station (simulators.v201.V201Charger): its
    sessions, the reason its next boot gives, and the connection and boot every version
    has."""

    next_boot_reason: str

    async def wait_ready(self) -> None: ...


async def run_script(cp: ScriptedCharger) -> Summary:
    """The scripted station of the CLI: see `simulators.script.run_script`."""
    return await script.run_script(cp, PLAY)


async def announce(cp: ScriptedCharger) -> None:
    """StatusNotification for the connector of every EVSE, with its current status."""
    for evse_id in cp.station.connector_ids:
        await notify_evse(cp, evse_id)


async def run_sessions(cp: ScriptedCharger) -> None:
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


async def wind_down(cp: ScriptedCharger, reason: str, seconds: float) -> None:
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


async def reboot(cp: ScriptedCharger, kind: str, *, boot_reason: str = "RemoteReset") -> None:
    """Reset (Immediate or OnIdle once idle): end transactions (ImmediateReset), close,
    reconnect, BootNotification `boot_reason` until Accepted, send the queue, announce."""
    cp.next_boot_reason = boot_reason
    await script.reboot(cp, PLAY, "ImmediateReset", kind)


PLAY: script.Play[ScriptedCharger] = script.Play(
    announce=announce, sessions=run_sessions, wind_down=wind_down, shutdown_reason="Reboot"
)
