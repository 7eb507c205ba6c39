"""A bare OCPP-J client for handshake and frame-level tests (no schema checks of its own)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

_ids = itertools.count(1)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_raw(
    url: str,
    cp_id: str,
    *,
    subprotocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> ClientConnection:
    return await connect(
        f"{url}/{cp_id}",
        # [] means: send no Sec-WebSocket-Protocol header at all.
        subprotocols=[
            Subprotocol(p) for p in (["ocpp1.6"] if subprotocols is None else subprotocols)
        ]
        or None,
        additional_headers=headers,
        # A handshake takes milliseconds; 15 s leaves room for a CI machine running every
        # worker's servers at once (5 s timed out there once), and a test that means to
        # see a slow handshake says so with its own timeout.
        open_timeout=15,
    )


async def exchange(
    ws: ClientConnection,
    frame: str | list[Any],
    timeout: float = 5.0,
    server_calls: list[list[Any]] | None = None,
) -> Any:
    """Send a frame and return the server's reply to it. CALLs the server sends meanwhile
    (e.g. GetBaseReport after a 2.0.1 boot) are answered Accepted and collected."""
    text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
    await ws.send(text)
    while True:
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if isinstance(reply, list) and reply and reply[0] == 2:
            if server_calls is not None:
                server_calls.append(reply)
            await ws.send(orjson.dumps([3, reply[1], {"status": "Accepted"}]).decode())
            continue
        return reply


async def call(
    ws: ClientConnection,
    action: str,
    payload: dict[str, Any],
    server_calls: list[list[Any]] | None = None,
) -> Any:
    return await exchange(ws, [2, f"m{next(_ids)}", action, payload], server_calls=server_calls)


BOOT: dict[str, Any] = {"chargePointVendor": "TestVendor", "chargePointModel": "TestModel"}


BOOT201: dict[str, Any] = {
    "reason": "PowerUp",
    "chargingStation": {
        "model": "TestModel",
        "vendorName": "TestVendor",
        "firmwareVersion": "1.0",
        "serialNumber": "SN-1",
    },
}

# What a charger of each version offers as subprotocol and sends as its first CALL.
SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
BOOTS: dict[str, dict[str, Any]] = {"1.6": BOOT, "2.0.1": BOOT201}


async def open_booted(url: str, cp_id: str, version: str) -> ClientConnection:
    """A raw connection speaking `version` whose BootNotification was Accepted (a CALL the
    server sends after the boot is answered by `exchange` as usual)."""
    ws = await open_raw(url, cp_id, subprotocols=[SUBPROTOCOLS[version]])
    reply = await call(ws, "BootNotification", BOOTS[version])
    assert reply[0] == 3 and reply[2]["status"] == "Accepted", reply
    return ws
