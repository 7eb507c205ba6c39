"""`csms sites`: smart-charging sites (a grid connection's limit shared by the chargers
below it): add, change and remove sites and circuits, link chargers, cap a site for a time
window, set time-of-use or import day-ahead prices, say what a session needs by when, list
and show. Data commands: they work on the database whether or not the server runs; a
running server's load manager notices the change within seconds.

Argument parsing and printing over csms.services.sites.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csms.cli.common import (
    CliError,
    config_option,
    exact,
    json_option,
    parse_time,
    print_json,
    print_warning,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option
from csms.views import cap_json, site_overview_json, site_view_json

if TYPE_CHECKING:
    from csms.services.sites import SiteService, SiteView

T = TypeVar("T")

PHASE_CHOICE = click.Choice(["L1", "L2", "L3"], case_sensitive=False)
PHASES_CHOICE = click.Choice(["1", "3"])
MODES = click.Choice(["auto", "tx", "max"], case_sensitive=False)
MODE_HELP = (
    "How the load manager tells the charger its share: auto (TxProfiles, falling back to a "
    "station maximum when refused), tx, or max [default: auto]."
)


def _sites(config_file: str | None, work: Callable[[SiteService], Awaitable[T]]) -> T:
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.sites import SiteService

    async def wrapped(db: Any) -> T:
        try:
            return await work(SiteService(db, utc_now))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def _operator() -> str | None:
    """Who runs this command (the audit log's requested_by)."""
    from csms.cli.api_client import _user

    return _user()


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        print_warning(line)


def _kw(value: float | None) -> float | None:
    """kW from the command line as W."""
    return None if value is None else float(Decimal(repr(value)) * 1000)


def _phase(text: str | None) -> int | None:
    from csms.core.sites import parse_phase

    return None if text is None else parse_phase(text)


def _target(text: str, circuit: str | None) -> tuple[str, str | None]:
    """`SITE` or `SITE/CIRCUIT` (or --circuit) as (site, circuit)."""
    site, sep, named = text.partition("/")
    if sep:
        if circuit is not None and circuit != named:
            raise CliError(f"{text} names circuit {named}, --circuit says {circuit}: give one")
        if not site or not named:
            raise CliError(f"name a site as SITE or a circuit as SITE/CIRCUIT, not {text!r}")
        return site, named
    return site, circuit


@click.group()
def sites() -> None:
    """Smart charging: sites whose grid connection the chargers below them share."""


# --- sites --------------------------------------------------------------------------------


@sites.command("add")
@click.argument("site_id")
@click.option(
    "--max-current", type=float, required=True, metavar="A", help="Limit per phase, amperes."
)
@click.option("--phases", type=PHASES_CHOICE, required=True, help="1- or 3-phase supply.")
@click.option("--voltage", type=float, default=230.0, show_default=True, help="Phase voltage.")
@click.option("--max-power", type=float, metavar="KW", help="A power limit over all phases, kW.")
@click.option("--location", "location_id", metavar="ID", help="The location it supplies.")
@click.option("--timezone", metavar="TZ", help="For daily prices (default: the location's).")
@config_option
def add_cmd(
    site_id: str,
    max_current: float,
    phases: str,
    voltage: float,
    max_power: float | None,
    location_id: str | None,
    timezone: str | None,
    config_file: str | None,
) -> None:
    """Add a site: its grid connection's limit per phase (and in kW, optionally)."""
    from csms.core.sites import Site

    site = Site(
        id=site_id,
        max_current_a=max_current,
        phases=int(phases),
        voltage_v=voltage,
        max_power_w=_kw(max_power),
        location_id=location_id,
        timezone=timezone,
    )
    _sites(config_file, lambda s: s.add_site(site, requested_by=_operator()))
    click.echo(f"added site {site_id}")


@sites.command("set")
@click.argument("site_id")
@click.option("--max-current", type=float, metavar="A", help="Limit per phase, amperes.")
@click.option("--phases", type=PHASES_CHOICE, help="1- or 3-phase supply.")
@click.option("--voltage", type=float, help="Phase voltage.")
@click.option("--max-power", type=float, metavar="KW", help="A power limit over all phases, kW.")
@click.option("--no-max-power", is_flag=True, help="Drop the power limit.")
@click.option("--location", "location_id", metavar="ID", help="The location it supplies.")
@click.option("--no-location", is_flag=True, help="Tie it to no location.")
@click.option("--timezone", metavar="TZ", help="For daily prices.")
@config_option
def set_cmd(
    site_id: str,
    max_current: float | None,
    phases: str | None,
    voltage: float | None,
    max_power: float | None,
    no_max_power: bool,
    location_id: str | None,
    no_location: bool,
    timezone: str | None,
    config_file: str | None,
) -> None:
    """Change a site; only what is given changes."""
    if max_power is not None and no_max_power:
        raise CliError("give --max-power or --no-max-power, not both")
    if location_id is not None and no_location:
        raise CliError("give --location or --no-location, not both")
    changes: dict[str, Any] = {}
    if max_current is not None:
        changes["max_current_a"] = max_current
    if phases is not None:
        changes["phases"] = int(phases)
    if voltage is not None:
        changes["voltage_v"] = voltage
    if max_power is not None or no_max_power:
        changes["max_power_w"] = _kw(max_power)
    if location_id is not None or no_location:
        changes["location_id"] = location_id
    if timezone is not None:
        changes["timezone"] = timezone
    if not changes:
        raise CliError("nothing to change: give at least one option (see --help)")
    _, warnings = _sites(
        config_file, lambda s: s.update_site(site_id, changes, requested_by=_operator())
    )
    _warn(warnings)
    click.echo(f"changed site {site_id}")


@sites.command("remove")
@click.argument("site_id")
@click.option("--circuit", help="Remove this circuit of the site, not the site.")
@click.option(
    "--force",
    is_flag=True,
    help="Also when chargers (or circuits) are below it: they are unlinked (removed).",
)
@yes_option
@config_option
def remove_cmd(
    site_id: str, circuit: str | None, force: bool, yes: bool, config_file: str | None
) -> None:
    """Remove a site (with its circuits, caps and prices) or one circuit; asks first unless
    --yes. Chargers linked below keep it unless --force, which unlinks them."""
    site_id, circuit = _target(site_id, circuit)
    who = _operator()
    if circuit is None:
        confirm(f"remove site {site_id}", yes)
        unlinked = _sites(
            config_file, lambda s: s.remove_site(site_id, force=force, requested_by=who)
        )
        click.echo(
            f"removed site {site_id}" + (f" (unlinked {', '.join(unlinked)})" if unlinked else "")
        )
        return
    confirm(f"remove circuit {circuit} of site {site_id}", yes)
    gone, unlinked = _sites(
        config_file,
        lambda s: s.remove_circuit(site_id, circuit, force=force, requested_by=who),
    )
    extra = [f"circuit {c}" for c in gone[1:]] + [f"unlinked {c}" for c in unlinked]
    click.echo(
        f"removed circuit {circuit} of site {site_id}" + (f" ({', '.join(extra)})" if extra else "")
    )


# --- circuits -----------------------------------------------------------------------------


@sites.command("add-circuit")
@click.argument("site_id")
@click.argument("name")
@click.option(
    "--max-current", type=float, required=True, metavar="A", help="Limit per phase, amperes."
)
@click.option("--parent", help="The circuit it hangs under (default: the site itself).")
@click.option("--phases", type=PHASES_CHOICE, default="3", show_default=True)
@click.option("--phase", type=PHASE_CHOICE, help="A 1-phase circuit: the phase it is on.")
@click.option("--max-power", type=float, metavar="KW", help="A power limit, kW.")
@config_option
def add_circuit_cmd(
    site_id: str,
    name: str,
    max_current: float,
    parent: str | None,
    phases: str,
    phase: str | None,
    max_power: float | None,
    config_file: str | None,
) -> None:
    """Add a circuit under the site or another of its circuits. A limit above its
    parent's is allowed (with a warning): the lower one applies."""
    from csms.core.sites import Circuit

    circuit = Circuit(
        site_id=site_id,
        name=name,
        max_current_a=max_current,
        phases=int(phases),
        parent=parent,
        max_power_w=_kw(max_power),
        phase=_phase(phase),
    )
    warnings = _sites(config_file, lambda s: s.add_circuit(circuit, requested_by=_operator()))
    _warn(warnings)
    click.echo(f"added circuit {name} to site {site_id}")


@sites.command("set-circuit")
@click.argument("site_id")
@click.argument("name")
@click.option("--max-current", type=float, metavar="A", help="Limit per phase, amperes.")
@click.option("--parent", help="Move it under this circuit.")
@click.option("--no-parent", is_flag=True, help="Move it directly under the site.")
@click.option("--phases", type=PHASES_CHOICE)
@click.option("--phase", type=PHASE_CHOICE, help="A 1-phase circuit: the phase it is on.")
@click.option("--max-power", type=float, metavar="KW", help="A power limit, kW.")
@click.option("--no-max-power", is_flag=True, help="Drop the power limit.")
@config_option
def set_circuit_cmd(
    site_id: str,
    name: str,
    max_current: float | None,
    parent: str | None,
    no_parent: bool,
    phases: str | None,
    phase: str | None,
    max_power: float | None,
    no_max_power: bool,
    config_file: str | None,
) -> None:
    """Change a circuit; only what is given changes (a new parent must not be below it)."""
    if parent is not None and no_parent:
        raise CliError("give --parent or --no-parent, not both")
    if max_power is not None and no_max_power:
        raise CliError("give --max-power or --no-max-power, not both")
    changes: dict[str, Any] = {}
    if max_current is not None:
        changes["max_current_a"] = max_current
    if parent is not None or no_parent:
        changes["parent"] = parent
    if phases is not None:
        changes["phases"] = int(phases)
    if phase is not None:
        changes["phase"] = _phase(phase)
    if max_power is not None or no_max_power:
        changes["max_power_w"] = _kw(max_power)
    if not changes:
        raise CliError("nothing to change: give at least one option (see --help)")
    warnings = _sites(
        config_file,
        lambda s: s.update_circuit(site_id, name, changes, requested_by=_operator()),
    )
    _warn(warnings)
    click.echo(f"changed circuit {name} of site {site_id}")


# --- chargers -----------------------------------------------------------------------------


@sites.command("link")
@click.argument("target", metavar="SITE|SITE/CIRCUIT")
@click.option("--charger", "charger_id", required=True, help="The charger's id.")
@click.option("--circuit", help="Under this circuit of the site (or write SITE/CIRCUIT).")
@click.option("--phase", type=PHASE_CHOICE, help="The charger is wired to this one phase only.")
@click.option("--max-current", type=float, metavar="A", help="Each EVSE's rated maximum.")
@click.option("--profile-mode", type=MODES, default="auto", help=MODE_HELP)
@config_option
def link_cmd(
    target: str,
    charger_id: str,
    circuit: str | None,
    phase: str | None,
    max_current: float | None,
    profile_mode: str,
    config_file: str | None,
) -> None:
    """Put a charger under a site or one of its circuits: the load manager shares the
    node's current among its sessions. Linking again replaces how it is linked, and
    manages it again if it was given up on."""
    from csms.core.sites import ProfileMode

    site_id, circuit = _target(target, circuit)
    _, warnings = _sites(
        config_file,
        lambda s: s.link(
            site_id,
            charger_id,
            circuit=circuit,
            phase=_phase(phase),
            max_current_a=max_current,
            profile_mode=ProfileMode(profile_mode.lower()),
            requested_by=_operator(),
        ),
    )
    _warn(warnings)
    where = f"circuit {circuit} of site {site_id}" if circuit else f"site {site_id}"
    click.echo(f"charger {charger_id} is under {where}")


@sites.command("unlink")
@click.option("--charger", "charger_id", required=True, help="The charger's id.")
@config_option
def unlink_cmd(charger_id: str, config_file: str | None) -> None:
    """Take a charger off its site: it is no longer load-managed."""
    site_id = _sites(config_file, lambda s: s.unlink(charger_id, requested_by=_operator()))
    click.echo(f"charger {charger_id} is no longer under site {site_id}")


# --- list and show ------------------------------------------------------------------------


def _amps(values: tuple[float, ...] | list[float], phases: tuple[int, ...]) -> str:
    return "/".join(exact(values[p]) for p in phases)


@sites.command("list")
@limit_option
@config_option
@json_option
def list_cmd(limit: int, config_file: str | None, as_json: bool) -> None:
    """Sites, the most recently added first: limits, allocation, chargers, caps in force."""
    found: list[SiteView] = _sites(config_file, lambda s: s.sites(newest_first=True))
    shown = found[:limit]
    if as_json:
        print_json([site_overview_json(v) for v in shown])
        footer(len(shown), len(found), as_json=True)
        return
    if not shown:
        click.echo("no sites")
        return
    rows = []
    for v in shown:
        root = v.nodes[0]
        rows.append(
            [
                v.site.id,
                v.site.location_id,
                f"{v.site.phases}x{exact(v.site.voltage_v)} V",
                exact(root.limit_a),
                exact(root.effective_a),
                _amps(root.allocated_a, root.phases),
                len(v.tree.circuits),
                ", ".join(link.charge_point_id for link in v.tree.links) or None,
                len(v.shares),
                ", ".join(str(c.id) for c in v.active_caps) or None,
            ]
        )
    table(
        [
            "ID",
            "LOCATION",
            "SUPPLY",
            "LIMIT A",
            "NOW A",
            "ALLOCATED A",
            "CIRCUITS",
            "CHARGERS",
            "SESSIONS",
            "CAPS",
        ],
        rows,
    )
    footer(len(shown), len(found), as_json=False)


@sites.command("show")
@click.argument("site_id")
@config_option
@json_option
def show_cmd(site_id: str, config_file: str | None, as_json: bool) -> None:
    """One site: the tree with each node's limit, its limit now (under its parents and
    caps) and what is allocated per phase; chargers (unmanaged ones with why); each
    session's share; caps in force or ahead; prices."""
    from csms.core.sites import ROOT, phase_name

    view: SiteView = _sites(config_file, lambda s: s.show(site_id))
    if as_json:
        print_json(site_view_json(view))
        return
    site, now = view.site, view.now
    power = "" if site.max_power_w is None else f", {exact(site.max_power_w / 1000)} kW"
    click.echo(f"{'site:':14}{site.id}")
    click.echo(f"{'location:':14}{site.location_id or '-'}")
    click.echo(
        f"{'supply:':14}{site.phases}-phase {exact(site.voltage_v)} V, "
        f"{exact(site.max_current_a)} A per phase{power}"
    )
    daily = ", ".join(f"{at} {price}" for at, price in site.daily_prices)
    click.echo(f"{'daily prices:':14}" + (f"{daily} ({site.timezone or 'UTC'})" if daily else "-"))
    if view.slots:
        first, last = view.slots[0], view.slots[-1]
        click.echo(
            f"{'imported:':14}{len(view.slots)} prices in the next 48 h, "
            f"{when(first[0], now)} to {when(last[1], now)}"
        )
    click.echo("")
    table(
        ["NODE", "PARENT", "PHASES", "LIMIT A", "NOW A", "ALLOCATED A", "CHARGERS"],
        [
            [
                f"{n.node} (site)" if n.node == ROOT else n.node,
                n.parent,
                ",".join(phase_name(p) for p in n.phases),
                exact(n.limit_a),
                exact(n.effective_a),
                _amps(n.allocated_a, n.phases),
                ", ".join(n.chargers) or None,
            ]
            for n in view.nodes
        ],
    )
    if view.tree.links:
        click.echo("")
        table(
            ["CHARGER", "NODE", "PHASE", "RATED A", "MODE", "MANAGED"],
            [
                [
                    link.charge_point_id,
                    link.circuit or ROOT,
                    None if link.phase is None else phase_name(link.phase),
                    None if link.max_current_a is None else exact(link.max_current_a),
                    link.profile_mode.value,
                    "yes" if link.managed else f"no: {link.unmanaged_reason or 'unknown'}",
                ]
                for link in view.tree.links
            ],
        )
    if view.shares:
        click.echo("")
        table(
            ["SESSION", "CHARGER", "EVSE", "NODE", "PHASES", "SHARE A", "MEASURED A", "WHY"],
            [
                [
                    s.transaction_id,
                    s.charge_point_id,
                    s.evse_id,
                    s.node,
                    ",".join(phase_name(p) for p in s.phases),
                    "paused" if s.paused else exact(s.granted_a),
                    None if s.measured_a is None else exact(s.measured_a),
                    s.reason,
                ]
                for s in view.shares
            ],
        )
    if view.caps:
        click.echo("")
        _caps_table([(c, None) for c in view.caps], now)


# --- caps ---------------------------------------------------------------------------------


def _caps_table(caps: list[tuple[Any, datetime | None]], now: datetime) -> None:
    table(
        ["CAP", "LIMIT KW", "FROM", "UNTIL", "STATE", "SOURCE", "BY", "REASON"],
        [
            [
                cap.id,
                exact(cap.limit_w / 1000),
                when(cap.start_at, now),
                when(cap.end_at, now),
                "cancelled"
                if cancelled is not None
                else "in force"
                if cap.active(now)
                else "over"
                if cap.end_at <= now
                else "ahead",
                cap.source,
                cap.requested_by,
                cap.reason,
            ]
            for cap, cancelled in caps
        ],
    )


@sites.command("cap")
@click.argument("site_id")
@click.option(
    "--limit", "limit_kw", type=float, required=True, metavar="KW", help="Over all phases."
)
@click.option("--from", "start_text", metavar="ISO", help="Start (ISO 8601) [default: now].")
@click.option("--until", "end_text", required=True, metavar="ISO", help="End (ISO 8601).")
@click.option("--reason", help="Why (kept with the cap and in the audit log).")
@config_option
@json_option
def cap_cmd(
    site_id: str,
    limit_kw: float,
    start_text: str | None,
    end_text: str,
    reason: str | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Cap a site for a time window (demand response): its sessions share at most LIMIT
    kW from --from until --until; then the allocation returns to normal. Prints the cap's
    id (for `csms sites uncap`)."""
    start = datetime.now(UTC) if start_text is None else parse_time(start_text, "--from")
    end = parse_time(end_text, "--until")
    limit_w = _kw(limit_kw)
    assert limit_w is not None
    who = _operator()

    async def work(s: SiteService) -> Any:
        cap_id = await s.add_cap(
            site_id,
            limit_w,
            start,
            end,
            source="staff",
            reference=None,
            requested_by=who or "staff",
            reason=reason,
        )
        return (await s.cap(cap_id))[0]

    cap = _sites(config_file, work)
    if as_json:
        print_json(cap_json(cap, datetime.now(UTC)))
        return
    now = datetime.now(UTC)
    click.echo(
        f"cap {cap.id}: site {site_id} at most {exact(limit_kw)} kW from "
        f"{when(start, now)} until {when(end, now)}"
    )


@sites.command("uncap")
@click.argument("site_id")
@click.argument("cap_id", type=int)
@config_option
def uncap_cmd(site_id: str, cap_id: int, config_file: str | None) -> None:
    """Cancel a cap: the site's allocation returns to normal."""
    _sites(config_file, lambda s: s.remove_cap(site_id, cap_id, requested_by=_operator()))
    click.echo(f"cap {cap_id} of site {site_id} cancelled")


@sites.command("caps")
@click.argument("site_id")
@click.option("--all", "history", is_flag=True, help="Also ended and cancelled caps.")
@limit_option
@config_option
@json_option
def caps_cmd(
    site_id: str, history: bool, limit: int, config_file: str | None, as_json: bool
) -> None:
    """A site's caps in force or ahead, by start (--all: every cap, the latest first)."""
    found = _sites(config_file, lambda s: s.caps(site_id, history=history, limit=limit))
    now = datetime.now(UTC)
    if as_json:
        print_json([cap_json(c, now, cancelled) for c, cancelled in found])
        return
    if not found:
        click.echo(f"no caps on site {site_id}" + ("" if history else " in force or ahead"))
        return
    _caps_table(found, now)


# --- prices -------------------------------------------------------------------------------


@sites.command("prices")
@click.argument("site_id")
@click.option(
    "--at",
    "daily",
    multiple=True,
    metavar="HH:MM=PRICE",
    help="Price per kWh from that time of day on, every day (repeat: 00:00=0.20 "
    "--at 07:00=0.35 ...). Replaces the daily schedule.",
)
@click.option("--timezone", metavar="TZ", help="Of the times (default: the site's location).")
@click.option(
    "--import",
    "import_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Day-ahead prices from CSV: header start,price or start,end,price; ISO 8601 times.",
)
@click.option("--clear", is_flag=True, help="Drop the daily schedule and imported prices.")
@config_option
def prices_cmd(
    site_id: str,
    daily: tuple[str, ...],
    timezone: str | None,
    import_file: Path | None,
    clear: bool,
    config_file: str | None,
) -> None:
    """A site's energy prices: sessions with a departure time and an energy need charge in
    the cheapest hours. Imported prices win over the daily schedule where they exist."""
    from csms.core.errors import InvalidInput
    from csms.core.price_plan import parse_price_csv
    from csms.services.sites import parse_daily_price

    chosen = sum(1 for x in (bool(daily or timezone), import_file is not None, clear) if x)
    if chosen != 1:
        raise CliError("give --at (with --timezone), --import FILE or --clear: one of them")
    who = _operator()
    if clear:
        dropped = _sites(config_file, lambda s: s.clear_prices(site_id, requested_by=who))
        click.echo(f"site {site_id}: prices cleared ({dropped} imported prices dropped)")
        return
    if import_file is not None:
        try:
            text = import_file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CliError(f"{import_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CliError(f"{import_file}: not a UTF-8 text file") from None
        try:
            parse_price_csv(text)  # checked before the database is opened
        except InvalidInput as exc:
            raise CliError(f"{import_file}: {exc}") from None
        stored, replaced = _sites(
            config_file, lambda s: s.import_prices(site_id, text, requested_by=who)
        )
        click.echo(
            f"site {site_id}: {stored} prices imported"
            + (f" ({replaced} replaced)" if replaced else "")
        )
        return
    try:
        schedule = [parse_daily_price(entry) for entry in daily]
    except InvalidInput as exc:
        raise CliError(f"--at: {exc}") from None
    site = _sites(
        config_file,
        lambda s: s.set_daily_prices(site_id, schedule, timezone, requested_by=who),
    )
    shown = ", ".join(f"{at} {price}" for at, price in site.daily_prices) or "none"
    click.echo(f"site {site_id}: daily prices {shown} ({site.timezone or 'UTC'})")


# --- what a session needs -----------------------------------------------------------------


@sites.command("need")
@click.argument("transaction_id", type=int)
@click.option("--departure", metavar="ISO", help="When the EV leaves (ISO 8601).")
@click.option("--energy", type=str, metavar="KWH", help="Energy it needs by then, kWh.")
@click.option("--priority", type=click.IntRange(0, 100), help="0 (default) to 100: higher first.")
@config_option
def need_cmd(
    transaction_id: int,
    departure: str | None,
    energy: str | None,
    priority: int | None,
    config_file: str | None,
) -> None:
    """Say what a running session needs: with a departure and an energy it is scheduled
    into the cheapest hours before it leaves; a priority gives it more of the site. What
    is not given stays (the EV may have said it)."""
    leave = None if departure is None else parse_time(departure, "--departure")
    energy_wh = None
    if energy is not None:
        try:
            energy_wh = float(Decimal(energy) * 1000)
        except InvalidOperation:
            raise CliError(f"--energy: not a number of kWh: {energy!r}") from None
    need = _sites(
        config_file,
        lambda s: s.set_need(
            transaction_id,
            departure=leave,
            energy_wh=energy_wh,
            priority=priority,
            requested_by=_operator(),
        ),
    )
    parts = []
    if need.departure_at is not None:
        parts.append(f"leaves {when(need.departure_at)}")
    if need.energy_wh is not None:
        parts.append(f"needs {exact(need.energy_wh / 1000)} kWh")
    if need.priority is not None:
        parts.append(f"priority {need.priority}")
    click.echo(f"transaction {transaction_id}: {', '.join(parts)}")
