"""Pushes to an OCPI 2.1.1 partner, on a real server with a raw 1.6 charger and a fake eMSP:
locations, EVSE statuses, tariffs, sessions and CDRs reach it written in 2.1.1, at its 2.1.1
endpoints, without routing headers; a partner that goes from 2.2.1 to 2.1.1 while pushes
wait for it gets them in 2.1.1 at its new endpoints (the outbox keeps 2.2.1 bodies and the
path after the endpoint; ocpi_cpo.outgoing writes them at sending time); its tokens, pulled
in 2.1.1, authorise a charger, and a real-time authorization asks it in 2.1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.outbox import OutboxEntry
from csms.core.partners import InterfaceRole, TokenEncoding
from csms.services.locations import LocationService
from csms.storage import outbox as outbox_repo
from csms.storage.database import WriteTx
from ocpi_cpo.sessions_publisher import SESSION_PUBLISHER
from ocpi_cpo.token_sync import TOKEN_PULLER
from simulators.emsp import EmspSimulator
from simulators.emsp import Party as SimParty
from simulators.emsp import Push as SimPush
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from tests.e2e.cli import csms
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner, Seen, error, ok
from tests.e2e.ocpi_rules_211 import (
    authorization_info_errors_211,
    cdr_errors_211,
    command_result_errors_211,
    credentials_errors_211,
    evse_errors_211,
    location_errors_211,
    location_patch_errors_211,
    session_errors_211,
    tariff_errors_211,
    token_errors_211,
)
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import register, ts, until

CP_ID = "V211-1"
EMS_CARD = "EMS-V211"
ENDPOINTS = (
    ("credentials", "SENDER"),
    ("locations", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tariffs", "RECEIVER"),
    ("tokens", "SENDER"),
)
RECEIVERS = ("locations", "sessions", "cdrs", "tariffs")
TARIFF = {
    "id": "T-V211",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]},
    ],
}
# What 2.2.1 has and 2.1.1 objects do not (never sent to a 2.1.1 partner).
ONLY_221 = {
    "locations": ("country_code", "party_id", "publish", "parking_type"),
    "tariffs": ("country_code", "party_id", "type"),
    "sessions": ("country_code", "party_id", "cdr_token", "location_id", "start_date_time"),
    "cdrs": ("country_code", "party_id", "cdr_token", "cdr_location", "end_date_time"),
}
ROUTING = ("OCPI-to-country-code", "OCPI-to-party-id", "OCPI-from-country-code")


@dataclass
class World:
    server: Running
    fake: FakePartner
    partner_id: int
    hold: bool = False  # the fake answers pushes 503 while set

    async def pending(self) -> list[OutboxEntry]:
        async with self.server.app.db.read() as conn:
            return await outbox_repo.listing(conn, partner_id=self.partner_id, limit=1000)

    async def every_push(self) -> list[OutboxEntry]:
        async with self.server.app.db.read() as conn:
            rows = await outbox_repo.listing(
                conn, partner_id=self.partner_id, pending_only=False, limit=1000
            )
        return sorted(rows, key=lambda e: e.id)

    async def to_211(self) -> None:
        """The partner re-registers in 2.1.1 (PUT of 2.1.1 credentials to our 2.1.1
        credentials endpoint): from now on its endpoints are its 2.1.1 ones, one party, raw
        tokens."""
        assert self.fake.our_token is not None
        mine = "switch-" + secrets.token_hex(8)
        self.fake.tokens.add(mine)
        status, body, _ = await self.fake.call(
            "PUT",
            f"{self.server.ocpi_url}/ocpi/2.1.1/credentials",
            self.fake.our_token,
            {
                "token": mine,
                "url": self.fake.versions_url,
                "business_details": {"name": "Fake eMSP"},
                "party_id": "EMS",
                "country_code": "DE",
            },
            encoding="raw",
        )
        assert status == 200 and body["status_code"] == 1000, body
        assert credentials_errors_211(body["data"]) == []
        self.fake.our_token = body["data"]["token"]
        self.fake.their_token_b = mine
        partner = await self.server.app.partners.get("emsp")
        assert partner.version == "2.1.1" and partner.token_encoding is TokenEncoding.RAW
        for module in RECEIVERS:
            endpoint = partner.endpoint(module, InterfaceRole.RECEIVER)
            assert endpoint is not None and endpoint.url == f"{self.fake.base}/2.1.1/{module}"

    async def retry_now(self) -> None:
        now = utc_now()

        async def unit(w: WriteTx) -> int:
            return await outbox_repo.retry_now(await w.connection(), now, self.partner_id)

        await self.server.app.db.write(unit)


async def _site(server: Running) -> None:
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id="LOC-V",
            name="Depot 2.1.1",
            address="Kade 3",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link("LOC-V", CP_ID, None)
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("T-V211", location="LOC-V")
    await server.staff.add_token(Token(EMS_CARD, TokenStatus.ACCEPTED, origin="DE*EMS"))


@pytest.fixture
async def world(start_server: StartServer) -> AsyncIterator[World]:
    server = await start_server(
        ocpi={"push_interval": 0.1, "session_update_interval": 1.0, "authorize_timeout": 2.0}
    )
    holder: list[World] = []

    def answer(_seen: Seen) -> tuple[int, int]:
        return (503, 3000) if holder and holder[0].hold else (200, 1000)

    fake = FakePartner(roles=(EMSP_ROLE,), endpoints=ENDPOINTS, accepts="both", push_answer=answer)
    await fake.start()
    assert server.app.ocpi_app is not None
    # No pull after the registration (in 2.2.1): the tokens test pulls in 2.1.1 itself.
    server.app.ocpi_app[TOKEN_PULLER].delay = 3600
    invitation = await server.app.partners.add("emsp")
    await fake.register_with(f"{server.app.ocpi_base_url}/ocpi/versions", invitation.token_a)
    w = World(server, fake, invitation.partner.id)
    holder.append(w)
    yield w
    await fake.stop()


def now() -> datetime:
    return datetime.now(UTC)


async def charger(server: Running) -> ClientConnection:
    ws = await open_raw(server.url, CP_ID)
    await call(ws, "BootNotification", {**BOOT, "meterSerialNumber": "MTR-211"})
    return ws


async def status(ws: ClientConnection, connector: int, value: str) -> None:
    payload = {"connectorId": connector, "errorCode": "NoError", "status": value}
    await call(ws, "StatusNotification", payload)


LEVELS = {3: "location", 4: "evse", 5: "connector"}


def errors_211(seen: Seen) -> list[str]:
    """What the 2.1.1 rules say of a push's body (tests/e2e/ocpi_rules_211.py)."""
    module, _, rest = seen.path.split("/2.1.1/", 1)[1].partition("/")
    body = seen.body
    if seen.method == "DELETE":
        return [] if body is None else [f"a DELETE with a body: {body!r}"]
    assert isinstance(body, dict), seen
    if module == "locations":
        level = LEVELS[len(rest.split("/"))]
        if seen.method == "PATCH":
            return location_patch_errors_211(level, body)
        return location_errors_211(body) if level == "location" else evse_errors_211(body)
    if module == "sessions":
        return session_errors_211(body, partial=seen.method == "PATCH")
    if module == "cdrs":
        return cdr_errors_211(body)
    if module == "tariffs":
        return tariff_errors_211(body)
    return [f"a push to an unexpected module: {seen.path}"]


def assert_211(seen: Seen) -> None:
    """A push as a 2.1.1 partner must get it: at a 2.1.1 endpoint, no routing headers, its
    body valid by the 2.1.1 rules (no 2.2.1-only field in it)."""
    assert seen.path.startswith("/ocpi/emsp/2.1.1/"), seen.path
    for header in ROUTING:
        assert header not in seen.headers, (header, seen.path)
    assert errors_211(seen) == [], (seen.method, seen.path, seen.body)
    module = seen.path.split("/")[4]
    if isinstance(seen.body, dict):
        for field in ONLY_221.get(module, ()):
            assert field not in seen.body, (field, seen.path, seen.body)


async def test_a_partner_gone_to_211_gets_the_waiting_pushes_in_211_at_its_new_endpoints(
    world: World,
) -> None:
    # The partner speaks 2.2.1 and is down: the location, its EVSE and the tariff wait.
    world.hold = True
    await _site(world.server)
    ws = await charger(world.server)
    await status(ws, 1, "Available")

    async def waiting() -> list[OutboxEntry]:
        rows = await world.pending()
        # The EVSE goes in the location's PUT, or in a PUT of its own when the charger
        # reported it after the location was published.
        evse_waits = any(
            e.path == f"NL/CSM/LOC-V/{CP_ID}*1"
            or (
                e.path == "NL/CSM/LOC-V"
                and f"{CP_ID}*1" in [v["uid"] for v in (e.body or {}).get("evses", [])]
            )
            for e in rows
        )
        tried = {e.path for e in rows if e.attempts >= 1}
        return rows if evse_waits and {"NL/CSM/LOC-V", "NL/CSM/T-V211"} <= tried else []

    backlog = await until(waiting, "location and tariff pushes failing at the 2.2.1 partner")
    assert {s.path.split("/")[3] for s in world.fake.pushes} == {"2.2.1"}
    # The outbox keeps the neutral 2.2.1 body and the path after the endpoint.
    location_put = next(e for e in backlog if e.module == "locations" and e.method == "PUT")
    assert location_put.path == "NL/CSM/LOC-V"
    assert location_put.body is not None and location_put.body["country_code"] == "NL"
    assert location_put.url == f"{world.fake.base}/2.2.1/locations/NL/CSM/LOC-V"
    tariff_put = next(e for e in backlog if e.module == "tariffs")
    assert tariff_put.path == "NL/CSM/T-V211"

    # It re-registers in 2.1.1 and comes back; a status change comes meanwhile.
    await world.to_211()
    await status(ws, 1, "Charging")
    before = len(world.fake.pushes)
    world.hold = False
    await world.retry_now()

    async def drained() -> bool:
        return not await world.pending()

    await until(drained, "the backlog delivered")
    after = world.fake.pushes[before:]
    assert after, "nothing delivered after the switch"
    for seen in after:
        assert_211(seen)
    by_path = {(s.method, s.path.split("/2.1.1/", 1)[1]): s for s in after}
    location = by_path[("PUT", "locations/NL/CSM/LOC-V")].body
    assert location["id"] == "LOC-V" and location["type"] in {"OTHER", "UNKNOWN", "ON_STREET"}
    assert location["postal_code"] == "1011AA" and location["country"] == "NLD"
    # The EVSE came after the location's PUT (the charger reported it later): its own PUT.
    evse_put = by_path.get(("PUT", f"locations/NL/CSM/LOC-V/{CP_ID}*1"))
    (evse,) = [evse_put.body] if evse_put is not None else location["evses"]
    assert evse["uid"] == f"{CP_ID}*1" and evse["evse_id"] == "NL*CSM*EV2111*1"
    assert evse["status"] in {"AVAILABLE", "CHARGING"}
    for connector in evse["connectors"]:
        assert {"voltage", "amperage", "standard", "format", "power_type"} <= set(connector)
        assert "max_voltage" not in connector and "tariff_ids" not in connector
        assert connector.get("tariff_id") in (None, "T-V211")
    tariff = by_path[("PUT", "tariffs/NL/CSM/T-V211")].body
    assert tariff["id"] == "T-V211" and tariff["currency"] == "EUR"
    component = tariff["elements"][0]["price_components"][0]
    assert component["type"] == "ENERGY" and float(component["price"]) == 0.30
    charging = [
        s.body
        for s in after
        if s.method == "PATCH" and s.path.endswith(f"/locations/NL/CSM/LOC-V/{CP_ID}*1")
    ]
    assert charging and charging[-1]["status"] == "CHARGING"
    assert set(charging[-1]) <= {"status", "last_updated"}
    # Every push of the backlog went out once more, at the new address.
    delivered = [e for e in await world.every_push() if e.delivered_at is not None]
    assert {e.id for e in backlog} <= {e.id for e in delivered}
    await ws.close()


async def test_a_211_partners_session_and_cdr_are_pushed_in_211(world: World) -> None:
    await world.to_211()
    await _site(world.server)
    ws = await charger(world.server)
    await status(ws, 1, "Preparing")
    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": EMS_CARD, "meterStart": 1000, "timestamp": ts(now())},
    )
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    tx_id = int(answer[2]["transactionId"])
    for wh in (1000, 1020, 1040):
        reading = {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(now(), wh)]}
        await call(ws, "MeterValues", reading)

    def received() -> list[Seen]:
        return [
            s
            for s in world.fake.pushes
            if s.path.endswith(f"/sessions/NL/CSM/{tx_id}")
            or (s.path.endswith("/cdrs") and s.method == "POST")
        ]

    async def started() -> list[Seen]:
        return received()

    await until(started, "the session PUT at the 2.1.1 partner")
    await call(
        ws, "StopTransaction", {"transactionId": tx_id, "meterStop": 1050, "timestamp": ts(now())}
    )

    async def with_cdr() -> list[Seen]:
        assert world.server.app.ocpi_app is not None
        world.server.app.ocpi_app[SESSION_PUBLISHER].wake()
        got = received()
        return got if got and got[-1].method == "POST" else []

    seen = await until(with_cdr, "the CDR at the 2.1.1 partner", seconds=30)
    for s in seen:
        assert_211(s)
    first, final, cdr = seen[0], seen[-2], seen[-1]
    assert first.method == "PUT" and first.path == f"/ocpi/emsp/2.1.1/sessions/NL/CSM/{tx_id}"
    session = first.body
    assert session["id"] == str(tx_id) and session["status"] == "ACTIVE"
    assert session["auth_id"] and session["auth_method"] == "WHITELIST"
    assert "start_datetime" in session and "kwh" in session
    assert session["location"]["id"] == "LOC-V"
    assert [e["uid"] for e in session["location"]["evses"]] == [f"{CP_ID}*1"]
    assert [c["id"] for c in session["location"]["evses"][0]["connectors"]] == ["1"]
    assert final.method == "PUT" and final.body["status"] == "COMPLETED"
    assert isinstance(final.body["total_cost"], int | float)
    assert final.body["kwh"] == 0.05 and "end_datetime" in final.body
    for patch in seen[1:-2]:
        assert patch.method in ("PATCH", "PUT")
        if patch.method == "PATCH":
            assert "last_updated" in patch.body and "cdr_token" not in patch.body
    assert cdr.path == "/ocpi/emsp/2.1.1/cdrs"
    body = cdr.body
    assert body["auth_id"] == session["auth_id"]
    assert "stop_date_time" in body and "start_date_time" in body
    assert body["location"]["id"] == "LOC-V"
    assert [e["uid"] for e in body["location"]["evses"]] == [f"{CP_ID}*1"]
    assert isinstance(body["total_cost"], int | float)
    assert body["total_cost"] == final.body["total_cost"]
    assert body["total_energy"] == 0.05 and body["currency"] == "EUR"
    assert body["charging_periods"] and body["tariffs"][0]["id"] == "T-V211"
    await ws.close()


def token_211(uid: str, whitelist: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "type": "RFID",
        "auth_id": f"DE-EMS-{uid}",
        "issuer": "Fake eMSP",
        "valid": True,
        "whitelist": whitelist,
        "last_updated": "2026-11-01T00:00:00Z",
    }


async def test_tokens_pulled_from_a_211_emsp_authorise_a_charger(world: World) -> None:
    asked: list[Seen] = []
    listed = [token_211("PULL-1", "ALWAYS"), token_211("PULL-RT", "NEVER")]
    assert [token_errors_211(t) for t in listed] == [[], []]

    async def tokens(request: web.Request, sub: str, seen: Seen) -> web.StreamResponse:
        if request.method == "GET" and not sub:
            asked.append(seen)
            return ok(listed, headers={"X-Total-Count": str(len(listed)), "X-Limit": "100"})
        uid, _, action = sub.partition("/")
        if request.method == "POST" and action == "authorize":
            asked.append(seen)
            info = {"allowed": "ALLOWED" if uid == "PULL-RT" else "BLOCKED"}
            assert authorization_info_errors_211(info) == []
            return ok(info)
        return error(404, 2000, "unknown path")

    world.fake.sender_handlers["tokens"] = tokens
    await world.to_211()
    await _site(world.server)
    synced = (await csms(world.server, "ocpi", "tokens", "sync", "emsp", "--json")).json()
    assert (synced["received"], synced["created"], synced["skipped"]) == (2, 2, 0)
    (pull,) = asked
    assert pull.path == "/ocpi/emsp/2.1.1/tokens"
    assert not any(h in pull.headers for h in ROUTING)
    assert pull.headers["Authorization"] == f"Token {world.fake.their_token_b}"  # raw in 2.1.1
    listing = (
        await csms(world.server, "ocpi", "tokens", "list", "--party", "de*ems", "--json")
    ).json()
    contracts = {t["uid"]: t["contract_id"] for t in listing}
    assert contracts == {"PULL-1": "DE-EMS-PULL-1", "PULL-RT": "DE-EMS-PULL-RT"}

    ws = await charger(world.server)
    await status(ws, 1, "Available")

    async def published() -> bool:
        from csms.storage import ocpi_evses

        async with world.server.app.db.read() as conn:
            return bool(await ocpi_evses.of_chargers(conn, [CP_ID]))

    await until(published, "the EVSE published")
    answer = await call(ws, "Authorize", {"idTag": "PULL-1"})
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    assert len(asked) == 1  # ALWAYS: decided from the pulled token
    answer = await call(ws, "Authorize", {"idTag": "PULL-RT"})
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    realtime = asked[-1]
    assert realtime.method == "POST"
    assert realtime.path == "/ocpi/emsp/2.1.1/tokens/PULL-RT/authorize"
    assert not any(h in realtime.headers for h in ROUTING)
    assert realtime.body["location_id"] == "LOC-V"
    await ws.close()


# --- the 2.1.1 eMSP simulator, a simulated charger ---------------------------------------------


async def test_a_session_started_by_a_211_command_ends_in_a_211_cdr_pushed_to_it(
    start_server: StartServer,
) -> None:
    """csms-sim emsp in 2.1.1 registers, pushes a token and sends START_SESSION; a simulated
    1.6 charger charges; STOP_SESSION; every push the simulator received (locations,
    tariff, sessions, the CDR, the command results) is valid 2.1.1."""
    server = await start_server(
        ocpp={"call_timeout": 5.0},
        ocpi={"push_interval": 0.1, "session_update_interval": 1.0},
    )
    await _site(server)
    evse_uid = f"{CP_ID}*1"
    cp = V16Charger(
        ChargerOptions(
            url=server.url,
            charger_id=CP_ID,
            connectors=1,
            sessions=0,
            meter_interval=0.3,
            seed=7,
            response_timeout=10,
        )
    )
    task = asyncio.create_task(cp.run())
    emsp = EmspSimulator(SimParty("NL", "EMS", "Sim eMSP 211"), version="2.1.1")
    await emsp.start()
    try:
        invitation = await server.app.partners.add("sim211")
        await emsp.register(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
        partner = await server.app.partners.get("sim211")
        assert partner.version == "2.1.1"

        def pushed(module: str) -> list[SimPush]:
            return [p for p in emsp.received if p.module == module and p.accepted]

        async def evse_pushed() -> bool:
            return any(
                p.target.endswith(evse_uid) or evse_uid in json.dumps(p.body)
                for p in pushed("locations")
            )

        await until(evse_pushed, "the charger's EVSE pushed to the simulator")
        emsp.add_token("SIMCMD01", "ALWAYS")
        await emsp.push_tokens()
        started = await emsp.start_session("SIMCMD01", "LOC-V", evse_uid)
        assert started.response is not None and started.response.result == "ACCEPTED"
        result = await emsp.command_result(started.id, 20)
        assert result.result == "ACCEPTED"
        assert command_result_errors_211(result.body) == []

        async def running() -> Any:
            active = await server.staff.transactions(active_only=True, cp_id=CP_ID)
            return active[0] if active else None

        tx = await until(running, "the transaction the command started")
        assert tx.id_tag == "SIMCMD01"

        async def charging() -> bool:
            return any(
                p.target == str(tx.id) and (p.body or {}).get("kwh", 0) > 0
                for p in pushed("sessions")
            )

        await until(charging, "a session push with energy", seconds=30)
        stopped = await emsp.stop_session(str(tx.id))
        assert stopped.response is not None and stopped.response.result == "ACCEPTED"
        assert (await emsp.command_result(stopped.id, 20)).result == "ACCEPTED"

        async def cdr_pushed() -> list[SimPush]:
            return pushed("cdrs")

        (posted,) = await until(cdr_pushed, "the CDR pushed to the simulator", seconds=40)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await cp.close()
        await emsp.stop()

    assert posted.method == "POST"
    cdr = posted.body
    assert cdr_errors_211(cdr) == []
    assert cdr["auth_id"] == "NL-EMS-CSIMCMD01" and cdr["auth_method"] == "AUTH_REQUEST"
    assert cdr["total_energy"] > 0 and isinstance(cdr["total_cost"], int | float)
    assert [e["uid"] for e in cdr["location"]["evses"]] == [evse_uid]
    assert [t["id"] for t in cdr["tariffs"]] == ["T-V211"]
    assert ("NL", "CSM", cdr["id"]) in emsp.stores.cdrs
    sessions = [p for p in pushed("sessions") if p.target == str(tx.id)]
    assert sessions[0].method == "PUT"
    for p in sessions:
        assert session_errors_211(p.body, partial=p.method == "PATCH") == [], p.body
    final = [p for p in sessions if p.method == "PUT"][-1].body
    assert final["status"] == "COMPLETED" and final["auth_id"] == cdr["auth_id"]
    assert final["total_cost"] == cdr["total_cost"] and final["kwh"] == cdr["total_energy"]
    for p in pushed("locations"):
        level = LEVELS[len(p.target.split("/")) + 2] if "/" in p.target else "location"
        check = (
            location_patch_errors_211(level, p.body)
            if p.method == "PATCH"
            else location_errors_211(p.body)
            if level == "location"
            else evse_errors_211(p.body)
        )
        assert check == [], (p.method, p.target, p.body)
    for p in pushed("tariffs"):
        assert tariff_errors_211(p.body) == []
