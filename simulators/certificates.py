"""A simulated charger's certificates: its key and CSR (CN = its id), the chain the CSMS
signed for it (in memory, and in `--cert-dir` when given), the root certificates it was
told to install, and its answers to the CSMS's certificate messages in both versions.

Version-neutral store plus the two versions' answers; wired into v16_requests/v201_requests
with a line each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulators.events import StepKind
from simulators.link import Reply

__all__ = [
    "CertificateHolder",
    "CertificateStore",
    "answers_v16",
    "answers_v201",
    "request_certificate",
]

Payload = dict[str, Any]

# Installed kinds by each version's wire name (neutral names as `csms remote` uses them).
KINDS_V201 = {
    "CSMSRootCertificate": "csms-root",
    "ManufacturerRootCertificate": "manufacturer-root",
    "V2GRootCertificate": "v2g-root",
    "MORootCertificate": "mo-root",
    "V2GCertificateChain": "v2g-chain",
}
KINDS_V16 = {
    "CentralSystemRootCertificate": "csms-root",
    "ManufacturerRootCertificate": "manufacturer-root",
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
CERT_FILE, KEY_FILE = "charger.crt", "charger.key"


def _digest(algorithm: str, data: bytes) -> str:
    h = hashes.Hash(_HASHES[algorithm]())
    h.update(data)
    return h.finalize().hex()


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey bits (what issuerKeyHash hashes): the content, after its
    unused-bits octet, of the BIT STRING that ends the SubjectPublicKeyInfo."""
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def header(at: int) -> tuple[int, int]:  # (length, content offset) of the element at `at`
        first = der[at + 1]
        if first < 0x80:
            return first, at + 2
        count = first & 0x7F
        return int.from_bytes(der[at + 2 : at + 2 + count], "big"), at + 2 + count

    _, inner = header(0)
    alg_len, alg_at = header(inner)
    bits_len, bits_at = header(alg_at + alg_len)
    return der[bits_at + 1 : bits_at + bits_len]


def hash_data(
    cert: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256"
) -> Payload:
    """CertificateHashDataType of `cert` (both versions)."""
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": _digest(algorithm, cert.issuer.public_bytes()),
        "issuerKeyHash": _digest(algorithm, _key_bits(issuer)),
        "serialNumber": format(cert.serial_number, "x"),
    }


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def norm(d: Mapping[str, Any]) -> tuple[str, str, str, str]:
        return (
            str(d.get("hashAlgorithm", "")).upper(),
            str(d.get("issuerNameHash", "")).lower(),
            str(d.get("issuerKeyHash", "")).lower(),
            str(d.get("serialNumber", "")).lower().lstrip("0"),
        )

    return norm(a) == norm(b)


class CertificateStore:
    """What a charger holds: the key and chain of its own certificate, a key waiting for its
    certificate, and installed root certificates by kind. Tests read `chain`, `csr_count`,
    `rejected_chains` and `installed`, and set `common_name` and `accept_chains`."""

    def __init__(self, charger_id: str, directory: str | None = None) -> None:
        self.charger_id = charger_id
        self.directory = None if directory is None else Path(directory)
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.chain: list[x509.Certificate] = []
        self.installed: dict[str, list[x509.Certificate]] = {}
        self.csr_count = 0
        self.rejected_chains = 0
        #: Common name of the next CSR (default: the charger's id).
        self.common_name: str | None = None
        #: False: refuse every CertificateSigned (a charger that cannot store it).
        self.accept_chains = True
        self._pending: ec.EllipticCurvePrivateKey | None = None
        self._changed = asyncio.Event()
        self._load()

    def _load(self) -> None:
        if self.directory is None:
            return
        cert, key = self.directory / CERT_FILE, self.directory / KEY_FILE
        with contextlib.suppress(OSError, ValueError):
            loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
            if isinstance(loaded, ec.EllipticCurvePrivateKey):
                self.chain = x509.load_pem_x509_certificates(cert.read_bytes())
                self.key = loaded

    # -- our own certificate ------------------------------------------------------------

    def new_csr(self) -> str:
        """A new P-256 key and a CSR for it (CN = the charger id, or `common_name`)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = self.common_name or self.charger_id
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256())
        )
        self._pending = key
        self.csr_count += 1
        return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def accept_chain(self, chain_pem: str) -> bool:
        """Take the chain the CSMS signed if its certificate is for the key of our last CSR
        (and written to the directory when there is one)."""
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode("ascii", "replace"))
        except ValueError:
            chain = []
        key = self._pending
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if (
            not self.accept_chains
            or not chain
            or key is None
            or chain[0].public_key().public_bytes(*der) != key.public_key().public_bytes(*der)
        ):
            self.rejected_chains += 1
            self._changed.set()
            return False
        self.key, self.chain, self._pending = key, chain, None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path = self.directory / KEY_FILE
            path.touch(mode=0o600, exist_ok=True)
            path.write_bytes(key_pem)
            (self.directory / CERT_FILE).write_text(chain_pem, encoding="ascii")
        self._changed.set()
        return True

    async def wait_changed(self, seconds: float) -> bool:
        """Wait for the next chain taken or refused (False: none within `seconds`)."""
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    # -- installed roots ------------------------------------------------------------------

    def install(self, kind: str, pem: str) -> str:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii", "replace"))
        except ValueError:
            return "Rejected"
        held = self.installed.setdefault(kind, [])
        if all(c.serial_number != cert.serial_number for c in held):
            held.append(cert)
        return "Accepted"

    def listed(self, kinds: list[str] | None) -> list[tuple[str, Payload]]:
        """(kind, hash data) of the installed certificates of `kinds` (None: all)."""
        out: list[tuple[str, Payload]] = []
        for kind, certs in self.installed.items():
            if kinds is None or kind in kinds:
                out.extend((kind, hash_data(c, c)) for c in certs)
        return out

    def delete(self, wanted: Mapping[str, Any]) -> bool:
        algorithm = str(wanted.get("hashAlgorithm", "SHA256")).upper()
        if algorithm not in _HASHES:
            return False
        for certs in self.installed.values():
            for cert in certs:
                if _same(hash_data(cert, cert, algorithm), wanted):
                    certs.remove(cert)
                    return True
        return False


class CertificateHolder(Protocol):
    """What the certificate answers ask of a simulated charger (either version)."""

    @property
    def certificates(self) -> CertificateStore: ...

    async def call(
        self, action: str, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]: ...

    def report(self, kind: StepKind, text: str) -> None: ...


async def request_certificate(cp: CertificateHolder, version: str) -> None:
    """Send SignCertificate with a new CSR (2.0.1: for the ChargingStationCertificate)."""
    csr = cp.certificates.new_csr()
    payload: Payload = {"csr": csr}
    if version != "1.6":
        payload["certificateType"] = "ChargingStationCertificate"
    answer = await cp.call("SignCertificate", payload)
    cp.report(StepKind.INFO, f"SignCertificate {answer.get('status')}")


def _signed(cp: CertificateHolder, payload: Payload) -> Reply:
    taken = cp.certificates.accept_chain(str(payload.get("certificateChain", "")))
    return Reply({"status": "Accepted" if taken else "Rejected"})


def answers_v201(cp: CertificateHolder) -> dict[str, Callable[[Payload], Reply]]:
    """2.0.1 answers: CertificateSigned, InstallCertificate, GetInstalledCertificateIds,
    DeleteCertificate."""
    store = cp.certificates

    def install(payload: Payload) -> Reply:
        kind = KINDS_V201.get(str(payload.get("certificateType")))
        if kind is None or kind == "v2g-chain":
            return Reply({"status": "Rejected"})
        return Reply({"status": store.install(kind, str(payload.get("certificate", "")))})

    def listed(payload: Payload) -> Reply:
        wanted = payload.get("certificateType")
        kinds = None if not wanted else [KINDS_V201.get(str(k), "") for k in wanted]
        found = store.listed(kinds)
        if not found:
            return Reply({"status": "NotFound"})
        wire = {v: k for k, v in KINDS_V201.items()}
        chain = [{"certificateType": wire[k], "certificateHashData": h} for k, h in found]
        return Reply({"status": "Accepted", "certificateHashDataChain": chain})

    def delete(payload: Payload) -> Reply:
        gone = store.delete(payload.get("certificateHashData") or {})
        return Reply({"status": "Accepted" if gone else "NotFound"})

    return {
        "CertificateSigned": lambda payload: _signed(cp, payload),
        "InstallCertificate": install,
        "GetInstalledCertificateIds": listed,
        "DeleteCertificate": delete,
    }


def answers_v16(cp: CertificateHolder) -> dict[str, Callable[[Payload], Reply]]:
    """1.6 security extension answers: CertificateSigned, InstallCertificate,
    GetInstalledCertificateIds, DeleteCertificate, ExtendedTriggerMessage (the certificate
    request only)."""
    store = cp.certificates

    def install(payload: Payload) -> Reply:
        kind = KINDS_V16.get(str(payload.get("certificateType")))
        if kind is None:
            return Reply({"status": "Rejected"})
        return Reply({"status": store.install(kind, str(payload.get("certificate", "")))})

    def listed(payload: Payload) -> Reply:
        kind = KINDS_V16.get(str(payload.get("certificateType")), "")
        found = store.listed([kind])
        if not found:
            return Reply({"status": "NotFound"})
        return Reply({"status": "Accepted", "certificateHashData": [h for _, h in found]})

    def delete(payload: Payload) -> Reply:
        gone = store.delete(payload.get("certificateHashData") or {})
        return Reply({"status": "Accepted" if gone else "NotFound"})

    def extended_trigger(payload: Payload) -> Reply:
        if payload.get("requestedMessage") != "SignChargePointCertificate":
            return Reply({"status": "NotImplemented"})
        return Reply({"status": "Accepted"}, after=lambda: request_certificate(cp, "1.6"))

    return {
        "CertificateSigned": lambda payload: _signed(cp, payload),
        "InstallCertificate": install,
        "GetInstalledCertificateIds": listed,
        "DeleteCertificate": delete,
        "ExtendedTriggerMessage": extended_trigger,
    }
