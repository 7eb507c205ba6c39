"""Locations module, Sender interface: `GET /ocpi/2.2.1/locations` pages over our published
locations, and `/{location_id}[/{evse_uid}[/{connector_id}]]` returns one object; the same
under /ocpi/2.1.1/locations in 2.1.1 (each object converted as it is answered: an EVSE or
connector 2.1.1 cannot describe does not exist there).

Objects are what the location publisher stored (ocpi_cpo.locations_publisher), so what
partners pull is what they were pushed. Unpublished locations do not exist for partners.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from csms.core.partners import InterfaceRole
from csms.storage import locations as location_repo
from csms.storage import ocpi_evses as evse_repo
from ocpi_cpo import profiles
from ocpi_cpo.context import (
    LIMITS,
    LOCATION_PUBLISHER,
    PARTNERS,
    PUSHER,
    SETTINGS,
    SINGLETONS,
)
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.locations_publisher import Identity, LocationPublisher
from ocpi_cpo.transport import (
    add_endpoint,
    add_route,
    caller_of,
    page_of,
    reply,
    reply_encoded_page,
    reply_page,
)
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH

# The app's location publisher (the key lives in ocpi_cpo.context: the 2.1.1 sessions and
# CDRs read their locations through it too).
PUBLISHER = LOCATION_PUBLISHER
PATH = f"{VERSION_PATH}/locations"
PATH_211 = f"{V211_PATH}/locations"


def _unknown(what: str) -> OcpiFailure:
    return OcpiFailure(Status.UNKNOWN_LOCATION, f"unknown {what}", http_status=404)


async def list_locations(request: web.Request) -> web.Response:
    page = page_of(request)
    publisher = request.app[PUBLISHER]
    served = publisher.page(
        date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
    )
    if served is not None:
        return reply_encoded_page(request, served[0], served[1], page)
    items, total = await _from_database(request)
    return reply_page(request, items, total, page)


async def _from_database(request: web.Request) -> tuple[list[dict[str, Any]], int]:
    page = page_of(request)
    publisher = request.app[PUBLISHER]
    # Before the publisher's first pass built its snapshot: from the database.
    async with request.app[PARTNERS].db.read() as conn:
        keys, total = await location_repo.published_keys(
            conn,
            date_from=page.date_from,
            date_to=page.date_to,
            offset=page.offset,
            limit=page.limit,
        )
        found = await location_repo.get_many(conn, [i for i, _ in keys])
        evses = await evse_repo.at_locations(conn, list(found))
    return [publisher.render(found[i], evses[i]) for i, _ in keys if i in found], total


async def _location(request: web.Request) -> dict[str, Any]:
    location_id = request.match_info["location_id"]
    async with request.app[PARTNERS].db.read() as conn:
        body = await request.app[PUBLISHER].location_object(conn, location_id)
    if body is not None and not profiles.same_id(
        caller_of(request).partner.profile, body["id"], location_id
    ):
        body = None  # found in another case, by a partner that compares ids as sent
    if body is None:
        raise _unknown(f"location {location_id!r}")
    return body


def _evse(request: web.Request, location: dict[str, Any], uid: str) -> dict[str, Any]:
    profile = caller_of(request).partner.profile
    for evse in location["evses"]:
        if profiles.same_id(profile, evse["uid"], uid):  # CiString, unless the profile says
            return dict(evse)
    raise _unknown(f"EVSE {uid!r} at location {location['id']!r}")


def _connector(request: web.Request, evse: dict[str, Any], connector_id: str) -> dict[str, Any]:
    profile = caller_of(request).partner.profile
    for connector in evse["connectors"]:
        if profiles.same_id(profile, connector["id"], connector_id):
            return dict(connector)
    raise _unknown(f"connector {connector_id!r} of EVSE {evse['uid']!r}")


async def get_location(request: web.Request) -> web.Response:
    return reply(request, await _location(request))


async def get_evse(request: web.Request) -> web.Response:
    location = await _location(request)
    return reply(request, _evse(request, location, request.match_info["evse_uid"]))


async def get_connector(request: web.Request) -> web.Response:
    location = await _location(request)
    evse = _evse(request, location, request.match_info["evse_uid"])
    return reply(request, _connector(request, evse, request.match_info["connector_id"]))


# --- 2.1.1: the same objects, converted -----------------------------------------------------


async def list_locations_211(request: web.Request) -> web.Response:
    page = page_of(request)
    served = request.app[PUBLISHER].page(
        date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
    )
    if served is not None:
        items = [orjson.loads(encoded) for encoded in served[0]]
        total = served[1]
    else:
        items, total = await _from_database(request)
    return reply_page(request, [v211.location(item) for item in items], total, page)


async def get_location_211(request: web.Request) -> web.Response:
    return reply(request, v211.location(await _location(request)))


def _evse_211(request: web.Request, location: dict[str, Any], uid: str) -> dict[str, Any]:
    try:
        return v211.evse(_evse(request, location, uid))
    except v211.V211Unrenderable:
        raise _unknown(f"EVSE {uid!r} at location {location['id']!r} (in 2.1.1)") from None


async def get_evse_211(request: web.Request) -> web.Response:
    location = await _location(request)
    return reply(request, _evse_211(request, location, request.match_info["evse_uid"]))


async def get_connector_211(request: web.Request) -> web.Response:
    location = await _location(request)
    evse = _evse_211(request, location, request.match_info["evse_uid"])
    return reply(request, _connector(request, evse, request.match_info["connector_id"]))


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[PUBLISHER] = LocationPublisher(
        app[PARTNERS].db,
        settings.clock,
        Identity(settings.country_code, settings.party_id, settings.business_name),
        grace=timedelta(seconds=settings.offline_grace),
        interval=settings.push_interval,
        limits=app[LIMITS],
        push_rate=settings.location_push_rate,
        payments=settings.payments_enabled,
    )
    add_endpoint(app, "locations", InterfaceRole.SENDER, PATH)
    add_route(app, "GET", PATH, list_locations)
    add_route(app, "GET", PATH + "/{location_id}", get_location)
    add_route(app, "GET", PATH + "/{location_id}/{evse_uid}", get_evse)
    add_route(app, "GET", PATH + "/{location_id}/{evse_uid}/{connector_id}", get_connector)
    add_endpoint(app, "locations", InterfaceRole.SENDER, PATH_211, V211)
    add_route(app, "GET", PATH_211, list_locations_211, version=V211)
    add_route(app, "GET", PATH_211 + "/{location_id}", get_location_211, version=V211)
    add_route(app, "GET", PATH_211 + "/{location_id}/{evse_uid}", get_evse_211, version=V211)
    add_route(
        app,
        "GET",
        PATH_211 + "/{location_id}/{evse_uid}/{connector_id}",
        get_connector_211,
        version=V211,
    )
    app.cleanup_ctx.append(_publishing)


async def _publishing(app: web.Application) -> AsyncIterator[None]:
    """The location publisher runs while the app does; what it enqueues wakes the pusher."""
    publisher = app[PUBLISHER]

    def wake_pusher() -> None:
        if PUSHER in app:
            app[PUSHER].wake()

    publisher.on_enqueued.append(wake_pusher)
    async with app[SINGLETONS].hosting(publisher.worker.name, publisher.running):
        yield
