"""The OCPP 2.0.1 transaction-event sequence number and offline queue.

Pure data: numbering, keeping and ordering events for replay; sending is the charger's job.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simulators.offline import QueuedMessage

__all__ = ["FlushOrder", "QueuedEvent", "SequenceCounter", "TransactionEventQueue"]

ACTION = "TransactionEvent"


class FlushOrder(StrEnum):
    """In which order queued events are sent when the connection comes back."""

    #: As they happened (which is seqNo order): what a real station does.
    QUEUED = "queued"
    #: Newest first: the CSMS has to reorder by seqNo and timestamp.
    REVERSE = "reverse"
    #: A (seeded) random permutation.
    SHUFFLED = "shuffled"


class SequenceCounter:
    """`seqNo` of TransactionEventRequest: one counter for the whole station, starting at 0 and
    incremented by one for every event of every transaction. It belongs to the station, not the
    connection, so it goes on across reconnects and reboots."""

    def __init__(self, start: int = 0) -> None:
        if start < 0:
            raise ValueError("seqNo cannot be negative")
        self._next = start

    @property
    def upcoming(self) -> int:
        """The number the next event gets."""
        return self._next

    def take(self) -> int:
        number = self._next
        self._next += 1
        return number


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A queued event with its place in the queue and whether to validate it when sent."""

    key: int
    message: QueuedMessage
    validate: bool = True

    @property
    def seq_no(self) -> Any:
        return self.message.payload.get("seqNo")

    @property
    def transaction_id(self) -> Any:
        info = self.message.payload.get("transactionInfo")
        return info.get("transactionId") if isinstance(info, Mapping) else None


class TransactionEventQueue:
    """TransactionEvents waiting for the connection, in the order they happened."""

    def __init__(self) -> None:
        self._items: dict[int, QueuedEvent] = {}
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def messages(self) -> tuple[QueuedMessage, ...]:
        return tuple(item.message for item in self._items.values())

    def push(self, payload: Mapping[str, Any], *, validate: bool = True) -> QueuedEvent:
        """Queue an event exactly as it will go on the wire."""
        item = QueuedEvent(self._next_key, QueuedMessage(ACTION, dict(payload)), validate)
        self._items[item.key] = item
        self._next_key += 1
        return item

    def plan(self, order: FlushOrder, rng: random.Random | None = None) -> list[QueuedEvent]:
        """The queued events in the order to send them now."""
        items = list(self._items.values())
        if order is FlushOrder.REVERSE:
            items.reverse()
        elif order is FlushOrder.SHUFFLED:
            (rng or random.Random()).shuffle(items)
        return items

    def remove(self, item: QueuedEvent) -> None:
        """Drop an event once delivered (or given up on)."""
        self._items.pop(item.key, None)

    def holds(self, transaction_id: str) -> bool:
        """Whether any queued event belongs to this transaction."""
        return any(item.transaction_id == transaction_id for item in self._items.values())
