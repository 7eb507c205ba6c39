"""Query parameters of the operator API's read endpoints: each read once, checked, and
refused with a message naming it (unknown names too); page cursors.

Parsing only: what a filter means is csms.services.reads' business.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from multidict import MultiMapping

from csms.core.clock import parse_timestamp
from csms.core.errors import InvalidTimestamp

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class BadParameter(Exception):
    """A query parameter the endpoint cannot take; the message says which and why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class Query:
    """The query string of one request. Read each parameter through a method; `finish`
    then refuses any name no method asked for (a misspelt filter must not be ignored)."""

    def __init__(self, query: MultiMapping[str]) -> None:
        self._query = query
        self._known: list[str] = []

    def text(self, name: str, *, most: int = 255) -> str | None:
        self._known.append(name)
        values = self._query.getall(name, [])
        if not values:
            return None
        if len(values) > 1:
            raise BadParameter(name, f"{name}: given {len(values)} times; give it once")
        value = values[0].strip()
        if not value:
            raise BadParameter(name, f"{name}: empty; leave it out to not filter on it")
        if len(value) > most:
            raise BadParameter(name, f"{name}: longer than {most} characters")
        return value

    def choice(self, name: str, choices: Iterable[str]) -> str | None:
        """One of `choices`, in any case; returned as `choices` spell it."""
        value = self.text(name)
        if value is None:
            return None
        options = list(choices)
        for option in options:
            if option.lower() == value.lower():
                return option
        raise BadParameter(name, f"{name}: must be one of {', '.join(options)}, not {value!r}")

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise BadParameter(name, f"{name}: must be true or false, not {value!r}")

    def time(self, name: str) -> datetime | None:
        """ISO 8601; without an offset it is UTC, a date alone is midnight UTC."""
        value = self.text(name, most=64)
        if value is None:
            return None
        try:
            return parse_timestamp(value)
        except InvalidTimestamp:
            raise BadParameter(
                name,
                f"{name}: not an ISO 8601 date/time: {value!r} "
                "(e.g. 2026-01-31 or 2026-01-31T08:00:00Z)",
            ) from None

    def window(self) -> tuple[datetime | None, datetime | None]:
        """`since` (inclusive) and `until` (exclusive); `until` must come after `since`."""
        since, until = self.time("since"), self.time("until")
        if since is not None and until is not None and until <= since:
            raise BadParameter("until", "until: must be after since")
        return since, until

    def limit(self) -> int:
        value = self.text("limit", most=16)
        if value is None:
            return DEFAULT_LIMIT
        try:
            limit = int(value)
        except ValueError:
            raise BadParameter("limit", f"limit: must be an integer, not {value!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BadParameter("limit", f"limit: must be between 1 and {MAX_LIMIT}, not {limit}")
        return limit

    def cursor(self, listing: str, key: type[int] | type[str]) -> Any:
        """Where the previous page of `listing` ended (None: the first page)."""
        value = self.text("cursor", most=1024)
        if value is None:
            return None
        found = decode_cursor(value, listing)
        if type(found) is not key:
            raise BadParameter("cursor", _CURSOR_HINT)
        return found

    def finish(self) -> None:
        """Refuse the parameters no method read."""
        for name in self._query:
            if name not in self._known:
                known = ", ".join(dict.fromkeys(self._known))
                takes = f"takes {known}" if known else "takes no parameters"
                raise BadParameter(name, f"unknown parameter {name!r}; this endpoint {takes}")


_CURSOR_HINT = "cursor: not one this listing gave; pass next_cursor of the previous page as is"


def encode_cursor(listing: str, key: int | str) -> str:
    """An opaque cursor: the listing it belongs to and the key of the last item shown."""
    raw = orjson.dumps([listing, key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(value: str, listing: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        decoded = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise BadParameter("cursor", _CURSOR_HINT) from None
    if not (isinstance(decoded, list) and len(decoded) == 2 and decoded[0] == listing):
        raise BadParameter("cursor", _CURSOR_HINT)
    return decoded[1]


def page_body(
    items: list[Any], total: int, limit: int, next_cursor: str | None, next_url: str | None
) -> Mapping[str, Any]:
    """The envelope of every listing."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "next_cursor": next_cursor,
        "next": next_url,
    }
