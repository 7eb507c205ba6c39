"""Partner profiles on a real server with a raw 1.6 charger and fake partners: a partner on
the Gireve profile receives session updates as PUTs of the whole session and no routing
headers; one on the e-clearing profile gets normalised EVSE ids in what is pushed to it
and what it pulls, has its ids compared case-sensitively, its empty token strings filled,
and (a switch set apart) its pages capped, both ways. A partner on the default profile
beside them shows the letter of OCPI 2.2.1 still holds for everyone else."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.services.locations import LocationService
from ocpi_cpo.token_sync import TOKEN_PULLER
from tests.e2e.cli import csms, ok, one_line_error
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner, Seen
from tests.e2e.fake_partner import ok as ocpi_ok
from tests.e2e.ocpi_rules import session_errors
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import register, ts, until

CP_ID = "PROF-1"
# Gireve as a 2.1.1 hub registers: one party, no HUB role (its profile makes it a hub).
GIREVE_ROLE = {
    "role": "EMSP",
    "country_code": "FR",
    "party_id": "GIR",
    "business_details": {"name": "Gireve"},
}
CARD = "EMS-CARD"
ECL_ROLE = {
    "role": "EMSP",
    "country_code": "FR",
    "party_id": "ECL",
    "business_details": {"name": "e-clearing eMSP"},
}
HUB_ROLE = {
    "role": "HUB",
    "country_code": "BE",
    "party_id": "HUB",
    "business_details": {"name": "A hub"},
}
ENDPOINTS = (
    ("credentials", "SENDER"),
    ("locations", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
)
ROUTING = ("ocpi-to-country-code", "ocpi-to-party-id", "ocpi-from-country-code")
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@dataclass
class Peer:
    name: str
    fake: FakePartner
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        assert self.fake.our_token is not None
        return self.fake.our_token

    async def get(self, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        module, _, rest = path.partition("/")
        url = self.endpoints[module] + ("/" + rest if rest else "")
        return await self.fake.call("GET", url, self.token)

    async def put_token(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        party = f"{body['country_code']}/{body['party_id']}"
        url = f"{self.endpoints['tokens']}/{party}/{uid}"
        _, answer, _ = await self.fake.call("PUT", url, self.token, body)
        return answer

    def pushed(self, module: str) -> list[Seen]:
        return [s for s in self.fake.pushes if f"/2.2.1/{module}" in s.path]


@dataclass
class World:
    server: Running
    peers: dict[str, Peer]


async def _register(server: Running, name: str, role: dict[str, Any]) -> Peer:
    fake = await FakePartner(roles=(role,), endpoints=ENDPOINTS).start()
    invitation = await server.app.partners.add(name)
    await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.ocpi_url}/ocpi/2.2.1", fake.our_token)
    endpoints = {e["identifier"]: e["url"] for e in details["data"]["endpoints"]}
    return Peer(name, fake, endpoints)


@pytest.fixture
async def world(start_server: StartServer) -> AsyncIterator[World]:
    server = await start_server(ocpi={"session_update_interval": 1.0, "push_interval": 0.1})
    # The pull that follows a registration would race the tests' own `csms ocpi tokens
    # sync` (whichever comes first creates the tokens): only the tests pull here.
    assert server.app.ocpi_app is not None
    server.app.ocpi_app[TOKEN_PULLER].delay = 3600
    peers = {
        "gireve": await _register(server, "gireve", GIREVE_ROLE),
        "ecl": await _register(server, "ecl", ECL_ROLE),
        "hub": await _register(server, "hub", HUB_ROLE),
    }
    # Profiles as staff set them.
    out = ok(await csms(server, "ocpi", "partners", "set", "gireve", "--profile", "gireve"))
    assert out.strip() == "partner gireve: profile gireve (session_put, no routing_headers, hub)"
    ran = await csms(
        server, "ocpi", "partners", "set", "ecl", "--profile", "e-clearing", "--page-limit", "1"
    )
    assert ok(ran).strip() == (
        "partner ecl: profile e-clearing "
        "(compact_evse_ids, case_sensitive_ids, fill_empty, page_limit 1*, hub)"
    )
    locations = LocationService(server.app.db, utc_now)
    for location_id, street in (("LOC-P", "Kade 1"), ("LOC-Q", "Kade 2")):
        await locations.add(
            Location(
                id=location_id,
                name="Depot",
                address=street,
                city="Amsterdam",
                postal_code="1011AA",
                country="NLD",
                latitude="52.3702",
                longitude="4.8952",
                time_zone="Europe/Amsterdam",
            )
        )
    await locations.link("LOC-P", CP_ID, None)
    await server.staff.add_token(Token(CARD, TokenStatus.ACCEPTED, origin="DE*EMS"))
    yield World(server, peers)
    for peer in peers.values():
        await peer.fake.stop()


async def charger(server: Running) -> ClientConnection:
    ws = await open_raw(server.url, CP_ID)
    await call(ws, "BootNotification", BOOT)
    for connector in (1, 2):
        status = {"connectorId": connector, "errorCode": "NoError", "status": "Available"}
        await call(ws, "StatusNotification", status)
    return ws


def now() -> datetime:
    return datetime.now(UTC)


async def meter(ws: ClientConnection, tx_id: int, wh: int) -> None:
    payload = {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(now(), wh)]}
    await call(ws, "MeterValues", payload)


async def test_the_profiles_are_shown_and_refused_when_unknown(world: World) -> None:
    shown = (await csms(world.server, "ocpi", "partners", "show", "ecl", "--json")).json()
    assert shown["profile"] == {
        "name": "e-clearing",
        "session_put": False,
        "compact_evse_ids": True,
        "case_sensitive_ids": True,
        "fill_empty": True,
        "routing_headers": True,
        "page_limit": 1,
        "hub": True,
        "custom": ["page_limit"],
    }
    text = ok(await csms(world.server, "ocpi", "partners", "show", "gireve"))
    assert "  profile:        gireve (session_put, no routing_headers, hub)" in text.splitlines()
    assert "  HUB   FR/GIR  Gireve" in text.splitlines()  # acting as a hub
    one_line_error(await csms(world.server, "ocpi", "partners", "set", "gireve"), "nothing to set")
    one_line_error(
        await csms(world.server, "ocpi", "partners", "set", "nobody", "--session-put"),
        "no partner nobody",
    )
    ran = await csms(world.server, "ocpi", "partners", "set", "gireve", "--profile", "hubject")
    assert ran.code == 2 and "hubject" in ran.err
    # A switch set apart from the preset, then the preset again: its switches replace it.
    ran = await csms(world.server, "ocpi", "partners", "set", "gireve", "--no-session-put")
    assert (
        ok(ran).strip()
        == "partner gireve: profile gireve (no session_put*, no routing_headers, hub)"
    )
    ran = await csms(world.server, "ocpi", "partners", "set", "gireve", "--profile", "gireve")
    assert (
        ok(ran).strip() == "partner gireve: profile gireve (session_put, no routing_headers, hub)"
    )
    listed = ok(await csms(world.server, "ocpi", "partners", "list"))
    header, *rows = listed.splitlines()
    profiles = {r.split()[0]: r[header.index("PROFILE") :].split()[0] for r in rows}
    assert profiles == {"gireve": "gireve", "ecl": "e-clearing*", "hub": "default"}


@pytest.mark.slow
async def test_a_gireve_partner_gets_session_updates_as_puts(world: World) -> None:
    gireve, hub = world.peers["gireve"], world.peers["hub"]
    ws = await charger(world.server)
    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": CARD, "meterStart": 1000, "timestamp": ts(now())},
    )
    tx_id = int(answer[2]["transactionId"])
    path = f"/sessions/NL/CSM/{tx_id}"

    async def updated() -> list[Seen]:
        await meter(ws, tx_id, 1000 + 50 * len(gireve.fake.pushes))
        got = [s for s in gireve.fake.pushes if s.path.endswith(path)]
        seen_hub = [s for s in hub.fake.pushes if s.path.endswith(path)]
        return got if len(got) >= 3 and len(seen_hub) >= 3 else []

    running = await until(updated, "three session pushes to each partner", seconds=20)
    # Gireve (a hub by its profile, so it gets the DE*EMS token's session): every push of
    # the running session is a PUT of the whole session, valid on its own, without routing
    # headers (its guide is built on 2.1.1, which has none).
    assert [s.method for s in running] == ["PUT"] * len(running)
    for seen in running:
        assert session_errors(seen.body) == []
        assert seen.body["id"] == str(tx_id) and seen.body["status"] == "ACTIVE"
        assert seen.body["cdr_token"]["uid"] == CARD
        assert not any(h in {k.lower() for k in seen.headers} for h in ROUTING)
    kwh = [s.body["kwh"] for s in running]
    assert kwh == sorted(kwh) and kwh[-1] > 0
    # The default profile beside it: one PUT, then PATCHes of what moved, routed to the
    # token's party.
    at_hub = [s for s in hub.fake.pushes if s.path.endswith(path)]
    assert at_hub[0].method == "PUT" and {s.method for s in at_hub[1:]} == {"PATCH"}
    assert "cdr_token" not in at_hub[1].body
    headers = {k.lower(): v for k, v in at_hub[1].headers.items()}
    assert (headers["ocpi-to-country-code"], headers["ocpi-to-party-id"]) == ("DE", "EMS")

    await call(
        ws, "StopTransaction", {"transactionId": tx_id, "meterStop": 1500, "timestamp": ts(now())}
    )

    async def final() -> Seen | None:
        got = [s for s in gireve.fake.pushes if s.path.endswith(path)]
        return got[-1] if got[-1].body["status"] == "COMPLETED" else None

    last = await until(final, "the completed session", seconds=20)
    assert last.method == "PUT" and session_errors(last.body) == []
    assert last.body["kwh"] == 0.5


async def test_an_e_clearing_partner_gets_normalised_evse_ids_and_strict_ids(
    world: World,
) -> None:
    ecl, hub = world.peers["ecl"], world.peers["hub"]
    ws = await charger(world.server)

    def evse_ids(peer: Peer) -> set[str]:
        """The evse_ids pushed to the peer: in Location PUTs and EVSE PUTs of LOC-P."""
        found: set[str] = set()
        for s in peer.pushed("locations/NL/CSM/LOC-P"):
            if s.method != "PUT":
                continue
            evses = s.body.get("evses", []) if s.path.endswith("/LOC-P") else [s.body]
            found |= {e["evse_id"] for e in evses if "evse_id" in e}
        return found

    async def pushed() -> bool:
        return len(evse_ids(ecl)) == 2 and len(evse_ids(hub)) == 2

    await until(pushed, "LOC-P with both EVSEs pushed to both partners")
    # Pushes: separators out, upper case, for the e-clearing partner only.
    assert evse_ids(ecl) == {"NLCSMEPROF11", "NLCSMEPROF12"}
    assert evse_ids(hub) == {"NL*CSM*EPROF1*1", "NL*CSM*EPROF1*2"}

    # Pulls: the same ids in what it GETs, a page of one object at most (its page_limit).
    status, body, headers = await ecl.get("locations")
    assert status == 200 and headers["X-Limit"] == "1" and headers["X-Total-Count"] == "2"
    assert len(body["data"]) == 1
    match = LINK.match(headers["Link"])
    assert match is not None and "limit=1" in match["url"]
    _, page2, _ = await ecl.fake.call("GET", match["url"], ecl.token)
    served = {b["id"]: b for b in body["data"] + page2["data"]}
    assert sorted(served) == ["LOC-P", "LOC-Q"]
    assert {e["evse_id"] for e in served["LOC-P"]["evses"]} == {"NLCSMEPROF11", "NLCSMEPROF12"}
    status, one, _ = await ecl.get(f"locations/LOC-P/{CP_ID}*1")
    assert status == 200 and one["data"]["evse_id"] == "NLCSMEPROF11"
    status, body, headers = await hub.get("locations")
    assert headers["X-Limit"] == "100" and len(body["data"]) == 2
    hub_ids = {e["evse_id"] for b in body["data"] for e in b.get("evses", [])}
    assert hub_ids == {"NL*CSM*EPROF1*1", "NL*CSM*EPROF1*2"}

    # Ids compared as sent: another case is unknown to it, found for the hub (CiString).
    for path in (f"locations/loc-p/{CP_ID}*1", f"locations/LOC-P/{CP_ID.lower()}*1"):
        status, answer, _ = await ecl.get(path)
        assert status == 404 and answer["status_code"] == 2003, answer
        status, answer, _ = await hub.get(path)
        assert status == 200 and answer["data"]["uid"] == f"{CP_ID}*1"
    status, answer, _ = await ecl.get(f"locations/LOC-P/{CP_ID}*1/1")
    assert status == 200 and answer["data"]["id"] == "1"
    await ws.close()

    # Commands too: an EVSE named in another case is unknown to it, not to the hub.
    async def unlock(peer: Peer, location_id: str, evse_uid: str) -> dict[str, Any]:
        body = {
            "response_url": f"{peer.fake.base}/results/1",
            "location_id": location_id,
            "evse_uid": evse_uid,
            "connector_id": "1",
        }
        url = f"{peer.endpoints['commands']}/UNLOCK_CONNECTOR"
        _, answer, _ = await peer.fake.call("POST", url, peer.token, body)
        return answer

    refused = await unlock(ecl, "LOC-P", f"{CP_ID.lower()}*1")
    assert refused["status_code"] == 2003 and refused["data"]["result"] == "REJECTED"
    assert "unknown EVSE" in refused["status_message"]
    refused = await unlock(ecl, "loc-p", f"{CP_ID}*1")
    assert refused["status_code"] == 2003 and "unknown location" in refused["status_message"]
    found = await unlock(hub, "loc-p", f"{CP_ID.lower()}*1")
    assert found["status_code"] != 2003, found
    found = await unlock(ecl, "LOC-P", f"{CP_ID}*1")
    assert found["status_code"] != 2003, found


def token(party: dict[str, Any], uid: str, **changes: Any) -> dict[str, Any]:
    return {
        "country_code": party["country_code"],
        "party_id": party["party_id"],
        "uid": uid,
        "type": "RFID",
        "contract_id": f"{party['country_code']}-{party['party_id']}-{uid}",
        "issuer": "An eMSP",
        "valid": True,
        "whitelist": "ALWAYS",
        "last_updated": "2026-01-05T10:00:00Z",
        **changes,
    }


async def test_an_e_clearing_partners_empty_strings_are_filled_and_its_pages_capped(
    world: World,
) -> None:
    ecl, hub = world.peers["ecl"], world.peers["hub"]
    # Pushed: its token with an empty issuer and no contract_id is taken, filled with "-".
    bare = {k: v for k, v in token(ECL_ROLE, "ECL-1", issuer="").items() if k != "contract_id"}
    answer = await ecl.put_token("ECL-1", bare)
    assert answer["status_code"] == 1000, answer
    _, stored, _ = await ecl.get("tokens/FR/ECL/ECL-1")
    assert stored["data"]["issuer"] == "-" and stored["data"]["contract_id"] == "-"
    # A PATCH that empties the issuer: filled as well.
    url = f"{ecl.endpoints['tokens']}/FR/ECL/ECL-1"
    patch = {"issuer": " ", "last_updated": "2026-01-06T10:00:00Z"}
    _, answer, _ = await ecl.fake.call("PATCH", url, ecl.token, patch)
    assert answer["status_code"] == 1000, answer
    # The default profile: the letter of OCPI, refused.
    answer = await hub.put_token("HUB-1", token(ECL_ROLE, "HUB-1", issuer=""))
    assert answer["status_code"] == 2001 and "issuer" in answer["status_message"]

    # Pulled: its pages asked for one token at a time, empty strings filled.
    asked: list[str] = []
    tokens = [token(ECL_ROLE, "ECL-2", issuer=""), token(ECL_ROLE, "ECL-3", contract_id="")]

    async def handler(request: web.Request, sub: str, seen: Seen) -> web.StreamResponse:
        asked.append(request.query_string)
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "100"))
        chunk = tokens[offset : offset + limit]
        return ocpi_ok(chunk, headers={"X-Total-Count": str(len(tokens))})

    ecl.fake.sender_handlers["tokens"] = handler
    synced = (await csms(world.server, "ocpi", "tokens", "sync", "ecl", "--json")).json()
    assert (synced["received"], synced["created"], synced["skipped"]) == (2, 2, 0)
    assert asked == ["offset=0&limit=1", "offset=1&limit=1"]
    # Asked for more than its cap: still one a page.
    asked.clear()
    ok(await csms(world.server, "ocpi", "tokens", "sync", "ecl", "--limit", "50"))
    assert asked == ["offset=0&limit=1", "offset=1&limit=1"]
    _, pulled, _ = await ecl.get("tokens/FR/ECL/ECL-2")
    assert pulled["data"]["issuer"] == "-"
    _, pulled, _ = await ecl.get("tokens/FR/ECL/ECL-3")
    assert pulled["data"]["contract_id"] == "-"


# --- a hub in OCPI 2.1.1 ----------------------------------------------------------------------


async def _to_211(server: Running, peer: Peer, role: dict[str, Any]) -> None:
    """The peer re-registers in 2.1.1 (PUT of 2.1.1 credentials): one party, no role."""
    mine = "v211-" + secrets.token_hex(8)
    peer.fake.tokens.add(mine)
    peer.fake.accepts = "both"  # 2.1.1 sends tokens raw
    status, body, _ = await peer.fake.call(
        "PUT",
        f"{server.ocpi_url}/ocpi/2.1.1/credentials",
        peer.token,
        {
            "token": mine,
            "url": peer.fake.versions_url,
            "business_details": role["business_details"],
            "party_id": role["party_id"],
            "country_code": role["country_code"],
        },
        encoding="raw",
    )
    assert status == 200 and body["status_code"] == 1000, body
    peer.fake.our_token = body["data"]["token"]
    peer.fake.their_token_b = mine


@pytest.mark.slow
async def test_a_hub_registered_in_211_acts_as_a_hub_with_its_profile(world: World) -> None:
    """Gireve registered in 2.1.1 (one party, no HUB role): its profile makes it a hub, so
    it gets the DE*EMS token's session, written in 2.1.1, as PUTs, and (a switch set
    apart) with compact EVSE ids, without routing headers."""
    gireve = world.peers["gireve"]
    await _to_211(world.server, gireve, GIREVE_ROLE)
    ran = await csms(world.server, "ocpi", "partners", "set", "gireve", "--compact-evse-ids")
    assert ok(ran).strip() == (
        "partner gireve: profile gireve (session_put, compact_evse_ids*, no routing_headers, hub)"
    )
    shown = (await csms(world.server, "ocpi", "partners", "show", "gireve", "--json")).json()
    assert shown["version"] == "2.1.1"
    assert [(r["role"], r["country_code"], r["party_id"]) for r in shown["roles"]] == [
        ("HUB", "FR", "GIR")
    ]
    ws = await charger(world.server)

    async def located() -> list[Seen]:
        return [
            s
            for s in gireve.fake.pushes
            if "/2.1.1/locations/NL/CSM/LOC-P/" in s.path and s.method == "PUT"
        ]

    evse_puts = await until(located, "EVSE PUTs in 2.1.1")
    assert {s.body["evse_id"] for s in evse_puts} <= {"NLCSMEPROF11", "NLCSMEPROF12"}

    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": CARD, "meterStart": 1000, "timestamp": ts(now())},
    )
    tx_id = int(answer[2]["transactionId"])
    path = f"/2.1.1/sessions/NL/CSM/{tx_id}"

    async def updated() -> list[Seen]:
        await meter(ws, tx_id, 1000 + 50 * len(gireve.fake.pushes))
        got = [s for s in gireve.fake.pushes if s.path.endswith(path)]
        return got if len(got) >= 3 else []

    running = await until(updated, "three 2.1.1 session pushes", seconds=20)
    assert [s.method for s in running] == ["PUT"] * len(running)
    for seen in running:
        assert seen.body["id"] == str(tx_id) and seen.body["auth_id"]
        assert "cdr_token" not in seen.body  # 2.1.1
        assert [e["evse_id"] for e in seen.body["location"]["evses"]] == ["NLCSMEPROF11"]
        assert not any(h in {k.lower() for k in seen.headers} for h in ROUTING)
    await ws.close()
