"""OCPI 2.1.1 objects made from our 2.2.1 ones (what we serve and push) and 2.2.1 objects
made from a 2.1.1 partner's input (tokens, commands, credentials, authorization answers).

Pure functions over JSON-ready mappings; no I/O, no validation of the 2.2.1 side (the
2.2.1 code path that receives a converted object validates it as it always does). Whatever
2.1.1 cannot carry is dropped, strings longer than 2.1.1 allows are cut, enum values 2.1.1
lacks are mapped to the nearest 2.1.1 value or dropped: we never send an invalid object.
When no valid 2.1.1 object can be made, V211Unrenderable says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from csms.core.partners import PartyRole, Role
from ocpi_cpo.credentials import Credentials, is_url
from ocpi_cpo.credentials import parse_credentials as parse_credentials_221
from ocpi_cpo.errors import BadCredentials, OcpiError

VERSION = "2.1.1"


class PartyLike(Protocol):
    """What owns a 2.1.1 token: a csms.core.parties.Party or a partner's PartyRole."""

    @property
    def country_code(self) -> str: ...

    @property
    def party_id(self) -> str: ...


class V211Unrenderable(OcpiError):
    """A 2.2.1 object that has no valid 2.1.1 form (e.g. a session whose location is not
    published, an EVSE none of whose connectors 2.1.1 can describe)."""


# --- enums of 2.1.1 ----------------------------------------------------------------------

LOCATION_TYPES = frozenset(
    {"ON_STREET", "PARKING_GARAGE", "UNDERGROUND_GARAGE", "PARKING_LOT", "OTHER", "UNKNOWN"}
)
# 2.2.1 ParkingType values without a 2.1.1 LocationType of the same name.
_PARKING_TYPE_OTHER = frozenset({"ALONG_MOTORWAY", "ON_DRIVEWAY"})
CAPABILITIES = frozenset(
    {
        "CHARGING_PROFILE_CAPABLE",
        "CREDIT_CARD_PAYABLE",
        "REMOTE_START_STOP_CAPABLE",
        "RESERVABLE",
        "RFID_READER",
        "UNLOCK_CAPABLE",
    }
)
FACILITIES = frozenset(
    {
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
)
CONNECTOR_STANDARDS = frozenset(
    {
        "CHADEMO",
        *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKL"),
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
)
CONNECTOR_FORMATS = frozenset({"SOCKET", "CABLE"})
# 2.2.1's two-phase supplies are not three-phase: 2.1.1 has only single and three phase.
_POWER_TYPES = {
    "AC_1_PHASE": "AC_1_PHASE",
    "AC_2_PHASE": "AC_1_PHASE",
    "AC_2_PHASE_SPLIT": "AC_1_PHASE",
    "AC_3_PHASE": "AC_3_PHASE",
    "DC": "DC",
}
STATUSES = frozenset(
    {
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
)
PARKING_RESTRICTIONS = frozenset({"EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"})
DIMENSIONS = frozenset({"ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"})
TARIFF_DIMENSIONS = frozenset({"ENERGY", "FLAT", "PARKING_TIME", "TIME"})
# 2.2.1 RESERVATION has no 2.1.1 counterpart: a reserved, not yet started session is PENDING.
_SESSION_STATUSES = {
    "ACTIVE": "ACTIVE",
    "COMPLETED": "COMPLETED",
    "INVALID": "INVALID",
    "PENDING": "PENDING",
    "RESERVATION": "PENDING",
}
# 2.2.1 COMMAND (started by an eMSP's command) was an authorization asked of the eMSP.
_AUTH_METHODS = {
    "AUTH_REQUEST": "AUTH_REQUEST",
    "WHITELIST": "WHITELIST",
    "COMMAND": "AUTH_REQUEST",
}
TOKEN_TYPES = frozenset({"OTHER", "RFID"})
WHITELIST_TYPES = frozenset({"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"})
ALLOWED = frozenset({"ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"})
COMMAND_RESPONSE_TYPES = frozenset(
    {"NOT_SUPPORTED", "REJECTED", "ACCEPTED", "TIMEOUT", "UNKNOWN_SESSION"}
)
COMMANDS = frozenset({"RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR"})

_RESTRICTION_KEYS = (
    "start_time",
    "end_time",
    "start_date",
    "end_date",
    "min_kwh",
    "max_kwh",
    "min_power",
    "max_power",
    "min_duration",
    "max_duration",
    "day_of_week",
)


# --- small helpers -------------------------------------------------------------------------


def _cut(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) else value


def _copy(src: Mapping[str, Any], dst: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if key in src and src[key] is not None:
            dst[key] = src[key]


def _cut_into(src: Mapping[str, Any], dst: dict[str, Any], limits: Mapping[str, int]) -> None:
    for key, limit in limits.items():
        if key in src and src[key] is not None:
            dst[key] = _cut(src[key], limit)


def _display_texts(texts: Any) -> list[dict[str, Any]]:
    out = []
    for t in texts if isinstance(texts, list) else []:
        if isinstance(t, Mapping) and isinstance(t.get("text"), str):
            out.append({"language": _cut(t.get("language", "en"), 2), "text": t["text"][:512]})
    return out


def _money(value: Any) -> Any:
    """A 2.2.1 Price as the 2.1.1 number: excl. VAT, which is what 2.1.1's total_cost is
    (the spec says so for Session and CDR); a bare number is kept as it is."""
    if isinstance(value, Mapping):
        return value.get("excl_vat", 0)
    return value


_SIX = Decimal("0.000001")


def _degrees(value: Any) -> Any:
    """A 2.2.1 coordinate (4 to 7 decimals) with the exactly 6 decimals 2.1.1 requires."""
    try:
        return str(Decimal(str(value)).quantize(_SIX, rounding=ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError):
        return value


def geo(point: Any) -> Any:
    """A GeoLocation (or AdditionalGeoLocation) in 2.1.1: 6-decimal coordinates."""
    if not isinstance(point, Mapping):
        return point
    out = dict(point)
    for key in ("latitude", "longitude"):
        if key in out:
            out[key] = _degrees(out[key])
    if "name" in out:
        names = _display_texts([out["name"]])
        if names:
            out["name"] = names[0]
        else:
            del out["name"]
    return out


def location_type(parking_type: Any) -> str:
    """The 2.1.1 LocationType for a 2.2.1 parking_type (UNKNOWN when it is not given)."""
    if parking_type in LOCATION_TYPES:
        return str(parking_type)
    if parking_type in _PARKING_TYPE_OTHER:
        return "OTHER"
    return "UNKNOWN"


def rendered(
    convert: Callable[[Mapping[str, Any]], dict[str, Any]], items: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The items of a page in 2.1.1: each converted, those without a 2.1.1 form left out
    (the page's total still counts them: a partner sees a short page, never a bad object)."""
    out = []
    for item in items:
        try:
            out.append(convert(item))
        except V211Unrenderable:
            continue
    return out


# --- locations -----------------------------------------------------------------------------

_LOCATION_LIMITS = {"name": 255, "address": 45, "city": 45, "postal_code": 10, "time_zone": 255}
_LOCATION_KEPT = (
    "id",
    "country",
    "coordinates",
    "related_locations",
    "operator",
    "suboperator",
    "owner",
    "opening_times",
    "charging_when_closed",
    "images",
    "energy_mix",
    "last_updated",
)
_EVSE_LIMITS = {"evse_id": 48, "floor_level": 4, "physical_reference": 16}
_EVSE_KEPT = ("uid", "status_schedule", "coordinates", "images", "last_updated")


def connector(c: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 Connector in 2.1.1: max_voltage/max_amperage become voltage/amperage, the
    first tariff id is the tariff, max_electric_power goes. Raises V211Unrenderable for a
    standard or format 2.1.1 does not know (it is a required enum)."""
    standard, fmt = c.get("standard"), c.get("format")
    if standard not in CONNECTOR_STANDARDS or fmt not in CONNECTOR_FORMATS:
        raise V211Unrenderable(
            f"connector {c.get('id')!r}: {standard}/{fmt} is not a 2.1.1 connector type"
        )
    out: dict[str, Any] = {
        "id": c.get("id"),
        "standard": standard,
        "format": fmt,
        "power_type": _POWER_TYPES.get(str(c.get("power_type")), "AC_1_PHASE"),
        "voltage": int(c.get("max_voltage") or 0),
        "amperage": int(c.get("max_amperage") or 0),
    }
    tariff_ids = c.get("tariff_ids")
    if isinstance(tariff_ids, list) and tariff_ids:
        out["tariff_id"] = _cut(tariff_ids[0], 36)
    _copy(c, out, ("terms_and_conditions", "last_updated"))
    return out


def _connectors(items: Any) -> list[dict[str, Any]]:
    out = []
    for c in items if isinstance(items, list) else []:
        try:
            out.append(connector(c))
        except V211Unrenderable:
            continue
    return out


def evse(e: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 EVSE in 2.1.1: capabilities and parking restrictions 2.1.1 knows, connectors
    converted (those 2.1.1 cannot describe left out). Raises V211Unrenderable when no
    connector is left (2.1.1 requires one at least)."""
    out: dict[str, Any] = {}
    _copy(e, out, ("uid",))
    _cut_into(e, out, {"evse_id": 48})
    status = e.get("status")
    out["status"] = status if status in STATUSES else "UNKNOWN"
    _copy(e, out, ("status_schedule",))
    out["capabilities"] = [x for x in e.get("capabilities") or [] if x in CAPABILITIES]
    connectors = _connectors(e.get("connectors"))
    if not connectors:
        raise V211Unrenderable(f"EVSE {e.get('uid')!r} has no connector 2.1.1 can describe")
    out["connectors"] = connectors
    _cut_into(e, out, {"floor_level": 4})
    if e.get("coordinates") is not None:
        out["coordinates"] = geo(e["coordinates"])
    _cut_into(e, out, {"physical_reference": 16})
    directions = _display_texts(e.get("directions"))
    if directions:
        out["directions"] = directions
    restrictions = [x for x in e.get("parking_restrictions") or [] if x in PARKING_RESTRICTIONS]
    if restrictions:
        out["parking_restrictions"] = restrictions
    _copy(e, out, ("images", "last_updated"))
    return out


def _evses(items: Any) -> list[dict[str, Any]]:
    out = []
    for e in items if isinstance(items, list) else []:
        try:
            out.append(evse(e))
        except V211Unrenderable:
            continue
    return out


def location(loc: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 Location in 2.1.1: `type` from parking_type, no country_code, party_id,
    publish, publish_allowed_to, state or parking_type; EVSEs converted (one 2.1.1 cannot
    describe is left out); postal_code, required in 2.1.1, is empty when we have none."""
    out: dict[str, Any] = {"id": loc.get("id"), "type": location_type(loc.get("parking_type"))}
    _cut_into(loc, out, {"name": 255, "address": 45, "city": 45})
    out["postal_code"] = _cut(loc.get("postal_code") or "", 10)
    _copy(loc, out, ("country",))
    out["coordinates"] = geo(loc.get("coordinates"))
    related = [geo(p) for p in loc.get("related_locations") or []]
    if related:
        out["related_locations"] = related
    out["evses"] = _evses(loc.get("evses"))
    directions = _display_texts(loc.get("directions"))
    if directions:
        out["directions"] = directions
    _copy(loc, out, ("operator", "suboperator", "owner"))
    facilities = [x for x in loc.get("facilities") or [] if x in FACILITIES]
    if facilities:
        out["facilities"] = facilities
    _cut_into(loc, out, {"time_zone": 255})
    _copy(
        loc,
        out,
        ("opening_times", "charging_when_closed", "images", "energy_mix", "last_updated"),
    )
    return out


def location_patch(
    level: Literal["location", "evse", "connector"], fields: Mapping[str, Any]
) -> dict[str, Any]:
    """A 2.2.1 PATCH body of a Location, EVSE or Connector as the 2.1.1 one, field by field
    (fields 2.1.1 lacks dropped; a whole EVSE or connector list converted)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if level == "location":
            if key == "parking_type":
                out["type"] = location_type(value)
            elif key in _LOCATION_LIMITS:
                out[key] = _cut(value, _LOCATION_LIMITS[key])
            elif key == "evses":
                out[key] = _evses(value)
            elif key == "directions":
                out[key] = _display_texts(value)
            elif key == "facilities":
                out[key] = [x for x in value or [] if x in FACILITIES]
            elif key == "coordinates":
                out[key] = geo(value)
            elif key == "related_locations":
                out[key] = [geo(p) for p in value or []]
            elif key in _LOCATION_KEPT:
                out[key] = value
        elif level == "evse":
            if key == "status":
                out[key] = value if value in STATUSES else "UNKNOWN"
            elif key == "capabilities":
                out[key] = [x for x in value or [] if x in CAPABILITIES]
            elif key == "connectors":
                out[key] = _connectors(value)
            elif key == "parking_restrictions":
                out[key] = [x for x in value or [] if x in PARKING_RESTRICTIONS]
            elif key == "directions":
                out[key] = _display_texts(value)
            elif key == "coordinates":
                out[key] = geo(value)
            elif key in _EVSE_LIMITS:
                out[key] = _cut(value, _EVSE_LIMITS[key])
            elif key in _EVSE_KEPT:
                out[key] = value
        elif key == "max_voltage":
            out["voltage"] = int(value or 0)
        elif key == "max_amperage":
            out["amperage"] = int(value or 0)
        elif key == "tariff_ids":
            if isinstance(value, list) and value:
                out["tariff_id"] = _cut(value[0], 36)
        elif key == "power_type":
            out[key] = _POWER_TYPES.get(str(value), "AC_1_PHASE")
        elif key in ("standard", "format"):
            if value in CONNECTOR_STANDARDS or value in CONNECTOR_FORMATS:
                out[key] = value
        elif key in ("id", "terms_and_conditions", "last_updated"):
            out[key] = value
    return out


def embedded_location(
    location211: Mapping[str, Any], evse_uid: str, connector_id: str | None
) -> dict[str, Any]:
    """A 2.1.1 Location restricted to one EVSE (and one connector), as a 2.1.1 Session or
    CDR carries it. Raises V211Unrenderable when the EVSE (or connector) is not there."""
    for e in location211.get("evses") or []:
        if e.get("uid") != evse_uid:
            continue
        connectors = list(e.get("connectors") or [])
        if connector_id is not None:
            connectors = [c for c in connectors if str(c.get("id")) == str(connector_id)]
        if not connectors:
            break
        return {**location211, "evses": [{**e, "connectors": connectors}]}
    raise V211Unrenderable(
        f"location {location211.get('id')!r} has no EVSE {evse_uid!r}"
        + (f" with connector {connector_id!r}" if connector_id is not None else "")
        + " to embed"
    )


def _location_from_cdr_location(cl: Mapping[str, Any], last_updated: Any) -> dict[str, Any]:
    """The 2.1.1 Location a CDR embeds when only its 2.2.1 CdrLocation is known: what the
    CdrLocation says, the rest the least 2.1.1 requires (type and status UNKNOWN, voltage and
    amperage 0: not known here)."""
    standard = cl.get("connector_standard")
    fmt = cl.get("connector_format")
    if standard not in CONNECTOR_STANDARDS or fmt not in CONNECTOR_FORMATS:
        raise V211Unrenderable(f"CDR location: {standard}/{fmt} is not a 2.1.1 connector type")
    conn = {
        "id": cl.get("connector_id"),
        "standard": standard,
        "format": fmt,
        "power_type": _POWER_TYPES.get(str(cl.get("connector_power_type")), "AC_1_PHASE"),
        "voltage": 0,
        "amperage": 0,
        "last_updated": last_updated,
    }
    e: dict[str, Any] = {"uid": cl.get("evse_uid")}
    _cut_into(cl, e, {"evse_id": 48})
    e.update(status="UNKNOWN", connectors=[conn], last_updated=last_updated)
    out: dict[str, Any] = {"id": cl.get("id"), "type": "UNKNOWN"}
    _cut_into(cl, out, {"name": 255, "address": 45, "city": 45})
    out["postal_code"] = _cut(cl.get("postal_code") or "", 10)
    _copy(cl, out, ("country",))
    out["coordinates"] = geo(cl.get("coordinates"))
    out["evses"] = [e]
    out["last_updated"] = last_updated
    return out


# --- tariffs -------------------------------------------------------------------------------


def _restrictions(r: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _copy(r, out, _RESTRICTION_KEYS)
    return out


def tariff(t: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 Tariff in 2.1.1: no country_code, party_id, type, min/max price or validity
    window; price components without vat; restrictions 2.1.1 knows (an element that applies
    only to reservations is left out). Raises V211Unrenderable when no element is left."""
    elements = []
    for el in t.get("elements") or []:
        components = [
            {"type": pc.get("type"), "price": pc.get("price"), "step_size": pc.get("step_size")}
            for pc in el.get("price_components") or []
            if pc.get("type") in TARIFF_DIMENSIONS
        ]
        if not components:
            continue
        element: dict[str, Any] = {"price_components": components}
        raw = el.get("restrictions")
        if isinstance(raw, Mapping):
            if raw.get("reservation"):
                continue
            restrictions = _restrictions(raw)
            if restrictions:
                element["restrictions"] = restrictions
        elements.append(element)
    if not elements:
        raise V211Unrenderable(f"tariff {t.get('id')!r} has no element 2.1.1 can describe")
    out: dict[str, Any] = {"id": t.get("id"), "currency": t.get("currency")}
    alt = _display_texts(t.get("tariff_alt_text"))
    if alt:
        out["tariff_alt_text"] = alt
    _copy(t, out, ("tariff_alt_url",))
    out["elements"] = elements
    _copy(t, out, ("energy_mix", "last_updated"))
    return out


# --- sessions and CDRs ---------------------------------------------------------------------


def charging_periods(periods: Any) -> list[dict[str, Any]]:
    """2.2.1 charging periods in 2.1.1: the dimensions 2.1.1 knows (a period left with none
    is dropped), tariff_id gone."""
    out = []
    for p in periods if isinstance(periods, list) else []:
        dims = [
            {"type": d.get("type"), "volume": d.get("volume")}
            for d in p.get("dimensions") or []
            if d.get("type") in DIMENSIONS
        ]
        if dims:
            out.append({"start_date_time": p.get("start_date_time"), "dimensions": dims})
    return out


def _auth_id(token: Any) -> str:
    if not isinstance(token, Mapping):
        return ""
    return str(token.get("contract_id") or token.get("uid") or "")[:36]


def session(s: Mapping[str, Any], location211: Mapping[str, Any] | None) -> dict[str, Any]:
    """A 2.2.1 Session in 2.1.1: auth_id (the token's contract id), the location embedded
    with the session's EVSE and connector, total_cost as the 2.1.1 number (excl. VAT, as
    2.1.1 defines it), the dimensions 2.1.1 knows. Raises V211Unrenderable when the location
    is unknown (2.1.1 requires the whole Location and a 2.2.1 Session has only its id)."""
    if location211 is None:
        raise V211Unrenderable(
            f"session {s.get('id')!r}: location {s.get('location_id')!r} is not published"
        )
    out: dict[str, Any] = {"id": s.get("id"), "start_datetime": s.get("start_date_time")}
    if s.get("end_date_time") is not None:
        out["end_datetime"] = s["end_date_time"]
    out["kwh"] = s.get("kwh", 0)
    out["auth_id"] = _auth_id(s.get("cdr_token"))
    out["auth_method"] = _AUTH_METHODS.get(str(s.get("auth_method")), "AUTH_REQUEST")
    out["location"] = embedded_location(
        location211, str(s.get("evse_uid")), _str_or_none(s.get("connector_id"))
    )
    _cut_into(s, out, {"meter_id": 255})
    out["currency"] = s.get("currency")
    out["charging_periods"] = charging_periods(s.get("charging_periods"))
    if s.get("total_cost") is not None:
        out["total_cost"] = _money(s["total_cost"])
    out["status"] = _SESSION_STATUSES.get(str(s.get("status")), "PENDING")
    out["last_updated"] = s.get("last_updated")
    return out


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def session_patch(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 Session PATCH body in 2.1.1 (fields 2.1.1 lacks dropped).

    Charging periods are left out: our 2.2.1 PATCHes carry only the new periods, which a
    2.2.1 receiver appends, but 2.1.1 has no such rule, so a 2.1.1 receiver would replace
    the periods it holds with the newest few. It gets them all with the session's next PUT
    (the final one at the latest)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "start_date_time":
            out["start_datetime"] = value
        elif key == "end_date_time":
            out["end_datetime"] = value
        elif key == "total_cost":
            out[key] = _money(value)
        elif key == "status":
            out[key] = _SESSION_STATUSES.get(str(value), "PENDING")
        elif key == "auth_method":
            out[key] = _AUTH_METHODS.get(str(value), "AUTH_REQUEST")
        elif key == "cdr_token":
            out["auth_id"] = _auth_id(value)
        elif key == "meter_id":
            out[key] = _cut(value, 255)
        elif key in ("id", "kwh", "currency", "last_updated"):
            out[key] = value
    return out


def cdr(c: Mapping[str, Any], location211: Mapping[str, Any] | None) -> dict[str, Any]:
    """A 2.2.1 CDR in 2.1.1: stop_date_time, auth_id, the location embedded (from the
    published location when known, else from the CDR's own CdrLocation), total_cost as
    the 2.1.1 number (excl. VAT), its tariffs converted (one 2.1.1 cannot describe left
    out), total_parking_time only when there was some. 2.1.1 requires one charging period
    at least: a CDR whose periods all carry 2.2.1-only dimensions gets one ENERGY period."""
    cl = c.get("cdr_location") if isinstance(c.get("cdr_location"), Mapping) else {}
    assert isinstance(cl, Mapping)
    if location211 is not None:
        loc = embedded_location(
            location211, str(cl.get("evse_uid")), _str_or_none(cl.get("connector_id"))
        )
    elif cl:
        loc = _location_from_cdr_location(cl, c.get("last_updated"))
    else:
        raise V211Unrenderable(f"CDR {c.get('id')!r} has no location")
    out: dict[str, Any] = {
        "id": c.get("id"),
        "start_date_time": c.get("start_date_time"),
        "stop_date_time": c.get("end_date_time"),
        "auth_id": _auth_id(c.get("cdr_token")),
        "auth_method": _AUTH_METHODS.get(str(c.get("auth_method")), "AUTH_REQUEST"),
        "location": loc,
    }
    _cut_into(c, out, {"meter_id": 255})
    out["currency"] = c.get("currency")
    tariffs = []
    for t in c.get("tariffs") or []:
        try:
            tariffs.append(tariff(t))
        except V211Unrenderable:
            continue
    if tariffs:
        out["tariffs"] = tariffs
    periods = charging_periods(c.get("charging_periods"))
    if not periods:
        periods = [
            {
                "start_date_time": c.get("start_date_time"),
                "dimensions": [{"type": "ENERGY", "volume": c.get("total_energy", 0)}],
            }
        ]
    out["charging_periods"] = periods
    out["total_cost"] = _money(c.get("total_cost", 0))
    out["total_energy"] = c.get("total_energy", 0)
    out["total_time"] = c.get("total_time", 0)
    if c.get("total_parking_time"):
        out["total_parking_time"] = c["total_parking_time"]
    _cut_into(c, out, {"remark": 255})
    out["last_updated"] = c.get("last_updated")
    return out


# --- tokens and authorization --------------------------------------------------------------


def token_to_221(t: Mapping[str, Any], party: PartyLike) -> dict[str, Any]:
    """A 2.1.1 Token (pushed to us or pulled) as the 2.2.1 Token our code takes: auth_id is
    the contract_id, the party is the one the 2.1.1 partner registered as (2.1.1 tokens
    carry no party). Only what the partner sent is copied: a missing field stays missing for
    the 2.2.1 validation to name."""
    out: dict[str, Any] = {"country_code": party.country_code, "party_id": party.party_id}
    _copy(t, out, ("uid",))
    if "type" in t:
        out["type"] = t["type"]
    if "auth_id" in t:
        out["contract_id"] = t["auth_id"]
    _copy(t, out, ("visual_number", "issuer", "valid", "whitelist", "language", "last_updated"))
    return out


def token_patch_to_221(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.1.1 Token PATCH body in 2.2.1 (auth_id is contract_id, the rest has the same
    names)."""
    return {("contract_id" if k == "auth_id" else k): v for k, v in fields.items()}


def token(t221: Mapping[str, Any]) -> dict[str, Any]:
    """A stored 2.2.1 Token shown in 2.1.1 (types 2.1.1 lacks, such as APP_USER, are
    OTHER)."""
    out: dict[str, Any] = {"uid": _cut(t221.get("uid"), 36)}
    out["type"] = t221.get("type") if t221.get("type") in TOKEN_TYPES else "OTHER"
    out["auth_id"] = _cut(t221.get("contract_id") or t221.get("uid") or "", 36)
    _cut_into(t221, out, {"visual_number": 64})
    out["issuer"] = _cut(t221.get("issuer") or "", 64)
    out["valid"] = bool(t221.get("valid", False))
    whitelist = t221.get("whitelist")
    out["whitelist"] = whitelist if whitelist in WHITELIST_TYPES else "ALLOWED"
    _cut_into(t221, out, {"language": 2})
    out["last_updated"] = t221.get("last_updated")
    return out


def authorization_info(info221: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 AuthorizationInfo in 2.1.1: allowed, location references, info (no token,
    no authorization_reference)."""
    allowed = info221.get("allowed")
    out: dict[str, Any] = {"allowed": allowed if allowed in ALLOWED else "NOT_ALLOWED"}
    loc = info221.get("location")
    if isinstance(loc, Mapping) and loc.get("location_id"):
        ref: dict[str, Any] = {"location_id": loc["location_id"]}
        _copy(loc, ref, ("evse_uids", "connector_ids"))
        out["location"] = ref
    info = info221.get("info")
    if isinstance(info, Mapping) and isinstance(info.get("text"), str):
        out["info"] = _display_texts([info])[0]
    return out


def authorization_info_to_221(
    info211: Mapping[str, Any], token221: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A 2.1.1 eMSP's AuthorizationInfo in 2.2.1. 2.1.1 does not echo the token: the caller
    passes the 2.2.1 Token it asked about (2.2.1 requires it in the answer)."""
    out: dict[str, Any] = {}
    _copy(info211, out, ("allowed",))
    if token221 is not None:
        out["token"] = dict(token221)
    loc = info211.get("location")
    if isinstance(loc, Mapping):
        ref: dict[str, Any] = {}
        _copy(loc, ref, ("location_id", "evse_uids"))
        out["location"] = ref
    _copy(info211, out, ("info",))
    return out


# --- commands ------------------------------------------------------------------------------


def command_to_221(command: str, body: Mapping[str, Any], party: PartyLike) -> dict[str, Any]:
    """A 2.1.1 command body as the 2.2.1 request our command code takes: the token (START,
    RESERVE) converted with token_to_221, reservation_id (an int in 2.1.1) as text. Other
    fields have the same names in both versions and are copied as sent (the 2.2.1 code
    validates them)."""
    out = dict(body)
    raw_token = body.get("token")
    if command in ("START_SESSION", "RESERVE_NOW") and isinstance(raw_token, Mapping):
        out["token"] = token_to_221(raw_token, party)
    if command == "RESERVE_NOW" and isinstance(body.get("reservation_id"), int):
        out["reservation_id"] = str(body["reservation_id"])
    return out


def command_response(resp221: Mapping[str, Any]) -> dict[str, Any]:
    """Our 2.2.1 CommandResponse in 2.1.1: the result only (no timeout, no message)."""
    result = resp221.get("result")
    return {"result": result if result in COMMAND_RESPONSE_TYPES else "REJECTED"}


def command_result(result221: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.2.1 CommandResult in 2.1.1 (a CommandResponse): 2.2.1's finer failures
    (EVSE_OCCUPIED, FAILED, UNKNOWN_RESERVATION ...) are REJECTED."""
    result = result221.get("result")
    if result in ("ACCEPTED", "TIMEOUT", "NOT_SUPPORTED"):
        return {"result": result}
    return {"result": "REJECTED"}


# --- credentials ---------------------------------------------------------------------------


def credentials(token: str, url: str, role: PartyRole) -> dict[str, Any]:
    """Our 2.1.1 Credentials object: one party, no roles list (business_details.name is
    required: the party itself when we have no name)."""
    details = dict(role.business_details)
    if not details.get("name"):
        details["name"] = role.party
    return {
        "token": token,
        "url": url,
        "business_details": details,
        "party_id": role.party_id,
        "country_code": role.country_code,
    }


def parse_credentials(data: Any, role: Role = Role.EMSP) -> Credentials:
    """A 2.1.1 partner's Credentials object as our Credentials with one PartyRole (`role`:
    2.1.1 does not say what the party is; an eMSP unless we know better). Raises
    BadCredentials naming the field."""
    if not isinstance(data, dict):
        raise BadCredentials("the credentials must be a JSON object")
    if not is_url(data.get("url")):
        raise BadCredentials("url: must be the http(s) URL of the versions endpoint")
    details = data.get("business_details")
    if details is not None and not isinstance(details, dict):
        raise BadCredentials("business_details: must be an object")
    as_221 = {
        "token": data.get("token"),
        "url": data.get("url"),
        "roles": [
            {
                "role": role.value,
                "country_code": data.get("country_code"),
                "party_id": data.get("party_id"),
                "business_details": details or {},
            }
        ],
    }
    try:
        return parse_credentials_221(as_221)
    except BadCredentials as exc:
        raise BadCredentials(str(exc).replace("roles[0].", "")) from None
