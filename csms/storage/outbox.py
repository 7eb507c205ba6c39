"""Repository of the OCPI push outbox (ocpi_outbox) and of the publishers' cursors.

Entries are enqueued in the same transaction as the change they announce, so a push is
never lost nor sent for a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from csms.core.outbox import OutboxEntry, Push, retry_delay
from csms.core.parties import owner_of
from csms.core.partners import PartnerStatus
from csms.storage.leadership import lock_key
from csms.storage.models import CursorRow, OutboxRow, PartnerRow

_out = cast(Table, OutboxRow.__table__)
_p = cast(Table, PartnerRow.__table__)
_cur = cast(Table, CursorRow.__table__)


def _to_entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        partner_id=row.partner_id,
        partner_name=row.partner_name,
        module=row.module,
        method=row.method,
        url=row.url,
        body=row.body,
        object_key=row.object_key,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        to=owner_of(row.to_party),
        path=row.path,
    )


def _select() -> Any:
    return select(_out, _p.c.name.label("partner_name")).join(_p, _p.c.id == _out.c.partner_id)


async def enqueue(
    conn: AsyncConnection,
    partner_id: int,
    push: Push,
    now: datetime,
    due: datetime | None = None,
) -> int:
    """Add a push, first tried at `due` (default: now; later for a paced one)."""
    result = await conn.execute(
        insert(_out).values(
            partner_id=partner_id,
            module=push.module,
            method=push.method,
            url=push.url,
            body=push.body,
            object_key=push.object_key,
            attempts=0,
            next_attempt_at=now if due is None else max(due, now),
            last_error=None,
            created_at=now,
            delivered_at=None,
            to_party=None if push.to is None else str(push.to),
            path=push.path,
        )
    )
    return int(cast(Sequence[Any], result.inserted_primary_key)[0])


async def last_waiting(
    conn: AsyncConnection, partner_id: int, module: str, now: datetime
) -> datetime | None:
    """When the partner's last never-tried push of `module` that is not yet due will be
    (None: none waits): where a paced producer lines up its next ones."""
    stmt = select(func.max(_out.c.next_attempt_at)).where(
        _out.c.partner_id == partner_id,
        _out.c.module == module,
        _out.c.delivered_at.is_(None),
        _out.c.attempts == 0,
        _out.c.next_attempt_at > now,
    )
    return cast(datetime | None, (await conn.execute(stmt)).scalar())


def _is_head() -> Any:
    """The entry is the oldest undelivered push of its object to its partner."""
    earlier = aliased(_out)
    return ~exists().where(
        and_(
            earlier.c.partner_id == _out.c.partner_id,
            earlier.c.object_key == _out.c.object_key,
            earlier.c.delivered_at.is_(None),
            earlier.c.id < _out.c.id,
        )
    )


async def due(
    conn: AsyncConnection,
    now: datetime,
    limit: int = 100,
    *,
    skip_ids: Collection[int] = (),
    skip_partners: Collection[int] = (),
) -> list[OutboxEntry]:
    """Pushes to send now: undelivered, their retry time reached, to a registered partner,
    and the oldest undelivered push of their object (order per object). Pushes never tried
    come first, then those that failed fewer times: a backlog failing again and again (a
    partner that stalls on some objects) never stands in front of new pushes.

    `skip_ids` (pushes already being sent) and `skip_partners` (partners that may take no
    more requests now) are left out, so that they do not use up `limit`."""
    stmt = _select().where(
        _out.c.delivered_at.is_(None),
        _out.c.next_attempt_at <= now,
        _p.c.status == PartnerStatus.REGISTERED.value,
        _is_head(),
    )
    if skip_ids:
        stmt = stmt.where(_out.c.id.not_in(list(skip_ids)))
    if skip_partners:
        stmt = stmt.where(_out.c.partner_id.not_in(list(skip_partners)))
    stmt = stmt.order_by(_out.c.attempts, _out.c.id).limit(limit)
    return [_to_entry(r) for r in (await conn.execute(stmt)).all()]


async def next_due_at(conn: AsyncConnection, *, skip_ids: Collection[int] = ()) -> datetime | None:
    """The earliest retry time of a push `due` could return (undelivered, to a registered
    partner, the oldest of its object), leaving out `skip_ids` (pushes being sent)."""
    stmt = (
        select(func.min(_out.c.next_attempt_at))
        .join(_p, _p.c.id == _out.c.partner_id)
        .where(
            _out.c.delivered_at.is_(None),
            _p.c.status == PartnerStatus.REGISTERED.value,
            _is_head(),
        )
    )
    if skip_ids:
        stmt = stmt.where(_out.c.id.not_in(list(skip_ids)))
    # func.min keeps the column's type, so the value comes back as an aware datetime.
    return cast(datetime | None, (await conn.execute(stmt)).scalar())


async def claim(
    conn: AsyncConnection, entry_ids: Sequence[int], now: datetime, until: datetime
) -> set[int]:
    """Claim these pushes for one attempt: those still undelivered and due at `now` that
    no other write holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL) get their next attempt
    moved to `until`, so that no other node takes them before this one has recorded the
    outcome (which sets it again) or `until` passed (it died meanwhile). Returns the ids
    claimed."""
    if not entry_ids:
        return set()
    stmt = (
        select(_out.c.id)
        .where(
            _out.c.id.in_(list(entry_ids)),
            _out.c.delivered_at.is_(None),
            _out.c.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    claimed = {int(i) for i in (await conn.execute(stmt)).scalars()}
    if claimed:
        await conn.execute(
            update(_out).where(_out.c.id.in_(list(claimed))).values(next_attempt_at=until)
        )
    return claimed


async def delivered(conn: AsyncConnection, entry_id: int, now: datetime) -> None:
    await conn.execute(
        update(_out)
        .where(_out.c.id == entry_id)
        .values(delivered_at=now, attempts=_out.c.attempts + 1, last_error=None)
    )


async def failed(
    conn: AsyncConnection, entry_id: int, attempts: int, error: str, now: datetime
) -> datetime:
    """Record a failed attempt (`attempts` counts it); returns when to try again."""
    retry_at = now + retry_delay(attempts)
    await conn.execute(
        update(_out)
        .where(_out.c.id == entry_id)
        .values(attempts=attempts, last_error=error[:1000], next_attempt_at=retry_at)
    )
    return retry_at


async def get(conn: AsyncConnection, entry_id: int) -> OutboxEntry | None:
    row = (await conn.execute(_select().where(_out.c.id == entry_id))).first()
    return None if row is None else _to_entry(row)


async def listing(
    conn: AsyncConnection,
    *,
    partner_id: int | None = None,
    pending_only: bool = True,
    failing_only: bool = False,
    limit: int = 100,
    delivered_only: bool = False,
    newest_first: bool = False,
) -> list[OutboxEntry]:
    """Pushes for people to look at: undelivered ones oldest first (those that failed at
    least once with `failing_only`; `newest_first`: the newest first), delivered ones most
    recent first (`delivered_only`), or, with `pending_only=False`, every push, newest
    first."""
    stmt = _select().where(*_listed(partner_id, pending_only, failing_only, delivered_only))
    if delivered_only:
        stmt = stmt.order_by(_out.c.delivered_at.desc(), _out.c.id.desc())
        return [_to_entry(r) for r in (await conn.execute(stmt.limit(limit))).all()]
    oldest = pending_only and not newest_first
    stmt = stmt.order_by(_out.c.id if oldest else _out.c.id.desc()).limit(limit)
    return [_to_entry(r) for r in (await conn.execute(stmt)).all()]


async def count_listed(
    conn: AsyncConnection,
    *,
    partner_id: int | None = None,
    pending_only: bool = True,
    failing_only: bool = False,
    delivered_only: bool = False,
) -> int:
    """How many pushes `listing` with these filters has in all."""
    stmt = (
        select(func.count())
        .select_from(_out)
        .where(*_listed(partner_id, pending_only, failing_only, delivered_only))
    )
    return int((await conn.execute(stmt)).scalar_one())


def _listed(
    partner_id: int | None, pending_only: bool, failing_only: bool, delivered_only: bool
) -> list[Any]:
    conditions: list[Any] = []
    if partner_id is not None:
        conditions.append(_out.c.partner_id == partner_id)
    if delivered_only:
        conditions.append(_out.c.delivered_at.is_not(None))
        return conditions
    if pending_only or failing_only:
        conditions.append(_out.c.delivered_at.is_(None))
    if failing_only:
        conditions.append(_out.c.attempts > 0)
    return conditions


async def counts(conn: AsyncConnection) -> dict[str, tuple[int, int]]:
    """Per partner name: (undelivered, of which failed at least once)."""
    stmt = (
        select(
            _p.c.name,
            func.count(),
            func.sum(func.cast(_out.c.attempts > 0, _out.c.attempts.type)),
        )
        .join(_p, _p.c.id == _out.c.partner_id)
        .where(_out.c.delivered_at.is_(None))
        .group_by(_p.c.name)
    )
    return {r[0]: (int(r[1]), int(r[2] or 0)) for r in (await conn.execute(stmt)).all()}


async def retry_now(conn: AsyncConnection, now: datetime, partner_id: int | None = None) -> int:
    """Make every undelivered push that failed at least once due at `now` (staff, after a
    partner came back); returns how many."""
    stmt = (
        update(_out)
        .where(_out.c.delivered_at.is_(None), _out.c.attempts > 0)
        .values(next_attempt_at=now)
    )
    if partner_id is not None:
        stmt = stmt.where(_out.c.partner_id == partner_id)
    result = await conn.execute(stmt)
    return int(result.rowcount or 0)


async def drop(conn: AsyncConnection, entry_id: int) -> bool:
    """Remove an undelivered push (staff giving up on it); True when there was one."""
    result = await conn.execute(
        delete(_out).where(_out.c.id == entry_id, _out.c.delivered_at.is_(None))
    )
    return bool(result.rowcount)


async def prune(conn: AsyncConnection, delivered_before: datetime) -> int:
    """Forget delivered pushes older than the given time."""
    result = await conn.execute(
        delete(_out).where(_out.c.delivered_at.is_not(None), _out.c.delivered_at < delivered_before)
    )
    return int(result.rowcount or 0)


# --- cursors ---------------------------------------------------------------------------


async def cursor(conn: AsyncConnection, name: str) -> str | None:
    return (await conn.execute(select(_cur.c.value).where(_cur.c.name == name))).scalar()


async def hold_cursor(conn: AsyncConnection, name: str) -> None:
    """Hold a cursor until the write commits: on PostgreSQL a transaction-level advisory
    lock on its name (SQLite has one writer: nothing to do). Two publishers' passes that
    overlap (two nodes during a hand-over of the singleton work) then write one after the
    other, and the second reads what the first committed."""
    if conn.dialect.name == "postgresql":
        # Its own key space: never a singleton group's lock, which a node holds for long.
        key = lock_key(f"cursor:{name}")
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def held_cursor(conn: AsyncConnection, name: str) -> str | None:
    """A cursor's value, held until the write commits (`hold_cursor`): a publisher
    compares it with the value its pass started from, and leaves the pass to the other
    when it moved."""
    await hold_cursor(conn, name)
    return await cursor(conn, name)


async def set_cursor(conn: AsyncConnection, name: str, value: str) -> None:
    result = await conn.execute(update(_cur).where(_cur.c.name == name).values(value=value))
    if not result.rowcount:
        await conn.execute(insert(_cur).values(name=name, value=value))
