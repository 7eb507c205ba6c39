"""The cryptography behind the Eichrecht checks: reading a meter's public key in the forms
meters and chargers publish it, and verifying an OCMF record's ECDSA signature.

The rules themselves live in csms.core.ocmf; this module only supplies its `Verifier`.
Signatures are checked over the exact payload bytes the meter signed, never a re-encoding.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.core.ocmf import (
    OcmfError,
    OcmfRecord,
    SignatureProblem,
    Verdict,
    check_transaction,
    decode_signed,
    parse,
    plain_data,
)

__all__ = [
    "CdrVerification",
    "SignedValueCheck",
    "canonical_public_key",
    "curve_of",
    "load_public_key",
    "verify_cdr",
    "verify_signature",
    "verify_transaction",
]

# The OCMF signature algorithms we verify (specification table 22), by curve: all but
# secp192k1, which the cryptography package does not offer. The
# specification spells brainpool without the P; the RFC 5639 spelling is accepted as well.
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp256k1": ec.SECP256K1,
    "secp192r1": ec.SECP192R1,
    "brainpool256r1": ec.BrainpoolP256R1,
    "brainpoolp256r1": ec.BrainpoolP256R1,
    "brainpool384r1": ec.BrainpoolP384R1,
    "brainpoolp384r1": ec.BrainpoolP384R1,
}
_ALGORITHM = re.compile(r"ECDSA-([A-Za-z0-9]+)-SHA256")
_HEX = re.compile(r"[0-9A-Fa-f]+")


def curve_of(algorithm: str) -> ec.EllipticCurve:
    """The curve of an OCMF signature algorithm (`ECDSA-secp256r1-SHA256`)."""
    match = _ALGORITHM.fullmatch(algorithm)
    curve = _CURVES.get(match.group(1).lower()) if match else None
    if curve is None:
        raise OcmfError(
            SignatureProblem.UNKNOWN_ALGORITHM, f"signature algorithm {algorithm!r} not supported"
        )
    return curve()


def load_public_key(text: str, algorithm: str | None = None) -> ec.EllipticCurvePublicKey:
    """An EC public key from hex or base64 of its DER SubjectPublicKeyInfo, PEM, or the bare
    point (`04...`, hex or base64; its curve from `algorithm`, P-256 when none is given).
    When `algorithm` is given the key must be on its curve."""
    text = text.strip()
    expected = curve_of(algorithm) if algorithm is not None else None
    key: object
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise OcmfError(SignatureProblem.BAD_KEY, "the PEM public key cannot be read") from exc
    else:
        raw = _key_bytes(text)
        key = _from_der_or_point(raw, expected or ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise OcmfError(SignatureProblem.BAD_KEY, "the public key is not an elliptic-curve key")
    if expected is not None and key.curve.name != expected.name:
        raise OcmfError(
            SignatureProblem.BAD_KEY,
            f"the public key is on {key.curve.name}, the signature uses {expected.name}",
        )
    return key


def _key_bytes(text: str) -> bytes:
    compact = "".join(text.split())
    if _HEX.fullmatch(compact) and len(compact) % 2 == 0:
        return bytes.fromhex(compact)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OcmfError(
            SignatureProblem.BAD_KEY, "the public key is neither hex, base64 nor PEM"
        ) from exc


def _from_der_or_point(raw: bytes, curve: ec.EllipticCurve) -> object:
    if raw[:1] in (b"\x02", b"\x03", b"\x04"):
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw)
        except ValueError as exc:
            raise OcmfError(
                SignatureProblem.BAD_KEY, f"the public key is not a point on {curve.name}"
            ) from exc
    try:
        return serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise OcmfError(
            SignatureProblem.BAD_KEY, "the public key is not a DER SubjectPublicKeyInfo"
        ) from exc


def canonical_public_key(text: str, algorithm: str | None = None) -> str:
    """The form we store and put into CDRs: upper-case hex of the DER SubjectPublicKeyInfo
    (what meters print on their label and the Transparenzsoftware reads)."""
    key = load_public_key(text, algorithm)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der.hex().upper()


def verify_signature(record: OcmfRecord, public_key: str) -> bool:
    """Whether the record's signature verifies over its exact payload bytes with the key
    (a csms.core.ocmf Verifier). OcmfError(UNKNOWN_ALGORITHM) for an algorithm or signature
    format we cannot check, OcmfError(BAD_KEY) for a key that cannot be read or is on
    another curve than the algorithm's."""
    algorithm = record.algorithm
    if record.signature_mime != "application/x-der":
        raise OcmfError(
            SignatureProblem.UNKNOWN_ALGORITHM,
            f"signature format {record.signature_mime!r} not supported",
        )
    key = load_public_key(public_key, algorithm)
    try:
        key.verify(
            record.signature_bytes, record.payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


def verify_transaction(
    signed: Sequence[str],
    public_key: str | None,
    *,
    billed_wh: float | Decimal | None,
    consecutive: bool = True,
) -> Verdict:
    """csms.core.ocmf.check_transaction with the real signature check."""
    return check_transaction(
        signed, public_key, verify_signature, billed_wh=billed_wh, consecutive=consecutive
    )


# --- a CDR's signed_data, checked again ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedValueCheck:
    """One signed value of a CDR as `csms cdrs show --verify` reports it."""

    nature: str
    pagination: str | None  # None when the value is not an OCMF record
    signature: str  # "valid", "invalid", or why it could not be checked
    summary: str  # what the record says (read from the signed text, not from plain_data)


@dataclass(frozen=True, slots=True)
class CdrVerification:
    verdict: Verdict
    values: tuple[SignedValueCheck, ...]
    billed_wh: Decimal | None


def verify_cdr(cdr: Mapping[str, Any], *, public_key: str | None = None) -> CdrVerification:
    """Check an OCPI CDR's signed_data as a driver would: every value's signature with the
    CDR's public key (or `public_key`, when given), begin first and end last, one meter,
    counters increasing (begin and end need not be adjacent: the CDR carries only them),
    and the signed energy equal to the CDR's total_energy within the register's resolution.
    OcmfError(NO_SIGNED_VALUES) for a CDR without signed_data, (UNKNOWN_ALGORITHM) for an
    encoding other than OCMF."""
    signed_data = cdr.get("signed_data")
    if not isinstance(signed_data, Mapping):
        raise OcmfError(SignatureProblem.NO_SIGNED_VALUES, "the CDR carries no signed_data")
    method = signed_data.get("encoding_method")
    if not isinstance(method, str) or method.upper() != "OCMF":
        raise OcmfError(
            SignatureProblem.UNKNOWN_ALGORITHM,
            f"signed_data encoding_method {method!r}: only OCMF is verified",
        )
    values = signed_data.get("signed_values")
    if not isinstance(values, list) or not values:
        raise OcmfError(SignatureProblem.NO_SIGNED_VALUES, "signed_data has no signed_values")
    key = public_key or signed_data.get("public_key")
    key = key if isinstance(key, str) and key else None
    texts: list[str] = []
    checks: list[SignedValueCheck] = []
    for index, value in enumerate(values):
        nature = str(value.get("nature", "?")) if isinstance(value, Mapping) else "?"
        stored = value.get("signed_data") if isinstance(value, Mapping) else None
        texts.append(stored if isinstance(stored, str) else "")
        checks.append(_check_value(nature, texts[-1], key, index))
    billed = _billed_wh(cdr.get("total_energy"))
    verdict = verify_transaction(texts, key, billed_wh=billed, consecutive=False)
    return CdrVerification(verdict, tuple(checks), billed)


def _check_value(nature: str, stored: str, key: str | None, index: int) -> SignedValueCheck:
    try:
        record = parse(decode_signed(stored))
    except OcmfError as exc:
        return SignedValueCheck(nature, None, f"malformed: {exc.detail}", f"signed value {index}")
    summary = plain_data(record, end=nature.lower() != "start")
    if key is None:
        return SignedValueCheck(nature, record.pagination, "no public key", summary)
    try:
        valid = verify_signature(record, key)
    except OcmfError as exc:
        return SignedValueCheck(nature, record.pagination, f"{exc.problem}: {exc.detail}", summary)
    return SignedValueCheck(nature, record.pagination, "valid" if valid else "invalid", summary)


def _billed_wh(total_energy: Any) -> Decimal | None:
    """The CDR's total_energy (kWh, a JSON number) in Wh; None when it has none."""
    if isinstance(total_energy, bool) or not isinstance(total_energy, int | float | str):
        return None
    try:
        return Decimal(str(total_energy)) * 1000
    except InvalidOperation:
        return None
