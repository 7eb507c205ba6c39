"""The OCPI sessions and CDRs modules (Sender) and their pushes, on a real server with a
raw 1.6 charger and fake eMSPs: who sees which session (token owner parties, hubs, never our
own customers'), ACTIVE then COMPLETED with the CDR's numbers, pagination, the outbox rows
(PUT, PATCHes, final PUT, CDR POST; tariff PUT/DELETE) and their delivery, also across a
restart and after the bridge was down for a whole session."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection

from csms.app import CsmsApp
from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.outbox import OutboxEntry
from csms.services.locations import LocationService
from csms.storage import ocpi_sessions as ocpi_sessions_repo
from csms.storage import outbox as outbox_repo
from csms.storage.models import TariffRow
from ocpi_cpo.sessions_publisher import SESSION_PUBLISHER
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer, make_config
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner, Seen
from tests.e2e.ocpi_rules import cdr_errors, published_evse_ids, session_errors
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import register, ts, until
from tests.e2e.sql import execute

LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
CP_ID = "SESS-1"
# Our partner's party (the fake eMSP's role) and another eMSP's.
EMS_CARD = "EMS-CARD"
OWN_CARD = "OWN-CARD"
OTHER_ROLE = {
    "role": "EMSP",
    "country_code": "FR",
    "party_id": "OTH",
    "business_details": {"name": "Other eMSP"},
}
HUB_ROLE = {
    "role": "HUB",
    "country_code": "BE",
    "party_id": "HUB",
    "business_details": {"name": "A hub"},
}
ALL_RECEIVERS = (
    ("credentials", "SENDER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tariffs", "RECEIVER"),
)
# Energy is cheaper in the first 3 s of a session: a new charging period starts then.
TARIFF = {
    "id": "T-SESS",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.25, "vat": 21, "step_size": 1}],
            "restrictions": {"max_duration": 3},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.40, "vat": 21, "step_size": 1}]},
    ],
}


@dataclass
class Peer:
    """A fake partner registered with the server, with our endpoints as it sees them."""

    name: str
    fake: FakePartner
    partner_id: int
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        assert self.fake.our_token is not None
        return self.fake.our_token

    async def get(self, module: str, query: str = "") -> tuple[dict[str, Any], dict[str, str]]:
        url = self.endpoints[module] + (f"?{query}" if query else "")
        status, body, headers = await self.fake.call("GET", url, self.token)
        assert status == 200 and body["status_code"] == 1000, body
        return body, headers

    async def walk(self, module: str, query: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Every page from `query` on, following Link; returns the objects and the
        X-Total-Count of each page."""
        items: list[dict[str, Any]] = []
        totals: list[str] = []
        url: str | None = self.endpoints[module] + "?" + query
        while url is not None:
            status, body, headers = await self.fake.call("GET", url, self.token)
            assert status == 200 and body["status_code"] == 1000, body
            items.extend(body["data"])
            totals.append(headers["X-Total-Count"])
            link = headers.get("Link")
            match = LINK.match(link) if link else None
            assert link is None or match is not None
            url = None if match is None else match["url"]
        return items, totals

    def received(self, session_id: str) -> list[Seen]:
        """Session and CDR pushes it received for one session, in order."""
        return [
            s
            for s in self.fake.pushes
            if s.path.endswith(f"/sessions/NL/CSM/{session_id}")
            or (s.path.endswith("/cdrs") and s.body.get("session_id") == session_id)
        ]


@dataclass
class World:
    server: Running
    peers: dict[str, Peer]

    async def outbox(self, peer: str) -> list[OutboxEntry]:
        async with self.server.app.db.read() as conn:
            rows = await outbox_repo.listing(
                conn, partner_id=self.peers[peer].partner_id, pending_only=False, limit=1000
            )
        return sorted(rows, key=lambda e: e.id)

    async def session_pushes(self, peer: str, tx_id: int) -> list[OutboxEntry]:
        return [e for e in await self.outbox(peer) if e.object_key == f"sessions/{tx_id}"]

    def wake(self) -> None:
        assert self.server.app.ocpi_app is not None
        self.server.app.ocpi_app[SESSION_PUBLISHER].wake()


async def _register(server: Running, name: str, role: dict[str, Any]) -> Peer:
    fake = await FakePartner(roles=(role,), endpoints=ALL_RECEIVERS).start()
    invitation = await server.app.partners.add(name)
    await fake.register_with(f"{server.app.ocpi_base_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.app.ocpi_base_url}/ocpi/2.2.1", fake.our_token)
    endpoints = {
        e["identifier"]: e["url"] for e in details["data"]["endpoints"] if e["role"] == "SENDER"
    }
    return Peer(name, fake, invitation.partner.id, endpoints)


async def _site(server: Running) -> None:
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id="LOC-S",
            name="Depot",
            address="Kade 1",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link("LOC-S", CP_ID, None)
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("T-SESS", location="LOC-S")
    await server.staff.add_token(Token(EMS_CARD, TokenStatus.ACCEPTED, origin="DE*EMS"))
    await server.staff.add_token(Token(OWN_CARD, TokenStatus.ACCEPTED))


@pytest.fixture
async def world(start_server: StartServer) -> AsyncIterator[World]:
    server = await start_server(ocpi={"session_update_interval": 1.0})
    await _site(server)
    peers = {
        "emsp": await _register(server, "emsp", EMSP_ROLE),
        "other": await _register(server, "other", OTHER_ROLE),
        "hub": await _register(server, "hub", HUB_ROLE),
    }
    yield World(server, peers)
    for peer in peers.values():
        await peer.fake.stop()


def now() -> datetime:
    return datetime.now(UTC)


async def charger(server: Running) -> ClientConnection:
    ws = await open_raw(server.url, CP_ID)
    await call(ws, "BootNotification", {**BOOT, "meterSerialNumber": "MTR-77"})
    return ws


async def start(ws: ClientConnection, connector: int, tag: str, wh: int = 1000) -> int:
    """A transaction, with a first register reading at its start (live energy counts from
    the first reading)."""
    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": connector, "idTag": tag, "meterStart": wh, "timestamp": ts(now())},
    )
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    tx_id = int(answer[2]["transactionId"])
    await meter(ws, connector, tx_id, wh)
    return tx_id


async def meter(ws: ClientConnection, connector: int, tx_id: int, wh: int) -> None:
    payload = {
        "connectorId": connector,
        "transactionId": tx_id,
        "meterValue": [register(now(), wh)],
    }
    await call(ws, "MeterValues", payload)


async def stop(ws: ClientConnection, tx_id: int, wh: int) -> None:
    await call(
        ws,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": wh, "timestamp": ts(now())},
    )


async def billed(world: World, tx_id: int) -> list[Any]:
    async def made() -> list[Any]:
        return await world.server.app.billing.cdrs_of(tx_id)

    return await until(made, f"the CDR of {tx_id}")  # type: ignore[no-any-return]


@pytest.mark.slow
async def test_a_partners_session_is_listed_and_pushed_until_its_cdr(world: World) -> None:
    emsp, other, hub = world.peers["emsp"], world.peers["other"], world.peers["hub"]
    ws = await charger(world.server)
    for connector in (1, 2):  # the EVSEs are published once the charger reported them
        status = {"connectorId": connector, "errorCode": "NoError", "status": "Preparing"}
        await call(ws, "StatusNotification", status)
    ours = await start(ws, 2, OWN_CARD)
    tx_id = await start(ws, 1, EMS_CARD)
    await meter(ws, 1, tx_id, 1100)
    await meter(ws, 2, ours, 1010)

    # Running: the eMSP owning the token sees it ACTIVE, with kWh so far.
    body, headers = await emsp.get("sessions")
    assert headers["X-Total-Count"] == "1" and "Link" not in headers
    (session,) = body["data"]
    assert session_errors(session) == []
    assert session["id"] == str(tx_id) and session["status"] == "ACTIVE"
    assert session["country_code"] == "NL" and session["party_id"] == "CSM"
    assert session["cdr_token"]["country_code"] == "DE"
    assert session["cdr_token"]["party_id"] == "EMS"
    assert session["cdr_token"]["uid"] == EMS_CARD and session["cdr_token"]["type"] == "RFID"
    assert session["auth_method"] == "WHITELIST"
    assert session["kwh"] == 0.1
    assert (session["location_id"], session["evse_uid"]) == ("LOC-S", f"{CP_ID}*1")
    assert session["connector_id"] == "1" and session["meter_id"] == "MTR-77"
    assert session["currency"] == "EUR" and "end_date_time" not in session
    # Another eMSP sees nothing, on no page; a hub sees every party's but ours.
    for query in ("", "offset=0&limit=1", "offset=1", "date_from=2000-01-01T00:00:00Z"):
        body, headers = await other.get("sessions", query)
        assert body["data"] == [] and headers["X-Total-Count"] == "0"
    body, _ = await hub.get("sessions")
    assert [s["id"] for s in body["data"]] == [str(tx_id)]

    # The first PUT (with the periods already closed: none yet), then PATCHes every second;
    # once the cheap first 3 s are over, a PATCH appends the closed first period.
    async def appended() -> bool:
        for _ in range(2):
            await meter(ws, 1, tx_id, 1200)
        pushes = await world.session_pushes("emsp", tx_id)
        return any(e.method == "PATCH" for e in pushes) and any(
            (e.body or {}).get("charging_periods") for e in pushes
        )

    await until(appended, "a closed period pushed", seconds=15)
    await stop(ws, tx_id, 1250)
    await stop(ws, ours, 1020)
    (cdr_row,) = await billed(world, tx_id)

    async def final_and_cdr() -> list[OutboxEntry]:
        world.wake()
        found = await world.session_pushes("emsp", tx_id)
        return found if found and found[-1].method == "POST" else []

    pushes = await until(final_and_cdr, "the final session and the CDR in the outbox")
    methods = [e.method for e in pushes]
    assert methods[0] == "PUT" and methods[-2:] == ["PUT", "POST"]
    assert set(methods[1:-2]) == {"PATCH"}
    first, *patches, final, posted = pushes
    assert first.url.endswith(f"/sessions/NL/CSM/{tx_id}") and first.module == "sessions"
    assert first.body is not None and first.body["status"] == "ACTIVE"
    assert session_errors(first.body) == []
    for patch in patches:
        assert patch.body is not None and "last_updated" in patch.body
        assert patch.body["status"] == "ACTIVE"
    appended_periods = [p for e in patches for p in (e.body or {}).get("charging_periods", [])]
    running_periods = first.body["charging_periods"] + appended_periods
    assert len(running_periods) == 1  # the first period, sent once
    assert final.body is not None and session_errors(final.body) == []
    assert final.body["status"] == "COMPLETED"
    assert posted.module == "cdrs" and posted.url == emsp.fake.base + "/2.2.1/cdrs"
    assert posted.body is not None and posted.body["id"] == cdr_row.id
    assert cdr_errors(posted.body) == []

    # Completed: the session carries the CDR's numbers.
    body, _ = await emsp.get("sessions")
    (session,) = body["data"]
    assert session_errors(session) == []
    assert session["status"] == "COMPLETED" and "end_date_time" in session
    cdrs, headers = await emsp.get("cdrs")
    assert headers["X-Total-Count"] == "1"
    (cdr,) = cdrs["data"]
    # The CDR names the EVSE as GET /locations shows it (our default eMI3 id here).
    locations, _ = await emsp.walk("locations", "")
    evse_ids = published_evse_ids(locations)
    assert set(evse_ids) == {f"{CP_ID}*1", f"{CP_ID}*2"}
    assert evse_ids[f"{CP_ID}*1"] == "NL*CSM*ESESS1*1"
    assert cdr_errors(cdr, evse_ids) == []
    assert cdr["cdr_location"]["evse_id"] == "NL*CSM*ESESS1*1"
    assert cdr["id"] == cdr_row.id and cdr["session_id"] == str(tx_id)
    assert cdr["cdr_token"]["country_code"] == "DE" and cdr["auth_method"] == "WHITELIST"
    assert session["total_cost"] == cdr["total_cost"] == final.body["total_cost"]
    assert session["kwh"] == cdr["total_energy"] == 0.25
    assert session["charging_periods"] == cdr["charging_periods"]
    assert final.body["charging_periods"] == cdr["charging_periods"]
    # The final session replaces the periods appended while running (the meter's final
    # reading may still move their volumes).
    assert running_periods[0]["start_date_time"] == cdr["charging_periods"][0]["start_date_time"]
    assert len(cdr["charging_periods"]) == 2
    assert posted.body == cdr
    body, _ = await other.get("cdrs")
    assert body["data"] == []

    # Nothing of our own customer's session went anywhere; the other eMSP got nothing.
    assert await world.session_pushes("emsp", ours) == []
    assert [e for e in await world.outbox("other") if e.module != "tariffs"] == []
    hub_pushes = await world.session_pushes("hub", tx_id)
    assert [e.method for e in hub_pushes][-2:] == ["PUT", "POST"]

    # The push worker delivered them to the eMSP in the same order.
    async def delivered() -> list[Seen]:
        got = emsp.received(str(tx_id))
        return got if len(got) == len(pushes) else []

    seen = await until(delivered, "the pushes at the eMSP")
    assert [(s.method, s.body) for s in seen] == [(e.method, e.body) for e in pushes]
    assert emsp.received(str(ours)) == [] and other.received(str(tx_id)) == []
    assert {(s.headers["OCPI-to-country-code"], s.headers["OCPI-to-party-id"]) for s in seen} == {
        ("DE", "EMS")
    }

    # The hub gets them addressed to the token's eMSP (it routes them on).
    async def at_hub() -> list[Seen]:
        got = hub.received(str(tx_id))
        return got if [s.method for s in got][-2:] == ["PUT", "POST"] else []

    for s in await until(at_hub, "the session pushes at the hub"):
        assert (s.headers["OCPI-to-country-code"], s.headers["OCPI-to-party-id"]) == ("DE", "EMS")
        assert (s.headers["OCPI-from-country-code"], s.headers["OCPI-from-party-id"]) == (
            "NL",
            "CSM",
        )
    await ws.close()


async def test_sessions_and_cdrs_page_like_every_list(world: World) -> None:
    emsp, hub = world.peers["emsp"], world.peers["hub"]
    ws = await charger(world.server)
    ids: list[int] = []
    for n in range(3):
        # Our own customer charges in between: never listed, never counted.
        own = await start(ws, 2, OWN_CARD)
        await stop(ws, own, 1000 + n)
        tx_id = await start(ws, 1, EMS_CARD)
        await meter(ws, 1, tx_id, 1030)
        await stop(ws, tx_id, 1050 + 10 * n)
        await billed(world, tx_id)
        ids.append(tx_id)
        await asyncio.sleep(0.01)
    running = await start(ws, 1, EMS_CARD)

    walked, totals = await emsp.walk("sessions", "limit=1")
    assert [s["id"] for s in walked] == [str(i) for i in [*ids, running]]
    assert totals == ["4"] * 4
    assert all(session_errors(s) == [] for s in walked)
    assert [s["status"] for s in walked] == ["COMPLETED"] * 3 + ["ACTIVE"]
    hub_walk, _ = await hub.walk("sessions", "limit=2")
    assert [s["id"] for s in hub_walk] == [s["id"] for s in walked]

    # date_from inclusive, date_to exclusive on last_updated (a running session's is now).
    middle = walked[1]["last_updated"]
    found, totals = await emsp.walk("sessions", f"date_from={middle}")
    assert [s["id"] for s in found] == [str(ids[1]), str(ids[2]), str(running)]
    assert totals == ["3"]
    found, _ = await emsp.walk("sessions", f"date_to={middle}")
    assert [s["id"] for s in found] == [str(ids[0])]
    later = (now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found, totals = await emsp.walk("sessions", f"date_to={later}&limit=1")
    assert len(found) == 4 and totals == ["4"] * 4
    body, headers = await emsp.get("sessions", f"date_from={later}")
    assert body["data"] == [] and headers["X-Total-Count"] == "0"
    body, headers = await emsp.get("sessions", "offset=3&limit=5")
    assert [s["id"] for s in body["data"]] == [str(running)] and "Link" not in headers
    body, headers = await emsp.get("sessions", "limit=2")
    assert headers["X-Limit"] == "100" and "offset=2" in headers["Link"]
    body, _ = await emsp.get("sessions", "limit=0")
    assert body["data"] == []

    cdrs, totals = await emsp.walk("cdrs", "limit=1")
    assert [c["session_id"] for c in cdrs] == [str(i) for i in ids]
    assert totals == ["3"] * 3
    assert all(cdr_errors(c) == [] for c in cdrs)
    middle = cdrs[1]["last_updated"]
    found, _ = await emsp.walk("cdrs", f"date_from={middle}")
    assert [c["id"] for c in found] == [c["id"] for c in cdrs[1:]]
    found, _ = await emsp.walk("cdrs", f"date_to={middle}")
    assert [c["id"] for c in found] == [cdrs[0]["id"]]
    body, _ = await world.peers["other"].get("cdrs", "offset=0&limit=10")
    assert body["data"] == []

    # A credit CDR is listed and pushed too, behind the session again.
    credit_of = cdrs[0]["id"]
    _, credit = await world.server.app.billing.credit(credit_of, "wrong meter")

    async def credit_pushed() -> bool:
        world.wake()
        entries = await world.session_pushes("emsp", ids[0])
        return (
            bool(entries) and entries[-1].body is not None and entries[-1].body["id"] == credit.id
        )

    await until(credit_pushed, "the credit CDR push")
    entries = await world.session_pushes("emsp", ids[0])
    assert entries[-1].method == "POST" and entries[-1].body is not None
    assert entries[-1].body["credit"] is True and cdr_errors(entries[-1].body) == []
    walked_cdrs, _ = await emsp.walk("cdrs", "")
    assert walked_cdrs[-1]["credit_reference_id"] == credit_of
    await ws.close()


async def test_tariff_changes_are_pushed_in_the_same_write(world: World) -> None:
    billing = world.server.app.billing
    emsp = world.peers["emsp"]

    async def tariff_pushes() -> list[OutboxEntry]:
        return [e for e in await world.outbox("emsp") if e.module == "tariffs"]

    # The fixture's tariff again, unchanged: nothing is pushed.
    await billing.import_tariffs(TARIFF)
    assert await tariff_pushes() == []
    # A new tariff is PUT to every partner taking tariffs, in the write that stores it.
    fresh = {**TARIFF, "id": "T-NEW"}
    await billing.import_tariffs(fresh)
    (first,) = await tariff_pushes()
    assert first.method == "PUT" and first.url.endswith("/tariffs/NL/CSM/T-NEW")
    assert first.object_key == "tariffs/T-NEW" and first.body is not None
    assert first.body["id"] == "T-NEW" and first.body["last_updated"]
    assert first.body["country_code"] == "NL" and first.body["party_id"] == "CSM"
    assert len([e for e in await world.outbox("other") if e.module == "tariffs"]) == 1
    await billing.import_tariffs(fresh)
    assert len(await tariff_pushes()) == 1
    changed = {**fresh, "elements": TARIFF["elements"][1:]}
    await billing.import_tariffs(changed)
    await billing.remove_tariff("T-NEW")
    entries = await tariff_pushes()
    assert [e.method for e in entries] == ["PUT", "PUT", "DELETE"]
    assert entries[1].body is not None and len(entries[1].body["elements"]) == 1
    assert entries[2].body is None and entries[2].url == first.url

    async def delivered() -> list[Seen]:
        got = [s for s in emsp.fake.pushes if "/tariffs/" in s.path]
        return got if len(got) == 3 else []

    seen = await until(delivered, "the tariff pushes at the eMSP")
    assert [s.method for s in seen] == ["PUT", "PUT", "DELETE"]
    assert {(s.headers["OCPI-to-country-code"], s.headers["OCPI-to-party-id"]) for s in seen} == {
        ("DE", "EMS")
    }

    # A hub gets our tariffs as a broadcast: addressed to the hub itself.
    async def at_hub() -> list[Seen]:
        got = [s for s in world.peers["hub"].fake.pushes if "/tariffs/" in s.path]
        return got if len(got) == 3 else []

    for s in await until(at_hub, "the tariff pushes at the hub"):
        assert (s.headers["OCPI-to-country-code"], s.headers["OCPI-to-party-id"]) == ("BE", "HUB")


async def test_publication_survives_a_restart(start_server: StartServer) -> None:
    server = await start_server(ocpi={"session_update_interval": 1.0})
    await _site(server)
    peer = await _register(server, "emsp", EMSP_ROLE)
    try:
        ws = await charger(server)
        tx_id = await start(ws, 1, EMS_CARD)
        world = World(server, {"emsp": peer})

        async def put() -> list[OutboxEntry]:
            return await world.session_pushes("emsp", tx_id)

        await until(put, "the first PUT")
        await ws.close()
        await server.stop()

        # A new process over the same database: no memory of what was pushed.
        server = await start_server(ocpi={"session_update_interval": 1.0})
        world = World(server, {"emsp": peer})
        ws = await charger(server)
        await meter(ws, 1, tx_id, 1050)
        await stop(ws, tx_id, 1080)
        await billed(world, tx_id)

        async def finished() -> list[OutboxEntry]:
            world.wake()
            found = await world.session_pushes("emsp", tx_id)
            return found if found[-1].method == "POST" else []

        pushes = await until(finished, "the final session and CDR after the restart")
        methods = [e.method for e in pushes]
        assert methods.count("POST") == 1 and methods[-2:] == ["PUT", "POST"]
        assert methods[0] == "PUT" and methods.count("PUT") == 2  # started once, final once

        async def delivered() -> list[Seen]:
            got = peer.received(str(tx_id))
            return got if len(got) == len(pushes) else []

        seen = await until(delivered, "the pushes at the eMSP")
        assert [s.method for s in seen] == methods
        await ws.close()
    finally:
        await peer.fake.stop()


async def test_a_session_while_the_bridge_was_down_is_pushed_when_it_returns(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpi={"session_update_interval": 1.0})
    await _site(server)
    peer = await _register(server, "emsp", EMSP_ROLE)
    db_path = server.db_path

    async def cursors() -> bool:
        async with server.app.db.read() as conn:
            found = [await outbox_repo.cursor(conn, name) for name in ("sessions", "cdrs")]
        return None not in found

    await until(cursors, "the publisher's first pass")
    await server.stop()
    # Only the OCPP side runs (e.g. the bridge crashed): a whole session happens, billed.
    config = make_config(db_path, ocpi={"session_update_interval": 1.0})
    ocpp_only = CsmsApp(config, components=("ocpp", "api"))
    await ocpp_only.start()
    try:
        ws = await open_raw(f"ws://127.0.0.1:{ocpp_only.ocpp.port}/ocpp", CP_ID)
        await call(ws, "BootNotification", BOOT)
        tx_id = await start(ws, 1, EMS_CARD)
        await meter(ws, 1, tx_id, 1040)
        await stop(ws, tx_id, 1050)
        await ws.close()

        async def made() -> list[Any]:
            return await ocpp_only.billing.cdrs_of(tx_id)

        (cdr,) = await until(made, "the CDR")
    finally:
        await ocpp_only.stop()
    try:
        # The bridge is back: it finds the session and its CDR by reconciliation.
        server = await start_server(ocpi={"session_update_interval": 1.0})
        world = World(server, {"emsp": peer})

        async def pushed() -> list[OutboxEntry]:
            found = await world.session_pushes("emsp", tx_id)
            return found if found and found[-1].method == "POST" else []

        final, posted = await until(pushed, "the final session and the CDR")
        assert final.method == "PUT" and final.body is not None
        assert final.body["status"] == "COMPLETED" and session_errors(final.body) == []
        assert posted.body is not None and posted.body["id"] == cdr.id

        async def delivered() -> list[Seen]:
            got = peer.received(str(tx_id))
            return got if len(got) == 2 else []

        seen = await until(delivered, "the pushes at the eMSP")
        assert [s.method for s in seen] == ["PUT", "POST"]
    finally:
        await peer.fake.stop()


async def test_a_session_that_cannot_be_rendered_does_not_hold_up_the_others(
    start_server: StartServer,
) -> None:
    """EVSE 1 is priced by a stored tariff that no longer parses (written with SQL into
    the database file): its running session cannot be rendered. The session on EVSE 2 is
    pushed all the same; the broken one is recorded with its error and tried again once
    its back-off has passed (the server's clock is moved on), which after staff mend the
    tariff pushes it."""
    offset = timedelta(0)

    def clock() -> datetime:
        return utc_now() + offset

    server = await start_server(clock=clock, ocpi={"session_update_interval": 1.0})
    await _site(server)
    await server.staff.add_token(Token("EMS-CARD-2", TokenStatus.ACCEPTED, origin="DE*EMS"))
    peer = await _register(server, "emsp", EMSP_ROLE)
    world = World(server, {"emsp": peer})
    try:
        ws = await charger(server)
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        await call(ws, "StatusNotification", {**status, "timestamp": ts(now())})
        broken_tariff = {**TARIFF, "id": "T-BROKEN"}
        await server.app.billing.import_tariffs(broken_tariff)
        await server.app.billing.assign("T-BROKEN", evse=f"{CP_ID}*1")
        unparsable = {
            **broken_tariff,
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": "abc", "step_size": 1}]}
            ],
        }
        await asyncio.to_thread(_write_tariff_data, server, "T-BROKEN", unparsable)

        broken = await start(ws, 1, EMS_CARD)
        fine = await start(ws, 2, "EMS-CARD-2")
        world.wake()

        async def fine_put() -> list[Seen]:
            return [s for s in peer.received(str(fine)) if s.method == "PUT"]

        await until(fine_put, "the session of EVSE 2 at the eMSP")

        async def failure() -> Any:
            async with server.app.db.read() as conn:
                return (await ocpi_sessions_repo.failures_of(conn, [broken])).get(broken)

        recorded = await until(failure, "the failing session to be recorded")
        assert recorded.attempts == 1
        assert recorded.last_error == (
            'TariffError: tariff "T-BROKEN": elements[0].price_components[0].price: '
            "must be a number"
        )
        assert recorded.next_attempt_at > clock()
        assert await world.session_pushes("emsp", broken) == []
        shown = json.loads(ok(await csms(server, "ocpi", "outbox", "--json")))
        (listed,) = shown["sessions_not_rendered"]
        assert (listed["transaction_id"], listed["attempts"]) == (broken, 1)
        assert listed["last_error"] == recorded.last_error
        # Not tried again before its time, however often the publisher runs.
        for _ in range(3):
            world.wake()
            await asyncio.sleep(0.2)
        again = await failure()
        assert again is not None and again.attempts == 1

        # Staff mend the tariff; once the back-off has passed the session goes out.
        await server.app.billing.import_tariffs(broken_tariff)
        offset += timedelta(seconds=11)
        world.wake()

        async def broken_put() -> list[Seen]:
            return [s for s in peer.received(str(broken)) if s.method == "PUT"]

        (put,) = await until(broken_put, "the mended session at the eMSP")
        assert put.body["status"] == "ACTIVE" and session_errors(put.body) == []
        assert await failure() is None
        await ws.close()
    finally:
        await peer.fake.stop()


def _write_tariff_data(server: Running, tariff_id: str, data: dict[str, Any]) -> None:
    execute(server.db_path, update(TariffRow).where(TariffRow.id == tariff_id).values(data=data))
