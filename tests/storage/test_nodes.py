"""The node registry, routed commands' claims and the LISTEN connection, on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update

from csms.core.charger import RegistrationStatus
from csms.storage import charge_points as cp_repo
from csms.storage import commands as command_repo
from csms.storage import nodes as node_repo
from csms.storage.database import Database, WriteTx
from csms.storage.models import NodeRow
from csms.storage.notifications import Listener
from tests.postgres import db_url_for

pytestmark = pytest.mark.postgres_only

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "t.db"))
    database.start()
    yield database
    await database.close()


async def connect(db: Database, cp_id: str, node: str) -> None:
    async def unit(w: WriteTx) -> None:
        cp_repo.connected_later(w, cp_id, "1.6", RegistrationStatus.ACCEPTED, NOW, node)

    await db.write(unit)


async def test_dead_nodes_are_removed_and_their_chargers_marked_offline(db: Database) -> None:
    async def setup(w: WriteTx) -> None:
        conn = await w.connection()
        await node_repo.register(conn, "n1", "ocpp")
        await node_repo.register(conn, "n2", "ocpp")

    await db.write(setup)
    await connect(db, "CP-1", "n1")
    await connect(db, "CP-2", "n2")
    async with db.read() as conn:
        assert await node_repo.holder(conn, "CP-1", 30) == "n1"
        assert await node_repo.holder(conn, "CP-2", 30) == "n2"

    async def age(w: WriteTx) -> None:
        await (await w.connection()).execute(
            update(NodeRow)
            .where(NodeRow.id == "n1")
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=31))
        )

    await db.write(age)
    async with db.read() as conn:
        # Stale already: commands are not routed to it any more.
        assert await node_repo.holder(conn, "CP-1", 30) is None

    async def reap(w: WriteTx) -> tuple[list[str], int]:
        return await node_repo.reap(await w.connection(), 30, NOW)

    assert await db.write(reap) == (["n1"], 1)
    assert await db.write(reap) == ([], 0)

    async def beat(w: WriteTx) -> tuple[bool, bool]:
        conn = await w.connection()
        return await node_repo.beat(conn, "n1"), await node_repo.beat(conn, "n2")

    # n1 learns that it was taken for dead at its next heartbeat.
    assert await db.write(beat) == (False, True)
    async with db.read() as conn:
        one = await cp_repo.get(conn, "CP-1")
        two = await cp_repo.get(conn, "CP-2")
    assert one is not None and two is not None
    assert (one.connected, one.node_id, one.disconnected_at) == (False, "n1", NOW)
    assert (two.connected, two.node_id) == (True, "n2")


async def test_a_disconnection_is_recorded_only_by_the_node_holding_the_charger(
    db: Database,
) -> None:
    await connect(db, "CP-M", "n1")
    await connect(db, "CP-M", "n2")  # moved to n2

    async def lost(node: str) -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.disconnected_later(w, "CP-M", node, NOW, NOW)

        await db.write(unit)

    await lost("n1")  # n1's old socket closed late
    async with db.read() as conn:
        found = await cp_repo.get(conn, "CP-M")
    assert found is not None and (found.connected, found.node_id) == (True, "n2")
    await lost("n2")
    async with db.read() as conn:
        found = await cp_repo.get(conn, "CP-M")
    assert found is not None and found.connected is False


async def test_a_routed_command_is_taken_up_once_or_given_up(db: Database) -> None:
    async def entry(w: WriteTx) -> int:
        conn = await w.connection()
        entry_id = await command_repo.open_entry(
            conn,
            cp_id="CP-R",
            command="trigger",
            params={"message": "Heartbeat"},
            source="api",
            requested_by="ann",
            now=NOW,
        )
        await command_repo.route(
            conn,
            entry_id,
            request={"message": "Heartbeat"},
            timeout_s=7.0,
            vouched=None,
            origin="api-node",
            target="n2",
        )
        return entry_id

    first, second = await db.write(entry), await db.write(entry)

    async def claim(entry_id: int, node: str) -> object:
        async def unit(w: WriteTx) -> object:
            return await command_repo.claim(await w.connection(), entry_id, node)

        return await db.write(unit)

    async def give_up(entry_id: int) -> bool:
        async def unit(w: WriteTx) -> bool:
            return await command_repo.end_unless(
                await w.connection(),
                entry_id,
                outcome="not_connected",
                message="not connected",
                now=NOW,
                taken_up=False,
            )

        return await db.write(unit)

    assert await claim(first, "n1") is None  # not addressed to n1
    taken = await claim(first, "n2")
    assert taken is not None
    assert await claim(first, "n2") is None
    assert await give_up(first) is False  # n2 has it
    assert await give_up(second) is True
    assert await claim(second, "n2") is None  # given up: never sent late
    async with db.read() as conn:
        assert await command_repo.result_of(conn, first) is None  # still running on n2
        ended = await command_repo.result_of(conn, second)
        assert await command_repo.waiting_for(conn, "n2", NOW) == []
    assert ended is not None and ended.outcome.value == "not_connected"


async def test_the_listen_connection_comes_back_after_it_was_killed(db: Database) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    reconnected = asyncio.Event()
    listener = Listener(
        str(db.engine.url.render_as_string(hide_password=False)),
        node_repo.channel_of("n-listen"),
        received.put_nowait,
        reconnected.set,
    )
    await listener.start()

    async def send(payload: str) -> None:
        async def unit(w: WriteTx) -> None:
            await node_repo.notify(await w.connection(), "n-listen", payload)

        await db.write(unit)

    try:
        await send("one")
        assert await asyncio.wait_for(received.get(), 5) == "one"

        async def kill(w: WriteTx) -> int:
            result = await (await w.connection()).execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": listener.application_name},
            )
            return int(result.scalar_one())

        assert await db.write(kill) == 1
        await asyncio.wait_for(reconnected.wait(), 10)
        assert listener.reconnections == 1
        await send("two")
        assert await asyncio.wait_for(received.get(), 5) == "two"
    finally:
        await listener.close()
