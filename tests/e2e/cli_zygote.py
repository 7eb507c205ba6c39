"""A process that has imported the whole `csms` command line once and forks a child per
command the tests run (tests/e2e/cli.py starts one per test worker).

Starting `python -m csms.cli.main` costs about a second of imports (SQLAlchemy, the
models, every service), which the suite paid some thousand times. A forked child starts
with those imports done and is otherwise what a fresh process is: its own argv,
environment, stdin (/dev/null), stdout and stderr (files the caller named) and exit
status; the command line's own code runs unchanged, as `main()` runs it.

Protocol, one JSON object per line: on stdin `{"id", "args", "env", "cwd", "out", "err"}`
(cwd may be null) runs a
command, `{"kill": id}` kills one that is late; on stdout `{"id", "code"}` when it ended
(code -N: killed by signal N). Nothing else is written to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from typing import Any


def _preload() -> None:
    """Import every command's module (the groups load them lazily)."""
    import click

    from csms.cli.main import cli

    def walk(group: click.Group, ctx: click.Context) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                walk(command, click.Context(command, parent=ctx, info_name=name))

    walk(cli, click.Context(cli, info_name="csms"))


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the command's process, run it, never return."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        sys.argv = ["csms", *request["args"]]
        from csms.cli.main import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - what escaped the command line, as Python reports it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed: nothing more to say
                stream.flush()
        os._exit(code)


def serve() -> None:
    _preload()
    running: dict[int, str] = {}  # pid -> request id
    by_id: dict[str, int] = {}
    buffered = b""
    reply = sys.stdout.buffer
    while True:
        ready, _, _ = select.select([0], [], [], 0.005 if running else 1.0)
        if ready:
            chunk = os.read(0, 65536)
            if not chunk:
                break  # the test worker went away
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                request = json.loads(line)
                if "kill" in request:
                    pid = by_id.get(request["kill"])
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
                    continue
                reply.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request)
                running[pid] = request["id"]
                by_id[request["id"]] = pid
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            request_id = running.pop(pid, None)
            if request_id is None:
                continue
            del by_id[request_id]
            code = os.waitstatus_to_exitcode(status)
            reply.write(json.dumps({"id": request_id, "code": code}).encode() + b"\n")
            reply.flush()


if __name__ == "__main__":
    serve()
