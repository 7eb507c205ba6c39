"""Repository of the operator API's staff users: one row per user with the digest of its
current token; looked up by name (staff) or by token digest (every API request).

Rows never leave this module: callers get csms.core.users.StaffUser values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.users import Role, StaffUser
from csms.storage.models import StaffUserRow
from csms.storage.paging import Key, Page, keyset_page

_u = cast(Table, StaffUserRow.__table__)
_COLUMNS = (
    _u.c.id,
    _u.c.name,
    _u.c.role,
    _u.c.enabled,
    _u.c.created_at,
    _u.c.updated_at,
    _u.c.token_issued_at,
)


def _to_user(row: Any) -> StaffUser:
    return StaffUser(
        name=row.name,
        role=Role(row.role),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
        token_issued_at=row.token_issued_at,
    )


async def add(
    conn: AsyncConnection, name: str, role: Role, digest: str, now: datetime
) -> StaffUser:
    await conn.execute(
        insert(_u).values(
            name=name,
            role=role.value,
            token_digest=digest,
            enabled=True,
            created_at=now,
            updated_at=now,
            token_issued_at=now,
        )
    )
    found = await get(conn, name)
    assert found is not None
    return found


async def get(conn: AsyncConnection, name: str) -> StaffUser | None:
    row = (await conn.execute(select(*_COLUMNS).where(_u.c.name == name))).first()
    return None if row is None else _to_user(row)


async def by_digest(conn: AsyncConnection, digest: str) -> StaffUser | None:
    """The user whose current token has this digest (enabled or not)."""
    row = (await conn.execute(select(*_COLUMNS).where(_u.c.token_digest == digest))).first()
    return None if row is None else _to_user(row)


async def set_fields(conn: AsyncConnection, name: str, now: datetime, **values: Any) -> bool:
    """Change a user's enabled, role or token_digest (with token_issued_at); False when
    there is no such user."""
    result = await conn.execute(
        update(_u).where(_u.c.name == name).values(updated_at=now, **values)
    )
    return bool(result.rowcount)


async def listing(
    conn: AsyncConnection, *, after: Key | None = None, limit: int = 100
) -> Page[StaffUser]:
    """Users, the most recently added first."""
    return await keyset_page(
        conn,
        select(*_COLUMNS),
        _u,
        [],
        _u.c.id,
        descending=True,
        after=after,
        limit=limit,
        convert=_to_user,
    )
