"""Reservations: ReserveNow (ours, or an OCPI partner's, which may replace one it holds) and
CancelReservation, each settled in the reservations table once the charger answered, and
the worker that marks reservations Expired when their time comes.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from typing import Any

import structlog

from csms.core.clock import Clock, format_timestamp
from csms.core.command_params import check_length
from csms.core.command_requests import (
    CancelReservationRequest,
    ReserveRequest,
    check_expiry,
)
from csms.core.commands import Answer, CancelReservation, CommandRefused, Reserve
from csms.core.reservations import OPEN_STATES, ReservationState
from csms.services.charging import Charging
from csms.services.commands.base import Order, Prepared, authorized_token
from csms.storage import reservations as reservation_repo
from csms.storage.database import Database, WriteTx
from csms.workers import Worker

log = structlog.get_logger("csms.commands")


class Reservations:
    """`reserve` and `cancel-reservation`; `worker` expires reservations on time."""

    def __init__(self, db: Database, clock: Clock, charging: Charging) -> None:
        self._db = db
        self._clock = clock
        self._charging = charging
        # Marks reservations Expired when their time comes (started by the app); woken when
        # a reservation is made or settled, so that its expiry is looked at.
        self.worker = Worker("reservations", self._expire_due, period=60.0)

    async def prepare(
        self, request: ReserveRequest | CancelReservationRequest, order: Order
    ) -> Prepared:
        match request:
            case ReserveRequest():
                return await self._reserve(request, order)
            case CancelReservationRequest():
                return await self._cancel(request, order)

    async def _reserve(self, request: ReserveRequest, order: Order) -> Prepared:
        cp_id, tag, expires, evse = order.cp_id, request.tag, request.expires, request.evse
        check_length("tag", tag, order.limits.id_token_max)
        now = self._clock()
        check_expiry(expires, now)
        vouched = order.vouched
        token_type, auth = await authorized_token(
            self._db, self._clock, self._charging, tag, vouched
        )
        partner = None if vouched is None else vouched.reservation
        replaces = None if partner is None else partner.replaces
        async with self._db.read() as conn:
            holding = [r for r in await reservation_repo.open_for(conn, cp_id) if r.holds(now)]
        if replaces is not None and not any(r.id == replaces for r in holding):
            raise CommandRefused(f"reservation {replaces} on {cp_id} is no longer open")
        for r in holding:
            if evse is not None and r.evse_id == evse and r.id != replaces:
                raise CommandRefused(
                    f"EVSE {evse} is already reserved (reservation {r.id} until "
                    f"{format_timestamp(r.expires_at)})"
                )
        data = {"expires_at": format_timestamp(expires)}
        if replaces is not None:
            # The charger replaces the reservation with this id; ours changes only once it
            # did (a refused ReserveNow leaves the old one in place).
            async def replaced(answer: Answer) -> None:
                if not answer.ok:
                    return
                at = self._clock()

                async def unit(w: WriteTx) -> None:
                    await reservation_repo.replace(
                        await w.connection(),
                        replaces,
                        evse_id=evse,
                        id_tag=tag,
                        parent_id_tag=auth.parent_uid,
                        expires_at=expires,
                        ocpi=None if partner is None else partner.info,
                        now=at,
                    )

                await self._db.write(unit)
                self.worker.wake()

            return Prepared(
                Reserve(replaces, tag, token_type, auth.parent_uid, expires, evse),
                {"reservation_id": replaces, "replaced": True, **data},
                replaced,
            )

        async def create(w: WriteTx) -> int:
            return await reservation_repo.create(
                await w.connection(),
                cp_id=cp_id,
                evse_id=evse,
                id_tag=tag,
                parent_id_tag=auth.parent_uid,
                expires_at=expires,
                source=order.requester.source,
                now=now,
                ocpi_partner_id=None if partner is None else partner.partner_id,
                ocpi_reservation_id=None if partner is None else partner.reservation_id,
                ocpi=None if partner is None else partner.info,
            )

        reservation_id = await self._db.write(create)

        async def settle(state: ReservationState) -> None:
            at = self._clock()

            async def unit(w: WriteTx) -> None:
                await reservation_repo.set_state(await w.connection(), reservation_id, state, at)

            await self._db.write(unit)
            self.worker.wake()

        async def after(answer: Answer) -> None:
            await settle(ReservationState.ACTIVE if answer.ok else ReservationState.REJECTED)

        async def failed() -> None:
            await settle(ReservationState.REJECTED)

        return Prepared(
            Reserve(reservation_id, tag, token_type, auth.parent_uid, expires, evse),
            {"reservation_id": reservation_id, **data},
            after,
            failed,
        )

    async def _cancel(self, request: CancelReservationRequest, order: Order) -> Prepared:
        cp_id, reservation_id = order.cp_id, request.reservation
        async with self._db.read() as conn:
            reservation = await reservation_repo.get(conn, reservation_id)
        if reservation is None or reservation.charge_point_id != cp_id:
            raise CommandRefused(f"no reservation {reservation_id} on {cp_id}")
        if reservation.state not in OPEN_STATES:
            raise CommandRefused(
                f"reservation {reservation_id} is already {reservation.state.value}"
            )

        async def after(answer: Answer) -> None:
            if answer.ok:
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await reservation_repo.set_state(
                        await w.connection(), reservation_id, ReservationState.CANCELLED, now
                    )

                await self._db.write(unit)

        return Prepared(
            CancelReservation(reservation_id), {"reservation_id": reservation_id}, after
        )

    # --- reservations expire on time -------------------------------------------------

    async def _expire_due(self) -> float:
        """One pass of the reservations worker: returns the time until the next expiry."""
        now = self._clock()

        async def unit(w: WriteTx) -> list[Any]:
            return await reservation_repo.expire_due(await w.connection(), now)

        for reservation in await self._db.write(unit):
            log.info(
                "reservation_expired",
                charge_point_id=reservation.charge_point_id,
                reservation_id=reservation.id,
                evse_id=reservation.evse_id,
            )
        async with self._db.read() as conn:
            upcoming = await reservation_repo.next_expiry(conn)
        if upcoming is None:
            return 60.0
        return min(60.0, max(0.01, (upcoming - self._clock()).total_seconds()))
