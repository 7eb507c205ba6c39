"""Many locations at once (`csms locations import`): parse an OCPI-style JSON list or a CSV
with one EVSE per line, check every row (all errors, each with where it is), then store in
batches with bulk statements.

Why batches of bulk statements: one location at a time took 107 s for 10,000 locations
(several round trips each); a batch is one transaction of a few executemany statements.
What is stored is what `locations add` + `locations link` store, so the location publisher
(which reads the same tables, by `updated_at`) publishes imported locations as usual.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csms.core.errors import InvalidInput, InvalidLocation
from csms.core.location_columns import CSV_COLUMNS
from csms.core.locations import ConnectorSpec, Location, validate_location
from csms.core.ocpi_locations import facilities_from, opening_hours_from
from csms.core.parties import Party
from csms.services.location_checks import validate_detail, validate_spec
from csms.storage import locations as repo
from csms.storage.database import Database, WriteTx
from csms.storage.locations import EvseDetail

BATCH = 1000

_LOCATION_COLUMNS = (
    "name",
    "address",
    "city",
    "postal_code",
    "state",
    "country",
    "latitude",
    "longitude",
    "time_zone",
    "publish",
    "parking_type",
    "facilities",
    "opening_hours",
)
_CONNECTOR_COLUMNS = (
    "connector_standard",
    "connector_format",
    "power_type",
    "max_voltage",
    "max_amperage",
    "max_power",
)

Charger = tuple[str, ConnectorSpec, list[tuple[int, EvseDetail]]]


@dataclass(slots=True)
class Item:
    """One location of the file and where it is ("line 5", "item 3")."""

    where: str
    location: Location
    chargers: list[Charger]
    # Every place of the file it came from (CSV: all its lines), for error messages.
    places: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RowError:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Outcome:
    created: int
    updated: int
    errors: list[RowError]
    # Rows (CSV lines, JSON items) with at least one error.
    skipped: int


def _problem(exc: Exception) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


# --- JSON -----------------------------------------------------------------------------------


def parse_json(document: Any, ours: Party) -> tuple[list[Item], list[RowError]]:
    items = document.get("locations") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise InvalidInput("the file must hold a JSON list of locations")
    parsed: list[Item] = []
    errors: list[RowError] = []
    for index, raw in enumerate(items):
        what = raw.get("id") if isinstance(raw, dict) else None
        where = f"item {index}" + (f" (location {what!r})" if what else "")
        try:
            location, chargers = parse_item(raw, ours)
        # A document parser: our checks' InvalidInput, and int() of a field, a missing key
        # or a value of the wrong type, each named with the item it is in.
        except (InvalidInput, ValueError, TypeError, KeyError, AttributeError) as exc:
            errors.append(RowError(where, _problem(exc)))
            continue
        parsed.append(Item(where, location, chargers, [where]))
    return parsed, errors


def _check_ours(item: dict[str, Any], ours: Party) -> None:
    """A location file may name our party, never another one."""
    for key, own in (("country_code", ours.country_code), ("party_id", ours.party_id)):
        given = item.get(key)
        if given is not None and (not isinstance(given, str) or given.upper() != own):
            raise InvalidLocation(f"{key} {given!r} is not ours ({own})")


def parse_item(item: Any, ours: Party) -> tuple[Location, list[Charger]]:

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
    chargers: list[Charger] = []
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
        evses = []
        for e in charger.get("evses") or []:
            number = int(e["evse"])
            if number < 1:
                raise InvalidInput("EVSE numbers start at 1")
            evses.append((number, validate_detail(EvseDetail(evse_code=e.get("evse_id")))))
        chargers.append((str(charger["id"]), spec, evses))
    return location, chargers


# --- CSV ------------------------------------------------------------------------------------


def _int(text: str, name: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} {text!r} is not a whole number") from None


def _location_from_row(row: dict[str, str], ours: Party) -> Location:
    publish = row.get("publish", "").lower()
    if publish not in ("", "yes", "no", "true", "false", "1", "0"):
        raise InvalidInput(f"publish {row['publish']!r} must be yes or no")
    for name in ("location_id", "address", "city", "country", "latitude", "longitude"):
        if not row.get(name):
            raise InvalidInput(f"{name} is empty")
    if not row.get("time_zone"):
        raise InvalidInput("time_zone is empty")
    hours = opening_hours_from(row["opening_hours"]) if row.get("opening_hours") else None
    facilities = facilities_from(row["facilities"]) if row.get("facilities") else ()
    return validate_location(
        Location(
            id=row["location_id"],
            name=row.get("name") or None,
            address=row["address"],
            city=row["city"],
            postal_code=row.get("postal_code") or None,
            state=row.get("state") or None,
            country=row["country"],
            latitude=row["latitude"],
            longitude=row["longitude"],
            time_zone=row["time_zone"],
            publish=publish not in ("no", "false", "0"),
            parking_type=row.get("parking_type") or None,
            facilities=tuple(facilities or ()),
            opening_hours=hours,
        )
    )


def _spec_from_row(row: dict[str, str]) -> ConnectorSpec:

    d = ConnectorSpec()
    return validate_spec(
        ConnectorSpec(
            standard=row.get("connector_standard") or d.standard,
            format=(row.get("connector_format") or d.format).upper(),
            power_type=(row.get("power_type") or d.power_type).upper(),
            max_voltage=_int(row.get("max_voltage", ""), "max_voltage") or d.max_voltage,
            max_amperage=_int(row.get("max_amperage", ""), "max_amperage") or d.max_amperage,
            max_electric_power=_int(row.get("max_power", ""), "max_power"),
        )
    )


def _detail(spec: ConnectorSpec, default: ConnectorSpec, code: str | None) -> EvseDetail:
    """What one EVSE says beyond its charger's defaults (None where it is the same)."""

    def differ(mine: Any, theirs: Any) -> Any:
        return None if mine == theirs else mine

    return validate_detail(
        EvseDetail(
            evse_code=code or None,
            standard=differ(spec.standard, default.standard),
            format=differ(spec.format, default.format),
            power_type=differ(spec.power_type, default.power_type),
            max_voltage=differ(spec.max_voltage, default.max_voltage),
            max_amperage=differ(spec.max_amperage, default.max_amperage),
            max_electric_power=differ(spec.max_electric_power, default.max_electric_power),
        )
    )


def parse_csv(text: str, ours: Party) -> tuple[list[Item], list[RowError]]:
    """Rows with the same location_id form one location (its columns must agree); the
    first row of a charger gives its connector defaults, later EVSEs keep what differs."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    known = {name for name, _, _ in CSV_COLUMNS}
    if header is None:
        raise InvalidInput("line 1: the file is empty (a header line is required)")
    names = [h.strip().lower() for h in header]
    missing = [n for n, required, _ in CSV_COLUMNS if required and n not in names]
    unknown = [n for n in names if n not in known]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise InvalidInput(f"line 1: header: {'; '.join(parts)} (see --help)")
    items: dict[str, Item] = {}
    bad: set[str] = set()
    errors: list[RowError] = []
    first_rows: dict[str, dict[str, str]] = {}
    charger_specs: dict[tuple[str, str], ConnectorSpec] = {}
    for values in reader:
        line = reader.line_num
        where = f"line {line}"
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            errors.append(RowError(where, f"{len(values)} fields, the header has {len(names)}"))
            continue
        row = {n: v.strip() for n, v in zip(names, values, strict=True)}
        loc_id = row["location_id"]
        try:
            item = items.get(loc_id)
            if item is None:
                location = _location_from_row(row, ours)
                item = Item(where, location, [], [])
                items[loc_id] = item
                first_rows[loc_id] = row
            else:
                first = first_rows[loc_id]
                differ = [n for n in _LOCATION_COLUMNS if row.get(n, "") != first.get(n, "")]
                if differ:
                    raise InvalidInput(
                        f"location {loc_id!r} has other {', '.join(differ)} than on {item.where}"
                    )
            item.places.append(where)
            cp_id = row.get("charger_id", "")
            if not cp_id:
                if row.get("evse") or any(row.get(n) for n in _CONNECTOR_COLUMNS):
                    raise InvalidInput("EVSE and connector columns need a charger_id")
                continue
            spec = _spec_from_row(row)
            number = _int(row.get("evse", ""), "evse")
            if number is not None and number < 1:
                raise InvalidInput("EVSE numbers start at 1")
            if number is None and row.get("evse_id"):
                raise InvalidInput("evse_id needs an evse number")
            default = charger_specs.get((loc_id, cp_id))
            if default is None:
                default = spec
                charger_specs[(loc_id, cp_id)] = spec
                item.chargers.append((cp_id, spec, []))
            if number is not None:
                detail = _detail(spec, default, row.get("evse_id"))
                for charger in item.chargers:
                    if charger[0] == cp_id:
                        charger[2].append((number, detail))
        except (InvalidInput, ValueError) as exc:
            errors.append(RowError(where, str(exc)))
            bad.add(loc_id)
    return [i for k, i in items.items() if k not in bad], errors


# --- checks across the file and against the database -----------------------------------------


def check_together(items: list[Item]) -> tuple[list[Item], list[RowError]]:
    """What no single row shows: a location, charger, EVSE or EVSE id given twice."""
    errors: list[RowError] = []
    seen_loc: dict[str, str] = {}
    seen_cp: dict[str, str] = {}
    seen_code: dict[str, str] = {}
    good: list[Item] = []
    for item in items:
        problems: list[str] = []
        if item.location.id in seen_loc:
            problems.append(
                f"location {item.location.id!r} appears twice (also {seen_loc[item.location.id]})"
            )
        else:
            seen_loc[item.location.id] = item.where
        for cp_id, _, evses in item.chargers:
            if cp_id in seen_cp:
                problems.append(f"charger {cp_id!r} is placed twice (also {seen_cp[cp_id]})")
            seen_cp.setdefault(cp_id, item.where)
            numbers = [n for n, _ in evses]
            if len(set(numbers)) != len(numbers):
                problems.append(f"charger {cp_id!r} has an EVSE number twice")
            for _, detail in evses:
                code = detail.evse_code
                if code is None:
                    continue
                if code in seen_code:
                    problems.append(f"EVSE id {code} is given twice (also {seen_code[code]})")
                seen_code.setdefault(code, item.where)
        if problems:
            errors.extend(RowError(item.where, p) for p in problems)
        else:
            good.append(item)
    return good, errors


async def check_stored(db: Database, items: list[Item]) -> tuple[list[Item], list[RowError]]:
    """EVSE ids already used by another (charger, EVSE) than the file gives them to."""
    wanted = {
        detail.evse_code: (cp_id, number)
        for item in items
        for cp_id, _, evses in item.chargers
        for number, detail in evses
        if detail.evse_code is not None
    }
    if not wanted:
        return items, []
    async with db.read() as conn:
        owners = await repo.evse_code_owners(conn, wanted)
    errors: list[RowError] = []
    good: list[Item] = []
    for item in items:
        problems = [
            f"EVSE id {detail.evse_code} is already used by {owner[0]} EVSE {owner[1]}"
            for cp_id, _, evses in item.chargers
            for number, detail in evses
            if detail.evse_code is not None
            and (owner := owners.get(detail.evse_code)) is not None
            and owner != (cp_id, number)
        ]
        if problems:
            errors.extend(RowError(item.where, p) for p in problems)
        else:
            good.append(item)
    return good, errors


async def store(db: Database, items: list[Item], now: Any, batch: int = BATCH) -> tuple[int, int]:
    """Write the items, one transaction per `batch` locations; returns (created, updated)."""
    created = 0
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]

        async def unit(w: WriteTx, chunk: list[Item] = chunk) -> int:
            conn = await w.connection()
            new = await repo.save_many(conn, [i.location for i in chunk], now)
            links = [(cp, i.location.id, spec) for i in chunk for cp, spec, _ in i.chargers]
            if links:
                await repo.link_many(conn, links, now)
            evses = [
                (cp, number, detail)
                for i in chunk
                for cp, _, found in i.chargers
                for number, detail in found
            ]
            if evses:
                await repo.link_evse_many(conn, evses, now)
            return new

        created += await db.write(unit)
    return created, len(items) - created


async def import_items(
    db: Database,
    clock: Callable[[], Any],
    parsed: tuple[list[Item], list[RowError]],
    *,
    skip_invalid: bool,
) -> Outcome:
    """Check everything, then store: nothing when any row is wrong unless skip_invalid
    (then the valid locations, and the errors still reported)."""
    items, errors = parsed
    items, more = check_together(items)
    errors += more
    items, more = await check_stored(db, items)
    errors += more
    errors.sort(key=_order)
    bad_rows = len({e.where for e in errors})
    if errors and not skip_invalid:
        return Outcome(0, 0, errors, bad_rows)
    created, updated = await store(db, items, clock())
    return Outcome(created, updated, errors, bad_rows)


def _order(error: RowError) -> tuple[int, str]:
    number = "".join(ch for ch in error.where.split(" (")[0] if ch.isdigit())
    return (int(number) if number else 0, error.message)
