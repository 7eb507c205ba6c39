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
from csms.core.errors import InvalidInput, UnknownLocation
from csms.core.locations import ConnectorSpec, Location, evse_uid, validate_location
from csms.core.ocpi_locations import EvseStatus, published_evse_code
from csms.core.parties import Party
from csms.services.location_checks import validate_detail, validate_spec
from csms.storage import charge_points as cp_repo
from csms.storage import locations as repo
from csms.storage import ocpi_evses as evse_repo
from csms.storage.database import Database, WriteTx
from csms.storage.locations import ChargerLink, EvseDetail
from csms.storage.ocpi_evses import PublishedEvse

__all__ = [
    "LocatedEvse",
    "LocationService",
    "LocationView",
    "validate_detail",
    "validate_spec",
]


@dataclass(frozen=True, slots=True)
class LocationView:
    location: Location
    chargers: list[ChargerLink]
    evses: list[PublishedEvse]


@dataclass(frozen=True, slots=True)
class LocatedEvse:
    """An EVSE at a location as a driver meets it: its uid (the payment page's address)
    and the eMI3 EVSE id partners and drivers see."""

    uid: str
    evse_code: str
    charge_point_id: str
    evse_id: int


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

    async def evses(self, location_id: str, ours: Party) -> tuple[LocatedEvse, ...]:
        """The EVSEs of the chargers at a location, in a stable order (charger, EVSE
        number): the ones the chargers reported, the ones staff described and the ones
        published here, as the location publisher renders them (a charger that never
        connected and has no EVSE described has none yet)."""
        async with self._db.read() as conn:
            if await repo.get(conn, location_id) is None:
                raise UnknownLocation(f"no location {location_id!r}")
            chargers = await repo.chargers_at(conn, location_id)
            links = {link.charge_point_id: link for link in await repo.links(conn, chargers)}
            numbers: dict[str, set[int]] = {cp: set(links[cp].evses) for cp in links}
            for c in await cp_repo.connectors_of(conn, chargers):
                if c.evse_id > 0 and c.charge_point_id in numbers:
                    numbers[c.charge_point_id].add(c.evse_id)
            for e in (await evse_repo.at_locations(conn, [location_id]))[location_id]:
                if e.charge_point_id in numbers and e.status != EvseStatus.REMOVED.value:
                    numbers[e.charge_point_id].add(e.evse_id)
        return tuple(
            LocatedEvse(
                uid=evse_uid(cp, n),
                evse_code=published_evse_code(
                    links[cp].evses[n].evse_code if n in links[cp].evses else None,
                    ours.country_code,
                    ours.party_id,
                    cp,
                    n,
                ),
                charge_point_id=cp,
                evse_id=n,
            )
            for cp in sorted(numbers)
            for n in sorted(numbers[cp])
        )

    async def import_document(self, document: Any, *, ours: Party) -> tuple[int, int]:
        """Locations (and their chargers) from a JSON document: a list of objects with the
        OCPI Location field names plus `time_zone` and an optional `chargers` list. All are
        checked first; nothing is stored when any is wrong (InvalidInput lists every
        problem, one a line). Returns (created, updated).

        Our locations are published as ours: an object may leave out `country_code` and
        `party_id` or repeat `ours`; another party's is refused."""
        from csms.services import location_import

        outcome = await location_import.import_items(
            self._db, self._clock, location_import.parse_json(document, ours), skip_invalid=False
        )
        if outcome.errors:
            raise InvalidInput("\n".join(str(e) for e in outcome.errors))
        return outcome.created, outcome.updated
