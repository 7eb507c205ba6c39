"""Smart charging's arithmetic: who of the sessions under a site tree may charge and how many
amperes per phase each gets, so that no phase of any node is ever allocated above its limit.

Pure: the caller passes the tree, the sessions, the time and the previous call's state; no
clock, no I/O, no logging. Enforcement (profiles, retries) lives in csms.services.

The steps of `allocate`, each explained where it is done:

1. `_Tree`, `_paths`: the tree and the demands (ValueError when malformed).
2. `_claims`: lending. A session that draws well below its last grant claims only what it
   draws plus a margin; the rest goes to the others until it draws near its grant again.
3. `_choose`: who runs. Every running session needs `min_a` on each of its phases at every
   node up to the root; when not everyone fits, lower priorities pause first and equal
   priorities take turns (`rotate_after_s`), without starving anyone.
4. `_fill`: how much. Weighted max-min fair water-filling (weight 1 + priority) with a floor
   of `min_a` and each session's claim as its ceiling; a 3-phase session gets the same
   current on its three phases.
5. Grants are rounded down to 0.1 A.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "Allocation",
    "AllocationState",
    "Demand",
    "SessionTrack",
    "SiteNode",
    "allocate",
]

PHASES = (0, 1, 2)
# Grants are whole multiples of this (amperes); rounding is always down.
STEP_A = 0.1
# Float noise tolerated when comparing sums with limits (amperes).
EPSILON = 1e-9
# A value this close below a multiple of STEP_A is taken as that multiple: 16/2 computed as
# 7.999999999 is 8.0, not 7.9 (any excess this causes is removed by `_repair`).
ROUND_SLACK = 1e-6
# A lending session claims its full share again when it draws within this of its grant
# (never more than half the lending margin, so that lending and taking back cannot flap).
TAKE_BACK_A = 1.0


@dataclass(frozen=True, slots=True)
class SiteNode:
    """A node of the site tree: the grid connection (the root) or a circuit."""

    id: str  # unique in the tree ("" is not allowed)
    parent: str | None  # None: the root (the site's grid connection); exactly one root
    limit_a: float  # per phase
    # Phases present at this node, e.g. (1,) for a 1-phase circuit on L2; a subset of its
    # parent's phases.
    phases: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class Demand:
    """A charging session (or an unmanaged charger) that draws current under a node."""

    key: int  # transaction id
    node: str  # the node its charger hangs under (site root or a circuit)
    phases: tuple[int, ...]  # supply phases it draws on; subset of its node's phases
    # Per phase: the EVSE's rated maximum (lowered by the EV's when known). A managed demand
    # whose maximum is below min_a can never run within the rules: it stays paused.
    max_a: float
    priority: int = 0  # higher first (paused last; larger share: weight 1 + priority, >= 1)
    measured_a: float | None = None  # highest per-phase current measured lately (None: unknown)
    reserved: bool = False  # unmanaged charger: always counted at max_a, never paused/allocated


@dataclass(frozen=True, slots=True)
class SessionTrack:
    """What `allocate` remembers of one session between calls (times are the `now` values
    passed in)."""

    running: bool
    # When it started running (running) or when it began to wait (paused).
    since: float
    # Whether it has ever run: a session paused after running waits a full turn before it
    # may take another's place, one that never ran may at once.
    ran: bool
    grant: float  # its last grant (0.0 while paused)
    # When its grant last went up (or it started running): its measured draw is trusted to
    # show what it takes only `lend_after_s` after that, once the charger applied the grant.
    raised_at: float
    # Its claim while it lends current it does not draw (None: it claims its full share).
    lend_cap: float | None


@dataclass(frozen=True, slots=True)
class AllocationState:
    """Opaque to callers: pass the last Allocation's state back as `previous`."""

    tracks: Mapping[int, SessionTrack] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Allocation:
    grants: Mapping[int, float]  # key -> A per phase (0.0 = paused); reserved ones get max_a
    paused: frozenset[int]
    # node id -> allocated A on L1, L2, L3 (incl. reserved, incl. descendants)
    load: Mapping[str, tuple[float, float, float]]
    state: AllocationState  # opaque; pass back as `previous` next time
    # key -> the most a running session asked for: its max_a, or less while it lends current
    # it does not draw. A grant below its claim means a limit on its way was reached.
    claims: Mapping[int, float] = field(default_factory=dict)
    # Keys of the running sessions whose claim is lowered because they lend current.
    lending: frozenset[int] = frozenset()


def allocate(
    nodes: Sequence[SiteNode],
    demands: Sequence[Demand],
    *,
    now: float,
    previous: AllocationState | None = None,
    min_a: float = 6.0,
    rotate_after_s: float = 300.0,
    lend_margin_a: float = 2.0,
    lend_after_s: float = 10.0,
) -> Allocation:
    """Share the site's current among `demands`; see the module docstring for the steps.

    `now` is any monotonic clock in seconds (the same across calls). `lend_after_s` is how
    long a raised grant stands before the session's measured draw may lend part of it: a
    meter reading taken before the charger applied the new limit shows the old one.
    Raises ValueError when the tree or a demand is malformed.
    """
    for name, value in (
        ("now", now),
        ("min_a", min_a),
        ("rotate_after_s", rotate_after_s),
        ("lend_margin_a", lend_margin_a),
        ("lend_after_s", lend_after_s),
    ):
        if not math.isfinite(value) or (name != "now" and value < 0):
            raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    tree = _Tree(nodes)
    paths = _paths(tree, demands)
    tracks = previous.tracks if previous is not None else {}

    # Reserved demands come off every limit first. Constraints are (node, phase) pairs,
    # numbered 3 * node index + phase; a phase a node lacks has no limit (no one draws on it).
    reserved = [0.0] * len(tree.limits)
    for demand in demands:
        if demand.reserved:
            for c in paths[demand.key]:
                reserved[c] += demand.max_a
    avail = [limit - taken for limit, taken in zip(tree.limits, reserved, strict=True)]

    managed = [d for d in demands if not d.reserved]
    claims, lending = _claims(managed, tracks, now, min_a, lend_margin_a, lend_after_s)
    running = _choose(managed, paths, avail, tracks, now, min_a, rotate_after_s)
    ordered = [d for d in managed if d.key in running]
    values = _fill(
        avail,
        [paths[d.key] for d in ordered],
        [float(max(1, 1 + d.priority)) for d in ordered],
        [claims[d.key] for d in ordered],
        min_a,
    )
    grants: dict[int, float] = {}
    for demand, value in zip(ordered, values, strict=True):
        rounded = math.floor(value / STEP_A + ROUND_SLACK) * STEP_A
        grants[demand.key] = min(claims[demand.key], max(min_a, round(rounded, 1)))
    load = reserved.copy()
    for key, grant in grants.items():
        for c in paths[key]:
            load[c] += grant
    if any(used > limit + EPSILON for used, limit in zip(load, tree.limits, strict=True)):
        _repair(ordered, paths, load, tree.limits, grants, min_a)

    result: dict[int, float] = {}
    for demand in demands:
        result[demand.key] = demand.max_a if demand.reserved else grants.get(demand.key, 0.0)

    new_tracks: dict[int, SessionTrack] = {}
    for demand in managed:
        old = tracks.get(demand.key)
        grant = result[demand.key]
        is_running = demand.key in running
        since = now if old is None or old.running != is_running else old.since
        raised = old is None or not old.running or grant > old.grant
        new_tracks[demand.key] = SessionTrack(
            running=is_running,
            since=since,
            ran=is_running or (old is not None and old.ran),
            grant=grant,
            raised_at=now if (is_running and raised) or old is None else old.raised_at,
            lend_cap=lending.get(demand.key) if is_running else None,
        )

    return Allocation(
        grants=MappingProxyType(result),
        paused=frozenset(d.key for d in managed if d.key not in running),
        load=MappingProxyType(
            {
                # Rounded to the micro-ampere: the sums of 0.1 A steps read as such.
                node_id: (
                    round(load[3 * i], 6),
                    round(load[3 * i + 1], 6),
                    round(load[3 * i + 2], 6),
                )
                for i, node_id in enumerate(tree.ids)
            }
        ),
        state=AllocationState(MappingProxyType(new_tracks)),
        claims=MappingProxyType({key: claims[key] for key in running}),
        lending=frozenset(key for key in running if key in lending),
    )


# --- the tree --------------------------------------------------------------------------------


class _Tree:
    """The nodes checked and indexed: `chain[id]` lists a node's index and its ancestors'."""

    __slots__ = ("chain", "ids", "limits", "phases")

    def __init__(self, nodes: Sequence[SiteNode]) -> None:
        self.ids: list[str] = []
        index: dict[str, int] = {}
        for node in nodes:
            if not node.id:
                raise ValueError("a site node needs a non-empty id")
            if node.id in index:
                raise ValueError(f"site node {node.id!r} appears twice")
            _check_phases(node.phases, f"site node {node.id!r}")
            if not math.isfinite(node.limit_a) or node.limit_a < 0:
                raise ValueError(f"site node {node.id!r}: limit {node.limit_a!r} is not >= 0")
            index[node.id] = len(self.ids)
            self.ids.append(node.id)
        self.limits = [math.inf] * (3 * len(nodes))
        for i, node in enumerate(nodes):
            for phase in node.phases:
                self.limits[3 * i + phase] = node.limit_a
        roots = [node.id for node in nodes if node.parent is None]
        if len(roots) != 1:
            raise ValueError(f"a site tree needs exactly one root, not {len(roots)}")
        by_id = {node.id: node for node in nodes}
        self.phases = {node.id: node.phases for node in nodes}
        self.chain: dict[str, list[int]] = {}
        for node in nodes:
            chain = [index[node.id]]
            seen = {node.id}
            current = node
            while current.parent is not None:
                parent = by_id.get(current.parent)
                if parent is None:
                    raise ValueError(
                        f"site node {current.id!r} has an unknown parent {current.parent!r}"
                    )
                if parent.id in seen:
                    raise ValueError(f"site nodes form a cycle through {parent.id!r}")
                if not set(current.phases) <= set(parent.phases):
                    raise ValueError(
                        f"site node {current.id!r} has phases {current.phases} that its "
                        f"parent {parent.id!r} lacks"
                    )
                seen.add(parent.id)
                chain.append(index[parent.id])
                current = parent
            self.chain[node.id] = chain


def _check_phases(phases: tuple[int, ...], who: str) -> None:
    if not phases or len(set(phases)) != len(phases) or not set(phases) <= set(PHASES):
        raise ValueError(f"{who}: phases {phases!r} are not distinct values of 0, 1, 2")


def _paths(tree: _Tree, demands: Sequence[Demand]) -> dict[int, list[int]]:
    """Check the demands; each one's constraints: its phases at its node and every ancestor.
    Demands on the same node and phases share one list (read only)."""
    shared: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    paths: dict[int, list[int]] = {}
    for demand in demands:
        if demand.key in paths:
            raise ValueError(f"demand {demand.key} appears twice")
        path = shared.get((demand.node, demand.phases))
        if path is None:
            who = f"demand {demand.key}"
            if demand.node not in tree.chain:
                raise ValueError(f"{who} hangs under an unknown node {demand.node!r}")
            _check_phases(demand.phases, who)
            if not set(demand.phases) <= set(tree.phases[demand.node]):
                raise ValueError(
                    f"{who} draws on phases {demand.phases} that node {demand.node!r} lacks"
                )
            path = [3 * node + phase for node in tree.chain[demand.node] for phase in demand.phases]
            shared[demand.node, demand.phases] = path
        paths[demand.key] = path
        max_a, measured = demand.max_a, demand.measured_a
        if not (0 <= max_a < math.inf):  # also refuses NaN
            raise ValueError(f"demand {demand.key}: max_a {max_a!r} is not >= 0")
        if measured is not None and not (0 <= measured < math.inf):
            raise ValueError(f"demand {demand.key}: measured_a {measured!r} is not >= 0")
    return paths


# --- lending ---------------------------------------------------------------------------------


def _claims(
    managed: Sequence[Demand],
    tracks: Mapping[int, SessionTrack],
    now: float,
    min_a: float,
    margin: float,
    lend_after_s: float,
) -> tuple[dict[int, float], dict[int, float]]:
    """Each demand's claim (the most it asks for) and the lending caps among them.

    A running session that draws less than its last grant minus `margin` claims only
    max(min_a, measured + margin): it keeps headroom to show it wants more, and the rest is
    shared. Once it draws within TAKE_BACK_A of its grant it claims its full share again.
    In between, it keeps what it had, so that a draw near the threshold does not flap.
    """
    take_back = min(TAKE_BACK_A, margin / 2)
    claims: dict[int, float] = {}
    lending: dict[int, float] = {}
    for demand in managed:
        claim = demand.max_a
        track = tracks.get(demand.key)
        measured = demand.measured_a
        if track is not None and track.running and measured is not None and track.grant > 0:
            cap: float | None
            if measured >= track.grant - take_back:
                cap = None  # taken back
            elif measured < track.grant - margin and now - track.raised_at >= lend_after_s:
                cap = max(min_a, measured + margin)
            else:
                cap = track.lend_cap
            if cap is not None and cap < claim:
                claim = cap
                lending[demand.key] = cap
        claims[demand.key] = claim
    return claims, lending


# --- who runs --------------------------------------------------------------------------------


def _choose(
    managed: Sequence[Demand],
    paths: Mapping[int, list[int]],
    avail: list[float],
    tracks: Mapping[int, SessionTrack],
    now: float,
    min_a: float,
    rotate_after_s: float,
) -> set[int]:
    """The keys that run: everyone who fits with `min_a` on each of its phases up the tree.

    Sessions are placed greedily, higher priority first; within a priority, in this order:
      1. running for less than `rotate_after_s` (the longest-running last);
      2. waiting and due a turn: never ran, or waited `rotate_after_s`; longest wait first;
      3. running for `rotate_after_s` or more (the longest-running last): they give way to
         group 2 when it does not fit otherwise, which is the rotation;
      4. waiting but not yet due (paused less than a turn ago): only into room left over.
    Sessions that keep running are never paused unless someone must take their place (no
    flapping). A session of group 2 that does not fit keeps `min_a` on its way reserved
    against later newcomers of its priority (not against running ones), so that they cannot
    take its room as turns change: once the sessions before it have had their turn it runs.
    """
    used = [0.0] * len(avail)
    running: set[int] = set()
    by_priority: dict[int, list[tuple[tuple[int, float, int], Demand]]] = {}
    for demand in managed:
        if demand.max_a < min_a:
            continue  # can never run within the rules
        track = tracks.get(demand.key)
        if track is None:
            rank = (2, now, demand.key)  # a newcomer waits from now, and is due at once
        elif track.running:
            ran_for = now - track.since
            rank = (1 if ran_for < rotate_after_s else 3, -track.since, demand.key)
        else:
            due = not track.ran or now - track.since >= rotate_after_s
            rank = (2 if due else 4, track.since, demand.key)
        by_priority.setdefault(demand.priority, []).append((rank, demand))

    for priority in sorted(by_priority, reverse=True):
        group = sorted(by_priority[priority], key=lambda item: item[0])
        before = used.copy()  # what higher priorities took
        held = [0.0] * len(avail)  # room kept for group-2 sessions that did not fit
        for (category, _, _), demand in group:
            path = paths[demand.key]
            newcomer = category in (2, 4)
            if all(
                used[c] + (held[c] if newcomer else 0.0) + min_a <= avail[c] + EPSILON for c in path
            ):
                for c in path:
                    used[c] += min_a
                running.add(demand.key)
            elif category == 2 and all(before[c] + min_a <= avail[c] + EPSILON for c in path):
                for c in path:
                    held[c] += min_a
    return running


# --- how much --------------------------------------------------------------------------------

_FLOOR, _RISING, _CAPPED, _FROZEN = 0, 1, 2, 3


def _fill(
    avail: list[float],
    paths: list[list[int]],
    weights: list[float],
    caps: list[float],
    min_a: float,
) -> list[float]:
    """Weighted max-min fair shares with a floor: demand i gets
    min(caps[i], max(min_a, weights[i] * level)), where the level rises until a constraint
    (a node's phase) on its path is full; then everyone on that constraint stays where they
    are and the others keep rising. The floors must fit (`_choose` sees to it).

    Exact and event driven: between events every constraint's load is linear in the level
    (a constant plus the sum of the rising demands' weights times the level); events are a
    demand leaving its floor, reaching its cap, or a constraint filling up.
    """
    count = len(paths)
    members: dict[int, list[int]] = {}
    for i, path in enumerate(paths):
        for c in path:
            members.setdefault(c, []).append(i)
    const = {c: min_a * len(who) for c, who in members.items()}
    slope = dict.fromkeys(members, 0.0)
    version = dict.fromkeys(members, 0)
    status = [_FLOOR] * count
    value = [min_a] * count

    events: list[tuple[float, int, int]] = []
    for i in range(count):
        events.append((min_a / weights[i], 0, i))
        events.append((caps[i] / weights[i], 1, i))
    events.sort()
    full: list[tuple[float, int, int]] = []  # (level at which it fills, version, constraint)

    def touch(c: int) -> None:
        version[c] += 1
        if slope[c] > 0:
            heapq.heappush(full, ((avail[c] - const[c]) / slope[c], version[c], c))

    level = 0.0
    position = 0
    while True:
        while full and full[0][1] != version[full[0][2]]:
            heapq.heappop(full)
        next_event = events[position][0] if position < len(events) else math.inf
        next_full = full[0][0] if full else math.inf
        if next_full == math.inf and next_event == math.inf:
            break
        touched: set[int] = set()
        if next_full <= next_event:
            _, _, filled = heapq.heappop(full)
            level = max(level, next_full)
            for i in members[filled]:
                if status[i] == _FROZEN:
                    continue
                if status[i] == _RISING:
                    value[i] = weights[i] * level
                    for c in paths[i]:
                        slope[c] -= weights[i]
                        const[c] += value[i]
                        touched.add(c)
                status[i] = _FROZEN
            version[filled] += 1  # every demand on it is frozen: it never fills again
            touched.discard(filled)
        else:
            level = next_event
            while position < len(events) and events[position][0] == level:
                _, kind, i = events[position]
                position += 1
                if kind == 0 and status[i] == _FLOOR:
                    status[i] = _RISING
                    for c in paths[i]:
                        const[c] -= min_a
                        slope[c] += weights[i]
                        touched.add(c)
                elif kind == 1 and status[i] == _RISING:
                    status[i] = _CAPPED
                    value[i] = caps[i]
                    for c in paths[i]:
                        slope[c] -= weights[i]
                        const[c] += caps[i]
                        touched.add(c)
        for c in touched:
            if slope[c] < 1e-12:
                slope[c] = 0.0
            touch(c)
    return value


def _repair(
    ordered: Sequence[Demand],
    paths: Mapping[int, list[int]],
    load: list[float],
    limits: list[float],
    grants: dict[int, float],
    min_a: float,
) -> None:
    """Lower grants by a step where rounding up float noise (ROUND_SLACK) made a sum exceed
    a limit. Lowering never makes another sum exceed, so one pass is enough."""
    members: dict[int, list[int]] = {}
    for demand in ordered:
        for c in paths[demand.key]:
            members.setdefault(c, []).append(demand.key)
    for c, keys in members.items():
        while load[c] > limits[c] + EPSILON:
            key = max(keys, key=lambda k: grants[k])
            lowered = max(min_a, round(grants[key] - STEP_A, 1))
            if lowered >= grants[key]:
                break  # everyone is at the floor: the floors fit, so this is float noise
            for other in paths[key]:
                load[other] -= grants[key] - lowered
            grants[key] = lowered
