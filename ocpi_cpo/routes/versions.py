"""`GET /ocpi/versions`, `GET /ocpi/2.2.1` and `GET /ocpi/2.1.1`: the versions we speak and
our endpoints in each.

Configuration module: token A or a registered token, no routing headers.
"""

from __future__ import annotations

from aiohttp import web

from ocpi_cpo.context import REGISTRY, Access
from ocpi_cpo.transport import add_route, reply, settings_of
from ocpi_cpo.versions import (
    V211,
    V211_PATH,
    VERSION,
    VERSION_PATH,
    VERSIONS_PATH,
    version_details,
    versions_list,
)


async def get_versions(request: web.Request) -> web.Response:
    return reply(request, versions_list(settings_of(request).base_url))


async def get_version_details(request: web.Request) -> web.Response:
    endpoints = request.app[REGISTRY].endpoints
    return reply(request, version_details(settings_of(request).base_url, endpoints, VERSION))


async def get_version_details_211(request: web.Request) -> web.Response:
    endpoints = request.app[REGISTRY].endpoints
    return reply(request, version_details(settings_of(request).base_url, endpoints, V211))


def setup(app: web.Application) -> None:
    add_route(app, "GET", VERSIONS_PATH, get_versions, Access.CONFIGURATION)
    add_route(app, "GET", VERSION_PATH, get_version_details, Access.CONFIGURATION)
    add_route(app, "GET", V211_PATH, get_version_details_211, Access.CONFIGURATION, version=V211)
