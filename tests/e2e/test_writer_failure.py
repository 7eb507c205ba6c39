"""`csms serve` whose database writer dies: the charger's message is answered at once with
an error (never left waiting), and the server exits non-zero with one line saying why.

The trigger is real: the directory holding the SQLite file is removed while the server
runs. SQLite would go on committing into the deleted file (through the descriptor it
holds) and lose everything at exit; the writer refuses instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.raw import BOOT, exchange, open_raw

CSMS = [sys.executable, "-m", "csms.cli.main"]

# A deleted SQLite file is SQLite's own failure mode.
pytestmark = pytest.mark.sqlite_only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    port = free_port()
    data = tmp_path / "data"
    (tmp_path / "csms.toml").write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{data}/csms.db"\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {port}\nping_interval = 0\n'
        f'[api]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        '[ocpi]\nhost = "127.0.0.1"\nport = 0\n'
        '[log]\nformat = "json"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    proc = subprocess.Popen(
        [*CSMS, "serve"],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
    yield proc, port, data
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_serve_exits_non_zero_when_its_database_writer_dies(
    served: tuple[subprocess.Popen[str], int, Path],
) -> None:
    proc, port, data = served

    async def drive() -> list[object]:
        ws = await open_raw(f"ws://127.0.0.1:{port}/ocpp", "DOOMED")
        boot = await exchange(ws, [2, "b1", "BootNotification", BOOT])
        assert boot[2]["status"] == "Accepted"
        shutil.rmtree(data)
        status = {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        # Answered (an error: nothing could be stored), not left waiting.
        answer: list[object] = await exchange(ws, [2, "s1", "StatusNotification", status])
        await ws.close()
        return answer

    answer = asyncio.run(drive())
    assert answer[:3] == [4, "s1", "InternalError"], answer
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    reason = (
        f"the database file {data / 'csms.db'} was removed or replaced while in use: "
        "nothing more can be committed to it"
    )
    assert lines[-1] == f"error: {reason}"
    records = [json.loads(line) for line in lines if line.startswith("{")]
    (failed,) = [r for r in records if r["event"] == "database_writer_failed"]
    assert failed["level"] == "error" and failed["error"] == reason
    # The first error logged says what happened (what failed after it follows from it).
    assert next(r for r in records if r["level"] == "error") is failed
    events = [r["event"] for r in records]
    assert events.index("database_writer_failed") < events.index("csms_stopping")
    assert events[-1] == "csms_stopped"
