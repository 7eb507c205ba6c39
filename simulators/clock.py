"""Time for the simulators: the injectable clock type and the OCPP wire form of timestamps.

Nothing here sleeps, keeps state or produces naive datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now", "wire_time"]

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
