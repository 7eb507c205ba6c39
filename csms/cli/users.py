"""`csms users`: staff users of the operator API (add, list, show, set, disable, enable,
rotate); a new token is printed once and stored only as a digest.

Argument parsing and printing over csms.services.users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from csms.cli.common import CliError, config_option, json_option, print_json, run_db, table, when
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option
from csms.core.errors import CsmsError, InvalidInput
from csms.core.users import LOCAL_USER, ROLE_CHOICES, Role, StaffUser, parse_role
from csms.services.users import Issued, UserService
from csms.views import staff_user_json

T = TypeVar("T")

ROLE_HELP = "viewer: reads; operator: also sends commands to chargers; admin: also manages users."


def _run(config_file: str | None, work: Callable[[UserService], Awaitable[T]]) -> T:
    from csms.core.clock import utc_now

    async def wrapped(db: Any) -> T:
        try:
            return await work(UserService(db, utc_now))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except InvalidInput as exc:
        raise CliError(f"--role {exc}") from None


def _issued(issued: Issued, said: str, as_json: bool) -> None:
    """A token just made: on stdout once (JSON: `{user, token}`), with how to use it."""
    user = issued.user
    if as_json:
        print_json({"user": staff_user_json(user), "token": issued.token})
        return
    click.echo(said)
    click.echo(f"token: {issued.token}")
    click.echo(
        "the token is shown only now (the CSMS keeps a digest of it); it goes in the "
        "Authorization header, `Bearer TOKEN`, or in api.token / CSMS_API_TOKEN for the CLI",
        err=True,
    )


@click.group()
def users() -> None:
    """Staff users of the operator API, each with a bearer token and a role (viewer,
    operator, admin). The API's own token (api.token, else the data directory's token file)
    is the admin `local`, which the CLI on the server machine uses."""


@users.command("add")
@click.argument("name")
@click.option("--role", "role_text", required=True, metavar="|".join(ROLE_CHOICES), help=ROLE_HELP)
@config_option
@json_option
def add_cmd(name: str, role_text: str, config_file: str | None, as_json: bool) -> None:
    """Add a user and print its token (once)."""
    role = _role(role_text)
    issued = _run(config_file, lambda s: s.add(name, role))
    _issued(issued, f"user {name} added ({role.value})", as_json)


@users.command("list")
@limit_option
@config_option
@json_option
def list_cmd(limit: int, config_file: str | None, as_json: bool) -> None:
    """Users, the most recently added first (never their tokens)."""
    page = _run(config_file, lambda s: s.users(limit))
    found = page.items
    if as_json:
        print_json([staff_user_json(u) for u in found])
        footer(len(found), page.total, as_json=True)
        return
    if found:
        now = datetime.now(UTC)
        table(
            ["NAME", "ROLE", "STATE", "TOKEN ISSUED", "ADDED"],
            [
                [
                    u.name,
                    u.role.value,
                    _state(u),
                    when(u.token_issued_at, now),
                    when(u.created_at, now),
                ]
                for u in found
            ],
        )
        footer(len(found), page.total, as_json=False)
    else:
        click.echo("no users")
    click.echo(f"(and {LOCAL_USER}, admin: the API's own token, api.token or its file)")


@users.command("show")
@click.argument("name")
@config_option
@json_option
def show_cmd(name: str, config_file: str | None, as_json: bool) -> None:
    """One user (never its token)."""
    user = _run(config_file, lambda s: s.user(name))
    if as_json:
        print_json(staff_user_json(user))
        return
    now = datetime.now(UTC)
    for label, value in (
        ("name", user.name),
        ("role", user.role.value),
        ("state", _state(user)),
        ("token issued", when(user.token_issued_at, now)),
        ("added", when(user.created_at, now)),
        ("updated", when(user.updated_at, now)),
    ):
        click.echo(f"{label + ':':<13} {value}")


@users.command("set")
@click.argument("name")
@click.option("--role", "role_text", required=True, metavar="|".join(ROLE_CHOICES), help=ROLE_HELP)
@config_option
@json_option
def set_cmd(name: str, role_text: str, config_file: str | None, as_json: bool) -> None:
    """Change a user's role (its token stays)."""
    role = _role(role_text)
    user = _run(config_file, lambda s: s.set_role(name, role))
    if as_json:
        print_json(staff_user_json(user))
    else:
        click.echo(f"user {user.name} is now {user.role.value}")


@users.command("disable")
@click.argument("name")
@yes_option
@config_option
def disable_cmd(name: str, yes: bool, config_file: str | None) -> None:
    """Refuse the user's token from its next request on (`enable` lets it in again)."""
    confirm(f"disable user {name}", yes)
    user = _run(config_file, lambda s: s.set_enabled(name, False))
    click.echo(f"user {user.name} disabled: its token is refused")


@users.command("enable")
@click.argument("name")
@config_option
def enable_cmd(name: str, config_file: str | None) -> None:
    """Take the user's token again."""
    user = _run(config_file, lambda s: s.set_enabled(name, True))
    click.echo(f"user {user.name} enabled ({user.role.value})")


@users.command("rotate")
@click.argument("name")
@config_option
@json_option
def rotate_cmd(name: str, config_file: str | None, as_json: bool) -> None:
    """Give the user a new token (printed once); the old one is refused from now on."""
    issued = _run(config_file, lambda s: s.rotate(name))
    _issued(issued, f"user {name} has a new token; the old one is refused from now on", as_json)


def _state(user: StaffUser) -> str:
    return "enabled" if user.enabled else "disabled"
