"""Properties of the cost engine (csms.core.cost) over generated tariffs and sessions.

Totals are the sum of their parts, incl. VAT is never below excl. VAT, cost does not fall as
a session uses more, and charging periods tile the session without gaps or overlaps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.core.cost import (
    CdrDimensionType,
    Cost,
    Reading,
    StatusChange,
    Usage,
    cost_to_ocpi,
    price_session,
)
from csms.core.tariffs import Price, Tariff, parse_tariff

AMS = ZoneInfo("Europe/Amsterdam")
BASE = datetime(2026, 3, 20, tzinfo=UTC)  # the March DST switch lies within the fortnight after
TINY = Decimal("1e-30")
NOW = datetime(2026, 1, 1, tzinfo=UTC)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

prices = st.decimals(min_value=0, max_value=5, places=3)
vats = st.none() | st.decimals(min_value=0, max_value=30, places=1)
steps = {
    "ENERGY": st.integers(1, 1000),
    "TIME": st.integers(1, 1800),
    "PARKING_TIME": st.integers(1, 1800),
    "FLAT": st.integers(0, 1),
}


@st.composite
def components(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(st.lists(st.sampled_from(sorted(steps)), min_size=1, max_size=4, unique=True))
    out = []
    for kind in kinds:
        component: dict[str, Any] = {"type": kind, "price": str(draw(prices))}
        vat = draw(vats)
        if vat is not None:
            component["vat"] = str(vat)
        component["step_size"] = draw(steps[kind])
        out.append(component)
    return out


@st.composite
def bounds(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    low = draw(st.none() | st.decimals(min_value=0, max_value=5, places=2))
    high = draw(st.none() | st.decimals(min_value=5, max_value=50, places=2))
    for key, value in (("min_price", low), ("max_price", high)):
        if value is not None:
            price: dict[str, Any] = {"excl_vat": str(value)}
            if draw(st.booleans()):
                price["incl_vat"] = str(value * Decimal("1.2"))
            out[key] = price
    return out


def build(elements: list[dict[str, Any]], extra: dict[str, Any]) -> Tariff:
    obj = {"id": "P", "currency": "EUR", "elements": elements, **extra}
    return parse_tariff(obj, country_code="NL", party_id="CSM", now=NOW)


@st.composite
def plain_tariffs(draw: st.DrawFn, with_bounds: bool = True) -> Tariff:
    """Tariffs without restrictions (one or two elements)."""
    elements = [{"price_components": draw(components())} for _ in range(draw(st.integers(1, 2)))]
    return build(elements, draw(bounds()) if with_bounds else {})


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def restrictions(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["start_time"] = hhmm(draw(st.integers(0, 24 * 60 - 1)))
    if draw(st.booleans()):
        out["end_time"] = hhmm(draw(st.integers(0, 24 * 60 - 1)))
    if draw(st.booleans()):
        days = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
        out["day_of_week"] = draw(st.lists(st.sampled_from(days), min_size=1, unique=True))
    for low, high, top in (
        ("min_kwh", "max_kwh", 60),
        ("min_power", "max_power", 50),
        ("min_current", "max_current", 64),
        ("min_duration", "max_duration", 6 * 3600),
    ):
        values = sorted(draw(st.lists(st.integers(0, top), max_size=2)))
        if len(values) == 2:
            out[low], out[high] = values
        elif values:
            out[draw(st.sampled_from((low, high)))] = values[0]
    return out


@st.composite
def restricted_tariffs(draw: st.DrawFn) -> Tariff:
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        element: dict[str, Any] = {"price_components": draw(components())}
        if draw(st.booleans()):
            element["restrictions"] = draw(restrictions())
        elements.append(element)
    return build(elements, draw(bounds()))


def simple_usage(start: datetime, charge_s: int, wh: int, park_s: int) -> Usage:
    """Charges `wh` evenly for charge_s seconds, then stays plugged in for park_s seconds."""
    stop = start + timedelta(seconds=charge_s)
    end = stop + timedelta(seconds=park_s)
    readings = (Reading(start, 0.0, None, None), Reading(stop, float(wh), None, None))
    statuses = (StatusChange(start, True), StatusChange(stop, False))
    return Usage(start, end, readings, statuses if park_s else statuses[:1])


starts = st.integers(0, 14 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m))


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    """Arbitrary readings (some before the start or after the end, some missing values)."""
    start = draw(starts)
    total = draw(st.integers(0, 12 * 3600))
    end = start + timedelta(seconds=total)
    offsets = sorted(draw(st.lists(st.integers(-600, total + 600), max_size=40)))
    register = draw(st.floats(0, 1e6))
    readings = []
    for offset in offsets:
        register += draw(st.floats(0, 5000))
        readings.append(
            Reading(
                start + timedelta(seconds=offset),
                draw(st.none() | st.just(register)),
                draw(st.none() | st.floats(0, 60_000)),
                draw(st.none() | st.floats(0, 80)),
            )
        )
    changes = sorted(draw(st.lists(st.integers(-600, total + 600), max_size=6)))
    statuses = tuple(
        StatusChange(start + timedelta(seconds=c), draw(st.booleans())) for c in changes
    )
    energy = draw(st.none() | st.integers(0, 200_000))
    reserved = draw(st.none() | st.integers(1, 3600))
    return Usage(
        start=start,
        end=end,
        readings=tuple(readings),
        statuses=statuses,
        energy_wh=energy,
        reserved_from=None if reserved is None else start - timedelta(seconds=reserved),
    )


def parts(cost: Cost) -> list[Price]:
    found = [
        cost.total_fixed_cost,
        cost.total_energy_cost,
        cost.total_time_cost,
        cost.total_parking_cost,
        cost.total_reservation_cost,
    ]
    return [p for p in found if p is not None]


def close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= TINY


def exact_sum(values: list[Decimal]) -> Decimal:
    with localcontext(Context(prec=80)):
        return sum(values, Decimal(0))


@SETTINGS
@given(
    plain_tariffs(with_bounds=False),
    starts,
    st.integers(0, 8 * 3600),
    st.integers(0, 100_000),
    st.integers(0, 4 * 3600),
)
def test_total_is_the_sum_of_its_parts(
    tariff: Tariff, start: datetime, charge_s: int, wh: int, park_s: int
) -> None:
    cost = price_session(tariff, simple_usage(start, charge_s, wh, park_s), AMS)
    found = parts(cost)
    assert close(cost.total_cost.excl_vat, exact_sum([p.excl_vat for p in found]))
    incl = [p.incl_vat for p in found]
    if None in incl:
        assert cost.total_cost.incl_vat is None
    else:
        assert cost.total_cost.incl_vat is not None
        assert close(cost.total_cost.incl_vat, exact_sum([i for i in incl if i is not None]))


@SETTINGS
@given(restricted_tariffs(), usages())
def test_incl_vat_is_never_below_excl_vat(tariff: Tariff, usage: Usage) -> None:
    cost = price_session(tariff, usage, AMS)
    for p in [cost.total_cost, *parts(cost)]:
        assert p.excl_vat >= 0
        if p.incl_vat is not None:
            assert p.incl_vat >= p.excl_vat


@SETTINGS
@given(
    plain_tariffs(),
    starts,
    st.integers(0, 8 * 3600),
    st.integers(0, 100_000),
    st.integers(0, 4 * 3600),
    st.integers(0, 100_000),
    st.integers(0, 3 * 3600),
    st.integers(0, 3 * 3600),
)
def test_cost_never_falls_when_energy_or_time_grows(
    tariff: Tariff,
    start: datetime,
    charge_s: int,
    wh: int,
    park_s: int,
    more_wh: int,
    more_charge_s: int,
    more_park_s: int,
) -> None:
    """More energy, a longer charge or (once parking has begun) a longer stay never costs
    less. Parking that begins at all may: the step_size of the charging time then no longer
    applies (mod_cdrs), which the spec intends."""
    before = price_session(tariff, simple_usage(start, charge_s, wh, park_s), AMS).total_cost
    grown = [
        simple_usage(start, charge_s, wh + more_wh, park_s),
        simple_usage(start, charge_s + more_charge_s, wh, park_s),
    ]
    if park_s:
        grown.append(simple_usage(start, charge_s, wh, park_s + more_park_s))
    for usage in grown:
        after = price_session(tariff, usage, AMS).total_cost
        assert after.excl_vat >= before.excl_vat
        if after.incl_vat is not None and before.incl_vat is not None:
            assert after.incl_vat >= before.incl_vat


@SETTINGS
@given(restricted_tariffs(), usages())
def test_periods_tile_the_session(tariff: Tariff, usage: Usage) -> None:
    cost = price_session(tariff, usage, AMS)
    periods = cost.charging_periods
    session = [p for p in periods if p.start >= usage.start]
    reserved = [p for p in periods if p.start < usage.start]
    assert periods[: len(reserved)] == tuple(reserved)  # reservation first
    if reserved:
        assert usage.reserved_from is not None
        assert reserved[0].start == usage.reserved_from
    assert session and session[0].start == usage.start
    moments = [p.start for p in periods]
    assert moments == sorted(set(moments))  # ordered, no two at one moment
    assert all(p.start < usage.end for p in session) or usage.end == usage.start
    assert all(p.tariff_id == tariff.id and p.dimensions for p in periods)
    assert all(p.start.utcoffset() == timedelta(0) for p in periods)

    def total(kind: CdrDimensionType) -> Decimal:
        return sum((d.volume for p in session for d in p.dimensions if d.type == kind), Decimal(0))

    hours = total(CdrDimensionType.TIME) + total(CdrDimensionType.PARKING_TIME)
    assert abs(hours - cost.total_time_hours) < Decimal("1e-25")
    assert abs(total(CdrDimensionType.PARKING_TIME) - cost.total_parking_time_hours) < Decimal(
        "1e-25"
    )
    assert total(CdrDimensionType.ENERGY) == cost.total_energy_kwh
    assert all(d.volume >= 0 for p in periods for d in p.dimensions)  # energy never runs backwards
    json.dumps(cost_to_ocpi(cost))


@SETTINGS
@given(restricted_tariffs(), usages())
def test_pricing_is_deterministic(tariff: Tariff, usage: Usage) -> None:
    assert price_session(tariff, usage, AMS) == price_session(tariff, usage, AMS)
