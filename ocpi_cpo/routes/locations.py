"""Locations module, Sender interface: `GET /ocpi/2.2.1/locations` pages over our published
locations, and `/{location_id}[/{evse_uid}[/{connector_id}]]` returns one object.

Objects are what the location publisher stored (ocpi_cpo.locations_publisher), so what
partners pull is what they were pushed. Unpublished locations do not exist for partners.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from csms.core.partners import InterfaceRole
from csms.storage import locations as location_repo
from csms.storage import ocpi_evses as evse_repo
from ocpi_cpo.context import PARTNERS, PUSHER, SETTINGS
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.locations_publisher import Identity, LocationPublisher
from ocpi_cpo.pagination import Page
from ocpi_cpo.transport import (
    add_endpoint,
    add_route,
    dumps,
    page_of,
    reply,
    reply_encoded_page,
    reply_page,
)
from ocpi_cpo.versions import VERSION_PATH

PUBLISHER = web.AppKey("ocpi_location_publisher", LocationPublisher)
PATH = f"{VERSION_PATH}/locations"


def _unknown(what: str) -> OcpiFailure:
    return OcpiFailure(Status.UNKNOWN_LOCATION, f"unknown {what}", http_status=404)


class Rendered:
    """Locations as encoded JSON, keyed by id and valid for one `last_updated`: every real
    change of a location or of its EVSEs moves its last_updated (in the same write), so a
    page needs only the ids and stamps from the database when nothing changed."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._items: dict[str, tuple[datetime, bytes]] = {}

    def get(self, location_id: str, last_updated: datetime) -> bytes | None:
        found = self._items.get(location_id)
        return found[1] if found is not None and found[0] == last_updated else None

    def put(self, location_id: str, last_updated: datetime, encoded: bytes) -> None:
        if len(self._items) >= self._limit:
            self._items.clear()
        self._items[location_id] = (last_updated, encoded)


RENDERED = web.AppKey("ocpi_rendered_locations", Rendered)


async def list_locations(request: web.Request) -> web.Response:
    page = page_of(request)
    publisher = request.app[PUBLISHER]
    cache = request.app[RENDERED]
    async with request.app[PARTNERS].db.read() as conn:
        keys, total = await location_repo.published_keys(
            conn,
            date_from=page.date_from,
            date_to=page.date_to,
            offset=page.offset,
            limit=page.limit,
        )
        missing = [i for i, stamp in keys if cache.get(i, stamp) is None]
        if missing:
            found = await location_repo.get_many(conn, missing)
            evses = await evse_repo.at_locations(conn, list(found))
            for location in found.values():
                assert location.last_updated is not None
                body = publisher.render(location, evses[location.id])
                cache.put(location.id, location.last_updated, dumps(body))
    items = [cache.get(i, stamp) for i, stamp in keys]
    if any(item is None for item in items):
        # Changed between the two reads: the page is made from the database afresh.
        return await _list_uncached(request, page)
    return reply_encoded_page(request, [i for i in items if i is not None], total, page)


async def _list_uncached(request: web.Request, page: Page) -> web.Response:
    publisher = request.app[PUBLISHER]
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
    items = [publisher.render(found[i], evses[i]) for i, _ in keys if i in found]
    return reply_page(request, items, total, page)


async def _location(request: web.Request) -> dict[str, Any]:
    location_id = request.match_info["location_id"]
    async with request.app[PARTNERS].db.read() as conn:
        body = await request.app[PUBLISHER].location_object(conn, location_id)
    if body is None:
        raise _unknown(f"location {location_id!r}")
    return body


def _evse(location: dict[str, Any], uid: str) -> dict[str, Any]:
    for evse in location["evses"]:
        if evse["uid"].upper() == uid.upper():  # CiString
            return dict(evse)
    raise _unknown(f"EVSE {uid!r} at location {location['id']!r}")


async def get_location(request: web.Request) -> web.Response:
    return reply(request, await _location(request))


async def get_evse(request: web.Request) -> web.Response:
    location = await _location(request)
    return reply(request, _evse(location, request.match_info["evse_uid"]))


async def get_connector(request: web.Request) -> web.Response:
    location = await _location(request)
    evse = _evse(location, request.match_info["evse_uid"])
    connector_id = request.match_info["connector_id"]
    for connector in evse["connectors"]:
        if connector["id"].upper() == connector_id.upper():
            return reply(request, connector)
    raise _unknown(f"connector {connector_id!r} of EVSE {evse['uid']!r}")


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[RENDERED] = Rendered()
    app[PUBLISHER] = LocationPublisher(
        app[PARTNERS].db,
        settings.clock,
        Identity(settings.country_code, settings.party_id, settings.business_name),
        grace=timedelta(seconds=settings.offline_grace),
        interval=settings.push_interval,
    )
    add_endpoint(app, "locations", InterfaceRole.SENDER, PATH)
    add_route(app, "GET", PATH, list_locations)
    add_route(app, "GET", PATH + "/{location_id}", get_location)
    add_route(app, "GET", PATH + "/{location_id}/{evse_uid}", get_evse)
    add_route(app, "GET", PATH + "/{location_id}/{evse_uid}/{connector_id}", get_connector)
    app.cleanup_ctx.append(_publishing)


async def _publishing(app: web.Application) -> AsyncIterator[None]:
    """The location publisher runs while the app does; what it enqueues wakes the pusher."""
    publisher = app[PUBLISHER]

    def wake_pusher() -> None:
        if PUSHER in app:
            app[PUSHER].wake()

    publisher.on_enqueued.append(wake_pusher)
    task = asyncio.create_task(publisher.run(), name="ocpi-locations")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
