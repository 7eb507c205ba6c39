"""OCPI transport rules for every request we serve: the middleware (request ids, token
authentication, routing headers, errors as envelopes, no traceback ever out), route and
endpoint registration, and the helpers handlers answer with.

How a module uses it (see ocpi_cpo.routes.credentials for a real one):

    def setup(app: web.Application) -> None:
        path = f"{VERSION_PATH}/locations"
        add_endpoint(app, "locations", InterfaceRole.SENDER, path)
        add_route(app, "GET", path, list_locations)                # registered partners only
        add_route(app, "GET", path + "/{location_id}", get_location)

    async def list_locations(request: web.Request) -> web.Response:
        caller = caller_of(request)                                 # the registered partner
        page = page_of(request)                                     # 2001 on bad parameters
        items, total = ...
        return reply_page(request, items, total, page)

An application mounted on the OCPI app (`app.add_subapp(prefix, sub)`, as csms.app mounts the
ad-hoc payment pages at /pay) is not OCPI: requests routed into it (unknown paths under its
prefix too) reach it untouched, without token, envelope or request ids.

HTTP mapping: 401 for a missing/unknown token or token A on a functional module; 400 +
2001 for a POST/PUT/PATCH body that is not JSON (or nests too deep), whatever the route;
408 for a body that does not arrive within ocpi.body_timeout; 413 + 2001 for one over
ocpi.max_body_size; 404 + 2000 for an unknown path; 500 + 3000 for a fault (logged
with the request id); otherwise what the handler says (OcpiFailure, default HTTP 200).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import structlog
from aiohttp import web

from csms.core.bounds import OutOfBounds, check_json_depth, check_no_nul, check_url_no_nul
from csms.core.errors import InvalidParty
from csms.core.failures import address_key, retry_after
from csms.core.parties import Party, destination
from csms.core.partners import InterfaceRole
from csms.services.partners import Caller
from ocpi_cpo import profiles
from ocpi_cpo.authorization import token_candidates
from ocpi_cpo.client import Routing
from ocpi_cpo.context import (
    AUTH_LIMITS,
    PARTNERS,
    REGISTRY,
    SETTINGS,
    Access,
    OcpiSettings,
    Registry,
)
from ocpi_cpo.envelope import Status, envelope, format_datetime
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.pagination import Page, PageError, page_headers, parse_page
from ocpi_cpo.versions import VERSION, OurEndpoint

log = structlog.get_logger("ocpi_cpo.transport")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTING_HEADERS = (
    "OCPI-from-country-code",
    "OCPI-from-party-id",
    "OCPI-to-country-code",
    "OCPI-to-party-id",
)


@dataclass(frozen=True, slots=True)
class RequestIds:
    request_id: str
    correlation_id: str


CALLER = web.RequestKey("ocpi_caller", Caller)
IDS = web.RequestKey("ocpi_ids", RequestIds)
_ACCESS = web.RequestKey("ocpi_access", Access)
# The parsed JSON body of a request that carries one (POST, PUT, PATCH).
_BODY = web.RequestKey("ocpi_body", object)
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class _Unauthorized(Exception):
    pass


class _Limited(Exception):
    """Too many unknown tokens from the sender's address: wait `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"too many unknown tokens from your address: try again in {retry_after(seconds)} s"
        )
        self.seconds = seconds


# --- registration of endpoints and routes ------------------------------------------------


def add_endpoint(
    app: web.Application,
    identifier: str,
    role: InterfaceRole,
    path: str,
    version: str = VERSION,
) -> None:
    """List an endpoint of ours in the version details of `version` (URL = ocpi.base_url +
    path; 2.1.1 details list it without its role)."""
    app[REGISTRY].endpoints.append(OurEndpoint(identifier, role, path, version))


def add_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    access: Access = Access.FUNCTIONAL,
    version: str = VERSION,
) -> None:
    """Serve `method path` (with or without a trailing slash) with `handler`, behind the
    token rule `access`. Routes added any other way are answered 404. `version`: the OCPI
    version the route speaks (2.1.1 has no routing headers: none are answered)."""
    route = app.router.add_route(method, path.rstrip("/") + "{_slash:/?}", handler)
    app[REGISTRY].access[route] = access
    app[REGISTRY].versions[route] = version


# --- what handlers use ---------------------------------------------------------------------


def settings_of(request: web.Request) -> OcpiSettings:
    return request.app[SETTINGS]


def caller_of(request: web.Request) -> Caller:
    """The authenticated caller (its partner, token, encoding, one-time or registered)."""
    return request[CALLER]


def ids_of(request: web.Request) -> RequestIds:
    return request[IDS]


def version_of(request: web.Request) -> str:
    """The OCPI version of the route that serves the request (add_route's `version`)."""
    return request.app[REGISTRY].versions.get(request.match_info.route, VERSION)


def replace_body(request: web.Request, body: Any) -> None:
    """Hand the handler `body` instead of what was sent: a 2.1.1 route converts the body to
    2.2.1 and then runs the 2.2.1 handler."""
    request[_BODY] = body


def request_routing(request: web.Request) -> dict[str, str]:
    """The routing headers the request carried (absent ones left out)."""
    return {h: request.headers[h] for h in ROUTING_HEADERS if request.headers.get(h)}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any) -> bytes:
    """JSON as OCPI wants it: datetimes as OCPI DateTime (UTC, Z), Decimals as numbers."""
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def reply(
    request: web.Request,
    data: Any = None,
    *,
    status: int = Status.SUCCESS,
    message: str | None = None,
    http_status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An OCPI answer: the envelope around `data`, timestamped now (as the caller's
    profile wants it: ocpi_cpo.profiles.served)."""
    caller = request.get(CALLER)
    if caller is not None:
        data = profiles.served(caller.partner.profile, data)
    body = envelope(data, request.app[SETTINGS].clock(), status, message)
    return web.Response(
        body=dumps(body),
        status=http_status,
        content_type="application/json",
        headers=headers,
    )


def page_of(request: web.Request) -> Page:
    """offset/limit/date_from/date_to of a list request, limit capped at ocpi.page_limit
    (or lower, at the caller's profile's page_limit). Bad values are answered 2001."""
    most = request.app[SETTINGS].page_limit
    caller = request.get(CALLER)
    if caller is not None:
        most = profiles.page_limit(caller.partner.profile, most)
    try:
        return parse_page(request.query, most)
    except PageError as exc:
        raise OcpiFailure(Status.INVALID_PARAMETERS, str(exc)) from None


def reply_page(
    request: web.Request, items: list[Any], total: int, page: Page, **kwargs: Any
) -> web.Response:
    """One page of a list: the items, X-Total-Count, X-Limit and, unless it is the last
    page, an absolute Link to the next one that keeps the caller's filters."""
    url = request.app[SETTINGS].url(request.path)
    headers = page_headers(url, request.query.items(), page, len(items), total)
    return reply(request, items, headers=headers, **kwargs)


def reply_encoded_page(
    request: web.Request, items: list[bytes], total: int, page: Page
) -> web.Response:
    """`reply_page` for items already encoded as JSON (cached objects): the same envelope
    and headers, without decoding and encoding them again (unless the caller's profile
    changes what it is served: then decoded and shaped)."""
    caller = request.get(CALLER)
    if caller is not None and profiles.changes_served(caller.partner.profile):
        return reply_page(request, [orjson.loads(i) for i in items], total, page)
    url = request.app[SETTINGS].url(request.path)
    headers = page_headers(url, request.query.items(), page, len(items), total)
    now = request.app[SETTINGS].clock()
    tail = dumps(envelope(None, now))  # {"status_code":1000,...}
    body = b'{"data":[' + b",".join(items) + b"]," + tail[1:]
    return web.Response(body=body, status=200, content_type="application/json", headers=headers)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON. Every POST, PUT and PATCH body is read and parsed once the
    caller is authenticated and before its handler runs (`_dispatch`), so that malformed
    JSON is answered HTTP 400 with 2001 whatever the handler would check first."""
    if _BODY in request:
        return request[_BODY]
    return await _read_body(request)


class _BodyTimedOut(Exception):
    pass


async def _read_body(request: web.Request) -> Any:
    """The body, within ocpi.body_timeout and ocpi.max_body_size (413), as JSON no deeper
    than csms.core.bounds.MAX_JSON_DEPTH; 400 + 2001 when it is not."""
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(settings.body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise _BodyTimedOut(
            f"the request body did not arrive within {settings.body_timeout:g} s"
        ) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OcpiFailure(
            Status.INVALID_PARAMETERS, f"the body is not valid JSON: {exc}", http_status=400
        ) from None
    try:
        check_json_depth(body)
        check_no_nul(raw, body)
    except OutOfBounds as exc:
        raise OcpiFailure(Status.INVALID_PARAMETERS, str(exc), http_status=400) from None
    return body


# --- the middleware -------------------------------------------------------------------------


def _in_sub_app(request: web.Request) -> bool:
    """Whether the request was routed into an application mounted on ours (`add_subapp`,
    e.g. csms.payweb's pages at /pay): the innermost app it was routed through is not the
    one whose middleware runs."""
    return request.match_info.apps[-1] is not request.app


@web.middleware
async def transport_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _in_sub_app(request):
        # Not OCPI: served by the mounted application as it answers (its own pages, its own
        # errors), with no OCPI token, envelope, request ids or routing headers.
        return await handler(request)
    ids = RequestIds(
        request.headers.get("X-Request-ID") or str(uuid.uuid4()),
        request.headers.get("X-Correlation-ID") or str(uuid.uuid4()),
    )
    request[IDS] = ids
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(
        request_id=ids.request_id, correlation_id=ids.correlation_id
    ):
        response = await _answer(request, handler)
        response.headers["X-Request-ID"] = ids.request_id
        response.headers["X-Correlation-ID"] = ids.correlation_id
        if (
            request.get(_ACCESS) is Access.FUNCTIONAL
            and CALLER in request
            and version_of(request) == VERSION
        ):
            response.headers.update(_routing_answer(request))
        (log.debug if response.status < 400 else log.info)(
            "ocpi_request_answered",
            method=request.method,
            path=request.path,
            http_status=response.status,
            ocpi_partner=request[CALLER].partner.name if CALLER in request else None,
            request_id=ids.request_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await _dispatch(request, handler)
    except OcpiFailure as exc:
        return reply(request, status=exc.status, message=exc.message, http_status=exc.http_status)
    except _Unauthorized as exc:
        response = reply(request, status=Status.CLIENT_ERROR, message=str(exc), http_status=401)
        response.headers["WWW-Authenticate"] = "Token"
        return response
    except _Limited as exc:
        response = reply(request, status=Status.CLIENT_ERROR, message=str(exc), http_status=429)
        response.headers["Retry-After"] = retry_after(exc.seconds)
        return response
    except _BodyTimedOut as exc:
        response = reply(request, status=Status.CLIENT_ERROR, message=str(exc), http_status=408)
        # The rest of the body may still come: the connection is not reused.
        response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status = Status.INVALID_PARAMETERS if exc.status == 413 else Status.CLIENT_ERROR
        if exc.status >= 500:
            status = Status.SERVER_ERROR
        message = "unknown path" if exc.status == 404 else exc.reason
        response = reply(request, status=status, message=message, http_status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception(
            "ocpi_request_failed",
            method=request.method,
            path=request.path,
            request_id=request[IDS].request_id,
        )
        return reply(
            request,
            status=Status.SERVER_ERROR,
            message=f"internal error; request id {request[IDS].request_id}",
            http_status=500,
        )


async def _dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    if match_info.http_exception is not None:
        raise match_info.http_exception
    try:
        check_url_no_nul(request.path, request.query.items())
    except OutOfBounds as exc:
        raise OcpiFailure(Status.INVALID_PARAMETERS, str(exc), http_status=400) from None
    registry: Registry = request.app[REGISTRY]
    access = registry.access.get(match_info.route)
    if access is None:
        raise web.HTTPNotFound()
    request[_ACCESS] = access
    caller = await _authenticate(request, access)
    request[CALLER] = caller
    with structlog.contextvars.bound_contextvars(ocpi_partner=caller.partner.name):
        if request.method in _WITH_BODY:
            request[_BODY] = await _read_body(request)
        return await handler(request)


async def _authenticate(request: web.Request, access: Access) -> Caller:
    """The caller of a known token. While the sender's address waits out the back-off its
    unknown tokens earned (csms.core.failures), 429 without looking at the token."""
    limits = request.app.get(AUTH_LIMITS)
    peer = address_key(request.remote)
    if limits is not None:
        wait = limits.limiter.wait(peer)
        if wait > 0:
            limits.limited()
            raise _Limited(wait)
    candidates = token_candidates(request.headers.get("Authorization"))
    if not candidates:
        raise _Unauthorized("missing Authorization: Token header")
    partners = request.app[PARTNERS]
    caller = await partners.authenticate(candidates)
    if caller is None:
        if limits is not None:
            limits.failed()
            failure = limits.limiter.failed(peer)
            if failure.started_limiting:
                log.warning(
                    "auth_failures_limited",
                    listener="ocpi",
                    peer=peer,
                    failures=failure.failures,
                    wait_s=failure.wait,
                )
        raise _Unauthorized("unknown credentials token")
    if access is Access.FUNCTIONAL and not caller.registered:
        raise _Unauthorized("this token is valid only for versions and credentials")
    if caller.registered and caller.encoding != caller.partner.token_encoding:
        await partners.note_encoding(caller.partner, caller.encoding)
        partner = dataclasses.replace(caller.partner, token_encoding=caller.encoding)
        caller = dataclasses.replace(caller, partner=partner)
        log.info("ocpi_partner_encoding_changed", token_encoding=caller.encoding.value)
    return caller


def _routing_answer(request: web.Request) -> dict[str, str]:
    """The routing headers of an answer: from = us, to = whoever the request said it was
    from (else the caller's first role)."""
    settings = request.app[SETTINGS]
    to_country = request.headers.get("OCPI-from-country-code")
    to_party = request.headers.get("OCPI-from-party-id")
    if not (to_country and to_party):
        to_country, to_party = destination(request[CALLER].partner.roles, None) or (None, None)
    headers = {
        "OCPI-from-country-code": settings.country_code,
        "OCPI-from-party-id": settings.party_id,
    }
    if to_country and to_party:
        headers["OCPI-to-country-code"] = to_country
        headers["OCPI-to-party-id"] = to_party
    return headers


def sender_of(request: web.Request) -> Party | None:
    """The party a request says it comes from (its OCPI-from-* headers), when they name one:
    through a hub, the party behind it, to which a later answer is routed."""
    country = request.headers.get("OCPI-from-country-code", "")
    party = request.headers.get("OCPI-from-party-id", "")
    try:
        return Party(country.strip().upper(), party.strip().upper())
    except InvalidParty:
        return None


def routing_to(settings: OcpiSettings, country_code: str, party_id: str) -> Routing:
    """Routing headers for a request of ours to a partner's party."""
    return Routing(settings.country_code, settings.party_id, country_code, party_id)
