"""What an offline queue holds and hands back, for chargers of every OCPP version.

Plain records; each version keeps its own queue (`v16_offline`, `v201_offline`) and sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Delivery", "QueuedMessage"]


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A request as it will go on the wire (camelCase); timestamps fixed when it happened."""

    action: str
    payload: Mapping[str, Any]
    #: OCPP 1.6 StartTransaction only: the local id handed out while offline.
    provisional_id: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one queued message when the connection came back."""

    action: str
    request: Mapping[str, Any]
    #: The CSMS answer (camelCase); None when it failed, see `error`.
    answer: Mapping[str, Any] | None
    error: str | None
