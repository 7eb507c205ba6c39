"""The clock the domain and services read time from (tests inject their own), timestamps
as chargers send them, and the window of charger times the CSMS takes as plausible.

Only the Clock type, the UTC helpers and the TimeWindow live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from csms.core.errors import InvalidTimestamp as InvalidTimestamp
from csms.core.errors import TimestampOutOfRange as TimestampOutOfRange

Clock = Callable[[], datetime]

# What ocpp.earliest_timestamp and ocpp.max_clock_ahead default to.
DEFAULT_EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)
DEFAULT_AHEAD = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp as sent by chargers; naive values are taken as UTC.

    Raises InvalidTimestamp (with the parser's message) when it is not one,
    TimestampOutOfRange (an InvalidTimestamp) when its UTC instant is outside the years 1 to
    9999."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except ValueError as exc:  # fromisoformat's only complaint: not a date-time
        raise InvalidTimestamp(str(exc)) from None
    except OverflowError:
        raise TimestampOutOfRange(
            f"{text!r} is outside the years 1 to 9999 once converted to UTC"
        ) from None


def out_of_range(text: str) -> bool:
    """Whether `text` reads as a date-time whose UTC instant cannot be represented (any
    other flaw is not this function's to judge)."""
    try:
        parse_timestamp(text)
    except TimestampOutOfRange:
        return True
    except InvalidTimestamp:
        return False
    return False


def format_timestamp(moment: datetime) -> str:
    """UTC with millisecond precision and a Z suffix, the form every OCPP peer accepts."""
    utc = moment.astimezone(UTC)
    # %Y has no leading zeros before the year 1000 on every platform.
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Charger timestamps the CSMS takes as plausible: not before `earliest`, and at most
    `ahead` after the CSMS's own clock. A charger whose clock was reset (1970) or runs far
    ahead reports times outside it."""

    earliest: datetime = DEFAULT_EARLIEST
    ahead: timedelta = DEFAULT_AHEAD

    def __post_init__(self) -> None:
        if self.earliest.utcoffset() is None:
            raise ValueError("TimeWindow.earliest must be timezone-aware")
        if self.ahead < timedelta(0):
            raise ValueError("TimeWindow.ahead must not be negative")

    def latest(self, now: datetime) -> datetime:
        """The latest plausible time when the CSMS's clock reads `now` (capped at the end of
        what a datetime holds)."""
        try:
            return now + self.ahead
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)

    def holds(self, moment: datetime, now: datetime) -> bool:
        return self.earliest <= moment <= self.latest(now)
