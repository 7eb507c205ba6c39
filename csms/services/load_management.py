"""The load manager: shares each site's grid connection among the charging sessions below
it and tells the chargers (smart charging, both OCPP versions through the command
service).

Every `poll_interval` seconds, and at once when a session starts or stops or a status
changes on this process, it reads the sites (again only when staff changed them), the
running sessions of the linked chargers with their newest meter readings, the caps, needs
and prices, and computes each session's share with csms.core.allocation. A share that
changed goes to the charger as a TxProfile at the manager's stack level (decreases
before increases, so that a site stays under its limit while shares move); a charger
gets a TxDefaultProfile with its safe share (its part of every node above it if all
its neighbours charged) when it boots. A charger that refuses TxProfiles is told a
station maximum instead (ChargePointMaxProfile / ChargingStationMaxProfile); one that
refuses that too, `attempts` times, is left unmanaged: its rated current is reserved
from the budget, and staff are told (log event, metric, `csms sites show`).

A session with a departure time and an energy need on a site with prices charges in the
cheapest hours before its departure (csms.core.price_plan) and waits at 0 A otherwise.
Caps (demand response, staff or OpenADR) lower the site's limit while they last.

It runs where the charging singletons run (one process per database); readings and
sessions of chargers connected to other nodes reach it through the database. Where one
process is all there is (SQLite), it keeps the chargers' states and sessions between looks
and reads again only the chargers whose sessions, status or boot changed (`touched`), and
all of them every `interval` seconds: a busy site's look costs what changed, not what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as day_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from csms.config import SmartChargingConfig
from csms.core.allocation import Allocation, AllocationState, Demand, SiteNode, allocate
from csms.core.clock import Clock
from csms.core.command_requests import ProfileSetRequest
from csms.core.commands import (
    ChargingProfile,
    ClearChargingProfile,
    Outcome,
    ProfilePurpose,
    SetChargingProfile,
)
from csms.core.metering import Sample
from csms.core.price_plan import PriceSlot, charging_at, daily_slots, next_change, plan_windows
from csms.core.sites import (
    ROOT,
    Cap,
    ChargingNeed,
    Link,
    ProfileMode,
    Share,
    SiteTree,
    effective_a,
)
from csms.core.waiting import TimeSlice, wait_event
from csms.metrics import Family, labels
from csms.services.commands import CommandService
from csms.services.commands.base import Requester
from csms.storage import load_management as lm_repo
from csms.storage import sites as site_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, DatabaseClosed, WriteTx

log = structlog.get_logger("csms.load")

LOAD_MANAGER = Requester("csms", "load-manager")

# Changes smaller than these are not worth a message to the charger (see _differs).
HYSTERESIS_A = 0.5
RAISE_MIN_A = 1.0
RAISE_MIN_SHARE = 0.1
# Shares written at most at once (a burst of starts is recorded over several writes).
STORE_ROWS = 200
# Sessions from which a site's allocation runs in a thread (see _plan).
THREAD_DEMANDS = 200
# Profiles sent at once (each waits for its charger's answer; the others queue).
SENDS_IN_FLIGHT = 32
# Current an EV leaves unused, kept for it above what it draws before the rest is lent.
LEND_MARGIN_A = 2.0
# A phase whose current is below this while another one's is above ONE_PHASE_A is unused:
# the EV charges on one phase.
IDLE_PHASE_A = 0.5
ONE_PHASE_A = 1.0


@dataclass(slots=True)
class _Sent:
    """What a charger accepted for a session (or, `max` mode, for itself), and when."""

    limit_a: float
    at: datetime
    profile_id: int | None = None
    # Not sent: the session charges at its charger's TxDefaultProfile (this charger's).
    by_default: str | None = None


@dataclass(slots=True)
class _Charger:
    """What the load manager remembers of a linked charger."""

    # How it is told: TX (TxProfiles) or MAX (a station maximum), learnt in AUTO mode.
    mode: ProfileMode = ProfileMode.TX
    refusals: int = 0
    # The boot its TxDefaultProfile (or station maximum) was accepted for, and the limit.
    default_boot: datetime | None = None
    default_a: float | None = None
    max_sent: _Sent | None = None


@dataclass(frozen=True, slots=True)
class _Session:
    """A running session as the allocation sees it."""

    transaction_id: int
    charge_point_id: str
    evse_id: int
    node: str
    phases: tuple[int, ...]
    max_a: float
    priority: int
    measured_a: float | None
    managed: bool
    # The transaction's id on the wire (2.0.1 transactionId; 1.6: ours).
    wire_transaction_id: str


@dataclass(frozen=True, slots=True)
class _Look:
    """What one look read, for every site: the linked chargers' states, the running
    sessions' newest readings, needs and token priorities, and when."""

    states: Mapping[str, lm_repo.ChargerState]
    readings: Mapping[int, lm_repo.LastReading]
    needs: Mapping[int, ChargingNeed]
    priorities: Mapping[int, int]
    now: datetime
    slicer: TimeSlice
    # Alone, between full reads, with no change by staff: a site with room to spare may
    # take its starts and stops without a new allocation (_Slack); `dirty` are the chargers
    # read again for this look.
    incremental: bool = False
    dirty: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Plan:
    """One site's allocation: each session's share and why, the chargers' safe shares."""

    sessions: list[_Session]
    targets: dict[int, float]
    reasons: dict[int, str]
    allocation: Allocation
    limit_a: float
    defaults: dict[str, float]
    wake: bool  # a price window opens or closes before the next poll
    # Room to spare: every session gets its own maximum (see _Slack).
    slack: _Slack | None = None
    # A plan made from the last one (_steady_plan): only these chargers may need telling.
    only: frozenset[str] | None = None


@dataclass(slots=True)
class _Slack:
    """A site with room to spare: at its last allocation every session got its own maximum
    and no node was over its limit, with no cap, price schedule, charging need, lending, pause or
    unmanaged charger in play. Until that changes, a session that starts gets its maximum
    if it still fits under every node on its way, and a session that ends frees its
    share: nobody else's share moves, so the others are neither allocated nor told again
    (a start or stop costs the sessions it concerns, not all of the site's). Readings
    change nothing here: with room to spare nobody needs what another does not draw."""

    sessions: dict[int, _Session]
    # node -> A allocated on L1, L2, L3 (each session's maximum, incl. descendants)
    load: dict[str, list[float]]
    limits: Mapping[str, float]
    parents: Mapping[str, str | None]
    defaults: dict[str, float]
    evses: dict[str, int]  # the EVSE count each linked charger's safe share assumed
    state: AllocationState
    limit_a: float
    tree: SiteTree

    def fits(self, s: _Session) -> bool:
        node: str | None = s.node
        while node is not None:
            load, limit = self.load.get(node), self.limits[node]
            for phase in s.phases:
                if (0.0 if load is None else load[phase]) + s.max_a > limit + 1e-9:
                    return False
            node = self.parents.get(node)
        return True

    def add(self, s: _Session, sign: float = 1.0) -> None:
        node: str | None = s.node
        while node is not None:
            load = self.load.setdefault(node, [0.0, 0.0, 0.0])
            for phase in s.phases:
                load[phase] += sign * s.max_a
            node = self.parents.get(node)


@dataclass(frozen=True, slots=True)
class SitePicture:
    """The latest allocation of one site, for /metrics."""

    site_id: str
    limit_a: float
    load: tuple[float, float, float]


class LoadManager:
    """Singleton work of the charging group (see csms.workers.Singletons)."""

    name = "load-manager"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        commands: CommandService,
        settings: SmartChargingConfig | None = None,
        *,
        alone: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        self._commands = commands
        self.settings = settings or SmartChargingConfig()
        self._wake = asyncio.Event()
        self._fingerprint: Any = None
        self._trees: list[SiteTree] = []
        self._loaded_at = 0.0
        self._states: dict[str, AllocationState] = {}
        self._sent: dict[int, _Sent] = {}
        self._chargers: dict[str, _Charger] = {}
        # What is stored of each site's shares, by transaction.
        self._stored: dict[str, dict[int, Share]] = {}
        self._stored_at: dict[str, datetime] = {}
        self._linked: set[str] = set()
        self._evses: dict[str, int] = {}
        # The newest reading of each running session received here.
        self._live: dict[int, lm_repo.LastReading] = {}
        # Alone (one process writes the database: SQLite), the linked chargers' states
        # and running sessions are kept here between looks: a look reads again only the
        # chargers the charging services named since the last one (`touched`), and all of
        # them every `interval`; likewise the caps and needs (again when staff changed
        # the sites' tables), and each new session's need and token priority once. With
        # several nodes every look reads them all (a session may start on any node).
        self._alone = alone
        self._dirty: set[str] = set()
        self._roster_read = False
        self._roster_ids: set[str] = set()
        self._roster_states: dict[str, lm_repo.ChargerState] = {}
        self._roster_running: dict[str, list[lm_repo.RunningSession]] = {}
        self._caps: list[Cap] = []
        self._needs: dict[int, ChargingNeed] = {}
        self._priorities: dict[int, int] = {}
        self._looked_up: set[int] = set()  # sessions whose need and priority were read
        self._unread: set[int] = set()  # sessions without a stored reading (alone)
        self.pictures: dict[str, SitePicture] = {}
        # Counters for /metrics.
        self.cycles = 0
        # Site allocations taken over from the last one (_Slack) instead of made afresh.
        self.steady = 0
        self._slack: dict[str, _Slack] = {}
        self.profiles: dict[str, int] = {}
        self.cycle_seconds = 0.0

    # --- running --------------------------------------------------------------------

    def readings(self, tx_id: int, samples: Sequence[Sample]) -> None:
        """A session's new readings (as they are stored): what it draws now."""
        if not self._linked:
            return  # no charger on a site: nothing to follow
        reading = lm_repo.reading_of(samples)
        if reading is not None:
            before = self._live.get(tx_id)
            if before is None or before.timestamp <= reading.timestamp:
                self._live[tx_id] = reading

    def poke(self) -> None:
        """Something changed (a start, a stop, a status): look again now."""
        self._wake.set()

    def touched(self, cp_id: str) -> None:
        """A charger's sessions, status, connection or boot changed (committed): the next
        look reads it again."""
        if self._alone:
            self._dirty.add(cp_id)
        self._wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])
            # Another process may lead meanwhile: when this one leads again, it tells every
            # charger its share again.
            self._sent.clear()
            self._chargers.clear()
            self._fingerprint = None
            self._roster_read = False
            self._slack.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # At most one look a second (less when polling faster): the starts and stops of a
        # busy site are taken together, well within the 2 s a change may take.
        spacing = min(1.0, self.settings.poll_interval)
        while True:
            started = loop.time()
            try:
                await self.cycle()
            except DatabaseClosed:
                return
            except Exception:
                log.exception("load_cycle_failed")
            await wait_event(self._wake, self.settings.poll_interval)
            rest = started + spacing - loop.time()
            if rest > 0:
                await asyncio.sleep(rest)
            self._wake.clear()

    async def ev_needs(
        self, cp_id: str, evse_id: int, departure: datetime | None, energy_wh: float | None
    ) -> bool:
        """An EV said what it needs by when (2.0.1 NotifyEVChargingNeeds): kept for the
        session on its EVSE when the charger is on a site. True when kept."""
        now = self._clock()

        async def unit(w: WriteTx) -> bool:
            conn = await w.connection()
            if await site_repo.link_of(conn, cp_id) is None:
                return False
            tx = await tx_repo.active_on_evse(conn, cp_id, evse_id)
            if tx is None:
                return False
            need = ChargingNeed(tx.id, departure, energy_wh, None, "ev")
            await site_repo.set_need(conn, need, now)
            return True

        kept = await self._db.write(unit)
        if kept:
            log.info(
                "load_ev_needs",
                charge_point_id=cp_id,
                evse_id=evse_id,
                departure=None if departure is None else departure.isoformat(),
                energy_wh=energy_wh,
            )
            self.poke()
        return kept

    # --- one look ---------------------------------------------------------------------

    async def cycle(self) -> None:
        """Read, allocate, tell the chargers what changed, store the shares."""
        started = time.perf_counter()
        now = self._clock()
        settings = self.settings
        # A look over a thousand sessions takes tens of milliseconds: handed back to the
        # event loop every few, so that the chargers' messages are not held up meanwhile.
        slicer = TimeSlice()
        # Taken before the read begins: what was committed before is in the read's
        # snapshot, what is touched from now on is read at the next look.
        dirty, self._dirty = self._dirty, set()
        async with self._db.read() as conn:
            fingerprint = await site_repo.fingerprint(conn)
            full = time.monotonic() - self._loaded_at >= settings.interval
            staff_changed = fingerprint != self._fingerprint
            if staff_changed or full:
                self._trees = await site_repo.trees(conn)
                self._fingerprint = fingerprint
                self._loaded_at = time.monotonic()
            trees = self._trees
            links = {link.charge_point_id: (t, link) for t in trees for link in t.links}
            if not links and not self._linked:
                return
            if full or not links.keys() <= self._evses.keys():
                self._evses.update(await lm_repo.evse_counts(conn, links))
            states, sessions = await self._roster(conn, links, dirty, full, slicer)
            tx_ids = [s.transaction_id for s in sessions]
            # Readings this process received as they came; the others' (a charger on
            # another node, a session older than this process) from the database.
            readings = {tx: self._live[tx] for tx in tx_ids if tx in self._live}
            if full:
                self._unread.clear()
            missing = [tx for tx in tx_ids if tx not in readings and tx not in self._unread]
            stored = await lm_repo.last_readings(conn, missing)
            readings.update(stored)
            if self._alone:
                # Alone, a session's readings all pass through `readings()`: one without a
                # stored reading is not looked up again before the next full read.
                self._unread.update(tx for tx in missing if tx not in stored)
            if not self._alone or staff_changed or full:
                self._caps = await site_repo.caps(conn, now)
                self._needs = await site_repo.needs(conn, tx_ids)
                self._priorities = await site_repo.token_priorities(conn, tx_ids)
                self._looked_up = set(tx_ids)
            else:
                new = [tx for tx in tx_ids if tx not in self._looked_up]
                if new:
                    self._needs.update(await site_repo.needs(conn, new))
                    self._priorities.update(await site_repo.token_priorities(conn, new))
                    self._looked_up.update(new)
            caps = [c for c in self._caps if c.end_at > now]
            needs = {tx: self._needs[tx] for tx in tx_ids if tx in self._needs}
            priorities = {tx: self._priorities[tx] for tx in tx_ids if tx in self._priorities}
            prices: dict[str, list[PriceSlot]] = {}
            if needs:
                for tree in trees:
                    site_id = tree.site.id
                    departure = _latest_departure(
                        needs,
                        (
                            s.transaction_id
                            for s in sessions
                            if links[s.charge_point_id][0].site.id == site_id
                        ),
                    )
                    if departure is not None and departure > now:
                        prices[site_id] = await _prices(conn, tree, now, departure)
        await self._release_unlinked(set(links), self._evses)
        self.cycles += 1
        look = _Look(
            states,
            readings,
            needs,
            priorities,
            now,
            slicer,
            incremental=self._alone and not full and not staff_changed,
            dirty=frozenset(dirty),
        )
        by_site: dict[str, list[lm_repo.RunningSession]] = {t.site.id: [] for t in trees}
        for s in sessions:
            by_site[links[s.charge_point_id][0].site.id].append(s)
        for tree in trees:
            try:
                await self._site(
                    tree,
                    by_site[tree.site.id],
                    [c for c in caps if c.site_id == tree.site.id],
                    prices.get(tree.site.id, []),
                    look,
                )
            except DatabaseClosed:
                raise
            except Exception:
                # One site's trouble (a tree staff are still editing) leaves the others be.
                log.exception("load_site_failed", site=tree.site.id)
        for gone in set(self.pictures) - {t.site.id for t in trees}:
            del self.pictures[gone]
        for gone in set(self._slack) - {t.site.id for t in trees}:
            del self._slack[gone]
        live = set(tx_ids)
        for kept in (self._sent, self._live, self._needs, self._priorities):
            for tx_id in [tx for tx in kept if tx not in live]:
                del kept[tx_id]
        self._looked_up &= live
        self._unread &= live
        self.cycle_seconds += time.perf_counter() - started

    async def _roster(
        self,
        conn: Any,
        links: Mapping[str, Any],
        dirty: set[str],
        full: bool,
        slicer: TimeSlice,
    ) -> tuple[Mapping[str, lm_repo.ChargerState], list[lm_repo.RunningSession]]:
        """The linked chargers' states and running sessions (by transaction id): all read
        from the database, or (alone, between full reads) those kept here with the touched
        and newly linked chargers read again."""
        if not self._alone or full or not self._roster_read:
            states = await lm_repo.charger_states(conn, links, self._evses, slicer)
            sessions = await lm_repo.running_sessions(conn, links, slicer)
            if self._alone:
                self._roster_read = True
                self._roster_ids = set(links)
                self._roster_states = dict(states)
                self._roster_running = {}
                for s in sessions:
                    self._roster_running.setdefault(s.charge_point_id, []).append(s)
            return states, sessions
        for gone in self._roster_ids - links.keys():
            self._roster_ids.discard(gone)
            self._roster_states.pop(gone, None)
            self._roster_running.pop(gone, None)
        again = {cp for cp in dirty if cp in links} | (links.keys() - self._roster_ids)
        if again:
            states = await lm_repo.charger_states(conn, again, self._evses, slicer)
            sessions = await lm_repo.running_sessions(conn, again, slicer)
            for cp_id in again:
                self._roster_ids.add(cp_id)
                self._roster_running.pop(cp_id, None)
                state = states.get(cp_id)
                if state is None:
                    self._roster_states.pop(cp_id, None)
                else:
                    self._roster_states[cp_id] = state
            for s in sessions:
                self._roster_running.setdefault(s.charge_point_id, []).append(s)
        running = [s for kept in self._roster_running.values() for s in kept]
        running.sort(key=lambda s: s.transaction_id)
        return self._roster_states, running

    async def _site(
        self,
        tree: SiteTree,
        running: Sequence[lm_repo.RunningSession],
        caps: Sequence[Cap],
        prices: Sequence[PriceSlot],
        look: _Look,
    ) -> None:
        """Allocate one site, tell its chargers what changed, store its shares."""
        site, states, now = tree.site, look.states, look.now
        plan = self._steady_plan(tree, running, caps, prices, look)
        if plan is None:
            plan = await self._plan(tree, running, caps, prices, look)
        else:
            self.steady += 1
        if plan.slack is None:
            self._slack.pop(site.id, None)
        else:
            self._slack[site.id] = plan.slack
        self._states[site.id] = plan.allocation.state
        if plan.wake:
            self.poke()
        await self._enforce(tree, plan, states, now, look.slicer)
        load = plan.allocation.load.get(ROOT, (0.0, 0.0, 0.0))
        self.pictures[site.id] = SitePicture(site.id, plan.limit_a, load)
        if not self._store_due(site.id, now):
            return
        sessions = plan.sessions
        if plan.only is not None and plan.slack is not None:
            # Taken over from the last plan: what each session draws now is read again
            # for the record.
            links = {link.charge_point_id: link for link in tree.links}
            limits = plan.slack.limits
            sessions = []
            for r in running:
                await look.slicer.breathe()
                sessions.append(
                    self._session(
                        tree,
                        links[r.charge_point_id],
                        r,
                        look.readings,
                        look.needs,
                        look.priorities,
                        limits,
                    )
                )
        shares: list[Share] = []
        for s in sessions:
            await look.slicer.breathe()
            shares.append(
                Share(
                    s.transaction_id,
                    site.id,
                    s.node,
                    s.charge_point_id,
                    s.evse_id,
                    s.phases,
                    plan.targets[s.transaction_id],
                    plan.targets[s.transaction_id] == 0.0,
                    s.measured_a,
                    plan.reasons[s.transaction_id],
                    self._accepted(s),
                    self._profile_of(s),
                )
            )
        await self._store(site.id, shares, now)

    async def _plan(
        self,
        tree: SiteTree,
        running: Sequence[lm_repo.RunningSession],
        caps: Sequence[Cap],
        prices: Sequence[PriceSlot],
        look: _Look,
    ) -> _Plan:
        """Who gets what on one site, and why (pure but for reading the manager's state)."""
        readings, needs, priorities, now = look.readings, look.needs, look.priorities, look.now
        wake: list[bool] = []
        settings = self.settings
        site = tree.site
        links = {link.charge_point_id: link for link in tree.links}
        limit_a = site.limit_a
        active_caps = [c for c in caps if c.active(now)]
        for cap in active_caps:
            limit_a = min(limit_a, cap.limit_w / (site.phases * site.voltage_v))
        limit_a = max(0.0, math.floor(limit_a * 10) / 10)
        nodes = [SiteNode(ROOT, None, limit_a, site.phase_indexes)]
        for c in tree.circuits:
            nodes.append(
                SiteNode(
                    c.name,
                    c.parent if c.parent is not None else ROOT,
                    effective_a(c.max_current_a, c.max_power_w, c.phases, site.voltage_v),
                    c.phase_indexes,
                )
            )
        limits = {n.id: n.limit_a for n in nodes}
        sessions: list[_Session] = []
        for r in running:
            await look.slicer.breathe()
            link = links[r.charge_point_id]
            sessions.append(self._session(tree, link, r, readings, needs, priorities, limits))
        waiting: dict[int, str] = {}
        for s in sessions:
            need = needs.get(s.transaction_id)
            if (
                s.managed
                and need is not None
                and prices
                and not self._charges_now(tree, s, need, running, readings, prices, now, wake)
            ):
                waiting[s.transaction_id] = "price"
        demands: list[Demand] = []
        for s in sessions:
            await look.slicer.breathe()
            if s.transaction_id in waiting:
                continue
            demands.append(
                Demand(
                    s.transaction_id,
                    s.node,
                    s.phases,
                    s.max_a,
                    priority=s.priority,
                    measured_a=s.measured_a,
                    reserved=not s.managed,
                )
            )
        # Unmanaged chargers without a session: their rated current is kept free all the
        # same (they may start any time, at full power).
        busy = {s.charge_point_id for s in sessions}
        for n, link in enumerate(sorted(tree.links, key=lambda k: k.charge_point_id)):
            if not link.managed and link.charge_point_id not in busy:
                node = tree.node_of(link)
                phases = (link.phase,) if link.phase is not None else tree.node_phases(node)
                max_a = link.max_current_a if link.max_current_a is not None else limits[node]
                demands.append(Demand(-(n + 1), node, phases, max_a, reserved=True))
        share_out = functools.partial(
            allocate,
            nodes,
            demands,
            now=now.timestamp(),
            previous=self._states.get(site.id),
            min_a=settings.min_current,
            rotate_after_s=settings.rotate_after,
            lend_margin_a=LEND_MARGIN_A,
            lend_after_s=settings.settle,
        )
        # A big site's allocation (ten milliseconds and more) runs beside the event loop,
        # which takes the interpreter back every switch interval; allocate() is pure.
        allocation = (
            await asyncio.to_thread(share_out) if len(demands) >= THREAD_DEMANDS else share_out()
        )
        targets: dict[int, float] = {}
        reasons: dict[int, str] = {}
        for s in sessions:
            tx = s.transaction_id
            if tx in waiting:
                targets[tx], reasons[tx] = 0.0, waiting[tx]
            elif not s.managed:
                targets[tx], reasons[tx] = allocation.grants.get(tx, s.max_a), "unmanaged"
            else:
                targets[tx] = allocation.grants.get(tx, 0.0)
                if tx in allocation.paused:
                    reasons[tx] = "rotation"
                elif active_caps:
                    reasons[tx] = "cap"
                else:
                    reasons[tx] = "share"
        defaults = _safe_shares(tree, limits, look.states, settings.min_current)
        slack = None
        if (
            self._alone
            and not active_caps
            and not prices
            and not waiting
            and not allocation.paused
            and not allocation.lending
            and all(
                link.managed and self._charger(link).mode is not ProfileMode.MAX
                for link in tree.links
            )
            and all(s.transaction_id not in needs for s in sessions)
            and all(targets[s.transaction_id] == s.max_a for s in sessions)
        ):
            slack = _Slack(
                {s.transaction_id: s for s in sessions},
                {},
                limits,
                {n.id: n.parent for n in nodes},
                defaults,
                {cp_id: state.evses for cp_id, state in look.states.items() if cp_id in links},
                allocation.state,
                limit_a,
                tree,
            )
            for s in sessions:
                slack.add(s)
            if any(
                load[phase] > slack.limits[node] + 1e-9
                for node, load in slack.load.items()
                for phase in range(3)
            ):
                slack = None  # over a limit (a rating above it): the next look allocates
        return _Plan(
            sessions,
            targets,
            reasons,
            allocation,
            limit_a,
            defaults,
            bool(wake),
            slack=slack,
        )

    def _steady_plan(
        self,
        tree: SiteTree,
        running: Sequence[lm_repo.RunningSession],
        caps: Sequence[Cap],
        prices: Sequence[PriceSlot],
        look: _Look,
    ) -> _Plan | None:
        """The last plan with this look's starts and stops, when the site had room to spare
        and still has (see _Slack); None when a new allocation is needed."""
        slack = self._slack.get(tree.site.id)
        now = look.now
        if (
            slack is None
            or not look.incremental
            or slack.tree is not tree
            or any(c.active(now) for c in caps)
            or prices
        ):
            return None
        # A charger that reconnected, booted or changed its EVSEs may need its safe share
        # again: told below (`only`); one whose EVSE count changed moves the safe shares.
        for cp_id in look.dirty:
            state = look.states.get(cp_id)
            if cp_id in slack.evses and (state is None or state.evses != slack.evses[cp_id]):
                return None
        links = {link.charge_point_id: link for link in tree.links}
        current = {r.transaction_id: r for r in running}
        added: list[_Session] = []
        for tx, r in current.items():
            if tx in slack.sessions:
                continue
            if tx in look.needs:
                return None
            link = links[r.charge_point_id]
            s = self._session(
                tree, link, r, look.readings, look.needs, look.priorities, slack.limits
            )
            if not s.managed or s.max_a < self.settings.min_current:
                return None
            added.append(s)
        gone = [tx for tx in slack.sessions if tx not in current]
        for tx in gone:
            slack.add(slack.sessions.pop(tx), -1.0)
        for s in added:
            if not slack.fits(s):
                # Undo: the next full allocation starts from what was planned.
                for t in added[: added.index(s)]:
                    slack.add(slack.sessions.pop(t.transaction_id), -1.0)
                self._slack.pop(tree.site.id, None)
                return None
            slack.sessions[s.transaction_id] = s
            slack.add(s)
        sessions = sorted(slack.sessions.values(), key=lambda s: s.transaction_id)
        targets = {s.transaction_id: s.max_a for s in sessions}
        load = {node: (v[0], v[1], v[2]) for node, v in slack.load.items()}
        allocation = Allocation(targets, frozenset(), load, slack.state)
        touched = {s.charge_point_id for s in added} | {
            cp_id for cp_id in look.dirty if cp_id in links
        }
        # And whoever is not yet charging at what was planned: a send that failed, a session
        # that charged at its charger's old safe share until that was changed.
        for s in sessions:
            sent = self._sent.get(s.transaction_id)
            if sent is None or _differs(sent.limit_a, s.max_a):
                touched.add(s.charge_point_id)
        for cp_id, safe in slack.defaults.items():
            charger = self._chargers.get(cp_id)
            state = look.states.get(cp_id)
            if (
                charger is None
                or charger.default_a is None
                or _differs(charger.default_a, safe)
                or (state is not None and charger.default_boot != state.last_boot_at)
            ):
                touched.add(cp_id)
        return _Plan(
            sessions,
            targets,
            dict.fromkeys(targets, "share"),
            allocation,
            slack.limit_a,
            slack.defaults,
            False,
            slack=slack,
            only=frozenset(touched),
        )

    def _store_due(self, site_id: str, now: datetime) -> bool:
        """At most one write of a site's shares per store_interval: a busy site's shares
        change at every look, and each write goes with the chargers' messages in the
        writer's batch (the shares are not even made up in between)."""
        last = self._stored_at.get(site_id)
        return last is None or now - last >= timedelta(seconds=self.settings.store_interval)

    async def _store(self, site_id: str, shares: Sequence[Share], now: datetime) -> None:
        """Write the shares that changed (a measured current only when it moved by 1 A or
        more: readings come every few seconds) and drop those of ended sessions, at most
        once per `store_interval`."""
        stored = self._stored.setdefault(site_id, {})
        if not self._store_due(site_id, now):
            return
        changed: list[Share] = []
        for share in shares:
            before = stored.get(share.transaction_id)
            if before is None or _share_changed(before, share):
                changed.append(share)
                if len(changed) == STORE_ROWS:
                    break  # the rest at the next write: one write stays small
        gone = set(stored) - {s.transaction_id for s in shares}
        if not changed and not gone:
            return

        async def store(w: WriteTx) -> None:
            await site_repo.update_shares(await w.connection(), site_id, changed, gone, now)

        await self._db.write(store)
        self._stored_at[site_id] = now
        for tx in gone:
            del stored[tx]
        for share in changed:
            stored[share.transaction_id] = share

    def _session(
        self,
        tree: SiteTree,
        link: Link,
        running: lm_repo.RunningSession,
        readings: Mapping[int, lm_repo.LastReading],
        needs: Mapping[int, ChargingNeed],
        priorities: Mapping[int, int],
        limits: Mapping[str, float],
    ) -> _Session:
        """A running session: where it draws, how much it may, what it draws now."""
        tx = running.transaction_id
        node = tree.node_of(link)
        phases = (link.phase,) if link.phase is not None else tree.node_phases(node)
        reading = readings.get(tx)
        sent = self._sent.get(tx)
        measured: float | None = None
        if reading is not None:
            on = [i for i, c in enumerate(reading.currents) if c is not None]
            if len(phases) == 3 and len(on) == 3:
                busy = [i for i in on if (reading.currents[i] or 0.0) > ONE_PHASE_A]
                idle = [i for i in on if (reading.currents[i] or 0.0) < IDLE_PHASE_A]
                if len(busy) == 1 and len(idle) == 2:
                    phases = (busy[0],)  # an EV that charges on one phase
            settled = sent is not None and (
                reading.timestamp >= sent.at + timedelta(seconds=self.settings.settle)
            )
            if settled:
                # A meter's nonsense (negative, not a number) counts as not measured.
                values = [c for c in reading.currents if c is not None and math.isfinite(c)]
                power = reading.power_w
                if values:
                    measured = max(0.0, *values)
                elif power is not None and math.isfinite(power):
                    measured = max(0.0, power / (len(phases) * tree.site.voltage_v))
        max_a = link.max_current_a if link.max_current_a is not None else limits[node]
        need = needs.get(tx)
        priority = need.priority if need is not None and need.priority is not None else None
        if priority is None:
            priority = priorities.get(tx, 0)
        return _Session(
            tx,
            running.charge_point_id,
            running.evse_id,
            node,
            phases,
            max_a,
            priority,
            measured,
            link.managed,
            running.ocpp_transaction_id or str(tx),
        )

    def _charges_now(
        self,
        tree: SiteTree,
        s: _Session,
        need: ChargingNeed,
        running: Sequence[lm_repo.RunningSession],
        readings: Mapping[int, lm_repo.LastReading],
        prices: Sequence[PriceSlot],
        now: datetime,
        wake: list[bool],
    ) -> bool:
        """Whether a session with a departure and an energy need charges now: in the
        cheapest slots before its departure that give it what it still needs (`wake`
        gets True when that changes before the next poll)."""
        if need.departure_at is None or need.energy_wh is None or need.departure_at <= now:
            return True
        start = next((r for r in running if r.transaction_id == s.transaction_id), None)
        reading = readings.get(s.transaction_id)
        delivered = 0.0
        if start is not None and reading is not None and reading.energy_wh is not None:
            delivered = max(0.0, reading.energy_wh - (start.meter_start_wh or 0))
        remaining = need.energy_wh - delivered
        if remaining <= 0:
            return False
        rate_w = s.max_a * len(s.phases) * tree.site.voltage_v
        windows = plan_windows(
            now=now,
            departure=need.departure_at,
            need_wh=remaining,
            rate_w=rate_w,
            slots=prices,
        )
        if charging_at(windows, now):
            return True
        change = next_change(windows, now)
        if change is not None and change - now < timedelta(seconds=self.settings.poll_interval):
            wake.append(True)
        return False

    # --- telling the chargers ---------------------------------------------------------

    def _accepted(self, s: _Session) -> float | None:
        charger = self._chargers.get(s.charge_point_id)
        if charger is not None and charger.mode is ProfileMode.MAX:
            return None if charger.max_sent is None else charger.max_sent.limit_a
        sent = self._sent.get(s.transaction_id)
        return None if sent is None else sent.limit_a

    def _profile_of(self, s: _Session) -> int | None:
        sent = self._sent.get(s.transaction_id)
        return None if sent is None else sent.profile_id

    def _charger(self, link: Link) -> _Charger:
        charger = self._chargers.get(link.charge_point_id)
        if charger is None:
            mode = ProfileMode.MAX if link.profile_mode is ProfileMode.MAX else ProfileMode.TX
            charger = self._chargers[link.charge_point_id] = _Charger(mode)
        return charger

    async def _enforce(
        self,
        tree: SiteTree,
        plan: _Plan,
        states: Mapping[str, lm_repo.ChargerState],
        now: datetime,
        slicer: TimeSlice,
    ) -> None:
        """Send what changed: decreases first, then (once they are in) increases."""
        links = {link.charge_point_id: link for link in tree.links}
        lower: list[Callable[[], Any]] = []
        higher: list[Callable[[], Any]] = []
        sessions, targets, reasons, defaults = (
            plan.sessions,
            plan.targets,
            plan.reasons,
            plan.defaults,
        )
        by_charger: dict[str, list[_Session]] = {}
        only = plan.only
        for s in sessions:
            if only is None or s.charge_point_id in only:
                by_charger.setdefault(s.charge_point_id, []).append(s)
        for cp_id, link in links.items():
            if only is not None and cp_id not in only:
                continue
            await slicer.breathe()
            state = states.get(cp_id)
            if not link.managed or state is None or not state.connected:
                continue
            charger = self._charger(link)
            mine = by_charger.get(cp_id, [])
            if charger.mode is ProfileMode.MAX:
                total = sum(targets[s.transaction_id] for s in mine) if mine else defaults[cp_id]
                total = math.floor(total * 10) / 10
                sent = charger.max_sent
                if sent is None or _differs(sent.limit_a, total):
                    job = _bind(self._send_max, link, total, now)
                    (lower if sent is not None and total < sent.limit_a else higher).append(job)
                continue
            safe, told = defaults[cp_id], charger.default_a
            if charger.default_boot != state.last_boot_at or told is None or _differs(told, safe):
                job = _bind(self._send_default, link, safe, state, now)
                (lower if told is not None and safe < told else higher).append(job)
            for s in mine:
                target = targets[s.transaction_id]
                sent_tx = self._sent.get(s.transaction_id)
                if sent_tx is None and told is not None and target == told:
                    # A new session whose share is the charger's default: it charges at
                    # that already, no TxProfile needed until the share moves.
                    self._sent[s.transaction_id] = _Sent(target, now, by_default=cp_id)
                    continue
                if sent_tx is None or _differs(sent_tx.limit_a, target):
                    if sent_tx is None or sent_tx.limit_a != target:
                        log.info(
                            "load_share_changed",
                            charge_point_id=cp_id,
                            transaction_id=s.transaction_id,
                            site=tree.site.id,
                            from_a=None if sent_tx is None else sent_tx.limit_a,
                            to_a=target,
                            reason=reasons[s.transaction_id],
                        )
                    job = _bind(self._send_tx, link, s, target, now)
                    lowering = sent_tx is None or target < sent_tx.limit_a
                    (lower if lowering else higher).append(job)
        for batch in (lower, higher):
            if batch:
                await _in_flight(batch, SENDS_IN_FLIGHT)

    async def _send_tx(self, link: Link, s: _Session, limit: float, now: datetime) -> None:
        request = ProfileSetRequest(
            evse=s.evse_id,
            unit="A",
            limit=limit,
            purpose=ProfilePurpose.TX,
            stack=self.settings.stack_level,
            relative=True,
            transaction=s.transaction_id,
        )
        result = await self._send(link, request, "tx", s.wire_transaction_id)
        if result is not None:
            self._sent[s.transaction_id] = _Sent(limit, self._clock(), result)

    async def _send_default(
        self, link: Link, limit: float, state: lm_repo.ChargerState, now: datetime
    ) -> None:
        request = ProfileSetRequest(
            evse=0,
            unit="A",
            limit=limit,
            purpose=ProfilePurpose.TX_DEFAULT,
            stack=self.settings.stack_level,
            relative=True,
        )
        if await self._send(link, request, "default") is not None:
            # Sessions that charged at the old default charge at the new one now: they
            # get a TxProfile of their own at the next look.
            for tx, sent in list(self._sent.items()):
                if sent.by_default == link.charge_point_id:
                    del self._sent[tx]
            charger = self._charger(link)
            charger.default_boot = state.last_boot_at
            charger.default_a = limit
            log.info(
                "load_default_profile_set",
                charge_point_id=link.charge_point_id,
                site=link.site_id,
                limit_a=limit,
            )

    async def _send_max(self, link: Link, limit: float, now: datetime) -> None:
        request = ProfileSetRequest(
            evse=0,
            unit="A",
            limit=limit,
            purpose=ProfilePurpose.CHARGER_MAX,
            stack=self.settings.stack_level,
            # From a minute ago: a charger whose clock is a little behind takes it at once.
            start=now - timedelta(minutes=1),
        )
        result = await self._send(link, request, "max")
        if result is not None:
            self._charger(link).max_sent = _Sent(limit, self._clock(), result)

    async def _send(
        self,
        link: Link,
        request: ProfileSetRequest,
        kind: str,
        wire_transaction_id: str | None = None,
    ) -> int | None:
        """Send one profile; its id when the charger accepted it, else None (a refusal
        counts towards leaving the charger unmanaged).

        To a charger held here the profile goes straight to its connection, with an id of
        the load manager's own for its EVSE and kind (each new share replaces the last on
        the charger): no audit entry for what changes many times an hour, the shares are
        stored instead. A charger held by another node gets it as a routed command."""
        cp_id = link.charge_point_id
        timeout = self.settings.command_timeout
        if self._commands.holds(cp_id):
            profile = ChargingProfile(
                profile_id(request.evse, request.purpose),
                request.evse,
                request.purpose,
                request.stack,
                request.first_limit,
                request.unit,
                request.start or self._clock(),
                ocpp_transaction_id=wire_transaction_id,
                relative=request.relative,
            )
            outcome, status = await self._commands.tell(cp_id, SetChargingProfile(profile), timeout)
            sent_id: Any = profile.profile_id
            message = status or outcome.value
        else:
            result = await self._commands.execute(cp_id, request, LOAD_MANAGER, timeout=timeout)
            outcome, status, message = result.outcome, result.status, result.message
            sent_id = result.data.get("profile_id")
        self.profiles[outcome.value] = self.profiles.get(outcome.value, 0) + 1
        charger = self._charger(link)
        if outcome is Outcome.ACCEPTED:
            charger.refusals = 0
            return sent_id if isinstance(sent_id, int) else 0
        if outcome not in (Outcome.REJECTED, Outcome.CALL_ERROR):
            # Not connected, no answer in time, a session that just ended: try again at
            # the next look; that is not the charger refusing.
            log.info(
                "load_profile_not_sent",
                charge_point_id=cp_id,
                kind=kind,
                outcome=outcome.value,
                reason=message,
            )
            return None
        charger.refusals += 1
        log.warning(
            "load_profile_refused",
            charge_point_id=cp_id,
            kind=kind,
            outcome=outcome.value,
            status=status,
            refusals=charger.refusals,
        )
        if charger.refusals < self.settings.attempts:
            return None
        if charger.mode is ProfileMode.TX and link.profile_mode is ProfileMode.AUTO:
            # TxProfiles refused: a station maximum may do (a charger that supports only
            # ChargePointMaxProfile / ChargingStationMaxProfile).
            charger.mode = ProfileMode.MAX
            charger.refusals = 0
            log.warning("load_charger_max_only", charge_point_id=cp_id, site=link.site_id)
            self.poke()
            return None
        reason = f"refused {kind} profiles {charger.refusals} times ({status or outcome.value})"
        await self._unmanage(link, reason)
        return None

    async def _unmanage(self, link: Link, reason: str) -> None:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            await site_repo.mark_unmanaged(await w.connection(), link.charge_point_id, reason, now)

        await self._db.write(unit)
        self._chargers.pop(link.charge_point_id, None)
        self._fingerprint = None  # read the links again: this one is reserved now
        log.warning(
            "load_charger_unmanaged",
            charge_point_id=link.charge_point_id,
            site=link.site_id,
            reason=reason,
        )
        self.poke()

    async def _release_unlinked(self, linked: set[str], evses: Mapping[str, int]) -> None:
        """A charger no longer linked to a site gets the load manager's profiles cleared:
        it charges at its own rating again."""
        gone = self._linked - linked
        self._linked = linked
        for cp_id in sorted(gone):
            self._chargers.pop(cp_id, None)
            ids = [
                profile_id(0, ProfilePurpose.TX_DEFAULT),
                profile_id(0, ProfilePurpose.CHARGER_MAX),
            ]
            ids += [profile_id(e, ProfilePurpose.TX) for e in range(1, evses.get(cp_id, 1) + 1)]
            for pid in ids:
                outcome, status = await self._commands.tell(
                    cp_id, ClearChargingProfile(pid), self.settings.command_timeout
                )
                log.info(
                    "load_profile_cleared",
                    charge_point_id=cp_id,
                    profile_id=pid,
                    outcome=outcome.value,
                    status=status,
                )

    # --- for /metrics --------------------------------------------------------------

    def unmanaged(self) -> int:
        return sum(1 for t in self._trees for link in t.links if not link.managed)


# The load manager's profile ids: one per EVSE and purpose, far above the ids of the
# profiles staff set (rows of charging_profiles), so that each new share replaces the last.
PROFILE_IDS = 900_000_000
_PURPOSE_CODES = {ProfilePurpose.TX_DEFAULT: 1, ProfilePurpose.TX: 2, ProfilePurpose.CHARGER_MAX: 3}


def profile_id(evse_id: int, purpose: ProfilePurpose) -> int:
    return PROFILE_IDS + evse_id * 4 + _PURPOSE_CODES[purpose]


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


async def _in_flight(jobs: Sequence[Callable[[], Any]], limit: int) -> None:
    """Run `jobs` with at most `limit` under way: a thousand profiles started in one loop
    step would hold up every charger's message behind their sending."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Any]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


def _share_changed(before: Share, now: Share) -> bool:
    """Worth storing again: any change but a measured current that moved by under 1 A."""
    if _kept(before) != _kept(now):
        return True
    was, is_ = before.measured_a, now.measured_a
    if was is None or is_ is None:
        return was is not is_
    return abs(was - is_) >= 1.0


def _kept(share: Share) -> tuple[Any, ...]:
    return (
        share.granted_a,
        share.paused,
        share.reason,
        share.sent_a,
        share.profile_id,
        share.node,
        share.phases,
        share.evse_id,
    )


def _differs(sent: float, target: float) -> bool:
    """Worth telling the charger: any decrease of HYSTERESIS_A or more (the site's limit
    depends on it), an increase of at least RAISE_MIN_A and RAISE_MIN_SHARE of what it
    has (a busy site's shares move at every start and stop: small raises wait for a
    larger one), and any change to or from 0 A."""
    if (sent == 0.0) != (target == 0.0):
        return True
    if target < sent:
        return sent - target >= HYSTERESIS_A
    return target - sent >= max(RAISE_MIN_A, RAISE_MIN_SHARE * sent)


def _latest_departure(needs: Mapping[int, ChargingNeed], tx_ids: Iterable[int]) -> datetime | None:
    latest: datetime | None = None
    for tx in tx_ids:
        need = needs.get(tx)
        if need is None or need.departure_at is None or need.energy_wh is None:
            continue
        if latest is None or need.departure_at > latest:
            latest = need.departure_at
    return latest


async def _prices(conn: Any, tree: SiteTree, now: datetime, until: datetime) -> list[PriceSlot]:
    """The site's imported prices from now to `until`, else its time-of-day prices."""
    imported = await site_repo.price_slots(conn, tree.site.id, now, until)
    if imported:
        return [PriceSlot(start, end, price) for start, end, price in imported]
    site = tree.site
    if not site.daily_prices:
        return []
    try:
        zone = ZoneInfo(site.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    schedule = [(_clock_time(at), price) for at, price in site.daily_prices]
    return daily_slots(schedule, zone, now - timedelta(hours=1), until + timedelta(hours=1))


def _clock_time(text: str) -> day_time:
    return day_time.fromisoformat(text)


def _safe_shares(
    tree: SiteTree,
    limits: Mapping[str, float],
    states: Mapping[str, lm_repo.ChargerState],
    min_current: float,
) -> dict[str, float]:
    """Each managed charger's TxDefaultProfile: per EVSE, the least of every node above it
    shared equally among the EVSEs of the managed chargers below that node (after the
    unmanaged ones' reserve), at most its rating; 0 A when that is below the minimum (a
    session then waits for its own share, sent within seconds of its start)."""
    parents: dict[str, str | None] = {ROOT: None}
    for c in tree.circuits:
        parents[c.name] = c.parent if c.parent is not None else ROOT
    evses: dict[str, int] = {}
    reserved: dict[str, float] = {}
    for link in tree.links:
        node: str | None = tree.node_of(link)
        count = states[link.charge_point_id].evses if link.charge_point_id in states else 1
        rating = (
            link.max_current_a if link.max_current_a is not None else limits[tree.node_of(link)]
        )
        while node is not None:
            if link.managed:
                evses[node] = evses.get(node, 0) + count
            else:
                reserved[node] = reserved.get(node, 0.0) + rating
            node = parents.get(node)
    shares: dict[str, float] = {}
    for link in tree.links:
        node = tree.node_of(link)
        share = link.max_current_a if link.max_current_a is not None else limits[node]
        walk: str | None = node
        while walk is not None:
            free = max(0.0, limits[walk] - reserved.get(walk, 0.0))
            share = min(share, free / max(1, evses.get(walk, 1)))
            walk = parents.get(walk)
        share = math.floor(share * 10) / 10
        shares[link.charge_point_id] = share if share >= min_current else 0.0
    return shares


def metric_families(manager: LoadManager) -> list[Family]:
    """The load manager's figures for /metrics (csms.metrics.Metrics.families)."""
    pictures = sorted(manager.pictures.values(), key=lambda p: p.site_id)
    return [
        (
            "csms_load_cycles_total",
            "counter",
            "Looks of the load manager at the sites and their sessions.",
            [("", manager.cycles)],
        ),
        (
            "csms_load_steady_total",
            "counter",
            "Site allocations taken over from the last one (a start or stop on a site with "
            "room to spare) instead of made afresh.",
            [("", manager.steady)],
        ),
        (
            "csms_load_cycle_seconds_total",
            "counter",
            "Time the load manager spent looking, allocating and telling the chargers.",
            [("", round(manager.cycle_seconds, 6))],
        ),
        (
            "csms_load_profiles_total",
            "counter",
            "Charging profiles the load manager sent, by outcome.",
            [(labels(outcome=o), n) for o, n in sorted(manager.profiles.items())],
        ),
        (
            "csms_load_unmanaged_chargers",
            "gauge",
            "Chargers linked to a site that refused the load manager's profiles: their "
            "rated current is reserved from the site's budget (csms sites show says why).",
            [("", manager.unmanaged())],
        ),
        (
            "csms_load_site_limit_amperes",
            "gauge",
            "The current per phase a site may draw now (its limit, lowered by active caps).",
            [(labels(site=p.site_id), p.limit_a) for p in pictures],
        ),
        (
            "csms_load_site_allocated_amperes",
            "gauge",
            "The current per phase the load manager gave the sessions of a site.",
            [
                (labels(site=p.site_id, phase=name), amps)
                for p in pictures
                for name, amps in zip(("L1", "L2", "L3"), p.load, strict=True)
            ],
        ),
    ]
