"""Certificates on chargers (InstallCertificate, GetInstalledCertificateIds,
DeleteCertificate, a new signing request asked for, and the CertificateSigned the CSMS
sends itself); and the hash data OCPP names a certificate by, computed from its PEM.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from csms.core.charger_certificates import HashData, deletion, hash_data
from csms.core.command_requests import (
    CertificateDeleteRequest,
    CertificateInstallRequest,
    CertificateListRequest,
    CertificateRenewRequest,
    CertificateSignedRequest,
)
from csms.core.commands import (
    CommandRefused,
    GetInstalledCertificates,
    InstallCertificate,
    RequestCertificate,
    SendCertificate,
)
from csms.services.commands.base import Order, Prepared

CertificateRequest = (
    CertificateInstallRequest
    | CertificateListRequest
    | CertificateDeleteRequest
    | CertificateRenewRequest
    | CertificateSignedRequest
)


def prepare(request: CertificateRequest, order: Order) -> Prepared:
    """The command for `request`; a certificate to install must be one X.509 certificate,
    one to delete by its PEM is named by its hash data (SHA-256)."""
    match request:
        case CertificateInstallRequest():
            certs = _certificates(request.pem)
            if len(certs) != 1:
                raise CommandRefused(f"install one certificate at a time, not {len(certs)}")
            return Prepared(InstallCertificate(request.kind, request.pem))
        case CertificateListRequest():
            return Prepared(GetInstalledCertificates(request.kinds))
        case CertificateDeleteRequest():
            data = request.hash_data
            if data is None:
                assert request.pem is not None
                data = certificate_hash_data(request.pem)
            return Prepared(deletion(data), {"hash_data": str(data)})
        case CertificateRenewRequest():
            return Prepared(RequestCertificate())
        case CertificateSignedRequest():
            return Prepared(SendCertificate(request.chain_pem, request.use.value))


def _certificates(pem_text: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem_text.encode("ascii", "replace"))
    except ValueError as exc:
        raise CommandRefused(f"not a PEM certificate ({exc})") from None


_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


def certificate_hash_data(pem_text: str, algorithm: str = "SHA256") -> HashData:
    """The hash data OCPP names a certificate by: hashes of its issuer's DER name and of
    the issuer's public key (the key bits, as OCSP's CertID), and its serial. The issuer
    is the next certificate of the PEM, or the certificate itself when it is self-issued
    (a root). CommandRefused says why it cannot be computed."""
    certs = _certificates(pem_text)
    cert = certs[0]
    if len(certs) > 1:
        issuer = certs[1]
    elif cert.issuer == cert.subject:
        issuer = cert
    else:
        raise CommandRefused(
            "the certificate is not self-issued: give its issuer's certificate after it in "
            "the same file"
        )
    digest = _ALGORITHMS[algorithm]

    def hexdigest(data: bytes) -> str:
        h = hashes.Hash(digest())
        h.update(data)
        return h.finalize().hex()

    name_hash = hexdigest(cert.issuer.public_bytes())
    key_hash = hexdigest(_public_key_bits(issuer))
    return hash_data(algorithm, name_hash, key_hash, format(cert.serial_number, "x"))


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's content of a certificate (without the algorithm
    identifier): what OCSP's issuerKeyHash hashes."""
    public = cert.public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _bit_string_content(der)


def _bit_string_content(spki: bytes) -> bytes:
    """The content (after the unused-bits octet) of the BIT STRING that ends a DER
    SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }."""

    def header(data: bytes, at: int) -> tuple[int, int]:
        """(length, offset of the content) of the DER element at `at`."""
        first = data[at + 1]
        if first < 0x80:
            return first, at + 2
        count = first & 0x7F
        return int.from_bytes(data[at + 2 : at + 2 + count], "big"), at + 2 + count

    _, inner = header(spki, 0)  # the outer SEQUENCE
    alg_len, alg_at = header(spki, inner)  # AlgorithmIdentifier
    bits_len, bits_at = header(spki, alg_at + alg_len)  # BIT STRING
    return spki[bits_at + 1 : bits_at + bits_len]
