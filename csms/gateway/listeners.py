"""HTTP listeners with bounds for the aiohttp apps (operator API, OCPI bridge): how many
connections may be open at once, how long a client may take to send a request's headers,
how long a connection may sit idle between requests.

Transport only (sockets, timers, aiohttp's server); the apps, their routes and their body
rules live in csms.api and ocpi_cpo. aiohttp has no deadline of its own for request
headers: without one, a client that opens connections and sends half a request line holds
a file descriptor each for as long as it likes, until the process can accept no socket at
all (chargers included).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from csms.gateway.tls import HttpsPort
from csms.metrics import Metrics

log = structlog.get_logger("csms.gateway.http")

# What a connection over the limit is told before it is closed.
_BUSY_TEXT = b"too many connections; retry later\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Connection: close\r\n"
    b"Retry-After: 1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BUSY_TEXT)).encode() + b"\r\n"
    b"\r\n" + _BUSY_TEXT
)
# Refusals and header timeouts come in floods when they come: one log line per this many
# seconds per listener and kind, with the count since the last line.
LOG_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """`header_timeout`: seconds from connecting (or from the first byte after an answer)
    until a request's headers must be complete; `idle_timeout`: seconds an open connection
    may wait for its next request; `max_connections`: open at once (more get 503)."""

    header_timeout: float = 10.0
    idle_timeout: float = 75.0
    max_connections: int = 256


class _Tally:
    """Counts one kind of event and logs it at most once per LOG_EVERY_S."""

    def __init__(self, event: str, listener: str) -> None:
        self._event = event
        self._listener = listener
        self._count = 0
        self._last: float | None = None

    def note(self, **fields: object) -> None:
        self._count += 1
        now = asyncio.get_running_loop().time()
        if self._last is None or now - self._last >= LOG_EVERY_S:
            log.warning(self._event, listener=self._listener, count=self._count, **fields)
            self._count = 0
            self._last = now


class _Guard(asyncio.Protocol):
    """One connection: stands between the socket and aiohttp's request handler (`inner`),
    passing everything through, with a timer for the phase the connection is in."""

    def __init__(self, listener: HttpListener, inner: asyncio.Protocol) -> None:
        self._listener = listener
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._busy = 0
        self._phase = "headers"  # headers | request | idle

    @property
    def inner(self) -> asyncio.Protocol:
        return self._inner

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        transport = self._transport
        if not self._listener._admit(self):
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._arm(self._listener.limits.header_timeout, "headers")
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._phase == "idle":
            # A new request begins: its headers are due within header_timeout.
            self._arm(self._listener.limits.header_timeout, "headers")
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if not self._admitted:
            return
        self._listener._release(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    # --- requests (told by the listener's middleware) ------------------------------------

    def request_started(self) -> None:
        self._busy += 1
        self._phase = "request"
        self._cancel()

    def request_finished(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._transport is not None and not self._transport.is_closing():
            self._arm(self._listener.limits.idle_timeout, "idle")

    # --- timers ----------------------------------------------------------------------------

    def _arm(self, seconds: float, phase: str) -> None:
        self._cancel()
        self._phase = phase
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._busy or self._transport is None:
            return
        if self._phase == "headers":
            self._listener._header_timed_out(self._transport)
        # abort, not close: nothing is owed to a client that sent no complete request, and
        # close() would wait for a slow reader to drain our buffer.
        self._transport.abort()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpListener:
    """Serves one aiohttp application on a listening socket within `limits`.

    `start(sock)` runs the app (its startup hooks) and accepts; `stop()` stops accepting,
    closes the connections and runs the app's cleanup. The app's middlewares get one more,
    outermost, that tells each connection when a request is being handled. With `https`,
    the same app is also served over TLS on its own port (the limits count both)."""

    def __init__(
        self,
        name: str,
        app: web.Application,
        limits: ListenerLimits,
        metrics: Metrics | None = None,
        https: HttpsPort | None = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.https = https
        self._tls_server: asyncio.Server | None = None
        self.tls_port: int | None = None
        self._metrics = metrics
        self._guards: dict[asyncio.Protocol, _Guard] = {}
        self._refusals = _Tally("http_connection_refused", name)
        self._timeouts = _Tally("http_header_timed_out", name)
        app.middlewares.insert(0, self._middleware())
        # aiohttp's own keep-alive bound agrees with ours (its default is an hour), and the
        # rest of a body left unread by an answer (a 401, a 408) is drained for at most
        # header_timeout before the connection closes (its default: 10 s).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=limits.idle_timeout,
            lingering_time=min(limits.header_timeout, 10.0),
        )
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    @property
    def open_connections(self) -> int:
        return len(self._guards)

    async def start(self, sock: socket.socket) -> None:
        try:
            await self._runner.setup()
            server = self._runner.server
            assert server is not None

            def protocol() -> asyncio.Protocol:
                return _Guard(self, server())

            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(protocol, sock=sock, backlog=128)
            if self.https is not None:
                # The TLS handshake gets header_timeout too; the headers' deadline follows.
                self._tls_server = await loop.create_server(
                    protocol,
                    self.https.host,
                    self.https.port,
                    backlog=128,
                    ssl=self.https.tls.context,
                    ssl_handshake_timeout=self.limits.header_timeout,
                )
        except BaseException:
            if self._server is not None:
                self._server.close()
                self._server = None
            await self._runner.cleanup()
            raise
        self.port = int(sock.getsockname()[1])
        if self._tls_server is not None:
            assert self.https is not None
            self.tls_port = int(next(iter(self._tls_server.sockets)).getsockname()[1])
            log.info(
                "https_listening", listener=self.name, host=self.https.host, port=self.tls_port
            )

    async def stop(self) -> None:
        servers = [s for s in (self._server, self._tls_server) if s is not None]
        for server in servers:
            server.close()
        await self._runner.cleanup()
        for server in servers:
            await server.wait_closed()
        self._server = self._tls_server = None

    # --- used by the connections -----------------------------------------------------------

    def _admit(self, guard: _Guard) -> bool:
        if len(self._guards) >= self.limits.max_connections:
            if self._metrics is not None:
                self._metrics.http_connection_closed(self.name, "limit")
            self._refusals.note(limit=self.limits.max_connections)
            return False
        self._guards[guard.inner] = guard
        return True

    def _release(self, guard: _Guard) -> None:
        self._guards.pop(guard.inner, None)

    def _header_timed_out(self, transport: asyncio.Transport) -> None:
        if self._metrics is not None:
            self._metrics.http_connection_closed(self.name, "header_timeout")
        peer = transport.get_extra_info("peername")
        self._timeouts.note(
            timeout_s=self.limits.header_timeout,
            peer=None if not peer else str(peer[0]),
        )

    def _middleware(self) -> Middleware:
        guards = self._guards

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            guard = guards.get(request.protocol)
            if guard is None:
                return await handler(request)
            guard.request_started()
            try:
                return await handler(request)
            finally:
                guard.request_finished()

        return track
