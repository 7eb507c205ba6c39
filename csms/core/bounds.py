"""Bounds on values a client sends (operator API, OCPI, OCPP): integer ranges, JSON nesting
depth, date-times a datetime can hold, text a database can store. Each check raises
OutOfBounds with a one-line message.

Pure functions; turning OutOfBounds into an HTTP 400, an OCPI 2001 or a refused command is
the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from csms.core.clock import parse_timestamp
from csms.core.errors import InvalidTimestamp
from csms.core.errors import OutOfBounds as OutOfBounds

# OCPP integers (connector, EVSE, reservation, profile and 1.6 transaction ids, seconds) are
# 32-bit on the wire; our transaction ids go on the wire as 1.6 transactionIds.
INT32_MAX = 2**31 - 1
# Deepest JSON a client may send: OCPI objects nest about six levels (tariff > elements >
# price components), command parameters two; anything near the parsers' and encoders'
# recursion limits (orjson: 254 to encode) is refused before it is stored.
MAX_JSON_DEPTH = 32


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep `value` (parsed JSON) nests: 0 for a scalar, 1 for a flat list or object.
    Counts no further than limit + 1 (enough to tell it is too deep), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def check_json_depth(value: Any, what: str = "the body", limit: int = MAX_JSON_DEPTH) -> None:
    if json_depth(value, limit) > limit:
        raise OutOfBounds(f"{what} nests deeper than {limit} levels")


# JSON writes U+0000 only as this escape (a raw NUL is not valid JSON text).
_NUL_ESCAPE = "\\u0000"
_NUL_ESCAPE_BYTES = _NUL_ESCAPE.encode()


def holds_nul(raw: str | bytes, value: Any) -> bool:
    """Whether parsed JSON `value` (parsed from `raw`) has U+0000 in a string or a key.
    PostgreSQL's text cannot store it (SQLite can): refused at every edge, so that both
    databases answer alike. Only a body whose text holds the escape is walked (one scan in
    C for everything else); the walk goes without recursion."""
    if isinstance(raw, bytes):
        if _NUL_ESCAPE_BYTES not in raw:
            return False
    elif _NUL_ESCAPE not in raw:
        return False
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_no_nul(raw: str | bytes, value: Any, what: str = "the body") -> None:
    if holds_nul(raw, value):
        raise OutOfBounds(f"{what} holds the character U+0000 (NUL), which no text may hold")


def check_url_no_nul(path: str, query: Iterable[tuple[str, str]]) -> None:
    """A request's decoded path and query parameters hold no U+0000 (`%00`): they become
    look-up keys, which PostgreSQL's text cannot hold."""
    if "\x00" in path or any("\x00" in k or "\x00" in v for k, v in query):
        raise OutOfBounds("the URL holds the character U+0000 (%00), which no text may hold")


def bounded_int(value: int, what: str, minimum: int = 0, maximum: int = INT32_MAX) -> int:
    """`value` when minimum <= value <= maximum."""
    if not minimum <= value <= maximum:
        raise OutOfBounds(f"{what} must be between {minimum} and {maximum}, not {value}")
    return value


def bounded_number(
    text: str, what: str, *, minimum: float, maximum: float, exclusive_minimum: bool = False
) -> float:
    """A decimal number given as text (a query parameter), finite and in range."""
    try:
        number = float(text)
    except ValueError:
        raise OutOfBounds(f"{what} must be a number, not {text[:40]!r}") from None
    low_ok = number > minimum if exclusive_minimum else number >= minimum
    if not (low_ok and number <= maximum):  # also false for nan
        low = f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}"
        raise OutOfBounds(f"{what} must be a number {low} and <= {maximum:g}, not {text[:40]!r}")
    return number


def bounded_int_text(text: str, what: str, minimum: int = 0, maximum: int = INT32_MAX) -> int:
    """An integer given as text (a query or command parameter), in range."""
    stripped = text.strip()
    digits = stripped[1:] if stripped[:1] in "+-" else stripped
    # int() of a long digit string costs time quadratic in its length: refuse it first.
    if not digits.isdigit() or not digits.isascii() or len(digits) > 20:
        raise OutOfBounds(f"{what} must be an integer, not {text[:40]!r}")
    return bounded_int(int(stripped), what, minimum, maximum)


def bounded_time(text: str, what: str) -> datetime:
    """An ISO 8601 / RFC 3339 date-time (UTC when it names no zone) that a datetime can hold
    in UTC: `9999-12-31T23:59:59-05:00` is past the last representable moment."""
    try:
        return parse_timestamp(text)
    except InvalidTimestamp:
        raise OutOfBounds(
            f"{what} is not an ISO 8601 date/time between the years 1 and 9999 (UTC): {text[:64]!r}"
        ) from None
