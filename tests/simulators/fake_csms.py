"""A fake CSMS on 127.0.0.1 (port 0) to drive a simulated charger over a real websocket.

It answers the charger's CALLs with fixed schema-valid answers, sends CALLs of its own, keeps
every CALL it received, and checks every frame either way against the OCPP JSON schemas.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from .schemas import check_request, check_response

Payload = dict[str, Any]
CALL, CALLRESULT, CALLERROR = 2, 3, 4


@dataclass(frozen=True, slots=True)
class Received:
    """A CALL the charger sent, in order of arrival."""

    index: int
    action: str
    payload: Payload


class CallRefused(AssertionError):
    """The charger answered our CALL with a CALLERROR."""


class FakeCsms:
    """Start with `await FakeCsms(version).start()`; `problems` lists every schema violation
    (in frames of either side), so a test can assert that it stays empty."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.received: list[Received] = []
        self.problems: list[str] = []
        #: idTagInfo (1.6) or idTokenInfo (2.0.1) answered for a tag; default Accepted.
        self.tag_info: dict[str, Payload] = {}
        self.boots = 0
        self._server: Server | None = None
        self._ws: ServerConnection | None = None
        self._arrived = asyncio.Condition()
        self._pending: dict[str, tuple[str, asyncio.Future[Payload]]] = {}
        self._transaction_ids = itertools.count(100)

    async def start(self) -> FakeCsms:
        subprotocol = Subprotocol("ocpp1.6" if self.version == "1.6" else "ocpp2.0.1")
        self._server = await serve(self._serve, "127.0.0.1", 0, subprotocols=[subprotocol])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ocpp"

    # -- what the test does -------------------------------------------------------------

    async def call(self, action: str, payload: Payload, timeout: float = 5.0) -> Payload:
        """Send a CALL to the charger and return its answer (CallRefused on a CALLERROR)."""
        self._check(check_request, action, payload, "our request")
        ws = self._ws
        assert ws is not None, "no charger connected"
        unique_id = str(uuid.uuid4())
        future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = (action, future)
        await ws.send(json.dumps([CALL, unique_id, action, payload]))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(unique_id, None)

    def mark(self) -> int:
        """A position in `received`: `since=` this sees only what arrives afterwards."""
        return len(self.received)

    def sent(self, action: str, since: int = 0) -> list[Payload]:
        """Payloads of the CALLs `action` the charger sent (after `since`)."""
        return [r.payload for r in self.received[since:] if r.action == action]

    async def expect(
        self,
        action: str,
        since: int = 0,
        match: Callable[[Payload], bool] | None = None,
        timeout: float = 5.0,
        **fields: Any,
    ) -> Payload:
        """Wait for a CALL `action` (after `since`) whose payload has these top-level
        `fields` and satisfies `match`."""

        def found() -> Payload | None:
            for item in self.received[since:]:
                payload = item.payload
                if item.action != action:
                    continue
                if all(payload.get(k) == v for k, v in fields.items()) and (
                    match is None or match(payload)
                ):
                    return payload
            return None

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        result = found()
        assert result is not None
        return result

    async def statuses(self, count: int, since: int = 0, timeout: float = 5.0) -> list[Any]:
        """The first `count` StatusNotifications after `since`, as (connector or EVSE,
        status) pairs."""

        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(
                    lambda: len(self.sent("StatusNotification", since)) >= count
                ),
                timeout,
            )
        return [_status(p) for p in self.sent("StatusNotification", since)[:count]]

    # -- the server ---------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        self._ws = ws
        try:
            async for raw in ws:
                await self._frame(ws, json.loads(raw))
        except ConnectionClosed:
            pass

    async def _frame(self, ws: ServerConnection, frame: list[Any]) -> None:
        kind, unique_id = frame[0], frame[1]
        if kind == CALL:
            action, payload = frame[2], frame[3]
            self._check(check_request, action, payload, "charger request")
            answer = self._answer(action, payload)
            self._check(check_response, action, answer, "our answer")
            async with self._arrived:
                self.received.append(Received(len(self.received), action, payload))
                self._arrived.notify_all()
            await ws.send(json.dumps([CALLRESULT, unique_id, answer]))
            return
        pending = self._pending.get(unique_id)
        if pending is None:
            self.problems.append(f"answer to nothing: {frame}")
            return
        action, future = pending
        if kind == CALLRESULT:
            self._check(check_response, action, frame[2], "charger answer")
            future.set_result(frame[2])
        else:
            future.set_exception(CallRefused(f"{action}: {frame[2:]}"))

    def _check(
        self, check: Callable[[str, Any, str], None], action: str, payload: Any, what: str
    ) -> None:
        try:
            check(action, payload, self.version)
        except jsonschema.ValidationError as exc:
            self.problems.append(f"{what} {action} {payload}: {exc.message}")

    def _answer(self, action: str, payload: Payload) -> Payload:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if action == "BootNotification":
            self.boots += 1
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "DataTransfer":
            return {"status": "Accepted"}
        if self.version == "1.6":
            return self._answer16(action, payload)
        return self._answer201(action, payload)

    def _answer16(self, action: str, payload: Payload) -> Payload:
        if action == "Authorize":
            return {"idTagInfo": self._info(payload["idTag"])}
        if action == "StartTransaction":
            tx = next(self._transaction_ids)
            return {"transactionId": tx, "idTagInfo": self._info(payload["idTag"])}
        return {}

    def _answer201(self, action: str, payload: Payload) -> Payload:
        if action == "Authorize":
            return {"idTokenInfo": self._info(payload["idToken"]["idToken"])}
        if action == "TransactionEvent" and "idToken" in payload:
            return {"idTokenInfo": self._info(payload["idToken"]["idToken"])}
        if action == "NotifyEVChargingNeeds":
            return {"status": "Accepted"}
        return {}

    def _info(self, tag: str) -> Payload:
        return dict(self.tag_info.get(tag, {"status": "Accepted"}))


def _status(payload: Payload) -> tuple[int, str]:
    if "connectorStatus" in payload:
        return payload["evseId"], payload["connectorStatus"]
    return payload["connectorId"], payload["status"]
