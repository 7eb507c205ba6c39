"""Smart charging's allocation (csms.core.allocation): hand-computed sites, then properties
over generated trees and sessions across successive calls.

Properties: no phase of any node is allocated above its limit; running sessions get between
the minimum and their maximum, paused ones nothing; shares are weighted max-min fair (a
session below its claim is held back by a full node where nobody gets more, weight for
weight); and with equal priorities every session gets a turn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.core.allocation import (
    Allocation,
    AllocationState,
    Demand,
    SiteNode,
    allocate,
)

THREE = (0, 1, 2)
MIN_A = 6.0


def site(limit: float, phases: tuple[int, ...] = THREE) -> list[SiteNode]:
    return [SiteNode("site", None, limit, phases)]


def shares(result: Allocation) -> list[float]:
    return [result.grants[key] for key in sorted(result.grants)]


@dataclass
class Run:
    """Successive calls over one tree, as the enforcement service makes them."""

    nodes: list[SiteNode]
    now: float = 0.0
    state: AllocationState | None = None

    def __call__(
        self, demands: Sequence[Demand], advance: float = 0.0, **options: float
    ) -> Allocation:
        self.now += advance
        result = allocate(self.nodes, demands, now=self.now, previous=self.state, **options)
        self.state = result.state
        return result


# --- hand-computed sites ---------------------------------------------------------------------


def test_a_32_a_site_shares_32_16_10_6_8_as_four_sessions_start() -> None:
    run = Run(site(32.0))
    demands: list[Demand] = []
    seen = []
    for key in range(1, 5):
        demands.append(Demand(key, "site", THREE, 32.0))
        seen.append(shares(run(demands, advance=10)))
    assert seen == [[32.0], [16.0, 16.0], [10.6, 10.6, 10.6], [8.0, 8.0, 8.0, 8.0]]
    # One stops: the others get more at once.
    result = run(demands[1:], advance=10)
    assert shares(result) == [10.6, 10.6, 10.6]
    assert result.paused == frozenset()
    assert result.load == {"site": (31.8, 31.8, 31.8)}


def test_a_16_a_circuit_under_a_63_a_site_limits_its_two_chargers_together() -> None:
    nodes = [SiteNode("site", None, 63.0), SiteNode("garage", "site", 16.0)]
    demands = [Demand(1, "garage", THREE, 32.0), Demand(2, "garage", THREE, 32.0)]
    result = allocate(nodes, demands, now=0.0)
    assert shares(result) == [8.0, 8.0]
    assert result.load == {"site": (16.0, 16.0, 16.0), "garage": (16.0, 16.0, 16.0)}
    # A charger straight under the site takes what the circuit leaves, up to its maximum.
    more = [*demands, Demand(3, "site", THREE, 63.0)]
    assert shares(allocate(nodes, more, now=0.0)) == [8.0, 8.0, 47.0]


def test_one_phase_chargers_on_l1_l2_l3_each_get_their_phase() -> None:
    demands = [Demand(phase, "site", (phase,), 32.0) for phase in THREE]
    result = allocate(site(16.0), demands, now=0.0)
    assert shares(result) == [16.0, 16.0, 16.0]
    assert result.load["site"] == (16.0, 16.0, 16.0)


def test_a_three_phase_session_gets_the_same_current_on_each_phase() -> None:
    # L1 is shared with a 1-phase session: the 3-phase one gets its L1 share on all three
    # phases, and the 1-phase session on L2 takes what it leaves there.
    demands = [
        Demand(1, "site", (0,), 32.0),
        Demand(2, "site", THREE, 32.0),
        Demand(3, "site", (1,), 32.0),
    ]
    result = allocate(site(16.0), demands, now=0.0)
    assert shares(result) == [8.0, 8.0, 8.0]
    assert result.load["site"] == (16.0, 16.0, 8.0)


def test_four_one_phase_sessions_on_l1_of_16_a_take_turns_two_at_a_time() -> None:
    run = Run(site(16.0))
    demands = [Demand(key, "site", (0,), 32.0) for key in range(4)]
    timeline = []
    for _ in range(13):
        result = run(demands, advance=100)
        running = sorted(key for key, grant in result.grants.items() if grant)
        assert [result.grants[key] for key in running] == [8.0, 8.0]
        assert result.paused == frozenset(demands_keys(demands)) - set(running)
        timeline.append(running)
    # The first two run for a full turn (300 s) without flapping, then the other two.
    assert timeline[:7] == [[0, 1]] * 3 + [[2, 3]] * 3 + [[0, 1]]
    assert timeline[7:] == [[0, 1]] * 2 + [[2, 3]] * 3 + [[0, 1]]


def demands_keys(demands: Iterable[Demand]) -> set[int]:
    return {demand.key for demand in demands}


def test_a_newcomer_takes_the_longest_runner_s_place_and_turns_do_not_cascade() -> None:
    run = Run(site(18.0, (0,)))
    three = [Demand(key, "site", (0,), 32.0) for key in range(3)]
    run(three[:1])
    run(three[:2], advance=10)
    run(three, advance=10)  # 0 has run longest
    result = run(three, advance=400)
    assert shares(result) == [6.0, 6.0, 6.0]
    newcomer = Demand(3, "site", (0,), 32.0)
    result = run([*three, newcomer], advance=1)
    assert result.paused == {0}
    # Session 0 waits a full turn before it may take another's place: 1 and 2 have run far
    # longer than a turn, yet they keep running meanwhile.
    for _ in range(5):
        assert run([*three, newcomer], advance=50).paused == {0}
    result = run([*three, newcomer], advance=60)  # 0 waited 310 s: 1 ran longest
    assert result.paused == {1}


def test_lower_priorities_pause_first_and_weigh_less() -> None:
    demands = [Demand(key, "site", (0,), 32.0, priority=key) for key in range(3)]
    result = allocate(site(16.0, (0,)), demands, now=0.0)
    assert result.paused == {0}
    # Weights 2 and 3 on 16 A: 6.4 and 9.6.
    assert shares(result) == [0.0, 6.4, 9.6]
    # With a weight of 4 against 1 the low one would get 3.2: it gets the minimum instead.
    pair = [Demand(1, "site", (0,), 32.0), Demand(2, "site", (0,), 32.0, priority=3)]
    assert shares(allocate(site(16.0, (0,)), pair, now=0.0)) == [6.0, 10.0]


def test_a_reserved_charger_counts_at_its_maximum_and_is_never_paused() -> None:
    demands = [
        Demand(1, "site", THREE, 16.0, reserved=True),
        Demand(2, "site", THREE, 32.0),
        Demand(3, "site", THREE, 32.0),
    ]
    result = allocate(site(32.0), demands, now=0.0)
    assert shares(result) == [16.0, 8.0, 8.0]
    assert result.paused == frozenset()
    assert result.load["site"] == (32.0, 32.0, 32.0)
    # Reserved beyond the limit leaves nothing: the managed ones pause.
    demands[0] = replace(demands[0], max_a=30.0)
    result = allocate(site(32.0), demands, now=0.0)
    assert shares(result) == [30.0, 0.0, 0.0]
    assert result.paused == {2, 3}


def test_what_an_ev_does_not_draw_is_lent_and_taken_back() -> None:
    run = Run(site(32.0))
    pair = [Demand(1, "site", THREE, 32.0), Demand(2, "site", THREE, 32.0)]
    assert shares(run(pair)) == [16.0, 16.0]
    # Session 1 draws 5 of its 16 A; its grant is fresh, so nothing is lent yet (a meter
    # reading from before the charger applied the grant would show the old limit).
    tapering = [replace(pair[0], measured_a=5.0), pair[1]]
    assert shares(run(tapering, advance=5)) == [16.0, 16.0]
    result = run(tapering, advance=5)  # 10 s after the grant (lend_after_s)
    # It keeps 5 + 2 A of headroom: the 9 A it does not use go to session 2.
    assert shares(result) == [7.0, 25.0]
    assert result.lending == {1}
    assert result.claims[1] == 7.0
    # Steady, or drawing a little more but not near its grant: nothing changes.
    assert shares(run(tapering, advance=10)) == [7.0, 25.0]
    assert shares(run([replace(pair[0], measured_a=5.5), pair[1]], advance=10)) == [7.0, 25.0]
    # It draws within 1 A of its grant: it wants more, and gets its share back at once.
    result = run([replace(pair[0], measured_a=6.5), pair[1]], advance=10)
    assert shares(result) == [16.0, 16.0]
    assert result.lending == frozenset()
    # A reading from before its charger applied the new grant does not lend it again.
    assert shares(run([replace(pair[0], measured_a=6.5), pair[1]], advance=5)) == [16.0, 16.0]
    # Drawing 16 A of 16 it keeps its share.
    assert shares(run([replace(pair[0], measured_a=16.0), pair[1]], advance=60)) == [16.0, 16.0]


def test_a_16_a_ev_on_a_32_a_evse_lends_the_rest() -> None:
    run = Run(site(40.0))
    demands = [Demand(1, "site", THREE, 32.0, measured_a=16.0), Demand(2, "site", THREE, 32.0)]
    assert shares(run(demands)) == [20.0, 20.0]
    # Lent: 16 + 2 A claimed, 22 A to the other; the EV never takes more, so it stays so.
    assert shares(run(demands, advance=60)) == [18.0, 22.0]
    assert shares(run(demands, advance=60)) == [18.0, 22.0]


def test_lending_never_claims_below_the_minimum() -> None:
    run = Run(site(32.0, (0,)))
    demands = [Demand(1, "site", (0,), 32.0, measured_a=0.5), Demand(2, "site", (0,), 32.0)]
    run(demands)
    assert shares(run(demands, advance=60)) == [6.0, 26.0]


def test_the_same_picture_twice_gives_the_same_allocation() -> None:
    run = Run([SiteNode("site", None, 20.0), SiteNode("c", "site", 13.0)])
    demands = [Demand(key, "c" if key % 2 else "site", THREE, 16.0) for key in range(5)]
    first = run(demands)
    for _ in range(10):
        again = run(demands, advance=20)
        assert again.grants == first.grants
        assert again.paused == first.paused


def test_sessions_that_cannot_have_the_minimum_stay_paused() -> None:
    nodes = [SiteNode("site", None, 63.0), SiteNode("weak", "site", 5.0)]
    demands = [
        Demand(1, "weak", THREE, 32.0),  # its circuit is below 6 A
        Demand(2, "site", THREE, 4.0),  # its EVSE is below 6 A
        Demand(3, "site", THREE, 32.0),
    ]
    result = allocate(nodes, demands, now=0.0)
    assert shares(result) == [0.0, 0.0, 32.0]
    assert result.paused == {1, 2}


def test_a_waiting_three_phase_session_keeps_its_room_against_newcomers() -> None:
    # L1 holds two sessions (12 A). W (3-phase) waits for L1 while 1-phase sessions come
    # and go on L2: they may use L2 only as far as they leave W its 6 A there.
    run = Run(site(12.0))
    l1 = [Demand(1, "site", (0,), 16.0), Demand(2, "site", (0,), 16.0)]
    run(l1)
    w = Demand(10, "site", THREE, 16.0)
    x, y = Demand(20, "site", (1,), 16.0), Demand(21, "site", (1,), 16.0)
    result = run([*l1, w], advance=100)
    assert result.paused == {10}
    result = run([*l1, w, x], advance=10)
    assert result.paused == {10}
    result = run([*l1, w, x, y], advance=10)
    assert result.paused == {10, 21}
    # The sessions on L1 had their turn: W runs, at 6 A on L1 beside one of them.
    result = run([*l1, w, x, y], advance=190)
    assert 10 not in result.paused
    assert result.grants[10] == 6.0


@pytest.mark.parametrize(
    ("nodes", "demands", "message"),
    [
        ([], [], "exactly one root"),
        ([SiteNode("a", None, 1), SiteNode("b", None, 1)], [], "exactly one root"),
        ([SiteNode("a", None, 1), SiteNode("b", "x", 1)], [], "unknown parent"),
        (
            [SiteNode("r", None, 1), SiteNode("a", "b", 1), SiteNode("b", "a", 1)],
            [],
            "cycle",
        ),
        ([SiteNode("a", None, 1), SiteNode("a", "a", 1)], [], "twice"),
        ([SiteNode("", None, 1)], [], "non-empty"),
        ([SiteNode("a", None, -1)], [], "limit"),
        ([SiteNode("a", None, math.nan)], [], "limit"),
        ([SiteNode("a", None, 1, (3,))], [], "phases"),
        ([SiteNode("a", None, 1, (0, 0))], [], "phases"),
        ([SiteNode("a", None, 1, (0,)), SiteNode("b", "a", 1, (1,))], [], "parent 'a' lacks"),
        ([SiteNode("a", None, 1)], [Demand(1, "x", (0,), 16)], "unknown node"),
        ([SiteNode("a", None, 1, (0,))], [Demand(1, "a", (1,), 16)], "lacks"),
        ([SiteNode("a", None, 1)], [Demand(1, "a", (), 16)], "phases"),
        ([SiteNode("a", None, 1)], [Demand(1, "a", (0,), 16)] * 2, "twice"),
        ([SiteNode("a", None, 1)], [Demand(1, "a", (0,), -1)], "max_a"),
        ([SiteNode("a", None, 1)], [Demand(1, "a", (0,), 16, measured_a=math.inf)], "measured"),
    ],
)
def test_a_malformed_tree_or_demand_is_a_value_error(
    nodes: list[SiteNode], demands: list[Demand], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        allocate(nodes, demands, now=0.0)


def test_options_must_be_finite_and_not_negative() -> None:
    with pytest.raises(ValueError, match="min_a"):
        allocate(site(16.0), [], now=0.0, min_a=-1.0)
    with pytest.raises(ValueError, match="now"):
        allocate(site(16.0), [], now=math.nan)


# --- properties ------------------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Site:
    nodes: list[SiteNode]
    demands: list[Demand]


limits = st.one_of(
    st.floats(min_value=0.0, max_value=80.0, allow_nan=False),
    st.integers(min_value=0, max_value=80).map(float),
)


@st.composite
def trees(draw: st.DrawFn) -> list[SiteNode]:
    root_phases = draw(st.sampled_from([THREE, THREE, (0,), (1,)]))
    nodes = [SiteNode("site", None, draw(limits), root_phases)]
    for i in range(draw(st.integers(0, 4))):
        phases = draw(st.sampled_from([root_phases, *((p,) for p in root_phases)]))
        nodes.append(SiteNode(f"c{i}", "site", draw(limits), phases))
        for j in range(draw(st.integers(0, 3))):
            sub = draw(st.sampled_from([phases, *((p,) for p in phases)]))
            nodes.append(SiteNode(f"c{i}.{j}", f"c{i}", draw(limits), sub))
    return nodes


def path_constraints(nodes: Sequence[SiteNode], demand: Demand) -> list[tuple[str, int]]:
    by_id = {node.id: node for node in nodes}
    out: list[tuple[str, int]] = []
    node: SiteNode | None = by_id[demand.node]
    while node is not None:
        out.extend((node.id, phase) for phase in demand.phases)
        node = by_id[node.parent] if node.parent is not None else None
    return out


@st.composite
def sites(draw: st.DrawFn, *, priorities: bool = True, reserved: bool = True) -> Site:
    nodes = draw(trees())
    limit = {(node.id, phase): node.limit_a for node in nodes for phase in node.phases}
    reserved_load: dict[tuple[str, int], float] = {}
    demands = []
    for key in range(draw(st.integers(1, 50))):
        node = draw(st.sampled_from(nodes))
        choices: list[tuple[int, ...]] = [(p,) for p in node.phases]
        if len(node.phases) == 3:
            choices.append(THREE)
        demand = Demand(
            key=key,
            node=node.id,
            phases=draw(st.sampled_from(choices)),
            max_a=draw(st.sampled_from([4.0, 6.0, 10.0, 13.0, 16.0, 32.0, 63.0]) | limits),
            priority=draw(st.integers(0, 3)) if priorities else 0,
        )
        if reserved and draw(st.integers(0, 9)) == 0:
            path = path_constraints(nodes, demand)
            # Only reserved chargers that fit: the limits cannot hold otherwise.
            if all(reserved_load.get(c, 0.0) + demand.max_a <= limit[c] for c in path):
                for c in path:
                    reserved_load[c] = reserved_load.get(c, 0.0) + demand.max_a
                demand = replace(demand, reserved=True)
        demands.append(demand)
    return Site(nodes, demands)


def check(nodes: Sequence[SiteNode], demands: Sequence[Demand], result: Allocation) -> None:
    """The invariants of one call."""
    limit = {(node.id, phase): node.limit_a for node in nodes for phase in node.phases}
    assert set(result.grants) == {d.key for d in demands}
    members: dict[tuple[str, int], list[Demand]] = {c: [] for c in limit}
    paths = {d.key: path_constraints(nodes, d) for d in demands}
    for demand in demands:
        grant = result.grants[demand.key]
        for c in paths[demand.key]:
            members[c].append(demand)
        if demand.reserved:
            assert grant == demand.max_a
            assert demand.key not in result.paused
        elif demand.key in result.paused:
            assert grant == 0.0
        else:
            assert MIN_A <= grant <= demand.max_a
            assert grant <= result.claims[demand.key]
            assert round(grant * 10) == pytest.approx(grant * 10, abs=1e-9)
    used = {c: math.fsum(result.grants[d.key] for d in members[c]) for c in limit}
    for (node_id, phase), total in used.items():
        assert total <= limit[node_id, phase] + 1e-9, (node_id, phase)
        assert result.load[node_id][phase] == pytest.approx(total, abs=1e-6)

    # Max-min fairness: a running session below its claim has a full node on its way where
    # no one gets more than it, weight for weight (unless held at the minimum).
    def weight(d: Demand) -> float:
        return float(max(1, 1 + d.priority))

    for demand in demands:
        grant = result.grants[demand.key]
        if demand.reserved or demand.key in result.paused:
            continue
        if grant >= result.claims[demand.key] - 0.1 - 1e-9:
            continue
        running = {
            c: [e for e in members[c] if not e.reserved and e.key not in result.paused]
            for c in paths[demand.key]
        }
        assert any(
            limit[c] - used[c] < 0.1 * len(running[c]) + 1e-6
            and all(
                result.grants[e.key]
                <= max(MIN_A, weight(e) * (grant + 0.1) / weight(demand)) + 1e-6
                for e in running[c]
            )
            for c in paths[demand.key]
        ), demand


@st.composite
def histories(draw: st.DrawFn) -> tuple[Site, list[tuple[float, list[Demand]]]]:
    """A site and successive calls: time advances, sessions come and go, draws change."""
    base = draw(sites())
    calls = []
    for _ in range(draw(st.integers(1, 6))):
        advance = draw(st.sampled_from([0.0, 1.0, 20.0, 45.0, 299.0, 300.0, 1000.0]))
        present = []
        for demand in base.demands:
            if draw(st.integers(0, 5)) == 0:
                continue  # not charging in this call
            measured = draw(st.none() | st.floats(min_value=0.0, max_value=demand.max_a + 3.0))
            present.append(replace(demand, measured_a=measured))
        calls.append((advance, present))
    return base, calls


@SETTINGS
@given(histories())
def test_no_limit_is_exceeded_and_shares_are_fair_over_successive_calls(
    history: tuple[Site, list[tuple[float, list[Demand]]]],
) -> None:
    base, calls = history
    run = Run(base.nodes)
    for advance, demands in calls:
        result = run(demands, advance=advance)
        check(base.nodes, demands, result)
        # No flapping: asked again at once, the same sessions run.
        again = allocate(base.nodes, demands, now=run.now, previous=result.state)
        assert again.paused == result.paused


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites(priorities=False), st.data())
def test_with_equal_priorities_every_session_that_fits_gets_a_turn(
    case: Site, data: st.DataObject
) -> None:
    # Sessions arrive over the first calls (newcomers must not keep a waiting one out).
    arrival = {
        demand.key: data.draw(st.integers(0, 12), label=f"arrival {demand.key}")
        for demand in case.demands
    }
    run = Run(case.nodes)
    limit = {(node.id, phase): node.limit_a for node in case.nodes for phase in node.phases}
    reserved: dict[tuple[str, int], float] = {}
    for demand in case.demands:
        if demand.reserved:
            for c in path_constraints(case.nodes, demand):
                reserved[c] = reserved.get(c, 0.0) + demand.max_a
    can_run = {
        demand.key
        for demand in case.demands
        if not demand.reserved
        and demand.max_a >= MIN_A
        and all(
            reserved.get(c, 0.0) + MIN_A <= limit[c] + 1e-9
            for c in path_constraints(case.nodes, demand)
        )
    }
    ran: set[int] = set()
    # A turn is 300 s; a call every 150 s. Each session waits at most for those ahead of
    # it, a turn each at most.
    for call in range(12 + 4 * len(case.demands) + 10):
        present = [demand for demand in case.demands if arrival[demand.key] <= call]
        result = run(present, advance=150.0)
        check(case.nodes, present, result)
        ran |= {key for key, grant in result.grants.items() if grant} & can_run
        if ran == can_run:
            break
    assert ran == can_run
