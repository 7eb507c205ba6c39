"""Maintenance windows: time staff take a charger (or one EVSE) out of the uptime figures,
planned ahead or excluded after the fact (grid loss, vandalism). Pure values, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

MAX_REASON = 300


class WindowKind(enum.StrEnum):
    PLANNED = "planned"  # entered ahead: planned maintenance
    EXCLUDED = "excluded"  # entered after the fact: an outage staff excuse, with a reason


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """[starts_at, ends_at) of a charger, or of one of its EVSEs (`evse_id`; None: the
    whole charger)."""

    id: int
    charge_point_id: str
    evse_id: int | None
    starts_at: datetime
    ends_at: datetime
    kind: WindowKind
    reason: str
    created_by: str | None
    created_at: datetime
