"""A tariff in plain words for a driver (the ad-hoc payment page): "0.50 EUR per kWh",
"2.00 EUR per hour of charging", "1.00 EUR start fee", with VAT included where given.

Words only, no pricing (csms.core.cost prices) and no I/O. English: the page is English.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal

from csms.core.cost import display_amount, minor_unit
from csms.core.tariffs import (
    DayOfWeek,
    DimensionType,
    Price,
    PriceComponent,
    Tariff,
    TariffRestrictions,
)

__all__ = ["describe", "unit_price"]

_HUNDRED = Decimal(100)
# Unit prices keep up to this many decimals (0.599 EUR per kWh is what pumps show, and
# rounding it to 0.60 would misstate it), never fewer than the currency's minor unit.
_UNIT_DECIMALS = 4

_UNITS = {
    DimensionType.ENERGY: "per kWh",
    DimensionType.TIME: "per hour of charging",
    DimensionType.PARKING_TIME: "per hour of parking",
    DimensionType.FLAT: "start fee",
}
_WEEKDAYS = frozenset(
    {DayOfWeek.MONDAY, DayOfWeek.TUESDAY, DayOfWeek.WEDNESDAY, DayOfWeek.THURSDAY, DayOfWeek.FRIDAY}
)
_WEEKEND = frozenset({DayOfWeek.SATURDAY, DayOfWeek.SUNDAY})


def describe(tariff: Tariff, *, vat_included: bool = True) -> list[str]:
    """One line per price component of the elements that price a session, in the
    tariff's order, each with the conditions under which it applies; then the session's
    minimum and maximum price; then a line about VAT.

    Prices are incl. VAT (`vat_included`) when the component gives its VAT rate, else as
    the tariff states them (excl. VAT). OCPI's first element that applies prices a
    dimension, so a later one of the same dimension is "otherwise". Elements restricted
    to reservations are left out: a driver paying on the spot has not reserved."""
    lines: list[str] = []
    restricted: set[DimensionType] = set()
    rates: list[Decimal | None] = []
    for element in tariff.elements:
        r = element.restrictions
        if r is not None and r.reservation is not None:
            continue
        conditions = _conditions(r) if r is not None else []
        for component in element.price_components:
            rates.append(component.vat)
            line = _component(component, tariff.currency, vat_included=vat_included)
            if conditions:
                line += " " + ", ".join(conditions)
                restricted.add(component.type)
            elif component.type in restricted:
                line += " otherwise"
            step = _step(component)
            lines.append(line if step is None else f"{line} (billed per started {step})")
    if lines and _free(tariff):
        return ["Free of charge"]
    lines.extend(_bounds(tariff, vat_included=vat_included))
    note = _vat_note(rates, vat_included=vat_included)
    if note is not None:
        lines.append(note)
    return lines


def unit_price(amount: Decimal, currency: str) -> str:
    """A price per unit: at least the currency's minor unit of decimals, up to four when
    the price has them ("0.50 EUR", "0.595 EUR", "0.3571 EUR")."""
    places = max(minor_unit(currency), 0)
    rounded = amount.quantize(Decimal(1).scaleb(-_UNIT_DECIMALS), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}"
    if "." in text:
        whole, decimals = text.split(".")
        decimals = decimals.rstrip("0").ljust(places, "0")
        text = f"{whole}.{decimals}" if decimals else whole
    return f"{text} {currency}"


def _with_vat(price: Decimal, vat: Decimal | None, *, vat_included: bool) -> Decimal:
    if vat is None or not vat_included:
        return price
    return price * (_HUNDRED + vat) / _HUNDRED


def _component(c: PriceComponent, currency: str, *, vat_included: bool) -> str:
    price = _with_vat(c.price, c.vat, vat_included=vat_included)
    if c.type is DimensionType.FLAT:
        return f"{display_amount(price, currency)} {_UNITS[c.type]}"
    return f"{unit_price(price, currency)} {_UNITS[c.type]}"


def _free(tariff: Tariff) -> bool:
    """Nothing is ever charged: every component costs 0 and there is no minimum price."""
    if tariff.min_price is not None and tariff.min_price.excl_vat > 0:
        return False
    return all(c.price == 0 for e in tariff.elements for c in e.price_components)


def _step(c: PriceComponent) -> str | None:
    """The step a component bills by, when it is coarser than OCPI's finest (1 Wh, 1 s)."""
    if c.step_size <= 1:
        return None
    if c.type is DimensionType.ENERGY:
        return f"{_number(Decimal(c.step_size) / 1000)} kWh"
    return _duration(c.step_size)


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _duration(seconds: int) -> str:
    """3600 -> "1 h", 5400 -> "1 h 30 min", 900 -> "15 min", 90 -> "1 min 30 s"."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if minutes:
        parts.append(f"{minutes} min")
    if secs:
        parts.append(f"{secs} s")
    return " ".join(parts) or "0 s"


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


def _day(value: date) -> str:
    return value.isoformat()


def _conditions(r: TariffRestrictions) -> list[str]:
    """When a restricted element applies, in words (every part must hold)."""
    words: list[str] = []
    if r.start_time is not None and r.end_time is not None:
        words.append(f"from {_clock(r.start_time)} to {_clock(r.end_time)}")
    elif r.start_time is not None:
        words.append(f"from {_clock(r.start_time)}")
    elif r.end_time is not None:
        words.append(f"before {_clock(r.end_time)}")
    if r.day_of_week:
        words.append(_days(r.day_of_week))
    if r.start_date is not None:
        words.append(f"from {_day(r.start_date)}")
    if r.end_date is not None:  # OCPI: valid until this day, excluding it
        words.append(f"before {_day(r.end_date)}")
    words.extend(_energy(r.min_kwh or None, r.max_kwh))
    words.extend(_range(r.min_power, r.max_power, "kW", "of power"))
    words.extend(_range(r.min_current, r.max_current, "A", "of current"))
    low = r.min_duration or None  # at least 0 s holds always
    high = r.max_duration
    if low is not None and high is not None:
        words.append(f"from {_duration(low)} to {_duration(high)} of the session")
    elif low is not None:
        words.append(f"after the first {_duration(low)}")
    elif high is not None:
        words.append(f"for the first {_duration(high)}")
    return words


def _energy(low: Decimal | None, high: Decimal | None) -> Iterable[str]:
    if low is not None and high is not None:
        yield f"from {_number(low)} kWh to {_number(high)} kWh"
    elif low is not None:
        yield f"after the first {_number(low)} kWh"
    elif high is not None:
        yield f"for the first {_number(high)} kWh"


def _range(low: Decimal | None, high: Decimal | None, unit: str, what: str) -> Iterable[str]:
    """Inclusive minimum, exclusive maximum, as OCPI's min_*/max_* restrictions are (a
    minimum of 0 always holds)."""
    if low is not None and low <= 0:
        low = None
    if low is not None and high is not None:
        yield f"from {_number(low)} to below {_number(high)} {unit} {what}"
    elif low is not None:
        yield f"at {_number(low)} {unit} {what} or more"
    elif high is not None:
        yield f"below {_number(high)} {unit} {what}"


def _days(days: frozenset[DayOfWeek]) -> str:
    if days == _WEEKDAYS:
        return "on weekdays"
    if days == _WEEKEND:
        return "at weekends"
    named = [d.value.capitalize() for d in DayOfWeek if d in days]
    if len(named) == 1:
        return f"on {named[0]}s"
    return "on " + ", ".join(f"{d}s" for d in named[:-1]) + f" and {named[-1]}s"


def _bounds(tariff: Tariff, *, vat_included: bool) -> list[str]:
    words: list[str] = []
    for price, what in ((tariff.min_price, "At least"), (tariff.max_price, "At most")):
        if price is not None:
            words.append(f"{what} {_price(price, tariff.currency, vat_included)} per session")
    return words


def _price(price: Price, currency: str, vat_included: bool) -> str:
    amount = price.incl_vat if vat_included and price.incl_vat is not None else price.excl_vat
    return display_amount(amount, currency)


def _vat_note(rates: list[Decimal | None], *, vat_included: bool) -> str | None:
    """One line on VAT for the prices above: the rate when all components share one."""
    if not rates:
        return None
    known = {r for r in rates if r is not None}
    if not known:
        return "No VAT stated"
    if None in rates:
        return "VAT included where the tariff states it" if vat_included else "Prices excl. VAT"
    if len(known) > 1:
        return "Prices incl. VAT" if vat_included else "Prices excl. VAT"
    (rate,) = known
    if rate == 0:
        return "No VAT"
    return f"Prices {'incl.' if vat_included else 'excl.'} {_number(rate)} % VAT"
