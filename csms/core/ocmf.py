"""OCMF (Open Charge Metering Format) records and the Eichrecht rules of one transaction:
parsing, the checks a signed session must pass, the OCPI `signed_data` of its CDR and the
S.A.F.E. Transparenzsoftware's XML input.

Pure: no cryptography here (csms.core imports only the standard library). The signature
check is a `Verifier` handed in (csms.services.meter_signatures gives the real one), so the
rules are tested with any verifier and the record bytes stay exactly as the meter sent them:
nothing in this module re-serialises a payload.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from csms.core.errors import OcmfError, SignatureProblem

__all__ = [
    "DEFAULT_ALGORITHM",
    "END_PHASES",
    "OcmfError",
    "OcmfReading",
    "OcmfRecord",
    "SignatureProblem",
    "Verdict",
    "Verifier",
    "cdr_signed_data",
    "check_transaction",
    "decode_signed",
    "key_base64",
    "key_hex",
    "parse",
    "safe_xml",
    "safe_xml_of_cdr",
    "signed_values_of_cdr",
]

HEADER = "OCMF"
DEFAULT_ALGORITHM = "ECDSA-secp256r1-SHA256"
DEFAULT_ENCODING = "hex"
DEFAULT_MIME = "application/x-der"
# TX letters that end a transaction: E, or the more precise local / remote / abort / power
# failure codes of the specification (table 7).
END_PHASES = frozenset("ELRAP")
ENERGY_UNITS = {"kWh": Decimal(1000), "Wh": Decimal(1)}
# OCPI 2.2.1 SignedData / SignedValue string limits (mod_cdrs.asciidoc).
MAX_PUBLIC_KEY = 512
MAX_URL = 512
MAX_PLAIN_DATA = 512
MAX_SIGNED_DATA = 5000
# Fields a reading inherits from the one before it within a record when left out (the
# specification: "fields that have an identical value to the previous reading are omitted").
_INHERITED = ("TM", "TX", "RI", "RU", "RT", "EF", "ST")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_PAGINATION = re.compile(r"([TF])([0-9]+)")
_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[,.](\d{1,6}))?([+-]\d{2}:?\d{2}|Z)(?: (\S))?"
)


@dataclass(frozen=True, slots=True)
class OcmfReading:
    """One element of RD, with the fields it inherits from the readings before it."""

    time: datetime
    time_status: str  # U, I, S or R ("" when the meter gave none)
    tx: str | None  # B, C, X, E, L, R, A, P, S, T; None outside a transaction (fiscal)
    value: Decimal  # as written, so its exponent keeps the digits the meter gave
    unit: str
    obis: str | None
    status: str | None  # ST: G is OK
    error_flags: str = ""  # EF

    @property
    def is_energy(self) -> bool:
        return self.unit in ENERGY_UNITS

    @property
    def wh(self) -> Decimal:
        """The value in Wh (for an energy unit; other units are returned unchanged)."""
        return self.value * ENERGY_UNITS.get(self.unit, Decimal(1))

    @property
    def resolution_wh(self) -> Decimal:
        """One step of the last digit the meter wrote, in Wh (2935.600 kWh: 1 Wh)."""
        exponent = self.value.as_tuple().exponent
        step = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
        return step * ENERGY_UNITS.get(self.unit, Decimal(1))

    def summary(self) -> str:
        return f"{self.value} {self.unit}"


@dataclass(frozen=True, slots=True)
class OcmfRecord:
    """One signed record exactly as the meter wrote it, and what it says."""

    text: str
    payload_text: str
    payload: Mapping[str, Any]
    signature: Mapping[str, Any]
    readings: tuple[OcmfReading, ...]

    @property
    def format_version(self) -> str | None:
        version = self.payload.get("FV")
        # Some gateways write FV as a JSON number (1.0); the version is the same.
        return str(version) if isinstance(version, Decimal) else _opt_str(version)

    @property
    def meter_serial(self) -> str:
        """MS; the gateway's serial GS when the meter has none of its own (the specification
        lets GS identify the signing component, and KEBA wallboxes write only GS)."""
        serial = _serial(self.payload)
        assert serial is not None  # parse() refuses a record without one
        return serial

    @property
    def pagination(self) -> str:
        return str(self.payload["PG"])

    @property
    def pagination_context(self) -> str:
        """T (transaction) or F (fiscal)."""
        return self.pagination[0]

    @property
    def pagination_number(self) -> int:
        return int(self.pagination[1:])

    @property
    def algorithm(self) -> str:
        return _opt_str(self.signature.get("SA")) or DEFAULT_ALGORITHM

    @property
    def signature_encoding(self) -> str:
        return _opt_str(self.signature.get("SE")) or DEFAULT_ENCODING

    @property
    def signature_mime(self) -> str:
        return _opt_str(self.signature.get("SM")) or DEFAULT_MIME

    @property
    def signature_bytes(self) -> bytes:
        return _decode_signature(self.signature, self.signature_encoding)

    @property
    def begins(self) -> bool:
        return any(r.tx == "B" for r in self.readings)

    @property
    def ends(self) -> bool:
        return any(r.tx in END_PHASES for r in self.readings)

    @property
    def transaction_phase(self) -> str | None:
        """B if a reading begins the transaction, E if one ends it (a record with both, as a
        meter signing start and end in one record writes, says B: see `begins`/`ends`), else
        the TX of its first reading."""
        if self.begins:
            return "B"
        if self.ends:
            return "E"
        return self.readings[0].tx if self.readings else None

    @property
    def identification(self) -> str | None:
        """IT and ID as one text (`ISO14443 1F2D3A4F5506C7`), None when not identified."""
        kind, data = _opt_str(self.payload.get("IT")), _opt_str(self.payload.get("ID"))
        text = " ".join(p for p in (kind, data) if p)
        return text or None

    def energy_reading(self, *, end: bool) -> OcmfReading | None:
        """The first energy reading that begins (end=False) or ends the transaction."""
        for reading in self.readings:
            if reading.is_energy and (reading.tx in END_PHASES if end else reading.tx == "B"):
                return reading
        return None


Verifier = Callable[[OcmfRecord, str], bool]
"""(record, public key text) -> whether the signature verifies; raises OcmfError(BAD_KEY or
UNKNOWN_ALGORITHM) when it cannot even try."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of `check_transaction`: `problem` None means every rule held."""

    problem: SignatureProblem | None
    detail: str
    records: tuple[OcmfRecord, ...]  # the transaction's records in pagination order
    begin: OcmfRecord | None
    end: OcmfRecord | None
    signed_energy_wh: Decimal | None

    @property
    def ok(self) -> bool:
        return self.problem is None


# --- parsing ------------------------------------------------------------------------------


def decode_signed(text: str) -> str:
    """The OCMF text of a stored signed value: as it is when it starts with `OCMF|`, else
    the base64 of it (how OCPP 2.0.1 signedMeterData and some 1.6 chargers send it) or its
    hex (other 1.6 chargers: OCPP leaves the encoding of SignedData open)."""
    if text.startswith(HEADER + "|"):
        return text
    compact = text.strip()
    try:
        if _HEX.fullmatch(compact) and len(compact) % 2 == 0:
            decoded = bytes.fromhex(compact).decode("utf-8")
            encoding = "hex"
        else:
            decoded = base64.b64decode(compact, validate=True).decode("utf-8")
            encoding = "base64"
    except (binascii.Error, ValueError) as exc:
        raise OcmfError(
            SignatureProblem.MALFORMED, "not an OCMF record (neither OCMF| nor its base64 or hex)"
        ) from exc
    if not decoded.startswith(HEADER + "|"):
        raise OcmfError(SignatureProblem.MALFORMED, f"{encoding} of something other than OCMF")
    return decoded


def parse(text: str) -> OcmfRecord:
    """One OCMF record `OCMF|{payload}|{signature}`; the payload text is kept byte for byte
    (the signature is over it). Numbers are read as Decimal so that RV keeps its digits."""
    if not text.startswith(HEADER + "|"):
        raise OcmfError(SignatureProblem.MALFORMED, "does not start with OCMF|")
    first = len(HEADER)
    last = text.rfind("|")
    if last == first:
        raise OcmfError(SignatureProblem.MALFORMED, "no signature section")
    payload_text = text[first + 1 : last]
    payload = _json_object(payload_text, "payload")
    signature = _json_object(text[last + 1 :], "signature")
    pagination = payload.get("PG")
    if not isinstance(pagination, str) or _PAGINATION.fullmatch(pagination) is None:
        raise OcmfError(SignatureProblem.MALFORMED, f"PG {pagination!r} is not T<n> or F<n>")
    serial = _serial(payload)
    if serial is None:
        raise OcmfError(SignatureProblem.MALFORMED, f"{pagination}: no meter serial (MS or GS)")
    if not serial.isprintable():
        # It is shown in hold reasons and one-line messages.
        raise OcmfError(SignatureProblem.MALFORMED, f"{pagination}: the meter serial {serial!r}")
    for key in ("SA", "SE", "SM"):
        if key in signature and not isinstance(signature[key], str):
            raise OcmfError(SignatureProblem.MALFORMED, f"{pagination}: {key} is not a string")
    encoding = signature.get("SE", DEFAULT_ENCODING)
    _decode_signature(signature, encoding, pagination)
    return OcmfRecord(
        text=text,
        payload_text=payload_text,
        payload=payload,
        signature=signature,
        readings=_readings(payload.get("RD"), pagination),
    )


def _json_object(text: str, what: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Two values for one key would let a reader show another value than the one we check.
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise OcmfError(SignatureProblem.MALFORMED, f"{what}: a key appears twice")
        return dict(pairs)

    try:
        value = json.loads(
            text, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=no_duplicates
        )
    except json.JSONDecodeError as exc:
        raise OcmfError(SignatureProblem.MALFORMED, f"{what} is not JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise OcmfError(SignatureProblem.MALFORMED, f"{what} is not a JSON object")
    return value


def _decode_signature(signature: Mapping[str, Any], encoding: str, where: str = "") -> bytes:
    prefix = f"{where}: " if where else ""
    data = signature.get("SD")
    if not isinstance(data, str) or not data:
        raise OcmfError(SignatureProblem.MALFORMED, f"{prefix}no signature data (SD)")
    try:
        if encoding == "hex":
            return bytes.fromhex(data)
        if encoding == "base64":
            return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OcmfError(SignatureProblem.MALFORMED, f"{prefix}SD is not {encoding}") from exc
    raise OcmfError(SignatureProblem.MALFORMED, f"{prefix}unknown signature encoding {encoding!r}")


def _readings(raw: Any, where: str) -> tuple[OcmfReading, ...]:
    if not isinstance(raw, list) or not raw:
        raise OcmfError(SignatureProblem.MALFORMED, f"{where}: no readings (RD)")
    readings: list[OcmfReading] = []
    previous: dict[str, Any] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise OcmfError(SignatureProblem.MALFORMED, f"{where}: RD[{index}] is not an object")
        fields = {**{k: previous[k] for k in _INHERITED if k in previous}, **item}
        previous = fields
        readings.append(_reading(fields, f"{where}: RD[{index}]"))
    return tuple(readings)


def _reading(fields: Mapping[str, Any], where: str) -> OcmfReading:
    value = fields.get("RV")
    if isinstance(value, str):
        # A few gateways quote the number ("RV":"       9.038"); its digits are as clear.
        value = _decimal(value.strip())
    if not isinstance(value, Decimal) or not value.is_finite():
        raise OcmfError(SignatureProblem.MALFORMED, f"{where}: RV is not a number")
    unit = fields.get("RU")
    if not isinstance(unit, str) or not unit:
        raise OcmfError(SignatureProblem.MALFORMED, f"{where}: no unit (RU)")
    time, status = parse_time(fields.get("TM"), where)
    for key in ("TX", "RI", "ST", "EF"):
        if key in fields and not isinstance(fields[key], str):
            raise OcmfError(SignatureProblem.MALFORMED, f"{where}: {key} is not a string")
    return OcmfReading(
        time=time,
        time_status=status,
        tx=fields.get("TX"),
        value=value,
        unit=unit,
        obis=fields.get("RI"),
        status=fields.get("ST"),
        error_flags=fields.get("EF", ""),
    )


def _decimal(text: str) -> Decimal | None:
    if _NUMBER.fullmatch(text) is None:
        return None
    return Decimal(text)


def parse_time(text: Any, where: str = "TM") -> tuple[datetime, str]:
    """OCMF time `2018-07-24T13:22:04,000+0200 S` -> (aware datetime, status letter). A dot
    for the comma and a colon in the offset are accepted as well (meters write both)."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise OcmfError(SignatureProblem.MALFORMED, f"{where}: time {text!r} is not OCMF time")
    stamp, fraction, offset, status = match.groups()
    iso = f"{stamp}.{(fraction or '0').ljust(6, '0')}{'+00:00' if offset == 'Z' else offset}"
    try:
        at = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise OcmfError(SignatureProblem.MALFORMED, f"{where}: time {text!r}: {exc}") from exc
    return at, status or ""


def _serial(payload: Mapping[str, Any]) -> str | None:
    return _opt_str(payload.get("MS")) or _opt_str(payload.get("GS"))


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- the rules of one transaction ---------------------------------------------------------


def check_transaction(
    signed: Sequence[str],
    public_key: str | None,
    verify: Verifier,
    *,
    billed_wh: float | Decimal | None,
    consecutive: bool = True,
) -> Verdict:
    """Check the stored signed values of one transaction (time order) against the Eichrecht
    rules, in this order: at least one record, every record parses, a key is known, every
    signature verifies, the first transaction record begins it and the last ends it, one
    meter serial, pagination counters increasing by one (`consecutive=False`: only
    increasing, for a CDR that carries the begin and end records alone), no reading the
    meter marks unusable, and the signed energy (end - begin) equal to `billed_wh` within
    the register's resolution (not checked when `billed_wh` is None).

    The same record stored twice (a charger resending a message) counts once. Fiscal
    records (PG F<n>, clock-aligned readings outside the transaction's counter) must verify
    and come from the same meter, but take no part in the pagination and begin/end rules."""
    if not signed:
        return _fail(SignatureProblem.NO_SIGNED_VALUES, "the transaction has no signed value")
    records: list[OcmfRecord] = []
    seen: set[str] = set()
    for index, stored in enumerate(signed, 1):
        try:
            record = parse(decode_signed(stored))
        except OcmfError as exc:
            return _fail(exc.problem, f"signed value {index} of {len(signed)}: {exc.detail}")
        if record.text not in seen:
            seen.add(record.text)
            records.append(record)
    if not public_key:
        return _fail(
            SignatureProblem.NO_PUBLIC_KEY,
            f"no public key known for meter {records[0].meter_serial}",
            records,
        )
    for record in records:
        try:
            valid = verify(record, public_key)
        except OcmfError as exc:
            return _fail(exc.problem, f"{record.pagination}: {exc.detail}", records)
        if not valid:
            return _fail(
                SignatureProblem.BAD_SIGNATURE,
                f"{record.pagination}: the signature does not verify with the public key",
                records,
            )
    tx_records = sorted(
        (r for r in records if r.pagination_context == "T"), key=lambda r: r.pagination_number
    )
    if not tx_records:
        return _fail(SignatureProblem.NO_BEGIN, "no transaction record (PG T<n>)", records)
    verdict = _order_rules(tx_records, records, consecutive=consecutive)
    if verdict is not None:
        return verdict
    begin, end = tx_records[0], tx_records[-1]
    begin_reading, end_reading = _energy_pair(begin, end)
    signed_wh = None
    if begin_reading is not None and end_reading is not None:
        signed_wh = end_reading.wh - begin_reading.wh
    result = Verdict(None, "", tuple(tx_records), begin, end, signed_wh)
    if billed_wh is not None:
        problem = _energy_rule(begin_reading, end_reading, billed_wh, begin, end)
        if problem is not None:
            return Verdict(
                SignatureProblem.ENERGY_MISMATCH, problem, tuple(tx_records), begin, end, signed_wh
            )
    energy = f", signed {signed_wh:f} Wh" if signed_wh is not None else ""
    count = len(tx_records)
    detail = (
        f"{count} record{'s' if count != 1 else ''} {begin.pagination}..{end.pagination}"
        f" of meter {begin.meter_serial}{energy}"
    )
    return Verdict(None, detail, result.records, begin, end, signed_wh)


def _order_rules(
    tx_records: list[OcmfRecord], records: list[OcmfRecord], *, consecutive: bool
) -> Verdict | None:
    def fail(problem: SignatureProblem, detail: str) -> Verdict:
        return _fail(problem, detail, tx_records)

    begin, end = tx_records[0], tx_records[-1]
    if not begin.begins:
        return fail(SignatureProblem.NO_BEGIN, f"{begin.pagination}: the first record is not TX=B")
    for record in tx_records[1:]:
        if record.begins:
            return fail(
                SignatureProblem.NO_BEGIN,
                f"{record.pagination}: begins another transaction after {begin.pagination}",
            )
    if not end.ends:
        return fail(SignatureProblem.NO_END, f"{end.pagination}: the last record is not TX=E")
    for record in tx_records[:-1]:
        if record.ends:
            return fail(
                SignatureProblem.NO_END,
                f"{record.pagination}: ends the transaction but {end.pagination} follows",
            )
    serial = begin.meter_serial
    for record in records:
        if record.meter_serial != serial:
            return fail(
                SignatureProblem.METER_CHANGED,
                f"{record.pagination}: meter {record.meter_serial}, not {serial}",
            )
    for before, after in pairwise(tx_records):
        step = after.pagination_number - before.pagination_number
        if step == 0:
            return fail(
                SignatureProblem.PAGINATION_GAP,
                f"{after.pagination}: two different records with one counter",
            )
        if consecutive and step != 1:
            return fail(
                SignatureProblem.PAGINATION_GAP,
                f"{after.pagination} follows {before.pagination}: {step - 1} missing",
            )
        if after.readings[0].time < before.readings[-1].time:
            return fail(
                SignatureProblem.PAGINATION_GAP,
                f"{after.pagination} is timed before {before.pagination}",
            )
    for record in records:
        for reading in record.readings:
            if reading.status != "G" or "E" in reading.error_flags or reading.tx == "X":
                return fail(
                    SignatureProblem.METER_ERROR,
                    f"{record.pagination}: the meter marks a reading unusable"
                    f" (ST {reading.status!r}, EF {reading.error_flags!r}, TX {reading.tx!r})",
                )
    return None


def _energy_pair(
    begin: OcmfRecord, end: OcmfRecord
) -> tuple[OcmfReading | None, OcmfReading | None]:
    """The begin reading and the end reading of one register: the begin record's first
    energy reading and the end reading of the same OBIS id."""
    first = begin.energy_reading(end=False)
    if first is None:
        return None, None
    for reading in end.readings:
        if reading.is_energy and reading.tx in END_PHASES and reading.obis == first.obis:
            return first, reading
    return first, None


def _energy_rule(
    begin_reading: OcmfReading | None,
    end_reading: OcmfReading | None,
    billed_wh: float | Decimal,
    begin: OcmfRecord,
    end: OcmfRecord,
) -> str | None:
    if begin_reading is None or end_reading is None:
        return (
            f"{begin.pagination}..{end.pagination}: no energy register read at both begin and end"
        )
    signed = end_reading.wh - begin_reading.wh
    billed = Decimal(str(billed_wh))
    tolerance = max(begin_reading.resolution_wh, end_reading.resolution_wh)
    if signed < 0 or abs(signed - billed) > tolerance:
        return (
            f"{begin.pagination}..{end.pagination}: signed {signed:f} Wh"
            f" ({begin_reading.summary()} to {end_reading.summary()}),"
            f" billed {billed.normalize():f} Wh,"
            f" resolution {tolerance:f} Wh"
        )
    return None


def _fail(problem: SignatureProblem, detail: str, records: Sequence[OcmfRecord] = ()) -> Verdict:
    return Verdict(problem, detail, tuple(records), None, None, None)


# --- OCPI CDR signed_data -----------------------------------------------------------------


def cdr_signed_data(
    verdict: Verdict, public_key: str | None, *, url: str | None
) -> dict[str, Any] | None:
    """The OCPI 2.2.1 SignedData of a CDR from the begin and end records (nature Start and
    End; one record holding both is carried once, as End).

    OCPI 2.2.1 (mod_cdrs.asciidoc, SignedValue and SignedData) says signed_data is "base64
    encoded" and so is public_key: signed_data is the base64 of the record's exact UTF-8
    bytes (decoding gives back what the meter signed, byte for byte), public_key the base64
    of the DER SubjectPublicKeyInfo (a hex key is converted, nothing else is changed).
    plain_data is a readable summary. The key and the URL are left out when longer than 512
    characters. None when there is no begin or end record or a record's base64 is longer
    than 5000 characters (cutting it would break its signature): the CDR then goes without
    signed_data."""
    begin, end = verdict.begin, verdict.end
    if begin is None or end is None:
        return None
    pairs = [("End", end)] if begin is end else [("Start", begin), ("End", end)]
    blobs = [base64.b64encode(record.text.encode("utf-8")).decode("ascii") for _, record in pairs]
    if any(len(blob) > MAX_SIGNED_DATA for blob in blobs):
        return None
    data: dict[str, Any] = {"encoding_method": HEADER}
    version = _major_version(end.format_version)
    if version is not None:
        data["encoding_method_version"] = version
    key = key_base64(public_key) if public_key else None
    if key and len(key) <= MAX_PUBLIC_KEY:
        data["public_key"] = key
    data["signed_values"] = [
        {
            "nature": nature,
            "plain_data": plain_data(record, end=nature == "End"),
            "signed_data": blob,
        }
        for (nature, record), blob in zip(pairs, blobs, strict=True)
    ]
    if url and len(url) <= MAX_URL:
        data["url"] = url
    return data


def key_base64(text: str) -> str:
    """A public key as OCPI carries it: base64 of its DER (from the hex we store); a key
    that is not hex is returned as it is."""
    compact = "".join(text.split())
    if _HEX.fullmatch(compact) and len(compact) % 2 == 0:
        return base64.b64encode(bytes.fromhex(compact)).decode("ascii")
    return text


def key_hex(text: str) -> str:
    """A public key as meters print it and the Transparenzsoftware reads it: upper-case hex
    of its DER (from base64); a key that is neither is returned as it is."""
    compact = "".join(text.split())
    if _HEX.fullmatch(compact) and len(compact) % 2 == 0:
        return compact.upper()
    try:
        return base64.b64decode(compact, validate=True).hex().upper()
    except (binascii.Error, ValueError):
        return text


def plain_data(record: OcmfRecord, *, end: bool) -> str:
    """What a person reads of a signed record (OCPI plain_data, at most 512 characters):
    meter serial, time and its status, TX, value and unit, identification."""
    reading = record.energy_reading(end=end) or record.readings[-1 if end else 0]
    parts = [
        f"meter {record.meter_serial}",
        f"{record.pagination}",
        f"{reading.time.isoformat()} {reading.time_status}".rstrip(),
        f"TX {reading.tx or '-'}",
        f"{reading.summary()}",
    ]
    if reading.obis:
        parts.append(reading.obis)
    ident = record.identification
    if ident:
        parts.append(f"id {ident}")
    return ", ".join(parts)[:MAX_PLAIN_DATA]


def _major_version(version: str | None) -> int | None:
    if version is None:
        return None
    major = version.split(".", 1)[0]
    return int(major) if major.isdigit() else None


def signed_values_of_cdr(signed_data: Mapping[str, Any]) -> list[str]:
    """The OCMF records a CDR carries, in its order (Start before End), as text: the
    base64 of OCPI decoded (a plain `OCMF|...` value, as some CPOs send it, is taken too)."""
    values = signed_data.get("signed_values")
    if not isinstance(values, list):
        raise OcmfError(SignatureProblem.MALFORMED, "signed_data has no signed_values list")
    texts: list[str] = []
    for index, value in enumerate(values):
        text = value.get("signed_data") if isinstance(value, dict) else None
        if not isinstance(text, str):
            raise OcmfError(
                SignatureProblem.MALFORMED, f"signed_values[{index}] has no signed_data text"
            )
        try:
            texts.append(decode_signed(text))
        except OcmfError as exc:
            raise OcmfError(exc.problem, f"signed_values[{index}]: {exc.detail}") from exc
    return texts


# --- S.A.F.E. Transparenzsoftware ---------------------------------------------------------


def safe_xml(
    records: Sequence[tuple[str, str | None]],
    public_key: str | None,
    *,
    transaction_id: int | None = None,
) -> str:
    """The XML the S.A.F.E. Transparenzsoftware opens (its XML_Format.md): `<values>` with
    one `<value>` per record, whose `context` is the OCPP reading context (Transaction.Begin
    / Transaction.End) and whose `transactionId` groups a transaction's records in the
    tree it shows; inside, `<signedData format="OCMF" encoding="plain">` holds the record
    exactly as stored (no white space around it, or the signature would not verify) and
    `<publicKey encoding="hex">` the meter's key (hex of its DER)."""
    key = key_hex(public_key) if public_key else None
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<values>"]
    for text, context in records:
        attrs = f' transactionId="{transaction_id}"' if transaction_id is not None else ""
        attrs += f" context={quoteattr(context)}" if context else ""
        lines.append(f"  <value{attrs}>")
        lines.append(f'    <signedData format="OCMF" encoding="plain">{escape(text)}</signedData>')
        if key:
            lines.append(f'    <publicKey encoding="hex">{escape(key)}</publicKey>')
        lines.append("  </value>")
    lines.append("</values>")
    return "\n".join(lines) + "\n"


# OCPI SignedValue nature -> the OCPP reading context the Transparenzsoftware shows.
_CONTEXTS = {
    "start": "Transaction.Begin",
    "end": "Transaction.End",
    "intermediate": "Sample.Periodic",
}


def safe_xml_of_cdr(signed_data: Mapping[str, Any], *, transaction_id: int | None) -> str:
    """`safe_xml` of the records an OCPI CDR's signed_data carries, with its public key and
    each value's nature as the reading context. OcmfError(MALFORMED) when a value is not an
    OCMF record (plain or base64)."""
    texts = signed_values_of_cdr(signed_data)
    natures = [v.get("nature") for v in signed_data["signed_values"]]
    contexts = [_CONTEXTS.get(str(n).lower()) if isinstance(n, str) else None for n in natures]
    key = signed_data.get("public_key")
    return safe_xml(
        list(zip(texts, contexts, strict=True)),
        key if isinstance(key, str) else None,
        transaction_id=transaction_id,
    )
