"""Entry point of the `csms` command: the click group and its sub-command groups.

Every command takes --config FILE; errors become one line on stderr and exit status 1.
"""

from __future__ import annotations

import asyncio

import click

from csms.cli.common import CliError, config_option, load
from csms.config import COMPONENTS, Config

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
def cli() -> None:
    """OCPP 1.6J / 2.0.1 central system with an OCPI 2.2.1 CPO bridge."""


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
    from csms.app import ServerFailed, StartupError
    from csms.app import serve as run
    from csms.logconfig import configure_logging

    components = parse_only(only)
    config: Config = load(config_file)
    configure_logging(config.log.level, config.log.format, config.log.charger_lines_per_minute)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional (not on Windows)
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(run(config, components))
    except (StartupError, ServerFailed) as exc:
        raise CliError(str(exc)) from None


def main() -> None:
    from csms.cli.common import run_cli

    run_cli(cli)


if __name__ == "__main__":
    main()
