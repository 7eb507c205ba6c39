"""Which process runs the singleton work (csms.workers.Singletons) of each group: on
PostgreSQL the holder of a session-level advisory lock, on a SQLite file the one process
that holds an exclusive lock on a file beside it.

Only the locks live here; what the work is belongs to the app and the services.

PostgreSQL: `AdvisoryLeader` keeps one dedicated connection (no pool, autocommit) and tries
`pg_try_advisory_lock(key)` for each group it does not lead every RETRY_S seconds. A group
whose lock it got leads (its work starts). While it leads, the connection is checked every
CHECK_S seconds; a check that fails or takes longer than CHECK_TIMEOUT_S means the lock may
be gone (the server ended the session): every group stops leading at once and the loop
connects again. The lock is the session's, so it goes with the process: a node killed with
`kill -9` closes its socket, the server ends its session at once and another node takes
over at its next try (within RETRY_S). A node cut off without a close is noticed by the
server's TCP keepalive, set on the dedicated connection to KEEPALIVE (about 8 s).

SQLite: `SqliteLeaderLock` takes `fcntl.lockf` on one byte per group of `<database>.lock`
(non-blocking); a second process asking for a group already held is refused with one line.
Both locks die with their process: no stale lock file to clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from csms.workers import Singletons

log = structlog.get_logger("csms.storage.leadership")

# Seconds between two tries for a lock this node does not hold (the longest a hand-over
# waits once the holder's session has ended).
RETRY_S = 1.0
# Seconds between two checks of the connection that holds locks, and how long one may take.
CHECK_S = 1.0
CHECK_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 5.0
# A connection that keeps failing is logged once a minute, not once a try.
REPORT_EVERY_S = 60.0
# The server's TCP keepalive on the dedicated connection: a holder cut off without a close
# loses its session (and its locks) after about idle + interval * count seconds.
KEEPALIVE = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
}


def lock_key(group: str) -> int:
    """The advisory lock key of a group: a stable signed 64-bit number of its name."""
    digest = hashlib.sha256(b"csms-singleton:" + group.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def node_name() -> str:
    """This process, for logs: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class AdvisoryLeader:
    """Leadership of `groups` among processes on one PostgreSQL database (see the module
    docstring). `run()` until cancelled; cancelling stops the work it leads, then closes
    the connection (which releases the locks)."""

    def __init__(
        self,
        url: str,
        groups: Sequence[Singletons],
        *,
        retry: float = RETRY_S,
        check: float = CHECK_S,
        node: str | None = None,
    ) -> None:
        self.url = url
        self.groups = list(groups)
        self.retry = retry
        self.check = check
        self.node = node or node_name()
        # Whether the last connection was made (a failure after it is news at once).
        self._connected = False

    def _engine(self) -> AsyncEngine:
        return create_async_engine(
            self.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "timeout": CONNECT_TIMEOUT_S,
                "server_settings": {"application_name": "csms-singletons", **KEEPALIVE},
            },
        )

    async def run(self) -> None:
        engine = self._engine()
        loop = asyncio.get_running_loop()
        reported_at: float | None = None
        try:
            while True:
                try:
                    await self._hold(engine)
                except Exception as exc:  # noqa: BLE001 - the loop's boundary: connect again
                    # Once, then once a minute while the database stays out of reach.
                    due = reported_at is None or loop.time() - reported_at >= REPORT_EVERY_S
                    if due or self._connected:
                        reported_at = loop.time()
                        log.warning(
                            "singleton_lock_connection_failed",
                            node=self.node,
                            error=" ".join(str(exc).split())[:300] or type(exc).__name__,
                            retry_in_s=self.retry,
                        )
                    self._connected = False
                await asyncio.sleep(self.retry)
        finally:
            await engine.dispose()

    async def _hold(self, engine: AsyncEngine) -> None:
        """One connection's life: take what locks it can, check it, until it fails (then
        every group stops leading before the connection is dropped)."""
        conn = await engine.connect()
        self._connected = True
        lost = False
        try:
            while True:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await self._try_locks(conn)
                everything = all(g.leading for g in self.groups)
                await asyncio.sleep(self.check if everything else self.retry)
        except Exception:
            lost = True
            raise
        finally:
            await self._step_down(lost)
            await _close(conn)

    async def _try_locks(self, conn: AsyncConnection) -> None:
        """Try the lock of every group not led; with all led, only check the connection."""
        waiting = [g for g in self.groups if not g.leading]
        if not waiting:
            await conn.execute(text("SELECT 1"))
            return
        for group in waiting:
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(group.group)}
            )
            if got:
                log.info("singleton_leader_elected", group=group.group, node=self.node)
                await group.lead()

    async def _step_down(self, lost: bool) -> None:
        """Stop leading every group (`lost`: the connection failed, so the lock may be
        another node's already; else this node is shutting down)."""
        for group in self.groups:
            if not group.leading:
                continue
            if lost:
                log.warning("singleton_leader_lost", group=group.group, node=self.node)
            else:
                log.info("singleton_leader_released", group=group.group, node=self.node)
            await group.follow()


async def _close(conn: AsyncConnection) -> None:
    """Close the dedicated connection (the session ends, its locks go); one that cannot be
    closed politely is dropped."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await conn.close()
    except Exception:  # noqa: BLE001 - a broken connection (or a timeout): drop it
        with contextlib.suppress(Exception):
            await conn.invalidate()


class LeaderLockHeld(Exception):
    """Another process already runs this group's singleton work on the SQLite file; the
    message says so in one line."""


class SqliteLeaderLock:
    """Exclusive locks on one byte per group of `<database>.lock`, held until `release()`
    or the end of the process."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[bytes] | None = None

    def acquire(self, groups: Sequence[str], what: dict[str, str]) -> None:
        """Lock every group or none; LeaderLockHeld names the first one taken (`what`: the
        group's work, for the message)."""
        try:
            import fcntl
        except ImportError:  # not on this platform: nothing to lock with
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+b")
        try:
            for group in groups:
                try:
                    fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _offset(group))
                except OSError:
                    raise LeaderLockHeld(
                        f"another csms process already runs {what.get(group, group)} on "
                        f"{self.database} (lock {self.path}); run one such process per SQLite "
                        "file, or several nodes on PostgreSQL"
                    ) from None
        except BaseException:
            file.close()  # releases what was taken
            raise
        self._file = file

    def release(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _offset(group: str) -> int:
    """The byte of the lock file that stands for a group."""
    return lock_key(group) % 4096
