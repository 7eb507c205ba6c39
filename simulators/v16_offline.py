"""The OCPP 1.6 offline queue: transaction messages kept while the CSMS is unreachable.

Pure data: it orders messages and maps provisional transaction ids to real ones; sending is
the charger's job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from simulators.offline import Delivery, QueuedMessage

__all__ = ["QUEUED_ACTIONS", "Delivery", "OfflineQueue", "QueuedMessage"]

#: The messages a 1.6 charger must deliver even when it was offline when they happened.
QUEUED_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})


class OfflineQueue:
    """First in, first out; provisional transaction ids are negative: -1, -2, ..."""

    def __init__(self) -> None:
        self._items: deque[QueuedMessage] = deque()
        self._next_provisional = -1
        self._resolved: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    @property
    def messages(self) -> tuple[QueuedMessage, ...]:
        return tuple(self._items)

    def push_start(self, payload: Mapping[str, Any]) -> int:
        """Queue a StartTransaction and return its provisional transaction id."""
        provisional = self._next_provisional
        self._next_provisional -= 1
        self._items.append(QueuedMessage("StartTransaction", dict(payload), provisional))
        return provisional

    def push(self, action: str, payload: Mapping[str, Any]) -> None:
        if action not in QUEUED_ACTIONS:
            raise ValueError(f"{action} is not a transaction message")
        if action == "StartTransaction":
            raise ValueError("use push_start() for StartTransaction")
        self._items.append(QueuedMessage(action, dict(payload)))

    def head(self) -> QueuedMessage | None:
        """The next message to send, its transaction id already mapped to the real one."""
        if not self._items:
            return None
        item = self._items[0]
        tx = item.payload.get("transactionId")
        if isinstance(tx, int) and tx in self._resolved:
            item = replace(item, payload={**item.payload, "transactionId": self._resolved[tx]})
        return item

    def pop(self) -> None:
        """Remove the head after it was delivered (or given up on)."""
        self._items.popleft()

    def resolve(self, provisional: int, real: int) -> None:
        """Record the id the CSMS gave to a transaction started offline."""
        self._resolved[provisional] = real

    def real_id(self, transaction_id: int) -> int:
        """The CSMS id for a provisional one once known; any other id unchanged."""
        return self._resolved.get(transaction_id, transaction_id)
