"""Run the `csms` command line as its own process against a server started in the test.

Each command is a child forked from a process that imported the command line once
(tests/e2e/cli_zygote.py, one per test worker): a process of its own with its arguments,
environment, output and exit status, without a second of imports each time.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


# Longest a command may take before the test fails (and the command is killed).
COMMAND_TIMEOUT_S = 120.0


class _Zygote:
    """The forking process of this test worker, and the commands it runs for it."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="csms-cli-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.cli_zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._requests: IO[bytes] = self._proc.stdin
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._waiting: dict[str, concurrent.futures.Future[int]] = {}
        reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="csms-cli", daemon=True
        )
        reader.start()

    def _read(self, answers: IO[bytes]) -> None:
        for line in answers:
            answer = json.loads(line)
            with self._lock:
                future = self._waiting.pop(answer["id"], None)
            if future is not None:
                future.set_result(int(answer["code"]))
        with self._lock:  # the zygote ended: nothing more will be answered
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(RuntimeError("the csms command line process ended"))

    def _send(self, request: dict[str, Any]) -> None:
        with self._lock:
            self._requests.write(json.dumps(request).encode() + b"\n")
            self._requests.flush()

    def start(
        self, args: Sequence[str], env: dict[str, str], cwd: Path | None
    ) -> tuple[str, concurrent.futures.Future[int]]:
        """Run a command; its id and the future of its exit status."""
        request_id = str(next(self._ids))
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        with self._lock:
            self._waiting[request_id] = future
        out, err = self._outputs(request_id)
        request = {"id": request_id, "args": list(args), "env": env, "cwd": cwd and str(cwd)}
        self._send({**request, "out": str(out), "err": str(err)})
        return request_id, future

    def _outputs(self, request_id: str) -> tuple[Path, Path]:
        return self._folder / f"{request_id}.out", self._folder / f"{request_id}.err"

    def ended(self, request_id: str, code: int) -> Ran:
        """What a command that ended with `code` wrote (its files then removed)."""
        out, err = self._outputs(request_id)
        ran = Ran(code, out.read_text(), err.read_text())
        out.unlink()
        err.unlink()
        return ran

    def kill(self, request_id: str) -> None:
        self._send({"kill": request_id})

    async def run(self, args: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Ran:
        request_id, future = self.start(args, env, cwd)
        try:
            code = await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT_S)
        except TimeoutError:
            self.kill(request_id)
            raise
        return self.ended(request_id, code)

    def run_blocking(
        self, args: Sequence[str], env: dict[str, str], cwd: Path | None, timeout: float
    ) -> Ran:
        request_id, future = self.start(args, env, cwd)
        try:
            code = future.result(timeout)
        except TimeoutError:
            self.kill(request_id)
            raise
        return self.ended(request_id, code)

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()
        for leftover in self._folder.iterdir():
            leftover.unlink()
        self._folder.rmdir()


_zygote: _Zygote | None = None


def _the_zygote() -> _Zygote:
    global _zygote
    if _zygote is None:
        _zygote = _Zygote()
        atexit.register(_zygote.close)
    return _zygote


async def csms(server: Running, *args: str, env: dict[str, str] | None = None) -> Ran:
    return await _the_zygote().run(args, env or cli_env(server))


def run_csms(
    args: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """`csms ARGS` in `cwd`, waited for (for tests that are not coroutines): what
    `subprocess.run(..., capture_output=True, text=True)` would give."""
    ran = _the_zygote().run_blocking(args, env, cwd, timeout)
    return subprocess.CompletedProcess(["csms", *args], ran.code, ran.out, ran.err)


async def remote(server: Running, *args: str) -> Ran:
    """`csms remote ... --json`; returns the result (code, JSON body in out)."""
    return await csms(server, "remote", *args, "--json")
