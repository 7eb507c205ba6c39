"""Time for the simulators: the injectable clock type and the OCPP wire form of timestamps.

Nothing here sleeps, keeps state or produces naive datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "parse_wire_time", "utc_now", "wire_time"]

#: Returns the current time, timezone-aware; tests pass a fake one.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def wire_time(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a `Z`, as chargers send it."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_wire_time(text: object) -> datetime | None:
    """An OCPP timestamp as received (ISO 8601, `Z` or an offset) as aware UTC; None when it
    is not one (a naive time is taken as UTC, as chargers do)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
