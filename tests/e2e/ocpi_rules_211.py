"""OCPI 2.1.1 field rules (required fields, lengths, enums, number types, the DateTime and
coordinate forms) for every object a 2.1.1 partner sees from us or sends us, checked field by
field in tests as tests/e2e/ocpi_rules.py does for 2.2.1.

Written from the 2.1.1 specification (ocpi/ocpi, tag 2.1.1), not from our renderer, so a test
that renders with `ocpi_cpo.v211` and checks with these rules compares two readings of the
spec. Where 2.1.1 differs from 2.2.1 the rule follows 2.1.1:
- strings are printable ASCII (types.md: string and CiString);
- a DateTime may leave out the `Z` (its absence means UTC) but never carries another offset;
- coordinates have exactly six decimals (GeoLocation's regex);
- AuthMethod has no COMMAND, SessionStatus no RESERVATION, TokenType is RFID or OTHER;
- a CommandResponse (`{"result": ...}`) is both the answer to a command and its asynchronous
  result: 2.1.1 has no CommandResult object.

Every `*_errors_211` function returns every broken rule as "path: message" (empty: valid).
`partial=True` checks a PATCH body: only the fields present, none required (2.1.1 PATCH sends
the changed fields only, and unlike 2.2.1 does not require `last_updated`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# ISO 8601 combined date and time, UTC: `Z` optional in 2.1.1 (types.md, DateTime).
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z?$")
LATITUDE = re.compile(r"^-?[0-9]{1,2}\.[0-9]{6}$")
LONGITUDE = re.compile(r"^-?[0-9]{1,3}\.[0-9]{6}$")
EMI3_EVSE_ID = re.compile(r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9*]{1,30}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
URL = re.compile(r"^https?://\S+$")

LOCATION_TYPES = {
    "ON_STREET",
    "PARKING_GARAGE",
    "UNDERGROUND_GARAGE",
    "PARKING_LOT",
    "OTHER",
    "UNKNOWN",
}
STATUSES = {
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
    "CREDIT_CARD_PAYABLE",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "UNLOCK_CAPABLE",
}
CONNECTOR_TYPES = {
    "CHADEMO",
    *(f"DOMESTIC_{letter}" for letter in "ABCDEFGHIJKL"),
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "TESLA_R",
    "TESLA_S",
}
CONNECTOR_FORMATS = {"SOCKET", "CABLE"}
POWER_TYPES = {"AC_1_PHASE", "AC_3_PHASE", "DC"}
FACILITIES = {
    "HOTEL",
    "RESTAURANT",
    "CAFE",
    "MALL",
    "SUPERMARKET",
    "SPORT",
    "RECREATION_AREA",
    "NATURE",
    "MUSEUM",
    "BUS_STOP",
    "TAXI_STAND",
    "TRAIN_STATION",
    "AIRPORT",
    "CARPOOL_PARKING",
    "FUEL_STATION",
    "WIFI",
}
PARKING_RESTRICTIONS = {"EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"}
IMAGE_CATEGORIES = {"CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"}
ENERGY_SOURCES = {
    "NUCLEAR",
    "GENERAL_FOSSIL",
    "COAL",
    "GAS",
    "GENERAL_GREEN",
    "SOLAR",
    "WIND",
    "WATER",
}
ENVIRONMENTAL_IMPACTS = {"NUCLEAR_WASTE", "CARBON_DIOXIDE"}
AUTH_METHODS = {"AUTH_REQUEST", "WHITELIST"}
SESSION_STATUSES = {"ACTIVE", "COMPLETED", "INVALID", "PENDING"}
CDR_DIMENSIONS = {"ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"}
TARIFF_DIMENSIONS = {"ENERGY", "FLAT", "PARKING_TIME", "TIME"}
DAYS_OF_WEEK = {"MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"}
TOKEN_TYPES = {"OTHER", "RFID"}
WHITELIST_TYPES = {"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"}
ALLOWED = {"ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"}
COMMAND_RESPONSE_TYPES = {"NOT_SUPPORTED", "REJECTED", "ACCEPTED", "TIMEOUT", "UNKNOWN_SESSION"}
COMMANDS = {"RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR"}
MODULES = {"cdrs", "commands", "credentials", "locations", "sessions", "tariffs", "tokens"}
VERSIONS = {"2.0", "2.1", "2.1.1"}


class Rules211:
    """Collects broken rules; `partial` (a PATCH body) makes every field optional."""

    def __init__(self, partial: bool = False) -> None:
        self.errors: list[str] = []
        self.partial = partial

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def present(self, obj: Mapping[str, Any], key: str, path: str, required: bool) -> bool:
        """Whether `key` is there to check; a required one missing (or null) is an error."""
        if obj.get(key) is not None:
            return True
        if required and not self.partial:
            self.fail(f"{path}.{key}", "missing")
        elif key in obj:
            # null is not a value in OCPI 2.1.1: an optional field is left out instead.
            self.fail(f"{path}.{key}", "null (leave an optional field out)")
        return False

    def string(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        limit: int,
        required: bool = True,
        pattern: re.Pattern[str] | None = None,
    ) -> None:
        if not self.present(obj, key, path, required):
            return
        value = obj[key]
        if not isinstance(value, str) or len(value) > limit:
            self.fail(f"{path}.{key}", f"must be a string of at most {limit}: {value!r}")
        elif not PRINTABLE_ASCII.match(value):
            self.fail(f"{path}.{key}", f"must be printable ASCII: {value!r}")
        elif pattern is not None and not pattern.match(value):
            self.fail(f"{path}.{key}", f"bad form {value!r}")

    def url(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> None:
        self.string(obj, key, path, 255, required, URL)

    def enum(
        self, obj: Mapping[str, Any], key: str, path: str, allowed: set[str], required: bool = True
    ) -> None:
        if not self.present(obj, key, path, required):
            return
        if obj[key] not in allowed:
            self.fail(f"{path}.{key}", f"{obj[key]!r} not one of {sorted(allowed)}")

    def enums(self, obj: Mapping[str, Any], key: str, path: str, allowed: set[str]) -> None:
        """A list (cardinality *) of enum values."""
        for index, value in enumerate(self.items(obj, key, path)):
            if value not in allowed:
                self.fail(f"{path}.{key}[{index}]", f"{value!r} not one of {sorted(allowed)}")

    def number(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> None:
        if not self.present(obj, key, path, required):
            return
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{path}.{key}", f"must be a number: {value!r}")

    def integer(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        required: bool = True,
        digits: int | None = None,
    ) -> None:
        if not self.present(obj, key, path, required):
            return
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{path}.{key}", f"must be an int: {value!r}")
        elif digits is not None and len(str(abs(value))) > digits:
            self.fail(f"{path}.{key}", f"more than {digits} digits: {value!r}")

    def boolean(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> None:
        if self.present(obj, key, path, required) and not isinstance(obj[key], bool):
            self.fail(f"{path}.{key}", f"must be a boolean: {obj[key]!r}")

    def datetime(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> None:
        if not self.present(obj, key, path, required):
            return
        if not isinstance(obj[key], str) or not DATETIME.match(obj[key]):
            self.fail(f"{path}.{key}", f"not an OCPI 2.1.1 DateTime: {obj[key]!r}")

    def items(
        self, obj: Mapping[str, Any], key: str, path: str, at_least_one: bool = False
    ) -> list[Any]:
        """A list field (cardinality * or +): its items, or [] after reporting a bad list."""
        value = obj.get(key)
        if value is None:
            if at_least_one and not self.partial:
                self.fail(f"{path}.{key}", "at least one is required")
            elif key in obj:
                self.fail(f"{path}.{key}", "null (leave an optional field out)")
            return []
        if not isinstance(value, list):
            self.fail(f"{path}.{key}", f"must be a list: {value!r}")
            return []
        if at_least_one and not value:
            self.fail(f"{path}.{key}", "at least one is required")
        return value

    def objects(
        self, obj: Mapping[str, Any], key: str, path: str, at_least_one: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        """The (path, object) of each item of a list of objects."""
        found = []
        for index, item in enumerate(self.items(obj, key, path, at_least_one)):
            if isinstance(item, dict):
                found.append((f"{path}.{key}[{index}]", item))
            else:
                self.fail(f"{path}.{key}[{index}]", f"must be an object: {item!r}")
        return found

    def object(
        self, obj: Mapping[str, Any], key: str, path: str, required: bool = True
    ) -> dict[str, Any] | None:
        if not self.present(obj, key, path, required):
            return None
        if not isinstance(obj[key], dict):
            self.fail(f"{path}.{key}", f"must be an object: {obj[key]!r}")
            return None
        value: dict[str, Any] = obj[key]
        return value

    def whole(self) -> Rules211:
        """Rules for an object nested whole in a PATCH body (an EVSE added by a PATCH of
        its location carries all its required fields)."""
        nested = Rules211()
        nested.errors = self.errors
        return nested


# --- shared classes (types.md, mod_locations.md section 4) -------------------------------------


def _display_texts(r: Rules211, obj: Mapping[str, Any], key: str, path: str) -> None:
    for p, text in r.objects(obj, key, path):
        r.whole().string(text, "language", p, 2)
        r.whole().string(text, "text", p, 512)


def _display_text(r: Rules211, obj: Mapping[str, Any], key: str, path: str) -> None:
    text = r.object(obj, key, path, required=False)
    if text is not None:
        r.whole().string(text, "language", f"{path}.{key}", 2)
        r.whole().string(text, "text", f"{path}.{key}", 512)


def _image(r: Rules211, image: Mapping[str, Any], p: str) -> None:
    w = r.whole()
    w.url(image, "url", p)
    w.url(image, "thumbnail", p, required=False)
    w.enum(image, "category", p, IMAGE_CATEGORIES)
    w.string(image, "type", p, 4)
    w.integer(image, "width", p, required=False, digits=5)
    w.integer(image, "height", p, required=False, digits=5)


def _business_details(r: Rules211, obj: Mapping[str, Any], key: str, path: str) -> None:
    details = r.object(obj, key, path, required=False)
    if details is None:
        return
    p = f"{path}.{key}"
    w = r.whole()
    w.string(details, "name", p, 100)
    w.url(details, "website", p, required=False)
    logo = w.object(details, "logo", p, required=False)
    if logo is not None:
        _image(w, logo, f"{p}.logo")


def _coordinates(r: Rules211, obj: Mapping[str, Any], key: str, path: str, required: bool) -> None:
    point = r.object(obj, key, path, required)
    if point is None:
        return
    p = f"{path}.{key}"
    w = r.whole()
    w.string(point, "latitude", p, 10, pattern=LATITUDE)
    w.string(point, "longitude", p, 11, pattern=LONGITUDE)


def _energy_mix(r: Rules211, obj: Mapping[str, Any], key: str, path: str) -> None:
    mix = r.object(obj, key, path, required=False)
    if mix is None:
        return
    p = f"{path}.{key}"
    w = r.whole()
    w.boolean(mix, "is_green_energy", p)
    for sp, source in w.objects(mix, "energy_sources", p):
        w.enum(source, "source", sp, ENERGY_SOURCES)
        w.number(source, "percentage", sp)
    for ip, impact in w.objects(mix, "environ_impact", p):
        w.enum(impact, "source", ip, ENVIRONMENTAL_IMPACTS)
        w.number(impact, "amount", ip)
    w.string(mix, "supplier_name", p, 64, required=False)
    w.string(mix, "energy_product_name", p, 64, required=False)


def _hours(r: Rules211, obj: Mapping[str, Any], key: str, path: str) -> None:
    hours = r.object(obj, key, path, required=False)
    if hours is None:
        return
    p = f"{path}.{key}"
    w = r.whole()
    regular = w.objects(hours, "regular_hours", p)
    has_247 = "twentyfourseven" in hours
    # A choice of one of two: regular_hours or twentyfourseven.
    if has_247 and regular:
        w.fail(p, "regular_hours and twentyfourseven are exclusive")
    if not has_247 and "regular_hours" not in hours:
        w.fail(p, "one of regular_hours or twentyfourseven is required")
    if has_247:
        w.boolean(hours, "twentyfourseven", p)
    for hp, period in regular:
        w.integer(period, "weekday", hp)
        if isinstance(period.get("weekday"), int) and not 1 <= period["weekday"] <= 7:
            w.fail(f"{hp}.weekday", f"not 1..7: {period['weekday']!r}")
        w.string(period, "period_begin", hp, 5, pattern=HHMM)
        w.string(period, "period_end", hp, 5, pattern=HHMM)
    for name in ("exceptional_openings", "exceptional_closings"):
        for ep, period in w.objects(hours, name, p):
            w.datetime(period, "period_begin", ep)
            w.datetime(period, "period_end", ep)


# --- Location, EVSE, Connector (mod_locations.md) ------------------------------------------------


def connector_errors_211(
    c: Mapping[str, Any], p: str = "connector", r: Rules211 | None = None, partial: bool = False
) -> list[str]:
    r = r if r is not None else Rules211(partial)
    r.string(c, "id", p, 36)
    r.enum(c, "standard", p, CONNECTOR_TYPES)
    r.enum(c, "format", p, CONNECTOR_FORMATS)
    r.enum(c, "power_type", p, POWER_TYPES)
    r.integer(c, "voltage", p)
    r.integer(c, "amperage", p)
    r.string(c, "tariff_id", p, 36, required=False)
    r.url(c, "terms_and_conditions", p, required=False)
    r.datetime(c, "last_updated", p)
    for key in ("max_voltage", "max_amperage", "max_electric_power", "tariff_ids"):
        if key in c:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


def evse_errors_211(
    e: Mapping[str, Any], p: str = "evse", r: Rules211 | None = None, partial: bool = False
) -> list[str]:
    r = r if r is not None else Rules211(partial)
    r.string(e, "uid", p, 39)
    r.string(e, "evse_id", p, 48, required=False)
    if isinstance(e.get("evse_id"), str) and not EMI3_EVSE_ID.match(e["evse_id"]):
        r.fail(f"{p}.evse_id", f"not an eMI3 EVSE ID: {e['evse_id']!r}")
    r.enum(e, "status", p, STATUSES)
    for sp, schedule in r.objects(e, "status_schedule", p):
        r.whole().datetime(schedule, "period_begin", sp)
        r.whole().datetime(schedule, "period_end", sp, required=False)
        r.whole().enum(schedule, "status", sp, STATUSES)
    r.enums(e, "capabilities", p, CAPABILITIES)
    for cp, connector in r.objects(e, "connectors", p, at_least_one=True):
        connector_errors_211(connector, cp, r.whole())
    r.string(e, "floor_level", p, 4, required=False)
    _coordinates(r, e, "coordinates", p, required=False)
    r.string(e, "physical_reference", p, 16, required=False)
    _display_texts(r, e, "directions", p)
    r.enums(e, "parking_restrictions", p, PARKING_RESTRICTIONS)
    for ip, image in r.objects(e, "images", p):
        _image(r, image, ip)
    r.datetime(e, "last_updated", p)
    return r.errors


def location_errors_211(
    loc: Mapping[str, Any],
    p: str = "location",
    r: Rules211 | None = None,
    partial: bool = False,
) -> list[str]:
    """Every way `loc` breaks the 2.1.1 Location rules (its EVSEs and connectors included)."""
    r = r if r is not None else Rules211(partial)
    r.string(loc, "id", p, 39)
    r.enum(loc, "type", p, LOCATION_TYPES)
    r.string(loc, "name", p, 255, required=False)
    r.string(loc, "address", p, 45)
    r.string(loc, "city", p, 45)
    r.string(loc, "postal_code", p, 10)
    r.string(loc, "country", p, 3, pattern=re.compile(r"^[A-Z]{3}$"))
    _coordinates(r, loc, "coordinates", p, required=True)
    for rp, related in r.objects(loc, "related_locations", p):
        _coordinates(r.whole(), {"point": related}, "point", rp, required=True)
        _display_text(r.whole(), related, "name", rp)
    for ep, evse in r.objects(loc, "evses", p):
        evse_errors_211(evse, ep, r.whole())
    _display_texts(r, loc, "directions", p)
    for key in ("operator", "suboperator", "owner"):
        _business_details(r, loc, key, p)
    r.enums(loc, "facilities", p, FACILITIES)
    r.string(loc, "time_zone", p, 255, required=False)
    _hours(r, loc, "opening_times", p)
    r.boolean(loc, "charging_when_closed", p, required=False)
    for ip, image in r.objects(loc, "images", p):
        _image(r, image, ip)
    _energy_mix(r, loc, "energy_mix", p)
    r.datetime(loc, "last_updated", p)
    for key in ("country_code", "party_id", "publish", "publish_allowed_to", "parking_type"):
        if key in loc:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


def _embedded_location(r: Rules211, obj: Mapping[str, Any], path: str) -> None:
    """A session's or CDR's `location`: a whole Location with only the EVSE and connector
    used (mod_sessions.md, mod_cdrs.md)."""
    loc = r.object(obj, "location", path)
    if loc is None:
        return
    p = f"{path}.location"
    location_errors_211(loc, p, r.whole())
    evses = loc.get("evses")
    if not isinstance(evses, list) or len(evses) != 1:
        r.fail(f"{p}.evses", f"exactly the one EVSE used: {evses!r}")
        return
    connectors = evses[0].get("connectors") if isinstance(evses[0], dict) else None
    if not isinstance(connectors, list) or len(connectors) != 1:
        r.fail(f"{p}.evses[0].connectors", f"exactly the one connector used: {connectors!r}")


def location_patch_errors_211(level: str, body: Mapping[str, Any]) -> list[str]:
    """A PATCH body of a Location, EVSE or Connector (`level`): present fields only."""
    check = {
        "location": location_errors_211,
        "evse": evse_errors_211,
        "connector": connector_errors_211,
    }[level]
    return check(body, level, None, True)


# --- Tariff (mod_tariffs.md) ------------------------------------------------------------------


def tariff_errors_211(t: Mapping[str, Any], p: str = "tariff", partial: bool = False) -> list[str]:
    r = Rules211(partial)
    _tariff(r, t, p)
    return r.errors


def _tariff(r: Rules211, t: Mapping[str, Any], p: str) -> None:
    r.string(t, "id", p, 36)
    r.string(t, "currency", p, 3, pattern=CURRENCY)
    _display_texts(r, t, "tariff_alt_text", p)
    r.url(t, "tariff_alt_url", p, required=False)
    for ep, element in r.objects(t, "elements", p, at_least_one=True):
        w = r.whole()
        for cp, component in w.objects(element, "price_components", ep, at_least_one=True):
            w.enum(component, "type", cp, TARIFF_DIMENSIONS)
            w.number(component, "price", cp)
            w.integer(component, "step_size", cp)
            if "vat" in component:
                w.fail(f"{cp}.vat", "a 2.2.1 field, not in 2.1.1")
        restrictions = w.object(element, "restrictions", ep, required=False)
        if restrictions is not None:
            rp = f"{ep}.restrictions"
            w.string(restrictions, "start_time", rp, 5, required=False, pattern=HHMM)
            w.string(restrictions, "end_time", rp, 5, required=False, pattern=HHMM)
            w.string(restrictions, "start_date", rp, 10, required=False, pattern=DATE)
            w.string(restrictions, "end_date", rp, 10, required=False, pattern=DATE)
            for key in ("min_kwh", "max_kwh", "min_power", "max_power"):
                w.number(restrictions, key, rp, required=False)
            for key in ("min_duration", "max_duration"):
                w.integer(restrictions, key, rp, required=False)
            w.enums(restrictions, "day_of_week", rp, DAYS_OF_WEEK)
            for key in ("min_current", "max_current", "reservation"):
                if key in restrictions:
                    w.fail(f"{rp}.{key}", "a 2.2.1 field, not in 2.1.1")
    _energy_mix(r, t, "energy_mix", p)
    r.datetime(t, "last_updated", p)
    for key in ("country_code", "party_id", "type", "min_price", "max_price", "start_date_time"):
        if key in t:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")


# --- Session and CDR (mod_sessions.md, mod_cdrs.md) --------------------------------------------


def _charging_periods(r: Rules211, obj: Mapping[str, Any], path: str, at_least_one: bool) -> None:
    for pp, period in r.objects(obj, "charging_periods", path, at_least_one):
        w = r.whole()
        w.datetime(period, "start_date_time", pp)
        for dp, dimension in w.objects(period, "dimensions", pp, at_least_one=True):
            w.enum(dimension, "type", dp, CDR_DIMENSIONS)
            w.number(dimension, "volume", dp)
        if "tariff_id" in period:
            w.fail(f"{pp}.tariff_id", "a 2.2.1 field, not in 2.1.1")


def _moment(text: Any) -> datetime | None:
    if not isinstance(text, str) or not DATETIME.match(text):
        return None
    return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=UTC)


def _within(r: Rules211, obj: Mapping[str, Any], p: str, start_key: str, end_key: str) -> None:
    """The end is not before the start, and every charging period starts between them."""
    start, end = _moment(obj.get(start_key)), _moment(obj.get(end_key))
    if start is not None and end is not None and end < start:
        r.fail(f"{p}.{end_key}", f"{obj[end_key]} is before the start {obj[start_key]}")
    periods = obj.get("charging_periods")
    for index, period in enumerate(periods if isinstance(periods, list) else []):
        at = _moment(period.get("start_date_time")) if isinstance(period, dict) else None
        if at is None:
            continue
        if (start is not None and at < start) or (end is not None and at > end):
            r.fail(
                f"{p}.charging_periods[{index}].start_date_time",
                f"{period['start_date_time']} is outside {obj.get(start_key)}..{obj.get(end_key)}",
            )


def session_errors_211(
    s: Mapping[str, Any], p: str = "session", partial: bool = False
) -> list[str]:
    r = Rules211(partial)
    r.string(s, "id", p, 36)
    r.datetime(s, "start_datetime", p)
    r.datetime(s, "end_datetime", p, required=False)
    r.number(s, "kwh", p)
    r.string(s, "auth_id", p, 36)
    r.enum(s, "auth_method", p, AUTH_METHODS)
    _embedded_location(r, s, p)
    r.string(s, "meter_id", p, 255, required=False)
    r.string(s, "currency", p, 3, pattern=CURRENCY)
    _charging_periods(r, s, p, at_least_one=False)
    r.number(s, "total_cost", p, required=False)
    r.enum(s, "status", p, SESSION_STATUSES)
    r.datetime(s, "last_updated", p)
    if not partial:
        _within(r, s, p, "start_datetime", "end_datetime")
    if not partial and s.get("status") == "COMPLETED" and "end_datetime" not in s:
        r.fail(f"{p}.end_datetime", "a completed session has an end")
    for key in ("country_code", "party_id", "start_date_time", "cdr_token", "location_id"):
        if key in s:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


def cdr_errors_211(c: Mapping[str, Any], p: str = "cdr") -> list[str]:
    r = Rules211()
    r.string(c, "id", p, 36)
    r.datetime(c, "start_date_time", p)
    r.datetime(c, "stop_date_time", p)
    r.string(c, "auth_id", p, 36)
    r.enum(c, "auth_method", p, AUTH_METHODS)
    _embedded_location(r, c, p)
    r.string(c, "meter_id", p, 255, required=False)
    r.string(c, "currency", p, 3, pattern=CURRENCY)
    for tp, tariff in r.objects(c, "tariffs", p):
        _tariff(r.whole(), tariff, tp)
    _charging_periods(r, c, p, at_least_one=True)
    r.number(c, "total_cost", p)
    r.number(c, "total_energy", p)
    r.number(c, "total_time", p)
    r.number(c, "total_parking_time", p, required=False)
    r.string(c, "remark", p, 255, required=False)
    r.datetime(c, "last_updated", p)
    _within(r, c, p, "start_date_time", "stop_date_time")
    for key in ("country_code", "party_id", "end_date_time", "cdr_token", "cdr_location"):
        if key in c:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


# --- Tokens (mod_tokens.md) ---------------------------------------------------------------------


def token_errors_211(t: Mapping[str, Any], p: str = "token", partial: bool = False) -> list[str]:
    r = Rules211(partial)
    _token(r, t, p)
    return r.errors


def _token(r: Rules211, t: Mapping[str, Any], p: str) -> None:
    r.string(t, "uid", p, 36)
    r.enum(t, "type", p, TOKEN_TYPES)
    r.string(t, "auth_id", p, 36)
    r.string(t, "visual_number", p, 64, required=False)
    r.string(t, "issuer", p, 64)
    r.boolean(t, "valid", p)
    r.enum(t, "whitelist", p, WHITELIST_TYPES)
    r.string(t, "language", p, 2, required=False)
    r.datetime(t, "last_updated", p)
    for key in ("country_code", "party_id", "contract_id", "group_id", "default_profile_type"):
        if key in t:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")


def _location_references(r: Rules211, refs: Mapping[str, Any], p: str) -> None:
    r.string(refs, "location_id", p, 39)
    for index, uid in enumerate(r.items(refs, "evse_uids", p)):
        r.string({"uid": uid}, "uid", f"{p}.evse_uids[{index}]", 39)
    for index, cid in enumerate(r.items(refs, "connector_ids", p)):
        r.string({"id": cid}, "id", f"{p}.connector_ids[{index}]", 36)


def location_references_errors_211(refs: Mapping[str, Any]) -> list[str]:
    """The optional body of a real-time authorize request."""
    r = Rules211()
    _location_references(r, refs, "location_references")
    return r.errors


def authorization_info_errors_211(info: Mapping[str, Any]) -> list[str]:
    r = Rules211()
    p = "authorization_info"
    r.enum(info, "allowed", p, ALLOWED)
    refs = r.object(info, "location", p, required=False)
    if refs is not None:
        _location_references(r, refs, f"{p}.location")
    _display_text(r, info, "info", p)
    for key in ("token", "authorization_reference"):
        if key in info:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


# --- Commands (mod_commands.md) ------------------------------------------------------------------


def command_errors_211(command: str, body: Mapping[str, Any]) -> list[str]:
    """A command request body (ReserveNow, StartSession, StopSession, UnlockConnector)."""
    r = Rules211()
    p = command.lower()
    if command not in COMMANDS:
        r.fail("command", f"{command!r} not one of {sorted(COMMANDS)}")
        return r.errors
    r.url(body, "response_url", p)
    if command in ("RESERVE_NOW", "START_SESSION"):
        token = r.object(body, "token", p)
        if token is not None:
            _token(r, token, f"{p}.token")
        r.string(body, "location_id", p, 39)
        r.string(body, "evse_uid", p, 39, required=False)
    if command == "RESERVE_NOW":
        r.datetime(body, "expiry_date", p)
        r.integer(body, "reservation_id", p)
    if command == "STOP_SESSION":
        r.string(body, "session_id", p, 36)
    if command == "UNLOCK_CONNECTOR":
        r.string(body, "location_id", p, 39)
        r.string(body, "evse_uid", p, 39)
        r.string(body, "connector_id", p, 36)
    for key in ("connector_id", "authorization_reference") if command != "UNLOCK_CONNECTOR" else ():
        if key in body:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


def command_response_errors_211(resp: Mapping[str, Any]) -> list[str]:
    """The CPO's answer to a command: a CommandResponse with only `result`."""
    r = Rules211()
    p = "command_response"
    r.enum(resp, "result", p, COMMAND_RESPONSE_TYPES)
    for key in ("timeout", "message"):
        if key in resp:
            r.fail(f"{p}.{key}", "a 2.2.1 field, not in 2.1.1")
    return r.errors


def command_result_errors_211(result: Mapping[str, Any]) -> list[str]:
    """The asynchronous result POSTed to the eMSP's response_url: in 2.1.1 a CommandResponse
    too (CommandResponseType values; 2.2.1's CommandResult and its CommandResultType values
    such as EVSE_OCCUPIED or FAILED do not exist in 2.1.1)."""
    return [
        e.replace("command_response", "command_result", 1)
        for e in command_response_errors_211(result)
    ]


# --- Credentials and versions (credentials.md, version_information_endpoint.md) -----------------


def credentials_errors_211(c: Mapping[str, Any]) -> list[str]:
    """A 2.1.1 Credentials object: one party, no roles list."""
    r = Rules211()
    p = "credentials"
    r.string(c, "token", p, 64)
    r.url(c, "url", p)
    if r.present(c, "business_details", p, required=True):
        _business_details(r, c, "business_details", p)
    r.string(c, "party_id", p, 3)
    r.string(c, "country_code", p, 2)
    if "roles" in c:
        r.fail(f"{p}.roles", "a 2.2.1 field, not in 2.1.1")
    return r.errors


def versions_errors_211(versions: Any) -> list[str]:
    """The versions list (`GET /versions` data) of a party that speaks 2.1.1."""
    r = Rules211()
    for vp, version in r.objects({"versions": versions}, "versions", "", at_least_one=True):
        r.string(version, "version", vp, 10)
        r.url(version, "url", vp)
    if isinstance(versions, list) and not any(
        isinstance(v, dict) and v.get("version") == "2.1.1" for v in versions
    ):
        r.fail("versions", "2.1.1 is not offered")
    return r.errors


def version_details_errors_211(details: Mapping[str, Any]) -> list[str]:
    """2.1.1 version details: endpoints by module identifier, without roles."""
    r = Rules211()
    p = "version_details"
    r.enum(details, "version", p, {"2.1.1"})
    seen: set[str] = set()
    for ep, endpoint in r.objects(details, "endpoints", p, at_least_one=True):
        r.string(endpoint, "identifier", ep, 255)
        r.url(endpoint, "url", ep)
        identifier = endpoint.get("identifier")
        if identifier not in MODULES:
            r.fail(f"{ep}.identifier", f"{identifier!r} is not a 2.1.1 module")
        if identifier in seen:
            r.fail(f"{ep}.identifier", f"{identifier!r} listed twice (2.1.1 has no roles)")
        seen.add(str(identifier))
        if "role" in endpoint:
            r.fail(f"{ep}.role", "a 2.2.1 field, not in 2.1.1")
    if "credentials" not in seen:
        r.fail(f"{p}.endpoints", "no credentials endpoint (required for all)")
    return r.errors


def response_errors_211(envelope: Any) -> list[str]:
    """The response envelope every 2.1.1 answer is wrapped in (transport_and_format.md)."""
    r = Rules211()
    p = "response"
    if not isinstance(envelope, dict):
        return [f"{p}: must be an object: {envelope!r}"]
    if "data" in envelope and envelope["data"] is None:
        r.fail(f"{p}.data", "null (leave it out)")
    r.integer(envelope, "status_code", p)
    if isinstance(envelope.get("status_code"), int) and not 1000 <= envelope["status_code"] <= 9999:
        r.fail(f"{p}.status_code", f"not a four-digit OCPI status: {envelope['status_code']!r}")
    r.string(envelope, "status_message", p, 10_000, required=False)
    r.datetime(envelope, "timestamp", p)
    return r.errors
