"""Use cases of a station's presence and reports: connect, boot, heartbeat, status, device
model, reservation updates and messages kept as sent.

Each call decides with csms.core rules and commits through a StationStore; it returns only
once what was reported is durable. No OCPP field names here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import structlog

from csms.core.charger import (
    BootInfo,
    ChargePoint,
    RegistrationStatus,
    StatusReport,
    registration_for,
)
from csms.core.clock import Clock
from csms.core.device_model import ReportedVariable
from csms.core.overview import ConnectionChanged, StationEvent, StatusChanged
from csms.core.reservations import ReservationState
from csms.services.charger_input import ChargingSettings, InputChecks
from csms.storage import charge_points as cp_repo
from csms.storage import device_model as device_repo
from csms.storage import events as event_repo
from csms.storage import reservations as reservation_repo
from csms.storage.database import BatchLoader, Database, WriteTx

log = structlog.get_logger("csms.services")


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: RegistrationStatus
    interval: int
    now: datetime
    # Ask this station for its full device model now (first Accepted boot of a firmware).
    base_report: bool = False


@dataclass(frozen=True, slots=True)
class Boot:
    """What a boot writes: `registered` for a charger that registers itself (not stored
    yet), `base_report_firmware` when its device model is asked for now."""

    info: BootInfo
    version: str
    registered: RegistrationStatus | None = None
    base_report_firmware: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """A firmware or diagnostics (log upload) status a charger reports: the charger's field
    that tracks it, and the status."""

    field: Literal["firmware", "diagnostics"]
    status: str | None


class Admission(Protocol):
    """What chargers may make us keep (csms.services.quotas.Quotas)."""

    def keep(self, cp_id: str, action: str, payload: dict[str, Any]) -> bool: ...

    async def enrolment_refusal(self) -> str | None: ...

    async def enrol(self) -> str | None: ...

    def refused(self, cp_id: str, reason: str, at: str, peer: str | None = None) -> None: ...


class StationStore(Protocol):
    """Where stations' presence and reports are kept; each write is durable when it
    returns."""

    async def charge_point(self, cp_id: str) -> ChargePoint | None: ...

    async def connected(
        self, cp_id: str, version: str, registration: RegistrationStatus, now: datetime
    ) -> None: ...

    async def disconnected(self, cp_id: str, last_seen: datetime, now: datetime) -> None: ...

    async def seen(self, seen: Sequence[tuple[str, datetime]]) -> None: ...

    async def booted(self, cp_id: str, boot: Boot, now: datetime) -> None: ...

    async def heartbeat(self, cp_id: str, now: datetime) -> None: ...

    async def status(self, cp_id: str, report: StatusReport, now: datetime) -> None: ...

    async def device_report(
        self, cp_id: str, variables: Sequence[ReportedVariable], now: datetime
    ) -> int: ...

    async def keep_message(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any] | None,
        progress: Progress | None,
        now: datetime,
    ) -> None: ...

    async def reservation_ended(
        self, cp_id: str, reservation_id: int, state: ReservationState, now: datetime
    ) -> None: ...


class DatabaseStations:
    """StationStore on the database: look-ups coalesced across chargers, writes merged into
    the group-commit writer's batch. `node_id`: this process's, recorded as the holder of
    each charger it connects (several nodes on one database)."""

    def __init__(self, db: Database, node_id: str = "local") -> None:
        self._db = db
        self._node_id = node_id
        self._charge_points = BatchLoader(db, cp_repo.get_many)

    async def charge_point(self, cp_id: str) -> ChargePoint | None:
        return await self._charge_points.load(cp_id)

    async def connected(
        self, cp_id: str, version: str, registration: RegistrationStatus, now: datetime
    ) -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.connected_later(w, cp_id, version, registration, now, self._node_id)

        await self._db.write(unit)

    async def disconnected(self, cp_id: str, last_seen: datetime, now: datetime) -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.disconnected_later(w, cp_id, self._node_id, last_seen, now)

        await self._db.write(unit)

    async def seen(self, seen: Sequence[tuple[str, datetime]]) -> None:
        async def unit(w: WriteTx) -> None:
            await cp_repo.touch_many(w, seen)

        await self._db.write(unit)

    async def booted(self, cp_id: str, boot: Boot, now: datetime) -> None:
        async def unit(w: WriteTx) -> None:
            if boot.registered is not None:
                cp_repo.connected_later(w, cp_id, boot.version, boot.registered, now, self._node_id)
            cp_repo.record_boot_later(w, cp_id, boot.info, boot.version, now)
            if boot.base_report_firmware is not None:
                cp_repo.base_report_asked_later(w, cp_id, boot.base_report_firmware)

        await self._db.write(unit)

    async def heartbeat(self, cp_id: str, now: datetime) -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.heartbeat_later(w, cp_id, now)

        await self._db.write(unit)

    async def status(self, cp_id: str, report: StatusReport, now: datetime) -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.record_status_later(w, cp_id, report, now)

        await self._db.write(unit)

    async def device_report(
        self, cp_id: str, variables: Sequence[ReportedVariable], now: datetime
    ) -> int:
        async def unit(w: WriteTx) -> int:
            return device_repo.store_report_later(w, cp_id, variables, now)

        return await self._db.write(unit)

    async def keep_message(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any] | None,
        progress: Progress | None,
        now: datetime,
    ) -> None:
        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            if payload is not None:
                await event_repo.record(conn, cp_id, action, payload, now)
            if progress is not None:
                field = progress.field
                await cp_repo.update_fields(
                    conn,
                    cp_id,
                    now,
                    **{f"{field}_status": progress.status, f"{field}_status_at": now},
                )

        await self._db.write(unit)

    async def reservation_ended(
        self, cp_id: str, reservation_id: int, state: ReservationState, now: datetime
    ) -> None:
        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            reservation = await reservation_repo.get(conn, reservation_id)
            if reservation is not None and reservation.charge_point_id == cp_id:
                await reservation_repo.set_state(conn, reservation_id, state, now)

        await self._db.write(unit)


class StationService:
    """Stations' presence and reports, made durable. One instance per process."""

    def __init__(
        self,
        store: StationStore,
        clock: Clock,
        settings: ChargingSettings,
        checks: InputChecks,
        quotas: Admission,
    ) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings
        self._checks = checks
        # What chargers may make us keep: messages stored as sent, their own registration.
        self.quotas = quotas
        # Called after a status or a connection change is committed (the OCPI location
        # publisher's wake).
        self.on_status: list[Callable[[], None]] = []
        # Called with what changed, after it is committed (the dashboard's live feed).
        self.on_event: list[Callable[[StationEvent], None]] = []
        # Called with a charger's id after its status, its connection or its boot is
        # committed (the load manager reads that charger again, not all of them).
        self.on_charger: list[Callable[[str], None]] = []

    def now(self) -> datetime:
        return self._clock()

    def _status_changed(self, event: StationEvent | None = None) -> None:
        for hook in self.on_status:
            hook()
        if event is not None:
            for watcher in self.on_event:
                watcher(event)
            self._charger_changed(event.charge_point_id)

    def _charger_changed(self, cp_id: str) -> None:
        for hook in self.on_charger:
            hook(cp_id)

    # --- connection lifecycle --------------------------------------------------------

    async def connected(
        self, cp_id: str, version: str, known: ChargePoint | None
    ) -> RegistrationStatus | None:
        """A charger opened a connection (`known`: its row as read at the handshake): mark
        it online. Returns its registration status, or None for a charger that is not
        stored: nothing is written for it until it boots (`boot` decides whether it may
        register itself), so ids that only connect leave no trace."""
        if known is None:
            return None
        registration = known.registration
        now = self._clock()
        await self._store.connected(cp_id, version, registration, now)
        self._status_changed(ConnectionChanged(cp_id, True, now))
        return registration

    async def still_connected(
        self, cp_id: str, version: str, registration: RegistrationStatus
    ) -> None:
        """Mark online again a charger whose connection was never lost (its node was taken
        for dead by the others)."""
        now = self._clock()
        await self._store.connected(cp_id, version, registration, now)
        self._status_changed(ConnectionChanged(cp_id, True, now))

    async def disconnected(self, cp_id: str, last_seen: datetime) -> None:
        now = self._clock()
        await self._store.disconnected(cp_id, last_seen, now)
        self._status_changed(ConnectionChanged(cp_id, False, now))

    async def seen(self, seen: Sequence[tuple[str, datetime]]) -> None:
        """Flush 'last heard from' times collected in memory."""
        await self._store.seen(seen)

    async def charge_point(self, cp_id: str) -> ChargePoint | None:
        return await self._store.charge_point(cp_id)

    # --- provisioning ----------------------------------------------------------------

    async def boot(
        self, cp_id: str, version: str, info: BootInfo, *, base_report: bool = False
    ) -> BootDecision:
        """Record the boot; the answer is the registration staff decided (or the policy's for
        a charger that is not stored yet). With `base_report`, an Accepted station whose
        firmware version has not been asked for its device model yet is due for it; that is
        recorded before the request goes out, so a station that reboots when probed is never
        asked again for the same firmware (no reboot loop)."""
        now = self._clock()
        known = await self._store.charge_point(cp_id)
        if known is None:
            refusal = await self.quotas.enrol()
            if refusal is not None:
                # Not stored: it may boot again after the interval (and is then reconsidered).
                self.quotas.refused(cp_id, refusal, "boot")
                return BootDecision(
                    RegistrationStatus.REJECTED, self.settings.heartbeat_interval, now
                )
        status = registration_for(known, self.settings.registration)
        firmware = info.firmware_version or ""
        due = (
            base_report
            and status is RegistrationStatus.ACCEPTED
            and (known is None or known.base_report_firmware != firmware)
        )
        boot = Boot(
            info,
            version,
            registered=status if known is None else None,
            base_report_firmware=firmware if due else None,
        )
        await self._store.booted(cp_id, boot, now)
        self._charger_changed(cp_id)
        if known is None:
            log.info("charger_registered_itself", charge_point_id=cp_id, registration=status.value)
            # Stored now, and marked connected in the same write (its connection was not).
            self._status_changed(ConnectionChanged(cp_id, True, now))
        return BootDecision(status, self.settings.heartbeat_interval, now, due)

    async def heartbeat(self, cp_id: str) -> datetime:
        now = self._clock()
        await self._store.heartbeat(cp_id, now)
        return now

    async def status(self, cp_id: str, report: StatusReport) -> None:
        """A connector's status; a time outside the plausible window becomes the time of
        receipt."""
        now = self._clock()
        if not self._checks.plausible(
            cp_id, "StatusNotification", "timestamp", report.timestamp, now
        ):
            report = replace(report, timestamp=now)
        await self._store.status(cp_id, report, now)
        self._status_changed(
            StatusChanged(
                cp_id,
                report.evse_id,
                report.connector_id,
                report.status,
                report.error_code,
                report.timestamp,
            )
        )

    async def device_report(
        self, cp_id: str, variables: Sequence[ReportedVariable], payload: dict[str, Any]
    ) -> int | None:
        """Store (a part of) the device model a station reports (`payload`: the message as
        sent, counted against the charger's quota of messages kept as sent); returns how
        many variable attributes were stored, None when the part was over the quota."""
        if not self.quotas.keep(cp_id, "NotifyReport", payload):
            return None
        return await self._store.device_report(cp_id, variables, self._clock())

    async def reservation_update(self, cp_id: str, reservation_id: int, expired: bool) -> None:
        """A station reports a reservation it ended itself: it expired, else it was
        removed."""
        state = ReservationState.EXPIRED if expired else ReservationState.CANCELLED
        await self._store.reservation_ended(cp_id, reservation_id, state, self._clock())

    # --- messages kept as sent -------------------------------------------------------

    async def record_event(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        progress: Progress | None = None,
    ) -> bool:
        """Store a message for staff, within the charger's quota; returns whether it was
        stored. `progress`: the firmware or diagnostics status it reports, set on the
        charger over the quota too."""
        now = self._clock()
        keep = self.quotas.keep(cp_id, action, payload)
        if not keep and progress is None:
            return False
        await self._store.keep_message(cp_id, action, payload if keep else None, progress, now)
        return keep
