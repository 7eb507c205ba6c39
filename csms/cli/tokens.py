"""`csms tokens`: add, list, show, block, unblock and import id tokens (RFID cards).

Argument parsing and printing over csms.services.staff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from csms.cli.chargers import _run
from csms.cli.common import CliError, config_option, iso, json_option, parse_time, print_json, table
from csms.core.authorization import Token, TokenStatus
from csms.core.errors import InvalidInput
from csms.services.staff import parse_tokens_csv, token_owner, token_status


def token_json(t: Token) -> dict[str, Any]:
    return {
        "uid": t.uid,
        "type": t.type,
        "status": t.status.value,
        "expires_at": iso(t.expires_at),
        "parent": t.parent_uid,
        "origin": t.origin,
        "updated_at": iso(t.updated_at),
    }


@click.group()
def tokens() -> None:
    """Id tokens (RFID cards and other identifiers)."""


@tokens.command("add")
@click.argument("uid")
@click.option(
    "--status",
    "status_text",
    default="Accepted",
    show_default=True,
    help="Accepted, Blocked, Expired or Invalid.",
)
@click.option("--expires", help="Expiry date/time (ISO 8601).")
@click.option("--parent", help="Parent (group) id tag.")
@click.option("--type", "token_type", default="ISO14443", show_default=True)
@click.option(
    "--owner",
    metavar="CC*PID",
    help="The OCPI party owning the token (an eMSP), e.g. NL*EMS; default: ours.",
)
@config_option
@json_option
def add_cmd(
    uid: str,
    status_text: str,
    expires: str | None,
    parent: str | None,
    token_type: str,
    owner: str | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Add a token. Sessions of a token another party owns (--owner) are that party's:
    partners of that party see them over OCPI; sessions of our own tokens stay ours."""
    try:
        status = token_status(status_text)
        origin = token_owner(owner)
    except InvalidInput as exc:
        raise CliError(str(exc)) from None
    token = Token(
        uid=uid,
        status=status,
        type=token_type,
        expires_at=None if expires is None else parse_time(expires, "--expires"),
        parent_uid=parent,
        origin=origin,
    )
    stored = _run(config_file, lambda s: s.add_token(token))
    if as_json:
        print_json(token_json(stored))
    else:
        click.echo(f"token {stored.uid} added ({stored.status.value})")


@tokens.command("list")
@config_option
@json_option
def list_cmd(config_file: str | None, as_json: bool) -> None:
    """All tokens."""
    found = _run(config_file, lambda s: s.tokens())
    if as_json:
        print_json([token_json(t) for t in found])
        return
    if not found:
        click.echo("no tokens")
        return
    table(
        ["UID", "STATUS", "EXPIRES", "PARENT", "TYPE", "ORIGIN"],
        [[t.uid, t.status.value, iso(t.expires_at), t.parent_uid, t.type, t.origin] for t in found],
    )


@tokens.command("show")
@click.argument("uid")
@config_option
@json_option
def show_cmd(uid: str, config_file: str | None, as_json: bool) -> None:
    """One token, with the party owning it."""
    t = _run(config_file, lambda s: s.token(uid))
    if as_json:
        print_json(token_json(t))
        return
    rows = [
        ("uid", t.uid),
        ("status", t.status.value),
        ("type", t.type),
        ("expires", iso(t.expires_at) or "-"),
        ("parent", t.parent_uid or "-"),
        ("owner", "us (local)" if t.origin == "local" else t.origin),
        ("updated", iso(t.updated_at) or "-"),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':<9} {value}")


@tokens.command("block")
@click.argument("uid")
@config_option
def block_cmd(uid: str, config_file: str | None) -> None:
    """Block a token: it is refused from now on."""
    _run(config_file, lambda s: s.set_token_status(uid, TokenStatus.BLOCKED))
    click.echo(f"token {uid} blocked")


@tokens.command("unblock")
@click.argument("uid")
@config_option
def unblock_cmd(uid: str, config_file: str | None) -> None:
    """Accept a blocked token again."""
    _run(config_file, lambda s: s.set_token_status(uid, TokenStatus.ACCEPTED))
    click.echo(f"token {uid} unblocked")


@tokens.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@config_option
def import_cmd(file: str, config_file: str | None) -> None:
    """Import tokens from CSV (header: uid[,status][,expires][,parent][,type][,owner]).

    owner is the OCPI party owning a token (CC*PID, e.g. NL*EMS); empty: ours.

    Existing tokens are updated; a bad row stops the import before anything is written.
    """
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"{file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{file}: not a UTF-8 text file") from None
    try:
        parsed = parse_tokens_csv(text)
    except InvalidInput as exc:
        raise CliError(f"{file}: {exc}") from None
    created, updated = _run(config_file, lambda s: s.import_tokens(parsed))
    click.echo(f"imported {len(parsed)} tokens ({created} new, {updated} updated)")
