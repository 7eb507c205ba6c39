"""The OCPP 1.6 steps of the scripted charger (`simulators.script`): announce, sessions,
wind down, reboot. They only use the charger's methods; no frames are built here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from simulators import script
from simulators.errors import SimulatorError
from simulators.events import StepKind, Summary
from simulators.script import boot_until_accepted, connect_with_backoff, heartbeat_loop
from simulators.v16_session import SessionCharger, charge, end_transaction, is_free, notify

__all__ = [
    "ScriptedCharger",
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


class ScriptedCharger(SessionCharger, script.Scripted, Protocol):
    """What the 1.6 script asks of the charger (simulators.v16.V16Charger): its sessions,
    and the connection and boot every version has."""

    async def wait_ready(self) -> None: ...

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]: ...


async def run_script(cp: ScriptedCharger) -> Summary:
    """The scripted charger of the CLI: see `simulators.script.run_script`."""
    return await script.run_script(cp, PLAY)


async def announce(cp: ScriptedCharger) -> None:
    """StatusNotification for connector 0 and every connector, with their current status;
    a charger with a signing meter publishes its key first."""
    await publish_meter_key(cp)
    for connector_id in (0, *cp.station.connector_ids):
        await notify(cp, connector_id, cp.station.status(connector_id))


#: The OCA application note "OCPP 1.6 and German Eichrecht": the charger tells the CSMS the
#: public key of each connector's meter by DataTransfer (as well as in `MeterPublicKey`).
METER_KEY_VENDOR_ID = "generalConfiguration"
METER_KEY_MESSAGE_ID = "setMeterConfiguration"


def meter_configuration(cp: ScriptedCharger) -> str | None:
    """The DataTransfer `data` that publishes the meters' key: JSON
    `{"meters": [{"connectorId", "meterSerial", "type": "SIGNATURE", "publicKey"}]}`."""
    meter = cp.signed_meter
    if meter is None:
        return None
    meters = [
        {
            "connectorId": connector_id,
            "meterSerial": meter.meter_serial(connector_id),
            "type": "SIGNATURE",
            "publicKey": meter.public_key_hex,
        }
        for connector_id in cp.station.connector_ids
    ]
    return json.dumps({"meters": meters}, separators=(",", ":"))


async def publish_meter_key(cp: ScriptedCharger) -> None:
    """DataTransfer generalConfiguration/setMeterConfiguration; an answer other than
    Accepted is reported (the key stays readable as configuration key `MeterPublicKey`)."""
    data = meter_configuration(cp)
    if data is None:
        return
    try:
        answer = await cp.data_transfer(METER_KEY_VENDOR_ID, METER_KEY_MESSAGE_ID, data)
    except SimulatorError as exc:
        cp.report(StepKind.ERROR, f"meter key DataTransfer failed: {exc}")
        return
    cp.report(StepKind.INFO, f"meter key published: DataTransfer {answer.get('status')}")


async def run_sessions(cp: ScriptedCharger) -> None:
    """The scripted sessions, one after another, rotating over the connectors."""
    opts = cp.options
    connectors = cp.station.connector_ids
    for index in range(opts.sessions):
        connector_id = connectors[index % len(connectors)]
        await cp.wait_ready()
        if not is_free(cp, connector_id, opts.tag):
            cp.report(
                StepKind.INFO, f"connector={connector_id} busy or unavailable: session skipped"
            )
            continue
        control = cp.sessions.open(connector_id, opts.tag)
        await charge(cp, control, opts.session_seconds)


async def keep_connected(cp: ScriptedCharger) -> None:
    """Whenever the connection drops, reconnect and announce the connectors again."""
    await script.keep_connected(cp, PLAY)


async def wind_down(cp: ScriptedCharger, reason: str, seconds: float) -> None:
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


async def reboot(cp: ScriptedCharger, kind: str) -> None:
    """Reset: stop transactions (reason SoftReset/HardReset), close, reconnect, boot again."""
    reason = "HardReset" if kind == "Hard" else "SoftReset"
    await script.reboot(cp, PLAY, reason, kind)


PLAY: script.Play[ScriptedCharger] = script.Play(
    announce=announce, sessions=run_sessions, wind_down=wind_down, shutdown_reason="Reboot"
)
