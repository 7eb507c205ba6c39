"""Field checks shared by the OCPI objects partners and staff hand us (tariffs, tokens):
strings and CiStrings of a bounded length, required fields, and the error naming the field
that is wrong.

Pure functions; each object's own parser composes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from csms.core.errors import FieldError as FieldError

_T = TypeVar("_T")

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def required(obj: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], _T]) -> _T:
    value = obj.get(key)
    if value is None:
        raise FieldError(at(path, key), "is required")
    return parse(value, at(path, key))


def string(value: object, path: str, max_length: int) -> str:
    """A non-empty string of at most `max_length` characters, without control characters."""
    if not isinstance(value, str):
        raise FieldError(path, "must be a string")
    if not value:
        raise FieldError(path, "must not be empty")
    if len(value) > max_length:
        raise FieldError(path, f"must be at most {max_length} characters")
    if _CONTROL.search(value):
        raise FieldError(path, "must not contain control characters")
    return value


def cistring(max_length: int) -> Callable[[object, str], str]:
    """A parser of OCPI CiString(max_length): printable ASCII."""

    def parse(value: object, path: str) -> str:
        text = string(value, path, max_length)
        if not _PRINTABLE_ASCII.fullmatch(text):
            raise FieldError(path, "must be printable ASCII")
        return text

    return parse
