"""The eMSP simulator's stores without HTTP: the OCPI 2.2.1 Receiver merge rules for
locations, sessions, CDRs and tariffs, and the one-line summaries."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.emsp_store import Stores, key, patch_fields, summary
from simulators.errors import PushRefused

K = key("nl", "csm", "LOC1")


def location() -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CSM",
        "id": "LOC1",
        "evses": [
            {
                "uid": "E1",
                "status": "AVAILABLE",
                "connectors": [{"id": "1", "standard": "IEC_62196_T2"}],
                "last_updated": "t0",
            }
        ],
        "last_updated": "t0",
    }


def refused(code: int, http: int = 200) -> Any:
    return pytest.raises(
        PushRefused, check=lambda e: (e.status_code, e.http_status) == (code, http)
    )


def test_keys_are_case_insensitive_on_the_party() -> None:
    assert K == ("NL", "CSM", "LOC1")


def test_connector_patch_updates_every_parent() -> None:
    stores = Stores()
    assert stores.put_location(K, None, None, location()) is True
    stores.patch_location(K, "E1", "1", {"max_voltage": 400, "last_updated": "t1"})
    held = stores.locations[K]
    assert held["last_updated"] == "t1" and held["evses"][0]["last_updated"] == "t1"
    assert held["evses"][0]["connectors"][0] == {
        "id": "1",
        "standard": "IEC_62196_T2",
        "max_voltage": 400,
        "last_updated": "t1",
    }
    # What was pushed is copied, never aliased.
    pushed = {"uid": "E2", "status": "CHARGING", "last_updated": "t2"}
    assert stores.put_location(K, "E2", None, pushed) is True
    pushed["status"] = "CHANGED"
    assert stores.location_part(K, "E2")["status"] == "CHARGING"
    assert stores.put_location(K, "E2", None, {**pushed, "status": "BLOCKED"}) is False
    assert len(held["evses"]) == 2


def test_location_refusals() -> None:
    stores = Stores()
    with refused(2003, 404):
        stores.put_location(K, "E1", None, {"uid": "E1"})
    with refused(2001):
        stores.put_location(K, None, None, [])
    with refused(2001):
        stores.put_location(K, None, None, {**location(), "party_id": "XYZ"})
    with refused(2001):
        stores.put_location(K, None, None, {"country_code": "NL"})  # no id
    stores.put_location(K, None, None, location())
    with refused(2001):
        stores.put_location(K, "E1", None, {"uid": "E9"})
    with refused(2000, 404):
        stores.put_location(K, "E9", "1", {"id": "1"})
    with refused(2001):
        stores.patch_location(K, "E1", None, {"status": "CHARGING"})  # no last_updated


def test_session_patch_appends_and_put_replaces() -> None:
    stores = Stores()
    k = key("NL", "CSM", "S1")
    stores.put_session(k, {"id": "S1", "status": "ACTIVE", "charging_periods": [{"n": 0}]})
    added = stores.patch_session(k, {"charging_periods": [{"n": 1}], "last_updated": "t1"})
    assert added == 1 and [p["n"] for p in stores.session(k)["charging_periods"]] == [0, 1]
    assert stores.patch_session(k, {"charging_periods": [], "last_updated": "t2"}) == 0
    assert len(stores.session(k)["charging_periods"]) == 2
    with refused(2001):
        stores.patch_session(k, {"charging_periods": {}, "last_updated": "t3"})
    stores.put_session(k, {"id": "S1", "status": "COMPLETED"})
    assert stores.session(k)["charging_periods"] == []


def test_cdrs_are_never_replaced_and_pulls_are_kept() -> None:
    stores = Stores()
    cdr = {"country_code": "nl", "party_id": "csm", "id": "C1", "total_energy": 1}
    assert stores.post_cdr(cdr) == (("NL", "CSM", "C1"), True)
    assert stores.post_cdr(dict(cdr)) == (("NL", "CSM", "C1"), False)
    with refused(2001):
        stores.post_cdr({**cdr, "total_energy": 2})
    with refused(2001):
        stores.post_cdr({"id": "C2"})
    kept = stores.absorb("tariffs", [{"country_code": "NL", "party_id": "CSM", "id": "T"}, 3])
    assert kept == 1 and ("NL", "CSM", "T") in stores.tariffs
    stores.delete_tariff(("NL", "CSM", "T"))
    with refused(2000, 404):
        stores.delete_tariff(("NL", "CSM", "T"))


def test_summaries() -> None:
    session = {"status": "ACTIVE", "kwh": 1.23456, "currency": "EUR", "total_cost": 2}
    assert summary("sessions", session) == "ACTIVE 1.235 kWh 2.00 EUR"
    assert summary("sessions", {"status": "PENDING"}) == "PENDING 0.000 kWh"
    cdr = {"total_energy": 5, "currency": "EUR", "total_cost": {"excl_vat": 1.5}, "credit": True}
    assert summary("cdrs", cdr) == "5.000 kWh 1.50 EUR credit"
    assert summary("locations", location()) == "1 EVSE(s)"
    assert summary("locations", location()["evses"][0]) == "status=AVAILABLE"
    assert patch_fields({"status": "CHARGING", "last_updated": "t", "evses": []}) == (
        "status=CHARGING evses"
    )
