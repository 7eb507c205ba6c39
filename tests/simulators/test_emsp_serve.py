"""The eMSP simulator's tokens and commands over HTTP on 127.0.0.1, against a small fake CPO
written here: its token list paged with Link and X-Total-Count, real-time authorization in
each mode (slow ones timed), tokens pushed with PUT and PATCH, commands sent with their own
response_url and the results posted back, awaited with a bound."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from simulators.emsp import EmspSimulator, Party
from simulators.emsp_tokens import parse_mode
from simulators.errors import EmspError

from .conftest import FakeClock

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _token_header(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


class FakeCpo:
    """A CPO with just enough OCPI 2.2.1: versions, credentials (as Receiver), a tokens
    Receiver and a commands Receiver that posts `results` to each response_url after
    `result_delay` seconds (before answering when `result_first`)."""

    TOKEN_A = "fake-token-a"
    TOKEN_C = "fake-token-c"

    def __init__(self) -> None:
        self.token_b: str | None = None
        self.tokens: dict[str, dict[str, Any]] = {}
        self.seen: list[tuple[str, str, Any]] = []
        self.command_answer: dict[str, Any] = {"result": "ACCEPTED", "timeout": 5}
        self.command_status = 1000
        self.results: list[dict[str, Any]] = [{"result": "ACCEPTED"}]
        self.result_delay = 0.0
        self.result_first = False
        self.posted: list[tuple[str, int, Any]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.base = ""

    async def start(self) -> FakeCpo:
        app = web.Application()
        app.router.add_get("/ocpi/versions", self._versions)
        app.router.add_get("/ocpi/2.2.1", self._details)
        app.router.add_post("/ocpi/2.2.1/credentials", self._credentials)
        app.router.add_route("*", "/ocpi/2.2.1/tokens/{cc}/{pid}/{uid}", self._token)
        app.router.add_post("/ocpi/2.2.1/commands/{command}", self._command)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def versions_url(self) -> str:
        return self.base + "/ocpi/versions"

    def _ok(self, data: Any = None, status: int = 200, code: int = 1000) -> web.Response:
        body: dict[str, Any] = {"status_code": code, "timestamp": "2026-01-01T12:00:00Z"}
        if data is not None:
            body["data"] = data
        return web.json_response(body, status=status)

    def _authorized(self, request: web.Request, token: str) -> bool:
        return request.headers.get("Authorization") == _token_header(token)

    async def _versions(self, request: web.Request) -> web.Response:
        return self._ok([{"version": "2.2.1", "url": self.base + "/ocpi/2.2.1"}])

    async def _details(self, request: web.Request) -> web.Response:
        endpoints = [
            ("credentials", "SENDER", "/credentials"),
            ("tokens", "RECEIVER", "/tokens"),
            ("commands", "RECEIVER", "/commands"),
        ]
        return self._ok(
            {
                "version": "2.2.1",
                "endpoints": [
                    {"identifier": i, "role": r, "url": self.base + "/ocpi/2.2.1" + p}
                    for i, r, p in endpoints
                ],
            }
        )

    async def _credentials(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.TOKEN_A):
            return self._ok(status=401, code=2000)
        body = await request.json()
        self.token_b = body["token"]
        role = {
            "role": "CPO",
            "party_id": "CPO",
            "country_code": "NL",
            "business_details": {"name": "Fake CPO"},
        }
        return self._ok({"token": self.TOKEN_C, "url": self.versions_url, "roles": [role]})

    async def _token(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.TOKEN_C):
            return self._ok(status=401, code=2000)
        info = request.match_info
        k = f"{info['cc']}/{info['pid']}/{info['uid']}/{request.query.get('type', 'RFID')}"
        if request.method == "GET":
            self.seen.append((request.method, request.path_qs, None))
            found = self.tokens.get(k)
            return self._ok(found) if found else self._ok(status=404, code=2004)
        body: dict[str, Any] = await request.json()
        self.seen.append((request.method, request.path_qs, body))
        if request.method == "PUT":
            created = k not in self.tokens
            self.tokens[k] = body
            return self._ok(status=201 if created else 200)
        if k not in self.tokens:
            return self._ok(status=404, code=2004)
        self.tokens[k].update(body)
        return self._ok()

    async def _command(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.TOKEN_C):
            return self._ok(status=401, code=2000)
        body = await request.json()
        self.seen.append(("POST", request.path, body))
        if self.command_status != 1000:
            return self._ok(code=self.command_status)
        if self.result_first:
            await self._post_results(body["response_url"])
        else:
            task = asyncio.create_task(self._post_results(body["response_url"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._ok(self.command_answer)

    async def _post_results(self, url: str) -> None:
        await asyncio.sleep(self.result_delay)
        for result in self.results:
            status, answer = await self.post(url, result)
            self.posted.append((url, status, answer))

    async def post(self, url: str, body: Any) -> tuple[int, Any]:
        assert self._session is not None and self.token_b is not None
        headers = {"Authorization": _token_header(self.token_b)}
        async with self._session.post(url, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def call(
        self, method: str, url: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any, Any]:
        """Call the eMSP as the CPO does, with token B: (HTTP status, JSON or text, headers)."""
        assert self._session is not None and self.token_b is not None
        headers = {"Authorization": _token_header(token or self.token_b)}
        async with self._session.request(method, url, json=body, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json(), response.headers
            return response.status, await response.text(), response.headers


@pytest.fixture
async def cpo() -> AsyncIterator[FakeCpo]:
    fake = await FakeCpo().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def emsp(cpo: FakeCpo) -> AsyncIterator[EmspSimulator]:
    sim = EmspSimulator(Party("NL", "EMS", "Test eMSP"))
    await sim.start()
    await sim.register(cpo.versions_url, FakeCpo.TOKEN_A)
    yield sim
    await sim.stop()


def tokens_url(emsp: EmspSimulator) -> str:
    return emsp.url("/ocpi/emsp/2.2.1/tokens")


def lines(emsp: EmspSimulator) -> list[str]:
    return [p.line for p in emsp.received]


# --- the token list (Sender interface) ------------------------------------------------------


async def test_details_offer_tokens_and_commands_as_sender(
    cpo: FakeCpo, emsp: EmspSimulator
) -> None:
    _, body, _ = await cpo.call("GET", emsp.url("/ocpi/emsp/2.2.1"))
    offered = {(e["identifier"], e["role"]): e["url"] for e in body["data"]["endpoints"]}
    assert offered[("tokens", "SENDER")] == tokens_url(emsp)
    assert offered[("commands", "SENDER")] == emsp.url("/ocpi/emsp/2.2.1/commands")
    assert ("locations", "RECEIVER") in offered


async def test_token_list_pages_follow_link_to_the_end(cpo: FakeCpo, emsp: EmspSimulator) -> None:
    made = emsp.add_tokens(5)
    assert [(t["uid"], t["whitelist"]) for t in made] == [
        ("EMS0001", "ALWAYS"),
        ("EMS0002", "ALLOWED"),
        ("EMS0003", "ALLOWED_OFFLINE"),
        ("EMS0004", "NEVER"),
        ("EMS0005", "ALWAYS"),
    ]
    url: str | None = tokens_url(emsp) + "?limit=2"
    uids: list[str] = []
    pages = 0
    while url is not None:
        status, body, headers = await cpo.call("GET", url)
        assert (status, body["status_code"]) == (200, 1000)
        assert (headers["X-Total-Count"], headers["X-Limit"]) == ("5", "100")
        assert headers["OCPI-from-party-id"] == "EMS" and headers["OCPI-to-party-id"] == "CPO"
        uids += [t["uid"] for t in body["data"]]
        pages += 1
        link = headers.get("Link")
        url = None
        if link is not None:
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            query = parse_qs(urlsplit(url).query)
            assert query["limit"] == ["2"] and query["offset"] == [str(len(uids))]
    assert (uids, pages) == ([t["uid"] for t in made], 3)
    assert body["data"] == [made[4]]  # whole Token objects

    # Larger limits are capped; past the end is an empty page with no Link.
    _, body, headers = await cpo.call("GET", tokens_url(emsp) + "/?limit=1000")
    assert len(body["data"]) == 5 and "Link" not in headers
    _, body, headers = await cpo.call("GET", tokens_url(emsp) + "?offset=7")
    assert body["data"] == [] and headers["X-Total-Count"] == "5" and "Link" not in headers
    for bad in ("offset=-1", "limit=0", "limit=x", "date_from=yesterday"):
        status, body, _ = await cpo.call("GET", f"{tokens_url(emsp)}?{bad}")
        assert (status, body["status_code"]) == (200, 2001), bad
    status, body, _ = await cpo.call("GET", tokens_url(emsp), token="not-b")
    assert (status, body["status_code"]) == (401, 2000)
    assert "GET tokens  offset=0 limit=2: 2 of 5 token(s)" in lines(emsp)


async def test_token_list_filters_by_date(cpo: FakeCpo) -> None:
    clock = FakeClock(T0)
    async with EmspSimulator(clock=clock) as sim:
        await sim.register(cpo.versions_url, FakeCpo.TOKEN_A)
        for n in range(4):
            sim.add_token(f"D{n}")
            clock.now += timedelta(hours=1)
        url = tokens_url(sim) + "?date_from=2026-01-01T13:00:00Z&date_to=2026-01-01T15:00:00Z"
        _, body, headers = await cpo.call("GET", url + "&limit=1")
        assert [t["uid"] for t in body["data"]] == ["D1"] and headers["X-Total-Count"] == "2"
        # The filter stays in the next page's Link.
        link = headers["Link"]
        assert "date_from=2026-01-01T13" in link and "offset=1" in link
        _, body, headers = await cpo.call("GET", link[1 : link.index(">")])
        assert [t["uid"] for t in body["data"]] == ["D2"] and "Link" not in headers


# --- real-time authorization ------------------------------------------------------------------


async def authorize(
    cpo: FakeCpo, emsp: EmspSimulator, uid: str, refs: Any = None, query: str = "?type=RFID"
) -> tuple[int, Any]:
    url = f"{tokens_url(emsp)}/{uid}/authorize{query}"
    status, body, _ = await cpo.call("POST", url, refs)
    return status, body


REFS = {"location_id": "LOC1", "evse_uids": ["E1"]}


async def test_authorize_accept_and_deny(cpo: FakeCpo, emsp: EmspSimulator) -> None:
    emsp.add_token("A1", "NEVER")
    emsp.add_token("B1", "ALLOWED", valid=False)

    status, body = await authorize(cpo, emsp, "A1", REFS)
    assert (status, body["status_code"]) == (200, 1000)
    info = body["data"]
    assert info["allowed"] == "ALLOWED" and info["location"] == REFS
    assert info["token"] == emsp.token("A1")
    first = info["authorization_reference"]
    assert first.startswith("EMS-") and len(first) <= 36
    # Each answer has its own reference; no location asked, none answered; type defaults.
    _, body = await authorize(cpo, emsp, "a1", query="")
    assert "location" not in body["data"]
    assert body["data"]["authorization_reference"] not in (first, None)
    # A token that is not valid is BLOCKED, without a reference.
    _, body = await authorize(cpo, emsp, "B1", REFS)
    assert body["data"]["allowed"] == "BLOCKED"
    assert "authorization_reference" not in body["data"] and "location" not in body["data"]

    emsp.authorize_mode = parse_mode("deny")
    _, body = await authorize(cpo, emsp, "A1", REFS)
    assert (
        body["data"]["allowed"] == "NOT_ALLOWED" and "authorization_reference" not in body["data"]
    )
    emsp.authorize_mode = parse_mode("deny:BLOCKED")
    _, body = await authorize(cpo, emsp, "A1", REFS)
    assert body["data"]["allowed"] == "BLOCKED"

    assert [(a.uid, a.allowed, a.location) for a in emsp.authorizations] == [
        ("A1", "ALLOWED", REFS),
        ("a1", "ALLOWED", None),
        ("B1", "BLOCKED", REFS),
        ("A1", "NOT_ALLOWED", REFS),
        ("A1", "BLOCKED", REFS),
    ]
    assert f"POST tokens A1/authorize RFID at LOC1 [E1]: ALLOWED {first}" in lines(emsp)
    assert "POST tokens A1/authorize RFID at LOC1 [E1]: BLOCKED" in lines(emsp)


async def test_authorize_unknown_token_and_bad_requests(cpo: FakeCpo, emsp: EmspSimulator) -> None:
    emsp.add_token("A1")
    status, body = await authorize(cpo, emsp, "NOPE", REFS)
    assert (status, body["status_code"]) == (404, 2004) and "data" not in body
    # Known uid, other type: unknown too.
    status, body = await authorize(cpo, emsp, "A1", REFS, query="?type=APP_USER")
    assert (status, body["status_code"]) == (404, 2004)
    status, body = await authorize(cpo, emsp, "A1", REFS, query="?type=CARD")
    assert (status, body["status_code"]) == (200, 2001)
    status, body = await authorize(cpo, emsp, "A1", {"evse_uids": ["E1"]})
    assert (status, body["status_code"]) == (200, 2001)
    assert "location_id" in body["status_message"]
    assert [a.answer for a in emsp.authorizations] == ["unknown token", "unknown token"]
    assert "POST tokens NOPE/authorize RFID at LOC1 [E1]: unknown token" in lines(emsp)


async def test_authorize_down_and_slow(cpo: FakeCpo, emsp: EmspSimulator) -> None:
    emsp.add_token("A1")
    emsp.authorize_mode = parse_mode("down")
    status, text = await authorize(cpo, emsp, "A1", REFS)
    assert status == 503 and "Unavailable" in text
    assert emsp.authorizations[-1].answer == "HTTP 503"

    emsp.authorize_mode = parse_mode("slow:0.4")
    started = time.monotonic()
    status, body = await authorize(cpo, emsp, "A1", REFS)
    took = time.monotonic() - started
    assert 0.4 <= took < 3.0
    assert body["data"]["allowed"] == "ALLOWED"
    assert lines(emsp)[-1].endswith("after 0.4 s")
    # Two slow requests are answered side by side, not one after the other.
    started = time.monotonic()
    answers = await asyncio.gather(*(authorize(cpo, emsp, "A1", REFS) for _ in range(2)))
    assert time.monotonic() - started < 0.8 + 0.3
    refs = {b["data"]["authorization_reference"] for _, b in answers}
    assert len(refs) == 2


# --- tokens pushed to the CPO -------------------------------------------------------------------


async def test_push_tokens_put_then_patch(cpo: FakeCpo, emsp: EmspSimulator) -> None:
    emsp.add_token("P1", "ALLOWED")
    emsp.add_token("P2", "NEVER", type="APP_USER")
    sent = await emsp.push_tokens()
    assert [(s.uid, s.type, s.http_status) for s in sent] == [
        ("P1", "RFID", 201),
        ("P2", "APP_USER", 201),
    ]
    assert [(m, p) for m, p, _ in cpo.seen] == [
        ("PUT", "/ocpi/2.2.1/tokens/NL/EMS/P1?type=RFID"),
        ("PUT", "/ocpi/2.2.1/tokens/NL/EMS/P2?type=APP_USER"),
    ]
    assert cpo.tokens["NL/EMS/P1/RFID"] == emsp.token("P1")
    assert sent[0].line == "PUT token P1 RFID ALLOWED: HTTP 201"
    # Again: the CPO had them.
    assert [s.http_status for s in await emsp.push_tokens()] == [200, 200]

    patched = await emsp.patch_token("P1", {"valid": False})
    assert patched.line == "PATCH token P1 RFID valid=False: HTTP 200"
    method, path, body = cpo.seen[-1]
    assert (method, path) == ("PATCH", "/ocpi/2.2.1/tokens/NL/EMS/P1?type=RFID")
    assert body["valid"] is False and set(body) == {"valid", "last_updated"}
    assert emsp.token("P1")["valid"] is False
    await emsp.patch_token("P2", {"whitelist": "allowed"}, type="APP_USER")
    at_cpo = await emsp.token_at_cpo("P2", "APP_USER")
    assert at_cpo["whitelist"] == "ALLOWED" and at_cpo["uid"] == "P2"
    with pytest.raises(EmspError, match=r"HTTP 404 \(2004"):
        await emsp.token_at_cpo("P9")
    with pytest.raises(EmspError, match="no token P9"):
        await emsp.patch_token("P9", {"valid": False})
    with pytest.raises(EmspError, match="whitelist must be one of"):
        await emsp.patch_token("P1", {"whitelist": "SOMETIMES"})


# --- commands and their results ---------------------------------------------------------------


async def test_start_session_result_arrives_and_is_awaited(
    cpo: FakeCpo, emsp: EmspSimulator
) -> None:
    emsp.add_token("S1")
    cpo.result_delay = 0.2
    sent = await emsp.start_session("S1", "LOC1", "E1", "1")
    assert sent.response is not None and (sent.response.result, sent.response.timeout) == (
        "ACCEPTED",
        5,
    )
    assert sent.line == f"command START_SESSION {sent.id}: ACCEPTED (timeout 5 s)"
    method, path, body = cpo.seen[-1]
    assert (method, path) == ("POST", "/ocpi/2.2.1/commands/START_SESSION")
    assert body["response_url"] == emsp.url(f"/ocpi/emsp/2.2.1/commands/START_SESSION/{sent.id}")
    assert body["token"] == emsp.token("S1")
    assert (body["location_id"], body["evse_uid"], body["connector_id"]) == ("LOC1", "E1", "1")
    assert body["authorization_reference"].startswith("EMS-")

    assert emsp.stores.commands.results_of(sent.id) == []
    result = await emsp.command_result(sent.id, 5)
    assert (result.result, result.command, result.command_id) == (
        "ACCEPTED",
        "START_SESSION",
        sent.id,
    )
    assert f"POST commands START_SESSION/{sent.id} ACCEPTED" in lines(emsp)

    # Each command its own id; a result awaited but never sent ends in time.
    cpo.results = []
    other = await emsp.start_session("S1", "LOC1", authorization_reference="MINE")
    assert other.id != sent.id and cpo.seen[-1][2]["authorization_reference"] == "MINE"
    started = time.monotonic()
    with pytest.raises(EmspError, match=f"no result for START_SESSION {other.id} within 0.3 s"):
        await emsp.command_result(other.id, 0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    with pytest.raises(EmspError, match="no command nope was sent"):
        await emsp.command_result("nope", 1)


async def test_a_result_before_the_answer_and_a_second_one(
    cpo: FakeCpo, emsp: EmspSimulator
) -> None:
    emsp.add_token("R1")
    cpo.result_first = True
    cpo.results = [
        {"result": "ACCEPTED"},
        {"result": "CANCELED_RESERVATION", "message": [{"language": "en", "text": "roadworks"}]},
    ]
    expiry = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    sent = await emsp.reserve_now("R1", "LOC1", "RES-1", evse_uid="E1", expiry_date=expiry)
    # Both results came in while the CPO was answering the POST.
    assert [p[1] for p in cpo.posted] == [200, 200]
    first = await emsp.command_result(sent.id, 0.1)
    second = await emsp.command_result(sent.id, 0.1, index=1)
    assert (first.result, second.result, second.message) == (
        "ACCEPTED",
        "CANCELED_RESERVATION",
        "roadworks",
    )
    body = cpo.seen[-1][2]
    assert (body["reservation_id"], body["expiry_date"], body["evse_uid"]) == (
        "RES-1",
        "2026-01-01T13:00:00.000Z",
        "E1",
    )


async def test_other_commands_and_refusals(cpo: FakeCpo, emsp: EmspSimulator) -> None:
    cpo.results = []
    cpo.command_answer = {
        "result": "UNKNOWN_SESSION",
        "timeout": 0,
        "message": [{"language": "en", "text": "no such session"}],
    }
    sent = await emsp.stop_session("17")
    assert (
        sent.line
        == f"command STOP_SESSION {sent.id}: UNKNOWN_SESSION (timeout 0 s): no such session"
    )
    cpo.command_answer = {"result": "ACCEPTED", "timeout": 5}
    await emsp.cancel_reservation("RES-1")
    await emsp.unlock_connector("LOC1", "E1", "1")
    assert [
        (p, b.get("session_id") or b.get("reservation_id") or b["connector_id"])
        for _, p, b in cpo.seen
    ] == [
        ("/ocpi/2.2.1/commands/STOP_SESSION", "17"),
        ("/ocpi/2.2.1/commands/CANCEL_RESERVATION", "RES-1"),
        ("/ocpi/2.2.1/commands/UNLOCK_CONNECTOR", "1"),
    ]
    assert len(emsp.stores.commands.sent) == 3

    # Results for commands never sent, or not a CommandResult, are refused.
    url = emsp.url("/ocpi/emsp/2.2.1/commands/STOP_SESSION/unknown-id")
    assert (await cpo.post(url, {"result": "ACCEPTED"}))[0] == 404
    url = emsp.url(f"/ocpi/emsp/2.2.1/commands/STOP_SESSION/{sent.id}")
    status, answer = await cpo.post(url, {"result": "MAYBE"})
    assert (status, answer["status_code"]) == (200, 2001)
    assert emsp.stores.commands.results_of(sent.id) == []

    # The CPO refusing the request: one line, and the command is not kept.
    cpo.command_status = 2003
    with pytest.raises(EmspError, match="OCPI status 2003"):
        await emsp.unlock_connector("NOPE", "E1", "1")
    assert len(emsp.stores.commands.sent) == 3
    with pytest.raises(EmspError, match="no token GHOST"):
        await emsp.start_session("GHOST", "LOC1")
    with pytest.raises(EmspError, match="connector_id needs its evse_uid"):
        await emsp.start_session(emsp.add_token("X1"), "LOC1", connector_id="1")
