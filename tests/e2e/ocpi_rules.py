"""OCPI 2.2.1 field rules for the objects we produce, checked field by field in tests
(required fields, lengths, enums, number types, the DateTime and coordinate forms)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
# eMI3 EVSE ID (OCPI's evse_id): country, operator, "E", the outlet; `*` separators optional.
EMI3_EVSE_ID = re.compile(r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9*]{1,30}$")
LATITUDE = re.compile(r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
LONGITUDE = re.compile(r"^-?[0-9]{1,3}\.[0-9]{5,7}$")
BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")

TOKEN_TYPES = {"AD_HOC_USER", "APP_USER", "OTHER", "RFID"}
AUTH_METHODS = {"AUTH_REQUEST", "COMMAND", "WHITELIST"}
CONNECTOR_FORMATS = {"SOCKET", "CABLE"}
POWER_TYPES = {"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"}
DIMENSIONS = {
    "CURRENT",
    "ENERGY",
    "ENERGY_EXPORT",
    "ENERGY_IMPORT",
    "MAX_CURRENT",
    "MIN_CURRENT",
    "MAX_POWER",
    "MIN_POWER",
    "PARKING_TIME",
    "POWER",
    "RESERVATION_TIME",
    "STATE_OF_CHARGE",
    "TIME",
}


class Rules:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def string(
        self, obj: dict[str, Any], key: str, path: str, limit: int, required: bool = True
    ) -> None:
        if key not in obj:
            if required:
                self.fail(f"{path}.{key}", "missing")
            return
        value = obj[key]
        if not isinstance(value, str) or len(value) > limit:
            self.fail(f"{path}.{key}", f"must be a string of at most {limit}: {value!r}")

    def enum(
        self, obj: dict[str, Any], key: str, path: str, allowed: set[str], required: bool = True
    ) -> None:
        if key not in obj:
            if required:
                self.fail(f"{path}.{key}", "missing")
            return
        if obj[key] not in allowed:
            self.fail(f"{path}.{key}", f"{obj[key]!r} not one of {sorted(allowed)}")

    def number(self, obj: dict[str, Any], key: str, path: str, required: bool = True) -> None:
        if key not in obj:
            if required:
                self.fail(f"{path}.{key}", "missing")
            return
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{path}.{key}", f"must be a number: {value!r}")

    def datetime(self, obj: dict[str, Any], key: str, path: str, required: bool = True) -> None:
        if key not in obj:
            if required:
                self.fail(f"{path}.{key}", "missing")
            return
        if not isinstance(obj[key], str) or not DATETIME.match(obj[key]):
            self.fail(f"{path}.{key}", f"not an OCPI DateTime: {obj[key]!r}")

    def price(self, obj: dict[str, Any], key: str, path: str, required: bool = True) -> None:
        if key not in obj:
            if required:
                self.fail(f"{path}.{key}", "missing")
            return
        value = obj[key]
        if not isinstance(value, dict):
            self.fail(f"{path}.{key}", "must be a Price object")
            return
        self.number(value, "excl_vat", f"{path}.{key}")
        self.number(value, "incl_vat", f"{path}.{key}", required=False)


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str) or not DATETIME.match(text):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def published_evse_ids(locations: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The evse_id of every EVSE in OCPI Location objects (as GET /locations shows them),
    by EVSE uid."""
    return {
        evse["uid"]: evse["evse_id"]
        for location in locations
        for evse in location.get("evses") or []
        if "evse_id" in evse
    }


def cdr_errors(cdr: dict[str, Any], evse_ids: Mapping[str, str] | None = None) -> list[str]:
    """Every way `cdr` breaks the OCPI 2.2.1 CDR rules (empty: valid). `evse_ids`: the
    evse_id each EVSE uid is published with, when the caller knows them
    (published_evse_ids); cdr_location.evse_id must then be that one."""
    r = Rules()
    p = "cdr"
    r.string(cdr, "country_code", p, 2)
    r.string(cdr, "party_id", p, 3)
    r.string(cdr, "id", p, 39)
    r.datetime(cdr, "start_date_time", p)
    r.datetime(cdr, "end_date_time", p)
    r.string(cdr, "session_id", p, 36, required=False)
    token = cdr.get("cdr_token")
    if not isinstance(token, dict):
        r.fail(f"{p}.cdr_token", "missing")
    else:
        r.string(token, "country_code", f"{p}.cdr_token", 2)
        r.string(token, "party_id", f"{p}.cdr_token", 3)
        r.string(token, "uid", f"{p}.cdr_token", 36)
        r.enum(token, "type", f"{p}.cdr_token", TOKEN_TYPES)
        r.string(token, "contract_id", f"{p}.cdr_token", 36)
    r.enum(cdr, "auth_method", p, AUTH_METHODS)
    r.string(cdr, "authorization_reference", p, 36, required=False)
    location = cdr.get("cdr_location")
    if not isinstance(location, dict):
        r.fail(f"{p}.cdr_location", "missing")
    else:
        lp = f"{p}.cdr_location"
        r.string(location, "id", lp, 36)
        r.string(location, "name", lp, 255, required=False)
        r.string(location, "address", lp, 45)
        r.string(location, "city", lp, 45)
        r.string(location, "postal_code", lp, 10, required=False)
        r.string(location, "state", lp, 20, required=False)
        r.string(location, "country", lp, 3)
        coordinates = location.get("coordinates") or {}
        if not LATITUDE.match(str(coordinates.get("latitude", ""))):
            r.fail(f"{lp}.coordinates.latitude", f"bad: {coordinates.get('latitude')!r}")
        if not LONGITUDE.match(str(coordinates.get("longitude", ""))):
            r.fail(f"{lp}.coordinates.longitude", f"bad: {coordinates.get('longitude')!r}")
        r.string(location, "evse_uid", lp, 36)
        r.string(location, "evse_id", lp, 48)
        uid, evse_id = location.get("evse_uid"), location.get("evse_id")
        if evse_id == uid or not EMI3_EVSE_ID.match(str(evse_id)):
            r.fail(f"{lp}.evse_id", f"not an eMI3 EVSE ID (uid {uid!r}): {evse_id!r}")
        if evse_ids is not None and evse_ids.get(str(uid)) != evse_id:
            r.fail(
                f"{lp}.evse_id",
                f"{evse_id!r} is not the published {evse_ids.get(str(uid))!r} of {uid!r}",
            )
        r.string(location, "connector_id", lp, 36)
        r.string(location, "connector_standard", lp, 32)
        r.enum(location, "connector_format", lp, CONNECTOR_FORMATS)
        r.enum(location, "connector_power_type", lp, POWER_TYPES)
    r.string(cdr, "meter_id", p, 255, required=False)
    _signed_data(r, cdr, p)
    currency = cdr.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        r.fail(f"{p}.currency", f"not ISO 4217: {currency!r}")
    for index, tariff in enumerate(cdr.get("tariffs") or []):
        tp = f"{p}.tariffs[{index}]"
        r.string(tariff, "id", tp, 36)
        r.string(tariff, "currency", tp, 3)
        r.datetime(tariff, "last_updated", tp)
        if not tariff.get("elements"):
            r.fail(f"{tp}.elements", "missing")
    tariff_ids = {t.get("id") for t in cdr.get("tariffs") or [] if isinstance(t, dict)}
    periods = cdr.get("charging_periods")
    if not isinstance(periods, list) or not periods:
        r.fail(f"{p}.charging_periods", "at least one period is required")
    else:
        for index, period in enumerate(periods):
            pp = f"{p}.charging_periods[{index}]"
            r.datetime(period, "start_date_time", pp)
            dims = period.get("dimensions")
            if not isinstance(dims, list) or not dims:
                r.fail(f"{pp}.dimensions", "at least one dimension is required")
                continue
            for d_index, dim in enumerate(dims):
                r.enum(dim, "type", f"{pp}.dimensions[{d_index}]", DIMENSIONS)
                r.number(dim, "volume", f"{pp}.dimensions[{d_index}]")
            r.string(period, "tariff_id", pp, 36, required=False)
            # A period's tariff is one of the CDR's ("If not provided, no Tariff is
            # relevant during this period"): never an id the CDR does not carry.
            if "tariff_id" in period and period["tariff_id"] not in tariff_ids:
                r.fail(f"{pp}.tariff_id", f"{period['tariff_id']!r} is not in the CDR's tariffs")
        _periods_within(r, cdr, periods, p)
    r.price(cdr, "total_cost", p)
    for key in (
        "total_fixed_cost",
        "total_energy_cost",
        "total_time_cost",
        "total_parking_cost",
        "total_reservation_cost",
    ):
        r.price(cdr, key, p, required=False)
    r.number(cdr, "total_energy", p)
    r.number(cdr, "total_time", p)
    r.number(cdr, "total_parking_time", p, required=False)
    r.string(cdr, "remark", p, 255, required=False)
    if "credit" in cdr and not isinstance(cdr["credit"], bool):
        r.fail(f"{p}.credit", "must be a boolean")
    r.string(cdr, "credit_reference_id", p, 39, required=False)
    if cdr.get("credit") and "credit_reference_id" not in cdr:
        r.fail(f"{p}.credit_reference_id", "required on a credit CDR")
    r.datetime(cdr, "last_updated", p)
    return r.errors


def _periods_within(r: Rules, obj: dict[str, Any], periods: list[Any], path: str) -> None:
    """Every charging period starts within [start_date_time, end_date_time]."""
    start, end = _moment(obj.get("start_date_time")), _moment(obj.get("end_date_time"))
    if start is not None and end is not None and end < start:
        r.fail(f"{path}.end_date_time", f"{obj['end_date_time']} is before the start")
    for index, period in enumerate(periods):
        at = _moment(period.get("start_date_time"))
        if at is None:
            continue
        if start is not None and at < start:
            r.fail(
                f"{path}.charging_periods[{index}].start_date_time",
                f"{period['start_date_time']} is before the start {obj['start_date_time']}",
            )
        if end is not None and at > end:
            r.fail(
                f"{path}.charging_periods[{index}].start_date_time",
                f"{period['start_date_time']} is after the end {obj['end_date_time']}",
            )


SESSION_STATUSES = {"ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"}


def _cdr_token(r: Rules, token: Any, path: str) -> None:
    if not isinstance(token, dict):
        r.fail(path, "missing")
        return
    r.string(token, "country_code", path, 2)
    r.string(token, "party_id", path, 3)
    r.string(token, "uid", path, 36)
    r.enum(token, "type", path, TOKEN_TYPES)
    r.string(token, "contract_id", path, 36)


def _charging_periods(r: Rules, periods: Any, path: str, required: bool) -> None:
    if periods is None and not required:
        return
    if not isinstance(periods, list) or (required and not periods):
        r.fail(path, "at least one period is required" if required else "must be a list")
        return
    for index, period in enumerate(periods):
        pp = f"{path}[{index}]"
        r.datetime(period, "start_date_time", pp)
        dims = period.get("dimensions")
        if not isinstance(dims, list) or not dims:
            r.fail(f"{pp}.dimensions", "at least one dimension is required")
            continue
        for d_index, dim in enumerate(dims):
            r.enum(dim, "type", f"{pp}.dimensions[{d_index}]", DIMENSIONS)
            r.number(dim, "volume", f"{pp}.dimensions[{d_index}]")
        r.string(period, "tariff_id", pp, 36, required=False)


def session_errors(session: dict[str, Any]) -> list[str]:
    """Every way `session` breaks the OCPI 2.2.1 Session rules (empty: valid)."""
    r = Rules()
    p = "session"
    r.string(session, "country_code", p, 2)
    r.string(session, "party_id", p, 3)
    r.string(session, "id", p, 36)
    r.datetime(session, "start_date_time", p)
    r.datetime(session, "end_date_time", p, required=False)
    r.number(session, "kwh", p)
    _cdr_token(r, session.get("cdr_token"), f"{p}.cdr_token")
    r.enum(session, "auth_method", p, AUTH_METHODS)
    r.string(session, "authorization_reference", p, 36, required=False)
    r.string(session, "location_id", p, 36)
    r.string(session, "evse_uid", p, 36)
    r.string(session, "connector_id", p, 36)
    r.string(session, "meter_id", p, 255, required=False)
    currency = session.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        r.fail(f"{p}.currency", f"not ISO 4217: {currency!r}")
    periods = session.get("charging_periods")
    _charging_periods(r, periods, f"{p}.charging_periods", False)
    if isinstance(periods, list):
        _periods_within(r, session, periods, p)
    r.price(session, "total_cost", p, required=False)
    r.enum(session, "status", p, SESSION_STATUSES)
    r.datetime(session, "last_updated", p)
    if session.get("status") in ("COMPLETED",) and "end_date_time" not in session:
        r.fail(f"{p}.end_date_time", "a completed session has an end")
    return r.errors


def _signed_data(r: Rules, cdr: dict[str, Any], p: str) -> None:
    """SignedData (mod_cdrs, 2.2.1): encoding_method string(36), encoding_method_version int,
    public_key string(512), signed_values of SignedValue (nature string(32), plain_data
    string(512), signed_data string(5000), base64), url string(512)."""
    signed = cdr.get("signed_data")
    if signed is None:
        return
    sp = f"{p}.signed_data"
    if not isinstance(signed, dict):
        r.fail(sp, f"must be an object: {signed!r}")
        return
    r.string(signed, "encoding_method", sp, 36)
    version = signed.get("encoding_method_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        r.fail(f"{sp}.encoding_method_version", f"must be an int: {version!r}")
    r.string(signed, "public_key", sp, 512, required=False)
    r.string(signed, "url", sp, 512, required=False)
    values = signed.get("signed_values")
    if not isinstance(values, list) or not values:
        r.fail(f"{sp}.signed_values", "must be a non-empty list")
        return
    for index, value in enumerate(values):
        vp = f"{sp}.signed_values[{index}]"
        if not isinstance(value, dict):
            r.fail(vp, "must be an object")
            continue
        r.string(value, "nature", vp, 32)
        r.string(value, "plain_data", vp, 512)
        r.string(value, "signed_data", vp, 5000)
        data = value.get("signed_data")
        if isinstance(data, str) and not BASE64.match(data):
            r.fail(f"{vp}.signed_data", "must be base64")
