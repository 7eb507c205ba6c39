"""`csms sites` end to end on a real database (no server: data commands work without one):
a site tied to a location with a tree of circuits, chargers linked under it, a cap, daily
and imported prices, the load manager's stored shares read back by `show`, the audit log
of every change, removal; what a session needs and a token's priority; and one-line errors
for an unknown site, a cycle, a bad phase and a bad CSV line. The module shares one
database; each test works on sites of its own."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.sites import ROOT, Share
from csms.services.locations import LocationService
from csms.services.staff import StaffService
from csms.storage import sites as site_repo
from csms.storage.database import Database, WriteTx
from csms.storage.migrate import upgrade
from csms.storage.models import CommandRow, TransactionRow
from tests.e2e.cli import Ran, ok, one_line_error
from tests.postgres import db_url_for

T = TypeVar("T")
_tx = cast(Table, TransactionRow.__table__)
_cmd = cast(Table, CommandRow.__table__)


@pytest.fixture(scope="module")
def database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for the module, with the schema (as `csms db init` leaves it)."""
    url = db_url_for(tmp_path_factory.mktemp("sites") / "csms.db")

    async def make() -> None:
        db = Database.from_url(url)
        await upgrade(db.engine)
        await db.engine.dispose()

    asyncio.run(make())
    return url


async def sites_cli(url: str, *args: str, cwd: Path | None = None) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env["CSMS_DATABASE_URL"] = url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def with_db(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database.from_url(url)
    db.start()
    try:
        return await work(db)
    finally:
        await db.close()


async def written(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def run(db: Database) -> T:
        async def unit(w: WriteTx) -> T:
            return await work(await w.connection())

        return await db.write(unit)

    return await with_db(url, run)


async def _chargers(db: Database, *ids: str) -> None:
    staff = StaffService(db, utc_now)
    for cp_id in ids:
        await staff.add_charger(cp_id)


async def _audit(url: str, *targets: str) -> list[tuple[str, str, str, str | None, str]]:
    """(charger column, command, source, requested_by, message) of the targets' entries,
    oldest first."""

    async def read(db: Database) -> list[Any]:
        async with db.read() as conn:
            stmt = (
                select(_cmd.c.charge_point_id, _cmd.c.command, _cmd.c.source)
                .add_columns(_cmd.c.requested_by, _cmd.c.message, _cmd.c.outcome)
                .where(_cmd.c.charge_point_id.in_(targets))
                .order_by(_cmd.c.id)
            )
            return list((await conn.execute(stmt)).all())

    rows = await with_db(url, read)
    assert all(r.outcome == "accepted" for r in rows)
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


@pytest.mark.slow
async def test_a_site_from_add_to_remove(database: str, tmp_path: Path) -> None:
    url = database

    async def setup(db: Database) -> None:
        await _chargers(db, "SC-A", "SC-B", "SC-C")
        await LocationService(db, utc_now).add(
            Location(
                id="LOC-S",
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

    await with_db(url, setup)

    async def run(*args: str) -> Ran:
        return await sites_cli(url, "sites", *args, cwd=tmp_path)

    assert ok(
        await run("add", "DEPOT", "--max-current", "32", "--phases", "3", "--location", "LOC-S")
    ) == ("added site DEPOT\n")
    one_line_error(
        await run("add", "DEPOT", "--max-current", "32", "--phases", "3"), "site 'DEPOT' exists"
    )
    one_line_error(
        await run("add", "X", "--max-current", "32", "--phases", "3", "--location", "NOPE"),
        "no location 'NOPE'",
    )
    ran = await run("add-circuit", "DEPOT", "row-a", "--max-current", "40")
    assert ok(ran) == "added circuit row-a to site DEPOT\n"
    assert ran.err == (
        "warning: circuit 'row-a' allows 40 A, more than the site (32 A): the lower limit applies\n"
    )
    ran = await run(
        "add-circuit",
        "DEPOT",
        "row-b",
        "--max-current",
        "16",
        "--phases",
        "1",
        "--phase",
        "l2",
        "--parent",
        "row-a",
    )
    assert ok(ran) == "added circuit row-b to site DEPOT\n" and ran.err == ""
    one_line_error(
        await run("add-circuit", "DEPOT", "row-c", "--max-current", "16", "--phases", "1"),
        "circuit 'row-c' is 1-phase: say which phase it is wired to",
    )
    # A cycle: row-a under row-b, which is under row-a.
    one_line_error(
        await run("set-circuit", "DEPOT", "row-a", "--parent", "row-b"),
        "circuit 'row-a' is its own ancestor",
    )
    assert ok(await run("link", "DEPOT/row-b", "--charger", "SC-A", "--max-current", "16")) == (
        "charger SC-A is under circuit row-b of site DEPOT\n"
    )
    ok(
        await run(
            "link",
            "DEPOT",
            "--charger",
            "SC-B",
            "--phase",
            "L3",
            "--max-current",
            "32",
            "--profile-mode",
            "max",
        )
    )
    one_line_error(
        await run("link", "DEPOT/row-b", "--charger", "SC-C", "--phase", "L1"),
        "charger 'SC-C' is on L1 but circuit 'row-b' has only L2",
    )
    one_line_error(await run("link", "NOSITE", "--charger", "SC-C"), "no site 'NOSITE'")
    one_line_error(await run("link", "DEPOT", "--charger", "NOPE"), "no charger 'NOPE'")

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    end = start + timedelta(hours=2)
    cap = (
        await run(
            "cap",
            "DEPOT",
            "--limit",
            "11",
            "--from",
            start.isoformat(),
            "--until",
            end.isoformat(),
            "--reason",
            "grid operator",
            "--json",
        )
    ).json()
    me = getpass.getuser()
    assert cap == {
        "id": cap["id"],
        "site": "DEPOT",
        "limit_kw": 11.0,
        "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "until": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "active": True,
        "cancelled_at": None,
        "source": "staff",
        "reference": None,
        "requested_by": me,
        "reason": "grid operator",
    }
    assert (
        ok(
            await run(
                "prices",
                "DEPOT",
                "--at",
                "22:00=0.20",
                "--at",
                "07:00=0.35",
                "--timezone",
                "Europe/Amsterdam",
            )
        )
        == "site DEPOT: daily prices 07:00 0.35, 22:00 0.20 (Europe/Amsterdam)\n"
    )
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    good = tmp_path / "prices.csv"
    good.write_text(
        "start,price\n"
        + "".join(
            f"{(hour + timedelta(hours=n)).isoformat()},{p}\n"
            for n, p in enumerate(["0.31", "-0.02", "0.25"])
        )
    )
    assert ok(await run("prices", "DEPOT", "--import", str(good))) == (
        "site DEPOT: 3 prices imported\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end,price\n2030-01-01T00:00:00Z,2030-01-01T01:00:00Z,0.3\nsoon,,0.2\n")
    one_line_error(
        await run("prices", "DEPOT", "--import", str(bad)),
        "price CSV line 3: the start 'soon' is not an ISO 8601 date-time",
    )

    # The load manager's shares, as it stores them, and a charger it gave up on.
    now = datetime.now(UTC)
    shares = [
        Share(9001, "DEPOT", "row-b", "SC-A", 1, (1,), 10.5, False, 9.8, "share", 10.5, 11),
        Share(9002, "DEPOT", ROOT, "SC-B", 1, (2,), 0.0, True, None, "rotation"),
    ]

    async def store(conn: AsyncConnection) -> None:
        await site_repo.save_shares(conn, "DEPOT", shares, now)
        await site_repo.mark_unmanaged(conn, "SC-B", "rejected profiles 3 times", now)

    await written(url, store)
    shown = (await run("show", "DEPOT", "--json")).json()
    cap_now = round(11_000 / (3 * 230), 2)
    assert {k: v for k, v in shown.items() if k not in ("at", "nodes", "caps", "prices")} == {
        "id": "DEPOT",
        "location": "LOC-S",
        "phases": 3,
        "voltage_v": 230.0,
        "max_current_a": 32.0,
        "max_power_kw": None,
        "limit_a": 32.0,
        "effective_a": cap_now,
        "allocated_a": [0.0, 10.5, 0.0],
        "chargers": [
            {
                "charger": "SC-A",
                "circuit": "row-b",
                "phase": None,
                "max_current_a": 16.0,
                "profile_mode": "auto",
                "managed": True,
                "unmanaged_reason": None,
            },
            {
                "charger": "SC-B",
                "circuit": None,
                "phase": "L3",
                "max_current_a": 32.0,
                "profile_mode": "max",
                "managed": False,
                "unmanaged_reason": "rejected profiles 3 times",
            },
        ],
        "unmanaged": [{"charger": "SC-B", "reason": "rejected profiles 3 times"}],
        "sessions": [
            {
                "transaction_id": 9001,
                "charger": "SC-A",
                "evse_id": 1,
                "node": "row-b",
                "phases": ["L2"],
                "granted_a": 10.5,
                "paused": False,
                "measured_a": 9.8,
                "reason": "share",
                "sent_a": 10.5,
                "profile_id": 11,
            },
            {
                "transaction_id": 9002,
                "charger": "SC-B",
                "evse_id": 1,
                "node": "/",
                "phases": ["L3"],
                "granted_a": 0.0,
                "paused": True,
                "measured_a": None,
                "reason": "rotation",
                "sent_a": None,
                "profile_id": None,
            },
        ],
    }
    assert shown["nodes"] == [
        {
            "node": "/",
            "parent": None,
            "phases": ["L1", "L2", "L3"],
            "max_current_a": 32.0,
            "max_power_kw": None,
            "limit_a": 32.0,
            "effective_a": cap_now,
            "allocated_a": [0.0, 10.5, 0.0],
            "chargers": ["SC-B"],
        },
        {
            "node": "row-a",
            "parent": "/",
            "phases": ["L1", "L2", "L3"],
            "max_current_a": 40.0,
            "max_power_kw": None,
            "limit_a": 40.0,
            "effective_a": cap_now,
            "allocated_a": [0.0, 10.5, 0.0],
            "chargers": [],
        },
        {
            "node": "row-b",
            "parent": "row-a",
            "phases": ["L2"],
            "max_current_a": 16.0,
            "max_power_kw": None,
            "limit_a": 16.0,
            "effective_a": min(16.0, cap_now),
            "allocated_a": [0.0, 10.5, 0.0],
            "chargers": ["SC-A"],
        },
    ]
    assert shown["caps"] == [cap]
    assert shown["prices"]["timezone"] == "Europe/Amsterdam"
    assert shown["prices"]["daily"] == [
        {"from": "07:00", "price": "0.35"},
        {"from": "22:00", "price": "0.20"},
    ]
    assert [s["price"] for s in shown["prices"]["slots"]] == ["0.31", "-0.02", "0.25"]
    assert shown["prices"]["slots"][0]["start"] == hour.strftime("%Y-%m-%dT%H:%M:%SZ")

    (listed,) = (await run("list", "--json")).json()
    assert listed == {
        "id": "DEPOT",
        "location": "LOC-S",
        "phases": 3,
        "voltage_v": 230.0,
        "max_current_a": 32.0,
        "max_power_kw": None,
        "limit_a": 32.0,
        "effective_a": cap_now,
        "allocated_a": [0.0, 10.5, 0.0],
        "circuits": ["row-a", "row-b"],
        "chargers": ["SC-A", "SC-B"],
        "unmanaged": ["SC-B"],
        "sessions": 2,
        "active_caps": [cap],
    }
    text = ok(await run("show", "DEPOT"))
    assert "supply:       3-phase 230 V, 32 A per phase" in text
    assert "row-b     row-a   L2        16       " in text
    assert "no: rejected profiles 3 times" in text
    assert "paused" in text and "grid operator" in text

    # A site with chargers stays unless --force; a cap ends when cancelled.
    one_line_error(await run("remove", "DEPOT", "--yes"), "site 'DEPOT' has 2 linked chargers")
    assert ok(await run("uncap", "DEPOT", str(cap["id"]))) == (
        f"cap {cap['id']} of site DEPOT cancelled\n"
    )
    (history,) = (await run("caps", "DEPOT", "--all", "--json")).json()
    assert history["id"] == cap["id"] and not history["active"] and history["cancelled_at"]
    ok(await run("set", "DEPOT", "--max-current", "25", "--max-power", "15"))
    assert ok(await run("unlink", "--charger", "SC-A")) == (
        "charger SC-A is no longer under site DEPOT\n"
    )
    assert ok(await run("remove", "DEPOT/row-a", "--force", "--yes")) == (
        "removed circuit row-a of site DEPOT (circuit row-b)\n"
    )
    assert ok(await run("remove", "DEPOT", "--force", "--yes")) == (
        "removed site DEPOT (unlinked SC-B)\n"
    )
    one_line_error(await run("show", "DEPOT"), "no site 'DEPOT'")

    # Every change is in the audit log, with who made it.
    entries = await _audit(url, "site:DEPOT", "SC-A", "SC-B")
    assert [(e[0], e[1], e[2], e[3]) for e in entries] == [
        ("site:DEPOT", "site_add", "cli", me),
        ("site:DEPOT", "circuit_add", "cli", me),
        ("site:DEPOT", "circuit_add", "cli", me),
        ("SC-A", "site_link", "cli", me),
        ("SC-B", "site_link", "cli", me),
        ("site:DEPOT", "site_cap", "cli", me),
        ("site:DEPOT", "site_prices", "cli", me),
        ("site:DEPOT", "site_prices", "cli", me),
        ("site:DEPOT", "site_uncap", "cli", me),
        ("site:DEPOT", "site_set", "cli", me),
        ("SC-A", "site_unlink", "cli", me),
        ("site:DEPOT", "circuit_remove", "cli", me),
        ("site:DEPOT", "site_remove", "cli", me),
    ]
    assert entries[5][4].startswith("site DEPOT capped at 11 kW from ")
    assert entries[-1][4] == "site DEPOT removed, unlinked SC-B"


@pytest.mark.slow
async def test_what_a_session_needs_and_token_priorities(database: str, tmp_path: Path) -> None:
    url = database

    async def setup(conn: AsyncConnection) -> tuple[int, int]:
        made = []
        for state in ("active", "completed"):
            result = await conn.execute(
                insert(_tx).values(
                    charge_point_id="NEED-CP",
                    ocpp_version="1.6",
                    evse_id=1,
                    connector_id=1,
                    id_tag="vip",
                    id_tag_key="VIP",
                    auth_status="Accepted",
                    state=state,
                    start_at=datetime.now(UTC),
                    meter_start_wh=0,
                    received_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
            assert result.inserted_primary_key is not None
            made.append(int(result.inserted_primary_key[0]))
        return made[0], made[1]

    running, ended = await written(url, setup)

    async def cli(*args: str) -> Ran:
        return await sites_cli(url, *args, cwd=tmp_path)

    token = (await cli("tokens", "add", "VIP", "--priority", "5", "--json")).json()
    assert token["priority"] == 5
    token = (await cli("tokens", "set", "VIP", "--priority", "9", "--json")).json()
    assert token["priority"] == 9
    priorities = await written(url, lambda c: site_repo.token_priorities(c, [running, ended]))
    assert priorities == {running: 9, ended: 9}

    leave = (datetime.now(UTC) + timedelta(hours=6)).replace(microsecond=0)
    out = ok(
        await cli(
            "sites",
            "need",
            str(running),
            "--departure",
            leave.isoformat(),
            "--energy",
            "12.5",
            "--priority",
            "3",
        )
    )
    assert out.startswith(f"transaction {running}: leaves {leave.strftime('%Y-%m-%d %H:%M:%S')}")
    assert out.endswith("needs 12.5 kWh, priority 3\n")
    # Only the priority changes; the departure and the energy stay.
    ok(await cli("sites", "need", str(running), "--priority", "4"))
    found = await written(url, lambda c: site_repo.needs(c, [running]))
    need = found[running]
    assert (need.departure_at, need.energy_wh, need.priority, need.source) == (
        leave,
        12_500.0,
        4,
        "staff",
    )
    one_line_error(await cli("sites", "need", "987654", "--energy", "1"), "no transaction 987654")
    one_line_error(
        await cli("sites", "need", str(ended), "--energy", "1"), f"transaction {ended} has ended"
    )
    one_line_error(await cli("sites", "need", str(running)), "nothing to set")
    entries = await _audit(url, "NEED-CP")
    assert [e[1] for e in entries] == ["charging_need", "charging_need"]
