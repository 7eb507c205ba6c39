"""Every listener bounds what a client can make it hold, on a real server: half-open requests
to the OCPI port are closed after `ocpi.header_timeout` and capped at
`ocpi.max_connections` (more are answered 503 at once) while chargers still connect and a
normal OCPI request still works; the operator API does the same; a body that does not arrive
is answered 408; an idle keep-alive connection is closed; the OCPP listener drops an
unfinished WebSocket handshake after `ocpp.handshake_timeout`; the listener behaves the
same on uvloop, which `csms serve` runs on."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from csms.gateway.listeners import HttpListener, ListenerLimits
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import charger, until

HEADER_TIMEOUT = 3.0
CAP = 40
# A partial request: no blank line ever ends its headers.
PARTIAL = b"GET /ocpi/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class Half:
    """One raw TCP connection that sent `PARTIAL` and nothing more."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        # Taken before connecting: the server's clock for this connection cannot start
        # earlier, however long the (shared) event loop took to come back to the client.
        self.opened = opened

    async def closed_after(self, limit: float) -> tuple[float, bytes]:
        """Seconds from opening until the server closed it, and what it said before."""
        received = b""
        try:
            async with asyncio.timeout(limit):
                while chunk := await self.reader.read(4096):
                    received += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return time.monotonic() - self.opened, received

    def close(self) -> None:
        self.writer.close()


async def half_open(port: int, payload: bytes = PARTIAL) -> Half:
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    return Half(reader, writer, opened)


@asynccontextmanager
async def many(port: int, count: int, payload: bytes = PARTIAL) -> AsyncIterator[list[Half]]:
    halves = [await half_open(port, payload) for _ in range(count)]
    try:
        yield halves
    finally:
        for h in halves:
            h.close()


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


async def versions(server: Running, token: str) -> tuple[int, dict[str, object]]:
    """GET /ocpi/versions on a connection of its own, closed after the answer."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.ocpi_url}/ocpi/versions",
            headers={**token_header(token), "Connection": "close"},
        ) as response,
    ):
        return response.status, await response.json()


async def open_ocpi(server: Running) -> int:
    return server.app.http_connections()["ocpi"]


async def test_half_open_ocpi_requests_are_timed_out_and_capped(
    start_server: StartServer,
) -> None:
    server = await start_server(
        ocpi={"header_timeout": HEADER_TIMEOUT, "max_connections": CAP, "idle_timeout": 30}
    )
    port = server.app.ocpi_port
    assert port is not None
    invitation = await server.app.partners.add("emsp")

    async with many(port, CAP - 1) as held:

        async def admitted() -> bool:
            return await open_ocpi(server) == CAP - 1

        await until(admitted, "the half-open connections admitted", 5)
        # Below the cap a normal request is served meanwhile.
        status, body = await versions(server, invitation.token_a)
        assert status == 200 and body["status_code"] == 1000
        await until(admitted, "the served request's connection released", 5)
        async with many(port, 1) as last, many(port, 4, b"") as refused, many(port, 1) as eager:
            # Over the cap: answered 503 and closed at once, nothing held. (A client that
            # sent bytes we never read may see a reset instead of the answer.)
            for extra in refused:
                took, said = await extra.closed_after(2.0)
                assert said.startswith(b"HTTP/1.1 503 ") and b"too many connections" in said
                assert took < 1.0
            took, said = await eager[0].closed_after(2.0)
            assert took < 1.0 and b" 200 " not in said
            assert await open_ocpi(server) == CAP
            # The OCPI port is full: chargers still connect (no file descriptors run out).
            async with charger(server.url, "LISTEN-1") as cp:
                assert (await cp.heartbeat())["currentTime"]
            # Every half-open one is closed once its headers are overdue, none before.
            for h in [*held, *last]:
                took, said = await h.closed_after(HEADER_TIMEOUT + 5)
                assert HEADER_TIMEOUT * 0.9 <= took <= HEADER_TIMEOUT + 3, took
                assert said == b""

    async def released() -> bool:
        return await open_ocpi(server) == 0

    await until(released, "every connection released", 5)
    status, body = await versions(server, invitation.token_a)
    assert status == 200 and body["status_code"] == 1000

    async with aiohttp.ClientSession() as http:
        metrics = await (
            await http.get(
                f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
            )
        ).text()
    assert 'csms_http_connections_closed_total{listener="ocpi",reason="limit"} 5' in metrics
    assert (
        f'csms_http_connections_closed_total{{listener="ocpi",reason="header_timeout"}} {CAP}'
        in metrics
    )


async def test_the_operator_api_bounds_headers_bodies_idle_and_connections(
    start_server: StartServer,
) -> None:
    server = await start_server(
        api={
            "header_timeout": 1.0,
            "body_timeout": 1.0,
            "idle_timeout": 1.5,
            "max_connections": 3,
        }
    )
    port = server.app.api_port
    assert port is not None
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    async with many(port, 2, b"GET /health HTTP/1.1\r\n") as slow, many(port, 1, request) as idle:
        # The complete request is answered; the connection then stays for idle_timeout.
        answer = await asyncio.wait_for(idle[0].reader.readuntil(b'"version"'), 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
        async with many(port, 1, b"") as extra:
            took, said = await extra[0].closed_after(2.0)
            assert said.startswith(b"HTTP/1.1 503 ") and took < 1.0
        for h in slow:
            took, said = await h.closed_after(5)
            assert 0.9 <= took <= 4 and said == b""
        took, _ = await idle[0].closed_after(5)
        assert 1.4 <= took <= 5

    # A body that does not arrive within api.body_timeout: 408, the connection closed.
    slow_body = (
        b"POST /api/chargers/CP-1/remote/reset HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer test-token\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"hard":'
    )
    async with many(port, 1, slow_body) as posted:
        took, said = await posted[0].closed_after(5)
        assert said.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 1 s" in said
        assert 0.9 <= took <= 4
    async with aiohttp.ClientSession() as http:
        health = await http.get(f"{server.api_url}/health")
        assert health.status == 200


async def test_an_ocpi_body_that_does_not_arrive_is_408(start_server: StartServer) -> None:
    server = await start_server(ocpi={"body_timeout": 1.0, "header_timeout": 1.0})
    port = server.app.ocpi_port
    assert port is not None
    invitation = await server.app.partners.add("emsp")
    auth = token_header(invitation.token_a)["Authorization"].encode()
    head = (
        b"POST /ocpi/2.2.1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"token": '
    )
    async with many(port, 1, head) as posted:
        took, said = await posted[0].closed_after(5)
    assert said.startswith(b"HTTP/1.1 408 ") and b'"status_code":2000' in said
    assert b"did not arrive within 1 s" in said and 0.9 <= took <= 4


async def test_an_unfinished_websocket_handshake_is_dropped(start_server: StartServer) -> None:
    server = await start_server(ocpp={"handshake_timeout": 1.0})
    upgrade = b"GET /ocpp/HALF-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    async with many(server.port, 20, upgrade) as halves:
        # Chargers connect meanwhile.
        async with charger(server.url, "WHOLE-1") as cp:
            assert (await cp.heartbeat())["currentTime"]
        for h in halves:
            took, said = await h.closed_after(6)
            assert 0.9 <= took <= 5, took
            assert b"101" not in said


def test_the_listener_under_uvloop() -> None:
    """`csms serve` runs on uvloop, whose transports are not asyncio's classes: the same
    bounds hold there (and aiohttp's own 400 for a malformed request still gets out)."""
    uvloop = pytest.importorskip("uvloop")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/health", health)
        limits = ListenerLimits(header_timeout=0.5, idle_timeout=1.0, max_connections=2)
        listener = HttpListener("api", app, limits)
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        await listener.start(sock)
        assert listener.port is not None
        try:
            async with many(listener.port, 2) as held, many(listener.port, 1, b"") as extra:
                took, said = await extra[0].closed_after(2.0)
                assert said.startswith(b"HTTP/1.1 503 ") and took < 0.5
                for h in held:
                    took, said = await h.closed_after(3.0)
                    assert 0.45 <= took <= 2.5 and said == b""
            bad = b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
            good = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            async with many(listener.port, 1, bad) as refused, many(listener.port, 1, good) as ok:
                _, said = await refused[0].closed_after(3.0)
                assert said.startswith(b"HTTP/1.0 400 ")
                took, said = await ok[0].closed_after(3.0)  # closed once idle
                assert said.startswith(b"HTTP/1.1 200 ") and said.endswith(b"ok")
                assert 0.9 <= took <= 2.5
            assert listener.open_connections == 0
        finally:
            await listener.stop()

    uvloop.run(scenario())
