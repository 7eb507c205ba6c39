"""The cost engine: what a session costs under an OCPI 2.2.1 Tariff, split into charging periods.

Pure and deterministic (no I/O, no clock, no storage); tariffs are parsed in csms.core.tariffs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal, localcontext
from enum import StrEnum
from itertools import accumulate, compress, pairwise
from operator import ne
from typing import Any
from zoneinfo import ZoneInfo

from csms.core.errors import TooManyPeriods
from csms.core.tariffs import (
    NO_TARIFF_ID,
    DimensionType,
    Price,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffElement,
    json_number,
    ocpi_datetime,
)

__all__ = [
    "IDLE_POWER_W",
    "CdrDimensionType",
    "ChargingPeriod",
    "Cost",
    "Dimension",
    "Reading",
    "StatusChange",
    "TooManyPeriods",
    "Usage",
    "cost_to_ocpi",
    "display_amount",
    "minor_unit",
    "price_expired_reservation",
    "price_session",
]

# Without status changes, the vehicle counts as not drawing (PARKING_TIME) while its active
# power import is below this; without power readings, the average power between two energy
# register readings is used instead.
IDLE_POWER_W = 100.0


# --- input -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """One meter reading of the session (UTC); None where the reading lacks the quantity."""

    at: datetime
    energy_wh: float | None  # energy register, Wh
    power_w: float | None  # active power import, W
    current_a: float | None  # current import, A (the highest phase when per phase)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """From the EVSE's status history: whether the vehicle draws power from `at` on.

    Per the 2.2.1 errata PARKING_TIME is time in which the *vehicle* does not request power:
    SuspendedEV and Finishing are not drawing; SuspendedEVSE (the EVSE withholds power from a
    vehicle that asks for it) should count as drawing.
    """

    at: datetime
    drawing: bool


@dataclass(frozen=True, slots=True)
class Usage:
    """What a session used, from `start` to `end` (the session end, or now for an estimate)."""

    start: datetime
    end: datetime
    readings: tuple[Reading, ...]  # sorted by time; may be empty
    statuses: tuple[StatusChange, ...] = ()
    energy_wh: int | None = None  # authoritative session energy, overrides the register delta
    reserved_from: datetime | None = None  # when the reservation this session used began


# --- output ------------------------------------------------------------------------------


class CdrDimensionType(StrEnum):
    """The CdrDimensionType values this engine reports (OCPI 2.2.1 has no FLAT dimension)."""

    ENERGY = "ENERGY"  # kWh
    TIME = "TIME"  # hours charging
    PARKING_TIME = "PARKING_TIME"  # hours not charging
    RESERVATION_TIME = "RESERVATION_TIME"  # hours reserved before the session
    MIN_CURRENT = "MIN_CURRENT"  # A
    MAX_CURRENT = "MAX_CURRENT"  # A
    MIN_POWER = "MIN_POWER"  # kW
    MAX_POWER = "MAX_POWER"  # kW


@dataclass(frozen=True, slots=True)
class Dimension:
    type: CdrDimensionType
    volume: Decimal  # in the OCPI unit of the type, unrounded


@dataclass(frozen=True, slots=True)
class ChargingPeriod:
    """Starts at `start` and lasts until the next period starts (the last: the session end)."""

    start: datetime
    dimensions: tuple[Dimension, ...]
    tariff_id: str | None


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced session. Amounts are unrounded Decimals in `currency`.

    total_cost has min_price/max_price applied; the per-dimension totals are before them.
    A per-dimension total is None when no price component of that kind applied; an incl_vat
    is None when some non-zero amount in it came from a component without VAT.
    """

    currency: str
    #: None when no tariff applied (csms.core.tariffs.no_tariff).
    tariff_id: str | None
    charging_periods: tuple[ChargingPeriod, ...]
    total_cost: Price
    total_fixed_cost: Price | None
    total_energy_cost: Price | None
    total_time_cost: Price | None
    total_parking_cost: Price | None
    total_energy_kwh: Decimal
    total_time_hours: Decimal
    total_parking_time_hours: Decimal
    total_reservation_cost: Price | None = None


# --- internals -----------------------------------------------------------------------------

_US = timedelta(microseconds=1)
_US_PER_S = 1_000_000
_US_PER_HOUR = 3_600_000_000
_DAY_S = 86_400
_D0 = Decimal(0)
_D100 = Decimal(100)
_D1000 = Decimal(1000)
_D_HOUR = Decimal(_US_PER_HOUR)
_D_US_PER_S = Decimal(_US_PER_S)
_D1 = Decimal(1)
_HOUR = timedelta(hours=1)
_FOUR_PLACES = Decimal("0.0001")
_CONTEXT = Context(prec=40)

# Selection slots: which element prices each dimension, -1 for none.
_FLAT, _ENERGY, _TIME, _PARKING = range(4)
_SLOTS = {
    DimensionType.FLAT: _FLAT,
    DimensionType.ENERGY: _ENERGY,
    DimensionType.TIME: _TIME,
    DimensionType.PARKING_TIME: _PARKING,
}

# Cost categories, as the CDR totals split them.
_FIXED, _ENERGY_COST, _TIME_COST, _PARKING_COST, _RESERVATION_COST = range(5)
# What a line bills, for step_size: the CDR module rounds ENERGY once, TIME and PARKING_TIME
# once together; reservation time is rounded on its own.
_BILL_FLAT, _BILL_ENERGY, _BILL_TIME, _BILL_PARKING, _BILL_RESERVED = range(5)

# How drawing / not drawing is decided.
_BY_STATUS, _BY_POWER, _ALWAYS = range(3)


def _us(delta: timedelta) -> int:
    return delta // _US


# Series are piecewise linear over the readings' own datetimes (bisect and compare in C);
# values are held beyond the first and last reading.


def _interp(ts: list[datetime], vs: list[float], t: datetime) -> float:
    """The value at t (right-continuous where two readings share a timestamp: a step)."""
    i = bisect_right(ts, t)
    if i == 0:
        return vs[0]
    if i == len(ts):
        return vs[-1]
    t0 = ts[i - 1]
    v0 = vs[i - 1]
    return v0 + (vs[i] - v0) * ((t - t0) / (ts[i] - t0))


def _interp_left(ts: list[datetime], vs: list[float], t: datetime) -> float:
    """As _interp, but the value just before t where there is a step at t."""
    i = bisect_left(ts, t)
    if i == 0:
        return vs[0]
    if i == len(ts):
        return vs[-1]
    t0 = ts[i - 1]
    v0 = vs[i - 1]
    return v0 + (vs[i] - v0) * ((t - t0) / (ts[i] - t0))


def _crossings(ts: list[datetime], vs: list[float], threshold: float) -> list[datetime]:
    """Moments at which the series reaches or leaves `threshold`, to the microsecond."""
    if not vs or max(vs) < threshold or min(vs) >= threshold:
        return []
    above = list(map(threshold.__le__, vs))
    out: list[datetime] = []
    for k in compress(range(len(vs) - 1), map(ne, above, above[1:])):
        t0, t1 = ts[k], ts[k + 1]
        if t1 == t0:
            out.append(t0)
        else:
            v0 = vs[k]
            out.append(t0 + (t1 - t0) * ((threshold - v0) / (vs[k + 1] - v0)))
    return out


def _utc(moments: list[datetime]) -> list[datetime]:
    """The moments in UTC: arithmetic between two datetimes of one zone is wall-clock time."""
    if all(t.tzinfo is UTC for t in moments):
        return moments
    return [t.astimezone(UTC) for t in moments]


def _series(ts: list[datetime], values: list[float | None]) -> tuple[list[datetime], list[float]]:
    if None not in values:
        return ts, values  # type: ignore[return-value]
    pairs = [(t, v) for t, v in zip(ts, values, strict=True) if v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]


class _Element:
    """A tariff element compiled for fast matching (thresholds as floats in Wh, W and A)."""

    __slots__ = (
        "components",
        "day_of_week",
        "end_date",
        "max_a",
        "max_duration",
        "max_w",
        "max_wh",
        "min_a",
        "min_duration",
        "min_w",
        "min_wh",
        "reservation",
        "slots",
        "start_date",
        "tod",
        "unrestricted",
    )

    def __init__(self, element: TariffElement) -> None:
        components: list[PriceComponent | None] = [None, None, None, None]
        for c in element.price_components:
            slot = _SLOTS[c.type]
            if components[slot] is None:  # the first component of a type in an element
                components[slot] = c
        self.components = components
        self.slots = tuple(i for i, c in enumerate(components) if c is not None)
        r = element.restrictions
        self.tod: tuple[int, int] | None = None
        self.start_date: date | None = None
        self.end_date: date | None = None
        self.day_of_week: frozenset[int] | None = None
        self.min_wh: float | None = None
        self.max_wh: float | None = None
        self.min_w: float | None = None
        self.max_w: float | None = None
        self.min_a: float | None = None
        self.max_a: float | None = None
        self.min_duration: timedelta | None = None
        self.max_duration: timedelta | None = None
        self.reservation = None if r is None else r.reservation
        if r is not None:
            if r.start_time is not None or r.end_time is not None:
                start = 0 if r.start_time is None else _seconds(r.start_time)
                end = _DAY_S if r.end_time is None else _seconds(r.end_time) or _DAY_S
                if start != end and (start, end) != (0, _DAY_S):
                    self.tod = (start, end)  # start > end wraps past midnight
            self.start_date, self.end_date = r.start_date, r.end_date
            if r.day_of_week:
                self.day_of_week = frozenset(d.weekday for d in r.day_of_week)
            self.min_wh = _scaled(r.min_kwh, 1000)
            self.max_wh = _scaled(r.max_kwh, 1000)
            self.min_w = _scaled(r.min_power, 1000)
            self.max_w = _scaled(r.max_power, 1000)
            self.min_a = _scaled(r.min_current, 1)
            self.max_a = _scaled(r.max_current, 1)
            if r.min_duration is not None:
                self.min_duration = timedelta(seconds=r.min_duration)
            if r.max_duration is not None:
                self.max_duration = timedelta(seconds=r.max_duration)
        self.unrestricted = (
            self.tod is None
            and self.start_date is None
            and self.end_date is None
            and self.day_of_week is None
            and self.min_wh is None
            and self.max_wh is None
            and self.min_w is None
            and self.max_w is None
            and self.min_a is None
            and self.max_a is None
            and self.min_duration is None
            and self.max_duration is None
        )

    def matches(
        self,
        second: float,
        day: date | None,
        weekday: int,
        energy: float,
        power: float | None,
        current: float | None,
        elapsed: timedelta,
    ) -> bool:
        if self.unrestricted:
            return True
        if self.tod is not None:
            start, end = self.tod
            if start < end:
                if not start <= second < end:
                    return False
            elif end <= second < start:
                return False
        if day is not None:
            if self.start_date is not None and day < self.start_date:
                return False
            if self.end_date is not None and day >= self.end_date:
                return False
        if self.day_of_week is not None and weekday not in self.day_of_week:
            return False
        if self.min_wh is not None and energy < self.min_wh:
            return False
        if self.max_wh is not None and energy >= self.max_wh:
            return False
        if self.min_w is not None or self.max_w is not None:
            if power is None:
                return False
            if self.min_w is not None and power < self.min_w:
                return False
            if self.max_w is not None and power >= self.max_w:
                return False
        if self.min_a is not None or self.max_a is not None:
            if current is None:
                return False
            if self.min_a is not None and current < self.min_a:
                return False
            if self.max_a is not None and current >= self.max_a:
                return False
        if self.min_duration is not None and elapsed < self.min_duration:
            return False
        return self.max_duration is None or elapsed < self.max_duration


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60


def _scaled(value: Decimal | None, factor: int) -> float | None:
    return None if value is None else float(value * factor)


class _Compiled:
    """A tariff prepared for pricing: compiled elements, search orders and all thresholds."""

    __slots__ = (
        "currency",
        "durations",
        "elements",
        "energy_thresholds",
        "expired_order",
        "local",
        "max_price",
        "min_price",
        "reserved_order",
        "session_order",
        "tariff_id",
        "thresholds_a",
        "thresholds_w",
        "times",
    )

    def __init__(self, tariff: Tariff) -> None:
        self.tariff_id = None if tariff.id == NO_TARIFF_ID else tariff.id
        self.currency = tariff.currency
        self.min_price, self.max_price = tariff.min_price, tariff.max_price
        self.elements = [_Element(e) for e in tariff.elements]
        res = ReservationRestrictionType
        self.session_order = [i for i, e in enumerate(self.elements) if e.reservation is None]
        reserved = [i for i, e in enumerate(self.elements) if e.reservation is res.RESERVATION]
        expires = [
            i for i, e in enumerate(self.elements) if e.reservation is res.RESERVATION_EXPIRES
        ]
        self.reserved_order = reserved
        # An expired reservation: RESERVATION_EXPIRES elements take precedence over
        # RESERVATION ones (mod_tariffs, ReservationRestrictionType note).
        self.expired_order = expires + reserved
        points: set[int] = set()
        energy: dict[float, Decimal] = {}
        watts: set[float] = set()
        amps: set[float] = set()
        durations: set[timedelta] = set()
        for element, source in zip(self.elements, tariff.elements, strict=True):
            r = source.restrictions
            if r is None:
                continue
            if element.tod is not None:
                points.update(s % _DAY_S for s in element.tod)
            if element.start_date or element.end_date or element.day_of_week is not None:
                points.add(0)
            for kwh in (r.min_kwh, r.max_kwh):
                if kwh is not None:
                    energy[float(kwh * 1000)] = kwh * 1000
            watts.update(v for v in (element.min_w, element.max_w) if v is not None)
            amps.update(v for v in (element.min_a, element.max_a) if v is not None)
            durations.update(
                v for v in (element.min_duration, element.max_duration) if v is not None
            )
        self.local = bool(points)
        self.times = [
            (time(s // 3600, s // 60 % 60), time(s // 3600, s // 60 % 60, fold=1))
            for s in sorted(points)
        ]
        self.energy_thresholds = sorted(energy.items())
        self.thresholds_w = sorted(watts)
        self.thresholds_a = sorted(amps)
        self.durations = sorted(durations)

    def select(
        self,
        order: list[int],
        second: float,
        day: date | None,
        weekday: int,
        energy: float,
        power: float | None,
        current: float | None,
        elapsed: timedelta,
    ) -> tuple[int, int, int, int]:
        """Per dimension, the first element in `order` that matches and prices it."""
        found = [-1, -1, -1, -1]
        missing = 4
        elements = self.elements
        for i in order:
            element = elements[i]
            if not element.matches(second, day, weekday, energy, power, current, elapsed):
                continue
            for slot in element.slots:
                if found[slot] < 0:
                    found[slot] = i
                    missing -= 1
            if not missing:
                break
        return found[0], found[1], found[2], found[3]

    def component(self, index: int, slot: int) -> PriceComponent:
        component = self.elements[index].components[slot]
        assert component is not None
        return component

    def local_boundaries(self, begin: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
        """Moments in (begin, end) at which local time passes a restriction's time of day
        (midnight for date and weekday restrictions) or the UTC offset changes (DST)."""
        if not self.local:
            return []
        first = begin.astimezone(tz).date()
        last = end.astimezone(tz).date()
        days = [first + timedelta(days=k) for k in range((last - first).days + 2)]
        midnights = [datetime.combine(d, time(0), tz) for d in days]
        offsets = [m.utcoffset() for m in midnights]
        out: list[datetime] = []
        for k in range(len(days) - 1):  # the extra day only tells whether the offset changes
            day = days[k]
            shifting = offsets[k] != offsets[k + 1]
            for plain, folded in self.times:
                out.append(datetime.combine(day, plain, tz))
                if shifting:  # a skipped or repeated wall-clock hour: both readings of it
                    out.append(datetime.combine(day, folded, tz))
            if shifting:
                out.append(_offset_change(midnights[k], midnights[k + 1], tz))
        return [u.astimezone(UTC) for u in out if begin < u < end]


# A memo of compiled tariffs by identity (a pure cache: the same Tariff object always compiles
# the same way); it keeps the tariffs it holds alive, so an id is never reused while cached.
_COMPILED: dict[int, tuple[Tariff, _Compiled]] = {}
_COMPILED_MAX = 64


def _compiled(tariff: Tariff) -> _Compiled:
    hit = _COMPILED.get(id(tariff))
    if hit is not None and hit[0] is tariff:
        return hit[1]
    compiled = _Compiled(tariff)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[id(tariff)] = (tariff, compiled)
    return compiled


def _offset_change(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second after `low` with the UTC offset of `high` (bisection)."""
    base = low.astimezone(UTC)
    before = base.astimezone(tz).utcoffset()
    # (high - low) would be wall-clock time: both share tz, so subtract in UTC.
    lo, hi = 0, int((high.astimezone(UTC) - base).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (base + timedelta(seconds=mid)).astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return base + timedelta(seconds=hi)


class _Line:
    """One billed quantity: `volume` (Wh, µs or 1) of `component`, in a cost category."""

    __slots__ = ("bills", "category", "component", "divisor", "volume")

    def __init__(
        self,
        category: int,
        bills: int,
        component: PriceComponent,
        volume: Decimal,
        divisor: Decimal,
    ) -> None:
        self.category = category
        self.bills = bills
        self.component = component
        self.volume = volume
        self.divisor = divisor


class _Span:
    """A stretch of the timeline with one selection (and one drawing state)."""

    __slots__ = ("drawing", "end", "flat", "selected", "start")

    def __init__(
        self, start: datetime, end: datetime, drawing: bool, selected: tuple[int, ...]
    ) -> None:
        self.start = start
        self.end = end
        self.drawing = drawing
        self.selected = selected
        self.flat = -1


def _dec(value: float) -> Decimal:
    """A measured float as a Decimal, to the milli-unit (mWh): float noise stays out."""
    return Decimal(f"{value:.3f}")


def _dec6(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")


def _hours(us: int) -> Decimal:
    return Decimal(us) / _D_HOUR


# --- the session -------------------------------------------------------------------------


class _Profile:
    """The session's measured quantities as piecewise-linear series over time."""

    __slots__ = (
        "e_t",
        "e_v",
        "i_t",
        "i_v",
        "mode",
        "p_measured",
        "p_t",
        "p_v",
        "s_t",
        "s_v",
        "total_energy",
    )

    def __init__(self, usage: Usage, start: datetime, end: datetime, with_current: bool) -> None:
        readings = usage.readings
        ts = _utc([r.at for r in readings])
        if ts != sorted(ts):
            readings = tuple(sorted(readings, key=lambda r: r.at))
            ts = _utc([r.at for r in readings])
        self.p_t, self.p_v = _series(ts, [r.power_w for r in readings])
        self.i_t: list[datetime] = []
        self.i_v: list[float] = []
        if with_current:  # current only matters to current restrictions
            self.i_t, self.i_v = _series(ts, [r.current_a for r in readings])
        self.p_measured = bool(self.p_t)
        statuses = usage.statuses
        self.s_t = _utc([s.at for s in statuses])
        if self.s_t != sorted(self.s_t):
            statuses = tuple(sorted(statuses, key=lambda s: s.at))
            self.s_t = _utc([s.at for s in statuses])
        self.s_v = [s.drawing for s in statuses]

        # Energy: the register relative to its value at the start, made monotonic.
        e_t, raw = _series(ts, [r.energy_wh for r in readings])
        e_v: list[float] = []
        register_total = 0.0
        if e_t:
            raw = list(accumulate(raw, max))
            base = _interp(e_t, raw, start)
            e_v = [v - base for v in raw]
            register_total = _interp(e_t, e_v, end)
        register_t, register_v = e_t, e_v
        from_register = register_total > 0
        if usage.energy_wh is not None:
            self.total_energy = Decimal(usage.energy_wh)
            wanted = float(usage.energy_wh)
            if from_register:
                factor = wanted / register_total
                e_v = [v * factor for v in e_v]
            elif wanted > 0:
                e_t, e_v = self._spread(wanted, start, end)
            else:
                e_t, e_v = [], []
        elif from_register:
            self.total_energy = _dec(register_total)
        else:
            self.total_energy = _D0
            e_t, e_v = [], []
        self.e_t, self.e_v = e_t, e_v

        if not self.p_measured and len(register_t) >= 2:
            # Average power between register readings stands in for power readings.
            p_t: list[datetime] = []
            p_v: list[float] = []
            for k in range(len(register_t) - 1):
                t0, t1 = register_t[k], register_t[k + 1]
                if t1 > t0:
                    watts = (register_v[k + 1] - register_v[k]) / ((t1 - t0) / _HOUR)
                    p_t += (t0, t1)
                    p_v += (watts, watts)
            self.p_t, self.p_v = p_t, p_v
        if self.s_t:
            self.mode = _BY_STATUS
        elif self.p_t:
            self.mode = _BY_POWER
        else:
            self.mode = _ALWAYS

    def _spread(
        self, wanted: float, start: datetime, end: datetime
    ) -> tuple[list[datetime], list[float]]:
        """An energy profile for a known total without usable register readings: along the
        integral of measured power, else evenly over the drawing time, else over the session."""
        p_t, p_v = self.p_t, self.p_v
        if len(p_t) >= 2:
            cum = [0.0]
            for k in range(len(p_t) - 1):
                hours = (p_t[k + 1] - p_t[k]) / _HOUR
                cum.append(cum[-1] + max(0.0, p_v[k] + p_v[k + 1]) * hours / 2)
            base = _interp(p_t, cum, start)
            span = _interp(p_t, cum, end) - base
            if span > 0:
                return p_t, [(c - base) * wanted / span for c in cum]
        if self.s_t:
            cuts = sorted({start, end, *(t for t in self.s_t if start < t < end)})
            drawn = [0.0]
            for a, b in pairwise(cuts):
                drawn.append(drawn[-1] + (b - a) / _HOUR * self._drawing_at(a + (b - a) / 2))
            if drawn[-1] > 0:
                return cuts, [d * wanted / drawn[-1] for d in drawn]
        return [start, max(end, start + _US)], [0.0, wanted]

    def _drawing_at(self, t: datetime) -> bool:
        i = bisect_right(self.s_t, t) - 1
        # Before the first change, the opposite of what it changes to.
        return self.s_v[i] if i >= 0 else not self.s_v[0]

    def energy_at(self, t: datetime) -> float:
        return _interp(self.e_t, self.e_v, t) if self.e_t else 0.0

    def drawing_at(self, t: datetime, power: float | None) -> bool:
        if self.mode == _BY_STATUS:
            return self._drawing_at(t)
        if self.mode == _BY_POWER:
            return power is not None and power >= IDLE_POWER_W
        return True


def _session_spans(
    ct: _Compiled, start: datetime, end: datetime, profile: _Profile, tz: ZoneInfo
) -> tuple[list[_Span], dict[datetime, Decimal]]:
    events: set[datetime] = set(ct.local_boundaries(start, end, tz))
    events.update(start + d for d in ct.durations)
    events.update(profile.s_t)
    exact_energy: dict[datetime, Decimal] = {}
    e_t, e_v = profile.e_t, profile.e_v
    if e_t:
        for threshold, exact in ct.energy_thresholds:
            k = bisect_left(e_v, threshold)
            if threshold <= 0 or k == len(e_v):
                continue
            if k == 0 or e_t[k] == e_t[k - 1]:
                at = e_t[k]
            else:
                v0 = e_v[k - 1]
                at = e_t[k - 1] + (e_t[k] - e_t[k - 1]) * ((threshold - v0) / (e_v[k] - v0))
            events.add(at)
            exact_energy[at] = exact
    if profile.p_t:
        watts = ct.thresholds_w
        if profile.mode == _BY_POWER:
            watts = [*watts, IDLE_POWER_W]
        for threshold in watts:
            events.update(_crossings(profile.p_t, profile.p_v, threshold))
    if profile.i_t:
        for threshold in ct.thresholds_a:
            events.update(_crossings(profile.i_t, profile.i_v, threshold))
    bounds = [start, *sorted(t for t in events if start < t < end), end]

    spans: list[_Span] = []
    flat = -1
    order = ct.session_order
    p_t, p_v, i_t, i_v = profile.p_t, profile.p_v, profile.i_t, profile.i_v
    if not (ct.thresholds_w or profile.mode == _BY_POWER):
        p_t = []  # power is not needed: no restriction on it and drawing comes from statuses
    energy = 0.0
    second, day, weekday = 0.0, None, 0
    for a, b in pairwise(bounds) if end > start else ((start, end),):
        mid = a + (b - a) / 2
        power = _interp(p_t, p_v, mid) if p_t else None
        current = _interp(i_t, i_v, mid) if i_t else None
        if ct.energy_thresholds:
            energy = profile.energy_at(mid)
        if ct.local:
            local = mid.astimezone(tz)
            second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
            day, weekday = local.date(), local.weekday()
        selected = ct.select(order, second, day, weekday, energy, power, current, mid - start)
        drawing = profile.drawing_at(mid, power)
        key = (selected[_ENERGY], selected[_TIME], selected[_PARKING])
        last = spans[-1] if spans else None
        if last is not None and last.drawing == drawing and last.selected == key:
            last.end = b
        else:
            last = _Span(a, b, drawing, key)
            spans.append(last)
        if flat < 0 <= selected[_FLAT]:
            flat = selected[_FLAT]
            last.flat = flat
    return spans, exact_energy


def _extremes(
    ts: list[datetime], vs: list[float], a: datetime, b: datetime, scale: float
) -> tuple[Decimal, Decimal]:
    first = _interp(ts, vs, a)
    final = _interp_left(ts, vs, b)
    inner = vs[bisect_right(ts, a) : bisect_left(ts, b)]
    low, high = min(first, final), max(first, final)
    if inner:
        low, high = min(low, min(inner)), max(high, max(inner))
    return _dec6(low / scale), _dec6(high / scale)


def _check_periods(
    ct: _Compiled, begin: datetime, end: datetime, changes: int, max_periods: int | None
) -> None:
    """Refuse, before any work, a stretch from `begin` to `end` whose time boundaries alone
    (the tariff's local times of day on every day, durations, `changes` status changes)
    exceed `max_periods`: their number is known from the tariff and the dates."""
    if max_periods is None:
        return
    candidates = len(ct.durations) + changes
    if ct.local:
        candidates += ((end - begin).days + 1) * len(ct.times)
    if candidates > max_periods:
        raise TooManyPeriods(
            f"pricing needs about {candidates} charging periods, "
            f"more than the {max_periods} allowed"
        )


def price_session(
    tariff: Tariff, usage: Usage, tz: ZoneInfo, *, max_periods: int | None = None
) -> Cost:
    """Price `usage` under `tariff`; local restrictions are read in `tz` (the location's zone).

    With `max_periods`, a session that needs more charging periods is refused with
    TooManyPeriods: those that time alone makes (a long session under a time-of-day tariff)
    before any work, the rest once counted.

    Rules (OCPI 2.2.1 with the release-2.2.1-bugfixes errata):

    * Charging periods (mod_cdrs "ChargingPeriod"): a new period starts whenever the selected
      ENERGY, TIME or PARKING_TIME price component changes or the vehicle starts or stops
      drawing. Candidate moments: local times of day of the restrictions (and midnight for
      date and weekday restrictions), DST offset changes, min/max_duration after the start,
      status changes, and the moments at which energy, power or current reach a restriction's
      threshold, interpolated linearly between readings (two readings with the same timestamp
      make a step). Each stretch between candidates is judged at its midpoint. Periods carry
      ENERGY (kWh), TIME or PARKING_TIME (hours), and MIN/MAX_CURRENT or MIN/MAX_POWER when
      the tariff restricts on current or power (the information behind a price change).
    * Restrictions (mod_tariffs "TariffRestrictions") are ANDed. start_time is inclusive,
      end_time exclusive, end_time before start_time wraps past midnight, 00:00 as end_time is
      the end of the day and equal times mean all day; start_date inclusive, end_date
      exclusive; time, date and weekday are those of the local wall clock at that moment (a
      22:00-06:00 window on FRIDAY covers Friday 00:00-06:00 and 22:00-24:00). min_* are
      inclusive and max_* exclusive; kWh is the energy so far, duration the time since the
      session start; a power or current restriction does not match without power or current
      data (power falls back to the average between register readings).
    * Per dimension, the first element in list order whose restrictions match and that has
      a component of that dimension prices it (mod_tariffs "Tariff object"); within an
      element, the first component of a type counts.
    * TIME prices time while drawing, PARKING_TIME time while not drawing (errata: the vehicle
      does not request power); neither stands in for the other. Drawing comes from
      `statuses` when given (before the first change: the opposite of it), else from active
      power >= IDLE_POWER_W (without power readings: the average power between energy
      register readings, so a register that stops rising means parking), else the whole
      session counts as drawing.
    * ENERGY is priced on the energy register relative to its value at the start (made
      monotonic); `usage.energy_wh`, when set, is the total and scales the register profile
      (or, without a register, follows measured power, else the drawing time).
    * FLAT is billed once: from the first element with a FLAT component that matches at the
      earliest moment any does.
    * step_size (mod_cdrs "step_size", errata examples): once per session for ENERGY and once
      for TIME and PARKING_TIME together. The dimension of the last period billed for time
      decides: its component's step_size rounds up the session total of that dimension
      (only time some component priced) and the extra is billed at that component's price.
      FLAT has no step.
    * Reservations (usage.reserved_from before start): the time from reserved_from to start is
      one more stretch, priced only by elements restricted to RESERVATION (their FLAT once and
      TIME per hour, step_size applied to the reservation time alone), reported as
      RESERVATION_TIME and in total_reservation_cost; such elements never price the session.
    * VAT: incl = excl * (1 + vat / 100) per component. A component without vat has no
      computable incl_vat (2.2.1 "First hour free" example); a sum with such a non-zero part
      has incl_vat None. min_price/max_price clamp excl and incl independently; a bound
      without incl_vat that changes the excl total leaves incl_vat None.
    * Datetimes may be in any zone (they are instants; periods start in UTC). Arithmetic is
      Decimal at 40 digits, volumes summed per price component before their one division;
      rounding happens only in cost_to_ocpi and display_amount. Measured floats enter as
      Decimals to 0.001 (Wh, W, A).
    """
    if usage.start.utcoffset() is None or usage.end.utcoffset() is None:
        raise ValueError("usage.start and usage.end must be timezone-aware")
    start, end = usage.start.astimezone(UTC), usage.end.astimezone(UTC)
    if end < start:
        raise ValueError("usage.end is before usage.start")
    ct = _compiled(tariff)
    reserved_from = usage.reserved_from
    if reserved_from is not None and reserved_from < start:
        _check_periods(ct, reserved_from, end, len(usage.statuses), max_periods)
    else:
        _check_periods(ct, start, end, len(usage.statuses), max_periods)
    with localcontext(_CONTEXT):
        periods: list[ChargingPeriod] = []
        lines: list[_Line] = []
        if reserved_from is not None and reserved_from < start:
            begin = reserved_from.astimezone(UTC)
            _reservation(ct, begin, start, tz, ct.reserved_order, periods, lines)
        profile = _Profile(usage, start, end, bool(ct.thresholds_a))
        spans, exact_energy = _session_spans(ct, start, end, profile, tz)
        if max_periods is not None and len(periods) + len(spans) > max_periods:
            raise TooManyPeriods(
                f"pricing needs {len(periods) + len(spans)} charging periods, "
                f"more than the {max_periods} allowed"
            )
        parking_us = _session_periods(ct, end, profile, spans, exact_energy, periods, lines)
        return _total(
            ct,
            periods,
            lines,
            total_energy_kwh=profile.total_energy / _D1000,
            total_time_hours=_hours(_us(end - start)),
            total_parking_time_hours=_hours(parking_us),
        )


def _session_periods(
    ct: _Compiled,
    end: datetime,
    profile: _Profile,
    spans: list[_Span],
    exact_energy: dict[datetime, Decimal],
    periods: list[ChargingPeriod],
    lines: list[_Line],
) -> int:
    """Charging periods and billed lines of the session's spans; returns the parking µs."""
    energies: list[Decimal] = []
    for t in [s.start for s in spans] + [end]:
        if t == end:
            value = profile.total_energy
        elif t in exact_energy:
            value = exact_energy[t]
        else:
            value = _dec(profile.energy_at(t))
        energies.append(max(value, energies[-1]) if energies else value)
    energies[0] = _D0
    with_current = bool(profile.i_t and ct.thresholds_a)
    with_power = profile.p_measured and bool(ct.thresholds_w)
    parking_us = 0
    for k, span in enumerate(spans):
        length = _us(span.end - span.start)
        energy_wh = energies[k + 1] - energies[k]
        dims = []
        if energy_wh or span.drawing:
            dims.append(Dimension(CdrDimensionType.ENERGY, energy_wh / _D1000))
        if span.drawing:
            dims.append(Dimension(CdrDimensionType.TIME, _hours(length)))
        else:
            parking_us += length
            dims.append(Dimension(CdrDimensionType.PARKING_TIME, _hours(length)))
        if with_current:
            low, high = _extremes(profile.i_t, profile.i_v, span.start, span.end, 1.0)
            dims.append(Dimension(CdrDimensionType.MIN_CURRENT, low))
            dims.append(Dimension(CdrDimensionType.MAX_CURRENT, high))
        if with_power:
            low, high = _extremes(profile.p_t, profile.p_v, span.start, span.end, 1000.0)
            dims.append(Dimension(CdrDimensionType.MIN_POWER, low))
            dims.append(Dimension(CdrDimensionType.MAX_POWER, high))
        periods.append(ChargingPeriod(span.start, tuple(dims), ct.tariff_id))
        if span.flat >= 0:
            flat = ct.component(span.flat, _FLAT)
            lines.append(_Line(_FIXED, _BILL_FLAT, flat, _D1, _D1))
        e_index, t_index, p_index = span.selected
        if e_index >= 0 and energy_wh:
            component = ct.component(e_index, _ENERGY)
            lines.append(_Line(_ENERGY_COST, _BILL_ENERGY, component, energy_wh, _D1000))
        if length:
            if span.drawing and t_index >= 0:
                component = ct.component(t_index, _TIME)
                lines.append(_Line(_TIME_COST, _BILL_TIME, component, Decimal(length), _D_HOUR))
            elif not span.drawing and p_index >= 0:
                component = ct.component(p_index, _PARKING)
                volume = Decimal(length)
                lines.append(_Line(_PARKING_COST, _BILL_PARKING, component, volume, _D_HOUR))
    return parking_us


def price_expired_reservation(
    tariff: Tariff,
    reserved_from: datetime,
    expired_at: datetime,
    tz: ZoneInfo,
    *,
    max_periods: int | None = None,
) -> Cost:
    """The cost of a reservation that expired without a session (a reservation-only CDR).

    Elements restricted to RESERVATION_EXPIRES come first, then those restricted to
    RESERVATION (mod_tariffs ReservationRestrictionType note): their FLAT once (the
    expiry fee) and TIME for the reserved time, with that time's step_size.
    """
    if reserved_from.utcoffset() is None or expired_at.utcoffset() is None:
        raise ValueError("reserved_from and expired_at must be timezone-aware")
    if expired_at < reserved_from:
        raise ValueError("expired_at is before reserved_from")
    ct = _compiled(tariff)
    _check_periods(ct, reserved_from, expired_at, 0, max_periods)
    with localcontext(_CONTEXT):
        periods: list[ChargingPeriod] = []
        lines: list[_Line] = []
        begin, end = reserved_from.astimezone(UTC), expired_at.astimezone(UTC)
        _reservation(ct, begin, end, tz, ct.expired_order, periods, lines)
        return _total(
            ct,
            periods,
            lines,
            total_energy_kwh=_D0,
            total_time_hours=_D0,
            total_parking_time_hours=_D0,
        )


def _reservation(
    ct: _Compiled,
    begin: datetime,
    end: datetime,
    tz: ZoneInfo,
    order: list[int],
    periods: list[ChargingPeriod],
    lines: list[_Line],
) -> None:
    """Periods (RESERVATION_TIME) and lines of the reserved time from `begin` to `end`."""
    events = set(ct.local_boundaries(begin, end, tz))
    events.update(begin + d for d in ct.durations)
    bounds = [begin, *sorted(t for t in events if begin < t < end), end]
    second, day, weekday = 0.0, None, 0
    spans: list[tuple[datetime, datetime, int]] = []  # start, end, TIME element
    flat = -1
    for a, b in pairwise(bounds) if end > begin else ((begin, end),):
        mid = a + (b - a) / 2
        if ct.local:
            local = mid.astimezone(tz)
            second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
            day, weekday = local.date(), local.weekday()
        selected = ct.select(order, second, day, weekday, 0.0, None, None, mid - begin)
        if flat < 0 <= selected[_FLAT]:
            flat = selected[_FLAT]
            component = ct.component(flat, _FLAT)
            lines.append(_Line(_RESERVATION_COST, _BILL_FLAT, component, _D1, _D1))
        if spans and spans[-1][2] == selected[_TIME]:
            spans[-1] = (spans[-1][0], b, selected[_TIME])
        else:
            spans.append((a, b, selected[_TIME]))
    for a, b, index in spans:
        length = _us(b - a)
        dims = (Dimension(CdrDimensionType.RESERVATION_TIME, _hours(length)),)
        periods.append(ChargingPeriod(a, dims, ct.tariff_id))
        if index >= 0 and length:
            component = ct.component(index, _TIME)
            volume = Decimal(length)
            lines.append(_Line(_RESERVATION_COST, _BILL_RESERVED, component, volume, _D_HOUR))


def _round_steps(lines: list[_Line], bills: tuple[int, ...], unit: Decimal) -> None:
    """Round the session total of the dimension of the last line billing any of `bills` up to
    that line's step_size; bill the extra at that line's component."""
    last = None
    for line in lines:
        if line.bills in bills and line.volume > 0:
            last = line
    if last is None or last.component.step_size <= 0:
        return
    total = sum((ln.volume for ln in lines if ln.bills == last.bills), _D0)
    step = last.component.step_size * unit
    billed = (total / step).to_integral_value(rounding=ROUND_CEILING) * step
    if billed > total:
        lines.append(_Line(last.category, last.bills, last.component, billed - total, last.divisor))


def _total(
    ct: _Compiled,
    periods: list[ChargingPeriod],
    lines: list[_Line],
    *,
    total_energy_kwh: Decimal,
    total_time_hours: Decimal,
    total_parking_time_hours: Decimal,
) -> Cost:
    _round_steps(lines, (_BILL_ENERGY,), Decimal(1))
    _round_steps(lines, (_BILL_TIME, _BILL_PARKING), _D_US_PER_S)
    _round_steps(lines, (_BILL_RESERVED,), _D_US_PER_S)
    # One amount per component and category: the volume is summed first, so that an amount
    # is divided (by 1000 Wh or 3.6e9 µs) and rounded to 40 digits only once.
    volumes: dict[tuple[int, int], list[Any]] = {}
    for line in lines:
        key = (line.category, id(line.component))
        slot = volumes.get(key)
        if slot is None:
            volumes[key] = [line.component, line.divisor, line.volume]
        else:
            slot[2] += line.volume
    excl: list[Decimal | None] = [None] * 5
    incl: list[Decimal | None] = [None] * 5
    known = [True] * 5
    for (cat, _), (c, divisor, volume) in volumes.items():
        amount = volume * c.price / divisor
        excl[cat] = amount + (excl[cat] or _D0)
        if c.vat is not None:
            incl[cat] = amount * (_D100 + c.vat) / _D100 + (incl[cat] or _D0)
        elif amount:
            known[cat] = False
        else:
            incl[cat] = incl[cat] or _D0
    parts: list[Price | None] = []
    for cat in range(5):
        total = excl[cat]
        if total is None:
            parts.append(None)
        else:
            parts.append(Price(total, incl[cat] or _D0 if known[cat] else None))
    sum_excl = sum((p.excl_vat for p in parts if p is not None), _D0)
    sum_incl: Decimal | None = _D0
    for p in parts:
        if p is not None:
            sum_incl = None if p.incl_vat is None or sum_incl is None else sum_incl + p.incl_vat
    sum_excl, sum_incl = _clamp(sum_excl, sum_incl, ct.min_price, lower=True)
    sum_excl, sum_incl = _clamp(sum_excl, sum_incl, ct.max_price, lower=False)
    return Cost(
        currency=ct.currency,
        tariff_id=ct.tariff_id,
        charging_periods=tuple(periods),
        total_cost=Price(sum_excl, sum_incl),
        total_fixed_cost=parts[_FIXED],
        total_energy_cost=parts[_ENERGY_COST],
        total_time_cost=parts[_TIME_COST],
        total_parking_cost=parts[_PARKING_COST],
        total_energy_kwh=total_energy_kwh,
        total_time_hours=total_time_hours,
        total_parking_time_hours=total_parking_time_hours,
        total_reservation_cost=parts[_RESERVATION_COST],
    )


def _clamp(
    excl: Decimal, incl: Decimal | None, bound: Price | None, *, lower: bool
) -> tuple[Decimal, Decimal | None]:
    """Apply min_price (lower) or max_price to excl and incl independently (mod_tariffs notes)."""
    if bound is None:
        return excl, incl
    outside = excl < bound.excl_vat if lower else excl > bound.excl_vat
    if outside:
        excl = bound.excl_vat
        if bound.incl_vat is None:
            return excl, None
    if incl is not None and bound.incl_vat is not None:
        incl = max(incl, bound.incl_vat) if lower else min(incl, bound.incl_vat)
    return excl, incl


# --- output --------------------------------------------------------------------------------


def _round4(value: Decimal) -> int | float:
    return json_number(value.quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP))


def _price_json(price: Price) -> dict[str, Any]:
    out: dict[str, Any] = {"excl_vat": _round4(price.excl_vat)}
    if price.incl_vat is not None:
        out["incl_vat"] = _round4(price.incl_vat)
    return out


def cost_to_ocpi(cost: Cost) -> dict[str, Any]:
    """The cost fields of an OCPI 2.2.1 CDR (or Session): charging_periods and totals.

    Amounts and volumes are rounded to 4 decimals, half up; optional totals that are None
    are left out. The caller adds currency and the rest of the CDR.
    """
    out: dict[str, Any] = {
        "charging_periods": [
            {
                "start_date_time": ocpi_datetime(p.start),
                "dimensions": [
                    {"type": str(d.type), "volume": _round4(d.volume)} for d in p.dimensions
                ],
            }
            | ({} if p.tariff_id is None else {"tariff_id": p.tariff_id})
            for p in cost.charging_periods
        ],
        "total_cost": _price_json(cost.total_cost),
    }
    if cost.total_fixed_cost is not None:
        out["total_fixed_cost"] = _price_json(cost.total_fixed_cost)
    out["total_energy"] = _round4(cost.total_energy_kwh)
    if cost.total_energy_cost is not None:
        out["total_energy_cost"] = _price_json(cost.total_energy_cost)
    out["total_time"] = _round4(cost.total_time_hours)
    if cost.total_time_cost is not None:
        out["total_time_cost"] = _price_json(cost.total_time_cost)
    out["total_parking_time"] = _round4(cost.total_parking_time_hours)
    if cost.total_parking_cost is not None:
        out["total_parking_cost"] = _price_json(cost.total_parking_cost)
    if cost.total_reservation_cost is not None:
        out["total_reservation_cost"] = _price_json(cost.total_reservation_cost)
    return out


# ISO 4217 minor units that are not 2.
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def minor_unit(currency: str) -> int:
    """ISO 4217 exponent of `currency` (2 unless listed otherwise)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def display_amount(amount: Decimal, currency: str) -> str:
    """`amount` rounded half up to the currency's minor unit, e.g. "12.35 EUR", "1235 JPY"."""
    exponent = Decimal(1).scaleb(-minor_unit(currency))
    return f"{amount.quantize(exponent, rounding=ROUND_HALF_UP)} {currency}"
