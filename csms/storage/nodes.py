"""Repository of the nodes sharing one PostgreSQL database: their rows and heartbeats, who
holds a charger, and the notifications (NOTIFY) nodes send each other.

Times of the node registry are the database's clock (`now()`): nodes on several machines
compare heartbeats on one clock. Takes an AsyncConnection; PostgreSQL only.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import cast

import orjson
from sqlalchemy import Interval, Table, delete, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.storage.charge_points import record_disconnects
from csms.storage.models import ChargePointRow, NodeRow

_nodes = cast(Table, NodeRow.__table__)
_cp = cast(Table, ChargePointRow.__table__)

# What nodes tell each other (the payload of a NOTIFY on the receiver's channel): "run" a
# command stored under `id`; a command was "done"; "release" the socket of charger `cp`,
# which connected to another node.
RUN = "run"
DONE = "done"
RELEASE = "release"


def channel_of(node_id: str) -> str:
    """The LISTEN channel of a node: short and made of safe characters whatever its id."""
    digest = hashlib.sha1(node_id.encode(), usedforsecurity=False).hexdigest()[:24]
    return f"csms_node_{digest}"


def message(kind: str, **fields: object) -> str:
    """A notification's payload: small JSON, never more than ids (NOTIFY caps it at 8 kB)."""
    return orjson.dumps({"kind": kind, **fields}).decode()


def _ago(seconds: float) -> object:
    return func.now() - literal(timedelta(seconds=seconds), Interval())


async def register(conn: AsyncConnection, node_id: str, components: str) -> None:
    """Add (or renew) this node's row with a fresh heartbeat."""
    stmt = insert(_nodes).values(
        id=node_id, components=components, started_at=func.now(), heartbeat_at=func.now()
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[_nodes.c.id],
            set_={"components": components, "heartbeat_at": func.now()},
        )
    )


async def beat(conn: AsyncConnection, node_id: str) -> bool:
    """Renew the heartbeat; False when the row is gone (another node found this one dead)."""
    result = await conn.execute(
        update(_nodes).where(_nodes.c.id == node_id).values(heartbeat_at=func.now())
    )
    return bool(result.rowcount)


async def remove(conn: AsyncConnection, node_id: str) -> None:
    await conn.execute(delete(_nodes).where(_nodes.c.id == node_id))


async def reap(conn: AsyncConnection, dead_after: float, now: datetime) -> tuple[list[str], int]:
    """Remove the nodes whose heartbeat is older than `dead_after` seconds and mark offline
    the chargers recorded as connected to a node that has no row (theirs, and those of
    rows removed earlier or never made); (the nodes removed, the chargers marked)."""
    found = await conn.execute(
        delete(_nodes).where(_nodes.c.heartbeat_at < _ago(dead_after)).returning(_nodes.c.id)
    )
    dead = sorted(str(node) for node in found.scalars())
    if not dead:
        return [], 0
    return dead, await release_orphans(conn, now)


async def release_orphans(conn: AsyncConnection, now: datetime) -> int:
    """Mark offline every charger recorded as connected to a node without a row."""
    held = exists().where(_nodes.c.id == _cp.c.node_id)
    await record_disconnects(conn, now, _cp.c.connected.is_(True), ~held)
    result = await conn.execute(
        update(_cp)
        .where(_cp.c.connected.is_(True), ~held)
        .values(connected=False, disconnected_at=now, updated_at=now)
    )
    return int(result.rowcount or 0)


async def holder(conn: AsyncConnection, cp_id: str, dead_after: float) -> str | None:
    """The live node holding charger `cp_id`'s socket, if it is connected to one."""
    stmt = (
        select(_cp.c.node_id)
        .join(_nodes, _nodes.c.id == _cp.c.node_id)
        .where(
            _cp.c.id == cp_id,
            _cp.c.connected.is_(True),
            _nodes.c.heartbeat_at >= _ago(dead_after),
        )
    )
    found = (await conn.execute(stmt)).scalar_one_or_none()
    return None if found is None else str(found)


async def recorded_holder(conn: AsyncConnection, cp_id: str) -> str | None:
    """The node recorded for charger `cp_id`'s latest connection."""
    found = (await conn.execute(select(_cp.c.node_id).where(_cp.c.id == cp_id))).first()
    return None if found is None or found.node_id is None else str(found.node_id)


async def notify(conn: AsyncConnection, node_id: str, payload: str) -> None:
    """NOTIFY node `node_id`; delivered when (and only if) the transaction commits."""
    await conn.execute(select(func.pg_notify(channel_of(node_id), payload)))
