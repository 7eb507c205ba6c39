"""The database: async engine, read connections and the group-commit writer.

Every write goes through `Database.write`; its caller resumes only after the transaction
that holds its work is committed. Nothing here knows about OCPP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

T = TypeVar("T")
Unit = Callable[["WriteTx"], Awaitable[T]]

log = structlog.get_logger("csms.storage")


class DatabaseClosed(Exception):
    """A write was submitted after the writer stopped."""


class WriteTx:
    """What a unit of work gets: the writer's connection, and `defer` for statements that
    may be merged with the same statement of other units into one executemany.

    Deferred statements run, in order, before anything else touches the connection
    (`await tx.connection()`) and before the commit, so units always see each other's
    writes in submission order.
    """

    __slots__ = ("_conn", "_deferred", "dialect")

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._deferred: dict[Executable, list[dict[str, Any]]] = {}
        self.dialect: str = conn.dialect.name

    def defer(self, statement: Executable, params: dict[str, Any]) -> None:
        rows = self._deferred.get(statement)
        if rows is None:
            self._deferred[statement] = [params]
        else:
            rows.append(params)

    async def connection(self) -> AsyncConnection:
        if self._deferred:
            await self.flush()
        return self._conn

    async def flush(self) -> None:
        deferred, self._deferred = self._deferred, {}
        for statement, rows in deferred.items():
            await self._conn.execute(statement, rows)


@dataclass(slots=True)
class _Pending:
    unit: Unit[Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    units: int = 0
    retried_alone: int = 0
    commit_seconds: float = 0.0
    largest_batch: int = 0


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite files get WAL, a busy timeout and explicit BEGIN handling."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("writer") else "BEGIN")


class Database:
    """Owns the engine; `read()` lends a connection, `write(unit)` group-commits."""

    def __init__(
        self, engine: AsyncEngine, *, commit_delay_ms: float = 0.0, max_batch: int = 500
    ) -> None:
        self.engine = engine
        self._delay = commit_delay_ms / 1000.0
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = WriterStats()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_engine(url), **kwargs)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run_writer(), name="db-writer")

    async def close(self) -> None:
        """Finish every write already submitted, then close the engine."""
        self._closed = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def write(self, unit: Unit[T]) -> T:
        """Run `unit` inside a write transaction; return once it is committed.

        Without a running writer (CLI), the unit runs in a transaction of its own.
        """
        if self._closed:
            raise DatabaseClosed("the database is closing")
        if self._task is None:
            return await self._run_alone(unit)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(unit, future))
        return await future

    async def _run_alone(self, unit: Unit[T]) -> T:
        for attempt in range(5):
            try:
                async with self.engine.connect() as conn:
                    conn.sync_connection.info["writer"] = True  # type: ignore[union-attr]
                    try:
                        async with conn.begin():
                            tx = WriteTx(conn)
                            result = await unit(tx)
                            await tx.flush()
                            return result
                    finally:
                        conn.sync_connection.info.pop("writer", None)  # type: ignore[union-attr]
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_writer(self) -> None:
        stop = False
        async with self.engine.connect() as conn:
            conn.sync_connection.info["writer"] = True  # type: ignore[union-attr]
            while not stop:
                item = await self._queue.get()
                if item is None:
                    break
                batch = [item]
                if self._delay:
                    await asyncio.sleep(self._delay)
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                await self._commit_batch(conn, batch)

    async def _commit_batch(self, conn: AsyncConnection, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        results: list[Any] = []
        try:
            async with conn.begin():
                tx = WriteTx(conn)
                for pending in batch:
                    results.append(await pending.unit(tx))
                await tx.flush()
        except Exception as exc:  # noqa: BLE001 - isolate the failing unit by retrying alone
            if len(batch) == 1:
                self._fail(batch[0], exc)
            else:
                for pending in batch:
                    await self._commit_single(conn, pending)
        else:
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)
        stats = self.stats
        stats.batches += 1
        stats.units += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        stats.commit_seconds += time.perf_counter() - started

    async def _commit_single(self, conn: AsyncConnection, pending: _Pending) -> None:
        self.stats.retried_alone += 1
        try:
            async with conn.begin():
                tx = WriteTx(conn)
                result = await pending.unit(tx)
                await tx.flush()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            self._fail(pending, exc)
        else:
            if not pending.future.done():
                pending.future.set_result(result)

    @staticmethod
    def _fail(pending: _Pending, exc: BaseException) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)
