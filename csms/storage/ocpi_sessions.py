"""Queries behind the OCPI sessions and CDRs modules: transactions and CDRs by owner party
(the token's origin) at published locations, paged in the database, how far each session
was pushed to each partner (ocpi_session_pushes) and which could not be rendered
(ocpi_session_failures).

Takes an AsyncConnection; returns csms.core objects and small records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, delete, false, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from csms.core.ocpi_sessions import PushState
from csms.core.parties import Audience
from csms.core.retries import Backoff
from csms.core.transactions import Transaction, TransactionState
from csms.storage.cdrs import StoredCdr
from csms.storage.cdrs import _to_cdr as to_cdr
from csms.storage.models import (
    CdrRow,
    ChargerLocationRow,
    IdTokenRow,
    LocationRow,
    SessionFailureRow,
    SessionPushRow,
    TransactionRow,
)
from csms.storage.transactions import _to_transaction as to_transaction

_tx = cast(Table, TransactionRow.__table__)
_tok = cast(Table, IdTokenRow.__table__)
_loc = cast(Table, LocationRow.__table__)
_link = cast(Table, ChargerLocationRow.__table__)
_cdr = cast(Table, CdrRow.__table__)
_push = cast(Table, SessionPushRow.__table__)
_fail = cast(Table, SessionFailureRow.__table__)

# An origin naming a party (`NL*EMS`): two characters, a star, three characters. Origins
# are validated when stored (csms.core.parties.check_origin).
_PARTY_ORIGIN = "__*___"


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A transaction with what decides who owns it: its token's origin and type (None when
    the tag is not in our token table), and when the transaction last changed."""

    tx: Transaction
    origin: str | None
    token_type: str | None
    updated_at: datetime


def _published() -> Select[Any]:
    """Chargers linked to a location that is published."""
    return (
        select(_link.c.charge_point_id)
        .join(_loc, _loc.c.id == _link.c.location_id)
        .where(_loc.c.publish.is_(True))
    )


def _owned_by(audience: Audience) -> ColumnElement[bool]:
    """Tokens whose owner `audience` may see (never ours: `local` is no party)."""
    if audience.hub:
        return and_(_tok.c.origin.like(_PARTY_ORIGIN), _tok.c.origin != str(audience.us))
    if not audience.parties:
        return false()
    return _tok.c.origin.in_(sorted(str(p) for p in audience.parties))


def _foreign(us: str) -> ColumnElement[bool]:
    return and_(_tok.c.origin.like(_PARTY_ORIGIN), _tok.c.origin != us)


_SESSIONS = select(
    _tx, _tok.c.origin.label("token_origin"), _tok.c.type.label("token_type")
).select_from(_tx.join(_tok, _tok.c.uid_key == _tx.c.id_tag_key))


def _to_row(row: Any) -> SessionRow:
    return SessionRow(to_transaction(row), row.token_origin, row.token_type, row.updated_at)


def _last_updated(
    now: datetime, date_from: datetime | None, date_to: datetime | None
) -> list[ColumnElement[bool]]:
    """date_from (inclusive) and date_to (exclusive) on a session's last_updated: now for a
    running session (its energy and cost move with time), its last change once ended."""
    active = _tx.c.state == TransactionState.ACTIVE.value
    ended = _tx.c.state != TransactionState.ACTIVE.value
    out: list[ColumnElement[bool]] = []
    if date_from is not None:
        since = _tx.c.updated_at >= date_from
        out.append(or_(active, since) if now >= date_from else and_(ended, since))
    if date_to is not None:
        before = _tx.c.updated_at < date_to
        out.append(or_(active, before) if now < date_to else and_(ended, before))
    return out


async def session_page(
    conn: AsyncConnection,
    audience: Audience,
    *,
    now: datetime,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[SessionRow], int]:
    """One page of the sessions `audience` may see, oldest transaction first (an order that
    does not move while a partner walks the pages), and how many match in all."""
    if audience.empty:
        return [], 0
    conditions = [
        _owned_by(audience),
        _tx.c.charge_point_id.in_(_published()),
        *_last_updated(now, date_from, date_to),
    ]
    count = (
        select(func.count())
        .select_from(_tx.join(_tok, _tok.c.uid_key == _tx.c.id_tag_key))
        .where(*conditions)
    )
    total = int((await conn.execute(count)).scalar_one())
    if limit <= 0 or offset >= total:
        return [], total
    stmt = _SESSIONS.where(*conditions).order_by(_tx.c.id).offset(offset).limit(limit)
    return [_to_row(r) for r in (await conn.execute(stmt)).all()], total


async def changed_sessions(
    conn: AsyncConnection, us: str, *, after: tuple[datetime, int], limit: int
) -> list[SessionRow]:
    """Sessions of other parties' tokens at published locations changed after `after`
    ((updated_at, transaction id), exclusive), in that order."""
    since, after_id = after
    changed = or_(_tx.c.updated_at > since, and_(_tx.c.updated_at == since, _tx.c.id > after_id))
    stmt = (
        _SESSIONS.where(_foreign(us), _tx.c.charge_point_id.in_(_published()), changed)
        .order_by(_tx.c.updated_at, _tx.c.id)
        .limit(limit)
    )
    return [_to_row(r) for r in (await conn.execute(stmt)).all()]


async def active_sessions(
    conn: AsyncConnection, us: str, *, after_id: int, limit: int
) -> list[SessionRow]:
    """Running sessions of other parties' tokens at published locations, by transaction id
    after `after_id`."""
    stmt = (
        _SESSIONS.where(
            _foreign(us),
            _tx.c.charge_point_id.in_(_published()),
            _tx.c.state == TransactionState.ACTIVE.value,
            _tx.c.id > after_id,
        )
        .order_by(_tx.c.id)
        .limit(limit)
    )
    return [_to_row(r) for r in (await conn.execute(stmt)).all()]


async def sessions_by_id(conn: AsyncConnection, us: str, ids: Iterable[int]) -> list[SessionRow]:
    """These transactions, those of them that are other parties' sessions at published
    locations."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = _SESSIONS.where(
        _foreign(us), _tx.c.charge_point_id.in_(_published()), _tx.c.id.in_(wanted)
    ).order_by(_tx.c.id)
    return [_to_row(r) for r in (await conn.execute(stmt)).all()]


async def session_of(conn: AsyncConnection, tx_id: int) -> SessionRow | None:
    """One transaction with its token's origin and type, whoever owns it."""
    stmt = (
        select(_tx, _tok.c.origin.label("token_origin"), _tok.c.type.label("token_type"))
        .select_from(_tx.outerjoin(_tok, _tok.c.uid_key == _tx.c.id_tag_key))
        .where(_tx.c.id == tx_id)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else _to_row(row)


# --- CDRs ------------------------------------------------------------------------------------

_CDRS = select(_cdr, _tok.c.origin.label("token_origin")).select_from(
    _cdr.join(_tx, _tx.c.id == _cdr.c.transaction_id).join(_tok, _tok.c.uid_key == _tx.c.id_tag_key)
)


async def cdr_page(
    conn: AsyncConnection,
    audience: Audience,
    *,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[StoredCdr], int]:
    """One page of the CDRs `audience` may see, in the order they were made; date_from
    (inclusive) and date_to (exclusive) on their creation time (a CDR never changes)."""
    if audience.empty:
        return [], 0
    conditions = [_owned_by(audience), _cdr.c.charge_point_id.in_(_published())]
    if date_from is not None:
        conditions.append(_cdr.c.created_at >= date_from)
    if date_to is not None:
        conditions.append(_cdr.c.created_at < date_to)
    count = (
        select(func.count())
        .select_from(
            _cdr.join(_tx, _tx.c.id == _cdr.c.transaction_id).join(
                _tok, _tok.c.uid_key == _tx.c.id_tag_key
            )
        )
        .where(*conditions)
    )
    total = int((await conn.execute(count)).scalar_one())
    if limit <= 0 or offset >= total:
        return [], total
    stmt = _CDRS.where(*conditions).order_by(_cdr.c.seq).offset(offset).limit(limit)
    return [to_cdr(r) for r in (await conn.execute(stmt)).all()], total


async def last_cdr_seq(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.max(_cdr.c.seq)))).scalar() or 0)


async def cdrs_after(
    conn: AsyncConnection, us: str, seq: int, limit: int
) -> tuple[list[tuple[StoredCdr, str]], int]:
    """CDRs made after `seq` of other parties' sessions at published locations, with the
    token's origin, and the highest seq looked at (the next cursor)."""
    seqs = select(_cdr.c.seq).where(_cdr.c.seq > seq).order_by(_cdr.c.seq).limit(limit).subquery()
    last = (await conn.execute(select(func.max(seqs.c.seq)))).scalar()
    if last is None:
        return [], seq
    stmt = _CDRS.where(
        _cdr.c.seq > seq,
        _cdr.c.seq <= last,
        _foreign(us),
        _cdr.c.charge_point_id.in_(_published()),
    ).order_by(_cdr.c.seq)
    rows = (await conn.execute(stmt)).all()
    return [(to_cdr(r), r.token_origin) for r in rows], int(last)


# --- push progress ------------------------------------------------------------------------


async def push_states(
    conn: AsyncConnection, tx_ids: Sequence[int]
) -> dict[tuple[int, int], PushState]:
    """(transaction id, partner id) -> how far that session was pushed to that partner."""
    if not tx_ids:
        return {}
    rows = (
        await conn.execute(select(_push).where(_push.c.transaction_id.in_(sorted(set(tx_ids)))))
    ).all()
    return {
        (r.transaction_id, r.partner_id): PushState(r.periods_sent, bool(r.completed), r.pushed_at)
        for r in rows
    }


async def push_state(conn: AsyncConnection, tx_id: int, partner_id: int) -> PushState | None:
    return (await push_states(conn, [tx_id])).get((tx_id, partner_id))


async def open_pushes(conn: AsyncConnection, limit: int = 1000) -> list[tuple[int, int]]:
    """(transaction id, partner id) of sessions pushed but not yet final, oldest push
    first."""
    stmt = (
        select(_push.c.transaction_id, _push.c.partner_id)
        .where(_push.c.completed.is_(False))
        .order_by(_push.c.pushed_at, _push.c.transaction_id)
        .limit(limit)
    )
    return [(r.transaction_id, r.partner_id) for r in (await conn.execute(stmt)).all()]


async def save_push(conn: AsyncConnection, tx_id: int, partner_id: int, state: PushState) -> None:
    values = {
        "periods_sent": state.periods_sent,
        "completed": state.completed,
        "pushed_at": state.pushed_at,
    }
    result = await conn.execute(
        update(_push)
        .where(_push.c.transaction_id == tx_id, _push.c.partner_id == partner_id)
        .values(values)
    )
    if not result.rowcount:
        await conn.execute(
            insert(_push).values(transaction_id=tx_id, partner_id=partner_id, **values)
        )


# --- sessions that could not be rendered ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionFailure:
    """A session the publisher could not render: how often, the last error, when next."""

    transaction_id: int
    attempts: int
    last_error: str
    next_attempt_at: datetime
    failed_at: datetime


def _to_failure(row: Any) -> SessionFailure:
    return SessionFailure(
        row.transaction_id, row.attempts, row.last_error, row.next_attempt_at, row.failed_at
    )


async def failures_of(conn: AsyncConnection, tx_ids: Iterable[int]) -> dict[int, SessionFailure]:
    wanted = sorted(set(tx_ids))
    if not wanted:
        return {}
    rows = (await conn.execute(select(_fail).where(_fail.c.transaction_id.in_(wanted)))).all()
    return {r.transaction_id: _to_failure(r) for r in rows}


async def due_failures(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    """Transactions whose session failed to render and is due for another attempt, the
    longest waiting first."""
    stmt = (
        select(_fail.c.transaction_id)
        .where(_fail.c.next_attempt_at <= now)
        .order_by(_fail.c.next_attempt_at, _fail.c.transaction_id)
        .limit(limit)
    )
    return [r.transaction_id for r in (await conn.execute(stmt)).all()]


async def record_failure(
    conn: AsyncConnection, tx_id: int, error: str, now: datetime, backoff: Backoff
) -> SessionFailure:
    """Count a failed attempt at rendering a session; returns it with its next attempt."""
    before = (await failures_of(conn, [tx_id])).get(tx_id)
    attempts = 1 if before is None else before.attempts + 1
    failure = SessionFailure(
        tx_id,
        attempts,
        error,
        backoff.next_at(attempts, now),
        now if before is None else before.failed_at,
    )
    values = {
        "attempts": failure.attempts,
        "last_error": failure.last_error,
        "next_attempt_at": failure.next_attempt_at,
        "failed_at": failure.failed_at,
    }
    if before is None:
        await conn.execute(insert(_fail).values(transaction_id=tx_id, **values))
    else:
        await conn.execute(update(_fail).where(_fail.c.transaction_id == tx_id).values(values))
    return failure


async def clear_failures(conn: AsyncConnection, tx_ids: Iterable[int]) -> None:
    wanted = sorted(set(tx_ids))
    if wanted:
        await conn.execute(delete(_fail).where(_fail.c.transaction_id.in_(wanted)))


async def failing(conn: AsyncConnection, limit: int = 100) -> list[SessionFailure]:
    """Sessions that could not be rendered, the oldest failure first (for staff)."""
    stmt = select(_fail).order_by(_fail.c.failed_at, _fail.c.transaction_id).limit(limit)
    return [_to_failure(r) for r in (await conn.execute(stmt)).all()]
