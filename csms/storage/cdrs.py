"""Repository of CDRs: insert and read only, a CDR is never updated.

Takes an AsyncConnection; returns StoredCdr records holding the OCPI object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, false, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.storage.database import WriteTx
from csms.storage.models import CdrRow, TransactionRow
from csms.storage.paging import Page, keyset_page

_cdr = cast(Table, CdrRow.__table__)
_tx = cast(Table, TransactionRow.__table__)


@dataclass(frozen=True, slots=True)
class StoredCdr:
    seq: int
    id: str
    transaction_id: int
    charge_point_id: str
    start_at: datetime
    end_at: datetime
    currency: str
    total_excl_vat: Decimal
    total_incl_vat: Decimal | None
    energy_wh: int
    credit: bool
    credit_reference_id: str | None
    reason: str | None
    data: dict[str, Any]
    created_at: datetime


def _to_cdr(row: Any) -> StoredCdr:
    return StoredCdr(
        seq=row.seq,
        id=row.id,
        transaction_id=row.transaction_id,
        charge_point_id=row.charge_point_id,
        start_at=row.start_at,
        end_at=row.end_at,
        currency=row.currency,
        total_excl_vat=Decimal(row.total_excl_vat),
        total_incl_vat=None if row.total_incl_vat is None else Decimal(row.total_incl_vat),
        energy_wh=row.energy_wh,
        credit=row.credit,
        credit_reference_id=row.credit_reference_id,
        reason=row.reason,
        data=row.data,
        created_at=row.created_at,
    )


# The transaction-level advisory lock that numbers CDRs one write at a time across nodes.
SEQ_LOCK = 0x63736D735F636472  # "csms_cdr"


async def next_seq(conn: AsyncConnection) -> int:
    """The number of the next CDR. On PostgreSQL the write takes a lock held until it
    commits, so that two nodes' billing (during a hand-over) never number two CDRs alike;
    SQLite has one writer."""
    from sqlalchemy import func, text

    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQ_LOCK})
    value = (await conn.execute(select(func.max(_cdr.c.seq)))).scalar_one_or_none()
    return int(value or 0) + 1


def _values(cdr: StoredCdr) -> dict[str, Any]:
    return {
        "seq": cdr.seq,
        "id": cdr.id,
        "transaction_id": cdr.transaction_id,
        "charge_point_id": cdr.charge_point_id,
        "start_at": cdr.start_at,
        "end_at": cdr.end_at,
        "currency": cdr.currency,
        "total_excl_vat": str(cdr.total_excl_vat),
        "total_incl_vat": None if cdr.total_incl_vat is None else str(cdr.total_incl_vat),
        "energy_wh": cdr.energy_wh,
        "credit": cdr.credit,
        "credit_reference_id": cdr.credit_reference_id,
        "reason": cdr.reason,
        "data": cdr.data,
        "created_at": cdr.created_at,
    }


async def add(conn: AsyncConnection, cdr: StoredCdr) -> None:
    await conn.execute(insert(_cdr).values(_values(cdr)))


_ADD = insert(_cdr)


def add_later(w: WriteTx, cdr: StoredCdr) -> None:
    """`add`, merged with the CDRs other units of the batch add (one executemany; no
    `touches` key: the only deferred statement on CDRs)."""
    w.defer(_ADD, _values(cdr))


async def get(conn: AsyncConnection, cdr_id: str) -> StoredCdr | None:
    row = (await conn.execute(select(_cdr).where(_cdr.c.id == cdr_id))).first()
    return None if row is None else _to_cdr(row)


async def of_transaction(conn: AsyncConnection, tx_id: int) -> list[StoredCdr]:
    stmt = select(_cdr).where(_cdr.c.transaction_id == tx_id).order_by(_cdr.c.seq)
    return [_to_cdr(r) for r in (await conn.execute(stmt)).all()]


async def credited(conn: AsyncConnection, cdr_id: str) -> StoredCdr | None:
    """The credit CDR that cancels `cdr_id`, if any."""
    row = (await conn.execute(select(_cdr).where(_cdr.c.credit_reference_id == cdr_id))).first()
    return None if row is None else _to_cdr(row)


async def listing(
    conn: AsyncConnection,
    *,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    cp_id: str | None = None,
    limit: int | None = None,
) -> list[StoredCdr]:
    """Oldest first by end time; `date_from` inclusive, `date_to` exclusive."""
    stmt = select(_cdr).order_by(_cdr.c.end_at, _cdr.c.seq)
    if date_from is not None:
        stmt = stmt.where(_cdr.c.end_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(_cdr.c.end_at < date_to)
    if cp_id is not None:
        stmt = stmt.where(_cdr.c.charge_point_id == cp_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_to_cdr(r) for r in (await conn.execute(stmt)).all()]


async def browse(
    conn: AsyncConnection,
    *,
    cp_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tag_key: str | None = None,
    parties: Sequence[tuple[str, str]] | None = None,
    after: int | None = None,
    limit: int,
) -> Page[StoredCdr]:
    """A page of CDRs for staff, newest first (by sequence); `since` (inclusive) and
    `until` (exclusive) bound the end of the session; `tag_key`: the token_key of the id tag
    that started its transaction; `parties`: (country code, party id) of the parties one of
    which owns the CDR's token (an empty list matches nothing)."""
    conditions: list[Any] = []
    if cp_id is not None:
        conditions.append(_cdr.c.charge_point_id == cp_id)
    if since is not None:
        conditions.append(_cdr.c.end_at >= since)
    if until is not None:
        conditions.append(_cdr.c.end_at < until)
    if tag_key is not None:
        started = select(_tx.c.id).where(_tx.c.id_tag_key == tag_key)
        conditions.append(_cdr.c.transaction_id.in_(started))
    if parties is not None:
        country = _cdr.c.data[("cdr_token", "country_code")].as_string()
        party = _cdr.c.data[("cdr_token", "party_id")].as_string()
        conditions.append(or_(false(), *((country == c) & (party == p) for c, p in parties)))
    return await keyset_page(
        conn,
        select(_cdr),
        _cdr,
        conditions,
        _cdr.c.seq,
        descending=True,
        after=after,
        limit=limit,
        convert=_to_cdr,
    )
