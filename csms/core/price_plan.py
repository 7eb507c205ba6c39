"""Time-of-use prices for smart charging: a site's daily price schedule or imported day-ahead
prices as slots in time, and when a session with a departure time should charge.

Pure: times are passed in (aware datetimes, results in UTC), no clock, no I/O. How a plan
becomes a charging limit is the load management service's business.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from itertools import pairwise

from csms.core.errors import InvalidInput

__all__ = [
    "PriceSlot",
    "Window",
    "charging_at",
    "daily_slots",
    "next_change",
    "parse_price_csv",
    "plan_windows",
]

# A time to charge: [start, end) in UTC.
Window = tuple[datetime, datetime]

# A plan never lasts longer than this (a need of years at a trickle is not planned to the
# microsecond, and the end stays a valid datetime).
LONGEST_HOURS = 24 * 366 * 10

# A CSV row without an end lasts until the next row's start; the last one this long.
LAST_SLOT = timedelta(minutes=60)


@dataclass(frozen=True, slots=True)
class PriceSlot:
    """A price per kWh from `start` until `end` (aware UTC datetimes, start < end)."""

    start: datetime
    end: datetime
    price: Decimal

    def __post_init__(self) -> None:
        _aware(self.start, "start")
        _aware(self.end, "end")
        if self.end <= self.start:
            raise ValueError(f"a price slot ends ({self.end}) after it starts ({self.start})")


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {moment!r}")


# --- a daily schedule ------------------------------------------------------------------------


def daily_slots(
    schedule: Sequence[tuple[time, Decimal]], tz: tzinfo, start: datetime, end: datetime
) -> list[PriceSlot]:
    """The schedule repeated every local day in `tz`, as slots covering [start, end).

    Each (time of day, price) holds from that local time until the next entry's (the last
    one until the first entry's time the next day). Days with a DST change are 23 or 25
    hours long: a time the clock skips takes effect when the clock jumps, a time it passes
    twice takes effect the first time. Adjacent slots of the same price are joined.
    Raises InvalidInput for an empty schedule, a time given twice or with an offset, or a
    price that is not a finite number.
    """
    _aware(start, "start")
    _aware(end, "end")
    if not schedule:
        raise InvalidInput("a price schedule needs at least one time of day")
    entries = sorted(schedule, key=lambda entry: entry[0])
    for (at, price), following in zip(entries, [*entries[1:], None], strict=True):
        if at.tzinfo is not None:
            raise InvalidInput(f"price schedule: {at} has an offset; times are local to the site")
        if following is not None and following[0] == at:
            raise InvalidInput(f"price schedule: {at} appears twice")
        if not price.is_finite():
            raise InvalidInput(f"price schedule: the price at {at} is {price}")
    if end <= start:
        return []

    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    changes: list[tuple[datetime, Decimal]] = []
    day = first
    while day <= last:
        changes.extend((_local_instant(day, at, tz), price) for at, price in entries)
        day += timedelta(days=1)

    slots: list[PriceSlot] = []
    for (begins, price), (ends, _) in pairwise(changes):
        begins, ends = max(begins, start), min(ends, end)
        if ends <= begins:
            continue  # before or after the range, or a time the clock skipped
        if slots and slots[-1].price == price and slots[-1].end == begins:
            slots[-1] = PriceSlot(slots[-1].start, ends.astimezone(UTC), price)
        else:
            slots.append(PriceSlot(begins.astimezone(UTC), ends.astimezone(UTC), price))
    return slots


def _local_instant(day: date, at: time, tz: tzinfo) -> datetime:
    """The UTC instant at which the local clock in `tz` first shows `at` on `day`; for a
    time the clock skips (spring forward), the instant it jumps past it."""
    local = datetime.combine(day, at, tzinfo=tz)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap: fold=1 reads it with the offset after the jump (an instant before the jump),
    # fold=0 with the offset before (an instant after it). Search the jump between them.
    low = local.replace(fold=1).astimezone(UTC)
    before = low.astimezone(tz).utcoffset()
    # The first microsecond after `low` with another offset: within (0, span].
    lo, hi = 0, (instant - low) // timedelta(microseconds=1)
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if (low + timedelta(microseconds=middle)).astimezone(tz).utcoffset() == before:
            lo = middle
        else:
            hi = middle
    return low + timedelta(microseconds=hi)


# --- day-ahead prices from CSV ---------------------------------------------------------------


def parse_price_csv(text: str) -> list[PriceSlot]:
    """Slots from a CSV of day-ahead prices, in time order.

    The header is `start,price` or `start,end,price`; times are ISO 8601 with an offset or Z;
    prices are decimals per kWh (negative ones too: day-ahead markets have them). Without
    `end` a row lasts until the next row's start, the last one 60 minutes. Blank lines are
    skipped. Raises InvalidInput naming the line of the first problem.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header: list[str] | None = None
    rows: list[tuple[int, datetime, datetime | None, Decimal]] = []
    for row in reader:
        line = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if header is None:
            header = [cell.lower() for cell in cells]
            if header not in (["start", "price"], ["start", "end", "price"]):
                raise InvalidInput(
                    f"price CSV line {line}: the header must be start,price or "
                    f"start,end,price, not {','.join(cells)}"
                )
            continue
        if len(cells) != len(header):
            raise InvalidInput(
                f"price CSV line {line}: {len(cells)} fields where the header names "
                f"{len(header)} ({','.join(header)})"
            )
        begins = _csv_time(cells[0], line, "start")
        ends = _csv_time(cells[1], line, "end") if len(header) == 3 else None
        price = _csv_price(cells[-1], line)
        if ends is not None and ends <= begins:
            raise InvalidInput(f"price CSV line {line}: the end {cells[1]} is not after the start")
        if rows:
            before = rows[-1]
            if begins <= before[1]:
                raise InvalidInput(
                    f"price CSV line {line}: the start {cells[0]} is not after the start on "
                    f"line {before[0]}: rows must be in time order"
                )
            if before[2] is not None and begins < before[2]:
                raise InvalidInput(
                    f"price CSV line {line}: the start {cells[0]} is before the end of line "
                    f"{before[0]}: slots must not overlap"
                )
        rows.append((line, begins, ends, price))
    if header is None:
        raise InvalidInput("price CSV: empty; it needs a header (start,price) and rows")
    if not rows:
        raise InvalidInput("price CSV: no prices after the header")
    slots = []
    for index, (_, begins, ends, price) in enumerate(rows):
        if ends is None:
            ends = rows[index + 1][1] if index + 1 < len(rows) else begins + LAST_SLOT
        slots.append(PriceSlot(begins, ends, price))
    return slots


def _csv_time(cell: str, line: int, name: str) -> datetime:
    value = cell[:-1] + "+00:00" if cell.endswith(("Z", "z")) else cell
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"price CSV line {line}: the {name} {cell!r} is not an ISO 8601 date-time"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(
            f"price CSV line {line}: the {name} {cell!r} has no offset (add Z or one like +01:00)"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"price CSV line {line}: the {name} {cell!r} is outside the years 1 to 9999 in UTC"
        ) from None


def _csv_price(cell: str, line: int) -> Decimal:
    try:
        price = Decimal(cell)
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite():
        raise InvalidInput(f"price CSV line {line}: the price {cell!r} is not a decimal number")
    return price


# --- planning --------------------------------------------------------------------------------


def plan_windows(
    *,
    now: datetime,
    departure: datetime,
    need_wh: float,
    rate_w: float,
    slots: Sequence[PriceSlot],
    margin: float = 1.15,
) -> list[Window]:
    """When to charge, in time order, so that `need_wh` x `margin` is reached at `rate_w`
    before `departure` at the lowest price.

    The cheapest times between now and departure are taken first (equal prices: the earlier
    first) until enough energy is planned; the last one chosen is cut to its earliest part,
    so the plan ends exactly when it is enough. Times no slot covers count at the most
    expensive known price. Without slots, or once the departure has passed, the session
    charges at once until the need is met; when the time left is too short, it charges
    all of it. Nothing is needed: [].
    """
    _aware(now, "now")
    _aware(departure, "departure")
    if not (rate_w > 0 and math.isfinite(rate_w)):
        raise ValueError(f"rate_w must be a positive finite number, not {rate_w!r}")
    if not (margin > 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a positive finite number, not {margin!r}")
    if not math.isfinite(need_wh):
        raise ValueError(f"need_wh must be a finite number, not {need_wh!r}")
    now = now.astimezone(UTC)
    departure = departure.astimezone(UTC)
    if need_wh <= 0:
        return []
    needed = timedelta(hours=min(need_wh * margin / rate_w, LONGEST_HOURS))
    if needed <= timedelta(0):
        return []
    if not slots or departure <= now:
        return [(now, now + needed)]
    if departure - now <= needed:
        return [(now, departure)]

    chosen: list[Window] = []
    left = needed
    for begins, ends, _ in sorted(_pieces(now, departure, slots), key=lambda p: (p[2], p[0])):
        if ends - begins >= left:
            chosen.append((begins, begins + left))
            break
        chosen.append((begins, ends))
        left -= ends - begins
    chosen.sort()
    windows = [chosen[0]]
    for begins, ends in chosen[1:]:
        if begins <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(ends, windows[-1][1]))
        else:
            windows.append((begins, ends))
    return windows


def _pieces(
    now: datetime, departure: datetime, slots: Sequence[PriceSlot]
) -> list[tuple[datetime, datetime, Decimal]]:
    """[now, departure) cut at slot boundaries, each piece with its price; the times no slot
    covers at the highest price of all (where slots overlap, the earlier-starting wins)."""
    dearest = max(slot.price for slot in slots)
    pieces: list[tuple[datetime, datetime, Decimal]] = []
    cursor = now
    for slot in sorted(slots, key=lambda slot: (slot.start, slot.end)):
        if cursor >= departure:
            break
        if slot.start > cursor:
            gap_end = min(slot.start, departure)
            pieces.append((cursor, gap_end, dearest))
            cursor = gap_end
        begins, ends = max(slot.start, cursor), min(slot.end, departure)
        if ends > begins:
            pieces.append((begins, ends, slot.price))
            cursor = ends
    if cursor < departure:
        pieces.append((cursor, departure, dearest))
    return pieces


def charging_at(windows: Sequence[Window], at: datetime) -> bool:
    """Whether the plan charges at `at` (windows hold their start, not their end)."""
    return any(begins <= at < ends for begins, ends in windows)


def next_change(windows: Sequence[Window], at: datetime) -> datetime | None:
    """The first instant after `at` at which charging_at changes; None: it never does."""
    now_charging = charging_at(windows, at)
    for moment in sorted({edge for window in windows for edge in window if edge > at}):
        if charging_at(windows, moment) != now_charging:
            return moment
    return None
