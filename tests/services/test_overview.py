"""The dashboard's live feed: every watcher gets every change in order; publishing never
waits; a watcher that falls a queue behind is dropped (its stream ends) without holding
the others back; closing the feed ends every stream, and later ones at once."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.core.overview import ConnectionChanged, StatusChanged
from csms.core.status import ConnectorStatus
from csms.services.overview import LiveFeed, metric_families

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def change(n: int) -> StatusChanged:
    return StatusChanged(f"CP{n}", 1, 1, ConnectorStatus.AVAILABLE, "NoError", AT)


async def test_every_watcher_gets_every_change_in_order() -> None:
    feed = LiveFeed(queue_size=10)
    first, second = feed.watch(), feed.watch()
    gone = ConnectionChanged("CP9", False, AT)
    for event in (change(1), change(2), gone):
        feed.publish(event)
    for watcher in (first, second):
        assert [await watcher.next() for _ in range(3)] == [change(1), change(2), gone]
    first.close()
    assert feed.watchers == 1


async def test_a_watcher_that_falls_behind_is_dropped_alone() -> None:
    feed = LiveFeed(queue_size=3)
    slow, quick = feed.watch(), feed.watch()
    for n in range(3):
        feed.publish(change(n))
        assert await quick.next() == change(n)
    feed.publish(change(3))  # the slow one's queue is full: dropped
    assert slow.dropped and not quick.dropped
    assert feed.watchers == 1
    assert metric_families(feed) == [
        ("csms_event_streams", "gauge", metric_families(feed)[0][2], [("", 1)]),
        ("csms_event_streams_dropped_total", "counter", metric_families(feed)[1][2], [("", 1)]),
    ]
    assert await quick.next() == change(3)
    # What the slow one still reads ends with the end of its stream (replacing the oldest).
    seen = []
    while (event := await slow.next()) is not None:
        seen.append(event)
    assert seen == [change(1), change(2)]


async def test_closing_ends_every_stream() -> None:
    feed = LiveFeed(queue_size=2)
    full, idle = feed.watch(), feed.watch()
    feed.publish(change(1))
    feed.publish(change(2))
    assert await idle.next() == change(1)
    feed.close()
    assert feed.watchers == 0
    assert await idle.next() == change(2)
    assert await idle.next() is None
    assert await full.next() == change(2)  # the oldest gave way to the end
    assert await full.next() is None
    late = feed.watch()
    assert await late.next() is None and feed.watchers == 0
