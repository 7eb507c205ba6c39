"""Singleton work across `csms serve` processes: on PostgreSQL one node leads it (the log
and /metrics say which) and another takes over within 10 s of a `kill -9`, with every
acknowledged charger message stored and no CDR or OCPI push made twice; a revoked partner
token stops working on every OCPI node within 1 s; on SQLite a second process for the
same work is refused with one line.

Real processes (`python -m csms.cli.main serve`), real databases, raw OCPP 1.6 chargers
(tests/e2e/raw.py: every answer they get is one acknowledged message) and the fake eMSP
of tests/e2e/fake_partner.py as the receiver of pushes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, select
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.services.locations import LocationService
from csms.services.partners import PartnerService
from csms.services.staff import StaffService
from csms.storage import outbox as outbox_repo
from csms.storage.database import Database, WriteTx
from csms.storage.models import CdrRow, MeterValueRow, TransactionRow
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner, Seen
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import register, ts
from tests.postgres import db_url_for

CSMS = [sys.executable, "-m", "csms.cli.main"]
API_TOKEN = "singletons-token"
# The cards of the fake eMSP's party (one per charger): their sessions and CDRs are pushed.
CARD = "EMS-CARD-{}"
RECEIVERS = (
    ("credentials", "SENDER"),
    ("locations", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
)
_tx = cast(Table, TransactionRow.__table__)
_cdr = cast(Table, CdrRow.__table__)
_mv = cast(Table, MeterValueRow.__table__)


def free_ports(count: int = 3) -> list[int]:
    """Ports free now, all different (held together while they are picked)."""
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in held]


def new_node(name: str, directory: Path) -> Node:
    ocpp, api, ocpi = free_ports()
    return Node(name, directory, ocpp, api, ocpi)


@dataclass
class Node:
    """One `csms serve` process; its JSON log goes to `log_file`."""

    name: str
    directory: Path
    ocpp_port: int
    api_port: int
    ocpi_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def ocpi_url(self) -> str:
        return f"http://127.0.0.1:{self.ocpi_port}"

    @property
    def log_file(self) -> Path:
        return self.directory / "csms.log"

    def log(self) -> list[dict[str, Any]]:
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        return [json.loads(line) if line.startswith("{") else {"line": line} for line in lines]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.log() if r.get("event") == event]

    def metrics(self) -> dict[str, float]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/metrics",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def leads(self) -> dict[str, bool]:
        """The node's singleton groups and whether it leads each (from /metrics)."""
        found = {}
        for key, value in self.metrics().items():
            if key.startswith("csms_singleton_leader{"):
                found[key.split('"')[1]] = value == 1
        return found


def write_config(node: Node, database_url: str, **ocpi: Any) -> None:
    node.directory.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in ocpi.items())
    (node.directory / "csms.toml").write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {node.ocpp_port}\nping_interval = 0\n'
        'registration = "accept"\n'
        f'[api]\nhost = "127.0.0.1"\nport = {node.api_port}\ntoken = "{API_TOKEN}"\n'
        f'[ocpi]\nhost = "127.0.0.1"\nport = {node.ocpi_port}\n'
        f'base_url = "{node.ocpi_url}"\n{extra}'
        '[log]\nformat = "json"\n'
    )


def spawn(node: Node, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    with node.log_file.open("ab") as log:
        return subprocess.Popen(
            [*CSMS, "serve", *args],
            cwd=node.directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_serving(node: Node, seconds: float = 30.0) -> None:
    """Until the node's API answers (it listens once it started every part)."""
    deadline = time.monotonic() + seconds
    assert node.proc is not None
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise AssertionError(f"{node.name} exited {node.proc.returncode}: {node.log()[-5:]}")
        try:
            node.metrics()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{node.name} did not start within {seconds:g} s")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start nodes on the test's database: `start(name, **ocpi settings)`."""
    started: list[Node] = []
    url = db_url_for(tmp_path / "csms.db")

    def start(name: str, *args: str, **ocpi: Any) -> Node:
        node = new_node(name, tmp_path / name)
        write_config(node, url, **ocpi)
        node.proc = spawn(node, *args)
        started.append(node)
        wait_serving(node)
        return node

    yield start
    for node in started:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
            try:
                node.proc.wait(15)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()


async def until(check: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database.from_url(db_url_for(tmp_path / "csms.db"))
    db.start()
    try:
        yield db
    finally:
        await db.close()


async def prepare(db: Database, chargers: list[str]) -> None:
    """A published location with the chargers, and the eMSP's card."""
    locations = LocationService(db, utc_now)
    await locations.add(
        Location(
            id="LOC-N",
            name="Depot",
            address="Kade 1",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    for cp in chargers:
        await locations.link("LOC-N", cp, None)
    staff = StaffService(db, utc_now)
    for n in range(len(chargers)):
        await staff.add_token(Token(CARD.format(n), TokenStatus.ACCEPTED, origin="DE*EMS"))


# --- the stream of sessions -----------------------------------------------------------------


@dataclass
class Acknowledged:
    """What the CSMS answered: each message it acknowledged must be stored."""

    started: dict[int, str] = field(default_factory=dict)  # transaction id -> charger
    stopped: dict[int, int] = field(default_factory=dict)  # transaction id -> meterStop
    meter_values: Counter[int] = field(default_factory=Counter)  # transaction id -> count


Lost = (OSError, TimeoutError, WebSocketException)


class Charger:
    """A raw 1.6 charger running sessions back to back. A message without an answer (the
    node it was on died) is sent again on its next connection, as chargers do; `urls`
    says where to connect (the first that answers)."""

    def __init__(
        self, cp_id: str, card: str, urls: Callable[[], list[str]], seen: Acknowledged
    ) -> None:
        self.cp_id = cp_id
        self.card = card
        self.urls = urls
        self.seen = seen
        self.ws: ClientConnection | None = None
        self.reconnects = 0
        self.wh = 10_000

    async def _connect(self) -> ClientConnection:
        while True:
            for url in self.urls():
                try:
                    ws = await open_raw(url, self.cp_id)
                    await call(ws, "BootNotification", BOOT)
                    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
                    await call(ws, "StatusNotification", status)
                    return ws
                except Lost:
                    continue
            await asyncio.sleep(0.2)

    async def _send(self, action: str, payload: dict[str, Any]) -> Any:
        """Until acknowledged: on a lost connection, again on a new one."""
        while True:
            if self.ws is None:
                self.ws = await self._connect()
            try:
                return await call(self.ws, action, payload)
            except Lost:
                self.ws = None
                self.reconnects += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            start = {
                "connectorId": 1,
                "idTag": self.card,
                "meterStart": self.wh,
                "timestamp": ts(datetime.now(UTC)),
            }
            answer = await self._send("StartTransaction", start)
            assert answer[0] == 3 and answer[2]["idTagInfo"]["status"] == "Accepted", answer
            tx_id = int(answer[2]["transactionId"])
            self.seen.started[tx_id] = self.cp_id
            for _ in range(2):
                self.wh += 20
                values = {
                    "connectorId": 1,
                    "transactionId": tx_id,
                    "meterValue": [register(datetime.now(UTC), self.wh)],
                }
                answer = await self._send("MeterValues", values)
                assert answer[0] == 3, answer
                self.seen.meter_values[tx_id] += 1
            self.wh += 20
            end = {"transactionId": tx_id, "meterStop": self.wh, "timestamp": ts(datetime.now(UTC))}
            answer = await self._send("StopTransaction", end)
            assert answer[0] == 3, answer
            self.seen.stopped[tx_id] = self.wh
            await asyncio.sleep(0.05)
        if self.ws is not None:
            await self.ws.close()


def push_key(seen: Seen) -> tuple[str, str, str]:
    """A push as the partner sees it: the object (method and path) and its version (the
    body, which carries last_updated)."""
    return seen.method, seen.path, json.dumps(seen.body, sort_keys=True)


@pytest.mark.postgres_only
async def test_the_leader_killed_mid_stream_is_replaced_without_duplicates(
    cluster: Callable[..., Node], tmp_path: Path
) -> None:
    chargers = [f"NODE-CP-{n}" for n in range(4)]
    async with database(tmp_path) as db:
        await prepare(db, chargers)
        invitation = await PartnerService(db, utc_now).add("emsp")
    settings = {"session_update_interval": 1.0, "push_interval": 0.5, "request_timeout": 2.0}
    a = cluster("a", **settings)
    await until(lambda: a.leads() == {"charging": True, "ocpi": True}, "node a leading")
    b = cluster("b", **settings)
    # One leader: a says so in its log and /metrics, b waits.
    assert b.leads() == {"charging": False, "ocpi": False}
    elected = a.events("singleton_leader_elected")
    assert sorted(r["group"] for r in elected) == ["charging", "ocpi"]
    assert b.events("singleton_leader_elected") == []

    accepted: Counter[tuple[str, str, str]] = Counter()
    refusing = False

    def answer(seen: Seen) -> tuple[int, int]:
        if refusing:
            return 503, 3000
        accepted[push_key(seen)] += 1
        return 200, 1000

    fake = await FakePartner(roles=(EMSP_ROLE,), endpoints=RECEIVERS, push_answer=answer).start()
    try:
        await fake.register_with(f"{a.ocpi_url}/ocpi/versions", invitation.token_a)
        seen = Acknowledged()
        alive = [a, b]
        # Two chargers on each node; after the kill all of them land on b.

        def urls(first: Node) -> Callable[[], list[str]]:
            return lambda: [node.ocpp_url for node in [first, *alive] if node in alive]

        sims = [
            Charger(cp, CARD.format(n), urls(a if n < 2 else b), seen)
            for n, cp in enumerate(chargers)
        ]
        stop = asyncio.Event()
        streams = [asyncio.create_task(sim.run(stop)) for sim in sims]
        await until(lambda: len(seen.stopped) >= 8 and accepted, "sessions flowing and pushed")
        # The partner refuses for a moment around the kill: a push it accepted while the
        # node died before recording the answer would come again (delivery is at least
        # once); what is counted here is pushes made twice by two nodes.
        refusing = True
        await asyncio.sleep(0.5)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        a.proc.wait()
        alive.remove(a)
        refusing = False
        await until(lambda: b.leads() == {"charging": True, "ocpi": True}, "b taking over", 10.0)
        took_over = time.monotonic() - killed_at
        assert took_over < 10.0
        stopped_before = len(seen.stopped)
        await until(lambda: len(seen.stopped) >= stopped_before + 8, "sessions on b")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*streams), 20.0)
        assert sum(sim.reconnects for sim in sims[:2]) >= 2  # a's chargers moved to b

        async with database(tmp_path) as db:
            # Failed pushes (refused, or claimed by a when it died) are due again now.
            async def retry(w: WriteTx) -> int:
                return await outbox_repo.retry_now(await w.connection(), datetime.now(UTC))

            await db.write(retry)

            state: dict[str, Any] = {}

            async def settled() -> bool:
                async with db.read() as conn:
                    open_pushes = await outbox_repo.listing(conn)
                    cdrs = (await conn.execute(select(func.count()).select_from(_cdr))).scalar()
                    billing = (
                        await conn.execute(
                            select(
                                _tx.c.billing, _tx.c.held_reason, _tx.c.billing_error, func.count()
                            ).group_by(_tx.c.billing, _tx.c.held_reason, _tx.c.billing_error)
                        )
                    ).all()
                state.update(
                    pushes=open_pushes[:3], cdrs=cdrs, stopped=len(seen.stopped), billing=billing
                )
                posted = [k for k in accepted if k[0] == "POST" and k[1].endswith("/cdrs")]
                state.update(posted=len(posted))
                return not open_pushes and cdrs == len(seen.stopped) == len(posted)

            try:
                await until(settled, "every session billed and every push delivered", 30.0)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {state}") from None
            async with db.read() as conn:
                stored = {
                    r.id: r
                    for r in (
                        await conn.execute(select(_tx).where(_tx.c.id.in_(list(seen.started))))
                    ).all()
                }
                values: dict[int, int] = dict(
                    (
                        await conn.execute(
                            select(_mv.c.transaction_id, func.count())
                            .where(_mv.c.transaction_id.in_(list(seen.started)))
                            .group_by(_mv.c.transaction_id)
                        )
                    ).all()
                )
                per_transaction = Counter(
                    (await conn.execute(select(_cdr.c.transaction_id))).scalars()
                )
        # Every acknowledged message is stored.
        assert set(stored) == set(seen.started)
        for tx_id, meter_stop in seen.stopped.items():
            assert stored[tx_id].meter_stop_wh == meter_stop
        for tx_id, count in seen.meter_values.items():
            assert values.get(tx_id, 0) >= count
        # One CDR per transaction, none twice.
        assert set(per_transaction) == set(seen.stopped)
        assert set(per_transaction.values()) == {1}
        # No push made twice: each object's version reached the partner once.
        twice = {key[:2]: n for key, n in accepted.items() if n > 1}
        assert twice == {}
        cdr_posts = [key for key in accepted if key[0] == "POST" and key[1].endswith("/cdrs")]
        assert len(cdr_posts) == len(seen.stopped)
        assert b.events("singleton_leader_elected")
        print(f"take-over after kill -9: {took_over:.1f} s")
    finally:
        await fake.stop()


@pytest.mark.postgres_only
async def test_a_revoked_partner_token_is_refused_by_every_ocpi_node_within_a_second(
    cluster: Callable[..., Node], tmp_path: Path
) -> None:
    async with database(tmp_path) as db:
        partners = PartnerService(db, utc_now)
        invitation = await partners.add("emsp")
        a = cluster("a", "--only", "ocpi,api")
        b = cluster("b", "--only", "ocpi,api")
        fake = await FakePartner(roles=(EMSP_ROLE,), endpoints=RECEIVERS).start()
        try:
            await fake.register_with(f"{a.ocpi_url}/ocpi/versions", invitation.token_a)
            assert fake.our_token is not None
            url = f"{b.ocpi_url}/ocpi/2.2.1/locations"
            status, _, _ = await fake.call("GET", url, fake.our_token)
            assert status == 200  # b knows the token (and keeps it for a while)
            await partners.remove("emsp")
            revoked = time.monotonic()
            last_served = None
            while time.monotonic() - revoked < 2.0:
                sent = time.monotonic()
                status, body, _ = await fake.call("GET", url, fake.our_token)
                if status == 200:
                    last_served = sent - revoked
                else:
                    # Refused: unknown (401), then, as wrong tokens add up, backed off (429).
                    assert status in (401, 429), body
                await asyncio.sleep(0.02)
            assert last_served is None or last_served < 1.0
            print(f"revoked token last served {last_served} s after its removal")
            status, _, _ = await fake.call(
                "GET", f"{a.ocpi_url}/ocpi/2.2.1/locations", fake.our_token
            )
            assert status == 401
        finally:
            await fake.stop()


@pytest.mark.sqlite_only
def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = db_url_for(tmp_path / "csms.db")
    first = new_node("first", tmp_path / "first")
    write_config(first, url)
    first.proc = spawn(first)
    try:
        wait_serving(first)
        assert first.leads() == {"charging": True, "ocpi": True}
        # The same work again on the same file: refused in one line, before listening.
        for only, work in (
            ("ocpp", "the CDR and reservation-expiry workers (csms serve with ocpp)"),
            ("ocpi", "the OCPI publishers and push worker (csms serve with ocpi)"),
        ):
            second = new_node(f"second-{only}", tmp_path / only)
            write_config(second, url)
            ran = subprocess.run(
                [*CSMS, "serve", "--only", only],
                cwd=second.directory,
                env={k: v for k, v in os.environ.items() if not k.startswith("CSMS_")},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ran.returncode == 1
            last = ran.stderr.strip().splitlines()[-1]
            db_file = tmp_path / "csms.db"
            assert last == (
                f"error: another csms process already runs {work} on {db_file} "
                f"(lock {db_file}.lock); run one such process per SQLite file, or several "
                "nodes on PostgreSQL"
            )
        # A process with neither (the operator API alone) starts beside it.
        api = new_node("api", tmp_path / "api")
        write_config(api, url)
        api.proc = spawn(api, "--only", "api")
        try:
            wait_serving(api)
            assert api.leads() == {}
        finally:
            api.proc.terminate()
            api.proc.wait(15)
    finally:
        first.proc.terminate()
        assert first.proc.wait(15) == 0
