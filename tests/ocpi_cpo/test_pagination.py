"""Pagination helpers: parameters in, headers out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ocpi_cpo.pagination import Page, PageError, next_page_url, page_headers, parse_page

URL = "https://cpo.example.com/ocpi/2.2.1/cdrs"


def test_defaults_and_the_cap() -> None:
    assert parse_page({}, 100) == Page(0, 100, 100)
    assert parse_page({"limit": "2000"}, 100).limit == 100
    assert parse_page({"limit": "10", "offset": "30"}, 100) == Page(30, 10, 100)
    assert parse_page({"limit": "0"}, 100).limit == 0
    assert parse_page({"limit": " ", "offset": ""}, 50) == Page(0, 50, 50)


def test_dates_are_ocpi_datetimes() -> None:
    page = parse_page(
        {"date_from": "2026-01-01T00:00:00Z", "date_to": "2026-02-01T00:00:00.5"}, 100
    )
    assert page.date_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert page.date_to == datetime(2026, 2, 1, 0, 0, 0, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"offset": "-1"}, "offset must not be negative"),
        ({"limit": "1.5"}, "limit must be a whole number"),
        ({"date_from": "2026-01-01"}, "date_from must be an OCPI DateTime"),
        ({"date_to": "soon"}, "date_to must be an OCPI DateTime"),
    ],
)
def test_bad_parameters_name_themselves(query: dict[str, str], message: str) -> None:
    with pytest.raises(PageError, match=message):
        parse_page(query, 100)


def test_date_from_inclusive_date_to_exclusive() -> None:
    jan, feb = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    page = Page(0, 10, 10, jan, feb)
    assert page.matches(jan)
    assert not page.matches(feb)
    assert page.matches(datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC))
    assert not page.matches(datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
    assert Page(0, 10, 10).matches(jan)


def test_link_keeps_filters_and_is_absolute() -> None:
    query = [
        ("date_from", "2016-01-01T00:00:00Z"),
        ("limit", "2000"),
        ("date_to", "2016-12-31T23:59:59Z"),
    ]
    page = parse_page(dict(query), 100)
    headers = page_headers(URL, query, page, returned=100, total=250)
    assert headers == {
        "X-Total-Count": "250",
        "X-Limit": "100",
        "Link": (
            f"<{URL}?offset=100&limit=100&date_from=2016-01-01T00:00:00Z"
            '&date_to=2016-12-31T23:59:59Z>; rel="next"'
        ),
    }


def test_following_links_visits_every_object_once() -> None:
    objects = list(range(7))
    query: list[tuple[str, str]] = [("limit", "3")]
    seen: list[int] = []
    pages = 0
    while True:
        page = parse_page(dict(query), 100)
        chunk = objects[page.offset : page.offset + page.limit]
        seen += chunk
        pages += 1
        link = next_page_url(URL, query, page, len(chunk), len(objects))
        if link is None:
            break
        params = link.split("?", 1)[1]
        query = [tuple(p.split("=", 1)) for p in params.split("&")]  # type: ignore[misc]
    assert seen == objects and pages == 3


def test_no_link_on_the_last_page_or_an_empty_one() -> None:
    page = Page(200, 100, 100)
    assert "Link" not in page_headers(URL, [], page, returned=50, total=250)
    assert "Link" not in page_headers(URL, [], Page(0, 100, 100), returned=0, total=0)
    # limit=0 counts without paging on.
    assert page_headers(URL, [], Page(0, 0, 100), returned=0, total=5) == {
        "X-Total-Count": "5",
        "X-Limit": "100",
    }
    # Exactly full last page.
    assert next_page_url(URL, [], Page(0, 5, 100), returned=5, total=5) is None


def test_other_parameters_are_encoded() -> None:
    link = next_page_url(URL, [("date_from", "2026-01-01T00:00:00+01:00")], Page(0, 1, 1), 1, 2)
    assert link == f"{URL}?offset=1&limit=1&date_from=2026-01-01T00:00:00%2B01:00"
