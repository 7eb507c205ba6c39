"""Repository of the command audit log: one row per command, opened before the CALL is sent
and completed with the charger's answer.

Takes an AsyncConnection; returns csms.core CommandRecord objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.commands import CommandName, CommandRecord, CommandResult, Outcome, RoutedCommand
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


async def record_change(
    conn: AsyncConnection,
    *,
    cp_id: str,
    command: str,
    params: dict[str, Any],
    message: str,
    source: str,
    requested_by: str | None,
    now: datetime,
) -> int:
    """A change staff made (a profile, a site, a maintenance window: not a command sent to
    a charger), in the audit log as an entry done at once, accepted; its id."""
    result = await conn.execute(
        insert(_cmd)
        .values(
            charge_point_id=cp_id,
            command=command,
            params=params,
            source=source,
            requested_by=requested_by,
            created_at=now,
            outcome="accepted",
            message=message,
            finished_at=now,
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
    result: dict[str, Any] | None = None,
) -> None:
    """Record how a command ended; `result`: its result's data, kept for the node that
    asked when another node sent it."""
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
    if result is not None:
        values["result"] = result
    await conn.execute(update(_cmd).where(_cmd.c.id == entry_id).values(**values))


# --- commands routed to the node holding the charger ------------------------------------


async def route(
    conn: AsyncConnection,
    entry_id: int,
    *,
    request: dict[str, Any],
    timeout_s: float,
    vouched: dict[str, Any] | None,
    origin: str,
    target: str,
) -> None:
    """Add to an open entry what node `target` needs to send it for node `origin`."""
    await conn.execute(
        update(_cmd)
        .where(_cmd.c.id == entry_id)
        .values(
            request=request,
            timeout_s=timeout_s,
            vouched=vouched,
            origin_node=origin,
            target_node=target,
        )
    )


async def claim(conn: AsyncConnection, entry_id: int, node_id: str) -> RoutedCommand | None:
    """Take up a routed command for node `node_id`: None when it is not waiting for it
    (taken up already, or given up by the node that asked)."""
    stmt = (
        update(_cmd)
        .where(
            _cmd.c.id == entry_id,
            _cmd.c.target_node == node_id,
            _cmd.c.runner_node.is_(None),
            _cmd.c.outcome.is_(None),
        )
        .values(runner_node=node_id)
        .returning(_cmd)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return RoutedCommand(
        id=row.id,
        charge_point_id=row.charge_point_id,
        command=CommandName(row.command),
        request=dict(row.request or {}),
        source=row.source,
        requested_by=row.requested_by,
        timeout=float(row.timeout_s or 0.0),
        vouched=row.vouched,
        origin_node=row.origin_node,
    )


async def waiting_for(conn: AsyncConnection, node_id: str, since: datetime) -> list[int]:
    """Routed commands addressed to `node_id` since `since` that nobody took up yet."""
    stmt = select(_cmd.c.id).where(
        _cmd.c.target_node == node_id,
        _cmd.c.runner_node.is_(None),
        _cmd.c.outcome.is_(None),
        _cmd.c.created_at >= since,
    )
    return [int(i) for i in (await conn.execute(stmt)).scalars()]


async def end_unless(
    conn: AsyncConnection,
    entry_id: int,
    *,
    outcome: str,
    message: str,
    now: datetime,
    taken_up: bool,
) -> bool:
    """End a routed command still pending; unless `taken_up`, only while no node has taken
    it up. Whether it was ended here."""
    conditions = [_cmd.c.id == entry_id, _cmd.c.outcome.is_(None)]
    if not taken_up:
        conditions.append(_cmd.c.runner_node.is_(None))
    result = await conn.execute(
        update(_cmd).where(*conditions).values(outcome=outcome, message=message, finished_at=now)
    )
    return bool(result.rowcount)


async def result_of(conn: AsyncConnection, entry_id: int) -> CommandResult | None:
    """What a command came to, None while it is pending."""
    row = (await conn.execute(select(_cmd).where(_cmd.c.id == entry_id))).first()
    if row is None or row.outcome is None:
        return None
    return CommandResult(
        id=row.id,
        charge_point_id=row.charge_point_id,
        command=CommandName(row.command),
        action=row.action,
        outcome=Outcome(row.outcome),
        status=row.status,
        message=row.message or "",
        data=dict(row.result or {}),
    )


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
