"""Validation of payloads against the OCPP 1.6 and 2.0.1 JSON schemas shipped with `ocpp`."""

from __future__ import annotations

import decimal
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp

SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"
SCHEMAS_16 = Path(ocpp.__file__).parent / "v16" / "schemas"


@cache
def _validator(name: str, version: str = "2.0.1") -> Any:
    """1.6 numbers are read as Decimal, so that `multipleOf: 0.1` judges 7.3 as the wire
    shows it (the `ocpp` library does the same)."""
    if version == "1.6":
        text = (SCHEMAS_16 / f"{name}.json").read_text(encoding="utf-8")
        schema = json.loads(text, parse_float=decimal.Decimal)
    else:
        schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_request(action: str, payload: Any, version: str = "2.0.1") -> None:
    """Raise `jsonschema.ValidationError` unless `payload` is a valid `action` request."""
    if version == "1.6":
        _validator(action, version).validate(_decimals(payload))
    else:
        _validator(f"{action}Request").validate(payload)


def check_response(action: str, payload: Any, version: str = "2.0.1") -> None:
    if version == "1.6":
        _validator(f"{action}Response", version).validate(_decimals(payload))
    else:
        _validator(f"{action}Response").validate(payload)


def _decimals(payload: Any) -> Any:
    return json.loads(json.dumps(payload), parse_float=decimal.Decimal)
