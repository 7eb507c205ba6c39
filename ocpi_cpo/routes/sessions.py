"""Sessions module, Sender interface: `GET /ocpi/2.2.1/sessions` pages over the charging
sessions the caller may see (those of tokens one of its parties owns; a hub: any party's),
and `GET /ocpi/2.1.1/sessions` in 2.1.1 (with the published location embedded; a session
whose location is not published cannot be shown in 2.1.1 and is left out of the page).

The objects come from csms.services.sessions, which also pushes them
(ocpi_cpo.sessions_publisher). Charging preferences (PUT .../{session_id}/charging_preferences)
are answered HTTP 404 with 2001, as 2.2.1 says for EVSEs without CHARGING_PREFERENCES_CAPABLE:
none of ours has it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from csms.core.partners import InterfaceRole
from ocpi_cpo.context import LOCATION_PUBLISHER, PARTNERS
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.sessions_publisher import SESSIONS, ensure_publisher
from ocpi_cpo.transport import add_endpoint, add_route, caller_of, page_of, reply_page
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH

PATH = f"{VERSION_PATH}/sessions"
PATH_211 = f"{V211_PATH}/sessions"


async def list_sessions(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[SESSIONS].page(
        caller_of(request).partner,
        date_from=page.date_from,
        date_to=page.date_to,
        offset=page.offset,
        limit=page.limit,
    )
    return reply_page(request, items, total, page)


async def list_sessions_211(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[SESSIONS].page(
        caller_of(request).partner,
        date_from=page.date_from,
        date_to=page.date_to,
        offset=page.offset,
        limit=page.limit,
    )
    locations: dict[str, Any] = {}
    publisher = request.app.get(LOCATION_PUBLISHER)
    if publisher is not None:
        async with request.app[PARTNERS].db.read() as conn:
            locations = await publisher.locations_211(
                conn, [str(s.get("location_id")) for s in items]
            )
    rendered = v211.rendered(
        lambda s: v211.session(s, locations.get(str(s.get("location_id")))), items
    )
    return reply_page(request, rendered, total, page)


async def put_charging_preferences(request: web.Request) -> web.Response:
    raise OcpiFailure(
        Status.INVALID_PARAMETERS,
        "charging preferences are not supported: no EVSE is CHARGING_PREFERENCES_CAPABLE",
        http_status=404,
    )


def setup(app: web.Application) -> None:
    ensure_publisher(app)
    add_endpoint(app, "sessions", InterfaceRole.SENDER, PATH)
    add_route(app, "GET", PATH, list_sessions)
    add_route(app, "PUT", PATH + "/{session_id}/charging_preferences", put_charging_preferences)
    add_endpoint(app, "sessions", InterfaceRole.SENDER, PATH_211, V211)
    add_route(app, "GET", PATH_211, list_sessions_211, version=V211)
