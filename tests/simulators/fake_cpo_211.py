"""A CPO speaking OCPI 2.1.1 as the spec describes it, small enough to read in one go: it
offers 2.1.1 only, takes one registration (checking the simulator's credentials with
tests/e2e/ocpi_rules_211.py and calling its versions back), lists objects page by page, takes
tokens, answers commands and posts their results. It records every request it gets, so tests
can look at the headers the simulator sent.

Not our server: the eMSP simulator's 2.1.1 side is tested here without the CSMS, and against the
CSMS in tests/simulators/test_emsp_v211.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.e2e import ocpi_rules_211 as rules

Json = dict[str, Any]
NOW = "2026-12-05T10:00:00Z"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeCpo211:
    token_a: str = "token-a"
    country_code: str = "DE"
    party_id: str = "CPO"
    objects: dict[str, list[Json]] = field(default_factory=dict)
    #: The versions its versions list names (a CPO without 2.1.1: ("2.2.1",)).
    offered: tuple[str, ...] = ("2.1.1",)
    #: What a command is answered (CommandResponse result) and then its result.
    command_answer: str = "ACCEPTED"
    command_result: Any = field(default_factory=lambda: {"result": "ACCEPTED"})
    seen: list[Seen] = field(default_factory=list)
    tokens: dict[tuple[str, str, str], Json] = field(default_factory=dict)
    commands: list[tuple[str, Json]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    token_b: str | None = None
    token_c: str = "token-c"
    their_details: Json | None = None
    their_versions: Any = None
    port: int = 0
    _runner: web.AppRunner | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocpi/cpo"

    @property
    def versions_url(self) -> str:
        return f"{self.base}/versions"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_get("/ocpi/cpo/versions", self._versions)
        r.add_get("/ocpi/cpo/2.1.1", self._details)
        r.add_route("*", "/ocpi/cpo/2.1.1/credentials", self._credentials)
        for module in ("locations", "tariffs", "sessions", "cdrs"):
            r.add_get(f"/ocpi/cpo/2.1.1/{module}", self._list)
        r.add_route("*", "/ocpi/cpo/2.1.1/tokens/{cc}/{pid}/{uid}", self._token)
        r.add_post("/ocpi/cpo/2.1.1/commands/{command}", self._command)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for task in list(self._tasks):
            await task
        if self._runner is not None:
            await self._runner.cleanup()

    # --- server side ---------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        allowed = {f"Token {self.token_a}", f"Token {self.token_c}"}
        if request.headers.get("Authorization") not in allowed:
            return self._reply(None, 2000, http=401)
        response: web.StreamResponse = await handler(request)
        return response

    @staticmethod
    def _reply(
        data: Any, code: int = 1000, *, http: int = 200, headers: Any = None
    ) -> web.Response:
        body: Json = {"status_code": code, "timestamp": NOW}
        if data is not None:
            body["data"] = data
        return web.json_response(body, status=http, headers=headers)

    async def _versions(self, request: web.Request) -> web.Response:
        return self._reply([{"version": v, "url": f"{self.base}/{v}"} for v in self.offered])

    async def _details(self, request: web.Request) -> web.Response:
        modules = ("credentials", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands")
        endpoints = [{"identifier": m, "url": f"{self.base}/2.1.1/{m}"} for m in modules]
        return self._reply({"version": "2.1.1", "endpoints": endpoints})

    def _our_credentials(self) -> Json:
        return {
            "token": self.token_c,
            "url": self.versions_url,
            "business_details": {"name": "Fake CPO"},
            "party_id": self.party_id,
            "country_code": self.country_code,
        }

    async def _credentials(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body: Any = json.loads(raw) if raw else {}
        if request.method == "DELETE":
            self.token_b = None
            return self._reply(None)
        if request.method != "POST":
            return self._reply(None, 2000, http=405)
        self.problems += rules.credentials_errors_211(body)
        self.token_b = body["token"]
        # Call the eMSP back as the handshake says: its versions, then its 2.1.1 details.
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Token {self.token_b}"}
            async with session.get(body["url"], headers=headers) as response:
                versions = await response.json()
            self.problems += rules.response_errors_211(versions)
            self.their_versions = versions["data"]
            url = next(v["url"] for v in versions["data"] if v["version"] == "2.1.1")
            async with session.get(url, headers=headers) as response:
                details = await response.json()
            self.their_details = details["data"]
        return self._reply(self._our_credentials())

    async def _list(self, request: web.Request) -> web.Response:
        module = request.path.rstrip("/").rsplit("/", 1)[1]
        items = self.objects.get(module, [])
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "100"))
        page = items[offset : offset + limit]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(limit)}
        if offset + len(page) < len(items):
            following = f"{self.base}/2.1.1/{module}?offset={offset + len(page)}&limit={limit}"
            headers["Link"] = f'<{following}>; rel="next"'
        return self._reply(page, headers=headers)

    async def _token(self, request: web.Request) -> web.Response:
        info = request.match_info
        k = (info["cc"], info["pid"], info["uid"])
        if request.method == "GET":
            held = self.tokens.get(k)
            return self._reply(held) if held else self._reply(None, 2000, http=404)
        body = await request.json()
        if request.method == "PUT":
            self.problems += rules.token_errors_211(body)
            created = k not in self.tokens
            self.tokens[k] = body
            return self._reply(None, http=201 if created else 200)
        self.problems += rules.token_errors_211(body, partial=True)
        self.tokens[k].update(body)
        return self._reply(None)

    async def _command(self, request: web.Request) -> web.Response:
        command = request.match_info["command"]
        body = await request.json()
        self.problems += rules.command_errors_211(command, body)
        self.commands.append((command, body))
        if self.command_answer == "ACCEPTED":
            task = asyncio.create_task(self._post_result(body["response_url"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._reply({"result": self.command_answer})

    async def _post_result(self, url: str) -> None:
        await asyncio.sleep(0.05)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, json=self.command_result, headers={"Authorization": f"Token {self.token_b}"}
            ) as response,
        ):
            self.problems += rules.response_errors_211(await response.json())
