"""How every `csms ... list` reads and shows: newest first, at most --limit items (default
100), and a closing line when there are more; lists read through csms.services.reads, like
the operator API's listings.

Options and printing only; the reads and their filters live in csms.services.reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csms.cli.common import CliError, billing_service, load, run_db

if TYPE_CHECKING:
    from csms.services.reads import ReadService

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000_000


def limit_option(fn: F) -> F:
    return click.option(
        "--limit",
        type=click.IntRange(1, MAX_LIMIT),
        default=DEFAULT_LIMIT,
        show_default=True,
        help="Show at most this many, newest first.",
    )(fn)


def more_line(shown: int, total: int) -> str | None:
    """`showing 100 of 2345; --limit to see more` when the list was cut, else None."""
    if shown >= total:
        return None
    return f"showing {shown} of {total}; --limit to see more"


def footer(shown: int, total: int, *, as_json: bool) -> None:
    """After a list: say when it was cut (on stderr under --json, whose stdout stays one
    JSON document)."""
    line = more_line(shown, total)
    if line is not None:
        click.echo(line, err=as_json)


def run_reads(config_file: str | None, work: Callable[[ReadService], Awaitable[T]]) -> T:
    """Run `work` with the read service the operator API uses; what it cannot find, or a
    filter it cannot take, becomes one line."""
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.reads import ReadService

    config = load(config_file)

    async def wrapped(db: Any) -> T:
        try:
            return await work(ReadService(db, utc_now, billing_service(db, config)))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)
