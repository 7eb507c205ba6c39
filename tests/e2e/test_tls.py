"""TLS on every listener and per-charger security profiles, with real certificates: a
server certificate from a test CA, charger certificates from our CA (`csms ca`), and
others from a foreign CA or already expired.

One TLS server serves the module; the tests that need another configuration (no plain
listener, a server process that gets SIGHUP) start their own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.app import CsmsApp
from csms.core.certificates import CaSettings, Issued
from csms.core.clock import utc_now
from csms.core.errors import InvalidInput
from csms.services.pki import CertificateAuthority
from csms.services.staff import StaffService
from simulators.charger import ChargerBase
from simulators.errors import ConnectError
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from tests.e2e.certs import NOW, Authority, pem, write_pair
from tests.e2e.certs import name as subject
from tests.e2e.cli import Ran
from tests.e2e.conftest import make_config
from tests.e2e.logs import Captured, captured_logs
from tests.postgres import db_url_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

ORG = "TLS Test CPO"
PASSWORD = "profile-2-password"


# --- certificates ------------------------------------------------------------------------


def charger_pair(ca: CertificateAuthority, cp_id: str, where: Path, name: str) -> tuple[str, str]:
    """A charger certificate issued by our CA from the charger's own CSR."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(cp_id, ORG))
        .sign(key, hashes.SHA256())
    )
    issued = ca.sign(cp_id, csr.public_bytes(serialization.Encoding.PEM))
    assert isinstance(issued, Issued), issued
    return write_pair(where, name, issued.chain_pem, key)


@dataclass
class Pki:
    dir: Path
    ca_dir: Path  # our charging station CA (`csms ca`), its trusted.pem the client CA
    server_ca: str  # what chargers trust: the CA of the server certificate
    server_cert: tuple[str, str]
    foreign_ca: str  # trusted by nobody on the server side
    cp3: tuple[str, str]  # CN=CP3, from our CA
    other: tuple[str, str]  # CN=CP3-OTHER, from our CA
    expired: tuple[str, str]  # CN=CP3, from our CA, expired
    foreign: tuple[str, str]  # CN=CP3 O=ORG, from the foreign CA
    cp3_201: tuple[str, str]  # CN=CP3-201, from our CA


def make_pki(where: Path) -> Pki:
    server_ca = Authority.new("Test Server CA")
    server_ca_path = where / "server-ca.pem"
    server_ca_path.write_bytes(pem(server_ca.cert))
    server_cert = write_pair(where, "server", *server_ca.issue("localhost", "Test", server=True))
    foreign = Authority.new("Foreign CA", ORG)
    foreign_path = where / "foreign-ca.pem"
    foreign_path.write_bytes(pem(foreign.cert))
    settings = CaSettings(organisation=ORG, certificate_validity_days=5)
    ca_dir = where / "ca"
    ours = CertificateAuthority(ca_dir, settings, utc_now)
    ours.create()
    # Issued 30 days ago for 1 day: expired 29 days ago, by the CA that is trusted now.
    old = CertificateAuthority(
        ca_dir,
        CaSettings(organisation=ORG, certificate_validity_days=1),
        lambda: NOW - dt.timedelta(days=30),
    )
    return Pki(
        dir=where,
        ca_dir=ca_dir,
        server_ca=str(server_ca_path),
        server_cert=server_cert,
        foreign_ca=str(foreign_path),
        cp3=charger_pair(ours, "CP3", where, "cp3"),
        other=charger_pair(ours, "CP3-OTHER", where, "other"),
        expired=charger_pair(old, "CP3", where, "expired"),
        foreign=write_pair(where, "foreign-cp3", *foreign.issue("CP3", ORG)),
        cp3_201=charger_pair(ours, "CP3-201", where, "cp3-201"),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- one TLS server for the module ---------------------------------------------------------


@dataclass
class Tls:
    app: CsmsApp
    pki: Pki

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.app.ocpp.port}/ocpp"

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.app.ocpp.tls_port}/ocpp"

    @property
    def staff(self) -> StaffService:
        return StaffService(self.app.db, utc_now)


def tls_sections(pki: Pki) -> dict[str, dict[str, Any]]:
    cert, key = pki.server_cert
    return {
        "ocpp": {"tls_port": 0, "tls_cert_file": cert, "tls_key_file": key},
        "api": {"tls_port": 0, "tls_cert_file": cert, "tls_key_file": key},
        "ocpi": {"tls_port": 0, "tls_cert_file": cert, "tls_key_file": key},
        # tls_client_ca_file is left empty: the CA's trusted.pem is the default.
        "ca": {"directory": str(pki.ca_dir), "organisation": ORG},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls(
    backend: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Tls]:
    """One server per database the module runs on (`backend`): each has its own database
    and its own back-off of failed authentication."""
    db_path = tmp_path_factory.mktemp("db") / "csms.db"
    app = CsmsApp(make_config(db_path, **tls_sections(pki)))
    await app.start()
    staff = StaffService(app.db, utc_now)
    await staff.add_charger("CP2", password=PASSWORD, security_profile=2)
    await staff.add_charger("CP2-201", password=PASSWORD, security_profile=2)
    await staff.add_charger("CP3", security_profile=3)
    await staff.add_charger("CP3-201", security_profile=3)
    try:
        yield Tls(app, pki)
    finally:
        await app.stop()


@asynccontextmanager
async def online(
    url: str, cp_id: str, version: str = "1.6", **options: Any
) -> AsyncIterator[ChargerBase]:
    """A simulated charger connected and booted (Accepted)."""
    kind = V201Charger if version == "2.0.1" else V16Charger
    cp = kind(
        ChargerOptions(url=url, charger_id=cp_id, version=version, response_timeout=10, **options)
    )
    await cp.connect()
    try:
        answer = await cp.boot()
        assert answer["status"] == "Accepted", answer
        yield cp
    finally:
        await cp.close()


async def refused(url: str, cp_id: str, **options: Any) -> str:
    """The one-line reason a simulated charger cannot connect."""
    cp = V16Charger(ChargerOptions(url=url, charger_id=cp_id, response_timeout=10, **options))
    with pytest.raises(ConnectError) as caught:
        await cp.connect()
    await cp.close()
    return str(caught.value)


def refusals(logs: Captured, cp_id: str) -> list[str]:
    return [e["reason"] for e in logs.named("connection_refused") if e["charge_point_id"] == cp_id]


# --- profile 2 -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cp_id", "version"), [("CP2", "1.6"), ("CP2-201", "2.0.1")])
async def test_profile_2_boots_over_wss_with_its_password(
    tls: Tls, cp_id: str, version: str
) -> None:
    async with online(tls.wss, cp_id, version, ca_file=tls.pki.server_ca, password=PASSWORD) as cp:
        assert await cp.heartbeat()
        charger = (await tls.staff.charger(cp_id)).charger
        assert charger.connected and charger.ocpp_version == version
        assert charger.security_profile == 2


async def test_profile_2_is_refused_on_plain_ws_and_without_its_password(tls: Tls) -> None:
    with captured_logs() as logs:
        plain = await refused(tls.ws, "CP2", password=PASSWORD)
        wrong = await refused(tls.wss, "CP2", ca_file=tls.pki.server_ca, password="not-the-one")
    assert "HTTP 403" in plain
    assert refusals(logs, "CP2") == ["security profile 2 requires wss:// (TLS)"]
    assert "HTTP 401" in wrong
    # A profile-1 charger (unknown here, registered by itself) still connects on ws://.
    async with online(tls.ws, "CP1-PLAIN"):
        pass


async def test_a_charger_trusting_another_ca_fails_the_tls_handshake(tls: Tls) -> None:
    reason = await refused(tls.wss, "CP2", ca_file=tls.pki.foreign_ca, password=PASSWORD)
    assert "TLS failed (unable to get local issuer certificate)" in reason


# --- profile 3 -----------------------------------------------------------------------------


async def test_profile_3_connects_with_a_certificate_from_our_ca(tls: Tls) -> None:
    cert, key = tls.pki.cp3
    async with online(tls.wss, "CP3", ca_file=tls.pki.server_ca, cert_file=cert, key_file=key):
        assert (await tls.staff.charger("CP3")).charger.connected
    cert, key = tls.pki.cp3_201
    async with online(
        tls.wss, "CP3-201", "2.0.1", ca_file=tls.pki.server_ca, cert_file=cert, key_file=key
    ) as cp:
        assert await cp.heartbeat()


async def test_profile_3_without_a_certificate_or_with_another_ids_is_refused(tls: Tls) -> None:
    other_cert, other_key = tls.pki.other
    with captured_logs() as logs:
        none = await refused(tls.wss, "CP3", ca_file=tls.pki.server_ca)
        # A password does not stand in for the certificate.
        with_password = await refused(tls.wss, "CP3", ca_file=tls.pki.server_ca, password="x" * 8)
        another = await refused(
            tls.wss, "CP3", ca_file=tls.pki.server_ca, cert_file=other_cert, key_file=other_key
        )
        # Over ws:// there is no TLS to carry a certificate.
        plain = await refused(tls.ws, "CP3")
    assert all("HTTP 403" in r for r in (none, with_password, another, plain))
    assert refusals(logs, "CP3") == [
        "security profile 3 requires a client certificate; none was presented",
        "security profile 3 requires a client certificate; none was presented",
        "the client certificate is for 'CP3-OTHER', not this charge point",
        "security profile 3 requires wss:// (TLS)",
    ]
    assert tls.app.ocpp.session("CP3") is None


async def test_csms_sim_connects_with_ca_cert_and_key_options(tls: Tls) -> None:
    cert, key = tls.pki.cp3_201
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    args = ["--url", tls.wss, "--id", "CP3-201", "--version", "2.0.1", "--sessions", "0"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators",
        "charger",
        *args,
        "--exit-when-done",
        "--ca",
        tls.pki.server_ca,
        "--cert",
        cert,
        "--key",
        key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert f"connected to {tls.wss}/CP3-201" in out.decode()
    assert "CP3-201 done: sessions_completed=0/0 errors=0" in out.decode()


@pytest.mark.parametrize("which", ["expired", "foreign"])
async def test_profile_3_with_an_expired_or_foreign_certificate_fails_the_handshake(
    tls: Tls, which: str
) -> None:
    cert, key = getattr(tls.pki, which)
    reason = await refused(tls.wss, "CP3", ca_file=tls.pki.server_ca, cert_file=cert, key_file=key)
    # The server ends the TLS handshake with an alert: no HTTP answer at all (under TLS 1.3
    # the client learns it when it waits for the upgrade's answer).
    assert "server answered HTTP" not in reason
    assert "did not receive a valid HTTP response" in reason or "TLS failed" in reason, reason
    assert tls.app.ocpp.session("CP3") is None
    # Its valid certificate still gets in afterwards.
    good_cert, good_key = tls.pki.cp3
    async with online(
        tls.wss, "CP3", ca_file=tls.pki.server_ca, cert_file=good_cert, key_file=good_key
    ):
        pass


async def test_tls_is_1_2_or_newer(tls: Tls) -> None:
    client = ssl.create_default_context(cafile=tls.pki.server_ca)
    client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_2
    _, writer = await asyncio.open_connection("127.0.0.1", tls.app.ocpp.tls_port, ssl=client)
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    writer.close()
    assert tls.app.ocpp.tls is not None
    assert tls.app.ocpp.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.app.ocpp.tls.context.verify_mode == ssl.CERT_OPTIONAL


# --- HTTPS ---------------------------------------------------------------------------------


async def test_api_and_ocpi_answer_over_https(tls: Tls) -> None:
    client = ssl.create_default_context(cafile=tls.pki.server_ca)
    async with aiohttp.ClientSession() as http:
        api = f"https://127.0.0.1:{tls.app.api_tls_port}"
        async with http.get(f"{api}/health", ssl=client) as r:
            assert r.status == 200
            assert (await r.json())["status"] == "ok"
        headers = {"Authorization": "Bearer test-token"}
        async with http.get(f"{api}/api/chargers/CP3", ssl=client, headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["security_profile"] == 3
        ocpi = f"https://127.0.0.1:{tls.app.ocpi_tls_port}/ocpi/versions"
        async with http.get(ocpi, ssl=client) as r:
            # Without a token: OCPI's own refusal, over TLS.
            assert r.status == 401
        # The plain ports keep answering.
        async with http.get(f"http://127.0.0.1:{tls.app.api_port}/health") as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"{api}/health", ssl=ssl.create_default_context())


# --- staff: the profile is shown, and a change is audited ------------------------------------


async def csms_cli(tls: Tls, *args: str, **more_env: str) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env["CSMS_DATABASE_URL"] = tls.app.config.database.url
    env["CSMS_API_TOKEN"] = "test-token"
    env.update(more_env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def test_a_security_profile_change_is_shown_and_audited(tls: Tls) -> None:
    added = await csms_cli(tls, "chargers", "add", "CP-AUDIT", "--security-profile", "2")
    assert added.code == 1
    assert "security profile 2 is TLS plus a Basic password: the charger needs a password" in (
        added.err
    )
    added = await csms_cli(
        tls, "chargers", "add", "CP-AUDIT", "--password", PASSWORD, "--security-profile", "2"
    )
    assert added.code == 0, added.err
    assert "security profile 2" in added.out
    # This configuration has no wss:// listener: said, not silently accepted.
    assert "a profile-2 charger cannot connect until wss:// is configured" in added.err
    cert, key = tls.pki.server_cert
    three = await csms_cli(
        tls,
        "chargers",
        "add",
        "CP-NO-CA",
        "--security-profile",
        "3",
        CSMS_OCPP_TLS_CERT_FILE=cert,
        CSMS_OCPP_TLS_KEY_FILE=key,
        CSMS_CA_DIRECTORY=str(tls.pki.dir / "no-ca-here"),
    )
    assert three.code == 0, three.err
    assert "a profile-3 charger's certificate cannot be checked" in three.err
    lowered = await csms_cli(tls, "chargers", "set", "CP-AUDIT", "--security-profile", "1")
    assert lowered.code == 0, lowered.err
    assert "security profile lowered: 2 -> 1" in lowered.out
    assert "security_profile_changed" in lowered.err
    # The same profile again is no change: nothing more in the audit log.
    await tls.staff.update_charger("CP-AUDIT", security_profile=1, requested_by="someone")
    # Profile 2 never goes without a password, whichever way it would come to be.
    with pytest.raises(InvalidInput, match="needs a password"):
        await tls.staff.update_charger("CP2", clear_password=True)
    await tls.staff.update_charger("CP-AUDIT", clear_password=True)
    with pytest.raises(InvalidInput, match="needs a password"):
        await tls.staff.update_charger("CP-AUDIT", security_profile=2)
    shown = await csms_cli(tls, "chargers", "show", "CP-AUDIT", "--json")
    assert json.loads(shown.out)["security_profile"] == 1
    human = await csms_cli(tls, "chargers", "show", "CP-AUDIT")
    line = next(x for x in human.out.splitlines() if x.startswith("security profile"))
    assert line.split(maxsplit=2)[2].startswith("1 (Basic password")
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{tls.app.api_port}/api/audit?command=security_profile"
        async with http.get(url, headers={"Authorization": "Bearer test-token"}) as r:
            entries = (await r.json())["items"]
    # Every profile change, and only those: the fixture's chargers were added at 2 and 3.
    assert {e["command"] for e in entries} == {"security_profile"}
    assert {"CP2", "CP3", "CP-AUDIT", "CP-NO-CA"} <= {e["charger"] for e in entries}
    changes = [
        (e["command"], e["params"], e["source"], e["message"])
        for e in entries
        if e["charger"] == "CP-AUDIT"
    ]
    assert changes == [  # newest first
        (
            "security_profile",
            {"security_profile": 1, "previous": 2},
            "cli",
            "security profile 2 -> 1",
        ),
        (
            "security_profile",
            {"security_profile": 2, "previous": None},
            "cli",
            "security profile new charger -> 2",
        ),
    ]
    assert all(e["requested_by"] for e in entries if e["charger"] == "CP-AUDIT")


# --- no plain listener ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_plain_false_leaves_no_plain_listener(pki: Pki, tmp_path: Path) -> None:
    sections = tls_sections(pki)
    plain_port = free_port()
    sections["ocpp"] |= {"port": plain_port, "plain": False}
    app = CsmsApp(make_config(tmp_path / "csms.db", **sections), components=("ocpp",))
    await app.start()
    try:
        assert app.ocpp.port == 0 and app.ocpp.tls_port
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", plain_port)
        wss = f"wss://127.0.0.1:{app.ocpp.tls_port}/ocpp"
        async with online(wss, "CP-ONLY-TLS", ca_file=pki.server_ca):
            pass
    finally:
        await app.stop()


# --- SIGHUP --------------------------------------------------------------------------------


def spoil(path: str) -> None:
    Path(path).write_text("not a key")


async def served_certificate(port: int, ca_file: str) -> x509.Certificate:
    client = ssl.create_default_context(cafile=ca_file)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


async def test_sighup_serves_a_new_certificate_and_keeps_connections(
    pki: Pki, tmp_path: Path
) -> None:
    """Through `csms serve` (uvloop, where the server reads a connection before the TLS
    handshake starts): the certificate is reloaded without dropping connections, and a
    client certificate refused inside the handshake is logged."""
    server_ca = Authority.new("Reload CA")
    ca_file = tmp_path / "reload-ca.pem"
    ca_file.write_bytes(pem(server_ca.cert))
    first, first_key = server_ca.issue("localhost", "First", server=True)
    cert, key = write_pair(tmp_path, "live", first, first_key)
    port = free_port()
    (tmp_path / "csms.toml").write_text(
        f'[database]\nurl = "{db_url_for(tmp_path / "csms.db")}"\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = 0\nping_interval = 0\ntls_port = {port}\n'
        f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
        f'tls_client_ca_file = "{pki.ca_dir / "trusted.pem"}"\n'
        '[log]\nformat = "json"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        "serve",
        "--only",
        "ocpp",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    events: list[dict[str, Any]] = []

    async def wait_for(event: str, **fields: Any) -> dict[str, Any]:
        assert proc.stderr is not None
        while line := await asyncio.wait_for(proc.stderr.readline(), 30):
            text = line.decode().strip()
            if text.startswith("{"):
                events.append(json.loads(text))
                found = events[-1]
                if found["event"] == event and fields.items() <= found.items():
                    return found
        raise AssertionError(f"the server ended before {event}: {events}")

    try:
        listening = await wait_for("ocpp_listening", scheme="wss")
        assert listening["port"] == port and listening["client_certificates"] is True
        assert (await served_certificate(port, str(ca_file))).serial_number == first.serial_number
        url = f"wss://127.0.0.1:{port}/ocpp"
        async with online(url, "CP-KEPT", ca_file=str(ca_file)) as kept:
            second, second_key = server_ca.issue("localhost", "Second", server=True)
            write_pair(tmp_path, "live", second, second_key)
            proc.send_signal(signal.SIGHUP)
            reloaded = await wait_for("tls_reloaded")
            assert reloaded["setting"] == "ocpp"
            new = await served_certificate(port, str(ca_file))
            assert new.serial_number == second.serial_number
            # The connection made before the reload is still up and answered.
            assert await kept.heartbeat()
            assert kept.online
        # A client certificate from a foreign CA: the handshake fails, and says so.
        foreign = ssl.create_default_context(cafile=str(ca_file))
        foreign.load_cert_chain(*pki.foreign)
        with pytest.raises((OSError, EOFError)):  # noqa: PT012 - TLS 1.2 or 1.3 alike
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=foreign)
            writer.write(b"GET /ocpp/CP3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            if not await asyncio.wait_for(reader.read(), 10):
                raise EOFError("closed without an answer")
        refused = await wait_for("tls_handshake_refused")
        assert refused["reason"] == "unable to get local issuer certificate"
        assert refused["peer"] == "127.0.0.1"
        # A broken file is refused with a log line; the certificate served stays.
        spoil(key)
        proc.send_signal(signal.SIGHUP)
        failed = await wait_for("tls_reload_failed")
        assert "ocpp.tls_cert_file / tls_key_file" in failed["error"]
        assert (await served_certificate(port, str(ca_file))).serial_number == second.serial_number
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
