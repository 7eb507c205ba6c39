"""Repository of the charging station certificates our CA issued: one row per certificate,
newest first in listings, with the ones expiring within a window.

Rows never leave this module: callers get csms.core.certificates.IssuedCertificate values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.certificates import IssuedCertificate
from csms.storage.models import CaCertificateRow
from csms.storage.paging import Key, Page, keyset_page

_c = cast(Table, CaCertificateRow.__table__)


def _to_certificate(row: Any) -> IssuedCertificate:
    return IssuedCertificate(
        serial=row.serial,
        charge_point_id=row.charge_point_id,
        not_before=row.not_before,
        not_after=row.not_after,
        fingerprint_sha256=row.fingerprint_sha256,
        issuer_serial=row.issuer_serial,
        issued_at=row.issued_at,
        pem=row.pem,
    )


async def add(conn: AsyncConnection, cert: IssuedCertificate) -> None:
    await conn.execute(
        insert(_c).values(
            serial=cert.serial,
            charge_point_id=cert.charge_point_id,
            not_before=cert.not_before,
            not_after=cert.not_after,
            fingerprint_sha256=cert.fingerprint_sha256,
            issuer_serial=cert.issuer_serial,
            issued_at=cert.issued_at,
            pem=cert.pem,
        )
    )


def _conditions(
    charge_point_id: str | None,
    issuer_serial: str | None,
    now: datetime | None,
    expiring_before: datetime | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if charge_point_id is not None:
        conditions.append(_c.c.charge_point_id == charge_point_id)
    if issuer_serial is not None:
        conditions.append(_c.c.issuer_serial == issuer_serial)
    if expiring_before is not None:
        # Still valid at `now`, no longer at `expiring_before`.
        assert now is not None
        conditions.append(_c.c.not_after > now)
        conditions.append(_c.c.not_after <= expiring_before)
    return conditions


async def listing(
    conn: AsyncConnection,
    *,
    charge_point_id: str | None = None,
    now: datetime | None = None,
    expiring_before: datetime | None = None,
    after: Key | None = None,
    limit: int = 100,
) -> Page[IssuedCertificate]:
    """Issued certificates, newest first: of one charger, and/or those valid at `now` that
    expire by `expiring_before`."""
    return await keyset_page(
        conn,
        select(_c),
        _c,
        _conditions(charge_point_id, None, now, expiring_before),
        _c.c.id,
        descending=True,
        after=after,
        limit=limit,
        convert=_to_certificate,
    )


async def expiring(
    conn: AsyncConnection, now: datetime, before: datetime, *, limit: int = 1000
) -> list[IssuedCertificate]:
    """Certificates valid at `now` that expire by `before`, soonest first."""
    stmt = (
        select(_c)
        .where(*_conditions(None, None, now, before))
        .order_by(_c.c.not_after.asc(), _c.c.id.asc())
        .limit(limit)
    )
    return [_to_certificate(r) for r in (await conn.execute(stmt)).all()]


async def count(
    conn: AsyncConnection,
    *,
    issuer_serial: str | None = None,
    now: datetime | None = None,
    expiring_before: datetime | None = None,
) -> int:
    """How many certificates were issued (by one CA), or of those how many expire soon."""
    stmt = (
        select(func.count())
        .select_from(_c)
        .where(*_conditions(None, issuer_serial, now, expiring_before))
    )
    return int((await conn.execute(stmt)).scalar_one())


async def last_expiry(conn: AsyncConnection, issuer_serial: str) -> datetime | None:
    """When the last certificate a CA issued expires (None: it issued none)."""
    stmt = select(func.max(_c.c.not_after)).where(_c.c.issuer_serial == issuer_serial)
    # max() keeps the column's type: the value comes back timezone-aware.
    value: datetime | None = (await conn.execute(stmt)).scalar_one()
    return value


async def by_serial(conn: AsyncConnection, serial: str) -> IssuedCertificate | None:
    row = (await conn.execute(select(_c).where(_c.c.serial == serial))).first()
    return None if row is None else _to_certificate(row)
