"""Use cases of chargers reporting to the CSMS: connect, boot, status, authorize, transactions.

Each call loads state, applies csms.core rules and commits through the group-commit writer;
it returns only once what was reported is durable. No OCPP field names here.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from csms.core.authorization import AuthResult, AuthStatus, Token, decide, over_limit
from csms.core.charger import (
    BootInfo,
    ChargePoint,
    RegistrationPolicy,
    RegistrationStatus,
    StatusReport,
    registration_for,
)
from csms.core.clock import Clock, TimeWindow
from csms.core.ids import token_key
from csms.core.metering import MAX_READING, Sample, usable_register
from csms.core.reservations import Reservation, ReservationState, check_start
from csms.core.roaming import Grant
from csms.core.transactions import (
    BillingState,
    EnergyFlag,
    EnergyResult,
    InputFlag,
    Transaction,
    TransactionEvent,
    TransactionState,
    TxEventType,
    flagged,
    register_bounds,
    session_energy,
    with_energy,
)
from csms.metrics import Metrics
from csms.services.holdings import Holdings, Place
from csms.services.quotas import Quotas, QuotaSettings
from csms.storage import charge_points as cp_repo
from csms.storage import charging_profiles as profile_repo
from csms.storage import device_model as device_repo
from csms.storage import events as event_repo
from csms.storage import grants as grant_repo
from csms.storage import reservations as reservation_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import BatchLoader, Database, Unit, WriteTx
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
    # Charger timestamps outside it are replaced by the time of receipt and flagged.
    window: TimeWindow = field(default_factory=TimeWindow)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)


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
    Transaction.Begin/End readings), cross-checked with the register readings. A register
    or reading that is no usable number (a row stored before they were bounded) counts as
    missing."""
    if not usable_register(meter_start):
        meter_start = None
    if not usable_register(meter_stop):
        meter_stop = None
    readings = [(t, v) for t, v in readings if math.isfinite(v) and abs(v) <= MAX_READING]
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


async def _nothing() -> None:
    return None


def _added(flags: tuple[InputFlag, ...], *new: InputFlag) -> tuple[InputFlag, ...]:
    return tuple(dict.fromkeys([*flags, *new]))


def _applied(tx: Transaction, changes: dict[str, Any]) -> Transaction:
    """The transaction as stored once `changes` (columns and values) are written."""
    fields = {k: v for k, v in changes.items() if k != "id_tag_key"}
    if "state" in fields:
        fields["state"] = TransactionState(fields["state"])
    for moment in ("start_at", "stop_at"):
        if fields.get(moment) is not None:
            fields[moment] = fields[moment].astimezone(UTC)
    return replace(tx, **fields)


class ChargingService:
    """What chargers report, made durable. One instance per process."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: ChargingSettings,
        metrics: Metrics | None = None,
        roaming: Roaming | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings
        # What chargers may make us keep: messages stored as sent, their own registration.
        self.quotas = Quotas(db, clock, settings.quotas, metrics)
        # Running transactions this process has seen, by id: lets meter values and stops
        # skip a look-up.
        self._active: dict[int, Transaction] = {}
        self._charge_points = BatchLoader(db, cp_repo.get_many)
        # Look-ups that run outside the writer, coalesced across chargers (a burst of a
        # thousand starts costs a few queries), so that a start or a stop costs the writer
        # no trip to the database of its own.
        self._tokens = BatchLoader(db, token_repo.get_many)
        self._reservations = BatchLoader(db, reservation_repo.open_for_many)
        self._starts_at = BatchLoader(db, tx_repo.starts_at)
        self._by_ocpp_id = BatchLoader(db, tx_repo.by_ocpp_ids)
        self._transactions = BatchLoader(db, tx_repo.get_many)
        self._readings = BatchLoader(db, tx_repo.readings_of)
        self._on_evse = BatchLoader(db, tx_repo.active_on_evses)
        self._holdings = Holdings(BatchLoader(db, tx_repo.holders))
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
        # Decisions for other parties' tokens, by (charge point, token key): what its
        # Authorize got, or what a partner's command vouched for; used by the transaction
        # that follows. Stored too (auth_grants): this is the cache of this process.
        self._grants: dict[tuple[str, str], Standing] = {}
        # Other parties' tokens are decided here when given (csms.app gives it).
        self.roaming = roaming
        # Called after a transaction ended (billing wakes up to build its CDR).
        self.on_ended: list[Callable[[], None]] = []
        # Called after a new transaction started (the OCPI session publisher wakes up).
        self.on_started: list[Callable[[], None]] = []
        # Called after a status or a connection change is committed (the OCPI location
        # publisher's wake).
        self.on_status: list[Callable[[], None]] = []
        # Called with (kind, action) when a charger's value was not taken as sent: kind
        # "timestamp" (outside the window), "reading" or "register" (no usable number).
        self.on_flagged: list[Callable[[str, str], None]] = []

    async def warm_up(self) -> None:
        """Build the look-ups a burst of starts needs before the first burst comes (SQLite;
        elsewhere SQLAlchemy's statement cache does it)."""
        if not self._db.is_sqlite:
            return
        most = max(self._by_ocpp_id.max_keys, self._starts_at.max_keys)
        await tx_repo.warm_up(self._db.engine.dialect, most)

    def now(self) -> datetime:
        return self._clock()

    # --- what chargers send that cannot be taken as sent -------------------------------

    def _flag(self, kind: str, action: str) -> None:
        for hook in self.on_flagged:
            hook(kind, action)

    def _plausible(
        self, cp_id: str, action: str, field: str, moment: datetime, now: datetime
    ) -> bool:
        """Whether a charger's timestamp lies in the window; one that does not is logged
        and counted (the caller stores the time of receipt instead)."""
        if self.settings.window.holds(moment, now):
            return True
        log.warning(
            "implausible_timestamp_replaced",
            charge_point_id=cp_id,
            action=action,
            field=field,
            sent=moment.isoformat(),
            stored=now.isoformat(),
        )
        self._flag("timestamp", action)
        return False

    def _register(self, cp_id: str, action: str, field: str, wh: int) -> int | None:
        """A 1.6 meterStart/meterStop, or None (logged, counted) when it is no register."""
        if usable_register(wh):
            return wh
        log.warning(
            "unusable_register_refused", charge_point_id=cp_id, action=action, field=field, sent=wh
        )
        self._flag("register", action)
        return None

    def _vet_samples(
        self, cp_id: str, action: str, samples: tuple[Sample, ...], now: datetime
    ) -> tuple[tuple[Sample, ...], tuple[InputFlag, ...]]:
        """Samples as they are stored: a time outside the window becomes the time of
        receipt. Returns them with the flags they earn their transaction (one log line
        per kind and message)."""
        if not samples:
            return samples, ()
        window = self.settings.window
        earliest, latest = window.earliest, window.latest(now)
        late: Sample | None = None
        refused: Sample | None = None
        for sample in samples:
            if not earliest <= sample.timestamp <= latest:
                late = late or sample
            if sample.refused:
                refused = refused or sample
        if late is None and refused is None:
            return samples, ()
        flags: list[InputFlag] = []
        if late is not None:
            self._plausible(cp_id, action, "meterValue.timestamp", late.timestamp, now)
            samples = tuple(
                s if earliest <= s.timestamp <= latest else s._replace(timestamp=now)
                for s in samples
            )
            flags.append(InputFlag.IMPLAUSIBLE_TIMESTAMP)
        if refused is not None:
            log.warning(
                "unusable_reading_refused",
                charge_point_id=cp_id,
                action=action,
                measurand=refused.measurand,
                sent=refused.raw_value[:40],
                readings=sum(s.refused for s in samples),
            )
            self._flag("reading", action)
            flags.append(InputFlag.UNUSABLE_READING)
        return samples, tuple(flags)

    def _vet_event(
        self, cp_id: str, event: TransactionEvent, now: datetime
    ) -> tuple[TransactionEvent, tuple[InputFlag, ...]]:
        """A 2.0.1 TransactionEvent as it is stored (see _vet_samples)."""
        samples, flags = self._vet_samples(cp_id, "TransactionEvent", event.samples, now)
        if samples is not event.samples:
            event = event._replace(samples=samples)
        if not self._plausible(cp_id, "TransactionEvent", "timestamp", event.timestamp, now):
            event = event._replace(timestamp=now)
            flags = _added(flags, InputFlag.IMPLAUSIBLE_TIMESTAMP)
        return event, flags

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
        now = self._clock()
        registration = known.registration

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

        async def unit(w: WriteTx) -> None:
            if known is None:
                cp_repo.connected_later(w, cp_id, version, status, now)
            cp_repo.record_boot_later(w, cp_id, info, version, now)
            if due:
                cp_repo.base_report_asked_later(w, cp_id, firmware)

        await self._db.write(unit)
        if known is None:
            log.info("charger_registered_itself", charge_point_id=cp_id, registration=status.value)
            self._status_changed()
        return BootDecision(status, self.settings.heartbeat_interval, now, due)

    async def heartbeat(self, cp_id: str) -> datetime:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            cp_repo.heartbeat_later(w, cp_id, now)

        await self._db.write(unit)
        return now

    async def status(self, cp_id: str, report: StatusReport) -> None:
        now = self._clock()
        if not self._plausible(cp_id, "StatusNotification", "timestamp", report.timestamp, now):
            report = replace(report, timestamp=now)

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
        token = await self._token(id_tag)
        grant = await self._grant_for(cp_id, id_tag, token_type, evse_id, token)
        # Transactions at this charger do not count (a 1.6 charger may authorize the same
        # card again for its transaction in progress).
        busy = await self._over_limit(id_tag, token, grant, lambda _tx_id, place: place[0] != cp_id)
        if grant is not None:
            if grant.accepted and busy:
                return AuthResult(AuthStatus.CONCURRENT_TX)
            return grant.auth()
        return decide(token, now, busy_elsewhere=busy)

    async def _token(self, id_tag: str) -> Token | None:
        return await self._tokens.load(token_key(id_tag))

    async def _over_limit(
        self,
        id_tag: str,
        token: Token | None,
        grant: Grant | None,
        counts: Callable[[int, Place], bool],
    ) -> bool:
        """Whether the token already holds as many running transactions (those `counts`
        accepts) as it may. Tokens with no limit, and tokens nobody vouches for, are not
        looked at."""
        if token is None and (grant is None or not grant.accepted):
            return False
        limit = token.max_concurrent if token is not None else 1
        if limit is None:
            return False
        key = token_key(id_tag)
        await self._holdings.ensure(key)
        return over_limit(limit, self._holdings.count(key, counts))

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
        if not self._plausible(cp_id, "StartTransaction", "timestamp", start_at, now):
            start_at = now
            flags = (InputFlag.IMPLAUSIBLE_TIMESTAMP,)
        meter_start = self._register(cp_id, "StartTransaction", "meterStart", req.meter_start_wh)
        if meter_start is None:
            flags = _added(flags, InputFlag.UNUSABLE_REGISTER)
        token, previous, reservations, tx_id = await asyncio.gather(
            self._token(req.id_tag),
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
        grant = await self._grant_for(cp_id, req.id_tag, None, req.evse_id, token)
        # A transaction still marked running on this EVSE does not count: this start
        # tells that it ended (its stop was lost). From the count to taking the slot
        # (_write_new) nothing waits: a start at the same moment elsewhere sees this one.
        busy = await self._over_limit(
            req.id_tag,
            token,
            grant,
            lambda _tx_id, place: place != (cp_id, req.evse_id),
        )
        auth = decide(token, now, busy_elsewhere=busy)
        if grant is not None:
            auth = grant.auth()
            if auth.accepted and busy:
                auth = AuthResult(AuthStatus.CONCURRENT_TX)
        elif token is None and self.settings.allow_unknown_tags:
            auth = AuthResult(AuthStatus.ACCEPTED)
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
        tx = tx_repo.new_transaction(
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
            if reservation_id is not None:
                await reservation_repo.set_state(
                    await w.connection(),
                    reservation_id,
                    ReservationState.USED,
                    now,
                    transaction_id=tx.id,
                )

        await self._write_new(tx, unit)
        if grant is not None:
            await self._grant_used(cp_id, req.id_tag, grant)
        self._note_evse(cp_id, req.evse_id, tx.id)
        log.info(
            "transaction_started",
            charge_point_id=cp_id,
            transaction_id=tx.id,
            evse_id=req.evse_id,
            auth_status=auth.status.value,
            flags=list(tx.flags) or None,
        )
        self._started()
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
        tag = None if tx.id_tag is None else token_key(tx.id_tag)
        if tag is not None and tx.auth_status == AuthStatus.ACCEPTED.value:
            self._holdings.add(tag, tx.id, (tx.charge_point_id, tx.evse_id))
        try:
            await self._db.write(unit)
        except BaseException:
            if tag is not None:
                self._holdings.remove(tag, tx.id)
            self._ids.resync()
            raise
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
            self._token(req.id_tag) if req.id_tag is not None else _nothing(),
            self._transaction(req.transaction_id),
            self._readings.load(req.transaction_id),
        )
        auth = None if req.id_tag is None else decide(token, now)
        if tx is not None and tx.charge_point_id == cp_id and not tx.active:
            return StopResult(auth, True, True, tx.energy_wh, tx.flags)
        samples, flags = self._vet_samples(cp_id, "StopTransaction", req.samples, now)
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
        if not self._plausible(cp_id, "StopTransaction", "timestamp", stop_at, now):
            stop_at = now
            flags = _added(flags, InputFlag.IMPLAUSIBLE_TIMESTAMP)
        meter_stop = self._register(cp_id, "StopTransaction", "meterStop", req.meter_stop_wh)
        if meter_stop is None:
            flags = _added(flags, InputFlag.UNUSABLE_REGISTER)
        energy = _energy(
            tx.meter_start_wh,
            meter_stop,
            tx.start_at,
            stop_at,
            [*(readings or []), *tx_repo.register_points(samples)],
        )
        all_flags = with_energy(flagged(tx.flags, *flags), energy)

        async def unit(w: WriteTx) -> None:
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=tx.evse_id,
                connector_id=tx.connector_id,
                transaction_id=tx.id,
                samples=samples,
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
        self._ended()
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
        if len(self._active) >= _MAX_OWNERS:
            self._active.clear()
        self._active[tx.id] = tx

    def _forget(self, tx: Transaction) -> None:
        """A transaction ended: it no longer holds its token nor its EVSE."""
        self._active.pop(tx.id, None)
        if tx.id_tag is not None:
            self._holdings.remove(token_key(tx.id_tag), tx.id)
        if self._evse_tx.get((tx.charge_point_id, tx.evse_id)) == tx.id:
            del self._evse_tx[(tx.charge_point_id, tx.evse_id)]

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
        known = True
        tx = None
        if tx_id is not None:
            tx = await self._transaction(tx_id)
            known = tx is not None and tx.charge_point_id == cp_id
        samples, flags = self._vet_samples(cp_id, "MeterValues", report.samples, now)
        marked = self._marked(tx, flags) if known else None

        async def unit(w: WriteTx) -> None:
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=report.evse_id,
                connector_id=report.connector_id,
                transaction_id=tx_id if known else None,
                samples=samples,
            )
            if marked is not None:
                tx_repo.update_later(w, marked.id, now, flags=marked.flags)
            if not known:
                await tx_repo.record_unmatched(
                    await w.connection(), cp_id, "MeterValues", str(tx_id), report.raw or {}, now
                )

        await self._db.write(unit)
        self._keep_marked(marked)
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
        self, cp_id: str, version: str, event: TransactionEvent, raw: dict[str, Any]
    ) -> TxEventResult:
        """Apply one TransactionEvent. Events may arrive late, twice or out of order (a
        station's offline queue): a repeated seqNo changes nothing, and every other event
        merges into the transaction in a way that does not depend on arrival order."""
        event, flags = self._vet_event(cp_id, event, self._clock())
        cursor = self._cursors.get((cp_id, event.ocpp_transaction_id))
        if (
            not flags
            and cursor is not None
            and event.seq_no not in cursor.seen
            and cursor.tx.active
            and event.event_type is TxEventType.UPDATED
            and event.id_token is None
            and cp_id not in self._busy
            and not _merge(cursor.tx, event, None, None, register_bounds(event.samples))
        ):
            # Most events: an Updated that only adds readings to a running transaction
            # this process follows. Nothing to look up, so no turn to wait for.
            return await self._append_event(cp_id, cursor, event, raw, self._clock())
        turn = await self._one_at_a_time(cp_id)
        try:
            return await self._transaction_event(cp_id, version, event, raw, flags)
        finally:
            self._done(cp_id, turn)

    async def _transaction_event(
        self,
        cp_id: str,
        version: str,
        event: TransactionEvent,
        raw: dict[str, Any],
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
                again = await self.authorize(cp_id, event.id_token, event.token_type, event.evse_id)
            return TxEventResult(cursor.tx.id, again, duplicate=True)
        token: Token | None = None
        grant: Grant | None = None
        if event.id_token is not None and event.token_type != NO_AUTHORIZATION:
            token = await self._token(event.id_token)
            decided = (
                cursor is not None
                and cursor.tx.cdr_token is not None
                and cursor.tx.id_tag is not None
                and token_key(cursor.tx.id_tag) == token_key(event.id_token)
            )
            if not decided:
                grant = await self._grant_for(
                    cp_id, event.id_token, event.token_type, event.evse_id, token
                )
        if (
            not flags
            and cursor is not None
            and cursor.tx.active
            and event.event_type is TxEventType.UPDATED
            and event.id_token is None
            and not _merge(cursor.tx, event, None, None, register_bounds(event.samples))
        ):
            return await self._append_event(cp_id, cursor, event, raw, now)
        stored = cursor.tx if cursor is not None else await self._by_ocpp_id.load(key)
        ended = event.event_type is TxEventType.ENDED
        reservations: list[Reservation] = []
        if event.id_token is not None:
            reservations = await self._reservations.load(cp_id) or []
        tx_id = stored.id if stored is not None else await self._new_id()
        auth: AuthResult | None = None
        slot: tuple[str, int] | None = None
        if event.id_token is not None:
            auth = await self._decide_in(cp_id, event, tx_id, token, grant, now)
            if auth.accepted and not ended:
                # Taken now (nothing waited since the count); given back if it fails.
                slot = (token_key(event.id_token), tx_id)
                evse_id = event.evse_id or (stored.evse_id if stored is not None else 0)
                self._holdings.add(slot[0], tx_id, (cp_id, evse_id))
        try:
            if stored is None and not ended:
                result = await self._first_event(
                    cp_id, version, event, raw, now, auth, grant, reservations, tx_id, flags
                )
            elif cursor is not None and cursor.tx.active and ended:
                result = await self._last_event(cp_id, cursor, event, raw, now, auth, grant, flags)
            else:
                result = await self._any_event(
                    cp_id, version, event, raw, now, auth, grant, reservations, tx_id, flags
                )
        except BaseException:
            if slot is not None:
                self._holdings.remove(*slot)
            raise
        if grant is not None and event.id_token is not None:
            await self._grant_used(cp_id, event.id_token, grant)
        self._after_event(key, event, result)
        return result

    async def _first_event(
        self,
        cp_id: str,
        version: str,
        event: TransactionEvent,
        raw: dict[str, Any],
        now: datetime,
        auth: AuthResult | None,
        grant: Grant | None,
        reservations: list[Reservation],
        tx_id: int,
        flags: tuple[InputFlag, ...] = (),
    ) -> TxEventResult:
        """A transaction we have no row of yet (its Started, or an Updated of a station that
        began it offline): created with the batch."""
        reservation_id = event.reservation_id
        if auth is not None and event.id_token is not None:
            auth, reservation_id = self._reservation_at_start(
                reservations,
                cp_id,
                event.evse_id,
                event.id_token,
                auth.parent_uid,
                event.reservation_id,
                auth,
                now,
            )
        bounds = register_bounds(event.samples)
        begin = _context_reading(event.samples, "Transaction.Begin")
        tx = tx_repo.new_transaction(
            tx_id,
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
            ocpp_transaction_id=event.ocpp_transaction_id,
            grant=grant,
            flags=flagged((), *flags),
        )

        async def unit(w: WriteTx) -> None:
            tx_repo.insert_later(w, tx, now)
            _keep_event(w, cp_id, tx.id, tx.evse_id, tx.connector_id, event, raw, now)
            if reservation_id is not None:
                await reservation_repo.set_state(
                    await w.connection(),
                    reservation_id,
                    ReservationState.USED,
                    now,
                    transaction_id=tx.id,
                )

        await self._write_new(tx, unit)
        return TxEventResult(tx.id, auth, False, cursor=_TxCursor(tx, {event.seq_no}))

    async def _last_event(
        self,
        cp_id: str,
        cursor: _TxCursor,
        event: TransactionEvent,
        raw: dict[str, Any],
        now: datetime,
        auth: AuthResult | None,
        grant: Grant | None,
        flags: tuple[InputFlag, ...] = (),
    ) -> TxEventResult:
        """The Ended event of a running transaction this process follows: its readings come
        from a coalesced look-up, the rest from memory."""
        tx = cursor.tx
        changes = self._changes(tx, event, auth, grant, flags=flags)
        fresh = _applied(tx, changes)
        readings = await self._readings.load(tx.id) or []
        energy = _energy(
            fresh.meter_start_wh,
            fresh.meter_stop_wh,
            fresh.start_at,
            fresh.stop_at or event.timestamp,
            [*readings, *tx_repo.register_points(event.samples)],
        )
        all_flags = with_energy(fresh.flags, energy)
        changes["flags"] = all_flags

        async def unit(w: WriteTx) -> None:
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
            tx_repo.update_later(w, tx.id, now, **changes, energy_wh=energy.energy_wh)
            profile_repo.end_with_transaction_later(w, cp_id, tx.id, now)

        await self._db.write(unit)
        ended = replace(fresh, energy_wh=energy.energy_wh, flags=all_flags)
        seen = {*cursor.seen, event.seq_no}
        return TxEventResult(tx.id, auth, False, ended=True, cursor=_TxCursor(ended, seen))

    def _changes(
        self,
        tx: Transaction,
        event: TransactionEvent,
        auth: AuthResult | None,
        grant: Grant | None,
        *,
        merge: bool = True,
        flags: tuple[InputFlag, ...] = (),
    ) -> dict[str, Any]:
        """What an event changes in a stored transaction (columns and values); without
        `merge`, only what its end changes (for a transaction just made from it). `flags`:
        what the event earns it (see _vet_event)."""
        bounds = register_bounds(event.samples)
        begin = _context_reading(event.samples, "Transaction.Begin")
        changes = _merge(tx, event, auth, begin, bounds) if merge else {}
        marked = flagged(tx.flags, *flags)
        if marked != tx.flags:
            changes["flags"] = marked
        if grant is not None and tx.cdr_token is None and "id_tag" in changes:
            changes.update(
                auth_method=grant.method.value,
                authorization_reference=grant.authorization_reference,
                cdr_token=dict(grant.cdr_token),
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
        return changes

    async def _any_event(
        self,
        cp_id: str,
        version: str,
        event: TransactionEvent,
        raw: dict[str, Any],
        now: datetime,
        auth: AuthResult | None,
        grant: Grant | None,
        reservations: list[Reservation],
        new_id: int,
        flags: tuple[InputFlag, ...] = (),
    ) -> TxEventResult:
        """The general path, in the writer: events in any order, of transactions in any
        state, read back from the database."""

        async def unit(w: WriteTx) -> TxEventResult:
            conn = await w.connection()
            tx = await tx_repo.find_by_ocpp_id(conn, cp_id, event.ocpp_transaction_id)
            decided = auth
            if tx is not None and await tx_repo.event_seen(conn, tx.id, event.seq_no):
                return TxEventResult(tx.id, decided, duplicate=True, cursor=await _cursor(conn, tx))
            if tx is None:
                bounds = register_bounds(event.samples)
                begin = _context_reading(event.samples, "Transaction.Begin")
                reservation_id = event.reservation_id
                if decided is not None and event.id_token is not None:
                    decided, reservation_id = self._reservation_at_start(
                        reservations,
                        cp_id,
                        event.evse_id,
                        event.id_token,
                        decided.parent_uid,
                        event.reservation_id,
                        decided,
                        now,
                    )
                tx_id = await tx_repo.create(
                    conn,
                    cp_id=cp_id,
                    ocpp_version=version,
                    evse_id=event.evse_id or 0,
                    connector_id=event.connector_id or (1 if event.evse_id else 0),
                    id_tag=event.id_token,
                    auth_status=None if decided is None else decided.status.value,
                    start_at=event.timestamp,
                    meter_start_wh=begin if begin is not None else _low(bounds),
                    reservation_id=reservation_id,
                    remote_start_id=event.remote_start_id,
                    grant=grant,
                    now=now,
                    ocpp_transaction_id=event.ocpp_transaction_id,
                    tx_id=new_id,
                    flags=flagged((), *flags),
                )
                if reservation_id is not None:
                    await reservation_repo.set_state(
                        conn, reservation_id, ReservationState.USED, now, transaction_id=tx_id
                    )
                created = await tx_repo.get(conn, tx_id)
                assert created is not None
                tx = created
                # Made from this very event: only its end can change it.
                changes = self._changes(tx, event, decided, grant, merge=False, flags=flags)
            else:
                changes = self._changes(tx, event, decided, grant, flags=flags)
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
                    flags=with_energy(fresh.flags, energy),
                )
            fresh = await tx_repo.get(await w.connection(), tx.id)
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
                if len(self._cursors) >= _MAX_OWNERS:
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
                        self._holdings.add(tag, tx.id, (cp_id, tx.evse_id))
                    else:
                        self._holdings.remove(tag, tx.id)
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
            self._started()
        elif result.ended:
            log.info(
                "transaction_stopped",
                charge_point_id=cp_id,
                transaction_id=result.transaction_id,
                offline=event.offline,
            )
            self._ended()

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

    async def _decide_in(
        self,
        cp_id: str,
        event: TransactionEvent,
        own_tx: int | None,
        token: Token | None,
        grant: Grant | None,
        now: datetime,
    ) -> AuthResult:
        """The decision for a token presented inside a transaction (its own transaction does
        not make it busy, nor one on the same EVSE); `grant`: another party's decision."""
        assert event.id_token is not None
        if event.token_type == NO_AUTHORIZATION:
            return AuthResult(AuthStatus.ACCEPTED)
        evse_id = event.evse_id
        busy = await self._over_limit(
            event.id_token,
            token,
            grant,
            lambda tx_id, place: tx_id != own_tx and place != (cp_id, evse_id),
        )
        if grant is not None:
            auth = grant.auth()
            return AuthResult(AuthStatus.CONCURRENT_TX) if auth.accepted and busy else auth
        auth = decide(token, now, busy_elsewhere=busy)
        if token is None and self.settings.allow_unknown_tags:
            auth = AuthResult(AuthStatus.ACCEPTED)
        return auth

    async def station_meter_values(
        self, cp_id: str, evse_id: int, samples: tuple[Sample, ...], raw: dict[str, Any]
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
        samples, flags = self._vet_samples(cp_id, "MeterValues", samples, now)
        marked = None
        if flags and tx_id is not None:
            marked = self._marked(await self._transaction(tx_id), flags)

        async def unit(w: WriteTx) -> None:
            tx_repo.add_samples_later(
                w,
                cp_id=cp_id,
                evse_id=evse_id,
                connector_id=1 if evse_id else 0,
                transaction_id=tx_id,
                samples=samples,
            )
            if marked is not None:
                tx_repo.update_later(w, marked.id, now, flags=marked.flags)

        await self._db.write(unit)
        self._keep_marked(marked)
        return tx_id

    def _note_evse(self, cp_id: str, evse_id: int, tx_id: int | None) -> None:
        if len(self._evse_tx) >= _MAX_OWNERS:
            self._evse_tx.clear()
        self._evse_tx[(cp_id, evse_id)] = tx_id

    async def device_report(self, cp_id: str, payload: dict[str, Any]) -> int | None:
        """Store (a part of) the device model a station reports (NotifyReport), within the
        charger's quota of messages kept as sent; returns how many variable attributes were
        stored, None when the part was over the quota."""
        if not self.quotas.keep(cp_id, "NotifyReport", payload):
            return None
        report_data: Sequence[dict[str, Any]] = payload.get("reportData") or []
        now = self._clock()

        async def unit(w: WriteTx) -> int:
            return device_repo.store_report_later(w, cp_id, report_data, now)

        return await self._db.write(unit)

    # --- reservations and remote starts ----------------------------------------------

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
    ) -> bool:
        """Store a message for staff, within the charger's quota; returns whether it was
        stored. `progress` names the charger field that tracks it: "firmware" or
        "diagnostics" (its status is payload["status"]), set over the quota too."""
        now = self._clock()
        keep = self.quotas.keep(cp_id, action, payload)
        if not keep and progress is None:
            return False

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            if keep:
                await event_repo.record(conn, cp_id, action, payload, now)
            if progress is not None:
                await cp_repo.update_fields(
                    conn,
                    cp_id,
                    now,
                    **{f"{progress}_status": payload.get("status"), f"{progress}_status_at": now},
                )

        await self._db.write(unit)
        return keep
