"""Unit tests of the OCPP 1.6 meterValue entries built from station readings."""

from __future__ import annotations

from simulators.station import Reading
from simulators.v16_meter import meter_value

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


def test_default_sample_set_as_on_the_wire() -> None:
    entry = meter_value(READING, "2025-01-01T00:00:00.000Z")
    assert entry["timestamp"] == "2025-01-01T00:00:00.000Z"
    values = entry["sampledValue"]
    by_measurand = {(v["measurand"], v.get("phase")): v for v in values}
    energy = by_measurand[("Energy.Active.Import.Register", None)]
    assert energy == {
        "value": "1234567",
        "context": "Sample.Periodic",
        "format": "Raw",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unit": "Wh",
    }
    assert by_measurand[("Power.Active.Import", None)]["value"] == "11000"
    assert [by_measurand[("Current.Import", p)]["value"] for p in ("L1", "L2", "L3")] == [
        "15.9",
        "16.0",
        "16.1",
    ]
    assert by_measurand[("Voltage", "L2-N")]["unit"] == "V"
    assert by_measurand[("SoC", None)] == {
        "value": "42",
        "context": "Sample.Periodic",
        "format": "Raw",
        "measurand": "SoC",
        "location": "EV",
        "unit": "Percent",
    }
    assert all(isinstance(v["value"], str) for v in values)


def test_measurands_and_context_are_chosen_by_the_caller() -> None:
    entry = meter_value(READING, "t", ["Energy.Active.Import.Register"], "Transaction.End")
    assert [(v["measurand"], v["context"]) for v in entry["sampledValue"]] == [
        ("Energy.Active.Import.Register", "Transaction.End")
    ]


def test_soc_is_left_out_without_a_vehicle_and_never_empty() -> None:
    no_vehicle = Reading(1, 5, 0, 0, (0.0, 0.0, 0.0), 0.0, (230.0, 230.0, 230.0), None)
    entry = meter_value(no_vehicle, "t", ["SoC"])
    assert [v["measurand"] for v in entry["sampledValue"]] == ["Energy.Active.Import.Register"]
