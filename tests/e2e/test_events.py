"""`GET /api/events` and `GET /api/overview` on a real server: a simulated charger's
connection, status changes and disconnection arrive as server-sent events in order, with
the JSON the OpenAPI description gives; the stream needs a viewer's token; open streams
end when the server stops, and the server stops at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from csms.core.users import Role
from csms.services.users import UserService
from tests.e2e.conftest import StartServer
from tests.e2e.sim import charger

AUTH = {"Authorization": "Bearer test-token"}


async def _events(response: aiohttp.ClientResponse, count: int) -> list[tuple[str, Any]]:
    """The next `count` events of a stream (comments skipped), each within 5 s."""
    found: list[tuple[str, Any]] = []
    name, data = "", ""
    while len(found) < count:
        async with asyncio.timeout(5):
            line = (await response.content.readline()).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line == "" and name:
            found.append((name, orjson.loads(data)))
            name, data = "", ""
    return found


async def test_changes_arrive_as_events_and_streams_end_at_shutdown(
    start_server: StartServer,
) -> None:
    # A stream outlives the listener's header and idle timeouts (it is one long answer).
    server = await start_server(api={"header_timeout": 0.5, "idle_timeout": 0.5})
    url = server.api_url + "/api/events"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as refused:
            assert refused.status == 401
        async with http.get(url, headers={"Authorization": "Bearer wrong"}) as refused:
            assert refused.status == 401
        async with http.get(url, headers=AUTH) as stream, http.get(url, headers=AUTH) as other:
            for response in (stream, other):
                assert response.status == 200
                assert response.headers["Content-Type"] == "text/event-stream"
                assert await response.content.readline() == b": watching\n"
            await asyncio.sleep(1.5)
            async with charger(server.url, "EV-1", connectors=2) as cp:
                await cp.status(2, "Charging")
                await cp.status(0, "Faulted", "OtherError")
            received = await _events(stream, 4)
            assert [name for name, _ in received] == [
                "connection",
                "status",
                "status",
                "connection",
            ]
            (_, up), (_, charging), (_, faulted), (_, down) = received
            assert up["charge_point_id"] == "EV-1" and up["connected"] is True
            assert charging == {
                "charge_point_id": "EV-1",
                "evse_id": 2,
                "connector_id": 1,
                "status": "Charging",
                "status_group": "Occupied",
                "error_code": "NoError",
                "at": charging["at"],
            }
            assert charging["at"].endswith("Z")
            assert (faulted["evse_id"], faulted["connector_id"]) == (0, 0)
            assert (faulted["status"], faulted["error_code"]) == ("Faulted", "OtherError")
            assert down["connected"] is False and down["at"] >= up["at"]
            assert await _events(other, 4) == received

            async with http.get(server.api_url + "/api/overview", headers=AUTH) as response:
                overview = await response.json()
            assert overview["chargers"] == {
                "total": 1,
                "connected": 0,
                "by_status": {
                    "Available": 0,
                    "Occupied": 0,
                    "Reserved": 0,
                    "Unavailable": 0,
                    "Faulted": 1,
                    "Unknown": 0,
                },
            }
            assert overview["evses"]["by_status"]["Occupied"] == 1
            assert (overview["sessions_running"], overview["power_w"]) == (0, 0.0)

            async with http.get(server.api_url + "/metrics", headers=AUTH) as response:
                text = await response.text()
            assert "\ncsms_event_streams 2\n" in text
            assert "\ncsms_event_streams_dropped_total 0\n" in text

            # The server stops at once with two streams open; both end.
            started = time.monotonic()
            await server.stop()
            assert time.monotonic() - started < 3.0
            for response in (stream, other):
                async with asyncio.timeout(5):
                    assert await response.content.read() == b""


async def test_a_viewer_disabled_meanwhile_loses_the_stream(start_server: StartServer) -> None:
    server = await start_server(api={"events_keepalive": 0.3})
    users = UserService(server.app.db, server.app.clock, "test-token")
    vera = await users.add("vera", Role.VIEWER)
    headers = {"Authorization": f"Bearer {vera.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.api_url + "/api/events", headers=headers) as stream,
    ):
        assert stream.status == 200
        assert await stream.content.readline() == b": watching\n"
        assert await stream.content.readline() == b"\n"
        async with asyncio.timeout(5):
            assert await stream.content.readline() == b": keep-alive\n"
        await users.set_enabled("vera", False)
        async with asyncio.timeout(5):
            rest = await stream.content.read()
        assert rest in (b"", b"\n", b"\n: keep-alive\n\n")
        async with http.get(server.api_url + "/api/events", headers=headers) as again:
            assert again.status == 401
