"""Repository of where ended transactions stand with their CDR: which are due for an
attempt, failed attempts with their back-off, and holds with their reason.

Takes an AsyncConnection; returns csms.core Transaction objects. CDRs themselves are
csms.storage.cdrs'; the rest of the transaction row is csms.storage.transactions'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.transactions import BillingState, SignatureState, Transaction
from csms.storage.models import TransactionRow
from csms.storage.transactions import _to_transaction

_tx = cast(Table, TransactionRow.__table__)

_PENDING = BillingState.PENDING.value


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[Transaction]:
    """Pending transactions whose next attempt is due: never tried first (oldest first),
    then those that failed fewer times, so that a batch of transactions failing again and
    again never stands in front of new ones."""
    stmt = (
        select(_tx)
        .where(
            _tx.c.billing == _PENDING,
            or_(_tx.c.billing_retry_at.is_(None), _tx.c.billing_retry_at <= now),
        )
        .order_by(_tx.c.billing_attempts, _tx.c.id)
        .limit(limit)
    )
    return [_to_transaction(r) for r in (await conn.execute(stmt)).all()]


async def claim(conn: AsyncConnection, tx_ids: Sequence[int]) -> set[int]:
    """Those of these transactions still pending, locked for this write on PostgreSQL
    (`FOR UPDATE SKIP LOCKED`): a CDR is made only for a transaction claimed here, so two
    billing workers (two nodes during a hand-over) never both make one. A row another
    write holds is skipped, not waited for: that write bills it, or it comes up again.
    SQLite has one writer: the plain read suffices."""
    if not tx_ids:
        return set()
    stmt = (
        select(_tx.c.id)
        .where(_tx.c.id.in_(list(tx_ids)), _tx.c.billing == _PENDING)
        .with_for_update(skip_locked=True)
    )
    return {int(i) for i in (await conn.execute(stmt)).scalars()}


async def attempt_failed(
    conn: AsyncConnection, tx_id: int, attempts: int, error: str, retry_at: datetime
) -> bool:
    """Record a failed attempt of a transaction still pending (its change time stays: the
    transaction itself did not change). False when it is no longer pending."""
    result = await conn.execute(
        update(_tx)
        .where(_tx.c.id == tx_id, _tx.c.billing == _PENDING)
        .values(billing_attempts=attempts, billing_error=error, billing_retry_at=retry_at)
    )
    return bool(result.rowcount)


async def hold(
    conn: AsyncConnection,
    tx_id: int,
    reason: str,
    now: datetime,
    *,
    attempts: int | None = None,
    error: str | None = None,
    only_pending: bool = True,
    signature_problem: str | None = None,
) -> bool:
    """Hold a transaction for staff with the reason why (`attempts`/`error`: the failed
    attempt that made it held; `signature_problem`: its signed values failed verification,
    which its signature state then says). False when it was not pending (with
    `only_pending`)."""
    stmt = update(_tx).where(_tx.c.id == tx_id)
    if only_pending:
        stmt = stmt.where(_tx.c.billing == _PENDING)
    values: dict[str, object] = {
        "billing": BillingState.HELD.value,
        "held_reason": reason,
        "billing_retry_at": None,
        "updated_at": now,
    }
    if attempts is not None:
        values["billing_attempts"] = attempts
    if error is not None:
        values["billing_error"] = error
    if signature_problem is not None:
        values["signature_state"] = SignatureState.FAILED.value
        values["signature_problem"] = signature_problem
    result = await conn.execute(stmt.values(values))
    return bool(result.rowcount)


def cleared() -> dict[str, Any]:
    """The columns (for transactions.update_fields) of a transaction settled by a CDR,
    voided or put back to pending by staff: none of its past attempts and holds."""
    return {
        "billing_attempts": 0,
        "billing_error": None,
        "billing_retry_at": None,
        "held_reason": None,
    }


async def count_held(conn: AsyncConnection) -> int:
    stmt = select(func.count()).where(_tx.c.billing == BillingState.HELD.value)
    return int((await conn.execute(stmt)).scalar_one())
