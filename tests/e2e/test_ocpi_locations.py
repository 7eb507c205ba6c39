"""The OCPI locations module (Sender) on a real server, with simulated chargers of both
versions and a registered fake eMSP: EVSE status mapping and `last_updated` only on real
changes (propagated to the location), pushes of status changes and location changes,
offline grace, removal, unpublished locations, single-object GETs and pagination."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.services.locations import LocationService
from csms.storage.locations import EvseDetail
from ocpi_cpo.locations_publisher import LocationPublisher
from ocpi_cpo.routes.locations import PUBLISHER
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner, Seen
from tests.e2e.ocpi_location_rules import location_errors
from tests.e2e.sim import until

LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def site(location_id: str, **changes: Any) -> Location:
    values: dict[str, Any] = {
        "id": location_id,
        "name": f"Site {location_id}",
        "address": "Kade 1",
        "city": "Amsterdam",
        "postal_code": "1011AA",
        "country": "NLD",
        "latitude": "52.3702",
        "longitude": "4.8952",
        "time_zone": "Europe/Amsterdam",
    }
    values.update(changes)
    return Location(**values)


class Partner:
    """The fake eMSP registered with the server, and our locations endpoint."""

    def __init__(self, server: Running, fake: FakePartner, url: str) -> None:
        self.server = server
        self.fake = fake
        self.url = url

    @property
    def token(self) -> str:
        assert self.fake.our_token is not None
        return self.fake.our_token

    async def get(self, path: str = "") -> tuple[int, dict[str, Any], Any]:
        return await self.fake.call("GET", self.url + path, self.token)

    async def location(self, location_id: str) -> dict[str, Any]:
        status, body, _ = await self.get(f"/{location_id}")
        assert status == 200 and body["status_code"] == 1000, body
        assert location_errors(body["data"]) == []
        return body["data"]  # type: ignore[no-any-return]

    def pushes(self, method: str | None = None) -> list[Seen]:
        return [
            s
            for s in self.fake.pushes
            if "/locations/" in s.path and (method is None or s.method == method)
        ]


@pytest.fixture
async def partner(start_server: StartServer) -> AsyncIterator[Partner]:
    server = await start_server(ocpi={"offline_grace": 1.0})
    fake = await FakePartner().start()
    invitation = await server.app.partners.add("emsp")
    await fake.register_with(f"{server.app.ocpi_base_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.app.ocpi_base_url}/ocpi/2.2.1", fake.our_token)
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    yield Partner(server, fake, endpoints[("locations", "SENDER")])
    await fake.stop()


def publisher(server: Running) -> LocationPublisher:
    assert server.app.ocpi_app is not None
    return server.app.ocpi_app[PUBLISHER]


def locations(server: Running) -> LocationService:
    return LocationService(server.app.db, utc_now)


@asynccontextmanager
async def charger(server: Running, version: str, cp_id: str) -> AsyncIterator[Any]:
    options = ChargerOptions(url=server.url, charger_id=cp_id, version=version, connectors=1)
    cp: Any = V16Charger(options) if version == "1.6" else V201Charger(options)
    await cp.connect()
    try:
        assert (await cp.boot())["status"] == "Accepted"
        yield cp
    finally:
        await cp.close()


async def send_status(cp: Any, version: str, status: str) -> None:
    if version == "1.6":
        await cp.status(1, status)
    else:
        await cp.status(1, 1, {"Charging": "Occupied"}.get(status, status))


async def evse_of(partner: Partner, location_id: str, uid: str) -> dict[str, Any]:
    for evse in (await partner.location(location_id))["evses"]:
        if evse["uid"] == uid:
            return evse  # type: ignore[no-any-return]
    raise AssertionError(f"no EVSE {uid} at {location_id}")


async def status_becomes(
    partner: Partner, location_id: str, uid: str, status: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        await publisher(partner.server).publish()
        evse = await evse_of(partner, location_id, uid)
        return evse if evse["status"] == status else None

    return await until(check, f"{uid} {status}")  # type: ignore[no-any-return]


async def pushed(partner: Partner, check: Callable[[], bool], what: str) -> None:
    async def done() -> bool:
        return check()

    await until(done, what)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_evse_status_follows_the_charger_and_is_pushed(
    partner: Partner, version: str
) -> None:
    server = partner.server
    cp_id = f"LOC-{version}"
    uid = f"{cp_id}*1"
    service = locations(server)
    await service.add(site("AMS-1", opening_hours={"twentyfourseven": True}))
    # Staff prepare the site before the charger was ever installed.
    await service.link("AMS-1", cp_id, None, (1, EvseDetail(evse_code="nl*csm*e0001")))
    await publisher(server).publish()
    evse = await evse_of(partner, "AMS-1", uid)
    assert evse["status"] == "PLANNED"
    assert evse["evse_id"] == "NL*CSM*E0001"
    assert evse["connectors"][0]["id"] == "1"
    assert evse["connectors"][0]["standard"] == "IEC_62196_T2"
    # The location's first PUT carried it.
    await pushed(partner, lambda: bool(partner.pushes("PUT")), "the location PUT")
    put = partner.pushes("PUT")[0]
    assert put.path.endswith("/locations/NL/CSM/AMS-1")
    assert put.body["evses"][0]["status"] == "PLANNED"
    assert location_errors(put.body) == []

    async with charger(server, version, cp_id) as cp:
        await send_status(cp, version, "Available")
        available = await status_becomes(partner, "AMS-1", uid, "AVAILABLE")
        assert set(available["capabilities"]) >= {"REMOTE_START_STOP_CAPABLE", "RFID_READER"}
        location = await partner.location("AMS-1")
        assert location["last_updated"] == available["last_updated"]

        def evse_pushes() -> list[Seen]:
            return [p for p in partner.pushes() if p.path.endswith(f"/AMS-1/{uid}")]

        def patched(status: str) -> bool:
            return any(p.body.get("status") == status for p in evse_pushes())

        await pushed(partner, lambda: patched("AVAILABLE"), "the AVAILABLE push")
        push = next(p for p in evse_pushes() if p.body["status"] == "AVAILABLE")
        if push.method == "PUT":  # status and capabilities changed in one pass
            assert push.body == available
        else:  # a pass between the boot and the StatusNotification sent the rest
            assert push.body == {"status": "AVAILABLE", "last_updated": available["last_updated"]}
        assert push.headers["OCPI-from-country-code"] == "NL"
        assert push.headers["OCPI-to-party-id"] == "EMS"

        # The same status again is no change: last_updated stays, nothing is pushed.
        count = len(partner.pushes())
        await send_status(cp, version, "Available")
        await publisher(server).publish()
        assert (await evse_of(partner, "AMS-1", uid))["last_updated"] == available["last_updated"]
        await asyncio.sleep(0.3)
        assert len(partner.pushes()) == count

        await send_status(cp, version, "Charging")
        charging = await status_becomes(partner, "AMS-1", uid, "CHARGING")
        assert charging["last_updated"] > available["last_updated"]
        # The connector itself did not change.
        assert (
            charging["connectors"][0]["last_updated"] == available["connectors"][0]["last_updated"]
        )
        assert (await partner.location("AMS-1"))["last_updated"] == charging["last_updated"]
        await pushed(partner, lambda: patched("CHARGING"), "the CHARGING patch")
        # Only the status changed: a PATCH with the status and last_updated.
        patch = evse_pushes()[-1]
        assert patch.method == "PATCH"
        assert patch.body == {"status": "CHARGING", "last_updated": charging["last_updated"]}

        await send_status(cp, version, "Faulted")
        await status_becomes(partner, "AMS-1", uid, "OUTOFORDER")
    # Gone for longer than the grace period (1 s here): UNKNOWN.
    await status_becomes(partner, "AMS-1", uid, "UNKNOWN")
    await service.unlink(cp_id)
    await status_becomes(partner, "AMS-1", uid, "REMOVED")
    await pushed(partner, lambda: patched("REMOVED"), "the REMOVED patch")
    # Pushes of one location arrived in order: the location PUT first, then each change.
    assert partner.pushes()[0] is put
    statuses = [p.body["status"] for p in evse_pushes()]
    # (UNKNOWN first when a pass ran between the boot and the first StatusNotification.)
    assert statuses[:-5] in ([], ["UNKNOWN"])
    assert statuses[-5:] == ["AVAILABLE", "CHARGING", "OUTOFORDER", "UNKNOWN", "REMOVED"]


async def test_location_changes_are_put_once(partner: Partner) -> None:
    server = partner.server
    service = locations(server)
    await service.add(site("UTR-1", city="Utrecht"))
    await service.link("UTR-1", "UTR-CP", None)
    await publisher(server).publish()
    await pushed(partner, lambda: len(partner.pushes("PUT")) == 1, "the first PUT")
    first = await partner.location("UTR-1")
    await service.update("UTR-1", {"name": "Station Utrecht", "facilities": ("WIFI", "CAFE")})
    await publisher(server).publish()
    await pushed(partner, lambda: len(partner.pushes("PUT")) == 2, "the second PUT")
    second = partner.pushes("PUT")[1].body
    assert second["name"] == "Station Utrecht" and second["facilities"] == ["WIFI", "CAFE"]
    assert second["last_updated"] > first["last_updated"]
    # Saying the same again is not a change.
    await service.update("UTR-1", {"name": "Station Utrecht"})
    await publisher(server).publish()
    await asyncio.sleep(0.3)
    assert len(partner.pushes("PUT")) == 2
    assert (await partner.location("UTR-1"))["last_updated"] == second["last_updated"]
    # Unpublishing is told to partners (publish: false), and then it is not served.
    await service.update("UTR-1", {"publish": False})
    await publisher(server).publish()
    await pushed(partner, lambda: len(partner.pushes("PUT")) == 3, "the unpublish PUT")
    assert partner.pushes("PUT")[2].body["publish"] is False
    status, body, _ = await partner.get("/UTR-1")
    assert status == 404 and body["status_code"] == 2003


async def test_single_objects_and_unknown_ids(partner: Partner) -> None:
    server = partner.server
    service = locations(server)
    await service.add(site("AMS-2", parking_type="ON_STREET"))
    await service.link("AMS-2", "AMS2-CP", None, (1, EvseDetail()))
    await service.link("AMS-2", "AMS2-CP", None, (2, EvseDetail(standard="IEC_62196_T2_COMBO")))
    await service.add(site("HIDDEN", publish=False))
    await publisher(server).publish()
    location = await partner.location("AMS-2")
    assert [e["uid"] for e in location["evses"]] == ["AMS2-CP*1", "AMS2-CP*2"]
    assert location["parking_type"] == "ON_STREET"
    status, body, _ = await partner.get("/AMS-2/AMS2-CP*2")
    assert status == 200 and body["data"]["connectors"][0]["standard"] == "IEC_62196_T2_COMBO"
    assert body["data"]["evse_id"] == "NL*CSM*EAMS2CP*2"
    status, body, _ = await partner.get("/AMS-2/AMS2-CP*2/1/")  # trailing slash tolerated
    assert status == 200 and body["data"]["id"] == "1"
    for path in ("/NOPE", "/HIDDEN", "/AMS-2/NOPE*1", "/AMS-2/AMS2-CP*1/9"):
        status, body, _ = await partner.get(path)
        assert (status, body["status_code"]) == (404, 2003), path
        assert body.get("data") is None and isinstance(body["status_message"], str)
    # Ids are CiStrings: found whatever the case, and answered as we wrote them.
    status, body, _ = await partner.get("/ams-2/ams2-cp*1")
    assert status == 200 and body["data"]["uid"] == "AMS2-CP*1"


async def test_paging_through_locations(partner: Partner) -> None:
    server = partner.server
    service = locations(server)
    for n in range(4):
        await service.add(site(f"P{n}"))
        await service.link(f"P{n}", f"P{n}-CP", None, (1, EvseDetail()))
    await service.add(site("NOT-PUBLIC", publish=False))
    await publisher(server).publish()
    seen: list[dict[str, Any]] = []
    next_url: str | None = partner.url + "?limit=1"
    while next_url is not None:
        status, body, headers = await partner.fake.call("GET", next_url, partner.token)
        assert status == 200 and headers["X-Total-Count"] == "4" and headers["X-Limit"] == "100"
        assert len(body["data"]) == 1
        seen.extend(body["data"])
        link = headers.get("Link")
        next_url = None if link is None else LINK.match(link)["url"]  # type: ignore[index]
    assert [loc["id"] for loc in seen] == ["P0", "P1", "P2", "P3"]
    assert all(location_errors(loc) == [] for loc in seen)
    # A change while paging does not move a location in the order.
    await service.update("P0", {"name": "renamed"})
    await publisher(server).publish()
    _, body, _ = await partner.get("?offset=0&limit=2")
    assert [loc["id"] for loc in body["data"]] == ["P0", "P1"]
    # date_from inclusive, date_to exclusive, on last_updated.
    stamp = body["data"][0]["last_updated"]
    _, body, headers = await partner.get(f"?date_from={stamp}")
    assert [loc["id"] for loc in body["data"]] == ["P0"] and headers["X-Total-Count"] == "1"
    _, body, _ = await partner.get(f"?date_to={stamp}")
    assert [loc["id"] for loc in body["data"]] == ["P1", "P2", "P3"]
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, body, headers = await partner.get(f"?date_from={later}")
    assert body["data"] == [] and headers["X-Total-Count"] == "0" and "Link" not in headers
    status, body, _ = await partner.get("?limit=x")
    assert status == 200 and body["status_code"] == 2001


async def test_a_partner_token_is_needed(partner: Partner) -> None:
    status, body, _ = await partner.fake.call("GET", partner.url, "not-a-token")
    assert status == 401 and body["status_code"] == 2000 and body.get("data") is None


async def test_a_charger_moved_to_another_site(partner: Partner) -> None:
    server = partner.server
    service = locations(server)
    await service.add(site("FROM"))
    await service.add(site("TO", city="Utrecht"))
    await service.link("FROM", "MOVER", None, (1, EvseDetail()))
    await publisher(server).publish()
    assert [e["uid"] for e in (await partner.location("FROM"))["evses"]] == ["MOVER*1"]
    await service.link("TO", "MOVER", None)
    await publisher(server).publish()
    assert (await partner.location("FROM"))["evses"] == []
    (evse,) = (await partner.location("TO"))["evses"]
    assert evse["uid"] == "MOVER*1" and evse["status"] == "PLANNED"

    def told() -> bool:
        paths = {(p.method, p.path.rsplit("/locations/", 1)[1]) for p in partner.pushes()}
        return {("PATCH", "NL/CSM/FROM/MOVER*1"), ("PUT", "NL/CSM/TO/MOVER*1")} <= paths

    await pushed(partner, told, "REMOVED at the old site and the EVSE at the new one")
    removed = next(p for p in partner.pushes("PATCH") if p.path.endswith("/FROM/MOVER*1"))
    assert removed.body["status"] == "REMOVED"
