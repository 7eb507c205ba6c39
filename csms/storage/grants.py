"""Repository of the roaming decisions that stand at a charger (auth_grants): one per charge
point and token key, until the transaction it leads to starts (that write deletes it) or it
expires. Expired rows are never returned and are dropped whenever a new one is saved.

Rows never leave this module: callers get Standing values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.authorization import AuthStatus
from csms.core.ocpi_sessions import AuthMethod
from csms.core.roaming import Grant
from csms.storage.models import GrantRow

_g = cast(Table, GrantRow.__table__)


@dataclass(frozen=True, slots=True)
class Standing:
    """A stored decision: for the transaction on `evse_id` (any EVSE when None) until
    `until`."""

    grant: Grant
    evse_id: int | None
    until: datetime


def _key(cp_id: str, uid_key: str) -> Any:
    return (_g.c.charge_point_id == cp_id) & (_g.c.uid_key == uid_key)


async def save(
    conn: AsyncConnection,
    cp_id: str,
    uid_key: str,
    standing: Standing,
    now: datetime,
) -> None:
    """Store (or replace) the decision for this token at this charger."""
    await conn.execute(delete(_g).where(_g.c.expires_at <= now))
    await conn.execute(delete(_g).where(_key(cp_id, uid_key)))
    grant = standing.grant
    await conn.execute(
        insert(_g).values(
            charge_point_id=cp_id,
            uid_key=uid_key,
            evse_id=standing.evse_id,
            status=grant.status.value,
            method=grant.method.value,
            cdr_token=dict(grant.cdr_token),
            authorization_reference=grant.authorization_reference,
            reason=grant.reason,
            expires_at=standing.until,
        )
    )


async def get(conn: AsyncConnection, cp_id: str, uid_key: str, now: datetime) -> Standing | None:
    """The decision standing for this token at this charger, unless it expired."""
    row = (
        await conn.execute(select(_g).where(_key(cp_id, uid_key), _g.c.expires_at > now))
    ).first()
    if row is None:
        return None
    grant = Grant(
        AuthStatus(row.status),
        AuthMethod(row.method),
        dict(row.cdr_token),
        row.authorization_reference,
        row.reason,
    )
    return Standing(grant, row.evse_id, row.expires_at)


async def remove(conn: AsyncConnection, cp_id: str, uid_key: str) -> None:
    """The decision was used (its transaction started)."""
    await conn.execute(delete(_g).where(_key(cp_id, uid_key)))
