"""CDRs module, Sender interface: `GET /ocpi/2.2.1/cdrs` pages over the CDRs the caller may
see (of sessions of tokens one of its parties owns; a hub: any party's), credits included.

The CDRs are csms.services.billing's, read through csms.services.sessions; new ones are
also POSTed to partners (ocpi_cpo.sessions_publisher).
"""

from __future__ import annotations

from aiohttp import web

from csms.core.partners import InterfaceRole
from ocpi_cpo.sessions_publisher import SESSIONS, ensure_publisher
from ocpi_cpo.transport import add_endpoint, add_route, caller_of, page_of, reply_page
from ocpi_cpo.versions import VERSION_PATH

PATH = f"{VERSION_PATH}/cdrs"


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


def setup(app: web.Application) -> None:
    ensure_publisher(app)
    add_endpoint(app, "cdrs", InterfaceRole.SENDER, PATH)
    add_route(app, "GET", PATH, list_cdrs)
