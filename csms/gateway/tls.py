"""TLS for the listeners: server contexts built from the configured PEM files (TLS 1.2 or
newer, optional client certificates), reloaded in place on SIGHUP, and the client
certificate a connection presented, checked against a charger's security profile.

Files and ssl contexts only; which charger needs which profile is stored with the charger
(csms.core.charger) and decided at the handshake (csms.gateway.server).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import structlog

from csms.config import ApiConfig, Config, OcpiConfig, tls_enabled

log = structlog.get_logger("csms.gateway.tls")


class TlsError(OSError):
    """A certificate, key or CA file cannot be used; the message names the setting and the
    file. (An OSError: start-up reports it in one line like a port already taken.)"""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where one listener's certificate chain, key and (optional) client CA bundle are;
    `setting` names the configuration section, for messages."""

    setting: str
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    ciphers: str = ""  # OpenSSL cipher list for TLS 1.2; empty: Python's defaults


class ServerTls:
    """One listener's SSLContext. `reload()` reads the files again into the same context:
    the handshakes that follow use the new certificate; open connections keep theirs.
    (A client CA removed from the bundle stays trusted until the next start.)"""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.context = _context(files)

    def reload(self) -> bool:
        """Load the files again; False (and logged) when they cannot be used, in which
        case the context keeps what it had."""
        try:
            _context(self.files)  # everything loads and fits together before the live one
            _load(self.context, self.files)
        except TlsError as exc:
            log.error("tls_reload_failed", setting=self.files.setting, error=str(exc))
            return False
        log.info(
            "tls_reloaded",
            setting=self.files.setting,
            cert_file=self.files.cert_file,
            client_ca_file=self.files.client_ca_file,
        )
        return True


@dataclass(frozen=True, slots=True)
class HttpsPort:
    """Where an HTTP listener also serves HTTPS, and its certificate."""

    host: str
    port: int
    tls: ServerTls


def _context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.ciphers:
        try:
            context.set_ciphers(files.ciphers)
        except ssl.SSLError as exc:
            raise TlsError(
                f"{files.setting}.tls_ciphers: {files.ciphers!r} selects no cipher OpenSSL knows"
            ) from exc
    _load(context, files)
    if files.client_ca_file is not None:
        # Optional: profile-2 chargers have no certificate. One that is presented must
        # chain to the bundle and be valid now, or the TLS handshake fails.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _load(context: ssl.SSLContext, files: TlsFiles) -> None:
    section = files.setting
    for key, path in (("tls_cert_file", files.cert_file), ("tls_key_file", files.key_file)):
        if not Path(path).is_file():
            raise TlsError(f"{section}.{key}: {path} does not exist or is not a file")
    try:
        context.load_cert_chain(files.cert_file, files.key_file)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsError(
            f"{section}.tls_cert_file / tls_key_file: {files.cert_file} and {files.key_file} "
            f"are not a PEM certificate and its unencrypted key ({_reason(exc)})"
        ) from exc
    except OSError as exc:
        raise TlsError(f"{section}.tls_cert_file: {exc.strerror or exc}") from exc
    if files.client_ca_file is not None:
        path = files.client_ca_file
        try:
            context.load_verify_locations(cafile=path)
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(
                f"{section}.tls_client_ca_file: {path} is not a PEM bundle of CA "
                f"certificates ({_reason(exc)})"
            ) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def ocpp_tls(config: Config) -> ServerTls | None:
    """The wss:// listener's context, None when ocpp.tls_cert_file/tls_key_file are not
    set. Client certificates: ocpp.tls_client_ca_file, else the CA's trusted.pem when it
    exists."""
    ocpp = config.ocpp
    if not tls_enabled(ocpp):
        return None
    client_ca: str | None = ocpp.tls_client_ca_file or None
    if client_ca is None:
        bundle = Path(config.ca.directory) / "trusted.pem"
        client_ca = str(bundle) if bundle.is_file() else None
    return ServerTls(
        TlsFiles("ocpp", ocpp.tls_cert_file, ocpp.tls_key_file, client_ca, ocpp.tls_ciphers)
    )


def https_tls(name: str, section: ApiConfig | OcpiConfig) -> ServerTls | None:
    """An HTTP listener's context (`name`: api or ocpi), None without its TLS files."""
    if not tls_enabled(section):
        return None
    return ServerTls(TlsFiles(name, section.tls_cert_file, section.tls_key_file))


def https_port(name: str, section: ApiConfig | OcpiConfig) -> HttpsPort | None:
    """Where an HTTP listener (`name`: api or ocpi) serves HTTPS, None without TLS files."""
    tls = https_tls(name, section)
    return None if tls is None else HttpsPort(section.host, section.tls_port, tls)


def reload_all(contexts: Iterable[ServerTls | None]) -> None:
    """SIGHUP: every listener's files again (one that fails keeps its old certificate)."""
    for tls in contexts:
        if tls is not None:
            tls.reload()


# --- client certificates ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The subject of the verified certificate a client presented."""

    common_name: str | None
    organisation: str | None


def peer_certificate(ssl_object: Any) -> PeerCertificate | None:
    """The client's certificate on a TLS connection (`ssl_object`: the transport's
    "ssl_object"), None when it presented none. Only verified certificates get here: one
    that does not chain to the client CA bundle fails the TLS handshake."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    names: dict[str, str] = {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            names.setdefault(key, value)
    return PeerCertificate(names.get("commonName"), names.get("organizationName"))


def profile_refusal(
    profile: int, tls: bool, cert: PeerCertificate | None, cp_id: str, organisation: str
) -> str | None:
    """Why a charger with security `profile` may not connect this way (None: it may)."""
    if profile >= 2 and not tls:
        return f"security profile {profile} requires wss:// (TLS)"
    if profile == 3:
        if cert is None:
            return "security profile 3 requires a client certificate; none was presented"
        if cert.common_name != cp_id:
            return f"the client certificate is for {cert.common_name!r}, not this charge point"
        if cert.organisation != organisation:
            return (
                f"the client certificate's organisation is {cert.organisation!r}, "
                f"not {organisation!r}"
            )
    return None


# --- the TLS handshake, done by us --------------------------------------------------------

# What a refused handshake tells: the source address and why (OpenSSL's words).
HandshakeRefused = Callable[[str | None, str, bool], None]
# Bytes a client may send before the handshake takes over its connection (a ClientHello
# is a few hundred bytes; post-quantum key shares make it a few KiB).
EARLY_BYTES_MAX = 64 * 1024


class HeldConnection:
    """What arrives for a connection while the gate has it. Before the TLS layer is in
    place, the raw bytes (uvloop starts reading right after connection_made, whatever the
    protocol asked, so the ClientHello may come first): the gate hands them to the layer.
    After it, the first decrypted bytes, the end of the stream or the loss of the
    connection (with TLS 1.3 the client's first request comes with its last handshake
    message, and the layer delivers it at once): the protocol replays them once the gate
    has given it the TLS transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.early = bytearray()  # raw bytes, before the TLS layer
        self.handed_over = False  # the TLS layer is in place
        self.plain = bytearray()  # decrypted bytes, before the protocol has its transport
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        held = self.plain if self.handed_over else self.early
        held += data
        if len(held) > EARLY_BYTES_MAX:
            self.transport.abort()


class TlsGate:
    """Runs a listener's TLS handshakes itself, so that a refused one is seen.

    asyncio's own TLS servers drop a failed handshake silently (an ssl error is an OSError,
    only logged in debug mode), so a client certificate from a foreign CA or an expired one
    would be neither logged nor counted against its address. The listener serves plain TCP;
    its protocol hands each new connection to `start()` and keeps what arrives meanwhile
    in a HeldConnection. The handshake runs with `loop.start_tls`, and only a connection
    whose handshake succeeded reaches the protocol (its connection_made again, now with the
    TLS transport). `refused(host, reason, certificate)` hears of every failed handshake
    (`certificate`: the client's certificate was refused, an authentication failure)."""

    def __init__(
        self,
        tls: ServerTls,
        *,
        timeout: float,
        refused: HandshakeRefused,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.tls = tls
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self._refused = refused
        self._handshakes: set[asyncio.Task[None]] = set()

    def start(self, transport: asyncio.Transport, protocol: asyncio.Protocol) -> HeldConnection:
        """A TCP connection was accepted for `protocol`: shake hands before it sees it.
        The protocol passes what it receives until then to the HeldConnection returned."""
        held = HeldConnection(transport)
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._handshake(held, protocol))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)
        return held

    async def _handshake(self, held: HeldConnection, protocol: asyncio.Protocol) -> None:
        transport = held.transport
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if transport.is_closing() or held.eof or held.lost:
            self._refused(host, "closed before the TLS handshake", False)
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        # Runs after start_tls below has put its TLS layer in place and before that layer's
        # connection_made (both loops schedule it with call_soon inside start_tls, after
        # this): the layer finds the early bytes waiting when its handshake starts.
        loop.call_soon(_hand_over, held)
        try:
            tls_transport = await loop.start_tls(
                transport,
                protocol,
                self.tls.context,
                server_side=True,
                ssl_handshake_timeout=self.timeout,
                ssl_shutdown_timeout=self.shutdown_timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            self._refused(host, exc.verify_message or _reason(exc), True)
        except ssl.SSLError as exc:
            self._refused(host, _reason(exc), False)
        except TimeoutError:
            self._refused(host, "TLS handshake timed out", False)
        except (OSError, EOFError) as exc:
            self._refused(host, _reason(exc) or type(exc).__name__, False)
        except asyncio.CancelledError:
            transport.abort()
            raise
        else:
            if tls_transport is None or held.lost:  # it went away as the handshake ended
                return
            protocol.connection_made(tls_transport)

    async def close(self) -> None:
        """Abandon the handshakes under way (at shutdown)."""
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)


def _hand_over(held: HeldConnection) -> None:
    """Give the bytes that arrived before the handshake to the TLS layer now in place."""
    held.handed_over = True
    if not held.early or held.transport.is_closing():
        return
    layer = held.transport.get_protocol()
    data = bytes(held.early)
    held.early.clear()
    if hasattr(layer, "buffer_updated"):  # asyncio's and uvloop's TLS layers are buffered
        buffered = cast(asyncio.BufferedProtocol, layer)
        view = memoryview(data)
        while view:
            buffer = memoryview(buffered.get_buffer(len(view)))
            n = min(len(buffer), len(view))
            buffer[:n] = view[:n]
            buffered.buffer_updated(n)
            view = view[n:]
    else:
        cast(asyncio.Protocol, layer).data_received(data)
