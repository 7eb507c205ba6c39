"""Pagination of OCPI list endpoints: reading `offset`, `limit`, `date_from`, `date_to` and
writing `X-Total-Count`, `X-Limit` and the `Link` to the next page.

Pure functions over the query's key/value pairs; the aiohttp glue is in ocpi_cpo.transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from ocpi_cpo.envelope import parse_datetime
from ocpi_cpo.errors import PageError as PageError

PAGING_KEYS = frozenset({"offset", "limit"})


@dataclass(frozen=True, slots=True)
class Page:
    """One page asked for: `limit` is already capped at `max_limit` (ours); `date_from` is
    inclusive and `date_to` exclusive, both on `last_updated`."""

    offset: int
    limit: int
    max_limit: int
    date_from: datetime | None = None
    date_to: datetime | None = None

    def matches(self, last_updated: datetime) -> bool:
        """Whether an object updated at `last_updated` is within the date filters."""
        if self.date_from is not None and last_updated < self.date_from:
            return False
        return not (self.date_to is not None and last_updated >= self.date_to)


def _int(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key)
    if text is None or text.strip() == "":
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise PageError(f"{key} must be a whole number, not {text!r}") from None
    if value < 0:
        raise PageError(f"{key} must not be negative, not {value}")
    return value


def _time(query: Mapping[str, str], key: str) -> datetime | None:
    text = query.get(key)
    if text is None or text.strip() == "":
        return None
    try:
        return parse_datetime(text.strip())
    except ValueError:
        raise PageError(
            f"{key} must be an OCPI DateTime (2019-06-01T12:00:00Z), not {text!r}"
        ) from None


def parse_page(query: Mapping[str, str], max_limit: int) -> Page:
    """The page a request asks for. No `limit` (or one above `max_limit`) means `max_limit`;
    `limit=0` is allowed (a count: X-Total-Count and no objects)."""
    offset = _int(query, "offset") or 0
    limit = _int(query, "limit")
    limit = max_limit if limit is None else min(limit, max_limit)
    return Page(offset, limit, max_limit, _time(query, "date_from"), _time(query, "date_to"))


def next_page_url(
    url: str, query: Iterable[tuple[str, str]], page: Page, returned: int, total: int
) -> str | None:
    """The absolute URL of the next page, keeping every parameter of the caller but
    `offset`/`limit` (in their order), or None when this page is the last one.

    `url` is the list endpoint's absolute URL (from ocpi.base_url), without a query."""
    next_offset = page.offset + returned
    if returned <= 0 or next_offset >= total:
        return None
    params = [("offset", str(next_offset)), ("limit", str(page.limit))]
    params += [(k, v) for k, v in query if k not in PAGING_KEYS]
    return f"{url}?{urlencode(params, safe=':')}"


def page_headers(
    url: str, query: Iterable[tuple[str, str]], page: Page, returned: int, total: int
) -> dict[str, str]:
    """The response headers of one page: X-Total-Count (objects matching the filters, all
    pages), X-Limit (our maximum page size) and Link unless it is the last page."""
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.max_limit)}
    link = next_page_url(url, query, page, returned, total)
    if link is not None:
        headers["Link"] = f'<{link}>; rel="next"'
    return headers
