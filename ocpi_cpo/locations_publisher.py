"""The location publisher: keeps the EVSEs partners see (ocpi_evses) in step with what the
chargers report and staff describe, and enqueues the pushes that follow a real change.

It works by reconciliation, not by in-memory events: each pass looks at what changed in
the database since its cursor (with an overlap), renders the EVSEs concerned and compares
them with what was published. A change found is stored, stamped with `last_updated`,
propagated to the location, and enqueued as a push in one write. A crash therefore loses
nothing (the next pass finds the same difference), and the OCPP side never waits for it.
One publisher runs per database (the process that serves OCPI).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog

from csms.core.clock import Clock
from csms.core.locations import Location, evse_uid
from csms.core.ocpi_locations import (
    Capability,
    Change,
    ConnectorFacts,
    EvseFacts,
    EvseStatus,
    Presence,
    digest,
    evse_status,
    published_evse_code,
    render_evse,
    render_location,
    stamp,
    without_time,
)
from csms.core.outbox import Push
from csms.core.partners import InterfaceRole
from csms.core.tariffs import ocpi_datetime, tariff_targets
from csms.core.versions import Limits, OcppVersion
from csms.storage import charge_points as cp_repo
from csms.storage import device_model as device_repo
from csms.storage import locations as location_repo
from csms.storage import ocpi_evses as evse_repo
from csms.storage import outbox as outbox_repo
from csms.storage import partners as partner_repo
from csms.storage import tariffs as tariff_repo
from csms.storage.database import Database, WriteTx
from csms.storage.ocpi_evses import PublishedEvse
from csms.storage.tariffs import Assignment
from csms.workers import Worker
from ocpi_cpo.v211 import objects as v211

log = structlog.get_logger("ocpi_cpo.locations")

CURSOR = "locations"
# How far back each pass looks again: a change stamped before the previous pass may have
# been committed after it read (the writer batches commits).
OVERLAP = timedelta(seconds=10)
# Every so often everything is compared again, as a safety net; deletions and tariff
# assignments (which timestamps do not show) are caught sooner by the shape fingerprint.
FULL_EVERY = timedelta(hours=1)
SHAPE = "locations.shape"
MIN_GAP = 0.2  # seconds between two passes
# Chargers rendered between two yields to the event loop.
RENDER_CHUNK = 50

# What our CSMS can do with any charger it talks to, in both OCPP versions (remote
# start/stop, unlock, reservations, smart charging, id tags read at the charger) ...
CAPABILITIES = (
    Capability.CHARGING_PROFILE_CAPABLE,
    Capability.REMOTE_START_STOP_CAPABLE,
    Capability.RESERVABLE,
    Capability.RFID_READER,
    Capability.UNLOCK_CAPABLE,
)
# ... less what a 2.0.1 charger's device model says is switched off.
CONTROLLERS = {
    "ReservationCtrlr": Capability.RESERVABLE,
    "SmartChargingCtrlr": Capability.CHARGING_PROFILE_CAPABLE,
    "AuthCtrlr": Capability.RFID_READER,
}


@dataclass(frozen=True, slots=True)
class Identity:
    country_code: str
    party_id: str
    operator_name: str | None


@dataclass(frozen=True, slots=True)
class _Served:
    """A published location as GET /locations serves it."""

    key: tuple[datetime, str]  # list order: creation time, then id
    last_updated: datetime
    encoded: bytes


@dataclass(slots=True)
class _Plan:
    """What one pass found: EVSE rows to store, locations touched, pushes to enqueue."""

    evses: list[tuple[PublishedEvse, bool]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    # (location id, EVSE object, change kind) for published locations.
    evse_pushes: list[tuple[str, dict[str, Any], Change]] = field(default_factory=list)
    # (location id, digest of its own content) to PUT whole.
    location_puts: list[tuple[str, str]] = field(default_factory=list)


def _removed(data: dict[str, Any]) -> dict[str, Any]:
    """A published EVSE object (without timestamps) with the status REMOVED."""
    return {**without_time(data), "status": EvseStatus.REMOVED.value}


def _capabilities(cp: Any, switched_off: set[str]) -> tuple[Capability, ...]:
    """None before the charger ever told us its OCPP version; then ours, less what its
    device model switched off."""
    if cp is None or not cp.ocpp_version:
        return ()
    off = {CONTROLLERS[c] for c in switched_off}
    return tuple(c for c in CAPABILITIES if c not in off)


# What a payable EVSE adds (payments on, an ad-hoc tariff applies, remote start works):
# its QR code's page takes credit and debit cards.
PAYABLE = (Capability.CREDIT_CARD_PAYABLE, Capability.DEBIT_CARD_PAYABLE)
_ORDER = {c: n for n, c in enumerate(Capability)}


def _tariff_ids(
    assigned: dict[tuple[str, str], str], uid: str, connector_id: int, location_id: str
) -> tuple[str, ...]:
    """The tariff a connector is priced with (the precedence of csms.services.billing)."""
    for key in tariff_targets(uid, connector_id, location_id):
        if key in assigned:
            return (assigned[key],)
    return ()


def _payable(
    capabilities: tuple[Capability, ...], connectors: list[tuple[tuple[str, ...], tuple[str, ...]]]
) -> tuple[tuple[Capability, ...], list[tuple[str, ...]]]:
    """The capabilities and each connector's tariff_ids (`connectors`: its regular and its
    ad-hoc tariff ids). When a driver can pay on the spot (an ad-hoc tariff applies to a
    connector and the EVSE can be started remotely, as the payment starts it) PAYABLE is
    added and the ad-hoc tariffs follow the regular ones (2.1.1 partners see the first);
    otherwise the regular ones alone."""
    payable = Capability.REMOTE_START_STOP_CAPABLE in capabilities and any(
        spot for _, spot in connectors
    )
    if not payable:
        return capabilities, [regular for regular, _ in connectors]
    return (
        tuple(sorted({*capabilities, *PAYABLE}, key=_ORDER.__getitem__)),
        [tuple(dict.fromkeys((*regular, *spot))) for regular, spot in connectors],
    )


class LocationPublisher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        identity: Identity,
        *,
        grace: timedelta,
        interval: float = 1.0,
        on_enqueued: Iterable[Any] = (),
        limits: Limits | None = None,
        push_rate: float = 0.0,
        payments: bool = False,
    ) -> None:
        self._db = db
        # Ad-hoc payment is on ([payments] enabled): EVSEs with an ad-hoc tariff are
        # published payable, with that tariff among their connectors' tariff_ids.
        self.payments = payments
        # Location pushes per second to one partner (0: all due at once): each push is
        # enqueued due one step after the partner's last one still waiting, so a pass
        # with thousands of changes reaches a partner paced, across passes and restarts.
        self.push_rate = push_rate
        # The OCPP versions whose chargers report a device model (what they switched off).
        self._device_models = frozenset(
            version for version, lim in (limits or {}).items() if lim.device_model
        )
        self._clock = clock
        self.identity = identity
        self.grace = grace
        self.interval = interval
        # Woken by every StatusNotification: under load, passes come at most every MIN_GAP
        # seconds (each one takes whatever changed meanwhile).
        self.worker = Worker(
            "ocpi-locations", self._pass_step, period=interval, min_gap=min(MIN_GAP, interval)
        )
        self._lock = asyncio.Lock()  # one pass at a time (the loop, or a caller's publish)
        # Chargers rendered by the last passes, with the change time they were rendered at.
        self._rendered: dict[str, datetime] = {}
        self._last_full: datetime | None = None
        # Published locations as served, encoded, in list order (None until the first
        # pass built it): what GET /locations pages over without a query per page.
        self._snapshot: dict[str, _Served] | None = None
        self._listed: list[_Served] = []
        # Called (without arguments) after a pass enqueued pushes: the push worker's wake.
        self.on_enqueued: list[Any] = list(on_enqueued)

    def wake(self) -> None:
        self.worker.wake()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The loop runs inside. On leaving, the snapshot goes: without passes it would
        grow stale (a node that handed the work over serves GET /locations from the
        database, as one that never led it)."""
        try:
            async with self.worker.running():
                yield
        finally:
            self._snapshot = None
            self._listed = []
            self._rendered.clear()
            self._last_full = None

    async def _pass_step(self) -> None:
        await self.publish()

    async def publish(self, full: bool = False) -> int:
        """One pass; returns how many EVSEs really changed."""
        async with self._lock:
            return await self._pass(full)

    async def _pass(self, full: bool) -> int:
        now = self._clock()
        async with self._db.read() as conn:
            cursor_text = await outbox_repo.cursor(conn, CURSOR)
            shape = await self._shape(conn)
            since = None if cursor_text is None else datetime.fromisoformat(cursor_text)
            if self._last_full is None:
                self._last_full = now  # a restart needs no full pass: the cursor was kept
            full = (
                full
                or since is None
                or shape != await outbox_repo.cursor(conn, SHAPE)
                or now - self._last_full >= FULL_EVERY
            )
            changed: dict[str, datetime] = {}
            back = now
            if full or since is None:
                chargers: set[str] | None = None
                changed_locations = await location_repo.list_all(conn)
            else:
                back = since - OVERLAP
                # The overlap shows a change again for a while: one already rendered as it
                # now stands is left alone (a burst of a thousand chargers reconnecting is
                # rendered once, not once a pass for OVERLAP).
                changed = await cp_repo.changed_since(conn, back)
                chargers = {cp for cp, at in changed.items() if self._rendered.get(cp) != at}
                chargers |= await location_repo.links_changed_since(conn, back)
                chargers |= await cp_repo.offline_between(conn, back - self.grace, now - self.grace)
                changed_locations = await location_repo.changed_since(conn, back)
                for loc in changed_locations:
                    chargers |= set(await location_repo.chargers_at(conn, loc.id))
            plan = await self._plan(conn, chargers, now)
            # Location PUTs: what the location itself says differs from what was pushed
            # (and it is published, or it was and now says publish: false).
            pushed = await location_repo.published_digests(conn, (c.id for c in changed_locations))
            for loc in changed_locations:
                own = digest(self._own(loc))
                before = pushed.get(loc.id)
                if own != before and (loc.publish or before is not None):
                    plan.location_puts.append((loc.id, own))
        if full:
            self._last_full = now

        async def unit(w: WriteTx) -> int | None:
            conn = await w.connection()
            if await outbox_repo.held_cursor(conn, CURSOR) != cursor_text:
                return None  # another publisher's pass came between (a hand-over)
            await evse_repo.save_many(conn, plan.evses)
            await location_repo.touch(conn, plan.touched, now)
            enqueued = await self._enqueue(conn, plan, now)
            await outbox_repo.set_cursor(conn, CURSOR, now.isoformat())
            await outbox_repo.set_cursor(conn, SHAPE, shape)
            return enqueued

        enqueued = await self._db.write(unit)
        if enqueued is None:
            # What this pass planned may have been pushed by the other: the next pass
            # starts again from the database.
            self._rendered.clear()
            self._snapshot = None
            return 0
        if full:
            self._rendered.clear()
        else:
            kept = {**self._rendered, **changed}
            self._rendered = {cp: at for cp, at in kept.items() if at > back}
        if full:
            published = {loc.id for loc in changed_locations if loc.publish}
            await self._refresh(published, base={})
        elif self._snapshot is None:
            await self._reload()
        else:
            await self._refresh(plan.touched | {loc.id for loc in changed_locations})
        if plan.evses:
            log.info(
                "locations_published",
                evses_changed=len(plan.evses),
                locations=len(plan.touched),
                pushes=enqueued,
            )
        if enqueued:
            for hook in self.on_enqueued:
                hook()
        return len(plan.evses)

    async def _shape(self, conn: Any) -> str:
        """A fingerprint of what timestamps do not show: how many chargers, links and
        locations there are (a deletion), the tariff assignments (regular and ad hoc) and
        whether payments are on."""
        assignments = await tariff_repo.assignments(conn, ad_hoc=None)
        counts = (await cp_repo.count(conn), *await location_repo.counts(conn))
        tariffs = [(a.tariff_id, a.scope, a.target, a.ad_hoc) for a in assignments]
        return digest([counts, tariffs, self.payments])

    async def _plan(self, conn: Any, chargers: set[str] | None, now: datetime) -> _Plan:
        plan = _Plan()
        links = {link.charge_point_id: link for link in await location_repo.links(conn, chargers)}
        published = await evse_repo.of_chargers(conn, chargers)
        # Only chargers that stand at a location or did (their EVSEs are published) have
        # anything to render: a thousand unlinked ones reconnecting cost no pass.
        ids = set(links) | {cp for cp, _ in published}
        if chargers is not None:
            ids &= chargers
        if not ids:
            return plan
        known = await cp_repo.get_many(conn, sorted(ids))
        connectors: dict[str, list[Any]] = {}
        for c in await cp_repo.connectors_of(conn, sorted(ids)):
            connectors.setdefault(c.charge_point_id, []).append(c)
        location_ids = {link.location_id for link in links.values()} | {
            e.location_id for e in published.values()
        }
        locations = await location_repo.get_many(conn, location_ids)
        everything = await tariff_repo.assignments(conn, ad_hoc=None)
        assigned = self._assigned([a for a in everything if not a.ad_hoc])
        ad_hoc = self._assigned([a for a in everything if a.ad_hoc]) if self.payments else {}
        switched_off = await device_repo.disabled_components(
            conn,
            sorted(
                cp
                for cp, c in known.items()
                if OcppVersion.of(c.ocpp_version) in self._device_models
            ),
            list(CONTROLLERS),
        )

        for n, cp_id in enumerate(sorted(ids)):
            if n and n % RENDER_CHUNK == 0:
                await asyncio.sleep(0)  # a thousand chargers at once: chargers go first
            link = links.get(cp_id)
            cp = known.get(cp_id)
            states = connectors.get(cp_id, [])
            evse_ids = {s.evse_id for s in states if s.evse_id > 0}
            evse_ids |= {e for (c, e) in published if c == cp_id}
            if link is not None:
                evse_ids |= set(link.evses)
            charger_status = next(
                (s.status for s in states if s.evse_id == 0 and s.connector_id == 0), None
            )
            for evse_id in sorted(evse_ids):
                previous = stored = published.get((cp_id, evse_id))
                linked = link is not None and link.location_id in locations
                if linked:
                    assert link is not None
                    location_id = link.location_id
                elif previous is not None:
                    location_id = previous.location_id
                else:
                    continue
                if previous is not None and previous.location_id != location_id:
                    # The charger moved: its EVSE leaves the old location first.
                    self._moved_away(plan, previous, locations, now)
                    previous = None
                gone = cp is None and previous is not None and previous.status != "PLANNED"
                presence = Presence(
                    removed=not linked or gone,
                    installed=cp is not None and cp.connected_at is not None,
                    connected=cp is not None and cp.connected,
                    disconnected_at=None if cp is None else cp.disconnected_at,
                )
                status = evse_status(
                    [s.status for s in states if s.evse_id == evse_id and s.connector_id > 0],
                    charger_status,
                    presence,
                    now,
                    self.grace,
                )
                uid = evse_uid(cp_id, evse_id)
                if link is None or not linked:
                    # Nothing left to render from: the published object, now REMOVED.
                    assert previous is not None
                    rendered = _removed(previous.data)
                else:
                    rendered = render_evse(
                        self._facts(
                            cp_id,
                            evse_id,
                            uid,
                            link,
                            states,
                            status,
                            _capabilities(cp, switched_off.get(cp_id, set())),
                            (assigned, ad_hoc),
                            location_id,
                        )
                    )
                self._compare(
                    plan,
                    cp_id,
                    evse_id,
                    uid,
                    location_id,
                    rendered,
                    previous,
                    now,
                    new=stored is None,
                )
        for evse, _ in plan.evses:
            plan.touched.add(evse.location_id)
        # Pushes only for locations partners may see.
        plan.evse_pushes = [
            p for p in plan.evse_pushes if (loc := locations.get(p[0])) is not None and loc.publish
        ]
        return plan

    def _facts(
        self,
        cp_id: str,
        evse_id: int,
        uid: str,
        link: Any,
        states: list[Any],
        status: EvseStatus,
        capabilities: tuple[Capability, ...],
        assignments: tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]],
        location_id: str,
    ) -> EvseFacts:
        """What an EVSE is made of. `assignments`: the regular and the ad-hoc ones (the
        latter empty while payments are off)."""
        detail = link.evses.get(evse_id)
        spec = detail.spec(link.spec) if detail is not None else link.spec
        connector_ids = sorted(
            {s.connector_id for s in states if s.evse_id == evse_id and s.connector_id > 0}
        ) or [1]
        code = published_evse_code(
            detail.evse_code if detail is not None else None,
            self.identity.country_code,
            self.identity.party_id,
            cp_id,
            evse_id,
        )
        assigned, ad_hoc = assignments
        tariffs = [
            (
                _tariff_ids(assigned, uid, c, location_id),
                _tariff_ids(ad_hoc, uid, c, location_id),
            )
            for c in connector_ids
        ]
        capabilities, tariff_ids = _payable(capabilities, tariffs)
        return EvseFacts(
            uid=uid,
            evse_code=code,
            status=status,
            capabilities=capabilities,
            connectors=tuple(
                ConnectorFacts(c, spec, ids)
                for c, ids in zip(connector_ids, tariff_ids, strict=True)
            ),
        )

    @staticmethod
    def _assigned(assignments: list[Assignment]) -> dict[tuple[str, str], str]:
        return {(a.scope, a.target): a.tariff_id for a in assignments}

    def _compare(
        self,
        plan: _Plan,
        cp_id: str,
        evse_id: int,
        uid: str,
        location_id: str,
        rendered: dict[str, Any],
        previous: PublishedEvse | None,
        now: datetime,
        *,
        new: bool,
    ) -> None:
        data, change = stamp(rendered, None if previous is None else previous.data, now)
        if change is Change.NONE:
            return
        evse = PublishedEvse(
            charge_point_id=cp_id,
            evse_id=evse_id,
            uid=uid,
            location_id=location_id,
            status=data["status"],
            digest=digest(rendered),
            data=data,
            last_updated=now,
        )
        plan.evses.append((evse, new))
        plan.evse_pushes.append((location_id, data, change))

    def _moved_away(
        self,
        plan: _Plan,
        previous: PublishedEvse,
        locations: dict[str, Location],
        now: datetime,
    ) -> None:
        old = locations.get(previous.location_id)
        if old is not None and old.publish and previous.status != EvseStatus.REMOVED:
            data = {
                **previous.data,
                "status": EvseStatus.REMOVED.value,
                "last_updated": ocpi_datetime(now),
            }
            plan.evse_pushes.append((previous.location_id, data, Change.STATUS))
            plan.touched.add(previous.location_id)

    async def _enqueue(self, conn: Any, plan: _Plan, now: datetime) -> int:
        if not plan.evse_pushes and not plan.location_puts:
            return 0
        receivers = await partner_repo.registered_with_endpoint(
            conn, "locations", InterfaceRole.RECEIVER
        )
        if not receivers:
            return 0
        cc, pid = self.identity.country_code, self.identity.party_id
        pushes: list[Push] = []
        put_whole = {location_id for location_id, _ in plan.location_puts}
        for location_id, own in plan.location_puts:
            await location_repo.set_published_digest(conn, location_id, own)
            body = await self.location_object(conn, location_id, unpublished=True)
            if body is not None:
                pushes.append(
                    Push("locations", "PUT", f"{cc}/{pid}/{location_id}", body, location_id)
                )
        for location_id, data, change in plan.evse_pushes:
            if location_id in put_whole:
                continue  # the location's PUT carries its EVSEs
            path = f"{cc}/{pid}/{location_id}/{data['uid']}"
            if change is Change.STATUS:
                body = {"status": data["status"], "last_updated": data["last_updated"]}
                pushes.append(Push("locations", "PATCH", path, body, location_id))
            else:
                pushes.append(Push("locations", "PUT", path, data, location_id))
        count = 0
        # Only whole locations are paced (a bulk import's thousands of PUTs): an EVSE's
        # status or object goes at once, since partners show availability live. The
        # outbox sends one object's pushes in order, so an EVSE's push still waits for its
        # location's PUT when that is in the queue.
        step = timedelta(seconds=1 / self.push_rate) if self.push_rate > 0 and put_whole else None
        for partner, endpoint in receivers:
            base = endpoint.rstrip("/")
            at = now
            if step is not None:
                tail = await outbox_repo.last_waiting(conn, partner.id, "locations", now)
                at = now if tail is None else tail + step
            for push in pushes:
                whole = push.method == "PUT" and push.url == f"{cc}/{pid}/{push.object_key}"
                await outbox_repo.enqueue(
                    conn,
                    partner.id,
                    Push(
                        push.module,
                        push.method,
                        f"{base}/{push.url}",
                        push.body,
                        f"locations/{push.object_key}",
                        path=push.url,
                    ),
                    now,
                    due=at if whole else now,
                )
                if step is not None and whole:
                    at += step
                count += 1
        return count

    async def location_object(
        self, conn: Any, location_id: str, unpublished: bool = False
    ) -> dict[str, Any] | None:
        """The Location as served and pushed (None: unknown, or not published unless
        `unpublished`)."""
        location = await location_repo.get_any_case(conn, location_id)
        if location is None or not (location.publish or unpublished):
            return None
        evses = (await evse_repo.at_locations(conn, [location.id]))[location.id]
        return self.render(location, evses)

    async def unpublished_location(self, conn: Any, location_id: str) -> dict[str, Any] | None:
        """The Location, published or not (None: unknown): what a session or CDR at it
        embeds when it is pushed to a 2.1.1 partner (a roaming session may take place at a
        location that is not published)."""
        return await self.location_object(conn, location_id, unpublished=True)

    async def locations_211(
        self, conn: Any, location_ids: Iterable[str]
    ) -> dict[str, dict[str, Any] | None]:
        """Published locations in OCPI 2.1.1, by id as asked (None: unknown or not
        published), for the 2.1.1 Sessions and CDRs that embed them."""
        out: dict[str, dict[str, Any] | None] = {}
        for location_id in set(location_ids):
            body = await self.location_object(conn, location_id)
            out[location_id] = None if body is None else v211.location(body)
        return out

    # --- the served snapshot -------------------------------------------------------------

    def page(
        self,
        *,
        date_from: datetime | None,
        date_to: datetime | None,
        offset: int,
        limit: int,
    ) -> tuple[list[bytes], int] | None:
        """A page of published locations, encoded, in list order, with the total matching
        the date filters (inclusive from, exclusive to, on last_updated); None before the
        first pass built the snapshot. As fresh as the last pass (about a second)."""
        if self._snapshot is None:
            return None
        served = self._listed
        if date_from is not None or date_to is not None:
            served = [
                s
                for s in served
                if (date_from is None or s.last_updated >= date_from)
                and (date_to is None or s.last_updated < date_to)
            ]
        return [s.encoded for s in served[offset : offset + limit]], len(served)

    async def _reload(self) -> None:
        async with self._db.read() as conn:
            ids = [loc.id for loc in await location_repo.list_all(conn) if loc.publish]
        await self._refresh(set(ids), base={})

    async def _refresh(
        self, location_ids: set[str], base: dict[str, _Served] | None = None
    ) -> None:
        """Render these locations again from the database (dropping the ones that are gone
        or unpublished) into the snapshot (or into `base`, which then replaces it)."""
        if base is None:
            if self._snapshot is None or not location_ids:
                return
            base = self._snapshot
        ids = sorted(location_ids)
        rendered: dict[str, _Served | None] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with self._db.read() as conn:
                found = await location_repo.get_many(conn, chunk)
                evses = await evse_repo.at_locations(conn, list(found))
            for location_id in chunk:
                loc = found.get(location_id)
                if loc is None or not loc.publish or loc.created_at is None:
                    rendered[location_id] = None
                    continue
                body = self.render(loc, evses[location_id])
                rendered[location_id] = _Served(
                    (loc.created_at, loc.id),
                    loc.last_updated or loc.created_at,
                    orjson.dumps(body),
                )
        snapshot = dict(base)
        for location_id, served in rendered.items():
            if served is None:
                snapshot.pop(location_id, None)
            else:
                snapshot[location_id] = served
        self._listed = sorted(snapshot.values(), key=lambda s: s.key)
        self._snapshot = snapshot

    def _own(self, location: Location) -> dict[str, Any]:
        """What the location itself says (no EVSEs, no timestamps)."""
        return render_location(
            location,
            (),
            country_code=self.identity.country_code,
            party_id=self.identity.party_id,
            operator_name=self.identity.operator_name,
        )

    def render(self, location: Location, evses: list[PublishedEvse]) -> dict[str, Any]:
        body = render_location(
            location,
            (e.data for e in evses),
            country_code=self.identity.country_code,
            party_id=self.identity.party_id,
            operator_name=self.identity.operator_name,
        )
        stamps = [location.last_updated] if location.last_updated else []
        stamps += [e.last_updated for e in evses]
        if stamps:
            body["last_updated"] = ocpi_datetime(max(stamps))
        return body
