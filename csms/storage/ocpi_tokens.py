"""Repository of other parties' tokens (OCPI Token objects from eMSPs) and their mirror in
the id token table, through which chargers, local lists, staff and the session queries see
them (the row's origin names the owner party, its whitelist the rule).

A uid belongs to its first owner: a partner token never takes over an id token that is
ours or another party's. It is kept here (its eMSP sees it in our tokens module), the
conflict is logged (`token_uid_conflict`, both parties) and listed by `conflicts` (`csms
tokens conflicts`), and a charger presenting that uid gets the first owner's answer until
staff give the id token to the other owner (`csms tokens set UID --owner CC*PID|local`).
Keys are case-insensitive (csms.core.ids.token_key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.ids import token_key
from csms.core.parties import Party
from csms.core.roaming import PartnerToken, Whitelist, mirror_status, ocpp_token_type
from csms.storage.models import IdTokenRow, OcpiTokenRow, PartnerRow

log = structlog.get_logger("csms.storage")

_ot = cast(Table, OcpiTokenRow.__table__)
_tok = cast(Table, IdTokenRow.__table__)
_partners = cast(Table, PartnerRow.__table__)


def _to_token(row: Any) -> PartnerToken:
    return PartnerToken(
        country_code=row.country_code,
        party_id=row.party_id,
        uid=row.uid,
        type=row.type,
        contract_id=row.contract_id,
        whitelist=Whitelist(row.whitelist),
        valid=bool(row.valid),
        last_updated=row.last_updated,
        data=row.data,
        partner_id=row.partner_id,
    )


def _key(party: Party, uid: str, type_: str) -> Any:
    return (
        (_ot.c.country_code == party.country_code)
        & (_ot.c.party_id == party.party_id)
        & (_ot.c.uid_key == token_key(uid))
        & (_ot.c.type == type_)
    )


async def get(conn: AsyncConnection, party: Party, uid: str, type_: str) -> PartnerToken | None:
    row = (await conn.execute(select(_ot).where(_key(party, uid, type_)))).first()
    return None if row is None else _to_token(row)


async def find(
    conn: AsyncConnection, uid: str, party: Party | None, types: Sequence[str]
) -> PartnerToken | None:
    """The token presented at a charger: this uid of `party` (any party when None), of the
    first of `types` stored."""
    stmt = select(_ot).where(_ot.c.uid_key == token_key(uid), _ot.c.type.in_(list(types)))
    if party is not None:
        stmt = stmt.where(
            _ot.c.country_code == party.country_code, _ot.c.party_id == party.party_id
        )
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return None
    order = {t: i for i, t in enumerate(types)}
    best = min(rows, key=lambda r: (order.get(r.type, len(order)), -r.last_updated.timestamp()))
    return _to_token(best)


@dataclass(frozen=True, slots=True)
class Saved:
    created: bool
    # False when the uid is already an id token of ours or of another party: the token is
    # stored, but a charger presenting that uid gets the other token's answer.
    mirrored: bool
    # True when we hold a later version (a greater last_updated): nothing was changed.
    stale: bool = False


async def save(
    conn: AsyncConnection, token: PartnerToken, partner_id: int | None, now: datetime
) -> Saved:
    """Insert or replace one token (the whole object) and its id token mirror. A version
    older than the one stored (by last_updated) changes nothing: pushes and pulls may cross,
    and the later version stands."""
    party = token.party
    values = {
        "uid": token.uid,
        "uid_key": token_key(token.uid),
        "contract_id": token.contract_id,
        "whitelist": token.whitelist.value,
        "valid": token.valid,
        "data": dict(token.data),
        "last_updated": token.last_updated,
        "partner_id": partner_id,
        "received_at": now,
    }
    key = _key(party, token.uid, token.type)
    result = await conn.execute(
        update(_ot).where(key, _ot.c.last_updated <= token.last_updated).values(values)
    )
    created = not result.rowcount
    if created and (await conn.execute(select(_ot.c.uid).where(key))).first() is not None:
        return Saved(created=False, mirrored=False, stale=True)
    if created:
        await conn.execute(
            insert(_ot).values(
                country_code=token.country_code,
                party_id=token.party_id,
                type=token.type,
                **values,
            )
        )
    return Saved(created, await _mirror(conn, token, now))


async def _mirror(conn: AsyncConnection, token: PartnerToken, now: datetime) -> bool:
    key = token_key(token.uid)
    owner = str(token.party)
    current = (
        await conn.execute(select(_tok.c.origin, _tok.c.whitelist).where(_tok.c.uid_key == key))
    ).first()
    values = {
        "uid": token.uid,
        "type": ocpp_token_type(token.type),
        "status": mirror_status(token),
        "expires_at": None,
        "parent_uid": token.group_id,
        "origin": owner,
        "whitelist": token.whitelist.value,
        "updated_at": now,
    }
    if current is None:
        await conn.execute(insert(_tok).values(uid_key=key, created_at=now, **values))
        return True
    if current.origin != owner:
        log.warning(
            "token_uid_conflict",
            uid=token.uid,
            claimed_by=owner,
            held_by=current.origin,
            detail="the uid is already another owner's id token, which keeps it",
        )
        return False
    await conn.execute(update(_tok).where(_tok.c.uid_key == key).values(values))
    return True


_PAGE_ORDER = (_ot.c.last_updated, _ot.c.country_code, _ot.c.party_id, _ot.c.uid, _ot.c.type)


async def page(
    conn: AsyncConnection,
    *,
    party: Party | None = None,
    offset: int = 0,
    limit: int = 100,
    newest_first: bool = False,
) -> tuple[list[PartnerToken], int]:
    """Stored tokens (of one party), oldest change first (`newest_first`: the latest
    first), and how many there are."""
    conditions = []
    if party is not None:
        conditions = [_ot.c.country_code == party.country_code, _ot.c.party_id == party.party_id]
    total = int(
        (await conn.execute(select(func.count()).select_from(_ot).where(*conditions))).scalar_one()
    )
    stmt = (
        select(_ot)
        .where(*conditions)
        .order_by(*(c.desc() if newest_first else c for c in _PAGE_ORDER))
        .offset(offset)
        .limit(limit)
    )
    return [_to_token(r) for r in (await conn.execute(stmt)).all()], total


@dataclass(frozen=True, slots=True)
class Conflict:
    """A partner token whose uid is another owner's id token: `held_by` (`local` or
    `CC*PID`) authorizes the uid at our chargers, `claimed_by`'s token is not used there."""

    uid: str
    token_type: str
    claimed_by: str
    held_by: str
    partner: str | None  # the name of the partner that gave us the claiming token
    received_at: datetime


async def conflicts(conn: AsyncConnection, uid: str | None = None) -> list[Conflict]:
    """Every such conflict (of one uid), by uid, then as the claims arrived."""
    claimant = _ot.c.country_code + "*" + _ot.c.party_id
    stmt = (
        select(
            _ot.c.uid,
            _ot.c.type,
            claimant.label("claimed_by"),
            _tok.c.origin,
            _partners.c.name,
            _ot.c.received_at,
        )
        .select_from(
            _ot.join(_tok, _tok.c.uid_key == _ot.c.uid_key).outerjoin(
                _partners, _partners.c.id == _ot.c.partner_id
            )
        )
        .where(_tok.c.origin != claimant)
        .order_by(_ot.c.uid_key, _ot.c.received_at, _ot.c.type)
    )
    if uid is not None:
        stmt = stmt.where(_ot.c.uid_key == token_key(uid))
    return [
        Conflict(r.uid, r.type, r.claimed_by, r.origin, r.name, r.received_at)
        for r in (await conn.execute(stmt)).all()
    ]
