"""`csms locations`: the sites chargers stand at, as partners will see them (add, update,
link chargers and EVSEs, list, show, remove, import). Data commands: they work on the
database whether or not the server runs; a running server publishes the change.

Argument parsing and printing over csms.services.locations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from csms.cli.common import (
    CliError,
    config_option,
    json_option,
    load,
    print_json,
    print_warning,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option, run_reads
from csms.config import Config
from csms.core.location_columns import csv_help
from csms.views import location_overview_json, location_view_json

T = TypeVar("T")

PUBLISH_HELP = "Whether partners (OCPI) may see it (default: published)."


def _locations(config_file: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.locations import LocationService

    async def wrapped(db: Any) -> T:
        try:
            return await work(LocationService(db, utc_now))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def _facilities(text: str | None) -> tuple[str, ...] | None:
    from csms.core.errors import InvalidLocation
    from csms.core.ocpi_locations import facilities_from

    if text is None:
        return None
    try:
        return facilities_from(text)
    except InvalidLocation as exc:
        raise CliError(str(exc)) from None


def _hours(text: str | None) -> dict[str, Any] | None:
    from csms.core.errors import InvalidLocation
    from csms.core.ocpi_locations import opening_hours_from

    if text is None:
        return None
    try:
        return opening_hours_from(text)
    except InvalidLocation as exc:
        raise CliError(str(exc)) from None


@click.group()
def locations() -> None:
    """Sites where chargers stand (published to partners; their time zone prices sessions)."""


def _site_options(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            [
                click.option("--name"),
                click.option("--address", required=required),
                click.option("--city", required=required),
                click.option("--postal-code"),
                click.option("--state"),
                click.option("--country", required=required, help="ISO 3166-1 alpha-3, e.g. NLD."),
                click.option("--lat", required=required, help="Latitude, e.g. 52.3702."),
                click.option("--lon", required=required, help="Longitude, e.g. 4.8952."),
                click.option("--time-zone", required=required, help="IANA, e.g. Europe/Amsterdam."),
                click.option("--publish/--no-publish", default=None, help=PUBLISH_HELP),
                click.option(
                    "--opening-hours",
                    help="'24/7' or e.g. 'Mo-Fr 08:00-18:00; Sa 09:00-13:00' ('' = unknown).",
                ),
                click.option("--facilities", help="Comma list, e.g. WIFI,CAFE ('' = none)."),
                click.option(
                    "--parking-type",
                    help="ON_STREET, PARKING_LOT, ... ('' = unknown).",
                ),
            ]
        ):
            f = option(f)
        return f

    return decorate


@locations.command("add")
@click.argument("location_id")
@_site_options(required=True)
@config_option
def locations_add(location_id: str, config_file: str | None, **fields: Any) -> None:
    """Add a location."""
    from csms.core.locations import Location

    location = Location(
        id=location_id,
        name=fields["name"],
        address=fields["address"],
        city=fields["city"],
        postal_code=fields["postal_code"],
        country=fields["country"],
        latitude=fields["lat"],
        longitude=fields["lon"],
        time_zone=fields["time_zone"],
        state=fields["state"],
        publish=fields["publish"] is not False,
        parking_type=fields["parking_type"] or None,
        facilities=_facilities(fields["facilities"]) or (),
        opening_hours=_hours(fields["opening_hours"]),
    )
    _locations(config_file, lambda s: s.add(location))
    click.echo(f"added location {location_id}")


@locations.command("update")
@click.argument("location_id")
@_site_options(required=False)
@config_option
def locations_update(location_id: str, config_file: str | None, **fields: Any) -> None:
    """Change what is given; everything else stays."""
    names = {"lat": "latitude", "lon": "longitude"}
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key == "facilities":
            changes[key] = _facilities(value)
        elif key == "opening_hours":
            changes[key] = _hours(value)
        elif key in ("name", "postal_code", "state", "parking_type"):
            changes[key] = value or None
        else:
            changes[names.get(key, key)] = value
    if not changes:
        raise CliError("nothing to change: give at least one option (see --help)")
    _locations(config_file, lambda s: s.update(location_id, changes))
    click.echo(f"updated location {location_id}")


@locations.command("remove")
@click.argument("location_id")
@yes_option
@config_option
def locations_remove(location_id: str, yes: bool, config_file: str | None) -> None:
    """Remove an unpublished location (its chargers are unlinked); asks first unless
    --yes."""
    confirm(f"remove location {location_id}", yes)
    _locations(config_file, lambda s: s.remove(location_id))
    click.echo(f"removed location {location_id}")


@locations.command("link")
@click.argument("location_id")
@click.option("--charger", "charger_id", required=True)
@click.option("--evse", "evse_number", type=int, help="Describe this EVSE of the charger only.")
@click.option("--evse-id", "evse_code", help="eMI3 EVSE id of --evse, e.g. NL*ABC*E0001.")
@click.option("--connector-standard", help="OCPI ConnectorType [default: IEC_62196_T2].")
@click.option("--format", "connector_format", help="SOCKET or CABLE [default: SOCKET].")
@click.option("--power-type", help="AC_1_PHASE, AC_3_PHASE, DC, ... [default: AC_3_PHASE].")
@click.option("--max-voltage", type=click.IntRange(1), help="Volts [default: 230].")
@click.option("--max-amperage", type=click.IntRange(1), help="Amperes [default: 32].")
@click.option("--max-power", type=click.IntRange(1), help="Watts.")
@config_option
def locations_link(
    location_id: str,
    charger_id: str,
    evse_number: int | None,
    evse_code: str | None,
    connector_standard: str | None,
    connector_format: str | None,
    power_type: str | None,
    max_voltage: int | None,
    max_amperage: int | None,
    max_power: int | None,
    config_file: str | None,
) -> None:
    """Place a charger at a location (works before it ever connected); with --evse, say
    what one of its EVSEs is (its EVSE id and connector, where it differs)."""
    from csms.core.locations import ConnectorSpec
    from csms.storage.locations import EvseDetail

    if evse_number is None:
        if evse_code is not None:
            raise CliError("--evse-id needs --evse N (the EVSE it names)")
        d = ConnectorSpec()
        spec = ConnectorSpec(
            connector_standard or d.standard,
            (connector_format or d.format).upper(),
            (power_type or d.power_type).upper(),
            max_voltage or d.max_voltage,
            max_amperage or d.max_amperage,
            max_power,
        )
        _locations(config_file, lambda s: s.link(location_id, charger_id, spec))
        click.echo(f"charger {charger_id} is at location {location_id}")
        return
    detail = EvseDetail(
        evse_code=evse_code,
        standard=connector_standard,
        format=connector_format,
        power_type=power_type,
        max_voltage=max_voltage,
        max_amperage=max_amperage,
        max_electric_power=max_power,
    )
    _locations(config_file, lambda s: s.link(location_id, charger_id, None, (evse_number, detail)))
    click.echo(f"charger {charger_id} EVSE {evse_number} is at location {location_id}")


@locations.command("unlink")
@click.option("--charger", "charger_id", required=True)
@config_option
def locations_unlink(charger_id: str, config_file: str | None) -> None:
    """Take a charger away from its location (partners see its EVSEs REMOVED)."""
    _locations(config_file, lambda s: s.unlink(charger_id))
    click.echo(f"charger {charger_id} is at no location")


@locations.command(
    "import",
    epilog="\b\nCSV columns (a header line naming them is required; any order):\n" + csv_help(),
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["json", "csv"]),
    help="json or csv [default: from the file's extension].",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Import the valid locations; still report the invalid rows.",
)
@config_option
def locations_import(
    file: Path, file_format: str | None, skip_invalid: bool, config_file: str | None
) -> None:
    """Add or update many locations from a JSON file (a list of OCPI-style locations with
    `time_zone` and optional `chargers`: [{"id", "connector": {...}, "evses": [{"evse",
    "evse_id"}]}]) or a CSV file with one EVSE per line (columns below). Every row is
    checked first and every problem printed with its line (JSON: its item); when any is
    wrong nothing is imported (exit 1) unless --skip-invalid. Re-importing a file updates
    what it names."""
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.core.parties import Party
    from csms.services import location_import as imp

    kind = file_format or file.suffix.lower().lstrip(".")
    if kind not in ("json", "csv"):
        raise CliError(f"cannot tell the format of {file}: name it .json or .csv, or give --format")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    config = load(config_file)
    ours = Party(config.ocpi.country_code, config.ocpi.party_id)
    try:
        if kind == "json":
            try:
                document = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise CliError(f"{file} is not JSON: {exc}") from None
            parsed = imp.parse_json(document, ours)
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise CliError(f"{file} is not UTF-8 text") from None
            parsed = imp.parse_csv(text, ours)
    except CsmsError as exc:
        raise CliError(str(exc)) from None

    async def work(db: Any) -> imp.Outcome:
        try:
            return await imp.import_items(db, utc_now, parsed, skip_invalid=skip_invalid)
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    outcome = run_db(config_file, work)
    for error in outcome.errors:
        click.echo(f"{file.name}: {error}", err=True)
    if outcome.errors and not skip_invalid:
        raise CliError(
            f"{len(outcome.errors)} problem(s) in {outcome.skipped} row(s); nothing imported"
        )
    total = outcome.created + outcome.updated
    line = f"imported {total} locations ({outcome.created} new, {outcome.updated} updated)"
    if outcome.errors:
        line += f"; skipped {outcome.skipped} invalid row(s) ({len(outcome.errors)} problem(s))"
    click.echo(line)


@locations.command("list")
@limit_option
@config_option
@json_option
def locations_list(limit: int, config_file: str | None, as_json: bool) -> None:
    """Locations, the most recently added first, with their chargers."""
    page = run_reads(config_file, lambda r: r.locations(limit=limit, newest_first=True))
    found = page.items
    if as_json:
        print_json([location_overview_json(loc, chargers) for loc, chargers in found])
        footer(len(found), page.total, as_json=True)
        return
    if not found:
        click.echo("no locations")
        return
    table(
        ["ID", "NAME", "CITY", "COUNTRY", "PUBLISHED", "CHARGERS"],
        [
            [
                loc.id,
                loc.name,
                loc.city,
                loc.country,
                "yes" if loc.publish else "no",
                ", ".join(chargers) or "-",
            ]
            for loc, chargers in found
        ],
    )
    footer(len(found), page.total, as_json=False)


@locations.command("show")
@click.argument("location_id")
@config_option
@json_option
def locations_show(location_id: str, config_file: str | None, as_json: bool) -> None:
    """One location: its details, chargers and EVSEs as partners see them."""
    view = _locations(config_file, lambda s: s.show(location_id))
    loc = view.location
    data = location_view_json(view)
    if as_json:
        print_json(data)
        return
    chargers, evses = data["chargers"], data["evses"]
    now = datetime.now(UTC)
    rows = [
        ("id", loc.id),
        ("name", loc.name or "-"),
        ("address", f"{loc.address}, {loc.postal_code or ''} {loc.city}, {loc.country}"),
        ("coordinates", f"{loc.latitude}, {loc.longitude}"),
        ("time zone", loc.time_zone),
        ("published", "yes" if loc.publish else "no"),
        ("parking type", loc.parking_type or "-"),
        ("facilities", ", ".join(loc.facilities) or "-"),
        ("opening hours", _hours_text(loc.opening_hours)),
        ("last updated", when(loc.last_updated, now)),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':15}{value}")
    click.echo(f"chargers:      {', '.join(c['charger'] for c in chargers) or '-'}")
    if evses:
        click.echo("")
        table(
            ["EVSE UID", "EVSE ID", "STATUS", "CONNECTORS", "LAST UPDATED"],
            [
                [
                    e["uid"],
                    e.get("evse_id", "-"),
                    e["status"],
                    " ".join(
                        f"{c['id']}:{c['standard']}/{c['power_type']}" for c in e["connectors"]
                    ),
                    when(e["last_updated"], now),
                ]
                for e in evses
            ],
        )


def _hours_text(hours: dict[str, Any] | None) -> str:
    if hours is None:
        return "-"
    if hours.get("twentyfourseven"):
        return "24/7"
    days = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
    return "; ".join(
        f"{days[r['weekday'] - 1]} {r['period_begin']}-{r['period_end']}"
        for r in hours.get("regular_hours", [])
    )


def public_url(config: Config) -> str:
    """Where drivers reach the payment pages: `[payments] public_url`, else the OCPI base
    URL (the public listener serves them)."""
    from ocpi_cpo.context import public_base_url

    url = config.payments.public_url or public_base_url(config.ocpi)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the public URL {url!r} is not an http(s) URL: set [payments] public_url")
    return url.rstrip("/")


@locations.command("qr")
@click.argument("location_id")
@click.option("--evse", "evse_uid", help="Only this EVSE (its uid, e.g. CP1*1).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the labels to (made if missing).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["png", "svg", "both"]),
    default="both",
    show_default=True,
)
@config_option
@json_option
def locations_qr(
    location_id: str,
    evse_uid: str | None,
    out_dir: Path,
    file_format: str,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Print-ready QR labels of a location's EVSEs: each code opens the EVSE's payment
    page ({public_url}/pay/{evse_uid}); the EVSE id is printed under it. One file per
    EVSE and format, named by its uid (`CP1*1` -> CP1_1.png)."""
    from csms.cli.qr_labels import file_stem, make_label, render_png, render_svg
    from csms.core.parties import Party
    from csms.core.pay_links import pay_url

    config = load(config_file)
    base = public_url(config)
    ours = Party(config.ocpi.country_code, config.ocpi.party_id)

    async def read(service: Any) -> tuple[Any, Any]:
        return (await service.show(location_id)).location, await service.evses(location_id, ours)

    location, found = _locations(config_file, read)
    if evse_uid is not None:
        chosen = tuple(e for e in found if e.uid == evse_uid)
        if not chosen:
            known = ", ".join(e.uid for e in found) or "none"
            raise CliError(
                f"EVSE {evse_uid!r} is not at location {location_id} (its EVSEs: {known})"
            )
        found = chosen
    if not found:
        raise CliError(
            f"location {location_id} has no EVSEs yet: a charger's EVSEs are known once it "
            "connected, or describe them with `csms locations link --evse N`"
        )
    stems: dict[str, str] = {}
    for e in found:
        other = stems.setdefault(file_stem(e.uid).lower(), e.uid)
        if other != e.uid:
            raise CliError(
                f"EVSEs {other} and {e.uid} would both be written as {file_stem(e.uid)}: "
                "print them one at a time with --evse into different folders"
            )
    kinds = ("png", "svg") if file_format == "both" else (file_format,)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot make {out_dir}: {exc.strerror}") from None
    # The labels are printed now and stuck on for years: say what keeps them from working.
    if not config.payments.enabled:
        print_warning("[payments] enabled is false: the pages will say paying is not offered")
    if not location.publish:
        print_warning(f"location {location_id} is not published: its EVSEs cannot be paid for")
    written: list[dict[str, Any]] = []
    for e in found:
        url = pay_url(base, e.uid)
        label = make_label(url, e.evse_code)
        files = []
        for kind in kinds:
            path = out_dir / f"{file_stem(e.uid)}.{kind}"
            try:
                if kind == "png":
                    path.write_bytes(render_png(label))
                else:
                    path.write_text(render_svg(label), encoding="utf-8")
            except OSError as exc:
                raise CliError(f"cannot write {path}: {exc.strerror}") from None
            files.append(str(path))
        written.append({"uid": e.uid, "evse_id": e.evse_code, "url": url, "files": files})
    if as_json:
        print_json(written)
        return
    table(
        ["EVSE UID", "EVSE ID", "URL", "FILES"],
        [[w["uid"], w["evse_id"], w["url"], " ".join(w["files"])] for w in written],
    )
