"""2.2.1 objects rendered in OCPI 2.1.1 and 2.1.1 input read into 2.2.1 (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from csms.core.parties import Party
from csms.core.partners import PartyRole, Role
from ocpi_cpo.errors import BadCredentials
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.v211.objects import V211Unrenderable
from tests.e2e import ocpi_rules_211 as rules

T = "2026-12-05T10:00:00Z"
PARTY = PartyRole(Role.EMSP, "NL", "EXA", {"name": "Example"})


def connector_221(**change: Any) -> dict[str, Any]:
    return {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
        "max_electric_power": 22000,
        "tariff_ids": ["AC-1", "AC-2"],
        "last_updated": T,
        **change,
    }


def evse_221(uid: str = "CP-1*1", **change: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "evse_id": "NL*CPO*E1",
        "status": "AVAILABLE",
        "capabilities": ["RFID_READER", "PED_TERMINAL", "REMOTE_START_STOP_CAPABLE"],
        "connectors": [connector_221(), connector_221(id="2", standard="GBT_AC")],
        "physical_reference": "a physical reference much too long",
        "parking_restrictions": ["EV_ONLY"],
        "last_updated": T,
        **change,
    }


def location_221(**change: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "LOC-1",
        "publish": True,
        "publish_allowed_to": [{"uid": "x"}],
        "name": "Station",
        "address": "A" * 60,
        "city": "Amsterdam",
        "postal_code": "1011AB",
        "state": "NH",
        "country": "NLD",
        "coordinates": {"latitude": "52.37020", "longitude": "4.89517"},
        "parking_type": "PARKING_LOT",
        "evses": [evse_221(), evse_221("CP-2*1", connectors=[connector_221(standard="GBT_DC")])],
        "facilities": ["WIFI", "BIKE_SHARING"],
        "time_zone": "Europe/Amsterdam",
        "last_updated": T,
        **change,
    }


def test_connector() -> None:
    assert v211.connector(connector_221()) == {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "voltage": 230,
        "amperage": 32,
        "tariff_id": "AC-1",
        "last_updated": T,
    }
    assert "tariff_id" not in v211.connector(connector_221(tariff_ids=[]))
    assert v211.connector(connector_221(power_type="AC_2_PHASE"))["power_type"] == "AC_1_PHASE"
    with pytest.raises(V211Unrenderable, match="GBT_AC"):
        v211.connector(connector_221(standard="GBT_AC"))


def test_evse() -> None:
    out = v211.evse(evse_221())
    assert out["capabilities"] == ["RFID_READER", "REMOTE_START_STOP_CAPABLE"]
    assert [c["id"] for c in out["connectors"]] == ["1"]  # GBT_AC has no 2.1.1 form
    assert out["physical_reference"] == "a physical refer"  # string(16)
    assert out["parking_restrictions"] == ["EV_ONLY"]
    assert out["status"] == "AVAILABLE"
    with pytest.raises(V211Unrenderable, match="no connector"):
        v211.evse(evse_221(connectors=[connector_221(standard="GBT_DC")]))


@pytest.mark.parametrize(
    ("parking_type", "expected"),
    [
        ("ON_STREET", "ON_STREET"),
        ("PARKING_GARAGE", "PARKING_GARAGE"),
        ("UNDERGROUND_GARAGE", "UNDERGROUND_GARAGE"),
        ("PARKING_LOT", "PARKING_LOT"),
        ("ALONG_MOTORWAY", "OTHER"),
        ("ON_DRIVEWAY", "OTHER"),
        (None, "UNKNOWN"),
    ],
)
def test_location_type(parking_type: str | None, expected: str) -> None:
    assert v211.location(location_221(parking_type=parking_type))["type"] == expected


def test_location() -> None:
    out = v211.location(location_221())
    for gone in ("country_code", "party_id", "publish", "publish_allowed_to", "parking_type"):
        assert gone not in out
    assert "state" not in out
    assert out["type"] == "PARKING_LOT"
    assert out["address"] == "A" * 45
    assert out["postal_code"] == "1011AB"
    assert out["facilities"] == ["WIFI"]
    assert out["time_zone"] == "Europe/Amsterdam"
    # The second EVSE has only a GB/T connector: 2.1.1 cannot describe it.
    assert [e["uid"] for e in out["evses"]] == ["CP-1*1"]
    assert out["evses"][0]["connectors"][0]["voltage"] == 230
    assert v211.location(location_221(postal_code=None))["postal_code"] == ""


def test_location_patch() -> None:
    assert v211.location_patch("evse", {"status": "CHARGING", "last_updated": T}) == {
        "status": "CHARGING",
        "last_updated": T,
    }
    assert v211.location_patch(
        "location", {"parking_type": "ON_STREET", "publish": False, "name": "N"}
    ) == {"type": "ON_STREET", "name": "N"}
    assert v211.location_patch(
        "connector", {"max_voltage": 400, "tariff_ids": ["T"], "max_electric_power": 1}
    ) == {"voltage": 400, "tariff_id": "T"}
    assert v211.location_patch("evse", {"capabilities": ["PED_TERMINAL", "RESERVABLE"]}) == {
        "capabilities": ["RESERVABLE"]
    }


def test_embedded_location() -> None:
    loc = v211.location(location_221())
    out = v211.embedded_location(loc, "CP-1*1", "1")
    assert [e["uid"] for e in out["evses"]] == ["CP-1*1"]
    assert [c["id"] for c in out["evses"][0]["connectors"]] == ["1"]
    assert out["address"] == loc["address"]
    with pytest.raises(V211Unrenderable):
        v211.embedded_location(loc, "CP-9*1", None)
    with pytest.raises(V211Unrenderable):
        v211.embedded_location(loc, "CP-1*1", "7")


def tariff_221(**change: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "AC-1",
        "currency": "EUR",
        "type": "REGULAR",
        "min_price": {"excl_vat": 1, "incl_vat": 1.21},
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.25, "vat": 21.0, "step_size": 1},
                    {"type": "TIME", "price": 2, "step_size": 60},
                ],
                "restrictions": {"max_current": 16, "day_of_week": ["MONDAY"], "min_kwh": 1},
            },
            {
                "price_components": [{"type": "FLAT", "price": 1, "step_size": 1}],
                "restrictions": {"reservation": "RESERVATION"},
            },
        ],
        "last_updated": T,
        **change,
    }


def test_tariff() -> None:
    assert v211.tariff(tariff_221()) == {
        "id": "AC-1",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.25, "step_size": 1},
                    {"type": "TIME", "price": 2, "step_size": 60},
                ],
                "restrictions": {"day_of_week": ["MONDAY"], "min_kwh": 1},
            }
        ],
        "last_updated": T,
    }
    with pytest.raises(V211Unrenderable):
        v211.tariff(tariff_221(elements=[tariff_221()["elements"][1]]))


def session_221(**change: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "42",
        "start_date_time": T,
        "end_date_time": "2026-12-05T11:00:00Z",
        "kwh": 7.5,
        "cdr_token": {"uid": "ABC", "type": "RFID", "contract_id": "NL-EXA-C12345678-X"},
        "auth_method": "COMMAND",
        "location_id": "LOC-1",
        "evse_uid": "CP-1*1",
        "connector_id": "1",
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": T,
                "dimensions": [
                    {"type": "ENERGY", "volume": 7.5},
                    {"type": "STATE_OF_CHARGE", "volume": 80},
                ],
                "tariff_id": "AC-1",
            },
            {"start_date_time": T, "dimensions": [{"type": "POWER", "volume": 11}]},
        ],
        "total_cost": {"excl_vat": 2.0, "incl_vat": 2.42},
        "status": "COMPLETED",
        "last_updated": T,
        **change,
    }


def test_session() -> None:
    loc = v211.location(location_221())
    out = v211.session(session_221(), loc)
    assert out == {
        "id": "42",
        "start_datetime": T,
        "end_datetime": "2026-12-05T11:00:00Z",
        "kwh": 7.5,
        "auth_id": "NL-EXA-C12345678-X",
        "auth_method": "AUTH_REQUEST",
        "location": v211.embedded_location(loc, "CP-1*1", "1"),
        "currency": "EUR",
        "charging_periods": [
            {"start_date_time": T, "dimensions": [{"type": "ENERGY", "volume": 7.5}]}
        ],
        "total_cost": 2.0,
        "status": "COMPLETED",
        "last_updated": T,
    }
    assert v211.session(session_221(status="RESERVATION"), loc)["status"] == "PENDING"
    with pytest.raises(V211Unrenderable, match="not published"):
        v211.session(session_221(), None)


def test_session_patch() -> None:
    assert v211.session_patch(
        {
            "kwh": 1.5,
            "total_cost": {"excl_vat": 0.5, "incl_vat": 0.6},
            "status": "ACTIVE",
            "last_updated": T,
            "charging_periods": [
                {"start_date_time": T, "dimensions": [{"type": "TIME", "volume": 0.1}]}
            ],
        }
    ) == {
        "kwh": 1.5,
        "total_cost": 0.5,
        "status": "ACTIVE",
        "last_updated": T,
    }, "2.1.1 has no append rule for a PATCH's periods: the next PUT carries them all"


def cdr_221(**change: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "CDR-1",
        "start_date_time": T,
        "end_date_time": "2026-12-05T11:00:00Z",
        "session_id": "42",
        "cdr_token": {"uid": "ABC", "type": "RFID", "contract_id": "NL-EXA-C12345678-X"},
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC-1",
            "address": "Main 1",
            "city": "Amsterdam",
            "postal_code": "1011AB",
            "country": "NLD",
            "coordinates": {"latitude": "52.37020", "longitude": "4.89517"},
            "evse_uid": "CP-1*1",
            "evse_id": "NL*CPO*E1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "tariffs": [tariff_221()],
        "charging_periods": [
            {"start_date_time": T, "dimensions": [{"type": "ENERGY", "volume": 7.5}]}
        ],
        "total_cost": {"excl_vat": 3.0, "incl_vat": 3.63},
        "total_energy": 7.5,
        "total_time": 1.0,
        "total_parking_time": 0,
        "last_updated": T,
        **change,
    }


def test_cdr_with_published_location() -> None:
    loc = v211.location(location_221())
    out = v211.cdr(cdr_221(), loc)
    assert out["stop_date_time"] == "2026-12-05T11:00:00Z"
    assert "end_date_time" not in out
    assert out["auth_id"] == "NL-EXA-C12345678-X"
    assert out["auth_method"] == "WHITELIST"
    assert out["location"] == v211.embedded_location(loc, "CP-1*1", "1")
    assert out["total_cost"] == 3.0
    assert out["tariffs"] == [v211.tariff(tariff_221())]
    assert out["total_energy"] == 7.5
    assert out["total_time"] == 1.0
    assert "total_parking_time" not in out
    for gone in ("country_code", "party_id", "session_id", "cdr_token", "cdr_location"):
        assert gone not in out


def test_cdr_from_its_cdr_location() -> None:
    out = v211.cdr(cdr_221(charging_periods=[]), None)
    loc = out["location"]
    assert loc["id"] == "LOC-1"
    assert loc["type"] == "UNKNOWN"
    assert loc["address"] == "Main 1"
    assert loc["evses"][0]["uid"] == "CP-1*1"
    assert loc["evses"][0]["connectors"][0]["standard"] == "IEC_62196_T2"
    # 2.1.1 requires a charging period: one with the CDR's energy.
    assert out["charging_periods"] == [
        {"start_date_time": T, "dimensions": [{"type": "ENERGY", "volume": 7.5}]}
    ]


def test_token_both_ways() -> None:
    pushed = {
        "uid": "012345678",
        "type": "RFID",
        "auth_id": "NL-EXA-C12345678-X",
        "issuer": "Example",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": T,
    }
    t221 = v211.token_to_221(pushed, PARTY)
    assert t221 == {
        "country_code": "NL",
        "party_id": "EXA",
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "NL-EXA-C12345678-X",
        "issuer": "Example",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": T,
    }
    assert v211.token(t221) == pushed
    assert v211.token_to_221(pushed, Party("NL", "EXA")) == t221  # a Party does as well
    assert v211.token({**t221, "type": "APP_USER"})["type"] == "OTHER"
    assert v211.token_patch_to_221({"auth_id": "X", "valid": False}) == {
        "contract_id": "X",
        "valid": False,
    }


def test_authorization_info() -> None:
    info221 = {
        "allowed": "ALLOWED",
        "token": {"uid": "X"},
        "authorization_reference": "R1",
        "location": {"location_id": "LOC-1", "evse_uids": ["CP-1*1"]},
    }
    assert v211.authorization_info(info221) == {
        "allowed": "ALLOWED",
        "location": {"location_id": "LOC-1", "evse_uids": ["CP-1*1"]},
    }
    assert v211.authorization_info_to_221(
        {"allowed": "BLOCKED", "info": {"language": "en", "text": "No"}}, {"uid": "X"}
    ) == {"allowed": "BLOCKED", "token": {"uid": "X"}, "info": {"language": "en", "text": "No"}}


def test_commands() -> None:
    token = {"uid": "U1", "type": "RFID", "auth_id": "C1", "issuer": "E", "valid": True}
    start = v211.command_to_221(
        "START_SESSION",
        {"response_url": "https://e/r", "token": token, "location_id": "LOC-1"},
        PARTY,
    )
    assert start["token"]["contract_id"] == "C1"
    assert start["token"]["country_code"] == "NL"
    assert start["location_id"] == "LOC-1"
    reserve = v211.command_to_221(
        "RESERVE_NOW", {"token": token, "reservation_id": 7, "expiry_date": T}, PARTY
    )
    assert reserve["reservation_id"] == "7"
    assert v211.command_response({"result": "ACCEPTED", "timeout": 30}) == {"result": "ACCEPTED"}
    assert v211.command_result({"result": "EVSE_OCCUPIED"}) == {"result": "REJECTED"}
    assert v211.command_result({"result": "TIMEOUT"}) == {"result": "TIMEOUT"}


def test_credentials_both_ways() -> None:
    ours = v211.credentials("tok", "https://cpo/ocpi/versions", PARTY)
    assert ours == {
        "token": "tok",
        "url": "https://cpo/ocpi/versions",
        "business_details": {"name": "Example"},
        "party_id": "EXA",
        "country_code": "NL",
    }
    assert "roles" not in ours
    creds = v211.parse_credentials({**ours, "country_code": "nl"})
    assert creds.token == "tok"
    assert creds.roles == (PartyRole(Role.EMSP, "NL", "EXA", {"name": "Example"}),)
    assert v211.parse_credentials(ours, Role.HUB).roles[0].role == Role.HUB


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": ""}, "token:"),
        ({"url": "ftp://x"}, "url:"),
        ({"party_id": "TOOLONG"}, "party_id"),
        ({"country_code": None}, "country_code"),
        ({"business_details": "x"}, "business_details"),
    ],
)
def test_bad_credentials(change: dict[str, Any], message: str) -> None:
    good = v211.credentials("tok", "https://cpo/ocpi/versions", PARTY)
    with pytest.raises(BadCredentials, match=message) as err:
        v211.parse_credentials({**good, **change})
    assert "roles[0]" not in str(err.value)


def test_every_rendered_object_passes_the_211_rules() -> None:
    loc = v211.location(location_221())
    assert loc["coordinates"] == {"latitude": "52.370200", "longitude": "4.895170"}
    assert rules.location_errors_211(loc) == []
    assert rules.tariff_errors_211(v211.tariff(tariff_221())) == []
    assert rules.session_errors_211(v211.session(session_221(), loc)) == []
    assert rules.cdr_errors_211(v211.cdr(cdr_221(), loc)) == []
    assert rules.cdr_errors_211(v211.cdr(cdr_221(charging_periods=[]), None)) == []
    t221 = v211.token_to_221(
        {"uid": "1", "type": "RFID", "auth_id": "A", "issuer": "E", "valid": True}, PARTY
    )
    assert rules.token_errors_211(v211.token({**t221, "last_updated": T})) == []
    assert rules.credentials_errors_211(v211.credentials("t", "https://x/v", PARTY)) == []
    assert rules.command_result_errors_211(v211.command_result({"result": "FAILED"})) == []
    assert (
        rules.location_patch_errors_211(
            "evse", v211.location_patch("evse", {"status": "CHARGING", "last_updated": T})
        )
        == []
    )
    assert (
        rules.session_errors_211(
            v211.session_patch({"kwh": 1, "status": "RESERVATION", "last_updated": T}), partial=True
        )
        == []
    )
