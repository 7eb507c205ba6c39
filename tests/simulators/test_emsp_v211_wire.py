"""The eMSP simulator speaking OCPI 2.1.1, against a CPO written from the 2.1.1 spec
(tests/simulators/fake_cpo_211.py), not our server: the handshake (raw token header, one party,
no roles, no routing headers), its own versions and details, pulls of every module, pushes
received, tokens pushed, the four commands and their results, real-time authorization. Every
object either side sends is checked with tests/e2e/ocpi_rules_211.py."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from simulators.cli import main
from simulators.emsp import EmspSimulator, Party
from simulators.errors import EmspError, OptionsError
from tests.e2e import ocpi_rules_211 as rules
from tests.e2e.test_ocpi_rules_211 import cdr, evse, location, session, tariff

from .fake_cpo_211 import FakeCpo211

ROUTING = {
    "ocpi-from-country-code",
    "ocpi-from-party-id",
    "ocpi-to-country-code",
    "ocpi-to-party-id",
}


@pytest.fixture
async def cpo() -> AsyncIterator[FakeCpo211]:
    fake = FakeCpo211()
    fake.objects = {
        "locations": [dict(location(), id=f"LOC{n}") for n in range(3)],
        "tariffs": [tariff()],
        "sessions": [session()],
        "cdrs": [cdr()],
    }
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    sim = EmspSimulator(Party("NL", "EMS", "Test eMSP"), version="2.1.1")
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def registered(cpo: FakeCpo211, emsp: EmspSimulator) -> EmspSimulator:
    await emsp.register(cpo.versions_url, cpo.token_a)
    return emsp


def test_the_version_is_2_2_1_unless_chosen() -> None:
    assert EmspSimulator().version == "2.2.1"
    assert EmspSimulator(version="2.1.1").version_path == "/ocpi/emsp/2.1.1"
    with pytest.raises(OptionsError, match=r"one of 2\.2\.1, 2\.1\.1, not 2\.0"):
        EmspSimulator(version="2.0")


async def test_registers_in_2_1_1(cpo: FakeCpo211, emsp: EmspSimulator) -> None:
    registration = await emsp.register(cpo.versions_url, cpo.token_a)

    assert cpo.problems == []
    assert registration.cpo == ("DE", "CPO") and registration.name == "Fake CPO"
    assert registration.token_c == "token-c" and cpo.token_b == registration.token_b
    assert registration.endpoint("tariffs", "SENDER") == f"{cpo.base}/2.1.1/tariffs"
    assert registration.endpoint("tokens", "RECEIVER") == f"{cpo.base}/2.1.1/tokens"
    post = next(s for s in cpo.seen if s.method == "POST")
    assert post.body == {
        "token": registration.token_b,
        "url": emsp.versions_url,
        "business_details": {"name": "Test eMSP"},
        "party_id": "EMS",
        "country_code": "NL",
    }
    # Token A as it is (2.1.1 does not Base64-encode), and no 2.2.1 headers at all.
    for seen in cpo.seen:
        assert seen.headers["Authorization"] == f"Token {cpo.token_a}"
        assert not ROUTING & {h.lower() for h in seen.headers}
        assert "X-Request-ID" not in seen.headers
    # What the CPO read back from us: 2.1.1 only, endpoints without roles.
    assert rules.versions_errors_211(cpo.their_versions) == []
    assert cpo.their_versions == [{"version": "2.1.1", "url": emsp.url("/ocpi/emsp/2.1.1")}]
    assert cpo.their_details is not None
    assert rules.version_details_errors_211(cpo.their_details) == []
    assert {e["identifier"] for e in cpo.their_details["endpoints"]} == {
        "credentials",
        "locations",
        "sessions",
        "cdrs",
        "tariffs",
        "tokens",
        "commands",
    }


async def test_a_cpo_without_2_1_1_is_one_line(emsp: EmspSimulator) -> None:
    cpo = FakeCpo211(offered=("2.2.1",))
    await cpo.start()
    try:
        with pytest.raises(EmspError, match=r"offers OCPI 2\.2\.1; the simulator speaks 2\.1\.1"):
            await emsp.register(cpo.versions_url, cpo.token_a)
    finally:
        await cpo.stop()
    assert emsp.registration is None


async def test_pulls_every_module_in_2_1_1(cpo: FakeCpo211, registered: EmspSimulator) -> None:
    pages = [page async for page in registered.pages("locations", limit=2)]
    assert [len(p.objects) for p in pages] == [2, 1] and pages[0].total == 3
    locations = await registered.pull("locations", limit=2)
    assert [loc["id"] for loc in locations] == ["LOC0", "LOC1", "LOC2"]
    # 2.1.1 objects name no party: they are kept as the CPO's.
    assert sorted(registered.stores.locations) == [("DE", "CPO", f"LOC{n}") for n in range(3)]
    for module, check in (
        ("locations", rules.location_errors_211),
        ("tariffs", rules.tariff_errors_211),
        ("sessions", rules.session_errors_211),
        ("cdrs", rules.cdr_errors_211),
    ):
        pulled = await registered.pull(module)
        assert pulled and all(check(obj) == [] for obj in pulled), module
    assert registered.stores.cdrs[("DE", "CPO", "CDR1")]["total_cost"] == 2.25
    gets = [s for s in cpo.seen if s.method == "GET" and "/2.1.1/" in s.path]
    assert gets and all(s.headers["Authorization"] == "Token token-c" for s in gets)
    assert not any(ROUTING & {h.lower() for h in s.headers} for s in gets)


class Cpo:
    """Calls the simulator as the 2.1.1 CPO would: token B as it is, no routing headers."""

    def __init__(self, emsp: EmspSimulator, http: aiohttp.ClientSession) -> None:
        assert emsp.registration is not None
        self.base = emsp.url("/ocpi/emsp/2.1.1")
        self.token = emsp.registration.token_b
        self.http = http

    async def __call__(
        self, method: str, path: str, body: Any = None, *, raw: bool = True
    ) -> tuple[int, dict[str, Any], Any]:
        token = self.token if raw else base64.b64encode(self.token.encode()).decode()
        headers = {"Authorization": f"Token {token}"}
        url = path if path.startswith("http") else self.base + path
        async with self.http.request(method, url, json=body, headers=headers) as response:
            answer = await response.json()
            assert rules.response_errors_211(answer) == [], answer
            assert not ROUTING & {h.lower() for h in response.headers}
            return response.status, answer, response.headers


@pytest.fixture
async def call(registered: EmspSimulator) -> AsyncIterator[Cpo]:
    async with aiohttp.ClientSession() as http:
        yield Cpo(registered, http)


async def test_takes_2_1_1_pushes(call: Cpo, registered: EmspSimulator) -> None:
    status, _, _ = await call("PUT", "/locations/DE/CPO/LOC1", dict(location(), id="LOC1"))
    assert status == 201
    # A 2.1.1 PATCH carries only what changed: no last_updated needed.
    status, answer, _ = await call("PATCH", "/locations/DE/CPO/LOC1/EVSE-1", {"status": "CHARGING"})
    assert (status, answer["status_code"]) == (200, 1000)
    held = registered.stores.locations[("DE", "CPO", "LOC1")]
    assert held["evses"][0]["status"] == "CHARGING"
    status, _, _ = await call("PUT", "/locations/DE/CPO/LOC1/EVSE-2", dict(evse(), uid="EVSE-2"))
    assert status == 201 and [e["uid"] for e in held["evses"]] == ["EVSE-1", "EVSE-2"]

    active = dict(session(), status="ACTIVE")
    del active["end_datetime"]
    status, _, _ = await call("PUT", "/sessions/DE/CPO/S1", active)
    assert status == 201
    periods = [
        {"start_date_time": "2026-12-05T09:10:00Z", "dimensions": [{"type": "ENERGY", "volume": 9}]}
    ]
    patch = {"kwh": 9.0, "total_cost": 2.7, "charging_periods": periods}
    status, _, _ = await call("PATCH", "/sessions/DE/CPO/S1", patch)
    held_session = registered.stores.sessions[("DE", "CPO", "S1")]
    assert status == 200 and held_session["kwh"] == 9.0
    # 2.1.1 has no rule of its own for periods in a PATCH: the list given replaces the held one.
    assert held_session["charging_periods"] == periods
    assert rules.session_errors_211(held_session) == []

    # A 2.1.1 CDR names no party: it is the pushing CPO's; Location says where to GET it.
    status, _, headers = await call("POST", "/cdrs", cdr())
    assert status == 201 and headers["Location"].endswith("/ocpi/emsp/2.1.1/cdrs/DE/CPO/CDR1")
    status, answer, _ = await call("GET", headers["Location"])
    assert status == 200 and answer["data"]["auth_id"] == "DE-ABC-C12345678-X"

    status, _, _ = await call("PUT", "/tariffs/DE/CPO/T1", tariff())
    assert status == 201
    status, _, _ = await call("DELETE", "/tariffs/DE/CPO/T1")
    assert status == 200 and ("DE", "CPO", "T1") not in registered.stores.tariffs

    lines = [p.line for p in registered.received if p.module != "credentials"]
    assert lines[:3] == [
        "PUT locations LOC1 Berlin 1 EVSE(s)",
        "PATCH locations LOC1/EVSE-1 status=CHARGING",
        "PUT locations LOC1/EVSE-2 status=AVAILABLE",
    ]
    assert "POST cdrs CDR1 7.500 kWh 2.25 EUR" in lines
    # 2.1.1 sends the token as it is: a Base64-encoded one is another, unknown token.
    status, answer, _ = await call("GET", "/tariffs/DE/CPO/NOPE", raw=False)
    assert (status, answer["status_code"]) == (401, 2000)
    status, _, _ = await call("GET", "/tariffs/DE/CPO/NOPE")
    assert status == 404
    call.token = "wrong"
    status, answer, _ = await call("GET", "/locations/DE/CPO/LOC1")
    assert (status, answer["status_code"]) == (401, 2000)


async def test_pushes_tokens_in_2_1_1(cpo: FakeCpo211, emsp: EmspSimulator) -> None:
    emsp.add_token("04A1B2C3", "ALLOWED")
    emsp.add_token("APP1", "NEVER", type="OTHER")
    with pytest.raises(OptionsError, match=r"a 2\.1\.1 token type is OTHER or RFID"):
        emsp.add_token("APP2", type="APP_USER")
    await emsp.register(cpo.versions_url, cpo.token_a)

    sent = await emsp.push_tokens()
    assert [(t.method, t.uid, t.http_status) for t in sent] == [
        ("PUT", "04A1B2C3", 201),
        ("PUT", "APP1", 201),
    ]
    assert cpo.problems == []
    held = cpo.tokens[("NL", "EMS", "04A1B2C3")]
    assert held["auth_id"] == "NL-EMS-C04A1B2C3" and held["whitelist"] == "ALLOWED"
    assert "country_code" not in held and "contract_id" not in held
    puts = [s for s in cpo.seen if s.method == "PUT"]
    # No ?type= in 2.1.1's tokens URL.
    assert [s.path for s in puts] == [
        "/ocpi/cpo/2.1.1/tokens/NL/EMS/04A1B2C3",
        "/ocpi/cpo/2.1.1/tokens/NL/EMS/APP1",
    ]
    patched = await emsp.patch_token("04A1B2C3", {"valid": False})
    assert patched.http_status == 200 and cpo.tokens[("NL", "EMS", "04A1B2C3")]["valid"] is False
    assert (await emsp.token_at_cpo("04A1B2C3"))["valid"] is False
    assert cpo.problems == []


async def test_serves_its_2_1_1_tokens_and_authorizes(call: Cpo, registered: EmspSimulator) -> None:
    registered.add_token("04A1B2C3", "NEVER")
    status, answer, headers = await call("GET", "/tokens?limit=10")
    assert status == 200 and headers["X-Total-Count"] == "1"
    assert [rules.token_errors_211(t) for t in answer["data"]] == [[]]

    where = {"location_id": "LOC1", "evse_uids": ["EVSE-1"]}
    status, answer, _ = await call("POST", "/tokens/04A1B2C3/authorize", where)
    assert status == 200 and rules.authorization_info_errors_211(answer["data"]) == []
    assert answer["data"] == {"allowed": "ALLOWED", "location": where}
    status, answer, _ = await call("POST", "/tokens/04A1B2C3/authorize?type=APP_USER")
    assert (status, answer["status_code"]) == (200, 2001)
    status, answer, _ = await call("POST", "/tokens/NOPE/authorize")
    assert (status, answer["status_code"]) == (404, 2004)


async def test_the_four_commands_in_2_1_1(cpo: FakeCpo211, emsp: EmspSimulator) -> None:
    emsp.add_token("04A1B2C3")
    await emsp.register(cpo.versions_url, cpo.token_a)

    started = await emsp.start_session("04A1B2C3", "LOC1", "EVSE-1")
    assert started.response is not None and started.response.result == "ACCEPTED"
    assert started.response.timeout is None
    assert started.line == f"command START_SESSION {started.id}: ACCEPTED"
    result = await emsp.command_result(started.id, 5)
    assert result.result == "ACCEPTED"

    stopped = await emsp.stop_session("S1")
    reserved = await emsp.reserve_now("04A1B2C3", "LOC1", "42", evse_uid="EVSE-1")
    unlocked = await emsp.unlock_connector("LOC1", "EVSE-1", "1")
    for sent in (stopped, reserved, unlocked):
        assert (await emsp.command_result(sent.id, 5)).result == "ACCEPTED"
    assert cpo.problems == []
    bodies = dict(cpo.commands)
    assert bodies["START_SESSION"] == {
        "response_url": emsp.url(f"/ocpi/emsp/2.1.1/commands/START_SESSION/{started.id}"),
        "token": emsp.token("04A1B2C3"),
        "location_id": "LOC1",
        "evse_uid": "EVSE-1",
    }
    assert bodies["RESERVE_NOW"]["reservation_id"] == 42
    assert bodies["STOP_SESSION"] == {"response_url": stopped.response_url, "session_id": "S1"}

    with pytest.raises(EmspError, match=r"2\.1\.1 has no CANCEL_RESERVATION"):
        await emsp.cancel_reservation("42")
    with pytest.raises(EmspError, match="names no connector"):
        await emsp.start_session("04A1B2C3", "LOC1", "EVSE-1", "1")
    with pytest.raises(EmspError, match="reservation_id is a whole number"):
        await emsp.reserve_now("04A1B2C3", "LOC1", "R-1")


async def test_command_results_in_2_1_1_values(cpo: FakeCpo211, emsp: EmspSimulator) -> None:
    emsp.add_token("04A1B2C3")
    await emsp.register(cpo.versions_url, cpo.token_a)
    # The result is a CommandResponseType: TIMEOUT is one, a bare value is taken too.
    cpo.command_result = "TIMEOUT"
    sent = await emsp.unlock_connector("LOC1", "EVSE-1", "1")
    assert (await emsp.command_result(sent.id, 5)).result == "TIMEOUT"
    # 2.2.1's CommandResultType values are not 2.1.1's: refused with 2001.
    cpo.command_result = {"result": "EVSE_OCCUPIED"}
    sent = await emsp.unlock_connector("LOC1", "EVSE-1", "1")
    with pytest.raises(EmspError, match="no result"):
        await emsp.command_result(sent.id, 0.5)
    refused = [p for p in emsp.received if p.module == "commands" and not p.accepted]
    assert refused[-1].status_code == 2001 and "EVSE_OCCUPIED" in refused[-1].text

    cpo.command_answer = "REJECTED"
    sent = await emsp.stop_session("S9")
    assert sent.response is not None and sent.response.result == "REJECTED"


def test_the_command_line_takes_the_version() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["emsp", "--help"])
    assert "--version [2.2.1|2.1.1]" in result.output
    result = runner.invoke(
        main,
        [
            "emsp",
            "--versions-url",
            "http://127.0.0.1:9/v",
            "--token-a",
            "a",
            "--version",
            "2.1.1",
            "--command",
            "CANCEL_RESERVATION",
            "--reservation",
            "1",
        ],
    )
    assert result.exit_code == 2 and "OCPI 2.1.1 has no CANCEL_RESERVATION" in result.output


async def test_the_cpo_renews_and_ends_its_2_1_1_credentials(
    cpo: FakeCpo211, call: Cpo, registered: EmspSimulator
) -> None:
    old_b = call.token
    renewed = {
        "token": "token-c",
        "url": cpo.versions_url,
        "business_details": {"name": "Fake CPO renamed"},
        "party_id": "CPO",
        "country_code": "DE",
    }
    status, answer, _ = await call("PUT", "/credentials", renewed)
    assert status == 200 and rules.credentials_errors_211(answer["data"]) == []
    assert answer["data"]["token"] != old_b and "roles" not in answer["data"]
    assert registered.registration is not None
    assert registered.registration.name == "Fake CPO renamed"
    call.token = answer["data"]["token"]
    status, answer, _ = await call("GET", "/credentials")
    assert answer["data"]["party_id"] == "EMS" and answer["data"]["token"] == call.token
    status, _, _ = await call("DELETE", "/credentials")
    assert status == 200 and registered.registration is None
