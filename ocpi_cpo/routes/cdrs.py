"""CDRs module, Sender interface: `GET /ocpi/2.2.1/cdrs` pages over the CDRs the caller may
see (of sessions of tokens one of its parties owns; a hub: any party's), credits included;
`GET /ocpi/2.1.1/cdrs` in 2.1.1 (the published location embedded, else the one the CDR
recorded).

The CDRs are csms.services.billing's, read through csms.services.sessions; new ones are
also POSTed to partners (ocpi_cpo.sessions_publisher).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from csms.core.partners import InterfaceRole
from ocpi_cpo.context import LOCATION_PUBLISHER, PARTNERS
from ocpi_cpo.sessions_publisher import SESSIONS, ensure_publisher
from ocpi_cpo.transport import add_endpoint, add_route, caller_of, page_of, reply_page
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH

PATH = f"{VERSION_PATH}/cdrs"
PATH_211 = f"{V211_PATH}/cdrs"


async def list_cdrs(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[SESSIONS].cdr_page(
        caller_of(request).partner,
        date_from=page.date_from,
        date_to=page.date_to,
        offset=page.offset,
        limit=page.limit,
    )
    return reply_page(request, items, total, page)


def _location_id(cdr: Mapping[str, Any]) -> str:
    where = cdr.get("cdr_location")
    return str(where.get("id")) if isinstance(where, Mapping) else ""


async def list_cdrs_211(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[SESSIONS].cdr_page(
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
            locations = await publisher.locations_211(conn, [_location_id(c) for c in items])
    rendered = v211.rendered(lambda c: v211.cdr(c, locations.get(_location_id(c))), items)
    return reply_page(request, rendered, total, page)


def setup(app: web.Application) -> None:
    ensure_publisher(app)
    add_endpoint(app, "cdrs", InterfaceRole.SENDER, PATH)
    add_route(app, "GET", PATH, list_cdrs)
    add_endpoint(app, "cdrs", InterfaceRole.SENDER, PATH_211, V211)
    add_route(app, "GET", PATH_211, list_cdrs_211, version=V211)
