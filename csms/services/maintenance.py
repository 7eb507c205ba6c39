"""Staff's maintenance windows: time a charger (or one EVSE) is taken out of the uptime
figures, planned ahead (`csms maintenance add`) or excluded after the fact with a reason
(`csms maintenance exclude`: grid loss, vandalism). Each change is checked, audited in the
commands log like other staff changes, and logged.

Validation and audit; the windows are read by csms.storage.statistics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.clock import Clock
from csms.core.errors import InvalidInput, NotFound, UnknownChargePoint
from csms.core.maintenance import MAX_REASON, MaintenanceWindow, WindowKind
from csms.storage import charge_points as cp_repo
from csms.storage import commands as audit_repo
from csms.storage import statistics as repo
from csms.storage.database import Database, WriteTx

log = structlog.get_logger("csms.maintenance")

# The audit log's `command` of each change.
MAINTENANCE_ADD = "maintenance_add"
MAINTENANCE_EXCLUDE = "maintenance_exclude"
MAINTENANCE_REMOVE = "maintenance_remove"
AUDIT_COMMANDS = (MAINTENANCE_ADD, MAINTENANCE_EXCLUDE, MAINTENANCE_REMOVE)
_ADDED = {WindowKind.PLANNED: MAINTENANCE_ADD, WindowKind.EXCLUDED: MAINTENANCE_EXCLUDE}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _where(cp_id: str, evse_id: int | None) -> str:
    return cp_id if evse_id is None else f"{cp_id} EVSE {evse_id}"


class MaintenanceService:
    """Staff's maintenance windows, each change audited and logged."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self,
        cp_id: str,
        evse_id: int | None,
        start: datetime,
        end: datetime,
        kind: WindowKind,
        reason: str,
        *,
        requested_by: str | None = None,
        source: str = "cli",
    ) -> MaintenanceWindow:
        """Take `cp_id` (or its EVSE `evse_id`) out of the uptime figures in [start, end).
        An exclusion is entered after the fact: it may not start in the future."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("naive datetime given for a maintenance window")
        if evse_id is not None and evse_id < 1:
            raise InvalidInput(f"--evse must be 1 or more, not {evse_id}")
        if end <= start:
            raise InvalidInput(f"--until ({_iso(end)}) must be after --from ({_iso(start)})")
        reason = reason.strip()
        if not reason:
            raise InvalidInput("--reason must say why")
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"--reason is at most {MAX_REASON} characters")
        now = self._clock()
        if kind is WindowKind.EXCLUDED and start > now:
            raise InvalidInput(
                f"an exclusion is entered after the fact: --from ({_iso(start)}) is in the "
                "future (plan ahead with `csms maintenance add`)"
            )

        async def unit(w: WriteTx) -> tuple[MaintenanceWindow, int]:
            conn = await w.connection()
            if await cp_repo.get(conn, cp_id) is None:
                raise UnknownChargePoint(f"no charger {cp_id!r} (see `csms chargers list`)")
            window = await repo.add_window(
                conn, cp_id, evse_id, start, end, kind, reason, requested_by, now
            )
            entry = await _audit(
                conn,
                cp_id,
                _ADDED[kind],
                {
                    "window": window.id,
                    "evse": evse_id,
                    "from": _iso(start),
                    "until": _iso(end),
                    "reason": reason,
                },
                f"{kind.value} maintenance window {window.id} of {_where(cp_id, evse_id)} "
                f"from {_iso(start)} until {_iso(end)}: {reason}",
                source,
                requested_by,
                now,
            )
            return window, entry

        window, entry = await self._db.write(unit)
        log.info(
            "maintenance_window_added",
            charge_point_id=cp_id,
            evse_id=evse_id,
            window_id=window.id,
            kind=kind.value,
            start=_iso(start),
            end=_iso(end),
            requested_by=requested_by,
            audit_id=entry,
        )
        return window

    async def windows(
        self, cp_id: str | None = None, *, limit: int = 100
    ) -> tuple[list[MaintenanceWindow], int]:
        """Windows (of one charger, or all), the latest start first; and how many."""
        async with self._db.read() as conn:
            if cp_id is not None and await cp_repo.get(conn, cp_id) is None:
                raise UnknownChargePoint(f"no charger {cp_id!r} (see `csms chargers list`)")
            return await repo.list_windows(conn, cp_id, limit=limit)

    async def remove(
        self, window_id: int, *, requested_by: str | None = None, source: str = "cli"
    ) -> MaintenanceWindow:
        """Remove a window (the uptime figures count its time again); the one removed."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[MaintenanceWindow, int]:
            conn = await w.connection()
            window = await repo.get_window(conn, window_id)
            if window is None or not await repo.remove_window(conn, window_id):
                raise NotFound(f"no maintenance window {window_id} (see `csms maintenance list`)")
            entry = await _audit(
                conn,
                window.charge_point_id,
                MAINTENANCE_REMOVE,
                {
                    "window": window.id,
                    "kind": window.kind.value,
                    "evse": window.evse_id,
                    "from": _iso(window.starts_at),
                    "until": _iso(window.ends_at),
                    "reason": window.reason,
                },
                f"{window.kind.value} maintenance window {window.id} of "
                f"{_where(window.charge_point_id, window.evse_id)} removed",
                source,
                requested_by,
                now,
            )
            return window, entry

        window, entry = await self._db.write(unit)
        log.info(
            "maintenance_window_removed",
            charge_point_id=window.charge_point_id,
            window_id=window.id,
            requested_by=requested_by,
            audit_id=entry,
        )
        return window


async def _audit(
    conn: AsyncConnection,
    cp_id: str,
    command: str,
    params: dict[str, Any],
    message: str,
    source: str,
    requested_by: str | None,
    now: datetime,
) -> int:
    """Record a change in the audit log, done at once."""
    entry = await audit_repo.record_change(
        conn,
        cp_id=cp_id,
        command=command,
        params=params,
        message=message,
        source=source,
        requested_by=requested_by,
        now=now,
    )
    return entry
