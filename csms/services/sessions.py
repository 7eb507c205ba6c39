"""Charging sessions and CDRs for OCPI partners: the Session objects and CDRs a partner may
read (those of tokens its parties own), and their publication through the push outbox.

Publication is reconciliation, not events: each pass looks at transactions changed since a
cursor (with an overlap) and at the sessions pushed but not final yet, compares them with
what was pushed (ocpi_session_pushes) and enqueues what is missing, in the same write that
records it. A crash loses nothing: the next pass finds the same gaps. A session that cannot
be rendered (its data is broken) is recorded with its error and retried with back-off
(ocpi_session_failures) while the others go on. Pricing rules live in csms.core.cost, the
Session mapping in csms.core.ocpi_sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.core import ocpi_pushes
from csms.core.clock import Clock
from csms.core.cost import cost_to_ocpi
from csms.core.errors import one_line
from csms.core.locations import evse_uid
from csms.core.ocpi_sessions import (
    PushAction,
    PushState,
    SessionFacts,
    closed_periods,
    final_ready,
    next_push,
    pushed_session,
    session_object,
    session_patch,
)
from csms.core.outbox import Push
from csms.core.parties import Audience, Party, audience, owner_of
from csms.core.partners import InterfaceRole, Partner
from csms.core.retries import Backoff
from csms.core.tariffs import ocpi_datetime
from csms.services.billing import BillingService
from csms.storage import cdrs as cdr_repo
from csms.storage import charge_points as cp_repo
from csms.storage import locations as location_repo
from csms.storage import ocpi_sessions as repo
from csms.storage import outbox as outbox_repo
from csms.storage import partners as partner_repo
from csms.storage.cdrs import StoredCdr
from csms.storage.database import Database, WriteTx
from csms.storage.ocpi_sessions import SessionFailure, SessionRow

log = structlog.get_logger("csms.sessions")

SESSIONS_CURSOR = "sessions"
CDRS_CURSOR = "cdrs"
# Transactions looked at per query, and pushes recorded per write.
BATCH = 200
CHUNK = 50
# How far back each pass looks again before its cursor: a change stamped before the last
# pass but committed after it (group commit, another node's clock) is still found.
DEFAULT_OVERLAP = timedelta(seconds=60)
# A session that cannot be rendered is tried again after 10 s, 20 s ... at most 10 minutes
# apart, for as long as it fails (staff mend its data; it is never given up).
RENDER_RETRY = Backoff(first=10.0, cap=600.0)
MAX_ERROR = 300


@dataclass(frozen=True, slots=True)
class _Target:
    """A partner we push to: its Receiver endpoint and whose sessions it may see."""

    partner: Partner
    url: str
    audience: Audience


@dataclass(frozen=True, slots=True)
class _Planned:
    row: SessionRow
    target: _Target
    state: PushState | None
    action: PushAction


def live_cdr(cdrs: Sequence[StoredCdr]) -> StoredCdr | None:
    """The CDR that bills a transaction now: its newest that is no credit and not credited."""
    credited = {c.credit_reference_id for c in cdrs if c.credit}
    live = [c for c in cdrs if not c.credit and c.id not in credited]
    return live[-1] if live else None


def cdr_json(cdr: StoredCdr) -> dict[str, Any]:
    """A stored CDR as partners get it: last_updated is its creation time (a CDR never
    changes), the one the date filters compare."""
    return {**cdr.data, "last_updated": ocpi_datetime(cdr.created_at)}


class SessionService:
    """Sessions and CDRs as OCPI partners see them, and their publication. One per OCPI app."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        billing: BillingService,
        *,
        update_interval: float = 60.0,
        overlap: timedelta = DEFAULT_OVERLAP,
        retry: Backoff = RENDER_RETRY,
    ) -> None:
        self._db = db
        self._clock = clock
        self._billing = billing
        self.us = Party(billing.identity.country_code, billing.identity.party_id)
        self.update_interval = timedelta(seconds=update_interval)
        self._overlap = overlap
        self._retry = retry

    # --- reading ----------------------------------------------------------------------------

    async def page(
        self,
        partner: Partner,
        *,
        date_from: datetime | None,
        date_to: datetime | None,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """The Session objects `partner` may read, oldest transaction first, and how many
        match in all."""
        now = self._clock()
        async with self._db.read() as conn:
            rows, total = await repo.session_page(
                conn,
                audience(partner.roles, self.us),
                now=now,
                date_from=date_from,
                date_to=date_to,
                offset=offset,
                limit=limit,
            )
        objects = [await self._object_or_none(row, now) for row in rows]
        return [o for o in objects if o is not None], total

    async def _object_or_none(self, row: SessionRow, now: datetime) -> dict[str, Any] | None:
        """The Session of `row`, or None (logged) when its data cannot be rendered: one
        broken session must not fail every page that holds it."""
        try:
            return await self._object(row, now)
        except Exception as exc:  # noqa: BLE001 - logged; the publisher records it
            error = one_line(exc, MAX_ERROR)
            log.warning("session_not_rendered", transaction_id=row.tx.id, error=error)
            return None

    async def cdr_page(
        self,
        partner: Partner,
        *,
        date_from: datetime | None,
        date_to: datetime | None,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """The CDRs `partner` may read, in the order they were made, and how many match."""
        async with self._db.read() as conn:
            cdrs, total = await repo.cdr_page(
                conn,
                audience(partner.roles, self.us),
                date_from=date_from,
                date_to=date_to,
                offset=offset,
                limit=limit,
            )
        return [cdr_json(c) for c in cdrs], total

    async def session(self, tx_id: int) -> dict[str, Any] | None:
        """The Session object of one transaction, whoever owns it (None: no such
        transaction, or its charger is not at a location)."""
        async with self._db.read() as conn:
            row = await repo.session_of(conn, tx_id)
        return None if row is None else await self._object(row, self._clock())

    async def _object(self, row: SessionRow, now: datetime) -> dict[str, Any] | None:
        """The Session of `row` as of `now`: an ended session billed by a CDR has the CDR's
        numbers (the same, by construction); otherwise the cost engine's."""
        tx = row.tx
        async with self._db.read() as conn:
            linked = await location_repo.of_charger(conn, tx.charge_point_id)
            cdrs = [] if tx.active else await cdr_repo.of_transaction(conn, tx.id)
            charger = await cp_repo.get(conn, tx.charge_point_id)
        if linked is None:
            return None
        location, _ = linked
        billed = live_cdr(cdrs)
        cost: dict[str, Any]
        if billed is not None:
            cost = billed.data
        else:
            priced = await self._billing.price(tx.id, now)
            cost = {"currency": priced.cost.currency, **cost_to_ocpi(priced.cost)}
        owner = owner_of(row.origin)
        foreign = owner is not None and owner != self.us
        return session_object(
            SessionFacts(
                tx=tx,
                us=self.us,
                owner=owner if owner is not None and foreign else self.us,
                token_type=row.token_type,
                location_id=location.id,
                evse_uid=evse_uid(tx.charge_point_id, tx.evse_id),
                cost=cost,
                last_updated=now if tx.active else row.updated_at,
                whitelisted=foreign,
                meter_id=charger.meter_serial if charger is not None else None,
            )
        )

    # --- publication ------------------------------------------------------------------------

    async def publish(self) -> int:
        """One pass: enqueue what partners lack of sessions, then of CDRs. Returns how many
        pushes were enqueued."""
        now = self._clock()
        return await self._publish_sessions(now) + await self._publish_cdrs(now)

    async def _targets(self, conn: Any, module: str) -> list[_Target]:
        found = await partner_repo.registered_with_endpoint(conn, module, InterfaceRole.RECEIVER)
        return [_Target(p, url, audience(p.roles, self.us)) for p, url in found]

    async def _publish_sessions(self, now: datetime) -> int:
        us = str(self.us)
        async with self._db.read() as conn:
            targets = await self._targets(conn, "sessions")
            stored = await outbox_repo.cursor(conn, SESSIONS_CURSOR)
        first = stored is None
        since = (now if stored is None else datetime.fromisoformat(stored)) - self._overlap
        # The next cursor: this pass's start, or earlier while an ended session waits for
        # billing (it must be looked at again).
        next_cursor = now
        pushed = 0
        done: set[int] = set()
        after = (since, 0)
        while True:
            async with self._db.read() as conn:
                rows = await repo.changed_sessions(conn, us, after=after, limit=BATCH)
            count, waiting = await self._reconcile(rows, targets, now)
            pushed += count
            done.update(r.tx.id for r in rows)
            if waiting is not None:
                next_cursor = min(next_cursor, waiting)
            if len(rows) < BATCH:
                break
            after = (rows[-1].updated_at, rows[-1].tx.id)
        if first:
            # Sessions running since before the first pass: their start was never pushed.
            after_id = 0
            while True:
                async with self._db.read() as conn:
                    rows = await repo.active_sessions(conn, us, after_id=after_id, limit=BATCH)
                fresh = [r for r in rows if r.tx.id not in done]
                pushed += (await self._reconcile(fresh, targets, now))[0]
                done.update(r.tx.id for r in fresh)
                if len(rows) < BATCH:
                    break
                after_id = rows[-1].tx.id
        pushed += await self._follow_open(targets, now, done)
        pushed += await self._retry_failed(targets, now, done)
        if stored is None or datetime.fromisoformat(stored) != next_cursor:

            async def save(w: WriteTx) -> None:
                conn = await w.connection()
                await outbox_repo.set_cursor(conn, SESSIONS_CURSOR, next_cursor.isoformat())

            await self._db.write(save)
        return pushed

    async def _follow_open(self, targets: list[_Target], now: datetime, done: set[int]) -> int:
        """Sessions pushed but not final: their regular PATCH, their final PUT, or closing
        them for a partner that may no longer see them (or no longer takes sessions)."""
        async with self._db.read() as conn:
            pairs = [p for p in await repo.open_pushes(conn) if p[0] not in done]
            rows = await repo.sessions_by_id(conn, str(self.us), [tx for tx, _ in pairs])
        pushed, _ = await self._reconcile(rows, targets, now)
        known = {r.tx.id: r for r in rows}
        receivers = {t.partner.id for t in targets}
        orphans = [(tx, p) for tx, p in pairs if tx not in known or p not in receivers]
        if orphans:

            async def close(w: WriteTx) -> None:
                conn = await w.connection()
                for tx_id, partner_id in orphans:
                    state = await repo.push_state(conn, tx_id, partner_id)
                    if state is not None and not state.completed:
                        await repo.save_push(
                            conn, tx_id, partner_id, replace(state, completed=True)
                        )

            await self._db.write(close)
        return pushed

    async def _retry_failed(self, targets: list[_Target], now: datetime, done: set[int]) -> int:
        """Sessions that could not be rendered and are due for another attempt (those this
        pass looked at already were tried with it); one no partner may see any more is
        forgotten."""
        async with self._db.read() as conn:
            due = [t for t in await repo.due_failures(conn, now, BATCH) if t not in done]
            rows = await repo.sessions_by_id(conn, str(self.us), due)
        gone = set(due) - {r.tx.id for r in rows}
        if gone:

            async def forget(w: WriteTx) -> None:
                await repo.clear_failures(await w.connection(), gone)

            await self._db.write(forget)
        done.update(due)
        return (await self._reconcile(rows, targets, now))[0]

    async def _reconcile(
        self, rows: Sequence[SessionRow], targets: Sequence[_Target], now: datetime
    ) -> tuple[int, datetime | None]:
        """Push what `targets` lack of these sessions. Returns how many pushes were
        enqueued and the earliest change of an ended session still waiting for billing.
        A session whose rendering failed before is left alone until its retry is due."""
        if not rows or not targets:
            return 0, None
        async with self._db.read() as conn:
            states = await repo.push_states(conn, [r.tx.id for r in rows])
            failures = await repo.failures_of(conn, [r.tx.id for r in rows])
        planned: list[_Planned] = []
        waiting: datetime | None = None
        grace = self.update_interval
        retried: set[int] = set()
        for row in rows:
            ready = final_ready(row.tx, row.updated_at, now, grace)
            if not row.tx.active and not ready:
                waiting = row.updated_at if waiting is None else min(waiting, row.updated_at)
            failure = failures.get(row.tx.id)
            if failure is not None:
                if failure.next_attempt_at > now:
                    continue
                retried.add(row.tx.id)
            owner = owner_of(row.origin)
            for target in targets:
                state = states.get((row.tx.id, target.partner.id))
                action = next_push(
                    state,
                    entitled=target.audience.sees(owner),
                    active=row.tx.active,
                    ready=ready,
                    changed_at=row.updated_at,
                    now=now,
                    interval=self.update_interval,
                )
                if action is not PushAction.NONE:
                    planned.append(_Planned(row, target, state, action))
        pushed = 0
        failed: set[int] = set()
        for start in range(0, len(planned), CHUNK):
            count, broken = await self._apply(planned[start : start + CHUNK], now, failures)
            pushed += count
            failed |= broken
        recovered = retried - failed
        if recovered:
            # Rendered now, or nothing is left to push of it: no longer failing.

            async def clear(w: WriteTx) -> None:
                await repo.clear_failures(await w.connection(), recovered)

            await self._db.write(clear)
        return pushed, waiting

    async def _apply(
        self, planned: Sequence[_Planned], now: datetime, failures: dict[int, SessionFailure]
    ) -> tuple[int, set[int]]:
        """Build the objects (once per session), then enqueue and record in one write;
        a pair whose push state changed meanwhile (another publisher) is left alone. A
        session that cannot be built is recorded as failing in that write (its push state
        stays, so it is planned again when its retry is due). Returns how many pushes were
        enqueued and the sessions that failed."""
        objects: dict[int, dict[str, Any] | None] = {}
        errors: dict[int, Exception] = {}
        for plan in planned:
            tx_id = plan.row.tx.id
            if plan.action is PushAction.CLOSE or tx_id in objects or tx_id in errors:
                continue
            try:
                objects[tx_id] = await self._object(plan.row, now)
            except Exception as exc:  # noqa: BLE001 - recorded and logged below
                errors[tx_id] = exc

        async def unit(w: WriteTx) -> tuple[int, list[SessionFailure]]:
            conn = await w.connection()
            # One publisher's write at a time (two nodes during a hand-over): the push
            # states compared below are then the other's, once it committed.
            await outbox_repo.hold_cursor(conn, SESSIONS_CURSOR)
            count = 0
            recorded = [
                await repo.record_failure(conn, tx_id, one_line(exc, MAX_ERROR), now, self._retry)
                for tx_id, exc in errors.items()
            ]
            for plan in planned:
                tx_id, partner_id = plan.row.tx.id, plan.target.partner.id
                if tx_id in errors:
                    continue
                if await repo.push_state(conn, tx_id, partner_id) != plan.state:
                    continue
                session = objects.get(tx_id)
                if plan.action is PushAction.CLOSE or session is None:
                    if plan.state is not None:
                        await repo.save_push(
                            conn, tx_id, partner_id, replace(plan.state, completed=True)
                        )
                    continue
                push, state = self._push_for(plan, session, now)
                await outbox_repo.enqueue(conn, partner_id, push, now)
                await repo.save_push(conn, tx_id, partner_id, state)
                count += 1
            return count, recorded

        count, recorded = await self._db.write(unit)
        for failure in recorded:
            tx_id = failure.transaction_id
            log.warning(
                "session_push_failed",
                transaction_id=tx_id,
                attempts=failure.attempts,
                error=failure.last_error,
                retry_at=failure.next_attempt_at.isoformat(),
                exc_info=errors[tx_id] if tx_id not in failures else None,
            )
        for plan in planned:
            if plan.action is not PushAction.CLOSE and plan.row.tx.id not in errors:
                log.debug(
                    "session_push_enqueued",
                    transaction_id=plan.row.tx.id,
                    ocpi_partner=plan.target.partner.name,
                    action=plan.action.value,
                )
        return count, set(errors)

    def _push_for(
        self, plan: _Planned, session: dict[str, Any], now: datetime
    ) -> tuple[Push, PushState]:
        url = plan.target.url
        # A partner whose profile takes no PATCH gets each update as a PUT of the whole
        # running session (its closed periods all, so nothing is appended twice).
        whole = plan.action is PushAction.PATCH and plan.target.partner.profile.session_put
        if plan.action is PushAction.PUT or whole:
            body = pushed_session(session, active=True)
            return (
                ocpi_pushes.session_put(url, self.us, body),
                PushState(len(body["charging_periods"]), False, now),
            )
        if plan.action is PushAction.PATCH:
            assert plan.state is not None
            patch, sent = session_patch(session, plan.state.periods_sent)
            return (
                ocpi_pushes.session_patch(url, self.us, session, patch),
                PushState(sent, False, now),
            )
        periods = closed_periods(session, active=False)
        # The version pushed is the row's (its change may carry a later stamp than this
        # pass's start): a later pass must not take that change for a new one.
        pushed_at = max(now, plan.row.updated_at)
        return ocpi_pushes.session_put(url, self.us, session), PushState(
            len(periods), True, pushed_at
        )

    async def _publish_cdrs(self, now: datetime) -> int:
        """Every CDR made since the cursor (credit CDRs too), POSTed to the partners that
        may see it, each after the final session it bills."""
        us = str(self.us)
        async with self._db.read() as conn:
            stored = await outbox_repo.cursor(conn, CDRS_CURSOR)
            start = await repo.last_cdr_seq(conn) if stored is None else int(stored)
        if stored is None:
            # A first start does not push the CDRs of the past.

            async def begin(w: WriteTx) -> None:
                await outbox_repo.set_cursor(await w.connection(), CDRS_CURSOR, str(start))

            await self._db.write(begin)
        pushed = 0
        while True:
            async with self._db.read() as conn:
                found, last = await repo.cdrs_after(conn, us, start, BATCH)
                targets = await self._targets(conn, "cdrs") if found else []
                sessions = (
                    {t.partner.id: t for t in await self._targets(conn, "sessions")}
                    if found
                    else {}
                )
                states = await repo.push_states(conn, [c.transaction_id for c, _ in found])
            if last == start:
                return pushed
            posted = await self._post_cdrs(found, targets, sessions, states, start, last, now)
            if posted is None:
                return pushed  # another publisher moved the cursor: its pass posted them
            pushed += posted
            start = last

    async def _post_cdrs(
        self,
        found: Sequence[tuple[StoredCdr, str]],
        targets: Sequence[_Target],
        sessions: dict[int, _Target],
        states: dict[tuple[int, int], PushState],
        start: int,
        last: int,
        now: datetime,
    ) -> int | None:
        """POST the CDRs after `start` up to `last` (None: the cursor is no longer at
        `start`, so another publisher did)."""
        planned: list[tuple[StoredCdr, _Target]] = []
        finals: dict[int, dict[str, Any] | None] = {}
        versions: dict[int, datetime] = {}
        for cdr, origin in found:
            owner = owner_of(origin)
            for target in targets:
                if not target.audience.sees(owner):
                    continue
                planned.append((cdr, target))
                state = states.get((cdr.transaction_id, target.partner.id))
                lacking = state is None or not state.completed
                if target.partner.id in sessions and lacking and cdr.transaction_id not in finals:
                    async with self._db.read() as conn:
                        row = await repo.session_of(conn, cdr.transaction_id)
                    # A final session that cannot be rendered does not hold its CDR back:
                    # the session stays open for that partner and is retried as failing.
                    finals[cdr.transaction_id] = (
                        None if row is None else await self._object_or_none(row, now)
                    )
                    if row is not None:
                        versions[cdr.transaction_id] = max(now, row.updated_at)

        async def unit(w: WriteTx) -> int | None:
            conn = await w.connection()
            if await outbox_repo.held_cursor(conn, CDRS_CURSOR) != str(start):
                return None
            count = 0
            for cdr, target in planned:
                partner_id = target.partner.id
                session = finals.get(cdr.transaction_id)
                receiver = sessions.get(partner_id)
                if receiver is not None and session is not None:
                    state = await repo.push_state(conn, cdr.transaction_id, partner_id)
                    if state is None or not state.completed:
                        # The final session goes first, whatever the session pass missed.
                        periods = closed_periods(session, active=False)
                        put = ocpi_pushes.session_put(receiver.url, self.us, session)
                        await outbox_repo.enqueue(conn, partner_id, put, now)
                        await repo.save_push(
                            conn,
                            cdr.transaction_id,
                            partner_id,
                            PushState(len(periods), True, versions[cdr.transaction_id]),
                        )
                        count += 1
                post = ocpi_pushes.cdr_post(target.url, cdr_json(cdr))
                await outbox_repo.enqueue(conn, partner_id, post, now)
                count += 1
            await outbox_repo.set_cursor(conn, CDRS_CURSOR, str(last))
            return count

        count = await self._db.write(unit)
        if count is None:
            return None
        for cdr, target in planned:
            log.info(
                "cdr_push_enqueued",
                cdr_id=cdr.id,
                transaction_id=cdr.transaction_id,
                ocpi_partner=target.partner.name,
            )
        return count
