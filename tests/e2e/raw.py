"""A bare OCPP-J client for handshake and frame-level tests (no schema checks of its own)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

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
        subprotocols=(["ocpp1.6"] if subprotocols is None else subprotocols) or None,  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=5,
    )


async def exchange(ws: ClientConnection, frame: str | list[Any], timeout: float = 5.0) -> Any:
    text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
    await ws.send(text)
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> Any:
    return await exchange(ws, [2, f"m{next(_ids)}", action, payload])


BOOT = {"chargePointVendor": "TestVendor", "chargePointModel": "TestModel"}
