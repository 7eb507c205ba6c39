"""Charger certificates through OCPP, both versions, against a real server and simulators:
a charger's CSR signed by our CA (made here with csms.services.pki) and delivered in a
CertificateSigned that verifies against it; refusals (a CSR for another id, no CA) answered
Rejected with nothing delivered; `csms remote certificates renew|install|list|delete` and
`csms chargers list --cert-expiring` through the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from csms.core.certificates import CaSettings, serial_hex
from csms.core.clock import utc_now
from csms.core.commands import CommandRecord
from csms.services.commands.certificates import certificate_hash_data
from csms.services.pki import CertificateAuthority, new_ca, pem
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.certs import Authority, write_pair
from tests.e2e.certs import pem as tls_pem
from tests.e2e.cli import csms, remote
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until

VERSIONS = ["1.6", "2.0.1"]


@dataclass
class Station:
    server: Running
    cp: ChargerBase
    cp_id: str
    version: str
    ca_cert: x509.Certificate | None

    async def audit(self, command: str) -> list[CommandRecord]:
        records = await self.server.app.commands.history(self.cp_id)
        return [r for r in records if r.command == command]

    async def finished(self, command: str) -> list[CommandRecord]:
        """The audit entries of `command` once each has its outcome."""

        async def done() -> list[CommandRecord] | None:
            records = await self.audit(command)
            return records if records and all(r.outcome for r in records) else None

        found: list[CommandRecord] = await until(done, f"{command} answered")
        return found

    async def sign(self) -> dict[str, Any]:
        """SignCertificate with a new CSR, as the charger sends it."""
        payload: dict[str, object] = {"csr": self.cp.certificates.new_csr()}
        if self.version == "2.0.1":
            payload["certificateType"] = "ChargingStationCertificate"
        return await self.cp.call("SignCertificate", payload)


async def _station(
    start_server: StartServer, tmp_path: Path, version: str, *, with_ca: bool, csr: bool = False
) -> AsyncIterator[Station]:
    ca_dir = tmp_path / "ca"
    server = await start_server(ca={"directory": str(ca_dir), "organisation": "Test CPO"})
    ca_cert = None
    if with_ca:
        ca = CertificateAuthority(ca_dir, CaSettings(organisation="Test CPO"), utc_now)
        ca.create()
        ca_cert = ca.load()[0]
    cp_id = f"CERT-{version}"
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            sessions=0,
            seed=3,
            response_timeout=10,
            cert_dir=str(tmp_path / "charger"),
            csr=csr,
        )
    )
    assert isinstance(cp, ChargerBase)
    task = asyncio.create_task(cp.run())
    assert await cp.wait_booted(20)
    yield Station(server, cp, cp_id, version, ca_cert)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()


@pytest.fixture(params=VERSIONS)
async def station(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> AsyncIterator[Station]:
    async for s in _station(start_server, tmp_path, request.param, with_ca=True):
        yield s


@pytest.fixture(params=VERSIONS)
async def station_without_ca(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> AsyncIterator[Station]:
    async for s in _station(start_server, tmp_path, request.param, with_ca=False):
        yield s


@pytest.fixture(params=VERSIONS)
async def station_with_csr(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> AsyncIterator[Station]:
    async for s in _station(start_server, tmp_path, request.param, with_ca=True, csr=True):
        yield s


def check_chain(s: Station) -> x509.Certificate:
    """The charger's chain: its certificate for its id, issued by our CA, then the CA."""
    chain = s.cp.certificates.chain
    assert s.ca_cert is not None and len(chain) == 2
    leaf = chain[0]
    leaf.verify_directly_issued_by(s.ca_cert)
    assert chain[1] == s.ca_cert
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [s.cp_id]
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "Test CPO"
    ]
    return leaf


async def test_csr_signed_and_delivered(station: Station, tmp_path: Path) -> None:
    s = station
    answer = await s.sign()
    assert answer["status"] == "Accepted"
    assert await s.cp.certificates.wait_changed(10)
    leaf = check_chain(s)
    # The simulator kept what it was given in its --cert-dir, with the key of its CSR.
    on_disk = x509.load_pem_x509_certificates((tmp_path / "charger" / "charger.crt").read_bytes())
    assert on_disk[0] == leaf
    # Delivered through the command service: audited as the CSMS's own command.
    [entry] = await s.finished("certificate-signed")
    assert (entry.source, entry.requested_by, entry.outcome) == ("csms", "system", "accepted")
    assert entry.action == "CertificateSigned"
    # Recorded by the CA: listed as expiring within 400 days, not within 30.
    soon = await csms(s.server, "chargers", "list", "--cert-expiring", "400d", "--json")
    assert soon.code == 0, soon
    [row] = soon.json()
    assert row["charger"] == s.cp_id and row["connected"] is True
    assert row["certificate"]["serial"] == serial_hex(leaf.serial_number)
    later = await csms(s.server, "chargers", "list", "--cert-expiring", "30d")
    assert later.code == 0 and later.out == "no charger certificate expires within 30 days\n"


async def test_chain_refused_by_the_charger_is_logged(station: Station) -> None:
    s = station
    s.cp.certificates.accept_chains = False
    with capture_logs() as logs:
        assert (await s.sign())["status"] == "Accepted"
        [entry] = await s.finished("certificate-signed")
    assert (entry.outcome, entry.status) == ("rejected", "Rejected")
    assert s.cp.certificates.rejected_chains == 1 and s.cp.certificates.chain == []
    [event] = [e for e in logs if e["event"] == "certificate_not_installed"]
    assert event["charge_point_id"] == s.cp_id and event["outcome"] == "rejected"


async def test_the_csr_option_asks_once_booted(station_with_csr: Station) -> None:
    s = station_with_csr
    await until(lambda: _has_chain(s), "the certificate asked for after boot")
    check_chain(s)
    assert s.cp.certificates.csr_count == 1


async def test_csr_for_another_id_rejected(station: Station) -> None:
    s = station
    s.cp.certificates.common_name = "SOMEONE-ELSE"
    with capture_logs() as logs:
        answer = await s.sign()
    [refusal] = [e for e in logs if e["event"] == "certificate_refused"]
    assert refusal["reason"] == "wrong_common_name" and "SOMEONE-ELSE" in refusal["detail"]
    assert answer["status"] == "Rejected"
    if s.version == "2.0.1":
        assert answer["statusInfo"]["reasonCode"] == "InvalidCSR"
        assert "SOMEONE-ELSE" in answer["statusInfo"]["additionalInfo"]
    if s.version == "2.0.1":
        # A V2G certificate comes from a V2G PKI, not from our CA.
        s.cp.certificates.common_name = None
        v2g = await s.cp.call(
            "SignCertificate",
            {"csr": s.cp.certificates.new_csr(), "certificateType": "V2GCertificate"},
        )
        assert v2g["status"] == "Rejected"
        assert v2g["statusInfo"]["reasonCode"] == "UnsupportedCertType"
    assert not await s.cp.certificates.wait_changed(1.0)
    assert s.cp.certificates.chain == []
    assert await s.audit("certificate-signed") == []


async def test_no_ca_rejected(station_without_ca: Station) -> None:
    s = station_without_ca
    answer = await s.sign()
    assert answer["status"] == "Rejected"
    if s.version == "2.0.1":
        assert answer["statusInfo"]["reasonCode"] == "NoCertAuthority"
    assert not await s.cp.certificates.wait_changed(1.0)
    assert await s.audit("certificate-signed") == []


async def test_renew_triggers_the_cycle(station: Station) -> None:
    s = station
    ran = await remote(s.server, "certificates", "renew", s.cp_id)
    assert ran.code == 0, ran
    body = ran.json()
    assert body["action"] == ("ExtendedTriggerMessage" if s.version == "1.6" else "TriggerMessage")
    assert body["status"] == "Accepted"
    await until(lambda: _has_chain(s), "the renewed certificate")
    check_chain(s)
    assert s.cp.certificates.csr_count == 1
    [entry] = await s.finished("certificate-signed")
    assert entry.outcome == "accepted"


async def _has_chain(s: Station) -> bool:
    return bool(s.cp.certificates.chain)


def _root(tmp_path: Path, name: str) -> tuple[Path, x509.Certificate]:
    cert, _key = new_ca(CaSettings(organisation="Roots", common_name=name), utc_now())
    path = tmp_path / f"{name}.pem"
    path.write_text(pem(cert))
    return path, cert


async def test_install_list_delete(station: Station, tmp_path: Path) -> None:
    s = station
    first, first_cert = _root(tmp_path, "first")
    second, _ = _root(tmp_path, "second")
    for path in (first, second):
        ran = await remote(s.server, "certificates", "install", s.cp_id, "--file", str(path))
        assert ran.code == 0 and ran.json()["status"] == "Accepted", ran
    assert len(s.cp.certificates.installed["csms-root"]) == 2

    listed = await remote(s.server, "certificates", "list", s.cp_id, "--type", "csms-root")
    assert listed.code == 0, listed
    certificates = listed.json()["data"]["certificates"]
    expected = str(certificate_hash_data(pem(first_cert)))
    assert {c["type"] for c in certificates} == {"csms-root"}
    assert expected in {c["hash_data"] for c in certificates}

    # Deleted by the hash data the listing showed, then the other by its file.
    gone = await remote(s.server, "certificates", "delete", s.cp_id, "--hash-data", expected)
    assert gone.code == 0 and gone.json()["status"] == "Accepted", gone
    assert [c.serial_number for c in s.cp.certificates.installed["csms-root"]] != [
        first_cert.serial_number
    ]
    again = await remote(s.server, "certificates", "delete", s.cp_id, "--hash-data", expected)
    assert again.code == 1 and again.json()["status"] == "NotFound"
    by_file = await remote(s.server, "certificates", "delete", s.cp_id, "--file", str(second))
    assert by_file.code == 0, by_file
    assert s.cp.certificates.installed["csms-root"] == []
    empty = await remote(s.server, "certificates", "list", s.cp_id, "--type", "csms-root")
    assert empty.code == 0 and empty.json()["data"]["certificates"] == []
    assert empty.json()["status"] == "NotFound"

    # Not a certificate: refused by the CSMS before anything is sent.
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    bad = await remote(s.server, "certificates", "install", s.cp_id, "--file", str(junk))
    assert bad.code == 1 and bad.json()["outcome"] == "invalid"
    # The audit log has every staff command, with who sent it.
    installs = await s.audit("certificates-install")
    assert [r.outcome for r in installs] == ["invalid", "accepted", "accepted"]


def test_hash_data_of_a_root() -> None:
    """A self-signed root's hash data: the hashes of its own DER name and of its own key's
    point (EC: the X9.62 uncompressed point is the subjectPublicKey bits)."""
    cert, key = new_ca(CaSettings(), utc_now())
    data = certificate_hash_data(pem(cert))
    assert data.algorithm == "SHA256" and data.serial == format(cert.serial_number, "x")

    def sha256(raw: bytes) -> str:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(raw)
        return digest.finalize().hex()

    assert data.issuer_name_hash == sha256(cert.issuer.public_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert data.issuer_key_hash == sha256(point)


@pytest.mark.parametrize("version", VERSIONS)
async def test_profile_3_reconnect_on_the_new_certificate(
    start_server: StartServer, tmp_path: Path, version: str
) -> None:
    """The whole cycle: a profile-2 charger (wss://, password) sends its CSR, gets its chain,
    is moved to profile 3 and comes back over wss:// on that certificate, no password."""
    server_ca = Authority.new("Test Server CA")
    server_ca_file = tmp_path / "server-ca.pem"
    server_ca_file.write_bytes(tls_pem(server_ca.cert))
    cert, key = write_pair(tmp_path, "server", *server_ca.issue("localhost", "Test", server=True))
    ca_dir = tmp_path / "ca"
    CertificateAuthority(ca_dir, CaSettings(organisation="Test CPO"), utc_now).create()
    server = await start_server(
        ocpp={"tls_port": 0, "tls_cert_file": cert, "tls_key_file": key},
        ca={"directory": str(ca_dir), "organisation": "Test CPO"},
    )
    cp_id = f"CYCLE-{version}"
    await server.staff.add_charger(cp_id, password="profile-2-password", security_profile=2)
    wss = f"wss://127.0.0.1:{server.app.ocpp.tls_port}/ocpp"
    cert_dir = tmp_path / "charger"
    options: dict[str, Any] = {"url": wss, "charger_id": cp_id, "version": version}
    options["response_timeout"] = 10
    first = create_charger(
        ChargerOptions(
            **options,
            password="profile-2-password",
            ca_file=str(server_ca_file),
            cert_dir=str(cert_dir),
        )
    )
    assert isinstance(first, ChargerBase)
    async with first:
        assert (await first.boot())["status"] == "Accepted"
        payload: dict[str, Any] = {"csr": first.certificates.new_csr()}
        if version == "2.0.1":
            payload["certificateType"] = "ChargingStationCertificate"
        assert (await first.call("SignCertificate", payload))["status"] == "Accepted"
        assert await first.certificates.wait_changed(10) and first.certificates.chain
    await server.staff.update_charger(cp_id, security_profile=3)
    again = create_charger(
        ChargerOptions(
            **options,
            ca_file=str(server_ca_file),
            cert_file=str(cert_dir / "charger.crt"),
            key_file=str(cert_dir / "charger.key"),
        )
    )
    assert isinstance(again, ChargerBase)
    async with again:
        assert (await again.boot())["status"] == "Accepted"
        assert (await server.staff.charger(cp_id)).charger.connected
