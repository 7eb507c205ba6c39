"""The operator API: `POST /api/chargers/{id}/remote/{command}`, the audit log, the read
endpoints (csms.api.reads), `/health`, `/metrics`, an OpenAPI description and its docs page,
behind a bearer token.

Parses HTTP and JSON and maps results to status codes; commands live in csms.services.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.metadata
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from csms.api import dashboard, docs, live, reads
from csms.api.params import BadParameter, Query, encode_cursor, page_body
from csms.core.bounds import (
    OutOfBounds,
    bounded_int_text,
    bounded_number,
    check_json_depth,
    check_no_nul,
    check_url_no_nul,
)
from csms.core.clock import utc_now
from csms.core.command_params import PARAMETERS
from csms.core.commands import (
    INTERNAL_COMMANDS,
    CommandName,
    CommandRefused,
    CommandResult,
    Outcome,
)
from csms.core.errors import one_line
from csms.core.failures import FailureLimiter, address_key, retry_after
from csms.core.users import LOCAL, Identity, Role
from csms.metrics import Metrics, PartnerGauge
from csms.services.commands import MAX_TIMEOUT_S, CommandService, Requester
from csms.services.users import UnknownUser, UserService
from csms.storage import billing as billing_repo
from csms.storage import partners as partner_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database
from csms.views import command_record_json, staff_user_json

log = structlog.get_logger("csms.api")

# The package's version, as installed (pyproject.toml).
VERSION = importlib.metadata.version("csms")

# What a command's outcome is in HTTP terms (the body always carries the full result).
_HTTP_STATUS = {
    Outcome.ACCEPTED: 200,
    Outcome.REJECTED: 200,
    Outcome.INVALID: 400,
    Outcome.NOT_CONNECTED: 409,
    Outcome.CALL_ERROR: 502,
    Outcome.TIMED_OUT: 504,
}
_SOURCES = frozenset({"cli", "api"})
# The description of the API may be public; the data is not.
_OPEN_PATHS = frozenset({"/health", "/api/openapi.json", "/api/docs"})


@dataclass(frozen=True, slots=True)
class ApiContext:
    commands: CommandService
    db: Database
    metrics: Metrics
    connected: Callable[[], dict[str, int]]
    token: str
    started: float
    # Seconds a request body may take once its headers are in; its largest size in bytes.
    body_timeout: float = 30.0
    max_body_size: int = 1024 * 1024
    # Staff users' tokens (None: only `token` is taken, as the local admin's).
    users: UserService | None = None
    # Back-off after wrong tokens, per source address (None: no limit).
    failures: FailureLimiter | None = None


CONTEXT = web.AppKey("context", ApiContext)
# Who sent the request being handled (set by the guard on every non-open path).
IDENTITY = web.RequestKey("identity", Identity)
# Routes only admins may use (by their canonical path); other reads (GET) need a viewer,
# anything else (commands) an operator.
_ADMIN_ROUTES = frozenset({"/api/users", "/api/users/{name}"})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


# --- reading what a client sends ------------------------------------------------------------
# Every route reads its query and body through these: numbers are bounded, bodies are JSON
# objects within api.max_body_size, api.body_timeout and MAX_JSON_DEPTH. A value outside
# them is answered 400 with a message naming it (never a 500 from deeper down).


class _BadRequest(Exception):
    """Answered with `status` and the message (400 unless said otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def query_int(request: web.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        return bounded_int_text(text, name, minimum, maximum)
    except OutOfBounds as exc:
        raise _BadRequest(str(exc)) from None


def query_seconds(request: web.Request, name: str, maximum: float) -> float | None:
    """A number of seconds > 0 and <= maximum, or None when not given."""
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return bounded_number(text, name, minimum=0, maximum=maximum, exclusive_minimum=True)
    except OutOfBounds as exc:
        raise _BadRequest(str(exc)) from None


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is {}."""
    context = request.app[CONTEXT]
    if not request.can_read_body:
        return {}
    try:
        async with asyncio.timeout(context.body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise _BadRequest(
            f"the request body did not arrive within {context.body_timeout:g} s", 408
        ) from None
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object of parameters")
    try:
        check_json_depth(body)
        check_no_nul(raw, body)
    except OutOfBounds as exc:
        raise _BadRequest(str(exc)) from None
    return body


def result_json(result: CommandResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "charger": result.charge_point_id,
        "command": result.command.value,
        "action": result.action,
        "outcome": result.outcome.value,
        "ok": result.ok,
        "status": result.status,
        "message": result.message,
        "data": result.data,
    }


def needed_role(request: web.Request) -> Role:
    """The least role a request needs: admin for managing users, viewer for reading,
    operator for anything else (sending commands to chargers)."""
    resource = request.match_info.route.resource
    if resource is not None and resource.canonical in _ADMIN_ROUTES:
        return Role.ADMIN
    if request.method in ("GET", "HEAD"):
        return Role.VIEWER
    return Role.OPERATOR


async def _identify(context: ApiContext, token: str) -> Identity | None:
    if context.users is not None:
        return await context.users.identify(token)
    if hmac.compare_digest(token.encode(), context.token.encode()):
        return LOCAL
    return None


def _article(role: Role) -> str:
    return "a" if role is Role.VIEWER else "an"


def _refused() -> web.Response:
    """401 for a missing, unknown, disabled or rotated-away token."""
    response = _error(401, "missing or wrong bearer token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="csms"'
    return response


async def _authenticate(request: web.Request, context: ApiContext) -> Identity | web.Response:
    """The identity of the bearer token, or the answer refusing the request: 429 while the
    sender's address waits out its back-off (its token is not even looked at), 401 for a
    missing or wrong token. Only a token given and wrong counts as a failure."""
    peer = address_key(request.remote)
    limiter = context.failures
    if limiter is not None:
        wait = limiter.wait(peer)
        if wait > 0:
            context.metrics.auth_limited("api")
            response = _json(
                {
                    "error": "too many wrong tokens from your address: "
                    f"try again in {retry_after(wait)} s",
                    "retry_after_s": int(retry_after(wait)),
                },
                429,
            )
            response.headers["Retry-After"] = retry_after(wait)
            return response
    header = request.headers.get("Authorization")
    if header is None:
        return _refused()
    scheme, _, given = header.partition(" ")
    given = given.strip()
    identity = None
    if scheme.lower() == "bearer" and given:
        try:
            async with asyncio.timeout(5.0):
                identity = await _identify(context, given)
        except (TimeoutError, OSError, SQLAlchemyError) as exc:
            log.warning("api_token_check_failed", error=one_line(exc))
            return _error(503, "cannot check the token now: the database failed (see the log)")
    if identity is not None:
        return identity
    context.metrics.auth_failed("api")
    if limiter is not None:
        failure = limiter.failed(peer)
        if failure.started_limiting:
            log.warning(
                "auth_failures_limited",
                listener="api",
                peer=peer,
                failures=failure.failures,
                wait_s=failure.wait,
            )
    return _refused()


async def _still_allowed(request: web.Request) -> bool:
    """Whether a long answer's token (an event stream's) would still be let in now, with the
    role its route needs: staff changes made since it began take effect on it too."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    try:
        async with asyncio.timeout(5.0):
            identity = await _identify(request.app[CONTEXT], given.strip())
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        # As a new request would be refused (503): the client reconnects when it can.
        log.warning("api_token_check_failed", error=one_line(exc))
        return False
    return identity is not None and identity.role.allows(needed_role(request))


@web.middleware
async def _guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bearer token on everything but the open paths, with the role the route needs; no
    traceback ever reaches a client."""
    context = request.app[CONTEXT]
    if request.path not in _OPEN_PATHS and not dashboard.is_open(request.path):
        found = await _authenticate(request, context)
        if isinstance(found, web.Response):
            return found
        needed = needed_role(request)
        if not found.role.allows(needed):
            return _json(
                {
                    "error": f"this needs the {needed.value} role (or higher); "
                    f"user {found.name} is {_article(found.role)} {found.role.value}",
                    "role_needed": needed.value,
                    "role": found.role.value,
                    "user": found.name,
                },
                403,
            )
        request[IDENTITY] = found
    try:
        check_url_no_nul(request.path, request.query.items())
    except OutOfBounds as exc:
        return _error(400, str(exc))
    try:
        return await handler(request)
    except _BadRequest as exc:
        response = _error(exc.status, str(exc))
        if exc.status == 408:  # the rest of the body may still come: not reused
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except Exception:
        log.exception("api_request_failed", path=request.path, method=request.method)
        return _error(500, "internal error (see the server log)")


async def health(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    database = "ok"
    try:
        async with asyncio.timeout(2.0), context.db.read() as conn:
            await tx_repo.count_active(conn)
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "no answer within 2 s"
        database = f"error: {type(exc).__name__}: {detail}"
    connected = context.connected()
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "chargers_connected": sum(connected.values()),
        "uptime_s": round(time.monotonic() - context.started, 1),
        "version": VERSION,
    }
    return _json(body, 200 if database == "ok" else 503)


async def metrics(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    active: int | None = None
    held: int | None = None
    partners: list[PartnerGauge] | None = None
    try:
        async with asyncio.timeout(2.0), context.db.read() as conn:
            active = await tx_repo.count_active(conn)
            held = await billing_repo.count_held(conn)
            found = await partner_repo.with_health(conn, await partner_repo.list_all(conn))
        now = utc_now()
        partners = [
            PartnerGauge(
                p.name,
                0 if p.health is None else p.health.backlog,
                (None if p.health is None else p.health.oldest_age(now)) or 0.0,
                None if p.last_success_at is None else p.last_success_at.timestamp(),
            )
            for p in found
        ]
    except (TimeoutError, OSError, SQLAlchemyError):
        log.warning("metrics_database_unavailable")
    text = context.metrics.render(
        connected=context.connected(),
        active_transactions=active,
        database_up=active is not None,
        held_transactions=held,
        partners=partners,
    )
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


def _command_name(path: str) -> CommandName | None:
    """The staff command a path names (the CSMS's own commands are not served)."""
    try:
        name = CommandName(path.strip("/").replace("/", "-"))
    except ValueError:
        return None
    return None if name in INTERNAL_COMMANDS else name


async def run_command(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    cp_id = request.match_info["cp_id"]
    name = _command_name(request.match_info["command"])
    if name is None:
        known = ", ".join(command_path(n) for n in CommandName if n not in INTERNAL_COMMANDS)
        return _error(404, f"unknown command {request.match_info['command']!r}; known: {known}")
    params = await json_object(request)
    timeout = query_seconds(request, "timeout", MAX_TIMEOUT_S)
    source = request.headers.get("X-CSMS-Source", "api").lower()
    requester = Requester(source if source in _SOURCES else "api", requested_by(request))
    commands = context.commands
    try:
        command = commands.parse(name, params)
    except CommandRefused as exc:
        result = await commands.refuse(cp_id, name, params, requester, str(exc))
    else:
        result = await commands.execute(cp_id, command, requester, timeout, params=params)
    return _json(result_json(result), _HTTP_STATUS[result.outcome])


def requested_by(request: web.Request) -> str | None:
    """The name the audit log records for a request: the token's user; for the local admin
    token (api.token or its file, which only the server's own people can read) the name the
    client sends in X-CSMS-User (the CLI sends the OS user), as before users existed."""
    identity = request[IDENTITY]
    if identity.local:
        return request.headers.get("X-CSMS-User") or None
    return identity.name


async def list_users(request: web.Request) -> web.Response:
    """A listing like every other (csms.api.reads): `{items, total, limit, next_cursor,
    next}`, the most recently added first."""
    context = request.app[CONTEXT]
    query = Query(request.query)
    try:
        limit = query.limit()
        after = query.cursor("users", int)
        query.finish()
    except BadParameter as exc:
        return _json({"error": exc.message, "parameter": exc.name}, 400)
    if context.users is None:
        return _json(page_body([], 0, limit, None, None))
    page = await context.users.users(limit, after)
    cursor = None if page.next_key is None else encode_cursor("users", page.next_key)
    following = None if cursor is None else str(request.rel_url.update_query(cursor=cursor))
    items = [staff_user_json(u) for u in page.items]
    return _json(page_body(items, page.total, limit, cursor, following))


async def show_user(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    name = request.match_info["name"]
    if context.users is None:
        return _error(404, f"no user {name}")
    try:
        user = await context.users.user(name)
    except UnknownUser as exc:
        return _error(404, str(exc))
    return _json(staff_user_json(user))


async def list_commands(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    limit = query_int(request, "limit", 100, 1, 10_000)
    records = await context.commands.history(request.query.get("charger"), limit)
    return _json([command_record_json(r) for r in records])


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


async def api_docs(request: web.Request) -> web.Response:
    return web.Response(
        text=docs.render(openapi_document()), content_type="text/html", charset="utf-8"
    )


def command_path(name: CommandName) -> str:
    """`local-list-send` is served as `local-list/send`, `profile-set` as `profile/set`,
    `certificates-install` as `certificates/install`."""
    value = name.value
    for group in ("local-list", "profile", "certificates"):
        if value.startswith(group + "-"):
            return f"{group}/{value[len(group) + 1 :]}"
    return value


def openapi_document() -> dict[str, Any]:
    result_schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "description": "audit log id"},
            "charger": {"type": "string"},
            "command": {"type": "string"},
            "action": {"type": "string", "nullable": True},
            "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
            "ok": {"type": "boolean"},
            "status": {"type": "string", "nullable": True},
            "message": {"type": "string"},
            "data": {"type": "object"},
        },
    }
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Liveness and database reachability (no token)",
                "responses": {
                    "200": {"description": "ok"},
                    "503": {"description": "database unreachable"},
                },
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus text", "responses": {"200": {"description": "metrics"}}}
        },
        "/api/commands": {
            "get": {
                "summary": "The command audit log, newest first",
                "parameters": [
                    {"name": "charger", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": {"description": "audit log entries"}},
            }
        },
        "/api/users": {
            "get": {
                "summary": "Staff users of this API, the most recently added first (admin)",
                "description": reads.LISTING_DESCRIPTION,
                "parameters": [reads.LIMIT.openapi(), reads.CURSOR.openapi()],
                "responses": {
                    "200": {"description": "users (never their tokens)"},
                    "403": {"description": "the token's user is not an admin"},
                },
            }
        },
        "/api/users/{name}": {
            "get": {
                "summary": "One staff user (admin)",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the user"},
                    "403": {"description": "the token's user is not an admin"},
                    "404": {"description": "no such user"},
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description (no token)",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3 document"}},
            }
        },
        "/api/docs": {
            "get": {
                "summary": "This description as a page to read (no token)",
                "security": [],
                "responses": {"200": {"description": "HTML"}},
            }
        },
    }
    paths.update(reads.openapi_paths())
    paths.update(live.openapi_paths())
    paths["/dashboard"] = {
        "get": {
            "summary": "The staff dashboard, a page for a browser (no token: it asks for one "
            "and reads this API with it)",
            "security": [],
            "responses": {"200": {"description": "HTML"}},
        }
    }
    for name in CommandName:
        if name in INTERNAL_COMMANDS:
            continue
        properties: dict[str, Any] = {}
        required = []
        for pname, param in PARAMETERS[name].items():
            schema: dict[str, Any]
            if param.type == "date-time":
                schema = {"type": "string", "format": "date-time"}
            elif param.type == "array":
                schema = {"type": "array", "items": {"type": "string"}}
            else:
                schema = {"type": param.type}
            if param.choices:
                schema["enum"] = list(param.choices)
            schema["description"] = param.help
            properties[pname] = schema
            if param.required:
                required.append(pname)
        body: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            body["required"] = required
        paths[f"/api/chargers/{{charger}}/remote/{command_path(name)}"] = {
            "post": {
                "summary": f"csms remote {command_path(name).replace('/', ' ')}",
                "parameters": [
                    {
                        "name": "charger",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {"type": "number"},
                        "description": "seconds to wait, at most 600 (default: ocpp.call_timeout)",
                    },
                ],
                "requestBody": {"content": {"application/json": {"schema": body}}},
                "responses": {
                    str(code): {
                        "description": ", ".join(
                            o.value for o, c in _HTTP_STATUS.items() if c == code
                        ),
                        "content": {"application/json": {"schema": result_schema}},
                    }
                    for code in sorted(set(_HTTP_STATUS.values()))
                },
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "CSMS operator API", "version": VERSION},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


def build_api(
    context: ApiContext,
    read_context: reads.ReadContext | None = None,
    live_context: live.LiveContext | None = None,
    map_tiles: str = "",
) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=context.max_body_size)
    app[CONTEXT] = context
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/docs", api_docs)
    if read_context is not None:
        reads.add_routes(app, read_context)
    if live_context is not None:
        live.add_routes(app, live_context, _still_allowed)
    dashboard.add_routes(app, map_tiles)
    app.router.add_get("/api/commands", list_commands)
    app.router.add_get("/api/users", list_users, allow_head=False)
    app.router.add_get("/api/users/{name}", show_user, allow_head=False)
    app.router.add_post("/api/chargers/{cp_id}/remote/{command:.+}", run_command)
    return app
