"""Several nodes on one PostgreSQL database: what routing a command to another node costs.

    python bench/nodes.py [--chargers 100] [--commands 200] [--concurrency 20]
                          [--concurrent-commands 1000] [--meter-seconds 10]
                          [--meter-chargers 100] [--database-url postgresql+asyncpg://...]
                          [--json] [--keep]

Starts a throw-away PostgreSQL server (tests/postgres.py, durable: fsync and synchronous
commit on, as in production; `--database-url` uses a database of yours instead, empty or a
csms one), then three real `csms serve` processes on it, as README's "Running on several
machines" describes: node-a and node-b (`--only ocpp,api`: the OCPP nodes, whose own API
gives the local figures) and node-api (`--only api`, which holds no charger). --chargers
simulated OCPP 1.6 chargers (simulators/) connect, half to each OCPP node, and boot. Then
GetConfiguration(HeartbeatInterval) commands are POSTed to the operator API, as `csms remote
config-get` does, and every answer must be "accepted":

- routed: to node-api, which routes each command through the database to the node holding
  the charger (NOTIFY, take-up, the charger's answer recorded, NOTIFY back);
- local: to the API of the node that holds the charger, which sends it directly;

each first one at a time (--commands, latency percentiles), then from --concurrency clients
at once (--concurrent-commands in all; every client has chargers of its own, so no charger
has two commands in flight).

Then MeterValues throughput (--meter-seconds, 0 to skip): --meter-chargers new chargers,
half on each OCPP node, each start a transaction and send MeterValues closed-loop (the next
once the previous is answered); then as many others, all on node-a, do the same. Node,
database and this process's CPU seconds are read per phase (psutil); on a small machine this
process, the nodes and PostgreSQL share the CPUs, which the figures then show more than the
nodes' own limits.
Only loopback addresses are used; everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench, simulators, tests

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from bench.load import (
    EXIT_FAILED,
    EXIT_SERVER,
    BenchError,
    ServerProbe,
    default_csms,
    free_ports,
    iso_now,
    postgres_database,
    wait_for_port,
)
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger

TOKEN: Final = "bench-nodes-token"
PREFIX: Final = "NODES-BENCH-"
COMMAND: Final = "config-get"
BODY: Final = {"keys": ["HeartbeatInterval"]}
METER: Final = "Energy.Active.Import.Register"
POWER: Final = "Power.Active.Import"
WARMUP: Final = 20  # commands per path before measuring, not counted
Json = dict[str, Any]


@dataclass
class Node:
    """One `csms serve` process on free loopback ports."""

    name: str
    only: str
    ocpp_port: int
    api_port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log(self) -> Path:
        return self.directory / "log"

    def spawn(self, command: list[str], database_url: str) -> None:
        # CSMS_* variables of the caller would change the node: it sees only ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        env.update(
            CSMS_DATABASE_URL=database_url,
            CSMS_OCPP_HOST="127.0.0.1",
            CSMS_OCPP_PORT=str(self.ocpp_port),
            CSMS_API_HOST="127.0.0.1",
            CSMS_API_PORT=str(self.api_port),
            CSMS_API_TOKEN=TOKEN,
            CSMS_CLUSTER_NODE_ID=self.name,
            # As bench/load.py: every bench charger is an unknown id that registers itself.
            CSMS_OCPP_REGISTRATION="accept",
            CSMS_OCPP_AUTO_REGISTER_PER_HOUR="0",
            CSMS_OCPP_AUTO_REGISTER_LIMIT="0",
            CSMS_OCPP_PING_INTERVAL="0",
            CSMS_OCPP_HEARTBEAT_INTERVAL="300",
            CSMS_LOG_LEVEL="warning",
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            try:
                self.proc = subprocess.Popen(
                    [*command, "--data-dir", str(self.directory), "serve", "--only", self.only],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.directory,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BenchError(f"cannot start {command[0]}: {exc}", EXIT_SERVER) from exc

    def wait_ready(self, timeout: float) -> None:
        port = self.ocpp_port if "ocpp" in self.only else self.api_port
        wait_for_port("127.0.0.1", port, timeout, self.proc, str(self.log))
        # The API answers once the node serves (the OCPP port may open a moment earlier).
        wait_for_port("127.0.0.1", self.api_port, timeout, self.proc, str(self.log))

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Phase:
    """One measured run of commands: latencies in seconds, wall time, failures, CPU."""

    name: str
    path: str  # "routed" or "local"
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    failures: int = 0
    first_failure: str = ""
    cpu_s: dict[str, float | None] = field(default_factory=dict)

    def figures(self) -> Json:
        ordered = sorted(self.latencies)
        n = len(ordered)

        def at(q: float) -> float | None:
            if not n:
                return None
            return round(ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000.0, 2)

        return {
            "phase": self.name,
            "path": self.path,
            "concurrency": self.concurrency,
            "commands": n + self.failures,
            "failures": self.failures,
            "first_failure": self.first_failure or None,
            "wall_s": round(self.wall_s, 3),
            "commands_per_s": round(n / self.wall_s, 1) if self.wall_s > 0 else None,
            "p50_ms": at(0.50),
            "p95_ms": at(0.95),
            "p99_ms": at(0.99),
            "max_ms": at(1.0),
            "cpu_s": {k: None if v is None else round(v, 2) for k, v in self.cpu_s.items()},
        }


class Bench:
    """The started nodes, the connected chargers and the HTTP client that sends commands."""

    def __init__(self, nodes: list[Node], probes: dict[str, ServerProbe]) -> None:
        self.a, self.b, self.api = nodes
        self.probes = probes
        self.chargers: list[tuple[str, Node, V16Charger]] = []
        self.commanded: list[tuple[str, Node, V16Charger]] = []
        self.http: aiohttp.ClientSession | None = None

    async def connect(self, count: int, open_timeout: float) -> list[tuple[str, Node, V16Charger]]:
        """`count` chargers connected and booted, alternately on node-a and node-b; kept in
        self.chargers (closed at the end)."""
        gate = asyncio.Semaphore(20)
        before = len(self.chargers)

        async def one(index: int) -> tuple[str, Node, V16Charger]:
            node = self.a if index % 2 == 0 else self.b
            cp_id = f"{PREFIX}{index:05d}"
            cp = V16Charger(ChargerOptions(url=node.url, charger_id=cp_id, response_timeout=30))
            async with gate:
                await asyncio.wait_for(cp.connect(), open_timeout)
                answer = await cp.boot()
            if answer.get("status") != "Accepted":
                raise BenchError(f"{cp_id}: BootNotification answered {answer}")
            return cp_id, node, cp

        results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                for _, _, cp in self.chargers:
                    with contextlib.suppress(Exception):
                        await cp.close()
                raise BenchError(f"a charger did not connect and boot: {result!r}")
            self.chargers.append(result)
        return self.chargers[before:]

    async def wait_held(self, chargers: list[tuple[str, Node, V16Charger]], seconds: float) -> None:
        """Until node-api sees every charger connected to the node it connected to."""
        deadline = time.monotonic() + seconds
        for cp_id, node, _ in chargers:
            while True:
                shown = await self.get(self.api, f"/api/chargers/{cp_id}")
                if shown.get("connected") and shown.get("node_id") == node.name:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{cp_id} not shown as held by {node.name}: {shown}")
                await asyncio.sleep(0.05)

    async def get(self, node: Node, path: str) -> Json:
        assert self.http is not None
        async with self.http.get(f"{node.api}{path}") as response:
            found: Json = await response.json()
            return found

    async def command(self, node: Node, cp_id: str) -> Json:
        assert self.http is not None
        url = f"{node.api}/api/chargers/{cp_id}/remote/{COMMAND}"
        async with self.http.post(url, json=BODY) as response:
            found: Json = await response.json(loads=orjson.loads)
            return found

    def target(self, path: str, holder: Node) -> Node:
        return self.api if path == "routed" else holder

    async def run(self, phase: Phase, total: int) -> Phase:
        """`total` commands over `phase.concurrency` clients; client w sends to chargers
        w, w + concurrency, ... in turn, so that no charger has two commands in flight."""
        clients = phase.concurrency
        mine = [self.commanded[w::clients] for w in range(clients)]
        shares = [total // clients + (1 if w < total % clients else 0) for w in range(clients)]

        async def client(w: int) -> None:
            for k in range(shares[w]):
                cp_id, holder, _ = mine[w][k % len(mine[w])]
                started = time.perf_counter()
                try:
                    answer = await self.command(self.target(phase.path, holder), cp_id)
                except (aiohttp.ClientError, ValueError, TimeoutError) as exc:
                    answer = {"outcome": "error", "detail": repr(exc)}
                took = time.perf_counter() - started
                if answer.get("outcome") == "accepted":
                    phase.latencies.append(took)
                else:
                    phase.failures += 1
                    phase.first_failure = phase.first_failure or f"{cp_id}: {answer}"

        cpu_before = {name: probe.cpu() for name, probe in self.probes.items()}
        started = time.perf_counter()
        await asyncio.gather(*(client(w) for w in range(clients)))
        phase.wall_s = time.perf_counter() - started
        for name, probe in self.probes.items():
            before, after = cpu_before[name], probe.cpu()
            phase.cpu_s[name] = None if before is None or after is None else after - before
        return phase

    async def meter_values(self, count: int, spread: bool, seconds: float, name: str) -> Json:
        """`count` raw chargers (orjson over websockets, no validation: cheaper than
        simulators/, so that more of the CPU goes to the nodes) connect, alternately to
        node-a and node-b or all to node-a, boot and start a transaction (with a card the CSMS
        does not know, as bench/load.py's metervalues does by default), then send MeterValues
        back to back, each once the previous is answered, for `seconds`; then stop it.
        Messages per second and their latency."""
        latencies: list[float] = []
        failures: list[str] = []
        ready = asyncio.Barrier(count + 1)
        go = asyncio.Event()
        prefix = f"NODES-MV{2 if spread else 1}-"
        deadline = [math.inf]

        async def one(index: int) -> None:
            node = self.a if index % 2 == 0 or not spread else self.b
            cp_id = f"{prefix}{index:05d}"
            calls = 0

            async def call(ws: ClientConnection, action: str, payload: Json) -> Json:
                nonlocal calls
                calls += 1
                await ws.send(orjson.dumps([2, str(calls), action, payload]).decode())
                reply = orjson.loads(await ws.recv())
                if reply[0] != 3:
                    raise BenchError(f"{cp_id}: {action} answered {reply}")
                answer: Json = reply[2]
                return answer

            try:
                async with ws_connect(
                    f"{node.url}/{cp_id}", subprotocols=[Subprotocol("ocpp1.6")], ping_interval=None
                ) as ws:
                    boot = {"chargePointVendor": "BenchVendor", "chargePointModel": "BenchModel"}
                    await call(ws, "BootNotification", boot)
                    start = {"connectorId": 1, "idTag": f"04BE{index:010X}", "meterStart": 1_000}
                    started = await call(ws, "StartTransaction", {**start, "timestamp": iso_now()})
                    tx_id = int(started["transactionId"])
                    await ready.wait()
                    await go.wait()
                    energy = 1_000
                    while time.perf_counter() < deadline[0]:
                        energy += 10
                        sample = {
                            "timestamp": iso_now(),
                            "sampledValue": [
                                {"value": str(energy), "measurand": METER, "unit": "Wh"},
                                {"value": "11000", "measurand": POWER, "unit": "W"},
                            ],
                        }
                        body = {"connectorId": 1, "transactionId": tx_id, "meterValue": [sample]}
                        sent = time.perf_counter()
                        await call(ws, "MeterValues", body)
                        latencies.append(time.perf_counter() - sent)
                    stop = {"transactionId": tx_id, "meterStop": energy, "timestamp": iso_now()}
                    await call(ws, "StopTransaction", stop)
            except (OSError, BenchError, ValueError, ConnectionClosed, InvalidHandshake) as exc:
                failures.append(f"{cp_id}: {exc!r}")
                if not go.is_set():
                    await ready.abort()

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        try:
            await asyncio.wait_for(ready.wait(), 120)
        except (asyncio.BrokenBarrierError, TimeoutError) as exc:
            go.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise BenchError(f"{name}: chargers not ready: {failures[:1] or exc!r}") from exc
        cpu_before = {key: probe.cpu() for key, probe in self.probes.items()}
        me = ServerProbe(os.getpid())
        own_before = me.cpu()
        started = time.perf_counter()
        deadline[0] = started + seconds
        go.set()
        await asyncio.gather(*tasks)
        phase = Phase(name, "-", count, latencies, seconds, len(failures))
        phase.first_failure = failures[0] if failures else ""
        for key, probe in self.probes.items():
            before, after = cpu_before[key], probe.cpu()
            phase.cpu_s[key] = None if before is None or after is None else after - before
        own_after = me.cpu()
        if own_before is not None and own_after is not None:
            phase.cpu_s["bench"] = own_after - own_before
        return phase.figures()

    async def close(self) -> None:
        for _, _, cp in self.chargers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cp.close(), 5)


async def measure(
    args: argparse.Namespace, nodes: list[Node], probes: dict[str, ServerProbe]
) -> Json:
    bench = Bench(nodes, probes)
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as http:
        bench.http = http
        try:
            print(f"connecting {args.chargers} chargers ...", file=sys.stderr)
            started = time.perf_counter()
            bench.commanded = await bench.connect(args.chargers, args.open_timeout)
            await bench.wait_held(bench.commanded, args.start_timeout)
            connect_s = time.perf_counter() - started
            for path in ("routed", "local"):  # connections opened, code paths warmed
                await bench.run(Phase("warm-up", path, min(WARMUP, args.chargers)), WARMUP * 2)
            phases: list[Phase] = []
            figures: list[Json]
            runs: list[tuple[str, int, int]] = [
                ("sequential", 1, args.commands),
                ("concurrent", args.concurrency, args.concurrent_commands),
            ]
            for name, clients, total in runs:
                for path in ("routed", "local"):
                    print(f"{name} {path}: {total} commands ...", file=sys.stderr)
                    phases.append(await bench.run(Phase(name, path, clients), total))
            figures = [p.figures() for p in phases]
            if args.meter_seconds > 0:
                for spread in (True, False):
                    name = "meter 2 nodes" if spread else "meter 1 node"
                    print(f"{name}: {args.meter_chargers} chargers ...", file=sys.stderr)
                    figures.append(
                        await bench.meter_values(
                            args.meter_chargers, spread, args.meter_seconds, name
                        )
                    )
        finally:
            await bench.close()
    return {"connect_s": round(connect_s, 2), "phases": figures}


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def run(args: argparse.Namespace) -> Json:
    nodes: list[Node] = []
    keep = args.keep
    workdir = Path(tempfile.mkdtemp(prefix="csms-bench-nodes-"))
    with contextlib.ExitStack() as stack:
        probes: dict[str, ServerProbe] = {}
        if args.database_url:
            database_url = args.database_url
        else:
            database_url, probes["postgres"] = postgres_database(stack)
        ports = free_ports(6)
        nodes = [
            Node("node-a", "ocpp,api", ports[0], ports[1], workdir / "node-a"),
            Node("node-b", "ocpp,api", ports[2], ports[3], workdir / "node-b"),
            Node("node-api", "api", ports[4], ports[5], workdir / "node-api"),
        ]
        try:
            command = args.csms or [default_csms()]
            print("starting node-a, node-b (ocpp,api) and node-api (api) ...", file=sys.stderr)
            for node in nodes:  # side by side: each spends most of its start importing
                node.spawn(command, database_url)
            for node in nodes:
                node.wait_ready(args.start_timeout)
            for node in nodes:
                probes[node.name] = ServerProbe(node.proc.pid if node.proc else None)
            load_before = load_average()
            figures = asyncio.run(measure(args, nodes, probes))
            failed = any(p["failures"] for p in figures["phases"])
            keep = keep or failed
        except BaseException:
            keep = True
            raise
        finally:
            for node in nodes:
                node.stop()
            if keep:
                print(f"node directories kept: {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "database": "given --database-url" if args.database_url else "throw-away, durable",
        "chargers": args.chargers,
        "command": f"{COMMAND} {orjson.dumps(BODY).decode()}",
        **figures,
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(report: Json) -> list[str]:
    lines = [
        f"{report['date']}  {report['machine']}",
        f"load average before {report['load_average_before']}, "
        f"after {report['load_average_after']}",
        f"PostgreSQL: {report['database']}; {report['chargers']} chargers (half on node-a, "
        f"half on node-b) connected and booted in {report['connect_s']} s",
        f"command: {report['command']}",
        "",
        f"{'phase':<13} {'path':<6} {'clients':>7} {'msgs':>6} {'fail':>4} "
        f"{'per s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}  "
        "CPU s (api / a / b / postgres / bench)",
    ]
    for p in report["phases"]:
        cpu = p["cpu_s"]
        keys = ("node-api", "node-a", "node-b", "postgres", "bench")
        cpus = " / ".join(fmt(cpu.get(k)) for k in keys)
        lines.append(
            f"{p['phase']:<13} {p['path']:<6} {p['concurrency']:>7} {p['commands']:>6} "
            f"{p['failures']:>4} {fmt(p['commands_per_s']):>7} {fmt(p['p50_ms'], 2):>7} "
            f"{fmt(p['p95_ms'], 2):>7} {fmt(p['p99_ms'], 2):>7} {fmt(p['max_ms'], 2):>7}  {cpus}"
        )
    for p in report["phases"]:
        if p["first_failure"]:
            lines.append(f"first failure ({p['phase']} {p['path']}): {p['first_failure']}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chargers", type=int, default=100, help="simulated chargers (even)")
    parser.add_argument("--commands", type=int, default=200, help="one at a time, per path")
    parser.add_argument("--concurrency", type=int, default=20, help="clients at once")
    parser.add_argument(
        "--concurrent-commands", type=int, default=1000, help="with --concurrency, per path"
    )
    parser.add_argument(
        "--meter-seconds",
        type=float,
        default=10.0,
        help="MeterValues on 2 nodes, then on 1, for this long each (0: skip)",
    )
    parser.add_argument(
        "--meter-chargers", type=int, default=100, help="chargers sending MeterValues"
    )
    parser.add_argument(
        "--database-url", help="this PostgreSQL database (postgresql+asyncpg://...; empty or csms)"
    )
    parser.add_argument("--csms", nargs="+", help="the csms command (default: next to python)")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    parser.add_argument("--open-timeout", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the nodes' logs")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql+asyncpg://"):
        parser.error("--database-url must be postgresql+asyncpg://... (nodes need PostgreSQL)")
    limits = {
        "--chargers": (args.chargers, 2, 10_000),
        "--commands": (args.commands, 1, 1_000_000),
        "--concurrency": (args.concurrency, 1, 1_000),
        "--concurrent-commands": (args.concurrent_commands, 1, 1_000_000),
        "--meter-seconds": (args.meter_seconds, 0, 3_600),
        "--meter-chargers": (args.meter_chargers, 2, 10_000),
    }
    for name, (value, low, high) in limits.items():
        if not low <= value <= high:
            parser.error(f"{name} must be within [{low}, {high}]")
    if args.concurrency > args.chargers:
        parser.error("--concurrency may not exceed --chargers (one command per charger)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    lines = table(report)
    if args.json:
        print("\n".join(lines), file=sys.stderr)
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        print("\n".join(lines))
    return EXIT_FAILED if any(p["failures"] for p in report["phases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
