"""Frames for the fuzz test: payloads built from the JSON schemas the `ocpp` package ships,
then bent by one family of hostile values (huge integers, deep nesting, wrong types, odd
strings, odd timestamps, absurd readings). Seeded: a failure names its seed and frame.

Pure generation; the test in test_fuzz.py sends the frames to a real server.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ocpp
import orjson

_SCHEMAS = Path(ocpp.__file__).parent

# What a charging station sends (the CSMS answers the rest with NotSupported).
ACTIONS = {
    "1.6": [
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "SecurityEventNotification",
        "SignedFirmwareStatusNotification",
        "LogStatusNotification",
        "SignCertificate",
    ],
    "2.0.1": [
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    ],
}

# Transaction messages come more often: they reach the most code.
WEIGHTS = {
    "StartTransaction": 4,
    "StopTransaction": 4,
    "MeterValues": 4,
    "TransactionEvent": 8,
    "StatusNotification": 2,
    "NotifyReport": 2,
}

HUGE_NUMBERS: list[Any] = [
    2**63,
    2**63 - 1,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    10**18,
    1e300,
    -1e300,
    1.5,
    -1,
    0,
]
WRONG_TYPES: list[Any] = ["x", "", [], {}, True, False, None, 1, 1.25, ["x"], {"k": "v"}]
ODD_STRINGS: list[str] = [
    "",
    " ",
    "\u0000",
    "\u0000\u0001\u001f",
    "\u202eevil",
    "\ufeff",
    "🙂" * 20,
    "Ω≈ç√∫",
    "a" * 5000,
    "%FF%FE",
    "' OR 1=1 --",
    "\\",
    '"',
    "${jndi:ldap://x}",
    "NaN",
    "Infinity",
    "-0",
    "1e400",
]
ODD_TIMESTAMPS: list[str] = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2000-01-01T00:00:00Z",
    "2124-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T25:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00.123456789Z",
    "2024-01-01T00:00:00+24:00",
    "+275760-09-13T00:00:00Z",
    "yesterday",
    "",
]
ABSURD_READINGS: list[Any] = [
    "1e308",
    "-1e308",
    "1e309",
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 400,
    "-0",
    "0x10",
    "1_000",
    1e308,
    -1e308,
    2**63 - 1,
    -(2**63),
]
# Tokens that are not JSON numbers, put in the frame's text in place of a number.
NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x10", "01", "+1"]
FAMILIES = ["integers", "nesting", "types", "strings", "timestamps", "readings"]

Path_ = tuple[str | int, ...]


@dataclass
class Node:
    path: Path_
    schema: dict[str, Any]
    key: str | None


@dataclass
class Frame:
    action: str
    text: str
    what: str  # the mutation, for the failure report


@dataclass
class State:
    """What earlier answers taught: 1.6 transaction ids to stop, 2.0.1 ids to reuse."""

    v16_transactions: list[int] = field(default_factory=list)
    seq_no: int = 0


class Generator:
    def __init__(self, version: str, family: str, seed: int) -> None:
        self.version = version
        self.family = family
        self.rng = random.Random(f"{version}/{family}/{seed}")
        self.state = State()
        folder = _SCHEMAS / ("v16" if version == "1.6" else "v201") / "schemas"
        suffix = "" if version == "1.6" else "Request"
        self.schemas = {
            action: orjson.loads((folder / f"{action}{suffix}.json").read_bytes())
            for action in ACTIONS[version]
        }
        self._count = 0

    # --- valid-ish payloads ---------------------------------------------------------------

    def payload(self, action: str) -> tuple[dict[str, Any], list[Node]]:
        schema = self.schemas[action]
        nodes: list[Node] = []
        value = self._value(schema, schema.get("definitions", {}), (), None, nodes, 0)
        assert isinstance(value, dict)
        self._steer(action, value)
        return value, nodes

    def _value(
        self,
        schema: dict[str, Any],
        definitions: dict[str, Any],
        path: Path_,
        key: str | None,
        nodes: list[Node],
        depth: int,
    ) -> Any:
        if "$ref" in schema:
            schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        nodes.append(Node(path, schema, key))
        rng = self.rng
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if kind == "object":
            out: dict[str, Any] = {}
            required = set(schema.get("required", ()))
            for name, sub in schema.get("properties", {}).items():
                if name == "customData":
                    continue
                if name in required or (depth < 6 and rng.random() < 0.4):
                    out[name] = self._value(sub, definitions, (*path, name), name, nodes, depth + 1)
            return out
        if kind == "array":
            low = schema.get("minItems", 0)
            count = rng.randint(max(low, 1 if depth < 4 else low), max(low, 2))
            return [
                self._value(schema.get("items", {}), definitions, (*path, i), key, nodes, depth + 1)
                for i in range(count)
            ]
        if kind == "string":
            if schema.get("format") == "date-time":
                return f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T12:00:00Z"
            if key == "value":  # 1.6 sampled values are numbers written as strings
                return str(rng.randint(0, 100000))
            return "".join(
                rng.choice("ABCDEF0123456789")
                for _ in range(rng.randint(1, min(schema.get("maxLength", 20), 20)))
            )
        if kind == "integer":
            if key == "multiplier":  # a power of ten: kilo, mega, milli ...
                return rng.randint(-3, 3)
            small = key in ("connectorId", "evseId", "id")
            return rng.randint(0, 3) if small else rng.randint(0, 999)
        if kind == "number":
            return round(rng.uniform(0, 1000), 2)
        if kind == "boolean":
            return rng.random() < 0.5
        return rng.choice(["vendor", 7, {"nested": [1, 2]}])  # anyType

    def _steer(self, action: str, payload: dict[str, Any]) -> None:
        """Make some frames refer to each other, so that stops find their starts."""
        rng, state = self.rng, self.state
        if action == "StopTransaction" and state.v16_transactions and rng.random() < 0.8:
            payload["transactionId"] = rng.choice(state.v16_transactions)
        if action == "TransactionEvent":
            payload["transactionInfo"]["transactionId"] = f"FUZZ-{rng.randint(1, 4)}"
            state.seq_no += 1
            payload["seqNo"] = state.seq_no
            if rng.random() < 0.7:
                payload["evse"] = {"id": rng.randint(1, 2), "connectorId": 1}

    def learn(self, action: str, reply: Any) -> None:
        if (
            action == "StartTransaction"
            and isinstance(reply, list)
            and reply[0] == 3
            and isinstance(reply[2].get("transactionId"), int)
        ):
            self.state.v16_transactions.append(reply[2]["transactionId"])

    # --- hostile bends --------------------------------------------------------------------

    def frame(self) -> Frame:
        rng = self.rng
        actions = ACTIONS[self.version]
        action = rng.choices(actions, [WEIGHTS.get(a, 1) for a in actions])[0]
        payload, nodes = self.payload(action)
        self._count += 1
        message_id = f"fz{self._count}"
        what = "valid"
        raw: str | None = None
        if rng.random() < 0.85:
            what, raw = getattr(self, "_bend_" + self.family)(payload, nodes)
        if raw is None:
            raw = _dumps(payload)
        text = f'[2,"{message_id}","{action}",{raw}]'
        return Frame(action, text, what)

    def _pick(self, nodes: list[Node], want: Callable[[Node], bool]) -> Node | None:
        found = [n for n in nodes if n.path and want(n)]
        return self.rng.choice(found) if found else None

    def _bend_integers(self, payload: dict[str, Any], nodes: list[Node]) -> tuple[str, str | None]:
        # Sampled values and multipliers are readings: the readings family bends those.
        node = self._pick(
            nodes,
            lambda n: (
                n.schema.get("type") in ("integer", "number")
                and n.key not in ("value", "multiplier")
            ),
        )
        if node is None:
            return "valid", None
        value = self.rng.choice(HUGE_NUMBERS)
        if node.key in ("meterStart", "meterStop"):
            # Registers in range but absurd (2^63 - 1 Wh) are the readings family's.
            value = self.rng.choice([v for v in HUGE_NUMBERS if abs(v) > 2**63 - 1])
        _set(payload, node.path, value)
        return f"{_dotted(node.path)} = {value!r}"[:120], None

    def _bend_nesting(self, payload: dict[str, Any], nodes: list[Node]) -> tuple[str, str | None]:
        depth = self.rng.choice([20, 31, 33, 40, 253, 254, 255, 300, 1000, 1025, 1100])
        node = self._pick(nodes, lambda n: True)
        marker = "__DEEP__"
        if node is None:
            payload["deep"] = marker
            where = "deep"
        else:
            _set(payload, node.path, marker)
            where = _dotted(node.path)
        opens: list[str] = []
        closes: list[str] = []
        for _ in range(depth):
            is_list = self.rng.random() < 0.5
            opens.append("[" if is_list else '{"k":')
            closes.append("]" if is_list else "}")
        deep = "".join(opens) + "1" + "".join(reversed(closes))
        raw = _dumps(payload).replace(f'"{marker}"', deep, 1)
        return f"{where} nested {depth} deep", raw

    def _bend_types(self, payload: dict[str, Any], nodes: list[Node]) -> tuple[str, str | None]:
        rng = self.rng
        choice = rng.random()
        if choice < 0.1:
            value = rng.choice(WRONG_TYPES)
            return f"payload = {value!r}", _dumps(value)
        node = self._pick(nodes, lambda n: True)
        if node is None or choice < 0.2:
            payload[rng.choice(["extra", "connectorId", "x" * 300])] = rng.choice(WRONG_TYPES)
            return "extra property", None
        if choice < 0.35:
            _delete(payload, node.path)
            return f"{_dotted(node.path)} missing", None
        value = rng.choice(WRONG_TYPES)
        _set(payload, node.path, value)
        return f"{_dotted(node.path)} = {value!r}", None

    def _bend_strings(self, payload: dict[str, Any], nodes: list[Node]) -> tuple[str, str | None]:
        rng = self.rng
        if rng.random() < 0.25:
            node = self._pick(nodes, lambda n: n.schema.get("type") in ("integer", "number"))
            if node is not None:
                token = rng.choice(NOT_JSON_NUMBERS)
                _set(payload, node.path, "__TOKEN__")
                raw = _dumps(payload).replace('"__TOKEN__"', token, 1)
                return f"{_dotted(node.path)} = {token} (not JSON)", raw
        if rng.random() < 0.15:
            node = self._pick(nodes, lambda n: n.schema.get("type") == "string")
            if node is not None:
                _set(payload, node.path, "__TOKEN__")
                raw = _dumps(payload).replace('"__TOKEN__"', '"\\ud800x"', 1)
                return f"{_dotted(node.path)} = lone surrogate", raw
        node = self._pick(nodes, lambda n: n.schema.get("type") == "string")
        if node is None:
            return "valid", None
        value = rng.choice(ODD_STRINGS)
        _set(payload, node.path, value)
        return f"{_dotted(node.path)} = {value[:40]!r}", None

    def _bend_timestamps(
        self, payload: dict[str, Any], nodes: list[Node]
    ) -> tuple[str, str | None]:
        node = self._pick(nodes, lambda n: n.schema.get("format") == "date-time")
        if node is None:
            return "valid", None
        value = self.rng.choice(ODD_TIMESTAMPS)
        _set(payload, node.path, value)
        return f"{_dotted(node.path)} = {value!r}", None

    def _bend_readings(self, payload: dict[str, Any], nodes: list[Node]) -> tuple[str, str | None]:
        rng = self.rng
        fields = ("value", "multiplier", "meterStart", "meterStop", "signedMeterData")
        node = self._pick(nodes, lambda n: n.key in fields)
        if node is None:
            return "valid", None
        value: Any
        if node.key == "multiplier":
            value = rng.choice([400, -400, 308, -324, 2**31])
        elif node.key in ("meterStart", "meterStop"):
            value = rng.choice([-(2**63), 2**63 - 1, -1, 2**53 + 1])
        else:
            value = rng.choice(ABSURD_READINGS)
            if self.version == "2.0.1" and node.key == "value" and isinstance(value, str):
                value = rng.choice([1e308, -1e308, 2**63 - 1, -(2**63), 1e-320])
        _set(payload, node.path, value)
        return f"{_dotted(node.path)} = {value!r}"[:120], None


def _dumps(value: Any) -> str:
    """JSON text of `value`; the json module writes integers beyond 64 bits (orjson does
    not) and escapes everything outside ASCII, lone surrogates included."""
    return json.dumps(value, separators=(",", ":"))


def _set(payload: Any, path: Path_, value: Any) -> None:
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def _delete(payload: Any, path: Path_) -> None:
    target = payload
    for step in path[:-1]:
        target = target[step]
    if isinstance(target, dict):
        target.pop(path[-1], None)
    elif isinstance(target, list) and len(target) > 0:
        target.pop()


def _dotted(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
