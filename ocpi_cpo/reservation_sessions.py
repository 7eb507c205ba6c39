"""Partners' reservations as Sessions: a reservation an eMSP made (RESERVE_NOW) is PUT to it
as a Session with status RESERVATION once the charger holds it (again when replaced), and
PUT final (COMPLETED, no energy) once it ends: used by a transaction, cancelled, expired.

Reconciliation like the session publisher's: each pass looks at the partners' reservations
that are open or changed since its cursor and pushes what the partner has not seen, in the
write that records it with the reservation, so nothing is lost or sent twice. Reservation
rules are csms.core's; delivery is the push worker's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.core import ocpi_pushes
from csms.core.clock import Clock
from csms.core.errors import one_line
from csms.core.ocpi_commands import (
    ReservationFacts,
    reservation_session,
    reservation_session_id,
    reservation_status,
)
from csms.core.ocpi_sessions import SessionStatus
from csms.core.parties import Party
from csms.core.partners import InterfaceRole
from csms.core.reservations import ReservationState
from csms.core.retries import Backoff
from csms.storage import outbox as outbox_repo
from csms.storage import partners as partner_repo
from csms.storage import reservations as reservation_repo
from csms.storage.database import Database, WriteTx
from csms.storage.reservations import PartnerReservation
from csms.workers import Worker

log = structlog.get_logger("ocpi_cpo.reservation_sessions")

CURSOR = "reservation_sessions"
# How far back each pass looks again before its cursor (a change committed late).
OVERLAP = timedelta(seconds=60)
BATCH = 500
PERIOD_S = 2.0
# Shortest time between two passes.
MIN_GAP = 0.2
# A reservation that cannot be rendered is looked at again after 10 s, 20 s ... at most
# 10 minutes apart (the others are pushed meanwhile).
RENDER_RETRY = Backoff(first=10.0, cap=600.0)


def _wanted(held: PartnerReservation) -> SessionStatus | None:
    """What the partner should see of this reservation now (None: nothing, or nothing
    new). A reservation the charger refused was never shown and is not."""
    pushed = held.data.get("pushed") or {}
    status = reservation_status(held.reservation.state)
    if status is None:
        return None
    if status is SessionStatus.COMPLETED:
        if pushed.get("status") == SessionStatus.COMPLETED.value:
            return None
        if not pushed and held.reservation.state is ReservationState.REJECTED:
            return None
        return status
    if pushed.get("status") == status.value and pushed.get("version") == _version(held):
        return None
    return status


def _version(held: PartnerReservation) -> str:
    return held.updated_at.isoformat()


class ReservationSessions:
    """Pushes partners' reservations as Sessions. `wake()` runs a pass at once; otherwise
    one runs every `period` seconds (expiries are noticed so)."""

    def __init__(self, db: Database, clock: Clock, us: Party, period: float = PERIOD_S) -> None:
        self._db = db
        self._clock = clock
        self.us = us
        self.period = period
        # Every start and status change wakes it: at most one pass each MIN_GAP seconds.
        self.worker = Worker(
            "ocpi-reservation-sessions", self._pass, period=period, min_gap=min(MIN_GAP, period)
        )
        # Reservations that could not be rendered: id -> (failed attempts, next attempt).
        self._failing: dict[int, tuple[int, datetime]] = {}
        # Called after a pass enqueued something (the push worker's wake).
        self.on_enqueued: list[Callable[[], None]] = []

    def wake(self) -> None:
        self.worker.wake()

    async def _pass(self) -> None:
        if await self.publish():
            for hook in self.on_enqueued:
                hook()

    async def publish(self) -> int:
        """One pass; returns how many pushes were enqueued."""
        now = self._clock()
        async with self._db.read() as conn:
            stored = await outbox_repo.cursor(conn, CURSOR)
            since = None if stored is None else datetime.fromisoformat(stored) - OVERLAP
            rows = await reservation_repo.partners_changed(conn, since, BATCH)
            targets = {
                p.id: url
                for p, url in await partner_repo.registered_with_endpoint(
                    conn, "sessions", InterfaceRole.RECEIVER
                )
            }
        # A full batch may leave more behind: the cursor stops at the last one looked at.
        cursor = now if len(rows) < BATCH else min(now, rows[-1].updated_at)
        due = self._rendered(
            [
                (held, status)
                for held in rows
                if (status := _wanted(held)) is not None and self._may_try(held.reservation.id, now)
            ],
            targets,
            now,
        )
        enqueued = 0
        if due:
            enqueued = await self._db.write(lambda w: self._enqueue(w, due, targets, now))
        if stored is None or datetime.fromisoformat(stored) != cursor:

            async def save(w: WriteTx) -> None:
                await outbox_repo.set_cursor(await w.connection(), CURSOR, cursor.isoformat())

            await self._db.write(save)
        return enqueued

    async def _enqueue(
        self,
        w: WriteTx,
        due: list[tuple[PartnerReservation, SessionStatus, dict[str, Any] | None]],
        targets: dict[int, str],
        now: datetime,
    ) -> int:
        conn = await w.connection()
        enqueued = 0
        for held, status, session in due:
            reservation = held.reservation
            url = targets.get(held.partner_id)
            # Recorded even without an endpoint to push to: the partner gets no stale
            # pushes once it has one. A reservation changed since it was read (replaced)
            # is left to the next pass.
            pushed: dict[str, Any] = {"status": status.value, "version": _version(held)}
            data = {**held.data, "pushed": pushed}
            if not await reservation_repo.set_partner_data(
                conn, reservation.id, data, held.updated_at
            ):
                continue
            if url is not None and session is not None:
                await outbox_repo.enqueue(
                    conn, held.partner_id, ocpi_pushes.session_put(url, self.us, session), now
                )
                enqueued += 1
                log.info(
                    "reservation_session_enqueued",
                    charge_point_id=reservation.charge_point_id,
                    reservation_id=reservation.id,
                    session_id=reservation_session_id(reservation.id),
                    status=status.value,
                )
        return enqueued

    def _rendered(
        self,
        wanted: list[tuple[PartnerReservation, SessionStatus]],
        targets: dict[int, str],
        now: datetime,
    ) -> list[tuple[PartnerReservation, SessionStatus, dict[str, Any] | None]]:
        """The Session object of each reservation going to a partner with a sessions
        endpoint (None for the others); one that cannot be rendered is left out, logged,
        and looked at again after a back-off."""
        out: list[tuple[PartnerReservation, SessionStatus, dict[str, Any] | None]] = []
        for held, status in wanted:
            reservation = held.reservation
            session: dict[str, Any] | None = None
            if held.partner_id in targets:
                try:
                    session = reservation_session(
                        ReservationFacts(
                            reservation_id=reservation.id,
                            status=status,
                            start=reservation.created_at or held.updated_at,
                            end=held.updated_at,
                            info=held.data,
                            last_updated=held.updated_at,
                        ),
                        self.us,
                    )
                except Exception as exc:  # noqa: BLE001 - logged; the others go on
                    self._failed(reservation.id, exc, now)
                    continue
            self._failing.pop(reservation.id, None)
            out.append((held, status, session))
        return out

    def _may_try(self, reservation_id: int, now: datetime) -> bool:
        failing = self._failing.get(reservation_id)
        return failing is None or failing[1] <= now

    def _failed(self, reservation_id: int, exc: Exception, now: datetime) -> None:
        attempts = self._failing.get(reservation_id, (0, now))[0] + 1
        retry_at = RENDER_RETRY.next_at(attempts, now)
        self._failing[reservation_id] = (attempts, retry_at)
        log.warning(
            "reservation_session_failed",
            reservation_id=reservation_id,
            attempts=attempts,
            error=one_line(exc),
            retry_at=retry_at.isoformat(),
        )
