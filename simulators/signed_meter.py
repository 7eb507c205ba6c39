"""A calibration-law (Eichrecht) meter: OCMF records of the energy register, signed with the
meter's own ECDSA P-256 key, and the faults a test asks of it.

Version-neutral and independent of the CSMS (it imports nothing from `csms`): this is the
second implementation the CSMS's verifier is checked against. Putting records on the wire is
the sessions' job (`v16_meter.signed_sampled_value`, `v201_meter.signed_meter_value`).

Record format (OCMF, github.com/SAFE-eV/OCMF-Open-Charge-Metering-Format):
`OCMF|{payload}|{"SA":"ECDSA-secp256r1-SHA256","SD":"<hex of the DER signature>"}`; the
signature is over the UTF-8 bytes of the payload exactly as written between the pipes. One
reading a record (TX B at the start, C while charging, E at the end), RV in kWh with three
decimals written as a JSON number, so that the plain register (Wh) is RV * 1000 exactly.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulators.errors import OptionsError

__all__ = [
    "OBIS_IMPORT",
    "SIGNED_FAULTS",
    "SIGNING_METHOD",
    "MeterIdentity",
    "SignedFault",
    "SignedMeter",
    "load_or_create_key",
    "ocmf_time",
]

SIGNING_METHOD = "ECDSA-secp256r1-SHA256"
#: Energy, import, total: how OCMF meters in the field name the register they sign.
OBIS_IMPORT = "1-b:1.8.0"
FORMAT_VERSION = "1.0"


class SignedFault(StrEnum):
    """What a faulty meter does wrong (`--signed-fault`)."""

    #: The end record's value is changed after it was signed: its signature no longer fits.
    TAMPER = "tamper"
    #: Every record is signed with a key other than the one the meter publishes.
    WRONG_KEY = "wrong-key"
    #: No signed end record: the end of the transaction goes out with the plain value only.
    NO_END = "no-end"
    #: The pagination counter skips one number after the begin record.
    GAP = "gap"


SIGNED_FAULTS = tuple(fault.value for fault in SignedFault)


@dataclass(frozen=True, slots=True)
class MeterIdentity:
    """The fields of the payload that name the charger and its meter (OCMF tables 1 and 3)."""

    gateway: str  # GI: vendor and model of the charger
    gateway_serial: str  # GS
    gateway_version: str  # GV: the charger's firmware
    meter_serial: str  # MS; each connector's meter adds its number
    meter_vendor: str = "CsmsSim"  # MV
    meter_model: str = "SimMeter-1"  # MM
    meter_firmware: str = "1.0"  # MF


def ocmf_time(at: datetime) -> str:
    """TM of a reading: ISO 8601 with a comma before the milliseconds, an offset of four
    digits and the time status (S: synchronized), e.g. `2018-07-24T13:22:04,000+0000 S`."""
    utc = at.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S},{utc.microsecond // 1000:03d}+0000 S"


def load_or_create_key(path: str | None) -> ec.EllipticCurvePrivateKey:
    """The meter's private key: read from a PEM file (created with a new key when it does not
    exist yet, so that a charger keeps its key over runs), or a new one when no file is given.
    `OptionsError` for a file that holds no P-256 private key."""
    if path is None:
        return ec.generate_private_key(ec.SECP256R1())
    file = Path(path)
    if not file.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        file.write_bytes(pem)
        file.chmod(0o600)
        return key
    try:
        loaded = serialization.load_pem_private_key(file.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise OptionsError(f"--meter-key {path}: not a PEM private key ({exc})") from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise OptionsError(f"--meter-key {path}: the meter signs with a P-256 (secp256r1) key")
    return loaded


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class SignedMeter:
    """The signing meters of one charger: one key (the charger's signature component), a
    meter serial and a transaction pagination counter per connector (EVSE).

    `record()` returns the OCMF text of one reading, or None where the fault `no-end` leaves
    the signed end record out."""

    def __init__(
        self,
        identity: MeterIdentity,
        key: ec.EllipticCurvePrivateKey,
        fault: SignedFault | None = None,
    ) -> None:
        self.identity = identity
        self.fault = fault
        self._key = key
        # wrong-key: the key published stays the meter's; records are signed with another
        self._signer = (
            ec.generate_private_key(ec.SECP256R1()) if fault is SignedFault.WRONG_KEY else key
        )
        self._pages: dict[int, int] = {}

    @property
    def public_key_der(self) -> bytes:
        """The published key: DER SubjectPublicKeyInfo."""
        return _spki(self._key.public_key())

    @property
    def public_key_hex(self) -> str:
        """The published key as most meters print it: hex (upper case) of the DER SPKI."""
        return self.public_key_der.hex().upper()

    @property
    def public_key_base64(self) -> str:
        """The published key as OCPP 2.0.1 `publicKey` carries it: base64 of the DER SPKI."""
        return base64.b64encode(self.public_key_der).decode("ascii")

    def meter_serial(self, connector_id: int) -> str:
        return f"{self.identity.meter_serial}-{connector_id}"

    def pagination(self, connector_id: int) -> int:
        """The number the connector's next record gets (1 for a new meter)."""
        return self._pages.get(connector_id, 1)

    def record(
        self,
        connector_id: int,
        energy_wh: int,
        at: datetime,
        tx: str,
        ident: str | None,
        *,
        charge_point: str = "",
    ) -> str | None:
        """The signed record of the register `energy_wh` at `at`; `tx` is B, C or E; `ident`
        the idTag / idToken of the transaction (None: no user assigned)."""
        if tx == "E" and self.fault is SignedFault.NO_END:
            return None
        page = self.pagination(connector_id)
        self._pages[connector_id] = page + (2 if tx == "B" and self.fault is SignedFault.GAP else 1)
        kwh = Decimal(energy_wh).scaleb(-3).quantize(Decimal("0.001"))
        payload = self._payload(connector_id, page, kwh, at, tx, ident, charge_point)
        signature = self._signer.sign(payload.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        if tx == "E" and self.fault is SignedFault.TAMPER:
            # changed after signing: one kWh more on the bill than the meter measured
            payload = self._payload(connector_id, page, kwh + 1, at, tx, ident, charge_point)
        section = json.dumps(
            {"SA": SIGNING_METHOD, "SD": signature.hex().upper()}, separators=(",", ":")
        )
        return f"OCMF|{payload}|{section}"

    def _payload(
        self,
        connector_id: int,
        page: int,
        kwh: Decimal,
        at: datetime,
        tx: str,
        ident: str | None,
        charge_point: str,
    ) -> str:
        """The payload as the meter writes it: compact JSON in the field order of the
        specification, RV written out with its three decimals (json would drop zeros)."""
        me = self.identity
        head: dict[str, object] = {
            "FV": FORMAT_VERSION,
            "GI": me.gateway,
            "GS": me.gateway_serial,
            "GV": me.gateway_version,
            "PG": f"T{page}",
            "MV": me.meter_vendor,
            "MM": me.meter_model,
            "MS": self.meter_serial(connector_id),
            "MF": me.meter_firmware,
            "IS": ident is not None,
        }
        if ident is not None:
            head |= {
                "IL": "TRUSTED",
                "IF": ["RFID_PLAIN", "OCPP_AUTH"],
                "IT": "ISO14443",
                "ID": ident,
            }
        else:
            head |= {"IL": "NONE", "IF": [], "IT": "NONE"}
        if charge_point:
            head |= {"CT": "CBIDC", "CI": f"{charge_point} {connector_id}"}
        reading = ",".join(
            [
                f'"TM":{json.dumps(ocmf_time(at))}',
                f'"TX":{json.dumps(tx)}',
                f'"RV":{kwh:.3f}',
                f'"RI":{json.dumps(OBIS_IMPORT)}',
                '"RU":"kWh"',
                '"RT":"AC"',
                '"EF":""',
                '"ST":"G"',
            ]
        )
        fields = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
        return f'{fields[:-1]},"RD":[{{{reading}}}]}}'
