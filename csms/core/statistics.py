"""Statistics of chargers' use: the values the repository reads and the aggregation works on.

Pure types, no I/O (the repository is csms.storage.statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

Period = Literal["hour", "day", "week", "month"]
GroupBy = Literal["evse", "charger", "location", "site", "network"]
Origin = Literal["local", "roaming", "remote"]  # token origin of a session

EvseKey = tuple[str, int]  # (charge_point_id, evse_id >= 1)


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span of time [start, end), UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class SessionFact:
    """One transaction as the statistics count it."""

    transaction_id: int
    evse: EvseKey
    start_at: datetime
    stop_at: datetime | None  # None: still running (counts up to the range's end)
    energy_wh: int | None
    token_key: str | None  # for unique tokens (None: not counted)
    origin: Origin
    currency: str | None  # from its CDR (None: no CDR yet -> no revenue)
    revenue_excl: Decimal | None
    revenue_incl: Decimal | None


@dataclass(frozen=True, slots=True)
class EvseActivity:
    """Of one EVSE inside the asked range: when a vehicle was plugged in, and when energy
    flowed."""

    occupied: list[Interval]
    charging: list[Interval]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One EVSE's (or the whole charger's, EVSE 0) status from `at` on, as stored (1.6 or
    2.0.1 names)."""

    at: datetime
    status: str
