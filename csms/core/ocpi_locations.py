"""Locations as partners see them (OCPI 2.2.1 Location, EVSE and Connector): the vocabulary
of their fields, the OCPP -> OCPI status mapping, and rendering an EVSE from what the
charger reported and what staff said.

Pure functions and values; which EVSEs exist and storing what was published is
ocpi_cpo.locations_publisher's job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from csms.core.errors import InvalidLocation
from csms.core.locations import FACILITIES, ConnectorSpec, Location, choice
from csms.core.status import ConnectorStatus
from csms.core.tariffs import ocpi_datetime


class EvseStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


CONNECTOR_STANDARDS = frozenset(
    {
        "CHADEMO",
        "CHAOJI",
        *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKLMNO"),
        "GBT_AC",
        "GBT_DC",
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
        "NEMA_5_20",
        "NEMA_6_30",
        "NEMA_6_50",
        "NEMA_10_30",
        "NEMA_10_50",
        "NEMA_14_30",
        "NEMA_14_50",
        "PANTOGRAPH_BOTTOM_UP",
        "PANTOGRAPH_TOP_DOWN",
        "TESLA_R",
        "TESLA_S",
    }
)
CONNECTOR_FORMATS = frozenset({"SOCKET", "CABLE"})
POWER_TYPES = frozenset({"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"})


class Capability(StrEnum):
    """The EVSE capabilities we publish, in the order of OCPI's list."""

    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    # Ad-hoc payment: the EVSE's QR code opens a page that takes credit and debit cards
    # (OCPI names only payment terminals; a payment page is the nearest it has).
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


# --- staff input -------------------------------------------------------------------------

# eMI3 EVSE ID (what OCPI calls evse_id): country, operator, "E", the outlet id; the `*`
# separators are optional.
_EVSE_CODE = re.compile(r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9*]{1,30}$")
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def evse_code(text: str) -> str:
    """An eMI3 EVSE ID as staff typed it, upper-cased; InvalidLocation when it is not one."""
    code = text.strip().upper()
    if len(code) > 48 or not _EVSE_CODE.match(code):
        raise InvalidLocation(f"EVSE id must be in eMI3 form like NL*ABC*E0001, not {text!r}")
    return code


def default_evse_code(country_code: str, party_id: str, cp_id: str, evse_id: int) -> str:
    """The eMI3 EVSE ID we give an EVSE staff did not name: ours, then the charger id
    (letters and digits only, upper-cased) and the EVSE number."""
    outlet = re.sub(r"[^A-Z0-9]", "", cp_id.upper()) + f"*{evse_id}"
    if len(outlet) > 30:
        digest = hashlib.sha256(cp_id.encode()).hexdigest()[:12].upper()
        outlet = f"{digest}*{evse_id}"
    return f"{country_code}*{party_id}*E{outlet}"


def published_evse_code(
    staff_code: str | None, country_code: str, party_id: str, cp_id: str, evse_id: int
) -> str:
    """The eMI3 EVSE ID partners see for an EVSE (its OCPI `evse_id`, in the Location and
    in CDRs): the one staff gave it, else default_evse_code."""
    return staff_code or default_evse_code(country_code, party_id, cp_id, evse_id)


def facilities_from(text: str) -> tuple[str, ...]:
    """`HOTEL,WIFI` -> ("HOTEL", "WIFI"); an empty text means none."""
    items = [t for t in (p.strip() for p in text.split(",")) if t]
    return tuple(dict.fromkeys(choice(t, FACILITIES, "facility") for t in items))


def opening_hours_from(text: str) -> dict[str, Any] | None:
    """OCPI Hours from `24/7` or `Mo-Fr 08:00-18:00; Sa 09:00-13:00` (day ranges or single
    days, one or more periods per group separated by `;`); an empty text means unknown."""
    text = text.strip()
    if not text:
        return None
    if text.lower() in ("24/7", "24x7", "always"):
        return {"twentyfourseven": True}
    regular: list[dict[str, Any]] = []
    for group in (g.strip() for g in text.split(";")):
        if not group:
            continue
        parts = group.split()
        if len(parts) != 2:
            raise InvalidLocation(
                f"opening hours group must be like 'Mo-Fr 08:00-18:00', not {group!r}"
            )
        days = _days(parts[0])
        begin, dash, end = parts[1].partition("-")
        if not dash or not _HHMM.match(begin) or not (_HHMM.match(end) or end == "24:00"):
            raise InvalidLocation(f"opening period must be like 08:00-18:00, not {parts[1]!r}")
        if end != "24:00" and end <= begin:
            raise InvalidLocation(f"opening period {parts[1]!r} must end after it begins")
        for day in days:
            regular.append({"weekday": day, "period_begin": begin, "period_end": end})
    if not regular:
        return None
    regular.sort(key=lambda r: (r["weekday"], r["period_begin"]))
    return {"twentyfourseven": False, "regular_hours": regular}


def _days(text: str) -> list[int]:
    out: list[int] = []
    for item in text.upper().split(","):
        first, dash, last = item.partition("-")
        try:
            a = _DAYS.index(first) + 1
            b = _DAYS.index(last) + 1 if dash else a
        except ValueError:
            raise InvalidLocation(f"days must be like Mo-Fr or Sa,Su, not {text!r}") from None
        if b < a:
            raise InvalidLocation(f"day range {item!r} runs backwards")
        out.extend(range(a, b + 1))
    return out


# --- status ------------------------------------------------------------------------------

_STATUS = {
    ConnectorStatus.AVAILABLE: EvseStatus.AVAILABLE,
    ConnectorStatus.OCCUPIED: EvseStatus.CHARGING,
    ConnectorStatus.PREPARING: EvseStatus.CHARGING,
    ConnectorStatus.CHARGING: EvseStatus.CHARGING,
    ConnectorStatus.SUSPENDED_EV: EvseStatus.CHARGING,
    ConnectorStatus.SUSPENDED_EVSE: EvseStatus.CHARGING,
    ConnectorStatus.FINISHING: EvseStatus.CHARGING,
    ConnectorStatus.RESERVED: EvseStatus.RESERVED,
    ConnectorStatus.UNAVAILABLE: EvseStatus.INOPERATIVE,
    ConnectorStatus.FAULTED: EvseStatus.OUTOFORDER,
}
# Several connectors of one EVSE: the EVSE shows the first of these any connector has (in
# use beats reserved beats usable beats switched off beats broken).
_PRECEDENCE = (
    EvseStatus.CHARGING,
    EvseStatus.RESERVED,
    EvseStatus.AVAILABLE,
    EvseStatus.INOPERATIVE,
    EvseStatus.OUTOFORDER,
)


def ocpi_status(status: ConnectorStatus) -> EvseStatus:
    return _STATUS[status]


@dataclass(frozen=True, slots=True)
class Presence:
    """What the status of a charger's EVSEs depends on beyond their connectors."""

    # Unlinked from its location, the location gone, or the charger deleted after it was
    # published: its EVSEs are REMOVED.
    removed: bool
    # It has connected at least once (a site prepared before installation is PLANNED).
    installed: bool
    connected: bool
    disconnected_at: datetime | None


def evse_status(
    connectors: Sequence[ConnectorStatus],
    charger: ConnectorStatus | None,
    presence: Presence,
    now: datetime,
    grace: timedelta,
) -> EvseStatus:
    """The OCPI status of one EVSE from its connectors' OCPP statuses and the charger-level
    one (1.6 connector 0): REMOVED or PLANNED from `presence`; UNKNOWN when the charger has
    been offline for `grace` or more, or never reported this EVSE; a charger-level
    Unavailable or Faulted covers every EVSE not in use."""
    if presence.removed:
        return EvseStatus.REMOVED
    if not presence.installed:
        return EvseStatus.PLANNED
    if not presence.connected and (
        presence.disconnected_at is None or now - presence.disconnected_at >= grace
    ):
        return EvseStatus.UNKNOWN
    mapped = {ocpi_status(s) for s in connectors}
    if EvseStatus.CHARGING in mapped:
        return EvseStatus.CHARGING
    if charger in (ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED):
        return ocpi_status(charger)
    for status in _PRECEDENCE:
        if status in mapped:
            return status
    return EvseStatus.UNKNOWN


def offline_until(presence: Presence, grace: timedelta) -> datetime | None:
    """When an offline charger's EVSEs turn UNKNOWN (None: connected, or already)."""
    if presence.connected or presence.disconnected_at is None:
        return None
    return presence.disconnected_at + grace


# --- rendering ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorFacts:
    connector_id: int
    spec: ConnectorSpec
    tariff_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EvseFacts:
    uid: str
    evse_code: str
    status: EvseStatus
    capabilities: tuple[Capability, ...]
    connectors: tuple[ConnectorFacts, ...]
    physical_reference: str | None = None


def render_connector(c: ConnectorFacts) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(c.connector_id),
        "standard": c.spec.standard,
        "format": c.spec.format,
        "power_type": c.spec.power_type,
        "max_voltage": c.spec.max_voltage,
        "max_amperage": c.spec.max_amperage,
    }
    if c.spec.max_electric_power is not None:
        out["max_electric_power"] = c.spec.max_electric_power
    if c.tariff_ids:
        out["tariff_ids"] = list(c.tariff_ids)
    return out


def render_evse(e: EvseFacts) -> dict[str, Any]:
    """The EVSE object without any `last_updated` (those are stamped by `stamp`)."""
    out: dict[str, Any] = {
        "uid": e.uid,
        "evse_id": e.evse_code,
        "status": e.status.value,
        "capabilities": [c.value for c in e.capabilities],
        "connectors": [render_connector(c) for c in e.connectors],
    }
    if e.physical_reference:
        out["physical_reference"] = e.physical_reference
    return out


def digest(obj: Any) -> str:
    """A fingerprint of an object (keys sorted), to tell a real change from a repeat."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Change(StrEnum):
    NONE = "none"
    STATUS = "status"  # only the status changed: a PATCH of the EVSE
    OBJECT = "object"  # anything else (or new): a PUT of the EVSE


def stamp(
    rendered: dict[str, Any], previous: Mapping[str, Any] | None, now: datetime
) -> tuple[dict[str, Any], Change]:
    """The EVSE as stored and served: `rendered` with `last_updated` on it and on each
    connector, kept from `previous` (the stored object) where nothing changed, `now` where
    something did. Also says what kind of change it was."""
    iso = ocpi_datetime(now)
    old_connectors = {c["id"]: c for c in (previous or {}).get("connectors", [])}
    connectors = []
    for c in rendered["connectors"]:
        old = old_connectors.get(c["id"])
        same = old is not None and without_time(old) == c
        connectors.append({**c, "last_updated": old["last_updated"] if same and old else iso})
    out = {**rendered, "connectors": connectors}
    if previous is None:
        return {**out, "last_updated": iso}, Change.OBJECT
    before = without_time(previous)
    after = without_time(out)
    if before == after:
        return {**out, "last_updated": previous["last_updated"]}, Change.NONE
    if {**before, "status": after["status"]} == after:
        return {**out, "last_updated": iso}, Change.STATUS
    return {**out, "last_updated": iso}, Change.OBJECT


def without_time(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "last_updated"}
    if "connectors" in out:
        out["connectors"] = [
            {k: v for k, v in c.items() if k != "last_updated"} for c in out["connectors"]
        ]
    return out


def render_location(
    location: Location,
    evses: Iterable[dict[str, Any]],
    *,
    country_code: str,
    party_id: str,
    operator_name: str | None,
) -> dict[str, Any]:
    """The Location object (its `last_updated` is added by whoever serves it)."""
    out: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": location.id,
        "publish": location.publish,
    }
    if location.name:
        out["name"] = location.name
    out["address"] = location.address
    out["city"] = location.city
    if location.postal_code:
        out["postal_code"] = location.postal_code
    if location.state:
        out["state"] = location.state
    out["country"] = location.country
    out["coordinates"] = {"latitude": location.latitude, "longitude": location.longitude}
    if location.parking_type:
        out["parking_type"] = location.parking_type
    out["evses"] = list(evses)
    if operator_name:
        out["operator"] = {"name": operator_name}
    if location.facilities:
        out["facilities"] = list(location.facilities)
    out["time_zone"] = location.time_zone
    if location.opening_hours is not None:
        out["opening_times"] = location.opening_hours
    return out
