"""Tariffs module, Sender interface: `GET /ocpi/2.2.1/tariffs` pages over our tariffs, and
`GET /ocpi/2.1.1/tariffs` in 2.1.1 (a tariff 2.1.1 cannot describe is left out of the page).

Tariffs are public to every registered partner; the objects come from csms.services.billing.
"""

from __future__ import annotations

from aiohttp import web

from csms.core.partners import InterfaceRole
from ocpi_cpo.context import BILLING
from ocpi_cpo.transport import add_endpoint, add_route, page_of, reply_page
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH


async def list_tariffs(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[BILLING].tariff_page(
        date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
    )
    return reply_page(request, items, total, page)


async def list_tariffs_211(request: web.Request) -> web.Response:
    page = page_of(request)
    items, total = await request.app[BILLING].tariff_page(
        date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
    )
    return reply_page(request, v211.rendered(v211.tariff, items), total, page)


def setup(app: web.Application) -> None:
    if BILLING not in app:
        raise ValueError("the tariffs module needs the billing service (build_ocpi_app billing=)")
    path = f"{VERSION_PATH}/tariffs"
    add_endpoint(app, "tariffs", InterfaceRole.SENDER, path)
    add_route(app, "GET", path, list_tariffs)
    add_endpoint(app, "tariffs", InterfaceRole.SENDER, f"{V211_PATH}/tariffs", V211)
    add_route(app, "GET", f"{V211_PATH}/tariffs", list_tariffs_211, version=V211)
