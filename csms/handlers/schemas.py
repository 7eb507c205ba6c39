"""Payload validation against the JSON schemas shipped with the `ocpp` package.

Schemas are compiled once per action with jsonschema-rs (a Rust validator: ~3 us for a
2.0.1 TransactionEvent, against ~45 us with fastjsonschema and ~1.3 ms with the `ocpp`
library's jsonschema path); a relaxed copy serves chargers in lenient mode. Both carry the
bounds the shipped schemas leave out (`bound`): every integer fits a signed 64-bit column
and EVSE and connector numbers stay at most MAX_EVSE_ID, so those checks cost nothing
in Python.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp
import orjson

from csms.core.charger import INT_MAX, INT_MIN, MAX_EVSE_ID
from csms.core.clock import out_of_range
from csms.handlers.rpc import ErrorKind, OcppCallError

Validator = Callable[[Any], None]

_SCHEMA_ROOT = Path(ocpp.__file__).parent

# Enum-valued fields that real chargers bend; lenient mode accepts other values there and
# the adapters normalise them. Status fields keep their enums: they drive state.
_BENDABLE_ENUMS = frozenset(
    {
        "errorCode",
        "unit",
        "measurand",
        "phase",
        "location",
        "context",
        "reason",
        "format",
        "stoppedReason",
        "triggerReason",
        "chargingState",
    }
)

_RULE_KIND = {
    "type": ErrorKind.TYPE,
    "maxLength": ErrorKind.TYPE,
    "minLength": ErrorKind.TYPE,
    "required": ErrorKind.OCCURRENCE,
    "minItems": ErrorKind.OCCURRENCE,
    "maxItems": ErrorKind.OCCURRENCE,
    "uniqueItems": ErrorKind.OCCURRENCE,
    "additionalProperties": ErrorKind.FORMAT,
    "enum": ErrorKind.PROPERTY,
    "format": ErrorKind.PROPERTY,
    "minimum": ErrorKind.PROPERTY,
    "maximum": ErrorKind.PROPERTY,
    "multipleOf": ErrorKind.PROPERTY,
    "pattern": ErrorKind.PROPERTY,
}


# RFC 3339 date-times as jsonschema-rs checks them.
_RFC3339 = jsonschema_rs.validator_for(
    {"type": "string", "format": "date-time"}, validate_formats=True
).is_valid


def _date_time(text: str) -> bool:
    """An RFC 3339 date-time whose instant exists in UTC: 9999-12-31T23:59:59-05:00 is
    well-formed but lies after the last instant a datetime (or a database) holds."""
    return _RFC3339(text) and not out_of_range(text)


# Every `format: date-time` field of every action, in both versions, goes through this.
_FORMATS = {"date-time": _date_time}


@dataclass(frozen=True, slots=True)
class Deviation:
    """A schema rule a payload broke but lenient mode let through."""

    rule: str
    path: str
    message: str


# Fields that number EVSEs and connectors (1.6 connectorId is an EVSE number here; 2.0.1
# EVSEType.id in TransactionEvent, NotifyReport components and commands).
_EVSE_FIELDS = frozenset({"connectorId", "evseId"})
_EVSE_TYPES = frozenset({"EVSEType"})


def bound(schema: Any, key: str | None = None, definition: str | None = None) -> Any:
    """A copy of `schema` whose integers carry the limits of a signed 64-bit column (larger
    ones fail when bound to SQLite) and whose EVSE and connector numbers are at most
    MAX_EVSE_ID. Floats with no fraction pass as integers in JSON Schema: 1e300 is
    refused as well."""
    if isinstance(schema, list):
        return [bound(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name == "properties" and isinstance(value, dict):
            out[name] = {
                prop: bound(sub, "evseId" if (definition in _EVSE_TYPES and prop == "id") else prop)
                for prop, sub in value.items()
            }
        elif name == "definitions" and isinstance(value, dict):
            out[name] = {d: bound(sub, None, d) for d, sub in value.items()}
        else:
            out[name] = bound(value)
    kind = out.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        highest = MAX_EVSE_ID if key in _EVSE_FIELDS else INT_MAX
        out["minimum"] = max(out.get("minimum", INT_MIN), INT_MIN)
        out["maximum"] = min(out.get("maximum", highest), highest)
    return out


def relax(schema: Any, key: str | None = None) -> Any:
    """A copy of `schema` without the constraints that lenient mode forgives."""
    if isinstance(schema, list):
        return [relax(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name in ("maxLength", "multipleOf", "format"):
            continue
        if name == "additionalProperties" and value is False:
            continue
        if name == "enum" and key in _BENDABLE_ENUMS:
            continue
        if name == "properties" and isinstance(value, dict):
            out[name] = {prop: relax(sub, prop) for prop, sub in value.items()}
        elif name == "definitions" and isinstance(value, dict):
            out[name] = {d: relax(sub, _field_name(d)) for d, sub in value.items()}
        else:
            out[name] = relax(value, key)
    return out


def _field_name(definition: str) -> str:
    """'MeasurandEnumType' -> 'measurand': the field a 2.0.1 enum definition serves."""
    base = definition.removesuffix("EnumType")
    return base[:1].lower() + base[1:]


class SchemaSet:
    """Validators for one OCPP version, compiled on first use per action."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._dir = _SCHEMA_ROOT / ("v" + version.replace(".", "")) / "schemas"
        self._suffix = "Request" if version != "1.6" else ""
        self._strict: dict[str, Validator | None] = {}
        self._lenient: dict[str, Validator | None] = {}

    def has(self, action: str) -> bool:
        return (self._dir / f"{action}{self._suffix}.json").is_file()

    def _load(self, name: str) -> Any:
        path = self._dir / f"{name}.json"
        if not path.is_file():
            return None
        return orjson.loads(path.read_bytes().decode("utf-8-sig"))

    def _compiled(
        self, cache: dict[str, Validator | None], name: str, lenient: bool
    ) -> Validator | None:
        if name not in cache:
            schema = self._load(name)
            if schema is None:
                cache[name] = None
            else:
                schema.pop("$schema", None)
                schema.pop("$id", None)
                schema = bound(schema)
                if lenient:
                    schema = relax(copy.deepcopy(schema))
                cache[name] = jsonschema_rs.validator_for(
                    schema, validate_formats=True, formats=_FORMATS
                ).validate
        return cache[name]

    def request_validator(self, action: str, *, lenient: bool = False) -> Validator | None:
        name = f"{action}{self._suffix}"
        return self._compiled(self._lenient if lenient else self._strict, name, lenient)

    def response_validator(self, action: str) -> Validator | None:
        return self._compiled(self._strict, f"{action}Response", False)

    def check_request(
        self, action: str, payload: dict[str, Any], *, lenient: bool
    ) -> Deviation | None:
        """Validate a charger's request. Returns the first forgiven deviation in lenient mode;
        raises OcppCallError when the payload is not acceptable."""
        strict = self.request_validator(action)
        if strict is None:
            return None
        try:
            strict(payload)
            return None
        except jsonschema_rs.ValidationError as exc:
            if not lenient:
                raise schema_error(exc) from None
            deviation = Deviation(_rule(exc), _path(exc), str(exc.message))
        relaxed = self.request_validator(action, lenient=True)
        assert relaxed is not None
        try:
            relaxed(payload)
        except jsonschema_rs.ValidationError as exc:
            raise schema_error(exc) from None
        return deviation


def _rule(exc: jsonschema_rs.ValidationError) -> str:
    """The schema keyword that failed (the last element of the schema path)."""
    path = list(exc.schema_path)
    return str(path[-1]) if path else "type"


def _path(exc: jsonschema_rs.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.instance_path]
    return "".join(parts).lstrip(".") or "(payload)"


def schema_error(exc: jsonschema_rs.ValidationError) -> OcppCallError:
    rule, field = _rule(exc), _path(exc)
    kind = _RULE_KIND.get(rule, ErrorKind.FORMAT)
    text = str(exc.message)
    instance = getattr(exc, "instance", None)
    if rule == "format" and isinstance(instance, str) and out_of_range(instance):
        text = f"{instance[:64]!r} is outside the years 1 to 9999 once converted to UTC"
    elif len(text) > 160:  # the offending value is quoted first: 1e300 has 300 digits
        text = text[:60] + " ... " + text[-80:]
    message = text if field == "(payload)" else f"{field}: {text}"
    return OcppCallError(kind, message, {"field": field, "rule": rule})
