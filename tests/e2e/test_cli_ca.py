"""`csms ca` as staff run it, as a subprocess in a fresh data directory: create or import
the CA, sign CSRs made here with `cryptography` (and refuse the wrong ones in one line),
list what was issued, rotate and retire. The certificates are checked with `cryptography`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.cli import run_csms


def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return run_csms(args, env={**env, **extra}, cwd=cwd)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], line: str) -> None:
    """Exit 1 and exactly one line on stderr, nothing on stdout."""
    assert result.returncode == 1, result
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def write_csr(path: Path, cn: str, key: CertificateIssuerPrivateKeyTypes | None = None) -> Path:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def bundle(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_init_issue_list_rotate_retire(tmp_path: Path) -> None:
    (tmp_path / "csms.toml").write_text('[ca]\norganisation = "Test CPO"\n')
    ca_dir = tmp_path / ".csms" / "ca"
    refused(run(tmp_path, "ca", "show"), f"no CA in {ca_dir}: create one with `csms ca init`")

    # The CA's CN from the environment: CSMS_CA_* overrides work like every key.
    out = ok(run(tmp_path, "ca", "init", CSMS_CA_COMMON_NAME="Test CA"))
    assert out.startswith(f"created CA CN=Test CA,O=Test CPO in {ca_dir}\n")
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    serial = format(ca_cert.serial_number, "x").rjust(32, "0")
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    refused(
        run(tmp_path, "ca", "init"),
        f"a CA already exists in {ca_dir} (serial {serial}); replace it with `csms ca rotate`",
    )

    csr = write_csr(tmp_path / "cp1.csr", "CP1")
    refused(
        run(tmp_path, "ca", "issue", "CP1", "--csr", str(csr)),
        f"no database at {tmp_path}/csms.db (data directory {tmp_path}): point at yours with "
        "--data-dir, --config or CSMS_DATABASE_URL, or create one there with `csms db init`",
    )
    ok(run(tmp_path, "db", "init"))
    refused(
        run(tmp_path, "ca", "issue", "CP1", "--csr", str(write_csr(tmp_path / "x.csr", "CP2"))),
        "refused (wrong_common_name): the CSR's subject CN is 'CP2', not the charger id 'CP1'",
    )
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_csr = write_csr(tmp_path / "w.csr", "CP1", weak)
    refused(
        run(tmp_path, "ca", "issue", "CP1", "--csr", str(weak_csr)),
        "refused (weak_key): the CSR's RSA key has 1024 bits; at least 2048 are required",
    )
    refused(
        run(tmp_path, "ca", "issue", "CP1", "--csr", str(tmp_path / "none.csr")),
        f"--csr {tmp_path}/none.csr cannot be read: No such file or directory",
    )

    # Signed by hand: the PEM chain on stdout, or in a file.
    chain = x509.load_pem_x509_certificates(
        ok(run(tmp_path, "ca", "issue", "CP1", "--csr", str(csr))).encode()
    )
    assert len(chain) == 2 and chain[1] == ca_cert
    leaf = chain[0]
    leaf.verify_directly_issued_by(ca_cert)
    assert leaf.subject.rfc4514_string() == "CN=CP1,O=Test CPO"
    assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    )
    days = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() / 86400
    assert 365 < days < 365.01
    short = write_csr(tmp_path / "cp2.csr", "CP2")
    out = ok(
        run(
            tmp_path,
            "ca",
            "issue",
            "CP2",
            "--csr",
            str(short),
            "--out",
            str(tmp_path / "cp2.pem"),
            CSMS_CA_CERTIFICATE_VALIDITY_DAYS="10",
        )
    )
    cp2 = x509.load_pem_x509_certificates((tmp_path / "cp2.pem").read_bytes())[0]
    cp2_serial = format(cp2.serial_number, "x").rjust(32, "0")
    assert out.startswith(f"issued certificate {cp2_serial} for CP2, valid until ")
    assert out.endswith(f"(in 9d23h), written to {tmp_path}/cp2.pem\n")

    listed = json.loads(ok(run(tmp_path, "ca", "certificates", "--json")))
    assert [c["charger"] for c in listed] == ["CP2", "CP1"]  # newest first
    assert listed[0]["serial"] == cp2_serial and listed[0]["issuer_serial"] == serial
    assert listed[0]["fingerprint_sha256"] == cp2.fingerprint(hashes.SHA256()).hex()
    expiring = json.loads(ok(run(tmp_path, "ca", "certificates", "--expiring", "30d", "--json")))
    assert [c["serial"] for c in expiring] == [cp2_serial]
    assert json.loads(ok(run(tmp_path, "ca", "certificates", "--charger", "CP9", "--json"))) == []
    limited = run(tmp_path, "ca", "certificates", "--limit", "1")
    assert limited.returncode == 0
    assert limited.stdout.splitlines()[1].startswith(cp2_serial)
    assert limited.stdout.splitlines()[-1] == "showing 1 of 2; --limit to see more"
    refused(
        run(tmp_path, "ca", "certificates", "--expiring", "soon"),
        "--expiring: not a number of days: 'soon' (e.g. 30d)",
    )
    shown = json.loads(ok(run(tmp_path, "ca", "show", "--json")))
    assert shown["serial"] == serial and shown["subject"] == "CN=Test CA,O=Test CPO"
    assert shown["key"] == "ec-secp256r1"
    assert shown["certificates_issued"] == 2 and shown["certificates_expiring_30d"] == 1
    assert shown["fingerprint_sha256"] == ca_cert.fingerprint(hashes.SHA256()).hex()

    # Rotation asks first, then keeps the old CA trusted beside the new one.
    refused(
        run(tmp_path, "ca", "rotate"),
        f"rotate the CA {serial} in {ca_dir}: add --yes to confirm (no terminal to ask on)",
    )
    out = ok(run(tmp_path, "ca", "rotate", "--yes"))
    new_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    new_serial = format(new_cert.serial_number, "x").rjust(32, "0")
    assert out.splitlines()[0] == f"rotated: new CA {new_serial} (ec-secp256r1) signs from now on"
    assert bundle(ca_dir / "trusted.pem") == [new_cert, ca_cert]
    shown = json.loads(ok(run(tmp_path, "ca", "show", "--json")))
    assert shown["serial"] == new_serial and shown["certificates_issued"] == 0
    assert [(p["serial"], p["certificates_issued"]) for p in shown["previous"]] == [(serial, 2)]
    text = ok(run(tmp_path, "ca", "issue", "CP1", "--csr", str(csr)))
    x509.load_pem_x509_certificates(text.encode())[0].verify_directly_issued_by(new_cert)

    refused(
        run(tmp_path, "ca", "retire"),
        "name the previous CA to retire by its SERIAL, or give --expired",
    )
    # CP1's and CP2's certificates from the old CA are still valid: it stays.
    assert ok(run(tmp_path, "ca", "retire", "--expired", "--yes")) == (
        "no previous CA has only expired certificates; none retired\n"
    )
    assert bundle(ca_dir / "trusted.pem") == [new_cert, ca_cert]
    refused(
        run(tmp_path, "ca", "retire", serial),
        f"retire the previous CA {serial}: add --yes to confirm (no terminal to ask on)",
    )
    refused(
        run(tmp_path, "ca", "retire", new_serial, "--yes"),
        f"no previous CA with serial {new_serial} (previous CAs: {serial})",
    )
    ok(run(tmp_path, "ca", "retire", serial, "--yes"))
    assert bundle(ca_dir / "trusted.pem") == [new_cert]


def test_import_checks_certificate_and_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Imported CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA384())
    )
    cert_file = tmp_path / "ca.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "ca.key"
    plain = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, plain))
    other_file = tmp_path / "other.key"
    other = ec.generate_private_key(ec.SECP256R1())
    other_file.write_bytes(other.private_bytes(serialization.Encoding.PEM, pkcs8, plain))

    refused(
        run(tmp_path, "ca", "init", "--import-cert", str(cert_file)),
        "--import-cert and --import-key go together",
    )
    refused(
        run(
            tmp_path, "ca", "init", "--import-cert", str(cert_file), "--import-key", f"{other_file}"
        ),
        "the key does not belong to the certificate (their public keys differ)",
    )
    assert not (tmp_path / ".csms").exists()
    # It ends sooner than a charger certificate would (365 days): confirmed first.
    ends = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    importing = ["ca", "init", "--import-cert", str(cert_file), "--import-key", str(key_file)]
    refused(
        run(tmp_path, *importing),
        f"import the CA 1092, which ends {ends}, sooner than the 365 days a charger "
        "certificate lasts (they would end with it): add --yes to confirm (no terminal to ask on)",
    )
    assert not (tmp_path / ".csms").exists()
    out = ok(run(tmp_path, *importing, "--yes"))
    assert out.startswith(f"imported CA CN=Imported CA in {tmp_path}/.csms/ca\n")
    assert "serial:         10:92\n" in out and "key:            ec-secp384r1\n" in out
    shown = json.loads(ok(run(tmp_path, "ca", "show", "--json")))
    assert shown["serial"] == "1092" and shown["certificates_issued"] is None  # no database

    ok(run(tmp_path, "db", "init"))
    chain = ok(run(tmp_path, "ca", "issue", "CP1", "--csr", str(write_csr(tmp_path / "c", "CP1"))))
    x509.load_pem_x509_certificates(chain.encode())[0].verify_directly_issued_by(cert)


def test_a_ca_ending_before_its_certificates_is_confirmed(tmp_path: Path) -> None:
    refused(
        run(tmp_path, "ca", "init", CSMS_CA_CA_VALIDITY_DAYS="100"),
        "create a CA valid 100 days, fewer than the 365 days a charger certificate lasts "
        "(they would end with it): add --yes to confirm (no terminal to ask on)",
    )
    assert not (tmp_path / ".csms").exists()
    ok(run(tmp_path, "ca", "init", "--yes", CSMS_CA_CA_VALIDITY_DAYS="100"))
    shown = json.loads(ok(run(tmp_path, "ca", "show", "--json")))
    days = datetime.fromisoformat(shown["not_after"]) - datetime.fromisoformat(shown["not_before"])
    assert days == timedelta(days=100, minutes=5)
    refused(
        run(tmp_path, "ca", "init", "--key-type", "rsa", "--import-cert", "a", "--import-key", "b"),
        "--key-type is for a new CA; an imported CA keeps its key",
    )
