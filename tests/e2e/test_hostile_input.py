"""Out-of-range integers, EVSE numbers and deep nesting get the version's CALLERROR with one
log line and no traceback; nothing is stored and the connection keeps working."""

from __future__ import annotations

import json
from typing import Any

import pytest

from csms.core.charger import MAX_EVSE_ID
from csms.handlers.rpc import MAX_NESTING
from tests.e2e.conftest import Running
from tests.e2e.logs import captured_logs
from tests.e2e.raw import call, exchange, open_booted

AT = "2026-01-01T12:00:00Z"
BIG = 2**64 - 1  # what a charger once sent as connectorId, 12 times a second


def v16_meter(connector: Any) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "meterValue": [{"timestamp": AT, "sampledValue": [{"value": "100"}]}],
    }


def v16_start(**fields: Any) -> dict[str, Any]:
    return {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": AT, **fields}


def v201_event(**fields: Any) -> dict[str, Any]:
    return {
        "eventType": "Started",
        "timestamp": AT,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "HOSTILE-1"},
        **fields,
    }


def v201_status(evse: Any, connector: Any) -> dict[str, Any]:
    return {
        "timestamp": AT,
        "connectorStatus": "Available",
        "evseId": evse,
        "connectorId": connector,
    }


OUT_OF_RANGE: list[tuple[str, str, dict[str, Any], str]] = [
    ("1.6", "MeterValues", v16_meter(BIG), "connectorId"),
    ("1.6", "MeterValues", v16_meter(1e300), "connectorId"),
    ("1.6", "MeterValues", v16_meter(MAX_EVSE_ID + 1), "connectorId"),
    ("1.6", "StartTransaction", v16_start(meterStart=2**63), "meterStart"),
    ("1.6", "StartTransaction", v16_start(connectorId=2**62), "connectorId"),
    ("1.6", "StartTransaction", v16_start(reservationId=-(2**63) - 1), "reservationId"),
    (
        "1.6",
        "StopTransaction",
        {"transactionId": BIG, "meterStop": 10, "timestamp": AT},
        "transactionId",
    ),
    (
        "1.6",
        "StatusNotification",
        {"connectorId": 2**62, "errorCode": "NoError", "status": "Available"},
        "connectorId",
    ),
    ("2.0.1", "TransactionEvent", v201_event(seqNo=BIG), "seqNo"),
    ("2.0.1", "TransactionEvent", v201_event(evse={"id": 2**62, "connectorId": 1}), "evse.id"),
    ("2.0.1", "TransactionEvent", v201_event(reservationId=BIG), "reservationId"),
    ("2.0.1", "StatusNotification", v201_status(2**63, 1), "evseId"),
    ("2.0.1", "StatusNotification", v201_status(1, MAX_EVSE_ID + 1), "connectorId"),
    (
        "2.0.1",
        "MeterValues",
        {"evseId": -(2**63) - 1, "meterValue": [{"timestamp": AT, "sampledValue": [{"value": 1}]}]},
        "evseId",
    ),
    (
        "2.0.1",
        "ReservationStatusUpdate",
        {"reservationId": BIG, "reservationUpdateStatus": "Expired"},
        "reservationId",
    ),
    (
        "2.0.1",
        "NotifyReport",
        {
            "requestId": 1,
            "generatedAt": AT,
            "seqNo": 0,
            "reportData": [
                {
                    "component": {"name": "Connector", "evse": {"id": 2**62}},
                    "variable": {"name": "Available"},
                    "variableAttribute": [{"value": "true"}],
                }
            ],
        },
        "reportData[0].component.evse.id",
    ),
]


@pytest.mark.parametrize(
    ("version", "action", "payload", "field"),
    OUT_OF_RANGE,
    ids=[f"{v}-{a}-{f}" for v, a, _, f in OUT_OF_RANGE],
)
async def test_out_of_range_integers_are_a_property_violation(
    server: Running, version: str, action: str, payload: dict[str, Any], field: str
) -> None:
    cp_id = f"HOSTILE-{version}"
    ws = await open_booted(server.url, cp_id, version)
    # The json module writes integers beyond 64 bits (orjson, which `call` uses, does not).
    frame = json.dumps([2, "big-1", action, payload])
    with captured_logs() as logs:
        reply = await exchange(ws, frame)
    assert reply[1] == "big-1"
    assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation", reply
    assert reply[3].startswith(f"{field}: ")
    assert "greater than the maximum" in reply[3] or "less than the minimum" in reply[3]
    assert reply[4] == {"field": field, "rule": reply[4]["rule"]}
    # One log line that says what was refused, and no traceback.
    assert [(e["event"], e["code"]) for e in logs.warnings()] == [
        ("call_rejected", "PropertyConstraintViolation")
    ]
    assert logs.tracebacks() == []
    # Nothing was stored, and the connection keeps working.
    detail = await server.staff.charger(cp_id)
    assert all(c.evse_id <= MAX_EVSE_ID for c in detail.connectors)
    assert detail.active_transactions == ()
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    await ws.close()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


FORMAT_ERROR = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 1100])
async def test_deeply_nested_json_is_a_format_error_and_the_connection_stays(
    server: Running, version: str, depth: int
) -> None:
    cp_id = f"DEEP-{version}"
    ws = await open_booted(server.url, cp_id, version)
    # Built as text: 1,100 levels is more than orjson (or the json module) writes.
    data = "[" * (depth - 1) + '"bottom"' + "]" * (depth - 1)
    frame = f'[2,"deep-1","DataTransfer",{{"vendorId":"V","data":{data}}}]'
    with captured_logs() as logs:
        reply = await exchange(ws, frame)
    assert reply[:3] == [4, "deep-1", FORMAT_ERROR[version]]
    assert f"more than {MAX_NESTING} levels" in reply[3]
    assert [e["event"] for e in logs.warnings()] == ["frame_invalid"]
    assert logs.tracebacks() == []
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    detail = await server.staff.charger(cp_id)
    assert [e.action for e in detail.events if e.action == "DataTransfer"] == []
    await ws.close()


async def test_vendor_data_nested_up_to_the_bound_is_stored(server: Running) -> None:
    ws = await open_booted(server.url, "DEEP-OK", "2.0.1")
    data = nested(MAX_NESTING)  # MAX_NESTING - 1 levels inside the payload object
    reply = await call(ws, "DataTransfer", {"vendorId": "V", "data": data})
    assert reply[0] == 3 and reply[2]["status"] == "UnknownVendorId"
    detail = await server.staff.charger("DEEP-OK")
    assert [e.payload for e in detail.events if e.action == "DataTransfer"] == [
        {"vendorId": "V", "data": data}
    ]
    await ws.close()
