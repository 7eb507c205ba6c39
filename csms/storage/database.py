"""The database: async engine, read connections and the group-commit writer.

Every write goes through `Database.write`; its caller resumes only after the transaction
that holds its work is committed. Nothing here knows about OCPP.

DatabaseClosed             a write submitted while the database closes or after
 └── DatabaseWriterFailed  the writer stopped for another reason: nothing can be committed
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import structlog
from sqlalchemy import Dialect, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert

from csms.core.retries import Backoff
from csms.storage.sqlite_driver import OneTripConnection, one_trip_dbapi
from csms.workers import TaskSet, Worker

T = TypeVar("T")
Unit = Callable[["WriteTx"], Awaitable[T]]

BUSY_TIMEOUT_MS = 30_000

log = structlog.get_logger("csms.storage")

# Whether the read connection in hand reads one snapshot (a transaction) or not.
SNAPSHOT: ContextVar[bool] = ContextVar("csms_read_snapshot", default=True)


CHECKPOINT_SECONDS = 1.0
# SQLite connections kept open (each has a thread of its own).
POOL_SIZE = 24
SLOW_COMMIT_SECONDS = 1.0


class DatabaseClosed(Exception):
    """A write was submitted after the writer stopped."""


class DatabaseWriterFailed(DatabaseClosed):
    """The writer task ended for another reason than `close()` (an error escaped it, it
    was cancelled, or the database file was removed under it): every write waiting for it
    and every later one fails with this at once. The message says why in one line."""


class BulkStatement:
    """A statement merged across units and run as one driver-level executemany.

    SQLAlchemy's per-row parameter processing costs about three times the SQLite work
    itself and runs on the event loop; hot-path rows (meter samples, heartbeats) are given
    driver-ready (timestamps through `WriteTx.db_time`) instead. On SQLite an INSERT is
    sent as multi-row VALUES: the sqlite3 module gives up and retakes the GIL for every
    row of an executemany, which stalls behind a busy event loop.
    """

    __slots__ = ("_compiled", "_multirow", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._multirow: dict[int, str] = {}

    def compiled_for(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            found = (compiled.string, tuple(compiled.positiontup or ()))
            self._compiled[dialect.name] = found
        return found

    async def execute(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        sql, names = self.compiled_for(conn.dialect)
        if conn.dialect.name != "sqlite" or not isinstance(self.statement, Insert):
            await conn.exec_driver_sql(sql, [tuple(row[n] for n in names) for row in rows])
            return
        # Stay under SQLite's historical limit of 999 host parameters per statement.
        per_statement = max(1, 999 // max(1, len(names)))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [row[n] for row in chunk for n in names]
            await conn.exec_driver_sql(self._sql_for_rows(sql, len(chunk)), tuple(params))

    def _sql_for_rows(self, sql: str, count: int) -> str:
        found = self._multirow.get(count)
        if found is None:
            # "INSERT ... VALUES (?, ?) [ON CONFLICT ...]": repeat the parameter group.
            start = sql.index(" VALUES (") + len(" VALUES ")
            end = sql.index(")", start) + 1
            found = sql[:start] + ", ".join([sql[start:end]] * count) + sql[end:]
            self._multirow[count] = found
        return found


class FastSelect:
    """A SELECT built once for the hot path's look-ups. On SQLite it runs in one trip on the
    connection's driver, without SQLAlchemy's execution machinery (a token by key: 187 ->
    118 µs of CPU, SQLite's work included). Values go through the columns' types' own
    processors. Elsewhere, and as the first statement of a transaction (whose BEGIN goes
    with it), the statement runs through SQLAlchemy. Rows are named tuples with the
    selected columns' names.

    Its parameters are bound by name: expanding ones (`IN`) take a list, others a value."""

    __slots__ = ("_bind", "_compiled", "_convert", "_row", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: tuple[str, tuple[str, ...], dict[str, Any]] | None = None
        self._row: Any = None
        self._convert: list[Callable[[Any], Any] | None] = []
        # Parameter name -> what makes a value of it driver-ready (None: as it is).
        self._bind: dict[str, Callable[[Any], Any] | None] = {}

    def prepare(self, dialect: Dialect) -> None:
        """Build the statement's SQL now rather than at its first use."""
        if self._compiled is None:
            self._prepare(dialect)

    def _prepare(self, dialect: Dialect) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        compiled = self.statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        self._bind = {
            name: compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        }
        self._compiled = (compiled.string, names, dict(compiled.params))
        columns = list(self.statement.selected_columns)
        self._row = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]
        self._convert = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
        return self._compiled

    async def rows(self, conn: AsyncConnection, params: dict[str, Any]) -> list[Any]:
        adapted = None if conn.dialect.name != "sqlite" else conn.sync_connection.connection  # type: ignore[union-attr]
        dbapi = None if adapted is None else adapted.dbapi_connection
        if not isinstance(dbapi, OneTripConnection) or dbapi.pending_begin is not None:
            # Not SQLite, or the first statement of a transaction (its BEGIN goes with it).
            return list((await conn.execute(self.statement, params)).all())
        sql, names, defaults = self._compiled or self._prepare(conn.dialect)
        values: list[Any] = []
        for name in names:
            value: Any = params.get(name, defaults.get(name))
            bind = self._bind[name]
            marker = f"(__[POSTCOMPILE_{name}])"
            if marker in sql:
                items = list(value)
                sql = sql.replace(marker, "(" + ", ".join(["?"] * len(items)) + ")", 1)
                values.extend(items if bind is None else [bind(v) for v in items])
            else:
                values.append(value if bind is None else bind(value))
        driver: Any = dbapi._connection
        found = await driver.execute_fetchall(sql, values)
        row, convert = self._row, self._convert
        return [
            row(*[value if c is None else c(value) for c, value in zip(convert, r, strict=True)])
            for r in found
        ]


def _sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores (naive UTC, microseconds always shown),
    so that rows written in bulk compare and read back like the others."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(" ", "microseconds")


class WriteTx:
    """What a unit of work gets: the writer's connection, and `defer` for statements that
    may be merged with the same statement of other units into one executemany.

    Deferred statements run before anything else touches the connection
    (`await tx.connection()`) and before the commit, and a batch leaves the database as its
    units run one by one in submission order would. Rows are kept as runs of one statement,
    run in order; a row joins its statement's latest run (and so runs ahead of the rows
    deferred after that run) unless one of those rows `touches` what it touches: then it
    starts a new run. `touches` names the database row a deferred row reads or writes that
    another deferred statement may also (a charger, a connector, a transaction); a row
    without it must commute with every other deferred statement (an append-only table, or
    the only deferred statement on its table).
    """

    __slots__ = ("_conn", "_last_run", "_runs", "_touched", "dialect", "flush_failed")

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        # Deferred rows as runs of one statement each, executed in this order.
        self._runs: list[tuple[Executable | BulkStatement, list[dict[str, Any]]]] = []
        # Per statement, the index of its latest run; per `touches` key, the index of the
        # latest run that holds a row with that key.
        self._last_run: dict[Executable | BulkStatement, int] = {}
        self._touched: dict[Hashable, int] = {}
        self.dialect: str = conn.dialect.name
        # Whether running deferred statements raised: the failure then belongs to whichever
        # unit deferred the row, not necessarily to the unit that was running.
        self.flush_failed = False

    def defer(
        self, statement: Executable, params: dict[str, Any], touches: Hashable = None
    ) -> None:
        self._add(statement, params, touches)

    def defer_bulk(
        self, bulk: BulkStatement, params: dict[str, Any], touches: Hashable = None
    ) -> None:
        """Queue driver-ready parameters (timestamps through `db_time`) for `bulk`."""
        self._add(bulk, params, touches)

    def _add(
        self, statement: Executable | BulkStatement, params: dict[str, Any], touches: Hashable
    ) -> None:
        index = self._last_run.get(statement)
        if index is None or (touches is not None and self._touched.get(touches, -1) > index):
            index = len(self._runs)
            self._runs.append((statement, [params]))
            self._last_run[statement] = index
        else:
            self._runs[index][1].append(params)
        if touches is not None:
            self._touched[touches] = index

    def db_time(self, moment: datetime) -> Any:
        """A timestamp as the driver takes it for an aware UTC timestamp column."""
        return _sqlite_time(moment) if self.dialect == "sqlite" else moment.astimezone(UTC)

    async def connection(self) -> AsyncConnection:
        if self._runs:
            await self.flush()
        return self._conn

    async def flush(self) -> None:
        runs, self._runs = self._runs, []
        self._last_run.clear()
        self._touched.clear()
        try:
            for statement, rows in runs:
                if isinstance(statement, BulkStatement):
                    await statement.execute(self._conn, rows)
                else:
                    await self._conn.execute(statement, rows)
        except Exception:
            self.flush_failed = True
            raise


@dataclass(slots=True)
class _Pending:
    unit: Unit[Any]
    future: asyncio.Future[Any]


class _UnitFailed(Exception):
    """A batch's transaction failed: in unit `index`, or where no single unit can be named
    (None: in statements merged across units, or at commit)."""

    def __init__(self, index: int | None, cause: Exception) -> None:
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    units: int = 0
    # Transactions the writer committed, and those a failing unit rolled back.
    commits: int = 0
    rollbacks: int = 0
    # Units that failed (their caller got the exception) and units run in a transaction
    # of their own because a failure could not be pinned on one unit of their batch.
    failed_units: int = 0
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
        if parsed.get_driver_name() == "aiosqlite":
            kwargs["module"] = one_trip_dbapi()
        # Connections beyond the pool size are closed when given back, and a new one costs
        # a thread and its set-up statements: keep enough for the writer, the coalesced
        # look-ups of the hot path (one each at a time), the workers and staff reads.
        kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_SIZE)
    # JSON columns (meter readings, events, CDRs) through orjson: the standard library's
    # json was a tenth of the CPU of building CDRs.
    engine = create_async_engine(
        url, json_serializer=_json_text, json_deserializer=orjson.loads, **kwargs
    )
    if is_sqlite:
        _tune_sqlite(engine)
    return engine


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Every commit is durable (fsync of the WAL); group commit makes that one fsync per
        # batch, not per message.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        writer = bool(conn.info.get("writer"))
        if not writer and not SNAPSHOT.get():
            return  # each statement reads on its own (autocommit)
        begin = "BEGIN IMMEDIATE" if writer else "BEGIN"
        dbapi = conn.connection.dbapi_connection
        if isinstance(dbapi, OneTripConnection):
            dbapi.pending_begin = begin  # sent with the first statement
        else:
            conn.exec_driver_sql(begin)


K = TypeVar("K")
V = TypeVar("V")


class BatchLoader(Generic[K, V]):
    """Coalesces concurrent look-ups by key into one query (a reconnection storm of
    thousands of chargers costs a few queries, not one per charger). At most one query is
    in flight; keys asked for meanwhile wait for the next one. On SQLite each loader keeps a
    read connection of its own (without a transaction: each query sees the latest commit),
    so that a query costs no pool checkout."""

    def __init__(
        self,
        db: Database,
        fetch: Callable[[AsyncConnection, list[K]], Awaitable[dict[K, V]]],
        max_keys: int = 500,
    ) -> None:
        self._db = db
        self._fetch = fetch
        self._max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._running = False
        self._drains = TaskSet("batch-loader")
        self._conn: AsyncConnection | None = None

    @property
    def max_keys(self) -> int:
        """The most keys one query asks for."""
        return self._max_keys

    async def load(self, key: K) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._running:
            self._running = True
            self._drains.spawn(self._drain(), name="batch-loader")
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[: self._max_keys]
                waiting = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._query(keys)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                    for futures in waiting.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in waiting.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(key))
        finally:
            self._running = False

    async def _query(self, keys: list[K]) -> dict[K, V]:
        if not self._db.is_sqlite:
            async with self._db.read(snapshot=False) as conn:
                return await self._fetch(conn, keys)
        if self._conn is None:
            self._conn = await self._db.reader()
        token = SNAPSHOT.set(False)
        try:
            return await self._fetch(self._conn, keys)
        except BaseException:
            conn, self._conn = self._conn, None
            await self._db.release(conn)
            raise
        finally:
            SNAPSHOT.reset(token)


async def _pragma(conn: AsyncConnection, sql: str) -> None:
    """Run a PRAGMA on the driver connection, outside any SQLAlchemy transaction."""
    raw = await conn.get_raw_connection()
    await raw.driver_connection.execute(sql)  # type: ignore[union-attr]


class Database:
    """Owns the engine; `read()` lends a connection, `write(unit)` group-commits."""

    def __init__(
        self, engine: AsyncEngine, *, commit_delay_ms: float = 0.0, max_batch: int = 500
    ) -> None:
        self.engine = engine
        # Read connections held by their users (BatchLoader) until the database closes.
        self._readers: set[AsyncConnection] = set()
        self._delay = commit_delay_ms / 1000.0
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # The batch being committed (failed with the writer if it dies meanwhile).
        self._inflight: list[_Pending] = []
        # The SQLite file as opened by the writer: (path, device, inode).
        self._file: tuple[str, int, int] | None = None
        self.failure: DatabaseWriterFailed | None = None
        # Called once, with the failure, when the writer has died (the server stops).
        self.on_failure: list[Callable[[DatabaseWriterFailed], None]] = []
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
            self._task.add_done_callback(self._writer_ended)

    async def close(self) -> None:
        """Finish every write already submitted, then close the engine."""
        self._closed = True
        if self._task is not None:
            await self._queue.put(None)
            # A writer that died was reported by _writer_ended; closing goes on regardless.
            await asyncio.wait([self._task])
            self._task = None
        for conn in list(self._readers):
            await self.release(conn)
        await self.engine.dispose()

    async def reader(self) -> AsyncConnection:
        """A read connection to keep (give it back with `release`; closing the database
        does it too)."""
        token = SNAPSHOT.set(False)
        try:
            conn = await self.engine.connect()
        finally:
            SNAPSHOT.reset(token)
        self._readers.add(conn)
        return conn

    async def release(self, conn: AsyncConnection | None) -> None:
        if conn is not None and conn in self._readers:
            self._readers.discard(conn)
            with contextlib.suppress(Exception):
                await conn.close()

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        cause = None if task.cancelled() else task.exception()
        if self._closed and cause is None and not task.cancelled():
            return  # close(): every submitted write was committed
        if cause is None:
            reason = "the database writer was cancelled" if task.cancelled() else "ended"
        elif isinstance(cause, DatabaseWriterFailed):
            reason = str(cause)
        else:
            detail = " ".join(str(cause).split())
            reason = f"the database writer stopped: {type(cause).__name__}" + (
                f": {detail}" if detail else ""
            )
        failure = DatabaseWriterFailed(reason)
        failure.__cause__ = cause
        self.failure = failure
        log.error(
            "database_writer_failed",
            error=reason,
            exc_info=cause if not isinstance(cause, DatabaseWriterFailed) else None,
        )
        waiting = [p for p in self._inflight if not p.future.done()]
        self._inflight = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                waiting.append(item)
        for pending in waiting:
            self._fail(pending, self._failed_write())
        for hook in self.on_failure:
            hook(failure)

    def _failed_write(self) -> DatabaseWriterFailed:
        assert self.failure is not None
        exc = DatabaseWriterFailed(str(self.failure))
        exc.__cause__ = self.failure.__cause__
        return exc

    @contextlib.asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[AsyncConnection]:
        """A connection to read with. Its statements see one snapshot of the database;
        without `snapshot` each sees the latest (cheaper: no transaction to begin and end,
        for a single statement)."""
        token = SNAPSHOT.set(snapshot)
        try:
            async with self.engine.connect() as conn:
                yield conn
        finally:
            SNAPSHOT.reset(token)

    async def write(self, unit: Unit[T]) -> T:
        """Run `unit` inside a write transaction; return once it is committed.

        Without a running writer (CLI), the unit runs in a transaction of its own.
        """
        if self.failure is not None:
            raise self._failed_write()
        if self._closed:
            raise DatabaseClosed("the database is closing")
        if self._task is None:
            return await self._run_alone(unit)
        if self._task.done():
            # Died a moment ago; _writer_ended has not run yet.
            raise DatabaseWriterFailed("the database writer stopped")
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
        checkpoints: Worker | None = None
        try:
            async with self.engine.connect() as conn:
                if self.is_sqlite:
                    # Checkpoints copy the WAL back into the database file; on the writer
                    # they would stall every commit that triggers one. A side task runs them.
                    await _pragma(conn, "PRAGMA wal_autocheckpoint=0")
                    # Index pages of the hot tables stay cached (32 MiB; the default is 2 MiB).
                    await _pragma(conn, "PRAGMA cache_size=-32768")
                    checkpoints = Worker(
                        "db-checkpoint",
                        self._passive_checkpoint,
                        period=CHECKPOINT_SECONDS,
                        first_after=CHECKPOINT_SECONDS,
                        # A checkpoint that failed is tried again at the usual rhythm.
                        backoff=Backoff(CHECKPOINT_SECONDS, CHECKPOINT_SECONDS),
                    )
                    checkpoints.start()
                conn.sync_connection.info["writer"] = True  # type: ignore[union-attr]
                self._file = self._file_identity()
                while not stop:
                    item = await self._queue.get()
                    if item is None:
                        break
                    batch = [item]
                    self._inflight = batch
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
                    self._check_file()
                    await self._commit_batch(conn, batch)
                    self._inflight = []
        finally:
            if checkpoints is not None:
                await checkpoints.stop()
        if checkpoints is not None:
            await self._checkpoint("TRUNCATE", busy_ms=500)

    def _file_identity(self) -> tuple[str, int, int] | None:
        """The SQLite database file (None for other databases and in-memory ones)."""
        database = self.engine.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        path = os.path.abspath(database)
        try:
            found = os.stat(path)
        except OSError:
            return None
        return path, found.st_dev, found.st_ino

    def _check_file(self) -> None:
        """SQLite goes on writing to a database file that was deleted or replaced (through
        the descriptor it holds), and everything written then is lost when the process
        ends. Before each commit the file must still be the one the writer opened."""
        if self._file is None:
            return
        path, device, inode = self._file
        try:
            found = os.stat(path)
        except OSError:
            found = None
        if found is None or (found.st_dev, found.st_ino) != (device, inode):
            raise DatabaseWriterFailed(
                f"the database file {path} was removed or replaced while in use: "
                "nothing more can be committed to it"
            )

    async def _passive_checkpoint(self) -> None:
        """One pass of the checkpoint worker (a failure is logged by the worker)."""
        await self._checkpoint("PASSIVE")

    async def _checkpoint(self, mode: str, busy_ms: int | None = None) -> None:
        """Copy committed WAL frames into the database file, outside any transaction.
        `busy_ms` bounds how long a blocking mode waits for readers (at shutdown a reader
        cancelled mid-query must not hold the close for the full busy timeout)."""
        async with self.engine.connect() as conn:
            if busy_ms is not None:
                await _pragma(conn, f"PRAGMA busy_timeout={int(busy_ms)}")
            try:
                await _pragma(conn, f"PRAGMA wal_checkpoint({mode})")
            finally:
                if busy_ms is not None:
                    await _pragma(conn, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    async def _commit_batch(self, conn: AsyncConnection, batch: list[_Pending]) -> None:
        """Commit the units of `batch` in one transaction. A unit that raises fails alone:
        the transaction is rolled back, its caller gets the exception and the others run
        again as one batch, so one bad unit costs one rollback, not a commit per unit.
        A failure in statements merged across units (or at commit) names no unit: the
        batch runs again with each unit's statements executed right after it, which names
        it; only when that fails as well does every unit get a transaction of its own."""
        started = time.perf_counter()
        remaining = batch
        flush_each = False
        stats = self.stats
        while remaining:
            try:
                results = await self._run_units(conn, remaining, flush_each=flush_each)
            except _UnitFailed as failed:
                stats.rollbacks += 1
                if failed.index is not None:
                    stats.failed_units += 1
                    self._fail(remaining[failed.index], failed.cause)
                    remaining = remaining[: failed.index] + remaining[failed.index + 1 :]
                elif len(remaining) == 1:
                    stats.failed_units += 1
                    self._fail(remaining[0], failed.cause)
                    remaining = []
                elif not flush_each:
                    flush_each = True
                else:
                    for pending in remaining:
                        await self._commit_single(conn, pending)
                    remaining = []
                continue
            stats.commits += 1
            for pending, result in zip(remaining, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)
            break
        took = time.perf_counter() - started
        if took > SLOW_COMMIT_SECONDS:
            log.warning("commit_slow", units=len(batch), duration_ms=round(took * 1000))
        stats.batches += 1
        stats.units += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        stats.commit_seconds += took

    @staticmethod
    async def _run_units(
        conn: AsyncConnection, units: list[_Pending], *, flush_each: bool
    ) -> list[Any]:
        """Run `units` in order in one transaction and commit it; raises _UnitFailed."""
        results: list[Any] = []
        running: int | None = None
        tx = WriteTx(conn)
        try:
            async with conn.begin():
                for index, pending in enumerate(units):
                    running = index
                    results.append(await pending.unit(tx))
                    if flush_each:
                        await tx.flush()
                running = None
                await tx.flush()
        except Exception as exc:
            if tx.flush_failed and not flush_each:
                running = None  # an earlier unit's deferred row may be the cause
            raise _UnitFailed(running, exc) from exc
        return results

    async def _commit_single(self, conn: AsyncConnection, pending: _Pending) -> None:
        self.stats.retried_alone += 1
        try:
            async with conn.begin():
                tx = WriteTx(conn)
                result = await pending.unit(tx)
                await tx.flush()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            self.stats.failed_units += 1
            self._fail(pending, exc)
        else:
            self.stats.commits += 1
            if not pending.future.done():
                pending.future.set_result(result)

    @staticmethod
    def _fail(pending: _Pending, exc: BaseException) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)
