"""`csms tokens`: add, list, show, set, block, unblock, remove and import id tokens (RFID
cards); list the uids two owners claim (`conflicts`).

Argument parsing and printing over csms.services.staff.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csms.cli.chargers import _run
from csms.cli.common import (
    CliError,
    config_option,
    iso,
    json_option,
    parse_time,
    print_json,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option, run_reads
from csms.core.authorization import Token, TokenStatus, limit_text
from csms.core.errors import InvalidInput
from csms.core.ids import token_key
from csms.services.staff import (
    StaffService,
    parse_tokens_csv,
    token_limit,
    token_owner,
    token_status,
)
from csms.storage.ocpi_tokens import Conflict as TokenConflict
from csms.views import token_json

if TYPE_CHECKING:
    from csms.services.reads import ReadService
    from csms.storage.paging import Page

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def conflict_json(c: TokenConflict) -> dict[str, Any]:
    return {
        "uid": c.uid,
        "type": c.token_type,
        "held_by": c.held_by,
        "claimed_by": c.claimed_by,
        "partner": c.partner,
        "received_at": iso(c.received_at),
    }


def _claims_by_key(found: Sequence[TokenConflict]) -> dict[str, list[TokenConflict]]:
    out: dict[str, list[TokenConflict]] = {}
    for conflict in found:
        out.setdefault(token_key(conflict.uid), []).append(conflict)
    return out


def _max_concurrent_option(default: str | None) -> Callable[[F], F]:
    return click.option(
        "--max-concurrent",
        "max_concurrent",
        default=default,
        show_default=default is not None,
        metavar="N|unlimited",
        help="How many transactions it may hold at once (a fleet or free-vend card: "
        "unlimited). More get ConcurrentTx.",
    )


def _priority_option(fn: F) -> F:
    return click.option(
        "--priority",
        type=click.IntRange(0, 100),
        default=None,
        help="Its sessions' priority on a load-managed site, 0 (default) to 100: higher "
        "ones are paused last and get a larger share (weight 1 + priority).",
    )(fn)


def _option(name: str, parse: Callable[[str], T], text: str | None) -> T:
    """An option's value parsed, or one line naming the option: `--status must be one of
    Accepted, Blocked, Expired or Invalid, not 'Foo'`."""
    try:
        return parse(text or "")
    except InvalidInput as exc:
        raise CliError(f"{name} {exc}") from None


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
@_max_concurrent_option("1")
@_priority_option
@config_option
@json_option
def add_cmd(
    uid: str,
    status_text: str,
    expires: str | None,
    parent: str | None,
    token_type: str,
    owner: str | None,
    max_concurrent: str,
    priority: int | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Add a token. Sessions of a token another party owns (--owner) are that party's:
    partners of that party see them over OCPI; sessions of our own tokens stay ours."""
    status = _option("--status", token_status, status_text)
    origin = _option("--owner", token_owner, owner)
    limit = _option("--max-concurrent", token_limit, max_concurrent)
    token = Token(
        uid=uid,
        status=status,
        type=token_type,
        expires_at=None if expires is None else parse_time(expires, "--expires"),
        parent_uid=parent,
        origin=origin,
        max_concurrent=limit,
        priority=priority,
    )
    stored = _run(config_file, lambda s: s.add_token(token))
    if as_json:
        print_json(token_json(stored))
    else:
        click.echo(f"token {stored.uid} added ({stored.status.value})")


@tokens.command("list")
@limit_option
@config_option
@json_option
def list_cmd(limit: int, config_file: str | None, as_json: bool) -> None:
    """Tokens, the most recently added first. ALSO CLAIMED BY: parties whose own token
    claims the same uid (not used at our chargers; see `csms tokens conflicts`)."""

    async def work(r: ReadService) -> tuple[Page[Token], list[TokenConflict]]:
        return await r.tokens(limit=limit, newest_first=True), await r.token_conflicts()

    page, conflicts = run_reads(config_file, work)
    found = page.items
    claims = _claims_by_key(conflicts)
    if as_json:
        print_json(
            [token_json(t, (c.claimed_by for c in claims.get(token_key(t.uid), []))) for t in found]
        )
        footer(len(found), page.total, as_json=True)
        return
    if not found:
        click.echo("no tokens")
        return
    now = datetime.now(UTC)
    table(
        ["UID", "STATUS", "EXPIRES", "PARENT", "TYPE", "ORIGIN", "MAX TX", "ALSO CLAIMED BY"],
        [
            [
                t.uid,
                t.status.value,
                when(t.expires_at, now) if t.expires_at else None,
                t.parent_uid,
                t.type,
                t.origin,
                limit_text(t.max_concurrent),
                ",".join(sorted({c.claimed_by for c in claims.get(token_key(t.uid), [])})) or None,
            ]
            for t in found
        ],
    )
    footer(len(found), page.total, as_json=False)


@tokens.command("conflicts")
@click.argument("uid", required=False)
@config_option
@json_option
def conflicts_cmd(uid: str | None, config_file: str | None, as_json: bool) -> None:
    """Uids claimed by two owners (of UID only). The first owner keeps a uid: HELD BY
    authorizes it at our chargers; the token of CLAIMED BY is stored (its eMSP sees it) but
    not used there, and commands vouching for it are refused. To give the uid to the other
    owner: `csms tokens set UID --owner CC*PID` (or `local`)."""
    found = _run(config_file, lambda s: s.token_conflicts(uid))
    if as_json:
        print_json([conflict_json(c) for c in found])
        return
    if not found:
        click.echo("no token conflicts" if uid is None else f"no conflicts for token {uid}")
        return
    now = datetime.now(UTC)
    table(
        ["UID", "TYPE", "HELD BY", "CLAIMED BY", "PARTNER", "RECEIVED"],
        [
            [c.uid, c.token_type, c.held_by, c.claimed_by, c.partner, when(c.received_at, now)]
            for c in found
        ],
    )


@tokens.command("show")
@click.argument("uid")
@config_option
@json_option
def show_cmd(uid: str, config_file: str | None, as_json: bool) -> None:
    """One token, with the party owning it (and others claiming its uid, if any)."""

    async def work(s: StaffService) -> tuple[Token, list[TokenConflict]]:
        return await s.token(uid), await s.token_conflicts(uid)

    t, claims = _run(config_file, work)
    if as_json:
        print_json(token_json(t, (c.claimed_by for c in claims)))
        return
    now = datetime.now(UTC)
    rows = [
        ("uid", t.uid),
        ("status", t.status.value),
        ("type", t.type),
        ("expires", when(t.expires_at, now) if t.expires_at else "never"),
        ("parent", t.parent_uid or "-"),
        ("owner", "us (local)" if t.origin == "local" else t.origin),
        ("max concurrent", limit_text(t.max_concurrent)),
        ("priority", "-" if t.priority is None else str(t.priority)),
        ("updated", when(t.updated_at, now)),
    ]
    for c in claims:
        by = f"{c.claimed_by} ({c.token_type}" + (f", partner {c.partner})" if c.partner else ")")
        rows.append(("also claimed", f"{by}: not used at our chargers; the owner above keeps it"))
    for name, value in rows:
        click.echo(f"{name + ':':<15} {value}")


@tokens.command("set")
@click.argument("uid")
@click.option("--status", "status_text", help="Accepted, Blocked, Expired or Invalid.")
@click.option("--expires", help="Expiry date/time (ISO 8601).")
@click.option("--no-expiry", is_flag=True, help="The token no longer expires.")
@click.option("--parent", help="Parent (group) id tag.")
@click.option("--no-parent", is_flag=True, help="The token no longer belongs to a group.")
@click.option("--type", "token_type", help="Token type, e.g. ISO14443.")
@click.option("--owner", metavar="CC*PID", help="The OCPI party owning it; `local`: ours.")
@_max_concurrent_option(None)
@_priority_option
@config_option
@json_option
def set_cmd(
    uid: str,
    status_text: str | None,
    expires: str | None,
    no_expiry: bool,
    parent: str | None,
    no_parent: bool,
    token_type: str | None,
    owner: str | None,
    max_concurrent: str | None,
    priority: int | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Change a stored token; only what is given changes."""
    if expires is not None and no_expiry:
        raise CliError("give --expires or --no-expiry, not both")
    if parent is not None and no_parent:
        raise CliError("give --parent or --no-parent, not both")
    changes: dict[str, Any] = {}
    if status_text is not None:
        changes["status"] = _option("--status", token_status, status_text)
    if owner is not None:
        changes["origin"] = _option("--owner", token_owner, owner)
    if max_concurrent is not None:
        changes["max_concurrent"] = _option("--max-concurrent", token_limit, max_concurrent)
    if expires is not None or no_expiry:
        changes["expires_at"] = None if no_expiry else parse_time(expires or "", "--expires")
    if parent is not None or no_parent:
        changes["parent_uid"] = None if no_parent else parent
    if token_type is not None:
        changes["type"] = token_type
    if priority is not None:
        changes["priority"] = priority
    if not changes:
        raise CliError("nothing to change: give at least one option (see --help)")
    t = _run(config_file, lambda s: s.update_token(uid, **changes))
    if as_json:
        print_json(token_json(t))
    else:
        click.echo(f"token {t.uid} changed ({', '.join(_described(changes))})")


def _described(changes: dict[str, Any]) -> list[str]:
    names = {
        "status": "status",
        "origin": "owner",
        "max_concurrent": "max concurrent",
        "expires_at": "expires",
        "parent_uid": "parent",
        "type": "type",
        "priority": "priority",
    }
    out = []
    for key, value in changes.items():
        if key == "max_concurrent":
            shown = limit_text(value)
        elif isinstance(value, TokenStatus):
            shown = value.value
        else:
            shown = "-" if value is None else str(value)
        out.append(f"{names[key]} {shown}")
    return out


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


@tokens.command("remove")
@click.argument("uid")
@yes_option
@config_option
def remove_cmd(uid: str, yes: bool, config_file: str | None) -> None:
    """Forget a token: it is unknown from now on (its transactions keep its uid); asks
    first unless --yes. To refuse it but keep it, `csms tokens block`."""
    confirm(f"remove token {uid}", yes)
    _run(config_file, lambda s: s.remove_token(uid))
    click.echo(f"token {uid} removed")


@tokens.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@config_option
def import_cmd(file: str, config_file: str | None) -> None:
    """Import tokens from CSV (header:
    uid[,status][,expires][,parent][,type][,owner][,max_concurrent]).

    owner is the OCPI party owning a token (CC*PID, e.g. NL*EMS); empty: ours.
    max_concurrent is a number or `unlimited` (empty: 1); without that column, tokens
    already stored keep theirs.

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
    created, updated = _run(
        config_file, lambda s: s.import_tokens(parsed.tokens, limits=parsed.limits)
    )
    click.echo(f"imported {len(parsed.tokens)} tokens ({created} new, {updated} updated)")
