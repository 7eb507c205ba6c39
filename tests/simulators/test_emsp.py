"""The eMSP simulator against a real CSMS: it registers (the partner list shows its party),
pulls tariffs page by page, answers pushes to its Receiver endpoints as OCPI 2.2.1 says, and
`csms-sim emsp` runs as a command that stops cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.app import CsmsApp
from csms.core.partners import Direction, InterfaceRole, PartnerStatus, Role
from ocpi_cpo.client import OcpiClient
from ocpi_cpo.context import OcpiSettings
from ocpi_cpo.errors import OcpiError
from ocpi_cpo.registration import Registrar
from simulators.emsp import EmspSimulator, Party, Push
from simulators.errors import EmspError
from tests.e2e.conftest import Running, make_config

CPO = "NL/CSM"


def tariff(tariff_id: str, price: float) -> dict[str, object]:
    return {
        "id": tariff_id,
        "currency": "EUR",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": price, "vat": 21, "step_size": 1}]}
        ],
    }


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Running]:
    """A real CSMS with OCPI on port 0 (its advertised URLs follow the bound port)."""
    config = make_config(tmp_path / "csms.db")
    app = CsmsApp(config)
    await app.start()
    yield Running(app, config, tmp_path / "csms.db")
    await app.stop()


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    sim = EmspSimulator(Party("NL", "EMS", "Test eMSP"))
    await sim.start()
    yield sim
    await sim.stop()


def versions_url(cpo: Running) -> str:
    return f"{cpo.ocpi_url}/ocpi/versions"


async def registered(cpo: Running, emsp: EmspSimulator, name: str = "emsp") -> None:
    invitation = await cpo.app.partners.add(name)
    await emsp.register(versions_url(cpo), invitation.token_a)


async def test_registers_and_the_cpo_knows_its_party(cpo: Running, emsp: EmspSimulator) -> None:
    invitation = await cpo.app.partners.add("demo")
    registration = await emsp.register(versions_url(cpo), invitation.token_a)

    assert "/".join(registration.cpo) == CPO and registration.name == "CSMS"
    partner = await cpo.app.partners.get("demo")
    assert partner.status is PartnerStatus.REGISTERED
    assert partner.direction is Direction.INBOUND
    assert [(r.role, r.party) for r in partner.roles] == [(Role.EMSP, "NL/EMS")]
    assert partner.roles[0].business_details == {"name": "Test eMSP"}
    assert partner.versions_url == emsp.versions_url
    offered = {(e.identifier, e.role) for e in partner.endpoints}
    for module in ("locations", "sessions", "cdrs", "tariffs"):
        assert (module, InterfaceRole.RECEIVER) in offered
    # Token A is spent; token C works; the simulator refuses a second registration.
    async with EmspSimulator() as other:
        with pytest.raises(EmspError, match="HTTP 401"):
            await other.register(versions_url(cpo), invitation.token_a)
    with pytest.raises(EmspError, match="already registered"):
        await emsp.register(versions_url(cpo), invitation.token_a)


async def test_a_bad_token_a_is_one_line_and_keeps_nothing(
    cpo: Running, emsp: EmspSimulator
) -> None:
    with pytest.raises(EmspError, match=r"^GET http://\S+/ocpi/versions: HTTP 401 \(2000"):
        await emsp.register(versions_url(cpo), "not-a-token")
    assert emsp.registration is None
    with pytest.raises(EmspError, match="cannot connect"):
        await emsp.register("http://127.0.0.1:9/ocpi/versions", "x")


async def test_pulls_tariffs_one_per_page_following_link(cpo: Running, emsp: EmspSimulator) -> None:
    for n in range(3):
        await cpo.app.billing.import_tariffs(tariff(f"T{n}", 0.2 + n / 10))
    await registered(cpo, emsp)

    pages = [page async for page in emsp.pages("tariffs", limit=1)]
    assert [len(p.objects) for p in pages] == [1, 1, 1]
    assert [p.total for p in pages] == [3, 3, 3]
    assert "limit=1" in pages[0].url and "offset=2" in pages[2].url

    pulled = await emsp.pull("tariffs", limit=1)
    assert [t["id"] for t in pulled] == ["T0", "T1", "T2"]
    assert sorted(emsp.stores.tariffs) == [("NL", "CSM", f"T{n}") for n in range(3)]
    assert [t["id"] for t in await emsp.pull("tariffs")] == ["T0", "T1", "T2"]

    # Whatever other list the CPO offers pulls the same way, to the end.
    registration = emsp.registration
    assert registration is not None
    for module in ("locations", "sessions", "cdrs"):
        if registration.endpoint(module, "SENDER") is not None:
            assert isinstance(await emsp.pull(module, limit=1), list)
    with pytest.raises(EmspError, match="offers no nosuchmodule Sender endpoint"):
        await emsp.pull("nosuchmodule")


async def test_unregister_tells_the_cpo(cpo: Running, emsp: EmspSimulator) -> None:
    await registered(cpo, emsp, "leaver")
    await emsp.unregister()
    assert emsp.registration is None
    assert (await cpo.app.partners.get("leaver")).status is PartnerStatus.UNREGISTERED


# --- the Receiver endpoints, called as the CPO would -----------------------------------------


class Caller:
    """Calls the simulator's endpoints with the token the CPO holds (token B)."""

    def __init__(self, emsp: EmspSimulator, session: aiohttp.ClientSession) -> None:
        assert emsp.registration is not None
        self.base = emsp.url("/ocpi/emsp/2.2.1")
        self.token = emsp.registration.token_b
        self.session = session

    async def __call__(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        encoded = base64.b64encode((token or self.token).encode()).decode()
        headers = {
            "Authorization": f"Token {encoded}",
            "X-Request-ID": "req-1",
            "X-Correlation-ID": "corr-1",
            "OCPI-from-country-code": "NL",
            "OCPI-from-party-id": "CSM",
            "OCPI-to-country-code": "NL",
            "OCPI-to-party-id": "EMS",
        }
        url = path if path.startswith("http") else self.base + path
        async with self.session.request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json(), response.headers


@pytest.fixture
async def call(cpo: Running, emsp: EmspSimulator) -> AsyncIterator[Caller]:
    await registered(cpo, emsp)
    async with aiohttp.ClientSession() as session:
        yield Caller(emsp, session)


def evse(uid: str, status: str = "AVAILABLE") -> dict[str, Any]:
    return {
        "uid": uid,
        "evse_id": "NL*CSM*E" + uid.replace("*", ""),
        "status": status,
        "connectors": [
            {
                "id": "1",
                "standard": "IEC_62196_T2",
                "format": "SOCKET",
                "power_type": "AC_3_PHASE",
                "max_voltage": 230,
                "max_amperage": 32,
                "last_updated": "2025-01-01T10:00:00Z",
            }
        ],
        "last_updated": "2025-01-01T10:00:00Z",
    }


def location(location_id: str = "LOC1") -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CSM",
        "id": location_id,
        "publish": True,
        "address": "Museumplein 6",
        "city": "Amsterdam",
        "country": "NLD",
        "coordinates": {"latitude": "52.357", "longitude": "4.881"},
        "time_zone": "Europe/Amsterdam",
        "evses": [evse("CP1*1")],
        "last_updated": "2025-01-01T10:00:00Z",
    }


def mine(emsp: EmspSimulator, module: str, target: str) -> list[Push]:
    return [p for p in emsp.received if p.module == module and p.target == target]


async def test_locations_put_patch_get(call: Caller, emsp: EmspSimulator) -> None:
    status, body, headers = await call("PUT", "/locations/NL/CSM/LOC1", location())
    assert (status, body["status_code"]) == (201, 1000) and "timestamp" in body
    assert headers["X-Request-ID"] == "req-1" and headers["X-Correlation-ID"] == "corr-1"
    assert headers["OCPI-from-party-id"] == "EMS" and headers["OCPI-to-party-id"] == "CSM"
    status, _, _ = await call("PUT", "/locations/NL/CSM/LOC1", location())
    assert status == 200  # it existed: replaced

    patch = {"status": "CHARGING", "last_updated": "2025-01-01T11:00:00Z"}
    status, body, _ = await call("PATCH", "/locations/NL/CSM/LOC1/CP1*1", patch)
    assert (status, body["status_code"]) == (200, 1000)
    held = emsp.stores.locations[("NL", "CSM", "LOC1")]
    assert held["evses"][0]["status"] == "CHARGING"
    assert held["last_updated"] == "2025-01-01T11:00:00Z"  # the parent follows
    assert held["evses"][0]["connectors"][0]["standard"] == "IEC_62196_T2"  # untouched

    # An EVSE and a connector of their own; trailing slash tolerated; percent-encoding read.
    status, _, _ = await call("PUT", "/locations/NL/CSM/LOC1/CP2%2A1/", evse("CP2*1"))
    assert status == 201
    connector = dict(evse("CP2*1")["connectors"][0], id="2", last_updated="2025-01-02T00:00:00Z")
    status, _, _ = await call("PUT", "/locations/NL/CSM/LOC1/CP2*1/2", connector)
    assert status == 201
    assert held["last_updated"] == "2025-01-02T00:00:00Z"
    _, body, _ = await call("GET", "/locations/NL/CSM/LOC1/CP2*1")
    assert [c["id"] for c in body["data"]["connectors"]] == ["1", "2"]
    _, body, _ = await call("GET", "/locations/NL/CSM/LOC1/CP1*1/1")
    assert body["data"]["power_type"] == "AC_3_PHASE"

    lines = [p.line for p in mine(emsp, "locations", "LOC1/CP1*1")]
    assert lines == ["PATCH locations LOC1/CP1*1 status=CHARGING"]
    assert mine(emsp, "locations", "LOC1")[0].line == "PUT locations LOC1 Amsterdam 1 EVSE(s)"


async def test_locations_refusals(call: Caller, emsp: EmspSimulator) -> None:
    status, body, _ = await call("GET", "/locations/NL/CSM/NOPE")
    assert (status, body["status_code"]) == (404, 2003)
    status, body, _ = await call("PUT", "/locations/NL/CSM/NOPE/CP1*1", evse("CP1*1"))
    assert (status, body["status_code"]) == (404, 2003)
    status, body, _ = await call("PUT", "/locations/NL/CSM/OTHER", location("LOC1"))
    assert (status, body["status_code"]) == (200, 2001) and "differs" in body["status_message"]
    await call("PUT", "/locations/NL/CSM/LOC1", location())
    status, body, _ = await call("PATCH", "/locations/NL/CSM/LOC1/CP1*1", {"status": "BLOCKED"})
    assert (status, body["status_code"]) == (200, 2001)
    assert "last_updated" in body["status_message"]
    patch = {"status": "BLOCKED", "last_updated": "2025-01-01T11:00:00Z"}
    status, body, _ = await call("PATCH", "/locations/NL/CSM/LOC1/NOPE", patch)
    assert (status, body["status_code"]) == (404, 2000)
    # A party the CPO did not register is not its to push.
    status, body, _ = await call("PUT", "/locations/DE/XYZ/LOC1", location())
    assert status == 404 and body["status_code"] == 2000
    status, body, _ = await call("GET", "/tariffs/DE/XYZ/T1")
    assert status == 404 and "not a party" in body["status_message"]
    refused = [p for p in emsp.received if not p.accepted]
    assert refused and all("refused:" in p.line for p in refused)


async def test_sessions_put_then_patch_appends_periods(call: Caller, emsp: EmspSimulator) -> None:
    session = {
        "country_code": "NL",
        "party_id": "CSM",
        "id": "17",
        "start_date_time": "2025-01-01T10:00:00Z",
        "kwh": 0,
        "cdr_token": {"uid": "TAG1", "type": "RFID", "contract_id": "NL-EMS-C1"},
        "auth_method": "WHITELIST",
        "location_id": "LOC1",
        "evse_uid": "CP1*1",
        "connector_id": "1",
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": "2025-01-01T10:00:00Z",
    }
    status, body, _ = await call("PUT", "/sessions/NL/CSM/17", session)
    assert (status, body["status_code"]) == (201, 1000)
    period = {
        "start_date_time": "2025-01-01T10:00:00Z",
        "dimensions": [{"type": "ENERGY", "volume": 1.5}],
    }
    for n in range(2):
        patch = {
            "kwh": 1.5 * (n + 1),
            "charging_periods": [period],
            "total_cost": {"excl_vat": 0.5 * (n + 1), "incl_vat": 0.6 * (n + 1)},
            "last_updated": f"2025-01-01T10:0{n + 1}:00Z",
        }
        status, body, _ = await call("PATCH", "/sessions/NL/CSM/17", patch)
        assert (status, body["status_code"]) == (200, 1000)
    held = emsp.stores.sessions[("NL", "CSM", "17")]
    assert len(held["charging_periods"]) == 2 and held["kwh"] == 3.0
    assert held["cdr_token"]["uid"] == "TAG1"  # untouched by the PATCHes
    # A PATCH without periods keeps them; a PUT replaces them (none given: none kept).
    await call("PATCH", "/sessions/NL/CSM/17", {"status": "COMPLETED", "last_updated": "x"})
    assert len(held["charging_periods"]) == 2
    status, _, _ = await call("PUT", "/sessions/NL/CSM/17", session)
    assert status == 200 and emsp.stores.sessions[("NL", "CSM", "17")]["charging_periods"] == []
    _, body, _ = await call("GET", "/sessions/NL/CSM/17")
    assert body["data"]["status"] == "ACTIVE"
    status, body, _ = await call("PATCH", "/sessions/NL/CSM/99", {"last_updated": "x"})
    assert (status, body["status_code"]) == (404, 2000)

    lines = [p.line for p in mine(emsp, "sessions", "17")]
    assert lines[:3] == [
        "PUT sessions 17 ACTIVE 0.000 kWh",
        "PATCH sessions 17 ACTIVE 1.500 kWh 0.50 EUR +1 period(s)",
        "PATCH sessions 17 ACTIVE 3.000 kWh 1.00 EUR +1 period(s)",
    ]


async def test_cdrs_post_answers_created_with_location(call: Caller, emsp: EmspSimulator) -> None:
    cdr = {
        "country_code": "NL",
        "party_id": "CSM",
        "id": "NL-CSM-C0001",
        "currency": "EUR",
        "total_energy": 12.5,
        "total_cost": {"excl_vat": 12.34, "incl_vat": 14.93},
        "last_updated": "2025-01-01T12:00:00Z",
    }
    status, body, headers = await call("POST", "/cdrs", cdr)
    assert (status, body["status_code"]) == (201, 1000)
    where = headers["Location"]
    assert where.startswith("http://127.0.0.1:") and where.endswith("/cdrs/NL/CSM/NL-CSM-C0001")
    status, body, _ = await call("GET", where)
    assert (status, body["data"]) == (200, cdr)
    # The same CDR again (a retried push) is fine; a different one under its id is not.
    status, body, _ = await call("POST", "/cdrs/", cdr)
    assert (status, body["status_code"]) == (200, 1000)
    status, body, _ = await call("POST", "/cdrs", {**cdr, "total_energy": 1})
    assert (status, body["status_code"]) == (200, 2001)
    status, body, _ = await call("GET", "/cdrs/NL/CSM/NOPE")
    assert status == 404
    status, body, _ = await call("POST", "/cdrs", {**cdr, "party_id": "XYZ"})
    assert (status, body["status_code"]) == (404, 2000)
    assert "NL/XYZ is not a party of this CPO" in mine(emsp, "cdrs", "NL-CSM-C0001")[-1].line
    assert mine(emsp, "cdrs", "NL-CSM-C0001")[0].line == (
        "POST cdrs NL-CSM-C0001 12.500 kWh 12.34 EUR"
    )


async def test_tariffs_put_delete(call: Caller, emsp: EmspSimulator) -> None:
    body_t = {**tariff("TP", 0.3), "country_code": "NL", "party_id": "CSM", "last_updated": "x"}
    status, body, _ = await call("PUT", "/tariffs/NL/CSM/TP", body_t)
    assert (status, body["status_code"]) == (201, 1000)
    _, body, _ = await call("GET", "/tariffs/NL/CSM/TP")
    assert body["data"]["currency"] == "EUR"
    status, body, _ = await call("DELETE", "/tariffs/NL/CSM/TP")
    assert (status, body["status_code"]) == (200, 1000)
    assert ("NL", "CSM", "TP") not in emsp.stores.tariffs
    status, body, _ = await call("DELETE", "/tariffs/NL/CSM/TP")
    assert (status, body["status_code"]) == (404, 2000)
    assert [p.line for p in mine(emsp, "tariffs", "TP")][:2] == [
        "PUT tariffs TP EUR 1 element(s)",
        "DELETE tariffs TP",
    ]


async def test_transport_rules(call: Caller, emsp: EmspSimulator) -> None:
    for token in ("wrong-token", ""):
        status, body, headers = await call("GET", "/tariffs/NL/CSM/TP", token=token or "x")
        assert (status, body["status_code"]) == (401, 2000)
        assert headers["WWW-Authenticate"] == "Token"
    # A raw (not Base64) token is understood too.
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Token {call.token}"}
        async with session.get(emsp.versions_url, headers=headers) as response:
            assert response.status == 200
        async with session.put(
            call.base + "/tariffs/NL/CSM/TP",
            data=b"{not json",
            headers={"Authorization": f"Token {call.token}"},
        ) as response:
            assert response.status == 400 and (await response.json())["status_code"] == 2001
    status, body, _ = await call("GET", "/nothing/here")
    assert (status, body["status_code"]) == (404, 2000)
    status, body, _ = await call("POST", "/tariffs/NL/CSM/TP", {})
    assert (status, body["status_code"]) == (405, 2000)
    _, body, _ = await call("GET", "/credentials")
    assert body["data"]["token"] == call.token and body["data"]["roles"][0]["party_id"] == "EMS"
    status, body, _ = await call("POST", "/credentials", {})
    assert status == 405


async def test_pushes_reach_the_hook_as_they_are_answered(cpo: Running) -> None:
    seen: list[str] = []
    sim = EmspSimulator(on_push=lambda p: seen.append(p.line))
    async with sim:
        await registered(cpo, sim)
        async with aiohttp.ClientSession() as session:
            call = Caller(sim, session)
            await call("PUT", "/tariffs/NL/CSM/H1", {**tariff("H1", 0.1), "last_updated": "x"})
    assert "PUT tariffs H1 EUR 1 element(s)" in seen


# --- csms-sim emsp as a command ------------------------------------------------------------


async def _line(stream: asyncio.StreamReader, what: str, seconds: float = 30.0) -> str:
    async with asyncio.timeout(seconds):
        while True:
            raw = await stream.readline()
            assert raw, f"output ended before {what}"
            line = raw.decode().strip()
            if what in line:
                return line


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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_command_registers_pulls_and_stops_on_signal(
    cpo: Running, sig: signal.Signals
) -> None:
    for n in range(2):
        await cpo.app.billing.import_tariffs(tariff(f"C{n}", 0.3))
    invitation = await cpo.app.partners.add("cli")
    proc = await _command(
        "--versions-url",
        versions_url(cpo),
        "--token-a",
        invitation.token_a,
        "--party-id",
        "CLI",
        "--pull",
        "tariffs",
        "--limit",
        "1",
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        listening = await _line(proc.stdout, "listening at")
        assert listening.startswith("eMSP NL/CLI listening at http://127.0.0.1:")
        line = await _line(proc.stdout, "registered")
        assert line.startswith(f'registered with CPO {CPO} "CSMS" at {versions_url(cpo)}')
        assert await _line(proc.stdout, "pulled") == "pulled 2 tariffs in 2 page(s)"
        partner = await cpo.app.partners.get("cli")
        assert partner.status is PartnerStatus.REGISTERED and partner.roles[0].party == "NL/CLI"
        proc.send_signal(sig)
        assert "eMSP stopped" in await _line(proc.stdout, "stopped")
        async with asyncio.timeout(15):
            code = await proc.wait()
        assert code == 0, await proc.stderr.read()
        assert b"Traceback" not in await proc.stderr.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_command_json_and_one_line_errors(cpo: Running) -> None:
    invitation = await cpo.app.partners.add("json")
    proc = await _command(
        "--versions-url",
        versions_url(cpo),
        "--token-a",
        invitation.token_a,
        "--json",
        "--unregister",
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = json.loads(await _line(proc.stdout, "listening"))
        assert first["event"] == "listening" and first["versions_url"].endswith("/versions")
        event = json.loads(await _line(proc.stdout, "registered"))
        assert event["cpo"] == CPO and any(e["identifier"] == "tariffs" for e in event["endpoints"])
        proc.send_signal(signal.SIGTERM)
        stopped = json.loads(await _line(proc.stdout, "stopped"))
        assert stopped == {"event": "stopped", "pushes": stopped["pushes"]}
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
        # --unregister: the CPO was told on the way out.
        assert (await cpo.app.partners.get("json")).status is PartnerStatus.UNREGISTERED
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    bad = await _command("--versions-url", versions_url(cpo), "--token-a", "nope")
    async with asyncio.timeout(30):
        _, err = await bad.communicate()
    assert bad.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("csms-sim: GET ") and "HTTP 401" in lines[0]


async def test_the_cpo_registers_with_the_simulator(cpo: Running, emsp: EmspSimulator) -> None:
    settings = OcpiSettings.from_config(cpo.config.ocpi, cpo.ocpi_url)
    async with aiohttp.ClientSession() as session:
        registrar = Registrar(
            cpo.app.partners, OcpiClient(session, timeout=5), settings.us, settings.required
        )
        token_a = emsp.invite()
        partner = await registrar.register_with("sim-out", emsp.versions_url, token_a)
        # Token A is spent: a second POST with it is refused.
        with pytest.raises(OcpiError, match="HTTP 401"):
            await registrar.register_with("again", emsp.versions_url, token_a)
    assert partner.version == "2.2.1" and [r.party for r in partner.roles] == ["NL/EMS"]
    assert emsp.registration is not None and "/".join(emsp.registration.cpo) == CPO
    assert [t["id"] for t in await emsp.pull("tariffs")] == []
