"""`csms demo` as a command, in a scratch working directory on free ports: the banner, the
eMSP's registration, sessions on chargers of both versions, what the eMSP receives, CDRs
in the demo database afterwards, a clean stop on Ctrl-C and one line for a port in use."""

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

from tests.e2e.ocpi_rules import cdr_errors

Output = tuple[int, list[str], str]


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


async def test_demo_runs_sessions_and_the_emsp_hears_of_them(tmp_path: Path) -> None:
    code, lines, err = await finish(
        await start(tmp_path, "--duration", "15", "--chargers", "2", "--session-seconds", "4")
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert lines[0] == "csms demo: the whole system in one process, on a fresh database"
    assert having(lines, r"^  OCPP      ws://127\.0\.0\.1:\d+/ocpp/\{charge_point_id\}$")
    assert having(lines, r"^  OCPI      http://127\.0\.0\.1:\d+/ocpi/versions \(CPO NL/CSM\)$")
    assert having(lines, r"^  API       http://127\.0\.0\.1:\d+/api ")
    assert having(lines, r"^  charger   DEMO-CP01 OCPP 1\.6 at DEMO-AMS \(Amsterdam\)")
    assert having(lines, r"^  charger   DEMO-CP02 OCPP 2\.0\.1 at DEMO-UTR \(Utrecht\)")
    (database,) = [line.split()[1] for line in lines if line.startswith("  database")]
    assert Path(database).parent.parent == tmp_path
    assert having(lines, r"^emsp     registered with CPO NL/CSM at http://127\.0\.0\.1:\d+/")

    # Sessions ran on both chargers, from the chargers' side.
    for cp in ("DEMO-CP01", "DEMO-CP02"):
        assert having(lines, rf"^charger  {cp} #1 session started tx=\S+ .*tag=DEMO-TAG-")
        assert having(lines, rf"^charger  {cp} #1 session completed tx=\S+ energy=\d+ Wh")

    # What the CPO pushed reached the eMSP: EVSE status, sessions and CDRs.
    assert having(lines, r"^emsp     (PUT|PATCH) locations DEMO-(AMS|UTR)/DEMO-CP0\d\*1 status=")
    assert having(lines, r"^emsp     (PUT|PATCH) sessions \S+ ACTIVE ")
    assert having(lines, r"^emsp     (PUT|PATCH) sessions \S+ COMPLETED \d+\.\d{3} kWh")
    assert having(lines, r"^emsp     POST cdrs \S+ \d+\.\d{3} kWh \d+\.\d{2} EUR$")
    assert not having(lines, "refused")

    (summary,) = having(lines, r"^demo stopped after \d+ s: ")
    completed = int(re.search(r"(\d+) session\(s\) completed", summary)[1])  # type: ignore[index]
    assert completed >= 2

    # The CDRs are in the demo database: every session, those ended at the stop included.
    env = demo_env(tmp_path)
    env["CSMS_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    cdrs = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        "cdrs",
        "list",
        "--json",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, cdr_err = await asyncio.wait_for(cdrs.communicate(), 60)
    assert cdrs.returncode == 0, cdr_err
    found = json.loads(out)
    assert len(found) >= completed
    assert [cdr_errors(c) for c in found] == [[]] * len(found)
    assert {c["cdr_location"]["id"] for c in found} == {"DEMO-AMS", "DEMO-UTR"}
    assert {c["cdr_token"]["uid"] for c in found} == {"DEMO-TAG-01", "DEMO-TAG-02"}
    assert all(c["tariffs"][0]["id"] == "DEMO-STANDARD" for c in found)
    assert f"{len(found)} CDR(s)" in summary


async def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = await start(tmp_path, "--chargers", "1", "--session-seconds", "30")
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"session started" not in (line := await proc.stdout.readline()):
                assert line, "the demo ended early"
    except BaseException:
        proc.kill()
        raise
    proc.send_signal(signal.SIGINT)
    code, lines, err = await finish(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert lines[-2].startswith("demo stopped after ")
    assert "1 CDR(s)" in lines[-2]  # the session ended at the stop was billed
    assert lines[-1].startswith("look around: CSMS_DATABASE_URL=sqlite+aiosqlite:///")


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
    assert err.startswith("error: cannot start: ") and "address already in use" in err.lower()
    assert len(err.strip().splitlines()) == 1
