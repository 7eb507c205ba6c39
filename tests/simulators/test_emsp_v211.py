"""The eMSP simulator in OCPI 2.1.1 (`EmspSimulator(version="2.1.1")`, `csms-sim emsp --version
2.1.1`) against the real CSMS: registration both ways in 2.1.1 (the simulator with us, and we
with the simulator), every module pulled in 2.1.1 and checked with tests/e2e/ocpi_rules_211.py,
its tokens pushed and read back in 2.1.1, a session run by its 2.1.1 commands on a simulated
1.6 charger, and the command line registering and pulling in 2.1.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.app import CsmsApp
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.partners import InterfaceRole, PartnerStatus, Role, TokenEncoding
from csms.services.locations import LocationService
from ocpi_cpo.client import OcpiClient
from ocpi_cpo.context import OcpiSettings
from ocpi_cpo.registration import Registrar
from simulators.emsp import EmspSimulator, Party
from simulators.errors import EmspError
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from tests.e2e import ocpi_rules_211 as rules
from tests.e2e.conftest import Running, make_config
from tests.e2e.sim import until

LOCATION = "LOC-SIM211"
CP_ID = "SIM211-16"
EVSE = f"{CP_ID}*1"
MODULES = {"credentials", "locations", "sessions", "cdrs", "tariffs", "tokens", "commands"}
TARIFF = {
    "id": "T-SIM211",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 21, "step_size": 1}]}
    ],
}


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Running]:
    config = make_config(
        tmp_path / "csms.db",
        ocpp={"call_timeout": 5.0},
        ocpi={"session_update_interval": 1.0},
    )
    app = CsmsApp(config)
    await app.start()
    locations = LocationService(app.db, utc_now)
    await locations.add(
        Location(
            id=LOCATION,
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
    await locations.link(LOCATION, CP_ID, None)
    await app.billing.import_tariffs(TARIFF)
    await app.billing.assign("T-SIM211", location=LOCATION)
    yield Running(app, config, tmp_path / "csms.db")
    await app.stop()


def versions_url(cpo: Running) -> str:
    return f"{cpo.ocpi_url}/ocpi/versions"


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    sim = EmspSimulator(Party("NL", "EMS", "Sim eMSP 211"), version="2.1.1")
    await sim.start()
    yield sim
    await sim.stop()


async def _get(url: str, token: str) -> tuple[int, Any]:
    """A GET as a 2.1.1 party makes it: the token as it is."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Token {token}"}) as response,
    ):
        return response.status, await response.json()


async def test_registers_with_the_cpo_in_2_1_1(cpo: Running, emsp: EmspSimulator) -> None:
    invitation = await cpo.app.partners.add("sim211")
    registration = await emsp.register(versions_url(cpo), invitation.token_a)

    partner = await cpo.app.partners.get("sim211")
    assert partner.status is PartnerStatus.REGISTERED and partner.version == "2.1.1"
    assert partner.token_encoding is TokenEncoding.RAW
    assert [(r.role, r.party) for r in partner.roles] == [(Role.EMSP, "NL/EMS")]
    assert partner.roles[0].business_details == {"name": "Sim eMSP 211"}
    # Our 2.1.1 endpoints, kept with the role the CPO uses each in.
    stored = {(e.identifier, e.role) for e in partner.endpoints}
    for module in ("locations", "sessions", "cdrs", "tariffs", "commands"):
        assert (module, InterfaceRole.RECEIVER) in stored
    assert ("tokens", InterfaceRole.SENDER) in stored

    # The CPO's side as the simulator sees it: one party, 2.1.1 endpoints without roles.
    assert registration.cpo == ("NL", "CSM") and registration.name == "CSMS"
    assert {i for i, _, _ in registration.endpoints} == MODULES
    assert {r for _, r, _ in registration.endpoints} == {""}
    status, versions = await _get(versions_url(cpo), registration.token_c)
    assert status == 200 and rules.response_errors_211(versions) == []
    assert rules.versions_errors_211(versions["data"]) == []
    details_url = next(v["url"] for v in versions["data"] if v["version"] == "2.1.1")
    status, details = await _get(details_url, registration.token_c)
    assert rules.version_details_errors_211(details["data"]) == []
    credentials_url = registration.endpoint("credentials")
    assert credentials_url is not None
    status, mine = await _get(credentials_url, registration.token_c)
    assert status == 200 and rules.credentials_errors_211(mine["data"]) == []
    assert mine["data"]["token"] == registration.token_c
    assert (mine["data"]["country_code"], mine["data"]["party_id"]) == ("NL", "CSM")


async def test_the_cpo_registers_with_the_simulator_in_2_1_1(
    cpo: Running, emsp: EmspSimulator
) -> None:
    settings = OcpiSettings.from_config(cpo.config.ocpi, cpo.ocpi_url)
    async with aiohttp.ClientSession() as session:
        registrar = Registrar(
            cpo.app.partners, OcpiClient(session, timeout=5), settings.us, settings.required
        )
        partner = await registrar.register_with("sim-out", emsp.versions_url, emsp.invite())

    # The simulator offers 2.1.1 only and takes its token only as it is.
    assert partner.version == "2.1.1" and partner.token_encoding is TokenEncoding.RAW
    assert [(r.role, r.party) for r in partner.roles] == [(Role.EMSP, "NL/EMS")]
    registration = emsp.registration
    assert registration is not None and registration.cpo == ("NL", "CSM")
    assert partner.their_token == registration.token_b
    (taken,) = [p for p in emsp.received if p.module == "credentials"]
    assert taken.line == "POST credentials  the CPO registered with us"
    assert rules.credentials_errors_211(taken.body) == []
    # The token the CPO gave the simulator works: it pulls in 2.1.1.
    (tariff,) = await emsp.pull("tariffs")
    assert rules.tariff_errors_211(tariff) == [] and tariff["id"] == "T-SIM211"


@dataclass
class World:
    cpo: Running
    emsp: EmspSimulator
    cp: V16Charger

    async def running(self) -> Any:
        active = await self.cpo.staff.transactions(active_only=True, cp_id=CP_ID)
        return active[0] if active else None


@pytest.fixture
async def world(cpo: Running, emsp: EmspSimulator) -> AsyncIterator[World]:
    cp = V16Charger(
        ChargerOptions(
            url=cpo.url,
            charger_id=CP_ID,
            connectors=1,
            sessions=0,
            meter_interval=0.3,
            seed=5,
            response_timeout=10,
        )
    )
    task = asyncio.create_task(cp.run())
    invitation = await cpo.app.partners.add("sim211")
    await emsp.register(versions_url(cpo), invitation.token_a)

    async def published() -> bool:
        locations = await emsp.pull("locations")
        return EVSE in [e["uid"] for loc in locations for e in loc.get("evses", [])]

    await until(published, "the charger's EVSE published")
    yield World(cpo, emsp, cp)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()


async def test_tokens_pushed_in_2_1_1_are_what_the_cpo_holds(world: World) -> None:
    emsp = world.emsp
    emsp.add_token("SIMTAG01", "ALLOWED")
    emsp.add_token("SIMAPP01", "NEVER", type="OTHER")
    sent = await emsp.push_tokens()
    assert [(s.uid, s.http_status) for s in sent] == [("SIMTAG01", 201), ("SIMAPP01", 201)]
    held = await emsp.token_at_cpo("SIMTAG01")
    assert rules.token_errors_211(held) == []
    assert {k: held[k] for k in ("uid", "type", "auth_id", "whitelist", "valid")} == {
        "uid": "SIMTAG01",
        "type": "RFID",
        "auth_id": "NL-EMS-CSIMTAG01",
        "whitelist": "ALLOWED",
        "valid": True,
    }
    assert (await emsp.token_at_cpo("SIMAPP01", "OTHER"))["type"] == "OTHER"
    patched = await emsp.patch_token("SIMTAG01", {"valid": False})
    assert patched.http_status == 200
    assert (await emsp.token_at_cpo("SIMTAG01"))["valid"] is False
    # The charger presents the blocked card: the CPO knows it is not valid.
    answer = await world.cp.authorize("SIMTAG01")
    assert answer["idTagInfo"]["status"] != "Accepted"


async def test_a_session_by_2_1_1_commands_and_every_module_pulled(world: World) -> None:
    emsp = world.emsp
    emsp.add_token("SIMCMD01", "ALWAYS")
    await emsp.push_tokens()

    started = await emsp.start_session("SIMCMD01", LOCATION, EVSE)
    assert started.response is not None and started.response.result == "ACCEPTED"
    assert rules.command_errors_211("START_SESSION", started.request) == []
    assert (await emsp.command_result(started.id, 20)).result == "ACCEPTED"
    tx = await until(world.running, "the transaction the command started")
    assert tx.id_tag == "SIMCMD01"

    async def session() -> dict[str, Any] | None:
        for held in await emsp.pull("sessions"):
            if held["id"] == str(tx.id) and held["kwh"] > 0:
                return held
        return None

    active = await until(session, "the session charging in GET sessions")
    assert rules.session_errors_211(active) == []
    assert active["status"] == "ACTIVE" and active["auth_id"] == "NL-EMS-CSIMCMD01"
    assert [e["uid"] for e in active["location"]["evses"]] == [EVSE]

    stopped = await emsp.stop_session(str(tx.id))
    assert stopped.response is not None and stopped.response.result == "ACCEPTED"
    assert (await emsp.command_result(stopped.id, 20)).result == "ACCEPTED"
    again = await emsp.stop_session(str(tx.id) + "0")
    assert again.response is not None and again.response.result == "UNKNOWN_SESSION"

    async def cdrs() -> list[dict[str, Any]]:
        return await emsp.pull("cdrs")

    (cdr,) = await until(cdrs, "the CDR in GET cdrs", seconds=30)
    assert rules.cdr_errors_211(cdr) == []
    assert cdr["auth_id"] == "NL-EMS-CSIMCMD01" and cdr["total_energy"] > 0
    assert [t["id"] for t in cdr["tariffs"]] == ["T-SIM211"]
    # The CDR is kept as the CPO's (a 2.1.1 CDR names no party).
    assert ("NL", "CSM", cdr["id"]) in emsp.stores.cdrs
    (done,) = [s for s in await emsp.pull("sessions") if s["id"] == str(tx.id)]
    assert done["status"] == "COMPLETED" and rules.session_errors_211(done) == []

    locations = await emsp.pull("locations", limit=1)
    assert [loc["id"] for loc in locations] == [LOCATION]
    assert all(rules.location_errors_211(loc) == [] for loc in locations)
    (tariff,) = await emsp.pull("tariffs", limit=1)
    assert rules.tariff_errors_211(tariff) == []
    assert tariff["elements"][0]["price_components"][0]["price"] == 0.25

    # The other two 2.1.1 commands: answered with a CommandResponse of 2.1.1.
    unlock = await emsp.unlock_connector(LOCATION, EVSE, "1")
    assert unlock.response is not None and unlock.response.result == "ACCEPTED"
    reserve = await emsp.reserve_now("SIMCMD01", LOCATION, "7", evse_uid=EVSE)
    assert reserve.response is not None and reserve.response.result == "ACCEPTED"
    assert rules.command_errors_211("RESERVE_NOW", reserve.request) == []
    assert reserve.request["reservation_id"] == 7
    with pytest.raises(EmspError, match=r"HTTP 404 \(2003 unknown location"):
        await emsp.unlock_connector("NO-SUCH-LOC", EVSE, "1")


async def _command(*args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators",
        "emsp",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def test_the_command_line_registers_and_pulls_in_2_1_1(cpo: Running) -> None:
    invitation = await cpo.app.partners.add("cli211")
    proc = await _command(
        "--versions-url",
        versions_url(cpo),
        "--token-a",
        invitation.token_a,
        "--version",
        "2.1.1",
        "--party-id",
        "C21",
        "--pull",
        "locations,tariffs",
        "--token",
        "CLI211:ALWAYS",
        "--json",
    )
    assert proc.stdout is not None
    events: dict[str, dict[str, Any]] = {}
    try:
        async with asyncio.timeout(30):
            while "token_pushed" not in events:
                raw = await proc.stdout.readline()
                assert raw, "the simulator stopped early"
                event = json.loads(raw)
                events.setdefault(event["event"] + event.get("module", ""), event)
    finally:
        proc.terminate()
        await proc.wait()
    assert {e["role"] for e in events["registered"]["endpoints"]} == {""}
    (tariff,) = events["pulledtariffs"]["objects"]
    assert rules.tariff_errors_211(tariff) == []
    assert all(rules.location_errors_211(o) == [] for o in events["pulledlocations"]["objects"])
    assert events["token_pushed"]["http_status"] == 201
    partner = await cpo.app.partners.get("cli211")
    assert partner.version == "2.1.1"
    assert [(r.role, r.party) for r in partner.roles] == [(Role.EMSP, "NL/C21")]
