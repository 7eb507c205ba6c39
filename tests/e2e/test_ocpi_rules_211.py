"""The OCPI 2.1.1 field rules (tests/e2e/ocpi_rules_211.py) pass a valid object of each kind and
catch each broken rule: a rule that cannot fail would let an invalid object through every test
that relies on it. No server: the rules are pure functions."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e import ocpi_rules_211 as rules

# Pure functions, nothing stored: once, not per database.
pytestmark = pytest.mark.sqlite_only

NOW = "2026-12-05T10:00:00Z"


def connector() -> dict[str, Any]:
    return {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "voltage": 230,
        "amperage": 32,
        "tariff_id": "T1",
        "last_updated": NOW,
    }


def evse() -> dict[str, Any]:
    return {
        "uid": "EVSE-1",
        "evse_id": "DE*ABC*E0001*1",
        "status": "AVAILABLE",
        "status_schedule": [{"period_begin": NOW, "status": "INOPERATIVE"}],
        "capabilities": ["RESERVABLE", "REMOTE_START_STOP_CAPABLE"],
        "connectors": [connector()],
        "floor_level": "-1",
        "coordinates": {"latitude": "52.520008", "longitude": "13.404954"},
        "physical_reference": "A1",
        "directions": [{"language": "en", "text": "Behind the gate"}],
        "parking_restrictions": ["EV_ONLY"],
        "images": [{"url": "https://example.org/a.png", "category": "CHARGER", "type": "png"}],
        "last_updated": NOW,
    }


def location() -> dict[str, Any]:
    return {
        "id": "LOC-1",
        "type": "PARKING_LOT",
        "name": "Depot",
        "address": "Main Street 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DEU",
        "coordinates": {"latitude": "52.520008", "longitude": "13.404954"},
        "related_locations": [
            {
                "latitude": "52.520100",
                "longitude": "13.405000",
                "name": {"language": "en", "text": "Entrance"},
            }
        ],
        "evses": [evse()],
        "operator": {"name": "Example CPO", "website": "https://example.org"},
        "facilities": ["CAFE"],
        "time_zone": "Europe/Berlin",
        "opening_times": {
            "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "20:00"}],
            "exceptional_closings": [
                {"period_begin": "2026-12-24T00:00:00Z", "period_end": "2026-12-25T00:00:00Z"}
            ],
        },
        "charging_when_closed": False,
        "energy_mix": {
            "is_green_energy": False,
            "energy_sources": [{"source": "WIND", "percentage": 40.5}],
            "environ_impact": [{"source": "CARBON_DIOXIDE", "amount": 372}],
        },
        "last_updated": NOW,
    }


def tariff() -> dict[str, Any]:
    return {
        "id": "T1",
        "currency": "EUR",
        "tariff_alt_text": [{"language": "en", "text": "0.30 per kWh"}],
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}],
                "restrictions": {
                    "start_time": "08:00",
                    "end_time": "20:00",
                    "start_date": "2026-01-01",
                    "max_kwh": 50,
                    "min_duration": 600,
                    "day_of_week": ["MONDAY"],
                },
            }
        ],
        "last_updated": NOW,
    }


def embedded() -> dict[str, Any]:
    loc = location()
    loc["evses"] = [evse()]
    return loc


def session() -> dict[str, Any]:
    return {
        "id": "S1",
        "start_datetime": "2026-12-05T09:00:00Z",
        "end_datetime": "2026-12-05T09:30:00Z",
        "kwh": 7.5,
        "auth_id": "DE-ABC-C12345678-X",
        "auth_method": "AUTH_REQUEST",
        "location": embedded(),
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": "2026-12-05T09:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 7.5}],
            }
        ],
        "total_cost": 2.25,
        "status": "COMPLETED",
        "last_updated": NOW,
    }


def cdr() -> dict[str, Any]:
    return {
        "id": "CDR1",
        "start_date_time": "2026-12-05T09:00:00Z",
        "stop_date_time": "2026-12-05T09:30:00",
        "auth_id": "DE-ABC-C12345678-X",
        "auth_method": "WHITELIST",
        "location": embedded(),
        "currency": "EUR",
        "tariffs": [tariff()],
        "charging_periods": [
            {
                "start_date_time": "2026-12-05T09:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 7.5}, {"type": "TIME", "volume": 0.5}],
            }
        ],
        "total_cost": 2.25,
        "total_energy": 7.5,
        "total_time": 0.5,
        "total_parking_time": 0,
        "remark": "ok",
        "last_updated": NOW,
    }


def token() -> dict[str, Any]:
    return {
        "uid": "04A1B2C3",
        "type": "RFID",
        "auth_id": "DE-XYZ-C00000001-4",
        "visual_number": "0001",
        "issuer": "Example eMSP",
        "valid": True,
        "whitelist": "ALLOWED",
        "language": "de",
        "last_updated": NOW,
    }


def credentials() -> dict[str, Any]:
    return {
        "token": "abc123",
        "url": "https://emsp.example.org/ocpi/versions",
        "business_details": {
            "name": "Example eMSP",
            "logo": {
                "url": "https://emsp.example.org/logo.png",
                "category": "OPERATOR",
                "type": "png",
                "width": 512,
                "height": 512,
            },
        },
        "party_id": "XYZ",
        "country_code": "DE",
    }


def details() -> dict[str, Any]:
    return {
        "version": "2.1.1",
        "endpoints": [
            {"identifier": "credentials", "url": "https://x.example/ocpi/2.1.1/credentials"},
            {"identifier": "locations", "url": "https://x.example/ocpi/2.1.1/locations"},
        ],
    }


def start_session() -> dict[str, Any]:
    return {
        "response_url": "https://emsp.example.org/commands/START_SESSION/1",
        "token": token(),
        "location_id": "LOC-1",
        "evse_uid": "EVSE-1",
    }


CHECKS: dict[str, tuple[Callable[[], Any], Callable[[Any], list[str]]]] = {
    "connector": (connector, rules.connector_errors_211),
    "evse": (evse, rules.evse_errors_211),
    "location": (location, rules.location_errors_211),
    "tariff": (tariff, rules.tariff_errors_211),
    "session": (session, rules.session_errors_211),
    "cdr": (cdr, rules.cdr_errors_211),
    "token": (token, rules.token_errors_211),
    "authorization_info": (
        lambda: {
            "allowed": "ALLOWED",
            "location": {"location_id": "LOC-1", "evse_uids": ["EVSE-1"], "connector_ids": ["1"]},
            "info": {"language": "en", "text": "Welcome"},
        },
        rules.authorization_info_errors_211,
    ),
    "command_response": (lambda: {"result": "ACCEPTED"}, rules.command_response_errors_211),
    "command_result": (lambda: {"result": "TIMEOUT"}, rules.command_result_errors_211),
    "credentials": (credentials, rules.credentials_errors_211),
    "version_details": (details, rules.version_details_errors_211),
    "versions": (
        lambda: [
            {"version": "2.1.1", "url": "https://x.example/ocpi/2.1.1"},
            {"version": "2.2.1", "url": "https://x.example/ocpi/2.2.1"},
        ],
        rules.versions_errors_211,
    ),
    "start_session": (start_session, lambda b: rules.command_errors_211("START_SESSION", b)),
    "stop_session": (
        lambda: {"response_url": "https://e.example/c/2", "session_id": "S1"},
        lambda b: rules.command_errors_211("STOP_SESSION", b),
    ),
    "reserve_now": (
        lambda: {
            "response_url": "https://e.example/c/3",
            "token": token(),
            "expiry_date": NOW,
            "reservation_id": 7,
            "location_id": "LOC-1",
        },
        lambda b: rules.command_errors_211("RESERVE_NOW", b),
    ),
    "unlock_connector": (
        lambda: {
            "response_url": "https://e.example/c/4",
            "location_id": "LOC-1",
            "evse_uid": "EVSE-1",
            "connector_id": "1",
        },
        lambda b: rules.command_errors_211("UNLOCK_CONNECTOR", b),
    ),
    "response": (
        lambda: {"data": [], "status_code": 1000, "status_message": "Success", "timestamp": NOW},
        rules.response_errors_211,
    ),
}


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_a_valid_object_of_each_kind_passes(kind: str) -> None:
    make, check = CHECKS[kind]
    assert check(make()) == []


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def apply(obj: Any) -> None:
        for step in path[:-1]:
            obj = obj[step]
        obj[path[-1]] = value

    return apply


def _drop(path: tuple[Any, ...]) -> Callable[[Any], None]:
    def apply(obj: Any) -> None:
        for step in path[:-1]:
            obj = obj[step]
        del obj[path[-1]]

    return apply


# (kind, what is broken, the path the error names)
BROKEN: list[tuple[str, Callable[[Any], None], str]] = [
    # Connector
    ("connector", _drop(("id",)), "connector.id: missing"),
    ("connector", _set(("id",), "x" * 37), "connector.id: must be a string of at most 36"),
    ("connector", _set(("standard",), "IEC_62196_T2_COMBO_X"), "connector.standard"),
    ("connector", _set(("standard",), "NEMA_5_20"), "connector.standard"),
    ("connector", _set(("format",), "PLUG"), "connector.format"),
    ("connector", _set(("power_type",), "AC_2_PHASE"), "connector.power_type"),
    ("connector", _set(("voltage",), 230.5), "connector.voltage: must be an int"),
    ("connector", _drop(("amperage",)), "connector.amperage: missing"),
    ("connector", _set(("amperage",), True), "connector.amperage: must be an int"),
    ("connector", _set(("tariff_id",), None), "connector.tariff_id: null"),
    ("connector", _set(("terms_and_conditions",), "not a url"), "connector.terms_and_conditions"),
    ("connector", _set(("max_voltage",), 230), "connector.max_voltage: a 2.2.1 field"),
    ("connector", _set(("tariff_ids",), ["T1"]), "connector.tariff_ids: a 2.2.1 field"),
    ("connector", _drop(("last_updated",)), "connector.last_updated: missing"),
    ("connector", _set(("last_updated",), "2026-12-05 10:00:00"), "connector.last_updated: not"),
    ("connector", _set(("last_updated",), "2026-12-05T10:00:00+01:00"), "connector.last_updated"),
    # EVSE
    ("evse", _set(("uid",), "u" * 40), "evse.uid"),
    ("evse", _set(("evse_id",), "EVSE-1"), "evse.evse_id: not an eMI3"),
    ("evse", _set(("status",), "OCCUPIED"), "evse.status"),
    ("evse", _set(("status_schedule", 0, "status"), "BUSY"), "evse.status_schedule[0].status"),
    ("evse", _drop(("status_schedule", 0, "period_begin")), "evse.status_schedule[0].period_begin"),
    ("evse", _set(("capabilities",), ["PED_TERMINAL"]), "evse.capabilities[0]"),
    ("evse", _set(("capabilities",), "RESERVABLE"), "evse.capabilities: must be a list"),
    ("evse", _set(("connectors",), []), "evse.connectors: at least one"),
    ("evse", _drop(("connectors",)), "evse.connectors: at least one"),
    ("evse", _set(("connectors", 0, "voltage"), "230"), "evse.connectors[0].voltage"),
    ("evse", _set(("floor_level",), "-1000"), "evse.floor_level"),
    ("evse", _set(("coordinates", "latitude"), "52.52"), "evse.coordinates.latitude"),
    ("evse", _set(("physical_reference",), "p" * 17), "evse.physical_reference"),
    ("evse", _drop(("directions", 0, "language")), "evse.directions[0].language"),
    ("evse", _set(("parking_restrictions",), ["TAXI"]), "evse.parking_restrictions[0]"),
    ("evse", _set(("images", 0, "category"), "LOGO"), "evse.images[0].category"),
    ("evse", _set(("images", 0, "type"), "image/png"), "evse.images[0].type"),
    ("evse", _set(("images", 0, "width"), 123456), "evse.images[0].width"),
    ("evse", _drop(("last_updated",)), "evse.last_updated"),
    # Location
    ("location", _set(("id",), "i" * 40), "location.id"),
    ("location", _drop(("type",)), "location.type: missing"),
    ("location", _set(("type",), "ON_DRIVEWAY"), "location.type"),
    ("location", _set(("name",), "n" * 256), "location.name"),
    ("location", _set(("name",), "Bahnhofstraße"), "location.name: must be printable ASCII"),
    ("location", _set(("address",), "a" * 46), "location.address"),
    ("location", _drop(("city",)), "location.city: missing"),
    ("location", _drop(("postal_code",)), "location.postal_code: missing"),
    ("location", _set(("country",), "DE"), "location.country: bad form"),
    ("location", _drop(("coordinates",)), "location.coordinates: missing"),
    ("location", _set(("coordinates", "latitude"), "52.5200081"), "location.coordinates.latitude"),
    ("location", _set(("coordinates", "longitude"), 13.404954), "location.coordinates.longitude"),
    ("location", _set(("coordinates", "longitude"), "13.40495"), "location.coordinates.longitude"),
    ("location", _drop(("related_locations", 0, "latitude")), "location.related_locations[0]"),
    ("location", _set(("evses", 0, "status"), "FREE"), "location.evses[0].status"),
    ("location", _set(("operator", "name"), "o" * 101), "location.operator.name"),
    ("location", _drop(("operator", "name")), "location.operator.name: missing"),
    ("location", _set(("operator", "website"), "example.org"), "location.operator.website"),
    ("location", _set(("facilities",), ["SHOP"]), "location.facilities[0]"),
    ("location", _set(("time_zone",), "t" * 256), "location.time_zone"),
    ("location", _set(("opening_times",), {}), "location.opening_times: one of"),
    (
        "location",
        _set(("opening_times", "twentyfourseven"), True),
        "location.opening_times: regular_hours and twentyfourseven are exclusive",
    ),
    ("location", _set(("opening_times", "regular_hours", 0, "weekday"), 8), "weekday: not 1..7"),
    (
        "location",
        _set(("opening_times", "regular_hours", 0, "period_end"), "8pm"),
        "location.opening_times.regular_hours[0].period_end",
    ),
    (
        "location",
        _set(("opening_times", "exceptional_closings", 0, "period_end"), "tomorrow"),
        "location.opening_times.exceptional_closings[0].period_end",
    ),
    ("location", _set(("charging_when_closed",), "no"), "location.charging_when_closed"),
    ("location", _drop(("energy_mix", "is_green_energy")), "location.energy_mix.is_green_energy"),
    ("location", _set(("energy_mix", "energy_sources", 0, "source"), "OIL"), "energy_sources[0]"),
    ("location", _set(("energy_mix", "environ_impact", 0, "amount"), "1"), "environ_impact[0]"),
    ("location", _set(("country_code",), "DE"), "location.country_code: a 2.2.1 field"),
    ("location", _set(("publish",), True), "location.publish: a 2.2.1 field"),
    ("location", _set(("parking_type",), "ON_STREET"), "location.parking_type: a 2.2.1 field"),
    ("location", _drop(("last_updated",)), "location.last_updated"),
    # Tariff
    ("tariff", _set(("id",), "t" * 37), "tariff.id"),
    ("tariff", _set(("currency",), "eur"), "tariff.currency"),
    ("tariff", _set(("tariff_alt_text", 0, "text"), "t" * 513), "tariff.tariff_alt_text[0].text"),
    ("tariff", _set(("tariff_alt_url",), "ftp://x"), "tariff.tariff_alt_url"),
    ("tariff", _set(("elements",), []), "tariff.elements: at least one"),
    ("tariff", _set(("elements", 0, "price_components"), []), "price_components: at least one"),
    ("tariff", _set(("elements", 0, "price_components", 0, "type"), "MAX"), "price_components[0]"),
    (
        "tariff",
        _set(("elements", 0, "price_components", 0, "price"), {"excl_vat": 0.3}),
        "price_components[0].price: must be a number",
    ),
    ("tariff", _set(("elements", 0, "price_components", 0, "step_size"), 1.5), "step_size"),
    ("tariff", _set(("elements", 0, "price_components", 0, "vat"), 19), "vat: a 2.2.1 field"),
    ("tariff", _set(("elements", 0, "restrictions", "start_time"), "8:00"), "start_time"),
    ("tariff", _set(("elements", 0, "restrictions", "start_date"), "01.01.2026"), "start_date"),
    ("tariff", _set(("elements", 0, "restrictions", "max_kwh"), "50"), "max_kwh"),
    ("tariff", _set(("elements", 0, "restrictions", "min_duration"), 1.5), "min_duration"),
    ("tariff", _set(("elements", 0, "restrictions", "day_of_week"), ["MON"]), "day_of_week[0]"),
    ("tariff", _set(("elements", 0, "restrictions", "reservation"), "RESERVATION"), "2.2.1"),
    ("tariff", _set(("type",), "REGULAR"), "tariff.type: a 2.2.1 field"),
    ("tariff", _set(("min_price",), {"excl_vat": 1}), "tariff.min_price: a 2.2.1 field"),
    ("tariff", _drop(("last_updated",)), "tariff.last_updated"),
    # Session
    ("session", _drop(("id",)), "session.id: missing"),
    ("session", _drop(("start_datetime",)), "session.start_datetime: missing"),
    ("session", _set(("end_datetime",), "2026-12-05T08:00:00Z"), "session.end_datetime: "),
    ("session", _drop(("end_datetime",)), "session.end_datetime: a completed session"),
    ("session", _set(("kwh",), "7.5"), "session.kwh: must be a number"),
    ("session", _drop(("auth_id",)), "session.auth_id: missing"),
    ("session", _set(("auth_method",), "COMMAND"), "session.auth_method"),
    ("session", _drop(("location",)), "session.location: missing"),
    ("session", _set(("location", "evses"), []), "session.location.evses: exactly the one"),
    (
        "session",
        _set(("location", "evses", 0, "connectors"), [connector(), connector()]),
        "session.location.evses[0].connectors: exactly the one",
    ),
    ("session", _set(("location", "type"), "GARAGE"), "session.location.type"),
    ("session", _set(("meter_id",), "m" * 256), "session.meter_id"),
    ("session", _set(("currency",), "Euro"), "session.currency"),
    ("session", _set(("charging_periods", 0, "dimensions"), []), "dimensions: at least one"),
    (
        "session",
        _set(("charging_periods", 0, "dimensions", 0, "type"), "STATE_OF_CHARGE"),
        "session.charging_periods[0].dimensions[0].type",
    ),
    (
        "session",
        _set(("charging_periods", 0, "start_date_time"), "2026-12-05T08:00:00Z"),
        "session.charging_periods[0].start_date_time: 2026-12-05T08:00:00Z is outside",
    ),
    ("session", _set(("charging_periods", 0, "tariff_id"), "T1"), "tariff_id: a 2.2.1 field"),
    ("session", _set(("total_cost",), {"excl_vat": 2.25}), "session.total_cost: must be a number"),
    ("session", _set(("status",), "RESERVATION"), "session.status"),
    ("session", _set(("cdr_token",), {}), "session.cdr_token: a 2.2.1 field"),
    ("session", _set(("start_date_time",), NOW), "session.start_date_time: a 2.2.1 field"),
    ("session", _drop(("last_updated",)), "session.last_updated"),
    # CDR
    ("cdr", _set(("id",), "c" * 37), "cdr.id"),
    ("cdr", _drop(("stop_date_time",)), "cdr.stop_date_time: missing"),
    ("cdr", _set(("stop_date_time",), "2026-12-05T08:59:59Z"), "cdr.stop_date_time: 2026"),
    ("cdr", _drop(("auth_id",)), "cdr.auth_id: missing"),
    ("cdr", _set(("auth_method",), "COMMAND"), "cdr.auth_method"),
    ("cdr", _drop(("location",)), "cdr.location: missing"),
    ("cdr", _set(("location", "evses", 0, "connectors"), []), "cdr.location.evses[0].connectors"),
    ("cdr", _set(("currency",), "EURO"), "cdr.currency"),
    ("cdr", _set(("tariffs", 0, "elements"), []), "cdr.tariffs[0].elements: at least one"),
    ("cdr", _set(("charging_periods",), []), "cdr.charging_periods: at least one"),
    ("cdr", _drop(("charging_periods",)), "cdr.charging_periods: at least one"),
    (
        "cdr",
        _set(("charging_periods", 0, "dimensions", 0, "volume"), None),
        "cdr.charging_periods[0].dimensions[0].volume",
    ),
    (
        "cdr",
        _set(("charging_periods", 0, "dimensions", 0, "type"), "RESERVATION_TIME"),
        "cdr.charging_periods[0].dimensions[0].type",
    ),
    ("cdr", _set(("total_cost",), {"excl_vat": 2.25, "incl_vat": 2.68}), "cdr.total_cost"),
    ("cdr", _drop(("total_cost",)), "cdr.total_cost: missing"),
    ("cdr", _drop(("total_energy",)), "cdr.total_energy: missing"),
    ("cdr", _set(("total_time",), "0.5"), "cdr.total_time"),
    ("cdr", _set(("total_parking_time",), False), "cdr.total_parking_time"),
    ("cdr", _set(("remark",), "r" * 256), "cdr.remark"),
    ("cdr", _set(("cdr_location",), {}), "cdr.cdr_location: a 2.2.1 field"),
    ("cdr", _set(("end_date_time",), NOW), "cdr.end_date_time: a 2.2.1 field"),
    ("cdr", _set(("last_updated",), "yesterday"), "cdr.last_updated"),
    # Token
    ("token", _set(("uid",), "u" * 37), "token.uid"),
    ("token", _set(("type",), "APP_USER"), "token.type"),
    ("token", _drop(("auth_id",)), "token.auth_id: missing"),
    ("token", _set(("visual_number",), "v" * 65), "token.visual_number"),
    ("token", _drop(("issuer",)), "token.issuer: missing"),
    ("token", _set(("valid",), "true"), "token.valid: must be a boolean"),
    ("token", _drop(("whitelist",)), "token.whitelist: missing"),
    ("token", _set(("whitelist",), "SOMETIMES"), "token.whitelist"),
    ("token", _set(("language",), "deu"), "token.language"),
    ("token", _set(("contract_id",), "X"), "token.contract_id: a 2.2.1 field"),
    ("token", _set(("country_code",), "DE"), "token.country_code: a 2.2.1 field"),
    ("token", _drop(("last_updated",)), "token.last_updated"),
    # AuthorizationInfo
    ("authorization_info", _set(("allowed",), "YES"), "authorization_info.allowed"),
    ("authorization_info", _drop(("allowed",)), "authorization_info.allowed: missing"),
    ("authorization_info", _drop(("location", "location_id")), "location.location_id: missing"),
    ("authorization_info", _set(("location", "evse_uids"), ["e" * 40]), "evse_uids[0]"),
    ("authorization_info", _set(("location", "connector_ids"), "1"), "connector_ids: must be"),
    ("authorization_info", _drop(("info", "text")), "authorization_info.info.text: missing"),
    ("authorization_info", _set(("token",), {}), "authorization_info.token: a 2.2.1 field"),
    # CommandResponse and the asynchronous result
    ("command_response", _set(("result",), "FAILED"), "command_response.result"),
    ("command_response", _drop(("result",)), "command_response.result: missing"),
    ("command_response", _set(("timeout",), 30), "command_response.timeout: a 2.2.1 field"),
    ("command_result", _set(("result",), "EVSE_OCCUPIED"), "command_result.result"),
    ("command_result", _set(("message",), []), "command_result.message: a 2.2.1 field"),
    # Credentials
    ("credentials", _set(("token",), "t" * 65), "credentials.token"),
    ("credentials", _set(("token",), "tök"), "credentials.token: must be printable ASCII"),
    ("credentials", _set(("url",), "/ocpi/versions"), "credentials.url"),
    ("credentials", _drop(("business_details",)), "credentials.business_details: missing"),
    ("credentials", _drop(("business_details", "name")), "credentials.business_details.name"),
    ("credentials", _drop(("business_details", "logo", "url")), "business_details.logo.url"),
    ("credentials", _set(("party_id",), "ABCD"), "credentials.party_id"),
    ("credentials", _drop(("country_code",)), "credentials.country_code: missing"),
    ("credentials", _set(("roles",), []), "credentials.roles: a 2.2.1 field"),
    # Versions and version details
    ("versions", _drop((0, "url")), "versions[0].url: missing"),
    ("versions", _set((0, "version"), "2.2.1"), "versions: 2.1.1 is not offered"),
    ("version_details", _set(("version",), "2.2.1"), "version_details.version"),
    ("version_details", _set(("endpoints",), []), "version_details.endpoints: at least one"),
    ("version_details", _set(("endpoints", 1, "role"), "SENDER"), "endpoints[1].role: a 2.2.1"),
    ("version_details", _set(("endpoints", 1, "identifier"), "hubclientinfo"), "not a 2.1.1"),
    ("version_details", _set(("endpoints", 1, "identifier"), "credentials"), "listed twice"),
    ("version_details", _drop(("endpoints", 0)), "no credentials endpoint"),
    ("version_details", _set(("endpoints", 0, "url"), "credentials"), "endpoints[0].url"),
    # Command requests
    ("start_session", _drop(("response_url",)), "start_session.response_url: missing"),
    ("start_session", _drop(("token",)), "start_session.token: missing"),
    ("start_session", _set(("token", "type"), "APP_USER"), "start_session.token.type"),
    ("start_session", _drop(("location_id",)), "start_session.location_id: missing"),
    ("start_session", _set(("evse_uid",), "e" * 40), "start_session.evse_uid"),
    ("start_session", _set(("connector_id",), "1"), "start_session.connector_id: a 2.2.1"),
    ("stop_session", _drop(("session_id",)), "stop_session.session_id: missing"),
    ("reserve_now", _drop(("expiry_date",)), "reserve_now.expiry_date: missing"),
    ("reserve_now", _set(("reservation_id",), "7"), "reserve_now.reservation_id: must be an int"),
    ("reserve_now", _drop(("token",)), "reserve_now.token: missing"),
    ("unlock_connector", _drop(("evse_uid",)), "unlock_connector.evse_uid: missing"),
    ("unlock_connector", _drop(("connector_id",)), "unlock_connector.connector_id: missing"),
    # Response envelope
    ("response", _drop(("timestamp",)), "response.timestamp: missing"),
    ("response", _set(("status_code",), 200), "response.status_code: not a four-digit"),
    ("response", _set(("status_code",), "1000"), "response.status_code: must be an int"),
    ("response", _set(("data",), None), "response.data: null"),
]


@pytest.mark.parametrize(
    ("kind", "breaks", "expected"),
    BROKEN,
    ids=[f"{i}-{kind}-{expected[:40]}" for i, (kind, _b, expected) in enumerate(BROKEN)],
)
def test_each_rule_can_fail(kind: str, breaks: Callable[[Any], None], expected: str) -> None:
    make, check = CHECKS[kind]
    obj = copy.deepcopy(make())
    breaks(obj)
    errors = check(obj)
    assert any(expected in error for error in errors), errors


def test_every_kind_has_a_broken_case() -> None:
    assert {kind for kind, _b, _e in BROKEN} == set(CHECKS)


def test_a_patch_needs_only_the_fields_it_changes() -> None:
    assert rules.location_patch_errors_211("evse", {"status": "CHARGING"}) == []
    assert rules.location_patch_errors_211("connector", {"tariff_id": "T2"}) == []
    assert rules.location_patch_errors_211("location", {"name": "Depot 2"}) == []
    assert rules.session_errors_211({"kwh": 3.2, "status": "ACTIVE"}, partial=True) == []
    assert rules.token_errors_211({"valid": False}, partial=True) == []
    assert rules.tariff_errors_211({"currency": "EUR"}, partial=True) == []


def test_a_patch_still_checks_what_it_carries() -> None:
    assert rules.location_patch_errors_211("evse", {"status": "FREE"}) == [
        "evse.status: 'FREE' not one of "
        "['AVAILABLE', 'BLOCKED', 'CHARGING', 'INOPERATIVE', 'OUTOFORDER', 'PLANNED', "
        "'REMOVED', 'RESERVED', 'UNKNOWN']"
    ]
    assert rules.session_errors_211({"status": "RESERVATION"}, partial=True) != []
    assert rules.token_errors_211({"valid": "no"}, partial=True) == [
        "token.valid: must be a boolean: 'no'"
    ]
    # A new EVSE sent whole in a location PATCH carries its required fields.
    errors = rules.location_patch_errors_211("location", {"evses": [{"uid": "E2"}]})
    assert "location.evses[0].status: missing" in errors
    assert "location.evses[0].connectors: at least one is required" in errors


def test_the_2_1_1_datetime_may_leave_out_the_z() -> None:
    connector_ = connector()
    connector_["last_updated"] = "2026-12-05T10:00:00"
    assert rules.connector_errors_211(connector_) == []
    connector_["last_updated"] = "2026-12-05T10:00:00.123Z"
    assert rules.connector_errors_211(connector_) == []


def test_an_unknown_command_is_named() -> None:
    assert rules.command_errors_211("SET_CHARGING_PROFILE", {}) == [
        "command: 'SET_CHARGING_PROFILE' not one of "
        "['RESERVE_NOW', 'START_SESSION', 'STOP_SESSION', 'UNLOCK_CONNECTOR']"
    ]
