"""The CSMS's certificate authority for charging station certificates: create, import and
rotate the CA, sign a charger's CSR and record what was issued.

X.509, keys and signing (the `cryptography` package) and the CA's files; the rules that need
no cryptography live in csms.core.certificates, the records in csms.storage.ca_certificates.

Raises (csms.core.errors, where the tree is drawn) PkiError:
 ├── NoCa          no CA in the directory yet (`csms ca init`)
 ├── CaExists      `init` where a CA already is (replace it with `csms ca rotate`)
 ├── BadCa         a CA to import, or the one on disk, is unusable (the message says why)
 └── UnknownCa     no previous CA with that serial (retire)

A refused signing request is no exception: `sign` and `issue` return a Refused value with
its reason, for a handler to answer Rejected and the CLI to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.core.certificates import (
    CA_RSA_BITS,
    SERIAL_BITS,
    CaInfo,
    CaSettings,
    Issued,
    IssuedCertificate,
    KeyInfo,
    Refusal,
    Refused,
    common_name_problem,
    key_problem,
    serial_hex,
    validity,
)
from csms.core.clock import Clock
from csms.core.errors import BadCa as BadCa
from csms.core.errors import CaExists as CaExists
from csms.core.errors import NoCa as NoCa
from csms.core.errors import PkiError as PkiError
from csms.core.errors import UnknownCa as UnknownCa
from csms.core.ids import charger_id_problem
from csms.storage import ca_certificates as cert_repo
from csms.storage.database import Database, WriteTx
from csms.storage.paging import Page

log = structlog.get_logger("csms.pki")

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
# Largest CSR accepted, in characters of PEM (a 4096-bit RSA CSR is about 1.7 kB).
MAX_CSR_LENGTH = 16_384


@dataclass(frozen=True, slots=True)
class CaUse:
    """What a CA issued: how many certificates, how many of them expire within the
    window asked about, and when the last one expires (None: none issued)."""

    issued: int
    expiring: int
    last_expiry: datetime | None


@dataclass(frozen=True, slots=True)
class CaFiles:
    """Where the CA lives: `ca.crt` and `ca.key` (mode 0600) of the current CA,
    `trusted.pem` with the current CA and every previous one still trusted,
    `previous/SERIAL.crt|.key` of the CAs it replaced, `retired/` those staff retired."""

    directory: Path

    @property
    def cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def bundle(self) -> Path:
        return self.directory / "trusted.pem"

    @property
    def previous(self) -> Path:
        return self.directory / "previous"

    @property
    def retired(self) -> Path:
        return self.directory / "retired"


def key_info(key: Any) -> KeyInfo:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return KeyInfo("ec", key.curve.key_size, key.curve.name)
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return KeyInfo("rsa", key.key_size)
    name = type(key).__name__.removesuffix("PublicKey").removesuffix("PrivateKey").lower()
    return KeyInfo(name or "unknown", 0)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def ca_info(cert: x509.Certificate) -> CaInfo:
    return CaInfo(
        subject=cert.subject.rfc4514_string(),
        serial=serial_hex(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=fingerprint(cert),
        key=key_info(cert.public_key()).label,
    )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _random_serial() -> int:
    # Never 0, and positive: DER integers are signed, the encoder adds the sign octet.
    return secrets.randbits(SERIAL_BITS) | 1


def _new_key(key_type: str) -> CaKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=CA_RSA_BITS)
    raise PkiError(f"key type must be ec or rsa, not {key_type!r}")


def new_ca(
    settings: CaSettings, now: datetime, key_type: str | None = None
) -> tuple[x509.Certificate, CaKey]:
    """A self-signed CA for charging station certificates: CA:true with path length 0,
    keyCertSign and cRLSign, subject O and CN from the settings."""
    key = _new_key(key_type or settings.key_type)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, settings.common_name),
        ]
    )
    not_before, not_after = validity(now, settings.ca_validity_days)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(_random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def check_ca(cert: x509.Certificate, key: Any, now: datetime) -> CaKey:
    """`key` as a CA key for `cert`, or BadCa saying why not: the key must be the
    certificate's, the certificate a CA allowed to sign certificates and valid now."""
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise BadCa(f"the key is {key_info(key).kind}; a CA key must be EC or RSA")
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        raise BadCa("the key does not belong to the certificate (their public keys differ)")
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise BadCa("the certificate is not a CA certificate (basicConstraints CA:true missing)")
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise BadCa("the certificate may not sign certificates (keyUsage keyCertSign missing)")
    if cert.not_valid_after_utc <= now:
        raise BadCa(f"the certificate expired at {cert.not_valid_after_utc.isoformat()}")
    problem = key_problem(key_info(key))
    if problem is not None:
        raise BadCa(problem.detail.replace("the CSR's", "the CA's"))
    return key


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's key identifier as the CA states it (an imported CA's may have been
    computed another way; chain building matches the two), else derived from its key."""
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write `data` to `path` through a new temporary file, then rename it into place: a
    key file is created with mode 0600 and never exists with wider permissions."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _key_pem(key: CaKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateAuthority:
    """The CA in its directory, the rules it signs by, and (when given a database) the
    record of what it issued. The files are read at every use, so a CA rotated by the CLI
    is what a running server signs with next."""

    def __init__(
        self,
        directory: Path | str,
        settings: CaSettings,
        clock: Clock,
        db: Database | None = None,
    ) -> None:
        self.files = CaFiles(Path(directory))
        self.settings = settings
        self.clock = clock
        self.db = db

    # -- the CA itself ------------------------------------------------------------------

    def exists(self) -> bool:
        return self.files.cert.exists() or self.files.key.exists()

    def load(self) -> tuple[x509.Certificate, CaKey]:
        """The current CA's certificate and key, checked to belong together."""
        if not self.exists():
            raise NoCa(f"no CA in {self.files.directory}: create one with `csms ca init`")
        try:
            cert = x509.load_pem_x509_certificate(self.files.cert.read_bytes())
            key = serialization.load_pem_private_key(self.files.key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise BadCa(f"the CA in {self.files.directory} cannot be read: {exc}") from None
        raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
            raise BadCa(f"{self.files.key} does not belong to {self.files.cert}")
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise BadCa(f"{self.files.key} is {key_info(key).kind}; a CA key must be EC or RSA")
        return cert, key

    def current(self) -> CaInfo:
        return ca_info(self.load()[0])

    def previous(self) -> list[CaInfo]:
        """The CAs this one replaced that are still trusted, newest first."""
        return [ca_info(c) for c in self._previous_certs()]

    def _previous_certs(self) -> list[x509.Certificate]:
        if not self.files.previous.is_dir():
            return []
        certs = [
            x509.load_pem_x509_certificate(p.read_bytes())
            for p in sorted(self.files.previous.glob("*.crt"))
        ]
        return sorted(certs, key=lambda c: c.not_valid_before_utc, reverse=True)

    def trusted_pem(self) -> str:
        """The bundle chargers' certificates are verified against: the current CA, then
        the previous ones still trusted."""
        return self.files.bundle.read_text("ascii")

    def create(self, key_type: str | None = None) -> CaInfo:
        """A new CA in an empty directory (CaExists where one is)."""
        self._refuse_existing()
        cert, key = new_ca(self.settings, self.clock(), key_type)
        self._install(cert, key)
        info = ca_info(cert)
        log.info(
            "ca_created", serial=info.serial, key=info.key, directory=str(self.files.directory)
        )
        return info

    def import_pem(
        self,
        cert_pem: bytes,
        key_pem: bytes,
        *,
        before_install: Callable[[CaInfo], None] | None = None,
    ) -> CaInfo:
        """An existing CA (PEM certificate and unencrypted PEM key) as ours.
        `before_install` sees the checked CA before anything is written (and may raise to
        stop there)."""
        self._refuse_existing()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise BadCa(f"the certificate is not a PEM X.509 certificate ({exc})") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except TypeError:
            raise BadCa(
                "the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)"
            ) from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise BadCa(f"the key is not a PEM private key ({exc})") from None
        ca_key = check_ca(cert, key, self.clock())
        info = ca_info(cert)
        if before_install is not None:
            before_install(info)
        self._install(cert, ca_key)
        log.info("ca_imported", serial=info.serial, key=info.key, subject=info.subject)
        return info

    def rotate(self, key_type: str | None = None) -> tuple[CaInfo, CaInfo]:
        """A new CA in place of the current one, which stays trusted (in `trusted.pem`)
        until staff retire it. Returns (old, new)."""
        old_cert, old_key = self.load()
        old = ca_info(old_cert)
        cert, key = new_ca(self.settings, self.clock(), key_type or old.key.split("-")[0])
        self.files.previous.mkdir(mode=0o700, exist_ok=True)
        _write(self.files.previous / f"{old.serial}.crt", pem(old_cert).encode("ascii"))
        _write(self.files.previous / f"{old.serial}.key", _key_pem(old_key), secret=True)
        self._install(cert, key)
        new = ca_info(cert)
        log.info("ca_rotated", old_serial=old.serial, new_serial=new.serial, key=new.key)
        return old, new

    def retire(self, serial: str) -> CaInfo:
        """Stop trusting a previous CA: certificates it issued are refused from now on."""
        serial = serial.lower().replace(":", "")
        crt = self.files.previous / f"{serial}.crt"
        if not crt.is_file():
            known = ", ".join(c.serial for c in self.previous()) or "none"
            raise UnknownCa(f"no previous CA with serial {serial} (previous CAs: {known})")
        info = ca_info(x509.load_pem_x509_certificate(crt.read_bytes()))
        self.files.retired.mkdir(mode=0o700, exist_ok=True)
        for suffix in (".crt", ".key"):
            source = self.files.previous / f"{serial}{suffix}"
            if source.exists():
                os.replace(source, self.files.retired / source.name)
        self._write_bundle(self.load()[0])
        log.info("ca_retired", serial=serial)
        return info

    def _refuse_existing(self) -> None:
        if self.exists():
            raise CaExists(
                f"a CA already exists in {self.files.directory} (serial "
                f"{self._serial_on_disk()}); replace it with `csms ca rotate`"
            )

    def _serial_on_disk(self) -> str:
        try:
            return ca_info(x509.load_pem_x509_certificate(self.files.cert.read_bytes())).serial
        except (OSError, ValueError):
            return "unreadable"

    def _install(self, cert: x509.Certificate, key: CaKey) -> None:
        self.files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(self.files.key, _key_pem(key), secret=True)
        _write(self.files.cert, pem(cert).encode("ascii"))
        self._write_bundle(cert)

    def _write_bundle(self, current: x509.Certificate) -> None:
        text = "".join(pem(c) for c in [current, *self._previous_certs()])
        _write(self.files.bundle, text.encode("ascii"))

    # -- charging station certificates ---------------------------------------------------

    def sign(self, charge_point_id: str, csr_pem: str | bytes) -> Issued | Refused:
        """Sign a charger's CSR (PEM, as SignCertificateRequest.csr carries it) with the
        current CA, or say why not. Nothing is recorded (see `issue`)."""
        problem = charger_id_problem(charge_point_id)
        if problem is not None:
            return Refused(Refusal.BAD_CHARGER_ID, problem)
        text = csr_pem.encode("ascii", "replace") if isinstance(csr_pem, str) else csr_pem
        if len(text) > MAX_CSR_LENGTH:
            return Refused(Refusal.MALFORMED_CSR, f"the CSR is longer than {MAX_CSR_LENGTH} bytes")
        try:
            csr = x509.load_pem_x509_csr(text)
            public = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            return Refused(Refusal.MALFORMED_CSR, f"not a PEM certificate signing request ({exc})")
        problem_key = key_problem(key_info(public))
        if problem_key is not None:
            return problem_key
        if not csr.is_signature_valid:
            return Refused(
                Refusal.BAD_SIGNATURE, "the CSR's signature does not verify with its own key"
            )
        names = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        problem_cn = common_name_problem(names, charge_point_id)
        if problem_cn is not None:
            return problem_cn
        try:
            ca_cert, ca_key = self.load()
        except NoCa as exc:
            return Refused(Refusal.NO_CA, str(exc))
        except BadCa as exc:
            return Refused(Refusal.CA_UNUSABLE, str(exc))
        now = self.clock()
        if ca_cert.not_valid_after_utc <= now:
            return Refused(
                Refusal.CA_EXPIRED,
                f"our CA expired at {ca_cert.not_valid_after_utc.isoformat()}; "
                "rotate it with `csms ca rotate`",
            )
        cert = self._charger_certificate(charge_point_id, public, ca_cert, ca_key, now)
        issued = IssuedCertificate(
            serial=serial_hex(cert.serial_number),
            charge_point_id=charge_point_id,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            fingerprint_sha256=fingerprint(cert),
            issuer_serial=serial_hex(ca_cert.serial_number),
            issued_at=now,
            pem=pem(cert),
        )
        return Issued(issued, issued.pem + pem(ca_cert))

    def _charger_certificate(
        self,
        charge_point_id: str,
        public: Any,
        ca_cert: x509.Certificate,
        ca_key: CaKey,
        now: datetime,
    ) -> x509.Certificate:
        not_before, not_after = validity(
            now, self.settings.certificate_validity_days, ca_cert.not_valid_after_utc
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.settings.organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, charge_point_id),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .serial_number(_random_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(_authority_key_identifier(ca_cert), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

    async def issue(self, charge_point_id: str, csr_pem: str | bytes) -> Issued | Refused:
        """Sign a charger's CSR and record the certificate (for a SignCertificate handler
        and `csms ca issue`): the PEM chain, or the reason it was refused. Signing and the
        file reads run in a thread, off the event loop."""
        result = await asyncio.to_thread(self.sign, charge_point_id, csr_pem)
        if isinstance(result, Refused):
            log.info(
                "certificate_refused",
                charge_point_id=charge_point_id,
                reason=result.reason.value,
                detail=result.detail,
            )
            return result
        if self.db is None:
            raise PkiError("no database to record the certificate in")
        cert = result.certificate

        async def record(tx: WriteTx) -> None:
            await cert_repo.add(await tx.connection(), cert)

        await self.db.write(record)
        log.info(
            "certificate_issued",
            charge_point_id=charge_point_id,
            serial=cert.serial,
            not_after=cert.not_after.isoformat(),
            issuer_serial=cert.issuer_serial,
        )
        return result

    # -- records --------------------------------------------------------------------------

    def _database(self) -> Database:
        if self.db is None:
            raise PkiError("no database to read the issued certificates from")
        return self.db

    async def certificates(
        self,
        *,
        charge_point_id: str | None = None,
        expiring_within: timedelta | None = None,
        limit: int = 100,
    ) -> Page[IssuedCertificate]:
        """Issued certificates, newest first: of one charger, and/or those still valid
        that expire within the window."""
        now = self.clock()
        async with self._database().read() as conn:
            return await cert_repo.listing(
                conn,
                charge_point_id=charge_point_id,
                now=now,
                expiring_before=None if expiring_within is None else now + expiring_within,
                limit=limit,
            )

    async def expiring(self, within: timedelta) -> list[IssuedCertificate]:
        """Certificates still valid that expire within `within`, soonest first."""
        now = self.clock()
        async with self._database().read() as conn:
            return await cert_repo.expiring(conn, now, now + within)

    async def use(self, issuer_serial: str, expiring_within: timedelta) -> CaUse:
        now = self.clock()
        async with self._database().read() as conn:
            issued = await cert_repo.count(conn, issuer_serial=issuer_serial)
            expiring = await cert_repo.count(
                conn, issuer_serial=issuer_serial, now=now, expiring_before=now + expiring_within
            )
            last = await cert_repo.last_expiry(conn, issuer_serial)
        return CaUse(issued, expiring, last)

    async def retire_expired(self) -> list[CaInfo]:
        """Retire every previous CA whose recorded certificates have all expired: nothing
        it signed can still be presented. A previous CA with no recorded certificate (one
        imported with certificates issued elsewhere) is kept for staff to retire by
        serial."""
        now = self.clock()
        retired = []
        for info in self.previous():
            async with self._database().read() as conn:
                last = await cert_repo.last_expiry(conn, info.serial)
            if last is not None and last <= now:
                retired.append(self.retire(info.serial))
        return retired
