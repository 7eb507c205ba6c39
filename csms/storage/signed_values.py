"""Repository of signed meter values (Eichrecht) and of the public keys of chargers' meters.

Takes an AsyncConnection or a WriteTx; returns plain frozen values. A signed value's `data`
goes in and comes out exactly as the charger sent it: the signature covers those bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.metering import SignedMeterValue
from csms.storage.database import BulkStatement, WriteTx
from csms.storage.models import MeterPublicKeyRow, SignedMeterValueRow

_smv = cast(Table, SignedMeterValueRow.__table__)
_mpk = cast(Table, MeterPublicKeyRow.__table__)


@dataclass(frozen=True, slots=True)
class StoredSignedValue:
    """A signed value as stored, with where it came from."""

    id: int
    transaction_id: int | None
    charge_point_id: str
    evse_id: int
    connector_id: int
    timestamp: datetime
    context: str | None
    measurand: str | None
    data: str
    encoding_method: str | None
    signing_method: str | None
    public_key: str | None
    meter_serial: str | None


@dataclass(frozen=True, slots=True)
class MeterKey:
    """The public key of a meter: a charger's EVSE's own, or (evse_id 0) the whole
    charger's. `public_key` is the canonical hex of the DER SubjectPublicKeyInfo."""

    charge_point_id: str
    evse_id: int
    public_key: str
    source: str  # ocpp | config_key | data_transfer | staff
    meter_serial: str | None
    updated_at: datetime


_COLUMNS = (
    "transaction_id",
    "charge_point_id",
    "evse_id",
    "connector_id",
    "timestamp",
    "context",
    "measurand",
    "data",
    "encoding_method",
    "signing_method",
    "public_key",
    "meter_serial",
)
_INSERT = BulkStatement(insert(_smv).values({name: bindparam(name) for name in _COLUMNS}))


def add_later(
    w: WriteTx,
    *,
    cp_id: str,
    evse_id: int,
    connector_id: int,
    transaction_id: int | None,
    values: Sequence[SignedMeterValue],
    serials: Sequence[str | None],
) -> None:
    """Write signed values with the batch (beside the readings they came with; append only,
    so no `touches` key). `serials[i]`: the meter serial read from `values[i]`, if any."""
    for value, serial in zip(values, serials, strict=True):
        w.defer_bulk(
            _INSERT,
            {
                "transaction_id": transaction_id,
                "charge_point_id": cp_id,
                "evse_id": evse_id,
                "connector_id": connector_id,
                "timestamp": w.db_time(value.timestamp),
                "context": None if value.context is None else value.context[:32],
                "measurand": None if value.measurand is None else value.measurand[:64],
                "data": value.data,
                "encoding_method": _cut(value.encoding_method, 50),
                "signing_method": _cut(value.signing_method, 50),
                "public_key": value.public_key,
                "meter_serial": _cut(serial, 64),
            },
        )


def _cut(text: str | None, length: int) -> str | None:
    return None if text is None else text[:length]


def _stored(row: Any) -> StoredSignedValue:
    return StoredSignedValue(
        id=row.id,
        transaction_id=row.transaction_id,
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        connector_id=row.connector_id,
        timestamp=row.timestamp,
        context=row.context,
        measurand=row.measurand,
        data=row.data,
        encoding_method=row.encoding_method,
        signing_method=row.signing_method,
        public_key=row.public_key,
        meter_serial=row.meter_serial,
    )


async def signed_of(
    conn: AsyncConnection, tx_ids: Sequence[int]
) -> dict[int, list[StoredSignedValue]]:
    """The signed values of these transactions in one query, in time order (then as
    received); only those that have some are in the answer. A value received twice (a
    resent message, or the same record on two sampled values of one reading) is kept once:
    the verifier would read its second copy as a pagination error."""
    found: dict[int, list[StoredSignedValue]] = {}
    if not tx_ids:
        return found
    rows = (
        await conn.execute(
            select(_smv)
            .where(_smv.c.transaction_id.in_(list(tx_ids)))
            .order_by(_smv.c.transaction_id, _smv.c.timestamp, _smv.c.id)
        )
    ).all()
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row.transaction_id, row.data)
        if key in seen:
            continue
        seen.add(key)
        found.setdefault(row.transaction_id, []).append(_stored(row))
    return found


def _key(row: Any) -> MeterKey:
    return MeterKey(
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        public_key=row.public_key,
        source=row.source,
        meter_serial=row.meter_serial,
        updated_at=row.updated_at,
    )


async def meter_key(conn: AsyncConnection, cp_id: str, evse_id: int) -> MeterKey | None:
    """The key that verifies an EVSE's values: its own, else the charger's (evse 0)."""
    found = await meter_keys(conn, [(cp_id, evse_id)])
    return found.get((cp_id, evse_id))


async def meter_keys(
    conn: AsyncConnection, places: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], MeterKey]:
    """`meter_key` of several (charger, EVSE) places in one query; places without a key
    are left out."""
    wanted = sorted(set(places))
    if not wanted:
        return {}
    # By charger (the primary key's first column): a charger has a key or a few.
    chargers = sorted({cp_id for cp_id, _ in wanted})
    rows = (await conn.execute(select(_mpk).where(_mpk.c.charge_point_id.in_(chargers)))).all()
    stored = {(r.charge_point_id, r.evse_id): _key(r) for r in rows}
    found: dict[tuple[str, int], MeterKey] = {}
    for place in wanted:
        key = stored.get(place) or stored.get((place[0], 0))
        if key is not None:
            found[place] = key
    return found


async def keys_of(conn: AsyncConnection, cp_id: str) -> list[MeterKey]:
    """Every meter key of one charger, by EVSE."""
    rows = (
        await conn.execute(
            select(_mpk).where(_mpk.c.charge_point_id == cp_id).order_by(_mpk.c.evse_id)
        )
    ).all()
    return [_key(r) for r in rows]


async def own_key(conn: AsyncConnection, cp_id: str, evse_id: int) -> MeterKey | None:
    """The key stored for exactly this place (no fall-back to the charger's)."""
    row = (
        await conn.execute(
            select(_mpk).where(_mpk.c.charge_point_id == cp_id, _mpk.c.evse_id == evse_id)
        )
    ).first()
    return None if row is None else _key(row)


async def save_key(conn: AsyncConnection, key: MeterKey) -> None:
    """Store a place's key (replacing the one it had)."""
    values = {
        "charge_point_id": key.charge_point_id,
        "evse_id": key.evse_id,
        "public_key": key.public_key,
        "source": key.source,
        "meter_serial": key.meter_serial,
        "updated_at": key.updated_at,
    }
    upsert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = upsert(_mpk).values(values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[_mpk.c.charge_point_id, _mpk.c.evse_id],
            set_={
                name: stmt.excluded[name]
                for name in values
                if name not in ("charge_point_id", "evse_id")
            },
        )
    )


async def remove_key(conn: AsyncConnection, cp_id: str, evse_id: int) -> bool:
    result = await conn.execute(
        delete(_mpk).where(_mpk.c.charge_point_id == cp_id, _mpk.c.evse_id == evse_id)
    )
    return bool(result.rowcount)


async def remove_keys_of(conn: AsyncConnection, cp_id: str) -> int:
    """Forget every meter key of a charger (it is removed); how many there were."""
    result = await conn.execute(delete(_mpk).where(_mpk.c.charge_point_id == cp_id))
    return int(result.rowcount or 0)
