"""Smart charging allocation benchmark: one site of 1,000 sessions under 3 levels of circuits;
prints p50/p99/max of successive csms.core.allocation.allocate calls (issue 20: < 50 ms).

Pure CPU on one core, no I/O. The tree is site -> 10 circuits -> 10 sub-circuits each ->
10 chargers each (mixed 1- and 3-phase, 16 and 32 A, a few unmanaged ones reserved); the
sub-circuits cannot give every session its minimum, so pausing and rotation take part. Each
call advances the clock, changes the measured currents (some EVs taper, so lending takes part)
and, with --churn, ends and starts a few sessions.

    .venv/bin/python bench/allocation.py [--calls 200] [--step 5] [--churn 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from dataclasses import replace

from csms.core.allocation import AllocationState, Demand, SiteNode, allocate

TARGET_MS = 50.0
THREE = (0, 1, 2)


def build_tree() -> list[SiteNode]:
    nodes = [SiteNode("site", None, 3_000.0)]
    for i in range(10):
        nodes.append(SiteNode(f"c{i}", "site", 400.0))
        for j in range(10):
            nodes.append(SiteNode(f"c{i}.{j}", f"c{i}", 63.0))
    return nodes


def build_demand(rng: random.Random, key: int, node: str) -> Demand:
    if rng.random() < 0.4:
        phases: tuple[int, ...] = (rng.randrange(3),)
    else:
        phases = THREE
    return Demand(
        key=key,
        node=node,
        phases=phases,
        max_a=rng.choice((16.0, 32.0)),
        priority=1 if rng.random() < 0.1 else 0,
        reserved=rng.random() < 0.01,
    )


def measure(rng: random.Random, demand: Demand, grant: float) -> Demand:
    """What the meter shows: most EVs draw their grant, some far less (tapering)."""
    if not grant or demand.reserved:
        return replace(demand, measured_a=None)
    if demand.key % 5 == 0:
        return replace(demand, measured_a=round(rng.uniform(2.0, 6.0), 1))
    return replace(demand, measured_a=round(grant * rng.uniform(0.9, 1.0), 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--step", type=float, default=5.0, help="seconds between calls")
    parser.add_argument("--churn", type=int, default=2, help="sessions ended/started per call")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    nodes = build_tree()
    leaves = [node.id for node in nodes if node.id.count(".") == 1]
    demands = [
        build_demand(rng, len(leaves) * k + i, leaf)
        for k in range(10)
        for i, leaf in enumerate(leaves)
    ]
    next_key = len(demands)

    state: AllocationState | None = None
    now = 0.0
    grants: dict[int, float] = {}
    allocate(nodes, demands, now=-1.0)  # warm up
    times: list[float] = []
    paused: list[int] = []
    lending: list[int] = []
    gc.collect()
    for _ in range(args.calls):
        now += args.step
        for _ in range(args.churn):
            gone = demands.pop(rng.randrange(len(demands)))
            demands.append(build_demand(rng, next_key, gone.node))
            next_key += 1
        demands = [measure(rng, d, grants.get(d.key, 0.0)) for d in demands]
        began = time.perf_counter()
        result = allocate(nodes, demands, now=now, previous=state)
        times.append((time.perf_counter() - began) * 1000)
        state = result.state
        grants = dict(result.grants)
        paused.append(len(result.paused))
        lending.append(len(result.lending))

    times.sort()
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, round(0.99 * len(times)) - 1)]
    print(
        f"allocate: {len(demands)} sessions, {len(nodes)} nodes (site -> 10 circuits -> 100 "
        f"sub-circuits), {args.calls} calls {args.step:g} s apart, {args.churn} start/stop per call"
    )
    print(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {times[-1]:.1f} ms")
    print(
        f"  paused per call: mean {statistics.mean(paused):.0f}; "
        f"lending per call: mean {statistics.mean(lending):.0f}"
    )
    print(f"target p99 < {TARGET_MS:g} ms: {'met' if p99 < TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
