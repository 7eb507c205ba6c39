"""Repository of the parties hubs report (OCPI hub client info): one row per country code,
party id and role, as last reported, with the hub that reported it.

Rows never leave this module: callers get HubParty values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.parties import Party
from csms.storage.models import HubPartyRow

_hp = cast(Table, HubPartyRow.__table__)


@dataclass(frozen=True, slots=True)
class HubParty:
    """A ClientInfo object as stored: `status` a ConnectionStatus value, `role` a Role
    value, `partner_id` the hub that reported it."""

    country_code: str
    party_id: str
    role: str
    status: str
    last_updated: datetime
    partner_id: int | None = None
    received_at: datetime | None = None

    @property
    def party(self) -> Party:
        return Party(self.country_code, self.party_id)


def _to_party(row: Any) -> HubParty:
    return HubParty(
        country_code=row.country_code,
        party_id=row.party_id,
        role=row.role,
        status=row.status,
        last_updated=row.last_updated,
        partner_id=row.partner_id,
        received_at=row.received_at,
    )


async def save(conn: AsyncConnection, party: HubParty, now: datetime) -> bool:
    """Insert or replace one party's ClientInfo; True when it was new."""
    key = (
        (_hp.c.country_code == party.country_code)
        & (_hp.c.party_id == party.party_id)
        & (_hp.c.role == party.role)
    )
    values = {
        "status": party.status,
        "last_updated": party.last_updated,
        "partner_id": party.partner_id,
        "received_at": now,
    }
    result = await conn.execute(update(_hp).where(key).values(values))
    if result.rowcount:
        return False
    await conn.execute(
        insert(_hp).values(
            country_code=party.country_code, party_id=party.party_id, role=party.role, **values
        )
    )
    return True


async def of_party(conn: AsyncConnection, party: Party) -> list[HubParty]:
    """What is stored for one party (one entry per role), most recently updated first."""
    stmt = (
        select(_hp)
        .where(_hp.c.country_code == party.country_code, _hp.c.party_id == party.party_id)
        .order_by(_hp.c.last_updated.desc(), _hp.c.role)
    )
    return [_to_party(r) for r in (await conn.execute(stmt)).all()]


async def list_all(conn: AsyncConnection) -> list[HubParty]:
    stmt = select(_hp).order_by(_hp.c.country_code, _hp.c.party_id, _hp.c.role)
    return [_to_party(r) for r in (await conn.execute(stmt)).all()]
