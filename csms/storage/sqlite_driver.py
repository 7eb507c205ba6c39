"""SQLAlchemy's aiosqlite driver with one trip to the database thread per statement.

Only the DBAPI shim changes (what `create_engine` passes as `module=`); SQL, types and
transactions are SQLAlchemy's own. Nothing else in the system imports this module.

Why: the stock shim makes three or four trips per statement (create a cursor, execute,
fetch the rows, close the cursor). Each trip hands the result back through the event loop,
and under load every trip waits for a loop iteration: the group-commit writer, which runs
its units one statement after the other, spent most of its time waiting for those. Here a
statement runs, is fetched and closed in one function on the aiosqlite thread.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# (description, rowcount, lastrowid, rows) of a statement that ran in the database thread.
_Outcome = tuple[Any, int, int | None, list[Any]]


def _run_one(
    conn: sqlite3.Connection, begin: str | None, operation: str, parameters: Any
) -> _Outcome:
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _run_many(
    conn: sqlite3.Connection, begin: str | None, operation: str, seq: Sequence[Any]
) -> _Outcome:
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, seq)
        return cursor.description, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor that holds no aiosqlite cursor: each execute runs, fetches and closes a
    sqlite3 cursor in one trip, and keeps what the DBAPI cursor would have told."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def _trip(self, function: Callable[..., _Outcome], *args: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        begin, adapted.pending_begin = adapted.pending_begin, None
        try:
            # aiosqlite's own cursors use this to run a function on its thread.
            outcome: _Outcome = await_(
                connection._execute(function, connection._conn, begin, *args)  # type: ignore[no-untyped-call]
            )
        except Exception as error:  # noqa: BLE001 - SQLAlchemy turns it into its own error
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._trip(_run_one, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._trip(_run_many, operation, seq_of_parameters)

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """`pending_begin`: the BEGIN statement of a transaction begun but not yet used; it
    runs in the same trip as the transaction's first statement. Ending a transaction that
    ran nothing, or none at all, costs no trip."""

    __slots__ = ("pending_begin",)

    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None

    def _in_transaction(self) -> bool:
        if self.pending_begin is not None:
            self.pending_begin = None
            return False
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        # Read between statements, never while the thread runs one on this connection.
        return bool(connection._connection is not None and connection._conn.in_transaction)

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """What `create_engine(..., module=...)` takes for `sqlite+aiosqlite` URLs."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True
        return OneTripConnection(self, await_(connection))


def one_trip_dbapi() -> OneTripDbapi:
    return OneTripDbapi(aiosqlite, sqlite3)
