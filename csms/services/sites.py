"""Staff's side of smart charging: sites (grid connections) with their circuits and linked
chargers, caps (demand response, also from an OpenADR VEN through `CapSink`), time-of-use
and imported prices, what a session needs by when; and what `csms sites show` reads.

Validation, audit and storage. The load manager (csms.services.load_management) reads
the same tables and subscribes to `SiteService.on_changed`; allocation itself is not here.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.clock import Clock
from csms.core.errors import (
    InvalidInput,
    NotFound,
    SiteExists,
    UnknownChargePoint,
    UnknownLocation,
    UnknownSite,
    UnknownTransaction,
)
from csms.core.price_plan import parse_price_csv
from csms.core.sites import (
    MIN_CURRENT_A,
    ROOT,
    Cap,
    ChargingNeed,
    Circuit,
    Link,
    ProfileMode,
    Share,
    Site,
    SiteTree,
    check_tree,
    effective_a,
    phase_name,
)
from csms.core.transactions import TransactionState
from csms.storage import charge_points as cp_repo
from csms.storage import commands as audit_repo
from csms.storage import locations as location_repo
from csms.storage import sites as repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, WriteTx

log = structlog.get_logger("csms.sites")

# The audit log's `command` of each change staff (or a VTN) make to a site.
SITE_ADD = "site_add"
SITE_SET = "site_set"
SITE_REMOVE = "site_remove"
CIRCUIT_ADD = "circuit_add"
CIRCUIT_SET = "circuit_set"
CIRCUIT_REMOVE = "circuit_remove"
SITE_LINK = "site_link"
SITE_UNLINK = "site_unlink"
SITE_CAP = "site_cap"
SITE_UNCAP = "site_uncap"
SITE_PRICES = "site_prices"
CHARGING_NEED = "charging_need"
AUDIT_COMMANDS = (
    SITE_ADD,
    SITE_SET,
    SITE_REMOVE,
    CIRCUIT_ADD,
    CIRCUIT_SET,
    CIRCUIT_REMOVE,
    SITE_LINK,
    SITE_UNLINK,
    SITE_CAP,
    SITE_UNCAP,
    SITE_PRICES,
    CHARGING_NEED,
)
# Audit entries of a site (not of one charger) name it so in the charger column.
SITE_TARGET = "site:"

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_CURRENT_A = 10_000.0
MIN_VOLTAGE_V, MAX_VOLTAGE_V = 100.0, 1000.0
MAX_POWER_W = 1e9
MAX_PRIORITY = 100
MAX_PRICE_ROWS = 50_000
MAX_NEED_WH = 1_000_000.0
# How far ahead `show` lists imported prices.
PRICES_AHEAD = timedelta(hours=48)
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


# --- what staff read ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node of the tree as `show` prints it: the site itself (`ROOT`) or a circuit."""

    node: str
    parent: str | None  # None: the site; else ROOT or the parent circuit
    phases: tuple[int, ...]
    max_current_a: float
    max_power_w: float | None
    limit_a: float  # its own limit per phase (current, lowered by its power limit)
    effective_a: float  # under its ancestors' limits and the caps in force now
    allocated_a: tuple[float, float, float]  # the stored shares below it, per phase
    chargers: tuple[str, ...]  # linked directly under it


@dataclass(frozen=True, slots=True)
class SiteView:
    tree: SiteTree
    nodes: tuple[NodeView, ...]
    shares: tuple[Share, ...]
    caps: tuple[Cap, ...]  # in force now or later, by start
    slots: tuple[tuple[datetime, datetime, Decimal], ...]  # imported prices ahead
    now: datetime

    @property
    def site(self) -> Site:
        return self.tree.site

    @property
    def active_caps(self) -> tuple[Cap, ...]:
        return tuple(c for c in self.caps if c.active(self.now))


def cap_a(site: Site, cap: Cap) -> float:
    """A cap (watts over the site's phases) as amperes per phase."""
    return cap.limit_w / (site.phases * site.voltage_v)


def circuit_limit_a(site: Site, circuit: Circuit) -> float:
    return effective_a(circuit.max_current_a, circuit.max_power_w, circuit.phases, site.voltage_v)


def site_view(
    tree: SiteTree,
    caps: Sequence[Cap],
    shares: Sequence[Share],
    slots: Sequence[tuple[datetime, datetime, Decimal]],
    now: datetime,
) -> SiteView:
    """The tree with each node's limits and the current the stored shares allocate below
    it: root first, then circuits depth first (by name among siblings)."""
    site = tree.site
    root_limit = site.limit_a
    capped = [cap_a(site, c) for c in caps if c.active(now)]
    root_effective = min([root_limit, *capped])
    children: dict[str, list[Circuit]] = {}
    for circuit in tree.circuits:
        children.setdefault(circuit.parent or ROOT, []).append(circuit)
    parent_of = {c.name: c.parent or ROOT for c in tree.circuits}
    load: dict[str, list[float]] = {ROOT: [0.0, 0.0, 0.0]}
    for circuit in tree.circuits:
        load[circuit.name] = [0.0, 0.0, 0.0]
    for share in shares:
        node: str | None = share.node if share.node in load else ROOT
        granted = 0.0 if share.paused else share.granted_a
        seen: set[str] = set()
        while node is not None and node not in seen:
            seen.add(node)
            for phase in share.phases:
                load[node][phase] += granted
            node = None if node == ROOT else parent_of.get(node, ROOT)
    direct: dict[str, list[str]] = {}
    for link in tree.links:
        direct.setdefault(tree.node_of(link), []).append(link.charge_point_id)

    def triple(node: str) -> tuple[float, float, float]:
        a, b, c = (round(x, 2) for x in load[node])
        return (a, b, c)

    nodes = [
        NodeView(
            ROOT,
            None,
            site.phase_indexes,
            site.max_current_a,
            site.max_power_w,
            round(root_limit, 2),
            round(root_effective, 2),
            triple(ROOT),
            tuple(direct.get(ROOT, ())),
        )
    ]

    def walk(parent: str, above: float, depth: int) -> None:
        for circuit in sorted(children.get(parent, ()), key=lambda c: c.name):
            own = circuit_limit_a(site, circuit)
            effective = min(own, above)
            nodes.append(
                NodeView(
                    circuit.name,
                    parent,
                    circuit.phase_indexes,
                    circuit.max_current_a,
                    circuit.max_power_w,
                    round(own, 2),
                    round(effective, 2),
                    triple(circuit.name),
                    tuple(direct.get(circuit.name, ())),
                )
            )
            if depth < len(tree.circuits):
                walk(circuit.name, effective, depth + 1)

    walk(ROOT, root_effective, 0)
    return SiteView(tree, tuple(nodes), tuple(shares), tuple(caps), tuple(slots), now)


# --- checks -------------------------------------------------------------------------------


def check_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"{what} must be 1-64 letters, digits, '.', '_' or '-', not {name!r}")
    return name


def _check_current(value: float, what: str) -> None:
    if not math.isfinite(value) or value <= 0 or value > MAX_CURRENT_A:
        raise InvalidInput(f"{what} must be more than 0 and at most {MAX_CURRENT_A:g} A")


def _check_power(value: float | None, what: str) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0 or value > MAX_POWER_W):
        raise InvalidInput(f"{what} must be more than 0 W and at most {MAX_POWER_W:g} W")


def _check_phases(phases: int, what: str) -> None:
    if phases not in (1, 3):
        raise InvalidInput(f"{what}: phases must be 1 or 3, not {phases}")


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r} (IANA, e.g. Europe/Amsterdam)") from None
    return name


def check_site(site: Site) -> Site:
    check_name(site.id, "a site id")
    _check_phases(site.phases, f"site {site.id!r}")
    _check_current(site.max_current_a, f"site {site.id!r}: the current limit")
    _check_power(site.max_power_w, f"site {site.id!r}: the power limit")
    if not math.isfinite(site.voltage_v) or not MIN_VOLTAGE_V <= site.voltage_v <= MAX_VOLTAGE_V:
        raise InvalidInput(
            f"site {site.id!r}: the voltage must be {MIN_VOLTAGE_V:g} to {MAX_VOLTAGE_V:g} V"
        )
    if site.timezone is not None:
        check_timezone(site.timezone)
    return site


def check_circuit(circuit: Circuit) -> Circuit:
    check_name(circuit.name, "a circuit name")
    what = f"circuit {circuit.name!r}"
    _check_phases(circuit.phases, what)
    _check_current(circuit.max_current_a, f"{what}: the current limit")
    _check_power(circuit.max_power_w, f"{what}: the power limit")
    if circuit.phases == 3 and circuit.phase is not None:
        raise InvalidInput(f"{what}: a phase is given for 1-phase circuits only")
    if circuit.parent == circuit.name:
        raise InvalidInput(f"{what} is its own ancestor")
    return circuit


def _node_text(node: str) -> str:
    return "the site" if node == ROOT else f"circuit {node!r}"


def _phases_text(phases: Sequence[int]) -> str:
    return ",".join(phase_name(p) for p in phases)


def check_whole(tree: SiteTree, concerning: Collection[str] | None = None) -> list[str]:
    """InvalidInput when the tree cannot be allocated (an unknown parent, a cycle, a
    circuit on phases its parent lacks, a charger on a phase its node lacks); otherwise
    warnings for staff: a circuit (of `concerning` or under one of them; None: any) allowed
    more than its parent."""
    site = tree.site
    check_tree(site, tree.circuits)
    names = {c.name for c in tree.circuits}
    warnings: list[str] = []
    for circuit in tree.circuits:
        parent = circuit.parent or ROOT
        have = tree.node_phases(parent)
        if circuit.phases == 3 and have != (0, 1, 2):
            raise InvalidInput(
                f"circuit {circuit.name!r} is 3-phase but {_node_text(parent)} has only "
                f"{_phases_text(have)}"
            )
        if circuit.phases == 1:
            if circuit.phase is None and len(have) > 1:
                raise InvalidInput(
                    f"circuit {circuit.name!r} is 1-phase: say which phase it is wired to "
                    "(L1, L2 or L3)"
                )
            if circuit.phase is not None and circuit.phase not in have:
                raise InvalidInput(
                    f"circuit {circuit.name!r} is on {phase_name(circuit.phase)} but "
                    f"{_node_text(parent)} has only {_phases_text(have)}"
                )
        parent_limit = (
            site.limit_a
            if parent == ROOT
            else circuit_limit_a(site, next(c for c in tree.circuits if c.name == parent))
        )
        own = circuit_limit_a(site, circuit)
        mentioned = concerning is None or circuit.name in concerning or parent in concerning
        if own > parent_limit and mentioned:
            warnings.append(
                f"circuit {circuit.name!r} allows {own:g} A, more than {_node_text(parent)} "
                f"({parent_limit:g} A): the lower limit applies"
            )
    for link in tree.links:
        if link.circuit is not None and link.circuit not in names:
            raise InvalidInput(
                f"charger {link.charge_point_id!r}: site {site.id!r} has no circuit "
                f"{link.circuit!r}"
            )
        node = tree.node_of(link)
        have = tree.node_phases(node)
        if link.phase is not None and link.phase not in have:
            raise InvalidInput(
                f"charger {link.charge_point_id!r} is on {phase_name(link.phase)} but "
                f"{_node_text(node)} has only {_phases_text(have)}"
            )
    return warnings


def parse_daily_price(text: str) -> tuple[str, Decimal]:
    """`HH:MM=PRICE` (per kWh, from that time of day on) as ("07:00", Decimal("0.35"))."""
    at, sep, price = text.partition("=")
    at = at.strip()
    if not sep or not _TIME_OF_DAY.fullmatch(at):
        raise InvalidInput(f"a daily price is HH:MM=PRICE (e.g. 07:00=0.35), not {text!r}")
    return at, _price(price, f"the price at {at}")


def _price(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInput(f"{what} is not a number: {text.strip()!r}") from None
    if not value.is_finite() or abs(value) >= Decimal(10) ** 12:
        raise InvalidInput(f"{what} is not a usable price: {text.strip()!r}")
    return value


def check_daily_prices(schedule: Sequence[tuple[str, Decimal]]) -> tuple[tuple[str, Decimal], ...]:
    ordered = sorted(schedule)
    for (at, _), (again, _) in itertools.pairwise(ordered):
        if at == again:
            raise InvalidInput(f"two daily prices at {at}")
    return tuple(ordered)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _audit_source(cap_source: str) -> str:
    """The audit log's source of a cap's change: staff work through the CLI."""
    return "cli" if cap_source == "staff" else cap_source


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, ProfileMode):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _descendants(circuits: Sequence[Circuit], name: str) -> list[str]:
    """The circuit and every circuit below it."""
    out = [name]
    i = 0
    while i < len(out):
        out.extend(c.name for c in circuits if c.parent == out[i] and c.name not in out)
        i += 1
    return out


# --- the service --------------------------------------------------------------------------


class SiteService:
    """Staff's changes to sites, each audited and logged; `on_changed` hooks are called
    with the site's id after every committed change (the load manager's, in-process;
    another process notices through `csms.storage.sites.fingerprint`)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self.on_changed: list[Callable[[str], None]] = []

    def _changed(self, site_id: str) -> None:
        for hook in list(self.on_changed):
            try:
                hook(site_id)
            except Exception:  # a subscriber's bug must not undo the change
                log.exception("site_change_hook_failed", site_id=site_id)

    async def _tree(self, conn: AsyncConnection, site_id: str) -> SiteTree:
        found = await repo.tree(conn, site_id)
        if found is None:
            raise UnknownSite(f"no site {site_id!r} (see `csms sites list`)")
        return found

    async def _check_location(self, conn: AsyncConnection, location_id: str | None) -> None:
        if location_id is not None and await location_repo.get(conn, location_id) is None:
            raise UnknownLocation(f"no location {location_id!r} (see `csms locations list`)")

    # --- sites ---------------------------------------------------------------------------

    async def add_site(
        self, site: Site, *, requested_by: str | None = None, source: str = "cli"
    ) -> None:
        site = check_site(replace(site, daily_prices=check_daily_prices(site.daily_prices)))
        now = self._clock()

        async def unit(w: WriteTx) -> int:
            conn = await w.connection()
            if await repo.get_site(conn, site.id) is not None:
                raise SiteExists(f"site {site.id!r} exists (change it with `csms sites set`)")
            await self._check_location(conn, site.location_id)
            await repo.save_site(conn, site, now)
            return await _audit(
                conn,
                site.id,
                SITE_ADD,
                _site_params(site),
                f"site {site.id} added",
                source,
                requested_by,
                now,
            )

        entry = await self._db.write(unit)
        self._done("site_added", site.id, entry, requested_by)

    async def update_site(
        self,
        site_id: str,
        changes: Mapping[str, Any],
        *,
        requested_by: str | None = None,
        source: str = "cli",
    ) -> tuple[Site, list[str]]:
        """Change the given Site fields (max_current_a, phases, voltage_v, max_power_w,
        location_id, timezone); the whole tree is checked again. Returns the site and
        warnings."""
        allowed = {"max_current_a", "phases", "voltage_v", "max_power_w", "location_id", "timezone"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"not site fields: {sorted(unknown)}")
        if not changes:
            raise InvalidInput("nothing to change: give at least one option")
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[Site, list[str], int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            site = check_site(replace(tree.site, **changes))
            if "location_id" in changes:
                await self._check_location(conn, site.location_id)
            warnings = check_whole(replace(tree, site=site))
            await repo.save_site(conn, site, now)
            entry = await _audit(
                conn,
                site_id,
                SITE_SET,
                {k: _jsonable(v) for k, v in changes.items()},
                f"site {site_id} changed: {', '.join(sorted(changes))}",
                source,
                requested_by,
                now,
            )
            return site, warnings, entry

        site, warnings, entry = await self._db.write(unit)
        self._done("site_updated", site_id, entry, requested_by, changed=sorted(changes))
        return site, warnings

    async def remove_site(
        self,
        site_id: str,
        *,
        force: bool = False,
        requested_by: str | None = None,
        source: str = "cli",
    ) -> list[str]:
        """Forget a site with its circuits, caps and prices. Chargers linked to it keep
        the site from going unless `force` (they are unlinked: no longer managed). Returns
        the chargers unlinked."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[list[str], int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            linked = [link.charge_point_id for link in tree.links]
            if linked and not force:
                raise InvalidInput(
                    f"site {site_id!r} has {len(linked)} linked charger"
                    f"{'s' if len(linked) > 1 else ''} ({', '.join(linked[:5])}"
                    f"{', ...' if len(linked) > 5 else ''}): unlink them first, or remove "
                    "with --force (they are no longer load-managed)"
                )
            await repo.remove_site(conn, site_id)
            entry = await _audit(
                conn,
                site_id,
                SITE_REMOVE,
                {"unlinked": linked},
                f"site {site_id} removed" + (f", unlinked {', '.join(linked)}" if linked else ""),
                source,
                requested_by,
                now,
            )
            return linked, entry

        linked, entry = await self._db.write(unit)
        self._done("site_removed", site_id, entry, requested_by, unlinked=linked)
        return linked

    # --- circuits ------------------------------------------------------------------------

    async def add_circuit(
        self, circuit: Circuit, *, requested_by: str | None = None, source: str = "cli"
    ) -> list[str]:
        """Add a circuit under the site or one of its circuits; a 1-phase circuit under a
        1-phase node takes that node's phase. Returns warnings."""
        circuit = check_circuit(circuit)
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[list[str], int]:
            conn = await w.connection()
            tree = await self._tree(conn, circuit.site_id)
            if any(c.name == circuit.name for c in tree.circuits):
                raise InvalidInput(
                    f"site {circuit.site_id!r} has a circuit {circuit.name!r} "
                    "(change it with `csms sites set-circuit`)"
                )
            if circuit.parent is not None and all(c.name != circuit.parent for c in tree.circuits):
                raise NotFound(f"site {circuit.site_id!r} has no circuit {circuit.parent!r}")
            added = _with_phase(tree, circuit)
            warnings = check_whole(replace(tree, circuits=(*tree.circuits, added)), {added.name})
            await repo.save_circuit(conn, added, now)
            entry = await _audit(
                conn,
                circuit.site_id,
                CIRCUIT_ADD,
                _circuit_params(added),
                f"circuit {added.name} added to site {added.site_id}",
                source,
                requested_by,
                now,
            )
            return warnings, entry

        warnings, entry = await self._db.write(unit)
        self._done("circuit_added", circuit.site_id, entry, requested_by, circuit=circuit.name)
        return warnings

    async def update_circuit(
        self,
        site_id: str,
        name: str,
        changes: Mapping[str, Any],
        *,
        requested_by: str | None = None,
        source: str = "cli",
    ) -> list[str]:
        """Change the given Circuit fields (max_current_a, max_power_w, phases, phase,
        parent); a new parent must not make a cycle. Returns warnings."""
        allowed = {"max_current_a", "max_power_w", "phases", "phase", "parent"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"not circuit fields: {sorted(unknown)}")
        if not changes:
            raise InvalidInput("nothing to change: give at least one option")
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[list[str], int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            old = _circuit(tree, name)
            new = replace(old, **changes)
            if new.phases == 3:
                new = replace(new, phase=None)
            new = _with_phase(tree, check_circuit(new))
            if new.parent is not None and all(c.name != new.parent for c in tree.circuits):
                raise NotFound(f"site {site_id!r} has no circuit {new.parent!r}")
            circuits = tuple(new if c.name == name else c for c in tree.circuits)
            warnings = check_whole(replace(tree, circuits=circuits), {name})
            await repo.save_circuit(conn, new, now)
            entry = await _audit(
                conn,
                site_id,
                CIRCUIT_SET,
                {"circuit": name, **{k: _jsonable(v) for k, v in changes.items()}},
                f"circuit {name} of site {site_id} changed: {', '.join(sorted(changes))}",
                source,
                requested_by,
                now,
            )
            return warnings, entry

        warnings, entry = await self._db.write(unit)
        self._done("circuit_updated", site_id, entry, requested_by, circuit=name)
        return warnings

    async def remove_circuit(
        self,
        site_id: str,
        name: str,
        *,
        force: bool = False,
        requested_by: str | None = None,
        source: str = "cli",
    ) -> tuple[list[str], list[str]]:
        """Remove a circuit. One with circuits or chargers below it needs `force`, which
        removes those circuits too and unlinks the chargers. Returns (circuits removed,
        chargers unlinked)."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[list[str], list[str], int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            _circuit(tree, name)
            gone = _descendants(tree.circuits, name)
            linked = [link.charge_point_id for link in tree.links if link.circuit in gone]
            if (len(gone) > 1 or linked) and not force:
                below = [f"circuit {c}" for c in gone[1:]] + [f"charger {c}" for c in linked]
                raise InvalidInput(
                    f"circuit {name!r} of site {site_id!r} has {', '.join(below[:5])}"
                    f"{', ...' if len(below) > 5 else ''} below it: remove or move them "
                    "first, or remove with --force"
                )
            await repo.remove_circuits(conn, site_id, gone, now)
            await repo.unlink(conn, linked, now)
            entry = await _audit(
                conn,
                site_id,
                CIRCUIT_REMOVE,
                {"circuit": name, "removed": gone, "unlinked": linked},
                f"circuit {name} of site {site_id} removed"
                + (f" with {', '.join(gone[1:])}" if len(gone) > 1 else "")
                + (f", unlinked {', '.join(linked)}" if linked else ""),
                source,
                requested_by,
                now,
            )
            return gone, linked, entry

        gone, linked, entry = await self._db.write(unit)
        self._done("circuit_removed", site_id, entry, requested_by, circuits=gone, unlinked=linked)
        return gone, linked

    # --- chargers ------------------------------------------------------------------------

    async def link(
        self,
        site_id: str,
        cp_id: str,
        *,
        circuit: str | None = None,
        phase: int | None = None,
        max_current_a: float | None = None,
        profile_mode: ProfileMode = ProfileMode.AUTO,
        requested_by: str | None = None,
        source: str = "cli",
    ) -> tuple[Link, list[str]]:
        """Link a charger under a site (or one of its circuits), managed (again). Linking
        a linked charger again replaces how it is linked; one on another site is refused.
        Returns the link and warnings."""
        if max_current_a is not None:
            _check_current(max_current_a, f"charger {cp_id!r}: the rated current")
            if max_current_a < MIN_CURRENT_A:
                raise InvalidInput(
                    f"charger {cp_id!r}: the rated current must be at least {MIN_CURRENT_A:g} A"
                )
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[Link, list[str], int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            if await cp_repo.get(conn, cp_id) is None:
                raise UnknownChargePoint(f"no charger {cp_id!r} (add it with `csms chargers add`)")
            before = await repo.link_of(conn, cp_id)
            if before is not None and before.site_id != site_id:
                raise InvalidInput(
                    f"charger {cp_id!r} is linked to site {before.site_id!r}: a charger "
                    f"belongs to one site (`csms sites unlink --charger {cp_id}` first)"
                )
            if circuit is not None:
                _circuit(tree, circuit)
            link = Link(cp_id, site_id, circuit, phase, max_current_a, profile_mode)
            node = tree.node_of(link)
            links = (*(x for x in tree.links if x.charge_point_id != cp_id), link)
            warnings = check_whole(replace(tree, links=links), ())
            limit = (
                tree.site.limit_a
                if node == ROOT
                else circuit_limit_a(tree.site, _circuit(tree, node))
            )
            if max_current_a is not None and max_current_a > limit:
                warnings.append(
                    f"charger {cp_id!r} is rated {max_current_a:g} A, more than "
                    f"{_node_text(node)} ({limit:g} A): the lower limit applies"
                )
            await repo.save_link(conn, link, now)
            entry = await _audit(
                conn,
                cp_id,
                SITE_LINK,
                {
                    "site": site_id,
                    "circuit": circuit,
                    "phase": None if phase is None else phase_name(phase),
                    "max_current_a": max_current_a,
                    "profile_mode": profile_mode.value,
                },
                f"charger {cp_id} linked to site {site_id}"
                + (f" circuit {circuit}" if circuit else ""),
                source,
                requested_by,
                now,
            )
            return link, warnings, entry

        link, warnings, entry = await self._db.write(unit)
        self._done("charger_linked", site_id, entry, requested_by, charge_point_id=cp_id)
        return link, warnings

    async def unlink(
        self, cp_id: str, *, requested_by: str | None = None, source: str = "cli"
    ) -> str:
        """Take a charger off its site (it is no longer load-managed); returns the site."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[str, int]:
            conn = await w.connection()
            before = await repo.link_of(conn, cp_id)
            if before is None:
                raise InvalidInput(f"charger {cp_id!r} is linked to no site")
            await repo.unlink(conn, [cp_id], now)
            entry = await _audit(
                conn,
                cp_id,
                SITE_UNLINK,
                {"site": before.site_id},
                f"charger {cp_id} unlinked from site {before.site_id}",
                source,
                requested_by,
                now,
            )
            return before.site_id, entry

        site_id, entry = await self._db.write(unit)
        self._done("charger_unlinked", site_id, entry, requested_by, charge_point_id=cp_id)
        return site_id

    # --- caps (demand response) ------------------------------------------------------------

    async def add_cap(
        self,
        site: str,
        limit_w: float,
        start: datetime,
        end: datetime,
        *,
        source: str,
        reference: str | None,
        requested_by: str,
        reason: str | None = None,
    ) -> int:
        """Cap a site at `limit_w` (over all its phases) from `start` until `end`; returns
        the cap's id. (`CapSink` for an OpenADR VEN; staff use it through the CLI.)"""
        if not math.isfinite(limit_w) or limit_w < 0 or limit_w > MAX_POWER_W:
            raise InvalidInput(f"a cap must be 0 to {MAX_POWER_W:g} W, not {limit_w:g}")
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("naive datetime given for a cap")
        if end <= start:
            raise InvalidInput("a cap must end after it starts")
        now = self._clock()
        if end <= now:
            raise InvalidInput(f"a cap must end in the future, not at {_iso(end)}")
        if reason is not None and len(reason) > 300:
            raise InvalidInput("a cap's reason is at most 300 characters")
        who = requested_by or source

        async def unit(w: WriteTx) -> tuple[Cap, int]:
            conn = await w.connection()
            await self._tree(conn, site)
            cap = await repo.add_cap(
                conn,
                site,
                limit_w,
                start,
                end,
                source=source,
                requested_by=who,
                reference=reference,
                reason=reason,
                now=now,
            )
            entry = await _audit(
                conn,
                site,
                SITE_CAP,
                {
                    "cap": cap.id,
                    "limit_w": limit_w,
                    "from": _iso(start),
                    "until": _iso(end),
                    "reference": reference,
                    "reason": reason,
                },
                f"site {site} capped at {limit_w / 1000:g} kW from {_iso(start)} "
                f"until {_iso(end)} (cap {cap.id})",
                _audit_source(source),
                who,
                now,
            )
            return cap, entry

        cap, entry = await self._db.write(unit)
        self._done(
            "site_capped",
            site,
            entry,
            who,
            cap_id=cap.id,
            limit_w=limit_w,
            start=_iso(start),
            end=_iso(end),
            cap_source=source,
            reference=reference,
        )
        return cap.id

    async def cancel_cap(
        self, site: str, *, source: str, reference: str, requested_by: str
    ) -> bool:
        """Cancel the site's caps from `source` with this reference (a reference ending in
        ':' cancels every one starting with it); False when none was in force or ahead
        (or there is no such site)."""
        return bool(
            await self._cancel(site, source=source, reference=reference, requested_by=requested_by)
        )

    async def remove_cap(self, site: str, cap_id: int, *, requested_by: str | None = None) -> None:
        """Cancel one cap by its id (staff): it must be the site's and not over."""
        if not await self._cancel(site, cap_id=cap_id, requested_by=requested_by):
            raise InvalidInput(f"cap {cap_id} is no longer in force")

    async def _cancel(
        self,
        site: str,
        *,
        cap_id: int | None = None,
        source: str | None = None,
        reference: str | None = None,
        requested_by: str | None,
    ) -> list[int]:
        now = self._clock()
        audit_source = _audit_source(source or "staff")

        async def unit(w: WriteTx) -> tuple[list[int], int | None]:
            conn = await w.connection()
            if cap_id is not None:
                await self._tree(conn, site)
                found = await repo.get_cap(conn, cap_id)
                if found is None or found[0].site_id != site:
                    raise NotFound(f"site {site!r} has no cap {cap_id} (see `csms sites caps`)")
                cap, cancelled_at = found
                if cancelled_at is not None:
                    raise InvalidInput(f"cap {cap_id} was cancelled already")
                if cap.end_at <= now:
                    raise InvalidInput(f"cap {cap_id} is over (it ended {_iso(cap.end_at)})")
            elif await repo.get_site(conn, site) is None:
                return [], None
            ids = await repo.cancel_caps(
                conn, site, now=now, cap_id=cap_id, source=source, reference=reference
            )
            if not ids:
                return [], None
            entry = await _audit(
                conn,
                site,
                SITE_UNCAP,
                {"caps": ids, "reference": reference},
                f"site {site}: cap {', '.join(map(str, ids))} cancelled",
                audit_source,
                requested_by,
                now,
            )
            return ids, entry

        ids, entry = await self._db.write(unit)
        if entry is not None:
            self._done("site_cap_cancelled", site, entry, requested_by, caps=ids)
        return ids

    async def caps(
        self, site_id: str, *, history: bool = False, limit: int = 100
    ) -> list[tuple[Cap, datetime | None]]:
        """The site's caps in force or ahead (by start), or with `history` every one, the
        latest added first, with when each was cancelled."""
        now = self._clock()
        async with self._db.read() as conn:
            await self._tree(conn, site_id)
            if history:
                return await repo.cap_history(conn, site_id, limit)
            ahead: list[tuple[Cap, datetime | None]] = [
                (c, None) for c in await repo.caps(conn, now, site_id)
            ]
            return ahead[:limit]

    async def cap(self, cap_id: int) -> tuple[Cap, datetime | None]:
        """One cap by id, with when it was cancelled (None: it was not)."""
        async with self._db.read() as conn:
            found = await repo.get_cap(conn, cap_id)
        if found is None:
            raise NotFound(f"no cap {cap_id}")
        return found

    # --- prices --------------------------------------------------------------------------

    async def set_daily_prices(
        self,
        site_id: str,
        schedule: Sequence[tuple[str, Decimal]],
        timezone: str | None = None,
        *,
        requested_by: str | None = None,
    ) -> Site:
        """A price per kWh by time of day (each from its time on, every day) in `timezone`
        (default: what the site had, else its location's, else UTC). An empty schedule
        with no timezone clears it."""
        schedule = check_daily_prices(schedule)
        if timezone is not None:
            check_timezone(timezone)
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[Site, int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            zone = timezone or tree.site.timezone
            if zone is None and tree.site.location_id is not None:
                location = await location_repo.get(conn, tree.site.location_id)
                zone = None if location is None else location.time_zone
            site = replace(tree.site, daily_prices=schedule, timezone=zone)
            await repo.save_site(conn, site, now)
            entry = await _audit(
                conn,
                site_id,
                SITE_PRICES,
                {"daily": [[at, str(p)] for at, p in schedule], "timezone": zone},
                f"site {site_id}: daily prices "
                + (", ".join(f"{at} {p}" for at, p in schedule) or "cleared")
                + (f" ({zone})" if zone else ""),
                "cli",
                requested_by,
                now,
            )
            return site, entry

        site, entry = await self._db.write(unit)
        self._done("site_prices_set", site_id, entry, requested_by, daily=len(schedule))
        return site

    async def import_prices(
        self, site_id: str, text: str, *, requested_by: str | None = None
    ) -> tuple[int, int]:
        """Day-ahead prices from CSV text (csms.core.price_plan.parse_price_csv); the stored
        slots they overlap are replaced. Returns (slots stored, slots replaced)."""
        if text.count("\n") > MAX_PRICE_ROWS + 1:
            raise InvalidInput(f"at most {MAX_PRICE_ROWS} prices at once")
        slots = [(s.start, s.end, s.price) for s in parse_price_csv(text)]
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[int, int]:
            conn = await w.connection()
            await self._tree(conn, site_id)
            replaced = await repo.replace_prices(conn, site_id, slots, now)
            entry = await _audit(
                conn,
                site_id,
                SITE_PRICES,
                {
                    "imported": len(slots),
                    "from": _iso(slots[0][0]),
                    "until": _iso(slots[-1][1]),
                    "replaced": replaced,
                },
                f"site {site_id}: {len(slots)} prices imported from "
                f"{_iso(slots[0][0])} until {_iso(slots[-1][1])}",
                "cli",
                requested_by,
                now,
            )
            return replaced, entry

        replaced, entry = await self._db.write(unit)
        self._done("site_prices_imported", site_id, entry, requested_by, slots=len(slots))
        return len(slots), replaced

    async def clear_prices(self, site_id: str, *, requested_by: str | None = None) -> int:
        """Drop the daily schedule and every imported price; how many slots went."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[int, int]:
            conn = await w.connection()
            tree = await self._tree(conn, site_id)
            await repo.save_site(conn, replace(tree.site, daily_prices=()), now)
            dropped = await repo.clear_prices(conn, site_id, now)
            entry = await _audit(
                conn,
                site_id,
                SITE_PRICES,
                {"cleared": dropped},
                f"site {site_id}: prices cleared",
                "cli",
                requested_by,
                now,
            )
            return dropped, entry

        dropped, entry = await self._db.write(unit)
        self._done("site_prices_cleared", site_id, entry, requested_by)
        return dropped

    # --- what a session needs --------------------------------------------------------------

    async def set_need(
        self,
        tx_id: int,
        *,
        departure: datetime | None = None,
        energy_wh: float | None = None,
        priority: int | None = None,
        requested_by: str | None = None,
    ) -> ChargingNeed:
        """Say (as staff) when a running session leaves, how much energy it needs and its
        priority; what is not given stays as stored (the EV may have said it)."""
        if departure is None and energy_wh is None and priority is None:
            raise InvalidInput("nothing to set: give a departure, an energy or a priority")
        if energy_wh is not None and (
            not math.isfinite(energy_wh) or not 0 < energy_wh <= MAX_NEED_WH
        ):
            raise InvalidInput(f"the energy must be more than 0 and at most {MAX_NEED_WH:g} Wh")
        if priority is not None:
            check_priority(priority)
        now = self._clock()
        if departure is not None and departure <= now:
            raise InvalidInput(f"the departure must be in the future, not {_iso(departure)}")

        async def unit(w: WriteTx) -> tuple[ChargingNeed, str, int]:
            conn = await w.connection()
            tx = await tx_repo.get(conn, tx_id)
            if tx is None:
                raise UnknownTransaction(f"no transaction {tx_id}")
            if tx.state is not TransactionState.ACTIVE:
                raise InvalidInput(f"transaction {tx_id} has ended")
            need = await repo.set_need(
                conn, ChargingNeed(tx_id, departure, energy_wh, priority, "staff"), now
            )
            link = await repo.link_of(conn, tx.charge_point_id)
            entry = await _audit(
                conn,
                tx.charge_point_id,
                CHARGING_NEED,
                {
                    "transaction": tx_id,
                    "departure": None if departure is None else _iso(departure),
                    "energy_wh": energy_wh,
                    "priority": priority,
                },
                f"transaction {tx_id}: charging need set",
                "cli",
                requested_by,
                now,
            )
            return need, "" if link is None else link.site_id, entry

        need, site_id, entry = await self._db.write(unit)
        self._done("charging_need_set", site_id, entry, requested_by, transaction_id=tx_id)
        return need

    # --- reads ---------------------------------------------------------------------------

    async def show(self, site_id: str) -> SiteView:
        now = self._clock()
        async with self._db.read() as conn:
            tree = await self._tree(conn, site_id)
            return await _view(conn, tree, now)

    async def sites(self, *, newest_first: bool = False) -> list[SiteView]:
        now = self._clock()
        async with self._db.read() as conn:
            order = await repo.site_ids(conn, newest_first=newest_first)
            found = {t.site.id: t for t in await repo.trees(conn)}
            return [await _view(conn, found[i], now) for i in order if i in found]

    # --- after a change ------------------------------------------------------------------

    def _done(
        self, event: str, site_id: str, entry: int, requested_by: str | None, **fields: Any
    ) -> None:
        log.info(
            event, site_id=site_id or None, requested_by=requested_by, audit_id=entry, **fields
        )
        if site_id:
            self._changed(site_id)


def check_priority(priority: int) -> int:
    if not 0 <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"a priority must be 0 to {MAX_PRIORITY}, not {priority}")
    return priority


def _circuit(tree: SiteTree, name: str) -> Circuit:
    for circuit in tree.circuits:
        if circuit.name == name:
            return circuit
    raise NotFound(f"site {tree.site.id!r} has no circuit {name!r}")


def _with_phase(tree: SiteTree, circuit: Circuit) -> Circuit:
    """A 1-phase circuit under a node of one phase is on that phase."""
    if circuit.phases != 1 or circuit.phase is not None:
        return circuit
    have = tree.node_phases(circuit.parent or ROOT) if _known(tree, circuit.parent) else ()
    return replace(circuit, phase=have[0]) if len(have) == 1 else circuit


def _known(tree: SiteTree, parent: str | None) -> bool:
    return parent is None or any(c.name == parent for c in tree.circuits)


async def _view(conn: AsyncConnection, tree: SiteTree, now: datetime) -> SiteView:
    site_id = tree.site.id
    caps = await repo.caps(conn, now, site_id)
    shares = await repo.shares(conn, site_id)
    slots = await repo.price_slots(conn, site_id, now, now + PRICES_AHEAD)
    return site_view(tree, caps, shares, slots, now)


def _site_params(site: Site) -> dict[str, Any]:
    return {
        "max_current_a": site.max_current_a,
        "phases": site.phases,
        "voltage_v": site.voltage_v,
        "max_power_w": site.max_power_w,
        "location": site.location_id,
    }


def _circuit_params(circuit: Circuit) -> dict[str, Any]:
    return {
        "circuit": circuit.name,
        "parent": circuit.parent,
        "max_current_a": circuit.max_current_a,
        "max_power_w": circuit.max_power_w,
        "phases": circuit.phases,
        "phase": None if circuit.phase is None else phase_name(circuit.phase),
    }


async def _audit(
    conn: AsyncConnection,
    target: str,
    command: str,
    params: dict[str, Any],
    message: str,
    source: str,
    requested_by: str | None,
    now: datetime,
) -> int:
    """Record a change in the audit log, done at once: `target` is the charger it concerns,
    or the site (`site:ID`)."""
    is_site = command not in (SITE_LINK, SITE_UNLINK, CHARGING_NEED)
    entry = await audit_repo.record_change(
        conn,
        cp_id=f"{SITE_TARGET}{target}" if is_site else target,
        command=command,
        params=params,
        message=message,
        source=source,
        requested_by=requested_by,
        now=now,
    )
    return entry
