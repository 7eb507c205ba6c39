"""`csms ocpi partners`: invite a partner (token A), register with one, list, show, set its
profile, remove;
`csms ocpi outbox`: the pushes waiting for partners; `csms ocpi tokens sync|list`: partners'
tokens; `csms ocpi parties`: the parties hubs report.

Argument parsing and printing over csms.services.partners, ocpi_cpo.registration and
csms.storage.outbox; the commands work on the database whether or not the server runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from csms.cli.common import (
    CliError,
    config_option,
    iso,
    json_option,
    load,
    print_json,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option, run_reads
from csms.config import Config
from csms.core.partners import Partner, TokenEncoding
from csms.views import partner_json


def _run(config_file: str | None, work: Any) -> Any:
    """Run `work(PartnerService, Config)` on the configured database; partner errors
    become one line."""
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.partners import PartnerService

    config = load(config_file)

    async def wrapped(db: Any) -> Any:
        try:
            return await work(PartnerService(db, utc_now), config)
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def _base_url(config: Config) -> str:
    """Our public OCPI base URL, as partners must be told it."""
    from ocpi_cpo.context import public_base_url

    if not config.ocpi.base_url and config.ocpi.port == 0:
        raise CliError("ocpi.base_url is empty and ocpi.port is 0: set ocpi.base_url")
    return public_base_url(config.ocpi)


def _versions_url(config: Config) -> str:
    from ocpi_cpo.versions import VERSIONS_PATH

    return _base_url(config) + VERSIONS_PATH


@click.group()
def ocpi() -> None:
    """The OCPI 2.2.1 bridge."""


@ocpi.group()
def partners() -> None:
    """OCPI partners (eMSPs, hubs): registration and what they offer."""


@partners.command("add")
@click.argument("name")
@config_option
@json_option
def add_cmd(name: str, config_file: str | None, as_json: bool) -> None:
    """Invite a partner: print our versions URL and a fresh token A for it."""

    async def work(service: Any, config: Config) -> tuple[Any, str]:
        url = _versions_url(config)
        return await service.add(name), url

    invitation, url = _run(config_file, work)
    if as_json:
        print_json(
            {**partner_json(invitation.partner), "versions_url": url, "token_a": invitation.token_a}
        )
        return
    click.echo(f"partner {name} added (pending)")
    click.echo(f"versions URL: {url}")
    click.echo(f"token A:      {invitation.token_a}")
    click.echo("Give both to the partner; it registers by POSTing its credentials with token A.")


@partners.command("register")
@click.argument("name")
@click.option("--versions-url", required=True, help="The partner's versions endpoint.")
@click.option("--token", "token_a", required=True, help="Token A the partner gave us.")
@click.option(
    "--encoding",
    type=click.Choice(["auto", "base64", "raw"]),
    default="auto",
    show_default=True,
    help="How to send the token: auto tries Base64 (2.2.1), then raw after a 401.",
)
@config_option
@json_option
def register_cmd(
    name: str,
    versions_url: str,
    token_a: str,
    encoding: str,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Register with a partner: fetch its 2.2.1 endpoints, send our credentials, keep its."""
    from csms.core.partners import valid_token
    from ocpi_cpo.credentials import is_url

    if not is_url(versions_url):
        raise CliError(f"--versions-url: not an http(s) URL: {versions_url!r}")
    if not valid_token(token_a):
        raise CliError("--token: must be 1-64 printable ASCII characters without spaces")
    encodings = (
        (TokenEncoding.BASE64, TokenEncoding.RAW)
        if encoding == "auto"
        else (TokenEncoding(encoding),)
    )

    async def work(service: Any, config: Config) -> tuple[Partner, Any]:
        import aiohttp

        from ocpi_cpo.client import OcpiClient
        from ocpi_cpo.context import OcpiSettings
        from ocpi_cpo.errors import OcpiError
        from ocpi_cpo.registration import Registrar

        settings = OcpiSettings.from_config(config.ocpi, _base_url(config))
        async with aiohttp.ClientSession() as session:
            client = OcpiClient(session, timeout=settings.request_timeout)
            registrar = Registrar(service, client, settings.us, settings.required)
            try:
                partner = await registrar.register_with(name, versions_url, token_a, encodings)
            except OcpiError as exc:
                raise CliError(f"registration with {name} failed: {exc}") from None
            return partner, await _pull_after_registration(service, client, partner, config)

    partner, pulled = _run(config_file, work)
    if as_json:
        print_json({**partner_json(partner), "tokens_pulled": _pull_json(pulled)})
        return
    click.echo(f"registered with {name} ({partner.parties}), OCPI {partner.version}")
    click.echo(f"endpoints: {', '.join(_endpoint_label(e) for e in partner.endpoints)}")
    if pulled is not None:
        click.echo(f"tokens pulled: {_pull_line(pulled)}")


async def _pull_after_registration(
    service: Any, client: Any, partner: Partner, config: Config
) -> Any:
    """A new partner's tokens, pulled at once (the server does this for partners that
    register with it). A failure only warns: the registration stands. None when the
    partner offers no tokens list or the pull failed."""
    from csms.core.partners import InterfaceRole
    from ocpi_cpo.errors import OcpiError
    from ocpi_cpo.token_sync import pull_tokens

    if partner.endpoint("tokens", InterfaceRole.SENDER) is None:
        return None
    try:
        return await pull_tokens(service.db, client, partner, _our_party(config), service.clock)
    except OcpiError as exc:
        click.echo(f"warning: pulling the tokens of {partner.name} failed: {exc}", err=True)
        return None


def _endpoint_label(e: Any) -> str:
    return e.identifier if e.identifier == "credentials" else f"{e.identifier} {e.role.value}"


def _switch_options(fn: Any) -> Any:
    """`--<switch>/--no-<switch>` for every on/off switch of a profile, and --page-limit."""
    from csms.core.partners import PartnerProfile

    for name in reversed(PartnerProfile.switch_names()):
        flag = name.replace("_", "-")
        if name == "page_limit":
            fn = click.option(
                "--page-limit",
                "page_limit",
                metavar="N|none",
                default=None,
                help="Largest page served to the partner and asked of it (none: ours).",
            )(fn)
            continue
        fn = click.option(f"--{flag}/--no-{flag}", name, default=None, help=_SWITCH_HELP[name])(fn)
    return fn


_SWITCH_HELP = {
    "session_put": "Send session updates as a PUT of the whole session instead of a PATCH.",
    "compact_evse_ids": "EVSE ids without separators and upper-cased in what it is sent.",
    "case_sensitive_ids": "Compare the ids it sends case-sensitively.",
    "fill_empty": "Fill required strings it leaves empty (tokens) with '-'.",
    "routing_headers": "Send OCPI-from/to-* routing headers on our requests.",
    "hub": "Treat it as a hub whatever its credentials say (a hub registered in 2.1.1).",
}


def _page_limit(text: str | None) -> int | None:
    if text is None or text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"--page-limit: {text!r} is not a number or 'none'") from None
    if value < 1:
        raise CliError("--page-limit must be at least 1")
    return value


@partners.command("set")
@click.argument("name")
@click.option(
    "--profile",
    type=click.Choice(["default", "gireve", "e-clearing"]),
    default=None,
    help="A hub's documented habits (its switches replace those set before).",
)
@_switch_options
@config_option
@json_option
def set_cmd(
    name: str, profile: str | None, config_file: str | None, as_json: bool, **switches: Any
) -> None:
    """Set a partner's profile and/or single switches of it (see the README, "Connecting
    to a hub")."""
    changes: dict[str, bool | int | None] = {
        k: v for k, v in switches.items() if v is not None and k != "page_limit"
    }
    if switches.get("page_limit") is not None:
        changes["page_limit"] = _page_limit(switches["page_limit"])
    if profile is None and not changes:
        raise CliError("nothing to set: give --profile or a switch (see --help)")

    async def work(service: Any, _config: Config) -> Partner:
        return await service.set_profile(name, profile, changes)  # type: ignore[no-any-return]

    p: Partner = _run(config_file, work)
    if as_json:
        print_json(partner_json(p))
        return
    click.echo(f"partner {p.name}: profile {_profile_line(p)}")


def _profile_line(p: Partner) -> str:
    """`gireve (session_put, no routing_headers; page_limit 50*)`: * marks switches set
    apart from the preset."""
    parts = []
    for key, value in p.profile.switches().items():
        mark = "*" if key in p.profile.custom else ""
        if key == "page_limit":
            if value is not None or mark:
                parts.append(f"page_limit {'-' if value is None else value}{mark}")
        elif value != (key == "routing_headers") or mark:
            parts.append(f"{'' if value else 'no '}{key}{mark}")
    return p.profile.name + (f" ({', '.join(parts)})" if parts else "")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@partners.command("list")
@limit_option
@config_option
@json_option
def list_cmd(limit: int, config_file: str | None, as_json: bool) -> None:
    """Partners, the most recently added first, with their status and parties."""
    page = run_reads(config_file, lambda r: r.partners(limit=limit, newest_first=True))
    found: list[Partner] = page.items
    if as_json:
        print_json([partner_json(p) for p in found])
        footer(len(found), page.total, as_json=True)
        return
    if not found:
        click.echo("no partners")
        return
    now = datetime.now(UTC)
    table(
        [
            "NAME",
            "STATUS",
            "DIRECTION",
            "PARTIES",
            "VERSION",
            "PROFILE",
            "ENDPOINTS",
            "BACKLOG",
            "OLDEST",
            "LAST OK",
            "UPDATED",
        ],
        [
            [
                p.name,
                p.status.value,
                None if p.direction is None else p.direction.value,
                p.parties,
                p.version,
                p.profile.name + ("*" if p.profile.custom else ""),
                len(p.endpoints),
                None if p.health is None else p.health.backlog,
                _age(None if p.health is None else p.health.oldest_age(now)),
                when(p.last_success_at, now),
                when(p.updated_at, now),
            ]
            for p in found
        ],
    )
    footer(len(found), page.total, as_json=False)


@partners.command("show")
@click.argument("name")
@config_option
@json_option
def show_cmd(name: str, config_file: str | None, as_json: bool) -> None:
    """One partner: roles, endpoints, token encoding, dates (never its tokens)."""

    async def work(service: Any, _config: Config) -> Partner:
        return await service.get(name, health=True)  # type: ignore[no-any-return]

    p: Partner = _run(config_file, work)
    if as_json:
        print_json(partner_json(p))
        return
    click.echo(f"partner {p.name}: {p.status.value}")
    click.echo(f"  direction:      {'-' if p.direction is None else p.direction.value}")
    click.echo(f"  versions URL:   {p.versions_url or '-'}")
    click.echo(f"  version:        {p.version or '-'}")
    click.echo(f"  token encoding: {p.token_encoding.value}")
    click.echo(f"  profile:        {_profile_line(p)}")
    now = datetime.now(UTC)
    click.echo(f"  created:        {when(p.created_at, now)}")
    click.echo(f"  registered:     {when(p.registered_at, now)}")
    click.echo("health:")
    click.echo(f"  last success:   {when(p.last_success_at, now)}")
    error = "-" if p.last_error_at is None else f"{when(p.last_error_at, now)}  {p.last_error}"
    click.echo(f"  last error:     {error}")
    backlog = 0 if p.health is None else p.health.backlog
    age = None if p.health is None else p.health.oldest_age(now)
    click.echo(f"  backlog:        {backlog} push{'' if backlog == 1 else 'es'} waiting")
    click.echo(f"  oldest waiting: {_age(age)}")
    click.echo(f"roles ({len(p.roles)}):")
    for r in p.roles:
        business = r.business_details.get("name", "-")
        click.echo(f"  {r.role.value:5} {r.country_code}/{r.party_id}  {business}")
    click.echo(f"endpoints ({len(p.endpoints)}):")
    for e in p.endpoints:
        click.echo(f"  {e.identifier:12} {e.role.value:8} {e.url}")


@partners.command("remove")
@click.argument("name")
@yes_option
@config_option
def remove_cmd(name: str, yes: bool, config_file: str | None) -> None:
    """Forget a partner; its tokens stop working at once (it is not told). Asks first
    unless --yes."""
    confirm(f"remove partner {name}", yes)

    async def work(service: Any, _config: Config) -> Partner:
        return await service.remove(name)  # type: ignore[no-any-return]

    _run(config_file, work)
    click.echo(f"partner {name} removed")


def outbox_json(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "partner": e.partner_name,
        "module": e.module,
        "method": e.method,
        "url": e.url,
        "object_key": e.object_key,
        "attempts": e.attempts,
        "next_attempt_at": None if e.delivered_at is not None else iso(e.next_attempt_at),
        "last_error": e.last_error,
        "created_at": iso(e.created_at),
        "delivered_at": iso(e.delivered_at),
    }


@ocpi.command("outbox")
@click.option("--partner", "partner_name", metavar="NAME", help="Only pushes to this partner.")
@click.option("--failing", is_flag=True, help="Only pushes that failed at least once.")
@click.option("--delivered", is_flag=True, help="The most recently delivered pushes instead.")
@limit_option
@click.option(
    "--drop", "drop_id", type=int, metavar="ID", help="Delete one undelivered push (give up)."
)
@yes_option
@click.option("--retry-now", is_flag=True, help="Make every failing push due now.")
@config_option
@json_option
def outbox_cmd(
    partner_name: str | None,
    failing: bool,
    delivered: bool,
    limit: int,
    drop_id: int | None,
    yes: bool,
    retry_now: bool,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Pushes to partners waiting in the outbox: counts per partner, then the entries,
    newest first (id, partner, module, method, URL, attempts, next attempt, last error).
    --drop asks first unless --yes."""
    if drop_id is not None and retry_now:
        raise CliError("use --drop or --retry-now, not both")
    if failing and delivered:
        raise CliError("use --failing or --delivered, not both")
    if drop_id is not None:
        confirm(f"drop push {drop_id} (it will not be sent)", yes)
        _outbox_drop(drop_id, config_file, as_json)
        return
    if retry_now:
        _outbox_retry(partner_name, config_file, as_json)
        return

    async def work(
        service: Any, _config: Config
    ) -> tuple[dict[str, tuple[int, int]], list[Any], int, list[Any]]:
        from csms.storage import ocpi_sessions, outbox

        partner_id = None if partner_name is None else (await service.get(partner_name)).id
        async with service.db.read() as conn:
            counts = await outbox.counts(conn)
            entries = await outbox.listing(
                conn,
                partner_id=partner_id,
                failing_only=failing,
                delivered_only=delivered,
                limit=limit,
                newest_first=True,
            )
            total = await outbox.count_listed(
                conn, partner_id=partner_id, failing_only=failing, delivered_only=delivered
            )
            unrendered = await ocpi_sessions.failing(conn, limit)
        if partner_name is not None:
            counts = {partner_name: counts.get(partner_name, (0, 0))}
        return counts, entries, total, unrendered

    counts, entries, total, unrendered = _run(config_file, work)
    now = datetime.now(UTC)
    if as_json:
        print_json(
            {
                "counts": {
                    name: {"pending": pending, "failing": failing_}
                    for name, (pending, failing_) in sorted(counts.items())
                },
                "entries": [outbox_json(e) for e in entries],
                "sessions_not_rendered": [
                    {
                        "transaction_id": f.transaction_id,
                        "attempts": f.attempts,
                        "last_error": f.last_error,
                        "next_attempt_at": iso(f.next_attempt_at),
                        "failed_at": iso(f.failed_at),
                    }
                    for f in unrendered
                ],
            }
        )
        footer(len(entries), total, as_json=True)
        return
    if counts:
        for name, (pending, failing_) in sorted(counts.items()):
            click.echo(f"{name}: {pending} pending, {failing_} failing")
    else:
        click.echo("no pending pushes")
    # Sessions that never made it into the outbox: their data cannot be rendered.
    for f in unrendered:
        click.echo(
            f"session {f.transaction_id} cannot be rendered ({f.attempts} attempts, next "
            f"{when(f.next_attempt_at, now)}): {f.last_error}"
        )
    if not entries:
        if delivered:
            click.echo("no delivered pushes")
        return
    click.echo()
    if delivered:
        table(
            ["ID", "PARTNER", "MODULE", "METHOD", "URL", "ATTEMPTS", "DELIVERED"],
            [
                [
                    e.id,
                    e.partner_name,
                    e.module,
                    e.method,
                    e.url,
                    e.attempts,
                    when(e.delivered_at, now),
                ]
                for e in entries
            ],
        )
        footer(len(entries), total, as_json=False)
        return
    table(
        ["ID", "PARTNER", "MODULE", "METHOD", "URL", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"],
        [
            [
                e.id,
                e.partner_name,
                e.module,
                e.method,
                e.url,
                e.attempts,
                when(e.next_attempt_at, now),
                e.last_error,
            ]
            for e in entries
        ],
    )
    footer(len(entries), total, as_json=False)


def _outbox_drop(entry_id: int, config_file: str | None, as_json: bool) -> None:
    async def work(service: Any, _config: Config) -> bool:
        from csms.storage import outbox
        from csms.storage.database import WriteTx

        async def unit(w: WriteTx) -> bool:
            return await outbox.drop(await w.connection(), entry_id)

        return await service.db.write(unit)  # type: ignore[no-any-return]

    if not _run(config_file, work):
        raise CliError(f"no pending push {entry_id}")
    if as_json:
        print_json({"dropped": entry_id})
        return
    click.echo(f"push {entry_id} dropped (it will not be sent)")


def _outbox_retry(partner_name: str | None, config_file: str | None, as_json: bool) -> None:
    async def work(service: Any, _config: Config) -> int:
        from csms.storage import outbox
        from csms.storage.database import WriteTx

        partner_id = None if partner_name is None else (await service.get(partner_name)).id
        now = service.clock()

        async def unit(w: WriteTx) -> int:
            return await outbox.retry_now(await w.connection(), now, partner_id)

        return await service.db.write(unit)  # type: ignore[no-any-return]

    count: int = _run(config_file, work)
    if as_json:
        print_json({"retried": count})
        return
    click.echo(f"{count} failing push{'' if count == 1 else 'es'} due now")


# --- partners' tokens and the parties hubs report ------------------------------------------


def _our_party(config: Config) -> Any:
    from csms.core.parties import Party

    return Party(config.ocpi.country_code, config.ocpi.party_id)


def _pull_json(pulled: Any) -> dict[str, int] | None:
    if pulled is None:
        return None
    return {
        "received": pulled.received,
        "created": pulled.created,
        "updated": pulled.updated,
        "skipped": pulled.skipped,
        "older": pulled.older,
        "pages": pulled.pages,
    }


def _pull_line(pulled: Any) -> str:
    return (
        f"{pulled.received} received, {pulled.created} new, {pulled.updated} updated, "
        f"{pulled.older} older than ours, {pulled.skipped} skipped "
        f"({pulled.pages} page{'' if pulled.pages == 1 else 's'})"
    )


@ocpi.group("tokens")
def ocpi_tokens() -> None:
    """Partners' tokens (OCPI tokens module): pull a partner's list, list what is stored."""


@ocpi_tokens.command("sync")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 10_000), default=None, help="Page size to ask for.")
@config_option
@json_option
def tokens_sync_cmd(name: str, limit: int | None, config_file: str | None, as_json: bool) -> None:
    """Pull partner NAME's whole token list (its tokens Sender endpoint) and store it."""

    async def work(service: Any, config: Config) -> Any:
        import aiohttp

        from ocpi_cpo.client import OcpiClient
        from ocpi_cpo.errors import OcpiError
        from ocpi_cpo.token_sync import pull_tokens

        partner = await service.get(name)
        async with aiohttp.ClientSession() as session:
            client = OcpiClient(session, timeout=config.ocpi.request_timeout)
            try:
                return await pull_tokens(
                    service.db, client, partner, _our_party(config), service.clock, limit=limit
                )
            except OcpiError as exc:
                raise CliError(f"token sync with {name} failed: {exc}") from None

    pulled = _run(config_file, work)
    if as_json:
        print_json({"partner": name, **(_pull_json(pulled) or {})})
        return
    click.echo(f"tokens of {name}: {_pull_line(pulled)}")


def partner_token_json(t: Any, partner_names: dict[int, str]) -> dict[str, Any]:
    return {
        "uid": t.uid,
        "type": t.type,
        "party": str(t.party),
        "contract_id": t.contract_id,
        "whitelist": t.whitelist.value,
        "valid": t.valid,
        "last_updated": iso(t.last_updated),
        "partner": partner_names.get(t.partner_id) if t.partner_id is not None else None,
    }


@ocpi_tokens.command("list")
@click.option("--party", "party_text", metavar="CC*PID", help="Only this party's tokens.")
@limit_option
@config_option
@json_option
def tokens_list_cmd(
    party_text: str | None, limit: int, config_file: str | None, as_json: bool
) -> None:
    """Stored partner tokens, the most recently updated first: uid, type, party, contract
    id, whitelist, valid, updated."""
    from csms.core.errors import InvalidParty
    from csms.core.parties import PARTY_FORMAT, parse_party

    party = None
    if party_text is not None:
        try:
            party = parse_party(party_text)
        except InvalidParty:
            raise CliError(f"--party must be {PARTY_FORMAT}, not {party_text!r}") from None

    async def work(service: Any, _config: Config) -> tuple[list[Any], int, dict[int, str]]:
        from csms.storage import ocpi_tokens

        names = {p.id: p.name for p in await service.list_all()}
        async with service.db.read() as conn:
            found, total = await ocpi_tokens.page(conn, party=party, limit=limit, newest_first=True)
        return found, total, names

    found, total, names = _run(config_file, work)
    if as_json:
        print_json([partner_token_json(t, names) for t in found])
        footer(len(found), total, as_json=True)
        return
    if not found:
        click.echo("no partner tokens")
        return
    now = datetime.now(UTC)
    table(
        ["UID", "TYPE", "PARTY", "CONTRACT", "WHITELIST", "VALID", "UPDATED", "PARTNER"],
        [
            [
                row["uid"],
                row["type"],
                row["party"],
                row["contract_id"],
                row["whitelist"],
                "yes" if row["valid"] else "no",
                when(row["last_updated"], now),
                row["partner"],
            ]
            for row in (partner_token_json(t, names) for t in found)
        ],
    )
    footer(len(found), total, as_json=False)


@ocpi.command("parties")
@limit_option
@config_option
@json_option
def parties_cmd(limit: int, config_file: str | None, as_json: bool) -> None:
    """Parties the hubs report (hub client info), the most recently updated first:
    connection status per party and role."""

    async def work(service: Any, _config: Config) -> tuple[list[Any], dict[int, str]]:
        from csms.storage import hub_parties

        names = {p.id: p.name for p in await service.list_all()}
        async with service.db.read() as conn:
            return await hub_parties.list_all(conn), names

    every, names = _run(config_file, work)
    every.sort(key=lambda p: p.last_updated, reverse=True)  # stable: ties stay by party
    found = every[:limit]
    rows = [
        {
            "country_code": p.country_code,
            "party_id": p.party_id,
            "role": p.role,
            "status": p.status,
            "last_updated": iso(p.last_updated),
            "hub": names.get(p.partner_id) if p.partner_id is not None else None,
        }
        for p in found
    ]
    if as_json:
        print_json(rows)
        footer(len(found), len(every), as_json=True)
        return
    if not rows:
        click.echo("no parties reported by hubs")
        return
    now = datetime.now(UTC)
    table(
        ["COUNTRY", "PARTY", "ROLE", "STATUS", "UPDATED", "HUB"],
        [
            [
                r["country_code"],
                r["party_id"],
                r["role"],
                r["status"],
                when(r["last_updated"], now),
                r["hub"],
            ]
            for r in rows
        ],
    )
    footer(len(found), len(every), as_json=False)
