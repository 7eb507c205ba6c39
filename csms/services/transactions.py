"""Use cases of transactions: 1.6 start, stop and meter values, 2.0.1 TransactionEvents and
MeterValues, reservations used and remote starts claimed by a start.

Each call loads state, applies csms.core rules (csms.core.transaction_updates for how a
message changes a transaction) and commits through the group-commit writer; it returns only
once what was reported is durable. No OCPP field names here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from csms.core.authorization import AuthResult, AuthStatus, Token, decide
from csms.core.clock import Clock
from csms.core.ids import token_key
from csms.core.metering import Sample, SignedMeterValue
from csms.core.reservations import Reservation, ReservationState, check_start
from csms.core.roaming import Grant
from csms.core.transaction_updates import (
    TransactionChanges,
    adds_only_readings,
    merge_event,
    new_transaction,
    opened_by,
    settled_energy,
)
from csms.core.transactions import (
    BillingState,
    InputFlag,
    Transaction,
    TransactionEvent,
    TransactionState,
    TxEventType,
    flagged,
    with_energy,
)
from csms.services.authorization import AuthorizationService
from csms.services.charger_input import MAX_ENTRIES, NO_AUTHORIZATION, InputChecks, added
from csms.services.meter_keys import MeterKeys, meter_serial_of
from csms.storage import charging_profiles as profile_repo
from csms.storage import reservations as reservation_repo
from csms.storage import signed_values as signed_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import BatchLoader, Database, Unit, WriteTx

log = structlog.get_logger("csms.services")

# How long an accepted 1.6 RemoteStartTransaction waits for the StartTransaction it causes.
REMOTE_START_WINDOW_S = 300.0


@dataclass(slots=True)
class _RemoteStart:
    tag_key: str
    evse_id: int | None
    remote_start_id: int
    until: datetime


@dataclass(frozen=True, slots=True)
class StartRequest:
    evse_id: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    timestamp: datetime
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class StartResult:
    transaction_id: int
    auth: AuthResult
    duplicate: bool


@dataclass(frozen=True, slots=True)
class StopRequest:
    transaction_id: int
    meter_stop_wh: int
    timestamp: datetime
    id_tag: str | None = None
    reason: str | None = None
    samples: tuple[Sample, ...] = ()
    raw: dict[str, Any] | None = None  # kept for staff when the transaction is unknown
    signed: tuple[SignedMeterValue, ...] = ()


@dataclass(frozen=True, slots=True)
class StopResult:
    auth: AuthResult | None
    known: bool
    duplicate: bool
    energy_wh: int | None = None
    flags: tuple[str, ...] = ()
    evse_id: int | None = None


@dataclass(frozen=True, slots=True)
class MeterReport:
    evse_id: int
    connector_id: int
    transaction_id: int | None
    samples: tuple[Sample, ...]
    raw: dict[str, Any] | None = None
    signed: tuple[SignedMeterValue, ...] = ()


@dataclass(frozen=True, slots=True)
class _Signed:
    """Signed values to write with a message's readings, with the meter serial of each
    (read before the write: the writer serves every charger)."""

    values: tuple[SignedMeterValue, ...]
    serials: tuple[str | None, ...]


def _signed(values: tuple[SignedMeterValue, ...]) -> _Signed:
    """Called for a message with signed values only: the usual one pays one check."""
    return _Signed(values, tuple(meter_serial_of(v) for v in values))


def _add_signed_later(
    w: WriteTx,
    signed: _Signed,
    *,
    cp_id: str,
    evse_id: int,
    connector_id: int,
    transaction_id: int | None,
) -> None:
    signed_repo.add_later(
        w,
        cp_id=cp_id,
        evse_id=evse_id,
        connector_id=connector_id,
        transaction_id=transaction_id,
        values=signed.values,
        serials=signed.serials,
    )


async def _use_reservation(
    w: WriteTx, reservation_id: int | None, tx_id: int, now: datetime
) -> None:
    """In the unit that creates transaction `tx_id`: the reservation it used, if any, is
    USED by it."""
    if reservation_id is not None:
        await reservation_repo.set_state(
            await w.connection(), reservation_id, ReservationState.USED, now, transaction_id=tx_id
        )


def _keep_event(
    w: WriteTx,
    cp_id: str,
    tx_id: int,
    evse_id: int,
    connector_id: int,
    event: TransactionEvent,
    rest: dict[str, Any],
    now: datetime,
    signed: _Signed | None = None,
) -> None:
    """An event's log row (`rest`: the message as sent but its readings, which are stored
    once, as meter values) and its readings (and signed values), written with the batch."""
    tx_repo.record_event_later(
        w,
        transaction_id=tx_id,
        cp_id=cp_id,
        event=event,
        payload=rest,
        now=now,
    )
    tx_repo.add_samples_later(
        w,
        cp_id=cp_id,
        evse_id=evse_id,
        connector_id=connector_id,
        transaction_id=tx_id,
        samples=event.samples,
    )
    if signed is not None:
        _add_signed_later(
            w,
            signed,
            cp_id=cp_id,
            evse_id=evse_id,
            connector_id=connector_id,
            transaction_id=tx_id,
        )


@dataclass(slots=True)
class _TxCursor:
    """What this process knows of a running 2.0.1 transaction: its row as last committed
    and the seqNos it has received (all events of a station pass through its connection,
    so this is complete while the transaction runs)."""

    tx: Transaction
    seen: set[int]


async def _cursor(conn: Any, tx: Transaction) -> _TxCursor:
    return _TxCursor(tx, await tx_repo.seq_nos_of(conn, tx.id))


@dataclass(frozen=True, slots=True)
class TxEventResult:
    transaction_id: int
    auth: AuthResult | None
    duplicate: bool
    ended: bool = False
    cursor: _TxCursor | None = None


async def _nothing() -> None:
    return None


class TransactionService:
    """What chargers report of transactions, made durable. One instance per process."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        authorization: AuthorizationService,
        checks: InputChecks,
    ) -> None:
        self._db = db
        self._clock = clock
        self._auth = authorization
        self._checks = checks
        # Running transactions this process has seen, by id: lets meter values and stops
        # skip a look-up.
        self._active: dict[int, Transaction] = {}
        # Look-ups that run outside the writer, coalesced across chargers (a burst of a
        # thousand starts costs a few queries), so that a start or a stop costs the writer
        # no trip to the database of its own.
        self._reservations = BatchLoader(db, reservation_repo.open_for_many)
        self._starts_at = BatchLoader(db, tx_repo.starts_at)
        self._by_ocpp_id = BatchLoader(db, tx_repo.by_ocpp_ids)
        self._transactions = BatchLoader(db, tx_repo.get_many)
        self._readings = BatchLoader(db, tx_repo.readings_of)
        self._on_evse = BatchLoader(db, tx_repo.active_on_evses)
        self._ids = tx_repo.TransactionIds()
        # One transaction message per charger at a time, also across a replaced connection
        # (its messages may still be in flight when the new one's arrive).
        self._busy: dict[str, asyncio.Future[None]] = {}
        # Running 2.0.1 transactions by (charge point, transactionId).
        self._cursors: dict[tuple[str, str], _TxCursor] = {}
        # The transaction running on each (charge point, EVSE), or None, as far as known.
        self._evse_tx: dict[tuple[str, int], int | None] = {}
        # Accepted 1.6 remote starts waiting for their StartTransaction, by charge point.
        self._remote_starts: dict[str, list[_RemoteStart]] = {}
        # Called after a transaction ended (billing wakes up to build its CDR).
        self.on_ended: list[Callable[[], None]] = []
        # Called after a new transaction started (the OCPI session publisher wakes up).
        self.on_started: list[Callable[[], None]] = []
        # Called with a running transaction's id and its new readings once they are
        # stored (the load manager reads what sessions draw from them).
        self.on_readings: list[Callable[[int, Sequence[Sample]], None]] = []
        # Called with a charger's id after one of its transactions started, ended or
        # otherwise changed beyond new readings (the load manager reads that charger's
        # running sessions again, not all of them).
        self.on_charger: list[Callable[[str], None]] = []
        # The meters' public keys that 2.0.1 signed values carry (set by the app).
        self.meter_keys: MeterKeys | None = None

    async def _keys_with(self, cp_id: str, evse_id: int | None, signed: _Signed) -> None:
        """Store the public key that signed values carry, when new (before their write).
        Called only for a message with signed values: others pay one check, no call."""
        if self.meter_keys is not None and evse_id is not None:
            await self.meter_keys.with_values(cp_id, evse_id, signed.values)

    async def warm_up(self) -> None:
        """Build the look-ups a burst of starts needs before the first burst comes (SQLite;
        elsewhere SQLAlchemy's statement cache does it)."""
        if not self._db.is_sqlite:
            return
        most = max(self._by_ocpp_id.max_keys, self._starts_at.max_keys)
        await tx_repo.warm_up(self._db.engine.dialect, most)

    def _ended(self, cp_id: str) -> None:
        self._charger_changed(cp_id)
        for hook in self.on_ended:
            hook()

    def _started(self, cp_id: str) -> None:
        self._charger_changed(cp_id)
        for hook in self.on_started:
            hook()

    def _charger_changed(self, cp_id: str) -> None:
        for hook in self.on_charger:
            hook(cp_id)

    def _read(self, tx_id: int, samples: Sequence[Sample]) -> None:
        if samples:
            for hook in self.on_readings:
                hook(tx_id, samples)

    # --- one message per charger at a time ---------------------------------------------

    async def _one_at_a_time(self, cp_id: str) -> asyncio.Future[None]:
        """Wait for the charger's transaction message in progress (on a connection it
        replaced), then take its turn; set the returned future's result when done."""
        while (previous := self._busy.get(cp_id)) is not None:
            await asyncio.shield(previous)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._busy[cp_id] = turn
        return turn

    def _done(self, cp_id: str, turn: asyncio.Future[None]) -> None:
        if self._busy.get(cp_id) is turn:
            del self._busy[cp_id]
        if not turn.done():
            turn.set_result(None)

    async def _new_id(self) -> int:
        """An id for a new transaction: from memory, but for the first one of the process
        (or one block of ids on PostgreSQL)."""
        taken = self._ids.take_now()
        if taken is not None:
            return taken
        async with self._db.read() as conn:
            return await self._ids.take(conn)

    # --- OCPP 1.6 transactions ------------------------------------------------------------

    async def start_transaction(self, cp_id: str, version: str, req: StartRequest) -> StartResult:
        turn = await self._one_at_a_time(cp_id)
        try:
            return await self._start(cp_id, version, req)
        finally:
            self._done(cp_id, turn)

    async def _start(self, cp_id: str, version: str, req: StartRequest) -> StartResult:
        """Decided before the write (every look-up coalesced with other chargers', the
        token's limit from memory); the writer only adds the row to its bulk insert."""
        now = self._clock()
        start_at = req.timestamp
        flags: tuple[InputFlag, ...] = ()
        if not self._checks.plausible(cp_id, "StartTransaction", "timestamp", start_at, now):
            start_at = now
            flags = (InputFlag.IMPLAUSIBLE_TIMESTAMP,)
        meter_start = self._checks.register(
            cp_id, "StartTransaction", "meterStart", req.meter_start_wh
        )
        if meter_start is None:
            flags = added(flags, InputFlag.UNUSABLE_REGISTER)
        token, previous, reservations, tx_id = await asyncio.gather(
            self._auth.token(req.id_tag),
            self._previous_start(cp_id, req, meter_start, replaced=start_at is not req.timestamp),
            self._reservations.load(cp_id),
            self._new_id(),
        )
        if previous is not None:
            # A resend of a StartTransaction we already stored: same id, same answer.
            status = AuthStatus(previous.auth_status or AuthStatus.INVALID.value)
            expires = token.expires_at if token else None
            parent = token.parent_uid if token else None
            log.info(
                "transaction_start_repeated",
                charge_point_id=cp_id,
                transaction_id=previous.id,
                evse_id=req.evse_id,
                auth_status=status.value,
            )
            return StartResult(previous.id, AuthResult(status, expires, parent), True)
        grant = await self._auth.grant_for(cp_id, req.id_tag, None, req.evse_id, token)
        # From the count to taking the slot (_write_new) nothing waits: a start at the same
        # moment elsewhere sees this one.
        auth = await self._auth.decide_start(cp_id, req.evse_id, req.id_tag, token, grant, now)
        parent = None if token is None else token.parent_uid
        auth, reservation_id = self._reservation_at_start(
            reservations or [],
            cp_id,
            req.evse_id,
            req.id_tag,
            parent,
            req.reservation_id,
            auth,
            now,
        )
        tx = new_transaction(
            tx_id,
            cp_id=cp_id,
            ocpp_version=version,
            evse_id=req.evse_id,
            connector_id=req.connector_id,
            id_tag=req.id_tag,
            auth_status=auth.status.value,
            start_at=start_at,
            meter_start_wh=meter_start,
            reservation_id=reservation_id,
            remote_start_id=self._claim_remote_start(cp_id, req.id_tag, req.evse_id, now),
            grant=grant,
            flags=tuple(f.value for f in flags),
        )

        async def unit(w: WriteTx) -> None:
            tx_repo.insert_later(w, tx, now)
            await _use_reservation(w, reservation_id, tx.id, now)

        await self._write_new(tx, unit)
        if grant is not None:
            await self._auth.grant_used(cp_id, req.id_tag, grant)
        self._note_evse(cp_id, req.evse_id, tx.id)
        log.info(
            "transaction_started",
            charge_point_id=cp_id,
            transaction_id=tx.id,
            evse_id=req.evse_id,
            auth_status=auth.status.value,
            flags=list(tx.flags) or None,
        )
        self._started(cp_id)
        return StartResult(tx.id, auth, False)

    async def _previous_start(
        self, cp_id: str, req: StartRequest, meter_start: int | None, *, replaced: bool
    ) -> Transaction | None:
        """The transaction a resent StartTransaction (same charger, connector, tag and
        timestamp) created. One whose timestamp was `replaced` (outside the window) was
        stored with the time of receipt: its resend is the running transaction on that
        EVSE flagged so, with the same tag, connector and meterStart."""
        key = token_key(req.id_tag)
        if replaced:
            running = await self._on_evse.load((cp_id, req.evse_id))
            if (
                running is not None
                and InputFlag.IMPLAUSIBLE_TIMESTAMP.value in running.flags
                and running.id_tag is not None
                and token_key(running.id_tag) == key
                and running.connector_id == req.connector_id
                and running.meter_start_wh == meter_start
            ):
                return running
            return None
        found = await self._starts_at.load((cp_id, req.timestamp.astimezone(UTC))) or []
        for tx in found:
            same_tag = tx.id_tag is not None and token_key(tx.id_tag) == key
            if same_tag and tx.evse_id == req.evse_id and tx.connector_id == req.connector_id:
                return tx
        return None

    async def _write_new(self, tx: Transaction, unit: Unit[None]) -> None:
        """Write a new transaction; its slot in the token's limit is taken before and given
        back if the write fails."""
        holdings = self._auth.holdings
        tag = None if tx.id_tag is None else token_key(tx.id_tag)
        if tag is not None and tx.auth_status == AuthStatus.ACCEPTED.value:
            holdings.add(tag, tx.id, (tx.charge_point_id, tx.evse_id))
        try:
            await self._db.write(unit)
        except BaseException:
            if tag is not None:
                holdings.remove(tag, tx.id)
            self._ids.resync()
            raise
        if tag is not None:
            holdings.committed(tag, tx.id)
        self._remember(tx)

    async def stop_transaction(self, cp_id: str, req: StopRequest) -> StopResult:
        turn = await self._one_at_a_time(cp_id)
        try:
            return await self._stop(cp_id, req)
        finally:
            self._done(cp_id, turn)

    async def _stop(self, cp_id: str, req: StopRequest) -> StopResult:
        """Like a start: the transaction (from memory, else a coalesced look-up), its
        readings and the energy are read and computed before the write, which only merges
        its updates into the batch's."""
        now = self._clock()
        token, tx, readings = await asyncio.gather(
            self._auth.token(req.id_tag) if req.id_tag is not None else _nothing(),
            self._transaction(req.transaction_id),
            self._readings.load(req.transaction_id),
        )
        auth = None if req.id_tag is None else decide(token, now)
        if tx is not None and tx.charge_point_id == cp_id and not tx.active:
            return StopResult(auth, True, True, tx.energy_wh, tx.flags)
        samples, flags = self._checks.samples(cp_id, "StopTransaction", req.samples, now)
        signed = _signed(req.signed) if req.signed else None
        if tx is None or tx.charge_point_id != cp_id:

            async def unmatched(w: WriteTx) -> None:
                tx_repo.add_samples_later(
                    w,
                    cp_id=cp_id,
                    evse_id=0,
                    connector_id=0,
                    transaction_id=None,
                    samples=samples,
                )
                if signed is not None:
                    _add_signed_later(
                        w, signed, cp_id=cp_id, evse_id=0, connector_id=0, transaction_id=None
                    )
                await tx_repo.record_unmatched(
                    await w.connection(),
                    cp_id,
                    "StopTransaction",
                    str(req.transaction_id),
                    req.raw or {},
                    now,
                )

            await self._db.write(unmatched)
            log.warning(
                "transaction_stop_unmatched",
                charge_point_id=cp_id,
                transaction_id=req.transaction_id,
            )
            return StopResult(auth, known=False, duplicate=False)
        stop_at = req.timestamp
        if not self._checks.plausible(cp_id, "StopTransaction", "timestamp", stop_at, now):
            stop_at = now
            flags = added(flags, InputFlag.IMPLAUSIBLE_TIMESTAMP)
        meter_stop = self._checks.register(cp_id, "StopTransaction", "meterStop", req.meter_stop_wh)
        if meter_stop is None:
            flags = added(flags, InputFlag.UNUSABLE_REGISTER)
        energy = settled_energy(
            tx.meter_start_wh,
            meter_stop,
            tx.start_at,
            stop_at,
            [*(readings or []), *tx_repo.register_points(samples)],
        )
        all_flags = with_energy(flagged(tx.flags, *flags), energy)
        if signed is not None:
            await self._keys_with(cp_id, tx.evse_id, signed)

        async def unit(w: WriteTx) -> None:
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=tx.evse_id,
                connector_id=tx.connector_id,
                transaction_id=tx.id,
                samples=samples,
            )
            if signed is not None:
                _add_signed_later(
                    w,
                    signed,
                    cp_id=cp_id,
                    evse_id=tx.evse_id,
                    connector_id=tx.connector_id,
                    transaction_id=tx.id,
                )
            tx_repo.update_later(
                w,
                tx.id,
                now,
                state=TransactionState.COMPLETED.value,
                stop_at=stop_at,
                meter_stop_wh=meter_stop,
                energy_wh=energy.energy_wh,
                flags=all_flags,
                stop_reason=req.reason,
                stop_id_tag=req.id_tag,
                billing=BillingState.PENDING.value,
            )
            profile_repo.end_with_transaction_later(w, cp_id, tx.id, now)

        await self._db.write(unit)
        self._forget(tx)
        log.info(
            "transaction_stopped",
            charge_point_id=cp_id,
            transaction_id=tx.id,
            energy_wh=energy.energy_wh,
            flags=list(all_flags) or None,
        )
        self._ended(cp_id)
        return StopResult(auth, True, False, energy.energy_wh, all_flags, tx.evse_id)

    async def _transaction(self, tx_id: int) -> Transaction | None:
        """A transaction by id: running ones this process knows from memory."""
        tx = self._active.get(tx_id)
        if tx is None:
            tx = await self._transactions.load(tx_id)
            if tx is not None and tx.active:
                self._remember(tx)
        return tx

    def _remember(self, tx: Transaction) -> None:
        if len(self._active) >= MAX_ENTRIES:
            self._active.clear()
        self._active[tx.id] = tx

    def forget_charger(self, cp_id: str) -> None:
        """Drop what this process knows from memory of a charger's transactions: they went
        on through another node meanwhile (several nodes on one database), so the next
        message reads them again."""
        for tx_id in [i for i, tx in self._active.items() if tx.charge_point_id == cp_id]:
            del self._active[tx_id]
        for key in [k for k in self._cursors if k[0] == cp_id]:
            del self._cursors[key]
        for place in [k for k in self._evse_tx if k[0] == cp_id]:
            del self._evse_tx[place]

    def _forget(self, tx: Transaction) -> None:
        """A transaction ended: it no longer holds its token nor its EVSE."""
        self._active.pop(tx.id, None)
        if tx.id_tag is not None:
            self._auth.holdings.remove(token_key(tx.id_tag), tx.id)
        if self._evse_tx.get((tx.charge_point_id, tx.evse_id)) == tx.id:
            del self._evse_tx[(tx.charge_point_id, tx.evse_id)]

    async def meter_values(self, cp_id: str, report: MeterReport) -> bool:
        """Store samples; returns False when they name a transaction we do not know."""
        now = self._clock()
        tx_id = report.transaction_id
        known = True
        tx = None
        if tx_id is not None:
            tx = await self._transaction(tx_id)
            known = tx is not None and tx.charge_point_id == cp_id
        samples, flags = self._checks.samples(cp_id, "MeterValues", report.samples, now)
        marked = self._marked(tx, flags) if known else None
        signed = _signed(report.signed) if report.signed else None
        if signed is not None:
            await self._keys_with(cp_id, report.evse_id, signed)

        async def unit(w: WriteTx) -> None:
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=report.evse_id,
                connector_id=report.connector_id,
                transaction_id=tx_id if known else None,
                samples=samples,
            )
            if signed is not None:
                _add_signed_later(
                    w,
                    signed,
                    cp_id=cp_id,
                    evse_id=report.evse_id,
                    connector_id=report.connector_id,
                    transaction_id=tx_id if known else None,
                )
            if marked is not None:
                tx_repo.update_later(w, marked.id, now, flags=marked.flags)
            if not known:
                await tx_repo.record_unmatched(
                    await w.connection(), cp_id, "MeterValues", str(tx_id), report.raw or {}, now
                )

        await self._db.write(unit)
        self._keep_marked(marked)
        if known and tx_id is not None and self.on_readings:
            self._read(tx_id, samples)
        return known

    @staticmethod
    def _marked(tx: Transaction | None, flags: tuple[InputFlag, ...]) -> Transaction | None:
        """The transaction with `flags` added, or None when it has them already."""
        if tx is None or not flags:
            return None
        marked = flagged(tx.flags, *flags)
        return None if marked == tx.flags else replace(tx, flags=marked)

    def _keep_marked(self, marked: Transaction | None) -> None:
        """What this process knows of a running transaction gets the flags just written."""
        if marked is None or not marked.active:
            return
        if marked.id in self._active:
            self._active[marked.id] = marked
        if marked.ocpp_transaction_id is not None:
            cursor = self._cursors.get((marked.charge_point_id, marked.ocpp_transaction_id))
            if cursor is not None and cursor.tx.id == marked.id:
                cursor.tx = replace(cursor.tx, flags=marked.flags)

    # --- OCPP 2.0.1 transactions --------------------------------------------------------

    async def transaction_event(
        self, cp_id: str, version: str, event: TransactionEvent, rest: dict[str, Any]
    ) -> TxEventResult:
        """Apply one TransactionEvent (`rest`: the message as sent but its readings, kept in
        the event log). Events may arrive late, twice or out of order (a station's offline
        queue): a repeated seqNo changes nothing, and every other event merges into the
        transaction in a way that does not depend on arrival order
        (csms.core.transaction_updates.merge_event)."""
        event, flags = self._checks.event(cp_id, event, self._clock())
        cursor = self._cursors.get((cp_id, event.ocpp_transaction_id))
        if (
            not flags
            and cursor is not None
            and event.seq_no not in cursor.seen
            and cp_id not in self._busy
            and adds_only_readings(cursor.tx, event)
        ):
            # Most events: an Updated that only adds readings to a running transaction
            # this process follows. Nothing to look up, so no turn to wait for.
            return await self._append_event(cp_id, cursor, event, rest, self._clock())
        turn = await self._one_at_a_time(cp_id)
        try:
            return await self._transaction_event(cp_id, version, event, rest, flags)
        finally:
            self._done(cp_id, turn)

    async def _transaction_event(
        self,
        cp_id: str,
        version: str,
        event: TransactionEvent,
        rest: dict[str, Any],
        flags: tuple[InputFlag, ...],
    ) -> TxEventResult:
        """The common events (an Updated that only adds readings, the first event of a new
        transaction, the Ended of a running one) are decided before the write and only add
        rows and updates to the writer's batch; anything else (events of a transaction that
        ended, out of order, or after a restart) takes the general path."""
        now = self._clock()
        key = (cp_id, event.ocpp_transaction_id)
        cursor = self._cursors.get(key)
        if cursor is not None and event.seq_no in cursor.seen:
            # A resend of an event already committed: same answer, nothing changes.
            again = None
            if event.id_token is not None:
                again = await self._auth.authorize(
                    cp_id, event.id_token, event.token_type, event.evse_id
                )
            return TxEventResult(cursor.tx.id, again, duplicate=True)
        token: Token | None = None
        grant: Grant | None = None
        if event.id_token is not None and event.token_type != NO_AUTHORIZATION:
            token = await self._auth.token(event.id_token)
            decided = (
                cursor is not None
                and cursor.tx.cdr_token is not None
                and cursor.tx.id_tag is not None
                and token_key(cursor.tx.id_tag) == token_key(event.id_token)
            )
            if not decided:
                grant = await self._auth.grant_for(
                    cp_id, event.id_token, event.token_type, event.evse_id, token
                )
        if not flags and cursor is not None and adds_only_readings(cursor.tx, event):
            return await self._append_event(cp_id, cursor, event, rest, now)
        stored = cursor.tx if cursor is not None else await self._by_ocpp_id.load(key)
        ended = event.event_type is TxEventType.ENDED
        reservations: list[Reservation] = []
        if event.id_token is not None:
            reservations = await self._reservations.load(cp_id) or []
        tx_id = stored.id if stored is not None else await self._new_id()
        auth: AuthResult | None = None
        slot: tuple[str, int] | None = None
        if event.id_token is not None:
            auth = await self._auth.decide_in_transaction(
                cp_id, event.evse_id, event.id_token, event.token_type, tx_id, token, grant, now
            )
            if auth.accepted and not ended:
                # Taken now (nothing waited since the count); given back if it fails.
                slot = (token_key(event.id_token), tx_id)
                evse_id = event.evse_id or (stored.evse_id if stored is not None else 0)
                self._auth.holdings.add(slot[0], tx_id, (cp_id, evse_id))
        try:
            if stored is None and not ended:
                result = await self._first_event(
                    cp_id, version, event, rest, now, auth, grant, reservations, tx_id, flags
                )
            elif cursor is not None and cursor.tx.active and ended:
                result = await self._last_event(cp_id, cursor, event, rest, now, auth, grant, flags)
            else:
                result = await self._any_event(
                    cp_id, version, event, rest, now, auth, grant, reservations, tx_id, flags
                )
        except BaseException:
            if slot is not None:
                self._auth.holdings.remove(*slot)
            raise
        if slot is not None:
            self._auth.holdings.committed(*slot)
        if grant is not None and event.id_token is not None:
            await self._auth.grant_used(cp_id, event.id_token, grant)
        self._after_event(key, event, result)
        if self.on_readings and not ended:
            self._read(result.transaction_id, event.samples)
        return result

    async def _first_event(
        self,
        cp_id: str,
        version: str,
        event: TransactionEvent,
        rest: dict[str, Any],
        now: datetime,
        auth: AuthResult | None,
        grant: Grant | None,
        reservations: list[Reservation],
        tx_id: int,
        flags: tuple[InputFlag, ...] = (),
    ) -> TxEventResult:
        """A transaction we have no row of yet (its Started, or an Updated of a station that
        began it offline): created with the batch."""
        auth, reservation_id = self._reservation_for(cp_id, event, auth, reservations, now)
        tx = opened_by(
            tx_id,
            cp_id,
            version,
            event,
            auth_status=None if auth is None else auth.status.value,
            reservation_id=reservation_id,
            grant=grant,
            flags=flags,
        )
        signed = _signed(event.signed) if event.signed else None
        if signed is not None:
            await self._keys_with(cp_id, tx.evse_id, signed)

        async def unit(w: WriteTx) -> None:
            tx_repo.insert_later(w, tx, now)
            _keep_event(w, cp_id, tx.id, tx.evse_id, tx.connector_id, event, rest, now, signed)
            await _use_reservation(w, reservation_id, tx.id, now)

        await self._write_new(tx, unit)
        return TxEventResult(tx.id, auth, False, cursor=_TxCursor(tx, {event.seq_no}))

    async def _last_event(
        self,
        cp_id: str,
        cursor: _TxCursor,
        event: TransactionEvent,
        rest: dict[str, Any],
        now: datetime,
        auth: AuthResult | None,
        grant: Grant | None,
        flags: tuple[InputFlag, ...] = (),
    ) -> TxEventResult:
        """The Ended event of a running transaction this process follows: its readings come
        from a coalesced look-up, the rest from memory."""
        tx = cursor.tx
        changes = merge_event(tx, event, auth=auth, grant=grant, flags=flags)
        fresh = changes.applied_to(tx)
        readings = await self._readings.load(tx.id) or []
        energy = settled_energy(
            fresh.meter_start_wh,
            fresh.meter_stop_wh,
            fresh.start_at,
            fresh.stop_at or event.timestamp,
            [*readings, *tx_repo.register_points(event.samples)],
        )
        changes = replace(changes, flags=with_energy(fresh.flags, energy), energy=energy)
        signed = _signed(event.signed) if event.signed else None
        if signed is not None:
            await self._keys_with(cp_id, event.evse_id or tx.evse_id, signed)

        async def unit(w: WriteTx) -> None:
            _keep_event(
                w,
                cp_id,
                tx.id,
                event.evse_id or tx.evse_id,
                event.connector_id or tx.connector_id,
                event,
                rest,
                now,
                signed,
            )
            tx_repo.apply_later(w, tx.id, now, changes)
            profile_repo.end_with_transaction_later(w, cp_id, tx.id, now)

        await self._db.write(unit)
        seen = {*cursor.seen, event.seq_no}
        return TxEventResult(
            tx.id, auth, False, ended=True, cursor=_TxCursor(changes.applied_to(tx), seen)
        )

    async def _any_event(
        self,
        cp_id: str,
        version: str,
        event: TransactionEvent,
        rest: dict[str, Any],
        now: datetime,
        auth: AuthResult | None,
        grant: Grant | None,
        reservations: list[Reservation],
        new_id: int,
        flags: tuple[InputFlag, ...] = (),
    ) -> TxEventResult:
        """The general path, in the writer: events in any order, of transactions in any
        state, read back from the database."""
        signed = _signed(event.signed) if event.signed else None
        # The key its values carry, when the event names the EVSE (a Started does).
        if signed is not None:
            await self._keys_with(cp_id, event.evse_id, signed)

        async def unit(w: WriteTx) -> TxEventResult:
            conn = await w.connection()
            tx = await tx_repo.find_by_ocpp_id(conn, cp_id, event.ocpp_transaction_id)
            decided = auth
            if tx is not None and await tx_repo.event_seen(conn, tx.id, event.seq_no):
                return TxEventResult(tx.id, decided, duplicate=True, cursor=await _cursor(conn, tx))
            changes: TransactionChanges
            if tx is None:
                decided, reservation_id = self._reservation_for(
                    cp_id, event, decided, reservations, now
                )
                tx = opened_by(
                    new_id,
                    cp_id,
                    version,
                    event,
                    auth_status=None if decided is None else decided.status.value,
                    reservation_id=reservation_id,
                    grant=grant,
                    flags=flags,
                )
                tx_repo.insert_later(w, tx, now)
                await _use_reservation(w, reservation_id, tx.id, now)
                # Made from this very event: only its end can change it.
                changes = merge_event(tx, event, auth=decided, grant=grant, created=True)
            else:
                changes = merge_event(tx, event, auth=decided, grant=grant, flags=flags)
            _keep_event(
                w,
                cp_id,
                tx.id,
                event.evse_id or tx.evse_id,
                event.connector_id or tx.connector_id,
                event,
                rest,
                now,
                signed,
            )
            ended = event.event_type is TxEventType.ENDED
            conn = await w.connection()
            if not changes.empty:
                await tx_repo.apply(conn, tx.id, now, changes)
            if ended:
                await profile_repo.end_with_transaction(conn, cp_id, tx.id, now)
            if ended or not tx.active:
                fresh = await tx_repo.get(conn, tx.id)
                assert fresh is not None
                readings = await tx_repo.register_readings(conn, tx.id)
                energy = settled_energy(
                    fresh.meter_start_wh,
                    fresh.meter_stop_wh,
                    fresh.start_at,
                    fresh.stop_at or event.timestamp,
                    readings,
                )
                await tx_repo.apply(
                    conn,
                    tx.id,
                    now,
                    TransactionChanges(flags=with_energy(fresh.flags, energy), energy=energy),
                )
            fresh = await tx_repo.get(conn, tx.id)
            assert fresh is not None
            return TxEventResult(
                tx.id, decided, duplicate=False, ended=ended, cursor=await _cursor(conn, fresh)
            )

        try:
            return await self._db.write(unit)
        except BaseException:
            self._ids.resync()
            raise

    def _after_event(
        self, key: tuple[str, str], event: TransactionEvent, result: TxEventResult
    ) -> None:
        """Keep what this process knows of the transaction, and tell who listens."""
        cp_id = key[0]
        if result.cursor is not None:
            tx = result.cursor.tx
            if tx.active:
                if len(self._cursors) >= MAX_ENTRIES:
                    self._cursors.clear()
                self._cursors[key] = result.cursor
                self._remember(tx)
                if tx.evse_id:
                    self._note_evse(cp_id, tx.evse_id, tx.id)
                if tx.id_tag is not None:
                    # As stored: a slot taken for it is given back if it was refused after
                    # all (the EVSE is reserved for someone else).
                    tag = token_key(tx.id_tag)
                    if tx.auth_status == AuthStatus.ACCEPTED.value:
                        self._auth.holdings.add(tag, tx.id, (cp_id, tx.evse_id))
                        self._auth.holdings.committed(tag, tx.id)
                    else:
                        self._auth.holdings.remove(tag, tx.id)
            else:
                self._cursors.pop(key, None)
                self._forget(tx)
        if result.duplicate:
            log.info(
                "transaction_event_repeated",
                charge_point_id=cp_id,
                transaction_id=result.transaction_id,
                seq_no=event.seq_no,
            )
        elif event.event_type is TxEventType.STARTED:
            log.info(
                "transaction_started",
                charge_point_id=cp_id,
                transaction_id=result.transaction_id,
                evse_id=event.evse_id,
                offline=event.offline,
            )
            self._started(cp_id)
        elif result.ended:
            log.info(
                "transaction_stopped",
                charge_point_id=cp_id,
                transaction_id=result.transaction_id,
                offline=event.offline,
            )
            self._ended(cp_id)
        elif result.cursor is not None:
            # Not the common case of new readings only (that returns no cursor): the
            # transaction itself may have changed (created from a late event, its EVSE).
            self._charger_changed(cp_id)

    async def _append_event(
        self,
        cp_id: str,
        cursor: _TxCursor,
        event: TransactionEvent,
        rest: dict[str, Any],
        now: datetime,
    ) -> TxEventResult:
        """The common case: an in-order Updated event of a running transaction that changes
        nothing but adds readings. Written in bulk with the rest of the batch."""
        tx = cursor.tx
        signed = _signed(event.signed) if event.signed else None
        if signed is not None:
            await self._keys_with(cp_id, tx.evse_id, signed)

        async def unit(w: WriteTx) -> None:
            _keep_event(w, cp_id, tx.id, tx.evse_id, tx.connector_id, event, rest, now, signed)

        await self._db.write(unit)
        cursor.seen.add(event.seq_no)
        if self.on_readings:
            self._read(tx.id, event.samples)
        return TxEventResult(tx.id, None, duplicate=False)

    async def station_meter_values(
        self,
        cp_id: str,
        evse_id: int,
        samples: tuple[Sample, ...],
        signed_values: tuple[SignedMeterValue, ...] = (),
    ) -> int | None:
        """OCPP 2.0.1 MeterValues (outside TransactionEvents): linked to the transaction
        running on that EVSE, if any. Returns its id."""
        key = (cp_id, evse_id)
        if key in self._evse_tx:
            tx_id = self._evse_tx[key]
        else:
            running = await self._on_evse.load(key) if evse_id else None
            tx_id = None if running is None else running.id
            self._note_evse(cp_id, evse_id, tx_id)
        now = self._clock()
        samples, flags = self._checks.samples(cp_id, "MeterValues", samples, now)
        marked = None
        if flags and tx_id is not None:
            marked = self._marked(await self._transaction(tx_id), flags)
        signed = _signed(signed_values) if signed_values else None
        if signed is not None:
            await self._keys_with(cp_id, evse_id, signed)

        async def unit(w: WriteTx) -> None:
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=evse_id,
                connector_id=1 if evse_id else 0,
                transaction_id=tx_id,
                samples=samples,
            )
            if signed is not None:
                _add_signed_later(
                    w,
                    signed,
                    cp_id=cp_id,
                    evse_id=evse_id,
                    connector_id=1 if evse_id else 0,
                    transaction_id=tx_id,
                )
            if marked is not None:
                tx_repo.update_later(w, marked.id, now, flags=marked.flags)

        await self._db.write(unit)
        self._keep_marked(marked)
        return tx_id

    def _note_evse(self, cp_id: str, evse_id: int, tx_id: int | None) -> None:
        if len(self._evse_tx) >= MAX_ENTRIES:
            self._evse_tx.clear()
        self._evse_tx[(cp_id, evse_id)] = tx_id

    # --- reservations and remote starts ----------------------------------------------

    def _reservation_for(
        self,
        cp_id: str,
        event: TransactionEvent,
        auth: AuthResult | None,
        reservations: list[Reservation],
        now: datetime,
    ) -> tuple[AuthResult | None, int | None]:
        """The reservation a 2.0.1 transaction starts with (the one the event names, or
        the one its token holds on the EVSE) and its token's answer."""
        if auth is None or event.id_token is None:
            return auth, event.reservation_id
        return self._reservation_at_start(
            reservations,
            cp_id,
            event.evse_id,
            event.id_token,
            auth.parent_uid,
            event.reservation_id,
            auth,
            now,
        )

    @staticmethod
    def _reservation_at_start(
        reservations: list[Reservation],
        cp_id: str,
        evse_id: int | None,
        id_tag: str,
        parent_uid: str | None,
        reservation_id: int | None,
        auth: AuthResult,
        now: datetime,
    ) -> tuple[AuthResult, int | None]:
        """A transaction starts: the reservation it uses (its id) among the charger's open
        ones, and the answer for its token, which becomes NotAtThisTime when the EVSE is held
        for someone else."""
        if not reservations:
            return auth, None
        check = check_start(reservations, evse_id, id_tag, parent_uid, now, reservation_id)
        if check.used is not None:
            return auth, check.used.id
        if check.blocked_by is not None and auth.accepted:
            log.warning(
                "transaction_start_reserved_for_other",
                charge_point_id=cp_id,
                evse_id=evse_id,
                reservation_id=check.blocked_by.id,
            )
            return AuthResult(AuthStatus.NOT_AT_THIS_TIME, auth.expires_at, auth.parent_uid), None
        return auth, None

    def note_remote_start(
        self, cp_id: str, id_tag: str, evse_id: int | None, remote_start_id: int
    ) -> None:
        """A 1.6 charger accepted a remote start: its next StartTransaction for this tag (on
        this EVSE) gets `remote_start_id` (2.0.1 carries it on the wire instead)."""
        until = self._clock() + timedelta(seconds=REMOTE_START_WINDOW_S)
        pending = self._remote_starts.setdefault(cp_id, [])
        pending.append(_RemoteStart(token_key(id_tag), evse_id, remote_start_id, until))

    def _claim_remote_start(
        self, cp_id: str, id_tag: str, evse_id: int, now: datetime
    ) -> int | None:
        pending = self._remote_starts.get(cp_id)
        if not pending:
            return None
        pending[:] = [p for p in pending if p.until > now]
        key = token_key(id_tag)
        for index, entry in enumerate(pending):
            if entry.tag_key == key and entry.evse_id in (None, evse_id):
                del pending[index]
                return entry.remote_start_id
        return None
