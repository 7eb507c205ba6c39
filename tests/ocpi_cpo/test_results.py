"""Results of partners' requests on a real SQLite file: a request whose result cannot be
stored (the database refuses it: here a trigger, as a constraint would) is recorded with
its error and backed off, and the other overdue requests are closed all the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from csms.services.partners import PartnerService
from csms.storage import ocpi_commands as request_repo
from csms.storage import outbox as outbox_repo
from csms.storage.database import Database
from csms.storage.migrate import upgrade
from ocpi_cpo.results import RESULT_RETRY, SWEEP_GRACE, AsyncResults

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/r.db")
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


async def test_a_result_that_cannot_be_stored_does_not_stop_the_sweep(db: Database) -> None:
    moment = [START]
    woken: list[int] = []
    results = AsyncResults(db, lambda: moment[0], lambda: woken.append(1))
    partner_id = (await PartnerService(db, lambda: moment[0]).add("emsp")).partner.id
    ids = [
        await results.open(
            partner_id=partner_id,
            reply_to=None,
            kind="START_SESSION",
            response_url=f"http://emsp.example/results/{i}",
            request={"n": i},
            charge_point_id="CP1",
            timeout_s=30,
        )
        for i in range(3)
    ]
    poisoned = ids[0]  # the earliest deadline: first in line
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_result BEFORE UPDATE OF state ON ocpi_commands "
                f"WHEN NEW.id = {poisoned} AND NEW.state = 'done' "
                "BEGIN SELECT RAISE(ABORT, 'result refused'); END"
            )
        )

    async def request(request_id: int) -> request_repo.PartnerRequest:
        async with db.read() as conn:
            found = await request_repo.get(conn, request_id)
        assert found is not None
        return found

    moment[0] = START + timedelta(seconds=30) + SWEEP_GRACE
    with capture_logs() as logs:
        assert await asyncio.wait_for(results.sweep(), 5) == 2
    assert [(await request(i)).state for i in ids] == ["pending", "done", "done"]
    stuck = await request(poisoned)
    assert (stuck.attempts, stuck.last_error) == (1, "IntegrityError: result refused")
    assert stuck.next_attempt_at == moment[0] + timedelta(seconds=RESULT_RETRY.delay(1))
    (warning,) = [e for e in logs if e["event"] == "ocpi_result_not_queued"]
    assert (warning["request_id"], warning["attempts"]) == (poisoned, 1)
    async with db.read() as conn:
        queued = await outbox_repo.listing(conn, partner_id=partner_id)
    assert sorted(e.object_key for e in queued) == [f"results/{i}" for i in ids[1:]]

    # Not tried again before its time; then again, and once the database takes it, sent.
    assert await results.sweep() == 0
    assert (await request(poisoned)).attempts == 1
    moment[0] = stuck.next_attempt_at
    with capture_logs():
        assert await results.sweep() == 0
    assert (await request(poisoned)).attempts == 2
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_result"))
    moment[0] += timedelta(seconds=RESULT_RETRY.delay(2))
    assert await results.sweep() == 1
    done = await request(poisoned)
    assert done.state == "done" and done.result == {"result": "TIMEOUT"}
