"""Several `csms serve` nodes on one PostgreSQL database, as separate processes: commands
reach a charger on whichever node holds it, a charger that reconnects elsewhere is served
there (the old node closes its socket), a killed node's chargers go offline; and SQLite's
single process records itself as the holder as before."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from csms.app import CsmsApp
from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.commands import CommandName, CommandRecord
from csms.core.locations import Location
from csms.services.locations import LocationService
from csms.services.staff import StaffService
from csms.storage import commands as command_repo
from csms.storage import nodes as node_repo
from csms.storage.database import Database, WriteTx
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.conftest import Running, StartServer, make_config
from tests.e2e.fake_partner import EMSP_ROLE
from tests.e2e.sim import charger, register, until
from tests.e2e.test_ocpi_commands import Peer
from tests.e2e.test_ocpi_commands import _register as register_partner
from tests.e2e.test_ocpi_commands import token as emsp_token
from tests.postgres import db_url_for

CSMS = [sys.executable, "-m", "csms.cli.main"]
TOKEN = "nodes-test-token"
# A node is dead after DEAD_AFTER seconds without a heartbeat (every HEARTBEAT seconds).
HEARTBEAT = 0.5
DEAD_AFTER = 2.0
PICKUP = 1.0
OCPI_LOCATION = "LOC-NODES"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    """One `csms serve` process."""

    name: str
    proc: subprocess.Popen[bytes]
    ocpp_port: int
    api_port: int
    log: Path
    # The port that answers once the node serves (OCPP's, or the API's for an API node).
    listens_on: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Nodes:
    db_url: str
    workdir: Path
    running: list[Node] = field(default_factory=list)

    def start(self, name: str, only: str) -> Node:
        """Start a node and wait until it listens."""
        return self.ready(self.spawn(name, only))

    def spawn(self, name: str, only: str) -> Node:
        ocpp_port, api_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        env.update(
            CSMS_DATABASE_URL=self.db_url,
            CSMS_OCPP_HOST="127.0.0.1",
            CSMS_OCPP_PORT=str(ocpp_port),
            CSMS_OCPP_PING_INTERVAL="0",
            CSMS_API_HOST="127.0.0.1",
            CSMS_API_PORT=str(api_port),
            CSMS_API_TOKEN=TOKEN,
            CSMS_LOG_FORMAT="json",
            CSMS_CLUSTER_NODE_ID=name,
            CSMS_CLUSTER_HEARTBEAT_INTERVAL=str(HEARTBEAT),
            CSMS_CLUSTER_DEAD_AFTER=str(DEAD_AFTER),
            CSMS_CLUSTER_PICKUP_TIMEOUT=str(PICKUP),
        )
        directory = self.workdir / name
        directory.mkdir(exist_ok=True)
        log = directory / "log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*CSMS, "--data-dir", str(directory), "serve", "--only", only],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        listens_on = ocpp_port if "ocpp" in only else api_port
        node = Node(name, proc, ocpp_port, api_port, log, listens_on)
        self.running.append(node)
        return node

    @staticmethod
    def ready(node: Node) -> Node:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", node.listens_on), 0.2).close()
                return node
            except OSError:
                assert node.proc.poll() is None, node.logged()
                time.sleep(0.05)
        raise AssertionError(f"node {node.name} did not start:\n{node.logged()}")

    def stop_all(self) -> None:
        for node in self.running:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.running:
            try:
                node.proc.wait(15)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()


@dataclass
class Cluster:
    a: Node
    b: Node
    api: Node
    nodes: Nodes
    db: Database

    @property
    def staff(self) -> StaffService:
        return StaffService(self.db, utc_now)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nodes")


@pytest.fixture(scope="module")
def processes(backend: str, workdir: Path) -> Iterator[Nodes]:
    """Two OCPP nodes and an API-only node, shared by the module's tests."""
    assert backend == "postgres"
    nodes = Nodes(db_url_for(workdir / "csms.db"), workdir)
    try:
        # Started side by side: each spends most of its start importing.
        for node in [
            nodes.spawn("node-a", "ocpp"),
            nodes.spawn("node-b", "ocpp"),
            nodes.spawn("node-api", "api"),
        ]:
            nodes.ready(node)
        yield nodes
    finally:
        nodes.stop_all()


@pytest.fixture
async def cluster(processes: Nodes) -> AsyncIterator[Cluster]:
    a, b, api = processes.running[:3]
    db = Database.from_url(processes.db_url)
    try:
        yield Cluster(a, b, api, processes, db)
    finally:
        await db.close()


async def command(node: Node, cp_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a command to a node's operator API; the result's JSON."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        http.post(f"{node.api}/api/chargers/{cp_id}/remote/{path}", json=body) as response,
    ):
        found: dict[str, Any] = await response.json()
        return found


async def read(node: Node, path: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        http.get(f"{node.api}{path}") as response,
    ):
        assert response.status == 200, await response.text()
        found: dict[str, Any] = await response.json()
        return found


async def cli(node: Node, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_API_HOST="127.0.0.1", CSMS_API_PORT=str(node.api_port), CSMS_API_TOKEN=TOKEN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def holder_of(cluster: Cluster, cp_id: str) -> tuple[bool, str | None]:
    found = await cluster.staff.charger(cp_id)
    return found.charger.connected, found.charger.node_id


@pytest.mark.postgres_only
async def test_a_remote_start_on_the_api_node_reaches_a_charger_on_node_b(
    cluster: Cluster,
) -> None:
    for uid in ("CARD-B", "CARD-B2"):
        await cluster.staff.add_token(Token(uid, TokenStatus.ACCEPTED))
    async with charger(cluster.b.url, "NODES-B1", connectors=2) as cp:
        await until(lambda: _held_by(cluster, "NODES-B1", "node-b"), "node-b to hold the charger")

        async def transactions() -> dict[str, int]:
            running = await cluster.staff.transactions(active_only=True, cp_id="NODES-B1")
            return {tx.id_tag or "": tx.evse_id for tx in running}

        # A remote start through the API node, timed: stored there, routed to node B, sent
        # to the charger, its answer recorded and read back.
        started = time.perf_counter()
        result = await command(cluster.api, "NODES-B1", "start", {"tag": "CARD-B", "evse": 1})
        took = time.perf_counter() - started
        assert result["outcome"] == "accepted", result
        assert took < 1.0, f"the answer took {took:.3f} s"
        assert (await until(transactions, "the remote-started transaction")) == {"CARD-B": 1}
        # `csms remote start` against the API node does the same.
        code, out, err = await cli(
            cluster.api, "remote", "start", "NODES-B1", "--tag", "CARD-B2", "--evse", "2", "--json"
        )
        assert code == 0, (out, err)
        assert '"outcome": "accepted"' in out, out

        async def both() -> bool:
            return await transactions() == {"CARD-B": 1, "CARD-B2": 2}

        await until(both, "the second remote-started transaction")
        assert cp.online
    # One audit entry per command, written by the API node and completed by node B.
    history = [r for r in await _history(cluster, "NODES-B1") if r.command == "start"]
    assert [(r.outcome, r.source, r.params.get("tag")) for r in history] == [
        ("accepted", "cli", "CARD-B2"),
        ("accepted", "api", "CARD-B"),
    ]
    assert '"origin_node":"node-api","event":"command_taken_up"' in cluster.b.logged()
    assert '"command_taken_up"' not in cluster.a.logged()
    assert '"command_routed"' in cluster.api.logged()


@pytest.mark.postgres_only
async def test_a_charger_that_moves_to_another_node_takes_its_commands_along(
    cluster: Cluster,
) -> None:
    async with charger(cluster.a.url, "NODES-MOVE") as first:
        await until(lambda: _held_by(cluster, "NODES-MOVE", "node-a"), "node-a to hold it")
        result = await command(cluster.api, "NODES-MOVE", "trigger", {"message": "Heartbeat"})
        assert result["outcome"] == "accepted", result
        # The same charger connects to node B (a load balancer sent it there).
        async with charger(cluster.b.url, "NODES-MOVE") as second:
            await until(lambda: _held_by(cluster, "NODES-MOVE", "node-b"), "node-b to hold it")
            # Node A closes its old socket.
            await asyncio.wait_for(first.wait_lost(), 5)
            assert not first.online
            result = await command(
                cluster.api, "NODES-MOVE", "config-get", {"keys": ["HeartbeatInterval"]}
            )
            assert result["outcome"] == "accepted", result
            # Also from node A's point of view: still connected (to node B).
            assert await holder_of(cluster, "NODES-MOVE") == (True, "node-b")
            shown = await read(cluster.api, "/api/chargers/NODES-MOVE")
            # The API node holds no sockets: "connected_here" does not apply to it.
            assert (shown["connected"], shown["node_id"], shown["connected_here"]) == (
                True,
                "node-b",
                None,
            )
            assert second.online
    logged = cluster.a.logged()
    assert '"connection_replaced"' in logged and "another node" in logged
    # Node A's closing did not mark the charger disconnected: node B did, when it left.
    await until(lambda: _offline(cluster, "NODES-MOVE"), "the charger offline once it left node B")


@pytest.mark.postgres_only
async def test_a_transaction_that_ends_on_another_node_frees_its_card_on_the_first(
    cluster: Cluster,
) -> None:
    """Node A remembers the transactions it serves (and which cards they hold); the charger
    moves to node B, which ends the transaction; back on node A, the card is free again
    and its limit still holds."""
    await cluster.staff.add_token(Token("MOVE-CARD", TokenStatus.ACCEPTED, max_concurrent=1))
    async with charger(cluster.a.url, "NODES-TX") as first:
        started = await first.start_transaction(1, "MOVE-CARD", 1000)
        assert started["idTagInfo"]["status"] == "Accepted"
        tx_id = started["transactionId"]
        assert (await first.meter_values(1, tx_id, [register(datetime.now(UTC), 1500)])) == {}
    async with charger(cluster.b.url, "NODES-TX") as second:
        stopped = await second.stop_transaction(tx_id, 2000, id_tag="MOVE-CARD")
        assert stopped["idTagInfo"]["status"] == "Accepted"
    async with charger(cluster.a.url, "NODES-TX") as third:
        # On another connector than the ended transaction's: only a card that is free
        # again starts there.
        again = await third.start_transaction(2, "MOVE-CARD", 0)
        assert again["idTagInfo"]["status"] == "Accepted"
        other = await third.start_transaction(1, "MOVE-CARD", 2000)
        assert other["idTagInfo"]["status"] == "ConcurrentTx"
    ended = await cluster.staff.transaction(tx_id)
    assert (ended.transaction.meter_stop_wh, ended.transaction.active) == (2000, False)


@pytest.mark.postgres_only
async def test_a_killed_node_s_chargers_go_offline_and_commands_to_it_fail_fast(
    cluster: Cluster,
) -> None:
    node = cluster.nodes.start("node-c", "ocpp")
    async with charger(node.url, "NODES-C1"):
        await until(lambda: _held_by(cluster, "NODES-C1", "node-c"), "node-c to hold it")
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(5)
        killed = time.monotonic()
        # Its row still looks alive for a moment: the command is routed there, nobody
        # takes it up, it fails as not connected after the pickup time, it does not hang.
        started = time.perf_counter()
        result = await command(cluster.api, "NODES-C1", "trigger", {"message": "Heartbeat"})
        took = time.perf_counter() - started
        assert result["outcome"] == "not_connected", result
        assert took < PICKUP + 1.5, took
        await until(lambda: _offline(cluster, "NODES-C1"), "the killed node's charger offline", 15)
        gone = time.monotonic() - killed
        assert gone < DEAD_AFTER + 2 * HEARTBEAT + 2, gone
    survivors = (cluster.a, cluster.b, cluster.api)
    assert all(node.proc.poll() is None for node in survivors)
    # Whichever live node beat first found it dead (API nodes take part too).
    assert sum('"nodes_found_dead"' in node.logged() for node in survivors) >= 1


@pytest.mark.postgres_only
async def test_a_node_taken_for_dead_records_its_chargers_again_when_it_resumes(
    cluster: Cluster,
) -> None:
    """A node that stops answering for longer than dead_after (paused here; a long GC
    pause or a database outage alike) has its chargers marked offline by the others;
    its sockets stayed open, so once it resumes it records them connected again."""
    node = cluster.nodes.start("node-d", "ocpp")
    async with charger(node.url, "NODES-D1") as cp:
        await until(lambda: _held_by(cluster, "NODES-D1", "node-d"), "node-d to hold it")
        node.proc.send_signal(signal.SIGSTOP)
        try:
            await until(lambda: _offline(cluster, "NODES-D1"), "the paused node's charger offline")
        finally:
            node.proc.send_signal(signal.SIGCONT)
        await until(lambda: _held_by(cluster, "NODES-D1", "node-d"), "the charger online again")
        assert cp.online
        result = await command(cluster.api, "NODES-D1", "trigger", {"message": "Heartbeat"})
        assert result["outcome"] == "accepted", result
    assert '"node_revived"' in node.logged()


@pytest.mark.postgres_only
async def test_unknown_or_offline_chargers_fail_at_once_from_the_api_node(
    cluster: Cluster,
) -> None:
    result = await command(cluster.api, "NODES-NOWHERE", "trigger", {"message": "Heartbeat"})
    assert result["outcome"] == "not_connected"
    assert "unknown charger" in result["message"]


async def _held_by(cluster: Cluster, cp_id: str, node: str) -> bool:
    try:
        return await holder_of(cluster, cp_id) == (True, node)
    except Exception:  # noqa: BLE001 - not stored yet
        return False


async def _offline(cluster: Cluster, cp_id: str) -> bool:
    connected, _node = await holder_of(cluster, cp_id)
    return not connected


async def _history(cluster: Cluster, cp_id: str) -> list[CommandRecord]:
    async with cluster.db.read() as conn:
        return await command_repo.recent(conn, cp_id=cp_id)


@pytest.mark.sqlite_only
async def test_one_sqlite_process_is_the_only_node(start_server: StartServer) -> None:
    server = await start_server()
    assert server.app.cluster is None
    async with charger(server.url, "SOLO-1"):
        detail = await server.staff.charger("SOLO-1")
        assert (detail.charger.connected, detail.charger.node_id) == (True, server.app.node_id)
        result = await server.app.commands.execute(
            "SOLO-1", server.app.commands.parse(CommandName.TRIGGER, {"message": "Heartbeat"})
        )
        assert result.outcome.value == "accepted"

    async def offline() -> bool:
        return not (await server.staff.charger("SOLO-1")).charger.connected

    await until(offline, "the charger offline")


@pytest.mark.postgres_only
async def test_an_ocpi_start_session_on_the_ocpi_node_starts_the_emsp_s_session_on_the_ocpp_node(
    tmp_path: Path,
) -> None:
    """OCPI and OCPP on two nodes (in one test process here): the eMSP's START_SESSION,
    received by the OCPI node, is routed with the party vouching for the token to the OCPP
    node holding the charger; the transaction started there is the eMSP's."""
    db_path = tmp_path / "csms.db"
    ocpi_node = CsmsApp(
        # Its location publisher finds the OCPP node's changes in its periodic passes.
        make_config(db_path, cluster={"node_id": "ocpi-node"}, ocpi={"push_interval": 0.5}),
        components=("ocpi", "api"),
    )
    ocpp_node = CsmsApp(
        make_config(db_path, cluster={"node_id": "ocpp-node"}), components=("ocpp",)
    )
    await ocpi_node.start()
    await ocpp_node.start()
    cp_id = "NODES-OCPI"
    station = create_charger(
        ChargerOptions(
            url=f"ws://127.0.0.1:{ocpp_node.ocpp.port}/ocpp",
            charger_id=cp_id,
            connectors=2,
            sessions=0,
            meter_interval=0.3,
            seed=3,
            response_timeout=10,
        )
    )
    running = asyncio.create_task(station.run())
    emsp: Peer | None = None
    try:
        served = Running(ocpi_node, ocpi_node.config, db_path)
        locations = LocationService(ocpi_node.db, utc_now)
        await locations.add(
            Location(
                id=OCPI_LOCATION,
                name="Two nodes",
                address="Kade 3",
                city="Amsterdam",
                postal_code="1011AA",
                country="NLD",
                latitude="52.3702",
                longitude="4.8952",
                time_zone="Europe/Amsterdam",
            )
        )
        await locations.link(OCPI_LOCATION, cp_id, None)
        emsp, _ = await register_partner(served, "emsp", EMSP_ROLE)
        staff = StaffService(ocpi_node.db, utc_now)

        async def announced() -> bool:
            try:
                detail = await staff.charger(cp_id)
            except Exception:  # noqa: BLE001 - not stored yet
                return False
            return detail.charger.node_id == "ocpp-node" and len(detail.connectors) >= 2

        await until(announced, "the charger's connectors on the OCPP node")

        async def published() -> bool:
            assert emsp is not None and emsp.fake.our_token is not None
            status, body, _ = await emsp.fake.call(
                "GET",
                f"{served.ocpi_url}/ocpi/2.2.1/locations/{OCPI_LOCATION}",
                emsp.fake.our_token,
            )
            uids = {e["uid"] for e in body["data"].get("evses", [])} if status == 200 else set()
            return f"{cp_id}*1" in uids

        await until(published, "the EVSEs published by the OCPI node")
        url = await emsp.accepted(
            "START_SESSION",
            {
                "token": emsp_token("APP-NODES"),
                "location_id": OCPI_LOCATION,
                "evse_uid": f"{cp_id}*1",
                "connector_id": "1",
                "authorization_reference": "AUTH-NODES",
            },
        )
        result = await emsp.result(url)
        assert result["result"] == "ACCEPTED", result

        async def started() -> list[Any]:
            return await staff.transactions(active_only=True, cp_id=cp_id)

        (tx,) = await until(started, "the eMSP's transaction")
        assert (tx.evse_id, tx.id_tag, tx.auth_status) == (1, "APP-NODES", "Accepted")
        (entry,) = [r for r in await staff_history(ocpi_node, cp_id) if r.command == "start"]
        assert (entry.source, entry.requested_by, entry.outcome) == ("ocpi", "emsp", "accepted")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await station.close()
        if emsp is not None:
            await emsp.fake.stop()
        await ocpp_node.stop()
        await ocpi_node.stop()


async def staff_history(app: CsmsApp, cp_id: str) -> list[CommandRecord]:
    async with app.db.read() as conn:
        return await command_repo.recent(conn, cp_id=cp_id)


@pytest.mark.postgres_only
async def test_a_command_sent_while_the_holder_s_listen_connection_is_down_arrives(
    tmp_path: Path,
) -> None:
    """The holder's LISTEN connection is killed just before a command is routed to it: it
    comes back, looks for the commands addressed to it meanwhile, and sends this one."""
    db_path = tmp_path / "csms.db"
    holder = CsmsApp(make_config(db_path, cluster={"node_id": "holder"}), components=("ocpp",))
    asker = CsmsApp(make_config(db_path, cluster={"node_id": "asker"}), components=("api",))
    await holder.start()
    await asker.start()
    try:
        async with charger(f"ws://127.0.0.1:{holder.ocpp.port}/ocpp", "NODES-LISTEN"):
            staff = StaffService(asker.db, utc_now)

            async def held() -> bool:
                return (await staff.charger("NODES-LISTEN")).charger.node_id == "holder"

            await until(held, "the holder to record the charger")

            async def kill(w: WriteTx) -> int:
                result = await (await w.connection()).execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": f"csms-listen {node_repo.channel_of('holder')}"},
                )
                return int(result.scalar_one())

            assert await asker.db.write(kill) == 1
            request = asker.commands.parse(CommandName.TRIGGER, {"message": "Heartbeat"})
            result = await asker.commands.execute("NODES-LISTEN", request)
            assert result.outcome.value == "accepted", result
            assert holder.cluster is not None and holder.cluster.listen_reconnections == 1
    finally:
        await asker.stop()
        await holder.stop()
