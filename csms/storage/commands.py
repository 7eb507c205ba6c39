"""Repository of the command audit log: one row per command, opened before the CALL is sent
and completed with the charger's answer.

Takes an AsyncConnection; returns csms.core CommandRecord objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.commands import CommandRecord
from csms.storage.models import CommandRow
from csms.storage.paging import Page, keyset_page

_cmd = cast(Table, CommandRow.__table__)
# The outcome of an entry still waiting for the charger's answer (NULL in the table).
PENDING = "pending"


def _to_record(row: Any) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        charge_point_id=row.charge_point_id,
        command=row.command,
        action=row.action,
        params=row.params,
        source=row.source,
        requested_by=row.requested_by,
        outcome=row.outcome,
        status=row.status,
        message=row.message,
        answer=row.answer,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


async def open_entry(
    conn: AsyncConnection,
    *,
    cp_id: str,
    command: str,
    params: dict[str, Any],
    source: str,
    requested_by: str | None,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(_cmd)
        .values(
            charge_point_id=cp_id,
            command=command,
            params=params,
            source=source,
            requested_by=requested_by,
            created_at=now,
        )
        .returning(_cmd.c.id)
    )
    return int(result.scalar_one())


async def close_entry(
    conn: AsyncConnection,
    entry_id: int,
    *,
    action: str | None,
    outcome: str,
    status: str | None,
    message: str,
    answer: dict[str, Any] | None,
    params: dict[str, Any] | None,
    now: datetime,
) -> None:
    values: dict[str, Any] = {
        "action": action,
        "outcome": outcome,
        "status": status,
        "message": message,
        "answer": answer,
        "finished_at": now,
    }
    if params is not None:
        values["params"] = params
    await conn.execute(update(_cmd).where(_cmd.c.id == entry_id).values(**values))


async def recent(
    conn: AsyncConnection,
    *,
    cp_id: str | None = None,
    command: str | None = None,
    limit: int = 100,
) -> list[CommandRecord]:
    stmt = select(_cmd).order_by(_cmd.c.id.desc()).limit(limit)
    if cp_id is not None:
        stmt = stmt.where(_cmd.c.charge_point_id == cp_id)
    if command is not None:
        stmt = stmt.where(_cmd.c.command == command)
    return [_to_record(r) for r in (await conn.execute(stmt)).all()]


async def get(conn: AsyncConnection, entry_id: int) -> CommandRecord | None:
    row = (await conn.execute(select(_cmd).where(_cmd.c.id == entry_id))).first()
    return None if row is None else _to_record(row)


async def counts_by_outcome(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """(command, outcome) -> how many, over the whole log."""
    stmt = select(_cmd.c.command, _cmd.c.outcome, func.count()).group_by(
        _cmd.c.command, _cmd.c.outcome
    )
    return {(c, o or "pending"): n for c, o, n in (await conn.execute(stmt)).all()}


async def browse(
    conn: AsyncConnection,
    *,
    cp_id: str | None = None,
    command: str | None = None,
    outcome: str | None = None,
    source: str | None = None,
    requested_by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int,
) -> Page[CommandRecord]:
    """A page of the audit log, newest first; `outcome` `pending`: still waiting for the
    charger; `since` (inclusive) and `until` (exclusive) bound when it was asked."""
    conditions = []
    if cp_id is not None:
        conditions.append(_cmd.c.charge_point_id == cp_id)
    if command is not None:
        conditions.append(_cmd.c.command == command)
    if outcome == PENDING:
        conditions.append(_cmd.c.outcome.is_(None))
    elif outcome is not None:
        conditions.append(_cmd.c.outcome == outcome)
    if source is not None:
        conditions.append(_cmd.c.source == source)
    if requested_by is not None:
        conditions.append(_cmd.c.requested_by == requested_by)
    if since is not None:
        conditions.append(_cmd.c.created_at >= since)
    if until is not None:
        conditions.append(_cmd.c.created_at < until)
    return await keyset_page(
        conn,
        select(_cmd),
        _cmd,
        conditions,
        _cmd.c.id,
        descending=True,
        after=after,
        limit=limit,
        convert=_to_record,
    )
