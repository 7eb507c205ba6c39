"""Entry point of the `csms` command: the click group and its sub-command groups.

Every command takes --config FILE and --data-dir DIR, before or after its name; errors
become one line on stderr and exit status 1.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

from csms.cli.common import (
    CONFIG_FILE,
    CONFIG_HELP,
    DATA_DIR,
    DATA_DIR_HELP,
    CliError,
    config_option,
    load,
    remember,
)
from csms.config import COMPONENTS, Config

if TYPE_CHECKING:
    from csms.app import CsmsApp

# Sub-command groups, imported only when used: `csms remote` must not pay for SQLAlchemy.
LAZY_GROUPS = {
    "db": ("csms.cli.db", "db"),
    "chargers": ("csms.cli.chargers", "chargers"),
    "tokens": ("csms.cli.tokens", "tokens"),
    "transactions": ("csms.cli.transactions", "transactions"),
    "remote": ("csms.cli.remote", "remote"),
    "commands": ("csms.cli.remote", "commands"),
    "tariffs": ("csms.cli.billing", "tariffs"),
    "cdrs": ("csms.cli.billing", "cdrs"),
    "locations": ("csms.cli.locations", "locations"),
    "ocpi": ("csms.cli.ocpi", "ocpi"),
    "demo": ("csms.cli.demo", "demo"),
    "ca": ("csms.cli.ca", "ca"),
    "users": ("csms.cli.users", "users"),
    "sites": ("csms.cli.sites", "sites"),
    "maintenance": ("csms.cli.maintenance", "maintenance"),
    "stats": ("csms.cli.stats", "stats"),
    "payments": ("csms.cli.payments", "payments"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_GROUPS:
            import importlib

            module, attr = LAZY_GROUPS[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="csms", message="csms %(version)s")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    expose_value=False,
    callback=remember(CONFIG_FILE),
    help=CONFIG_HELP,
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    expose_value=False,
    callback=remember(DATA_DIR),
    help=DATA_DIR_HELP,
)
def cli() -> None:
    """OCPP 1.6J / 2.0.1 central system with an OCPI 2.2.1 and 2.1.1 CPO bridge."""


def parse_only(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--only ocpp --only api` or `--only ocpp,api`; nothing given means all."""
    chosen: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in COMPONENTS:
                raise CliError(f"--only: {part.strip()!r} is not one of {', '.join(COMPONENTS)}")
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen) or COMPONENTS


@cli.command()
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="ocpp|ocpi|api",
    help="Run only these parts (repeat or comma-separate); default: all three.",
)
@config_option
def serve(only: tuple[str, ...], config_file: str | None) -> None:
    """Run the OCPP server, the operator API and the OCPI bridge (after upgrading the
    database schema)."""
    import structlog

    from csms.app import ServerFailed, StartupError
    from csms.app import serve as run
    from csms.logconfig import configure_logging

    components = parse_only(only)
    ignored: list[str] = []
    config: Config = load(config_file, warn=ignored.append)
    configure_logging(config.log.level, config.log.format, config.log.charger_lines_per_minute)
    log = structlog.get_logger("csms.cli")
    for line in ignored:
        log.warning("configuration_ignored", detail=line)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional (not on Windows)
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(run(config, components, on_started=show_started))
    except (StartupError, ServerFailed) as exc:
        raise CliError(str(exc)) from None


def show_started(app: CsmsApp) -> None:
    """On a terminal, where the running system keeps its data, in plain words (the log
    line `csms_started` carries the same)."""
    from csms.app import whereabouts

    if not sys.stdout.isatty():
        return
    labels = {
        "data_dir": "data directory",
        "config_file": "configuration",
        "database": "database",
        "api_token_file": "API token file",
    }
    click.echo("csms is running (Ctrl-C stops it)")
    for key, value in whereabouts(app.config, app.components).items():
        click.echo(f"  {labels[key] + ':':<16} {value}")


def main() -> None:
    from csms.cli.common import run_cli

    run_cli(cli)


if __name__ == "__main__":
    main()
