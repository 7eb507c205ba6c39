"""Partners' tokens into our store: saving them however they arrive (pushed to our tokens
Receiver, pulled), and pulling a partner's whole list from its tokens Sender interface,
page by page (the `Link` header, else offset/limit). A 2.1.1 partner's tokens are read as
2.2.1 ones (ocpi_cpo.v211.objects.token_to_221) before anything else sees them.

A pull runs in the background after a registration (TokenPuller, a hook of the Registrar)
and from `csms ocpi tokens sync`. Validation is csms.core.ocpi_tokens'; nothing here
decides authorizations.

Errors (ocpi_cpo.errors.OcpiError):
 ├── CannotPull     the partner is not registered or offers no tokens Sender endpoint
 └── PartnerError   the partner's answer (ocpi_cpo.client), PartnerBadResponse for a page
                    whose data is not a list
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

import structlog
from aiohttp import web

from csms.core.clock import Clock
from csms.core.ocpi_tokens import InvalidToken, may_write, parse_token
from csms.core.parties import Party
from csms.core.partners import InterfaceRole, Partner, PartnerStatus
from csms.core.roaming import PartnerToken
from csms.storage import ocpi_tokens as token_repo
from csms.storage import partners as partners_repo
from csms.storage.database import Database, WriteTx
from csms.storage.ocpi_tokens import Saved
from csms.workers import TaskSet
from ocpi_cpo.client import Credential, OcpiClient, route
from ocpi_cpo.context import CLIENT, PARTNERS, REGISTRAR, SETTINGS, OcpiSettings
from ocpi_cpo.errors import OcpiError, PartnerBadResponse
from ocpi_cpo.v211 import objects as v211

log = structlog.get_logger("ocpi_cpo.token_sync")

# A pull stops after this many pages (a partner whose Link never ends).
MAX_PAGES = 10_000
# Seconds between a registration and the pull it starts: the partner finishes its side of
# the handshake (storing our token) before we call it.
PULL_DELAY = 1.0
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_REL = re.compile(r';\s*rel\s*=\s*"?([^";,]*)"?', re.IGNORECASE)


class CannotPull(OcpiError):
    """The partner cannot be asked for its tokens (not registered, no endpoint)."""


@dataclass(frozen=True, slots=True)
class PullResult:
    """Counts of one pull: tokens in the partner's pages, stored new, stored over an
    existing one, skipped (invalid, or of a party the partner may not speak for), older than
    the version we hold (left as they are)."""

    received: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    pages: int = 0
    older: int = 0


def our_party(settings: OcpiSettings) -> Party:
    return Party(settings.country_code, settings.party_id)


async def store_tokens(
    db: Database,
    tokens: Sequence[PartnerToken],
    partner: Partner,
    now: datetime,
    *,
    source: str,
) -> list[Saved]:
    """Save tokens (and their id token mirror) in one write, for `partner`; one log event
    per token (`source` says how they came: push, pull)."""
    if not tokens:
        return []

    async def unit(w: WriteTx) -> list[Saved]:
        conn = await w.connection()
        return [await token_repo.save(conn, t, partner.id, now) for t in tokens]

    saved = await db.write(unit)
    for token, outcome in zip(tokens, saved, strict=True):
        log_stored(partner, token, outcome, source=source)
    return saved


def log_stored(partner: Partner, token: PartnerToken, saved: Saved, *, source: str) -> None:
    """The one log event of a stored token (`source`: push, patch or pull)."""
    fields = {
        "ocpi_partner": partner.name,
        "ocpi_party": str(token.party),
        "uid": token.uid,
        "token_type": token.type,
        "source": source,
    }
    if saved.stale:
        log.info(
            "partner_token_kept",
            **fields,
            last_updated=token.last_updated.isoformat(),
            detail="a later version is stored; this older one changes nothing",
        )
        return
    log.info(
        "partner_token_stored",
        **fields,
        whitelist=token.whitelist.value,
        valid=token.valid,
        created=saved.created,
        mirrored=saved.mirrored,
    )


def next_link(header: str | None, current_url: str) -> str | None:
    """The URL of a `Link: <url>; rel="next"` header (resolved against the page's URL), or
    None when there is none."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        url, params = str(match.group(1)).strip(), str(match.group(2))
        rel = _REL.search(params)
        if url and rel is not None and "next" in rel.group(1).lower().split():
            return urljoin(current_url, url)
    return None


def _total(text: str | None) -> int | None:
    """X-Total-Count, when it is a number."""
    try:
        return None if text is None else int(text.strip())
    except ValueError:
        return None


def _page_id(url: str, params: dict[str, str] | None) -> str:
    return url if params is None else f"{url}?offset={params['offset']}"


async def pull_tokens(
    db: Database,
    client: OcpiClient,
    partner: Partner,
    us: Party,
    clock: Clock,
    *,
    limit: int | None = None,
    correlation_id: str | None = None,
    max_pages: int = MAX_PAGES,
) -> PullResult:
    """GET the partner's whole token list (no date filter) and store every valid token of
    a party it may speak for; each page is saved in one write. Follows `Link` rel="next";
    without one, asks for the next offset while X-Total-Count says tokens remain.

    Raises CannotPull, or PartnerError when a page cannot be had (the pages before it stay
    stored)."""
    if partner.status is not PartnerStatus.REGISTERED or not partner.their_token:
        raise CannotPull(f"partner {partner.name} is not registered")
    endpoint = partner.endpoint("tokens", InterfaceRole.SENDER)
    if endpoint is None:
        raise CannotPull(f"partner {partner.name} offers no tokens Sender endpoint")
    credential = Credential(partner.their_token, partner.token_encoding)
    # A 2.1.1 partner's tokens carry no party (it is the one party it registered as), and
    # 2.1.1 has no routing headers; a hub's 2.2.1 GET All is addressed to the hub itself.
    in_211 = partner.version == v211.VERSION and bool(partner.roles)
    routing = None if in_211 else route(us, partner.roles)
    base = endpoint.url
    url = base
    first = {"offset": "0"}
    if limit is not None:
        first["limit"] = str(limit)
    params: dict[str, str] | None = first
    received = created = updated = skipped = pages = older = 0
    asked: set[str] = set()
    log.info("token_pull_started", ocpi_partner=partner.name, url=base)
    while pages < max_pages:
        reply = await client.get(
            url, credential, params=params, routing=routing, correlation_id=correlation_id
        )
        correlation_id = reply.correlation_id
        asked.add(_page_id(url, params))
        pages += 1
        if not isinstance(reply.data, list):
            raise PartnerBadResponse("GET", url, "the tokens page's data is not a list")
        received += len(reply.data)
        tokens: list[PartnerToken] = []
        for i, item in enumerate(reply.data):
            if in_211 and isinstance(item, Mapping):
                item = v211.token_to_221(item, partner.roles[0])
            try:
                token = parse_token(item, f"data[{i}]")
            except InvalidToken as exc:
                skipped += 1
                log.warning("partner_token_skipped", ocpi_partner=partner.name, reason=str(exc))
                continue
            if not may_write(partner.roles, us, token.party):
                skipped += 1
                log.warning(
                    "partner_token_skipped",
                    ocpi_partner=partner.name,
                    ocpi_party=str(token.party),
                    reason="a party the partner may not give tokens for",
                )
                continue
            tokens.append(token)
        for outcome in await store_tokens(db, tokens, partner, clock(), source="pull"):
            created += outcome.created
            updated += not outcome.created and not outcome.stale
            older += outcome.stale
        link = next_link(reply.headers.get("Link"), url)
        total = _total(reply.headers.get("X-Total-Count"))
        if link is not None:
            url, params = link, None
        elif reply.data and total is not None and received < total:
            url, params = base, {"offset": str(received)}
            if limit is not None:
                params["limit"] = str(limit)
        else:
            break
        if _page_id(url, params) in asked:
            log.warning("token_pull_loop", ocpi_partner=partner.name, url=url)
            break
    result = PullResult(received, created, updated, skipped, pages, older)
    log.info(
        "tokens_pulled",
        ocpi_partner=partner.name,
        received=received,
        created=created,
        updated=updated,
        skipped=skipped,
        older=older,
        pages=pages,
    )
    return result


class TokenPuller:
    """Background pulls, one at a time per partner, for as long as the OCPI app runs.
    `start(partner)` is the Registrar's `on_registered` hook."""

    def __init__(
        self,
        db: Database,
        client: OcpiClient,
        us: Party,
        clock: Clock,
        *,
        delay: float = PULL_DELAY,
    ) -> None:
        self.db = db
        self.client = client
        self.us = us
        self.clock = clock
        self.delay = delay
        # The pull of each partner started last (for wait()); the TaskSet owns them all.
        self._tasks: dict[int, asyncio.Task[PullResult | None]] = {}
        self._running = TaskSet("ocpi-token-pull")

    def start(self, partner: Partner) -> None:
        """Pull the partner's tokens soon, unless it offers no tokens Sender endpoint or a
        pull of it is under way."""
        if partner.endpoint("tokens", InterfaceRole.SENDER) is None:
            log.debug("token_pull_not_offered", ocpi_partner=partner.name)
            return
        running = self._tasks.get(partner.id)
        if running is not None and not running.done():
            return
        task = self._running.spawn(
            self._pull(partner.id, partner.name), name=f"ocpi-token-pull-{partner.id}"
        )
        self._tasks[partner.id] = task

    async def wait(self, partner_id: int) -> PullResult | None:
        """The outcome of the pull of this partner started last (None: none, or it failed)."""
        task = self._tasks.get(partner_id)
        return None if task is None else await asyncio.shield(task)

    async def _pull(self, partner_id: int, name: str) -> PullResult | None:
        """The task boundary: a failed pull is logged, never raised."""
        try:
            await asyncio.sleep(self.delay)
            async with self.db.read() as conn:
                partner = await partners_repo.get(conn, partner_id)
            if partner is None:
                return None
            return await pull_tokens(self.db, self.client, partner, self.us, self.clock)
        except OcpiError as exc:
            log.warning("token_pull_failed", ocpi_partner=name, error=str(exc))
        except Exception:
            log.exception("token_pull_crashed", ocpi_partner=name)
        return None

    async def close(self) -> None:
        await self._running.close()
        self._tasks.clear()


TOKEN_PULLER = web.AppKey("ocpi_token_puller", TokenPuller)


def ensure_puller(app: web.Application) -> None:
    """Run a TokenPuller with the app, started by every completed registration (set up once,
    by the tokens module)."""
    if any(ctx is _pulling for ctx in app.cleanup_ctx):
        return
    app.cleanup_ctx.append(_pulling)


async def _pulling(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    puller = TokenPuller(app[PARTNERS].db, app[CLIENT], our_party(settings), settings.clock)
    app[TOKEN_PULLER] = puller
    registrar = app[REGISTRAR]
    registrar.on_registered.append(puller.start)
    yield
    with contextlib.suppress(ValueError):
        registrar.on_registered.remove(puller.start)
    await puller.close()
