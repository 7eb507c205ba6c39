"""Shared pieces of the CLI: --config/--json options, database access, tables, errors.

Printing and argument plumbing only; no business rules.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import orjson

from csms.config import Config, ConfigError, load_config

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A one-line message for the operator; exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Configuration file (default: ./csms.toml if present, else built-in defaults).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


def load(config_file: str | None) -> Config:
    try:
        return load_config(config_file)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def run_db(config_file: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the database of the configured system (upgrading its schema) and run `work`."""
    from csms.app import open_database
    from csms.logconfig import configure_logging
    from csms.storage.migrate import upgrade

    config = load(config_file)
    # Data commands print results on stdout; their own log events stay on stderr, warnings up.
    configure_logging("warning", config.log.format)

    async def main() -> T:
        db = open_database(config)
        try:
            await upgrade(db.engine)
            return await work(db)
        finally:
            await db.engine.dispose()

    try:
        return asyncio.run(main())
    except CliError:
        raise
    except Exception as exc:
        from csms.app import describe_startup_error

        message = describe_startup_error(exc, config)
        if message is None:
            raise
        raise CliError(message) from None


def run_cli(group: click.Group) -> None:
    try:
        group.main(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, default=_json_default, option=orjson.OPT_INDENT_2).decode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return iso(obj)
    raise TypeError


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%SZ")  # %Y is not padded below 1000


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A timestamp for people: UTC, with how long ago."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    utc = moment.astimezone(UTC)
    text = f"{utc.year:04d}" + utc.strftime("-%m-%d %H:%M:%S")
    return f"{text} ({ago(now - moment)} ago)" if moment <= now else text


def ago(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    return duration(seconds)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"


def kwh(wh: int | float | None) -> str:
    return "-" if wh is None else f"{wh / 1000:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def parse_time(value: str, option: str) -> datetime:
    """ISO 8601 from the command line; a date alone means midnight UTC."""
    from csms.core.clock import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError:
        raise CliError(f"{option}: not an ISO 8601 date/time: {value!r}") from None
