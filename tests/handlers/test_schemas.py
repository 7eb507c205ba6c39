import pytest

from csms.handlers.rpc import ErrorKind, OcppCallError
from csms.handlers.schemas import SchemaSet

V16 = SchemaSet("1.6")
LONG_SERIAL = {
    "chargePointVendor": "V",
    "chargePointModel": "M",
    "chargePointSerialNumber": "S" * 40,
}


def test_strict_refuses_an_over_long_serial() -> None:
    with pytest.raises(OcppCallError) as info:
        V16.check_request("BootNotification", LONG_SERIAL, lenient=False)
    assert info.value.kind is ErrorKind.TYPE
    assert info.value.details["field"] == "chargePointSerialNumber"


def test_lenient_accepts_it_and_reports_the_deviation() -> None:
    deviation = V16.check_request("BootNotification", LONG_SERIAL, lenient=True)
    assert deviation is not None
    assert deviation.rule == "maxLength"
    assert deviation.path == "chargePointSerialNumber"


def test_lenient_accepts_odd_error_codes_and_units_but_not_odd_statuses() -> None:
    status = {"connectorId": 1, "errorCode": "Mode3Error", "status": "Available"}
    assert V16.check_request("StatusNotification", status, lenient=True) is not None
    with pytest.raises(OcppCallError):
        V16.check_request("StatusNotification", {**status, "status": "Charging!"}, lenient=True)
    mv = {
        "connectorId": 1,
        "meterValue": [
            {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1", "unit": "kwh"}]}
        ],
    }
    assert V16.check_request("MeterValues", mv, lenient=True) is not None


def test_lenient_still_refuses_missing_fields_and_wrong_types() -> None:
    with pytest.raises(OcppCallError) as info:
        V16.check_request("BootNotification", {"chargePointVendor": "V"}, lenient=True)
    assert info.value.kind is ErrorKind.OCCURRENCE
    with pytest.raises(OcppCallError) as info:
        V16.check_request("Heartbeat", {"x": 1}, lenient=False)
    assert info.value.kind is ErrorKind.FORMAT


V201 = SchemaSet("2.0.1")
BEYOND_UTC = ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00")


@pytest.mark.parametrize("stamp", BEYOND_UTC)
@pytest.mark.parametrize(
    ("schemas", "action", "payload", "field"),
    [
        (
            V16,
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "{ts}"},
            "timestamp",
        ),
        (
            V16,
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [{"timestamp": "{ts}", "sampledValue": [{"value": "1"}]}],
            },
            "meterValue[0].timestamp",
        ),
        (V16, "SecurityEventNotification", {"type": "X", "timestamp": "{ts}"}, "timestamp"),
        (
            V201,
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": "{ts}",
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "T1"},
            },
            "timestamp",
        ),
        (
            V201,
            "NotifyEvent",
            {
                "generatedAt": "2026-01-01T00:00:00Z",
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": 1,
                        "timestamp": "{ts}",
                        "trigger": "Alerting",
                        "actualValue": "1",
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "C"},
                        "variable": {"name": "V"},
                    }
                ],
            },
            "eventData[0].timestamp",
        ),
    ],
)
def test_a_date_time_beyond_utc_is_a_property_violation_in_every_action(
    schemas: SchemaSet, action: str, payload: dict[str, object], field: str, stamp: str
) -> None:
    with pytest.raises(OcppCallError) as info:
        schemas.check_request(action, filled_with(payload, stamp), lenient=False)
    assert info.value.kind is ErrorKind.PROPERTY
    assert info.value.details == {"field": field, "rule": "format"}
    assert info.value.description == (
        f"{field}: {stamp!r} is outside the years 1 to 9999 once converted to UTC"
    )
    # The last instants UTC holds are fine.
    edge = "9999-12-31T23:59:59Z" if stamp.startswith("9999") else "0001-01-01T01:00:00+01:00"
    assert schemas.check_request(action, filled_with(payload, edge), lenient=False) is None


def filled_with(payload: object, stamp: str) -> dict[str, object]:
    def fill(value: object) -> object:
        if value == "{ts}":
            return stamp
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    out = fill(payload)
    assert isinstance(out, dict)
    return out


def test_a_malformed_date_time_keeps_its_own_message() -> None:
    with pytest.raises(OcppCallError) as info:
        V16.check_request(
            "SecurityEventNotification", {"type": "X", "timestamp": "yesterday"}, lenient=False
        )
    assert info.value.kind is ErrorKind.PROPERTY
    assert "is not a" in info.value.description and "date-time" in info.value.description
