"""Repository of id tokens (RFID cards and other identifiers).

Keys are case-insensitive (csms.core.ids.token_key); returns csms.core Token objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.authorization import Token, TokenStatus
from csms.core.ids import token_key
from csms.storage.database import FastSelect
from csms.storage.models import IdTokenRow
from csms.storage.paging import Page, keyset_page, newest_page

_tok = cast(Table, IdTokenRow.__table__)


def _to_token(row: Any) -> Token:
    return Token(
        uid=row.uid,
        status=TokenStatus(row.status),
        type=row.type,
        expires_at=row.expires_at,
        parent_uid=row.parent_uid,
        origin=row.origin,
        whitelist=row.whitelist,
        created_at=row.created_at,
        updated_at=row.updated_at,
        max_concurrent=row.max_concurrent,
        priority=row.priority,
    )


async def get(conn: AsyncConnection, uid: str) -> Token | None:
    row = (await conn.execute(select(_tok).where(_tok.c.uid_key == token_key(uid)))).first()
    return None if row is None else _to_token(row)


async def get_many(conn: AsyncConnection, uid_keys: Sequence[str]) -> dict[str, Token]:
    """Tokens by key (`token_key(uid)`), a batch of look-ups in one query."""
    rows = await _BY_KEYS.rows(conn, {"keys": list(uid_keys)})
    return {row.uid_key: _to_token(row) for row in rows}


# Built once (no statement to build and cache-key per call): the hot path's token look-up.
_BY_KEYS = FastSelect(select(_tok).where(_tok.c.uid_key.in_(bindparam("keys", expanding=True))))


async def list_all(conn: AsyncConnection) -> list[Token]:
    return [_to_token(r) for r in (await conn.execute(select(_tok).order_by(_tok.c.uid))).all()]


async def upsert(
    conn: AsyncConnection, tokens: Sequence[Token], now: datetime, *, limits: bool = True
) -> tuple[int, int]:
    """Insert or replace tokens; returns (created, updated). Without `limits`, stored
    tokens keep their limit of concurrent transactions (new ones get theirs). A stored
    token keeps its priority (staff set it with `set_fields`); a new one gets its own."""
    created = updated = 0
    for token in tokens:
        key = token_key(token.uid)
        values = {
            "uid": token.uid,
            "type": token.type,
            "status": token.status.value,
            "expires_at": token.expires_at,
            "parent_uid": token.parent_uid,
            "origin": token.origin,
            "whitelist": token.whitelist,
            "updated_at": now,
        }
        limit = {"max_concurrent": token.max_concurrent}
        result = await conn.execute(
            update(_tok).where(_tok.c.uid_key == key).values(**values, **(limit if limits else {}))
        )
        if result.rowcount:
            updated += 1
        else:
            await conn.execute(
                insert(_tok).values(
                    uid_key=key, created_at=now, priority=token.priority, **values, **limit
                )
            )
            created += 1
    return created, updated


async def set_fields(conn: AsyncConnection, uid: str, now: datetime, **values: Any) -> bool:
    """Change some fields of a stored token; False when there is no such token."""
    result = await conn.execute(
        update(_tok).where(_tok.c.uid_key == token_key(uid)).values(updated_at=now, **values)
    )
    return bool(result.rowcount)


async def set_status(conn: AsyncConnection, uid: str, status: TokenStatus, now: datetime) -> bool:
    result = await conn.execute(
        update(_tok)
        .where(_tok.c.uid_key == token_key(uid))
        .values(status=status.value, updated_at=now)
    )
    return bool(result.rowcount)


async def remove(conn: AsyncConnection, uid: str) -> bool:
    """Forget a token; False when there is no such token."""
    result = await conn.execute(delete(_tok).where(_tok.c.uid_key == token_key(uid)))
    return bool(result.rowcount)


async def browse(
    conn: AsyncConnection,
    *,
    status: TokenStatus | None = None,
    origins: Sequence[str] | None = None,
    after: str | None = None,
    limit: int,
    newest_first: bool = False,
) -> Page[Token]:
    """A page of tokens for staff, by key (the uid, case-insensitive); `origins`: who owns
    them (`local`, `NL*EMS`, ...; an empty list matches nothing)."""
    conditions = []
    if status is not None:
        conditions.append(_tok.c.status == status.value)
    if origins is not None:
        conditions.append(_tok.c.origin.in_(list(origins)))
    if newest_first:  # the CLI: the most recently added first
        return await newest_page(
            conn,
            select(_tok),
            _tok,
            conditions,
            _tok.c.created_at,
            _tok.c.uid_key,
            limit=limit,
            convert=_to_token,
        )
    return await keyset_page(
        conn,
        select(_tok),
        _tok,
        conditions,
        _tok.c.uid_key,
        descending=False,
        after=after,
        limit=limit,
        convert=_to_token,
    )
