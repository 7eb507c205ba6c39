"""`csms maintenance` end to end on a real database (no server: data commands work without
one): planned windows and after-the-fact exclusions of a charger or one EVSE, listed for
people and as JSON, removed, each change in the audit log; what the uptime figures read
back; and one-line errors for an unknown charger, a window that ends before it starts, a
bad ISO date, an exclusion in the future and an unknown window."""

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
from sqlalchemy import Table, select

from csms.core.clock import utc_now
from csms.core.statistics import Interval
from csms.services.staff import StaffService
from csms.storage import statistics as stats_repo
from csms.storage.database import Database
from csms.storage.migrate import upgrade
from csms.storage.models import CommandRow
from tests.e2e.cli import Ran, ok, one_line_error
from tests.postgres import db_url_for

T = TypeVar("T")
_cmd = cast(Table, CommandRow.__table__)


@pytest.fixture(scope="module")
def database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for the module, with the schema (as `csms db init` leaves it)."""
    url = db_url_for(tmp_path_factory.mktemp("maintenance") / "csms.db")

    async def make() -> None:
        db = Database.from_url(url)
        await upgrade(db.engine)
        await db.engine.dispose()

    asyncio.run(make())
    return url


async def cli(url: str, *args: str, cwd: Path) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env["CSMS_DATABASE_URL"] = url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        "maintenance",
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


async def _audit(url: str, cp_id: str) -> list[tuple[str, str, str | None, str | None]]:
    async def read(db: Database) -> list[Any]:
        async with db.read() as conn:
            stmt = (
                select(_cmd.c.command, _cmd.c.source, _cmd.c.requested_by, _cmd.c.message)
                .where(_cmd.c.charge_point_id == cp_id, _cmd.c.outcome == "accepted")
                .order_by(_cmd.c.id)
            )
            return list((await conn.execute(stmt)).all())

    return [(r[0], r[1], r[2], r[3]) for r in await with_db(url, read)]


def _me() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


async def test_windows_from_add_to_remove(database: str, tmp_path: Path) -> None:
    url = database
    await with_db(url, lambda db: StaffService(db, utc_now).add_charger("MW-1"))

    async def run(*args: str) -> Ran:
        return await cli(url, *args, cwd=tmp_path)

    planned = (
        await run(
            "add", "MW-1", "--from", "2026-11-10", "--until", "2026-11-10T06:00:00Z",
            "--reason", "new cables", "--json",
        )
    ).json()  # fmt: skip
    assert planned == {
        "id": planned["id"],
        "charger": "MW-1",
        "evse": None,
        "kind": "planned",
        "from": "2026-11-10T00:00:00Z",
        "until": "2026-11-10T06:00:00Z",
        "reason": "new cables",
        "created_by": _me(),
        "created_at": planned["created_at"],
    }
    said = ok(
        await run(
            "exclude", "MW-1", "--evse", "2", "--from", "2026-11-20T08:00:00+01:00",
            "--until", "2026-11-20T10:30:00+01:00", "--reason", "grid loss",
        )
    )  # fmt: skip
    assert said.startswith("excluded window ")
    assert " MW-1 EVSE 2 from 2026-11-20 07:00:00 (" in said
    assert " until 2026-11-20 09:30:00 (" in said and said.endswith(" (grid loss)\n")
    excluded_id = int(said.split()[2].rstrip(":"))

    listed = (await run("list", "--json")).json()
    assert [(w["id"], w["kind"], w["evse"]) for w in listed] == [
        (excluded_id, "excluded", 2),
        (planned["id"], "planned", None),
    ]
    assert (await run("list", "MW-1", "--json", "--limit", "1")).json() == listed[:1]
    cut = await run("list", "MW-1", "--limit", "1")
    lines = ok(cut).splitlines()
    assert lines[0].split() == ["ID", "CHARGER", "EVSE", "KIND", "FROM", "UNTIL", "REASON", "BY"]
    assert lines[1].startswith(f"{excluded_id}  ") and "grid loss" in lines[1]
    assert lines[-1] == "showing 1 of 2; --limit to see more"

    async def figures(db: Database) -> dict[Any, list[Interval]]:
        async with db.read() as conn:
            return await stats_repo.exclusions(
                conn,
                datetime(2026, 11, 1, tzinfo=UTC),
                datetime(2026, 12, 1, tzinfo=UTC),
                ["MW-1"],
            )

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, day, hour, minute, tzinfo=UTC)

    assert await with_db(url, figures) == {
        ("MW-1", 0): [Interval(at(10, 0), at(10, 6))],
        ("MW-1", 2): [Interval(at(20, 7), at(20, 9, 30))],
    }
    one_line_error(
        await run("remove", str(planned["id"])), f"remove maintenance window {planned['id']}: "
    )
    said = ok(await run("remove", str(planned["id"]), "--yes"))
    assert said.startswith(f"removed planned window {planned['id']}: MW-1 EVSE all from ")
    assert await with_db(url, figures) == {("MW-1", 2): [Interval(at(20, 7), at(20, 9, 30))]}
    assert [w["id"] for w in (await run("list", "--json")).json()] == [excluded_id]

    audit = await _audit(url, "MW-1")
    assert [(command, source, by) for command, source, by, _ in audit] == [
        ("maintenance_add", "cli", _me()),
        ("maintenance_exclude", "cli", _me()),
        ("maintenance_remove", "cli", _me()),
    ]
    assert audit[1][3] == (
        f"excluded maintenance window {excluded_id} of MW-1 EVSE 2 from "
        "2026-11-20T07:00:00Z until 2026-11-20T09:30:00Z: grid loss"
    )


async def test_bad_input_is_one_line(database: str, tmp_path: Path) -> None:
    url = database
    await with_db(url, lambda db: StaffService(db, utc_now).add_charger("MW-2"))

    async def run(*args: str) -> Ran:
        return await cli(url, *args, cwd=tmp_path)

    window = ("--from", "2026-11-01", "--until", "2026-11-02", "--reason", "r")
    one_line_error(await run("add", "NOPE", *window), "no charger 'NOPE'")
    one_line_error(await run("list", "NOPE"), "no charger 'NOPE'")
    one_line_error(
        await run("add", "MW-2", "--from", "2026-11-02", "--until", "2026-11-01", "--reason", "r"),
        "--until (2026-11-01) must be after --from (2026-11-02)",
    )
    one_line_error(
        await run("add", "MW-2", "--from", "yesterday", "--until", "2026-11-01", "--reason", "r"),
        "--from: not an ISO 8601 date/time: 'yesterday'",
    )
    one_line_error(
        await run(
            "exclude", "MW-2", "--from", "2026-11-01", "--until", "2026-13-01", "--reason", "r"
        ),
        "--until: not an ISO 8601 date/time: '2026-13-01'",
    )
    one_line_error(
        await run("add", "MW-2", "--evse", "0", *window), "--evse must be 1 or more, not 0"
    )
    one_line_error(await run("add", "MW-2", *window[:4], "--reason", "  "), "--reason must say")
    soon = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    one_line_error(
        await run("exclude", "MW-2", "--from", soon, "--until", later, "--reason", "r"),
        "an exclusion is entered after the fact",
    )
    one_line_error(await run("remove", "999999", "--yes"), "no maintenance window 999999")
    assert (await run("list", "MW-2", "--json")).json() == []
    assert ok(await run("list", "MW-2")) == "no maintenance windows\n"
    assert await _audit(url, "MW-2") == []
