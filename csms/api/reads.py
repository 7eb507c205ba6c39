"""The operator API's read endpoints: charge points (with live connection), their EVSEs,
transactions with readings, CDRs, tokens, locations, tariffs, OCPI partners, the audit
log and smart-charging sites; filtered, paged with a cursor and a total, in the JSON of
the CLI's `--json`.

Parses queries and maps results to HTTP; the reads live in csms.services.reads, the JSON
shapes in csms.views. Each route is described once here, for the router and for the
OpenAPI description alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from csms.api.examples import examples
from csms.api.params import BadParameter, Query, encode_cursor, page_body
from csms.core.authorization import TokenStatus
from csms.core.charger import (
    METER_KEY_CHANGE,
    SECURITY_PROFILE_CHANGE,
    SIGNATURE_RELEASE,
    RegistrationStatus,
)
from csms.core.commands import CommandName, Outcome
from csms.core.errors import InvalidInput, InvalidParty
from csms.core.parties import PARTY_FORMAT, check_origin
from csms.core.partners import PartnerStatus
from csms.core.status import ConnectorStatus
from csms.core.transactions import BillingState, TransactionState
from csms.core.versions import OcppVersion
from csms.services.maintenance import AUDIT_COMMANDS as MAINTENANCE_COMMANDS
from csms.services.reads import NotFound, ReadService
from csms.services.sites import AUDIT_COMMANDS as SITE_COMMANDS
from csms.services.statistics import GROUP_BYS, PERIODS, Scope, StatisticsService
from csms.storage.commands import PENDING
from csms.storage.paging import Page
from csms.views import (
    cdr_json,
    charger_detail_json,
    charger_overview_json,
    command_record_json,
    connector_json,
    heatmap_json,
    location_overview_json,
    location_view_json,
    partner_json,
    site_overview_json,
    site_view_json,
    stats_json,
    tariff_json,
    token_json,
    transaction_detail_json,
    transaction_json,
    uptime_json,
)

OCPP_VERSIONS = tuple(v.value for v in OcppVersion)
# Who asked: staff (CLI, API), an OCPI partner, or an OpenADR VTN (a cap on a site).
SOURCES = ("cli", "api", "ocpi", "openadr")
AUDIT_COMMAND_NAMES = (
    *(c.value for c in CommandName),
    SECURITY_PROFILE_CHANGE,
    METER_KEY_CHANGE,
    SIGNATURE_RELEASE,
    *SITE_COMMANDS,
    *MAINTENANCE_COMMANDS,
)


@dataclass(frozen=True, slots=True)
class ReadContext:
    reads: ReadService
    # Whether this process holds the charger's WebSocket; None when it runs no OCPP server.
    connected_here: Callable[[str], bool] | None
    statistics: StatisticsService


READS = web.AppKey("reads", ReadContext)

Handler = Callable[[web.Request, ReadContext, Query], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    path: bool = False

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "path" if self.path else "query",
            "required": self.path,
            "description": self.description,
            "schema": self.schema,
        }


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # OpenAPI and aiohttp both write path parameters {name}
    summary: str
    params: tuple[Param, ...]
    handler: Handler
    listing: bool = False
    description: str = ""


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": [str(v) for v in values]}


TIME = {"type": "string", "format": "date-time"}
LIMIT = Param(
    "limit", "items per page, 1 to 1000 (default 100)", {"type": "integer", "default": 100}
)
CURSOR = Param("cursor", "next_cursor of the previous page (leave out for the first page)")
LISTING_DESCRIPTION = (
    "A page: `{items, total, limit, next_cursor, next}`; `total` counts every item "
    "matching the filters, `next_cursor` (null on the last page) reads on, `next` is the "
    "path of the next page with the same filters."
)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _page(
    request: web.Request, listing: str, page: Page[Any], items: list[Any], limit: int
) -> dict[str, Any]:
    cursor = None if page.next_key is None else encode_cursor(listing, page.next_key)
    following = None if cursor is None else str(request.rel_url.update_query(cursor=cursor))
    return dict(page_body(items, page.total, limit, cursor, following))


# --- charge points ------------------------------------------------------------------------


async def chargers(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    registration = q.choice("registration", [s.value for s in RegistrationStatus])
    connected = q.boolean("connected")
    version = q.choice("ocpp_version", OCPP_VERSIONS)
    status = q.choice("status", [s.value for s in ConnectorStatus])
    limit, after = q.limit(), q.cursor("chargers", str)
    q.finish()
    page = await ctx.reads.chargers(
        registration=None if registration is None else RegistrationStatus(registration),
        connected=connected,
        ocpp_version=version,
        status=None if status is None else ConnectorStatus(status),
        after=after,
        limit=limit,
    )
    items = [
        {
            **charger_overview_json(o.charger, o.connectors),
            "connected_here": _here(ctx, o.charger.id),
        }
        for o in page.items
    ]
    return _page(request, "chargers", page, items, limit)


def _here(ctx: ReadContext, cp_id: str) -> bool | None:
    return None if ctx.connected_here is None else ctx.connected_here(cp_id)


async def charger(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    cp_id = request.match_info["charger"]
    detail = await ctx.reads.charger(cp_id)
    return {**charger_detail_json(detail), "connected_here": _here(ctx, cp_id)}


async def evses(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    detail = await ctx.reads.charger(request.match_info["charger"])
    running = {t.evse_id: t.id for t in detail.active_transactions}
    items = [
        {**connector_json(c), "transaction_id": running.get(c.evse_id) if c.evse_id else None}
        for c in detail.connectors
    ]
    return {"charger": detail.charger.id, "items": items, "total": len(items)}


# --- transactions -------------------------------------------------------------------------


async def transactions(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    cp_id = q.text("charger")
    state = q.choice("state", [s.value for s in TransactionState])
    token = q.text("token", most=36)
    since, until = q.window()
    billing = q.choice("billing", [s.value for s in BillingState])
    limit, after = q.limit(), q.cursor("transactions", int)
    q.finish()
    page = await ctx.reads.transactions(
        cp_id=cp_id,
        state=None if state is None else TransactionState(state),
        token=token,
        since=since,
        until=until,
        billing=billing,
        after=after,
        limit=limit,
    )
    now = ctx.reads.clock()
    items = [transaction_json(t, now) for t in page.items]
    return _page(request, "transactions", page, items, limit)


def _number(request: web.Request, name: str, what: str) -> int:
    text = request.match_info[name]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFound(f"no {what} {text!r} ({what} ids are whole numbers)")
    return int(text)


async def transaction(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    found = await ctx.reads.transaction(_number(request, "transaction", "transaction"))
    return transaction_detail_json(found.detail, found.now, found.priced, found.cost_error)


# --- CDRs ---------------------------------------------------------------------------------


async def cdrs(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    cp_id = q.text("charger")
    since, until = q.window()
    token = q.text("token", most=36)
    partner = q.text("partner", most=64)
    limit, after = q.limit(), q.cursor("cdrs", int)
    q.finish()
    page = await ctx.reads.cdrs(
        cp_id=cp_id,
        since=since,
        until=until,
        token=token,
        partner=partner,
        after=after,
        limit=limit,
    )
    return _page(request, "cdrs", page, [cdr_json(c) for c in page.items], limit)


async def cdr(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return cdr_json(await ctx.reads.cdr(request.match_info["cdr"]))


# --- tokens -------------------------------------------------------------------------------


async def tokens(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    status = q.choice("status", [s.value for s in TokenStatus])
    owner = q.text("owner", most=16)
    if owner is not None:
        try:
            owner = check_origin(owner)
        except InvalidParty:
            raise BadParameter(
                "owner", f"owner: must be local or {PARTY_FORMAT}, not {owner!r}"
            ) from None
    partner = q.text("partner", most=64)
    limit, after = q.limit(), q.cursor("tokens", str)
    q.finish()
    page = await ctx.reads.tokens(
        status=None if status is None else TokenStatus(status),
        owner=owner,
        partner=partner,
        after=after,
        limit=limit,
    )
    return _page(request, "tokens", page, [token_json(t) for t in page.items], limit)


async def token(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return token_json(await ctx.reads.token(request.match_info["uid"]))


# --- locations and tariffs ----------------------------------------------------------------


async def locations(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    published = q.boolean("published")
    country = q.text("country", most=3)
    limit, after = q.limit(), q.cursor("locations", str)
    q.finish()
    page = await ctx.reads.locations(
        published=published,
        country=None if country is None else country.upper(),
        after=after,
        limit=limit,
    )
    items = [location_overview_json(loc, found) for loc, found in page.items]
    return _page(request, "locations", page, items, limit)


async def location(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return location_view_json(await ctx.reads.location(request.match_info["location"]))


async def tariffs(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    currency = q.text("currency", most=3)
    limit, after = q.limit(), q.cursor("tariffs", str)
    q.finish()
    page = await ctx.reads.tariffs(
        currency=None if currency is None else currency.upper(), after=after, limit=limit
    )
    items = [tariff_json(t, assigned) for t, assigned in page.items]
    return _page(request, "tariffs", page, items, limit)


async def tariff(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return tariff_json(*await ctx.reads.tariff(request.match_info["tariff"]))


# --- smart-charging sites -----------------------------------------------------------------


async def sites(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    limit, after = q.limit(), q.cursor("sites", str)
    q.finish()
    page = await ctx.reads.sites(after=after, limit=limit)
    return _page(request, "sites", page, [site_overview_json(v) for v in page.items], limit)


async def site(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return site_view_json(await ctx.reads.site(request.match_info["site"]))


# --- OCPI partners and the audit log ------------------------------------------------------


async def partners(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    status = q.choice("status", [s.value for s in PartnerStatus])
    limit, after = q.limit(), q.cursor("partners", str)
    q.finish()
    page = await ctx.reads.partners(
        status=None if status is None else PartnerStatus(status), after=after, limit=limit
    )
    return _page(request, "partners", page, [partner_json(p) for p in page.items], limit)


async def partner(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return partner_json(await ctx.reads.partner(request.match_info["name"]))


async def audit(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    cp_id = q.text("charger")
    command = q.choice("command", list(AUDIT_COMMAND_NAMES))
    outcome = q.choice("outcome", [*(o.value for o in Outcome), PENDING])
    source = q.choice("source", SOURCES)
    partner = q.text("partner", most=64)
    since, until = q.window()
    limit, after = q.limit(), q.cursor("audit", int)
    q.finish()
    page = await ctx.reads.audit(
        cp_id=cp_id,
        command=command,
        outcome=outcome,
        source=source,
        partner=partner,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )
    return _page(request, "audit", page, [command_record_json(r) for r in page.items], limit)


async def audit_entry(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    q.finish()
    return command_record_json(
        await ctx.reads.audit_entry(_number(request, "entry", "audit log entry"))
    )


# --- statistics ---------------------------------------------------------------------------


def _names(q: Query, name: str) -> tuple[str, ...]:
    """A comma-separated list of ids (`charger=CP-1,CP-2`)."""
    given = q.text(name, most=4000)
    if given is None:
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in given.split(",") if n.strip()))
    if not names:
        raise BadParameter(name, f"{name}: no id given")
    return names


def _stats_query(q: Query, *, by_default: str) -> tuple[str, str, Any, Any, Scope]:
    by = q.choice("by", GROUP_BYS) or by_default
    period = q.choice("period", PERIODS) or "day"
    start, end = q.time("from"), q.time("to")
    scope = Scope(_names(q, "charger"), _names(q, "location"), _names(q, "site"))
    return by, period, start, end, scope


async def stats(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    by, period, start, end, scope = _stats_query(q, by_default="network")
    q.finish()
    return stats_json(await ctx.statistics.figures(by, period, start, end, scope))


async def stats_uptime(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    by, period, start, end, scope = _stats_query(q, by_default="evse")
    q.finish()
    return uptime_json(await ctx.statistics.uptime(by, period, start, end, scope))


async def stats_heatmap(request: web.Request, ctx: ReadContext, q: Query) -> Any:
    start, end = q.time("from"), q.time("to")
    scope = Scope(_names(q, "charger"), _names(q, "location"), _names(q, "site"))
    q.finish()
    return heatmap_json(await ctx.statistics.heatmap(start, end, scope))


# --- the routes ---------------------------------------------------------------------------

CHARGER = Param("charger", "charge point id", path=True)
SINCE_START = Param("since", "started at or after (ISO 8601; a date alone: midnight UTC)", TIME)
UNTIL_START = Param("until", "started before (ISO 8601)", TIME)
PARTNER_PARTIES = "an OCPI partner's name: only what one of the parties it registered owns"
STATS_FROM = Param(
    "from", "start (ISO 8601; a date alone: midnight UTC); default: 30 days before `to`", TIME
)
STATS_TO = Param("to", "end, excluded (ISO 8601); default: now", TIME)
STATS_SCOPE = (
    Param("charger", "only these chargers (comma-separated ids)"),
    Param("location", "only the chargers at these locations (comma-separated ids)"),
    Param("site", "only the chargers on these smart-charging sites (comma-separated ids)"),
)
STATS_PERIOD = Param("period", "one row per UTC hour, day, ISO week or month", _enum(*PERIODS))
STATS_DESCRIPTION = (
    "The figures of `csms stats` (same rules, same JSON as its --json): a session counts in "
    "the period it started (sessions, energy, revenue from its CDR, tokens, origin); charging, "
    "plugged-in and idle time are split over the periods by overlap; utilisation is plugged-in "
    "time over the period times the group's EVSEs."
)
UPTIME_DESCRIPTION = (
    "NEVI uptime (23 CFR 680.116(b)) as `csms stats uptime`: (period - (outage - excluded)) / "
    "period x 100, outage being Faulted, Unavailable not set by staff, or offline beyond "
    "[statistics] offline_grace; excluded: outage inside maintenance windows or exclusions. "
    "A group sums the time of its EVSEs."
)

ROUTES: tuple[Route, ...] = (
    Route(
        "/api/chargers",
        "Charge points by id, with connection and the status of each connector",
        (
            Param("registration", "registration status", _enum(*RegistrationStatus)),
            Param("connected", "connected now (to any node)", {"type": "boolean"}),
            Param("ocpp_version", "OCPP version", _enum(*OCPP_VERSIONS)),
            Param(
                "status",
                "one of its connectors (or the charger itself) reports this status",
                _enum(*ConnectorStatus),
            ),
            LIMIT,
            CURSOR,
        ),
        chargers,
        listing=True,
        description="`connected` is what the database says (any node); `connected_here` "
        "whether this process holds the charger's WebSocket (null when it runs no OCPP "
        "server).",
    ),
    Route(
        "/api/chargers/{charger}",
        "One charge point: identity, connection, connectors, status history, active "
        "transactions, recent messages, reservations, charging profiles",
        (CHARGER,),
        charger,
    ),
    Route(
        "/api/chargers/{charger}/evses",
        "The EVSEs and connectors of a charge point with their live status and the "
        "transaction running on each",
        (CHARGER,),
        evses,
        description="`evse_id` 0 is the charger itself (OCPP 1.6 connector 0).",
    ),
    Route(
        "/api/transactions",
        "Transactions, newest first",
        (
            Param("charger", "charge point id"),
            Param("state", "active (running) or completed", _enum(*TransactionState)),
            Param("token", "the id tag that started it (any case)"),
            SINCE_START,
            UNTIL_START,
            Param("billing", "where a finished one stands with its CDR", _enum(*BillingState)),
            LIMIT,
            CURSOR,
        ),
        transactions,
        listing=True,
        description="A running transaction's `energy_wh` and `duration_s` are so far.",
    ),
    Route(
        "/api/transactions/{transaction}",
        "One transaction with its cost (so far, if running), 2.0.1 events and every meter reading",
        (Param("transaction", "transaction id (a whole number)", {"type": "integer"}, True),),
        transaction,
    ),
    Route(
        "/api/cdrs",
        "CDRs (OCPI 2.2.1 objects), newest first",
        (
            Param("charger", "charge point id"),
            Param("since", "session ended at or after (ISO 8601)", TIME),
            Param("until", "session ended before (ISO 8601)", TIME),
            Param("token", "the id tag that started the session (any case)"),
            Param("partner", PARTNER_PARTIES),
            LIMIT,
            CURSOR,
        ),
        cdrs,
        listing=True,
    ),
    Route("/api/cdrs/{cdr}", "One CDR", (Param("cdr", "CDR id", path=True),), cdr),
    Route(
        "/api/tokens",
        "Id tokens by uid",
        (
            Param("status", "token status", _enum(*TokenStatus)),
            Param("owner", "`local` (ours) or the owning party, e.g. NL*EMS"),
            Param("partner", PARTNER_PARTIES),
            LIMIT,
            CURSOR,
        ),
        tokens,
        listing=True,
    ),
    Route("/api/tokens/{uid}", "One id token", (Param("uid", "token uid", path=True),), token),
    Route(
        "/api/locations",
        "Locations by id, with the chargers standing there",
        (
            Param("published", "whether partners may see it", {"type": "boolean"}),
            Param("country", "ISO 3166-1 alpha-3 country code, e.g. NLD"),
            LIMIT,
            CURSOR,
        ),
        locations,
        listing=True,
    ),
    Route(
        "/api/locations/{location}",
        "One location with its chargers and its EVSEs as published",
        (Param("location", "location id", path=True),),
        location,
    ),
    Route(
        "/api/tariffs",
        "Tariffs (OCPI 2.2.1 objects) by id, with where each applies",
        (Param("currency", "ISO 4217 currency, e.g. EUR"), LIMIT, CURSOR),
        tariffs,
        listing=True,
    ),
    Route(
        "/api/tariffs/{tariff}",
        "One tariff with where it applies",
        (Param("tariff", "tariff id", path=True),),
        tariff,
    ),
    Route(
        "/api/sites",
        "Smart-charging sites by id: limits, current allocated, chargers, caps in force",
        (LIMIT, CURSOR),
        sites,
        listing=True,
        description="Currents are amperes per phase; `allocated_a` is [L1, L2, L3] as the "
        "load manager last shared them; `effective_a` is the limit under the caps in force.",
    ),
    Route(
        "/api/sites/{site}",
        "One site: its tree of circuits with each node's limit, effective limit and "
        "allocation, its chargers (unmanaged ones with why), each session's share, caps in "
        "force or ahead, prices",
        (Param("site", "site id", path=True),),
        site,
        description="What `csms sites show SITE --json` prints. Prices are per kWh, as "
        "exact decimal text; imported prices are those of the next 48 hours.",
    ),
    Route(
        "/api/partners",
        "OCPI partners by name: status, roles, endpoints (never their tokens)",
        (Param("status", "registration status", _enum(*PartnerStatus)), LIMIT, CURSOR),
        partners,
        listing=True,
    ),
    Route(
        "/api/partners/{name}",
        "One OCPI partner",
        (Param("name", "partner name", path=True),),
        partner,
    ),
    Route(
        "/api/audit",
        "The audit log of commands to chargers, newest first",
        (
            Param("charger", "charge point id"),
            Param("command", "command name (or a change staff made)", _enum(*AUDIT_COMMAND_NAMES)),
            Param(
                "outcome",
                "result; pending: waiting for the charger",
                _enum(*Outcome, PENDING),
            ),
            Param("source", "who asked: the CLI, the API, or an OCPI partner", _enum(*SOURCES)),
            Param("partner", "only commands this OCPI partner sent"),
            Param("since", "asked at or after (ISO 8601)", TIME),
            Param("until", "asked before (ISO 8601)", TIME),
            LIMIT,
            CURSOR,
        ),
        audit,
        listing=True,
    ),
    Route(
        "/api/stats",
        "Usage statistics per group and period",
        (
            Param("by", "grouping (default network)", _enum(*GROUP_BYS)),
            STATS_PERIOD,
            STATS_FROM,
            STATS_TO,
            *STATS_SCOPE,
        ),
        stats,
        description=STATS_DESCRIPTION,
    ),
    Route(
        "/api/stats/uptime",
        "Uptime per EVSE (or group) and period",
        (
            Param("by", "grouping (default evse)", _enum(*GROUP_BYS)),
            STATS_PERIOD,
            STATS_FROM,
            STATS_TO,
            *STATS_SCOPE,
        ),
        stats_uptime,
        description=UPTIME_DESCRIPTION,
    ),
    Route(
        "/api/stats/heatmap",
        "Utilisation by weekday and hour of day (UTC)",
        (STATS_FROM, STATS_TO, *STATS_SCOPE),
        stats_heatmap,
        description="Weekday 0 is Monday; each cell is the plugged-in time of those hours "
        "over their length times the EVSEs, as on `csms stats --plot`.",
    ),
    Route(
        "/api/audit/{entry}",
        "One audit log entry",
        (Param("entry", "entry id (a whole number)", {"type": "integer"}, True),),
        audit_entry,
    ),
)


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        q = Query(request.query)
        try:
            return _json(await route.handler(request, request.app[READS], q))
        except BadParameter as exc:
            return _json({"error": exc.message, "parameter": exc.name}, 400)
        except NotFound as exc:
            return _json({"error": str(exc)}, 404)
        except InvalidInput as exc:
            return _json({"error": str(exc)}, 400)

    return endpoint


def add_routes(app: web.Application, context: ReadContext) -> None:
    app[READS] = context
    for route in ROUTES:
        app.router.add_get(route.path, _endpoint(route), allow_head=False)


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what is wrong, in one line"},
        "parameter": {"type": "string", "description": "the query parameter at fault"},
    },
}


def openapi_paths() -> dict[str, Any]:
    """The read endpoints as OpenAPI 3 path items, each with an example answer."""
    shown = examples()
    paths: dict[str, Any] = {}
    for route in ROUTES:
        description = " ".join(
            text
            for text in (LISTING_DESCRIPTION if route.listing else "", route.description)
            if text
        )
        responses: dict[str, Any] = {
            "200": {
                "description": "ok",
                "content": {
                    "application/json": {
                        "schema": {"type": "object"},
                        "example": shown[route.path],
                    }
                },
            },
            "401": {"description": "missing or wrong bearer token"},
        }
        responses["400"] = {
            "description": "a bad parameter (an unknown name, a value out of range, a bad "
            "cursor or time)",
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        if any(p.path for p in route.params):
            responses["404"] = {
                "description": "no such object",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
        operation: dict[str, Any] = {
            "summary": route.summary,
            "parameters": [p.openapi() for p in route.params],
            "responses": responses,
        }
        if description:
            operation["description"] = description
        paths[route.path] = {"get": operation}
    return paths
