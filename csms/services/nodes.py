"""This node among the `csms serve` processes sharing one PostgreSQL database: its row and
heartbeat, finding dead nodes, and the notifications nodes send each other (LISTEN/NOTIFY).

What a notification asks for (send a command, close a socket) is done by the hooks the
composition root sets; nothing here sends OCPP or knows a command's rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import structlog

from csms.core.clock import Clock
from csms.storage import commands as command_repo
from csms.storage import nodes as node_repo
from csms.storage.database import Database, WriteTx
from csms.storage.notifications import Listener
from csms.workers import TaskSet, Worker

log = structlog.get_logger("csms.nodes")

# How far back a node that reconnected its LISTEN connection looks for commands addressed
# to it meanwhile (older ones were given up by the node that asked).
MISSED_COMMANDS = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """The [cluster] keys a node runs with (seconds)."""

    heartbeat_interval: float = 10.0
    dead_after: float = 30.0
    pickup_timeout: float = 2.0


class Cluster:
    """One node: its row in `nodes` (renewed every heartbeat_interval), a LISTEN connection
    on its channel, and the search for nodes dead for dead_after seconds (any live node
    removes them and marks their chargers offline).

    Hooks: `on_run(entry_id)` sends a command another node stored for a charger held here;
    `on_release(cp_id)` closes this node's socket of a charger that connected elsewhere;
    `on_revived()` records again the chargers connected here after this node was taken for
    dead (its row was removed: a long pause, the database unreachable); `on_offline` runs
    after chargers of dead nodes were marked offline."""

    def __init__(
        self,
        db: Database,
        node_id: str,
        components: str,
        clock: Clock,
        settings: ClusterSettings,
        url: str,
    ) -> None:
        self._db = db
        self.node_id = node_id
        self._components = components
        self._clock = clock
        self.settings = settings
        self.on_run: Callable[[int], Coroutine[Any, Any, None]] | None = None
        self.on_release: Callable[[str], None] | None = None
        self.on_revived: Callable[[], Awaitable[None]] | None = None
        self.on_offline: list[Callable[[], None]] = []
        self._listener = Listener(
            url, node_repo.channel_of(node_id), self._received, self._reconnected
        )
        self._heartbeat = Worker(
            "cluster-heartbeat",
            self._beat,
            period=settings.heartbeat_interval,
            first_after=settings.heartbeat_interval,
        )
        self._tasks = TaskSet("cluster")
        # Commands this node routed to another one, by audit entry id: set when done.
        self._expected: dict[int, asyncio.Event] = {}

    @property
    def pickup_timeout(self) -> float:
        return self.settings.pickup_timeout

    @property
    def listen_reconnections(self) -> int:
        """How often the LISTEN connection had to be opened again."""
        return self._listener.reconnections

    async def start(self) -> None:
        """Add this node's row, then listen. Chargers recorded as connected to nodes that
        have no row (a node that stopped uncleanly and was removed) are marked offline."""

        async def unit(w: WriteTx) -> int:
            conn = await w.connection()
            await node_repo.register(conn, self.node_id, self._components)
            return await node_repo.release_orphans(conn, self._clock())

        released = await self._db.write(unit)
        await self._listener.start()
        self._heartbeat.start()
        # Said by the start-up line (csms_started names the node): nothing before a start
        # that may still fail (a port taken) but what needs saying.
        log.debug("node_registered", node_id=self.node_id, channel=self._listener.channel)
        if released:
            log.info("orphaned_chargers_offline", chargers=released)

    async def stop(self) -> None:
        """Stop listening and remove this node's row (its chargers were marked
        disconnected as their sockets closed)."""
        await self._heartbeat.stop()
        await self._tasks.close()
        await self._listener.close()
        for event in self._expected.values():
            event.set()

        async def unit(w: WriteTx) -> None:
            await node_repo.remove(await w.connection(), self.node_id)

        await self._db.write(unit)

    # --- heartbeat and dead nodes ---------------------------------------------------

    async def _beat(self) -> None:
        now = self._clock()
        dead_after = self.settings.dead_after

        async def unit(w: WriteTx) -> tuple[bool, list[str], int]:
            conn = await w.connection()
            alive = await node_repo.beat(conn, self.node_id)
            if not alive:
                await node_repo.register(conn, self.node_id, self._components)
            dead, released = await node_repo.reap(conn, dead_after, now)
            return alive, dead, released

        alive, dead, released = await self._db.write(unit)
        if not alive:
            log.warning("node_revived", node_id=self.node_id)
            if self.on_revived is not None:
                await self.on_revived()
        if dead:
            log.warning(
                "nodes_found_dead", nodes=dead, chargers_offline=released, dead_after_s=dead_after
            )
            for hook in self.on_offline:
                hook()

    # --- notifications ---------------------------------------------------------------

    def _received(self, payload: str) -> None:
        try:
            note = orjson.loads(payload)
            kind = note["kind"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("notification_unreadable", payload=payload[:200])
            return
        if kind == node_repo.RUN and self.on_run is not None:
            self._tasks.spawn(self.on_run(int(note["id"])), name=f"routed-{note['id']}")
        elif kind == node_repo.DONE:
            event = self._expected.get(int(note["id"]))
            if event is not None:
                event.set()
        elif kind == node_repo.RELEASE:
            self._tasks.spawn(self._release(str(note["cp"])), name=f"release-{note['cp']}")

    def _reconnected(self) -> None:
        """Notifications sent while the LISTEN connection was down are lost: the commands
        they announced are looked for; the node that asked wakes up by itself."""
        for event in self._expected.values():
            event.set()
        self._tasks.spawn(self._missed(), name="missed-commands")

    async def _missed(self) -> None:
        since = self._clock() - MISSED_COMMANDS
        async with self._db.read() as conn:
            found = await command_repo.waiting_for(conn, self.node_id, since)
        if self.on_run is not None:
            for entry_id in found:
                self._tasks.spawn(self.on_run(entry_id), name=f"routed-{entry_id}")

    async def _release(self, cp_id: str) -> None:
        """Another node recorded a newer connection of `cp_id`: close ours, unless the
        charger came back here meanwhile (then this node is recorded again)."""
        async with self._db.read() as conn:
            recorded = await node_repo.recorded_holder(conn, cp_id)
        if recorded != self.node_id and self.on_release is not None:
            self.on_release(cp_id)

    # --- what other services ask ------------------------------------------------------

    async def holder(self, cp_id: str) -> str | None:
        """The live node holding the socket of `cp_id` (None: no live node does)."""
        async with self._db.read() as conn:
            return await node_repo.holder(conn, cp_id, self.settings.dead_after)

    def expect(self, entry_id: int) -> asyncio.Event:
        """An event set when the node a command was routed to says it is done."""
        event = self._expected.get(entry_id)
        if event is None:
            event = self._expected[entry_id] = asyncio.Event()
        return event

    def forget(self, entry_id: int) -> None:
        self._expected.pop(entry_id, None)

    async def taken(self, cp_id: str, previous: str) -> None:
        """A charger connected here while node `previous` held it: tell that node to close
        its socket (this node's connection was recorded first)."""

        async def unit(w: WriteTx) -> None:
            payload = node_repo.message(node_repo.RELEASE, cp=cp_id)
            await node_repo.notify(await w.connection(), previous, payload)

        await self._db.write(unit)
        log.info("charger_taken_over", charge_point_id=cp_id, previous_node=previous)
