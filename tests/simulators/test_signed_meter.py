"""The simulators' signing meter: OCMF records checked with `cryptography` over the exact
payload bytes, each fault doing what it says, the key file, and how both versions put the
records and the key on the wire."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from simulators.errors import OptionsError
from simulators.options import ChargerOptions
from simulators.signed_meter import (
    MeterIdentity,
    SignedFault,
    SignedMeter,
    load_or_create_key,
    ocmf_time,
)
from simulators.v16 import V16Charger
from simulators.v16_meter import register_value, with_signed
from simulators.v16_script import meter_configuration
from simulators.v201 import V201Charger
from simulators.v201_meter import energy_value, signed_meter_value
from simulators.v201_meter import with_signed as with_signed_201

AT = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
IDENTITY = MeterIdentity("CsmsSim SimCharger-22", "SN-CP1", "1.0.0", "M-SN-CP1")
TM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3}[+-]\d{4} [UISR]$")


def split(record: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Payload text (between the first and the last pipe), payload and signature section."""
    head, rest = record.split("|", 1)
    payload_text, signature_text = rest.rsplit("|", 1)
    assert head == "OCMF"
    return payload_text, json.loads(payload_text, parse_float=Decimal), json.loads(signature_text)


def verifies(record: str, public_key_hex: str) -> bool:
    """An independent check: the DER signature over the payload's UTF-8 bytes, with the key
    published as hex of the DER SubjectPublicKeyInfo."""
    payload_text, _, signature = split(record)
    key = serialization.load_der_public_key(bytes.fromhex(public_key_hex))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert signature.get("SA", "ECDSA-secp256r1-SHA256") == "ECDSA-secp256r1-SHA256"
    assert signature.get("SE", "hex") == "hex"
    try:
        key.verify(
            bytes.fromhex(signature["SD"]), payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


def transaction(meter: SignedMeter, connector_id: int = 1) -> list[str | None]:
    """Begin at 12 345 Wh, two records while charging, end at 23 456 Wh."""
    return [
        meter.record(connector_id, 12_345, AT, "B", "04A1B2C3", charge_point="CP1"),
        meter.record(connector_id, 15_000, AT + timedelta(minutes=5), "C", "04A1B2C3"),
        meter.record(connector_id, 20_100, AT + timedelta(minutes=10), "C", "04A1B2C3"),
        meter.record(connector_id, 23_456, AT + timedelta(minutes=15), "E", "04A1B2C3"),
    ]


def meter(fault: SignedFault | None = None) -> SignedMeter:
    return SignedMeter(IDENTITY, ec.generate_private_key(ec.SECP256R1()), fault)


def test_a_record_is_ocmf_signed_over_the_exact_payload_bytes() -> None:
    m = meter()
    records = transaction(m)
    assert all(r is not None and verifies(r, m.public_key_hex) for r in records)
    begin = records[0]
    assert begin is not None
    payload_text, payload, signature = split(begin)
    assert signature["SA"] == "ECDSA-secp256r1-SHA256"
    assert re.fullmatch(r"[0-9A-F]+", signature["SD"])
    assert list(payload)[:10] == ["FV", "GI", "GS", "GV", "PG", "MV", "MM", "MS", "MF", "IS"]
    assert payload["FV"] == "1.0" and payload["GS"] == "SN-CP1" and payload["PG"] == "T1"
    assert payload["MS"] == "M-SN-CP1-1" and payload["CI"] == "CP1 1" and payload["CT"] == "CBIDC"
    assert (payload["IS"], payload["IT"], payload["ID"]) == (True, "ISO14443", "04A1B2C3")
    [reading] = payload["RD"]
    assert reading["TM"] == "2026-03-01T09:30:15,250+0000 S" and TM.match(reading["TM"])
    assert (reading["TX"], reading["RU"], reading["RI"], reading["ST"]) == (
        "B",
        "kWh",
        "1-b:1.8.0",
        "G",
    )
    # RV keeps its three decimals as written: 12 345 Wh
    assert '"RV":12.345,' in payload_text and reading["RV"] == Decimal("12.345")
    assert ": " not in payload_text and ", " not in payload_text  # compact, as meters write


def test_pagination_counts_each_records_of_each_connector_without_gaps() -> None:
    m = meter()
    first = [split(r)[1]["PG"] for r in transaction(m) if r is not None]
    second = [split(r)[1]["PG"] for r in transaction(m) if r is not None]
    other = [split(r)[1]["PG"] for r in transaction(m, connector_id=2) if r is not None]
    assert first == ["T1", "T2", "T3", "T4"]
    assert second == ["T5", "T6", "T7", "T8"]
    assert other == ["T1", "T2", "T3", "T4"]
    values = [split(r)[1]["RD"][0]["RV"] for r in transaction(m) if r is not None]
    assert values == [Decimal("12.345"), Decimal("15.000"), Decimal("20.100"), Decimal("23.456")]


def test_no_user_assigned_and_whole_kwh() -> None:
    m = meter()
    record = m.record(1, 0, AT, "B", None)
    assert record is not None and verifies(record, m.public_key_hex)
    payload_text, payload, _ = split(record)
    assert (payload["IS"], payload["IT"], "ID" in payload, "CI" in payload) == (
        False,
        "NONE",
        False,
        False,
    )
    assert '"RV":0.000,' in payload_text


def test_tamper_breaks_only_the_end_record_whose_value_grew() -> None:
    m = meter(SignedFault.TAMPER)
    begin, *charging, end = transaction(m)
    assert begin is not None and end is not None
    assert verifies(begin, m.public_key_hex)
    assert all(r is not None and verifies(r, m.public_key_hex) for r in charging)
    assert not verifies(end, m.public_key_hex)
    assert split(end)[1]["RD"][0]["RV"] == Decimal("24.456")  # one kWh more than measured


def test_wrong_key_signs_with_a_key_other_than_the_published_one() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    m = SignedMeter(IDENTITY, key, SignedFault.WRONG_KEY)
    published = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert m.public_key_hex == published.hex().upper()
    records = transaction(m)
    assert all(r is not None and not verifies(r, m.public_key_hex) for r in records)
    # well-formed all the same: a valid DER signature of the same length class
    assert all(r is not None and split(r)[2]["SD"].startswith("30") for r in records)


def test_no_end_sends_no_signed_end_record() -> None:
    m = meter(SignedFault.NO_END)
    records = transaction(m)
    assert records[-1] is None
    assert [split(r)[1]["RD"][0]["TX"] for r in records if r is not None] == ["B", "C", "C"]
    assert all(r is not None and verifies(r, m.public_key_hex) for r in records[:-1])


def test_gap_skips_one_pagination_number_after_the_begin_record() -> None:
    m = meter(SignedFault.GAP)
    records = transaction(m)
    assert [split(r)[1]["PG"] for r in records if r is not None] == ["T1", "T3", "T4", "T5"]
    assert all(r is not None and verifies(r, m.public_key_hex) for r in records)


def test_the_ocmf_time_is_utc_with_milliseconds() -> None:
    east = datetime(2026, 3, 1, 11, 0, 0, 999999, tzinfo=UTC).astimezone()
    assert ocmf_time(east) == "2026-03-01T11:00:00,999+0000 S"


def test_key_file_is_made_once_and_read_again(tmp_path: Path) -> None:
    path = tmp_path / "meter.pem"
    made = load_or_create_key(str(path))
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_key(str(path))
    assert again.private_numbers() == made.private_numbers()
    assert load_or_create_key(None).private_numbers() != made.private_numbers()


def test_key_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    rsa_file = tmp_path / "rsa.pem"
    rsa_file.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    for path in (rsa_file, p384):
        with pytest.raises(OptionsError, match="P-256"):
            load_or_create_key(str(path))
    with pytest.raises(OptionsError, match="not a PEM private key"):
        load_or_create_key(str(garbage))


def test_options_need_signed_meter_for_its_key_and_faults() -> None:
    url = "ws://127.0.0.1:9/ocpp"
    with pytest.raises(OptionsError, match="need --signed-meter"):
        ChargerOptions(url=url, charger_id="CP1", signed_fault="tamper")
    with pytest.raises(OptionsError, match="need --signed-meter"):
        ChargerOptions(url=url, charger_id="CP1", meter_key_file="k.pem")
    with pytest.raises(OptionsError, match="signed fault must be one of"):
        ChargerOptions(url=url, charger_id="CP1", signed_meter=True, signed_fault="late")
    ok = ChargerOptions(url=url, charger_id="CP1", signed_meter=True, signed_fault="gap")
    assert ok.signed_fault == "gap"


def test_16_wire_shape_signed_data_beside_the_plain_register() -> None:
    m = meter()
    record = m.record(1, 12_345, AT, "B", "TAG")
    assert record is not None
    entry = with_signed(
        register_value(12_345, "t", "Transaction.Begin"), record, "Transaction.Begin"
    )
    plain, signed = entry["sampledValue"]
    assert plain == {
        "value": "12345",
        "context": "Transaction.Begin",
        "format": "Raw",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unit": "Wh",
    }
    assert signed == {
        "value": record,
        "context": "Transaction.Begin",
        "format": "SignedData",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
    }


def test_201_wire_shape_signed_meter_value_on_the_register() -> None:
    m = meter()
    record = m.record(1, 12_345, AT, "E", "TAG")
    assert record is not None
    signed = signed_meter_value(record, m.public_key_base64, "ECDSA-secp256r1-SHA256")
    entry = with_signed_201(energy_value(12_345, "t", "Transaction.End"), signed)
    [sampled] = entry["sampledValue"]
    assert sampled["value"] == 12_345 and sampled["context"] == "Transaction.End"
    smv = sampled["signedMeterValue"]
    assert base64.b64decode(smv["signedMeterData"]).decode("utf-8") == record
    assert (smv["signingMethod"], smv["encodingMethod"]) == ("ECDSA-secp256r1-SHA256", "OCMF")
    assert base64.b64decode(smv["publicKey"]).hex().upper() == m.public_key_hex
    assert verifies(record, base64.b64decode(smv["publicKey"]).hex())


def test_16_charger_publishes_its_key_as_configuration_key_and_data_transfer() -> None:
    options = ChargerOptions(
        url="ws://127.0.0.1:9/ocpp", charger_id="CP16", connectors=2, signed_meter=True
    )
    cp = V16Charger(options)
    assert cp.signed_meter is not None
    known, unknown = cp.configuration.get(["MeterPublicKey"])
    assert unknown == [] and known[0].readonly
    assert known[0].value == cp.signed_meter.public_key_hex
    assert known[0].value.startswith("3059301306072A8648CE3D020106082A8648CE3D030107034200")
    data = meter_configuration(cp)
    assert data is not None
    assert json.loads(data) == {
        "meters": [
            {
                "connectorId": n,
                "meterSerial": f"M-SN-CP16-{n}",
                "type": "SIGNATURE",
                "publicKey": cp.signed_meter.public_key_hex,
            }
            for n in (1, 2)
        ]
    }
    plain = V16Charger(ChargerOptions(url="ws://127.0.0.1:9/ocpp", charger_id="CP16"))
    assert plain.signed_meter is None and meter_configuration(plain) is None
    assert plain.configuration.get(["MeterPublicKey"]) == ([], ["MeterPublicKey"])


def test_201_station_says_it_signs_in_its_device_model() -> None:
    url = "ws://127.0.0.1:9/ocpp"
    signing = V201Charger(
        ChargerOptions(url=url, charger_id="CS1", version="2.0.1", signed_meter=True)
    )
    assert signing.device.flag("SampledDataCtrlr", "SignReadings") is True
    assert signing.device.value("OCPPCommCtrlr", "PublicKeyWithSignedMeterValue") == (
        "EveryMeterValue"
    )
    plain = V201Charger(ChargerOptions(url=url, charger_id="CS1", version="2.0.1"))
    assert plain.signed_meter is None
    with pytest.raises(KeyError):
        plain.device.value("SampledDataCtrlr", "SignReadings")


def test_command_line_help_and_refusals() -> None:
    import simulators.cli

    runner = CliRunner()
    for command in ("charger", "fleet"):
        shown = runner.invoke(simulators.cli.main, [command, "--help"])
        assert shown.exit_code == 0
        text = " ".join(shown.output.split())
        assert "--signed-meter" in text and "--meter-key FILE" in text
        assert "--signed-fault [tamper|wrong-key|no-end|gap]" in text
    base = ["charger", "--url", "ws://127.0.0.1:9/ocpp", "--id", "CP"]
    lonely = runner.invoke(simulators.cli.main, [*base, "--signed-fault", "gap"])
    assert lonely.exit_code == 2 and "need --signed-meter" in lonely.output
    unknown = runner.invoke(simulators.cli.main, [*base, "--signed-meter", "--signed-fault", "x"])
    assert unknown.exit_code == 2 and "tamper" in unknown.output
