"""The OCPP WebSocket server: handshake (path, subprotocol, Basic auth, security profile),
one live connection per charge point id, keep-alive and graceful shutdown; ws:// and wss://.

Moves frames between sockets and csms.handlers sessions; no business rules here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote_to_bytes, urlsplit

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.config import OcppConfig
from csms.core.charger import ChargePoint
from csms.core.failures import FailureLimiter, FailurePolicy, address_key, retry_after
from csms.core.ids import charger_id_problem
from csms.core.passwords import verify_or_dummy
from csms.core.quotas import TokenBucket
from csms.gateway.tls import (
    HeldConnection,
    ServerTls,
    TlsGate,
    peer_certificate,
    profile_refusal,
)
from csms.handlers.session import Adapter, OcppSession
from csms.metrics import Metrics
from csms.services.stations import StationService
from csms.storage.database import DatabaseClosed
from csms.workers import TaskSet, Worker

log = structlog.get_logger("csms.gateway")

PRESENCE_FLUSH_SECONDS = 30.0
# Seconds between two log lines about the same connection being read more slowly.
THROTTLE_REPORT_SECONDS = 60.0


@dataclass(slots=True)
class Handshake:
    cp_id: str
    adapter: Adapter
    subprotocol: str | None
    charger: ChargePoint | None


@dataclass(slots=True)
class Live:
    """A charger's live connection."""

    ws: ServerConnection
    session: OcppSession
    done: asyncio.Event = field(default_factory=asyncio.Event)
    replaced: bool = False
    flushed_seen: float = 0.0
    # Frames read late (ocpp.message_rate) since the last log line about it, and when that
    # line was written (None: never).
    throttled: int = 0
    throttle_logged_at: float | None = None


class Registry:
    """Live connections by charge point id (this process only)."""

    def __init__(self) -> None:
        self._live: dict[str, Live] = {}

    def get(self, cp_id: str) -> Live | None:
        return self._live.get(cp_id)

    def put(self, cp_id: str, live: Live) -> None:
        self._live[cp_id] = live

    def remove(self, cp_id: str, live: Live) -> None:
        if self._live.get(cp_id) is live:
            del self._live[cp_id]

    def __len__(self) -> int:
        return len(self._live)

    def items(self) -> list[tuple[str, Live]]:
        return list(self._live.items())


class OcppServer:
    """Accepts chargers on ws://host:port{path}/{charge_point_id} (unless ocpp.plain is
    false) and, with `tls`, on wss://host:tls_port{path}/{charge_point_id}. `organisation`:
    the O a profile-3 charger's client certificate must name."""

    def __init__(
        self,
        config: OcppConfig,
        service: StationService,
        adapters: Sequence[Adapter],
        metrics: Metrics | None = None,
        *,
        tls: ServerTls | None = None,
        organisation: str = "CSMS",
        failures: FailureLimiter | None = None,
    ) -> None:
        self.config = config
        self.tls = tls
        self._organisation = organisation
        self._tls_server: Server | None = None
        self._gate: TlsGate | None = None
        self.metrics = metrics
        self.service = service
        self.registry = Registry()
        # Server preference order decides when a charger offers several versions.
        self._adapters = {a.subprotocol: a for a in adapters}
        self._preference = [a.subprotocol for a in adapters]
        self._server: Server | None = None
        idle = config.idle_timeout
        # Flushes when chargers were last seen and closes idle connections.
        self._presence = Worker(
            "ocpp-presence",
            self._presence_pass,
            period=min(PRESENCE_FLUSH_SECONDS, idle / 4) if idle else PRESENCE_FLUSH_SECONDS,
        )
        self._closing = TaskSet("ocpp-gateway")
        self._verified: dict[str, tuple[str, bytes]] = {}
        # Failed authentication per charger id ("cp:ID") and per source address
        # ("addr:ADDRESS"); see auth_policy.
        self.failures = failures or FailureLimiter(auth_policy(config), time.monotonic)
        # Connections (handshaking or open) per source address, when they are capped.
        self._per_address: dict[str, int] = {}
        self._prefix = config.path.rstrip("/")
        # Several nodes on one database: this node's id, and what to do when a charger
        # another node held connects here (tell that node to close its socket).
        self.node_id: str | None = None
        self.on_taken: Callable[[str, str], Coroutine[Any, Any, None]] | None = None
        # Called (several nodes only) when a charger this process served before comes
        # back from another node: what this process remembers of it is out of date.
        self.on_returned: Callable[[str], None] | None = None
        self._served: set[str] = set()

    @property
    def port(self) -> int:
        """The ws:// port bound (0 when ocpp.plain is false: none)."""
        return _bound_port(self._server)

    @property
    def tls_port(self) -> int:
        """The wss:// port bound (0: none)."""
        return _bound_port(self._tls_server)

    async def start(self) -> None:
        cfg = self.config
        if cfg.plain:
            self._server = await self._serve(cfg.port, None)
            self._listening("ws", self.port)
        if self.tls is not None:
            try:
                self._tls_server = await self._serve(cfg.tls_port, self.tls)
            except BaseException:
                await self._close_servers()
                raise
            self._listening("wss", self.tls_port)
        self._presence.start()

    def _listening(self, scheme: str, port: int) -> None:
        cfg = self.config
        log.info(
            "ocpp_listening",
            scheme=scheme,
            host=cfg.host,
            port=port,
            path=cfg.path or "/",
            subprotocols=self._preference,
            client_certificates=scheme == "wss"
            and self.tls is not None
            and self.tls.files.client_ca_file is not None,
        )

    async def _serve(self, port: int, tls: ServerTls | None) -> Server:
        cfg = self.config
        connection: type[ServerConnection] = ServerConnection
        if tls is not None:
            # The TLS handshake is ours (TlsGate), not asyncio's: a refused client
            # certificate is logged and counted against its address.
            self._gate = TlsGate(
                tls,
                timeout=cfg.handshake_timeout,
                refused=self._tls_refused,
            )
            connection = _after_tls(self._gate)
        return await serve(
            self._handle,
            cfg.host,
            port,
            create_connection=connection,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            subprotocols=[Subprotocol(p) for p in self._preference],
            ping_interval=cfg.ping_interval or None,
            ping_timeout=cfg.ping_timeout or None,
            max_size=cfg.max_message_size,
            max_queue=4,
            compression=None,
            server_header=None,
            close_timeout=5,
            # A client that does not finish its opening handshake in time is dropped: a
            # half-open upgrade request holds a socket like any other.
            open_timeout=cfg.handshake_timeout,
        )

    async def stop(self) -> None:
        """Stop accepting, close every connection (in-flight messages finish), flush."""
        if self._server is None and self._tls_server is None:
            return
        await self._close_servers()
        await self._presence.stop()
        await self._closing.close()
        await self._flush_presence()

    async def _close_servers(self) -> None:
        servers = [s for s in (self._server, self._tls_server) if s is not None]
        for server in servers:
            server.close(close_connections=True)
        for server in servers:
            await server.wait_closed()
        if self._gate is not None:
            await self._gate.close()
        self._server = self._tls_server = None

    def session(self, cp_id: str) -> OcppSession | None:
        """The live session of a charger connected to this process."""
        live = self.registry.get(cp_id)
        return None if live is None else live.session

    def connected_by_version(self) -> dict[str, int]:
        counts: dict[str, int] = {adapter.version: 0 for adapter in self._adapters.values()}
        for _cp_id, live in self.registry.items():
            version = live.session.version
            counts[version] = counts.get(version, 0) + 1
        return counts

    # --- handshake -------------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        peer = _peer(ws)
        crowded = self._count_connection(ws, peer)
        if crowded is not None:
            return crowded
        path = urlsplit(request.path).path
        head, _, last = path.rpartition("/")
        if head != self._prefix or not last:
            log.warning(
                "handshake_refused", peer=peer, path=_printable(path), reason="unknown path"
            )
            return ws.respond(HTTPStatus.NOT_FOUND, "Not a charge point URL\n")
        cp_id, problem = _charger_id(last)
        if problem is not None:
            log.warning("handshake_refused", peer=peer, path=_printable(path), reason=problem)
            return ws.respond(HTTPStatus.BAD_REQUEST, f"Charge point id refused: {problem}\n")
        offered = _offered_subprotocols(request.headers)
        chosen: str | None = None
        if offered:
            chosen = next((p for p in self._preference if p in offered), None)
            if chosen is None:
                log.warning(
                    "handshake_refused",
                    peer=peer,
                    charge_point_id=cp_id,
                    reason="no supported subprotocol",
                    offered=offered,
                    supported=self._preference,
                )
                return ws.respond(
                    HTTPStatus.BAD_REQUEST,
                    f"No supported OCPP subprotocol offered; supported: "
                    f"{', '.join(self._preference)}\n",
                )
            adapter = self._adapters[chosen]
        else:
            if self.config.no_subprotocol == "refuse" or "ocpp1.6" not in self._adapters:
                log.warning(
                    "handshake_refused",
                    peer=peer,
                    charge_point_id=cp_id,
                    reason="no subprotocol header",
                )
                return ws.respond(HTTPStatus.BAD_REQUEST, "Sec-WebSocket-Protocol is required\n")
            adapter = self._adapters["ocpp1.6"]
        charger = await self.service.charge_point(cp_id)
        profile = 1 if charger is None else charger.security_profile
        keys = (f"cp:{cp_id}", f"addr:{address_key(_host(ws))}")
        if self._authenticates(charger, profile):
            limited = self._check_limited(ws, keys)
            if limited is not None:
                return limited
        refusal = self._check_profile(ws, profile, cp_id, peer)
        if refusal is not None:
            if profile == 3 and ws.transport.get_extra_info("ssl_object") is not None:
                # A missing or wrong client certificate: a failed authentication.
                self._auth_failed(keys, cp_id, peer)
            return refusal
        if profile < 3:
            # Profile 3 authenticates with its certificate instead of a password.
            refusal = await self._check_auth(ws, request, charger, cp_id, peer, keys)
            if refusal is not None:
                return refusal
        if charger is None:
            reason = await self.service.quotas.enrolment_refusal()
            if reason is not None:
                # Logged once a minute at most (with the count), counted in the metrics.
                self.service.quotas.refused(cp_id, reason, "handshake", peer)
                return ws.respond(
                    HTTPStatus.FORBIDDEN,
                    f"Unknown charge point and {reason}: ask the operator to add it\n",
                )
        ws.csms_handshake = Handshake(cp_id, adapter, chosen, charger)  # type: ignore[attr-defined]
        return None

    def _select_subprotocol(
        self, ws: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        handshake: Handshake | None = getattr(ws, "csms_handshake", None)
        if handshake is None or handshake.subprotocol is None:
            return None
        return Subprotocol(handshake.subprotocol)

    def _check_profile(
        self, ws: ServerConnection, profile: int, cp_id: str, peer: str
    ) -> Response | None:
        """Refuse a charger whose security profile this connection does not meet: profiles
        2 and 3 only over TLS, 3 only with our client certificate naming it."""
        ssl_object = ws.transport.get_extra_info("ssl_object")
        reason = profile_refusal(
            profile,
            ssl_object is not None,
            peer_certificate(ssl_object),
            cp_id,
            self._organisation,
        )
        if reason is None:
            return None
        log.warning(
            "connection_refused",
            peer=peer,
            charge_point_id=cp_id,
            security_profile=profile,
            reason=reason,
        )
        # The reason is logged, not told: it would say which ids exist and how they connect.
        return ws.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")

    def _authenticates(self, charger: ChargePoint | None, profile: int) -> bool:
        """Whether this charger's handshake checks a password or a client certificate."""
        if profile >= 2 or self.config.require_auth:
            return True
        return charger is not None and charger.password_hash is not None

    def _check_limited(self, ws: ServerConnection, keys: tuple[str, str]) -> Response | None:
        """429 while the charger id or the source address waits out its back-off: the
        credentials are not even looked at (no hashing for a guesser)."""
        wait = max(self.failures.wait(key) for key in keys)
        if wait <= 0:
            return None
        if self.metrics is not None:
            self.metrics.auth_limited("ocpp")
        after = retry_after(wait)
        response = ws.respond(
            HTTPStatus.TOO_MANY_REQUESTS, f"Too many failed attempts: retry in {after} s\n"
        )
        response.headers["Retry-After"] = after
        return response

    def _tls_refused(self, host: str | None, reason: str, certificate: bool) -> None:
        """A TLS handshake failed. A refused client certificate (foreign CA, expired) is a
        failed authentication of its address: it extends the address's back-off, which the
        upgrade requests from there then meet (429), and is logged until the back-off
        starts (then once per window). Anything else (no TLS at all, no common version)
        is only counted, and logged at debug level: scanners do it all day."""
        if self.metrics is not None:
            self.metrics.tls_handshake_failed("ocpp", certificate)
        if not certificate:
            log.debug("tls_handshake_failed", peer=host, reason=reason)
            return
        key = f"addr:{address_key(host)}"
        if self.failures.wait(key) <= 0:
            log.warning("tls_handshake_refused", peer=host, reason=reason)
        self._auth_failed((key,), None, host or "unknown")

    def _auth_failed(self, keys: tuple[str, ...], cp_id: str | None, peer: str) -> None:
        if self.metrics is not None:
            self.metrics.auth_failed("ocpp")
        for key in keys:
            failure = self.failures.failed(key)
            if failure.started_limiting:
                # Once per window and key: the limiter forgets a key forget_after seconds
                # after its last failure.
                log.warning(
                    "auth_failures_limited",
                    listener="ocpp",
                    key=key,
                    charger_id=cp_id,
                    address=peer,
                    failures=failure.failures,
                    wait_s=failure.wait,
                )

    async def _check_auth(
        self,
        ws: ServerConnection,
        request: Request,
        charger: ChargePoint | None,
        cp_id: str,
        peer: str,
        keys: tuple[str, str],
    ) -> Response | None:
        stored = None if charger is None else charger.password_hash
        # Profile 2 is TLS plus Basic auth: never without a password.
        profile_2 = charger is not None and charger.security_profile == 2
        if stored is None and not self.config.require_auth and not profile_2:
            return None
        credentials = _basic_credentials(request.headers.get("Authorization"), cp_id)
        reason = None
        if credentials is None:
            reason = "missing credentials"
        elif credentials[0] != cp_id:
            reason = "user name is not the charge point id"
        elif not await self._password_ok(cp_id, credentials[1], stored):
            # An unknown id, or one without a password, is checked against a dummy hash:
            # the answer takes as long as for a known id.
            if charger is not None and stored is None:
                # Not a guess: this charger simply has no password configured.
                reason = "no password set for this charge point"
            else:
                reason = "wrong password"
                self._auth_failed(keys, cp_id, peer)
        if reason is None:
            # The right password: this id's back-off starts afresh (its address's does not).
            self.failures.succeeded(keys[0])
            return None
        log.warning("handshake_refused", peer=peer, charge_point_id=cp_id, reason=reason)
        response = ws.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    async def _password_ok(self, cp_id: str, password: str, stored: str | None) -> bool:
        if stored is None:
            await asyncio.to_thread(verify_or_dummy, password, None)
            return False
        # Reconnection storms must not cost a slow hash each: remember a fast digest of the
        # last password that verified against this stored hash.
        quick = hashlib.sha256(stored.encode() + b"\0" + password.encode()).digest()
        cached = self._verified.get(cp_id)
        if cached is not None and cached[0] == stored and hmac.compare_digest(cached[1], quick):
            return True
        ok = await asyncio.to_thread(verify_or_dummy, password, stored)
        if ok:
            self._verified[cp_id] = (stored, quick)
        return ok

    def _count_connection(self, ws: ServerConnection, peer: str) -> Response | None:
        """503 when the source address already holds ocpp.max_connections_per_address
        connections; otherwise count this one until it closes."""
        cap = self.config.max_connections_per_address
        if not cap:
            return None
        key = address_key(_host(ws))
        count = self._per_address.get(key, 0)
        if count >= cap:
            log.warning(
                "connection_refused",
                peer=peer,
                reason="too many connections from this address",
                connections=count,
                limit=cap,
            )
            return ws.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections from your address\n"
            )
        self._per_address[key] = count + 1
        self._closing.spawn(self._uncount_when_closed(ws, key), name=f"count {key}")
        return None

    def connections_from(self, address: str) -> int:
        """Connections counted for a source address (only while they are capped)."""
        return self._per_address.get(address_key(address), 0)

    async def _uncount_when_closed(self, ws: ServerConnection, key: str) -> None:
        try:
            await ws.wait_closed()
        finally:
            left = self._per_address.get(key, 1) - 1
            if left > 0:
                self._per_address[key] = left
            else:
                self._per_address.pop(key, None)

    # --- connection ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        handshake: Handshake = ws.csms_handshake  # type: ignore[attr-defined]
        del ws.csms_handshake  # type: ignore[attr-defined]
        cp_id, adapter = handshake.cp_id, handshake.adapter
        clear_contextvars()
        bind_contextvars(charge_point_id=cp_id, ocpp_version=adapter.version, peer=_peer(ws))
        # The newest connection wins: replace whatever is registered (again, if another
        # connection for this id registered while we waited), then register without
        # yielding in between.
        while (previous := self.registry.get(cp_id)) is not None:
            previous.replaced = True
            log.info("connection_replaced")
            await previous.ws.close(1000, "replaced by a new connection")
            await previous.done.wait()
        known = handshake.charger
        if self.on_returned is not None:
            if (
                cp_id in self._served
                and known is not None
                and known.node_id not in (None, self.node_id)
            ):
                self.on_returned(cp_id)
            self._served.add(cp_id)
        validation = (known.validation if known else None) or self.config.validation
        session = OcppSession(
            cp_id,
            adapter,
            ws.send,
            registration=None,
            lenient=validation == "lenient",
            metrics=self.metrics,
        )
        live = Live(ws, session)
        live.flushed_seen = session.last_seen
        self.registry.put(cp_id, live)
        closed_by = "charger"
        rate = self.config.message_rate
        limit = TokenBucket(rate, self.config.message_burst, time.monotonic()) if rate else None
        try:
            session.registration = await self.service.connected(cp_id, adapter.version, known)
            held_by = known.node_id if known is not None and known.connected else None
            if held_by is not None and held_by != self.node_id and self.on_taken is not None:
                # Recorded here first: the node told to let go of its socket finds that.
                self._closing.spawn(self.on_taken(cp_id, held_by), name=f"taken-{cp_id}")
            log.info(
                "charger_connected",
                registration=(
                    "unknown" if session.registration is None else session.registration.value
                ),
                connected=len(self.registry),
            )
            async for text in ws:
                if limit is not None:
                    # Faster than ocpp.message_rate: the frame waits (and with it the
                    # reading of the socket), so a flood costs its sender time, not others CPU.
                    wait = limit.reserve(time.monotonic())
                    if wait > 0:
                        self._throttled(live, wait)
                        await asyncio.sleep(wait)
                await session.on_text(text)
        except ConnectionClosed:
            closed_by = "network"
        finally:
            self.registry.remove(cp_id, live)
            session.fail_pending(ConnectionError(f"{cp_id} disconnected"))
            try:
                # A charger that never booted is not stored: nothing to mark.
                if not live.replaced and session.registration is not None:
                    seen = datetime.fromtimestamp(session.last_seen, UTC)
                    await self.service.disconnected(cp_id, seen)
            except DatabaseClosed as exc:
                # The server stops because its database writer died: the next start marks
                # every charger disconnected anyway.
                log.warning("disconnect_not_recorded", error=str(exc))
            finally:
                live.done.set()
            log.info(
                "charger_disconnected",
                closed_by=closed_by,
                code=ws.close_code,
                replaced=live.replaced,
            )

    def release(self, cp_id: str) -> None:
        """The charger connected to another node, which recorded it: close this node's
        socket, without marking it disconnected."""
        live = self.registry.get(cp_id)
        if live is None:
            return
        live.replaced = True
        log.info("connection_replaced", charge_point_id=cp_id, by="another node")
        self._closing.spawn(
            live.ws.close(1000, "replaced by a new connection"), name=f"release-{cp_id}"
        )

    async def reannounce(self) -> None:
        """Record again every charger connected here (this node was taken for dead and
        its chargers marked offline)."""
        # Side by side: the writes share the writer's batches.
        await asyncio.gather(
            *(
                self.service.still_connected(cp_id, live.session.version, registration)
                for cp_id, live in self.registry.items()
                if (registration := live.session.registration) is not None
            )
        )

    def _throttled(self, live: Live, wait: float) -> None:
        if self.metrics is not None:
            self.metrics.throttle(wait)
        live.throttled += 1
        now = time.monotonic()
        logged = live.throttle_logged_at
        if logged is not None and now - logged < THROTTLE_REPORT_SECONDS:
            return
        log.warning(
            "charger_throttled",
            charge_point_id=live.session.cp_id,
            frames=live.throttled,
            message_rate=self.config.message_rate,
            message_burst=self.config.message_burst,
        )
        live.throttle_logged_at = now
        live.throttled = 0

    # --- presence --------------------------------------------------------------------

    async def _presence_pass(self) -> None:
        await self._flush_presence()
        self._close_idle()

    async def _flush_presence(self) -> None:
        changed: list[tuple[str, datetime]] = []
        lives: list[Live] = []
        for cp_id, live in self.registry.items():
            if live.session.registration is None:
                continue  # not stored until it boots
            if live.session.last_seen > live.flushed_seen:
                changed.append((cp_id, datetime.fromtimestamp(live.session.last_seen, UTC)))
                lives.append(live)
        if changed:
            await self.service.seen(changed)
            for live in lives:
                live.flushed_seen = live.session.last_seen

    def _close_idle(self) -> None:
        limit = self.config.idle_timeout
        if not limit:
            return
        cutoff = time.time() - limit
        for cp_id, live in self.registry.items():
            # Idle: nothing heard for `limit` and no answer of ours under way (a boot that
            # waits for a slow database is not the charger's silence).
            if live.session.last_seen < cutoff and not live.session.handling:
                log.info("charger_idle_closed", charge_point_id=cp_id, idle_seconds=limit)
                self._closing.spawn(live.ws.close(1001, "idle timeout"), name=f"idle-close-{cp_id}")


def _bound_port(server: Server | None) -> int:
    if server is None:
        return 0
    sockets = list(server.sockets)
    return int(sockets[0].getsockname()[1])


def _peer(ws: ServerConnection) -> str:
    address: Any = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _after_tls(gate: TlsGate) -> type[ServerConnection]:
    """The WebSocket connection class of a wss:// listener served as plain TCP: the first
    connection_made (the TCP connection) hands it to the gate for the TLS handshake; the
    second (the gate's, with the TLS transport once the handshake succeeded) starts the
    WebSocket."""

    class AfterTls(ServerConnection):
        _held: HeldConnection | None = None
        _open = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            held = self._held
            if held is None:
                self._held = gate.start(cast(asyncio.Transport, transport), self)
                return
            self._open = True
            super().connection_made(transport)
            if held.plain:
                super().data_received(bytes(held.plain))
                held.plain.clear()
            if held.eof:
                super().eof_received()

        def data_received(self, data: bytes) -> None:
            if self._open:
                super().data_received(data)
            elif self._held is not None:  # before the gate gave us the TLS transport
                self._held.data_received(data)

        def eof_received(self) -> None:
            if self._open:
                super().eof_received()
            elif self._held is not None:
                self._held.eof = True

        def connection_lost(self, exc: Exception | None) -> None:
            if self._open:
                super().connection_lost(exc)
            elif self._held is not None:  # nothing was started: the gate will not start it
                self._held.lost = True

    return AfterTls


def _host(ws: ServerConnection) -> str | None:
    address: Any = ws.remote_address
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None if address is None else str(address)


def auth_policy(config: OcppConfig) -> FailurePolicy:
    """The back-off of failed charger authentication that the ocpp.auth_* keys describe."""
    cap = config.auth_backoff_cap_seconds
    return FailurePolicy(
        free=config.auth_free_failures,
        first_wait=min(1.0, cap),
        max_wait=cap,
        forget_after=max(900.0, cap),
    )


def _offered_subprotocols(headers: Headers) -> list[str]:
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        with contextlib.suppress(InvalidHeader):
            offered.extend(parse_subprotocol(value))
    return offered


def _charger_id(segment: str) -> tuple[str, str | None]:
    """The charge point id of the URL's last path segment, and why it is refused (None when
    it is not). Percent-escapes are decoded strictly: bytes that are not UTF-8 are refused,
    never replaced (two different raw ids must not become one charger)."""
    try:
        cp_id = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        return segment, "the charge point id is not valid UTF-8"
    return cp_id, charger_id_problem(cp_id)


def _printable(path: str, limit: int = 200) -> str:
    """A request path for the log: ASCII only (control characters and bytes escaped)."""
    text = path.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _basic_credentials(header: str | None, cp_id: str) -> tuple[str, str] | None:
    """(user, password) of a Basic Authorization header. The user is the charge point id,
    which may contain ":" (identifierString does): a header that starts with the id and a
    colon is split there."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if decoded.startswith(cp_id + ":"):
        return cp_id, decoded[len(cp_id) + 1 :]
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password
