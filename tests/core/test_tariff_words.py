"""A tariff in plain words (csms.core.tariff_words): prices incl. VAT where the tariff
gives it, each dimension's unit, steps, conditions, session bounds, and the OCPI 2.2.1
examples as a driver reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from csms.core.tariff_words import describe, unit_price
from csms.core.tariffs import (
    DayOfWeek,
    DimensionType,
    Price,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffElement,
    TariffRestrictions,
    parse_tariff,
)
from tests.core.test_tariffs import NOW, SPEC_EXAMPLES

D = Decimal
ENERGY = DimensionType.ENERGY
TIME = DimensionType.TIME
PARKING = DimensionType.PARKING_TIME
FLAT = DimensionType.FLAT


def _tariff(
    *elements: TariffElement,
    currency: str = "EUR",
    min_price: Price | None = None,
    max_price: Price | None = None,
) -> Tariff:
    return Tariff(
        country_code="DE",
        party_id="ABC",
        id="ADHOC",
        currency=currency,
        elements=elements,
        min_price=min_price,
        max_price=max_price,
        last_updated=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _element(*components: PriceComponent, **restrictions: object) -> TariffElement:
    return TariffElement(
        components,
        TariffRestrictions(**restrictions) if restrictions else None,  # type: ignore[arg-type]
    )


def test_prices_incl_vat_keep_up_to_four_decimals() -> None:
    tariff = _tariff(
        _element(
            PriceComponent(ENERGY, D("0.42"), vat=D("19")),
            PriceComponent(TIME, D("1.68"), vat=D("19")),
            PriceComponent(FLAT, D("0.84"), vat=D("19")),
        )
    )
    assert describe(tariff) == [
        "0.4998 EUR per kWh",
        "1.9992 EUR per hour of charging",
        "1.00 EUR start fee",
        "Prices incl. 19 % VAT",
    ]


def test_round_prices_incl_vat_read_as_prices_are_written() -> None:
    tariff = _tariff(
        _element(
            PriceComponent(ENERGY, D("0.50") / D("1.19"), vat=D("19")),
            PriceComponent(FLAT, D("1.00"), vat=D("0")),
        )
    )
    assert describe(tariff) == ["0.50 EUR per kWh", "1.00 EUR start fee", "Prices incl. VAT"]


def test_excluding_vat_shows_the_tariff_s_own_prices() -> None:
    tariff = _tariff(_element(PriceComponent(ENERGY, D("0.50"), vat=D("19"))))
    assert describe(tariff, vat_included=False) == [
        "0.50 EUR per kWh",
        "Prices excl. 19 % VAT",
    ]


def test_a_tariff_without_vat_says_so_and_shows_its_prices() -> None:
    tariff = _tariff(_element(PriceComponent(ENERGY, D("0.50")), PriceComponent(PARKING, D(6))))
    assert describe(tariff) == [
        "0.50 EUR per kWh",
        "6.00 EUR per hour of parking",
        "No VAT stated",
    ]


def test_vat_given_for_some_components_only() -> None:
    tariff = _tariff(
        _element(PriceComponent(ENERGY, D("0.50"), vat=D(10)), PriceComponent(FLAT, D(1)))
    )
    assert describe(tariff) == [
        "0.55 EUR per kWh",
        "1.00 EUR start fee",
        "VAT included where the tariff states it",
    ]


def test_zero_vat() -> None:
    tariff = _tariff(_element(PriceComponent(ENERGY, D("0.30"), vat=D(0))))
    assert describe(tariff) == ["0.30 EUR per kWh", "No VAT"]


def test_steps_in_kwh_and_time() -> None:
    tariff = _tariff(
        _element(
            PriceComponent(ENERGY, D("0.25"), vat=D(20), step_size=100),
            PriceComponent(TIME, D(2), vat=D(20), step_size=900),
            PriceComponent(PARKING, D(5), vat=D(20), step_size=5400),
        )
    )
    assert describe(tariff) == [
        "0.30 EUR per kWh (billed per started 0.1 kWh)",
        "2.40 EUR per hour of charging (billed per started 15 min)",
        "6.00 EUR per hour of parking (billed per started 1 h 30 min)",
        "Prices incl. 20 % VAT",
    ]


def test_conditions_and_otherwise() -> None:
    tariff = _tariff(
        _element(
            PriceComponent(ENERGY, D("0.20"), vat=D(0)),
            start_time=time(22, 0),
            end_time=time(6, 0),
        ),
        _element(
            PriceComponent(ENERGY, D("0.30"), vat=D(0)),
            day_of_week=frozenset({DayOfWeek.SATURDAY, DayOfWeek.SUNDAY}),
        ),
        _element(PriceComponent(ENERGY, D("0.40"), vat=D(0))),
        _element(
            PriceComponent(PARKING, D(3), vat=D(0)),
            min_duration=3600,
            day_of_week=frozenset({DayOfWeek.MONDAY, DayOfWeek.WEDNESDAY, DayOfWeek.FRIDAY}),
        ),
    )
    assert describe(tariff) == [
        "0.20 EUR per kWh from 22:00 to 06:00",
        "0.30 EUR per kWh at weekends",
        "0.40 EUR per kWh otherwise",
        "3.00 EUR per hour of parking on Mondays, Wednesdays and Fridays, after the first 1 h",
        "No VAT",
    ]


@pytest.mark.parametrize(
    ("restrictions", "words"),
    [
        ({"start_time": time(7, 30)}, "from 07:30"),
        ({"end_time": time(7, 30)}, "before 07:30"),
        (
            {"day_of_week": frozenset(DayOfWeek) - {DayOfWeek.SATURDAY, DayOfWeek.SUNDAY}},
            "on weekdays",
        ),
        ({"day_of_week": frozenset({DayOfWeek.TUESDAY})}, "on Tuesdays"),
        (
            {"start_date": date(2026, 6, 1), "end_date": date(2026, 9, 1)},
            "from 2026-06-01, before 2026-09-01",
        ),
        ({"min_kwh": D(10)}, "after the first 10 kWh"),
        ({"max_kwh": D("2.5")}, "for the first 2.5 kWh"),
        ({"min_kwh": D(0), "max_kwh": D(5)}, "for the first 5 kWh"),
        ({"min_kwh": D(5), "max_kwh": D(20)}, "from 5 kWh to 20 kWh"),
        ({"max_power": D(50)}, "below 50 kW of power"),
        ({"min_power": D("22.0")}, "at 22 kW of power or more"),
        ({"min_current": D(16), "max_current": D(32)}, "from 16 to below 32 A of current"),
        ({"max_duration": 1800}, "for the first 30 min"),
        ({"min_duration": 0, "max_duration": 1800}, "for the first 30 min"),
        ({"min_duration": 1800, "max_duration": 7200}, "from 30 min to 2 h of the session"),
    ],
)
def test_each_restriction_in_words(restrictions: dict[str, object], words: str) -> None:
    tariff = _tariff(_element(PriceComponent(ENERGY, D(1), vat=D(0)), **restrictions))
    assert describe(tariff)[0] == f"1.00 EUR per kWh {words}"


def test_reservation_elements_are_left_out() -> None:
    tariff = _tariff(
        _element(
            PriceComponent(TIME, D(5), vat=D(0)),
            reservation=ReservationRestrictionType.RESERVATION,
        ),
        _element(PriceComponent(ENERGY, D("0.25"), vat=D(0))),
    )
    assert describe(tariff) == ["0.25 EUR per kWh", "No VAT"]


def test_session_bounds_incl_vat_when_given() -> None:
    tariff = _tariff(
        _element(PriceComponent(ENERGY, D("0.25"), vat=D(10))),
        min_price=Price(D("0.50"), D("0.55")),
        max_price=Price(D(10)),
    )
    assert describe(tariff) == [
        "0.275 EUR per kWh",
        "At least 0.55 EUR per session",
        "At most 10.00 EUR per session",
        "Prices incl. 10 % VAT",
    ]
    assert describe(tariff, vat_included=False)[1] == "At least 0.50 EUR per session"


def test_a_free_tariff() -> None:
    tariff = _tariff(_element(PriceComponent(FLAT, D(0)), PriceComponent(ENERGY, D(0))))
    assert describe(tariff) == ["Free of charge"]
    with_minimum = _tariff(_element(PriceComponent(ENERGY, D(0))), min_price=Price(D(1)))
    assert describe(with_minimum) == [
        "0.00 EUR per kWh",
        "At least 1.00 EUR per session",
        "No VAT stated",
    ]


def test_currencies_without_cents() -> None:
    tariff = _tariff(
        _element(PriceComponent(ENERGY, D(40), vat=D(10)), PriceComponent(FLAT, D(100))),
        currency="JPY",
    )
    assert describe(tariff) == [
        "44 JPY per kWh",
        "100 JPY start fee",
        "VAT included where the tariff states it",
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (D("0.5"), "EUR", "0.50 EUR"),
        (D("0.595"), "EUR", "0.595 EUR"),
        (D("0.357142857"), "EUR", "0.3571 EUR"),
        (D("0.59995"), "EUR", "0.60 EUR"),
        (D(12), "EUR", "12.00 EUR"),
        (D("44.000"), "JPY", "44 JPY"),
        (D("44.5"), "JPY", "44.5 JPY"),
        (D("1.2345"), "BHD", "1.2345 BHD"),
        (D("1.2"), "BHD", "1.200 BHD"),
    ],
)
def test_unit_prices(amount: Decimal, currency: str, text: str) -> None:
    assert unit_price(amount, currency) == text


def test_ocpi_examples_as_a_driver_reads_them() -> None:
    def words(name: str) -> list[str]:
        tariff = parse_tariff(SPEC_EXAMPLES[name], country_code="DE", party_id="ALL", now=NOW)
        return describe(tariff)

    assert words("tariff_6_025kwh_start_max_price") == [
        "0.60 EUR start fee",
        "0.275 EUR per kWh",
        "At most 11.00 EUR per session",
        "Prices incl. VAT",
    ]
    assert words("tariffrestriction_example_max_power") == [
        "0.24 EUR per kWh below 16 kW of power",
        "0.42 EUR per kWh below 32 kW of power",
        "0.60 EUR per kWh otherwise",
        "Prices incl. 20 % VAT",
    ]
    assert words("tariff_5_free_of_charge") == ["Free of charge"]
    assert words("tariff_7_first_hour_kwh_free") == [
        "0.00 EUR per hour of parking for the first 1 h (billed per started 1 min)",
        "2.00 EUR per hour of parking from 1 h to 3 h of the session (billed per started 1 min)",
        "3.00 EUR per hour of parking after the first 3 h (billed per started 1 min)",
        "0.00 EUR per kWh for the first 1 kWh",
        "0.20 EUR per kWh after the first 1 kWh",
        "No VAT stated",
    ]
