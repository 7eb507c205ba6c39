"""Run the `csms` command line as a subprocess against a server started in the test."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from tests.e2e.conftest import Running


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def ok(ran: Ran) -> str:
    """The output of a command that must have succeeded."""
    assert ran.code == 0, ran
    return ran.out


def one_line_error(ran: Ran, text: str) -> None:
    """A command refused with exit 1 and one `error: ...` line naming `text`."""
    assert ran.code == 1, ran
    assert ran.err.startswith("error: ") and text in ran.err, ran.err
    assert len(ran.err.strip().splitlines()) == 1 and "Traceback" not in ran.err


def cli_env(server: Running) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(
        CSMS_DATABASE_URL=server.config.database.url,
        CSMS_API_HOST="127.0.0.1",
        CSMS_API_PORT=str(server.app.api_port),
        CSMS_API_TOKEN=server.config.api.token,
    )
    return env


async def csms(server: Running, *args: str, env: dict[str, str] | None = None) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or cli_env(server),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def remote(server: Running, *args: str) -> Ran:
    """`csms remote ... --json`; returns the result (code, JSON body in out)."""
    return await csms(server, "remote", *args, "--json")
