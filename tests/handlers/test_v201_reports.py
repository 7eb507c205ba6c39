"""The 2.0.1 adapter turns NotifyReport's reportData into neutral device variables."""

from __future__ import annotations

from csms.core.device_model import ReportedVariable
from csms.handlers.v201.adapter import reported_variables


def test_every_attribute_of_every_variable_becomes_one_value() -> None:
    characteristics = {"dataType": "integer", "supportsMonitoring": False, "unit": "W"}
    report = [
        {
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "Power"},
            "variableAttribute": [
                {"type": "Actual", "value": "11000", "mutability": "ReadOnly"},
                {"type": "MaxSet", "value": "22000", "persistent": True, "constant": False},
            ],
            "variableCharacteristics": characteristics,
        },
        {
            "component": {
                "name": "Connector",
                "instance": "A",
                "evse": {"id": 2, "connectorId": 1},
            },
            "variable": {"name": "Available", "instance": "x"},
            "variableAttribute": [{"value": "true"}],
        },
    ]
    assert reported_variables(report) == [
        ReportedVariable(
            "EVSE",
            "",
            1,
            None,
            "Power",
            "",
            "Actual",
            "11000",
            mutability="ReadOnly",
            characteristics=characteristics,
        ),
        ReportedVariable(
            "EVSE",
            "",
            1,
            None,
            "Power",
            "",
            "MaxSet",
            "22000",
            persistent=True,
            constant=False,
            characteristics=characteristics,
        ),
        ReportedVariable("Connector", "A", 2, 1, "Available", "x", "Actual", "true"),
    ]


def test_a_variable_without_attributes_is_its_actual_one_without_a_value() -> None:
    report = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]
    assert reported_variables(report) == [
        ReportedVariable("OCPPCommCtrlr", "", None, None, "HeartbeatInterval", "")
    ]
