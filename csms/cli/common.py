"""Shared pieces of the CLI: --config/--data-dir/--json options, database access, tables,
errors.

Printing and argument plumbing only; no business rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from csms.config import Config, ConfigError, database_location, load_config, sqlite_file

if TYPE_CHECKING:
    from csms.services.billing import BillingService

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Where the global options (`csms --config X --data-dir D ...`) and a command's own
# --data-dir are kept: click shares a context's `meta` with all its sub-contexts.
CONFIG_FILE = "csms.config_file"
DATA_DIR = "csms.data_dir"
WARNED = "csms.warned"

CONFIG_HELP = (
    "Configuration file (default: csms.toml in the working directory, else in the data "
    "directory, else built-in defaults)."
)
DATA_DIR_HELP = (
    "Data directory: relative database paths and the API token file are found there "
    "(default: $CSMS_DATA_DIR, else the working directory)."
)
# How to point a command at the right data, for errors that say where it looked.
POINT_AT = "point at yours with --data-dir, --config or CSMS_DATABASE_URL"


class CliError(click.ClickException):
    """A one-line message for the operator; exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback keeping an option's value (when given) for load()."""

    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.meta[key] = value
        return value

    return store


def data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        expose_value=False,
        callback=remember(DATA_DIR),
        help=DATA_DIR_HELP,
    )(fn)


def config_option(fn: F) -> F:
    """--config FILE (and --data-dir DIR) on a command; both also work before it."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help=CONFIG_HELP,
    )(data_dir_option(fn))


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


def load(config_file: str | None, *, warn: Callable[[str], None] | None = None) -> Config:
    """The configuration, from the command's --config, else the global one; the data
    directory from --data-dir (the command's or the global one), else $CSMS_DATA_DIR, else
    the working directory. Warnings (unknown CSMS_* variables ...) go to `warn`, by default
    one `warning: ...` line each on stderr, once per command."""
    ctx = click.get_current_context(silent=True)
    meta: dict[str, Any] = ctx.meta if ctx is not None else {}
    warned = meta.get(WARNED, False)
    meta[WARNED] = True
    if warn is None and not warned:
        warn = print_warning
    try:
        return load_config(
            config_file or meta.get(CONFIG_FILE), data_dir=meta.get(DATA_DIR), warn=warn
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def print_warning(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


def require_database(config: Config) -> None:
    """Refuse, in one line naming where it looked, to work on an SQLite database that does
    not exist (opening it would create an empty one) or holds no csms schema. Read-only:
    a file that is not ours is left as it was."""
    file = sqlite_file(config.database.url)
    if file is None:
        return
    if not file.is_file():
        raise CliError(
            f"no database at {file} (data directory {config.data_dir}): {POINT_AT}, "
            "or create one there with `csms db init`"
        )
    import sqlite3

    try:
        read_only = f"{file.absolute().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(read_only, uri=True)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            if found is not None:
                found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise CliError(f"{file} is not a usable SQLite database ({exc}): {POINT_AT}") from None
    if found is None:
        raise no_schema(config)


def no_schema(config: Config) -> CliError:
    return CliError(
        f"the database at {database_location(config.database.url)} has no csms schema: {POINT_AT}, "
        "or create the schema with `csms db init`"
    )


async def require_schema(engine: Any, config: Config) -> None:
    """Refuse a database that holds no csms schema (e.g. a PostgreSQL database never
    initialised)."""
    from csms.storage.migrate import current

    if await current(engine) is None:
        raise no_schema(config)


def run_db(
    config_file: str | None,
    work: Callable[[Any], Awaitable[T]],
    *,
    create: bool = False,
    upgrade_first: bool = True,
) -> T:
    """Open the database of the configured system, upgrade its schema (unless
    `upgrade_first` is false: `work` does) and run `work`.

    Only `create=True` (`csms db init|upgrade`) may create the database or its schema;
    otherwise a database that does not exist, or holds no csms schema, is refused."""
    from csms.logconfig import configure_logging
    from csms.storage.migrate import upgrade
    from csms.storage.opening import open_database

    config = load(config_file)
    # Data commands print results on stdout; their own log events stay on stderr, warnings up.
    configure_logging("warning", config.log.format)
    if not create:
        require_database(config)

    async def main() -> T:
        db = open_database(config)
        try:
            if not create and sqlite_file(config.database.url) is None:
                await require_schema(db.engine, config)
            if upgrade_first:
                await upgrade(db.engine)
            return await work(db)
        finally:
            await db.engine.dispose()

    try:
        return asyncio.run(main())
    except CliError:
        raise
    except Exception as exc:
        from csms.storage.opening import describe_startup_error

        message = describe_startup_error(exc, config)
        if message is None:
            raise
        raise CliError(message) from None


def billing_service(db: Any, config: Config) -> BillingService:
    """The billing service as `csms serve` builds it (identity, retries and limits from the
    configuration), for commands that price, list or settle."""
    from csms.core.clock import utc_now
    from csms.services.billing import BillingService, Identity, billing_limits, billing_retries

    return BillingService(
        db,
        utc_now,
        Identity(config.ocpi.country_code, config.ocpi.party_id),
        billing_retries(config),
        billing_limits(config),
        signed_data_url=config.eichrecht.url,
    )


def run_cli(group: click.Group) -> None:
    """Run the `csms` group as click's standalone mode does, except that every refusal,
    usage errors included, is one line on stderr (what is wrong, then where help is); exit
    status 2 stays click's "bad usage"."""
    try:
        code = group.main(prog_name="csms", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # `csms` or a group alone: its help
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        click.echo(f"error: {usage_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # The reader went away (`| head`): nothing more can be said.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    # Without standalone mode click returns what the command returned, or the code of an
    # explicit exit (--help, --version).
    sys.exit(code if type(code) is int else 0)


def usage_line(exc: click.UsageError) -> str:
    """A usage error in one line: `missing argument 'UID'; usage: csms tokens add [OPTIONS]
    UID; help: csms tokens add -h`."""
    message = " ".join(exc.format_message().split()).replace(". (", " (")
    message = message[:1].lower() + message[1:]
    if message.endswith(".") and not message.endswith("..."):
        message = message[:-1]
    ctx = exc.ctx
    if ctx is None:
        return message
    if not isinstance(ctx.command, click.Group):  # a group's help lists its commands
        usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
        message += f"; usage: {usage}"
    return f"{message}; help: {ctx.command_path} -h"


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


def when(moment: datetime | str | None, now: datetime | None = None) -> str:
    """The one time format for people: UTC to the second, with how long ago or how soon,
    `2026-12-04 23:12:54 (1s ago)`, `2030-01-01 00:00:00 (in 1127d04h)`. An ISO 8601
    string (from OCPI data or the API) is shown the same way."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        from csms.core.clock import parse_timestamp
        from csms.core.errors import InvalidTimestamp

        try:
            moment = parse_timestamp(text := moment)
        except InvalidTimestamp:
            return text
    now = now or datetime.now(UTC)
    utc = moment.astimezone(UTC)
    text = f"{utc.year:04d}" + utc.strftime("-%m-%d %H:%M:%S")
    if moment <= now:
        return f"{text} ({ago(now - moment)} ago)"
    return f"{text} (in {ago(moment - now)})"


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
    """Wh as kWh, exactly: 1687093 -> `1687.093`."""
    if wh is None:
        return "-"
    return str((Decimal(exact(wh)) / 1000).quantize(Decimal("0.001")))


def exact(value: int | float | Decimal | None) -> str:
    """A number as it is, never rounded nor in exponent form: 1687093.0 -> `1687093`,
    0.1 -> `0.1`, 1e16 -> `10000000000000000`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    if not number.is_finite():
        return str(value)
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


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
    from csms.core.errors import InvalidTimestamp

    try:
        return parse_timestamp(value)
    except InvalidTimestamp:
        raise CliError(
            f"{option}: not an ISO 8601 date/time: {value!r} "
            "(e.g. 2026-01-31 or 2026-01-31T08:00:00Z)"
        ) from None
