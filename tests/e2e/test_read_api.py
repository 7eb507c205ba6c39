"""The operator API's read endpoints on a real server: simulated chargers of both versions
charge under a tariff at a location, a fake eMSP is registered, and what they produced is
read back over HTTP (filters, cursors with totals, the same JSON as the CLI's `--json`),
with 400 for bad parameters, 404 for unknown ids, 401 without the token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.core.authorization import Token, TokenStatus
from csms.core.locations import Location
from csms.services.locations import LocationService
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.versions import create_charger
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner
from tests.e2e.sim import charger, until

AUTH = {"Authorization": "Bearer test-token"}
EMS_CARD = "EMS-CARD"  # owned by the fake eMSP's party, DE*EMS
TARIFF = {
    "id": "T-READ",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]}
    ],
}


@dataclass
class World:
    server: Running
    http: aiohttp.ClientSession
    live: V16Charger  # READ-LIVE, connected while the test reads

    async def get(self, path: str, expect: int = 200, /, **params: str) -> Any:
        async with self.http.get(
            self.server.api_url + path, params=params, headers=AUTH
        ) as response:
            body = await response.json()
            assert response.status == expect, (path, params, body)
            assert response.content_type == "application/json"
            return body

    async def walk(self, path: str, **params: str) -> tuple[list[Any], list[int]]:
        """Every page of a listing, following next_cursor: the items and each page's total."""
        items: list[Any] = []
        totals: list[int] = []
        cursor: str | None = None
        while True:
            query = dict(params) if cursor is None else {**params, "cursor": cursor}
            page = await self.get(path, **query)
            items.extend(page["items"])
            totals.append(page["total"])
            cursor = page["next_cursor"]
            if cursor is None:
                assert page["next"] is None
                return items, totals
            assert page["next"].startswith(path + "?") and f"cursor={cursor}" in page["next"]


async def _site(server: Running) -> None:
    locations = LocationService(server.app.db, server.app.clock)
    await locations.add(
        Location(
            id="AMS-R",
            name="Read depot",
            address="Kade 2",
            city="Amsterdam",
            postal_code="1011AB",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    for cp_id in ("READ-16", "READ-201"):
        await locations.link("AMS-R", cp_id, None)
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("T-READ", location="AMS-R")
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    await server.staff.add_token(Token("CARD2", TokenStatus.ACCEPTED))
    await server.staff.add_token(Token(EMS_CARD, TokenStatus.ACCEPTED, origin="DE*EMS"))
    await server.staff.add_token(Token("LOST1", TokenStatus.BLOCKED))


async def _simulate(server: Running, cp_id: str, version: str, sessions: int, tag: str) -> None:
    sim = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            sessions=sessions,
            session_seconds=1.5,
            meter_interval=0.4,
            tag=tag,
            exit_when_done=True,
            seed=3,
            vendor="ReadVendor",
        )
    )
    await sim.run()


@pytest.fixture
async def world(start_server: StartServer) -> AsyncIterator[World]:
    server = await start_server()
    await _site(server)
    fake = await FakePartner(roles=(EMSP_ROLE,)).start()
    invitation = await server.app.partners.add("emsp")
    await fake.register_with(f"{server.app.ocpi_base_url}/ocpi/versions", invitation.token_a)
    await asyncio.gather(
        _simulate(server, "READ-16", "1.6", 2, "CARD1"),
        _simulate(server, "READ-201", "2.0.1", 1, EMS_CARD),
    )
    txs = await server.staff.transactions()
    assert len(txs) == 3 and all(t.energy_wh for t in txs)

    async def billed() -> bool:
        return all([await server.app.billing.cdrs_of(t.id) for t in txs])

    await until(billed, "a CDR for every session")
    async with aiohttp.ClientSession() as http, charger(server.url, "READ-LIVE") as live:
        await live.status(1, "Available")
        yield World(server, http, live)
    await fake.stop()


def _cli_json(ran_out: str) -> Any:
    return json.loads(ran_out)


async def test_chargers_and_evses(world: World) -> None:
    page = await world.get("/api/chargers")
    assert page["total"] == 3 and page["limit"] == 100 and page["next_cursor"] is None
    by_id = {c["id"]: c for c in page["items"]}
    assert list(by_id) == ["READ-16", "READ-201", "READ-LIVE"]
    assert by_id["READ-LIVE"]["connected"] is True and by_id["READ-LIVE"]["connected_here"]
    for gone in ("READ-16", "READ-201"):
        assert by_id[gone]["connected"] is False and by_id[gone]["connected_here"] is False
    assert by_id["READ-201"]["ocpp_version"] == "2.0.1"
    assert by_id["READ-16"]["vendor"] == "ReadVendor"
    assert by_id["READ-16"]["disconnected_at"].endswith("Z")
    live_connectors = by_id["READ-LIVE"]["connectors"]
    assert [(c["evse_id"], c["status"]) for c in live_connectors] == [(1, "Available")]

    # Filters.
    only = await world.get("/api/chargers", connected="true")
    assert [c["id"] for c in only["items"]] == ["READ-LIVE"] and only["total"] == 1
    only = await world.get("/api/chargers", ocpp_version="2.0.1")
    assert [c["id"] for c in only["items"]] == ["READ-201"]
    only = await world.get("/api/chargers", registration="pending")  # any case
    assert only == {"items": [], "total": 0, "limit": 100, "next_cursor": None, "next": None}
    only = await world.get("/api/chargers", status="Available", connected="false")
    assert {c["id"] for c in only["items"]} == {"READ-16", "READ-201"}

    # One per page: three pages, each saying there are three.
    items, totals = await world.walk("/api/chargers", limit="1")
    assert [c["id"] for c in items] == ["READ-16", "READ-201", "READ-LIVE"]
    assert totals == [3, 3, 3]

    # One charger: the CLI's `show --json` and the API's agree field by field.
    shown = await world.get("/api/chargers/READ-16")
    cli = _cli_json(ok(await csms(world.server, "chargers", "show", "READ-16", "--json")))
    assert shown.pop("connected_here") is False
    assert shown == cli
    assert shown["status_history"] and shown["active_transactions"] == []

    evses = await world.get("/api/chargers/READ-LIVE/evses")
    assert evses["charger"] == "READ-LIVE" and evses["total"] == 1
    (evse,) = evses["items"]
    assert (evse["evse_id"], evse["status"], evse["transaction_id"]) == (1, "Available", None)
    answer = await world.live.start_transaction(1, "CARD2", 5000)
    await world.live.status(1, "Charging")

    async def charging() -> Any:
        body = await world.get("/api/chargers/READ-LIVE/evses")
        return body if body["items"][0]["status"] == "Charging" else None

    evses = await until(charging, "the EVSE charging")
    assert evses["items"][0]["transaction_id"] == answer["transactionId"]
    detail = await world.get("/api/chargers/READ-LIVE")
    assert detail["active_transactions"] == [answer["transactionId"]]
    assert detail["connected_here"] is True


@pytest.mark.slow
async def test_transactions_with_readings_and_cdrs(world: World) -> None:
    server = world.server
    page = await world.get("/api/transactions")
    assert page["total"] == 3
    txs = page["items"]
    assert [t["id"] for t in txs] == sorted((t["id"] for t in txs), reverse=True)
    stored = {t.id: t for t in await server.staff.transactions()}
    for t in txs:
        assert t["energy_wh"] == stored[t["id"]].energy_wh and t["energy_wh"] > 0
        assert t["state"] == "completed" and t["billing"] == "billed"
    # Filters: by charger, by token in any case, by state, by start time.
    mine = await world.get("/api/transactions", charger="READ-16")
    assert mine["total"] == 2 and {t["charger"] for t in mine["items"]} == {"READ-16"}
    by_card = await world.get("/api/transactions", token="ems-card")
    assert [t["charger"] for t in by_card["items"]] == ["READ-201"]
    assert (await world.get("/api/transactions", state="active"))["total"] == 0
    first_start = min(t["start_at"] for t in txs)
    later = await world.get("/api/transactions", since="2999-01-01")
    assert later["total"] == 0
    window = await world.get("/api/transactions", since=first_start, until="2999-01-01T00:00Z")
    assert window["total"] == 3
    before = await world.get("/api/transactions", until=first_start)
    assert before["total"] == 0

    # Pages of two, while a new transaction starts after the first page: the cursor goes
    # on where it was (no item twice, none lost); the totals count the new one.
    first = await world.get("/api/transactions", limit="2")
    assert first["total"] == 3 and len(first["items"]) == 2
    answer = await world.live.start_transaction(1, "CARD2", 7000)
    rest = await world.get("/api/transactions", limit="2", cursor=first["next_cursor"])
    assert rest["total"] == 4 and rest["next_cursor"] is None
    walked = [t["id"] for t in first["items"] + rest["items"]]
    assert walked == [t["id"] for t in txs]
    active = await world.get("/api/transactions", state="active")
    assert [t["id"] for t in active["items"]] == [answer["transactionId"]]

    # One transaction: readings and cost, as the CLI shows it.
    tx_id = txs[0]["id"]
    detail = await world.get(f"/api/transactions/{tx_id}")
    cli = _cli_json(ok(await csms(server, "transactions", "show", str(tx_id), "--json")))
    assert detail == cli
    registers = [s for s in detail["samples"] if s["measurand"] == "Energy.Active.Import.Register"]
    assert len(registers) >= 2 and all(s["timestamp"].endswith("Z") for s in registers)
    assert detail["tariff_id"] == "T-READ" and detail["currency"] == "EUR"
    assert detail["cost"]["total_energy"] == detail["energy_wh"] / 1000

    # CDRs: newest first, the OCPI objects the CLI lists.
    cdrs = await world.get("/api/cdrs")
    assert cdrs["total"] == 3
    assert sorted(c["session_id"] for c in cdrs["items"]) == sorted(str(t["id"]) for t in txs)
    cli_cdrs = _cli_json(ok(await csms(server, "cdrs", "list", "--json")))
    assert sorted(cli_cdrs, key=lambda c: c["id"]) == sorted(cdrs["items"], key=lambda c: c["id"])
    for c in cdrs["items"]:
        tx = stored[int(c["session_id"])]
        assert tx.energy_wh and c["total_energy"] == tx.energy_wh / 1000
        assert c["cdr_location"]["id"] == "AMS-R"
    theirs = await world.get("/api/cdrs", partner="emsp")
    assert [c["cdr_token"]["uid"] for c in theirs["items"]] == [EMS_CARD]
    assert theirs["items"][0]["cdr_token"]["party_id"] == "EMS"
    assert (await world.get("/api/cdrs", token="card1"))["total"] == 2
    assert (await world.get("/api/cdrs", charger="READ-201"))["total"] == 1
    assert (await world.get("/api/cdrs", since="2999-01-01"))["total"] == 0
    items, totals = await world.walk("/api/cdrs", limit="2")
    assert [c["id"] for c in items] == [c["id"] for c in cdrs["items"]] and totals == [3, 3]
    one = await world.get(f"/api/cdrs/{items[0]['id']}")
    assert one == items[0]


@pytest.mark.slow
async def test_tokens_locations_tariffs_partners_and_audit(world: World, tmp_path: Path) -> None:
    server = world.server
    tokens = await world.get("/api/tokens")
    assert [t["uid"] for t in tokens["items"]] == ["CARD1", "CARD2", EMS_CARD, "LOST1"]
    # The CLI lists the same objects, the most recently added first.
    cli_tokens = _cli_json(ok(await csms(server, "tokens", "list", "--json")))
    assert sorted(cli_tokens, key=lambda t: t["uid"]) == tokens["items"]
    assert [t["uid"] for t in (await world.get("/api/tokens", status="blocked"))["items"]] == [
        "LOST1"
    ]
    for query in ({"owner": "de*ems"}, {"partner": "emsp"}, {"partner": "emsp", "owner": "DE*EMS"}):
        found = await world.get("/api/tokens", **query)
        assert [t["uid"] for t in found["items"]] == [EMS_CARD], query
    assert (await world.get("/api/tokens", partner="emsp", owner="local"))["total"] == 0
    assert (await world.get("/api/tokens", owner="local"))["total"] == 3
    card = await world.get("/api/tokens/card1")
    assert card["uid"] == "CARD1" and card["status"] == "Accepted" and card["origin"] == "local"

    locations = await world.get("/api/locations")
    (site,) = locations["items"]
    assert site["id"] == "AMS-R" and site["chargers"] == ["READ-16", "READ-201"]
    assert (await world.get("/api/locations", country="deu"))["total"] == 0
    assert (await world.get("/api/locations", published="true", country="nld"))["total"] == 1
    shown = await world.get("/api/locations/AMS-R")
    assert shown == _cli_json(ok(await csms(server, "locations", "show", "AMS-R", "--json")))
    assert {e["uid"] for e in shown["evses"]} == {"READ-16*1", "READ-201*1"}

    tariffs = await world.get("/api/tariffs")
    (tariff,) = tariffs["items"]
    assert tariff["id"] == "T-READ" and tariff["assigned_to"] == ["location AMS-R"]
    assert await world.get("/api/tariffs/T-READ") == tariff
    assert tariff == _cli_json(ok(await csms(server, "tariffs", "show", "T-READ", "--json")))
    assert (await world.get("/api/tariffs", currency="usd"))["total"] == 0

    partners = await world.get("/api/partners")
    (partner,) = partners["items"]
    assert partner["name"] == "emsp" and partner["status"] == "registered"
    assert [(r["country_code"], r["party_id"]) for r in partner["roles"]] == [("DE", "EMS")]
    assert [k for k in partner if "token" in k] == ["token_encoding"]  # never a token
    assert await world.get("/api/partners/emsp") == partner
    assert (await world.get("/api/partners", status="pending"))["total"] == 0

    # The audit log: a command sent through the API, then read back.
    async with world.http.post(
        f"{server.api_url}/api/chargers/READ-LIVE/remote/trigger",
        json={"message": "Heartbeat"},
        headers={**AUTH, "X-CSMS-User": "alice"},
    ) as response:
        result = await response.json()
        assert response.status == 200, result
    audit = await world.get("/api/audit", charger="READ-LIVE")
    (entry,) = audit["items"]
    assert entry["id"] == result["id"] and entry["command"] == "trigger"
    assert (entry["source"], entry["requested_by"], entry["outcome"]) == (
        "api",
        "alice",
        "accepted",
    )
    assert entry["created_at"].endswith("Z") and entry["finished_at"].endswith("Z")
    assert await world.get(f"/api/audit/{entry['id']}") == entry
    assert (await world.get("/api/audit", outcome="pending"))["total"] == 0
    assert (await world.get("/api/audit", source="ocpi"))["total"] == 0
    assert (await world.get("/api/audit", partner="emsp"))["total"] == 0
    assert (await world.get("/api/audit", command="trigger", outcome="accepted"))["total"] == 1
    cli = _cli_json(ok(await csms(server, "commands", "list", "--json")))
    assert cli == audit["items"]


async def test_bad_requests_unknown_ids_and_no_token(world: World) -> None:
    bad = {
        "/api/chargers": [
            ({"limit": "0"}, "limit", "between 1 and 1000"),
            ({"limit": "1001"}, "limit", "between 1 and 1000"),
            ({"limit": "ten"}, "limit", "must be an integer"),
            ({"cursor": "not-a-cursor"}, "cursor", "next_cursor"),
            ({"registration": "Maybe"}, "registration", "Accepted, Pending, Rejected"),
            ({"connected": "perhaps"}, "connected", "true or false"),
            ({"status": "Sleeping"}, "status", "Available"),
            ({"chager": "READ-16"}, "chager", "unknown parameter"),
            ({"ocpp_version": ""}, "ocpp_version", "empty"),
        ],
        "/api/transactions": [
            ({"since": "yesterday"}, "since", "ISO 8601"),
            ({"since": "2026-02-01", "until": "2026-01-01"}, "until", "after since"),
            ({"state": "running"}, "state", "active, completed"),
            ({"billing": "paid"}, "billing", "pending"),
        ],
        "/api/cdrs": [({"until": "2026-13-01"}, "until", "ISO 8601")],
        "/api/tokens": [({"owner": "Germany"}, "owner", "NL*EMS")],
        "/api/audit": [
            ({"outcome": "maybe"}, "outcome", "pending"),
            ({"source": "web"}, "source", "cli, api, ocpi"),
        ],
        "/api/chargers/READ-16": [({"verbose": "1"}, "verbose", "takes no parameters")],
    }
    for path, cases in bad.items():
        for params, parameter, text in cases:
            body = await world.get(path, 400, **params)
            assert body["parameter"] == parameter and text in body["error"], (path, body)
    # A cursor of another listing, or a cursor of the right listing with a wrong key type.
    tx_page = await world.get("/api/transactions", limit="1")
    body = await world.get("/api/chargers", 400, cursor=tx_page["next_cursor"])
    assert body["parameter"] == "cursor"
    # A parameter given twice.
    async with world.http.get(
        f"{world.server.api_url}/api/transactions?state=active&state=completed", headers=AUTH
    ) as response:
        assert response.status == 400
        assert "given 2 times" in (await response.json())["error"]
    # An unknown partner in a filter is a bad filter, not an empty answer.
    body = await world.get("/api/cdrs", 400, partner="nobody")
    assert "no partner 'nobody'" in body["error"]

    missing = [
        ("/api/chargers/NOPE", "no charger NOPE"),
        ("/api/chargers/NOPE/evses", "no charger NOPE"),
        ("/api/transactions/999999", "no transaction 999999"),
        ("/api/transactions/abc", "whole numbers"),
        ("/api/cdrs/NLCSM9999999999", "no CDR"),
        ("/api/tokens/NOPE", "no token NOPE"),
        ("/api/locations/NOPE", "no location"),
        ("/api/tariffs/NOPE", "no tariff"),
        ("/api/partners/NOPE", "no partner"),
        ("/api/audit/424242", "no audit log entry 424242"),
        ("/api/audit/x1", "whole numbers"),
    ]
    for path, text in missing:
        body = await world.get(path, 404)
        assert text in body["error"], (path, body)

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}):
        async with world.http.get(
            f"{world.server.api_url}/api/chargers", headers=headers
        ) as response:
            assert response.status == 401
            assert "bearer token" in (await response.json())["error"]
            assert "READ-16" not in await response.text()

    # The description is public: the JSON and the page to read.
    async with world.http.get(f"{world.server.api_url}/api/openapi.json") as response:
        assert response.status == 200
        spec = await response.json()
    read_paths = [
        "/api/chargers",
        "/api/chargers/{charger}",
        "/api/chargers/{charger}/evses",
        "/api/transactions",
        "/api/transactions/{transaction}",
        "/api/cdrs",
        "/api/cdrs/{cdr}",
        "/api/tokens",
        "/api/tokens/{uid}",
        "/api/locations",
        "/api/locations/{location}",
        "/api/tariffs",
        "/api/tariffs/{tariff}",
        "/api/partners",
        "/api/partners/{name}",
        "/api/sites",
        "/api/sites/{site}",
        "/api/audit",
        "/api/audit/{entry}",
    ]
    for path in read_paths:
        operation = spec["paths"][path]["get"]
        assert {"200", "400", "401"} <= set(operation["responses"]), path
        assert operation["responses"]["200"]["content"]["application/json"]["example"]
    names = {p["name"] for p in spec["paths"]["/api/transactions"]["get"]["parameters"]}
    assert names == {"charger", "state", "token", "since", "until", "billing", "limit", "cursor"}
    async with world.http.get(f"{world.server.api_url}/api/docs") as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
    assert all(f"<code>{p}</code>" in page for p in read_paths)
    # Self-contained: nothing to fetch from elsewhere (the server may have no internet).
    assert "<script" not in page and "<link" not in page and "src=" not in page
