"""Sites staff describe and the chargers placed at them: add, update, remove, link (a whole
charger or one EVSE with its eMI3 id and connector details), and import many at once.

Validation and storage; what partners see of it is rendered by the OCPI location
publisher from the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from csms.core.clock import Clock
from csms.core.errors import InvalidInput, InvalidLocation, UnknownLocation
from csms.core.ids import first_duplicate
from csms.core.locations import ConnectorSpec, Location, choice, validate_location
from csms.core.ocpi_locations import (
    CONNECTOR_FORMATS,
    CONNECTOR_STANDARDS,
    POWER_TYPES,
    evse_code,
    facilities_from,
    opening_hours_from,
)
from csms.core.parties import Party
from csms.storage import locations as repo
from csms.storage import ocpi_evses as evse_repo
from csms.storage.database import Database, WriteTx
from csms.storage.locations import ChargerLink, EvseDetail
from csms.storage.ocpi_evses import PublishedEvse


@dataclass(frozen=True, slots=True)
class LocationView:
    location: Location
    chargers: list[ChargerLink]
    evses: list[PublishedEvse]


def validate_spec(spec: ConnectorSpec) -> ConnectorSpec:
    """The connector description with its OCPI enums checked (InvalidLocation names the field)."""
    spec = replace(
        spec,
        standard=choice(spec.standard, CONNECTOR_STANDARDS, "connector standard"),
        format=choice(spec.format, CONNECTOR_FORMATS, "connector format"),
        power_type=choice(spec.power_type, POWER_TYPES, "power type"),
    )
    for name, value in (("max voltage", spec.max_voltage), ("max amperage", spec.max_amperage)):
        if value < 1:
            raise InvalidLocation(f"{name} must be at least 1")
    if spec.max_electric_power is not None and spec.max_electric_power < 1:
        raise InvalidLocation("max power must be at least 1 W")
    return spec


def validate_detail(detail: EvseDetail) -> EvseDetail:
    out = detail
    if detail.evse_code is not None:
        out = replace(out, evse_code=evse_code(detail.evse_code))
    if detail.standard is not None:
        out = replace(
            out, standard=choice(detail.standard, CONNECTOR_STANDARDS, "connector standard")
        )
    if detail.format is not None:
        out = replace(out, format=choice(detail.format, CONNECTOR_FORMATS, "connector format"))
    if detail.power_type is not None:
        out = replace(out, power_type=choice(detail.power_type, POWER_TYPES, "power type"))
    return out


class LocationService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(self, location: Location) -> None:
        location = validate_location(location)
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            if await repo.get(conn, location.id) is not None:
                raise InvalidInput(
                    f"location {location.id!r} exists (change it with `csms locations update`)"
                )
            await repo.save(conn, location, now)

        await self._db.write(unit)

    async def update(self, location_id: str, changes: Mapping[str, Any]) -> Location:
        """Apply the given field changes (Location field names) to a stored location."""
        now = self._clock()

        async def unit(w: WriteTx) -> Location:
            conn = await w.connection()
            old = await repo.get(conn, location_id)
            if old is None:
                raise UnknownLocation(f"no location {location_id!r}")
            new = validate_location(replace(old, **changes))
            await repo.save(conn, new, now)
            return new

        return await self._db.write(unit)

    async def remove(self, location_id: str) -> None:
        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            old = await repo.get(conn, location_id)
            if old is None:
                raise UnknownLocation(f"no location {location_id!r}")
            if old.publish:
                raise InvalidInput(
                    f"location {location_id!r} is published; unpublish it first "
                    f"(`csms locations update {location_id} --no-publish`) so that partners "
                    "learn it is gone"
                )
            await repo.remove(conn, location_id)

        await self._db.write(unit)

    async def link(
        self,
        location_id: str,
        cp_id: str,
        spec: ConnectorSpec | None,
        evse: tuple[int, EvseDetail] | None = None,
    ) -> None:
        """Place a charger at a location (its connector defaults `spec`; None keeps what it
        had, or the standard defaults), and optionally describe one of its EVSEs."""
        if spec is not None:
            spec = validate_spec(spec)
        if evse is not None:
            if evse[0] < 1:
                raise InvalidInput("EVSE numbers start at 1")
            evse = (evse[0], validate_detail(evse[1]))
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            await self._link(conn, location_id, cp_id, spec, evse, now)

        await self._db.write(unit)

    async def _link(
        self,
        conn: Any,
        location_id: str,
        cp_id: str,
        spec: ConnectorSpec | None,
        evse: tuple[int, EvseDetail] | None,
        now: Any,
    ) -> None:
        if await repo.get(conn, location_id) is None:
            raise UnknownLocation(f"no location {location_id!r}")
        current = await repo.links(conn, [cp_id])
        if current and evse is not None and current[0].location_id != location_id:
            raise InvalidInput(
                f"charger {cp_id!r} stands at location {current[0].location_id!r}; "
                "link the whole charger here first"
            )
        here = bool(current) and current[0].location_id == location_id
        if spec is not None or not here:
            default = current[0].spec if current else ConnectorSpec()
            await repo.link(conn, cp_id, location_id, spec or default, now)
        if evse is not None:
            number, detail = evse
            if detail.evse_code is not None:
                owner = await repo.evse_code_owner(conn, detail.evse_code)
                if owner is not None and owner != (cp_id, number):
                    raise InvalidInput(
                        f"EVSE id {detail.evse_code} is already used by {owner[0]} EVSE {owner[1]}"
                    )
            await repo.link_evse(conn, cp_id, number, detail, now)

    async def unlink(self, cp_id: str) -> None:
        async def unit(w: WriteTx) -> None:
            if not await repo.unlink(await w.connection(), cp_id):
                raise InvalidInput(f"charger {cp_id!r} is not linked to a location")

        await self._db.write(unit)

    async def list(self) -> list[tuple[Location, list[str]]]:
        async with self._db.read() as conn:
            found = await repo.list_all(conn)
            return [(loc, await repo.chargers_at(conn, loc.id)) for loc in found]

    async def show(self, location_id: str) -> LocationView:
        async with self._db.read() as conn:
            location = await repo.get(conn, location_id)
            if location is None:
                raise UnknownLocation(f"no location {location_id!r}")
            chargers = await repo.links(conn, await repo.chargers_at(conn, location_id))
            evses = (await evse_repo.at_locations(conn, [location_id]))[location_id]
        return LocationView(location, chargers, evses)

    async def import_document(self, document: Any, *, ours: Party) -> tuple[int, int]:
        """Locations (and their chargers) from a JSON document: a list of objects with the
        OCPI Location field names plus `time_zone` and an optional `chargers` list. All are
        checked first; all or nothing is stored. Returns (created, updated).

        Our locations are published as ours: an object may leave out `country_code` and
        `party_id` or repeat `ours`; another party's is refused."""
        items = document.get("locations") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise InvalidInput("the file must hold a JSON list of locations")
        parsed = []
        for index, item in enumerate(items):
            try:
                parsed.append(_parse_item(item, ours))
            # A document parser: our checks' InvalidInput, and int() of a field, a missing
            # key or a value of the wrong type, each named with the item it is in.
            except (InvalidInput, ValueError, TypeError, KeyError) as exc:
                what = item.get("id") if isinstance(item, dict) else None
                where = f"location {what!r}" if what else f"item {index}"
                detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
                raise InvalidInput(f"{where}: {detail}") from None
        ids = [loc.id for loc, _ in parsed]
        duplicate = first_duplicate(ids)
        if duplicate is not None:
            raise InvalidInput(f"location {duplicate!r} appears twice in the file")
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[int, int]:
            conn = await w.connection()
            created = 0
            for location, chargers in parsed:
                created += await repo.save(conn, location, now)
                for cp_id, spec, evses in chargers:
                    await self._link(conn, location.id, cp_id, spec, None, now)
                    for evse in evses:
                        await self._link(conn, location.id, cp_id, None, evse, now)
            return created, len(parsed) - created

        return await self._db.write(unit)


def _check_ours(item: dict[str, Any], ours: Party) -> None:
    """A location file may name our party, never another one."""
    for key, own in (("country_code", ours.country_code), ("party_id", ours.party_id)):
        given = item.get(key)
        if given is not None and (not isinstance(given, str) or given.upper() != own):
            raise InvalidLocation(f"{key} {given!r} is not ours ({own})")


def _parse_item(
    item: Any, ours: Party
) -> tuple[Location, list[tuple[str, ConnectorSpec, list[tuple[int, EvseDetail]]]]]:
    if not isinstance(item, dict):
        raise InvalidLocation("must be a JSON object")
    _check_ours(item, ours)
    coordinates = item["coordinates"]
    hours = item.get("opening_times")
    if isinstance(hours, str):
        hours = opening_hours_from(hours)
    facilities = item.get("facilities") or ()
    if isinstance(facilities, str):
        facilities = facilities_from(facilities)
    location = validate_location(
        Location(
            id=str(item["id"]),
            name=item.get("name"),
            address=item["address"],
            city=item["city"],
            postal_code=item.get("postal_code"),
            state=item.get("state"),
            country=item["country"],
            latitude=str(coordinates["latitude"]),
            longitude=str(coordinates["longitude"]),
            time_zone=item["time_zone"],
            publish=bool(item.get("publish", True)),
            parking_type=item.get("parking_type"),
            facilities=tuple(facilities),
            opening_hours=hours,
        )
    )
    chargers = []
    for charger in item.get("chargers") or []:
        c = charger.get("connector") or {}
        spec = validate_spec(
            ConnectorSpec(
                standard=c.get("standard", "IEC_62196_T2"),
                format=c.get("format", "SOCKET"),
                power_type=c.get("power_type", "AC_3_PHASE"),
                max_voltage=int(c.get("max_voltage", 230)),
                max_amperage=int(c.get("max_amperage", 32)),
                max_electric_power=None
                if c.get("max_electric_power") is None
                else int(c["max_electric_power"]),
            )
        )
        evses = [
            (int(e["evse"]), validate_detail(EvseDetail(evse_code=e.get("evse_id"))))
            for e in charger.get("evses") or []
        ]
        chargers.append((str(charger["id"]), spec, evses))
    return location, chargers
