"""The push worker: sends the durable outbox (csms.storage.outbox) to partners, a few
requests at a time, one at a time per object, retrying failures with backoff forever.

What to push is decided by the producers that enqueue; nothing here builds OCPI objects.
How an entry is written for its partner at sending time (URL, version, routing headers) is
ocpi_cpo.outgoing's.

Delivery is at least once: a push is marked delivered after the partner's 1xxx answer, in a
write of its own, so a crash between the two sends it again on the next start. Pushes are
PUT and PATCH of whole objects or fields, which the partner applies idempotently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from csms.core.clock import Clock
from csms.core.outbox import OutboxEntry, retry_delay
from csms.core.parties import Party
from csms.core.partners import Partner
from csms.storage import outbox as repo
from csms.storage import partners as partners_repo
from csms.storage.database import Database, WriteTx
from csms.workers import TaskSet, Worker
from ocpi_cpo.client import Credential, OcpiClient, route
from ocpi_cpo.errors import (
    PartnerBadResponse,
    PartnerError,
    PartnerHttpError,
    PartnerRefused,
    PartnerUnreachable,
    Unsendable,
)
from ocpi_cpo.outgoing import outgoing

log = structlog.get_logger("ocpi_cpo.push")

# Delivered pushes are kept this long (for `csms ocpi outbox --delivered`), then pruned.
KEEP_DELIVERED = timedelta(days=7)
PRUNE_EVERY = 3600.0  # seconds
# Longest error text kept with an entry.
MAX_ERROR = 500
# Seconds a claimed push stays another node's beyond the request's timeout (PostgreSQL):
# the node that claimed it has answered or given up by then, or died.
CLAIM_MARGIN = 5.0
# Seconds between looks at the partners' backlogs for overdue pushes, at most.
WATCH_EVERY = 30.0


class PushSettings(Protocol):
    """What the pusher reads of the bridge's settings (ocpi_cpo.context.OcpiSettings, which
    also names the Pusher: typing against this keeps the two modules out of a circle)."""

    @property
    def country_code(self) -> str: ...
    @property
    def party_id(self) -> str: ...
    @property
    def push_interval(self) -> float: ...
    @property
    def push_alert_after(self) -> float: ...
    @property
    def request_timeout(self) -> float: ...
    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True, slots=True)
class _Key:
    partner_id: int
    object_key: str


class Pusher:
    """Runs (`running()`) for as long as the OCPI app: `concurrency` requests in flight at most,
    `per_partner` of them to one partner (a slow partner cannot hold every slot), and
    never two of one object. `wake()` makes it look at the outbox at once (producers in the
    same process call it after committing); otherwise it looks when the next retry is due
    and at least every `settings.push_interval` seconds (pushes enqueued by other
    processes)."""

    def __init__(
        self,
        db: Database,
        client: OcpiClient,
        settings: PushSettings,
        *,
        concurrency: int = 8,
        per_partner: int = 4,
        locations: Callable[[Any, str], Awaitable[Mapping[str, Any] | None]] | None = None,
    ) -> None:
        self.db = db
        # A Location (2.2.1, as published) by id, read in a connection of ours: what a
        # session or CDR embeds when a partner takes them in 2.1.1 (None: none known).
        self._locations = locations
        self.client = client
        self.settings = settings
        # Our party: the OCPI-from-* of every push.
        self.us = Party(settings.country_code, settings.party_id)
        self.clock = settings.clock
        self.interval = settings.push_interval
        self.concurrency = concurrency
        self.per_partner = max(1, min(per_partner, concurrency))
        # The loop: woken by producers and by the end of every request.
        self.worker = Worker("ocpi-push", self._round, period=self.interval)
        self._requests = TaskSet("ocpi-push")
        self._sending: dict[_Key, tuple[int, asyncio.Task[None]]] = {}
        # Entries whose outcome could not be written (database trouble): not taken again
        # before this loop time, so that they are not resent in a tight loop.
        self._held: dict[int, float] = {}
        self._pruned_at: float | None = None
        # Partners whose oldest waiting push is older than settings.push_alert_after (id ->
        # name): `ocpi_push_overdue` was logged for them, `ocpi_push_recovered` is next.
        self._overdue: dict[int, str] = {}
        self._watched_at: float | None = None
        self._watch_every = min(WATCH_EVERY, max(self.interval, settings.push_alert_after / 4))

    def wake(self) -> None:
        self.worker.wake()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The worker runs inside; on leaving, requests under way are cancelled (their
        pushes stay pending)."""
        try:
            async with self.worker.running():
                yield
        finally:
            await self._requests.close()
            self._sending.clear()

    async def _round(self) -> float:
        """Start what is due and there is room for; return how long to wait at most."""
        loop = asyncio.get_running_loop()
        self._reap(loop.time())
        await self._prune(loop.time())
        await self._watch(loop.time())
        if len(self._sending) >= self.concurrency:
            return self.interval  # full: the end of a request wakes the loop
        async with self.db.read() as conn:
            next_at = await repo.next_due_at(conn, skip_ids=self._skipped())
        if next_at is None:
            return self._capped(self.interval)  # nothing waits (the clock is not read)
        now = self.clock()
        if next_at <= now:
            await self._start_due(now)
            if len(self._sending) >= self.concurrency:
                return self.interval
            async with self.db.read() as conn:
                next_at = await repo.next_due_at(conn, skip_ids=self._skipped())
        # A push due now but not started waits for a request of its object or partner to
        # end, which wakes the loop: no reason to look again before the interval.
        if next_at is None or next_at <= now:
            return self._capped(self.interval)
        return self._capped(min(self.interval, (next_at - now).total_seconds()))

    async def _start_due(self, now: datetime) -> None:
        """Start sending due pushes, within the limits (in total, per partner, per object)."""
        room = self.concurrency - len(self._sending)
        async with self.db.read() as conn:
            entries = await repo.due(
                conn,
                now,
                limit=max(100, room),
                skip_ids=self._skipped(),
                skip_partners=self._busy_partners(),
            )
            partners = {
                pid: await partners_repo.get(conn, pid) for pid in {e.partner_id for e in entries}
            }
        per_partner = self._per_partner()
        chosen: list[OutboxEntry] = []
        keys: set[_Key] = set()
        for entry in entries:
            if room <= 0:
                break
            key = _Key(entry.partner_id, entry.object_key)
            if key in self._sending or key in keys:
                continue
            if per_partner.get(entry.partner_id, 0) >= self.per_partner:
                continue
            chosen.append(entry)
            keys.add(key)
            per_partner[entry.partner_id] = per_partner.get(entry.partner_id, 0) + 1
            room -= 1
        for entry in await self._claim(chosen, now):
            key = _Key(entry.partner_id, entry.object_key)
            task = self._requests.spawn(
                self._attempt(entry, partners.get(entry.partner_id)),
                name=f"ocpi-push-{entry.id}",
            )
            # A request that ends frees a slot (and may unblock its object): look again.
            task.add_done_callback(lambda _task: self.wake())
            self._sending[key] = (entry.id, task)

    async def _claim(self, entries: list[OutboxEntry], now: datetime) -> list[OutboxEntry]:
        """Those of `entries` this process may send. On PostgreSQL several nodes may look
        at the outbox during a hand-over of the push worker: each push is claimed
        (`FOR UPDATE SKIP LOCKED`, then its next attempt moved past the request's
        timeout), so only one node sends it; one claimed elsewhere is left out. SQLite has
        one process sending."""
        if self.db.is_sqlite or not entries:
            return entries
        until = now + timedelta(seconds=self.settings.request_timeout + CLAIM_MARGIN)

        async def unit(w: WriteTx) -> set[int]:
            return await repo.claim(await w.connection(), [e.id for e in entries], now, until)

        claimed = await self.db.write(unit)
        return [e for e in entries if e.id in claimed]

    def _capped(self, delay: float) -> float:
        """`delay`, shortened to the end of the earliest hold."""
        if self._held:
            until = min(self._held.values()) - asyncio.get_running_loop().time()
            delay = min(delay, max(0.0, until))
        return delay

    def _reap(self, now: float) -> None:
        for key, (_, task) in list(self._sending.items()):
            if task.done():
                del self._sending[key]
        for entry_id, until in list(self._held.items()):
            if until <= now:
                del self._held[entry_id]

    def _skipped(self) -> set[int]:
        return {entry_id for entry_id, _ in self._sending.values()} | set(self._held)

    def _per_partner(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for key in self._sending:
            counts[key.partner_id] = counts.get(key.partner_id, 0) + 1
        return counts

    def _busy_partners(self) -> Collection[int]:
        return {pid for pid, n in self._per_partner().items() if n >= self.per_partner}

    async def _prune(self, loop_now: float) -> None:
        if self._pruned_at is not None and loop_now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = loop_now
        before = self.clock() - KEEP_DELIVERED

        async def unit(w: WriteTx) -> int:
            return await repo.prune(await w.connection(), before)

        pruned = await self.db.write(unit)
        if pruned:
            log.info("pushes_pruned", count=pruned, delivered_before=before.isoformat())

    async def _watch(self, loop_now: float) -> None:
        """Log `ocpi_push_overdue` for a partner whose oldest waiting push has waited more
        than push_alert_after (once, until it recovers), and `ocpi_push_recovered` when
        that is no longer so (delivered, dropped, or the partner removed)."""
        if self._watched_at is not None and loop_now - self._watched_at < self._watch_every:
            return
        self._watched_at = loop_now
        async with self.db.read() as conn:
            found = await partners_repo.backlogs(conn)
        if not found and not self._overdue:
            return  # nothing waits (the clock is not read, as in _round)
        now = self.clock()
        limit = self.settings.push_alert_after
        late: dict[int, str] = {}
        for partner_id, name, health in found:
            age = health.oldest_age(now)
            if age is None or age <= limit:
                continue
            late[partner_id] = name
            if partner_id not in self._overdue:
                log.warning(
                    "ocpi_push_overdue",
                    partner=name,
                    age_s=round(age, 1),
                    backlog=health.backlog,
                    alert_after_s=limit,
                )
        for partner_id, name in self._overdue.items():
            if partner_id not in late:
                backlog = next((h.backlog for i, _, h in found if i == partner_id), 0)
                log.info("ocpi_push_recovered", partner=name, backlog=backlog)
        self._overdue = late

    # --- one push ---------------------------------------------------------------------------

    async def _attempt(self, entry: OutboxEntry, partner: Partner | None) -> None:
        """Send one push and record the outcome. The task boundary: nothing escapes."""
        try:
            error = await self._send(entry, partner)
        except Exception as exc:  # the task boundary: one bad entry stops nothing
            log.exception("push_crashed", entry_id=entry.id, partner=entry.partner_name)
            error = f"internal error: {type(exc).__name__}"
        try:
            await self._record(entry, error)
        except Exception:
            log.exception("push_not_recorded", entry_id=entry.id, partner=entry.partner_name)
            hold = retry_delay(entry.attempts + 1).total_seconds()
            self._held[entry.id] = asyncio.get_running_loop().time() + hold

    async def _send(self, entry: OutboxEntry, partner: Partner | None) -> str | None:
        """None when the partner accepted the push (HTTP 2xx, status 1xxx), else why not in
        one line."""
        if partner is None or not partner.their_token:
            return "no credentials token for this partner"
        try:
            out = await outgoing(entry, partner, self.us, self._location)
        except Unsendable as exc:
            return " ".join(str(exc).split())[:MAX_ERROR]
        routing = route(self.us, partner.roles, entry.to) if out.routing else None
        credential = Credential(partner.their_token, partner.token_encoding)
        try:
            await self.client.request(
                out.method, out.url, credential, json=out.body, routing=routing
            )
        except PartnerError as exc:
            return describe(exc)
        return None

    async def _location(self, location_id: str) -> Mapping[str, Any] | None:
        if self._locations is None:
            return None
        async with self.db.read() as conn:
            return await self._locations(conn, location_id)

    async def _record(self, entry: OutboxEntry, error: str | None) -> None:
        now = self.clock()
        fields = {
            "entry_id": entry.id,
            "partner": entry.partner_name,
            "module": entry.module,
            "method": entry.method,
            "url": entry.url,
        }
        if error is None:

            async def done(w: WriteTx) -> None:
                conn = await w.connection()
                await repo.delivered(conn, entry.id, now)
                await partners_repo.record_push(conn, entry.partner_id, now, None)

            await self.db.write(done)
            log.debug("push_delivered", **fields, attempts=entry.attempts + 1)
            return
        attempts = entry.attempts + 1

        async def failed(w: WriteTx) -> datetime:
            conn = await w.connection()
            await partners_repo.record_push(conn, entry.partner_id, now, error)
            return await repo.failed(conn, entry.id, attempts, error, now)

        retry_at = await self.db.write(failed)
        log.warning(
            "push_failed",
            **fields,
            attempts=attempts,
            error=error,
            retry_at=retry_at.isoformat(),
        )


def describe(exc: PartnerError) -> str:
    """A failed push in one line: `HTTP 503`, `status 2001: ...`, `unreachable: ...`."""
    if isinstance(exc, PartnerHttpError):
        text = f"HTTP {exc.http_status}"
        if exc.status_code is not None:
            text += f", status {exc.status_code}"
            if exc.status_message:
                text += f": {exc.status_message}"
    elif isinstance(exc, PartnerRefused):
        text = f"status {exc.status_code}"
        if exc.status_message:
            text += f": {exc.status_message}"
    elif isinstance(exc, PartnerUnreachable):
        text = f"unreachable: {exc.detail}"
    elif isinstance(exc, PartnerBadResponse):
        text = f"bad answer: {exc.detail}"
    else:
        text = exc.detail
    return " ".join(text.split())[:MAX_ERROR]
