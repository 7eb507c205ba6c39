"""The OCPI CPO bridge (2.2.1, and 2.1.1 through ocpi_cpo.v211) as an aiohttp application:
`build_ocpi_app` wires settings,
the partner service, the transport middleware and every module's routes.

Serving it (sockets, runner) is the composition root's job (csms.app); nothing here
imports OCPP code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from csms.core.versions import Limits
from csms.services.billing import BillingService
from csms.services.charging import Charging
from csms.services.commands import CommandService
from csms.services.partners import PartnerService
from csms.workers import Singletons
from ocpi_cpo.client import OcpiClient
from ocpi_cpo.context import (
    AUTH_LIMITS,
    BILLING,
    CHARGING,
    CLIENT,
    COMMANDS,
    LIMITS,
    LOCATION_PUBLISHER,
    PARTNERS,
    PUSHER,
    REGISTRAR,
    REGISTRY,
    RESULTS,
    SETTINGS,
    SINGLETONS,
    AuthLimits,
    OcpiSettings,
    Registry,
)
from ocpi_cpo.push import Pusher
from ocpi_cpo.registration import Registrar
from ocpi_cpo.results import AsyncResults
from ocpi_cpo.routes import (
    cdrs,
    chargingprofiles,
    commands,
    credentials,
    hubclientinfo,
    locations,
    sessions,
    tariffs,
    tokens,
    versions,
)
from ocpi_cpo.transport import transport_middleware

ModuleSetup = Callable[[web.Application], None]

# Our modules, in the order the version details list them. Each `setup(app)` registers
# its endpoint (add_endpoint) and routes (add_route); a module listed here is listed in
# GET /ocpi/2.2.1, one that is not does not exist for partners.
MODULES: tuple[ModuleSetup, ...] = (
    credentials.setup,
    locations.setup,
    sessions.setup,
    cdrs.setup,
    tariffs.setup,
    tokens.setup,
    hubclientinfo.setup,
    chargingprofiles.setup,
    commands.setup,
)


def build_ocpi_app(
    settings: OcpiSettings,
    partners: PartnerService,
    modules: tuple[ModuleSetup, ...] = MODULES,
    billing: BillingService | None = None,
    commands: CommandService | None = None,
    charging: Charging | None = None,
    limits: Limits | None = None,
    auth_limits: AuthLimits | None = None,
    singletons: Singletons | None = None,
) -> web.Application:
    """The bridge's application. `limits`: each OCPP version's (csms.app passes the
    adapters'); without them no rule of a charger's version applies. `auth_limits`: the
    back-off after unknown tokens (none without). `singletons`: the group its publishers
    and push worker run in (csms.app's, led by one node at a time); without it they run
    whenever the app does."""
    # Largest request body: ocpi.max_body_size (a credentials object is tiny; pushed
    # token lists are not).
    app = web.Application(
        middlewares=[transport_middleware], client_max_size=settings.max_body_size
    )
    app[SETTINGS] = settings
    app[PARTNERS] = partners
    if billing is not None:
        app[BILLING] = billing
    if commands is not None:
        app[COMMANDS] = commands
    if charging is not None:
        app[CHARGING] = charging
    app[LIMITS] = limits if limits is not None else {}
    if auth_limits is not None:
        app[AUTH_LIMITS] = auth_limits
    app[REGISTRY] = Registry()
    app[SINGLETONS] = singletons if singletons is not None else Singletons("ocpi", leading=True)
    app.cleanup_ctx.append(_partner_client)
    app.cleanup_ctx.append(_push_worker)
    app.cleanup_ctx.append(_results_worker)
    versions.setup(app)
    for setup in modules:
        setup(app)
    return app


async def _partner_client(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession for every call to partners, closed with the app."""
    settings = app[SETTINGS]
    async with aiohttp.ClientSession() as session:
        client = OcpiClient(session, timeout=settings.request_timeout)
        app[CLIENT] = client
        app[REGISTRAR] = Registrar(app[PARTNERS], client, settings.us, settings.required)
        yield


async def _push_worker(app: web.Application) -> AsyncIterator[None]:
    """The outbox push worker (ocpi_cpo.push), from after the partner client exists until
    before it closes."""
    publisher = app.get(LOCATION_PUBLISHER)
    pusher = Pusher(
        app[PARTNERS].db,
        app[CLIENT],
        app[SETTINGS],
        locations=None if publisher is None else publisher.unpublished_location,
    )
    app[PUSHER] = pusher
    async with app[SINGLETONS].hosting(pusher.worker.name, pusher.running):
        yield


async def _results_worker(app: web.Application) -> AsyncIterator[None]:
    """Results of partners' commands and charging profile requests (ocpi_cpo.results):
    requests left open by a previous run are closed with their timeout result."""
    settings = app[SETTINGS]
    results = AsyncResults(app[PARTNERS].db, settings.clock, app[PUSHER].wake)
    app[RESULTS] = results
    async with app[SINGLETONS].hosting(results.sweeper.name, results.sweeper.running):
        yield
    await results.close()
