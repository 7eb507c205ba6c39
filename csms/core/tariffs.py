"""The OCPI 2.2.1 Tariff model: frozen dataclasses, parsing with validation, and JSON output.

No pricing here (that is csms.core.cost) and no I/O; money is Decimal, never float, inside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from csms.core.errors import TariffError
from csms.core.ocpi_fields import FieldError as _Invalid
from csms.core.ocpi_fields import at as _at
from csms.core.ocpi_fields import cistring as _cistring
from csms.core.ocpi_fields import required as _required
from csms.core.ocpi_fields import string as _string

__all__ = [
    "NO_TARIFF_ID",
    "DayOfWeek",
    "DimensionType",
    "DisplayText",
    "Price",
    "PriceComponent",
    "ReservationRestrictionType",
    "Tariff",
    "TariffElement",
    "TariffError",
    "TariffRestrictions",
    "TariffType",
    "as_published",
    "json_number",
    "no_tariff",
    "ocpi_datetime",
    "parse_tariff",
    "parse_tariffs",
    "tariff_to_ocpi",
]


class DimensionType(StrEnum):
    """TariffDimensionType: what a price component prices."""

    ENERGY = "ENERGY"  # per kWh; step_size in Wh
    FLAT = "FLAT"  # once; step_size has no unit
    PARKING_TIME = "PARKING_TIME"  # per hour not charging; step_size in seconds
    TIME = "TIME"  # per hour charging (or reserved); step_size in seconds


class TariffType(StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        """0 for Monday .. 6 for Sunday, as datetime.weekday()."""
        return _WEEKDAYS.index(self)


_WEEKDAYS: tuple[DayOfWeek, ...] = tuple(DayOfWeek)


class ReservationRestrictionType(StrEnum):
    RESERVATION = "RESERVATION"  # prices the time from reserving until charging starts
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"  # prices a reservation that expired unused


@dataclass(frozen=True, slots=True)
class Price:
    """An amount of money in the tariff's currency; incl_vat is None when it is not known."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class DisplayText:
    language: str  # ISO 639-1
    text: str


@dataclass(frozen=True, slots=True)
class PriceComponent:
    """Price per unit excl. VAT; vat in percent (None: none given, which is not 0 %)."""

    type: DimensionType
    price: Decimal
    vat: Decimal | None = None
    step_size: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TariffRestrictions:
    """When a tariff element applies; every restriction that is set must hold (logical AND).

    Times and dates are local to the location's time zone; kWh, current, power and duration
    thresholds are inclusive for min_* and exclusive for max_*.
    """

    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: frozenset[DayOfWeek] = frozenset()
    reservation: ReservationRestrictionType | None = None


@dataclass(frozen=True, slots=True)
class TariffElement:
    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """An OCPI 2.2.1 Tariff as the CPO owns it."""

    country_code: str
    party_id: str
    id: str
    currency: str
    type: TariffType | None = None
    tariff_alt_text: tuple[DisplayText, ...] = ()
    tariff_alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: tuple[TariffElement, ...]
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    # EnergyMix as validated JSON (numbers as Decimal); not part of the hash.
    energy_mix: dict[str, Any] | None = field(default=None, hash=False)
    last_updated: datetime

    def active_at(self, moment: datetime) -> bool:
        """Whether `moment` lies within start_date_time .. end_date_time (both inclusive)."""
        if self.start_date_time is not None and moment < self.start_date_time:
            return False
        return self.end_date_time is None or moment <= self.end_date_time


#: The id of no_tariff(): no real tariff has it (OCPI ids are 1 to 36 characters).
NO_TARIFF_ID = ""


def no_tariff(currency: str, *, country_code: str, party_id: str, now: datetime) -> Tariff:
    """What prices a session that no tariff applies to: it charges nothing, the session's
    energy, time and periods are measured as under any tariff, and the cost names no tariff
    (csms.core.cost gives it no `tariff_id`, nor its periods: OCPI's "no Tariff is
    relevant"). Never published, stored or put in a CDR's `tariffs`."""
    return Tariff(
        country_code=country_code,
        party_id=party_id,
        id=NO_TARIFF_ID,
        currency=currency,
        elements=(TariffElement((PriceComponent(DimensionType.ENERGY, Decimal(0)),)),),
        last_updated=now,
    )


# --- parsing -----------------------------------------------------------------------------

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)

_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_TIME_TEXT = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_DATE_TEXT = re.compile(r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_DATETIME_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z?"
)
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_ENERGY_SOURCES = frozenset(
    {"NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"}
)
_IMPACTS = frozenset({"NUCLEAR_WASTE", "CARBON_DIOXIDE"})
_HUNDRED = Decimal(100)


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(path, "must be an object")
    return value


def _list(value: object, path: str, *, min_items: int = 0) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise _Invalid(path, "must be a list")
    if len(value) < min_items:
        raise _Invalid(path, f"must have at least {min_items} item" + "s" * (min_items != 1))
    return value


def _optional(
    obj: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], _T]
) -> _T | None:
    value = obj.get(key)
    return None if value is None else parse(value, _at(path, key))


def _country_code(value: object, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise _Invalid(path, "must be an ISO 3166-1 alpha-2 code (2 letters)")
    return value


def _party_id(value: object, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9]{3}", value):
        raise _Invalid(path, "must be 3 letters or digits")
    return value


def _currency(value: object, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise _Invalid(path, "must be an ISO 4217 code (3 upper-case letters)")
    return value


def _language(value: object, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise _Invalid(path, "must be an ISO 639-1 code (2 letters)")
    return value


def _url(value: object, path: str) -> str:
    text = _string(value, path, 255)
    if not _URL_SCHEME.fullmatch(text):
        raise _Invalid(path, "must be an absolute URL")
    return text


def _number(value: object, path: str) -> Decimal:
    """A JSON number (or a string holding one) as a non-negative Decimal, via its text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid(path, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(path, "must be a finite number")
    if isinstance(value, str):
        value = value.strip()
        if not _DECIMAL_TEXT.fullmatch(value):
            raise _Invalid(path, "must be a number")
    number = Decimal(str(value))
    if number < 0:
        raise _Invalid(path, "must be >= 0")
    return number + 0  # normalises -0 to 0


def _integer(minimum: int) -> Callable[[object, str], int]:
    def parse(value: object, path: str) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
            number = int(value.strip())
        if number is None or number < minimum:
            raise _Invalid(path, f"must be an integer >= {minimum}")
        return number

    return parse


def _enum(kind: type[_E], what: str) -> Callable[[object, str], _E]:
    def parse(value: object, path: str) -> _E:
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
        raise _Invalid(path, f"must be a {what}: one of {', '.join(kind)}")

    return parse


def _time_of_day(value: object, path: str) -> time:
    match = _TIME_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Invalid(path, 'must be a time of day "HH:MM" from 00:00 to 23:59')
    return time(int(match[1]), int(match[2]))


def _date(value: object, path: str) -> date:
    match = _DATE_TEXT.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is not None:
            return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        pass
    raise _Invalid(path, 'must be a date "YYYY-MM-DD"')


def _datetime(value: object, path: str) -> datetime:
    """An OCPI DateTime: RFC 3339 in UTC with an optional Z; offsets are not UTC and refused."""
    match = _DATETIME_TEXT.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is not None:
            year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
            micro = int((match[7] or "").ljust(6, "0"))
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        pass
    raise _Invalid(path, "must be an OCPI DateTime (YYYY-MM-DDTHH:MM:SS[.fff]Z, in UTC)")


def _price(value: object, path: str) -> Price:
    obj = _object(value, path)
    price = Price(
        _required(obj, "excl_vat", path, _number), _optional(obj, "incl_vat", path, _number)
    )
    if price.incl_vat is not None and price.incl_vat < price.excl_vat:
        raise _Invalid(_at(path, "incl_vat"), "must not be less than excl_vat")
    return price


def _display_text(value: object, path: str) -> DisplayText:
    obj = _object(value, path)
    return DisplayText(
        _required(obj, "language", path, _language),
        _required(obj, "text", path, lambda v, p: _string(v, p, 512)),
    )


_dimension = _enum(DimensionType, "TariffDimensionType")


def _price_component(value: object, path: str) -> PriceComponent:
    obj = _object(value, path)
    kind = _required(obj, "type", path, _dimension)
    # step_size has no unit for FLAT, and the spec's own free-of-charge example sends 0 there.
    step_size = _required(obj, "step_size", path, _integer(0 if kind is DimensionType.FLAT else 1))
    vat = _optional(obj, "vat", path, _number)
    if vat is not None and vat > _HUNDRED:
        raise _Invalid(_at(path, "vat"), "must be a percentage from 0 to 100")
    return PriceComponent(kind, _required(obj, "price", path, _number), vat, step_size)


def _restrictions(value: object, path: str) -> TariffRestrictions:
    obj = _object(value, path)
    days = _optional(obj, "day_of_week", path, lambda v, p: _list(v, p))
    r = TariffRestrictions(
        start_time=_optional(obj, "start_time", path, _time_of_day),
        end_time=_optional(obj, "end_time", path, _time_of_day),
        start_date=_optional(obj, "start_date", path, _date),
        end_date=_optional(obj, "end_date", path, _date),
        min_kwh=_optional(obj, "min_kwh", path, _number),
        max_kwh=_optional(obj, "max_kwh", path, _number),
        min_current=_optional(obj, "min_current", path, _number),
        max_current=_optional(obj, "max_current", path, _number),
        min_power=_optional(obj, "min_power", path, _number),
        max_power=_optional(obj, "max_power", path, _number),
        min_duration=_optional(obj, "min_duration", path, _integer(0)),
        max_duration=_optional(obj, "max_duration", path, _integer(0)),
        day_of_week=frozenset(
            _enum(DayOfWeek, "DayOfWeek")(day, f"{_at(path, 'day_of_week')}[{i}]")
            for i, day in enumerate(days or ())
        ),
        reservation=_optional(
            obj,
            "reservation",
            path,
            _enum(ReservationRestrictionType, "ReservationRestrictionType"),
        ),
    )
    for low, high in (
        ("start_date", "end_date"),
        ("min_kwh", "max_kwh"),
        ("min_current", "max_current"),
        ("min_power", "max_power"),
        ("min_duration", "max_duration"),
    ):
        lo, hi = getattr(r, low), getattr(r, high)
        if lo is not None and hi is not None and lo > hi:
            raise _Invalid(_at(path, low), f"must not be after {high}")
    return r


def _element(value: object, path: str) -> TariffElement:
    obj = _object(value, path)
    where = _at(path, "price_components")
    components = tuple(
        _price_component(c, f"{where}[{i}]")
        for i, c in enumerate(_list(obj.get("price_components"), where, min_items=1))
    )
    restrictions = _optional(obj, "restrictions", path, _restrictions)
    if restrictions is not None and restrictions.reservation is not None:
        for i, c in enumerate(components):
            if c.type not in (DimensionType.FLAT, DimensionType.TIME):
                raise _Invalid(
                    f"{where}[{i}].type", "must be FLAT or TIME in a reservation tariff element"
                )
    return TariffElement(components, restrictions)


def _energy_mix(value: object, path: str) -> dict[str, Any]:
    obj = _object(value, path)
    green = obj.get("is_green_energy")
    if not isinstance(green, bool):
        raise _Invalid(_at(path, "is_green_energy"), "is required and must be a boolean")
    mix: dict[str, Any] = {"is_green_energy": green}
    sources = _optional(obj, "energy_sources", path, lambda v, p: _list(v, p))
    if sources is not None:
        mix["energy_sources"] = []
        for i, item in enumerate(sources):
            where = f"{_at(path, 'energy_sources')}[{i}]"
            entry = _object(item, where)
            source = entry.get("source")
            if source not in _ENERGY_SOURCES:
                raise _Invalid(
                    _at(where, "source"), f"must be one of {', '.join(sorted(_ENERGY_SOURCES))}"
                )
            percentage = _required(entry, "percentage", where, _number)
            if percentage > _HUNDRED:
                raise _Invalid(_at(where, "percentage"), "must be from 0 to 100")
            mix["energy_sources"].append({"source": source, "percentage": percentage})
    impacts = _optional(obj, "environ_impact", path, lambda v, p: _list(v, p))
    if impacts is not None:
        mix["environ_impact"] = []
        for i, item in enumerate(impacts):
            where = f"{_at(path, 'environ_impact')}[{i}]"
            entry = _object(item, where)
            category = entry.get("category")
            if category not in _IMPACTS:
                raise _Invalid(
                    _at(where, "category"), f"must be one of {', '.join(sorted(_IMPACTS))}"
                )
            amount = _required(entry, "amount", where, _number)
            mix["environ_impact"].append({"category": category, "amount": amount})
    for key in ("supplier_name", "energy_product_name"):
        text = _optional(obj, key, path, lambda v, p: _string(v, p, 64))
        if text is not None:
            mix[key] = text
    return mix


def _party_of(
    obj: Mapping[str, Any], path: str, country_code: str, party_id: str, *, ours: bool
) -> tuple[str, str]:
    """The tariff's country_code and party_id (the arguments where the object lacks them);
    with `ours`, the object may only repeat the arguments (in any case)."""
    country = _country_code(obj.get("country_code", country_code), _at(path, "country_code"))
    party = _party_id(obj.get("party_id", party_id), _at(path, "party_id"))
    if not ours:
        return country, party
    for key, given, own in (("country_code", country, country_code), ("party_id", party, party_id)):
        if given.upper() != own.upper():
            raise _Invalid(_at(path, key), f"{given!r} is not ours ({own})")
    return country_code, party_id


def _tariff(
    obj: Mapping[str, Any],
    path: str,
    country_code: str,
    party_id: str,
    now: datetime,
    *,
    ours: bool = False,
) -> Tariff:
    country_code, party_id = _party_of(obj, path, country_code, party_id, ours=ours)
    alt_texts = _optional(obj, "tariff_alt_text", path, lambda v, p: _list(v, p)) or ()
    where = _at(path, "elements")
    elements = tuple(
        _element(e, f"{where}[{i}]")
        for i, e in enumerate(_list(obj.get("elements"), where, min_items=1))
    )
    tariff = Tariff(
        country_code=country_code,
        party_id=party_id,
        id=_required(obj, "id", path, _cistring(36)),
        currency=_required(obj, "currency", path, _currency),
        type=_optional(obj, "type", path, _enum(TariffType, "TariffType")),
        tariff_alt_text=tuple(
            _display_text(t, f"{_at(path, 'tariff_alt_text')}[{i}]")
            for i, t in enumerate(alt_texts)
        ),
        tariff_alt_url=_optional(obj, "tariff_alt_url", path, _url),
        min_price=_optional(obj, "min_price", path, _price),
        max_price=_optional(obj, "max_price", path, _price),
        elements=elements,
        start_date_time=_optional(obj, "start_date_time", path, _datetime),
        end_date_time=_optional(obj, "end_date_time", path, _datetime),
        energy_mix=_optional(obj, "energy_mix", path, _energy_mix),
        last_updated=_optional(obj, "last_updated", path, _datetime) or now.astimezone(UTC),
    )
    low, high = tariff.min_price, tariff.max_price
    if low is not None and high is not None:
        if low.excl_vat > high.excl_vat:
            raise _Invalid(_at(path, "min_price.excl_vat"), "must not exceed max_price.excl_vat")
        if low.incl_vat is not None and high.incl_vat is not None and low.incl_vat > high.incl_vat:
            raise _Invalid(_at(path, "min_price.incl_vat"), "must not exceed max_price.incl_vat")
    begin, end = tariff.start_date_time, tariff.end_date_time
    if begin is not None and end is not None and begin >= end:
        raise _Invalid(_at(path, "start_date_time"), "must be before end_date_time")
    return tariff


def _parse_one(
    obj: object, path: str, country_code: str, party_id: str, now: datetime, *, ours: bool = False
) -> Tariff:
    raw_id = obj.get("id") if isinstance(obj, Mapping) else None
    tariff_id = raw_id if isinstance(raw_id, str) and raw_id else None
    try:
        return _tariff(_object(obj, path), path, country_code, party_id, now, ours=ours)
    except _Invalid as exc:
        raise TariffError(exc.message, exc.path, tariff_id) from exc


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def parse_tariff(obj: object, *, country_code: str, party_id: str, now: datetime) -> Tariff:
    """Validate one OCPI 2.2.1 Tariff object (parsed JSON) and build the Tariff.

    `country_code`/`party_id` stand in where the object lacks them; a missing `last_updated`
    becomes `now`. Numbers may be JSON numbers or decimal strings and become Decimal through
    their text; unknown fields are ignored. Raises TariffError naming the offending field.
    """
    _check_now(now)
    return _parse_one(obj, "", country_code, party_id, now)


def parse_tariffs(obj: object, *, country_code: str, party_id: str, now: datetime) -> list[Tariff]:
    """Our own tariffs: one Tariff object or a list of them; errors name the list index
    (`[3].elements...`). `country_code`/`party_id` are our party, which every tariff carries:
    an object may leave them out or repeat them (in any case), another party's is refused
    (we publish these tariffs under our own URL)."""
    _check_now(now)
    if isinstance(obj, Mapping):
        return [_parse_one(obj, "", country_code, party_id, now, ours=True)]
    if not isinstance(obj, list | tuple):
        raise TariffError("must be a Tariff object or a list of Tariff objects")
    tariffs = [
        _parse_one(item, f"[{i}]", country_code, party_id, now, ours=True)
        for i, item in enumerate(obj)
    ]
    seen: dict[tuple[str, str, str], int] = {}
    for i, t in enumerate(tariffs):
        key = (t.country_code.upper(), t.party_id.upper(), t.id.upper())
        if key in seen:
            raise TariffError(f"duplicates the id of [{seen[key]}]", f"[{i}].id", t.id)
        seen[key] = i
    return tariffs


# --- output --------------------------------------------------------------------------------


def json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: int when integral, else float (only at the JSON edge)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def tariff_targets(
    evse_uid: str, connector_id: int, location_id: str | None
) -> list[tuple[str, str]]:
    """Where a tariff assignment for one connector may be, in precedence order: the
    connector beats its EVSE beats its location beats the default ((scope, target) pairs
    as stored)."""
    targets = [("connector", f"{evse_uid}#{connector_id}"), ("evse", evse_uid)]
    if location_id is not None:
        targets.append(("location", location_id))
    targets.append(("default", ""))
    return targets


def as_published(data: Mapping[str, Any], *, ad_hoc_only: bool) -> dict[str, Any]:
    """A stored OCPI Tariff object as partners are given it: one assigned only for drivers
    who pay on the spot (`csms tariffs assign --ad-hoc`, and nowhere for everyone) is of
    type AD_HOC_PAYMENT, whatever its file said; any other as stored (a tariff that also
    prices everyone's sessions keeps its type, or none: valid for all sessions)."""
    if ad_hoc_only:
        return {**data, "type": TariffType.AD_HOC_PAYMENT.value}
    return dict(data)


def ocpi_datetime(moment: datetime) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SSZ`, with milliseconds only when the moment has them."""
    utc = moment.astimezone(UTC)
    text = f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S")  # %Y: no padding below 1000
    millis = utc.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def _price_json(price: Price) -> dict[str, Any]:
    out: dict[str, Any] = {"excl_vat": json_number(price.excl_vat)}
    if price.incl_vat is not None:
        out["incl_vat"] = json_number(price.incl_vat)
    return out


def _restrictions_json(r: TariffRestrictions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.start_time is not None:
        out["start_time"] = r.start_time.strftime("%H:%M")
    if r.end_time is not None:
        out["end_time"] = r.end_time.strftime("%H:%M")
    if r.start_date is not None:
        out["start_date"] = r.start_date.isoformat()
    if r.end_date is not None:
        out["end_date"] = r.end_date.isoformat()
    for key in (
        "min_kwh",
        "max_kwh",
        "min_current",
        "max_current",
        "min_power",
        "max_power",
        "min_duration",
        "max_duration",
    ):
        value = getattr(r, key)
        if value is not None:
            out[key] = json_number(value) if isinstance(value, Decimal) else value
    if r.day_of_week:
        out["day_of_week"] = [str(d) for d in _WEEKDAYS if d in r.day_of_week]
    if r.reservation is not None:
        out["reservation"] = str(r.reservation)
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return json_number(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def tariff_to_ocpi(t: Tariff) -> dict[str, Any]:
    """The OCPI 2.2.1 Tariff JSON object; parse_tariff reads it back to an equal Tariff."""
    out: dict[str, Any] = {
        "country_code": t.country_code,
        "party_id": t.party_id,
        "id": t.id,
        "currency": t.currency,
    }
    if t.type is not None:
        out["type"] = str(t.type)
    if t.tariff_alt_text:
        out["tariff_alt_text"] = [
            {"language": d.language, "text": d.text} for d in t.tariff_alt_text
        ]
    if t.tariff_alt_url is not None:
        out["tariff_alt_url"] = t.tariff_alt_url
    if t.min_price is not None:
        out["min_price"] = _price_json(t.min_price)
    if t.max_price is not None:
        out["max_price"] = _price_json(t.max_price)
    elements = []
    for e in t.elements:
        element: dict[str, Any] = {
            "price_components": [
                {"type": str(c.type), "price": json_number(c.price)}
                | ({} if c.vat is None else {"vat": json_number(c.vat)})
                | {"step_size": c.step_size}
                for c in e.price_components
            ]
        }
        if e.restrictions is not None:
            element["restrictions"] = _restrictions_json(e.restrictions)
        elements.append(element)
    out["elements"] = elements
    if t.start_date_time is not None:
        out["start_date_time"] = ocpi_datetime(t.start_date_time)
    if t.end_date_time is not None:
        out["end_date_time"] = ocpi_datetime(t.end_date_time)
    if t.energy_mix is not None:
        out["energy_mix"] = _json_value(t.energy_mix)
    out["last_updated"] = ocpi_datetime(t.last_updated)
    return out
