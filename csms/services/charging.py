"""Use cases of chargers reporting to the CSMS: connect, boot, status, authorize, transactions.

Each call loads state, applies csms.core rules and commits through the group-commit writer;
it returns only once what was reported is durable. No OCPP field names here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from csms.core.authorization import AuthResult, AuthStatus, Token, decide
from csms.core.charger import (
    BootInfo,
    ChargePoint,
    RegistrationPolicy,
    RegistrationStatus,
    StatusReport,
    registration_for,
)
from csms.core.clock import Clock
from csms.core.ids import token_key
from csms.core.metering import Sample
from csms.core.reservations import ReservationState, check_start
from csms.core.roaming import Grant
from csms.core.transactions import (
    BillingState,
    EnergyFlag,
    EnergyResult,
    Transaction,
    TransactionEvent,
    TransactionState,
    TxEventType,
    register_bounds,
    session_energy,
)
from csms.storage import charge_points as cp_repo
from csms.storage import charging_profiles as profile_repo
from csms.storage import device_model as device_repo
from csms.storage import events as event_repo
from csms.storage import grants as grant_repo
from csms.storage import reservations as reservation_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import BatchLoader, Database, WriteTx
from csms.storage.grants import Standing

log = structlog.get_logger("csms.services")

# How long an accepted 1.6 RemoteStartTransaction waits for the StartTransaction it causes.
REMOTE_START_WINDOW_S = 300.0
# How long another party's decision for a token at a charger (a real-time answer, or a
# command's vouching) stands for the transaction it leads to.
GRANT_TTL_S = 900.0


@dataclass(slots=True)
class _RemoteStart:
    tag_key: str
    evse_id: int | None
    remote_start_id: int
    until: datetime


class Roaming(Protocol):
    """Decides about other parties' tokens (ocpi_cpo.roaming: their whitelist rule and, when
    it says so, their eMSP in real time)."""

    async def authorize(
        self, cp_id: str, evse_id: int | None, uid: str, token_type: str | None, token: Token
    ) -> Grant | None:
        """The decision for `token` (an id token row owned by another party) presented at
        this charger, or None when it is not a partner's token after all (the local
        decision applies)."""
        ...


@dataclass(frozen=True, slots=True)
class ChargingSettings:
    registration: RegistrationPolicy = "accept"
    heartbeat_interval: int = 300
    allow_unknown_tags: bool = False


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: RegistrationStatus
    interval: int
    now: datetime
    # Ask this station for its full device model now (first Accepted boot of a firmware).
    base_report: bool = False


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


_MAX_OWNERS = 200_000
# OCPP 2.0.1 token type of a transaction started without any authorization (free charging).
NO_AUTHORIZATION = "NoAuthorization"


def _keep_event(
    w: WriteTx,
    cp_id: str,
    tx_id: int,
    evse_id: int,
    connector_id: int,
    event: TransactionEvent,
    raw: dict[str, Any],
    now: datetime,
) -> None:
    """An event's log row and its readings, written with the batch."""
    tx_repo.record_event_later(
        w,
        transaction_id=tx_id,
        cp_id=cp_id,
        event=event,
        payload=_without_readings(raw),
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


def _without_readings(raw: dict[str, Any]) -> dict[str, Any]:
    """An event as kept in the event log: its readings are stored once, as meter values."""
    if "meterValue" not in raw:
        return raw
    return {k: v for k, v in raw.items() if k != "meterValue"}


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


def _low(bounds: tuple[float, float] | None) -> int | None:
    return None if bounds is None else round(bounds[0])


def _high(bounds: tuple[float, float] | None) -> int | None:
    return None if bounds is None else round(bounds[1])


def _context_reading(samples: Sequence[Sample], context: str) -> int | None:
    found = register_bounds([s for s in samples if s.context == context])
    return None if found is None else round(found[0] if context.endswith("Begin") else found[1])


def _merge(
    tx: Transaction,
    event: TransactionEvent,
    auth: AuthResult | None,
    begin: int | None,
    bounds: tuple[float, float] | None,
) -> dict[str, Any]:
    """What an event adds to a transaction that already exists. Order-independent: the
    start is the earliest event, the start reading the Transaction.Begin one (else the
    lowest register reading), identity and EVSE are taken from the first event naming them."""
    changes: dict[str, Any] = {}
    if event.timestamp < tx.start_at:
        changes["start_at"] = event.timestamp
    low = begin if begin is not None else _low(bounds)
    if low is not None and (tx.meter_start_wh is None or low < tx.meter_start_wh):
        changes["meter_start_wh"] = low
    if event.id_token is not None and tx.id_tag is None:
        changes["id_tag"] = event.id_token
        changes["id_tag_key"] = token_key(event.id_token)
        if auth is not None:
            changes["auth_status"] = auth.status.value
    if event.evse_id and not tx.evse_id:
        changes["evse_id"] = event.evse_id
        changes["connector_id"] = event.connector_id or 1
    if event.remote_start_id is not None and tx.remote_start_id is None:
        changes["remote_start_id"] = event.remote_start_id
    if event.reservation_id is not None and tx.reservation_id is None:
        changes["reservation_id"] = event.reservation_id
    return changes


def _energy(
    meter_start: int | None,
    meter_stop: int | None,
    start_at: datetime,
    stop_at: datetime,
    readings: list[tuple[datetime, float]],
) -> EnergyResult:
    """Session energy from whatever the charger told us (1.6 meterStart/meterStop, or 2.0.1
    Transaction.Begin/End readings), cross-checked with the register readings."""
    if meter_start is None and readings:
        meter_start = round(min(v for _, v in readings))
    if meter_stop is None and readings:
        meter_stop = round(max(v for _, v in readings))
    if meter_start is None or meter_stop is None:
        return EnergyResult(None, (EnergyFlag.NO_METER_READINGS,))
    return session_energy(
        meter_start_wh=meter_start,
        meter_stop_wh=meter_stop,
        start_at=start_at,
        stop_at=max(stop_at, start_at),
        register_samples=readings,
    )


def _authorized(active: Sequence[Transaction]) -> list[Transaction]:
    """Transactions that really hold the token (not ones it was refused for)."""
    return [t for t in active if t.auth_status == AuthStatus.ACCEPTED.value]


class ChargingService:
    """What chargers report, made durable. One instance per process."""

    def __init__(self, db: Database, clock: Clock, settings: ChargingSettings) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings
        # Active transactions this process has seen -> their charge point: lets MeterValues
        # skip a lookup per message.
        self._owners: dict[int, str] = {}
        self._charge_points = BatchLoader(db, cp_repo.get_many)
        # Running 2.0.1 transactions by (charge point, transactionId).
        self._cursors: dict[tuple[str, str], _TxCursor] = {}
        # The transaction running on each (charge point, EVSE), or None, as far as known.
        self._evse_tx: dict[tuple[str, int], int | None] = {}
        # Accepted 1.6 remote starts waiting for their StartTransaction, by charge point.
        self._remote_starts: dict[str, list[_RemoteStart]] = {}
        # Decisions for other parties' tokens, by (charge point, token key): what its
        # Authorize got, or what a partner's command vouched for; used by the transaction
        # that follows. Stored too (auth_grants): this is the cache of this process.
        self._grants: dict[tuple[str, str], Standing] = {}
        # Other parties' tokens are decided here when set (csms.app sets it).
        self.roaming: Roaming | None = None
        # Called after a transaction ended (billing wakes up to build its CDR).
        self.on_ended: list[Callable[[], None]] = []
        # Called after a new transaction started (the OCPI session publisher wakes up).
        self.on_started: list[Callable[[], None]] = []
        # Called after a status or a connection change is committed (the OCPI location
        # publisher's wake).
        self.on_status: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._clock()

    # --- connection lifecycle --------------------------------------------------------

    async def connected(
        self, cp_id: str, version: str, known: ChargePoint | None
    ) -> RegistrationStatus:
        """A charger opened a connection (`known`: its row as read at the handshake): create
        it per policy if unknown and mark it online. Returns its registration status."""
        now = self._clock()
        registration = registration_for(known, self.settings.registration)

        async def unit(w: WriteTx) -> None:
            cp_repo.connected_later(w, cp_id, version, registration, now)

        await self._db.write(unit)
        self._status_changed()
        return registration

    async def disconnected(self, cp_id: str, last_seen: datetime) -> None:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            cp_repo.disconnected_later(w, cp_id, last_seen, now)

        await self._db.write(unit)
        self._status_changed()

    async def seen(self, seen: Sequence[tuple[str, datetime]]) -> None:
        """Flush 'last heard from' times collected in memory."""

        async def unit(w: WriteTx) -> None:
            await cp_repo.touch_many(w, seen)

        await self._db.write(unit)

    async def charge_point(self, cp_id: str) -> ChargePoint | None:
        return await self._charge_points.load(cp_id)

    # --- core profile ----------------------------------------------------------------

    async def boot(
        self, cp_id: str, version: str, info: BootInfo, *, base_report: bool = False
    ) -> BootDecision:
        """Record the boot; the answer is the registration staff decided (or the policy's for
        a charger that is not stored yet). With `base_report`, an Accepted station whose
        firmware version has not been asked for its device model yet is due for it; that is
        recorded before the request goes out, so a station that reboots when probed is never
        asked again for the same firmware (no reboot loop)."""
        now = self._clock()
        known = await self._charge_points.load(cp_id)
        status = registration_for(known, self.settings.registration)
        firmware = info.firmware_version or ""
        due = (
            base_report
            and status is RegistrationStatus.ACCEPTED
            and (known is None or known.base_report_firmware != firmware)
        )

        async def unit(w: WriteTx) -> None:
            if known is None:
                cp_repo.connected_later(w, cp_id, version, status, now)
            cp_repo.record_boot_later(w, cp_id, info, version, now)
            if due:
                cp_repo.base_report_asked_later(w, cp_id, firmware)

        await self._db.write(unit)
        return BootDecision(status, self.settings.heartbeat_interval, now, due)

    async def heartbeat(self, cp_id: str) -> datetime:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            cp_repo.heartbeat_later(w, cp_id, now)

        await self._db.write(unit)
        return now

    async def status(self, cp_id: str, report: StatusReport) -> None:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            cp_repo.record_status_later(w, cp_id, report, now)

        await self._db.write(unit)
        self._status_changed()

    async def authorize(
        self,
        cp_id: str,
        id_tag: str,
        token_type: str | None = None,
        evse_id: int | None = None,
    ) -> AuthResult:
        now = self._clock()
        if token_type == NO_AUTHORIZATION:
            return AuthResult(AuthStatus.ACCEPTED)
        async with self._db.read() as conn:
            token = await token_repo.get(conn, id_tag)
            active = await tx_repo.active_for_tag(conn, id_tag) if token is not None else []
        grant = await self._grant_for(cp_id, id_tag, token_type, evse_id, token)
        if token is None and grant is not None and grant.accepted:
            # A token only a partner's command vouched for: is it charging elsewhere?
            async with self._db.read() as conn:
                active = await tx_repo.active_for_tag(conn, id_tag)
        busy = any(t.charge_point_id != cp_id for t in _authorized(active))
        if grant is not None:
            if grant.accepted and busy:
                return AuthResult(AuthStatus.CONCURRENT_TX)
            return grant.auth()
        return decide(token, now, busy_elsewhere=busy)

    async def _grant_for(
        self,
        cp_id: str,
        id_tag: str,
        token_type: str | None,
        evse_id: int | None,
        token: Token | None,
    ) -> Grant | None:
        """The decision for another party's token at this charger: one that stands (a
        partner's command vouched for it, or an Authorize got it), else the roaming
        decision now (for a token of another party's, not ours), else None."""
        now = self._clock()
        key = (cp_id, token_key(id_tag))
        standing = self._grants.get(key)
        if standing is None and token is not None and token.whitelist is not None:
            # Not decided by this process: a decision may stand from before a restart.
            async with self._db.read() as conn:
                standing = await grant_repo.get(conn, cp_id, key[1], now)
            if standing is not None:
                self._cache_grant(key, standing)
        if standing is not None:
            if standing.until <= now:
                self._grants.pop(key, None)
            elif evse_id is None or standing.evse_id in (None, evse_id):
                return standing.grant
        if self.roaming is None or token is None or token.whitelist is None:
            return None
        grant = await self.roaming.authorize(cp_id, evse_id, id_tag, token_type, token)
        if grant is not None and grant.accepted:
            await self._keep_grant(
                cp_id, key[1], Standing(grant, None, now + timedelta(seconds=GRANT_TTL_S)), now
            )
        if grant is not None:
            log.info(
                "roaming_authorization",
                charge_point_id=cp_id,
                id_token=id_tag,
                status=grant.status.value,
                method=grant.method.value,
                reason=grant.reason,
                authorization_reference=grant.authorization_reference,
            )
        return grant

    def _cache_grant(self, key: tuple[str, str], standing: Standing) -> None:
        if len(self._grants) >= _MAX_OWNERS:
            self._grants.clear()
        self._grants[key] = standing

    async def _keep_grant(
        self, cp_id: str, uid_key: str, standing: Standing, now: datetime
    ) -> None:
        """Store a decision (it survives a restart) and cache it."""

        async def unit(w: WriteTx) -> None:
            await grant_repo.save(await w.connection(), cp_id, uid_key, standing, now)

        await self._db.write(unit)
        self._cache_grant((cp_id, uid_key), standing)

    async def _grant_used(self, cp_id: str, id_tag: str, grant: Grant) -> None:
        """A transaction took this decision: the token's next session is decided afresh."""
        key = (cp_id, token_key(id_tag))
        standing = self._grants.get(key)
        if standing is not None and standing.grant is not grant:
            return  # a newer decision replaced it meanwhile
        self._grants.pop(key, None)

        async def unit(w: WriteTx) -> None:
            await grant_repo.remove(await w.connection(), cp_id, key[1])

        await self._db.write(unit)

    async def start_transaction(self, cp_id: str, version: str, req: StartRequest) -> StartResult:
        now = self._clock()
        allow_unknown = self.settings.allow_unknown_tags
        async with self._db.read() as conn:
            presented = await token_repo.get(conn, req.id_tag)
        grant = await self._grant_for(cp_id, req.id_tag, None, req.evse_id, presented)

        async def unit(w: WriteTx) -> StartResult:
            conn = await w.connection()
            previous = await tx_repo.find_start(
                conn, cp_id, req.connector_id, req.evse_id, req.id_tag, req.timestamp
            )
            if previous is not None:
                # A resend of a StartTransaction we already stored: same id, same answer.
                status = AuthStatus(previous.auth_status or AuthStatus.INVALID.value)
                token = await token_repo.get(conn, req.id_tag)
                expires = token.expires_at if token else None
                parent = token.parent_uid if token else None
                return StartResult(previous.id, AuthResult(status, expires, parent), True)
            token = await token_repo.get(conn, req.id_tag)
            active = await tx_repo.active_for_tag(conn, req.id_tag)
            busy = any(t.charge_point_id != cp_id or t.evse_id != req.evse_id for t in active)
            auth = decide(token, now, busy_elsewhere=busy)
            if grant is not None:
                auth = grant.auth()
                if auth.accepted and busy:
                    auth = AuthResult(AuthStatus.CONCURRENT_TX)
            elif token is None and allow_unknown:
                auth = AuthResult(AuthStatus.ACCEPTED)
            parent = None if token is None else token.parent_uid
            auth, reservation_id = await self._reservations_at_start(
                conn, cp_id, req.evse_id, req.id_tag, parent, req.reservation_id, auth, now
            )
            tx_id = await tx_repo.create(
                conn,
                cp_id=cp_id,
                ocpp_version=version,
                evse_id=req.evse_id,
                connector_id=req.connector_id,
                id_tag=req.id_tag,
                auth_status=auth.status.value,
                start_at=req.timestamp,
                meter_start_wh=req.meter_start_wh,
                reservation_id=reservation_id,
                remote_start_id=self._claim_remote_start(cp_id, req.id_tag, req.evse_id, now),
                now=now,
                grant=grant,
            )
            if reservation_id is not None:
                await reservation_repo.set_state(
                    conn, reservation_id, ReservationState.USED, now, transaction_id=tx_id
                )
            return StartResult(tx_id, auth, False)

        result = await self._db.write(unit)
        if grant is not None and not result.duplicate:
            await self._grant_used(cp_id, req.id_tag, grant)
        self._remember(result.transaction_id, cp_id)
        self._note_evse(cp_id, req.evse_id, result.transaction_id)
        log.info(
            "transaction_started" if not result.duplicate else "transaction_start_repeated",
            charge_point_id=cp_id,
            transaction_id=result.transaction_id,
            evse_id=req.evse_id,
            auth_status=result.auth.status.value,
        )
        if not result.duplicate:
            self._started()
        return result

    async def stop_transaction(self, cp_id: str, req: StopRequest) -> StopResult:
        now = self._clock()

        async def unit(w: WriteTx) -> StopResult:
            conn = await w.connection()
            auth: AuthResult | None = None
            if req.id_tag is not None:
                auth = decide(await token_repo.get(conn, req.id_tag), now)
            tx = await tx_repo.get(conn, req.transaction_id)
            if tx is None or tx.charge_point_id != cp_id:
                await tx_repo.record_unmatched(
                    conn, cp_id, "StopTransaction", str(req.transaction_id), req.raw or {}, now
                )
                tx_repo.add_samples_later(
                    w,
                    cp_id=cp_id,
                    evse_id=0,
                    connector_id=0,
                    transaction_id=None,
                    samples=req.samples,
                )
                return StopResult(auth, known=False, duplicate=False)
            if not tx.active:
                return StopResult(auth, True, True, tx.energy_wh, tx.flags)
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=tx.evse_id,
                connector_id=tx.connector_id,
                transaction_id=tx.id,
                samples=req.samples,
            )
            conn = await w.connection()
            readings = await tx_repo.register_readings(conn, tx.id)
            energy = _energy(
                tx.meter_start_wh, req.meter_stop_wh, tx.start_at, req.timestamp, readings
            )
            flags = tuple(f.value for f in energy.flags)
            await tx_repo.finish(
                conn,
                tx.id,
                stop_at=req.timestamp,
                meter_stop_wh=req.meter_stop_wh,
                energy_wh=energy.energy_wh,
                flags=flags,
                stop_reason=req.reason,
                stop_id_tag=req.id_tag,
                now=now,
            )
            await profile_repo.end_with_transaction(conn, cp_id, tx.id, now)
            return StopResult(auth, True, False, energy.energy_wh, flags, tx.evse_id)

        result = await self._db.write(unit)
        self._owners.pop(req.transaction_id, None)
        if result.evse_id is not None:
            self._evse_tx.pop((cp_id, result.evse_id), None)
        if not result.known:
            log.warning(
                "transaction_stop_unmatched",
                charge_point_id=cp_id,
                transaction_id=req.transaction_id,
            )
        elif not result.duplicate:
            log.info(
                "transaction_stopped",
                charge_point_id=cp_id,
                transaction_id=req.transaction_id,
                energy_wh=result.energy_wh,
                flags=list(result.flags) or None,
            )
            self._ended()
        return result

    def _ended(self) -> None:
        for hook in self.on_ended:
            hook()

    def _status_changed(self) -> None:
        for hook in self.on_status:
            hook()

    def _started(self) -> None:
        for hook in self.on_started:
            hook()

    async def meter_values(self, cp_id: str, report: MeterReport) -> bool:
        """Store samples; returns False when they name a transaction we do not know."""
        now = self._clock()
        tx_id = report.transaction_id
        owner = None if tx_id is None else self._owners.get(tx_id)
        known_owner = owner is not None and owner == cp_id

        async def unit(w: WriteTx) -> bool:
            linked = tx_id
            known = True
            if tx_id is not None and not known_owner:
                # Not cached: look the transaction up (and remember it if it is active here).
                conn = await w.connection()
                tx = await tx_repo.get(conn, tx_id)
                if tx is None or tx.charge_point_id != cp_id:
                    known = False
                    linked = None
                    await tx_repo.record_unmatched(
                        conn, cp_id, "MeterValues", str(tx_id), report.raw or {}, now
                    )
                elif tx.active:
                    self._remember(tx_id, cp_id)
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=report.evse_id,
                connector_id=report.connector_id,
                transaction_id=linked,
                samples=report.samples,
            )
            return known

        return await self._db.write(unit)

    def _remember(self, tx_id: int, cp_id: str) -> None:
        if len(self._owners) >= _MAX_OWNERS:
            self._owners.clear()
        self._owners[tx_id] = cp_id

    # --- OCPP 2.0.1 transactions --------------------------------------------------------

    async def transaction_event(
        self, cp_id: str, version: str, event: TransactionEvent, raw: dict[str, Any]
    ) -> TxEventResult:
        """Apply one TransactionEvent. Events may arrive late, twice or out of order (a
        station's offline queue): a repeated seqNo changes nothing, and every other event
        merges into the transaction in a way that does not depend on arrival order."""
        now = self._clock()
        allow_unknown = self.settings.allow_unknown_tags
        key = (cp_id, event.ocpp_transaction_id)
        cursor = self._cursors.get(key)
        if cursor is not None and event.seq_no in cursor.seen:
            # A resend of an event already committed: same answer, nothing changes.
            auth = None
            if event.id_token is not None:
                auth = await self.authorize(cp_id, event.id_token, event.token_type, event.evse_id)
            return TxEventResult(cursor.tx.id, auth, duplicate=True)
        grant: Grant | None = None
        if event.id_token is not None and event.token_type != NO_AUTHORIZATION:
            decided = (
                cursor is not None
                and cursor.tx.cdr_token is not None
                and cursor.tx.id_tag is not None
                and token_key(cursor.tx.id_tag) == token_key(event.id_token)
            )
            if not decided:
                async with self._db.read() as conn:
                    presented = await token_repo.get(conn, event.id_token)
                grant = await self._grant_for(
                    cp_id, event.id_token, event.token_type, event.evse_id, presented
                )
        if (
            cursor is not None
            and cursor.tx.active
            and event.event_type is TxEventType.UPDATED
            and event.id_token is None
            and not _merge(cursor.tx, event, None, None, register_bounds(event.samples))
        ):
            return await self._append_event(cp_id, cursor, event, raw, now)

        async def unit(w: WriteTx) -> TxEventResult:
            conn = await w.connection()
            tx = await tx_repo.find_by_ocpp_id(conn, cp_id, event.ocpp_transaction_id)
            auth: AuthResult | None = None
            if event.id_token is not None:
                auth = await self._authorize_in(
                    conn,
                    cp_id,
                    event.id_token,
                    event.token_type,
                    event.evse_id,
                    tx.id if tx is not None else None,
                    now,
                    allow_unknown,
                    grant,
                )
            if tx is not None and await tx_repo.event_seen(conn, tx.id, event.seq_no):
                return TxEventResult(tx.id, auth, duplicate=True, cursor=await _cursor(conn, tx))
            bounds = register_bounds(event.samples)
            begin = _context_reading(event.samples, "Transaction.Begin")
            if tx is None:
                reservation_id = event.reservation_id
                if auth is not None and event.id_token is not None:
                    auth, reservation_id = await self._reservations_at_start(
                        conn,
                        cp_id,
                        event.evse_id,
                        event.id_token,
                        auth.parent_uid,
                        event.reservation_id,
                        auth,
                        now,
                    )
                tx_id = await tx_repo.create(
                    conn,
                    cp_id=cp_id,
                    ocpp_version=version,
                    evse_id=event.evse_id or 0,
                    connector_id=event.connector_id or (1 if event.evse_id else 0),
                    id_tag=event.id_token,
                    auth_status=None if auth is None else auth.status.value,
                    start_at=event.timestamp,
                    meter_start_wh=begin if begin is not None else _low(bounds),
                    reservation_id=reservation_id,
                    remote_start_id=event.remote_start_id,
                    grant=grant,
                    now=now,
                    ocpp_transaction_id=event.ocpp_transaction_id,
                )
                if reservation_id is not None:
                    await reservation_repo.set_state(
                        conn, reservation_id, ReservationState.USED, now, transaction_id=tx_id
                    )
                created = await tx_repo.get(conn, tx_id)
                assert created is not None
                tx = created
                changes: dict[str, Any] = {}
            else:
                changes = _merge(tx, event, auth, begin, bounds)
                if grant is not None and tx.cdr_token is None and "id_tag" in changes:
                    changes.update(
                        auth_method=grant.method.value,
                        authorization_reference=grant.authorization_reference,
                        cdr_token=dict(grant.cdr_token),
                    )
            _keep_event(
                w,
                cp_id,
                tx.id,
                event.evse_id or tx.evse_id,
                event.connector_id or tx.connector_id,
                event,
                raw,
                now,
            )
            ended = event.event_type is TxEventType.ENDED
            if ended and tx.active:
                changes["billing"] = BillingState.PENDING.value
            if ended:
                changes["state"] = TransactionState.COMPLETED.value
                changes["stop_at"] = event.timestamp
                changes["stop_reason"] = event.stopped_reason or "Local"
                end = _context_reading(event.samples, "Transaction.End")
                high = end if end is not None else _high(bounds)
                if high is not None:
                    changes["meter_stop_wh"] = max(high, tx.meter_stop_wh or high)
            elif not tx.active and bounds is not None and tx.meter_stop_wh is not None:
                # A late event of a finished transaction may still move its last reading.
                changes["meter_stop_wh"] = max(tx.meter_stop_wh, round(bounds[1]))
            if ended and event.id_token is not None:
                changes["stop_id_tag"] = event.id_token
            if changes:
                await tx_repo.update_fields(conn, tx.id, now, **changes)
            if ended:
                await profile_repo.end_with_transaction(conn, cp_id, tx.id, now)
            if ended or not tx.active:
                conn = await w.connection()
                fresh = await tx_repo.get(conn, tx.id)
                assert fresh is not None
                readings = await tx_repo.register_readings(conn, tx.id)
                energy = _energy(
                    fresh.meter_start_wh,
                    fresh.meter_stop_wh,
                    fresh.start_at,
                    fresh.stop_at or event.timestamp,
                    readings,
                )
                await tx_repo.update_fields(
                    conn,
                    tx.id,
                    now,
                    energy_wh=energy.energy_wh,
                    flags=tuple(f.value for f in energy.flags),
                )
            fresh = await tx_repo.get(await w.connection(), tx.id)
            assert fresh is not None
            return TxEventResult(
                tx.id, auth, duplicate=False, ended=ended, cursor=await _cursor(conn, fresh)
            )

        result = await self._db.write(unit)
        if grant is not None and event.id_token is not None and not result.duplicate:
            await self._grant_used(cp_id, event.id_token, grant)
        if result.cursor is not None:
            tx = result.cursor.tx
            if tx.active:
                if len(self._cursors) >= _MAX_OWNERS:
                    self._cursors.clear()
                self._cursors[key] = result.cursor
                if tx.evse_id:
                    self._note_evse(cp_id, tx.evse_id, tx.id)
            else:
                self._cursors.pop(key, None)
                if self._evse_tx.get((cp_id, tx.evse_id)) == tx.id:
                    del self._evse_tx[(cp_id, tx.evse_id)]
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
            self._started()
        elif result.ended:
            log.info(
                "transaction_stopped",
                charge_point_id=cp_id,
                transaction_id=result.transaction_id,
                offline=event.offline,
            )
            self._ended()
        return result

    async def _append_event(
        self,
        cp_id: str,
        cursor: _TxCursor,
        event: TransactionEvent,
        raw: dict[str, Any],
        now: datetime,
    ) -> TxEventResult:
        """The common case: an in-order Updated event of a running transaction that changes
        nothing but adds readings. Written in bulk with the rest of the batch."""
        tx = cursor.tx

        async def unit(w: WriteTx) -> None:
            _keep_event(w, cp_id, tx.id, tx.evse_id, tx.connector_id, event, raw, now)

        await self._db.write(unit)
        cursor.seen.add(event.seq_no)
        return TxEventResult(tx.id, None, duplicate=False)

    async def _authorize_in(
        self,
        conn: Any,
        cp_id: str,
        id_token: str,
        token_type: str | None,
        evse_id: int | None,
        own_tx: int | None,
        now: datetime,
        allow_unknown: bool,
        grant: Grant | None = None,
    ) -> AuthResult:
        """The decision for a token presented inside a transaction (its own transaction does
        not make it busy); `grant`: another party's decision for it."""
        if token_type == NO_AUTHORIZATION:
            return AuthResult(AuthStatus.ACCEPTED)
        token = await token_repo.get(conn, id_token)
        vouched = grant is not None and grant.accepted
        active = await tx_repo.active_for_tag(conn, id_token) if token or vouched else []
        busy = any(
            t.id != own_tx and (t.charge_point_id != cp_id or t.evse_id != evse_id)
            for t in _authorized(active)
        )
        if grant is not None:
            auth = grant.auth()
            return AuthResult(AuthStatus.CONCURRENT_TX) if auth.accepted and busy else auth
        auth = decide(token, now, busy_elsewhere=busy)
        if token is None and allow_unknown:
            auth = AuthResult(AuthStatus.ACCEPTED)
        return auth

    async def station_meter_values(
        self, cp_id: str, evse_id: int, samples: tuple[Sample, ...], raw: dict[str, Any]
    ) -> int | None:
        """OCPP 2.0.1 MeterValues (outside TransactionEvents): linked to the transaction
        running on that EVSE, if any. Returns its id."""
        key = (cp_id, evse_id)
        known = key in self._evse_tx
        cached = self._evse_tx.get(key)

        async def unit(w: WriteTx) -> int | None:
            tx_id = cached
            if not known and evse_id:
                active = await tx_repo.active_on_evse(await w.connection(), cp_id, evse_id)
                tx_id = None if active is None else active.id
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=evse_id,
                connector_id=1 if evse_id else 0,
                transaction_id=tx_id,
                samples=samples,
            )
            return tx_id

        tx_id = await self._db.write(unit)
        if not known:
            self._note_evse(cp_id, evse_id, tx_id)
        return tx_id

    def _note_evse(self, cp_id: str, evse_id: int, tx_id: int | None) -> None:
        if len(self._evse_tx) >= _MAX_OWNERS:
            self._evse_tx.clear()
        self._evse_tx[(cp_id, evse_id)] = tx_id

    async def device_report(self, cp_id: str, report_data: Sequence[dict[str, Any]]) -> int:
        """Store (a part of) the device model a station reports."""
        now = self._clock()

        async def unit(w: WriteTx) -> int:
            return device_repo.store_report_later(w, cp_id, report_data, now)

        return await self._db.write(unit)

    # --- reservations and remote starts ----------------------------------------------

    async def _reservations_at_start(
        self,
        conn: Any,
        cp_id: str,
        evse_id: int | None,
        id_tag: str,
        parent_uid: str | None,
        reservation_id: int | None,
        auth: AuthResult,
        now: datetime,
    ) -> tuple[AuthResult, int | None]:
        """A transaction starts: the reservation it uses (its id), and the answer for its
        token, which becomes NotAtThisTime when the EVSE is held for someone else."""
        reservations = await reservation_repo.open_for(conn, cp_id)
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

    async def expect_start(
        self,
        cp_id: str,
        uid: str,
        evse_id: int | None,
        grant: Grant,
        ttl_s: float = GRANT_TTL_S,
    ) -> None:
        """Another party vouches for `uid` at this charger (OCPI START_SESSION or
        RESERVE_NOW): its Authorize and the transaction it starts (on `evse_id`, or any EVSE
        when None) within `ttl_s` get `grant`, without asking anyone again. Call it before
        the command goes out: a charger may start late, even after the command timed out,
        or after a restart of ours (the decision is stored)."""
        now = self._clock()
        standing = Standing(grant, evse_id, now + timedelta(seconds=ttl_s))
        await self._keep_grant(cp_id, token_key(uid), standing, now)

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

    async def reservation_update(self, cp_id: str, reservation_id: int, status: str) -> None:
        """A 2.0.1 station reports a reservation it ended itself (Expired or Removed)."""
        now = self._clock()
        state = ReservationState.EXPIRED if status == "Expired" else ReservationState.CANCELLED

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            reservation = await reservation_repo.get(conn, reservation_id)
            if reservation is not None and reservation.charge_point_id == cp_id:
                await reservation_repo.set_state(conn, reservation_id, state, now)

        await self._db.write(unit)

    # --- messages kept as sent -------------------------------------------------------

    async def record_event(
        self, cp_id: str, action: str, payload: dict[str, Any], *, progress: str | None = None
    ) -> None:
        """Store a message for staff. `progress` names the charger field that tracks it:
        "firmware" or "diagnostics" (its status is payload["status"])."""
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            await event_repo.record(conn, cp_id, action, payload, now)
            if progress is not None:
                await cp_repo.update_fields(
                    conn,
                    cp_id,
                    now,
                    **{f"{progress}_status": payload.get("status"), f"{progress}_status_at": now},
                )

        await self._db.write(unit)
