"""TLS for the listeners: server contexts built from the configured PEM files (TLS 1.2 or
newer, optional client certificates), reloaded in place on SIGHUP, and the client
certificate a connection presented, checked against a charger's security profile.

Files and ssl contexts only; which charger needs which profile is stored with the charger
(csms.core.charger) and decided at the handshake (csms.gateway.server).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
