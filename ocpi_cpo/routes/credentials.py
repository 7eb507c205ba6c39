"""`/ocpi/2.2.1/credentials` and `/ocpi/2.1.1/credentials`: GET our credentials, POST to
register, PUT to update (new endpoints, new tokens, or the other version), DELETE to
unregister. The version of the path is the version the partner registers in.

Configuration module: token A or a registered token, no routing headers. The handshake
itself is ocpi_cpo.registration's.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from csms.core.partners import Direction, InterfaceRole, PartnerStatus
from csms.services.partners import StateChanged
from ocpi_cpo.context import REGISTRAR, Access
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure, RegistrationError
from ocpi_cpo.transport import (
    add_endpoint,
    add_route,
    caller_of,
    ids_of,
    read_json,
    reply,
    settings_of,
    version_of,
)
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH

log = structlog.get_logger("ocpi_cpo.credentials")

PATH = f"{VERSION_PATH}/credentials"
PATH_211 = f"{V211_PATH}/credentials"


def _not_allowed(message: str) -> OcpiFailure:
    return OcpiFailure(Status.CLIENT_ERROR, message, http_status=405)


async def get_credentials(request: web.Request) -> web.Response:
    """Our credentials, with the token the caller authenticated with."""
    us = settings_of(request).us
    return reply(request, us.credentials(caller_of(request).token, version_of(request)))


async def post_credentials(request: web.Request) -> web.Response:
    caller = caller_of(request)
    if caller.registered:
        raise _not_allowed("already registered: use PUT to update, DELETE to unregister")
    if caller.partner.direction is Direction.OUTBOUND:
        raise _not_allowed("we are registering with you ourselves; wait for our POST to end")
    return await _handshake(request)


async def put_credentials(request: web.Request) -> web.Response:
    if not caller_of(request).registered:
        raise _not_allowed("not registered: POST your credentials first")
    return await _handshake(request)


async def _handshake(request: web.Request) -> web.Response:
    body = await read_json(request)
    caller = caller_of(request)
    try:
        _partner, token = await request.app[REGISTRAR].accept_credentials(
            caller, body, ids_of(request).correlation_id, version_of(request)
        )
    except RegistrationError as exc:
        log.warning(
            "ocpi_registration_failed",
            method=request.method,
            status_code=int(exc.status),
            reason=str(exc),
        )
        raise OcpiFailure(exc.status, str(exc)) from None
    except StateChanged as exc:
        raise _not_allowed(str(exc)) from None
    return reply(request, settings_of(request).us.credentials(token, version_of(request)))


async def delete_credentials(request: web.Request) -> web.Response:
    caller = caller_of(request)
    if not caller.registered or caller.partner.status is not PartnerStatus.REGISTERED:
        raise _not_allowed("not registered")
    try:
        await request.app[REGISTRAR].partners.unregister(caller)
    except StateChanged as exc:
        raise _not_allowed(str(exc)) from None
    log.info("ocpi_partner_unregistered", ocpi_party=caller.partner.parties)
    return reply(request)


def setup(app: web.Application) -> None:
    add_endpoint(app, "credentials", InterfaceRole.SENDER, PATH)
    add_route(app, "GET", PATH, get_credentials, Access.CONFIGURATION)
    add_route(app, "POST", PATH, post_credentials, Access.CONFIGURATION)
    add_route(app, "PUT", PATH, put_credentials, Access.CONFIGURATION)
    add_route(app, "DELETE", PATH, delete_credentials, Access.CONFIGURATION)
    add_endpoint(app, "credentials", InterfaceRole.SENDER, PATH_211, V211)
    for method, handler in (
        ("GET", get_credentials),
        ("POST", post_credentials),
        ("PUT", put_credentials),
        ("DELETE", delete_credentials),
    ):
        add_route(app, method, PATH_211, handler, Access.CONFIGURATION, V211)
