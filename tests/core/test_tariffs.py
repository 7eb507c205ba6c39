"""Parsing, validation and JSON output of OCPI 2.2.1 tariffs (csms.core.tariffs).

SPEC_EXAMPLES holds the example Tariff objects of the OCPI 2.2.1 tariffs module (ocpi/ocpi,
tag 2.2.1, examples/*.json; unchanged on release-2.2.1-bugfixes except that tariff_7 was
removed there), keyed by their file name; test_cost prices them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from csms.core.errors import InvalidInput
from csms.core.tariffs import (
    DayOfWeek,
    DimensionType,
    DisplayText,
    Price,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffElement,
    TariffError,
    TariffRestrictions,
    TariffType,
    as_published,
    ocpi_datetime,
    parse_tariff,
    parse_tariffs,
    tariff_to_ocpi,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]


def _pc(kind: str, price: object, step: object, vat: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price}
    if vat is not None:
        out["vat"] = vat
    out["step_size"] = step
    return out


def _tariff(
    tid: str, elements: list[dict[str, Any]], last_updated: str, **extra: Any
) -> dict[str, Any]:
    return {
        "country_code": "DE",
        "party_id": "ALL",
        "id": tid,
        "currency": "EUR",
        **extra,
        "elements": elements,
        "last_updated": last_updated,
    }


_2015 = "2015-06-29T20:39:09Z"
_2019 = "2019-02-03T17:00:11Z"


SPEC_EXAMPLES: dict[str, dict[str, Any]] = {
    # PUT example: 2 EUR/h charging time; note it has no last_updated.
    "tariff_put_example": {
        "country_code": "DE",
        "party_id": "ALL",
        "id": "12",
        "currency": "EUR",
        "elements": [{"price_components": [_pc("TIME", 2.00, 300, 10.0)]}],
    },
    "tariff_1_simple_2hour": _tariff(
        "12", [{"price_components": [_pc("TIME", 2.00, 60, 10.0)]}], _2015
    ),
    "tariff_2_alt_text": _tariff(
        "12",
        [{"price_components": [_pc("TIME", 1.90, 300, 5.2)]}],
        _2015,
        type="AD_HOC_PAYMENT",
        tariff_alt_text=[
            {"language": "en", "text": "2.00 euro p/hour including VAT."},
            {"language": "nl", "text": "2.00 euro p/uur inclusief BTW."},
        ],
    ),
    "tariff_3_alt_url": _tariff(
        "13",
        [{"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 100, 10.0)]}],
        _2015,
        type="PROFILE_CHEAP",
        tariff_alt_url="https://company.com/tariffs/13",
    ),
    "tariff_4_complex": _tariff(
        "14",
        [
            {"price_components": [_pc("FLAT", 2.50, 1, 15.0)]},
            {
                "price_components": [_pc("TIME", 1.00, 900, 20.0)],
                "restrictions": {"max_current": 32.00},
            },
            {
                "price_components": [_pc("TIME", 2.00, 600, 20.0)],
                "restrictions": {"min_current": 32.00, "day_of_week": WEEKDAYS},
            },
            {
                "price_components": [_pc("TIME", 1.25, 600, 20.0)],
                "restrictions": {"min_current": 32.00, "day_of_week": ["SATURDAY", "SUNDAY"]},
            },
            {
                "price_components": [_pc("PARKING_TIME", 5.00, 300, 10.0)],
                "restrictions": {
                    "start_time": "09:00",
                    "end_time": "18:00",
                    "day_of_week": WEEKDAYS,
                },
            },
            {
                "price_components": [_pc("PARKING_TIME", 6.00, 300, 10.0)],
                "restrictions": {
                    "start_time": "10:00",
                    "end_time": "17:00",
                    "day_of_week": ["SATURDAY"],
                },
            },
        ],
        _2015,
        type="REGULAR",
        tariff_alt_url="https://company.com/tariffs/14",
    ),
    # Free of charge: FLAT 0.00, no VAT, and (sic) step_size 0.
    "tariff_5_free_of_charge": _tariff("15", [{"price_components": [_pc("FLAT", 0.00, 0)]}], _2015),
    "tariff_6_025kwh_start_max_price": _tariff(
        "16",
        [{"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 1, 10.0)]}],
        "2018-12-17T17:15:01Z",
        max_price={"excl_vat": 10.00, "incl_vat": 11.00},
        end_date_time="2019-06-30T23:59:59Z",
    ),
    # Only in tag 2.2.1; removed in the errata as it conflicts with the spec (see test_cost).
    "tariff_7_first_hour_kwh_free": _tariff(
        "52",
        [
            {
                "price_components": [_pc("PARKING_TIME", 0.0, 60)],
                "restrictions": {"min_duration": 0, "max_duration": 3600},
            },
            {
                "price_components": [_pc("PARKING_TIME", 2.0, 60)],
                "restrictions": {"min_duration": 3600, "max_duration": 10800},
            },
            {
                "price_components": [_pc("PARKING_TIME", 3.0, 60)],
                "restrictions": {"min_duration": 10800},
            },
            {"price_components": [_pc("ENERGY", 0.0, 1)], "restrictions": {"max_kwh": 1.0}},
            {"price_components": [_pc("ENERGY", 0.2, 1)], "restrictions": {"min_kwh": 1.0}},
        ],
        "2018-12-29T15:55:58Z",
    ),
    "tariff_8_simple_025kwh": _tariff(
        "16", [{"price_components": [_pc("ENERGY", 0.25, 1, 10.0)]}], "2018-12-17T11:16:55Z"
    ),
    "tariff_9_025kwh_start": _tariff(
        "17",
        [{"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 1, 10.0)]}],
        "2018-12-17T11:36:01Z",
    ),
    "tariff_10_025kwh_parking_start": _tariff(
        "18",
        [
            {
                "price_components": [
                    _pc("FLAT", 0.50, 1, 20.0),
                    _pc("ENERGY", 0.25, 1, 10.0),
                    _pc("PARKING_TIME", 2.00, 900, 20.0),
                ]
            }
        ],
        "2018-12-17T11:44:10Z",
    ),
    "tariff_11_not_possible_alt_text": _tariff(
        "19",
        [{"price_components": [_pc("FLAT", 0.40, 1, 25.0), _pc("TIME", 1.90, 300, 5.2)]}],
        "2018-12-29T15:55:58Z",
        type="AD_HOC_PAYMENT",
        tariff_alt_text=[
            {
                "language": "en",
                "text": "2.00 euro p/hour, start tariff debit card: 0.25 euro, "
                "credit card: 0.50 euro including VAT.",
            },
            {
                "language": "nl",
                "text": "2.00 euro p/uur, starttarief bankpas: 0,25 euro, "
                "creditkaart: 0,50 euro inclusief BTW.",
            },
        ],
    ),
    "tariff_12_025kwh_min_price": _tariff(
        "20",
        [{"price_components": [_pc("ENERGY", 0.25, 1, 10.0)]}],
        "2018-12-17T16:45:21Z",
        min_price={"excl_vat": 0.50, "incl_vat": 0.55},
    ),
    "tariff_13_simple_3hour_5parking": _tariff(
        "21",
        [
            {
                "price_components": [
                    _pc("TIME", 3.00, 60, 10.0),
                    _pc("PARKING_TIME", 5.0, 300, 20.0),
                ]
            }
        ],
        "2018-12-17T17:00:43Z",
    ),
    "tariff_14_step_size": _tariff(
        "22",
        [
            {
                "price_components": [_pc("TIME", 1.20, 1800), _pc("PARKING_TIME", 1.00, 900)],
                "restrictions": {"start_time": "00:00", "end_time": "17:00"},
            },
            {
                "price_components": [_pc("TIME", 2.40, 900), _pc("PARKING_TIME", 1.00, 900)],
                "restrictions": {"start_time": "17:00", "end_time": "20:00"},
            },
            {
                "price_components": [_pc("TIME", 2.40, 900)],
                "restrictions": {"start_time": "20:00", "end_time": "00:00"},
            },
        ],
        "2018-12-18T17:07:11Z",
    ),
    "tariff_15_reservation_5_euro_per_hour": _tariff(
        "20",
        [
            {
                "price_components": [_pc("TIME", 5.00, 60, 20.0)],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 1, 10.0)]},
        ],
        _2019,
    ),
    "tariff_16_reservation_2_euro_fee_5_euro_per_hour": _tariff(
        "20",
        [
            {
                "price_components": [_pc("FLAT", 2.00, 1, 20.0), _pc("TIME", 5.00, 300, 20.0)],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 1, 10.0)]},
        ],
        _2019,
    ),
    "tariff_17_reservation_with_expire_fee": _tariff(
        "20",
        [
            {
                "price_components": [_pc("FLAT", 4.00, 1, 20.0)],
                "restrictions": {"reservation": "RESERVATION_EXPIRES"},
            },
            {
                "price_components": [_pc("TIME", 2.00, 600, 20.0)],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 1, 10.0)]},
        ],
        _2019,
    ),
    "tariff_18_reservation_with_expire_time": _tariff(
        "20",
        [
            {
                "price_components": [_pc("TIME", 6.00, 600, 20.0)],
                "restrictions": {"reservation": "RESERVATION_EXPIRES"},
            },
            {
                "price_components": [_pc("TIME", 3.00, 600, 20.0)],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {"price_components": [_pc("FLAT", 0.50, 1, 20.0), _pc("ENERGY", 0.25, 1, 10.0)]},
        ],
        _2019,
    ),
    "tariffrestriction_example_max_power": _tariff(
        "1",
        [
            {
                "price_components": [_pc("ENERGY", 0.20, 1, 20.0)],
                "restrictions": {"max_power": 16.00},
            },
            {
                "price_components": [_pc("ENERGY", 0.35, 1, 20.0)],
                "restrictions": {"max_power": 32.00},
            },
            {"price_components": [_pc("ENERGY", 0.50, 1, 20.0)]},
        ],
        "2018-12-05T12:01:09Z",
        type="REGULAR",
    ),
    "tariffrestriction_example_max_duration": _tariff(
        "2",
        [
            {
                "price_components": [_pc("ENERGY", 0.00, 1, 20.0)],
                "restrictions": {"max_duration": 1800},
            },
            {
                "price_components": [_pc("ENERGY", 0.25, 1, 20.0)],
                "restrictions": {"max_duration": 3600},
            },
            {"price_components": [_pc("ENERGY", 0.40, 1, 20.0)]},
        ],
        "2018-12-05T13:12:44Z",
        type="REGULAR",
    ),
}

# EnergyMix examples of the locations module (location_energymix_example_*.json).
ENERGY_MIXES: dict[str, dict[str, Any]] = {
    "simple": {"is_green_energy": True},
    "energy_provider": {
        "is_green_energy": True,
        "supplier_name": "Greenpeace Energy eG",
        "energy_product_name": "eco-power",
    },
    "complete": {
        "is_green_energy": False,
        "energy_sources": [
            {"source": "GENERAL_GREEN", "percentage": 35.9},
            {"source": "GAS", "percentage": 6.3},
            {"source": "COAL", "percentage": 33.2},
            {"source": "GENERAL_FOSSIL", "percentage": 2.9},
            {"source": "NUCLEAR", "percentage": 21.7},
        ],
        "environ_impact": [
            {"category": "NUCLEAR_WASTE", "amount": 0.0006},
            {"category": "CARBON_DIOXIDE", "amount": 372},
        ],
        "supplier_name": "E.ON Energy Deutschland",
        "energy_product_name": "E.ON DirektStrom eco",
    },
}


def spec_tariff(name: str) -> Tariff:
    return parse_tariff(SPEC_EXAMPLES[name], country_code="NL", party_id="CSM", now=NOW)


def parse(obj: object) -> Tariff:
    return parse_tariff(obj, country_code="NL", party_id="CSM", now=NOW)


def minimal(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "T1",
        "currency": "EUR",
        "elements": [{"price_components": [_pc("ENERGY", 0.25, 1, 21.0)]}],
        "last_updated": "2026-04-01T10:00:00Z",
    }
    obj.update(changes)
    return obj


# --- the spec's examples -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPEC_EXAMPLES))
def test_every_spec_example_parses_and_round_trips(name: str) -> None:
    tariff = spec_tariff(name)
    data = tariff_to_ocpi(tariff)
    assert json.loads(json.dumps(data)) == data  # plain JSON: no Decimal, no datetime
    assert spec_tariff(name) == parse(data) == tariff
    assert tariff.country_code == "DE" and tariff.party_id == "ALL"


def test_put_example_without_last_updated_takes_now() -> None:
    tariff = spec_tariff("tariff_put_example")
    assert tariff.last_updated == NOW
    assert tariff.elements == (
        TariffElement((PriceComponent(DimensionType.TIME, Decimal("2.0"), Decimal("10.0"), 300),)),
    )
    assert tariff_to_ocpi(tariff)["last_updated"] == "2026-05-01T12:00:00Z"


def test_complex_example_restrictions() -> None:
    tariff = spec_tariff("tariff_4_complex")
    assert tariff.type is TariffType.REGULAR
    assert tariff.tariff_alt_url == "https://company.com/tariffs/14"
    assert [e.restrictions for e in tariff.elements] == [
        None,
        TariffRestrictions(max_current=Decimal("32.0")),
        TariffRestrictions(
            min_current=Decimal("32.0"),
            day_of_week=frozenset(DayOfWeek(d) for d in WEEKDAYS),
        ),
        TariffRestrictions(
            min_current=Decimal("32.0"),
            day_of_week=frozenset({DayOfWeek.SATURDAY, DayOfWeek.SUNDAY}),
        ),
        TariffRestrictions(
            start_time=time(9, 0),
            end_time=time(18, 0),
            day_of_week=frozenset(DayOfWeek(d) for d in WEEKDAYS),
        ),
        TariffRestrictions(
            start_time=time(10, 0),
            end_time=time(17, 0),
            day_of_week=frozenset({DayOfWeek.SATURDAY}),
        ),
    ]
    out = tariff_to_ocpi(tariff)
    assert out["elements"][2]["restrictions"]["day_of_week"] == WEEKDAYS  # in week order
    assert out["elements"][4]["restrictions"] == {
        "start_time": "09:00",
        "end_time": "18:00",
        "day_of_week": WEEKDAYS,
    }


def test_free_of_charge_example_accepts_step_size_zero_for_flat() -> None:
    tariff = spec_tariff("tariff_5_free_of_charge")
    assert tariff.elements[0].price_components == (
        PriceComponent(DimensionType.FLAT, Decimal("0.0"), None, 0),
    )


def test_end_date_example_and_active_at() -> None:
    tariff = spec_tariff("tariff_6_025kwh_start_max_price")
    assert tariff.end_date_time == datetime(2019, 6, 30, 23, 59, 59, tzinfo=UTC)
    assert tariff.max_price == Price(Decimal("10.0"), Decimal("11.0"))
    assert tariff.active_at(datetime(2019, 6, 30, 12, tzinfo=UTC))
    assert tariff.active_at(datetime(2019, 6, 30, 23, 59, 59, tzinfo=UTC))
    assert not tariff.active_at(datetime(2019, 7, 1, tzinfo=UTC))
    later = parse(minimal(start_date_time="2026-06-01T00:00:00Z"))
    assert not later.active_at(datetime(2026, 5, 31, 23, 59, tzinfo=UTC))
    assert later.active_at(datetime(2026, 6, 1, tzinfo=UTC))


def test_alt_text_and_url_examples() -> None:
    adhoc = spec_tariff("tariff_2_alt_text")
    assert adhoc.type is TariffType.AD_HOC_PAYMENT
    assert adhoc.tariff_alt_text == (
        DisplayText("en", "2.00 euro p/hour including VAT."),
        DisplayText("nl", "2.00 euro p/uur inclusief BTW."),
    )
    cheap = spec_tariff("tariff_3_alt_url")
    assert cheap.type is TariffType.PROFILE_CHEAP
    assert cheap.tariff_alt_url == "https://company.com/tariffs/13"
    assert cheap.elements[0].price_components[1].step_size == 100


def test_end_time_midnight_and_reservation_restrictions() -> None:
    steps = spec_tariff("tariff_14_step_size")
    last = steps.elements[2].restrictions
    assert last is not None
    assert (last.start_time, last.end_time) == (time(20, 0), time(0, 0))
    expires = spec_tariff("tariff_17_reservation_with_expire_fee").elements[0].restrictions
    assert expires is not None
    assert expires.reservation is ReservationRestrictionType.RESERVATION_EXPIRES
    assert expires.reservation == "RESERVATION_EXPIRES"


def test_display_text_example() -> None:
    tariff = parse(minimal(tariff_alt_text=[{"language": "en", "text": "Standard Tariff"}]))
    assert tariff.tariff_alt_text == (DisplayText("en", "Standard Tariff"),)


@pytest.mark.parametrize("name", sorted(ENERGY_MIXES))
def test_energy_mix_examples(name: str) -> None:
    tariff = parse(minimal(energy_mix=ENERGY_MIXES[name]))
    assert tariff.energy_mix is not None
    assert tariff.energy_mix["is_green_energy"] is ENERGY_MIXES[name]["is_green_energy"]
    out = tariff_to_ocpi(tariff)
    assert out["energy_mix"] == ENERGY_MIXES[name]
    assert parse(out) == tariff
    hash(tariff)  # the mix stays out of the hash


def test_energy_mix_numbers_become_decimal() -> None:
    tariff = parse(minimal(energy_mix=ENERGY_MIXES["complete"]))
    assert tariff.energy_mix is not None
    assert tariff.energy_mix["energy_sources"][0] == {
        "source": "GENERAL_GREEN",
        "percentage": Decimal("35.9"),
    }
    assert tariff.energy_mix["environ_impact"][0]["amount"] == Decimal("0.0006")


# --- numbers, defaults, round trip ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.1, Decimal("0.1")),
        (0.25, Decimal("0.25")),
        (2, Decimal("2")),
        ("0.2750", Decimal("0.2750")),
        (" 1.5 ", Decimal("1.5")),
        ("1e-2", Decimal("0.01")),
        (1e-7, Decimal("1E-7")),
        (-0.0, Decimal("0")),
    ],
)
def test_numbers_go_through_their_text(raw: object, expected: Decimal) -> None:
    tariff = parse(minimal(elements=[{"price_components": [_pc("ENERGY", raw, 1)]}]))
    price = tariff.elements[0].price_components[0].price
    assert price == expected and isinstance(price, Decimal)


def test_integer_fields_accept_integral_numbers_and_text() -> None:
    tariff = parse(
        minimal(
            elements=[
                {
                    "price_components": [_pc("TIME", 1, 300.0)],
                    "restrictions": {"min_duration": "60", "max_duration": 3600},
                }
            ]
        )
    )
    element = tariff.elements[0]
    assert element.price_components[0].step_size == 300
    assert element.restrictions == TariffRestrictions(min_duration=60, max_duration=3600)


def test_country_and_party_come_from_the_object_else_the_arguments() -> None:
    own = parse(minimal())
    assert (own.country_code, own.party_id) == ("NL", "CSM")
    theirs = parse(minimal(country_code="BE", party_id="BEC"))
    assert (theirs.country_code, theirs.party_id) == ("BE", "BEC")


def test_unknown_fields_are_ignored_and_null_means_absent() -> None:
    tariff = parse(minimal(type=None, min_price=None, extra={"x": 1}))
    assert tariff.type is None and tariff.min_price is None


def test_datetimes_in_the_ocpi_forms() -> None:
    for text, expected in [
        ("2015-06-29T20:39:09Z", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2015-06-29T20:39:09", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2016-12-29T17:45:09.2Z", datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC)),
        ("2018-01-01T01:08:01.123", datetime(2018, 1, 1, 1, 8, 1, 123000, tzinfo=UTC)),
    ]:
        assert parse(minimal(last_updated=text)).last_updated == expected
    assert ocpi_datetime(datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC)) == (
        "2016-12-29T17:45:09.200Z"
    )
    assert ocpi_datetime(datetime(2016, 12, 29, 17, 45, 9, 999, tzinfo=UTC)) == (
        "2016-12-29T17:45:09Z"
    )


def test_full_round_trip_of_every_field() -> None:
    obj = {
        "country_code": "NL",
        "party_id": "CSM",
        "id": "FULL-1",
        "currency": "EUR",
        "type": "PROFILE_GREEN",
        "tariff_alt_text": [{"language": "en", "text": "Green power, 0.30/kWh"}],
        "tariff_alt_url": "https://example.com/tariffs/full-1",
        "min_price": {"excl_vat": 1, "incl_vat": 1.21},
        "max_price": {"excl_vat": 50},
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.3, "vat": 21, "step_size": 1},
                    {"type": "PARKING_TIME", "price": 6, "step_size": 300},
                ],
                "restrictions": {
                    "start_time": "22:00",
                    "end_time": "06:00",
                    "start_date": "2026-01-01",
                    "end_date": "2027-01-01",
                    "min_kwh": 0.5,
                    "max_kwh": 80,
                    "min_current": 6,
                    "max_current": 32,
                    "min_power": 1.4,
                    "max_power": 22,
                    "min_duration": 60,
                    "max_duration": 36000,
                    "day_of_week": ["SUNDAY", "FRIDAY"],
                },
            },
            {
                "price_components": [{"type": "TIME", "price": 2.5, "vat": 21, "step_size": 60}],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {"price_components": [{"type": "FLAT", "price": 0, "step_size": 1}]},
        ],
        "start_date_time": "2026-01-01T00:00:00Z",
        "end_date_time": "2026-12-31T23:00:00.500Z",
        "energy_mix": ENERGY_MIXES["complete"],
        "last_updated": "2026-04-01T10:00:00Z",
    }
    tariff = parse(obj)
    out = tariff_to_ocpi(tariff)
    assert parse(out) == tariff
    expected = json.loads(json.dumps(obj))
    expected["elements"][0]["restrictions"]["day_of_week"] = ["FRIDAY", "SUNDAY"]
    assert out == expected
    restrictions = tariff.elements[0].restrictions
    assert restrictions is not None
    assert restrictions.start_date == date(2026, 1, 1)
    assert restrictions.min_power == Decimal("1.4")
    assert tariff.max_price == Price(Decimal("50"), None)


def test_tariff_to_ocpi_numbers_are_json_numbers() -> None:
    tariff = Tariff(
        country_code="NL",
        party_id="CSM",
        id="X",
        currency="EUR",
        elements=(
            TariffElement((PriceComponent(DimensionType.ENERGY, Decimal("0.2500"), Decimal(21)),)),
        ),
        last_updated=NOW,
    )
    out = tariff_to_ocpi(tariff)
    component = out["elements"][0]["price_components"][0]
    assert component == {"type": "ENERGY", "price": 0.25, "vat": 21, "step_size": 1}
    assert type(component["price"]) is float and type(component["vat"]) is int


# --- errors -----------------------------------------------------------------------------------


def _element(**restrictions: Any) -> list[dict[str, Any]]:
    return [{"price_components": [_pc("ENERGY", 0.25, 1)], "restrictions": restrictions}]


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"id": None}, "id", "is required"),
        ({"id": ""}, "id", "must not be empty"),
        ({"id": "x" * 37}, "id", "must be at most 36 characters"),
        ({"id": "caf\u00e9"}, "id", "must be printable ASCII"),
        ({"id": 12}, "id", "must be a string"),
        ({"currency": "eur"}, "currency", "must be an ISO 4217 code (3 upper-case letters)"),
        ({"currency": "EURO"}, "currency", "must be an ISO 4217 code (3 upper-case letters)"),
        ({"currency": None}, "currency", "is required"),
        ({"country_code": "NLD"}, "country_code", "must be an ISO 3166-1 alpha-2 code (2 letters)"),
        ({"party_id": "CS"}, "party_id", "must be 3 letters or digits"),
        ({"type": "CHEAP"}, "type", "must be a TariffType: one of AD_HOC_PAYMENT"),
        ({"elements": []}, "elements", "must have at least 1 item"),
        ({"elements": None}, "elements", "must be a list"),
        ({"elements": [{"price_components": []}]}, "elements[0].price_components", "must have"),
        ({"elements": [[]]}, "elements[0]", "must be an object"),
        ({"last_updated": "2015-06-29 20:39:09"}, "last_updated", "must be an OCPI DateTime"),
        ({"last_updated": "2015-06-29T20:39:09+00:00"}, "last_updated", "must be an OCPI"),
        ({"last_updated": "2015-02-30T20:39:09Z"}, "last_updated", "must be an OCPI DateTime"),
        (
            {"start_date_time": "2026-02-01T00:00:00Z", "end_date_time": "2026-01-01T00:00:00Z"},
            "start_date_time",
            "must be before end_date_time",
        ),
        (
            {"tariff_alt_text": [{"language": "eng", "text": "x"}]},
            "tariff_alt_text[0].language",
            "must be an ISO 639-1 code (2 letters)",
        ),
        (
            {"tariff_alt_text": [{"language": "en", "text": "x" * 513}]},
            "tariff_alt_text[0].text",
            "must be at most 512 characters",
        ),
        (
            {"tariff_alt_text": [{"language": "en", "text": "a\nb"}]},
            "tariff_alt_text[0].text",
            "must not contain control characters",
        ),
        ({"tariff_alt_text": {"language": "en"}}, "tariff_alt_text", "must be a list"),
        ({"tariff_alt_url": "company.com/tariffs"}, "tariff_alt_url", "must be an absolute URL"),
        (
            {"min_price": {"excl_vat": 1.0, "incl_vat": 0.9}},
            "min_price.incl_vat",
            "must not be less than excl_vat",
        ),
        ({"max_price": {"incl_vat": 1.0}}, "max_price.excl_vat", "is required"),
        (
            {"min_price": {"excl_vat": 5}, "max_price": {"excl_vat": 4}},
            "min_price.excl_vat",
            "must not exceed max_price.excl_vat",
        ),
        (
            {
                "min_price": {"excl_vat": 1, "incl_vat": 6},
                "max_price": {"excl_vat": 4, "incl_vat": 5},
            },
            "min_price.incl_vat",
            "must not exceed max_price.incl_vat",
        ),
        (
            {"energy_mix": {"supplier_name": "x"}},
            "energy_mix.is_green_energy",
            "is required and must be a boolean",
        ),
        (
            {"energy_mix": {"is_green_energy": True, "energy_sources": [{"source": "COW"}]}},
            "energy_mix.energy_sources[0].source",
            "must be one of COAL",
        ),
        (
            {
                "energy_mix": {
                    "is_green_energy": True,
                    "energy_sources": [{"source": "SOLAR", "percentage": 101}],
                }
            },
            "energy_mix.energy_sources[0].percentage",
            "must be from 0 to 100",
        ),
        (
            {
                "energy_mix": {
                    "is_green_energy": True,
                    "environ_impact": [{"category": "CARBON_DIOXIDE", "amount": -1}],
                }
            },
            "energy_mix.environ_impact[0].amount",
            "must be >= 0",
        ),
        (
            {"energy_mix": {"is_green_energy": True, "supplier_name": "x" * 65}},
            "energy_mix.supplier_name",
            "must be at most 64 characters",
        ),
    ],
)
def test_tariff_field_errors(changes: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse(minimal(**changes))
    assert caught.value.path == path
    assert caught.value.message.startswith(message)
    assert str(caught.value).endswith(f"{path}: {caught.value.message}")


@pytest.mark.parametrize(
    ("component", "path", "message"),
    [
        ({"type": "KWH", "price": 1, "step_size": 1}, "type", "must be a TariffDimensionType"),
        ({"price": 1, "step_size": 1}, "type", "is required"),
        ({"type": "ENERGY", "step_size": 1}, "price", "is required"),
        ({"type": "ENERGY", "price": -0.01, "step_size": 1}, "price", "must be >= 0"),
        ({"type": "ENERGY", "price": True, "step_size": 1}, "price", "must be a number"),
        ({"type": "ENERGY", "price": "abc", "step_size": 1}, "price", "must be a number"),
        ({"type": "ENERGY", "price": float("nan"), "step_size": 1}, "price", "must be a finite"),
        ({"type": "ENERGY", "price": [1], "step_size": 1}, "price", "must be a number"),
        ({"type": "ENERGY", "price": 1, "vat": 101, "step_size": 1}, "vat", "must be a percentage"),
        ({"type": "ENERGY", "price": 1, "vat": -1, "step_size": 1}, "vat", "must be >= 0"),
        ({"type": "ENERGY", "price": 1}, "step_size", "is required"),
        ({"type": "TIME", "price": 1, "step_size": 0}, "step_size", "must be an integer >= 1"),
        ({"type": "TIME", "price": 1, "step_size": 1.5}, "step_size", "must be an integer >= 1"),
        ({"type": "TIME", "price": 1, "step_size": True}, "step_size", "must be an integer >= 1"),
        ({"type": "FLAT", "price": 1, "step_size": -1}, "step_size", "must be an integer >= 0"),
    ],
)
def test_price_component_errors(component: dict[str, Any], path: str, message: str) -> None:
    obj = minimal(
        elements=[
            {"price_components": [_pc("FLAT", 1, 1)]},
            {"price_components": [_pc("ENERGY", 1, 1), component]},
        ]
    )
    with pytest.raises(TariffError) as caught:
        parse(obj)
    full = f"elements[1].price_components[1].{path}"
    assert caught.value.path == full
    assert caught.value.tariff_id == "T1"
    assert str(caught.value).startswith(f'tariff "T1": {full}: {message}')


def test_error_message_reads_like_the_brief() -> None:
    obj = minimal(elements=[{"price_components": [_pc("ENERGY", 1, 1), _pc("TIME", 1, 0)]}])
    with pytest.raises(TariffError) as caught:
        parse(obj)
    assert str(caught.value) == (
        'tariff "T1": elements[0].price_components[1].step_size: must be an integer >= 1'
    )
    assert isinstance(caught.value, InvalidInput) and not isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("restrictions", "path", "message"),
    [
        ({"start_time": "24:00"}, "start_time", 'must be a time of day "HH:MM"'),
        ({"start_time": "9:00"}, "start_time", 'must be a time of day "HH:MM"'),
        ({"end_time": "09:60"}, "end_time", 'must be a time of day "HH:MM"'),
        ({"end_time": 900}, "end_time", 'must be a time of day "HH:MM"'),
        ({"start_date": "2015-02-30"}, "start_date", 'must be a date "YYYY-MM-DD"'),
        ({"end_date": "2015-13-01"}, "end_date", 'must be a date "YYYY-MM-DD"'),
        ({"start_date": "2015-12-24T00:00"}, "start_date", 'must be a date "YYYY-MM-DD"'),
        (
            {"start_date": "2016-01-02", "end_date": "2016-01-01"},
            "start_date",
            "must not be after end_date",
        ),
        ({"min_kwh": -1}, "min_kwh", "must be >= 0"),
        ({"min_kwh": 50, "max_kwh": 20}, "min_kwh", "must not be after max_kwh"),
        ({"min_current": 32, "max_current": 16}, "min_current", "must not be after max_current"),
        ({"max_power": "fast"}, "max_power", "must be a number"),
        ({"min_duration": -5}, "min_duration", "must be an integer >= 0"),
        ({"min_duration": 7200, "max_duration": 3600}, "min_duration", "must not be after"),
        ({"day_of_week": ["MON"]}, "day_of_week[0]", "must be a DayOfWeek: one of MONDAY"),
        ({"day_of_week": "MONDAY"}, "day_of_week", "must be a list"),
        ({"reservation": "RESERVED"}, "reservation", "must be a ReservationRestrictionType"),
    ],
)
def test_restriction_errors(restrictions: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse(minimal(elements=_element(**restrictions)))
    assert caught.value.path == f"elements[0].restrictions.{path}"
    assert caught.value.message.startswith(message)


def test_reservation_elements_only_take_flat_and_time() -> None:
    with pytest.raises(TariffError) as caught:
        parse(minimal(elements=_element(reservation="RESERVATION")))
    assert caught.value.path == "elements[0].price_components[0].type"
    assert "FLAT or TIME" in caught.value.message


def test_not_an_object() -> None:
    with pytest.raises(TariffError) as caught:
        parse(["T1"])
    assert str(caught.value) == "tariff: must be an object"
    with pytest.raises(TariffError) as caught:
        parse(minimal(id=None))
    assert str(caught.value) == "tariff: id: is required"


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_tariff(minimal(), country_code="NL", party_id="CSM", now=datetime(2026, 1, 1))  # noqa: DTZ001


# --- lists ------------------------------------------------------------------------------------


def test_parse_tariffs_takes_one_object_or_a_list() -> None:
    one = parse_tariffs(minimal(), country_code="NL", party_id="CSM", now=NOW)
    assert [t.id for t in one] == ["T1"]
    many = parse_tariffs(
        [minimal(id="A"), minimal(id="B")], country_code="NL", party_id="CSM", now=NOW
    )
    assert [t.id for t in many] == ["A", "B"]
    assert parse_tariffs([], country_code="NL", party_id="CSM", now=NOW) == []


def test_parse_tariffs_errors_name_the_index_and_the_id() -> None:
    bad = minimal(id="B2", elements=[{"price_components": [_pc("TIME", 1, 0)]}])
    with pytest.raises(TariffError) as caught:
        parse_tariffs(
            [minimal(id="A"), minimal(id="B1"), bad], country_code="NL", party_id="CSM", now=NOW
        )
    assert caught.value.path == "[2].elements[0].price_components[0].step_size"
    assert caught.value.tariff_id == "B2"
    assert str(caught.value) == (
        'tariff "B2": [2].elements[0].price_components[0].step_size: must be an integer >= 1'
    )


def test_parse_tariffs_are_ours_another_party_is_refused() -> None:
    """Our own tariffs (an import) carry our party: none given or ours (any case) is
    fine, another one names the tariff and the field."""
    given = [minimal(id="A"), minimal(id="B", country_code="nl", party_id="csm")]
    tariffs = parse_tariffs(given, country_code="NL", party_id="CSM", now=NOW)
    assert {(t.country_code, t.party_id) for t in tariffs} == {("NL", "CSM")}
    with pytest.raises(TariffError) as caught:
        parse_tariffs(
            [*given, minimal(id="C", country_code="DE")],
            country_code="NL",
            party_id="CSM",
            now=NOW,
        )
    assert str(caught.value) == "tariff \"C\": [2].country_code: 'DE' is not ours (NL)"
    with pytest.raises(TariffError) as caught:
        parse_tariffs(minimal(id="D", party_id="ALL"), country_code="NL", party_id="CSM", now=NOW)
    assert str(caught.value) == "tariff \"D\": party_id: 'ALL' is not ours (CSM)"
    # The form is checked first.
    with pytest.raises(TariffError, match="must be an ISO 3166-1 alpha-2"):
        parse_tariffs(minimal(country_code="NLD"), country_code="NL", party_id="CSM", now=NOW)


def test_parse_tariffs_refuses_duplicates_and_other_documents() -> None:
    with pytest.raises(TariffError) as caught:
        parse_tariffs(
            [minimal(id="A"), minimal(id="a")], country_code="NL", party_id="CSM", now=NOW
        )
    assert caught.value.path == "[1].id"
    assert "duplicates the id of [0]" in str(caught.value)
    with pytest.raises(TariffError, match="must be a Tariff object or a list"):
        parse_tariffs("T1", country_code="NL", party_id="CSM", now=NOW)


def test_a_tariff_assigned_only_ad_hoc_is_published_as_ad_hoc_payment() -> None:
    stored = {"id": "T1", "currency": "EUR", "type": "REGULAR", "elements": []}
    assert as_published(stored, ad_hoc_only=True)["type"] == "AD_HOC_PAYMENT"
    assert as_published(stored, ad_hoc_only=False) == stored
    untyped = {"id": "T2", "currency": "EUR", "elements": []}
    assert as_published(untyped, ad_hoc_only=False) == untyped  # valid for all sessions
    assert stored["type"] == "REGULAR"  # the stored object is left as it was
