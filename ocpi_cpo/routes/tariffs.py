"""Tariffs module, Sender interface: `GET /ocpi/2.2.1/tariffs` pages over our tariffs.

Tariffs are public to every registered partner; the objects come from csms.services.billing.
"""

from __future__ import annotations

from aiohttp import web

from csms.core.partners import InterfaceRole
from ocpi_cpo.context import BILLING
from ocpi_cpo.transport import add_endpoint, add_route, page_of, reply_page
from ocpi_cpo.versions import VERSION_PATH


async def list_tariffs(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[BILLING].tariff_page(
        date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
    )
    return reply_page(request, items, total, page)


def setup(app: web.Application) -> None:
    if BILLING not in app:
        raise ValueError("the tariffs module needs the billing service (build_ocpi_app billing=)")
    path = f"{VERSION_PATH}/tariffs"
    add_endpoint(app, "tariffs", InterfaceRole.SENDER, path)
    add_route(app, "GET", path, list_tariffs)
