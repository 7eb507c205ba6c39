"""Unit tests of the OCPP 2.0.1 meterValue entries, checked against the 2.0.1 schema."""

from __future__ import annotations

from simulators.meter import SUPPORTED_MEASURANDS
from simulators.station import Reading
from simulators.v201_meter import energy_value, meter_value

from .schemas import check_request

READING = Reading(
    connector_id=1,
    energy_wh=1_234_567,
    power_w=11_000,
    offered_power_w=22_080,
    current_a=(15.9, 16.0, 16.1),
    offered_current_a=32.0,
    voltage_v=(229.5, 230.1, 231.0),
    soc_percent=42,
)
STAMP = "2025-01-01T00:00:00.000Z"


def test_values_are_numbers_with_a_unit_of_measure() -> None:
    entry = meter_value(READING, STAMP)
    check_request("MeterValues", {"evseId": 1, "meterValue": [entry]})
    by_key = {(v["measurand"], v.get("phase")): v for v in entry["sampledValue"]}
    assert by_key[("Energy.Active.Import.Register", None)] == {
        "value": 1_234_567,
        "context": "Sample.Periodic",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unitOfMeasure": {"unit": "Wh"},
    }
    assert by_key[("Current.Import", "L3")]["value"] == 16.1
    assert by_key[("Voltage", "L1-N")]["unitOfMeasure"] == {"unit": "V"}
    assert by_key[("SoC", None)]["location"] == "EV"
    assert all(isinstance(v["value"], int | float) for v in entry["sampledValue"])


def test_every_supported_measurand_and_context_fits_the_schema() -> None:
    for context in ("Transaction.Begin", "Transaction.End", "Trigger", "Sample.Periodic"):
        entry = meter_value(READING, STAMP, SUPPORTED_MEASURANDS, context)
        check_request("MeterValues", {"evseId": 1, "meterValue": [entry]})
        assert {v["context"] for v in entry["sampledValue"]} == {context}


def test_energy_only_entry() -> None:
    entry = energy_value(500, STAMP, "Transaction.Begin")
    check_request("MeterValues", {"evseId": 2, "meterValue": [entry]})
    assert entry["sampledValue"] == [
        {
            "value": 500,
            "context": "Transaction.Begin",
            "measurand": "Energy.Active.Import.Register",
            "location": "Outlet",
            "unitOfMeasure": {"unit": "Wh"},
        }
    ]
