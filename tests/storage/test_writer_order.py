"""The group-commit writer merges deferred rows across units: a batch must leave the database
as its units applied one by one, in order, would (connect, disconnect, heartbeat, status,
transaction rows of one charger in one batch)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from csms.core.charger import RegistrationStatus, StatusReport
from csms.core.status import ConnectorStatus
from csms.core.transactions import Transaction, TransactionState
from csms.storage import charge_points as cp_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, WriteTx
from csms.storage.migrate import upgrade
from csms.storage.models import ChargePointRow, ConnectivityRow, ConnectorRow, TransactionRow
from tests.postgres import db_url_for

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
Unit = Callable[[WriteTx], Awaitable[None]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def connect(cp_id: str, seconds: float, node: str = "n1") -> Unit:
    async def unit(w: WriteTx) -> None:
        cp_repo.connected_later(w, cp_id, "1.6", RegistrationStatus.ACCEPTED, at(seconds), node)

    return unit


def disconnect(cp_id: str, seconds: float, node: str = "n1", seen: float | None = None) -> Unit:
    async def unit(w: WriteTx) -> None:
        last = at(seconds if seen is None else seen)
        cp_repo.disconnected_later(w, cp_id, node, last, at(seconds))

    return unit


def heartbeat(cp_id: str, seconds: float) -> Unit:
    async def unit(w: WriteTx) -> None:
        cp_repo.heartbeat_later(w, cp_id, at(seconds))

    return unit


def status(cp_id: str, state: ConnectorStatus, seconds: float, reported: float) -> Unit:
    report = StatusReport(
        evse_id=1, connector_id=1, status=state, error_code="NoError", timestamp=at(reported)
    )

    async def unit(w: WriteTx) -> None:
        cp_repo.record_status_later(w, cp_id, report, at(seconds))

    return unit


def start(cp_id: str, tx_id: int, seconds: float) -> Unit:
    tx = Transaction(
        id=tx_id,
        charge_point_id=cp_id,
        ocpp_version="1.6",
        ocpp_transaction_id=str(tx_id),
        evse_id=1,
        connector_id=1,
        id_tag="CARD",
        auth_status="Accepted",
        start_at=at(seconds),
        meter_start_wh=1000,
        state=TransactionState.ACTIVE,
    )

    async def unit(w: WriteTx) -> None:
        tx_repo.insert_later(w, tx, at(seconds))

    return unit


def stop(tx_id: int, seconds: float, meter_stop: int) -> Unit:
    async def unit(w: WriteTx) -> None:
        tx_repo.update_later(w, tx_id, at(seconds), meter_stop_wh=meter_stop, stop_at=at(seconds))

    return unit


@pytest.fixture
async def databases(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two databases: one takes the units as one batch, the other one by one."""
    made = []
    for name in ("batch", "one-by-one"):
        database = Database.from_url(db_url_for(tmp_path / f"{name}.db"))
        await upgrade(database.engine)
        database.start()
        made.append(database)
    yield made[0], made[1]
    for database in made:
        await database.close()


async def in_one_batch(db: Database, units: list[Unit]) -> None:
    """Submit `units` together; they must all have gone into one batch."""
    batches = db.stats.batches
    await asyncio.gather(*(db.write(unit) for unit in units))
    assert db.stats.batches == batches + 1


async def one_by_one(db: Database, units: list[Unit]) -> None:
    for unit in units:
        await db.write(unit)


async def state(db: Database) -> dict[str, Any]:
    """What the units may change, in a form that compares across databases."""
    cp = ChargePointRow
    conn_row = ConnectorRow
    links = ConnectivityRow
    tx = TransactionRow
    async with db.read() as conn:
        chargers = (
            await conn.execute(
                select(
                    cp.id,
                    cp.connected,
                    cp.connected_at,
                    cp.disconnected_at,
                    cp.last_seen_at,
                    cp.last_heartbeat_at,
                    cp.node_id,
                ).order_by(cp.id)
            )
        ).all()
        history = (
            await conn.execute(
                select(links.charge_point_id, links.connected, links.at, links.node_id).order_by(
                    links.id
                )
            )
        ).all()
        connectors = (
            await conn.execute(
                select(conn_row.charge_point_id, conn_row.status, conn_row.status_at).order_by(
                    conn_row.charge_point_id
                )
            )
        ).all()
        transactions = (
            await conn.execute(
                select(tx.id, tx.meter_start_wh, tx.meter_stop_wh, tx.stop_at).order_by(tx.id)
            )
        ).all()
    return {
        "chargers": [tuple(r) for r in chargers],
        "history": [tuple(r) for r in history],
        "connectors": [tuple(r) for r in connectors],
        "transactions": [tuple(r) for r in transactions],
    }


async def check(databases: tuple[Database, Database], before: list[Unit], units: list[Unit]) -> Any:
    """Apply `before` one by one to both databases, then `units` as one batch to the first
    and one by one to the second; both must agree. Returns the batch database's state."""
    batch, reference = databases
    for db in databases:
        await one_by_one(db, before)
    await in_one_batch(batch, units)
    await one_by_one(reference, units)
    found = await state(batch)
    assert found == await state(reference)
    return found


def charger(found: dict[str, Any], cp_id: str) -> tuple[Any, ...]:
    return next(row for row in found["chargers"] if row[0] == cp_id)


def history_of(found: dict[str, Any], cp_id: str) -> list[tuple[bool, datetime]]:
    return [(row[1], row[2]) for row in found["history"] if row[0] == cp_id]


async def test_a_reconnection_after_another_chargers_connect_stays_connected(
    databases: tuple[Database, Database],
) -> None:
    # B drops and comes back within one batch, behind A's connection: B is online.
    found = await check(
        databases,
        [connect("B", 0)],
        [connect("A", 1), disconnect("B", 2), connect("B", 3)],
    )
    b = charger(found, "B")
    assert (b[1], b[2], b[3], b[6]) == (True, at(3), at(2), "n1")
    assert charger(found, "A")[1] is True
    assert history_of(found, "B") == [(True, at(0)), (False, at(2)), (True, at(3))]


async def test_a_connection_replaced_on_another_node_stays_connected(
    databases: tuple[Database, Database],
) -> None:
    # B moved from n1 to n2; n1's late disconnect (behind C's) must not end n2's connection.
    found = await check(
        databases,
        [connect("B", 0, node="n1"), connect("C", 0, node="n1")],
        [disconnect("C", 1), connect("B", 2, node="n2"), disconnect("B", 3, node="n1")],
    )
    b = charger(found, "B")
    assert (b[1], b[2], b[3], b[6]) == (True, at(2), None, "n2")
    assert history_of(found, "B") == [(True, at(0)), (True, at(2))]
    assert charger(found, "C")[1] is False


async def test_a_connect_then_a_disconnect_on_one_node_end_as_applied_in_order(
    databases: tuple[Database, Database],
) -> None:
    # On one node the gateway never writes an old connection's disconnect after the new
    # connection's (the replaced one records none); written anyway, the later one wins.
    found = await check(
        databases,
        [connect("B", 0), connect("C", 0)],
        [disconnect("C", 1), connect("B", 2), disconnect("B", 3)],
    )
    b = charger(found, "B")
    assert (b[1], b[2], b[3]) == (False, at(2), at(3))
    assert history_of(found, "B") == [(True, at(0)), (True, at(2)), (False, at(3))]


async def test_last_seen_follows_the_units_order(databases: tuple[Database, Database]) -> None:
    # A heartbeat of the old connection, then the new connection's record.
    found = await check(
        databases,
        [connect("B", 0)],
        [connect("A", 1), heartbeat("B", 2), disconnect("B", 3, seen=2), connect("B", 4)],
    )
    b = charger(found, "B")
    assert (b[1], b[4], b[5]) == (True, at(4), at(2))


async def test_statuses_of_one_connector_end_with_the_last(
    databases: tuple[Database, Database],
) -> None:
    charging, available = ConnectorStatus.CHARGING, ConnectorStatus.AVAILABLE
    found = await check(
        databases,
        [connect("A", 0), connect("B", 0)],
        [
            status("A", charging, 1, 1),
            heartbeat("B", 1),
            status("B", charging, 2, 2),
            status("B", available, 3, 2),  # same time stamp: the later message wins
        ],
    )
    assert [row[:2] for row in found["connectors"]] == [("A", "Charging"), ("B", "Available")]


async def test_a_transaction_started_and_stopped_in_one_batch_is_stopped(
    databases: tuple[Database, Database],
) -> None:
    found = await check(
        databases,
        [start("A", 1, 0)],
        [stop(1, 1, 1500), start("B", 2, 2), stop(2, 3, 2500)],
    )
    assert found["transactions"] == [(1, 1000, 1500, at(1)), (2, 1000, 2500, at(3))]


async def test_rows_of_different_chargers_still_share_one_statement(
    databases: tuple[Database, Database],
) -> None:
    batch, _ = databases
    await one_by_one(batch, [connect(f"H{i}", 0) for i in range(10)])
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()[:3]).lower())

    event.listen(batch.engine.sync_engine, "before_cursor_execute", count)
    try:
        interleaved = [u for i in range(10) for u in (connect(f"C{i}", 1), heartbeat(f"H{i}", 1))]
        await in_one_batch(batch, interleaved)
        merged = sent.count("insert into charge_points")
        sent.clear()
        # H0 comes back after its disconnect: its connect starts a second upsert.
        await in_one_batch(batch, [connect("A", 2), disconnect("H0", 3), connect("H0", 4)])
        split = sent.count("insert into charge_points")
    finally:
        event.remove(batch.engine.sync_engine, "before_cursor_execute", count)
    assert (merged, split) == (1, 2)
