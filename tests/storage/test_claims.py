"""Claims of singleton work on PostgreSQL: pushes of the outbox and CDRs of ended
transactions are claimed with `FOR UPDATE SKIP LOCKED`, so two workers (two nodes during a
hand-over of the singleton lock) racing over the same rows never both take one.

Two `Database` objects on one database stand for two nodes: each has its own engine and
its own group-commit writer, as two `csms serve` processes do."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from sqlalchemy import Table, func, insert, select, update

from csms.core.outbox import Push
from csms.services.billing import BillingService, Identity
from csms.storage import billing as billing_repo
from csms.storage import outbox as outbox_repo
from csms.storage.database import Database, WriteTx
from csms.storage.models import CdrRow, PartnerRow, TransactionRow
from ocpi_cpo.client import OcpiClient
from ocpi_cpo.context import OcpiSettings
from ocpi_cpo.push import Pusher
from tests.e2e.fake_partner import FakePartner
from tests.postgres import db_url_for

pytestmark = pytest.mark.postgres_only

_p = cast(Table, PartnerRow.__table__)
_tx = cast(Table, TransactionRow.__table__)
_cdr = cast(Table, CdrRow.__table__)
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    url = db_url_for(tmp_path / "claims.db")
    first, second = Database.from_url(url), Database.from_url(url)
    first.start()
    second.start()
    yield first, second
    await first.close()
    await second.close()


async def _pushes(
    db: Database, count: int, base: str = "http://emsp", token: str | None = None
) -> list[int]:
    async def unit(w: WriteTx) -> list[int]:
        conn = await w.connection()
        partner = await conn.execute(
            insert(_p).values(
                name="emsp",
                status="registered",
                their_token=token,
                token_encoding="base64",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        assert partner.inserted_primary_key is not None
        partner_id = int(partner.inserted_primary_key[0])
        return [
            await outbox_repo.enqueue(
                conn,
                partner_id,
                Push("sessions", "PUT", f"{base}/sessions/NL/CSM/{n}", {"n": n}, f"sessions/{n}"),
                NOW,
            )
            for n in range(count)
        ]

    return await db.write(unit)


async def test_a_push_claimed_by_one_node_is_skipped_by_the_other(
    nodes: tuple[Database, Database],
) -> None:
    first, second = nodes
    ids = await _pushes(first, 6)
    until = NOW + timedelta(seconds=15)
    async with first.engine.connect() as one, second.engine.connect() as two:
        await one.begin()
        await two.begin()
        mine = await outbox_repo.claim(one, ids[:4], NOW, until)
        # Locked by the first node's open write: skipped at once, not waited for.
        theirs = await asyncio.wait_for(outbox_repo.claim(two, ids, NOW, until), 2.0)
        assert mine == set(ids[:4])
        assert theirs == set(ids[4:])
        await one.commit()
        # Committed: no longer due before `until`, so still not the second node's.
        assert await outbox_repo.claim(two, ids, NOW, until) == set()
        await two.commit()
    async with first.read() as conn:
        due = await outbox_repo.due(conn, NOW + timedelta(seconds=1))
        later = await outbox_repo.due(conn, until)
    assert due == []
    assert sorted(e.id for e in later) == ids


async def test_two_nodes_racing_over_the_outbox_claim_every_push_once(
    nodes: tuple[Database, Database],
) -> None:
    first, second = nodes
    ids = await _pushes(first, 200)
    claimed: list[int] = []

    async def worker(db: Database) -> None:
        # Each round: the pushes due as this node reads them, then its claim in a write.
        while True:
            async with db.read() as conn:
                due = [e.id for e in await outbox_repo.due(conn, NOW, limit=30)]
            if not due:
                return

            async def unit(w: WriteTx, due: list[int] = due) -> set[int]:
                return await outbox_repo.claim(
                    await w.connection(), due, NOW, NOW + timedelta(seconds=30)
                )

            claimed.extend(await db.write(unit))

    await asyncio.gather(worker(first), worker(second), worker(first), worker(second))
    assert sorted(claimed) == ids  # every push claimed, none twice


async def test_two_push_workers_send_every_push_once(nodes: tuple[Database, Database]) -> None:
    """Two nodes' push workers over one outbox (a hand-over in which the old leader has not
    yet stopped): each push reaches the partner once."""
    first, second = nodes
    # A slow partner: both workers have requests in flight at the same time.
    fake = await FakePartner(
        endpoints=(("sessions", "RECEIVER"),), push_delay=lambda _seen: 0.05
    ).start()
    token = "their-token"
    fake.tokens.add(token)
    try:
        ids = await _pushes(first, 60, f"{fake.base}/2.2.1", token)
        settings = OcpiSettings(base_url="http://127.0.0.1:1", push_interval=0.1)
        async with aiohttp.ClientSession() as session:
            client = OcpiClient(session, timeout=5.0)
            pushers = [Pusher(db, client, settings) for db in (first, second)]
            async with pushers[0].running(), pushers[1].running():

                async def delivered() -> bool:
                    async with first.read() as conn:
                        return await outbox_repo.count_listed(conn) == 0

                deadline = asyncio.get_running_loop().time() + 30
                while not await delivered():
                    assert asyncio.get_running_loop().time() < deadline, "not delivered"
                    await asyncio.sleep(0.05)
    finally:
        await fake.stop()
    received = Counter(seen.path.rsplit("/", 1)[1] for seen in fake.pushes)
    assert sorted(int(n) for n in received) == list(range(len(ids)))
    assert set(received.values()) == {1}


async def _ended(db: Database, count: int) -> list[int]:
    start = NOW - timedelta(hours=1)

    async def unit(w: WriteTx) -> list[int]:
        conn = await w.connection()
        made = []
        for n in range(count):
            result = await conn.execute(
                insert(_tx).values(
                    charge_point_id=f"CP-{n % 5}",
                    ocpp_version="1.6",
                    evse_id=1,
                    connector_id=1,
                    id_tag="CARD",
                    id_tag_key="CARD",
                    auth_status="Accepted",
                    state="completed",
                    start_at=start,
                    meter_start_wh=0,
                    stop_at=start + timedelta(minutes=30),
                    meter_stop_wh=1000 + n,
                    energy_wh=1000 + n,
                    billing="pending",
                    billing_attempts=0,
                    received_at=start,
                    updated_at=start + timedelta(minutes=30),
                )
            )
            assert result.inserted_primary_key is not None
            made.append(int(result.inserted_primary_key[0]))
        return made

    return await db.write(unit)


async def test_a_transaction_claimed_for_its_cdr_is_skipped_by_the_other_node(
    nodes: tuple[Database, Database],
) -> None:
    first, second = nodes
    ids = await _ended(first, 4)
    async with first.engine.connect() as one, second.engine.connect() as two:
        await one.begin()
        await two.begin()
        assert await billing_repo.claim(one, ids[:2]) == set(ids[:2])
        assert await asyncio.wait_for(billing_repo.claim(two, ids), 2.0) == set(ids[2:])
        await one.execute(update(_tx).where(_tx.c.id.in_(ids[:2])).values(billing="billed"))
        await one.commit()
        # Billed by the first node: no longer pending for the second.
        assert await billing_repo.claim(two, ids[:2]) == set()
        await two.rollback()


async def test_two_nodes_billing_the_same_transactions_make_one_cdr_each(
    nodes: tuple[Database, Database],
) -> None:
    first, second = nodes
    ids = await _ended(first, 120)
    identity = Identity("NL", "CSM")

    def clock() -> datetime:
        return datetime.now(UTC)

    billers = [BillingService(db, clock, identity) for db in (first, second, first, second)]
    # Every biller reads the same pending transactions and prices them before it stores:
    # their writes race; the claims decide.
    for _ in range(5):
        await asyncio.gather(*(b.bill_pending() for b in billers))
    async with first.read() as conn:
        made = (await conn.execute(select(_cdr.c.transaction_id, _cdr.c.id))).all()
        pending = (
            await conn.execute(select(func.count()).where(_tx.c.billing == "pending"))
        ).scalar_one()
    per_transaction = Counter(tx_id for tx_id, _ in made)
    assert pending == 0
    assert sorted(per_transaction) == ids
    assert set(per_transaction.values()) == {1}
    assert len({cdr_id for _, cdr_id in made}) == len(made)  # numbered once each
