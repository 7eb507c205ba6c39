"""Query parameters of the read endpoints: each checked and named when refused; cursors
that round-trip and cannot be forged across listings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import MultiDict

from csms.api.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    BadParameter,
    Query,
    decode_cursor,
    encode_cursor,
)


def query(*pairs: tuple[str, str]) -> Query:
    return Query(MultiDict(pairs))


def refused(q: Query, read: str, *args: object) -> BadParameter:
    with pytest.raises(BadParameter) as caught:
        getattr(q, read)(*args)
    return caught.value


def test_values_are_parsed_and_canonical() -> None:
    q = query(("state", "ACTIVE"), ("connected", "false"), ("since", "2026-01-31"))
    assert q.choice("state", ["active", "completed"]) == "active"
    assert q.boolean("connected") is False
    assert q.time("since") == datetime(2026, 1, 31, tzinfo=UTC)
    assert q.text("charger") is None and q.limit() == DEFAULT_LIMIT
    q.finish()
    assert query(("limit", str(MAX_LIMIT))).limit() == MAX_LIMIT
    assert query(("since", "2026-01-31T10:00:00+02:00")).time("since") == datetime(
        2026, 1, 31, 8, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("pairs", "read", "args", "text"),
    [
        ((("limit", "0"),), "limit", (), "between 1 and 1000, not 0"),
        ((("limit", "1001"),), "limit", (), "between 1 and 1000, not 1001"),
        ((("limit", "1e3"),), "limit", (), "must be an integer"),
        ((("state", "x"),), "choice", ("state", ["active"]), "must be one of active, not 'x'"),
        ((("on", "maybe"),), "boolean", ("on",), "must be true or false"),
        ((("since", "31/01/2026"),), "time", ("since",), "not an ISO 8601 date/time"),
        ((("since", "9999-12-31T23:59:59-05:00"),), "time", ("since",), "ISO 8601"),
        ((("a", "1"), ("a", "2")), "text", ("a",), "given 2 times"),
        ((("a", "  "),), "text", ("a",), "empty"),
        ((("a", "x" * 300),), "text", ("a",), "longer than 255"),
    ],
)
def test_bad_values_name_the_parameter(
    pairs: tuple[tuple[str, str], ...], read: str, args: tuple[object, ...], text: str
) -> None:
    error = refused(query(*pairs), read, *args)
    assert text in error.message and error.name == pairs[0][0]


def test_window_and_unknown_names() -> None:
    q = query(("since", "2026-02-01"), ("until", "2026-02-01"))
    assert refused(q, "window").name == "until"
    q = query(("charger", "CP1"), ("chager", "CP1"))
    q.text("charger")
    error = refused(q, "finish")
    assert error.name == "chager" and "takes charger" in error.message
    error = refused(query(("x", "1")), "finish")
    assert "takes no parameters" in error.message


def test_cursors_round_trip_and_stay_in_their_listing() -> None:
    cursor = encode_cursor("transactions", 41)
    assert "=" not in cursor and decode_cursor(cursor, "transactions") == 41
    assert query(("cursor", cursor)).cursor("transactions", int) == 41
    assert query(("cursor", encode_cursor("tokens", "CARD/1"))).cursor("tokens", str) == "CARD/1"
    for bad in (cursor, "bm9wZQ", "%%%", encode_cursor("transactions", "41")):
        error = refused(query(("cursor", bad)), "cursor", "chargers", str)
        assert error.name == "cursor" and "next_cursor" in error.message
