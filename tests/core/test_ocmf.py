import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.core.ocmf import (
    OcmfError,
    OcmfRecord,
    SignatureProblem,
    Verdict,
    cdr_signed_data,
    check_transaction,
    decode_signed,
    key_base64,
    key_hex,
    parse,
    safe_xml,
    safe_xml_of_cdr,
    signed_values_of_cdr,
)
from tests.ocmf_data import Meter, tamper

KEY = "TOYKEY"

# The example file of the OCMF specification (SAFE-eV/OCMF-Open-Charge-Metering-Format,
# OCMF-en.md, "Example File", FV 1.4): start and end of three registers in one record, laid
# out with white space. Its SD (six times 1234567890ABCDEF) is a placeholder, not a signature.
SPEC_EXAMPLE = """OCMF|{
    "FV": "1.4",
    "GI": "ABL SBC-301",
    "GS": "808829900001",
    "GV": "1.4p3",
    "PG": "T12345",
    "MV": "Phoenix Contact",
    "MM": "EEM-350-D-MCB",
    "MS": "BQ27400330016",
    "MF": "1.0",
    "IS": true,
    "IL": "VERIFIED",
    "IF": [
        "RFID_PLAIN",
        "OCPP_RS_TLS"
    ],
    "IT": "ISO14443",
    "ID": "1F2D3A4F5506C7",
    "TT": "Tarif 1",
    "LC": {
        "LN": "cable_name",
        "LI": 1,
        "LR": 2,
        "LU": "mOhm"
    },
    "RD": [
        {
            "TM": "2018-07-24T13:22:04,000+0200 S",
            "TX": "B",
            "RV": 2935.600,
            "RI": "01-0B:01.08.00*FF",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        },
        {
            "TM": "2018-07-24T13:26:04,000+0200 S",
            "TX": "E",
            "RV": 2965.100,
            "CL": 0.5,
            "RI": "01-0B:01.08.00*FF",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        },
        {
            "TM": "2018-07-24T13:22:04,000+0200 S",
            "TX": "B",
            "RV": 2905.600,
            "RI": "01-0B:B1.08.00*FF",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        },
        {
            "TM": "2018-07-24T13:26:04,000+0200 S",
            "TX": "E",
            "RV": 2934.600,
            "RI": "01-0B:B1.08.00*FF",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        },
        {
            "TM": "2018-07-24T13:22:04,000+0200 S",
            "TX": "B",
            "RV": 0.000,
            "RI": "01-0B:B3.08.00*FF",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        },
        {
            "TM": "2018-07-24T13:26:04,000+0200 S",
            "TX": "E",
            "RV": 29.000,
            "RI": "01-0B:B3.08.00*FF",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        }
    ]
}|{
    "SD": "<SD>"
}""".replace("<SD>", "1234567890ABCDEF" * 6)


def toy_verify(record: OcmfRecord, public_key: str) -> bool:
    if public_key == "unreadable":
        raise OcmfError(SignatureProblem.BAD_KEY, "the public key cannot be read")
    if record.algorithm != "ECDSA-secp256r1-SHA256":
        raise OcmfError(SignatureProblem.UNKNOWN_ALGORITHM, f"{record.algorithm} not supported")
    digest = hashlib.sha256(record.payload_text.encode("utf-8")).digest()
    return public_key == KEY and record.signature_bytes == digest


def check(signed: list[str], *, billed_wh: float | None = 3000.0, key: str | None = KEY) -> Verdict:
    return check_transaction(signed, key, toy_verify, billed_wh=billed_wh)


# --- parsing ------------------------------------------------------------------------------


def test_the_specification_example_parses_with_every_reading() -> None:
    record = parse(SPEC_EXAMPLE)
    assert record.format_version == "1.4"
    assert record.meter_serial == "BQ27400330016"
    assert record.pagination == "T12345"
    assert record.pagination_number == 12345
    assert record.algorithm == "ECDSA-secp256r1-SHA256"
    assert record.signature_encoding == "hex"
    assert record.signature_bytes == bytes.fromhex("1234567890ABCDEF" * 6)
    assert record.begins
    assert record.ends
    assert record.identification == "ISO14443 1F2D3A4F5506C7"
    assert [(r.tx, r.value, r.obis) for r in record.readings] == [
        ("B", Decimal("2935.600"), "01-0B:01.08.00*FF"),
        ("E", Decimal("2965.100"), "01-0B:01.08.00*FF"),
        ("B", Decimal("2905.600"), "01-0B:B1.08.00*FF"),
        ("E", Decimal("2934.600"), "01-0B:B1.08.00*FF"),
        ("B", Decimal("0.000"), "01-0B:B3.08.00*FF"),
        ("E", Decimal("29.000"), "01-0B:B3.08.00*FF"),
    ]
    first = record.readings[0]
    assert first.time == datetime(2018, 7, 24, 11, 22, 4, tzinfo=UTC)
    assert first.time.utcoffset() == timedelta(hours=2)
    assert first.time_status == "S"
    assert first.wh == Decimal("2935600.000")
    assert first.resolution_wh == Decimal(1)
    # The payload is kept byte for byte: white space and all.
    assert record.payload_text.startswith('{\n    "FV": "1.4",')
    assert record.payload_text.endswith("    ]\n}")
    assert record.text == SPEC_EXAMPLE


def test_the_specification_example_as_one_transaction_record() -> None:
    # One record with start and end (the "MultipleReading" signature format): begin and end
    # are that record, the energy comes from its first register.
    record = parse(SPEC_EXAMPLE)
    digest = hashlib.sha256(record.payload_text.encode()).hexdigest()
    signed = SPEC_EXAMPLE[: SPEC_EXAMPLE.rindex("|")] + f'|{{"SD":"{digest}"}}'
    verdict = check([signed], billed_wh=29500)
    assert verdict.ok, verdict.detail
    assert verdict.begin is verdict.end
    assert verdict.signed_energy_wh == Decimal("29500.000")
    assert check([signed], billed_wh=29502).problem is SignatureProblem.ENERGY_MISMATCH
    data = cdr_signed_data(verdict, KEY, url=None)
    assert data is not None
    assert [v["nature"] for v in data["signed_values"]] == ["End"]
    assert data["signed_values"][0]["signed_data"] == b64(signed)
    assert signed_values_of_cdr(data) == [signed]


def test_readings_inherit_the_fields_left_out() -> None:
    payload = (
        '{"PG":"T1","MS":"M1","RD":[{"TM":"2020-01-01T10:00:00,000+0000 S","TX":"B",'
        '"RV":1.25,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"},'
        '{"TM":"2020-01-01T10:15:00,000+0000 S","TX":"C","RV":2.5},'
        '{"TM":"2020-01-01T10:30:00,000+0000 S","RV":3.75},'
        '{"TM":"2020-01-01T10:45:00,000+0000 S","TX":"E","RV":5}]}'
    )
    record = parse(f'OCMF|{payload}|{{"SD":"00"}}')
    assert [(r.tx, r.unit, r.obis, r.status) for r in record.readings] == [
        ("B", "kWh", "1-b:1.8.0", "G"),
        ("C", "kWh", "1-b:1.8.0", "G"),
        ("C", "kWh", "1-b:1.8.0", "G"),
        ("E", "kWh", "1-b:1.8.0", "G"),
    ]
    assert record.readings[-1].resolution_wh == Decimal(1000)
    assert record.readings[0].resolution_wh == Decimal(10)


@pytest.mark.parametrize(
    ("tm", "expected", "status"),
    [
        ("2018-07-24T13:22:04,000+0200 S", datetime(2018, 7, 24, 11, 22, 4, tzinfo=UTC), "S"),
        ("2018-07-24T13:22:04.250+02:00 I", datetime(2018, 7, 24, 11, 22, 4, 250000, UTC), "I"),
        ("2018-07-24T13:22:04,000-0130 U", datetime(2018, 7, 24, 14, 52, 4, tzinfo=UTC), "U"),
        ("2018-07-24T13:22:04Z", datetime(2018, 7, 24, 13, 22, 4, tzinfo=UTC), ""),
    ],
)
def test_ocmf_time(tm: str, expected: datetime, status: str) -> None:
    payload = f'{{"PG":"T1","MS":"M","RD":[{{"TM":"{tm}","TX":"B","RV":1,"RU":"Wh","ST":"G"}}]}}'
    reading = parse(f'OCMF|{payload}|{{"SD":"00"}}').readings[0]
    assert reading.time == expected
    assert reading.time.tzinfo is not None
    assert reading.time_status == status


def test_decode_signed_takes_plain_or_base64() -> None:
    text = Meter().record("1.000", "B")
    assert decode_signed(text) == text
    assert decode_signed(base64.b64encode(text.encode()).decode()) == text
    assert decode_signed(text.encode().hex().upper()) == text
    assert decode_signed(f" {text.encode().hex()}\n") == text
    for bad in (
        "not a record",
        base64.b64encode(b"JSON|{}|{}").decode(),
        b"JSON|{}|{}".hex(),
        "////",
        "ABC",
        "ff",
    ):
        with pytest.raises(OcmfError) as caught:
            decode_signed(bad)
        assert caught.value.problem is SignatureProblem.MALFORMED


_READING = '{"TM":"2018-07-24T13:22:04,000+0200 S","TX":"B","RV":1.0,"RU":"kWh","ST":"G"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("OCMX|{}|{}", "does not start with OCMF|"),
        ('OCMF|{"PG":"T1"}', "no signature section"),
        ('OCMF|{"PG":"T1",|{"SD":"00"}', "payload is not JSON"),
        ('OCMF|[1]|{"SD":"00"}', "payload is not a JSON object"),
        (f'OCMF|{{"PG":"T1","MS":"M","RD":[{_READING}]}}|{{"SD":12}}', "no signature data (SD)"),
        (f'OCMF|{{"PG":"T1","MS":"M","RD":[{_READING}]}}|nope', "signature is not JSON"),
        (f'OCMF|{{"PG":"T1","PG":"T2","MS":"M","RD":[{_READING}]}}|{{"SD":"00"}}', "twice"),
        (f'OCMF|{{"PG":"X1","MS":"M","RD":[{_READING}]}}|{{"SD":"00"}}', "PG 'X1'"),
        (f'OCMF|{{"MS":"M","RD":[{_READING}]}}|{{"SD":"00"}}', "PG None"),
        (f'OCMF|{{"PG":"T1","RD":[{_READING}]}}|{{"SD":"00"}}', "no meter serial"),
        ('OCMF|{"PG":"T1","MS":"M","RD":[]}|{"SD":"00"}', "no readings"),
        ('OCMF|{"PG":"T1","MS":"M"}|{"SD":"00"}', "no readings"),
        (f'OCMF|{{"PG":"T1","MS":"M","RD":[{_READING}]}}|{{"SD":"0g"}}', "SD is not hex"),
        (
            f'OCMF|{{"PG":"T1","MS":"M","RD":[{_READING}]}}|{{"SE":"base64","SD":"!!"}}',
            "SD is not base64",
        ),
        (
            f'OCMF|{{"PG":"T1","MS":"M","RD":[{_READING}]}}|{{"SE":"rot13","SD":"00"}}',
            "unknown signature encoding",
        ),
        (
            'OCMF|{"PG":"T1","MS":"M","RD":[{"TM":"yesterday","RV":1,"RU":"kWh"}]}|{"SD":"00"}',
            "not OCMF time",
        ),
        (
            'OCMF|{"PG":"T1","MS":"M","RD":[{"TM":"2018-07-24T13:22:04,000+0200 S",'
            '"RV":"one","RU":"kWh"}]}|{"SD":"00"}',
            "RV is not a number",
        ),
        (
            'OCMF|{"PG":"T1","MS":"M","RD":[{"TM":"2018-07-24T13:22:04,000+0200 S",'
            '"RV":1.0}]}|{"SD":"00"}',
            "no unit",
        ),
        (
            'OCMF|{"PG":"T1","MS":"M","RD":[{"TM":"2018-02-30T13:22:04,000+0200 S",'
            '"RV":1.0,"RU":"kWh"}]}|{"SD":"00"}',
            "2018-02-30",
        ),
    ],
)
def test_malformed_records(text: str, message: str) -> None:
    with pytest.raises(OcmfError) as caught:
        parse(text)
    assert caught.value.problem is SignatureProblem.MALFORMED
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- the rules of one transaction ---------------------------------------------------------


def test_a_signed_session_verifies() -> None:
    meter = Meter()
    signed = meter.session("1.000", "2.500", "4.000")
    verdict = check(signed)
    assert verdict.ok
    assert verdict.problem is None
    assert verdict.signed_energy_wh == Decimal("3000.000")
    assert [r.pagination for r in verdict.records] == ["T12", "T13", "T14"]
    assert verdict.begin is verdict.records[0]
    assert verdict.end is verdict.records[-1]
    assert verdict.detail == "3 records T12..T14 of meter BQ27400330016, signed 3000.000 Wh"


def test_billed_energy_within_the_resolution() -> None:
    signed = Meter().session("1.00", "4.00")  # 10 Wh steps
    assert check(signed, billed_wh=3009.9).ok
    assert check(signed, billed_wh=2990).ok
    verdict = check(signed, billed_wh=3011)
    assert verdict.problem is SignatureProblem.ENERGY_MISMATCH
    assert verdict.detail == (
        "T12..T13: signed 3000.00 Wh (1.00 kWh to 4.00 kWh), billed 3011 Wh, resolution 10.00 Wh"
    )
    assert verdict.signed_energy_wh == Decimal("3000.00")
    assert check(signed, billed_wh=None).ok


def test_duplicates_count_once_and_order_is_the_counter() -> None:
    begin, middle, end = Meter().session("1.000", "2.000", "4.000")
    assert check([begin, end, middle, begin]).ok


def test_no_signed_values() -> None:
    verdict = check([])
    assert verdict.problem is SignatureProblem.NO_SIGNED_VALUES
    assert not verdict.ok


def test_malformed_names_the_value() -> None:
    signed = [*Meter().session("1.000", "4.000"), "OCMF|{oops}|{}"]
    verdict = check(signed)
    assert verdict.problem is SignatureProblem.MALFORMED
    assert verdict.detail.startswith("signed value 3 of 3: payload is not JSON")


def test_no_public_key() -> None:
    verdict = check(Meter().session("1.000", "4.000"), key=None)
    assert verdict.problem is SignatureProblem.NO_PUBLIC_KEY
    assert verdict.detail == "no public key known for meter BQ27400330016"


def test_bad_key_and_unknown_algorithm_come_from_the_verifier() -> None:
    verdict = check(Meter().session("1.000", "4.000"), key="unreadable")
    assert verdict.problem is SignatureProblem.BAD_KEY
    assert verdict.detail == "T12: the public key cannot be read"
    meter = Meter(algorithm="ECDSA-secp999r1-SHA256")
    verdict = check(meter.session("1.000", "4.000"))
    assert verdict.problem is SignatureProblem.UNKNOWN_ALGORITHM


def test_a_tampered_value_and_a_wrong_key_fail_the_signature() -> None:
    begin, end = Meter().session("1.000", "4.000")
    verdict = check([begin, tamper(end, '"RV":4.000', '"RV":5.000')], billed_wh=4000)
    assert verdict.problem is SignatureProblem.BAD_SIGNATURE
    assert verdict.detail == "T13: the signature does not verify with the public key"
    assert check([begin, end], key="OTHER").problem is SignatureProblem.BAD_SIGNATURE


def test_begin_and_end() -> None:
    meter = Meter()
    begin, middle, end = meter.session("1.000", "2.000", "4.000")
    verdict = check([middle, end])
    assert verdict.problem is SignatureProblem.NO_BEGIN
    assert verdict.detail == "T13: the first record is not TX=B"
    verdict = check([begin, middle])
    assert verdict.problem is SignatureProblem.NO_END
    assert verdict.detail == "T13: the last record is not TX=E"
    # A record of the next transaction mixed in.
    later = meter.record("4.000", "B", at="2018-07-24T14:00:04,000+0200 S")
    verdict = check([begin, middle, end, later])
    assert verdict.problem is SignatureProblem.NO_BEGIN
    assert verdict.detail == "T15: begins another transaction after T12"
    early_end = Meter(counter=13).record("2.000", "E", at="2018-07-24T13:01:04,000+0200 S")
    assert check([begin, early_end, end]).problem is SignatureProblem.NO_END
    fiscal = Meter().record("1.000", "B", pagination="F3")
    assert check([fiscal]).problem is SignatureProblem.NO_BEGIN


@pytest.mark.parametrize("end_tx", ["L", "R", "A", "P"])
def test_the_precise_end_codes_end_a_transaction(end_tx: str) -> None:
    meter = Meter()
    signed = [meter.record("1.000", "B"), meter.record("4.000", end_tx)]
    assert check(signed).ok


def test_meter_changed() -> None:
    meter = Meter()
    begin = meter.record("1.000", "B", at="2018-07-24T13:00:04,000+0200 S")
    end = meter.record("4.000", "E", serial="OTHER-METER", at="2018-07-24T13:05:04,000+0200 S")
    verdict = check([begin, end])
    assert verdict.problem is SignatureProblem.METER_CHANGED
    assert verdict.detail == "T13: meter OTHER-METER, not BQ27400330016"


def test_pagination_gap_and_order() -> None:
    meter = Meter()
    begin, middle, end = meter.session("1.000", "2.000", "4.000")
    verdict = check([begin, end])
    assert verdict.problem is SignatureProblem.PAGINATION_GAP
    assert verdict.detail == "T14 follows T12: 1 missing"
    # A CDR carries begin and end only: increasing is enough there.
    assert check_transaction([begin, end], KEY, toy_verify, billed_wh=3000, consecutive=False).ok
    twin = Meter(counter=13).record("2.001", "C", at="2018-07-24T13:01:04,000+0200 S")
    verdict = check([begin, middle, twin, end])
    assert verdict.problem is SignatureProblem.PAGINATION_GAP
    assert "two different records with one counter" in verdict.detail
    # Counters that run against the meter's clock.
    meter = Meter()
    first = meter.record("1.000", "B", at="2018-07-24T13:30:04,000+0200 S")
    second = meter.record("4.000", "E", at="2018-07-24T13:00:04,000+0200 S")
    verdict = check([first, second])
    assert verdict.problem is SignatureProblem.PAGINATION_GAP
    assert verdict.detail == "T13 is timed before T12"


def test_fiscal_records_are_verified_but_outside_the_counter() -> None:
    meter = Meter()
    begin, end = meter.session("1.000", "4.000")
    fiscal = meter.record("2.000", "C", pagination="F7", at="2018-07-24T13:00:30,000+0200 S")
    assert check([begin, fiscal, end]).ok
    assert [r.pagination for r in check([begin, fiscal, end]).records] == ["T12", "T13"]
    forged = tamper(fiscal, '"RV":2.000', '"RV":2.001')
    assert check([begin, forged, end]).problem is SignatureProblem.BAD_SIGNATURE


def test_a_reading_the_meter_marks_unusable() -> None:
    meter = Meter()
    begin = meter.record("1.000", "B", at="2018-07-24T13:00:04,000+0200 S")
    end = meter.record("4.000", "E", status="M", at="2018-07-24T13:05:04,000+0200 S")
    verdict = check([begin, end])
    assert verdict.problem is SignatureProblem.METER_ERROR
    assert verdict.detail == "T13: the meter marks a reading unusable (ST 'M', EF '', TX 'E')"


def test_no_energy_register_at_both_ends() -> None:
    meter = Meter()
    begin = meter.record("1.000", "B", at="2018-07-24T13:00:04,000+0200 S")
    end_payload = meter.payload("4.000", "E", at="2018-07-24T13:05:04,000+0200 S")
    end = meter.sign_payload(end_payload.replace('"RI":"1-b:1.8.0"', '"RI":"1-b:2.8.0"'))
    verdict = check([begin, end])
    assert verdict.problem is SignatureProblem.ENERGY_MISMATCH
    assert verdict.detail == "T12..T13: no energy register read at both begin and end"
    assert check([begin, end], billed_wh=None).ok


def test_energy_that_runs_backwards() -> None:
    signed = Meter().session("4.000", "1.000")
    verdict = check(signed, billed_wh=-3000)
    assert verdict.problem is SignatureProblem.ENERGY_MISMATCH


# --- CDR signed_data ----------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def test_cdr_signed_data_from_begin_and_end() -> None:
    signed = Meter().session("1.000", "2.000", "4.000")
    verdict = check(signed)
    # OCPI 2.2.1: signed_data and public_key are base64 (the key we store is hex of DER).
    data = cdr_signed_data(verdict, "3059AB01", url="https://cpo.example/eichrecht/CDR1")
    assert data == {
        "encoding_method": "OCMF",
        "encoding_method_version": 1,
        "public_key": "MFmrAQ==",
        "signed_values": [
            {
                "nature": "Start",
                "plain_data": (
                    "meter BQ27400330016, T12, 2018-07-24T13:00:04+02:00 S, TX B, 1.000 kWh,"
                    " 1-b:1.8.0, id ISO14443 1F2D3A4F5506C7"
                ),
                "signed_data": b64(signed[0]),
            },
            {
                "nature": "End",
                "plain_data": (
                    "meter BQ27400330016, T14, 2018-07-24T13:02:04+02:00 S, TX E, 4.000 kWh,"
                    " 1-b:1.8.0, id ISO14443 1F2D3A4F5506C7"
                ),
                "signed_data": b64(signed[2]),
            },
        ],
        "url": "https://cpo.example/eichrecht/CDR1",
    }
    assert signed_values_of_cdr(data) == [signed[0], signed[2]]
    # What some CPOs send: the records as text. Read the same.
    plain = {"signed_values": [{"signed_data": signed[0]}, {"signed_data": signed[2]}]}
    assert signed_values_of_cdr(plain) == [signed[0], signed[2]]


def test_public_key_forms_in_cdr_and_xml() -> None:
    assert key_base64("30 59 ab 01") == "MFmrAQ=="
    assert key_base64("MFmrAQ==") == "MFmrAQ=="
    assert key_hex("MFmrAQ==") == "3059AB01"
    assert key_hex("3059ab01") == "3059AB01"
    assert key_hex("not a key!") == "not a key!"


def test_cdr_signed_data_keeps_the_ocpi_limits() -> None:
    signed = Meter().session("1.000", "4.000")
    verdict = check(signed)
    data = cdr_signed_data(verdict, "K" * 513, url="https://x/" + "u" * 503)
    assert data is not None
    assert "public_key" not in data
    assert "url" not in data
    assert cdr_signed_data(verdict, "K" * 512, url="u" * 512) == {
        **data,
        "public_key": "K" * 512,
        "url": "u" * 512,
    }
    # 384 bytes of DER are 512 characters of base64 (768 of hex): it fits.
    data = cdr_signed_data(verdict, "AB" * 384, url=None)
    assert data is not None
    assert len(data["public_key"]) == 512
    data = cdr_signed_data(verdict, "AB" * 385, url=None)
    assert data is not None
    assert "public_key" not in data
    # plain_data is cut at 512 characters; a long meter serial does not break it.
    long_serial = Meter(serial="S" * 600).session("1.000", "4.000")
    data = cdr_signed_data(check(long_serial), KEY, url=None)
    assert data is not None
    assert all(len(v["plain_data"]) == 512 for v in data["signed_values"])
    for value in data["signed_values"]:
        assert len(value["nature"]) <= 32
        assert len(value["signed_data"]) <= 5000


def test_a_record_longer_than_ocpi_allows_leaves_the_cdr_unsigned() -> None:
    # 5000 characters of base64 hold 3750 bytes of record.
    short = Meter().session("1.000", "4.000")
    filler = 3750 - len(short[1])
    meter = Meter(extra={"UX": "x" * (filler - len(',"UX":""'))})  # a vendor extension
    fits = meter.session("1.000", "4.000")
    assert len(fits[1]) == 3750
    data = cdr_signed_data(check(fits), KEY, url=None)
    assert data is not None
    assert len(data["signed_values"][1]["signed_data"]) == 5000
    meter = Meter(extra={"UX": "x" * (filler - len(',"UX":""') + 1)})
    verdict = check(meter.session("1.000", "4.000"))
    assert verdict.ok
    assert cdr_signed_data(verdict, KEY, url=None) is None
    failed = check([])
    assert cdr_signed_data(failed, KEY, url=None) is None


def test_format_version_is_its_major_part() -> None:
    record = parse(SPEC_EXAMPLE)
    digest = hashlib.sha256(record.payload_text.encode()).hexdigest()
    signed = SPEC_EXAMPLE[: SPEC_EXAMPLE.rindex("|")] + f'|{{"SD":"{digest}"}}'
    data = cdr_signed_data(check([signed], billed_wh=None), None, url=None)
    assert data is not None
    assert data["encoding_method_version"] == 1
    assert "public_key" not in data
    no_version = Meter(extra={"FV": "x"}).session("1.000", "4.000")
    data = cdr_signed_data(check(no_version), KEY, url=None)
    assert data is not None
    assert "encoding_method_version" not in data


@pytest.mark.parametrize(
    "bad",
    [{}, {"signed_values": "x"}, {"signed_values": [{"nature": "Start"}]}, {"signed_values": [1]}],
)
def test_signed_values_of_a_broken_cdr(bad: dict[str, object]) -> None:
    with pytest.raises(OcmfError) as caught:
        signed_values_of_cdr(bad)
    assert caught.value.problem is SignatureProblem.MALFORMED


# --- S.A.F.E. XML -------------------------------------------------------------------------


def test_safe_xml_holds_the_records_exactly() -> None:
    signed = Meter().session("1.000", "4.000")
    odd = signed[1].replace('"GI":"SIM"', '"GI":"<&>\\""')  # characters XML must escape
    xml = safe_xml([(signed[0], "Transaction.Begin"), (odd, None)], "MFmrzQ==", transaction_id=7)
    root = ElementTree.fromstring(xml.encode("utf-8"))
    assert root.tag == "values"
    values = root.findall("value")
    assert [v.get("context") for v in values] == ["Transaction.Begin", None]
    assert [v.get("transactionId") for v in values] == ["7", "7"]
    texts = [v.find("signedData") for v in values]
    assert [(t.get("format"), t.get("encoding"), t.text) for t in texts if t is not None] == [
        ("OCMF", "plain", signed[0]),
        ("OCMF", "plain", odd),
    ]
    keys = [v.find("publicKey") for v in values]
    assert [(k.get("encoding"), k.text) for k in keys if k is not None] == [
        ("hex", "3059ABCD"),
        ("hex", "3059ABCD"),
    ]
    no_key = ElementTree.fromstring(safe_xml([(signed[0], None)], None))
    assert no_key.find("value/publicKey") is None
    assert no_key.find("value").get("transactionId") is None  # type: ignore[union-attr]


def test_time_zone_offsets_survive() -> None:
    record = parse(Meter().record("1.000", "B", at="2018-07-24T13:22:04,000-0500 S"))
    assert record.readings[0].time.tzinfo == timezone(timedelta(hours=-5))


def test_the_errors_live_in_the_error_tree() -> None:
    from csms.core import errors, ocmf

    assert ocmf.OcmfError is errors.OcmfError
    assert ocmf.SignatureProblem is errors.SignatureProblem
    assert issubclass(OcmfError, errors.InvalidInput)
    assert not issubclass(OcmfError, ValueError)


def test_safe_xml_of_a_cdr() -> None:
    signed = Meter().session("1.000", "2.000", "4.000")
    data = cdr_signed_data(check(signed), "3059ab01", url=None)
    assert data is not None
    data["signed_values"].insert(1, {"nature": "Intermediate", "signed_data": b64(signed[1])})
    data["signed_values"].append({"nature": "Tariff change", "signed_data": signed[1]})
    root = ElementTree.fromstring(safe_xml_of_cdr(data, transaction_id=42))
    values = root.findall("value")
    assert [(v.get("context"), v.get("transactionId")) for v in values] == [
        ("Transaction.Begin", "42"),
        ("Sample.Periodic", "42"),
        ("Transaction.End", "42"),
        (None, "42"),
    ]
    assert [v.findtext("signedData") for v in values] == [*signed, signed[1]]
    assert {v.findtext("publicKey") for v in values} == {"3059AB01"}
    data["signed_values"][0]["signed_data"] = "not OCMF"
    with pytest.raises(OcmfError) as caught:
        safe_xml_of_cdr(data, transaction_id=None)
    assert str(caught.value).startswith("signed_values[0]: not an OCMF record")


# --- hostile input ------------------------------------------------------------------------
# Records come from chargers: whatever they send, the parser says MALFORMED or reads it,
# and the rules give a verdict; nothing else escapes.

_VALID = Meter().record("1.000", "B")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=300),
        st.text(max_size=300).map(lambda t: "OCMF|" + t),
        st.text(max_size=12).map(lambda t: Meter(serial=t).record("1.000", "B")),
        st.text(max_size=3).map(lambda t: Meter().record("1.000", "B", status=t)),
        st.tuples(st.integers(0, len(_VALID)), st.text(max_size=8)).map(
            lambda p: _VALID[: p[0]] + p[1] + _VALID[p[0] + 1 :]
        ),
    )
)
def test_anything_a_charger_sends_is_read_or_malformed(text: str) -> None:
    problem: OcmfError | None = None
    try:
        record = parse(decode_signed(text))
    except OcmfError as exc:
        problem = exc
    if problem is None:
        assert decode_signed(text) == record.text
        assert isinstance(record.meter_serial, str)
    else:
        assert problem.problem is SignatureProblem.MALFORMED
        assert "\n" not in str(problem)
    verdict = check([text])
    assert verdict.ok or verdict.problem is not None
    assert "\n" not in verdict.detail
