"""The OCPI tokens module (Receiver) and hub client info (Receiver) on a real server with
fake eMSPs and hubs: PUT/GET/PATCH rules, whose parties a partner may write for, the id token
mirror chargers see; pulling a partner's list after registration and with `csms ocpi tokens
sync` (Link and offset paging); `csms ocpi tokens list` and `csms ocpi parties`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from csms.storage import ocpi_tokens as token_repo
from csms.storage import tokens as id_token_repo
from ocpi_cpo.context import REGISTRY
from ocpi_cpo.token_sync import TOKEN_PULLER, TokenPuller
from tests.e2e.cli import cli_env, csms, ok, one_line_error
from tests.e2e.conftest import Running
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner, Seen, error
from tests.e2e.fake_partner import ok as ocpi_ok
from tests.e2e.raw import BOOT, call, open_raw

HUB_ROLE = {
    "role": "HUB",
    "country_code": "BE",
    "party_id": "HUB",
    "business_details": {"name": "A hub"},
}
NO_SENDERS = (("credentials", "SENDER"),)
WITH_TOKENS = (("credentials", "SENDER"), ("tokens", "SENDER"))


def token(uid: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": uid,
        "type": "RFID",
        "contract_id": f"DE-EMS-C{uid}",
        "issuer": "Fake eMSP",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2026-01-05T10:00:00Z",
    }
    base.update(changes)
    return base


@dataclass
class Peer:
    """A fake partner registered with the server, and our endpoints as it sees them."""

    fake: FakePartner
    partner_id: int
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        assert self.fake.our_token is not None
        return self.fake.our_token

    def url(self, module: str, *path: str, query: str = "") -> str:
        return "/".join([self.endpoints[module], *path]) + (f"?{query}" if query else "")

    async def call(
        self, method: str, url: str, body: Any = None, *, raw_body: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        status, answer, _ = await self.fake.call(method, url, self.token, body, raw_body=raw_body)
        return status, answer


async def until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def puller(server: Running) -> TokenPuller:
    assert server.app.ocpi_app is not None
    return server.app.ocpi_app[TOKEN_PULLER]


async def register(
    server: Running,
    name: str,
    role: dict[str, Any] = EMSP_ROLE,
    endpoints: tuple[tuple[str, str], ...] = NO_SENDERS,
    fakes: list[FakePartner] | None = None,
    **knobs: Any,
) -> Peer:
    fake = await FakePartner(roles=(role,), endpoints=endpoints, **knobs).start()
    if fakes is not None:
        fakes.append(fake)
    invitation = await server.app.partners.add(name)
    await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.ocpi_url}/ocpi/2.2.1", fake.our_token)
    ours = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    endpoints_ = {
        "tokens": ours[("tokens", "RECEIVER")],
        "hubclientinfo": ours[("hubclientinfo", "RECEIVER")],
    }
    return Peer(fake, invitation.partner.id, endpoints_)


@pytest.fixture
async def fakes() -> AsyncIterator[list[FakePartner]]:
    started: list[FakePartner] = []
    yield started
    for fake in started:
        await fake.stop()


@dataclass
class TokenList:
    """A fake eMSP's tokens Sender: its list in pages of at most `page` (or the caller's
    limit), with a Link to the next page unless `links` is off (then X-Total-Count only)."""

    tokens: list[Any]
    base: str = ""
    page: int = 2
    links: bool = True
    fail: bool = False
    gate: asyncio.Event | None = None
    asked: list[str] = field(default_factory=list)

    async def __call__(self, request: web.Request, sub: str, seen: Seen) -> web.StreamResponse:
        self.asked.append(request.query_string)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail or sub:
            return error(503, 3000, "tokens unavailable")
        offset = int(request.query.get("offset", "0"))
        limit = min(int(request.query.get("limit", str(self.page))), self.page)
        chunk = self.tokens[offset : offset + limit]
        headers = {"X-Total-Count": str(len(self.tokens)), "X-Limit": str(self.page)}
        following = offset + len(chunk)
        if self.links and following < len(self.tokens):
            headers["Link"] = f'<{self.base}?offset={following}&limit={limit}>; rel="next"'
        return ocpi_ok(chunk, headers=headers)


def served(fake: FakePartner, tokens: list[Any], **knobs: Any) -> TokenList:
    handler = TokenList(tokens, base=f"{fake.base}/2.2.1/tokens", **knobs)
    fake.sender_handlers["tokens"] = handler
    return handler


# --- the Receiver interface ------------------------------------------------------------------


async def test_put_creates_then_updates_and_get_returns_it(
    server: Running, fakes: list[FakePartner]
) -> None:
    emsp = await register(server, "emsp", fakes=fakes)
    url = emsp.url("tokens", "DE", "EMS", "CARD-1")
    body = token("CARD-1", visual_number="V-1", group_id="GROUP-1", extra="dropped")
    with capture_logs() as logs:
        status, answer = await emsp.call("PUT", url, body)
    assert (status, answer["status_code"]) == (201, 1000)
    (stored,) = [e for e in logs if e["event"] == "partner_token_stored"]
    assert stored["ocpi_partner"] == "emsp" and stored["ocpi_party"] == "DE*EMS"
    assert (stored["uid"], stored["created"], stored["source"]) == ("CARD-1", True, "push")

    status, answer = await emsp.call("PUT", url, {**body, "whitelist": "ALWAYS"})
    assert (status, answer["status_code"]) == (200, 1000)

    status, answer = await emsp.call("GET", url)
    assert (status, answer["status_code"]) == (200, 1000)
    expected = {k: v for k, v in body.items() if k != "extra"}
    assert answer["data"] == {**expected, "whitelist": "ALWAYS"}
    # The uid is a CiString: another case names the same token.
    status, answer = await emsp.call("GET", emsp.url("tokens", "de", "ems", "card-1"))
    assert status == 200 and answer["data"]["uid"] == "CARD-1"

    # The id token chargers see: owned by the party, with the whitelist rule.
    shown = (await csms(server, "tokens", "show", "CARD-1", "--json")).json()
    assert (shown["origin"], shown["status"], shown["parent"]) == ("DE*EMS", "Accepted", "GROUP-1")
    async with server.app.db.read() as conn:
        mirror = await id_token_repo.get(conn, "CARD-1")
    assert mirror is not None and mirror.whitelist == "ALWAYS" and mirror.type == "ISO14443"


async def test_type_defaults_to_rfid_and_is_part_of_the_key(
    server: Running, fakes: list[FakePartner]
) -> None:
    emsp = await register(server, "emsp", fakes=fakes)
    rfid = emsp.url("tokens", "DE", "EMS", "U1")
    app = emsp.url("tokens", "DE", "EMS", "U1", query="type=APP_USER")
    assert (await emsp.call("PUT", rfid, token("U1", contract_id="C-RFID")))[0] == 201
    status, answer = await emsp.call("PUT", app, token("U1", type="APP_USER", contract_id="C-APP"))
    assert (status, answer["status_code"]) == (201, 1000)  # another token, not an update
    _, answer = await emsp.call("GET", rfid)
    assert (answer["data"]["type"], answer["data"]["contract_id"]) == ("RFID", "C-RFID")
    _, answer = await emsp.call("GET", app)
    assert (answer["data"]["type"], answer["data"]["contract_id"]) == ("APP_USER", "C-APP")
    status, answer = await emsp.call(
        "GET", emsp.url("tokens", "DE", "EMS", "U1", query="type=OTHER")
    )
    assert (status, answer["status_code"]) == (404, 2004)
    # A body of another type than the URL's (RFID when it names none) is refused.
    status, answer = await emsp.call("PUT", rfid, token("U1", type="APP_USER"))
    assert (status, answer["status_code"]) == (200, 2001)
    assert "type APP_USER" in answer["status_message"] and "?type=" in answer["status_message"]
    status, answer = await emsp.call(
        "PUT", emsp.url("tokens", "DE", "EMS", "U1", query="type=X"), token("U1")
    )
    assert answer["status_code"] == 2001 and "type (URL)" in answer["status_message"]
    async with server.app.db.read() as conn:
        stored, total = await token_repo.page(conn)
    assert total == 2 and {(t.uid, t.type) for t in stored} == {("U1", "RFID"), ("U1", "APP_USER")}


async def test_url_and_body_must_agree(server: Running, fakes: list[FakePartner]) -> None:
    emsp = await register(
        server,
        "emsp",
        role={**EMSP_ROLE, "party_id": "EMS"},
        fakes=fakes,
    )
    url = emsp.url("tokens", "DE", "EMS", "CARD-1")
    for body, text in [
        (token("CARD-2"), "uid"),
        (token("CARD-1", party_id="EM2"), "party DE*EM2, the URL names DE*EMS"),
        (token("CARD-1", country_code="NL"), "party NL*EMS"),
    ]:
        status, answer = await emsp.call("PUT", url, body)
        assert (status, answer["status_code"]) == (200, 2001), body
        assert text in answer["status_message"]
    async with server.app.db.read() as conn:
        assert (await token_repo.page(conn))[1] == 0


async def test_invalid_bodies_are_2001_naming_the_field(
    server: Running, fakes: list[FakePartner]
) -> None:
    emsp = await register(server, "emsp", fakes=fakes)
    url = emsp.url("tokens", "DE", "EMS", "CARD-1")
    cases = [
        ({k: v for k, v in token("CARD-1").items() if k != "issuer"}, "issuer: is required"),
        (token("CARD-1", whitelist="SOMETIMES"), "whitelist: must be one of ALWAYS"),
        (token("CARD-1", valid="yes"), "valid: must be true or false"),
        (token("CARD-1", contract_id="C" * 37), "contract_id: must be at most 36"),
        (token("CARD-1", last_updated="yesterday"), "last_updated: must be an OCPI DateTime"),
        ([token("CARD-1")], "must be a JSON object"),
    ]
    for body, text in cases:
        status, answer = await emsp.call("PUT", url, body)
        assert (status, answer["status_code"]) == (200, 2001), body
        assert text in answer["status_message"], answer
    status, answer = await emsp.call("PUT", url, raw_body=b'{"uid": ')
    assert (status, answer["status_code"]) == (400, 2001)
    status, answer = await emsp.call(
        "PUT", emsp.url("tokens", "DE", "EMS", "U" * 37), token("U" * 37)
    )
    assert answer["status_code"] == 2001 and "uid (URL)" in answer["status_message"]
    async with server.app.db.read() as conn:
        assert (await token_repo.page(conn))[1] == 0


async def test_patch_rules(server: Running, fakes: list[FakePartner]) -> None:
    emsp = await register(server, "emsp", fakes=fakes)
    url = emsp.url("tokens", "DE", "EMS", "CARD-1")
    assert (await emsp.call("PUT", url, token("CARD-1", group_id="G1")))[0] == 201

    status, answer = await emsp.call("PATCH", url, {"valid": False})
    assert (status, answer["status_code"]) == (200, 2001)
    assert "last_updated: is required in a PATCH" in answer["status_message"]
    status, answer = await emsp.call(
        "PATCH", emsp.url("tokens", "DE", "EMS", "NOPE"), {"valid": False, "last_updated": "x"}
    )
    assert (status, answer["status_code"]) == (404, 2004)
    status, answer = await emsp.call(
        "PATCH", url, {"whitelist": "MAYBE", "last_updated": "2026-02-01T00:00:00Z"}
    )
    assert answer["status_code"] == 2001 and "whitelist" in answer["status_message"]
    status, answer = await emsp.call(
        "PATCH", url, {"uid": "OTHER", "last_updated": "2026-02-01T00:00:00Z"}
    )
    assert answer["status_code"] == 2001 and "uid" in answer["status_message"]

    with capture_logs() as logs:
        status, answer = await emsp.call(
            "PATCH",
            url,
            {"valid": False, "group_id": None, "last_updated": "2026-02-01T00:00:00Z"},
        )
    assert (status, answer["status_code"]) == (200, 1000)
    (stored,) = [e for e in logs if e["event"] == "partner_token_stored"]
    assert (stored["source"], stored["created"], stored["valid"]) == ("patch", False, False)
    _, answer = await emsp.call("GET", url)
    assert answer["data"]["valid"] is False and "group_id" not in answer["data"]
    assert answer["data"]["last_updated"] == "2026-02-01T00:00:00Z"
    assert answer["data"]["issuer"] == "Fake eMSP"  # kept
    shown = (await csms(server, "tokens", "show", "CARD-1", "--json")).json()
    assert shown["status"] == "Blocked" and shown["parent"] is None


async def test_an_older_version_changes_nothing(server: Running, fakes: list[FakePartner]) -> None:
    """A push and a pull may cross: the version with the later last_updated stands."""
    emsp = await register(server, "emsp", fakes=fakes)
    url = emsp.url("tokens", "DE", "EMS", "CARD-1")
    newer = token("CARD-1", valid=False, last_updated="2026-03-01T00:00:00Z")
    assert (await emsp.call("PUT", url, newer))[0] == 201
    with capture_logs() as logs:
        status, answer = await emsp.call("PUT", url, token("CARD-1", whitelist="ALWAYS"))
        assert (status, answer["status_code"]) == (200, 1000)
        older_patch = {"valid": True, "last_updated": "2026-02-01T00:00:00Z"}
        status, answer = await emsp.call("PATCH", url, older_patch)
        assert (status, answer["status_code"]) == (200, 1000)
    kept = [e for e in logs if e["event"] == "partner_token_kept"]
    assert [e["source"] for e in kept] == ["push", "patch"]
    assert not [e for e in logs if e["event"] == "partner_token_stored"]
    _, answer = await emsp.call("GET", url)
    assert answer["data"] == newer
    shown = (await csms(server, "tokens", "show", "CARD-1", "--json")).json()
    assert shown["status"] == "Blocked"
    # The same version again, and a later one, are stored.
    same = {**newer, "issuer": "Renamed"}
    assert (await emsp.call("PUT", url, same))[0] == 200
    later = {"valid": True, "last_updated": "2026-03-02T00:00:00Z"}
    assert (await emsp.call("PATCH", url, later))[1]["status_code"] == 1000
    _, answer = await emsp.call("GET", url)
    assert answer["data"]["issuer"] == "Renamed" and answer["data"]["valid"] is True
    shown = (await csms(server, "tokens", "show", "CARD-1", "--json")).json()
    assert shown["status"] == "Accepted"


async def test_only_own_parties_and_hubs_for_all_but_us(
    server: Running, fakes: list[FakePartner]
) -> None:
    emsp = await register(server, "emsp", fakes=fakes)
    foreign = emsp.url("tokens", "FR", "OTH", "CARD-F")
    body = token("CARD-F", country_code="FR", party_id="OTH")
    status, answer = await emsp.call("PUT", foreign, body)
    assert (status, answer["status_code"]) == (200, 2001)
    assert "party FR*OTH is not one of your credentials roles" in answer["status_message"]
    status, answer = await emsp.call("GET", foreign)
    assert answer["status_code"] == 2001

    hub = await register(server, "hub", role=HUB_ROLE, fakes=fakes)
    status, answer = await hub.call("PUT", hub.url("tokens", "FR", "OTH", "CARD-F"), body)
    assert (status, answer["status_code"]) == (201, 1000)
    status, answer = await hub.call("GET", hub.url("tokens", "FR", "OTH", "CARD-F"))
    assert answer["data"]["party_id"] == "OTH"
    ours = token("CARD-O", country_code="NL", party_id="CSM")
    status, answer = await hub.call("PUT", hub.url("tokens", "NL", "CSM", "CARD-O"), ours)
    assert answer["status_code"] == 2001
    # The eMSP still cannot read what the hub stored for another party.
    assert (await emsp.call("GET", foreign))[1]["status_code"] == 2001
    async with server.app.db.read() as conn:
        (stored,), _ = await token_repo.page(conn)
    assert (str(stored.party), stored.partner_id) == ("FR*OTH", hub.partner_id)


# --- pulling a partner's list -----------------------------------------------------------------


def pulled_list() -> list[Any]:
    return [
        token("P1"),
        token("P2", whitelist="NEVER"),
        {"uid": "BROKEN"},  # skipped: invalid
        token("P3", type="APP_USER"),
        token("F1", country_code="FR", party_id="OTH"),  # skipped: not its party
    ]


async def test_tokens_are_pulled_after_registration_across_pages(
    server: Running, fakes: list[FakePartner]
) -> None:
    puller(server).delay = 0
    fake = await FakePartner(endpoints=WITH_TOKENS).start()
    fakes.append(fake)
    handler = served(fake, pulled_list())
    invitation = await server.app.partners.add("emsp")
    await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    result = await puller(server).wait(invitation.partner.id)
    assert result is not None
    assert (result.received, result.created, result.updated, result.skipped) == (5, 3, 0, 2)
    assert result.pages == 3
    # The first page from offset 0, the others from the partner's Link.
    assert handler.asked == ["offset=0", "offset=2&limit=2", "offset=4&limit=2"]
    requests = [s for s in fake.seen if s.path.endswith("/tokens")]
    assert len(requests) == 3
    for seen in requests:
        assert seen.headers["OCPI-to-party-id"] == "EMS"
        assert seen.headers["OCPI-from-country-code"] == "NL"
        assert seen.headers["OCPI-from-party-id"] == "CSM"
    rows = json.loads(ok(await csms(server, "ocpi", "tokens", "list", "--json")))
    assert sorted((r["uid"], r["type"], r["party"], r["whitelist"]) for r in rows) == [
        ("P1", "RFID", "DE*EMS", "ALLOWED"),
        ("P2", "RFID", "DE*EMS", "NEVER"),
        ("P3", "APP_USER", "DE*EMS", "ALLOWED"),
    ]
    assert {r["partner"] for r in rows} == {"emsp"}
    assert all(r["valid"] is True and r["last_updated"] == "2026-01-05T10:00:00Z" for r in rows)
    shown = (await csms(server, "tokens", "show", "P2", "--json")).json()
    assert shown["origin"] == "DE*EMS"


async def test_the_pull_does_not_delay_the_credentials_answer_and_may_fail(
    server: Running, fakes: list[FakePartner]
) -> None:
    puller(server).delay = 0
    fake = await FakePartner(endpoints=WITH_TOKENS).start()
    fakes.append(fake)
    gate = asyncio.Event()
    handler = served(fake, pulled_list(), fail=True, gate=gate)
    invitation = await server.app.partners.add("emsp")
    with capture_logs() as logs:
        # The fake holds its tokens answer until the gate opens, after our credentials
        # answer arrived: were that answer waiting for the pull, this would time out.
        await asyncio.wait_for(
            fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a), 10
        )
        await until(lambda: handler.asked == ["offset=0"], "the pull to reach the partner")
        gate.set()
        assert await puller(server).wait(invitation.partner.id) is None
    (failed,) = [e for e in logs if e["event"] == "token_pull_failed"]
    assert failed["ocpi_partner"] == "emsp" and "HTTP 503" in failed["error"]
    partner = await server.app.partners.get("emsp")
    assert partner.status.value == "registered"


@pytest.mark.slow
async def test_csms_ocpi_tokens_sync_and_list(server: Running, fakes: list[FakePartner]) -> None:
    puller(server).delay = 3600  # no pull after registration: the command does it
    emsp = await register(server, "emsp", endpoints=WITH_TOKENS, fakes=fakes)
    handler = served(emsp.fake, pulled_list(), links=False)  # X-Total-Count and offset only
    synced = (await csms(server, "ocpi", "tokens", "sync", "emsp", "--json")).json()
    assert synced == {
        "partner": "emsp",
        "received": 5,
        "created": 3,
        "updated": 0,
        "skipped": 2,
        "older": 0,
        "pages": 3,
    }
    assert handler.asked == ["offset=0", "offset=2", "offset=4"]
    handler.tokens = [
        token("P1", valid=False, last_updated="2026-01-06T10:00:00Z"),
        token("P2", valid=False, last_updated="2026-01-04T10:00:00Z"),  # older than ours
        token("P4"),
    ]
    handler.asked.clear()
    ran = ok(await csms(server, "ocpi", "tokens", "sync", "emsp", "--limit", "1"))
    assert ran.strip() == (
        "tokens of emsp: 3 received, 1 new, 1 updated, 1 older than ours, 0 skipped (3 pages)"
    )
    assert handler.asked == ["offset=0&limit=1", "offset=1&limit=1", "offset=2&limit=1"]

    human = ok(await csms(server, "ocpi", "tokens", "list", "--party", "de*ems"))
    lines = human.splitlines()
    assert lines[0].split() == [
        "UID",
        "TYPE",
        "PARTY",
        "CONTRACT",
        "WHITELIST",
        "VALID",
        "UPDATED",
        "PARTNER",
    ]
    p1 = next(line.split() for line in lines if line.startswith("P1 "))
    assert p1[:8] == [
        "P1",
        "RFID",
        "DE*EMS",
        "DE-EMS-CP1",
        "ALLOWED",
        "no",
        "2026-01-06",
        "10:00:00",
    ]
    assert p1[-2:] == ["ago)", "emsp"]
    p2 = next(line.split() for line in lines if line.startswith("P2 "))
    assert p2[4:8] == ["NEVER", "yes", "2026-01-05", "10:00:00"]  # the older version left out
    assert len(lines) == 5  # header + P1..P4
    assert ok(await csms(server, "ocpi", "tokens", "list", "--party", "FR*OTH")).strip() == (
        "no partner tokens"
    )
    one_line_error(await csms(server, "ocpi", "tokens", "list", "--party", "Germany"), "--party")

    # Error paths: one line, exit 1.
    one_line_error(await csms(server, "ocpi", "tokens", "sync", "nope"), "no partner nope")
    await register(server, "plain", fakes=fakes)
    one_line_error(
        await csms(server, "ocpi", "tokens", "sync", "plain"),
        "partner plain offers no tokens Sender endpoint",
    )
    handler.fail = True
    failed = await csms(server, "ocpi", "tokens", "sync", "emsp")
    one_line_error(failed, "token sync with emsp failed: GET ")
    assert "HTTP 503 (OCPI status 3000: tokens unavailable)" in failed.err


async def test_registering_with_a_partner_pulls_its_tokens(
    server: Running, fakes: list[FakePartner]
) -> None:
    fake = await FakePartner(endpoints=WITH_TOKENS).start()
    fakes.append(fake)
    served(fake, pulled_list())
    env = cli_env(server)
    env["CSMS_OCPI_BASE_URL"] = server.ocpi_url
    args = ("--versions-url", fake.versions_url, "--token", fake.token_a, "--json")
    ran = await csms(server, "ocpi", "partners", "register", "hub", *args, env=env)
    shown = ran.json()
    assert shown["status"] == "registered"
    assert shown["tokens_pulled"] == {
        "received": 5,
        "created": 3,
        "updated": 0,
        "skipped": 2,
        "older": 0,
        "pages": 3,
    }
    async with server.app.db.read() as conn:
        assert (await token_repo.page(conn))[1] == 3


# --- hub client info ------------------------------------------------------------------------------


def client_info(**changes: Any) -> dict[str, Any]:
    base = {
        "party_id": "OTH",
        "country_code": "FR",
        "role": "EMSP",
        "status": "CONNECTED",
        "last_updated": "2026-03-01T08:00:00Z",
    }
    base.update(changes)
    return base


@pytest.mark.slow
async def test_hub_client_info(server: Running, fakes: list[FakePartner]) -> None:
    hub = await register(server, "hub", role=HUB_ROLE, fakes=fakes)
    url = hub.url("hubclientinfo", "FR", "OTH")
    status, answer = await hub.call("GET", url)
    assert (status, answer["status_code"]) == (404, 2000)

    with capture_logs() as logs:
        status, answer = await hub.call("PUT", url, client_info())
    assert (status, answer["status_code"]) == (201, 1000)
    (reported,) = [e for e in logs if e["event"] == "hub_party_reported"]
    assert reported["ocpi_party"] == "FR*OTH" and reported["connection_status"] == "CONNECTED"
    status, answer = await hub.call(
        "PUT", url, client_info(status="OFFLINE", last_updated="2026-03-02T08:00:00Z")
    )
    assert (status, answer["status_code"]) == (200, 1000)
    status, answer = await hub.call("GET", url)
    assert answer["data"] == client_info(status="OFFLINE", last_updated="2026-03-02T08:00:00.000Z")
    cpo = client_info(party_id="ANY", country_code="NL", role="CPO", status="PLANNED")
    assert (await hub.call("PUT", hub.url("hubclientinfo", "nl", "any"), cpo))[0] == 201

    for body, text in [
        (client_info(party_id="XYZ"), "the URL names FR*OTH"),
        (client_info(status="ONLINE"), "status: must be one of CONNECTED"),
        (client_info(role=None), "role: is required"),
        (client_info(last_updated="now"), "last_updated"),
        ("CONNECTED", "ClientInfo JSON object"),
    ]:
        status, answer = await hub.call("PUT", url, body)
        assert (status, answer["status_code"]) == (200, 2001), body
        assert text in answer["status_message"]

    emsp = await register(server, "emsp", fakes=fakes)
    status, answer = await emsp.call("PUT", emsp.url("hubclientinfo", "FR", "OTH"), client_info())
    assert answer["status_code"] == 2001 and "only a hub" in answer["status_message"]

    rows = (await csms(server, "ocpi", "parties", "--json")).json()
    assert rows == [
        {
            "country_code": "FR",
            "party_id": "OTH",
            "role": "EMSP",
            "status": "OFFLINE",
            "last_updated": "2026-03-02T08:00:00Z",
            "hub": "hub",
        },
        {
            "country_code": "NL",
            "party_id": "ANY",
            "role": "CPO",
            "status": "PLANNED",
            "last_updated": "2026-03-01T08:00:00Z",
            "hub": "hub",
        },
    ]
    human = ok(await csms(server, "ocpi", "parties")).splitlines()
    assert human[0].split() == ["COUNTRY", "PARTY", "ROLE", "STATUS", "UPDATED", "HUB"]
    fr = human[1].split()
    assert fr[:6] == ["FR", "OTH", "EMSP", "OFFLINE", "2026-03-02", "08:00:00"]
    assert fr[6].startswith("(") and fr[-2:] == ["ago)", "hub"]


def _filled(canonical: str) -> str:
    """A route's path with sample values for its variables."""
    samples = {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "U1",
        "session_id": "1",
        "command": "START_SESSION",
        "_slash": "",
    }
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: samples.get(m.group(1), "X"), canonical)


async def test_every_body_route_answers_malformed_or_deep_json_400(
    server: Running, fakes: list[FakePartner]
) -> None:
    """Bodies are read and parsed in one place, after authentication and before any route's
    own checks: a non-hub partner's malformed ClientInfo is 400 like everything else."""
    emsp = await register(server, "emsp", fakes=fakes)
    assert server.app.ocpi_app is not None
    routes = sorted(
        (route.method, route.resource.canonical)
        for route in server.app.ocpi_app[REGISTRY].access
        if route.method in ("POST", "PUT", "PATCH") and route.resource is not None
    )
    assert {(m, _filled(p).split("/")[3]) for m, p in routes} >= {
        ("POST", "credentials"),
        ("PUT", "credentials"),
        ("PUT", "tokens"),
        ("PATCH", "tokens"),
        ("PUT", "hubclientinfo"),
        ("POST", "commands"),
        ("PUT", "chargingprofiles"),
        ("PUT", "sessions"),
    }
    deep: Any = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    for method, path in routes:
        url = server.ocpi_url + _filled(path)
        for raw, text in ((b'{"uid": ', "not valid JSON"), (json.dumps(deep).encode(), "deeper")):
            status, answer = await emsp.call(method, url, raw_body=raw)
            assert (status, answer["status_code"]) == (400, 2001), (method, path, answer)
            assert text in answer["status_message"], (method, path, answer)
    # Valid JSON: the route's own rule answers (a non-hub may not push ClientInfo).
    status, answer = await emsp.call("PUT", emsp.url("hubclientinfo", "FR", "OTH"), client_info())
    assert (status, answer["status_code"]) == (200, 2001) and "only a hub" in str(answer)
    # Without a valid token the body is not even read: 401.
    status, answer, _ = await emsp.fake.call(
        "PUT", emsp.url("hubclientinfo", "FR", "OTH"), "wrong-token", raw_body=b"{"
    )
    assert status == 401


OTHER_ROLE = {**EMSP_ROLE, "country_code": "FR", "party_id": "OTH"}


@pytest.mark.slow
async def test_a_uid_claimed_by_two_parties_stays_with_its_first_owner(
    server: Running, fakes: list[FakePartner]
) -> None:
    first = await register(server, "first", role=OTHER_ROLE, fakes=fakes)
    second = await register(server, "second", fakes=fakes)
    # The first owner's card is blocked: whose token decides shows at the charger.
    blocked = token("SHARED1", country_code="FR", party_id="OTH", valid=False, whitelist="ALWAYS")
    assert (await first.call("PUT", first.url("tokens", "FR", "OTH", "SHARED1"), blocked))[0] == 201
    with capture_logs() as logs:
        status, answer = await second.call(
            "PUT",
            second.url("tokens", "DE", "EMS", "shared1"),
            token("shared1", whitelist="ALWAYS"),
        )
    # Stored for its eMSP (it may read it back), but the uid stays the first owner's.
    assert (status, answer["status_code"]) == (201, 1000)
    assert (await second.call("GET", second.url("tokens", "DE", "EMS", "shared1")))[0] == 200
    (conflict,) = [e for e in logs if e["event"] == "token_uid_conflict"]
    assert (conflict["claimed_by"], conflict["held_by"], conflict["uid"]) == (
        "DE*EMS",
        "FR*OTH",
        "shared1",
    )
    ws = await open_raw(server.url, "CONFLICT-1")
    await call(ws, "BootNotification", BOOT)
    answer = await call(ws, "Authorize", {"idTag": "SHARED1"})
    assert answer[2]["idTagInfo"]["status"] == "Blocked"  # the first owner's token decides
    await ws.close()

    # Staff see it: a listing, and a mark on the token.
    listed = ok(await csms(server, "tokens", "conflicts")).splitlines()
    assert listed[0].split()[:5] == ["UID", "TYPE", "HELD", "BY", "CLAIMED"]
    assert listed[1].split()[:5] == ["shared1", "RFID", "FR*OTH", "DE*EMS", "second"]
    (row,) = (await csms(server, "tokens", "conflicts", "--json")).json()
    assert {k: row[k] for k in ("uid", "held_by", "claimed_by", "partner")} == {
        "uid": "shared1",
        "held_by": "FR*OTH",
        "claimed_by": "DE*EMS",
        "partner": "second",
    }
    shown = (await csms(server, "tokens", "show", "SHARED1", "--json")).json()
    assert (shown["origin"], shown["also_claimed_by"]) == ("FR*OTH", ["DE*EMS"])
    human = ok(await csms(server, "tokens", "show", "SHARED1"))
    assert "also claimed:   DE*EMS (RFID, partner second): not used at our chargers" in human
    tokens_ = {t["uid"]: t for t in (await csms(server, "tokens", "list", "--json")).json()}
    assert tokens_["SHARED1"]["also_claimed_by"] == ["DE*EMS"]
    table_ = ok(await csms(server, "tokens", "list")).splitlines()
    assert table_[0].split()[-5:] == ["MAX", "TX", "ALSO", "CLAIMED", "BY"]
    assert table_[1].split()[-1] == "DE*EMS"

    # Our own cards come first too; staff give a uid to the other owner explicitly.
    ok(await csms(server, "tokens", "add", "OURS-9"))
    assert (await second.call("PUT", second.url("tokens", "DE", "EMS", "OURS-9"), token("OURS-9")))[
        0
    ] == 201
    ok(await csms(server, "tokens", "set", "SHARED1", "--owner", "DE*EMS"))
    rows = (await csms(server, "tokens", "conflicts", "--json")).json()
    assert [(r["uid"], r["held_by"], r["claimed_by"]) for r in rows] == [
        ("OURS-9", "local", "DE*EMS"),
        ("SHARED1", "DE*EMS", "FR*OTH"),  # the claiming token's own spelling
    ]
    assert ok(await csms(server, "tokens", "conflicts", "nobody")).strip() == (
        "no conflicts for token nobody"
    )
