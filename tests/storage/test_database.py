"""The group-commit writer on a real SQLite file."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from structlog.testing import capture_logs

from csms.core.charger import BootInfo, RegistrationStatus
from csms.core.metering import make_sample
from csms.storage import charge_points as cp_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, DatabaseWriterFailed, WriterStats, WriteTx
from csms.storage.migrate import upgrade
from csms.storage.models import ChargePointRow, MeterValueRow
from tests.postgres import Current, db_url_for

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "t.db"))
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


async def count(db: Database, model: type) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_units_from_many_callers_share_commits(db: Database) -> None:
    async def add(i: int) -> str:
        async def unit(w: WriteTx) -> str:
            conn = await w.connection()
            await cp_repo.create(conn, f"CP{i}", RegistrationStatus.ACCEPTED, NOW)
            return f"CP{i}"

        return await db.write(unit)

    results = await asyncio.gather(*(add(i) for i in range(200)))
    assert results == [f"CP{i}" for i in range(200)]
    assert await count(db, ChargePointRow) == 200
    assert db.stats.units == 200
    assert db.stats.batches < 200  # grouped


async def test_a_failing_unit_does_not_take_the_batch_down(db: Database) -> None:
    async def add(cp_id: str) -> None:
        async def unit(w: WriteTx) -> None:
            await cp_repo.create(await w.connection(), cp_id, RegistrationStatus.ACCEPTED, NOW)

        await db.write(unit)

    outcomes = await asyncio.gather(
        *(add(cp_id) for cp_id in ["A", "B", "A", "C"]), return_exceptions=True
    )
    assert [isinstance(o, Exception) for o in outcomes] == [False, False, True, False]
    assert await count(db, ChargePointRow) == 3


async def in_one_batch(
    db: Database, units: Sequence[Callable[[WriteTx], Awaitable[object]]]
) -> list[object]:
    """Submit `units` together (the writer takes them as one batch) and gather outcomes."""
    outcomes = await asyncio.gather(*(db.write(u) for u in units), return_exceptions=True)
    assert db.stats.batches == 1 and db.stats.largest_batch == len(units)
    return outcomes


async def test_one_failing_unit_costs_one_rollback_not_a_commit_per_unit(db: Database) -> None:
    await db.write(create_charger("TAKEN"))
    db.stats = WriterStats()
    units = [create_charger(f"CP{i}") for i in range(50)]
    units[20] = create_charger("TAKEN")  # raises inside the unit (primary key taken)
    outcomes = await in_one_batch(db, units)
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, Exception)]
    assert failed == [20]
    assert isinstance(outcomes[20], IntegrityError)
    assert [o for i, o in enumerate(outcomes) if i != 20] == [
        f"CP{i}" for i in range(50) if i != 20
    ]
    # The old writer redid the batch one unit at a time: 49 commits and 50 transactions.
    stats = db.stats
    assert (stats.commits, stats.rollbacks, stats.failed_units, stats.retried_alone) == (1, 1, 1, 0)
    assert await count(db, ChargePointRow) == 1 + 49


def add_reading(evse_id: int) -> Callable[[WriteTx], Awaitable[int]]:
    async def unit(w: WriteTx) -> int:
        sample = make_sample(timestamp=NOW, raw_value="1500", unit="Wh")
        tx_repo.add_samples_later(
            w, cp_id="CP", evse_id=evse_id, connector_id=1, transaction_id=None, samples=[sample]
        )
        return evse_id

    return unit


async def test_a_poisoned_row_in_merged_statements_is_pinned_on_its_unit(db: Database) -> None:
    # Meter rows of all units go to the database in one merged statement at the end of the
    # batch; a value SQLite cannot bind (the 2^64 - 1 a charger once sent) fails that
    # statement, which names no unit.
    units = [add_reading(i) for i in range(1, 51)]
    units[30] = add_reading(2**64 - 1)
    outcomes = await in_one_batch(db, units)
    assert [i for i, o in enumerate(outcomes) if isinstance(o, Exception)] == [30]
    # SQLite's driver cannot bind it; PostgreSQL's refuses it for an int32 column.
    assert isinstance(outcomes[30], OverflowError if Current.backend == "sqlite" else DBAPIError)
    stats = db.stats
    # One rollback for the merged statement, one for the rerun that names the unit.
    assert (stats.commits, stats.rollbacks, stats.failed_units, stats.retried_alone) == (1, 2, 1, 0)
    async with db.read() as conn:
        stored = (await conn.execute(select(MeterValueRow.evse_id))).scalars().all()
    assert sorted(stored) == [i for i in range(1, 51) if i != 31]


async def test_a_deferred_row_breaking_a_constraint_is_pinned_on_its_unit(
    db: Database,
) -> None:
    # A deferred row that breaks a constraint fails the batch where no unit is running;
    # rerun with each unit's rows right after it, the failure is pinned on the right unit.
    await db.write(create_charger("TAKEN"))
    db.stats = WriterStats()

    def deferred_charger(cp_id: str) -> Callable[[WriteTx], Awaitable[str]]:
        async def unit(w: WriteTx) -> str:
            w.defer(
                insert(ChargePointRow),
                {"id": cp_id, "registration": "Accepted", "created_at": NOW, "updated_at": NOW},
            )
            return cp_id

        return unit

    units = [deferred_charger(f"CP{i}") for i in range(10)]
    units[4] = deferred_charger("TAKEN")
    outcomes = await in_one_batch(db, units)
    assert [i for i, o in enumerate(outcomes) if isinstance(o, Exception)] == [4]
    assert (db.stats.commits, db.stats.rollbacks, db.stats.retried_alone) == (1, 2, 0)
    assert await count(db, ChargePointRow) == 1 + 9


async def test_deferred_rows_are_visible_to_later_units(db: Database) -> None:
    later = NOW.replace(minute=5)
    samples = [
        make_sample(timestamp=NOW, raw_value="1500", unit="Wh"),
        make_sample(timestamp=NOW, raw_value="7.2", unit="kW", measurand="Power.Active.Import"),
        make_sample(timestamp=later, raw_value="2100", unit="Wh"),
    ]

    async def write_samples(w: WriteTx) -> None:
        tx_repo.add_samples_later(
            w, cp_id="CP", evse_id=1, connector_id=1, transaction_id=7, samples=samples
        )

    async def read_back(w: WriteTx) -> int:
        return len(await tx_repo.register_readings(await w.connection(), 7))

    first = db.write(write_samples)
    second = db.write(read_back)
    _, seen = await asyncio.gather(first, second)
    assert seen == 2
    assert await count(db, MeterValueRow) == 2  # one row per reading (timestamp)
    async with db.read() as conn:
        stored = await tx_repo.samples_of(conn, 7)
        readings = await tx_repo.register_readings(conn, 7)
    assert stored == samples  # bulk rows read back like ORM-written ones
    assert readings == [(NOW, 1500.0), (later, 2100.0)]


async def test_close_flushes_what_was_submitted(tmp_path: Path) -> None:
    db = Database.from_url(db_url_for(tmp_path / "t.db"))
    await upgrade(db.engine)
    db.start()

    async def boot(w: WriteTx) -> None:
        conn = await w.connection()
        await cp_repo.create(conn, "CP", RegistrationStatus.ACCEPTED, NOW)
        cp_repo.record_boot_later(w, "CP", BootInfo("V", "M"), "1.6", NOW)

    pending = asyncio.ensure_future(db.write(boot))
    await asyncio.sleep(0)
    await db.close()
    await pending
    reopened = Database.from_url(db_url_for(tmp_path / "t.db"))
    async with reopened.read() as conn:
        cp = await cp_repo.get(conn, "CP")
    await reopened.engine.dispose()
    assert cp is not None and cp.vendor == "V"


async def test_last_seen_of_many_chargers_in_one_write(db: Database) -> None:
    ids = [f"CP{i}" for i in range(1000)]

    async def create(w: WriteTx) -> None:
        conn = await w.connection()
        for cp_id in ids:
            await cp_repo.create(conn, cp_id, RegistrationStatus.ACCEPTED, NOW)

    await db.write(create)
    seen = [(cp_id, NOW.replace(minute=i % 60)) for i, cp_id in enumerate(ids)]

    async def touch(w: WriteTx) -> None:
        await cp_repo.touch_many(w, seen)

    await db.write(touch)
    async with db.read() as conn:
        stored = await cp_repo.get_many(conn, ids)
    assert [stored[cp_id].last_seen_at for cp_id in ids] == [at for _, at in seen]


# --- a writer that dies ----------------------------------------------------------------------


def create_charger(cp_id: str) -> Callable[[WriteTx], Awaitable[str]]:
    async def unit(w: WriteTx) -> str:
        await cp_repo.create(await w.connection(), cp_id, RegistrationStatus.ACCEPTED, NOW)
        return cp_id

    return unit


async def test_a_writer_killed_by_a_unit_fails_every_waiting_and_later_write(
    db: Database,
) -> None:
    failures: list[DatabaseWriterFailed] = []
    db.on_failure.append(failures.append)
    await db.write(create_charger("BEFORE"))
    release = asyncio.Event()

    async def rogue(w: WriteTx) -> None:
        # A bug: a unit that lets a cancellation escape ends the writer task itself.
        await release.wait()
        raise asyncio.CancelledError

    with capture_logs() as logs:
        killer = asyncio.ensure_future(db.write(rogue))
        await asyncio.sleep(0.05)  # the writer holds the rogue unit's batch
        waiting = [asyncio.ensure_future(db.write(create_charger(f"CP{i}"))) for i in range(5)]
        await asyncio.sleep(0)
        release.set()
        outcomes = await asyncio.wait_for(
            asyncio.gather(killer, *waiting, return_exceptions=True), 5
        )
    assert all(isinstance(o, DatabaseWriterFailed) for o in outcomes), outcomes
    assert str(outcomes[1]) == "the database writer was cancelled"
    # A write after the death fails at once, with the same reason.
    with pytest.raises(DatabaseWriterFailed, match="the database writer was cancelled"):
        await asyncio.wait_for(db.write(create_charger("AFTER")), 5)
    assert [str(f) for f in failures] == ["the database writer was cancelled"]
    (logged,) = [e for e in logs if e["event"] == "database_writer_failed"]
    assert logged["log_level"] == "error" and logged["error"] == str(failures[0])
    # What was committed before stays; nothing after the death was.
    assert await count(db, ChargePointRow) == 1
    await asyncio.wait_for(db.close(), 5)


@pytest.mark.sqlite_only
async def test_the_database_file_removed_under_the_writer_stops_it(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    db = Database.from_url(f"sqlite+aiosqlite:///{folder}/t.db")
    await upgrade(db.engine)
    db.start()
    try:
        assert await db.write(create_charger("CP1")) == "CP1"
        # SQLite would go on committing into the deleted file, and lose it all at exit.
        shutil.rmtree(folder)
        with capture_logs():
            with pytest.raises(DatabaseWriterFailed) as first:
                await asyncio.wait_for(db.write(create_charger("CP2")), 5)
            with pytest.raises(DatabaseWriterFailed) as later:
                await asyncio.wait_for(db.write(create_charger("CP3")), 5)
        expected = (
            f"the database file {folder / 't.db'} was removed or replaced while in use: "
            "nothing more can be committed to it"
        )
        assert str(first.value) == str(later.value) == expected
        assert db.failure is not None
    finally:
        await asyncio.wait_for(db.close(), 5)
