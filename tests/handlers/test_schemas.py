import orjson
import pytest

from csms.core.charger import INT_MAX, INT_MIN, MAX_EVSE_ID
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


AT = "2026-01-01T00:00:00Z"


def refusal(schemas: SchemaSet, action: str, payload: dict[str, object], lenient: bool) -> str:
    with pytest.raises(OcppCallError) as info:
        schemas.check_request(action, payload, lenient=lenient)
    assert info.value.kind is ErrorKind.PROPERTY  # PropertyConstraintViolation in both versions
    return info.value.description


def meter_values(connector: object) -> dict[str, object]:
    return {
        "connectorId": connector,
        "meterValue": [{"timestamp": AT, "sampledValue": [{"value": "1"}]}],
    }


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize(
    ("action", "payload", "message"),
    [
        (
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 2**63, "timestamp": AT},
            "meterStart: 9223372036854775808 is greater than the maximum of 9223372036854775807",
        ),
        (
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": -(2**63) - 1, "timestamp": AT},
            "meterStart: -9223372036854775809 is less than the minimum of -9223372036854775807",
        ),
        (
            "MeterValues",
            meter_values(2**64 - 1),
            "connectorId: 18446744073709551615 is greater than the maximum of 1000",
        ),
        (
            "StatusNotification",
            {"connectorId": 1001, "errorCode": "NoError", "status": "Available"},
            "connectorId: 1001 is greater than the maximum of 1000",
        ),
    ],
)
def test_v16_integers_are_bounded(
    action: str, payload: dict[str, object], message: str, lenient: bool
) -> None:
    assert refusal(V16, action, payload, lenient) == message


def test_minus_2_63_minus_1_read_as_a_float_is_refused() -> None:
    # orjson reads integers below -2^63 as floats, and -2^63 - 1 becomes exactly -2^63.
    text = f'{{"connectorId":1,"idTag":"T","meterStart":{-(2**63) - 1},"timestamp":"{AT}"}}'
    payload = orjson.loads(text)
    assert payload["meterStart"] == -(2**63) and isinstance(payload["meterStart"], float)
    assert refusal(V16, "StartTransaction", payload, False).startswith("meterStart: ")


def test_a_huge_float_in_an_integer_field_is_refused_in_a_few_words() -> None:
    # JSON Schema takes 1e300 for an integer (no fraction); its 301 digits are elided.
    stop = {"transactionId": 1e300, "meterStop": 1, "timestamp": AT}
    message = refusal(V16, "StopTransaction", stop, False)
    assert message.startswith("transactionId: 10000000000000000525")
    assert message.endswith("is greater than the maximum of 9223372036854775807")
    assert len(message) < 200


def transaction_event(**fields: object) -> dict[str, object]:
    return {
        "eventType": "Started",
        "timestamp": AT,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T1"},
        **fields,
    }


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize(
    ("action", "payload", "message"),
    [
        (
            "TransactionEvent",
            transaction_event(seqNo=2**64 - 1),
            "seqNo: 18446744073709551615 is greater than the maximum of 9223372036854775807",
        ),
        (
            "TransactionEvent",
            transaction_event(reservationId=-(2**63) - 1),
            "reservationId: -9223372036854775809 is less than the minimum of -9223372036854775807",
        ),
        (
            "TransactionEvent",
            transaction_event(evse={"id": 2**62, "connectorId": 1}),
            "evse.id: 4611686018427387904 is greater than the maximum of 1000",
        ),
        (
            "StatusNotification",
            {"timestamp": AT, "connectorStatus": "Available", "evseId": 1, "connectorId": 1001},
            "connectorId: 1001 is greater than the maximum of 1000",
        ),
        (
            "MeterValues",
            {"evseId": 9e18 * 2, "meterValue": [{"timestamp": AT, "sampledValue": [{"value": 1}]}]},
            "evseId: 18000000000000000000.0 is greater than the maximum of 1000",
        ),
    ],
)
def test_v201_integers_are_bounded(
    action: str, payload: dict[str, object], message: str, lenient: bool
) -> None:
    assert refusal(V201, action, payload, lenient) == message


def test_the_largest_integers_and_evse_numbers_pass() -> None:
    start = {"connectorId": MAX_EVSE_ID, "idTag": "T", "meterStart": INT_MAX, "timestamp": AT}
    assert V16.check_request("StartTransaction", start, lenient=False) is None
    stop = {"transactionId": INT_MIN, "meterStop": 12.0, "timestamp": AT}
    assert V16.check_request("StopTransaction", stop, lenient=False) is None


def test_a_command_to_an_evse_beyond_the_bound_is_refused_before_it_is_sent() -> None:
    validate = V201.request_validator("UnlockConnector")
    assert validate is not None
    validate({"evseId": MAX_EVSE_ID, "connectorId": 1})
    with pytest.raises(Exception, match="greater than the maximum of 1000"):
        validate({"evseId": MAX_EVSE_ID + 1, "connectorId": 1})
