"""`csms demo` as a command, in a scratch working directory on free ports: the banner, the
eMSP's registration and its cards, sessions on chargers of both versions, what the eMSP
receives, a summary that counts what the database holds, CDRs in the kept demo database
afterwards (and no folder left behind without --keep), a clean stop on Ctrl-C, and one
line for a port in use (naming a running `csms serve`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Running
from tests.e2e.ocpi_rules import cdr_errors

Output = tuple[int, list[str], str]

# The demo always makes its own SQLite file (csms.cli.demo.demo_config): on PostgreSQL the
# same runs would test the same thing again.
pytestmark = pytest.mark.sqlite_only


def demo_env(tmp_path: Path, **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(
        TMPDIR=str(tmp_path),  # the demo database's directory
        CSMS_OCPP_HOST="127.0.0.1",
        CSMS_OCPI_HOST="127.0.0.1",
        CSMS_API_HOST="127.0.0.1",
        CSMS_OCPP_PORT=str(ports.get("ocpp", 0)),
        CSMS_OCPI_PORT=str(ports.get("ocpi", 0)),
        CSMS_API_PORT=str(ports.get("api", 0)),
    )
    return env


async def start(tmp_path: Path, *args: str, **ports: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        "demo",
        *args,
        cwd=tmp_path,
        env=demo_env(tmp_path, **ports),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, seconds: float = 90) -> Output:
    try:
        async with asyncio.timeout(seconds):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


def having(lines: list[str], pattern: str) -> list[str]:
    return [line for line in lines if re.search(pattern, line)]


def demo_folders(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("csms-demo-*"))


@pytest.mark.slow
async def test_demo_runs_sessions_and_the_emsp_hears_of_them(tmp_path: Path) -> None:
    code, lines, err = await finish(
        await start(
            tmp_path,
            *("--duration", "15", "--chargers", "2", "--session-seconds", "4", "--keep"),
            *("--history-days", "0"),
        )
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert lines[0] == "csms demo: the whole system in one process, on a fresh database"
    assert having(lines, r"^  OCPP      ws://127\.0\.0\.1:\d+/ocpp/\{charge_point_id\}$")
    assert having(lines, r"^  OCPI      http://127\.0\.0\.1:\d+/ocpi/versions \(CPO NL/CSM\)$")
    assert having(lines, r"^  API       http://127\.0\.0\.1:\d+/api ")
    assert having(lines, r"^  Dashboard http://127\.0\.0\.1:\d+/dashboard ")
    assert having(lines, r"^  charger   DEMO-CP01 OCPP 1\.6 at DEMO-AMS \(Amsterdam\)")
    assert having(lines, r"^  charger   DEMO-CP02 OCPP 2\.0\.1 at DEMO-UTR \(Utrecht\)")
    # One idle charger a driver pays for on the spot, with the test provider.
    assert having(
        lines,
        r"^  pay       http://127\.0\.0\.1:\d+/pay/DEMO-PAY\*1 \(charger DEMO-PAY OCPP 1\.6 at "
        r"DEMO-AMS, idle until a driver pays: tariff DEMO-AD-HOC, test provider, card "
        r"4242 4242 4242 4242\)$",
    )
    assert having(
        lines, r"^pay      DEMO-PAY\*1 is payable on the spot \(tariff DEMO-AD-HOC, ad hoc\)$"
    )
    (database,) = [line.split()[1] for line in lines if line.startswith("  database")]
    assert Path(database).parent.parent == tmp_path
    assert having(lines, r"^  database  \S+ \(kept after the demo\)$")
    assert having(lines, r"^emsp     registered with CPO NL/CSM at http://127\.0\.0\.1:\d+/")

    # The cards are the eMSP's: it names them, sends them to the CPO and offers them when
    # the CPO pulls its token list.
    assert having(lines, r"^  eMSP      NL/EMS .* its cards: DEMO-TAG-01, DEMO-TAG-02$")
    for tag in ("DEMO-TAG-01", "DEMO-TAG-02"):
        assert having(lines, rf"^emsp     sent its card: PUT token {tag} RFID ALWAYS: HTTP 20[01]$")
    assert having(lines, r"^emsp     GET tokens .*: 2 of 2 token\(s\)$")

    # Sessions ran on both chargers, from the chargers' side.
    for cp in ("DEMO-CP01", "DEMO-CP02"):
        assert having(lines, rf"^charger  {cp} #1 session started tx=\S+ .*tag=DEMO-TAG-")
        assert having(lines, rf"^charger  {cp} #1 session completed tx=\S+ energy=\d+ Wh")

    # What the CPO pushed reached the eMSP: EVSE status, sessions and CDRs.
    assert having(lines, r"^emsp     (PUT|PATCH) locations DEMO-(AMS|UTR)/DEMO-CP0\d\*1 status=")
    assert having(lines, r"^emsp     (PUT|PATCH) sessions \S+ ACTIVE ")
    assert having(lines, r"^emsp     (PUT|PATCH) sessions \S+ COMPLETED \d+\.\d{3} kWh")
    posted = having(lines, r"^emsp     POST cdrs \S+ \d+\.\d{3} kWh \d+\.\d{2} EUR$")
    assert not having(lines, "refused")

    # The summary counts what the database holds: as many CDRs as sessions.
    (summary,) = having(lines, r"^demo stopped after \d+ s: ")
    counted = re.search(
        r": (\d+) session\(s\)(?: \((\d+) ended by the stop\))?, (\d+) CDR\(s\);", summary
    )
    assert counted is not None, summary
    sessions, cdr_count = int(counted[1]), int(counted[3])
    assert sessions >= 2 and cdr_count == sessions
    pushes = re.search(r"the eMSP received (\d+) push\(es\) \((.*)\)$", summary)
    assert pushes is not None, summary
    assert f"cdrs {len(posted)}" in pushes[2] and "tokens" not in pushes[2]
    assert lines[-1].startswith(f"the demo database stays in {Path(database).parent} ")

    # The CDRs are in the demo database: every session, those ended at the stop included.
    env = demo_env(tmp_path)
    env["CSMS_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    found = json.loads(await cli(tmp_path, env, "cdrs", "list", "--json"))
    transactions = json.loads(await cli(tmp_path, env, "transactions", "list", "--json"))
    assert len(found) == cdr_count == len(transactions)
    assert [cdr_errors(c) for c in found] == [[]] * len(found)
    assert {c["cdr_location"]["id"] for c in found} == {"DEMO-AMS", "DEMO-UTR"}
    assert {c["cdr_token"]["uid"] for c in found} == {"DEMO-TAG-01", "DEMO-TAG-02"}
    assert {(c["cdr_token"]["country_code"], c["cdr_token"]["party_id"]) for c in found} == {
        ("NL", "EMS")
    }
    assert all(c["tariffs"][0]["id"] == "DEMO-STANDARD" for c in found)
    assert len(posted) == len(found)
    tariffs = json.loads(await cli(tmp_path, env, "tariffs", "list", "--json"))
    assert {t["id"]: t["assigned_to"] for t in tariffs} == {
        "DEMO-STANDARD": ["default"],
        "DEMO-AD-HOC": ["evse DEMO-PAY*1 (ad hoc)"],
    }


async def cli(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    return out.decode()


@pytest.mark.slow
async def test_demo_history_gives_the_statistics_something_to_show(tmp_path: Path) -> None:
    code, lines, err = await finish(
        await start(tmp_path, "--duration", "1", "--chargers", "2", "--history-days", "4", "--keep")
    )
    assert code == 0, err
    (told,) = having(lines, r"^history  \d+ past session\(s\) over 4 day\(s\) on 2 charger")
    sent = int(told.split()[1])
    assert sent >= 4  # two to six a day per charger, some skipped when they would overlap
    (database,) = [line.split()[1] for line in lines if line.startswith("  database")]
    env = demo_env(tmp_path)
    env["CSMS_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    shown = json.loads(
        await cli(tmp_path, env, "stats", "--by", "charger", "--period", "day", "--json")
    )
    by_charger: dict[str, int] = {}
    for row in shown["rows"]:
        by_charger[row["group"]] = by_charger.get(row["group"], 0) + row["sessions"]
        if row["sessions"]:
            assert float(row["energy_kwh"]) > 0 and row["revenue"][0]["currency"] == "EUR"
            assert row["occupied_s"] >= row["charging_s"] > 0
    # The past sessions (and the live ones, if they started), each billed; the payable
    # charger has none until a driver pays.
    assert by_charger.pop("DEMO-PAY", 0) == 0
    assert set(by_charger) == {"DEMO-CP01", "DEMO-CP02"}
    assert sum(by_charger.values()) >= sent and min(by_charger.values()) > 0
    cdrs = json.loads(await cli(tmp_path, env, "cdrs", "list", "--json", "--limit", "1000"))
    assert len(cdrs) >= sent
    uptime = json.loads(await cli(tmp_path, env, "stats", "uptime", "--json"))
    assert {r["group"].split("/")[0] for r in uptime["rows"]} == {
        "DEMO-CP01",
        "DEMO-CP02",
        "DEMO-PAY",
    }
    assert all(0 <= r["uptime_pct"] <= 100 for r in uptime["rows"])


async def test_demo_stops_cleanly_on_ctrl_c_and_removes_its_folder(tmp_path: Path) -> None:
    proc = await start(
        tmp_path, "--chargers", "1", "--session-seconds", "30", "--history-days", "0"
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"session started" not in (line := await proc.stdout.readline()):
                assert line, "the demo ended early"
                if line.startswith(b"  database"):
                    assert (
                        line.decode().rstrip().endswith("(removed after the demo; --keep keeps it)")
                    )
        (folder,) = demo_folders(tmp_path)  # while it runs
    except BaseException:
        proc.kill()
        raise
    proc.send_signal(signal.SIGINT)
    code, lines, err = await finish(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert lines[-2].startswith("demo stopped after ")
    # The session ended at the stop was billed, and counted so.
    assert ": 1 session(s) (1 ended by the stop), 1 CDR(s);" in lines[-2]
    assert lines[-1] == f"removed the demo's folder {folder} (--keep keeps it to look around)"
    assert demo_folders(tmp_path) == []


@pytest.mark.parametrize("part", ["ocpp", "ocpi", "api"])
async def test_a_port_in_use_is_one_line(tmp_path: Path, part: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines, err = await finish(
            await start(tmp_path, "--duration", "1", **{part: port}), 60
        )
    assert code == 1 and lines == []
    assert err == (
        f"error: the demo cannot start: port {port} ({part}.port) is already in use by another "
        "program (a `csms serve`?): stop it first, or run the demo on other ports, e.g. any "
        "free ones: CSMS_OCPP_PORT=0 CSMS_OCPI_PORT=0 CSMS_API_PORT=0 csms demo\n"
    )
    assert demo_folders(tmp_path) == []


async def test_a_running_csms_serve_on_its_ports_is_named(tmp_path: Path, server: Running) -> None:
    assert server.app.api_port is not None
    ports = {
        "ocpp": server.port,
        "ocpi": int(server.ocpi_url.rsplit(":", 1)[1].split("/")[0]),
        "api": server.app.api_port,
    }
    code, lines, err = await finish(await start(tmp_path, "--duration", "1", **ports), 60)
    assert code == 1 and lines == []
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    listed = (
        f"{ports['ocpp']} (ocpp.port), {ports['ocpi']} (ocpi.port) and {ports['api']} (api.port)"
    )
    assert err.startswith(
        f"error: the demo cannot start: port {listed} are already in use by a running "
        f"`csms serve` (it answers at http://127.0.0.1:{ports['api']}/health): stop it first, "
    ), err
    assert demo_folders(tmp_path) == []
