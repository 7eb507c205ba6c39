"""Envelope and OCPI DateTime, without HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ocpi_cpo.envelope import Status, envelope, format_datetime, is_success, parse_datetime

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_datetimes_are_utc_with_milliseconds_and_z() -> None:
    cest = timezone(timedelta(hours=2))
    moment = datetime(2026, 6, 1, 14, 30, 5, 123_999, tzinfo=cest)
    assert format_datetime(moment) == "2026-06-01T12:30:05.123Z"
    assert format_datetime(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert DATETIME.match(format_datetime(datetime.now(UTC)))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-06-29T20:39:09Z", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2015-06-29T20:39:09", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2016-12-29T17:45:09.2Z", datetime(2016, 12, 29, 17, 45, 9, 200_000, tzinfo=UTC)),
        ("2016-12-29T17:45:09.2", datetime(2016, 12, 29, 17, 45, 9, 200_000, tzinfo=UTC)),
        ("2018-01-01T01:08:01.123Z", datetime(2018, 1, 1, 1, 8, 1, 123_000, tzinfo=UTC)),
        ("2018-01-01T01:08:01.123456789Z", datetime(2018, 1, 1, 1, 8, 1, 123_456, tzinfo=UTC)),
        ("2018-01-01T02:08:01+01:00", datetime(2018, 1, 1, 1, 8, 1, tzinfo=UTC)),
    ],
)
def test_every_form_of_the_spec_parses_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2015-06-29", "2015-06-29 20:39:09Z", "yesterday", "", "2015-13-01T00:00:00Z"]
)
def test_other_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_round_trip() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    assert parse_datetime(format_datetime(moment)) == moment


def test_envelope_fields() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC)
    assert envelope([1], now) == {
        "data": [1],
        "status_code": 1000,
        "status_message": "Success",
        "timestamp": "2026-01-02T03:04:05.006Z",
    }
    # An error carries no data; the message is ours or a default per code.
    assert envelope(None, now, Status.INVALID_PARAMETERS, "limit: bad") == {
        "status_code": 2001,
        "status_message": "limit: bad",
        "timestamp": "2026-01-02T03:04:05.006Z",
    }
    assert envelope(None, now, Status.UNSUPPORTED_VERSION)["status_message"] == (
        "Unsupported version"
    )
    # Empty lists and objects are data, not absence of it.
    assert envelope([], now)["data"] == []
    assert envelope({}, now)["data"] == {}


def test_success_range() -> None:
    assert is_success(1000) and is_success(1901)
    assert not is_success(2000) and not is_success(3001) and not is_success(999)
