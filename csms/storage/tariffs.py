"""Repository of tariffs (kept as their validated OCPI object) and of where each applies.

Takes an AsyncConnection; returns the stored OCPI objects and assignment rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.storage.models import TariffAssignmentRow, TariffRow
from csms.storage.paging import Page, keyset_page, newest_page

_tar = cast(Table, TariffRow.__table__)
_asg = cast(Table, TariffAssignmentRow.__table__)


@dataclass(frozen=True, slots=True)
class StoredTariff:
    id: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Assignment:
    tariff_id: str
    scope: str
    target: str
    # For drivers who pay on the spot (csms.core.payments), beside the regular one.
    ad_hoc: bool = False


async def get(conn: AsyncConnection, tariff_id: str) -> StoredTariff | None:
    row = (await conn.execute(select(_tar).where(_tar.c.id == tariff_id))).first()
    return None if row is None else StoredTariff(row.id, row.data, row.created_at, row.updated_at)


async def get_many(conn: AsyncConnection, ids: list[str]) -> dict[str, StoredTariff]:
    rows = (await conn.execute(select(_tar).where(_tar.c.id.in_(ids)))).all()
    return {r.id: StoredTariff(r.id, r.data, r.created_at, r.updated_at) for r in rows}


async def list_all(conn: AsyncConnection) -> list[StoredTariff]:
    rows = (await conn.execute(select(_tar).order_by(_tar.c.id))).all()
    return [StoredTariff(r.id, r.data, r.created_at, r.updated_at) for r in rows]


async def save(
    conn: AsyncConnection,
    tariff_id: str,
    currency: str,
    kind: str | None,
    data: dict[str, Any],
    now: datetime,
) -> bool:
    """Insert or replace; True when it was new."""
    values = {"currency": currency, "type": kind, "data": data, "updated_at": now}
    result = await conn.execute(update(_tar).where(_tar.c.id == tariff_id).values(values))
    if result.rowcount:
        return False
    await conn.execute(insert(_tar).values(id=tariff_id, created_at=now, **values))
    return True


async def remove(conn: AsyncConnection, tariff_id: str) -> tuple[bool, int]:
    """(removed, how many assignments went with it)."""
    gone = await conn.execute(delete(_asg).where(_asg.c.tariff_id == tariff_id))
    result = await conn.execute(delete(_tar).where(_tar.c.id == tariff_id))
    return bool(result.rowcount), int(gone.rowcount)


async def assign(
    conn: AsyncConnection,
    tariff_id: str,
    scope: str,
    target: str,
    now: datetime,
    *,
    ad_hoc: bool = False,
) -> None:
    """Replaces the assignment of the same kind (regular or ad hoc) of that target."""
    await conn.execute(
        delete(_asg).where(_asg.c.scope == scope, _asg.c.target == target, _asg.c.ad_hoc == ad_hoc)
    )
    await conn.execute(
        insert(_asg).values(
            tariff_id=tariff_id, scope=scope, target=target, ad_hoc=ad_hoc, created_at=now
        )
    )


async def unassign(conn: AsyncConnection, scope: str, target: str, *, ad_hoc: bool = False) -> bool:
    result = await conn.execute(
        delete(_asg).where(_asg.c.scope == scope, _asg.c.target == target, _asg.c.ad_hoc == ad_hoc)
    )
    return bool(result.rowcount)


async def assignments(
    conn: AsyncConnection, tariff_id: str | None = None, *, ad_hoc: bool | None = False
) -> list[Assignment]:
    """The regular assignments (`ad_hoc=False`), the ad-hoc ones (True) or both (None)."""
    stmt = select(_asg).order_by(_asg.c.scope, _asg.c.target, _asg.c.ad_hoc)
    if tariff_id is not None:
        stmt = stmt.where(_asg.c.tariff_id == tariff_id)
    if ad_hoc is not None:
        stmt = stmt.where(_asg.c.ad_hoc == ad_hoc)
    return [
        Assignment(r.tariff_id, r.scope, r.target, bool(r.ad_hoc))
        for r in (await conn.execute(stmt)).all()
    ]


async def ad_hoc_only(conn: AsyncConnection, tariff_ids: Iterable[str] | None = None) -> set[str]:
    """The tariffs (of those named, or all) assigned for drivers who pay on the spot and
    nowhere for everyone: the ones partners are given as AD_HOC_PAYMENT."""
    stmt = select(_asg.c.tariff_id, _asg.c.ad_hoc)
    if tariff_ids is not None:
        stmt = stmt.where(_asg.c.tariff_id.in_(set(tariff_ids)))
    kinds: dict[str, set[bool]] = {}
    for r in (await conn.execute(stmt)).all():
        kinds.setdefault(r.tariff_id, set()).add(bool(r.ad_hoc))
    return {tariff_id for tariff_id, found in kinds.items() if found == {True}}


async def touch(conn: AsyncConnection, tariff_id: str, now: datetime) -> None:
    """Its last change is now (what partners see of it changed: its assignment made it
    ad hoc or regular)."""
    await conn.execute(update(_tar).where(_tar.c.id == tariff_id).values(updated_at=now))


async def assigned_for(
    conn: AsyncConnection, targets: list[tuple[str, str]], *, ad_hoc: bool = False
) -> dict[tuple[str, str], str]:
    """(scope, target) -> tariff id, for the given candidates: their regular assignments,
    or (`ad_hoc`) those for drivers who pay on the spot."""
    if not targets:
        return {}
    scopes = {scope for scope, _ in targets}
    rows = (
        await conn.execute(
            select(_asg).where(
                _asg.c.scope.in_(scopes),
                _asg.c.target.in_({t for _, t in targets}),
                _asg.c.ad_hoc == ad_hoc,
            )
        )
    ).all()
    return {(r.scope, r.target): r.tariff_id for r in rows if (r.scope, r.target) in targets}


async def page(
    conn: AsyncConnection,
    *,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[StoredTariff], int]:
    """One page of tariffs in creation order (ties by id), which a change does not move, so
    a partner following the links sees each tariff once; with how many match in all.
    `date_from` inclusive, `date_to` exclusive, on the last change."""
    from sqlalchemy import func

    conditions = []
    if date_from is not None:
        conditions.append(_tar.c.updated_at >= date_from)
    if date_to is not None:
        conditions.append(_tar.c.updated_at < date_to)
    total = (
        await conn.execute(select(func.count()).select_from(_tar).where(*conditions))
    ).scalar_one()
    rows = (
        await conn.execute(
            select(_tar)
            .where(*conditions)
            .order_by(_tar.c.created_at, _tar.c.id)
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return [StoredTariff(r.id, r.data, r.created_at, r.updated_at) for r in rows], int(total)


async def browse(
    conn: AsyncConnection,
    *,
    currency: str | None = None,
    after: str | None = None,
    limit: int,
    newest_first: bool = False,
) -> Page[StoredTariff]:
    """A page of tariffs for staff, by id."""
    conditions = []
    if currency is not None:
        conditions.append(_tar.c.currency == currency)
    if newest_first:  # the CLI: the most recently added first
        return await newest_page(
            conn,
            select(_tar),
            _tar,
            conditions,
            _tar.c.created_at,
            _tar.c.id,
            limit=limit,
            convert=lambda r: StoredTariff(r.id, r.data, r.created_at, r.updated_at),
        )
    return await keyset_page(
        conn,
        select(_tar),
        _tar,
        conditions,
        _tar.c.id,
        descending=False,
        after=after,
        limit=limit,
        convert=lambda r: StoredTariff(r.id, r.data, r.created_at, r.updated_at),
    )
