"""A fake eMSP (or hub) on 127.0.0.1, port 0: it serves its own versions, version details
and credentials endpoint, can register with our CPO bridge (POST/PUT/DELETE), and keeps
every request it received so tests can look at headers.

Knobs: which versions and endpoints it offers, which token encoding it accepts and which
it sends, whether it calls our versions endpoint back while answering our POST, and how
(`push_answer`) and how fast (`push_delay`) it answers pushes to its Receiver modules
(every push is kept in `pushes`).
Requests to its Sender modules (tokens: its token list and real-time authorization) go to
`sender_handlers[module]`; POSTs to `{base}/results/...` (the response_url it gives with
commands) are kept in `results` and answered 1000.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

Encoding = Literal["base64", "raw"]

EMSP_ROLE = {
    "role": "EMSP",
    "country_code": "DE",
    "party_id": "EMS",
    "business_details": {"name": "Fake eMSP"},
}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


SenderHandler = Callable[[web.Request, str, Seen], Awaitable[web.StreamResponse]]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An OCPI success answer (for sender handlers)."""
    body: dict[str, Any] = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=status, headers=headers)


def error(http: int, code: int, message: str) -> web.Response:
    body = {"status_code": code, "status_message": message, "timestamp": "2026-01-01T00:00:00Z"}
    return web.json_response(body, status=http)


class RefusedByPeer(AssertionError):
    """Our CPO answered the fake partner with something else than 1000."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class FakePartner:
    # What it offers.
    versions: tuple[str, ...] = ("2.1.1", "2.2.1")
    endpoints: tuple[tuple[str, str], ...] = (
        ("credentials", "SENDER"),
        ("locations", "RECEIVER"),
        ("sessions", "RECEIVER"),
        ("cdrs", "RECEIVER"),
        ("tokens", "SENDER"),
        ("commands", "SENDER"),
    )
    # How it reads tokens from us ("both" = either) and how it writes its own.
    accepts: Literal["base64", "raw", "both"] = "base64"
    sends: Encoding = "base64"
    # While answering our POST, call our versions endpoint with the token we just offered.
    call_back: bool = True
    roles: tuple[dict[str, Any], ...] = (EMSP_ROLE,)
    # How it answers a push (a request to one of its Receiver modules): (HTTP status, OCPI
    # status_code); None answers every push (200, 1000).
    push_answer: Callable[[Seen], tuple[int, int]] | None = None
    # Seconds it takes before answering a push (a partner stalling on some objects); None
    # or 0: at once.
    push_delay: Callable[[Seen], float] | None = None
    # How it serves requests to a Sender module (module identifier -> handler of the
    # request, the path after the module's URL, and what was seen); unset: 404.
    sender_handlers: dict[str, SenderHandler] = field(default_factory=dict)

    # State.
    tokens: set[str] = field(default_factory=set)  # tokens it accepts from us
    token_a: str = field(default_factory=lambda: "fake-a-" + secrets.token_hex(8))
    our_token: str | None = None  # the token we (the CPO) gave it
    their_token_b: str | None = None  # the token it gave us when registering with us
    seen: list[Seen] = field(default_factory=list)
    callbacks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    pushes: list[Seen] = field(default_factory=list)  # requests to its Receiver modules
    results: list[Seen] = field(default_factory=list)  # POSTs to its response_urls
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocpi/emsp"

    @property
    def versions_url(self) -> str:
        return f"{self.base}/versions"

    async def start(self) -> FakePartner:
        self.tokens.add(self.token_a)
        app = web.Application()
        app.router.add_route("*", "/ocpi/emsp/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # The port it had when started again after stop() (a partner coming back).
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- its server side ------------------------------------------------------------------

    def _token_of(self, header: str | None) -> str | None:
        if not header or not header.startswith("Token "):
            return None
        value = header[len("Token ") :]
        found = []
        if self.accepts in ("base64", "both"):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                found.append(base64.b64decode(value, validate=True).decode())
        if self.accepts in ("raw", "both"):
            found.append(value)
        for token in found:
            if token in self.tokens:
                return token
        return None

    def _ok(self, data: Any, status: int = 200) -> web.Response:
        return ok(data, status)

    def _error(self, http: int, code: int, message: str) -> web.Response:
        return error(http, code, message)

    @property
    def results_url(self) -> str:
        """A response_url to give with a command (add a unique tail)."""
        return f"{self.base}/results"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            body = await request.json()
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        token = self._token_of(request.headers.get("Authorization"))
        if token is None:
            return self._error(401, 2000, "unknown token")
        tail = request.match_info["tail"].rstrip("/")
        if tail == "versions":
            return self._ok([{"version": v, "url": f"{self.base}/{v}"} for v in self.versions])
        if tail in self.versions:
            return self._ok(
                {
                    "version": tail,
                    "endpoints": [
                        {"identifier": i, "role": r, "url": f"{self.base}/{tail}/{i}"}
                        for i, r in self.endpoints
                    ],
                }
            )
        if tail.endswith("/credentials"):
            return await self._credentials(request, token, body)
        if tail.startswith("results/"):
            self.results.append(self.seen[-1])
            return self._ok(None)
        version, _, rest = tail.partition("/")
        module, _, sub = rest.partition("/")
        if version in self.versions and (module, "RECEIVER") in self.endpoints:
            return await self._push(self.seen[-1])
        handler = self.sender_handlers.get(module)
        if version in self.versions and (module, "SENDER") in self.endpoints and handler:
            return await handler(request, sub, self.seen[-1])
        return self._error(404, 2000, "unknown path")

    async def _push(self, seen: Seen) -> web.Response:
        self.pushes.append(seen)
        delay = 0.0 if self.push_delay is None else self.push_delay(seen)
        if delay > 0:
            await asyncio.sleep(delay)
        http, code = (200, 1000) if self.push_answer is None else self.push_answer(seen)
        if code == 1000:
            return self._ok(None, http)
        return self._error(http, code, f"refused by the fake ({code})")

    async def _credentials(self, request: web.Request, token: str, body: Any) -> web.Response:
        if request.method == "GET":
            return self._ok(self._credentials_object(token))
        if request.method == "POST":
            if token != self.token_a:
                return self._error(405, 2000, "already registered")
            offered = body["token"]
            if self.call_back:
                # Per 2.2.1 the Receiver uses the offered token for our versions.
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(body["url"], headers=self._headers_for(offered)) as response,
                ):
                    self.callbacks.append((response.status, await response.json()))
            self.our_token = offered
            mine = "fake-c-" + secrets.token_hex(8)
            self.tokens.discard(self.token_a)
            self.tokens.add(mine)
            return self._ok(self._credentials_object(mine))
        if request.method == "DELETE":
            self.tokens.discard(token)
            return self._ok(None)
        return self._error(405, 2000, "not supported by the fake")

    def _credentials_object(self, token: str) -> dict[str, Any]:
        return {"token": token, "url": self.versions_url, "roles": list(self.roles)}

    # --- its client side ------------------------------------------------------------------

    def _headers_for(self, token: str, encoding: Encoding | None = None) -> dict[str, str]:
        encoding = encoding or self.sends
        value = base64.b64encode(token.encode()).decode() if encoding == "base64" else token
        return {
            "Authorization": f"Token {value}",
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }

    async def call(
        self,
        method: str,
        url: str,
        token: str,
        body: Any = None,
        *,
        encoding: Encoding | None = None,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One request to our CPO: (HTTP status, JSON body, response headers)."""
        all_headers = self._headers_for(token, encoding)
        all_headers.update(headers or {})
        kwargs: dict[str, Any] = {"headers": all_headers}
        if raw_body is not None:
            kwargs["data"] = raw_body
            all_headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, **kwargs) as response,
        ):
            return response.status, await response.json(), dict(response.headers)

    async def register_with(self, versions_url: str, token_a: str) -> dict[str, Any]:
        """The whole Sender side: versions, details, POST credentials. Returns our
        credentials object (with token C, now kept as `our_token`)."""
        return await self._send_credentials("POST", versions_url, token_a)

    async def update(self, versions_url: str) -> dict[str, Any]:
        assert self.our_token is not None
        return await self._send_credentials("PUT", versions_url, self.our_token)

    async def unregister(self, versions_url: str) -> None:
        assert self.our_token is not None
        url = await self.credentials_url(versions_url, self.our_token)
        status, body, _ = await self.call("DELETE", url, self.our_token)
        if status != 200 or body["status_code"] != 1000:
            raise RefusedByPeer(status, body)

    async def credentials_url(self, versions_url: str, token: str) -> str:
        status, body, _ = await self.call("GET", versions_url, token)
        if status != 200:
            raise RefusedByPeer(status, body)
        (v221,) = [v for v in body["data"] if v["version"] == "2.2.1"]
        status, body, _ = await self.call("GET", v221["url"], token)
        if status != 200:
            raise RefusedByPeer(status, body)
        (cred,) = [e for e in body["data"]["endpoints"] if e["identifier"] == "credentials"]
        return str(cred["url"])

    async def _send_credentials(self, method: str, versions_url: str, token: str) -> dict[str, Any]:
        url = await self.credentials_url(versions_url, token)
        mine = "fake-b-" + secrets.token_hex(8)
        self.tokens.add(mine)
        status, body, _ = await self.call(
            method,
            url,
            token,
            {"token": mine, "url": self.versions_url, "roles": list(self.roles)},
        )
        if status != 200 or body["status_code"] != 1000:
            self.tokens.discard(mine)
            raise RefusedByPeer(status, body)
        if self.their_token_b is not None:
            self.tokens.discard(self.their_token_b)
        self.their_token_b = mine
        self.our_token = body["data"]["token"]
        return dict(body["data"])
