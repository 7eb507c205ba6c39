"""`csms maintenance`: time a charger (or one EVSE) is taken out of the uptime figures,
planned ahead (`add`) or excluded after the fact with a reason (`exclude`: grid loss,
vandalism); `list` and `remove`. Data commands: they work on the database whether or not
the server runs.

Argument parsing and printing over csms.services.maintenance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csms.cli.common import (
    CliError,
    config_option,
    json_option,
    parse_time,
    print_json,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option
from csms.views import maintenance_window_json

if TYPE_CHECKING:
    from csms.core.maintenance import MaintenanceWindow
    from csms.services.maintenance import MaintenanceService

T = TypeVar("T")


def _maintenance(config_file: str | None, work: Callable[[MaintenanceService], Awaitable[T]]) -> T:
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.maintenance import MaintenanceService

    async def wrapped(db: Any) -> T:
        try:
            return await work(MaintenanceService(db, utc_now))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def _operator() -> str | None:
    """Who runs this command (the audit log's requested_by, the window's created_by)."""
    from csms.cli.api_client import _user

    return _user()


def _evse(window: MaintenanceWindow) -> str:
    return "all" if window.evse_id is None else str(window.evse_id)


def _said(window: MaintenanceWindow, now: datetime) -> str:
    return (
        f"{window.kind.value} window {window.id}: {window.charge_point_id} EVSE "
        f"{_evse(window)} from {when(window.starts_at, now)} until "
        f"{when(window.ends_at, now)} ({window.reason})"
    )


@click.group()
def maintenance() -> None:
    """Maintenance windows: time taken out of the chargers' uptime figures."""


def _window_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--reason", required=True, help="Why (kept with the window, audited).")(fn)
    fn = click.option("--until", "end_text", required=True, metavar="ISO", help="End (ISO 8601).")(
        fn
    )
    fn = click.option(
        "--from", "start_text", required=True, metavar="ISO", help="Start (ISO 8601)."
    )(fn)
    fn = click.option(
        "--evse", type=int, metavar="N", help="One EVSE only [default: the whole charger]."
    )(fn)
    return click.argument("charger")(fn)


def _add(
    kind_name: str,
    charger: str,
    evse: int | None,
    start_text: str,
    end_text: str,
    reason: str,
    config_file: str | None,
    as_json: bool,
) -> None:
    from csms.core.maintenance import WindowKind

    start = parse_time(start_text, "--from")
    end = parse_time(end_text, "--until")
    if end <= start:
        raise CliError(f"--until ({end_text}) must be after --from ({start_text})")
    who = _operator()
    kind = WindowKind(kind_name)
    window = _maintenance(
        config_file,
        lambda s: s.add(charger, evse, start, end, kind, reason, requested_by=who),
    )
    if as_json:
        print_json(maintenance_window_json(window))
        return
    click.echo(_said(window, datetime.now(UTC)))


@maintenance.command("add")
@_window_options
@config_option
@json_option
def add_cmd(
    charger: str,
    evse: int | None,
    start_text: str,
    end_text: str,
    reason: str,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Plan maintenance: CHARGER (or --evse N of it) is out of the uptime figures from
    --from until --until. Prints the window's id (for `csms maintenance remove`)."""
    _add("planned", charger, evse, start_text, end_text, reason, config_file, as_json)


@maintenance.command("exclude")
@_window_options
@config_option
@json_option
def exclude_cmd(
    charger: str,
    evse: int | None,
    start_text: str,
    end_text: str,
    reason: str,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Exclude an outage after the fact (grid loss, vandalism): its time from --from until
    --until does not count against CHARGER's (or --evse N's) uptime."""
    _add("excluded", charger, evse, start_text, end_text, reason, config_file, as_json)


@maintenance.command("list")
@click.argument("charger", required=False)
@limit_option
@config_option
@json_option
def list_cmd(charger: str | None, limit: int, config_file: str | None, as_json: bool) -> None:
    """Maintenance windows (of CHARGER, or all), the latest start first."""
    windows, total = _maintenance(config_file, lambda s: s.windows(charger, limit=limit))
    if as_json:
        print_json([maintenance_window_json(w) for w in windows])
    elif not windows:
        click.echo("no maintenance windows")
    else:
        now = datetime.now(UTC)
        table(
            ["ID", "CHARGER", "EVSE", "KIND", "FROM", "UNTIL", "REASON", "BY"],
            [
                [
                    w.id,
                    w.charge_point_id,
                    _evse(w),
                    w.kind.value,
                    when(w.starts_at, now),
                    when(w.ends_at, now),
                    w.reason,
                    w.created_by,
                ]
                for w in windows
            ],
        )
    footer(len(windows), total, as_json=as_json)


@maintenance.command("remove")
@click.argument("window_id", type=int)
@yes_option
@config_option
def remove_cmd(window_id: int, yes: bool, config_file: str | None) -> None:
    """Remove a maintenance window (its time counts in the uptime figures again); asks
    first unless --yes."""
    confirm(f"remove maintenance window {window_id}", yes)
    who = _operator()
    window = _maintenance(config_file, lambda s: s.remove(window_id, requested_by=who))
    click.echo(f"removed {_said(window, datetime.now(UTC))}")
