"""Unit test of how the link hands camelCase payloads to the `ocpp` library."""

from __future__ import annotations

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case

from simulators.link import _Frames

PAYLOAD = {
    "eventType": "Started",
    "timestamp": "2025-01-01T00:00:00Z",
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "t", "chargingState": "Charging"},
    "idToken": {"idToken": "A", "type": "ISO14443"},
    "meterValue": [
        {
            "timestamp": "2025-01-01T00:00:00Z",
            "sampledValue": [
                {"value": 1, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}
            ],
        }
    ],
}


def test_the_library_puts_exactly_our_dict_on_the_wire() -> None:
    frames = _Frames()
    request = frames.build("TransactionEvent", PAYLOAD)
    assert type(request).__name__ == "TransactionEvent"  # the library's action name
    wire = remove_nones(snake_to_camel_case(serialize_as_dict(request)))
    assert wire == PAYLOAD
    assert type(frames.build("TransactionEvent", PAYLOAD)) is type(request)  # cached
