"""Pages of a filtered listing for staff: keyset pagination on one unique column, with how
many rows match in all.

SQL building only; each repository gives its statement, its filters and its key column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import FromClause

T = TypeVar("T")

# A key column's value: an integer id or a text id.
Key = int | str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Some of the matching items, in the listing's order, with how many match in all;
    `next_key` is the key to read the next page after (None: this is the last page)."""

    items: list[T]
    total: int
    next_key: Key | None


async def keyset_page(
    conn: AsyncConnection,
    stmt: Select[Any],
    source: FromClause,
    conditions: Sequence[ColumnElement[bool]],
    key: Any,
    *,
    descending: bool,
    after: Key | None,
    limit: int,
    convert: Callable[[Any], T],
) -> Page[T]:
    """Rows of `stmt` matching `conditions`, ordered by the unique column `key`, the first
    `limit` after `after`; the total counts every row of `source` matching `conditions`
    (whatever page is read). Run both on one read snapshot for a consistent answer."""
    total = (
        await conn.execute(select(func.count()).select_from(source).where(*conditions))
    ).scalar_one()
    query = stmt.where(*conditions)
    if after is not None:
        query = query.where(key < after if descending else key > after)
    query = query.order_by(key.desc() if descending else key.asc()).limit(limit + 1)
    rows = (await conn.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = getattr(rows[-1], key.name) if more and rows else None
    return Page([convert(r) for r in rows], int(total), next_key)


async def newest_page(
    conn: AsyncConnection,
    stmt: Select[Any],
    source: FromClause,
    conditions: Sequence[ColumnElement[bool]],
    created: Any,
    key: Any,
    *,
    limit: int,
    convert: Callable[[Any], T],
) -> Page[T]:
    """The `limit` rows of `stmt` matching `conditions` that were created last, newest
    first (`created` descending, ties by the unique `key` descending), with how many match
    in all; one page only (`next_key` is None): the CLI shows one."""
    total = (
        await conn.execute(select(func.count()).select_from(source).where(*conditions))
    ).scalar_one()
    query = stmt.where(*conditions).order_by(created.desc(), key.desc()).limit(limit)
    rows = (await conn.execute(query)).all()
    return Page([convert(r) for r in rows], int(total), None)
