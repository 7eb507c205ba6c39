"""OCPI 2.1.1 beside 2.2.1 on a real server, with a raw-HTTP 2.1.1 eMSP (raw tokens, no
roles, no routing headers): the versions list and the 2.1.1 details, registration both ways
(it with us, and `csms ocpi partners register` with it, each choosing 2.1.1; a 2.2.1 partner
switching to 2.1.1 and back by PUT), its tokens pushed, read and patched in 2.1.1, and a
session started and stopped by its 2.1.1 commands on a simulated charger, then every module
(locations, tariffs, sessions, CDRs) read in 2.1.1 and checked with the 2.1.1 field rules."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.parties import Party
from csms.core.partners import InterfaceRole, PartnerStatus, Role, TokenEncoding
from csms.services.locations import LocationService
from csms.storage import ocpi_tokens as token_repo
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.versions import create_charger
from tests.e2e.cli import cli_env, csms
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner
from tests.e2e.ocpi_rules_211 import (
    cdr_errors_211,
    command_response_errors_211,
    connector_errors_211,
    credentials_errors_211,
    evse_errors_211,
    location_errors_211,
    session_errors_211,
    tariff_errors_211,
    token_errors_211,
    version_details_errors_211,
    versions_errors_211,
)
from tests.e2e.sim import ts, until

MODULES_211 = ("credentials", "locations", "sessions", "cdrs", "tariffs", "tokens", "commands")
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
LOCATION = "LOC-211"
CP_ID = "V211-1"
# The 2.1.1 eMSP's one party.
COUNTRY, PARTY = "DE", "EMV"
TARIFF = {
    "id": "T-211",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]}
    ],
}


def now_ts() -> str:
    return ts(datetime.now(UTC))


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def data(self) -> Any:
        assert self.status == 200 and self.body["status_code"] == 1000, self.body
        return self.body["data"]


@dataclass
class Fake211:
    """An eMSP speaking only OCPI 2.1.1, written from the spec: `Authorization: Token
    <token>` unencoded, version details without roles, one-party credentials."""

    tokens: set[str] = field(default_factory=set)  # tokens it accepts from us
    token_a: str = field(default_factory=lambda: "v211-a-" + secrets.token_hex(8))
    our_token: str | None = None  # the token we (the CPO) gave it
    token_b: str | None = None  # the token it gave us when registering with us
    received: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocpi/emsp211"

    @property
    def versions_url(self) -> str:
        return f"{self.base}/versions"

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": self.versions_url,
            "business_details": {"name": "A 2.1.1 eMSP"},
            "party_id": PARTY,
            "country_code": COUNTRY,
        }

    async def start(self) -> Fake211:
        self.tokens.add(self.token_a)
        app = web.Application()
        app.router.add_route("*", "/ocpi/emsp211/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.received.append((request.method, request.path, dict(request.headers), body))
        header = request.headers.get("Authorization", "")
        token = header[len("Token ") :] if header.startswith("Token ") else None
        if token not in self.tokens:
            return _envelope(None, 2000, http=401)
        tail = request.match_info["tail"].rstrip("/")
        if tail == "versions":
            return _envelope([{"version": "2.1.1", "url": f"{self.base}/2.1.1"}])
        if tail == "2.1.1":
            endpoints = [{"identifier": m, "url": f"{self.base}/2.1.1/{m}"} for m in MODULES_211]
            return _envelope({"version": "2.1.1", "endpoints": endpoints})
        if tail == "2.1.1/credentials" and request.method == "POST":
            assert token == self.token_a and isinstance(body, dict)
            self.our_token = body["token"]
            mine = "v211-c-" + secrets.token_hex(8)
            self.tokens = {mine}
            return _envelope(self.credentials(mine))
        return _envelope(None)  # a push: taken

    async def call(self, method: str, url: str, token: str, body: Any = None) -> Answer:
        headers = {"Authorization": f"Token {token}", "X-Request-ID": str(uuid.uuid4())}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, json=body, headers=headers) as response,
        ):
            return Answer(response.status, await response.json(), dict(response.headers))

    async def get(self, url: str) -> Answer:
        assert self.our_token is not None
        return await self.call("GET", url, self.our_token)

    async def register_with(self, versions_url: str, token_a: str) -> Answer:
        """The 2.1.1 Sender side: versions, 2.1.1 details, POST its credentials."""
        versions = (await self.call("GET", versions_url, token_a)).data
        (v211,) = [v for v in versions if v["version"] == "2.1.1"]
        details = (await self.call("GET", v211["url"], token_a)).data
        (cred,) = [e for e in details["endpoints"] if e["identifier"] == "credentials"]
        mine = "v211-b-" + secrets.token_hex(8)
        self.tokens.add(mine)
        self.token_b = mine
        answer = await self.call("POST", cred["url"], token_a, self.credentials(mine))
        if answer.status == 200 and answer.body["status_code"] == 1000:
            self.our_token = answer.body["data"]["token"]
        return answer


def _envelope(data: Any, code: int = 1000, http: int = 200) -> web.Response:
    body: dict[str, Any] = {"status_code": code, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=http)


def no_routing(headers: dict[str, str]) -> bool:
    return not any(h.lower().startswith("ocpi-") for h in headers)


@pytest.fixture
async def fake211() -> AsyncIterator[Fake211]:
    fake = await Fake211().start()
    yield fake
    await fake.stop()


async def _registered(server: Running, fake: Fake211, name: str = "emsp211") -> dict[str, str]:
    """`fake` registered with us in 2.1.1; our 2.1.1 endpoints by module."""
    invitation = await server.app.partners.add(name)
    answer = await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    assert answer.data["token"] == fake.our_token
    details = (await fake.get(f"{server.ocpi_url}/ocpi/2.1.1")).data
    return {e["identifier"]: e["url"] for e in details["endpoints"]}


# --- versions ----------------------------------------------------------------------------------


@pytest.mark.sqlite_only  # what we list does not depend on the database
async def test_versions_list_both_and_211_details_have_no_roles(
    server: Running, fake211: Fake211
) -> None:
    invitation = await server.app.partners.add("emsp211")
    base = server.ocpi_url
    answer = await fake211.call("GET", f"{base}/ocpi/versions", invitation.token_a)
    assert versions_errors_211(answer.data) == []
    assert answer.data == [
        {"version": "2.2.1", "url": f"{base}/ocpi/2.2.1"},
        {"version": "2.1.1", "url": f"{base}/ocpi/2.1.1"},
    ]
    answer = await fake211.call("GET", f"{base}/ocpi/2.1.1", invitation.token_a)
    assert version_details_errors_211(answer.data) == []
    assert answer.data["version"] == "2.1.1"
    listed = answer.data["endpoints"]
    assert [e["identifier"] for e in listed] == list(MODULES_211)
    assert all(set(e) == {"identifier", "url"} for e in listed)
    assert {e["url"] for e in listed} == {f"{base}/ocpi/2.1.1/{m}" for m in MODULES_211}
    assert no_routing(answer.headers)
    # The 2.2.1 details list only 2.2.1 endpoints (with their roles), hubclientinfo too.
    answer = await fake211.call("GET", f"{base}/ocpi/2.2.1", invitation.token_a)
    assert all(e["url"].startswith(f"{base}/ocpi/2.2.1/") for e in answer.data["endpoints"])
    assert "hubclientinfo" in {e["identifier"] for e in answer.data["endpoints"]}
    # 2.1.1 has no hubclientinfo or chargingprofiles.
    for module in ("hubclientinfo", "chargingprofiles"):
        answer = await fake211.call("GET", f"{base}/ocpi/2.1.1/{module}", invitation.token_a)
        assert answer.status == 404, module
    # Functional 2.1.1 modules need a registered token.
    answer = await fake211.call("GET", f"{base}/ocpi/2.1.1/locations", invitation.token_a)
    assert answer.status == 401


# --- registration ------------------------------------------------------------------------------


async def test_a_211_partner_registers_with_us(server: Running, fake211: Fake211) -> None:
    invitation = await server.app.partners.add("emsp211")
    answer = await fake211.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    ours = answer.data
    assert credentials_errors_211(ours) == []
    assert "roles" not in ours
    assert (ours["country_code"], ours["party_id"]) == ("NL", "CSM")
    assert ours["url"] == f"{server.ocpi_url}/ocpi/versions"
    assert no_routing(answer.headers)
    # We fetched its 2.1.1 details with its token unencoded.
    calls = [(m, p, h) for m, p, h, _ in fake211.received]
    assert [(m, p) for m, p, _ in calls] == [
        ("GET", "/ocpi/emsp211/versions"),
        ("GET", "/ocpi/emsp211/2.1.1"),
    ]
    assert {h["Authorization"] for _, _, h in calls} == {f"Token {fake211.token_b}"}
    stored = await server.app.partners.get("emsp211")
    assert stored.status is PartnerStatus.REGISTERED and stored.version == "2.1.1"
    assert stored.token_encoding is TokenEncoding.RAW
    assert [(r.role, r.country_code, r.party_id) for r in stored.roles] == [
        (Role.EMSP, COUNTRY, PARTY)
    ]
    assert stored.roles[0].business_details == {"name": "A 2.1.1 eMSP"}
    # Its endpoints carry the role we use each in.
    for module, role in (
        ("locations", InterfaceRole.RECEIVER),
        ("sessions", InterfaceRole.RECEIVER),
        ("cdrs", InterfaceRole.RECEIVER),
        ("tariffs", InterfaceRole.RECEIVER),
        ("commands", InterfaceRole.RECEIVER),
        ("tokens", InterfaceRole.SENDER),
    ):
        endpoint = stored.endpoint(module, role)
        assert endpoint is not None and endpoint.url == f"{fake211.base}/2.1.1/{module}"
    # The new token works on our 2.1.1 modules, token A no more; no routing headers.
    got = await fake211.get(f"{server.ocpi_url}/ocpi/2.1.1/tariffs")
    assert got.data == [] and no_routing(got.headers)
    assert got.headers["X-Total-Count"] == "0"
    refused = await fake211.call("GET", f"{server.ocpi_url}/ocpi/2.1.1", invitation.token_a)
    assert refused.status == 401
    # GET of our 2.1.1 credentials answers in 2.1.1.
    cred = await fake211.get(f"{server.ocpi_url}/ocpi/2.1.1/credentials")
    assert credentials_errors_211(cred.data) == [] and cred.data["token"] == fake211.our_token
    # A 2.1.1 body at our 2.2.1 credentials is refused as 2.2.1 credentials (no roles).
    other = await server.app.partners.add("wrong-version")
    wrong = await fake211.call(
        "POST",
        f"{server.ocpi_url}/ocpi/2.2.1/credentials",
        other.token_a,
        fake211.credentials("whatever-token"),
    )
    assert wrong.body["status_code"] == 2001 and "roles" in wrong.body["status_message"]


async def test_we_register_with_a_211_partner(server: Running, fake211: Fake211) -> None:
    env = cli_env(server)
    env["CSMS_OCPI_BASE_URL"] = server.ocpi_url
    ran = await csms(
        server,
        "ocpi",
        "partners",
        "register",
        "emsp211",
        "--versions-url",
        fake211.versions_url,
        "--token",
        fake211.token_a,
        env=env,
    )
    assert ran.code == 0, ran.err
    assert "registered with emsp211 (DE/EMV EMSP), OCPI 2.1.1" in ran.out
    (post,) = [r for r in fake211.received if r[0] == "POST"]
    _, path, headers, body = post
    assert path == "/ocpi/emsp211/2.1.1/credentials"
    assert headers["Authorization"] == f"Token {fake211.token_a}"  # unencoded
    assert no_routing(headers)
    assert credentials_errors_211(body) == [] and "roles" not in body
    assert (body["country_code"], body["party_id"]) == ("NL", "CSM")
    assert body["url"] == f"{server.ocpi_url}/ocpi/versions"
    stored = await server.app.partners.get("emsp211")
    assert stored.status is PartnerStatus.REGISTERED and stored.version == "2.1.1"
    assert stored.token_encoding is TokenEncoding.RAW
    assert [(r.role, r.party) for r in stored.roles] == [(Role.EMSP, f"{COUNTRY}/{PARTY}")]
    # It calls us with the token we offered, on our 2.1.1 modules.
    assert fake211.our_token == body["token"]
    got = await fake211.get(f"{server.ocpi_url}/ocpi/2.1.1/locations")
    assert got.data == []


async def test_a_partner_switches_version_by_put(start_server: StartServer) -> None:
    server = await start_server()
    # A partner speaking both versions registers in the highest (2.2.1) ...
    fake = await FakePartner(accepts="both").start()
    try:
        invitation = await server.app.partners.add("both")
        versions_url = f"{server.ocpi_url}/ocpi/versions"
        await fake.register_with(versions_url, invitation.token_a)
        stored = await server.app.partners.get("both")
        assert stored.version == "2.2.1" and stored.token_encoding is TokenEncoding.BASE64
        # ... then PUTs 2.1.1 credentials to our 2.1.1 credentials endpoint: 2.1.1 from now.
        assert fake.our_token is not None
        mine = "switch-" + secrets.token_hex(8)
        fake.tokens.add(mine)
        answer = await fake.call(
            "PUT",
            f"{server.ocpi_url}/ocpi/2.1.1/credentials",
            fake.our_token,
            {
                "token": mine,
                "url": fake.versions_url,
                "business_details": {"name": "Fake eMSP"},
                "party_id": "EMS",
                "country_code": "DE",
            },
            encoding="raw",
        )
        assert answer[0] == 200 and answer[1]["status_code"] == 1000, answer[1]
        assert credentials_errors_211(answer[1]["data"]) == []
        switched = await server.app.partners.get("both")
        assert switched.version == "2.1.1" and switched.token_encoding is TokenEncoding.RAW
        assert switched.endpoint("locations", InterfaceRole.RECEIVER) is not None
        assert switched.endpoint("locations", InterfaceRole.RECEIVER).url.endswith(  # type: ignore[union-attr]
            "/2.1.1/locations"
        )
        assert [(r.role, r.party) for r in switched.roles] == [(Role.EMSP, "DE/EMS")]
        # And back to 2.2.1 by a 2.2.1 PUT.
        fake.our_token = answer[1]["data"]["token"]
        fake.their_token_b = mine
        await fake.update(versions_url)
        back = await server.app.partners.get("both")
        assert back.version == "2.2.1"
        assert back.endpoint("locations", InterfaceRole.RECEIVER).url.endswith(  # type: ignore[union-attr]
            "/2.2.1/locations"
        )
    finally:
        await fake.stop()


async def test_registering_with_a_partner_of_both_versions_picks_221(
    server: Running,
) -> None:
    fake = await FakePartner().start()  # offers 2.1.1 and 2.2.1
    try:
        env = cli_env(server)
        env["CSMS_OCPI_BASE_URL"] = server.ocpi_url
        ran = await csms(
            server,
            "ocpi",
            "partners",
            "register",
            "both",
            "--versions-url",
            fake.versions_url,
            "--token",
            fake.token_a,
            env=env,
        )
        assert ran.code == 0, ran.err
        assert (await server.app.partners.get("both")).version == "2.2.1"
        (post,) = [s for s in fake.seen if s.method == "POST"]
        assert post.path.endswith("/2.2.1/credentials") and "roles" in post.body
    finally:
        await fake.stop()


# --- tokens ------------------------------------------------------------------------------------


def token_211(uid: str, **changes: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "type": "RFID",
        "auth_id": f"DE-EMV-C{uid}",
        "visual_number": f"card {uid}",
        "issuer": "A 2.1.1 eMSP",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": now_ts(),
        **changes,
    }


async def test_tokens_in_211(server: Running, fake211: Fake211) -> None:
    ours = await _registered(server, fake211)
    assert fake211.our_token is not None
    base = f"{ours['tokens']}/{COUNTRY}/{PARTY}"
    put = await fake211.call("PUT", f"{base}/CARD-1", fake211.our_token, token_211("CARD-1"))
    assert put.status == 201 and put.body["status_code"] == 1000, put.body
    assert no_routing(put.headers)
    got = await fake211.get(f"{base}/CARD-1")
    assert token_errors_211(got.data) == []
    assert got.data["auth_id"] == "DE-EMV-CCARD-1" and got.data["valid"] is True
    assert "contract_id" not in got.data and "country_code" not in got.data
    # Stored as the 2.2.1 token of its party.
    async with server.app.db.read() as conn:
        stored = await token_repo.get(conn, Party(COUNTRY, PARTY), "CARD-1", "RFID")
    assert stored is not None and stored.data["contract_id"] == "DE-EMV-CCARD-1"
    assert (stored.data["country_code"], stored.data["party_id"]) == (COUNTRY, PARTY)
    patched = await fake211.call(
        "PATCH", f"{base}/CARD-1", fake211.our_token, {"valid": False, "last_updated": now_ts()}
    )
    assert patched.body["status_code"] == 1000, patched.body
    got = await fake211.get(f"{base}/CARD-1")
    assert got.data["valid"] is False and got.data["auth_id"] == "DE-EMV-CCARD-1"
    # An OTHER token: 2.1.1 URLs carry no type; it is found by its uid.
    other = token_211("APP-9", type="OTHER")
    put = await fake211.call("PUT", f"{base}/APP-9", fake211.our_token, other)
    assert put.status == 201, put.body
    got = await fake211.get(f"{base}/APP-9")
    assert got.data["type"] == "OTHER" and token_errors_211(got.data) == []
    # Refused: no auth_id, another party, unknown uid.
    bad = await fake211.call(
        "PUT", f"{base}/CARD-2", fake211.our_token, {**token_211("CARD-2"), "auth_id": None}
    )
    assert bad.body["status_code"] == 2001
    foreign = await fake211.call(
        "PUT", f"{ours['tokens']}/FR/OTH/CARD-3", fake211.our_token, token_211("CARD-3")
    )
    assert foreign.body["status_code"] == 2001 and "FR*OTH" in foreign.body["status_message"]
    unknown = await fake211.get(f"{base}/NOPE")
    assert unknown.status == 404 and unknown.body["status_code"] == 2004


# --- commands, then every module read in 2.1.1 ------------------------------------------------


@dataclass
class World:
    server: Running
    fake: Fake211
    ours: dict[str, str]
    cp: V16Charger

    async def command(self, command: str, body: dict[str, Any]) -> Answer:
        assert self.fake.our_token is not None
        url = f"{self.fake.base}/results/{command}/{uuid.uuid4()}"
        return await self.fake.call(
            "POST",
            f"{self.ours['commands']}/{command}",
            self.fake.our_token,
            {"response_url": url, **body},
        )

    async def walk(self, module: str, query: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = self.ours[module] + (f"?{query}" if query else "")
        while url is not None:
            answer = await self.fake.get(url)
            items.extend(answer.data)
            assert no_routing(answer.headers)
            link = answer.headers.get("Link")
            match = LINK.match(link) if link else None
            url = None if match is None else match["url"]
        return items


@pytest.fixture
async def world(start_server: StartServer, fake211: Fake211) -> AsyncIterator[World]:
    server = await start_server(ocpp={"call_timeout": 2.0}, ocpi={"session_update_interval": 1})
    locations = LocationService(server.app.db, utc_now)
    for location_id, name in ((LOCATION, "Depot 211"), ("LOC-212", "Depot 212")):
        await locations.add(
            Location(
                id=location_id,
                name=name,
                address="Kade 211",
                city="Amsterdam",
                postal_code="1011AA",
                country="NLD",
                latitude="52.3702",
                longitude="4.8952",
                time_zone="Europe/Amsterdam",
            )
        )
    await locations.link(LOCATION, CP_ID, None)
    await locations.link("LOC-212", "V211-2", None)
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("T-211", location=LOCATION)
    ours = await _registered(server, fake211)
    chargers = [
        create_charger(
            ChargerOptions(
                url=server.url,
                charger_id=cp_id,
                version="1.6",
                connectors=2,
                sessions=0,
                meter_interval=0.3,
                seed=7,
                response_timeout=10,
            )
        )
        for cp_id in (CP_ID, "V211-2")
    ]
    tasks = [asyncio.create_task(cp.run()) for cp in chargers]
    cp = chargers[0]
    assert isinstance(cp, V16Charger)
    world = World(server, fake211, ours, cp)

    async def published() -> bool:
        found = await world.walk("locations")
        return len(found) == 2 and all(len(loc["evses"]) == 2 for loc in found)

    await until(published, "both chargers' EVSEs published")
    yield world
    for task in tasks:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for charger in chargers:
        await charger.close()


@pytest.mark.sqlite_only  # the 2.1.1 answers convert what the 2.2.1 modules read (tested
# on both databases by test_ocpi_{locations,tariffs,sessions,commands}.py)
async def test_a_211_partners_session_from_command_to_cdr(world: World) -> None:
    evse_uid = f"{CP_ID}*1"
    # START_SESSION with a 2.1.1 token (auth_id, no party) on EVSE 1.
    start = await world.command(
        "START_SESSION",
        {"token": token_211("APP-1", type="OTHER"), "location_id": LOCATION, "evse_uid": evse_uid},
    )
    assert start.data == {"result": "ACCEPTED"}  # 2.1.1: no timeout, no message
    assert command_response_errors_211(start.data) == [] and no_routing(start.headers)

    async def running() -> Any:
        active = await world.server.staff.transactions(active_only=True, cp_id=CP_ID)
        return active[0] if active else None

    tx = await until(running, "the started transaction")
    assert (tx.evse_id, tx.id_tag) == (1, "APP-1")

    async def listed() -> list[dict[str, Any]]:
        return [s for s in await world.walk("sessions") if s["id"] == str(tx.id)]

    (session,) = await until(listed, "the session in GET /ocpi/2.1.1/sessions")
    assert session_errors_211(session) == []
    assert session["status"] == "ACTIVE" and session["auth_id"] == "DE-EMV-CAPP-1"
    assert session["auth_method"] == "AUTH_REQUEST"  # 2.2.1 COMMAND
    embedded = session["location"]
    assert embedded["id"] == LOCATION and embedded["type"] == "UNKNOWN"
    assert [e["uid"] for e in embedded["evses"]] == [evse_uid]
    assert [c["id"] for c in embedded["evses"][0]["connectors"]] == ["1"]
    assert (embedded["address"], embedded["postal_code"]) == ("Kade 211", "1011AA")
    for gone in ("cdr_token", "location_id", "evse_uid", "country_code", "start_date_time"):
        assert gone not in session

    async def charged() -> list[dict[str, Any]]:
        return [s for s in await listed() if s["kwh"] > 0]

    (session,) = await until(charged, "energy charged in the session")
    assert isinstance(session["kwh"], int | float) and session_errors_211(session) == []

    # STOP_SESSION of an unknown session, then of this one.
    unknown = await world.command("STOP_SESSION", {"session_id": "999999"})
    assert unknown.data == {"result": "UNKNOWN_SESSION"}
    stop = await world.command("STOP_SESSION", {"session_id": str(tx.id)})
    assert stop.data == {"result": "ACCEPTED"}
    # A 2.2.1-only command does not exist in 2.1.1.
    cancel = await world.command("CANCEL_RESERVATION", {"reservation_id": "1"})
    assert cancel.body["status_code"] == 2001

    async def cdrs() -> list[dict[str, Any]]:
        return await world.walk("cdrs")

    (cdr,) = await until(cdrs, "the CDR in GET /ocpi/2.1.1/cdrs")
    assert cdr_errors_211(cdr) == []
    assert cdr["auth_id"] == "DE-EMV-CAPP-1" and cdr["auth_method"] == "AUTH_REQUEST"
    assert isinstance(cdr["total_cost"], float) and cdr["total_cost"] > 0
    assert isinstance(cdr["total_energy"], float) and cdr["total_energy"] > 0
    assert "stop_date_time" in cdr and "end_date_time" not in cdr
    assert cdr["location"]["evses"][0]["uid"] == evse_uid
    assert [t["id"] for t in cdr["tariffs"]] == ["T-211"]
    (session,) = await listed()
    assert session["status"] == "COMPLETED" and session_errors_211(session) == []
    assert session["total_cost"] == cdr["total_cost"]
    assert session["kwh"] == cdr["total_energy"]

    # Locations, one per page, then one location, EVSE and connector.
    walked = await world.walk("locations", "limit=1")
    assert [loc["id"] for loc in walked] == [LOCATION, "LOC-212"]
    for loc in walked:
        assert location_errors_211(loc) == []
        assert loc["coordinates"] == {"latitude": "52.370200", "longitude": "4.895200"}
        assert "publish" not in loc and "country_code" not in loc
        connector = loc["evses"][0]["connectors"][0]
        assert isinstance(connector["voltage"], int) and isinstance(connector["amperage"], int)
    assert walked[0]["evses"][0]["connectors"][0]["tariff_id"] == "T-211"
    one = (await world.fake.get(f"{world.ours['locations']}/{LOCATION}")).data
    assert one == walked[0]
    evse = (await world.fake.get(f"{world.ours['locations']}/{LOCATION}/{evse_uid}")).data
    assert evse_errors_211(evse) == [] and evse["uid"] == evse_uid
    connector = (await world.fake.get(f"{world.ours['locations']}/{LOCATION}/{evse_uid}/1")).data
    assert connector_errors_211(connector) == [] and "max_voltage" not in connector
    missing = await world.fake.get(f"{world.ours['locations']}/NOPE")
    assert missing.status == 404 and missing.body["status_code"] == 2003

    # Tariffs: prices as numbers, no type, no party.
    (tariff,) = await world.walk("tariffs")
    assert tariff_errors_211(tariff) == []
    assert tariff["id"] == "T-211" and "type" not in tariff and "country_code" not in tariff
    assert tariff["elements"][0]["price_components"] == [
        {"type": "ENERGY", "price": 0.3, "step_size": 1}
    ]
