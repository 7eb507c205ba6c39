"""Unit tests of the OCPP 2.0.1 device model: GetVariables, SetVariables and reports."""

from __future__ import annotations

from typing import Any

from simulators.v201_device import ComponentKey, DeviceModel, Mutability, VariableKey

from .schemas import check_request, check_response


def model(evses: int = 2) -> DeviceModel:
    return DeviceModel.defaults(
        evses=evses,
        heartbeat_interval=300,
        meter_interval=5,
        vendor="V",
        model="M",
        serial_number="SN",
        firmware="1.0",
        rated_power_w=22_080,
        items_per_report=10,
    )


def ask(component: dict[str, Any], variable: str, **extra: Any) -> dict[str, Any]:
    return {"component": component, "variable": {"name": variable}, **extra}


def test_get_variables_answers_each_request_in_order() -> None:
    dm = model()
    results = dm.get_variables(
        [
            ask({"name": "OCPPCommCtrlr"}, "HeartbeatInterval"),
            ask({"name": "EVSE", "evse": {"id": 2}}, "AvailabilityState"),
            ask({"name": "NoSuchCtrlr"}, "HeartbeatInterval"),
            ask({"name": "AuthCtrlr"}, "NoSuchVariable"),
            ask({"name": "AuthCtrlr"}, "Enabled", attributeType="MaxSet"),
            ask({"name": "SecurityCtrlr"}, "BasicAuthPassword"),
            ask({"name": "EVSE", "evse": {"id": 3}}, "AvailabilityState"),
        ]
    )
    check_response("GetVariables", {"getVariableResult": results})
    assert [r["attributeStatus"] for r in results] == [
        "Accepted",
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "Rejected",  # write-only
        "UnknownComponent",
    ]
    assert results[0]["attributeValue"] == "300"
    assert results[1] == {
        "component": {"name": "EVSE", "evse": {"id": 2}},
        "variable": {"name": "AvailabilityState"},
        "attributeStatus": "Accepted",
        "attributeValue": "Available",
    }
    assert results[4]["attributeType"] == "MaxSet"


def test_set_variables_checks_mutability_and_data_type() -> None:
    dm = model()
    requests = [
        ask({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", attributeValue="60"),
        ask({"name": "SampledDataCtrlr"}, "TxUpdatedInterval", attributeValue="ten"),
        ask({"name": "SampledDataCtrlr"}, "TxUpdatedInterval", attributeValue="-1"),
        ask({"name": "ChargingStation"}, "Model", attributeValue="Other"),
        ask({"name": "AuthCtrlr"}, "AuthorizeRemoteStart", attributeValue="false"),
        ask({"name": "SampledDataCtrlr"}, "TxUpdatedMeasurands", attributeValue="SoC,Voltage"),
        ask({"name": "SampledDataCtrlr"}, "TxUpdatedMeasurands", attributeValue="Temperature"),
        ask({"name": "Nope"}, "X", attributeValue="1"),
        ask({"name": "AuthCtrlr"}, "Nope", attributeValue="1"),
    ]
    check_request("SetVariables", {"setVariableData": requests})
    results, changed = dm.set_variables(requests)
    check_response("SetVariables", {"setVariableResult": results})
    assert [r["attributeStatus"] for r in results] == [
        "Accepted",
        "Rejected",
        "Rejected",
        "Rejected",
        "Accepted",
        "Accepted",
        "Rejected",
        "UnknownComponent",
        "UnknownVariable",
    ]
    assert [v.key.name for v in changed] == [
        "HeartbeatInterval",
        "AuthorizeRemoteStart",
        "TxUpdatedMeasurands",
    ]
    assert dm.seconds("OCPPCommCtrlr", "HeartbeatInterval") == 60
    assert not dm.flag("AuthCtrlr", "AuthorizeRemoteStart")
    assert dm.items("SampledDataCtrlr", "TxUpdatedMeasurands") == ("SoC", "Voltage")
    assert dm.value("ChargingStation", "Model") == "M"


def test_full_inventory_reports_every_variable_in_schema_form() -> None:
    dm = model(evses=2)
    data = dm.report("FullInventory")
    assert len(data) == len(dm.variables())
    check_request(
        "NotifyReport",
        {"requestId": 1, "generatedAt": "2025-01-01T00:00:00Z", "seqNo": 0, "reportData": data},
    )
    names = {(d["component"]["name"], d["variable"]["name"]) for d in data}
    assert ("OCPPCommCtrlr", "HeartbeatInterval") in names
    assert ("SampledDataCtrlr", "TxUpdatedInterval") in names
    assert ("EVSE", "AvailabilityState") in names
    password = next(d for d in data if d["variable"]["name"] == "BasicAuthPassword")
    assert "value" not in password["variableAttribute"][0]  # write-only is never shown
    power = next(d for d in data if d["variable"]["name"] == "Power")
    assert power["component"] == {"name": "EVSE", "evse": {"id": 1}}
    assert power["variableCharacteristics"]["maxLimit"] == 22_080


def test_configuration_and_summary_inventories_are_subsets() -> None:
    dm = model()
    config = dm.report("ConfigurationInventory")
    assert config
    assert all(d["variableAttribute"][0]["mutability"] != "ReadOnly" for d in config)
    summary = dm.report("SummaryInventory")
    assert {d["variable"]["name"] for d in summary} == {"AvailabilityState", "Available"}
    assert len(summary) == 2 + 2 * 2 * 2  # station, then EVSE and connector of two EVSEs


def test_get_report_selects_components_and_variables() -> None:
    dm = model()
    evse = dm.select([{"component": {"name": "EVSE", "evse": {"id": 1}}}])
    assert {d["variable"]["name"] for d in evse} == {
        "Available",
        "AvailabilityState",
        "Power",
        "SupplyPhases",
    }
    one = dm.select(
        [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]
    )
    assert len(one) == 1
    assert dm.select([{"component": {"name": "Nope"}}]) == []
    assert len(dm.select([])) == len(dm.variables())


def test_station_side_updates_reach_read_only_variables() -> None:
    dm = model()
    evse = ComponentKey("EVSE", evse_id=1)
    dm.set_availability(evse, "Unavailable")
    (state, available) = dm.get_variables(
        [
            ask({"name": "EVSE", "evse": {"id": 1}}, "AvailabilityState"),
            ask({"name": "EVSE", "evse": {"id": 1}}, "Available"),
        ]
    )
    assert state["attributeValue"] == "Unavailable"
    assert available["attributeValue"] == "false"
    dm.set(ComponentKey("OCPPCommCtrlr"), VariableKey("HeartbeatInterval"), "15")
    assert dm.seconds("OCPPCommCtrlr", "HeartbeatInterval") == 15
    variable = dm.find(ComponentKey("ChargingStation"), VariableKey("Model"))
    assert variable is not None and variable.mutability is Mutability.READ_ONLY


def test_local_list_smart_charging_and_reservation_variables() -> None:
    dm = model()
    assert dm.flag("LocalAuthListCtrlr", "Enabled")
    assert dm.integer("LocalAuthListCtrlr", "ItemsPerMessage") == 50
    assert dm.flag("ReservationCtrlr", "NonEvseSpecific")
    rules = dm.profile_rules()
    assert (rules.max_stack_level, rules.max_periods, rules.max_installed) == (8, 24, 16)
    assert rules.units == {"A", "W"}
    entries = dm.find(ComponentKey("LocalAuthListCtrlr"), VariableKey("Entries"))
    assert entries is not None and entries.max_limit == 100
    assert entries.mutability is Mutability.READ_ONLY
    (result,) = dm.set_variables(
        [ask({"name": "SmartChargingCtrlr"}, "ProfileStackLevel", attributeValue="2")]
    )[0]
    assert result["attributeStatus"] == "Rejected"
