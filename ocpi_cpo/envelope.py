"""The OCPI response envelope, status codes and the DateTime format.

Pure functions and values; nothing here touches HTTP or the clock (callers pass `now`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    """OCPI status codes (status_codes chapter of 2.2.1)."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    CLIENT_API_UNUSABLE = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


_MESSAGES = {
    Status.SUCCESS: "Success",
    Status.CLIENT_ERROR: "Client error",
    Status.INVALID_PARAMETERS: "Invalid or missing parameters",
    Status.NOT_ENOUGH_INFORMATION: "Not enough information",
    Status.UNKNOWN_LOCATION: "Unknown location",
    Status.UNKNOWN_TOKEN: "Unknown token",
    Status.SERVER_ERROR: "Server error",
    Status.CLIENT_API_UNUSABLE: "Unable to use the client's API",
    Status.UNSUPPORTED_VERSION: "Unsupported version",
    Status.NO_MATCHING_ENDPOINTS: "No matching endpoints",
}


def default_message(status_code: int) -> str:
    try:
        return _MESSAGES[Status(status_code)]
    except ValueError:
        return "Success" if is_success(status_code) else "Error"


def is_success(status_code: int) -> bool:
    """1000 and the custom success range 1900-1999."""
    return 1000 <= status_code <= 1999


def format_datetime(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.fffZ` in UTC (milliseconds, truncated). Naive values are refused:
    a wrong zone would be silently shifted by hours."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to format_datetime")
    utc = moment.astimezone(UTC)
    year = f"{utc.year:04d}"  # %Y has no leading zeros before the year 1000
    return year + utc.strftime("-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:\d{2})?$"
)


def parse_datetime(text: str) -> datetime:
    """An OCPI DateTime: RFC 3339 with `Z` or no designator (both UTC); an explicit offset
    is converted. Raises ValueError for anything else (dates alone, spaces, junk)."""
    m = _DATETIME.match(text)
    if m is None:
        raise ValueError(f"not an OCPI DateTime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz: timezone = UTC
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
    )
    return moment.astimezone(UTC)


def envelope(
    data: Any,
    now: datetime,
    status_code: int = Status.SUCCESS,
    status_message: str | None = None,
) -> dict[str, Any]:
    """The response body every OCPI answer carries. `data` is left out when it is None
    (the 2.2.1 errata advise omitting it where the spec defines none); `status_message`
    is always there (a default text per code)."""
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = int(status_code)
    body["status_message"] = status_message or default_message(status_code)
    body["timestamp"] = format_datetime(now)
    return body
