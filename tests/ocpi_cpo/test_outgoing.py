"""An outbox entry as the request that delivers it (ocpi_cpo.outgoing): the partner's
current endpoint plus the stored path, the body in the partner's current version, routing
headers only in 2.2.1."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from csms.core.outbox import OutboxEntry
from csms.core.parties import Party
from csms.core.partners import (
    Endpoint,
    InterfaceRole,
    Partner,
    PartnerStatus,
    PartyRole,
    Role,
    TokenEncoding,
)
from ocpi_cpo.errors import Unsendable
from ocpi_cpo.outgoing import outgoing

T = "2026-12-05T10:00:00Z"
US = Party("NL", "CSM")
OLD = "http://old.example/ocpi/2.2.1"
NEW = "http://new.example/ocpi/emsp/2.1.1"


def partner(version: str, base: str = NEW, modules: tuple[str, ...] = ()) -> Partner:
    modules = modules or ("locations", "sessions", "cdrs", "tariffs")
    return Partner(
        id=1,
        name="emsp",
        status=PartnerStatus.REGISTERED,
        direction=None,
        token_encoding=TokenEncoding.RAW,
        roles=(PartyRole(Role.EMSP, "DE", "EMS"),),
        endpoints=tuple(Endpoint(m, InterfaceRole.RECEIVER, f"{base}/{m}") for m in modules),
        version=version,
        their_token="t",
    )


def entry(
    module: str, method: str, path: str | None, body: dict[str, Any] | None, url: str = ""
) -> OutboxEntry:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    if not url:
        url = f"{OLD}/{module}" + (f"/{path}" if path else "")
    return OutboxEntry(
        id=1,
        partner_id=1,
        partner_name="emsp",
        module=module,
        method=method,
        url=url,
        body=body,
        object_key=f"{module}/x",
        attempts=0,
        next_attempt_at=now,
        last_error=None,
        created_at=now,
        delivered_at=None,
        path=path,
    )


CONNECTOR = {
    "id": "1",
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 32,
    "max_electric_power": 22000,
    "tariff_ids": ["T1"],
    "last_updated": T,
}
EVSE = {
    "uid": "CP1*1",
    "evse_id": "NL*CSM*ECP1*1",
    "status": "AVAILABLE",
    "capabilities": ["RFID_READER", "PED_TERMINAL"],
    "connectors": [CONNECTOR],
    "last_updated": T,
}
LOCATION = {
    "country_code": "NL",
    "party_id": "CSM",
    "id": "LOC1",
    "publish": True,
    "name": "Station",
    "address": "Main 1",
    "city": "Amsterdam",
    "postal_code": "1011AB",
    "country": "NLD",
    "coordinates": {"latitude": "52.37020", "longitude": "4.89517"},
    "parking_type": "ON_STREET",
    "evses": [EVSE],
    "time_zone": "Europe/Amsterdam",
    "last_updated": T,
}
TOKEN = {
    "country_code": "DE",
    "party_id": "EMS",
    "uid": "CARD1",
    "type": "RFID",
    "contract_id": "DE-EMS-C1",
}
SESSION = {
    "country_code": "NL",
    "party_id": "CSM",
    "id": "17",
    "start_date_time": T,
    "kwh": 1.5,
    "cdr_token": TOKEN,
    "auth_method": "WHITELIST",
    "location_id": "LOC1",
    "evse_uid": "CP1*1",
    "connector_id": "1",
    "currency": "EUR",
    "charging_periods": [
        {"start_date_time": T, "dimensions": [{"type": "ENERGY", "volume": 1.5}]},
    ],
    "total_cost": {"excl_vat": 0.5, "incl_vat": 0.61},
    "status": "ACTIVE",
    "last_updated": T,
}


async def known(location_id: str) -> Mapping[str, Any] | None:
    return LOCATION if location_id == "LOC1" else None


async def test_221_partner_gets_the_entry_at_its_current_endpoint() -> None:
    e = entry("locations", "PATCH", "NL/CSM/LOC1/CP1*1", {"status": "CHARGING"})
    out = await outgoing(e, partner("2.2.1"), US)
    assert out.url == f"{NEW}/locations/NL/CSM/LOC1/CP1*1"
    assert out.body == {"status": "CHARGING"}
    assert out.method == "PATCH"
    assert out.routing is True


async def test_entry_without_path_goes_to_its_stored_url() -> None:
    url = "http://emsp.example/results/42"
    e = entry("commands", "POST", None, {"result": "ACCEPTED"}, url=url)
    out = await outgoing(e, partner("2.2.1"), US)
    assert (out.url, out.body, out.routing) == (url, {"result": "ACCEPTED"}, True)


async def test_cdr_goes_to_the_endpoint_itself() -> None:
    out = await outgoing(entry("cdrs", "POST", "", {"id": "C"}), partner("2.2.1"), US)
    assert out.url == f"{NEW}/cdrs"


async def test_endpoint_gone_is_unsendable() -> None:
    e = entry("tariffs", "PUT", "NL/CSM/T1", {"id": "T1"})
    with pytest.raises(Unsendable, match="no tariffs Receiver endpoint"):
        await outgoing(e, partner("2.1.1", modules=("locations",)), US)


async def test_211_location_put() -> None:
    out = await outgoing(entry("locations", "PUT", "NL/CSM/LOC1", LOCATION), partner("2.1.1"), US)
    assert out.routing is False
    assert out.url == f"{NEW}/locations/NL/CSM/LOC1"
    assert out.body is not None
    assert out.body["type"] == "ON_STREET"
    for gone in ("country_code", "party_id", "publish", "parking_type"):
        assert gone not in out.body
    connector = out.body["evses"][0]["connectors"][0]
    assert (connector["voltage"], connector["amperage"], connector["tariff_id"]) == (230, 32, "T1")
    assert out.body["evses"][0]["capabilities"] == ["RFID_READER"]


async def test_211_evse_put_and_status_patch() -> None:
    put = await outgoing(entry("locations", "PUT", "NL/CSM/LOC1/CP1*1", EVSE), partner("2.1.1"), US)
    assert put.body is not None
    assert put.body["uid"] == "CP1*1" and "max_voltage" not in put.body["connectors"][0]
    patch = await outgoing(
        entry("locations", "PATCH", "NL/CSM/LOC1/CP1*1", {"status": "CHARGING", "last_updated": T}),
        partner("2.1.1"),
        US,
    )
    assert patch.body == {"status": "CHARGING", "last_updated": T}


async def test_211_level_of_an_entry_stored_without_path() -> None:
    """A row from before the path column: its level is read from its URL after our party."""
    e = entry("locations", "PUT", None, EVSE, url=f"{OLD}/locations/NL/CSM/LOC1/CP1%2A1")
    out = await outgoing(e, partner("2.1.1"), US)
    assert out.url == e.url  # no path: the stored URL
    assert out.body is not None and out.body["connectors"][0]["voltage"] == 230


async def test_211_session_embeds_its_location() -> None:
    out = await outgoing(
        entry("sessions", "PUT", "NL/CSM/17", SESSION), partner("2.1.1"), US, known
    )
    assert out.body is not None
    assert out.body["auth_id"] == "DE-EMS-C1"
    assert out.body["start_datetime"] == T
    assert out.body["location"]["id"] == "LOC1"
    assert [e["uid"] for e in out.body["location"]["evses"]] == ["CP1*1"]
    assert isinstance(out.body["total_cost"], float | int)
    assert "cdr_token" not in out.body and "location_id" not in out.body


async def test_211_session_at_an_unknown_location_is_unsendable() -> None:
    with pytest.raises(Unsendable, match=r"cannot be written in OCPI 2\.1\.1"):
        await outgoing(entry("sessions", "PUT", "NL/CSM/17", SESSION), partner("2.1.1"), US)


async def test_211_session_patch() -> None:
    body = {"kwh": 2.0, "total_cost": {"excl_vat": 1.0}, "last_updated": T}
    out = await outgoing(entry("sessions", "PATCH", "NL/CSM/17", body), partner("2.1.1"), US)
    assert out.body is not None
    assert out.body["kwh"] == 2.0 and out.body["last_updated"] == T
    assert isinstance(out.body["total_cost"], float | int)


async def test_211_cdr_and_tariffs() -> None:
    cdr = {
        "country_code": "NL",
        "party_id": "CSM",
        "id": "CDR1",
        "start_date_time": T,
        "end_date_time": T,
        "session_id": "17",
        "cdr_token": TOKEN,
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC1",
            "address": "Main 1",
            "city": "Amsterdam",
            "country": "NLD",
            "coordinates": {"latitude": "52.37020", "longitude": "4.89517"},
            "evse_uid": "CP1*1",
            "evse_id": "NL*CSM*ECP1*1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [
            {"start_date_time": T, "dimensions": [{"type": "ENERGY", "volume": 1.5}]}
        ],
        "total_cost": {"excl_vat": 0.5, "incl_vat": 0.61},
        "total_energy": 1.5,
        "total_time": 0.1,
        "last_updated": T,
    }
    out = await outgoing(entry("cdrs", "POST", "", cdr), partner("2.1.1"), US, known)
    assert out.url == f"{NEW}/cdrs"
    assert out.body is not None
    assert out.body["stop_date_time"] == T and out.body["auth_id"] == "DE-EMS-C1"
    assert out.body["location"]["id"] == "LOC1"
    tariff = {
        "country_code": "NL",
        "party_id": "CSM",
        "id": "T1",
        "type": "REGULAR",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
        "last_updated": T,
    }
    put = await outgoing(entry("tariffs", "PUT", "NL/CSM/T1", tariff), partner("2.1.1"), US)
    assert put.body is not None and "type" not in put.body and put.body["id"] == "T1"
    gone = await outgoing(entry("tariffs", "DELETE", "NL/CSM/T1", None), partner("2.1.1"), US)
    assert (gone.method, gone.body, gone.url) == ("DELETE", None, f"{NEW}/tariffs/NL/CSM/T1")


async def test_211_command_result() -> None:
    url = "http://emsp.example/results/42"
    e = entry("commands", "POST", None, {"result": "EVSE_OCCUPIED", "message": []}, url=url)
    out = await outgoing(e, partner("2.1.1"), US)
    assert (out.url, out.body, out.routing) == (url, {"result": "REJECTED"}, False)
