"""Sites where chargers stand (the OCPI Location, as far as billing needs it) and the stable
EVSE uid that partners see, and the OCPI vocabulary of a location's own fields.

Pure values and naming rules; storing them is csms.storage's job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from csms.core.errors import InvalidLocation

# OCPI EVSE.uid is a CiString(36).
UID_MAX = 36


def evse_uid(cp_id: str, evse_id: int) -> str:
    """Our EVSE uid: `{charger}*{evse}` while that fits 36 characters, else a digest of it.
    Stable for as long as the charger keeps its id; never a hardware serial."""
    plain = f"{cp_id}*{evse_id}"
    if len(plain) <= UID_MAX:
        return plain
    return "E" + hashlib.sha256(plain.encode()).hexdigest()[: UID_MAX - 1]


# OCPI Location.facilities and parking_type.
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
        "BIKE_SHARING",
        "BUS_STOP",
        "TAXI_STAND",
        "TRAM_STOP",
        "METRO_STATION",
        "TRAIN_STATION",
        "AIRPORT",
        "PARKING_LOT",
        "CARPOOL_PARKING",
        "FUEL_STATION",
        "WIFI",
    }
)
PARKING_TYPES = frozenset(
    {
        "ALONG_MOTORWAY",
        "PARKING_GARAGE",
        "PARKING_LOT",
        "ON_DRIVEWAY",
        "ON_STREET",
        "UNDERGROUND_GARAGE",
    }
)


def choice(text: str, allowed: frozenset[str], name: str) -> str:
    """One of the OCPI values `allowed`, as staff typed it (upper-cased, connector standards
    aside); InvalidLocation names the field `name` and the values it takes."""
    value = text.strip().upper() if name != "connector standard" else text.strip()
    if value not in allowed:
        raise InvalidLocation(f"{name} must be one of {', '.join(sorted(allowed))}, not {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """What a charger's connectors are, for OCPI (defaults: an AC wallbox with a socket)."""

    standard: str = "IEC_62196_T2"
    format: str = "SOCKET"
    power_type: str = "AC_3_PHASE"
    max_voltage: int = 230
    max_amperage: int = 32
    max_electric_power: int | None = None


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    name: str | None
    address: str
    city: str
    postal_code: str | None
    country: str  # ISO 3166-1 alpha-3
    latitude: str
    longitude: str
    time_zone: str
    publish: bool = True
    state: str | None = None
    parking_type: str | None = None
    facilities: tuple[str, ...] = ()
    # OCPI Hours (csms.core.ocpi_locations.opening_hours_from); None: not known.
    opening_hours: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The OCPI last_updated: the latest real change of the location or of its EVSEs.
    last_updated: datetime | None = None

    def same_content(self, other: Location) -> bool:
        """Whether two versions of a location say the same (timestamps aside)."""
        return replace(self, created_at=None, updated_at=None, last_updated=None) == replace(
            other, created_at=None, updated_at=None, last_updated=None
        )

    def ocpi_cdr_location(
        self, evse_uid: str, evse_id: str, connector_id: str, spec: ConnectorSpec
    ) -> dict[str, object]:
        """The OCPI CdrLocation of one connector at this location."""
        out: dict[str, object] = {
            "id": self.id,
            "address": self.address,
            "city": self.city,
            "country": self.country,
            "coordinates": {"latitude": self.latitude, "longitude": self.longitude},
            "evse_uid": evse_uid,
            "evse_id": evse_id,
            "connector_id": connector_id,
            "connector_standard": spec.standard,
            "connector_format": spec.format,
            "connector_power_type": spec.power_type,
        }
        if self.name:
            out["name"] = self.name
        if self.postal_code:
            out["postal_code"] = self.postal_code
        if self.state:
            out["state"] = self.state
        return out


def _coordinate(text: str, limit: int, name: str) -> str:
    """OCPI wants 5 to 7 decimals: `52.37020`; fewer are padded, more rounded."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidLocation(f"{name} must be a number, not {text!r}") from None
    if not value.is_finite() or abs(value) > limit:
        raise InvalidLocation(f"{name} must be between -{limit} and {limit}")
    exponent = value.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{value:.{max(5, min(7, decimals))}f}"


def validate_location(location: Location) -> Location:
    """The location with its coordinates in OCPI form; InvalidLocation names what is wrong."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    checks = (
        ("id", location.id, 36),
        ("address", location.address, 45),
        ("city", location.city, 45),
        ("postal code", location.postal_code, 10),
        ("state", location.state, 20),
        ("name", location.name, 255),
    )
    for name, value, limit in checks:
        if value is not None and not (0 < len(value) <= limit):
            raise InvalidLocation(f"{name} must be 1 to {limit} characters")
    if (
        len(location.country) != 3
        or not location.country.isalpha()
        or not location.country.isupper()
    ):
        raise InvalidLocation(
            f"country must be ISO 3166-1 alpha-3 in capitals (e.g. NLD), not {location.country!r}"
        )
    try:
        ZoneInfo(location.time_zone)
    except (ZoneInfoNotFoundError, ValueError):  # ZoneInfo's refusals
        raise InvalidLocation(
            f"unknown time zone {location.time_zone!r} (e.g. Europe/Amsterdam)"
        ) from None
    if location.parking_type is not None:
        location = replace(
            location, parking_type=choice(location.parking_type, PARKING_TYPES, "parking type")
        )
    location = replace(
        location, facilities=tuple(choice(f, FACILITIES, "facility") for f in location.facilities)
    )
    return replace(
        location,
        latitude=_coordinate(location.latitude, 90, "latitude"),
        longitude=_coordinate(location.longitude, 180, "longitude"),
    )
