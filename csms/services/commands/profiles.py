"""Charging profiles: SetChargingProfile (recorded before it is sent, installed or rejected
by the charger's answer; a TxProfile bound to the transaction on its EVSE),
ClearChargingProfile (one, a transaction's, or all) and GetCompositeSchedule.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from typing import Any

from csms.core.clock import Clock
from csms.core.command_requests import (
    ProfileClearRequest,
    ProfileCompositeRequest,
    ProfileSetRequest,
)
from csms.core.commands import (
    Answer,
    ChargingProfile,
    ClearChargingProfile,
    CommandRefused,
    GetCompositeSchedule,
    ProfilePurpose,
    SetChargingProfile,
)
from csms.services.commands.base import Order, Prepared
from csms.storage import charging_profiles as profile_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, WriteTx

ProfileRequest = ProfileSetRequest | ProfileClearRequest | ProfileCompositeRequest


class ChargingProfiles:
    """`profile-set`, `profile-clear` and `profile-composite`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def prepare(self, request: ProfileRequest, order: Order) -> Prepared:
        match request:
            case ProfileSetRequest():
                return await self._set(order.cp_id, request)
            case ProfileClearRequest():
                return await self._clear(order.cp_id, request)
            case ProfileCompositeRequest():
                command = GetCompositeSchedule(request.evse, request.duration, request.unit)
                return Prepared(command)

    async def _set(self, cp_id: str, request: ProfileSetRequest) -> Prepared:
        """One limit or a schedule, from now, from `start` or, `relative`, from the start of
        charging; a TxProfile is bound to the transaction running on the EVSE (which must be
        `transaction` when that is given)."""
        evse, purpose, wanted_tx = request.evse, request.purpose, request.transaction
        now = self._clock()
        tx_id: int | None = None
        wire_tx: str | None = None
        if purpose is ProfilePurpose.TX:
            async with self._db.read() as conn:
                tx = await tx_repo.active_on_evse(conn, cp_id, evse)
            if tx is None:
                raise CommandRefused(f"no transaction is running on EVSE {evse}")
            if wanted_tx is not None and tx.id != wanted_tx:
                raise CommandRefused(f"transaction {wanted_tx} is not running on EVSE {evse}")
            tx_id, wire_tx = tx.id, tx.ocpp_transaction_id or str(tx.id)
        start_at = request.start or now
        limit = request.first_limit

        async def create(w: WriteTx) -> int:
            return await profile_repo.create(
                await w.connection(),
                cp_id=cp_id,
                evse_id=evse,
                purpose=purpose,
                stack_level=request.stack,
                limit=limit,
                unit=request.unit,
                start_at=start_at,
                duration_s=request.duration,
                transaction_id=tx_id,
                now=now,
            )

        profile_id = await self._db.write(create)
        profile = ChargingProfile(
            profile_id,
            evse,
            purpose,
            request.stack,
            limit,
            request.unit,
            start_at,
            request.duration,
            wire_tx,
            periods=request.periods,
            min_rate=request.min_rate,
            relative=request.relative,
        )

        async def settle(ok: bool) -> None:
            at = self._clock()

            async def unit_of_work(w: WriteTx) -> None:
                conn = await w.connection()
                state = profile_repo.INSTALLED if ok else profile_repo.REJECTED
                await profile_repo.set_state(conn, profile_id, state, at)
                if ok:
                    await profile_repo.replace_same_slot(conn, cp_id, profile, at)

            await self._db.write(unit_of_work)

        async def after(answer: Answer) -> None:
            await settle(answer.ok)

        async def failed() -> None:
            await settle(False)

        data: dict[str, Any] = {"profile_id": profile_id}
        if tx_id is not None:
            data["transaction_id"] = tx_id
        return Prepared(SetChargingProfile(profile), data, after, failed)

    async def _clear(self, cp_id: str, request: ProfileClearRequest) -> Prepared:
        profile_id = request.profile_id
        if request.transaction is not None:
            return await self._clear_transaction(cp_id, request.transaction)
        if profile_id is not None:
            async with self._db.read() as conn:
                found = await profile_repo.get(conn, profile_id)
            if found is None or found[0] != cp_id:
                raise CommandRefused(f"no charging profile {profile_id} on {cp_id}")

        async def after(answer: Answer) -> None:
            # Unknown: the charger does not have it (any more), so it is not installed either.
            if answer.ok or (answer.status == "Unknown" and profile_id is not None):
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await profile_repo.clear(await w.connection(), cp_id, profile_id, now)

                await self._db.write(unit)

        return Prepared(ClearChargingProfile(profile_id), {}, after)

    async def _clear_transaction(self, cp_id: str, tx_id: int) -> Prepared:
        """Clear every TxProfile of a running transaction: those on its EVSE (a TxProfile is
        for the transaction on its EVSE). Unknown: the charger had none (any more)."""
        async with self._db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
        if tx is None or tx.charge_point_id != cp_id:
            raise CommandRefused(f"no transaction {tx_id} on {cp_id}")
        if not tx.active:
            raise CommandRefused(f"transaction {tx_id} has already ended")

        async def after(answer: Answer) -> None:
            if answer.ok or answer.status == "Unknown":
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await profile_repo.end_with_transaction(await w.connection(), cp_id, tx_id, now)

                await self._db.write(unit)

        command = ClearChargingProfile(None, tx.evse_id, ProfilePurpose.TX)
        return Prepared(command, {"transaction_id": tx_id}, after)
