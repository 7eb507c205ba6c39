"""OCPI 2.2.1 field rules of the Location, EVSE and Connector objects we serve and push."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.ocpi_rules import LATITUDE, LONGITUDE, POWER_TYPES, Rules

EVSE_STATUSES = {
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
}
CAPABILITIES = {
    "CHARGING_PROFILE_CAPABLE",
    "CHARGING_PREFERENCES_CAPABLE",
    "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT",
    "CREDIT_CARD_PAYABLE",
    "DEBIT_CARD_PAYABLE",
    "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE",
    "UNLOCK_CAPABLE",
}
PARKING_TYPES = {
    "ALONG_MOTORWAY",
    "PARKING_GARAGE",
    "PARKING_LOT",
    "ON_DRIVEWAY",
    "ON_STREET",
    "UNDERGROUND_GARAGE",
}
EVSE_ID = re.compile(r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9*]{1,30}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


def connector_errors(c: dict[str, Any], p: str = "connector", r: Rules | None = None) -> list[str]:
    r = r or Rules()
    r.string(c, "id", p, 36)
    r.string(c, "standard", p, 32)
    r.enum(c, "format", p, {"SOCKET", "CABLE"})
    r.enum(c, "power_type", p, POWER_TYPES)
    for key in ("max_voltage", "max_amperage"):
        if not isinstance(c.get(key), int) or isinstance(c.get(key), bool):
            r.fail(f"{p}.{key}", f"must be an integer: {c.get(key)!r}")
    if "max_electric_power" in c and not isinstance(c["max_electric_power"], int):
        r.fail(f"{p}.max_electric_power", "must be an integer")
    if "tariff_ids" in c and not all(isinstance(t, str) and len(t) <= 36 for t in c["tariff_ids"]):
        r.fail(f"{p}.tariff_ids", f"must be strings(36): {c['tariff_ids']!r}")
    r.datetime(c, "last_updated", p)
    return r.errors


def evse_errors(e: dict[str, Any], p: str = "evse", r: Rules | None = None) -> list[str]:
    r = r or Rules()
    r.string(e, "uid", p, 36)
    r.string(e, "evse_id", p, 48, required=False)
    if "evse_id" in e and not EVSE_ID.match(e["evse_id"]):
        r.fail(f"{p}.evse_id", f"not an eMI3 EVSE id: {e['evse_id']!r}")
    r.enum(e, "status", p, EVSE_STATUSES)
    for capability in e.get("capabilities", []):
        if capability not in CAPABILITIES:
            r.fail(f"{p}.capabilities", f"unknown {capability!r}")
    connectors = e.get("connectors")
    if not isinstance(connectors, list) or not connectors:
        r.fail(f"{p}.connectors", "must be a non-empty list")
    else:
        for i, c in enumerate(connectors):
            connector_errors(c, f"{p}.connectors[{i}]", r)
    r.datetime(e, "last_updated", p)
    return r.errors


def location_errors(loc: dict[str, Any]) -> list[str]:
    """Every way `loc` breaks the OCPI 2.2.1 Location rules (empty: valid)."""
    r = Rules()
    p = "location"
    r.string(loc, "country_code", p, 2)
    r.string(loc, "party_id", p, 3)
    r.string(loc, "id", p, 36)
    if not isinstance(loc.get("publish"), bool):
        r.fail(f"{p}.publish", "must be a boolean")
    r.string(loc, "name", p, 255, required=False)
    r.string(loc, "address", p, 45)
    r.string(loc, "city", p, 45)
    r.string(loc, "postal_code", p, 10, required=False)
    r.string(loc, "state", p, 20, required=False)
    r.string(loc, "country", p, 3)
    coordinates = loc.get("coordinates") or {}
    if not LATITUDE.match(str(coordinates.get("latitude"))):
        r.fail(f"{p}.coordinates.latitude", f"bad form: {coordinates.get('latitude')!r}")
    if not LONGITUDE.match(str(coordinates.get("longitude"))):
        r.fail(f"{p}.coordinates.longitude", f"bad form: {coordinates.get('longitude')!r}")
    r.enum(loc, "parking_type", p, PARKING_TYPES, required=False)
    r.string(loc, "time_zone", p, 255)
    hours = loc.get("opening_times")
    if hours is not None:
        if not isinstance(hours.get("twentyfourseven"), bool):
            r.fail(f"{p}.opening_times.twentyfourseven", "must be a boolean")
        for h in hours.get("regular_hours", []):
            if not 1 <= h.get("weekday", 0) <= 7:
                r.fail(f"{p}.opening_times", f"bad weekday {h!r}")
            if not HHMM.match(h.get("period_begin", "")) or not HHMM.match(h.get("period_end", "")):
                r.fail(f"{p}.opening_times", f"bad period {h!r}")
    for i, e in enumerate(loc.get("evses", [])):
        evse_errors(e, f"{p}.evses[{i}]", r)
    r.datetime(loc, "last_updated", p)
    return r.errors
