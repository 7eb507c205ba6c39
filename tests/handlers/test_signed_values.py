"""What the adapters make of signed meter values: kept apart from the readings exactly as
sent (1.6 SignedData, also wrapped the 2.0.1 way; 2.0.1 signedMeterValue with its methods
and key), and the meter keys of a 1.6 setMeterConfiguration DataTransfer."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from csms.core.metering import SignedMeterValue
from csms.handlers.v16.adapter import meter_keys_from
from csms.handlers.v16.adapter import samples_from as samples_16
from csms.handlers.v201.adapter import samples_from as samples_201
from csms.services.meter_keys import ReportedKey

AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
RECORD = 'OCMF|{"FV" : "1.0", "GI":"é"}|{"SD":"30"}'
REGISTER = "Energy.Active.Import.Register"


def test_16_signed_data_is_kept_apart_exactly_as_sent() -> None:
    wrapped = orjson.dumps(
        {"signedMeterValue": "T0NNRnw=", "encodingMethod": "OCMF", "publicKey": ""}
    ).decode()
    samples, signed = samples_16(
        [
            {
                "timestamp": "2026-12-05T10:00:00Z",
                "sampledValue": [
                    {"value": "1500", "context": "Transaction.End"},
                    {"value": RECORD, "format": "SignedData", "context": "Transaction.End"},
                    {"value": wrapped, "format": "SignedData"},
                    {"value": "{not json", "format": "SignedData"},
                ],
            }
        ],
        "meterValue",
    )
    assert [(s.measurand, s.value) for s in samples] == [(REGISTER, 1500.0)]
    assert signed == (
        SignedMeterValue(AT, "Transaction.End", REGISTER, RECORD),
        SignedMeterValue(AT, "Sample.Periodic", REGISTER, "T0NNRnw=", "OCMF", None, None),
        SignedMeterValue(AT, "Sample.Periodic", REGISTER, "{not json"),
    )


def test_201_signed_meter_value_keeps_its_methods_and_key() -> None:
    value = {
        "value": 1500,
        "measurand": REGISTER,
        "context": "Transaction.Begin",
        "signedMeterValue": {
            "signedMeterData": "T0NNRnw=",
            "signingMethod": "",
            "encodingMethod": "OCMF",
            "publicKey": "MFkw",
        },
    }
    plain = {"value": 11000, "measurand": "Power.Active.Import"}
    samples, signed = samples_201(
        [{"timestamp": "2026-12-05T10:00:00Z", "sampledValue": [value, plain]}], "meterValue"
    )
    assert [s.value for s in samples] == [1500.0, 11000.0]
    assert signed == (
        SignedMeterValue(AT, "Transaction.Begin", REGISTER, "T0NNRnw=", "OCMF", None, "MFkw"),
    )
    assert (
        samples_201([{"timestamp": "2026-12-05T10:00:00Z", "sampledValue": [plain]}], "m")[1] == ()
    )


def test_a_meter_configuration_names_its_keys_by_evse() -> None:
    data = {
        "meters": [
            {"connectorId": 1, "meterSerial": "M1", "type": "SIGNATURE", "publicKey": "AA"},
            {"connectorId": 2, "type": "SIGNATURE", "publicKey": "BB"},
            {"connectorId": 3, "type": "OTHER", "publicKey": "CC"},
            {"connectorId": -1, "publicKey": "DD"},
            {"connectorId": True, "publicKey": "EE"},
            {"publicKey": "FF"},
            {"connectorId": 4},
            "junk",
        ]
    }
    assert meter_keys_from(orjson.dumps(data).decode()) == [
        ReportedKey(1, "AA", "M1"),
        ReportedKey(2, "BB"),
        ReportedKey(0, "FF"),
    ]
    assert meter_keys_from("not json") == meter_keys_from('{"meters": 5}') == []
    assert meter_keys_from(None) == []
