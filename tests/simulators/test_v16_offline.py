"""Unit tests of the OCPP 1.6 offline queue: order, provisional ids, id mapping."""

from __future__ import annotations

import pytest

from simulators.v16_offline import OfflineQueue


def test_messages_come_out_in_order_with_real_ids_once_known() -> None:
    queue = OfflineQueue()
    provisional = queue.push_start({"connectorId": 1, "idTag": "A", "meterStart": 5})
    assert provisional == -1
    queue.push("MeterValues", {"connectorId": 1, "transactionId": provisional})
    queue.push("StopTransaction", {"transactionId": provisional, "meterStop": 9})

    head = queue.head()
    assert head is not None
    assert head.action == "StartTransaction"
    assert head.provisional_id == -1
    queue.pop()
    queue.resolve(-1, 17)

    actions = []
    while (item := queue.head()) is not None:
        actions.append((item.action, item.payload["transactionId"]))
        queue.pop()
    assert actions == [("MeterValues", 17), ("StopTransaction", 17)]
    assert queue.real_id(-1) == 17
    assert queue.real_id(5) == 5


def test_provisional_ids_count_down() -> None:
    queue = OfflineQueue()
    assert [queue.push_start({}) for _ in range(3)] == [-1, -2, -3]
    assert len(queue) == 3


def test_only_transaction_messages_are_queued() -> None:
    queue = OfflineQueue()
    with pytest.raises(ValueError, match="not a transaction message"):
        queue.push("Heartbeat", {})
    with pytest.raises(ValueError, match="push_start"):
        queue.push("StartTransaction", {})
