"""Tariffs, where they apply, the cost of sessions (live and final) and CDRs.

Loads what a session used (meter readings, status history, its tariff and location), prices
it with csms.core.cost and stores immutable CDRs; the pricing rules live in csms.core.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import structlog

from csms.config import Config, time_window
from csms.core import ocpi_pushes
from csms.core.authorization import AuthStatus, Token
from csms.core.charger import SIGNATURE_RELEASE, ChargePoint
from csms.core.clock import Clock, TimeWindow
from csms.core.cost import (
    Cost,
    Reading,
    StatusChange,
    TooManyPeriods,
    Usage,
    cost_to_ocpi,
    price_session,
)
from csms.core.errors import CdrTooLarge as CdrTooLarge
from csms.core.errors import CostUnavailable as CostUnavailable
from csms.core.errors import InvalidInput, one_line
from csms.core.errors import UnknownCdr as UnknownCdr
from csms.core.errors import UnknownLocation as UnknownLocation
from csms.core.errors import UnknownTariff as UnknownTariff
from csms.core.ids import first_duplicate, token_key
from csms.core.locations import ConnectorSpec, Location, evse_uid
from csms.core.ocmf import SignatureProblem, Verdict, cdr_signed_data
from csms.core.ocpi_locations import published_evse_code
from csms.core.ocpi_sessions import auth_method, session_token
from csms.core.parties import Party, owner_of
from csms.core.partners import InterfaceRole
from csms.core.retries import Backoff
from csms.core.status import ConnectorStatus
from csms.core.tariffs import (
    Tariff,
    TariffError,
    as_published,
    no_tariff,
    ocpi_datetime,
    parse_tariff,
    parse_tariffs,
    tariff_targets,
    tariff_to_ocpi,
)
from csms.core.transactions import (
    BillingState,
    ChargingState,
    InputFlag,
    SignatureState,
    Transaction,
    TransactionState,
    flagged,
)
from csms.core.versions import OcppVersion
from csms.gcpolicy import CollectorPause
from csms.services.meter_signatures import verify_transaction
from csms.storage import billing as billing_repo
from csms.storage import cdrs as cdr_repo
from csms.storage import charge_points as cp_repo
from csms.storage import commands as audit_repo
from csms.storage import locations as location_repo
from csms.storage import outbox as outbox_repo
from csms.storage import partners as partner_repo
from csms.storage import signed_values as signed_repo
from csms.storage import tariffs as tariff_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.cdrs import StoredCdr
from csms.storage.database import Database, WriteTx
from csms.storage.locations import EvseDetail
from csms.storage.signed_values import MeterKey, StoredSignedValue
from csms.storage.tariffs import Assignment, StoredTariff
from csms.storage.transactions import Metered, Value
from csms.workers import Worker

log = structlog.get_logger("csms.billing")

DEFAULT_TIME_ZONE = "UTC"
# Transactions settled per read.
BATCH = 100
# Shortest time between two passes of the billing worker (seconds).
PASS_GAP = 0.5
# Transactions whose inputs are read and whose CDRs are written together.
CHUNK = 20
# A transaction whose CDR cannot be built is tried again after 10 s, 20 s, 40 s ... (at
# most 15 minutes apart) and held for staff after this many failed attempts.
MAX_CDR_ATTEMPTS = 5
CDR_RETRY = Backoff(first=10.0, cap=900.0)
# Longest error text kept with a transaction.
MAX_ERROR = 300
# What a session costs where no tariff applies: nothing, in this currency.
FREE_CURRENCY = "EUR"
# Bounds of one CDR (billing.max_periods, billing.max_cdr_bytes).
MAX_PERIODS = 1000
MAX_CDR_BYTES = 1_000_000

# 1.6 statuses during a transaction: does the vehicle ask for power? OCPI (2.2.1 errata)
# counts parking as time the vehicle does not: SuspendedEVSE (the charger holds back, e.g.
# under a charging profile) is still charging time.
_DRAWING = {
    ConnectorStatus.CHARGING: True,
    ConnectorStatus.SUSPENDED_EVSE: True,
    ConnectorStatus.SUSPENDED_EV: False,
    ConnectorStatus.FINISHING: False,
}
# The charging state 2.0.1 transactions report, the same way.
_CHARGING_STATE = {
    ChargingState.CHARGING: True,
    ChargingState.SUSPENDED_EVSE: True,
    ChargingState.SUSPENDED_EV: False,
    ChargingState.EV_CONNECTED: False,
    ChargingState.IDLE: False,
}


@dataclass(frozen=True, slots=True)
class CdrLimits:
    """Bounds of one CDR: more charging periods, or more bytes, and the transaction is
    held for staff (HoldKind.TOO_LARGE) instead of billed; a start or stop outside the
    window of plausible times (a row stored before the window existed) is held as
    flagged."""

    max_periods: int = MAX_PERIODS
    max_bytes: int = MAX_CDR_BYTES
    window: TimeWindow = field(default_factory=TimeWindow)

    def plausible(self, tx: Transaction, now: datetime) -> bool:
        """Whether the transaction's stored times may be billed."""
        return self.window.holds(tx.start_at, now) and (
            tx.stop_at is None or self.window.holds(tx.stop_at, now)
        )


@dataclass(frozen=True, slots=True)
class _Failed:
    """A transaction whose CDR could not be built in this attempt, and why."""

    tx: Transaction
    error: Exception


@dataclass(frozen=True, slots=True)
class Identity:
    """Our OCPI identity, stamped on tariffs and CDRs."""

    country_code: str
    party_id: str

    @property
    def party(self) -> Party:
        return Party(self.country_code, self.party_id)


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What pricing a batch of transactions and writing their CDRs needs, by transaction id
    (samples, 2.0.1 events, 1.6 status changes) or by what they share."""

    metered: dict[int, Metered]
    # 2.0.1: the charging state of each event that reported one, with its time.
    states: dict[int, list[tuple[datetime, ChargingState]]]
    statuses: dict[int, list[tuple[datetime, ConnectorStatus]]]
    linked: dict[str, tuple[Location, ConnectorSpec]]
    assigned: dict[tuple[str, str], str]
    tariffs: dict[str, Tariff | Exception]
    tokens: dict[str, Token]
    chargers: dict[str, ChargePoint]
    details: dict[tuple[str, int], EvseDetail]
    # Eichrecht (read for CDRs only): the signed values of the transactions that have some,
    # and the meter keys of the (charger, EVSE) places that have one.
    signed: dict[int, list[StoredSignedValue]] = field(default_factory=dict)
    keys: dict[tuple[str, int], MeterKey] = field(default_factory=dict)
    # The ad-hoc assignments of the same candidates, read when a session was paid on the
    # spot (paid_on_the_spot).
    ad_hoc: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Made:
    """A CDR built for a transaction, not stored yet; `signature`: its signature state
    once billed (None: nothing was signed)."""

    tx: Transaction
    priced: Priced
    data: dict[str, Any]
    signature: SignatureState | None = None


class SignatureFailed(Exception):
    """A transaction's signed meter values failed verification: it is held, not billed."""

    def __init__(self, verdict: Verdict) -> None:
        assert verdict.problem is not None
        self.problem: SignatureProblem = verdict.problem
        self.detail = verdict.detail
        super().__init__(f"{verdict.problem.value}: {verdict.detail}")


def _carried(verdict: Verdict) -> Verdict:
    """What a released transaction's CDR carries: its begin and end records where it has
    both, even though a rule failed (the driver's own check then shows what staff saw)."""
    if verdict.begin is not None and verdict.end is not None:
        return verdict
    ordered = sorted(
        (r for r in verdict.records if r.pagination_context == "T"),
        key=lambda r: r.pagination_number,
    )
    if ordered and ordered[0].begins and ordered[-1].ends:
        return replace(verdict, begin=ordered[0], end=ordered[-1])
    return verdict


def _verifiable(value: StoredSignedValue) -> bool:
    """OCMF values, and values that do not say their encoding (1.6): another encoding
    (2.0.1 encodingMethod EDL, ...) is kept for staff but not verified here."""
    return value.encoding_method is None or value.encoding_method.upper() == "OCMF"


def paid_on_the_spot(tx: Transaction) -> bool:
    """A session started for a driver paying on the spot: its token, as the session and CDR
    name it, is an AD_HOC_USER (csms.services.payments starts it so)."""
    return tx.cdr_token is not None and tx.cdr_token.get("type") == "AD_HOC_USER"


@dataclass(frozen=True, slots=True)
class Priced:
    """A session's cost with what it was computed from."""

    cost: Cost
    tariff: Tariff | None
    location: Location | None
    spec: ConnectorSpec | None


def _time_zone(location: Location | None) -> ZoneInfo:
    name = location.time_zone if location is not None else DEFAULT_TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def readings_from(values: Iterable[Value]) -> tuple[Reading, ...]:
    """One Reading per timestamp: the energy register, active power and the highest phase
    current of that moment, from sampled values (timestamp, measurand, value, phase)."""
    by_time: dict[datetime, list[float | None]] = {}
    for at, measurand, value, phase in values:
        if value is None:
            continue
        slot = by_time.get(at)
        if slot is None:
            slot = by_time[at] = [None, None, None]
        if measurand == "Energy.Active.Import.Register" and not phase:
            slot[0] = value
        elif measurand == "Power.Active.Import" and not phase:
            slot[1] = value
        elif measurand == "Current.Import":
            slot[2] = value if slot[2] is None else max(slot[2], value)
    return tuple(Reading(at, e, p, c) for at, (e, p, c) in sorted(by_time.items()))


@dataclass(frozen=True, slots=True)
class Retries:
    """What happens to a transaction whose CDR cannot be built: tried again after
    `backoff`, held for staff after `max_attempts` failed attempts."""

    max_attempts: int = MAX_CDR_ATTEMPTS
    backoff: Backoff = CDR_RETRY


class HoldKind(StrEnum):
    """Why transactions are held, for the metric (the stored reason says more)."""

    CDR_FAILED = "cdr_failed"
    FLAGGED = "flagged"
    CREDITED = "credited"
    TOO_LARGE = "too_large"  # beyond CdrLimits
    SIGNATURE = "signature"  # its signed meter values failed verification (Eichrecht)


class BillingService:
    """Tariffs and CDRs. One per process (the CDR worker) or per CLI call."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        identity: Identity,
        retries: Retries | None = None,
        limits: CdrLimits | None = None,
        *,
        on_held: Sequence[Callable[[HoldKind], None]] = (),
        on_failed: Sequence[Callable[[], None]] = (),
        on_signature_held: Sequence[Callable[[str], None]] = (),
        signed_data_url: str = "",
    ) -> None:
        self._db = db
        self._clock = clock
        self.identity = identity
        self.retries = retries or Retries()
        self.limits = limits or CdrLimits()
        # Pricing runs in a worker thread. With a period bound raised above the default, a
        # session may take seconds to price, and the cyclic collector is paused meanwhile
        # (see there). Within the default bound a CDR prices in milliseconds: pausing the
        # collector as often as CDRs are made (150 a second at 2,000 session calls/s) left
        # it off most of the time, and its first collection after that stalled everyone
        # (1.3 s measured).
        self._pricing: contextlib.AbstractContextManager[None] = (
            CollectorPause() if self.limits.max_periods > MAX_PERIODS else contextlib.nullcontext()
        )
        # Called with the kind after a transaction was held (the metrics count them), and
        # after a CDR attempt failed.
        self.on_held: list[Callable[[HoldKind], None]] = list(on_held)
        self.on_failed: list[Callable[[], None]] = list(on_failed)
        # Called with the problem after a transaction was held for its signed values.
        self.on_signature_held: list[Callable[[str], None]] = list(on_signature_held)
        # A CDR's signed_data.url (`{cdr_id}` replaced when it is stored); "": none.
        self.signed_data_url = signed_data_url
        # Settles ended transactions soon after they end (woken by the charging service) and
        # at least every few seconds; started by the app (nothing is lost on a crash: the
        # billing state lives in the transaction row).
        # Woken by every stop; at most one pass each PASS_GAP seconds, so that a busy hour
        # is billed in batches (the reads and the write of a pass serve all of them).
        self.worker = Worker("billing", self._billing_pass, period=5.0, min_gap=PASS_GAP)
        # What a session costs where no tariff applies (parsed once).
        self._free_tariff: Tariff | None = None
        # Called after transactions were settled (billed, held or void) or a CDR credited
        # (the OCPI session publisher wakes up: final sessions carry the CDR's numbers).
        self.on_settled: list[Callable[[], None]] = []

    # --- tariffs -------------------------------------------------------------------

    async def import_tariffs(self, document: Any) -> tuple[int, int]:
        """Validate every tariff first; store all or nothing. Returns (created, updated)."""
        try:
            tariffs = parse_tariffs(
                document,
                country_code=self.identity.country_code,
                party_id=self.identity.party_id,
                now=self._clock(),
            )
        except TariffError as exc:
            raise InvalidInput(str(exc)) from None
        ids = [t.id for t in tariffs]
        duplicate = first_duplicate(ids)
        if duplicate is not None:
            raise InvalidInput(f"tariff {duplicate!r} appears twice in the file")
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[int, int]:
            conn = await w.connection()
            created = 0
            receivers = await _tariff_receivers(conn)
            ad_hoc = await tariff_repo.ad_hoc_only(conn, ids)
            for tariff in tariffs:
                data = tariff_to_ocpi(tariff)
                data["last_updated"] = ocpi_datetime(now)
                stored = await tariff_repo.get(conn, tariff.id)
                if stored is not None and _same_tariff(stored.data, data):
                    continue  # unchanged: neither its last_updated nor partners move
                if await tariff_repo.save(conn, tariff.id, tariff.currency, tariff.type, data, now):
                    created += 1
                pushed = {
                    **as_published(data, ad_hoc_only=tariff.id in ad_hoc),
                    "last_updated": ocpi_datetime(now),
                }
                for partner_id, url in receivers:
                    push = ocpi_pushes.tariff_put(url, self.identity.party, pushed)
                    await outbox_repo.enqueue(conn, partner_id, push, now)
            return created, len(tariffs) - created

        return await self._db.write(unit)

    async def tariffs(self) -> list[tuple[StoredTariff, list[Assignment]]]:
        async with self._db.read() as conn:
            stored = await tariff_repo.list_all(conn)
            assigned = await tariff_repo.assignments(conn, ad_hoc=None)
        return [(t, [a for a in assigned if a.tariff_id == t.id]) for t in stored]

    async def tariff(self, tariff_id: str) -> tuple[StoredTariff, list[Assignment]]:
        async with self._db.read() as conn:
            stored = await tariff_repo.get(conn, tariff_id)
            if stored is None:
                raise UnknownTariff(f"no tariff {tariff_id!r}")
            return stored, await tariff_repo.assignments(conn, tariff_id, ad_hoc=None)

    async def tariff_page(
        self,
        *,
        date_from: datetime | None,
        date_to: datetime | None,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """OCPI Tariff objects for partners, in creation order, with the total count.
        `last_updated` is the stored change time, the one the date filters compare."""
        async with self._db.read() as conn:
            stored, total = await tariff_repo.page(
                conn, date_from=date_from, date_to=date_to, offset=offset, limit=limit
            )
            ad_hoc = await tariff_repo.ad_hoc_only(conn, [t.id for t in stored])
        return [
            {**as_published(t.data, ad_hoc_only=t.id in ad_hoc), "last_updated": t.updated_at}
            for t in stored
        ], total

    async def remove_tariff(self, tariff_id: str) -> int:
        """Returns how many assignments went with it. Partners taking tariffs are told
        (DELETE) in the same write."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[bool, int]:
            conn = await w.connection()
            removed, assignments = await tariff_repo.remove(conn, tariff_id)
            if removed:
                for partner_id, url in await _tariff_receivers(conn):
                    push = ocpi_pushes.tariff_delete(url, self.identity.party, tariff_id)
                    await outbox_repo.enqueue(conn, partner_id, push, now)
            return removed, assignments

        removed, assignments = await self._db.write(unit)
        if not removed:
            raise UnknownTariff(f"no tariff {tariff_id!r}")
        return assignments

    async def assign(
        self,
        tariff_id: str,
        *,
        location: str | None = None,
        evse: str | None = None,
        connector: int | None = None,
        default: bool = False,
        ad_hoc: bool = False,
    ) -> str:
        """Make `tariff_id` apply to one target; returns a description of it. `ad_hoc`: for
        drivers who pay on the spot (csms.core.payments), beside the target's regular
        tariff."""
        chosen = sum(x is not None and x is not False for x in (location, evse, default))
        if chosen != 1:
            raise InvalidInput("choose one of --location, --evse or --default")
        if connector is not None and evse is None:
            raise InvalidInput("--connector needs --evse")
        async with self._db.read() as conn:
            if await tariff_repo.get(conn, tariff_id) is None:
                raise UnknownTariff(f"no tariff {tariff_id!r}")
            if location is not None and await location_repo.get(conn, location) is None:
                raise UnknownLocation(f"no location {location!r}")
            if evse is not None and not await self._evse_known(conn, evse):
                raise InvalidInput(
                    f"no EVSE {evse!r}: EVSE uids are CHARGER*EVSE, e.g. CP1*1 "
                    "(see `csms chargers show`)"
                )
        if default:
            scope, target, text = "default", "", "the default tariff"
        elif location is not None:
            scope, target, text = "location", location, f"location {location}"
        elif connector is not None:
            assert evse is not None
            scope, target, text = (
                "connector",
                f"{evse}#{connector}",
                f"{evse} connector {connector}",
            )
        else:
            assert evse is not None
            scope, target, text = "evse", evse, f"EVSE {evse}"
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            replaced = await tariff_repo.assigned_for(conn, [(scope, target)], ad_hoc=ad_hoc)
            concerned = {tariff_id, *replaced.values()}
            before = await tariff_repo.ad_hoc_only(conn, concerned)
            await tariff_repo.assign(conn, tariff_id, scope, target, now, ad_hoc=ad_hoc)
            await self._republish(conn, concerned, before, now)

        await self._db.write(unit)
        return f"{text}, for ad-hoc payment" if ad_hoc else text

    async def _republish(
        self, conn: Any, concerned: set[str], before: set[str], now: datetime
    ) -> None:
        """The tariffs an assignment made ad hoc only, or no longer so, changed for partners
        (their type): stamped changed now and pushed to those taking tariffs."""
        after = await tariff_repo.ad_hoc_only(conn, concerned)
        flipped = sorted(before ^ after)
        receivers = await _tariff_receivers(conn) if flipped else []
        for changed in flipped:
            stored = await tariff_repo.get(conn, changed)
            if stored is None:
                continue
            await tariff_repo.touch(conn, changed, now)
            pushed = {
                **as_published(stored.data, ad_hoc_only=changed in after),
                "last_updated": ocpi_datetime(now),
            }
            for partner_id, url in receivers:
                push = ocpi_pushes.tariff_put(url, self.identity.party, pushed)
                await outbox_repo.enqueue(conn, partner_id, push, now)

    async def ad_hoc_tariff(self, evse_uid: str, connector_id: int | None = None) -> Tariff | None:
        """The tariff a driver who pays on the spot at this EVSE (at one connector of it, or
        at the EVSE as a whole) is charged: its ad-hoc assignment (connector beats EVSE beats
        location beats the default), else None. An assigned tariff that cannot be read
        raises why (TariffError)."""
        async with self._db.read() as conn:
            place = await self._evse_of(conn, evse_uid)
            if place is None:
                return None
            linked = await location_repo.of_charger(conn, place[0])
            targets = tariff_targets(
                evse_uid, connector_id or 0, None if linked is None else linked[0].id
            )
            if connector_id is None:
                targets = targets[1:]  # no connector named: the EVSE's own and wider
            assigned = await tariff_repo.assigned_for(conn, targets, ad_hoc=True)
            tariffs = await self._read_tariffs(conn, set(assigned.values()))
        return self._first_assigned(assigned, tariffs, targets)

    async def _evse_of(self, conn: Any, uid: str) -> tuple[str, int] | None:
        """(charger, EVSE id) of an EVSE uid, or None when no charger has it."""
        cp_id, star, _ = uid.rpartition("*")
        connectors = await cp_repo.connectors_of(conn, [cp_id] if star else None)
        for c in connectors:
            if c.evse_id and evse_uid(c.charge_point_id, c.evse_id) == uid:
                return c.charge_point_id, c.evse_id
        return None

    async def _evse_known(self, conn: Any, uid: str) -> bool:
        # A plain uid names its charger; only a digest uid needs every charger's EVSEs.
        return await self._evse_of(conn, uid) is not None

    def _tariff_of(
        self,
        inputs: _Inputs,
        tx: Transaction,
        location: Location | None,
    ) -> Tariff | None:
        """Connector beats EVSE beats location beats the default (`inputs.assigned` holds the
        assignments of these candidates, `inputs.tariffs` the tariffs they name, or why one
        could not be read). A session paid on the spot (its token an AD_HOC_USER) is priced
        by the ad-hoc assignments first, then as anyone's."""
        candidates = tariff_targets(
            evse_uid(tx.charge_point_id, tx.evse_id),
            tx.connector_id,
            None if location is None else location.id,
        )
        tariffs = inputs.tariffs
        found = None
        if paid_on_the_spot(tx):
            found = self._first_assigned(inputs.ad_hoc, tariffs, candidates)
        return found or self._first_assigned(inputs.assigned, tariffs, candidates)

    @staticmethod
    def _first_assigned(
        assigned: dict[tuple[str, str], str],
        tariffs: dict[str, Tariff | Exception],
        candidates: list[tuple[str, str]],
    ) -> Tariff | None:
        for key in candidates:
            tariff_id = assigned.get(key)
            if tariff_id is None:
                continue
            found = tariffs.get(tariff_id)
            if isinstance(found, Exception):
                raise found
            if found is not None:
                return found
        return None

    async def _read_tariffs(self, conn: Any, ids: set[str]) -> dict[str, Tariff | Exception]:
        """The tariffs named, parsed; one that cannot be read or parsed is kept as the error
        (only the sessions it prices fail). One statement each: there are few."""
        found: dict[str, Tariff | Exception] = {}
        for tariff_id in sorted(ids):
            try:
                stored = await tariff_repo.get(conn, tariff_id)
                if stored is not None:
                    found[tariff_id] = parse_tariff(
                        stored.data,
                        country_code=self.identity.country_code,
                        party_id=self.identity.party_id,
                        now=stored.updated_at,
                    )
            except Exception as exc:  # noqa: BLE001 - the sessions it prices fail with it
                found[tariff_id] = exc
        return found

    # --- pricing -------------------------------------------------------------------

    async def price(self, tx_id: int, now: datetime | None = None) -> Priced:
        """The cost of a transaction: final when it has ended, else so far (`now`). Priced
        in a worker thread (the event loop keeps serving), within the CDR's period bound
        (TooManyPeriods); CostUnavailable when stored data defeats the arithmetic."""
        async with self._db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
            if tx is None:
                raise InvalidInput(f"no transaction {tx_id}")
            moment = now or self._clock()
            inputs = await self._inputs(conn, [tx], moment)
        try:
            with self._pricing:
                return await asyncio.to_thread(self._priced, tx, inputs, moment)
        except (ArithmeticError, ValueError) as exc:
            # Stored times or numbers beyond what datetime or Decimal can hold (the domain's
            # own refusals, such as TooManyPeriods or a TariffError, are neither).
            raise CostUnavailable(f"cost cannot be computed: {one_line(exc)}") from exc

    async def _inputs(
        self, conn: Any, txs: Sequence[Transaction], now: datetime, *, for_cdr: bool = False
    ) -> _Inputs:
        """What pricing these transactions and writing their CDRs needs (`for_cdr`: their
        signed values and meter keys too), read in a few statements for all of them."""
        ids = [tx.id for tx in txs]
        chargers = sorted({tx.charge_point_id for tx in txs})
        places = sorted({(tx.charge_point_id, tx.evse_id) for tx in txs})
        linked = await location_repo.of_chargers(conn, chargers)
        candidates = {
            key
            for tx in txs
            for key in tariff_targets(
                evse_uid(tx.charge_point_id, tx.evse_id),
                tx.connector_id,
                linked[tx.charge_point_id][0].id if tx.charge_point_id in linked else None,
            )
        }
        assigned = await tariff_repo.assigned_for(conn, sorted(candidates))
        ad_hoc: dict[tuple[str, str], str] = {}
        if any(paid_on_the_spot(tx) for tx in txs):
            ad_hoc = await tariff_repo.assigned_for(conn, sorted(candidates), ad_hoc=True)
        v201 = [tx.id for tx in txs if tx.ocpp_version == OcppVersion.V201]
        statuses: dict[int, list[tuple[datetime, ConnectorStatus]]] = {}
        for tx in txs:
            if tx.ocpp_version != OcppVersion.V201:
                statuses[tx.id] = await cp_repo.statuses_between(
                    conn, tx.charge_point_id, tx.evse_id, tx.start_at, tx.stop_at or now
                )
        tags = sorted({token_key(tx.id_tag) for tx in txs if tx.id_tag})
        return _Inputs(
            metered=await tx_repo.metered_of(conn, ids),
            states=await tx_repo.charging_states_of(conn, v201) if v201 else {},
            statuses=statuses,
            linked=linked,
            assigned=assigned,
            ad_hoc=ad_hoc,
            tariffs=await self._read_tariffs(conn, {*assigned.values(), *ad_hoc.values()}),
            tokens=await token_repo.get_many(conn, tags) if tags else {},
            chargers=await cp_repo.get_many(conn, chargers),
            details=await location_repo.evse_details(conn, places),
            signed=await signed_repo.signed_of(conn, ids) if for_cdr else {},
            keys=await signed_repo.meter_keys(conn, places) if for_cdr else {},
        )

    def _priced(self, tx: Transaction, inputs: _Inputs, now: datetime) -> Priced:
        location, spec = inputs.linked.get(tx.charge_point_id, (None, None))
        tariff = self._tariff_of(inputs, tx, location)
        usage = self._usage(tx, inputs, now)
        return Priced(
            price_session(
                tariff or self._free(),
                usage,
                _time_zone(location),
                max_periods=self.limits.max_periods,
            ),
            tariff,
            location,
            spec,
        )

    def _free(self) -> Tariff:
        if self._free_tariff is None:
            self._free_tariff = self._parse_free()
        return self._free_tariff

    def _parse_free(self) -> Tariff:
        # Its cost names no tariff: a CDR without a tariff says so (no `tariffs`, no period
        # `tariff_id`) rather than naming one that does not exist.
        return no_tariff(
            FREE_CURRENCY,
            country_code=self.identity.country_code,
            party_id=self.identity.party_id,
            now=self._clock(),
        )

    def _usage(self, tx: Transaction, inputs: _Inputs, now: datetime) -> Usage:
        end = tx.stop_at or now
        statuses: list[StatusChange] = []
        if tx.ocpp_version == OcppVersion.V201:
            for at, state in inputs.states.get(tx.id, ()):
                statuses.append(StatusChange(at, _CHARGING_STATE[state]))
            statuses.sort(key=lambda s: s.at)
        else:
            for at, status in inputs.statuses.get(tx.id, ()):
                if status in _DRAWING:
                    statuses.append(StatusChange(max(at, tx.start_at), _DRAWING[status]))
            if not statuses or statuses[0].at > tx.start_at:
                # A 1.6 transaction starts charging (Preparing -> Charging follows the start
                # within moments): the time before the first report is not parking.
                statuses.insert(0, StatusChange(tx.start_at, True))
        energy = tx.energy_wh if tx.state is TransactionState.COMPLETED else None
        return Usage(
            start=tx.start_at,
            end=max(end, tx.start_at),
            readings=readings_from(inputs.metered[tx.id].values if tx.id in inputs.metered else ()),
            statuses=tuple(statuses),
            energy_wh=energy,
        )

    # --- CDRs ----------------------------------------------------------------------

    async def bill_pending(self, limit: int = BATCH) -> int:
        """Build the CDRs of ended transactions that are due for it (never tried, or their
        retry time reached); returns how many were looked at. One whose CDR cannot be built
        is tried again later (CDR_RETRY) and, after `retries.max_attempts`, held for staff
        with the reason; either way it does not stand in the way of the others."""
        now = self._clock()
        async with self._db.read() as conn:
            pending = await billing_repo.due(conn, now, limit)
        if pending:
            await self._settle(pending)
            self._settled()
        return len(pending)

    async def bill(self, tx_id: int) -> Transaction:
        """Try to settle one transaction now if it is pending (staff just resolved it);
        returns it as it then stands. A failed attempt counts as any other."""
        async with self._db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
        if tx is None:
            raise InvalidInput(f"no transaction {tx_id}")
        if tx.billing == BillingState.PENDING.value:
            await self._settle([tx])
            self._settled()
        async with self._db.read() as conn:
            fresh = await tx_repo.get(conn, tx_id)
        assert fresh is not None
        return fresh

    async def _attempt_failed(self, tx: Transaction, exc: Exception) -> None:
        now = self._clock()
        attempts = tx.billing_attempts + 1
        error = one_line(exc, MAX_ERROR)
        for hook in self.on_failed:
            hook()
        if attempts >= self.retries.max_attempts:
            reason = f"{HoldKind.CDR_FAILED.value}: {error}"[:MAX_ERROR]

            async def hold(w: WriteTx) -> bool:
                return await billing_repo.hold(
                    await w.connection(), tx.id, reason, now, attempts=attempts, error=error
                )

            if await self._db.write(hold):
                log.warning(
                    "cdr_held",
                    transaction_id=tx.id,
                    charge_point_id=tx.charge_point_id,
                    attempts=attempts,
                    reason=reason,
                )
                self._held(HoldKind.CDR_FAILED)
            return
        retry_at = self.retries.backoff.next_at(attempts, now)

        async def failed(w: WriteTx) -> bool:
            return await billing_repo.attempt_failed(
                await w.connection(), tx.id, attempts, error, retry_at
            )

        if await self._db.write(failed):
            log.warning(
                "cdr_failed",
                transaction_id=tx.id,
                charge_point_id=tx.charge_point_id,
                attempts=attempts,
                error=error,
                retry_at=retry_at.isoformat(),
                # The first failure carries the traceback; the retries only what failed.
                exc_info=exc if attempts == 1 else None,
            )

    def _held(self, kind: HoldKind) -> None:
        for hook in self.on_held:
            hook(kind)

    def _settled(self) -> None:
        for hook in self.on_settled:
            hook()

    async def _settle(self, txs: Sequence[Transaction]) -> None:
        """Settle pending transactions: refused ones are void (one write), flagged ones
        held, the others get their CDR, a chunk at a time (_bill_chunk)."""
        now = self._clock()
        void, held, billable = [], [], []
        for tx in txs:
            if tx.auth_status not in (None, AuthStatus.ACCEPTED.value):
                void.append(tx)
            elif tx.flags or tx.energy_wh is None or not self.limits.plausible(tx, now):
                held.append(tx)
            else:
                billable.append(tx)
        if void:
            await self._void(void, now)
        for tx in held:
            await self._hold_flagged(tx, now)
        for start in range(0, len(billable), CHUNK):
            await self._bill_chunk(billable[start : start + CHUNK], now)

    async def _bill_chunk(self, billable: Sequence[Transaction], now: datetime) -> None:
        """CDRs for a few transactions: their inputs read together, their CDRs written in one
        write (should that fail, each is tried on its own, so that one that cannot be read,
        priced or stored fails alone and is retried later)."""
        try:
            results = await self._cdrs(billable, now)
        except Exception:  # noqa: BLE001 - the same work, one at a time, isolates the cause
            results = []
            for tx in billable:
                try:
                    results += await self._cdrs([tx], now)
                except Exception as exc:  # noqa: BLE001 - recorded by _attempt_failed
                    results.append(_Failed(tx, exc))
        made = [r for r in results if isinstance(r, _Made)]
        for failed in results:
            if not isinstance(failed, _Failed):
                continue
            if isinstance(failed.error, SignatureFailed):
                await self._hold_signature(failed.tx, failed.error, now)
            elif isinstance(failed.error, TooManyPeriods | CdrTooLarge):
                await self._hold_too_large(failed.tx, failed.error, now)
            else:
                await self._attempt_failed(failed.tx, failed.error)
        if not made:
            return
        try:
            stored = await self._store(made, now)
        except Exception:  # noqa: BLE001 - each on its own, as above
            stored = []
            for one in made:
                try:
                    stored += await self._store([one], now)
                except Exception as exc:  # noqa: BLE001 - recorded by _attempt_failed
                    await self._attempt_failed(one.tx, exc)
        for cdr_id, one in stored:
            log.info(
                "cdr_created",
                cdr_id=cdr_id,
                transaction_id=one.tx.id,
                charge_point_id=one.tx.charge_point_id,
                total_excl_vat=str(one.priced.cost.total_cost.excl_vat),
                currency=one.priced.cost.currency,
            )

    async def _void(self, txs: Sequence[Transaction], now: datetime) -> None:
        """The token was refused (the charger was told to stop): nobody to bill."""

        async def unit(w: WriteTx) -> None:
            for tx in txs:
                tx_repo.update_later(
                    w, tx.id, now, billing=BillingState.VOID.value, **billing_repo.cleared()
                )

        await self._db.write(unit)
        for tx in txs:
            log.info("cdr_not_made", transaction_id=tx.id, auth_status=tx.auth_status)

    async def _hold_flagged(self, tx: Transaction, now: datetime) -> None:
        flags = tx.flags
        if not self.limits.plausible(tx, now):
            flags = flagged(flags, InputFlag.IMPLAUSIBLE_TIMESTAMP)
        reason = f"{HoldKind.FLAGGED.value}: " + (",".join(flags) or "no energy")
        await self._hold(tx, HoldKind.FLAGGED, reason, now, flags=list(flags) or None)

    async def _hold_too_large(self, tx: Transaction, error: Exception, now: datetime) -> None:
        """Beyond the CDR's bounds: held for staff at once (trying again changes nothing
        until the bound is raised; `csms transactions resolve ID --retry` then)."""
        bound = (
            "billing.max_periods" if isinstance(error, TooManyPeriods) else "billing.max_cdr_bytes"
        )
        reason = f"{HoldKind.TOO_LARGE.value}: {error} ({bound})"[:MAX_ERROR]
        await self._hold(tx, HoldKind.TOO_LARGE, reason, now)

    async def _hold_signature(
        self, tx: Transaction, failed: SignatureFailed, now: datetime
    ) -> None:
        """Its signed values failed verification: held until staff release it (or mend what
        failed, e.g. the meter's key, and try again)."""
        problem = f"{failed.problem.value}: {failed.detail}"
        reason = f"{HoldKind.SIGNATURE.value}: {problem}"[:MAX_ERROR]
        if await self._hold(tx, HoldKind.SIGNATURE, reason, now, signature_problem=problem):
            for hook in self.on_signature_held:
                hook(failed.problem.value)

    async def _hold(
        self,
        tx: Transaction,
        kind: HoldKind,
        reason: str,
        now: datetime,
        signature_problem: str | None = None,
        **fields: Any,
    ) -> bool:
        """Hold a transaction for staff with `reason` (once: a second hold changes nothing);
        whether it was held now."""

        async def hold(w: WriteTx) -> bool:
            return await billing_repo.hold(
                await w.connection(), tx.id, reason, now, signature_problem=signature_problem
            )

        if await self._db.write(hold):
            log.warning(
                "cdr_held",
                transaction_id=tx.id,
                charge_point_id=tx.charge_point_id,
                reason=reason,
                **fields,
            )
            self._held(kind)
            return True
        return False

    async def _cdrs(self, txs: Sequence[Transaction], now: datetime) -> list[_Made | _Failed]:
        """The CDR objects of these transactions (without id and last_updated), or why one
        could not be made. Inputs are read together; pricing is CPU and runs in a worker
        thread, so that chargers are answered meanwhile."""
        async with self._db.read() as conn:
            inputs = await self._inputs(conn, txs, now, for_cdr=True)
        with self._pricing:
            return await asyncio.to_thread(self._build_all, txs, inputs, now)

    def _build_all(
        self, txs: Sequence[Transaction], inputs: _Inputs, now: datetime
    ) -> list[_Made | _Failed]:
        """(In a worker thread.) Each transaction's CDR; one that fails fails alone."""
        out: list[_Made | _Failed] = []
        for tx in txs:
            try:
                out.append(self._build(tx, inputs, now))
            except Exception as exc:  # noqa: BLE001 - the caller records it for this one
                out.append(_Failed(tx, exc))
        return out

    def _build(self, tx: Transaction, inputs: _Inputs, now: datetime) -> _Made:
        signature, signed_data = self._signature(tx, inputs)
        priced = self._priced(tx, inputs, now)
        token = inputs.tokens.get(token_key(tx.id_tag)) if tx.id_tag else None
        data = self._cdr_object(
            tx,
            priced,
            token,
            inputs.chargers.get(tx.charge_point_id),
            signed_data,
            inputs.details.get((tx.charge_point_id, tx.evse_id)),
        )
        size = len(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
        if size > self.limits.max_bytes:
            raise CdrTooLarge(
                f"the CDR would take {size} bytes, more than the {self.limits.max_bytes} allowed"
            )
        return _Made(tx, priced, data, signature)

    def _signature(
        self, tx: Transaction, inputs: _Inputs
    ) -> tuple[SignatureState | None, dict[str, Any] | None]:
        """(Eichrecht) A transaction with signed values, or of a meter with a key, is
        verified; SignatureFailed when a rule fails, unless staff released it (then it is
        billed anyway, its CDR carrying the signed data where the records allow). Returns
        its signature state and its CDR's OCPI signed_data."""
        values = inputs.signed.get(tx.id, ())
        key = inputs.keys.get((tx.charge_point_id, tx.evse_id))
        if not values and key is None:
            return None, None
        public_key = None if key is None else key.public_key
        verdict = verify_transaction(
            [v.data for v in values if _verifiable(v)], public_key, billed_wh=tx.energy_wh
        )
        released = tx.signature_state == SignatureState.RELEASED.value
        if not verdict.ok and not released:
            raise SignatureFailed(verdict)
        url = self.signed_data_url or None
        if released:
            return SignatureState.RELEASED, cdr_signed_data(_carried(verdict), public_key, url=url)
        return SignatureState.VERIFIED, cdr_signed_data(verdict, public_key, url=url)

    async def _store(self, made: Sequence[_Made], now: datetime) -> list[tuple[str, _Made]]:
        """Store CDRs in one write (numbered in order), for the transactions still pending;
        returns (CDR id, what was made) of those stored."""

        async def unit(w: WriteTx) -> list[tuple[str, _Made]]:
            conn = await w.connection()
            # Ours alone until this write commits (another node's billing skips them).
            claimed = await billing_repo.claim(conn, [m.tx.id for m in made])
            if not claimed:
                return []
            seq = await cdr_repo.next_seq(conn)
            stored = []
            for one in made:
                if one.tx.id not in claimed:
                    continue  # another worker or staff got there first
                cdr_id = self._cdr_id(seq)
                data = {**one.data, "id": cdr_id, "last_updated": ocpi_datetime(now)}
                _signed_data_url(data, cdr_id)
                cdr_repo.add_later(w, self._stored(seq, cdr_id, one.tx, one.priced.cost, data, now))
                signature = {} if one.signature is None else {"signature_state": one.signature}
                tx_repo.update_later(
                    w,
                    one.tx.id,
                    now,
                    billing=BillingState.BILLED.value,
                    **signature,
                    **billing_repo.cleared(),
                )
                stored.append((cdr_id, one))
                seq += 1
            return stored

        return await self._db.write(unit)

    def _cdr_id(self, seq: int) -> str:
        return f"{self.identity.country_code}{self.identity.party_id}{seq:010d}"

    def _stored(
        self,
        seq: int,
        cdr_id: str,
        tx: Transaction,
        cost: Cost,
        data: dict[str, Any],
        now: datetime,
        *,
        credit_of: StoredCdr | None = None,
        reason: str | None = None,
    ) -> StoredCdr:
        sign = Decimal(-1) if credit_of is not None else Decimal(1)
        incl = cost.total_cost.incl_vat
        return StoredCdr(
            seq=seq,
            id=cdr_id,
            transaction_id=tx.id,
            charge_point_id=tx.charge_point_id,
            start_at=tx.start_at,
            end_at=tx.stop_at or now,
            currency=cost.currency,
            total_excl_vat=sign * cost.total_cost.excl_vat,
            total_incl_vat=None if incl is None else sign * incl,
            energy_wh=tx.energy_wh or 0,
            credit=credit_of is not None,
            credit_reference_id=None if credit_of is None else credit_of.id,
            reason=reason,
            data=data,
            created_at=now,
        )

    def _cdr_object(
        self,
        tx: Transaction,
        priced: Priced,
        token: Token | None,
        charger: Any,
        signed_data: dict[str, Any] | None,
        detail: EvseDetail | None,
    ) -> dict[str, Any]:
        """The OCPI 2.2.1 CDR (without id and last_updated, set when stored). Its token
        is owned by the token's party (us for our own and unknown tokens); its location
        names the EVSE and connector as the location publisher shows them (`detail`: what
        staff said about the EVSE)."""
        cost = priced.cost
        owner = owner_of(token.origin) if token is not None else None
        if owner == self.identity.party:
            owner = None
        data: dict[str, Any] = {
            "country_code": self.identity.country_code,
            "party_id": self.identity.party_id,
            # One formatter for every DateTime of the CDR (as of the Session): periods keep
            # their milliseconds, so start and end must too, or a short session's last
            # period would start after the end.
            "start_date_time": ocpi_datetime(tx.start_at),
            "end_date_time": ocpi_datetime(max(tx.stop_at or tx.start_at, tx.start_at)),
            "session_id": str(tx.id),
            "cdr_token": session_token(
                tx, owner or self.identity.party, token.type if token else None
            ),
            "auth_method": auth_method(tx, whitelisted=owner is not None).value,
            "currency": cost.currency,
            **cost_to_ocpi(cost),
        }
        if tx.authorization_reference:
            data["authorization_reference"] = tx.authorization_reference[:36]
        if priced.location is not None and priced.spec is not None:
            code = published_evse_code(
                detail.evse_code if detail is not None else None,
                self.identity.country_code,
                self.identity.party_id,
                tx.charge_point_id,
                tx.evse_id,
            )
            spec = detail.spec(priced.spec) if detail is not None else priced.spec
            data["cdr_location"] = priced.location.ocpi_cdr_location(
                evse_uid(tx.charge_point_id, tx.evse_id), code, str(tx.connector_id), spec
            )
        if priced.tariff is not None:
            tariff = tariff_to_ocpi(priced.tariff)
            data["tariffs"] = [tariff]
        meter = getattr(charger, "meter_serial", None)
        if meter:
            data["meter_id"] = str(meter)[:255]
        if signed_data is not None:
            data["signed_data"] = signed_data
        return data

    async def cdrs(
        self,
        *,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        cp_id: str | None = None,
        limit: int | None = None,
    ) -> list[StoredCdr]:
        async with self._db.read() as conn:
            return await cdr_repo.listing(
                conn, date_from=date_from, date_to=date_to, cp_id=cp_id, limit=limit
            )

    async def cdrs_of(self, tx_id: int) -> list[StoredCdr]:
        async with self._db.read() as conn:
            return await cdr_repo.of_transaction(conn, tx_id)

    async def cdr(self, cdr_id: str) -> StoredCdr:
        async with self._db.read() as conn:
            found = await cdr_repo.get(conn, cdr_id)
        if found is None:
            raise UnknownCdr(f"no CDR {cdr_id!r}")
        return found

    async def credit(self, cdr_id: str, reason: str | None) -> tuple[StoredCdr, StoredCdr]:
        """Cancel a CDR with a credit CDR (negated totals); the transaction can then be
        billed again (`csms transactions resolve`). Returns (original, credit)."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[StoredCdr, StoredCdr]:
            conn = await w.connection()
            original = await cdr_repo.get(conn, cdr_id)
            if original is None:
                raise UnknownCdr(f"no CDR {cdr_id!r}")
            if original.credit:
                raise InvalidInput(f"{cdr_id} is itself a credit CDR")
            already = await cdr_repo.credited(conn, cdr_id)
            if already is not None:
                raise InvalidInput(f"{cdr_id} was already credited by {already.id}")
            tx = await tx_repo.get(conn, original.transaction_id)
            assert tx is not None
            seq = await cdr_repo.next_seq(conn)
            credit_id = self._cdr_id(seq)
            data = _negated(original.data)
            data.update(
                id=credit_id,
                credit=True,
                credit_reference_id=original.id,
                last_updated=ocpi_datetime(now),
            )
            if reason:
                data["remark"] = reason[:255]
            credit = StoredCdr(
                seq=seq,
                id=credit_id,
                transaction_id=original.transaction_id,
                charge_point_id=original.charge_point_id,
                start_at=original.start_at,
                end_at=original.end_at,
                currency=original.currency,
                total_excl_vat=-original.total_excl_vat,
                total_incl_vat=None
                if original.total_incl_vat is None
                else -original.total_incl_vat,
                energy_wh=original.energy_wh,
                credit=True,
                credit_reference_id=original.id,
                reason=reason,
                data=data,
                created_at=now,
            )
            await cdr_repo.add(conn, credit)
            # The transaction waits for staff: resolve it to issue a corrected CDR.
            await billing_repo.hold(
                conn,
                tx.id,
                f"{HoldKind.CREDITED.value} by {credit_id}" + (f": {reason}" if reason else ""),
                now,
                only_pending=False,
            )
            return original, credit

        done = await self._db.write(unit)
        self._held(HoldKind.CREDITED)
        self._settled()
        return done

    async def resolve(
        self,
        tx_id: int,
        *,
        energy_wh: int | None = None,
        void: bool = False,
        retry: bool = False,
        release_signature: bool = False,
        reason: str | None = None,
        requested_by: str | None = None,
    ) -> Transaction:
        """Staff settle a held transaction: with the right energy (it is then billed), as
        void (no CDR), or, once what made its CDR fail is mended, billed again as it is
        (`retry`; signed values are verified again). Its past attempts and hold are
        forgotten. `release_signature`: one whose signed meter values failed verification
        is billed without the check, which the audit log records with who and why."""
        if sum((energy_wh is not None, void, retry, release_signature)) != 1:
            raise InvalidInput("give --energy-wh N, --void, --retry or --release-signature")
        if release_signature and not (reason and reason.strip()):
            raise InvalidInput("--release-signature needs --reason TEXT (it goes to the audit log)")
        if energy_wh is not None and energy_wh < 0:
            raise InvalidInput("--energy-wh must not be negative")
        now = self._clock()

        async def unit(w: WriteTx) -> Transaction:
            conn = await w.connection()
            tx = await tx_repo.get(conn, tx_id)
            if tx is None:
                raise InvalidInput(f"no transaction {tx_id}")
            if tx.active:
                raise InvalidInput(f"transaction {tx_id} is still running")
            if tx.billing == BillingState.BILLED.value:
                live = [c for c in await cdr_repo.of_transaction(conn, tx_id) if not c.credit]
                uncredited = [c for c in live if await cdr_repo.credited(conn, c.id) is None]
                if uncredited:
                    raise InvalidInput(
                        f"transaction {tx_id} is billed by {uncredited[-1].id}: "
                        "credit it first (`csms cdrs credit`)"
                    )
            if release_signature:
                await self._release(conn, tx, (reason or "").strip(), requested_by, now)
            elif retry and (tx.flags or tx.energy_wh is None):
                raise InvalidInput(
                    f"transaction {tx_id} has flagged meter data "
                    f"({','.join(tx.flags) or 'no energy'}): give --energy-wh N or --void"
                )
            if release_signature:
                pass
            elif void:
                await tx_repo.update_fields(
                    conn, tx_id, now, billing=BillingState.VOID.value, **billing_repo.cleared()
                )
            elif retry:
                await tx_repo.update_fields(
                    conn, tx_id, now, billing=BillingState.PENDING.value, **billing_repo.cleared()
                )
            else:
                await tx_repo.update_fields(
                    conn,
                    tx_id,
                    now,
                    energy_wh=energy_wh,
                    flags=None,
                    billing=BillingState.PENDING.value,
                    **billing_repo.cleared(),
                )
            fresh = await tx_repo.get(conn, tx_id)
            assert fresh is not None
            return fresh

        resolved = await self._db.write(unit)
        log.info(
            "transaction_resolved",
            transaction_id=tx_id,
            energy_wh=energy_wh,
            void=void,
            retry=retry,
            release_signature=release_signature,
        )
        self.wake()
        return resolved

    async def _release(
        self,
        conn: Any,
        tx: Transaction,
        reason: str,
        requested_by: str | None,
        now: datetime,
    ) -> None:
        """(In resolve's write.) A transaction held for its signed values goes to billing
        without the check; the audit log and the log say who released it, over what, why."""
        if (
            tx.billing != BillingState.HELD.value
            or tx.signature_state != SignatureState.FAILED.value
        ):
            raise InvalidInput(
                f"transaction {tx.id} is not held for its signed meter values "
                f"(billing {tx.billing or 'running'}, signature {tx.signature_state or 'none'})"
            )
        if tx.flags or tx.energy_wh is None:
            raise InvalidInput(
                f"transaction {tx.id} has flagged meter data "
                f"({','.join(tx.flags) or 'no energy'}): give --energy-wh N or --void"
            )
        await tx_repo.update_fields(
            conn,
            tx.id,
            now,
            billing=BillingState.PENDING.value,
            signature_state=SignatureState.RELEASED.value,
            **billing_repo.cleared(),
        )
        entry = await audit_repo.record_change(
            conn,
            cp_id=tx.charge_point_id,
            command=SIGNATURE_RELEASE,
            params={
                "transaction_id": tx.id,
                "problem": tx.signature_problem,
                "reason": reason,
            },
            message=(
                f"transaction {tx.id} released for billing despite: {tx.signature_problem}"
                f" ({reason})"
            )[:500],
            source="cli",
            requested_by=requested_by,
            now=now,
        )
        log.warning(
            "signature_released",
            transaction_id=tx.id,
            charge_point_id=tx.charge_point_id,
            problem=tx.signature_problem,
            reason=reason,
            requested_by=requested_by,
            audit_id=entry,
        )

    # --- the worker ----------------------------------------------------------------

    def wake(self) -> None:
        self.worker.wake()

    async def _billing_pass(self) -> None:
        """One pass of the worker: every transaction due for billing, a batch at a time."""
        while await self.bill_pending() >= BATCH:
            pass


async def _tariff_receivers(conn: Any) -> list[tuple[int, str]]:
    """(partner id, tariffs endpoint URL) of the registered partners taking tariffs."""
    found = await partner_repo.registered_with_endpoint(conn, "tariffs", InterfaceRole.RECEIVER)
    return [(partner.id, url) for partner, url in found]


def _same_tariff(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a stored tariff says what `new` says (last_updated aside)."""
    return {k: v for k, v in stored.items() if k != "last_updated"} == {
        k: v for k, v in new.items() if k != "last_updated"
    }


# OCPI 2.2.1 SignedData.url: string(512).
MAX_SIGNED_URL = 512


def _signed_data_url(data: dict[str, Any], cdr_id: str) -> None:
    """A CDR's signed_data.url with `{cdr_id}` replaced by its id (left out beyond OCPI's
    512 characters)."""
    signed = data.get("signed_data")
    if not isinstance(signed, dict) or "url" not in signed:
        return
    url = str(signed["url"]).replace("{cdr_id}", cdr_id)
    signed = dict(signed)
    if len(url) > MAX_SIGNED_URL:
        del signed["url"]
    else:
        signed["url"] = url
    data["signed_data"] = signed


def _negated(data: dict[str, Any]) -> dict[str, Any]:
    """A CDR's cost fields with the sign turned (for a credit CDR)."""
    out = dict(data)
    for key in (
        "total_cost",
        "total_fixed_cost",
        "total_energy_cost",
        "total_time_cost",
        "total_parking_cost",
        "total_reservation_cost",
    ):
        price = out.get(key)
        if isinstance(price, dict):
            out[key] = {k: -v if isinstance(v, int | float) else v for k, v in price.items()}
    return out


def billing_retries(config: Config) -> Retries:
    cfg = config.billing
    return Retries(cfg.max_attempts, Backoff(cfg.retry_delay, cfg.retry_max_delay))


def billing_limits(config: Config) -> CdrLimits:
    return CdrLimits(
        config.billing.max_periods, config.billing.max_cdr_bytes, time_window(config.ocpp)
    )
