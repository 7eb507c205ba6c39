"""Certificates on chargers, version-neutral: the kinds staff install, list and delete, a
certificate as OCPP names it (its hash data), and what a charger's signing request came to.

Pure values and parsing, no I/O and no cryptography (hashing a certificate file is
csms.services.charger_certificates'); the wire names are the adapters'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from csms.core.commands import CommandRefused, DeleteCertificate


class CertificateKind(StrEnum):
    """What an installed certificate is for, as staff name it (`--type`). OCPP 1.6's
    security extension knows the first two; `v2g-chain` can only be listed (2.0.1)."""

    CSMS_ROOT = "csms-root"
    MANUFACTURER_ROOT = "manufacturer-root"
    V2G_ROOT = "v2g-root"
    MO_ROOT = "mo-root"
    V2G_CHAIN = "v2g-chain"


# What staff may install: every kind but the V2G chain (the charger's own, signed for it).
INSTALLABLE = tuple(k.value for k in CertificateKind if k is not CertificateKind.V2G_CHAIN)
LISTABLE = tuple(k.value for k in CertificateKind)
HASH_ALGORITHMS = ("SHA256", "SHA384", "SHA512")
# The lengths OCPP allows: hashes 128 characters, the serial 40.
_HASH_MAX, _SERIAL_MAX = 128, 40
_HEX = re.compile(r"[0-9a-fA-F]+")


class CertificateUse(StrEnum):
    """What a charger asks a certificate for in SignCertificate."""

    CHARGING_STATION = "ChargingStationCertificate"
    V2G = "V2GCertificate"


@dataclass(frozen=True, slots=True)
class HashData:
    """A certificate as OCPP names it: the hash algorithm, the hashes of its issuer's name
    and key (lower-case hex) and its serial (lower-case hex, no leading zeros)."""

    algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial: str

    def __str__(self) -> str:
        """`ALGORITHM:ISSUER_NAME_HASH:ISSUER_KEY_HASH:SERIAL`, as `--hash-data` takes it."""
        return f"{self.algorithm}:{self.issuer_name_hash}:{self.issuer_key_hash}:{self.serial}"

    def json(self) -> dict[str, str]:
        return {
            "algorithm": self.algorithm,
            "issuer_name_hash": self.issuer_name_hash,
            "issuer_key_hash": self.issuer_key_hash,
            "serial": self.serial,
            "hash_data": str(self),
        }


def hash_data(algorithm: str, issuer_name_hash: str, issuer_key_hash: str, serial: str) -> HashData:
    """Hash data as a charger reports it (or staff write it), normalised: the algorithm in
    upper case, hex in lower case, the serial without leading zeros. CommandRefused says
    what is wrong."""
    algo = algorithm.upper()
    if algo not in HASH_ALGORITHMS:
        raise CommandRefused(
            f"hash algorithm {algorithm!r} is not one of: {', '.join(HASH_ALGORITHMS)}"
        )
    for name, value, longest in (
        ("issuer name hash", issuer_name_hash, _HASH_MAX),
        ("issuer key hash", issuer_key_hash, _HASH_MAX),
        ("serial", serial, _SERIAL_MAX),
    ):
        if not _HEX.fullmatch(value) or len(value) > longest:
            raise CommandRefused(f"the {name} must be hexadecimal, at most {longest} digits")
    return HashData(
        algo, issuer_name_hash.lower(), issuer_key_hash.lower(), serial.lower().lstrip("0") or "0"
    )


def parse_hash_data(text: str) -> HashData:
    """`ALGORITHM:ISSUER_NAME_HASH:ISSUER_KEY_HASH:SERIAL` (as `csms remote certificates
    list` prints it)."""
    parts = text.strip().split(":")
    if len(parts) != 4 or not all(parts):
        raise CommandRefused(
            f"{text[:80]!r} is not hash data: write ALGORITHM:ISSUER_NAME_HASH:"
            "ISSUER_KEY_HASH:SERIAL (as `csms remote certificates list` shows it)"
        )
    return hash_data(*parts)


@dataclass(frozen=True, slots=True)
class SignDecision:
    """The answer to a charger's signing request: accepted (the signed chain follows in a
    CertificateSigned), or refused with a reason code and a sentence for the log."""

    accepted: bool
    reason: str | None = None
    detail: str | None = None


def reported_hash_data(wire: dict[str, object]) -> HashData:
    """Hash data as a charger reported it (`hashAlgorithm`, `issuerNameHash`,
    `issuerKeyHash`, `serialNumber`, both versions), in our spelling, unchecked."""
    serial = str(wire.get("serialNumber", "")).lower().lstrip("0") or "0"
    return HashData(
        str(wire.get("hashAlgorithm", "")).upper(),
        str(wire.get("issuerNameHash", "")).lower(),
        str(wire.get("issuerKeyHash", "")).lower(),
        serial,
    )


def deletion(data: HashData) -> DeleteCertificate:
    """The DeleteCertificate command for the certificate `data` names."""
    return DeleteCertificate(
        data.algorithm, data.issuer_name_hash, data.issuer_key_hash, data.serial
    )


def wire_hash_data(data: HashData | DeleteCertificate) -> dict[str, str]:
    """OCPP's CertificateHashDataType (both versions)."""
    return {
        "hashAlgorithm": data.algorithm,
        "issuerNameHash": data.issuer_name_hash,
        "issuerKeyHash": data.issuer_key_hash,
        "serialNumber": data.serial,
    }
