"""`GET /api/overview` (the network at a glance) and `GET /api/events` (station changes as
server-sent events), read by the staff dashboard and open to any viewer's token.

The stream: `event: status` per connector status change and `event: connection` per
connect or disconnect, each with a JSON `data:` line, as this process commits them; a
comment line every `keepalive` seconds. A client that reads too slowly is dropped (its
stream ends; see csms.services.overview.LiveFeed) and one that stops reading for
`write_timeout` seconds too; every stream ends when the server stops. The token is checked
again at every keep-alive: a stream of a user disabled, rotated away or demoted meanwhile
ends within `keepalive` seconds, as their next request would be refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web

from csms.services.overview import LiveFeed, OverviewService
from csms.views import overview_json, station_event_json

log = structlog.get_logger("csms.api")


@dataclass(frozen=True, slots=True)
class LiveContext:
    overview: OverviewService
    feed: LiveFeed
    keepalive: float = 15.0
    write_timeout: float = 10.0


LIVE = web.AppKey("live", LiveContext)
# Whether the request's token would still be let in (the API's guard, asked again).
Recheck = Callable[[web.Request], Awaitable[bool]]
RECHECK: web.AppKey[Recheck] = web.AppKey("live_recheck")


async def overview(request: web.Request) -> web.Response:
    found = await request.app[LIVE].overview.overview()
    return web.Response(body=orjson.dumps(overview_json(found)), content_type="application/json")


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def events(request: web.Request) -> web.StreamResponse:
    context = request.app[LIVE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            # A proxy (nginx) must pass each event on at once.
            "X-Accel-Buffering": "no",
        }
    )
    watcher = context.feed.watch()
    ended = "closed"
    try:
        await response.prepare(request)
        await _send(response, b": watching\n\n", context.write_timeout)
        while True:
            try:
                async with asyncio.timeout(context.keepalive):
                    event = await watcher.next()
            except TimeoutError:
                if not await request.app[RECHECK](request):
                    ended = "token_refused"
                    break
                await _send(response, b": keep-alive\n\n", context.write_timeout)
                continue
            if event is None:
                ended = "dropped" if watcher.dropped else "server_stopping"
                break
            await _send(response, _frame(*station_event_json(event)), context.write_timeout)
    except TimeoutError:
        ended = "write_timed_out"
    except (ConnectionError, RuntimeError):
        # The client went away (aiohttp raises ClientConnectionResetError, a ConnectionError;
        # RuntimeError when the transport is already closed).
        ended = "client_gone"
    finally:
        watcher.close()
        log.info("event_stream_ended", reason=ended, peer=request.remote)
    return response


async def _send(response: web.StreamResponse, data: bytes, seconds: float) -> None:
    """Write within `seconds`: a client that stops reading is dropped (TimeoutError)."""
    async with asyncio.timeout(seconds):
        await response.write(data)


async def _stop_streams(app: web.Application) -> None:
    app[LIVE].feed.close()


def add_routes(app: web.Application, context: LiveContext, recheck: Recheck) -> None:
    app[LIVE] = context
    app[RECHECK] = recheck
    app.router.add_get("/api/overview", overview, allow_head=False)
    app.router.add_get("/api/events", events, allow_head=False)
    # Before aiohttp waits for the handlers still running: the streams end first.
    app.on_shutdown.append(_stop_streams)


OVERVIEW_EXAMPLE = {
    "chargers": {
        "total": 3,
        "connected": 2,
        "by_status": {
            "Available": 1,
            "Occupied": 1,
            "Reserved": 0,
            "Unavailable": 0,
            "Faulted": 0,
            "Unknown": 1,
        },
    },
    "evses": {
        "total": 4,
        "by_status": {
            "Available": 3,
            "Occupied": 1,
            "Reserved": 0,
            "Unavailable": 0,
            "Faulted": 0,
            "Unknown": 0,
        },
    },
    "sessions_running": 1,
    "power_w": 11000.0,
    "at": "2026-12-05T10:00:00Z",
}


def openapi_paths() -> dict[str, Any]:
    return {
        "/api/overview": {
            "get": {
                "summary": "The network at a glance: chargers by status and connection, EVSEs "
                "by status, running sessions and the power they draw now",
                "description": "A charger counts under its most pressing status among its "
                "EVSEs and itself (Faulted, Unavailable, Occupied, Reserved, Available; "
                "Unknown when it never reported one), in the five-value (OCPP 2.0.1) view. "
                "A disconnected charger keeps its last status. `power_w` sums the newest "
                "active-power reading of each running session.",
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object"},
                                "example": OVERVIEW_EXAMPLE,
                            }
                        },
                    },
                    "401": {"description": "missing or wrong bearer token"},
                },
            }
        },
        "/api/events": {
            "get": {
                "summary": "Station changes as they happen (server-sent events)",
                "description": "`text/event-stream`. `event: status` per connector status "
                "change, `data:` `{charge_point_id, evse_id, connector_id, status, "
                "status_group, error_code, at}`; `event: connection` per connect or "
                "disconnect, `data:` `{charge_point_id, connected, at}`. A comment line "
                "(`: keep-alive`) every 15 s (`api.events_keepalive`), when the token is checked "
                "again (a user disabled meanwhile loses the stream). Changes committed by "
                "this process only (with "
                "several nodes, watch each). A client that falls 1000 changes behind, or "
                "stops reading for 10 s, is dropped: its stream ends; reconnect and read "
                "`/api/chargers` again. Every stream ends when the server stops. Send the "
                "token as `Authorization: Bearer` (a browser: fetch() with a streamed "
                "body, not EventSource).",
                "responses": {
                    "200": {
                        "description": "the stream",
                        "content": {
                            "text/event-stream": {
                                "schema": {"type": "string"},
                                "example": "event: status\ndata: "
                                '{"charge_point_id":"CP1","evse_id":1,"connector_id":1,'
                                '"status":"Charging","status_group":"Occupied",'
                                '"error_code":"NoError","at":"2026-12-05T10:00:00Z"}\n\n'
                                "event: connection\ndata: "
                                '{"charge_point_id":"CP2","connected":false,'
                                '"at":"2026-12-05T10:00:02Z"}\n\n',
                            }
                        },
                    },
                    "401": {"description": "missing or wrong bearer token"},
                },
            }
        },
    }
