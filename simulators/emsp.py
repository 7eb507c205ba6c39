"""A simulated eMSP speaking OCPI 2.2.1 or 2.1.1 to a CPO: it registers (the credentials
handshake as Sender), pulls any module page by page, and serves the Receiver endpoints the
CPO pushes locations, sessions, CDRs and tariffs to, keeping what it got
(simulators.emsp_store). It issues tokens of its own (listed as a tokens Sender, pushed with
PUT and PATCH), answers the CPO's real-time authorization requests in a chosen mode, and
sends commands, keeping the results the CPO posts back to each command's response_url.

Written from the spec as an outside party: aiohttp and the standard library only, nothing of
the CSMS. `version="2.1.1"` speaks 2.1.1 throughout (simulators.emsp_v211): the raw token
header, no routing headers, one party per credentials object, details without roles, 2.1.1
tokens, AuthorizationInfo and the four 2.1.1 commands; what it receives is kept as sent.
Printing is the caller's business (the `on_push` hook, `csms-sim emsp`).

    sim = EmspSimulator(Party("NL", "EMS", "Demo eMSP"), on_push=lambda p: print(p.line))
    sim.add_token("04A1B2C3", "ALLOWED")
    await sim.start()                      # serves http://127.0.0.1:PORT/ocpi/emsp/versions
    await sim.register(versions_url, token_a)
    await sim.push_tokens()
    tariffs = await sim.pull("tariffs", limit=10)
    sent = await sim.start_session("04A1B2C3", "LOC1", "EVSE1")
    result = await sim.command_result(sent.id, 30)
    ...
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from simulators import emsp_v211 as v211
from simulators.clock import Clock, parse_wire_time, utc_now, wire_time
from simulators.emsp_commands import (
    Build,
    CommandBook,
    CommandResult,
    Sent,
    cancel_reservation,
    read_response,
    reserve_now,
    start_session,
    stop_session,
    unlock_connector,
)
from simulators.emsp_store import MODULES, Key, Stores, key, patch_fields, summary
from simulators.emsp_tokens import (
    DEFAULT_TYPE,
    MAX_LIMIT,
    WHITELISTS,
    AuthorizeMode,
    authorization_info,
    location_references,
    new_token,
    token_type,
    where,
    whitelist_type,
)
from simulators.emsp_wire import (
    MAX_BODY,
    VERSION,
    Answer,
    Endpoints,
    accepted_token,
    authorization,
    details_url,
    endpoints_of,
    envelope,
    next_link,
    read_answer,
    their_credentials,
)
from simulators.errors import EmspError, OptionsError, PushRefused

__all__ = [
    "VERSION",
    "VERSIONS",
    "Authorized",
    "CommandResult",
    "EmspSimulator",
    "Page",
    "Party",
    "Push",
    "Registration",
    "Sent",
    "TokenSent",
]

log = logging.getLogger(__name__)

BASE_PATH = "/ocpi/emsp"
VERSIONS_PATH = f"{BASE_PATH}/versions"
VERSION_PATH = f"{BASE_PATH}/{VERSION}"
#: The OCPI versions the simulator speaks (one per instance), the default first.
VERSIONS = (VERSION, v211.VERSION)
#: A pull stops with an error after this many pages (a CPO whose Link never ends).
MAX_PAGES = 100_000
_PARTY = re.compile(r"^[A-Za-z0-9]{3}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
#: Seconds a stopping server gives requests in hand (a `slow` authorization) to finish.
SHUTDOWN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Party:
    """Who the simulator is: its CredentialsRole (role EMSP)."""

    country_code: str = "NL"
    party_id: str = "EMS"
    name: str = "Demo eMSP"

    def __post_init__(self) -> None:
        if not _COUNTRY.match(self.country_code):
            raise ValueError(f"country code must be 2 letters, not {self.country_code!r}")
        if not _PARTY.match(self.party_id):
            raise ValueError(f"party id must be 3 letters or digits, not {self.party_id!r}")
        if not 0 < len(self.name) <= 100:
            raise ValueError("the business name must have 1 to 100 characters")

    @property
    def role(self) -> dict[str, Any]:
        return {
            "role": "EMSP",
            "business_details": {"name": self.name},
            "party_id": self.party_id.upper(),
            "country_code": self.country_code.upper(),
        }

    @property
    def owner(self) -> str:
        """`CC*PID`, as OCPI writes a party in ids (and the CSMS marks token owners)."""
        return f"{self.country_code.upper()}*{self.party_id.upper()}"


@dataclass(frozen=True, slots=True)
class Registration:
    """What the handshake left: the CPO's versions URL, roles and 2.2.1 endpoints, and the
    tokens (B: the CPO calls us with it; C: we call the CPO with it)."""

    versions_url: str
    roles: tuple[dict[str, Any], ...]
    endpoints: Endpoints
    token_b: str = field(repr=False)
    token_c: str = field(repr=False)

    def endpoint(self, identifier: str, role: str = "SENDER") -> str | None:
        for ident, r, url in self.endpoints:
            # A 2.1.1 endpoint has no role: one URL per module.
            if ident == identifier and (r in (role, "") or identifier == "credentials"):
                return url
        return None

    @property
    def cpo(self) -> tuple[str, str]:
        """The party the CPO speaks for: its first CPO role, else its first role."""
        chosen = next((r for r in self.roles if r.get("role") == "CPO"), self.roles[0])
        return str(chosen["country_code"]).upper(), str(chosen["party_id"]).upper()

    @property
    def parties(self) -> frozenset[tuple[str, str]]:
        return frozenset(
            (str(r["country_code"]).upper(), str(r["party_id"]).upper()) for r in self.roles
        )

    @property
    def name(self) -> str:
        details = self.roles[0].get("business_details")
        name = details.get("name") if isinstance(details, dict) else None
        return name if isinstance(name, str) else "?"


@dataclass(frozen=True, slots=True)
class Push:
    """One request the CPO made to us, answered (status_code 1xxx; 0: no OCPI answer) or
    refused: pushes, credentials changes, pulls of our tokens, authorization requests and
    command results."""

    method: str
    module: str
    target: str
    http_status: int
    status_code: int
    text: str
    body: Any = field(repr=False)
    at: datetime

    @property
    def accepted(self) -> bool:
        return 1000 <= self.status_code < 2000

    @property
    def line(self) -> str:
        return f"{self.method} {self.module} {self.target} {self.text}".rstrip()

    def as_json(self) -> dict[str, Any]:
        return {
            "event": "push",
            "method": self.method,
            "module": self.module,
            "target": self.target,
            "http_status": self.http_status,
            "status_code": self.status_code,
            "text": self.text,
            "at": wire_time(self.at),
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class Authorized:
    """One real-time authorization request of the CPO and our answer: `allowed` is None when
    there was none (the token is unknown: 2004, or the mode is `down`: HTTP 503)."""

    uid: str
    type: str
    location: dict[str, Any] | None
    allowed: str | None
    reference: str | None
    http_status: int
    status_code: int
    at: datetime

    @property
    def answer(self) -> str:
        if self.allowed is None:
            return "unknown token" if self.status_code == 2004 else f"HTTP {self.http_status}"
        return self.allowed + (f" {self.reference}" if self.reference else "")


@dataclass(frozen=True, slots=True)
class TokenSent:
    """One of our tokens sent to the CPO (PUT: whole, PATCH: some fields) and its HTTP status
    (201: the CPO did not have it)."""

    method: str
    uid: str
    type: str
    body: dict[str, Any] = field(repr=False)
    http_status: int

    @property
    def line(self) -> str:
        fields = (
            self.body.get("whitelist", "?") if self.method == "PUT" else patch_fields(self.body)
        )
        return f"{self.method} token {self.uid} {self.type} {fields}: HTTP {self.http_status}"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a pull: its objects, X-Total-Count if given, the URL it came from."""

    objects: list[Any]
    total: int | None
    url: str


@dataclass(frozen=True, slots=True)
class Taken:
    """A push the stores took: the object's key, the HTTP status (201: new), a summary
    line and extra answer headers."""

    key: Key
    http_status: int
    text: str
    headers: Mapping[str, str] | None = None


PushHook = Callable[[Push], None]
Json = dict[str, Any]
_Take = Callable[[Any], Taken]


class EmspSimulator:
    """Serves the eMSP's OCPI endpoints (`start()`), registers with a CPO, pulls modules.

    `received` lists every push in order; `stores` holds the objects as merged from pushes
    and pulls. `on_push` is called for each push as it is answered."""

    def __init__(
        self,
        party: Party | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        on_push: PushHook | None = None,
        timeout: float = 10.0,
        clock: Clock = utc_now,
        authorize: AuthorizeMode | None = None,
        version: str = VERSION,
    ) -> None:
        if version not in VERSIONS:
            raise OptionsError(f"OCPI version must be one of {', '.join(VERSIONS)}, not {version}")
        self.version = version
        self.v211 = version == v211.VERSION
        #: Our version's base path: /ocpi/emsp/2.2.1 or /ocpi/emsp/2.1.1.
        self.version_path = f"{BASE_PATH}/{version}"
        self.party = party or Party()
        self.host = host
        self.port = port
        self.public_url = public_url.rstrip("/") if public_url else None
        self.on_push = on_push
        self.timeout = timeout
        self.clock = clock
        self.stores = Stores(
            v211=self.v211,
            commands=CommandBook(v211.RESPONSES, bare=True) if self.v211 else None,
        )
        self.received: list[Push] = []
        self.registration: Registration | None = None
        #: How real-time authorization requests are answered; may change at any time.
        self.authorize_mode = authorize or AuthorizeMode()
        self.authorizations: list[Authorized] = []
        # Tokens the CPO may call us with: token B (and a new B while a handshake runs).
        self._tokens: set[str] = set()
        # Tokens A we handed out: a CPO registers with us (POST credentials) with one.
        self._invitations: set[str] = set()
        self._references = itertools.count(1)
        # Notified whenever a command result comes in.
        self._results = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind host:port (0: any free port) and serve; `versions_url` is then known."""
        if self._runner is not None:
            return
        sock = socket.create_server(
            (self.host, self.port), family=socket.AF_INET6 if ":" in self.host else socket.AF_INET
        )
        sock.setblocking(False)
        runner = web.AppRunner(
            self._app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._runner = runner
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmspSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def versions_url(self) -> str:
        return self.base_url + VERSIONS_PATH

    def url(self, path: str) -> str:
        return self.base_url + path

    # --- the client side: registration ------------------------------------------------------

    async def register(self, versions_url: str, token_a: str) -> Registration:
        """The credentials handshake as Sender: GET the CPO's versions and our version's
        details with token A, POST our credentials with a fresh token B, keep its token C.

        Raises EmspError (one line) and keeps nothing when any step fails."""
        if self.registration is not None:
            raise EmspError("already registered; a simulator registers once")
        self._need_started()
        correlation = str(uuid.uuid4())
        endpoints = await self._discover(versions_url, token_a, correlation)
        credentials_url = next((u for i, _, u in endpoints if i == "credentials"), None)
        if credentials_url is None:
            raise EmspError(f"the CPO's {self.version} endpoints have no credentials module")
        token_b = secrets.token_urlsafe(32)
        # The CPO calls our versions with token B while it answers the POST.
        self._tokens.add(token_b)
        try:
            answer = await self._call(
                "POST",
                credentials_url,
                token_a,
                correlation,
                body=self._our_credentials(token_b),
            )
            token_c, roles = self._their_credentials(answer.data)
        except BaseException:
            self._tokens.discard(token_b)
            raise
        self.registration = Registration(versions_url, roles, endpoints, token_b, token_c)
        return self.registration

    def invite(self) -> str:
        """A token A for a CPO to register with us (the handshake the other way round: the
        CPO GETs our versions and details with it, then POSTs its credentials)."""
        token_a = secrets.token_urlsafe(24)
        self._invitations.add(token_a)
        self._tokens.add(token_a)
        return token_a

    async def unregister(self) -> None:
        """DELETE our credentials at the CPO: it stops calling us, token C is spent."""
        registration = self._registered()
        url = registration.endpoint("credentials")
        assert url is not None
        try:
            await self._call("DELETE", url, registration.token_c, str(uuid.uuid4()))
        finally:
            self._tokens.discard(registration.token_b)
            self.registration = None

    def _our_credentials(self, token: str) -> Json:
        party = self.party
        if self.v211:
            return v211.credentials(
                token, self.versions_url, party.country_code, party.party_id, party.name
            )
        return {"token": token, "url": self.versions_url, "roles": [party.role]}

    def _their_credentials(self, data: Any) -> tuple[str, tuple[Json, ...]]:
        return v211.their_credentials(data) if self.v211 else their_credentials(data)

    async def _discover(self, versions_url: str, token: str, correlation: str) -> Endpoints:
        where = f"GET {versions_url}"
        versions = (await self._call("GET", versions_url, token, correlation)).data
        details = details_url(versions, where, self.version)
        answer = await self._call("GET", details, token, correlation)
        return endpoints_of(answer.data, f"GET {details}")

    # --- the client side: pulls -----------------------------------------------------------

    async def pages(self, module: str, limit: int | None = None) -> AsyncIterator[Page]:
        """GET the CPO's `module` list (Sender interface) page by page, following each
        `Link: <...>; rel="next"` to the end. `limit` asks for that page size."""
        registration = self._registered()
        url = registration.endpoint(module, "SENDER")
        if url is None:
            raise EmspError(f"the CPO offers no {module} Sender endpoint")
        if limit is not None:
            if limit < 1:
                raise EmspError("the page size must be at least 1")
            url += ("&" if "?" in url else "?") + f"limit={limit}"
        correlation = str(uuid.uuid4())
        seen: set[str] = set()
        next_url: str | None = url
        while next_url is not None:
            if next_url in seen or len(seen) >= MAX_PAGES:
                raise EmspError(f"GET {next_url}: the Link headers go round in circles")
            seen.add(next_url)
            answer = await self._call(
                "GET", next_url, registration.token_c, correlation, functional=True
            )
            if not isinstance(answer.data, list):
                raise EmspError(f"GET {next_url}: the answer's data is not a list")
            yield Page(answer.data, answer.total, next_url)
            next_url = next_link(answer.links, next_url)

    async def pull(self, module: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Every object of `module` the CPO lists (all pages); they are kept in `stores`."""
        objects: list[dict[str, Any]] = []
        async for page in self.pages(module, limit):
            objects.extend(o for o in page.objects if isinstance(o, dict))
        if module in MODULES:
            owner = self._registered().cpo if self.v211 else None
            self.stores.absorb(module, objects, owner)
        return objects

    # --- our tokens -------------------------------------------------------------------------

    def add_token(
        self,
        uid: str,
        whitelist: str = "ALWAYS",
        *,
        type: str = DEFAULT_TYPE,
        valid: bool = True,
    ) -> dict[str, Any]:
        """Issue a token (or reissue the one with this uid and type); the CPO sees it when it
        pulls our list, or after `push_tokens()`. OptionsError for a bad uid or whitelist."""
        if self.v211:
            token = v211.new_token(
                self.party.country_code,
                self.party.party_id,
                self.party.name,
                uid,
                last_updated=self.clock(),
                whitelist=whitelist_type(whitelist),
                type=type,
                valid=valid,
            )
            self.stores.tokens.add(token)
            return token
        token = new_token(
            self.party.country_code,
            self.party.party_id,
            self.party.name,
            uid,
            last_updated=self.clock(),
            whitelist=whitelist,
            type=type,
            valid=valid,
        )
        self.stores.tokens.add(token)
        return token

    def add_tokens(self, count: int) -> list[dict[str, Any]]:
        """`count` RFID tokens `PID0001`, `PID0002`, ... (uids already issued skipped) of
        each whitelist type in turn: ALWAYS, ALLOWED, ALLOWED_OFFLINE, NEVER, ALWAYS, ..."""
        made: list[dict[str, Any]] = []
        for n in itertools.count(1):
            if len(made) == count:
                break
            uid = f"{self.party.party_id.upper()}{n:04d}"
            if self.stores.tokens.get(uid) is None:
                made.append(self.add_token(uid, WHITELISTS[len(made) % len(WHITELISTS)]))
        return made

    def token(self, uid: str, type: str = DEFAULT_TYPE) -> dict[str, Any]:
        """One of our tokens; EmspError when we did not issue it."""
        found = self.stores.tokens.get(uid, self._token_type(type))
        if found is None:
            raise EmspError(f"no token {uid} of type {type} was issued")
        return found

    async def push_tokens(self, tokens: Iterable[dict[str, Any]] | None = None) -> list[TokenSent]:
        """PUT our tokens (all of them unless given) to the CPO's tokens Receiver, one by one."""
        registration = self._registered()
        base = self._cpo_tokens(registration)
        correlation = str(uuid.uuid4())
        sent: list[TokenSent] = []
        for token in list(self.stores.tokens) if tokens is None else list(tokens):
            uid, kind = str(token["uid"]), str(token["type"])
            answer = await self._call(
                "PUT",
                self._token_url(base, uid, kind),
                registration.token_c,
                correlation,
                body=token,
                functional=True,
            )
            sent.append(TokenSent("PUT", uid, kind, token, answer.http_status))
        return sent

    async def patch_token(
        self, uid: str, fields: Mapping[str, Any], *, type: str = DEFAULT_TYPE
    ) -> TokenSent:
        """Change some fields of our token (`{"valid": False}`, `{"whitelist": "NEVER"}`) and
        PATCH the CPO with them and the new last_updated."""
        registration = self._registered()
        kind = self._token_type(type)
        self.token(uid, kind)
        try:
            body = self.stores.tokens.patch(uid, kind, dict(fields), self.clock())
        except OptionsError as exc:
            raise EmspError(str(exc)) from None
        answer = await self._call(
            "PATCH",
            self._token_url(self._cpo_tokens(registration), uid, kind),
            registration.token_c,
            str(uuid.uuid4()),
            body=body,
            functional=True,
        )
        return TokenSent("PATCH", uid, kind, body, answer.http_status)

    async def token_at_cpo(self, uid: str, type: str = DEFAULT_TYPE) -> dict[str, Any]:
        """Our token as the CPO holds it (GET on its tokens Receiver)."""
        registration = self._registered()
        kind = self._token_type(type)
        answer = await self._call(
            "GET",
            self._token_url(self._cpo_tokens(registration), uid, kind),
            registration.token_c,
            str(uuid.uuid4()),
            functional=True,
        )
        if not isinstance(answer.data, dict):
            raise EmspError(f"GET token {uid}: the answer's data is not a Token")
        return answer.data

    def _token_type(self, value: str | None) -> str:
        return v211.token_type(value) if self.v211 else token_type(value)

    def _token_url(self, base: str, uid: str, kind: str) -> str:
        """`{tokens}/{country_code}/{party_id}/{uid}` at the CPO (Receiver interface), our
        party's; 2.2.1 adds `?type=` (2.1.1 has no such parameter)."""
        cc, pid = self.party.country_code.upper(), self.party.party_id.upper()
        url = f"{base.rstrip('/')}/{cc}/{pid}/{quote(uid, safe='')}"
        return url if self.v211 else f"{url}?type={kind}"

    @staticmethod
    def _cpo_tokens(registration: Registration) -> str:
        url = registration.endpoint("tokens", "RECEIVER")
        if url is None:
            raise EmspError("the CPO offers no tokens Receiver endpoint")
        return url

    def _new_reference(self) -> str:
        """An authorization_reference no other answer of ours carries (CiString(36))."""
        return f"{self.party.party_id.upper()}-{next(self._references):06d}-{secrets.token_hex(4)}"

    # --- commands ---------------------------------------------------------------------------

    async def start_session(
        self,
        token: str | dict[str, Any],
        location_id: str,
        evse_uid: str | None = None,
        connector_id: str | None = None,
        authorization_reference: str | None = None,
    ) -> Sent:
        """START_SESSION for our token (its uid, RFID, or a whole Token object) at a location,
        an EVSE of it, a connector of that. A fresh authorization_reference unless given.
        In 2.1.1 there is neither a connector nor a reference: EmspError if one is given."""
        if self.v211:
            if connector_id or authorization_reference:
                raise EmspError("a 2.1.1 START_SESSION names no connector and no reference")
            build = self._checked(
                lambda: v211.start_session(self._command_token(token), location_id, evse_uid)
            )
            return await self._command("START_SESSION", build)
        reference = authorization_reference or self._new_reference()
        build = self._checked(
            lambda: start_session(
                self._command_token(token), location_id, evse_uid, connector_id, reference
            )
        )
        return await self._command("START_SESSION", build)

    async def stop_session(self, session_id: str) -> Sent:
        return await self._command("STOP_SESSION", self._checked(lambda: stop_session(session_id)))

    async def reserve_now(
        self,
        token: str | dict[str, Any],
        location_id: str,
        reservation_id: str,
        *,
        evse_uid: str | None = None,
        expiry_date: datetime | None = None,
        authorization_reference: str | None = None,
    ) -> Sent:
        """RESERVE_NOW until `expiry_date` (default: in 30 minutes); in 2.1.1 the reservation
        id is a whole number and there is no authorization_reference."""
        expiry = expiry_date or self.clock() + timedelta(minutes=30)
        if self.v211:
            if authorization_reference:
                raise EmspError("a 2.1.1 RESERVE_NOW carries no authorization_reference")
            build = self._checked(
                lambda: v211.reserve_now(
                    self._command_token(token), expiry, reservation_id, location_id, evse_uid
                )
            )
            return await self._command("RESERVE_NOW", build)
        build = self._checked(
            lambda: reserve_now(
                self._command_token(token),
                expiry,
                reservation_id,
                location_id,
                evse_uid,
                authorization_reference,
            )
        )
        return await self._command("RESERVE_NOW", build)

    async def cancel_reservation(self, reservation_id: str) -> Sent:
        if self.v211:
            raise EmspError("OCPI 2.1.1 has no CANCEL_RESERVATION command")
        build = self._checked(lambda: cancel_reservation(reservation_id))
        return await self._command("CANCEL_RESERVATION", build)

    async def unlock_connector(self, location_id: str, evse_uid: str, connector_id: str) -> Sent:
        build = self._checked(lambda: unlock_connector(location_id, evse_uid, connector_id))
        return await self._command("UNLOCK_CONNECTOR", build)

    async def command_result(
        self, command_id: str, seconds: float | None = None, *, index: int = 0
    ) -> CommandResult:
        """The `index`-th CommandResult the CPO posted for this command (the first by
        default), waiting for it at most `seconds` (default: the timeout of the CPO's
        CommandResponse, else ours). EmspError when none comes in time."""
        book = self.stores.commands
        sent = book.sent.get(command_id)
        if sent is None:
            raise EmspError(f"no command {command_id} was sent")
        if seconds is None:
            timeout = sent.response.timeout if sent.response else None
            seconds = self.timeout if timeout is None else float(timeout)
        try:
            async with asyncio.timeout(seconds), self._results:
                await self._results.wait_for(lambda: len(book.results_of(command_id)) > index)
        except TimeoutError:
            raise EmspError(
                f"no result for {sent.command} {command_id} within {seconds:g} s"
            ) from None
        return book.results_of(command_id)[index]

    def _command_token(self, token: str | dict[str, Any]) -> dict[str, Any]:
        return self.token(token) if isinstance(token, str) else dict(token)

    @staticmethod
    def _checked(build: Callable[[], Build]) -> Build:
        try:
            return build()
        except OptionsError as exc:
            raise EmspError(str(exc)) from None

    async def _command(self, command: str, build: Build) -> Sent:
        """POST a command to the CPO's commands Receiver with a response_url of its own (a
        fresh id); its result may come in before the CPO's answer does."""
        registration = self._registered()
        base = registration.endpoint("commands", "RECEIVER")
        if base is None:
            raise EmspError("the CPO offers no commands Receiver endpoint")
        command_id = uuid.uuid4().hex
        request = build(self.url(f"{self.version_path}/commands/{command}/{command_id}"))
        book = self.stores.commands
        book.expect(Sent(command_id, command, request, self.clock()))
        url = f"{base.rstrip('/')}/{command}"
        try:
            answer = await self._call(
                "POST", url, registration.token_c, str(uuid.uuid4()), body=request, functional=True
            )
            reader = v211.read_response if self.v211 else read_response
            response = reader(answer.data, f"POST {url}")
        except BaseException:
            book.forget(command_id)
            raise
        return book.answered(command_id, response)

    # --- HTTP client ------------------------------------------------------------------------

    def _registered(self) -> Registration:
        if self.registration is None:
            raise EmspError("not registered with a CPO")
        return self.registration

    def _need_started(self) -> None:
        if self._session is None:
            raise EmspError("start() the simulator first: the CPO calls it back")

    async def _call(
        self,
        method: str,
        url: str,
        token: str,
        correlation_id: str,
        *,
        body: Any = None,
        functional: bool = False,
    ) -> Answer:
        session = self._session
        if session is None:
            raise EmspError("start() the simulator first")
        if self.v211:
            # 2.1.1: the token as it is, and none of 2.2.1's request ids or routing headers.
            headers = {"Authorization": v211.authorization(token), "Accept": "application/json"}
        else:
            headers = {
                "Authorization": authorization(token),
                "X-Request-ID": str(uuid.uuid4()),
                "X-Correlation-ID": correlation_id,
                "Accept": "application/json",
            }
        if functional and self.registration is not None and not self.v211:
            to_country, to_party = self.registration.cpo
            headers.update(
                {
                    "OCPI-from-country-code": self.party.country_code.upper(),
                    "OCPI-from-party-id": self.party.party_id.upper(),
                    "OCPI-to-country-code": to_country,
                    "OCPI-to-party-id": to_party,
                }
            )
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        where = f"{method} {url}"
        try:
            async with (
                asyncio.timeout(self.timeout),
                session.request(method, url, data=data, headers=headers) as response,
            ):
                raw = await response.content.read(MAX_BODY + 1)
                status = response.status
                links = tuple(response.headers.getall("Link", ()))
                total_header = response.headers.get("X-Total-Count")
        except TimeoutError:
            raise EmspError(f"{where}: no answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            raise EmspError(f"{where}: cannot connect: {reason}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise EmspError(f"{where}: {exc or type(exc).__name__}") from None
        return read_answer(where, status, raw, links, total_header)

    # --- the server side ------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        base = self.version_path
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", VERSIONS_PATH, self._versions),
            ("GET", base, self._details),
        ]
        for method in ("GET", "POST", "PUT", "DELETE"):
            routes.append((method, f"{base}/credentials", self._credentials))
        party = "{country_code}/{party_id}"
        locations = f"{base}/locations/{party}/{{location_id}}"
        for suffix in ("", "/{evse_uid}", "/{evse_uid}/{connector_id}"):
            for method in ("GET", "PUT", "PATCH"):
                routes.append((method, locations + suffix, self._locations))
        for method in ("GET", "PUT", "PATCH"):
            routes.append((method, f"{base}/sessions/{party}/{{session_id}}", self._sessions))
        routes.append(("POST", f"{base}/cdrs", self._post_cdr))
        routes.append(("GET", f"{base}/cdrs/{party}/{{cdr_id}}", self._get_cdr))
        for method in ("GET", "PUT", "DELETE"):
            routes.append((method, f"{base}/tariffs/{party}/{{tariff_id}}", self._tariffs))
        routes.append(("GET", f"{base}/tokens", self._token_list))
        routes.append(("POST", f"{base}/tokens/{{uid}}/authorize", self._authorize))
        routes.append(("POST", f"{base}/commands/{{command}}/{{command_id}}", self._command_result))
        for method, path, handler in routes:
            # Trailing slashes are tolerated.
            app.router.add_route(method, path + "{_slash:/?}", handler)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response: web.StreamResponse
        request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        correlation_id = request.headers.get("X-Correlation-ID") or str(uuid.uuid4())
        functional = (
            not self.v211
            and request.path.startswith(self.version_path + "/")
            and not request.path.rstrip("/").endswith("/credentials")
        )
        try:
            http_exception = request.match_info.http_exception
            if http_exception is not None:
                raise http_exception
            if self._token_of(request.headers.get("Authorization")) is None:
                response = self._reply(2000, "unknown or missing credentials token", http=401)
                response.headers["WWW-Authenticate"] = "Token"
            else:
                response = await handler(request)
        except PushRefused as exc:
            response = self._reply(exc.status_code, exc.message, http=exc.http_status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = "unknown path" if exc.status == 404 else exc.reason
            response = self._reply(2000 if exc.status < 500 else 3000, message, http=exc.status)
        except Exception:  # request boundary: a fault is an OCPI 3000, never a traceback
            log.exception("emsp request failed: %s %s", request.method, request.path)
            response = self._reply(3000, f"internal error; request id {request_id}", http=500)
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Correlation-ID"] = correlation_id
        if functional and self.registration is not None:
            to_country = request.headers.get("OCPI-from-country-code")
            to_party = request.headers.get("OCPI-from-party-id")
            if not (to_country and to_party):
                to_country, to_party = self.registration.cpo
            response.headers.update(
                {
                    "OCPI-from-country-code": self.party.country_code.upper(),
                    "OCPI-from-party-id": self.party.party_id.upper(),
                    "OCPI-to-country-code": to_country,
                    "OCPI-to-party-id": to_party,
                }
            )
        return response

    def _token_of(self, header: str | None) -> str | None:
        if self.v211:
            return v211.accepted_token(header, self._tokens)
        return accepted_token(header, self._tokens)

    def _reply(
        self,
        status_code: int = 1000,
        message: str | None = None,
        *,
        data: Any = None,
        http: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = envelope(status_code, message, data, wire_time(self.clock()))
        return web.json_response(body, status=http, headers=headers)

    async def _versions(self, request: web.Request) -> web.Response:
        return self._reply(data=[{"version": self.version, "url": self.url(self.version_path)}])

    async def _details(self, request: web.Request) -> web.Response:
        if self.v211:
            return self._reply(data=v211.details(self.url(self.version_path)))
        endpoints = [
            {
                "identifier": "credentials",
                "role": "SENDER",
                "url": self.url(f"{VERSION_PATH}/credentials"),
            }
        ]
        endpoints += [
            {"identifier": m, "role": "RECEIVER", "url": self.url(f"{VERSION_PATH}/{m}")}
            for m in MODULES
        ]
        # Our token list and authorizations; the results of our commands.
        endpoints += [
            {"identifier": m, "role": "SENDER", "url": self.url(f"{VERSION_PATH}/{m}")}
            for m in ("tokens", "commands")
        ]
        return self._reply(data={"version": VERSION, "endpoints": endpoints})

    async def _credentials(self, request: web.Request) -> web.Response:
        token = self._token_of(request.headers.get("Authorization"))
        assert token is not None
        if request.method == "GET":
            return self._reply(data=self._our_credentials(token))
        registration = self.registration
        if request.method == "POST" and registration is None and token in self._invitations:
            return await self._registered_by(request, token)
        if request.method == "POST" or registration is None:
            # Registered already, or no token A of ours: nothing to register.
            return self._reply(2000, "POST credentials with a token A of invite()", http=405)
        if request.method == "DELETE":
            self._tokens.discard(registration.token_b)
            self.registration = None
            self._record(request, "credentials", "", 200, 1000, "the CPO unregistered us", None)
            return self._reply()
        body = await _read_json(request)
        try:
            token_c, roles = self._their_credentials(body)
            url = body["url"]
            if not isinstance(url, str):
                raise EmspError("url: must be the CPO's versions URL")
            endpoints = await self._discover(
                url, token_c, request.headers.get("X-Correlation-ID") or str(uuid.uuid4())
            )
        except EmspError as exc:
            self._record(request, "credentials", "", 200, 3001, f"refused: {exc}", body)
            return self._reply(3001, str(exc))
        token_b = secrets.token_urlsafe(32)
        self._tokens.discard(registration.token_b)
        self._tokens.add(token_b)
        self.registration = Registration(url, roles, endpoints, token_b, token_c)
        self._record(request, "credentials", "", 200, 1000, "tokens renewed by the CPO", body)
        return self._reply(data=self._our_credentials(token_b))

    async def _registered_by(self, request: web.Request, token_a: str) -> web.Response:
        """A CPO's POST of its credentials with our token A: fetch its versions and our
        version's details with the token it gives us, answer ours with a fresh token B."""
        body = await _read_json(request)
        try:
            token_c, roles = self._their_credentials(body)
            url = body["url"]
            if not isinstance(url, str):
                raise EmspError("url: must be the CPO's versions URL")
            endpoints = await self._discover(
                url, token_c, request.headers.get("X-Correlation-ID") or str(uuid.uuid4())
            )
        except EmspError as exc:
            self._record(request, "credentials", "", 200, 3001, f"refused: {exc}", body)
            return self._reply(3001, str(exc))
        token_b = secrets.token_urlsafe(32)
        self._invitations.discard(token_a)
        self._tokens.discard(token_a)
        self._tokens.add(token_b)
        self.registration = Registration(url, roles, endpoints, token_b, token_c)
        self._record(request, "credentials", "", 200, 1000, "the CPO registered with us", body)
        return self._reply(data=self._our_credentials(token_b))

    def _key(self, request: web.Request, object_field: str) -> Key:
        info = request.match_info
        return key(info["country_code"], info["party_id"], info[object_field])

    def _check_party(self, k: Key) -> None:
        """Objects of a party the CPO did not register are not its own: answered 404
        (spec: Client Owned Object errors)."""
        registration = self.registration
        if registration is not None and (k[0], k[1]) not in registration.parties:
            raise PushRefused(404, 2000, f"{k[0]}/{k[1]} is not a party of this CPO")

    def _held(self, k: Key, lookup: Callable[[Key], Json]) -> web.Response:
        """Answer a GET of the CPO for an object we hold."""
        self._check_party(k)
        return self._reply(data=lookup(k))

    async def _locations(self, request: web.Request) -> web.Response:
        k = self._key(request, "location_id")
        evse_uid = request.match_info.get("evse_uid")
        connector_id = request.match_info.get("connector_id")
        store = self.stores
        if request.method == "GET":
            return self._held(k, lambda k: store.location_part(k, evse_uid, connector_id))
        target = "/".join(p for p in (k[2], evse_uid, connector_id) if p is not None)

        def put(body: Any) -> Taken:
            created = store.put_location(k, evse_uid, connector_id, body)
            return Taken(k, 201 if created else 200, summary("locations", body))

        def patch(body: Any) -> Taken:
            store.patch_location(k, evse_uid, connector_id, body)
            return Taken(k, 200, patch_fields(body))

        return await self._push(
            request, "locations", target, k, put if request.method == "PUT" else patch
        )

    async def _sessions(self, request: web.Request) -> web.Response:
        k = self._key(request, "session_id")
        store = self.stores
        if request.method == "GET":
            return self._held(k, store.session)

        def put(body: Any) -> Taken:
            created = store.put_session(k, body)
            return Taken(k, 201 if created else 200, summary("sessions", store.session(k)))

        def patch(body: Any) -> Taken:
            added = store.patch_session(k, body)
            text = summary("sessions", store.session(k))
            return Taken(k, 200, text + (f" +{added} period(s)" if added else ""))

        return await self._push(
            request, "sessions", k[2], k, put if request.method == "PUT" else patch
        )

    async def _post_cdr(self, request: web.Request) -> web.Response:
        store = self.stores

        def post(body: Any) -> Taken:
            # A 2.1.1 CDR names no party: it is the CPO's that pushes it.
            owner = self.registration.cpo if self.v211 and self.registration else None
            k = store.cdr_key(body, owner)
            self._check_party(k)
            k, created = store.post_cdr(body, owner)
            text = summary("cdrs", store.cdr(k)) + ("" if created else " (again)")
            where = self.url(f"{self.version_path}/cdrs/{k[0]}/{k[1]}/{k[2]}")
            return Taken(k, 201 if created else 200, text, {"Location": where})

        # The CDR's id is known once its body is read.
        return await self._push(request, "cdrs", None, None, post)

    async def _get_cdr(self, request: web.Request) -> web.Response:
        return self._held(self._key(request, "cdr_id"), self.stores.cdr)

    async def _tariffs(self, request: web.Request) -> web.Response:
        k = self._key(request, "tariff_id")
        store = self.stores
        if request.method == "GET":
            return self._held(k, store.tariff)

        def put(body: Any) -> Taken:
            created = store.put_tariff(k, body)
            return Taken(k, 201 if created else 200, summary("tariffs", body))

        def delete(body: Any) -> Taken:
            store.delete_tariff(k)
            return Taken(k, 200, "")

        return await self._push(
            request, "tariffs", k[2], k, put if request.method == "PUT" else delete
        )

    async def _token_list(self, request: web.Request) -> web.Response:
        """GET of our token list (Sender interface): `offset`, `limit` (at most MAX_LIMIT),
        `date_from`, `date_to`; X-Total-Count, X-Limit and a Link to the next page."""
        query = request.query
        try:
            offset = _count(query.get("offset"), "offset", 0)
            limit = min(_count(query.get("limit"), "limit", MAX_LIMIT, least=1), MAX_LIMIT)
            date_from = _moment(query.get("date_from"), "date_from")
            date_to = _moment(query.get("date_to"), "date_to")
        except PushRefused as exc:
            refused = f"refused: {exc.status_code} {exc.message}"
            self._record(request, "tokens", "", exc.http_status, exc.status_code, refused, None)
            raise
        tokens, total = self.stores.tokens.page(offset, limit, date_from, date_to)
        headers = {"X-Total-Count": str(total), "X-Limit": str(MAX_LIMIT)}
        if offset + len(tokens) < total:
            following = {**query, "offset": str(offset + len(tokens)), "limit": str(limit)}
            link = self.url(f"{self.version_path}/tokens") + "?" + urlencode(following)
            headers["Link"] = f'<{link}>; rel="next"'
        text = f"offset={offset} limit={limit}: {len(tokens)} of {total} token(s)"
        self._record(request, "tokens", "", 200, 1000, text, None)
        return self._reply(data=tokens, headers=headers)

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        """A real-time authorization request, answered as `authorize_mode` says; an unknown
        token gets HTTP 404 with 2004 (spec: both)."""
        uid = request.match_info["uid"]
        target = f"{uid}/authorize"
        mode = self.authorize_mode
        body: Any = None
        try:
            try:
                kind = self._token_type(request.query.get("type"))
            except OptionsError as exc:
                raise PushRefused(200, 2001, str(exc)) from None
            if (await request.read()).strip():
                body = await _read_json(request)
            location = location_references(body)
        except PushRefused as exc:
            refused = f"refused: {exc.status_code} {exc.message}"
            self._record(request, "tokens", target, exc.http_status, exc.status_code, refused, body)
            raise
        if mode.kind == "slow":
            await asyncio.sleep(mode.seconds)
        token = self.stores.tokens.get(uid, kind)
        allowed = reference = None
        response: web.StreamResponse
        if mode.kind == "down":
            http, code = 503, 0
            response = web.Response(status=503, text="503 Service Unavailable")
        elif token is None:
            http, code = 404, 2004
            response = self._reply(code, f"unknown token {uid} of type {kind}", http=http)
        else:
            http, code = 200, 1000
            allowed = mode.answer(token)
            if self.v211:
                info = v211.authorization_info(allowed, location)
            else:
                reference = self._new_reference() if allowed == "ALLOWED" else None
                info = authorization_info(token, allowed, location, reference)
            response = self._reply(data=info)
        asked = Authorized(uid, kind, location, allowed, reference, http, code, self.clock())
        self.authorizations.append(asked)
        late = f" after {mode.seconds:g} s" if mode.kind == "slow" else ""
        text = f"{kind} at {where(location)}: {asked.answer}{late}"
        self._record(request, "tokens", target, http, code, text, body)
        return response

    async def _command_result(self, request: web.Request) -> web.Response:
        """A CommandResult the CPO posts to one of our response_urls."""
        command = request.match_info["command"]
        command_id = request.match_info["command_id"]
        store = self.stores

        def take(body: Any) -> Taken:
            taken = store.commands.take(command, command_id, body, self.clock())
            text = taken.result + (f": {taken.message}" if taken.message else "")
            return Taken(key("", "", command_id), 200, text)

        response = await self._push(request, "commands", f"{command}/{command_id}", None, take)
        async with self._results:
            self._results.notify_all()
        return response

    async def _push(
        self, request: web.Request, module: str, target: str | None, owner: Key | None, take: _Take
    ) -> web.Response:
        """Take one push: check whose object it is, read its body, apply it (`take`),
        record it (refused ones too), answer."""
        body: Any = None
        try:
            if owner is not None:
                self._check_party(owner)
            if request.method != "DELETE":
                body = await _read_json(request)
            taken = take(body)
        except PushRefused as exc:
            if target is None:
                target = str(body.get("id")) if isinstance(body, dict) else "?"
            refused = f"refused: {exc.status_code} {exc.message}"
            self._record(request, module, target, exc.http_status, exc.status_code, refused, body)
            raise
        target = taken.key[2] if target is None else target
        self._record(request, module, target, taken.http_status, 1000, taken.text, body)
        return self._reply(http=taken.http_status, headers=taken.headers)

    def _record(
        self,
        request: web.Request,
        module: str,
        target: str,
        http_status: int,
        status_code: int,
        text: str,
        body: Any,
    ) -> None:
        push = Push(
            request.method, module, target, http_status, status_code, text, body, self.clock()
        )
        self.received.append(push)
        if self.on_push is not None:
            self.on_push(push)


def _count(text: str | None, name: str, default: int, *, least: int = 0) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < least:
        raise PushRefused(200, 2001, f"{name} must be a whole number >= {least}, not {text!r}")
    return int(text)


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    moment = parse_wire_time(text)
    if moment is None:
        raise PushRefused(200, 2001, f"{name} must be a DateTime, not {text!r}")
    return moment


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise PushRefused(400, 2001, "the body is not valid JSON") from None
