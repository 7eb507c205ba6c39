"""Partners' requests whose result goes to their response_url (OCPI commands and charging
profile requests): kept from when we accept one until its result is queued in the outbox,
which happens once per request (the row moves from pending to done in the same
transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.outbox import Push
from csms.core.parties import Party, owner_of
from csms.storage import outbox as outbox_repo
from csms.storage.models import OcpiCommandRow

_cmd = cast(Table, OcpiCommandRow.__table__)

PENDING = "pending"
DONE = "done"


@dataclass(frozen=True, slots=True)
class PartnerRequest:
    id: int
    partner_id: int
    kind: str
    response_url: str
    request: dict[str, Any]
    charge_point_id: str | None
    state: str
    result: dict[str, Any] | None
    deadline: datetime
    created_at: datetime
    finished_at: datetime | None
    # Failed attempts at queueing its result, the last error, when to try again.
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None


def _to_request(row: Any) -> PartnerRequest:
    return PartnerRequest(
        id=row.id,
        partner_id=row.partner_id,
        kind=row.kind,
        response_url=row.response_url,
        request=row.request,
        charge_point_id=row.charge_point_id,
        state=row.state,
        result=row.result,
        deadline=row.deadline,
        created_at=row.created_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
    )


async def open_request(
    conn: AsyncConnection,
    *,
    partner_id: int,
    reply_to: Party | None,
    kind: str,
    response_url: str,
    request: dict[str, Any],
    charge_point_id: str | None,
    deadline: datetime,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(_cmd).values(
            partner_id=partner_id,
            kind=kind,
            response_url=response_url,
            request=request,
            charge_point_id=charge_point_id,
            state=PENDING,
            result=None,
            deadline=deadline,
            created_at=now,
            finished_at=None,
            reply_to=None if reply_to is None else str(reply_to),
        )
    )
    return int(cast(Sequence[Any], result.inserted_primary_key)[0])


async def finish(
    conn: AsyncConnection, request_id: int, body: dict[str, Any], now: datetime
) -> bool:
    """Record the result and queue its POST to the response_url, unless the request already
    has its result (then nothing happens and False is returned)."""
    row = (
        await conn.execute(
            select(_cmd.c.partner_id, _cmd.c.response_url, _cmd.c.kind, _cmd.c.reply_to).where(
                _cmd.c.id == request_id, _cmd.c.state == PENDING
            )
        )
    ).first()
    if row is None:
        return False
    done = await conn.execute(
        update(_cmd)
        .where(_cmd.c.id == request_id, _cmd.c.state == PENDING)
        .values(state=DONE, result=body, finished_at=now)
    )
    if not done.rowcount:
        return False
    push = Push(
        "commands",
        "POST",
        row.response_url,
        body,
        f"results/{request_id}",
        to=owner_of(row.reply_to),
    )
    await outbox_repo.enqueue(conn, row.partner_id, push, now)
    return True


async def get(conn: AsyncConnection, request_id: int) -> PartnerRequest | None:
    row = (await conn.execute(select(_cmd).where(_cmd.c.id == request_id))).first()
    return None if row is None else _to_request(row)


async def overdue(
    conn: AsyncConnection, deadline_before: datetime, now: datetime, limit: int = 500
) -> list[PartnerRequest]:
    """Pending requests whose deadline is before `deadline_before` and whose result, if
    queueing it failed before, is due for another attempt at `now`: never failed first,
    then by fewest failures and deadline (requests failing again and again never stand in
    front of the others)."""
    stmt = (
        select(_cmd)
        .where(
            _cmd.c.state == PENDING,
            _cmd.c.deadline <= deadline_before,
            or_(_cmd.c.next_attempt_at.is_(None), _cmd.c.next_attempt_at <= now),
        )
        .order_by(_cmd.c.attempts, _cmd.c.deadline, _cmd.c.id)
        .limit(limit)
    )
    return [_to_request(r) for r in (await conn.execute(stmt)).all()]


async def attempt_failed(
    conn: AsyncConnection, request_id: int, attempts: int, error: str, retry_at: datetime
) -> None:
    """Record a failed attempt at queueing a request's result."""
    await conn.execute(
        update(_cmd)
        .where(_cmd.c.id == request_id, _cmd.c.state == PENDING)
        .values(attempts=attempts, last_error=error, next_attempt_at=retry_at)
    )


async def recent(
    conn: AsyncConnection, partner_id: int | None = None, limit: int = 100
) -> list[PartnerRequest]:
    stmt = select(_cmd).order_by(_cmd.c.id.desc()).limit(limit)
    if partner_id is not None:
        stmt = stmt.where(_cmd.c.partner_id == partner_id)
    return [_to_request(r) for r in (await conn.execute(stmt)).all()]
