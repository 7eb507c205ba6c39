"""PostgreSQL LISTEN on a dedicated asyncpg connection, opened again when it drops.

Only moving payloads from the server to a callback lives here; what they mean is the
caller's (csms.services.nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.engine import make_url

from csms.core.retries import Backoff
from csms.core.waiting import wait_event
from csms.workers import TaskSet

log = structlog.get_logger("csms.storage")

# Seconds between two checks that the connection still answers (a peer that vanished
# without closing the TCP connection is noticed only when something is sent).
CHECK_SECONDS = 5.0
RECONNECT = Backoff(first=0.5, cap=10.0)


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes for a SQLAlchemy postgresql+asyncpg:// URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """LISTENs on `channel` and hands each payload to `received`. After a reconnection
    `reconnected` is called: notifications sent meanwhile were lost, the caller may look
    for the work they announced."""

    def __init__(
        self,
        url: str,
        channel: str,
        received: Callable[[str], None],
        reconnected: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self.channel = channel
        self._received = received
        self._reconnected = reconnected
        self._conn: Any = None
        self._lost = asyncio.Event()
        self._tasks = TaskSet("listener")
        self.reconnections = 0
        # How the connection shows in pg_stat_activity.
        self.application_name = f"csms-listen {channel}"[:63]

    async def start(self) -> None:
        """Connect and LISTEN (raises when the database cannot be reached), then keep the
        connection up until `close()`."""
        await self._connect()
        self._tasks.spawn(self._keep_up(), name=f"listen-{self.channel}")

    async def close(self) -> None:
        await self._tasks.close()
        await self._drop()

    async def _connect(self) -> None:
        import asyncpg  # the postgres extra

        conn = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": self.application_name}
        )
        try:
            await conn.add_listener(self.channel, self._on_notification)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(lambda _conn: self._lost.set())
        self._lost.clear()
        self._conn = conn

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._received(payload)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await conn.close()
            if not conn.is_closed():
                conn.terminate()

    async def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await conn.fetchval("SELECT 1")
        except Exception:  # noqa: BLE001 - a timeout or any failure: reconnect
            return False
        return True

    async def _keep_up(self) -> None:
        while True:
            await wait_event(self._lost, CHECK_SECONDS)
            if await self._alive():
                continue
            log.warning("listen_connection_lost", channel=self.channel)
            await self._drop()
            attempt = 0
            while self._conn is None:
                attempt += 1
                try:
                    await self._connect()
                except Exception as exc:  # noqa: BLE001 - tried again after a pause
                    pause = RECONNECT.delay(attempt)
                    log.warning(
                        "listen_reconnect_failed",
                        channel=self.channel,
                        error=str(exc) or type(exc).__name__,
                        retry_in_s=pause,
                    )
                    await asyncio.sleep(pause)
            self.reconnections += 1
            log.info("listen_reconnected", channel=self.channel, attempts=attempt)
            if self._reconnected is not None:
                self._reconnected()
