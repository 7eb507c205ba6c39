"""Remote start and stop: a transaction started for a token on an EVSE (checked against the
token's standing, a transaction already running there and the charger's reservations), or
one of ours stopped.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from csms.core.clock import Clock, format_timestamp
from csms.core.command_params import check_length
from csms.core.command_requests import StartRequest, StopRequest
from csms.core.commands import Answer, CommandRefused, RemoteStart, RemoteStop
from csms.core.reservations import check_start
from csms.services.charging import Charging
from csms.services.commands.base import Order, Prepared, authorized_token
from csms.storage import reservations as reservation_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database


class RemoteStartStop:
    """`start` and `stop`."""

    def __init__(self, db: Database, clock: Clock, charging: Charging) -> None:
        self._db = db
        self._clock = clock
        self._charging = charging

    async def prepare(self, request: StartRequest | StopRequest, order: Order) -> Prepared:
        match request:
            case StartRequest():
                return await self._start(request, order)
            case StopRequest():
                return await self._stop(request, order)

    async def _start(self, request: StartRequest, order: Order) -> Prepared:
        cp_id, tag, evse = order.cp_id, request.tag, request.evse
        check_length("tag", tag, order.limits.id_token_max)
        token_type, auth = await authorized_token(
            self._db, self._clock, self._charging, tag, order.vouched
        )
        async with self._db.read() as conn:
            reservations = await reservation_repo.open_for(conn, cp_id)
            busy = await tx_repo.active_on_evse(conn, cp_id, evse) if evse else None
        if busy is not None:
            raise CommandRefused(f"EVSE {evse} is busy with transaction {busy.id}")
        check = check_start(reservations, evse, tag, auth.parent_uid, self._clock())
        if evse is not None and check.blocked_by is not None:
            raise CommandRefused(
                f"EVSE {evse} is reserved for another tag (reservation {check.blocked_by.id} "
                f"until {format_timestamp(check.blocked_by.expires_at)})"
            )
        entry_id = order.entry_id
        # Without the remote start's id in the transaction, the CSMS recognises it by these.
        note = not order.limits.start_carries_remote_start_id

        async def after(answer: Answer) -> None:
            if answer.ok and note:
                self._charging.transactions.note_remote_start(cp_id, tag, evse, entry_id)

        return Prepared(
            RemoteStart(tag, token_type, evse, entry_id), {"remote_start_id": entry_id}, after
        )

    async def _stop(self, request: StopRequest, order: Order) -> Prepared:
        cp_id, tx_id = order.cp_id, request.transaction
        async with self._db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
        if tx is None:
            raise CommandRefused(f"no transaction {tx_id}")
        if tx.charge_point_id != cp_id:
            raise CommandRefused(f"transaction {tx_id} runs on {tx.charge_point_id}, not {cp_id}")
        if not tx.active:
            raise CommandRefused(f"transaction {tx_id} has already ended")
        wire = tx.ocpp_transaction_id or str(tx.id)
        return Prepared(RemoteStop(tx.id, wire), {"transaction_id": tx.id})
