"""Who leads singleton work: on PostgreSQL the holder of the group's advisory lock (one
node at a time, another one within about a second once the holder's session ends, even
when the server ends it); on SQLite the process holding the group's byte of the lock
file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from csms.storage.leadership import (
    AdvisoryLeader,
    LeaderLockHeld,
    SqliteLeaderLock,
    lock_key,
)
from csms.workers import Singletons
from tests.postgres import db_url_for


async def _until(check: object, seconds: float) -> float:
    """Seconds until `check()` is true (fails after `seconds`)."""
    assert callable(check)
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "not within the time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.postgres_only
async def test_one_node_leads_and_another_takes_over_when_its_session_ends(
    tmp_path: Path,
) -> None:
    url = db_url_for(tmp_path / "lead.db")
    groups = [(Singletons("charging"), Singletons("ocpi")) for _ in range(2)]
    leaders = [AdvisoryLeader(url, g, node=f"node-{n}") for n, g in enumerate(groups)]
    first = asyncio.create_task(leaders[0].run())
    await _until(lambda: all(g.leading for g in groups[0]), 5.0)
    second = asyncio.create_task(leaders[1].run())
    try:
        await asyncio.sleep(1.5)  # it tried, at least once
        assert not any(g.leading for g in groups[1])
        # The server ends the leader's session (as when its node is killed, or cut off
        # and found dead by TCP keepalive): the leader notices and stops, the other leads.
        # The cluster is shared by the test workers, and advisory locks are per database:
        # only this test's database counts.
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            ended = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'csms-singletons' "
                    "AND datname = current_database() AND pid IN "
                    "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND objid = (:key & 4294967295)::oid)"
                ),
                {"key": lock_key("ocpi")},
            )
        await engine.dispose()
        assert ended == 1
        took = await _until(lambda: all(g.leading for g in groups[1]), 10.0)
        assert took < 3.0
        await _until(lambda: not any(g.leading for g in groups[0]), 5.0)
        # The old leader connects again and waits.
        await asyncio.sleep(1.5)
        assert not any(g.leading for g in groups[0])
        # A node that stops gives the lock up at once.
        second.cancel()
        await asyncio.wait([second])
        assert not any(g.leading for g in groups[1])
        await _until(lambda: all(g.leading for g in groups[0]), 3.0)
    finally:
        for task in (first, second):
            task.cancel()
        await asyncio.wait([first, second])


_HOLD = """
import sys, time
from pathlib import Path
from csms.storage.leadership import SqliteLeaderLock
lock = SqliteLeaderLock(Path(sys.argv[1]))
lock.acquire(["ocpi"], {})
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.sqlite_only
def test_a_group_held_by_another_process_on_the_sqlite_file_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "csms.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lock = SqliteLeaderLock(database)
        with pytest.raises(LeaderLockHeld) as refused:
            lock.acquire(["charging", "ocpi"], {"ocpi": "the OCPI work"})
        assert str(refused.value).startswith(
            f"another csms process already runs the OCPI work on {database}"
        )
        # The other group is free (all or nothing: nothing was kept by the refusal).
        lock.acquire(["charging"], {})
        lock.release()
    finally:
        holder.kill()
        holder.communicate()  # waits, and closes its pipe
    # The holder died: its lock went with it.
    lock = SqliteLeaderLock(database)
    lock.acquire(["charging", "ocpi"], {})
    lock.release()
