"""One live OCPP-J websocket to the CSMS (1.6 or 2.0.1): the only module that touches `ocpp`.

It moves frames and hands camelCase dicts in and out; no charger state and no protocol logic.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import errno
import logging
import socket
import ssl
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import orjson
from ocpp import v16, v201
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError, ValidationError
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

__all__ = [
    "OCPP16",
    "OCPP201",
    "CallHandler",
    "Dialect",
    "Link",
    "Reply",
    "Spawn",
    "client_tls",
    "open_link",
]

CALL, CALLRESULT, CALLERROR = 2, 3, 4

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between OCPP versions on the wire: subprotocol, library classes, and
    which CSMS-initiated actions the charger answers (others get a NotImplemented error)."""

    version: str
    subprotocol: Subprotocol
    point_class: type[Any]
    requests: ModuleType
    answers: frozenset[str]


OCPP16 = Dialect(
    version="1.6",
    subprotocol=Subprotocol("ocpp1.6"),
    point_class=v16.ChargePoint,
    requests=v16.call,
    answers=frozenset(
        {
            "GetConfiguration",
            "ChangeConfiguration",
            "TriggerMessage",
            "Reset",
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "UnlockConnector",
            "ChangeAvailability",
            "ClearCache",
            "DataTransfer",
            "ReserveNow",
            "CancelReservation",
            "SendLocalList",
            "GetLocalListVersion",
            "UpdateFirmware",
            "GetDiagnostics",
            "SetChargingProfile",
            "ClearChargingProfile",
            "GetCompositeSchedule",
            # security extension (certificates)
            "CertificateSigned",
            "InstallCertificate",
            "GetInstalledCertificateIds",
            "DeleteCertificate",
            "ExtendedTriggerMessage",
        }
    ),
)

OCPP201 = Dialect(
    version="2.0.1",
    subprotocol=Subprotocol("ocpp2.0.1"),
    point_class=v201.ChargePoint,
    requests=v201.call,
    answers=frozenset(
        {
            "GetVariables",
            "SetVariables",
            "GetBaseReport",
            "GetReport",
            "RequestStartTransaction",
            "RequestStopTransaction",
            "Reset",
            "UnlockConnector",
            "ChangeAvailability",
            "TriggerMessage",
            "ClearCache",
            "DataTransfer",
            "GetTransactionStatus",
            "SetChargingProfile",
            "ClearChargingProfile",
            "ReserveNow",
            "CancelReservation",
            "UpdateFirmware",
            "GetLog",
            "SendLocalList",
            "GetLocalListVersion",
            "GetCompositeSchedule",
            "CertificateSigned",
            "InstallCertificate",
            "GetInstalledCertificateIds",
            "DeleteCertificate",
        }
    ),
)


@dataclass(frozen=True, slots=True)
class Reply:
    """Our answer to a CALL from the CSMS, and what to do once it is on the wire."""

    payload: Mapping[str, Any]
    after: Callable[[], Coroutine[Any, Any, None]] | None = None


#: Answers one CALL from the CSMS: action and camelCase payload in, reply out.
CallHandler = Callable[[str, dict[str, Any]], Awaitable[Reply]]
#: Runs a coroutine as a task its owner tracks (and cancels on close).
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class _Frames:
    """Payload objects for the library, built from camelCase dicts.

    The library sends any dataclass whose class name is the action, after turning snake_case
    keys to camelCase and dropping None values; every key of the 1.6 and 2.0.1 schemas passes
    that conversion unchanged, so a dataclass with the camelCase keys as fields puts exactly the
    given dict on the wire (nested values included). One class per action and key set.
    """

    def __init__(self) -> None:
        self._types: dict[tuple[str, tuple[str, ...]], type[Any]] = {}

    def build(self, action: str, payload: Mapping[str, Any]) -> Any:
        keys = tuple(payload)
        kind = self._types.get((action, keys))
        if kind is None:
            kind = dataclasses.make_dataclass(action, [(key, Any) for key in keys])
            self._types[(action, keys)] = kind
        return kind(**payload)


def _parse(raw: str | bytes) -> list[Any] | None:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, list) and frame else None


class _RawWaiter:
    def __init__(self) -> None:
        self.future: asyncio.Future[str] = asyncio.get_running_loop().create_future()


def _library_point(link: Link, charger_id: str, ws: ClientConnection, timeout: float) -> Any:
    """The library's charge point of the dialect's version; every CSMS action it may route
    (the dialect's `answers`) goes back to the Link."""
    dialect = link.dialect

    class _Point(dialect.point_class):  # type: ignore[misc,name-defined]  # untyped library
        async def route_message(self, raw_msg: str) -> None:
            await link._route(raw_msg, super().route_message)

    point = _Point(charger_id, ws, response_timeout=timeout)

    def answerer(action: str) -> Callable[..., Awaitable[Any]]:
        async def answer(call_unique_id: object, **_: Any) -> Any:
            return await link._answer(action, call_unique_id)

        return answer

    point.route_map = {
        action: {"_on_action": answerer(action), "_skip_schema_validation": False}
        for action in dialect.answers
    }
    return point


class Link:
    """A connected websocket speaking one OCPP version through the library.

    Frames are looked at before the library sees them: answers to our own CALLs are kept
    raw (so callers get the wire payload), answers to `send_raw()` frames are handed to the
    waiting caller instead of the library, and stray answers are dropped.
    """

    def __init__(
        self,
        dialect: Dialect,
        charger_id: str,
        ws: ClientConnection,
        handler: CallHandler,
        spawn: Spawn,
        response_timeout: float,
        unanswered: Collection[str] = frozenset(),
    ) -> None:
        self.dialect = dialect
        #: CSMS actions whose CALLs are read and never answered (the caller's set, live).
        self.unanswered = unanswered
        self._ws = ws
        self._handler = handler
        self._spawn = spawn
        self._timeout = response_timeout
        self._frames = _Frames()
        self._point = _library_point(self, charger_id, ws, response_timeout)
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

    async def call(
        self, action: str, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload exactly as received.

        With `validate=False` neither our request nor the answer is checked against the
        schema (to send deliberately broken requests)."""
        if getattr(self.dialect.requests, action, None) is None:
            raise InvalidRequest(
                f"{action} is not an OCPP {self.dialect.version} action a charger sends"
            )
        try:
            request = self._frames.build(action, payload)
        except TypeError as exc:  # a key that is not a valid field name
            raise InvalidRequest(f"{action}: {exc}") from exc
        if self.closed:
            raise NotConnectedError("not connected")
        unique_id = str(uuid.uuid4())
        self._pending.add(unique_id)
        sending = asyncio.ensure_future(
            self._point.call(
                request, suppress=False, unique_id=unique_id, skip_schema_validation=not validate
            )
        )
        try:
            done, _ = await asyncio.wait(
                (sending, self._closed), return_when=asyncio.FIRST_COMPLETED
            )
            if sending not in done:
                raise NotConnectedError(f"connection closed while waiting for the {action} answer")
            try:
                sending.result()
            except TypeError:  # unvalidated answer the library cannot map: the raw one counts
                if unique_id not in self._answers or self._answers[unique_id][0] != CALLRESULT:
                    raise
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
                async with asyncio.timeout(timeout):
                    return await waiter.future
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
        action = frame[2] if kind == CALL and frame is not None and len(frame) > 2 else None
        if isinstance(action, str) and action in self.unanswered:
            log.debug("left a CALL unanswered: %.200s", raw)
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
        return self._frames.build(action, reply.payload)


async def open_link(
    dialect: Dialect,
    endpoint: str,
    charger_id: str,
    password: str | None,
    handler: CallHandler,
    spawn: Spawn,
    *,
    response_timeout: float,
    open_timeout: float = 10.0,
    unanswered: Collection[str] = frozenset(),
    tls: ssl.SSLContext | None = None,
) -> Link:
    """Open the websocket (with HTTP Basic auth when a password is given; over TLS with
    `tls` for a wss:// endpoint) and wrap it."""
    headers: dict[str, str] = {}
    if password is not None:
        token = base64.b64encode(f"{charger_id}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    # wss:// without a context: websockets' default (the system's CAs).
    tls_options: dict[str, Any] = {} if tls is None else {"ssl": tls}
    try:
        ws = await connect(
            endpoint,
            subprotocols=[dialect.subprotocol],
            additional_headers=headers,
            open_timeout=open_timeout,
            **tls_options,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise ConnectError(f"cannot connect to {endpoint}: server answered HTTP {status}") from exc
    except InvalidURI as exc:
        raise ConnectError(f"cannot connect to {endpoint}: invalid url") from exc
    except ssl.SSLError as exc:
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        raise ConnectError(f"cannot connect to {endpoint}: TLS failed ({reason})") from exc
    except socket.gaierror as exc:
        raise ConnectError(f"cannot connect to {endpoint}: unknown host") from exc
    except TimeoutError as exc:
        raise ConnectError(f"cannot connect to {endpoint}: timed out") from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {endpoint}: {_describe(exc)}") from exc
    except InvalidHandshake as exc:
        raise ConnectError(f"cannot connect to {endpoint}: handshake failed ({exc})") from exc
    if ws.subprotocol != dialect.subprotocol:
        await ws.close()
        raise ConnectError(
            f"cannot connect to {endpoint}: server did not accept {dialect.subprotocol}"
        )
    return Link(dialect, charger_id, ws, handler, spawn, response_timeout, unanswered)


def client_tls(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """A wss:// client context: the server verified against `ca_file` (else the system's
    CAs), and our certificate presented when given (security profile 3)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot use the TLS files: {exc}") from exc
    return context


def _describe(exc: OSError) -> str:
    refused = f"[Errno {errno.ECONNREFUSED}]"
    if isinstance(exc, ConnectionRefusedError) or refused in str(exc):
        return "connection refused"
    return exc.strerror or str(exc)
