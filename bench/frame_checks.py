"""What the input bounds cost per message: parsing a frame (orjson alone, then parse_frame
with every frame check), the nesting bound alone, and schema validation without and with
the 64-bit and EVSE bounds.

Pure CPU on one core, no I/O; prints microseconds per message for typical frames of both
versions (best of several rounds).

    .venv/bin/python bench/frame_checks.py [--rounds 7] [--number 20000]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jsonschema_rs
import orjson

from csms.handlers.rpc import _may_nest_deeper, _nests_deeper, parse_frame
from csms.handlers.schemas import SchemaSet

AT = "2026-01-01T12:00:00.000Z"

V16_METER = {
    "connectorId": 1,
    "transactionId": 1234,
    "meterValue": [
        {
            "timestamp": AT,
            "sampledValue": [
                {"value": "12345", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "16.1", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                {"value": "16.0", "measurand": "Current.Import", "unit": "A", "phase": "L2"},
                {"value": "15.9", "measurand": "Current.Import", "unit": "A", "phase": "L3"},
                {"value": "230.1", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
            ],
        }
    ],
}

V201_EVENT = {
    "eventType": "Updated",
    "timestamp": AT,
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 17,
    "transactionInfo": {"transactionId": "a1b2c3d4", "chargingState": "Charging"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [
        {
            "timestamp": AT,
            "sampledValue": [
                {"value": 12345, "measurand": "Energy.Active.Import.Register"},
                {"value": 7200, "measurand": "Power.Active.Import"},
                {"value": 16.1, "measurand": "Current.Import", "phase": "L1"},
                {"value": 16.0, "measurand": "Current.Import", "phase": "L2"},
                {"value": 15.9, "measurand": "Current.Import", "phase": "L3"},
            ],
        }
    ],
}

# More brackets than the nesting bound: the frame is walked.
V16_METER_BIG = {
    "connectorId": 1,
    "transactionId": 1234,
    "meterValue": [V16_METER["meterValue"][0]] * 8,  # type: ignore[index]
}

CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("1.6 Heartbeat", "1.6", "Heartbeat", {}),
    ("1.6 MeterValues, 6 samples", "1.6", "MeterValues", V16_METER),
    ("1.6 MeterValues, 8 x 6 samples", "1.6", "MeterValues", V16_METER_BIG),
    ("2.0.1 TransactionEvent, 5 samples", "2.0.1", "TransactionEvent", V201_EVENT),
]


def nesting_check(text: str, frame: list[Any]) -> bool:
    """What parse_frame adds for the nesting bound (the frame is parsed already)."""
    return _may_nest_deeper(text) and _nests_deeper(frame)


def per_call_us(work: Callable[[], object], number: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.disable()
        started = time.perf_counter()
        for _ in range(number):
            work()
        took = time.perf_counter() - started
        gc.enable()
        best = min(best, took)
    return best / number * 1e6


def unbounded(version: str, action: str) -> Callable[[Any], None]:
    """The shipped schema as it is, compiled the way SchemaSet compiles its own."""
    schemas = SchemaSet(version)
    raw = schemas._load(action + ("" if version == "1.6" else "Request"))
    raw.pop("$schema", None)
    raw.pop("$id", None)
    return jsonschema_rs.validator_for(raw, validate_formats=True).validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    print(
        f"{'message':36} {'loads':>7} {'parse':>7} {'nesting':>8} {'schema':>7} {'bounded':>8}"
        "  (µs per message)"
    )
    for label, version, action, payload in CASES:
        text = orjson.dumps([2, "0f9c", action, payload]).decode()
        bounded = SchemaSet(version).request_validator(action)
        assert bounded is not None
        works: list[Callable[[], object]] = [
            partial(orjson.loads, text),
            partial(parse_frame, text),
            partial(nesting_check, text, orjson.loads(text)),
            partial(unbounded(version, action), payload),
            partial(bounded, payload),
        ]
        loads, parse, nesting, plain, with_bounds = (
            per_call_us(work, args.number, args.rounds) for work in works
        )
        print(
            f"{label:36} {loads:7.2f} {parse:7.2f} {nesting:8.2f} {plain:7.2f} {with_bounds:8.2f}"
        )


if __name__ == "__main__":
    main()
