"""One live OCPP 1.6J websocket to the CSMS: the only module that touches the `ocpp` library.

It moves frames and turns the library's objects into camelCase dicts; no charger state here.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError, ValidationError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from simulators.errors import (
    CallErrorReceived,
    ConnectError,
    InvalidRequest,
    InvalidResponse,
    NotConnectedError,
    ResponseTimeout,
)

__all__ = ["SUBPROTOCOL", "CallHandler", "Link", "Reply", "Spawn", "open_link"]

SUBPROTOCOL = Subprotocol("ocpp1.6")
CALL, CALLRESULT, CALLERROR = 2, 3, 4

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """Our answer to a CALL from the CSMS, and what to do once it is on the wire."""

    payload: Mapping[str, Any]
    after: Callable[[], Coroutine[Any, Any, None]] | None = None


#: Answers one CALL from the CSMS: action and camelCase payload in, reply out.
CallHandler = Callable[[str, dict[str, Any]], Awaitable[Reply]]
#: Runs a coroutine as a task its owner tracks (and cancels on close).
Spawn = Callable[[Coroutine[Any, Any, None]], object]

_F = TypeVar("_F", bound=Callable[..., Any])


def _route(action: str) -> Callable[[_F], _F]:
    """`ocpp.routing.on`, typed."""
    return cast(Callable[[_F], _F], on(action))


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _snake_keys(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level camelCase keys to the library's snake_case; nested dicts stay as on the wire."""
    return {_CAMEL_BOUNDARY.sub("_", key).lower(): value for key, value in payload.items()}


def _parse(raw: str | bytes) -> list[Any] | None:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, list) and frame else None


class _RawWaiter:
    def __init__(self) -> None:
        self.future: asyncio.Future[str] = asyncio.get_running_loop().create_future()


class _LibraryPoint(ChargePoint):  # type: ignore[misc]  # the ocpp library is untyped
    """The library's charge point; every CSMS action it may route goes back to the Link."""

    def __init__(self, link: Link, charger_id: str, ws: ClientConnection, timeout: float) -> None:
        super().__init__(charger_id, ws, response_timeout=timeout)
        self._link = link

    async def route_message(self, raw_msg: str) -> None:
        await self._link._route(raw_msg, super().route_message)

    @_route("GetConfiguration")
    async def _on_get_configuration(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("GetConfiguration", call_unique_id)

    @_route("ChangeConfiguration")
    async def _on_change_configuration(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("ChangeConfiguration", call_unique_id)

    @_route("TriggerMessage")
    async def _on_trigger_message(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("TriggerMessage", call_unique_id)

    @_route("Reset")
    async def _on_reset(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("Reset", call_unique_id)

    @_route("RemoteStartTransaction")
    async def _on_remote_start_transaction(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("RemoteStartTransaction", call_unique_id)

    @_route("RemoteStopTransaction")
    async def _on_remote_stop_transaction(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("RemoteStopTransaction", call_unique_id)

    @_route("UnlockConnector")
    async def _on_unlock_connector(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("UnlockConnector", call_unique_id)

    @_route("ChangeAvailability")
    async def _on_change_availability(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("ChangeAvailability", call_unique_id)

    @_route("ClearCache")
    async def _on_clear_cache(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("ClearCache", call_unique_id)

    @_route("DataTransfer")
    async def _on_data_transfer(self, call_unique_id: object, **_: Any) -> Any:
        return await self._link._answer("DataTransfer", call_unique_id)


class Link:
    """A connected websocket speaking OCPP 1.6J through the library.

    Frames are looked at before the library sees them: answers to our own CALLs are kept
    raw (so callers get the wire payload), answers to `send_raw()` frames are handed to the
    waiting caller instead of the library, and stray answers are dropped.
    """

    def __init__(
        self,
        charger_id: str,
        ws: ClientConnection,
        handler: CallHandler,
        spawn: Spawn,
        response_timeout: float,
    ) -> None:
        self._ws = ws
        self._handler = handler
        self._spawn = spawn
        self._timeout = response_timeout
        self._point = _LibraryPoint(self, charger_id, ws, response_timeout)
        self._pending: set[str] = set()
        self._answers: dict[str, list[Any]] = {}
        self._incoming: dict[str, dict[str, Any]] = {}
        self._after: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._raw_waiter: _RawWaiter | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def serve(self) -> None:
        """Read and route frames until the connection closes."""
        try:
            await self._point.start()
        except ConnectionClosed:
            pass
        finally:
            if not self._closed.done():
                self._closed.set_result(None)
            waiter = self._raw_waiter
            if waiter is not None and not waiter.future.done():
                waiter.future.set_exception(NotConnectedError("connection closed"))

    async def close(self) -> None:
        await self._ws.close()

    async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload exactly as received."""
        request_type = getattr(call, action, None)
        if request_type is None:
            raise InvalidRequest(f"{action} is not an OCPP 1.6 action a charge point sends")
        try:
            request = request_type(**_snake_keys(payload))
        except TypeError as exc:
            raise InvalidRequest(f"{action}: {exc}") from exc
        if self.closed:
            raise NotConnectedError("not connected")
        unique_id = str(uuid.uuid4())
        self._pending.add(unique_id)
        sending = asyncio.ensure_future(
            self._point.call(request, suppress=False, unique_id=unique_id)
        )
        try:
            done, _ = await asyncio.wait(
                (sending, self._closed), return_when=asyncio.FIRST_COMPLETED
            )
            if sending not in done:
                raise NotConnectedError(f"connection closed while waiting for the {action} answer")
            sending.result()
            answer = self._answers.get(unique_id)
            return dict(answer[2]) if answer is not None and len(answer) > 2 else {}
        except (OCPPError, UnknownCallErrorCodeError, ValidationError) as exc:
            answer = self._answers.get(unique_id)
            if answer is None:
                raise InvalidRequest(f"{action}: {exc}") from exc
            if answer[0] == CALLERROR:
                code, description, details = [*answer[2:], "", "", {}][:3]
                raise CallErrorReceived(action, str(code), str(description), details) from None
            raise InvalidResponse(f"{action}: {exc}") from exc
        except TimeoutError as exc:
            raise ResponseTimeout(f"no answer to {action} within {self._timeout:g}s") from exc
        except ConnectionClosed as exc:
            raise NotConnectedError(f"connection closed while sending {action}") from exc
        finally:
            if not sending.done():
                sending.cancel()
            elif not sending.cancelled():
                sending.exception()  # retrieved, so asyncio does not warn about it
            self._pending.discard(unique_id)
            self._answers.pop(unique_id, None)

    async def send_raw(self, text: str, timeout: float) -> str | None:  # noqa: ASYNC109
        """Send any text frame; return the next reply not meant for a library CALL, or None."""
        if self.closed:
            raise NotConnectedError("not connected")
        async with self._point._call_lock:  # one outstanding CALL at a time, ours included
            waiter = self._raw_waiter = _RawWaiter()
            try:
                await self._ws.send(text)
                return await asyncio.wait_for(waiter.future, timeout)
            except TimeoutError:
                return None
            except ConnectionClosed as exc:
                raise NotConnectedError("connection closed") from exc
            finally:
                self._raw_waiter = None

    async def _route(self, raw: str, deliver: Callable[[str], Awaitable[None]]) -> None:
        frame = _parse(raw)
        kind = frame[0] if frame is not None else None
        unique_id = frame[1] if frame is not None and len(frame) > 1 else None
        if kind in (CALLRESULT, CALLERROR) and unique_id in self._pending:
            self._answers[str(unique_id)] = cast(list[Any], frame)
            await deliver(raw)
            return
        waiter = self._raw_waiter
        if kind != CALL and waiter is not None and not waiter.future.done():
            waiter.future.set_result(raw)
            return
        if kind in (CALLRESULT, CALLERROR):
            log.debug("dropped an answer nobody waits for: %.200s", raw)
            return
        if kind == CALL and frame is not None and len(frame) > 3 and isinstance(frame[3], dict):
            self._incoming[str(unique_id)] = frame[3]
        try:
            await deliver(raw)
        finally:
            self._incoming.pop(str(unique_id), None)
        after, self._after = self._after, []
        for action in after:
            self._spawn(action())

    async def _answer(self, action: str, unique_id: object) -> Any:
        payload = self._incoming.get(str(unique_id), {})
        try:
            reply = await self._handler(action, payload)
        except Exception:
            log.exception("answering %s failed", action)
            raise
        if reply.after is not None:
            self._after.append(reply.after)
        return getattr(call_result, action)(**_snake_keys(reply.payload))


async def open_link(
    endpoint: str,
    charger_id: str,
    password: str | None,
    handler: CallHandler,
    spawn: Spawn,
    *,
    response_timeout: float,
    open_timeout: float = 10.0,
) -> Link:
    """Open the websocket (with HTTP Basic auth when a password is given) and wrap it."""
    headers: dict[str, str] = {}
    if password is not None:
        token = base64.b64encode(f"{charger_id}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    try:
        ws = await connect(
            endpoint,
            subprotocols=[SUBPROTOCOL],
            additional_headers=headers,
            open_timeout=open_timeout,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise ConnectError(f"cannot connect to {endpoint}: server answered HTTP {status}") from exc
    except InvalidURI as exc:
        raise ConnectError(f"cannot connect to {endpoint}: invalid url") from exc
    except socket.gaierror as exc:
        raise ConnectError(f"cannot connect to {endpoint}: unknown host") from exc
    except TimeoutError as exc:
        raise ConnectError(f"cannot connect to {endpoint}: timed out") from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {endpoint}: {_describe(exc)}") from exc
    except InvalidHandshake as exc:
        raise ConnectError(f"cannot connect to {endpoint}: handshake failed ({exc})") from exc
    if ws.subprotocol != SUBPROTOCOL:
        await ws.close()
        raise ConnectError(f"cannot connect to {endpoint}: server did not accept ocpp1.6")
    return Link(charger_id, ws, handler, spawn, response_timeout)


def _describe(exc: OSError) -> str:
    refused = f"[Errno {errno.ECONNREFUSED}]"
    if isinstance(exc, ConnectionRefusedError) or refused in str(exc):
        return "connection refused"
    return exc.strerror or str(exc)
