"""Confirmation of destructive commands (remove, drop): asked on a terminal, given with
--yes; without a terminal and without --yes the command refuses in one line.

Prompting only; what is removed is the command's business.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from csms.cli.common import CliError

F = TypeVar("F", bound=Callable[..., Any])


def yes_option(fn: F) -> F:
    return click.option(
        "--yes", "-y", "yes", is_flag=True, help="Do not ask for confirmation (for scripts)."
    )(fn)


def confirm(what: str, yes: bool) -> None:
    """Go on only if the operator agrees to `what` (e.g. `remove charger CP1`): --yes, or
    `y` on a terminal. Otherwise nothing is done and the command fails with one line."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{what}: add --yes to confirm (no terminal to ask on)")
    try:
        agreed = click.confirm(f"{what[0].upper()}{what[1:]}?", default=False, err=True)
    except click.Abort:  # Ctrl-D / Ctrl-C at the prompt
        agreed = False
        click.echo(err=True)
    if not agreed:
        raise CliError(f"not confirmed: did not {what}")
