"""Rules of the CSMS's certificate authority that need no cryptography: which keys and
subjects a charging station certificate may have, its validity window, refusal reasons.

Pure values and functions; X.509, keys and signing live in csms.services.pki.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.core.errors import InvalidInput

# A charger's clock may run a little behind ours: its certificate is valid from a few
# minutes before it was issued.
CLOCK_SKEW = timedelta(minutes=5)
# Curves a charging station key may use (OCPP 2.0.1 part 2, A00.FR.4xx: P-256 or P-384),
# and the smallest RSA modulus accepted.
ALLOWED_CURVES = ("secp256r1", "secp384r1")
MIN_RSA_BITS = 2048
# What a new CA's key is: EC P-256 by default, RSA 3072 on request.
CA_KEY_TYPES = ("ec", "rsa")
CA_RSA_BITS = 3072
# 128 random bits: unpredictable, and below the 20 octets RFC 5280 allows.
SERIAL_BITS = 128


class Refusal(enum.StrEnum):
    """Why a certificate signing request is not signed (a handler answers Rejected and
    logs it; the CLI prints it)."""

    NO_CA = "no_ca"
    CA_EXPIRED = "ca_expired"
    CA_UNUSABLE = "ca_unusable"
    MALFORMED_CSR = "malformed_csr"
    BAD_SIGNATURE = "bad_signature"
    UNSUPPORTED_KEY = "unsupported_key"
    WEAK_KEY = "weak_key"
    WRONG_COMMON_NAME = "wrong_common_name"
    BAD_CHARGER_ID = "bad_charger_id"


@dataclass(frozen=True, slots=True)
class Refused:
    """A signing request refused: the reason as a value, and a sentence for people."""

    reason: Refusal
    detail: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A public key as the rules see it: `kind` "ec" or "rsa" (anything else: the
    algorithm's name), `curve` for EC keys, `bits` the key size."""

    kind: str
    bits: int
    curve: str | None = None

    @property
    def label(self) -> str:
        """`ec-secp256r1`, `rsa-3072`."""
        if self.kind == "ec":
            return f"ec-{self.curve}"
        return f"{self.kind}-{self.bits}"


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A charging station certificate as recorded: serial and issuer serial in lower-case
    hex, the SHA-256 fingerprint of its DER in lower-case hex, its PEM."""

    serial: str
    charge_point_id: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    issuer_serial: str
    issued_at: datetime
    pem: str

    def expires_within(self, now: datetime, window: timedelta) -> bool:
        return now < self.not_after <= now + window


def key_problem(key: KeyInfo) -> Refused | None:
    """Why a charging station's key is not acceptable, or None: EC on P-256 or P-384, or
    RSA of at least 2048 bits."""
    if key.kind == "ec":
        if key.curve in ALLOWED_CURVES:
            return None
        return Refused(
            Refusal.UNSUPPORTED_KEY,
            f"the CSR's EC key is on curve {key.curve}; accepted are P-256 and P-384",
        )
    if key.kind == "rsa":
        if key.bits >= MIN_RSA_BITS:
            return None
        return Refused(
            Refusal.WEAK_KEY,
            f"the CSR's RSA key has {key.bits} bits; at least {MIN_RSA_BITS} are required",
        )
    return Refused(
        Refusal.UNSUPPORTED_KEY,
        f"the CSR's key is {key.kind}; accepted are EC (P-256, P-384) and RSA (2048 bits or more)",
    )


def common_name_problem(common_names: list[str], charge_point_id: str) -> Refused | None:
    """The CSR's subject must name the charger: exactly one CN, equal to its id."""
    if not common_names:
        return Refused(
            Refusal.WRONG_COMMON_NAME,
            f"the CSR's subject has no CN; it must be the charger id {charge_point_id!r}",
        )
    if len(common_names) > 1:
        return Refused(
            Refusal.WRONG_COMMON_NAME,
            f"the CSR's subject has {len(common_names)} CNs; it must have one, the charger "
            f"id {charge_point_id!r}",
        )
    if common_names[0] != charge_point_id:
        return Refused(
            Refusal.WRONG_COMMON_NAME,
            f"the CSR's subject CN is {common_names[0]!r}, not the charger id {charge_point_id!r}",
        )
    return None


def validity(
    now: datetime, days: int, ca_not_after: datetime | None = None
) -> tuple[datetime, datetime]:
    """The window of a certificate issued at `now` for `days` days: from CLOCK_SKEW before
    `now` (to the second, as X.509 keeps it), never beyond the issuing CA's own end."""
    start = now.replace(microsecond=0)
    not_after = start + timedelta(days=days)
    if ca_not_after is not None and not_after > ca_not_after:
        not_after = ca_not_after
    return start - CLOCK_SKEW, not_after


_DAYS = re.compile(r"\s*(\d{1,5})\s*d?\s*", re.IGNORECASE)


def parse_days(text: str) -> int:
    """`30d` or `30` -> 30 (a period in whole days, for `--expiring`)."""
    match = _DAYS.fullmatch(text)
    if match is None:
        raise InvalidInput(f"not a number of days: {text!r} (e.g. 30d)")
    return int(match.group(1))


def colon_hex(hex_text: str) -> str:
    """`ab12cd` -> `AB:12:CD`, as certificate tools print serials and fingerprints."""
    up = hex_text.upper()
    return ":".join(up[i : i + 2] for i in range(0, len(up), 2))


@dataclass(frozen=True, slots=True)
class CaSettings:
    """What the CA puts in certificates (the `[ca]` configuration section): O of every
    certificate, CN of its own, its key type ("ec" or "rsa"), the validity of its own
    certificate and of the charging station certificates it issues, in days."""

    organisation: str = "CSMS"
    common_name: str = "CSMS Charging Station CA"
    key_type: str = "ec"
    ca_validity_days: int = 3650
    certificate_validity_days: int = 365


@dataclass(frozen=True, slots=True)
class Issued:
    """A signing request granted: the certificate as recorded, and the PEM chain to send
    the charger (its certificate, then the CA's)."""

    certificate: IssuedCertificate
    chain_pem: str


@dataclass(frozen=True, slots=True)
class CaInfo:
    """A CA certificate as staff see it: subject (RFC 4514), serial and SHA-256 fingerprint
    in lower-case hex, validity, key (`ec-secp256r1`, `rsa-3072`)."""

    subject: str
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    key: str


def serial_hex(serial: int) -> str:
    """A certificate serial in lower-case hex with an even number of digits."""
    text = format(serial, "x")
    return text if len(text) % 2 == 0 else "0" + text
