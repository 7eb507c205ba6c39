"""The certificate authority's rules with real keys, CSRs and certificates made here with
`cryptography`: what is signed, what is refused and why, rotation and import."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.core.certificates import CLOCK_SKEW, CaSettings, Issued, Refusal, Refused
from csms.services.pki import BadCa, CaExists, CertificateAuthority, NoCa, UnknownCa, new_ca
from csms.storage.database import Database
from csms.storage.migrate import upgrade

NOW = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)
SETTINGS = CaSettings(
    organisation="Example CPO", common_name="Example CA", certificate_validity_days=200
)


def clock() -> datetime:
    return NOW


def make_ca(tmp_path: Path, **changes: object) -> CertificateAuthority:
    settings = dataclasses.replace(SETTINGS, **changes)  # type: ignore[arg-type]
    ca = CertificateAuthority(tmp_path / "ca", settings, clock)
    ca.create()
    return ca


def csr_for(
    cn: str | None, key: CertificateIssuerPrivateKeyTypes | None = None, *, o: str | None = "Vendor"
) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = []
    if o is not None:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    if cn is not None:
        names.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def issued(result: Issued | Refused) -> Issued:
    assert isinstance(result, Issued), result
    return result


def refused(result: Issued | Refused, reason: Refusal, text: str) -> None:
    assert isinstance(result, Refused), result
    assert result.reason is reason
    assert text in result.detail, result.detail


def test_new_ca_is_a_self_signed_ec_ca_with_path_length_zero(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    cert, key = ca.load()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert cert.subject.rfc4514_string() == "CN=Example CA,O=Example CPO"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    assert stat.S_IMODE(ca.files.key.stat().st_mode) == 0o600
    assert ca.trusted_pem() == ca.files.cert.read_text()


def test_rsa_ca_on_request(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca", SETTINGS, clock)
    info = ca.create("rsa")
    assert info.key == "rsa-3072"
    leaf = issued(ca.sign("CP1", csr_for("CP1"))).certificate
    x509.load_pem_x509_certificate(leaf.pem.encode()).verify_directly_issued_by(ca.load()[0])


def test_init_refuses_to_replace_a_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    serial = ca.current().serial
    with pytest.raises(CaExists, match=f"serial {serial}.*csms ca rotate"):
        ca.create()
    assert ca.current().serial == serial


def test_issued_certificate_verifies_and_has_what_is_configured(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    key = ec.generate_private_key(ec.SECP384R1())
    result = issued(ca.sign("CP-1", csr_for("CP-1", key, o="Someone Else")))
    chain = x509.load_pem_x509_certificates(result.chain_pem.encode())
    leaf, ca_cert = chain
    assert ca_cert == ca.load()[0]
    leaf.verify_directly_issued_by(ca_cert)
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # O is ours whatever the CSR said; CN is the charger id.
    assert leaf.subject.rfc4514_string() == "CN=CP-1,O=Example CPO"
    assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    )
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_before_utc == NOW - CLOCK_SKEW
    assert leaf.not_valid_after_utc == NOW + timedelta(days=200)
    assert 0 < leaf.serial_number < 2**128
    record = result.certificate
    assert record.serial == format(leaf.serial_number, "x").rjust(32, "0")[-len(record.serial) :]
    assert int(record.serial, 16) == leaf.serial_number
    assert record.issuer_serial == ca.current().serial
    assert record.fingerprint_sha256 == leaf.fingerprint(hashes.SHA256()).hex()
    assert record.charge_point_id == "CP-1" and record.issued_at == NOW


def test_serials_differ(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    serials = {issued(ca.sign("CP1", csr_for("CP1"))).certificate.serial for _ in range(5)}
    assert len(serials) == 5


def test_a_csr_for_another_charger_is_refused(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    refused(
        ca.sign("CP1", csr_for("CP2")),
        Refusal.WRONG_COMMON_NAME,
        "the CSR's subject CN is 'CP2', not the charger id 'CP1'",
    )
    refused(ca.sign("CP1", csr_for("cp1")), Refusal.WRONG_COMMON_NAME, "'cp1'")
    refused(ca.sign("CP1", csr_for(None)), Refusal.WRONG_COMMON_NAME, "has no CN")


def test_weak_and_unsupported_keys_are_refused(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    refused(ca.sign("CP1", csr_for("CP1", weak)), Refusal.WEAK_KEY, "1024 bits; at least 2048")
    p521 = ec.generate_private_key(ec.SECP521R1())
    refused(ca.sign("CP1", csr_for("CP1", p521)), Refusal.UNSUPPORTED_KEY, "secp521r1")
    edwards = ed25519.Ed25519PrivateKey.generate()
    refused(ca.sign("CP1", csr_for("CP1", edwards)), Refusal.UNSUPPORTED_KEY, "ed25519")
    strong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert issued(ca.sign("CP1", csr_for("CP1", strong))).certificate.charge_point_id == "CP1"


def test_a_csr_with_a_bad_signature_is_refused(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    csr = x509.load_pem_x509_csr(csr_for("CP1"))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    # The signature is last: change its final byte (the DER structure stays valid).
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    refused(ca.sign("CP1", tampered), Refusal.BAD_SIGNATURE, "does not verify")


def test_garbage_and_a_bad_charger_id_are_refused(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    refused(ca.sign("CP1", "hello"), Refusal.MALFORMED_CSR, "not a PEM certificate signing")
    refused(ca.sign("CP 1", csr_for("CP 1")), Refusal.BAD_CHARGER_ID, "contains")


def test_without_a_ca_nothing_is_signed(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "none", SETTINGS, clock)
    refused(ca.sign("CP1", csr_for("CP1")), Refusal.NO_CA, "csms ca init")
    with pytest.raises(NoCa):
        ca.current()


def test_certificates_end_with_the_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, ca_validity_days=100)
    leaf = issued(ca.sign("CP1", csr_for("CP1"))).certificate
    assert leaf.not_after == ca.current().not_after == NOW + timedelta(days=100)


def test_rotation_keeps_both_cas_trusted(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    before = issued(ca.sign("CP1", csr_for("CP1"))).certificate
    old, new = ca.rotate()
    assert old.serial == before.issuer_serial and new.serial != old.serial
    assert ca.current() == new
    assert [p.serial for p in ca.previous()] == [old.serial]
    bundle = x509.load_pem_x509_certificates(ca.trusted_pem().encode())
    assert [format(c.serial_number, "x") for c in bundle] == [
        new.serial.lstrip("0"),
        old.serial.lstrip("0"),
    ]
    after = issued(ca.sign("CP1", csr_for("CP1"))).certificate
    assert after.issuer_serial == new.serial
    # A certificate of each CA verifies against its CA in the bundle.
    for record in (before, after):
        leaf = x509.load_pem_x509_certificate(record.pem.encode())
        issuer = next(
            c
            for c in bundle
            if c.subject == leaf.issuer
            and format(c.serial_number, "x").rjust(len(record.issuer_serial), "0")
            == record.issuer_serial
        )
        leaf.verify_directly_issued_by(issuer)
    assert stat.S_IMODE((ca.files.previous / f"{old.serial}.key").stat().st_mode) == 0o600
    # Retiring the old CA leaves the new one alone in the bundle.
    with pytest.raises(UnknownCa, match="previous CAs: " + old.serial):
        ca.retire("00")
    with pytest.raises(UnknownCa):
        ca.retire(new.serial)
    ca.retire(old.serial)
    assert ca.previous() == []
    assert len(x509.load_pem_x509_certificates(ca.trusted_pem().encode())) == 1


def test_import_checks_the_pair(tmp_path: Path) -> None:
    cert, key = new_ca(SETTINGS, NOW)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ca = CertificateAuthority(tmp_path / "ca", SETTINGS, clock)
    with pytest.raises(BadCa, match="does not belong"):
        ca.import_pem(cert_pem, other)
    with pytest.raises(BadCa, match=r"not a PEM X\.509"):
        ca.import_pem(b"junk", key_pem)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(BadCa, match="encrypted"):
        ca.import_pem(cert_pem, encrypted)
    # A leaf certificate is no CA.
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_pem = issued(make_ca(tmp_path / "x").sign("CP1", csr_for("CP1", leaf_key))).certificate
    leaf_key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(BadCa, match="not a CA certificate"):
        ca.import_pem(leaf_pem.pem.encode(), leaf_key_pem)
    assert not ca.exists()
    info = ca.import_pem(cert_pem, key_pem)
    assert info.serial == format(cert.serial_number, "x").rjust(len(info.serial), "0")
    assert ca.load()[0] == cert
    leaf = issued(ca.sign("CP1", csr_for("CP1"))).certificate
    x509.load_pem_x509_certificate(leaf.pem.encode()).verify_directly_issued_by(cert)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/ca.db")
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


async def test_issue_records_what_was_signed_and_finds_what_expires(
    tmp_path: Path, db: Database
) -> None:
    now = [NOW]
    ca = CertificateAuthority(tmp_path / "ca", SETTINGS, lambda: now[0], db)
    ca.create()
    short = CertificateAuthority(
        tmp_path / "ca",
        dataclasses.replace(SETTINGS, certificate_validity_days=10),
        lambda: now[0],
        db,
    )
    # What a SignCertificate handler calls: (charger id, CSR PEM) -> chain or reason.
    first = issued(await ca.issue("CP1", csr_for("CP1").decode()))
    now[0] += timedelta(minutes=1)
    second = issued(await short.issue("CP2", csr_for("CP2")))
    refused(await ca.issue("CP1", csr_for("CP2")), Refusal.WRONG_COMMON_NAME, "'CP2'")

    page = await ca.certificates()
    assert page.total == 2
    assert page.items == [second.certificate, first.certificate]  # newest first, as issued
    assert (await ca.certificates(charge_point_id="CP1")).items == [first.certificate]
    soon = await ca.certificates(expiring_within=timedelta(days=30))
    assert soon.items == [second.certificate]
    assert await ca.expiring(timedelta(days=365)) == [second.certificate, first.certificate]
    use = await ca.use(ca.current().serial, timedelta(days=30))
    assert (use.issued, use.expiring) == (2, 1)
    assert use.last_expiry == first.certificate.not_after == NOW + timedelta(days=200)
    assert (await ca.use("00", timedelta(days=30))).last_expiry is None

    # Eleven days on, CP2's certificate has expired: no longer "expiring".
    now[0] += timedelta(days=11)
    assert (await ca.certificates(expiring_within=timedelta(days=30))).items == []
    assert (await ca.use(ca.current().serial, timedelta(days=190))).expiring == 1

    # A previous CA is retired with --expired once the last certificate it issued expired.
    old, new = ca.rotate()
    assert await ca.retire_expired() == []
    now[0] = first.certificate.not_after
    assert [c.serial for c in await ca.retire_expired()] == [old.serial]
    assert ca.previous() == [] and ca.current() == new


def test_an_imported_cas_key_identifier_is_what_certificates_name(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Elsewhere CA")])
    ski = x509.SubjectKeyIdentifier(b"\x01" * 20)  # not the SHA-1 of its key
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    ca = CertificateAuthority(tmp_path / "ca", SETTINGS, clock)
    ca.import_pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    leaf = x509.load_pem_x509_certificate(
        issued(ca.sign("CP1", csr_for("CP1"))).certificate.pem.encode()
    )
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == b"\x01" * 20
    leaf.verify_directly_issued_by(cert)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


async def tls_client_cn(
    tmp_path: Path, trusted: Path, chain_pem: str, key: ec.EllipticCurvePrivateKey
) -> str:
    """A real TLS handshake on 127.0.0.1: the server requires a client certificate that
    verifies against `trusted` and answers with the certificate's subject CN ("refused":
    the server dropped the connection)."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(server_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(server_key, hashes.SHA256())
    )
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    write_key(tmp_path / "server.key", server_key)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server_ctx.load_verify_locations(trusted)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    (tmp_path / "client.pem").write_text(chain_pem)
    write_key(tmp_path / "client.key", key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        cn = dict(x[0] for x in peer["subject"])["commonName"]
        writer.write(cn.encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
        except (ssl.SSLError, ConnectionResetError):
            return "refused"
        finally:
            writer.close()
        return line.decode().strip() or "refused"
    finally:
        server.close()


async def test_issued_certificates_pass_a_real_tls_handshake(tmp_path: Path) -> None:
    """What profile 3 will rely on: OpenSSL accepts an issued certificate as a TLS client
    certificate against trusted.pem, also one of a rotated-out CA, until it is retired."""
    ca = CertificateAuthority(tmp_path / "ca", SETTINGS, lambda: datetime.now(UTC))
    ca.create()
    key = ec.generate_private_key(ec.SECP256R1())
    chain = issued(ca.sign("CP1", csr_for("CP1", key))).chain_pem
    assert await tls_client_cn(tmp_path, ca.files.bundle, chain, key) == "CP1"
    old, _new = ca.rotate()
    # The old chain (the old CA in it) against the bundle of both.
    assert await tls_client_cn(tmp_path, ca.files.bundle, chain, key) == "CP1"
    ca.retire(old.serial)
    assert await tls_client_cn(tmp_path, ca.files.bundle, chain, key) == "refused"


def test_a_broken_or_expired_ca_signs_nothing(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, ca_validity_days=10)
    later = CertificateAuthority(ca.files.directory, SETTINGS, lambda: NOW + timedelta(days=11))
    refused(later.sign("CP1", csr_for("CP1")), Refusal.CA_EXPIRED, "csms ca rotate")
    write_key(ca.files.key, ec.generate_private_key(ec.SECP256R1()))
    refused(ca.sign("CP1", csr_for("CP1")), Refusal.CA_UNUSABLE, "does not belong to")
    with pytest.raises(BadCa, match="does not belong to"):
        ca.rotate()
