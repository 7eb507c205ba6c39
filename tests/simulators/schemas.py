"""Validation of payloads against the OCPP 2.0.1 JSON schemas shipped with the `ocpp` package."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp

SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"


@cache
def _validator(name: str) -> Any:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_request(action: str, payload: Any) -> None:
    """Raise `jsonschema.ValidationError` unless `payload` is a valid `action` request."""
    _validator(f"{action}Request").validate(payload)


def check_response(action: str, payload: Any) -> None:
    _validator(f"{action}Response").validate(payload)
