"""`csms stats`: how the network is used (sessions, energy, revenue, charging and plugged-in
time, utilisation, tokens, origins) per EVSE, charger, location, site or for the whole
network, per hour, day, week or month; `csms stats uptime`: availability by the NEVI rule.
Tables for people, `--json` and `--csv` for machines, `--plot FILE.png|svg` for a picture.

Data commands: they read the database whether or not the server runs. Argument parsing,
printing and drawing over csms.services.statistics (the API and the dashboard show the
same figures from the same service).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csms.cli.common import CliError, config_option, load, parse_time, print_json, run_db, table

if TYPE_CHECKING:
    from csms.services.statistics import (
        Heatmap,
        Scope,
        StatisticsService,
        StatsReport,
        UptimeReport,
    )

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

BY = click.Choice(["evse", "charger", "location", "site", "network"])
PERIOD = click.Choice(["hour", "day", "week", "month"])
PLOT_SUFFIXES = (".png", ".svg")


def _options(by_default: str) -> Callable[[F], F]:
    """The options `csms stats` and `csms stats uptime` share (the API takes the same)."""
    decorators = [
        click.option("--by", type=BY, default=by_default, show_default=True, help="Grouping."),
        click.option(
            "--period", type=PERIOD, default="day", show_default=True, help="One row per ..."
        ),
        click.option(
            "--from",
            "start",
            metavar="DATE",
            help="Start, ISO 8601 (a date alone: 00:00 UTC) [default: 30 days before --to].",
        ),
        click.option("--to", "end", metavar="DATE", help="End, excluded, ISO 8601 [default: now]."),
        click.option(
            "--charger", "chargers", multiple=True, metavar="ID", help="Only these (repeat or a,b)."
        ),
        click.option(
            "--location", "locations", multiple=True, metavar="ID", help="Only chargers here."
        ),
        click.option(
            "--site", "sites", multiple=True, metavar="ID", help="Only chargers on these sites."
        ),
        click.option("--json", "as_json", is_flag=True, help="JSON on stdout."),
        click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout."),
        click.option(
            "--plot",
            metavar="FILE",
            type=click.Path(dir_okay=False, writable=True),
            help="Also draw the figures to FILE (.png or .svg; needs csms[plot]).",
        ),
        config_option,
    ]

    def decorate_all(fn: F) -> F:
        for decorate in reversed(decorators):
            fn = decorate(fn)
        return fn

    return decorate_all


def _service(config_file: str | None, work: Callable[[StatisticsService], Awaitable[T]]) -> T:
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.statistics import StatisticsService

    settings = load(config_file).statistics

    async def wrapped(db: Any) -> T:
        try:
            return await work(StatisticsService(db, utc_now, settings))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def _range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    return (
        None if start is None else parse_time(start, "--from"),
        None if end is None else parse_time(end, "--to"),
    )


def _scope(chargers: Sequence[str], locations: Sequence[str], sites: Sequence[str]) -> Scope:
    """The option's ids, repeated or comma-separated (as the API takes them)."""
    from csms.services.statistics import Scope

    def ids(given: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.strip() for v in given for i in v.split(",") if i.strip()))

    return Scope(ids(chargers), ids(locations), ids(sites))


def _check_outputs(as_json: bool, as_csv: bool, plot: str | None) -> None:
    if as_json and as_csv:
        raise CliError("--json and --csv exclude each other")
    if plot is not None:
        if Path(plot).suffix.lower() not in PLOT_SUFFIXES:
            raise CliError(f"--plot draws PNG or SVG: name the file *.png or *.svg, not {plot}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CliError(
                "--plot needs matplotlib: pip install 'csms[plot]' (or pip install matplotlib)"
            ) from None


def _write_csv(header: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])


def _hours(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}"


def _span(start: datetime, period: str) -> str:
    if period == "hour":
        return start.strftime("%Y-%m-%d %H:00")
    if period == "month":
        return start.strftime("%Y-%m")
    if period == "week":
        return start.strftime("%G-W%V")
    return start.strftime("%Y-%m-%d")


@click.group(invoke_without_command=True)
@_options("network")
@click.pass_context
def stats(
    ctx: click.Context,
    by: str,
    period: str,
    start: str | None,
    end: str | None,
    chargers: tuple[str, ...],
    locations: tuple[str, ...],
    sites: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
    plot: str | None,
    config_file: str | None,
) -> None:
    """How the chargers are used, per group and period: sessions, energy (kWh), revenue
    per currency (excl. and incl. VAT, from CDRs), charging, plugged-in and idle time,
    utilisation (plugged-in time over the period), unique tokens, averages and sessions by
    token origin (local card, roaming partner, remote start). UTC periods; a session counts
    in the period it started, its time is split over the periods it spans."""
    if ctx.invoked_subcommand is not None:
        # Options given to the group would be ignored by the subcommand (--config too).
        given = [
            p.name
            for p in ctx.command.params
            if p.name is not None
            and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise CliError(
                f"options go after the subcommand: csms stats {ctx.invoked_subcommand} [OPTIONS]"
            )
        return
    _check_outputs(as_json, as_csv, plot)
    first, last = _range(start, end)
    scope = _scope(chargers, locations, sites)

    async def work(service: StatisticsService) -> tuple[StatsReport, Heatmap | None]:
        report = await service.figures(by, period, first, last, scope)
        heat = None if plot is None else await service.heatmap(first, last, scope)
        return report, heat

    report, heat = _service(config_file, work)
    if as_json:
        from csms.views import stats_json

        print_json(stats_json(report))
    elif as_csv:
        from csms.views import stats_csv_rows

        _write_csv(*stats_csv_rows(report))
    else:
        _print_figures(report)
    if plot is not None:
        assert heat is not None
        from csms.cli.stats_plot import plot_figures

        plot_figures(report, heat, Path(plot))
        click.echo(f"drawn: {plot}", err=True)


def _print_figures(report: StatsReport) -> None:
    from csms.cli.common import exact
    from csms.views import money as shown_money

    click.echo(
        f"{report.by} by {report.period}, {report.start:%Y-%m-%d %H:%M} to "
        f"{report.end:%Y-%m-%d %H:%M} UTC"
    )
    rows = []
    for r in report.rows:
        money = " ".join(
            f"{shown_money(excl)}/{shown_money(incl)} {currency}"
            for currency, (excl, incl) in sorted(r.revenue.items())
        )
        origins = "/".join(str(r.by_origin.get(o, 0)) for o in ("local", "roaming", "remote"))
        rows.append(
            [
                r.group,
                _span(r.start, report.period),
                r.sessions,
                exact(r.energy_kwh),
                money or None,
                _hours(r.charging_s),
                _hours(r.occupied_s),
                _hours(r.idle_s),
                f"{r.utilisation_pct:.2f}",
                r.unique_tokens,
                _hours(r.avg_session_s),
                None if r.avg_energy_kwh is None else exact(r.avg_energy_kwh),
                origins,
            ]
        )
    table(
        [
            "GROUP",
            "PERIOD",
            "SESSIONS",
            "KWH",
            "REVENUE EXCL/INCL VAT",
            "CHARGING",
            "PLUGGED",
            "IDLE",
            "UTIL %",
            "TOKENS",
            "AVG TIME",
            "AVG KWH",
            "LOCAL/ROAM/REMOTE",
        ],
        rows,
    )


@stats.command("uptime")
@_options("evse")
def uptime_cmd(
    by: str,
    period: str,
    start: str | None,
    end: str | None,
    chargers: tuple[str, ...],
    locations: tuple[str, ...],
    sites: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
    plot: str | None,
    config_file: str | None,
) -> None:
    """Uptime by the NEVI rule (23 CFR 680.116(b)), per EVSE by default: (period - (outage -
    excluded)) / period. Outage: Faulted, Unavailable unless staff set it, or offline
    beyond [statistics] offline_grace; excluded: outage inside maintenance windows and
    exclusions (csms maintenance). A group sums its EVSEs' time."""
    _check_outputs(as_json, as_csv, plot)
    first, last = _range(start, end)
    scope = _scope(chargers, locations, sites)
    report: UptimeReport = _service(config_file, lambda s: s.uptime(by, period, first, last, scope))
    if as_json:
        from csms.views import uptime_json

        print_json(uptime_json(report))
    elif as_csv:
        from csms.views import uptime_csv_rows

        _write_csv(*uptime_csv_rows(report))
    else:
        click.echo(
            f"uptime by {report.by} and {report.period}, {report.start:%Y-%m-%d %H:%M} to "
            f"{report.end:%Y-%m-%d %H:%M} UTC, offline grace {report.grace_s:g} s"
        )
        table(
            ["GROUP", "PERIOD", "EVSES", "OUTAGE", "EXCLUDED", "UPTIME %"],
            [
                [
                    r.group,
                    _span(r.start, report.period),
                    r.evses,
                    _hours(r.outage_s),
                    _hours(r.excluded_s),
                    f"{r.uptime_pct:.2f}",
                ]
                for r in report.rows
            ],
        )
    if plot is not None:
        from csms.cli.stats_plot import plot_uptime

        plot_uptime(report, Path(plot))
        click.echo(f"drawn: {plot}", err=True)
