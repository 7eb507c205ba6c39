"""The network at a glance (the dashboard's first figures, `GET /api/overview`) and the live
changes staff watch (`GET /api/events`): what they mean, apart from where they come from.

A charger's status is the most pressing of its EVSEs' (EVSE 0, the charger itself,
included), in the five-value (OCPP 2.0.1) view: Faulted, then Unavailable, then Occupied,
then Reserved, then Available. A charger that never reported a status is Unknown. The
figures count what the database holds: a disconnected charger keeps its last status (the
`connected` count says how many are online).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from csms.core.status import ConnectorStatus

UNKNOWN = "Unknown"
# Most pressing first.
_PRECEDENCE = (
    ConnectorStatus.FAULTED,
    ConnectorStatus.UNAVAILABLE,
    ConnectorStatus.OCCUPIED,
    ConnectorStatus.RESERVED,
    ConnectorStatus.AVAILABLE,
)
# Every key of a `by_status` count, in the order staff read them (zeros included, so that a
# page or a script finds the same keys whatever the network's state).
STATUS_KEYS: tuple[str, ...] = (
    ConnectorStatus.AVAILABLE.value,
    ConnectorStatus.OCCUPIED.value,
    ConnectorStatus.RESERVED.value,
    ConnectorStatus.UNAVAILABLE.value,
    ConnectorStatus.FAULTED.value,
    UNKNOWN,
)


def charger_status(statuses: Iterable[ConnectorStatus]) -> str:
    """The status a charger is counted under, from its EVSEs' (and its own) statuses."""
    present = {s.base for s in statuses}
    for status in _PRECEDENCE:
        if status in present:
            return status.value
    return UNKNOWN


def count_by_status(values: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(STATUS_KEYS, 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


@dataclass(frozen=True, slots=True)
class Overview:
    chargers: int
    connected: int
    chargers_by_status: dict[str, int]
    # EVSEs (1 and up; not the charger itself) by their own status.
    evses: int
    evses_by_status: dict[str, int]
    sessions_running: int
    # The newest active-power reading of each running session, summed (W); sessions that
    # reported none count 0.
    power_w: float
    at: datetime


# --- live changes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A connector's status, as committed (the charger's own time of the change)."""

    charge_point_id: str
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    error_code: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """A charger connected to this process or its connection ended (as committed)."""

    charge_point_id: str
    connected: bool
    at: datetime


StationEvent = StatusChanged | ConnectionChanged
