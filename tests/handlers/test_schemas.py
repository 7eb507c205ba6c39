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
