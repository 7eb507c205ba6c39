"""Unit tests of the OCPP 2.0.1 seqNo counter and offline TransactionEvent queue."""

from __future__ import annotations

import random

import pytest

from simulators.v201_offline import FlushOrder, SequenceCounter, TransactionEventQueue


def event(seq_no: int, tx: str = "T1") -> dict[str, object]:
    return {"eventType": "Updated", "seqNo": seq_no, "transactionInfo": {"transactionId": tx}}


def test_seq_no_counts_from_zero_for_the_whole_station() -> None:
    counter = SequenceCounter()
    assert counter.upcoming == 0
    assert [counter.take() for _ in range(3)] == [0, 1, 2]
    assert counter.upcoming == 3
    assert SequenceCounter(41).take() == 41
    with pytest.raises(ValueError, match="negative"):
        SequenceCounter(-1)


def test_queue_keeps_payloads_as_given_in_the_order_they_happened() -> None:
    queue = TransactionEventQueue()
    for n in (3, 4, 5):
        queue.push(event(n))
    assert len(queue) == 3
    assert [m.action for m in queue.messages] == ["TransactionEvent"] * 3
    assert [m.payload["seqNo"] for m in queue.messages] == [3, 4, 5]
    assert [i.seq_no for i in queue.plan(FlushOrder.QUEUED)] == [3, 4, 5]


def test_reverse_and_shuffled_plans_leave_the_queue_alone() -> None:
    queue = TransactionEventQueue()
    for n in range(8):
        queue.push(event(n))
    assert [i.seq_no for i in queue.plan(FlushOrder.REVERSE)] == list(range(7, -1, -1))
    shuffled = [i.seq_no for i in queue.plan(FlushOrder.SHUFFLED, random.Random(3))]
    assert sorted(shuffled) == list(range(8))
    assert shuffled != list(range(8))
    assert shuffled == [i.seq_no for i in queue.plan(FlushOrder.SHUFFLED, random.Random(3))]
    assert [m.payload["seqNo"] for m in queue.messages] == list(range(8))


def test_removing_delivered_items_keeps_the_rest_in_order() -> None:
    queue = TransactionEventQueue()
    items = [queue.push(event(n, "A" if n % 2 else "B")) for n in range(4)]
    for item in queue.plan(FlushOrder.REVERSE)[:2]:
        queue.remove(item)
    assert [m.payload["seqNo"] for m in queue.messages] == [0, 1]
    assert queue.holds("A") and queue.holds("B") and not queue.holds("C")
    queue.remove(items[0])
    queue.remove(items[0])  # twice is harmless
    assert not queue.holds("B")


def test_validation_flag_travels_with_the_item() -> None:
    queue = TransactionEventQueue()
    queue.push({"eventType": "Started"}, validate=False)
    (item,) = queue.plan(FlushOrder.QUEUED)
    assert item.validate is False
    assert item.seq_no is None and item.transaction_id is None
