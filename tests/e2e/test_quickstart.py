"""The README's Quickstart as a newcomer runs it: its `csms tokens add` and `csms-sim charger`
commands, taken from the README, against a real server; the simulator's command ends by
itself, and without `--exit-when-done` it says that it stays connected and how to stop it."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.cli import csms as run_csms
from tests.e2e.cli import ok
from tests.e2e.conftest import Running

README = Path(__file__).resolve().parents[2] / "README.md"
# The Quickstart's simulator charges for 30 s; the tests keep its options but charge briefly.
BRIEF = ("--session-seconds", "1", "--meter-interval", "0.4")


def quickstart() -> str:
    text = README.read_text()
    start = text.index("## Quickstart")
    return text[start : text.index("\n## ", start + 1)]


def quickstart_commands() -> list[list[str]]:
    """The `.venv/bin/...` commands quoted inline in the Quickstart, in order."""
    return [shlex.split(c) for c in re.findall(r"`(\.venv/bin/csms[^`]*)`", quickstart())]


def simulator_command(server: Running, *, keep: bool) -> list[str]:
    (sim,) = [c for c in quickstart_commands() if c[0].endswith("/csms-sim")]
    url = sim.index("--url") + 1
    assert sim[url] == "ws://127.0.0.1:9000/ocpp"  # what `csms serve` listens on
    sim[url] = server.url
    if keep:
        sim.remove("--exit-when-done")
    return [sys.executable, "-m", "simulators", *sim[1:], *BRIEF]


async def start_sim(args: list[str]) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )


def test_the_quickstart_has_two_commands_and_ci_runs_the_second() -> None:
    """The Quickstart's two command blocks; `.ci/run` ends with the second (the tests)."""
    blocks = re.findall(r"```sh\n(.*?)\n```", quickstart(), re.DOTALL)
    assert len(blocks) == 2
    serve, tests = blocks
    assert serve.endswith(".venv/bin/csms serve")
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests
    assert tests.endswith(".venv/bin/pytest -n auto")


@pytest.mark.slow
async def test_the_quickstart_simulator_charges_once_and_ends_by_itself(server: Running) -> None:
    commands = quickstart_commands()
    (add,) = [c for c in commands if c[1:3] == ["tokens", "add"]]
    ok(await run_csms(server, *add[1:]))
    args = simulator_command(server, keep=False)
    assert "--exit-when-done" in args
    proc = await start_sim(args)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().splitlines()
    assert proc.returncode == 0, (lines, err.decode())
    assert "CP1 all sessions done, exiting" in lines
    assert lines[-1] == "CP1 done: sessions_completed=1/1 errors=0"
    (listing,) = [c for c in commands if c[1:3] == ["transactions", "list"]]
    listed = ok(await run_csms(server, *listing[1:]))
    assert re.search(r"^\s*\d+\s+CP1\s", listed, re.MULTILINE), listed


async def test_without_exit_when_done_it_says_it_stays_and_how_to_stop(server: Running) -> None:
    ok(await run_csms(server, "tokens", "add", "SIMTAG01"))
    proc = await start_sim(simulator_command(server, keep=True))
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "Ctrl-C to stop" not in (seen[-1] if seen else ""):
                raw = await proc.stdout.readline()
                assert raw, f"the simulator ended early: {seen}"
                seen.append(raw.decode().rstrip("\n"))
        assert seen[-1] == (
            "CP1 done: 1 session(s); staying connected for the CSMS (heartbeats, remote "
            "commands); Ctrl-C to stop"
        )
        await asyncio.sleep(0.5)
        assert proc.returncode is None  # still connected
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130
    assert out.decode().splitlines()[-1] == "CP1 done: sessions_completed=1/1 errors=0"
