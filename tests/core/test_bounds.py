"""Bounds on client input (csms.core.bounds): JSON depth without recursion, integer ranges,
numbers given as text, date-times past what a datetime holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.core.bounds import (
    INT32_MAX,
    MAX_JSON_DEPTH,
    OutOfBounds,
    bounded_int,
    bounded_int_text,
    bounded_number,
    bounded_time,
    check_json_depth,
    json_depth,
)
from csms.core.errors import InvalidInput


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_json_depth_counts_levels() -> None:
    assert [json_depth(v) for v in ("x", 1, None, [], {}, [1, 2], {"a": [1]})] == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
    ]
    assert json_depth({"a": 1, "b": {"c": {"d": []}}, "e": []}) == 4
    assert json_depth(nested(MAX_JSON_DEPTH)) == MAX_JSON_DEPTH


def test_json_depth_stops_early_and_never_recurses() -> None:
    # Far past Python's recursion limit: counted only until it is known to be too deep.
    assert json_depth(nested(100_000), limit=32) == 33
    with pytest.raises(OutOfBounds, match="the body nests deeper than 32 levels"):
        check_json_depth(nested(1000))
    check_json_depth(nested(MAX_JSON_DEPTH))
    assert issubclass(OutOfBounds, InvalidInput)


def test_integers() -> None:
    assert bounded_int(INT32_MAX, "evse") == INT32_MAX
    with pytest.raises(OutOfBounds, match=r"transaction must be between 1 and 2147483647, not "):
        bounded_int(2**63, "transaction", 1)
    assert bounded_int_text(" 42 ", "limit") == 42
    assert bounded_int_text("-3", "x", minimum=-5) == -3
    for bad in ("", "1.5", "ten", "٣", "1" * 21, "--1", "0x10"):
        with pytest.raises(OutOfBounds, match="limit must be an integer"):
            bounded_int_text(bad, "limit")
    with pytest.raises(OutOfBounds, match="between 1 and 10000"):
        bounded_int_text("9223372036854775808", "limit", 1, 10_000)


def test_numbers() -> None:
    assert bounded_number("2.5", "timeout", minimum=0, maximum=600, exclusive_minimum=True) == 2.5
    for bad in ("0", "-1", "nan", "inf", "601", "1e999"):
        with pytest.raises(OutOfBounds, match=r"timeout must be a number > 0 and <= 600"):
            bounded_number(bad, "timeout", minimum=0, maximum=600, exclusive_minimum=True)
    with pytest.raises(OutOfBounds, match="timeout must be a number, not 'soon'"):
        bounded_number("soon", "timeout", minimum=0, maximum=600)


def test_times() -> None:
    assert bounded_time("2026-03-01T10:00:00+01:00", "retrieve") == datetime(
        2026, 3, 1, 9, tzinfo=UTC
    )
    assert bounded_time("9999-12-31T23:59:59Z", "retrieve").year == 9999
    for bad in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "tomorrow", ""):
        with pytest.raises(OutOfBounds, match="retrieve is not an ISO 8601 date/time between"):
            bounded_time(bad, "retrieve")
