"""The network at a glance (`GET /api/overview`) and the live feed of station changes
(`GET /api/events`) for the staff dashboard.

`LiveFeed` fans the station service's committed changes out to each watcher's own bounded
queue. Publishing never waits: a watcher whose queue is full (a client that does not read)
is dropped, and its stream ends, so one slow browser cannot hold the server or the other
watchers back. `close()` (the API's shutdown) ends every stream.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog

from csms.core.clock import Clock
from csms.core.overview import (
    ConnectionChanged,
    Overview,
    StationEvent,
    charger_status,
    count_by_status,
)
from csms.core.status import ConnectorStatus
from csms.metrics import Family
from csms.storage import overview as overview_repo
from csms.storage.database import Database

log = structlog.get_logger("csms.services.overview")

# Changes a watcher may have waiting before it counts as gone (a burst of a whole network's
# reconnection fits; a client that stopped reading does not hold memory for ever).
QUEUE_SIZE = 1000


class OverviewService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def overview(self) -> Overview:
        async with self._db.read() as conn:
            state = await overview_repo.network_state(conn)
        of_charger: dict[str, list[ConnectorStatus]] = defaultdict(list)
        evses: list[str] = []
        for cp_id, evse_id, status in state.statuses:
            of_charger[cp_id].append(status)
            if evse_id > 0:
                evses.append(status.base.value)
        return Overview(
            chargers=state.chargers,
            connected=state.connected,
            chargers_by_status=count_by_status(
                charger_status(of_charger.get(cp_id, ())) for cp_id in state.charger_ids
            ),
            evses=len(evses),
            evses_by_status=count_by_status(evses),
            sessions_running=state.sessions_running,
            power_w=round(state.power_w, 1),
            at=self._clock(),
        )


class Watcher:
    """One client's view of the feed: `next()` gives the next change, None when the feed
    closed or dropped this watcher (its stream then ends)."""

    def __init__(self, feed: LiveFeed, size: int) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[StationEvent | None] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, event: StationEvent | None) -> bool:
        """Queue a change (None: the end); False when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Ends the stream even when the queue is full (the end replaces what waits)."""
        while not self.offer(None):
            self._queue.get_nowait()

    async def next(self) -> StationEvent | None:
        return await self._queue.get()

    def close(self) -> None:
        self._feed.leave(self)


class LiveFeed:
    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._watchers: set[Watcher] = set()
        self.closed = False
        # Watchers dropped for falling a whole queue behind (csms_event_streams_dropped_total).
        self.dropped = 0

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def watch(self) -> Watcher:
        watcher = Watcher(self, self._queue_size)
        if self.closed:
            watcher.end()
        else:
            self._watchers.add(watcher)
        return watcher

    def leave(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def publish(self, event: StationEvent) -> None:
        """A committed change (the station service's hook): to every watcher, never waiting."""
        for watcher in list(self._watchers):
            if not watcher.offer(event):
                watcher.dropped = True
                self.dropped += 1
                self._watchers.discard(watcher)
                watcher.end()
                log.warning(
                    "event_watcher_dropped",
                    reason="queue_full",
                    queue_size=self._queue_size,
                    charge_point_id=event.charge_point_id,
                    connection=isinstance(event, ConnectionChanged),
                )

    def close(self) -> None:
        """Ends every stream (the server stops); later watchers end at once."""
        self.closed = True
        watchers, self._watchers = self._watchers, set()
        for watcher in watchers:
            watcher.end()


def metric_families(feed: LiveFeed) -> list[Family]:
    """The live feed's figures for /metrics (csms.metrics.Metrics.families)."""
    return [
        (
            "csms_event_streams",
            "gauge",
            "Open GET /api/events streams (dashboards watching this process).",
            [("", feed.watchers)],
        ),
        (
            "csms_event_streams_dropped_total",
            "counter",
            "Event streams ended because their client fell a whole queue behind.",
            [("", feed.dropped)],
        ),
    ]
