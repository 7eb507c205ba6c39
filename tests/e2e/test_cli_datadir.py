"""The `csms` command never works on the wrong data silently: a missing database is never
created by a command that only reads or edits, the data directory locates the database and
the API token file from any folder, unknown CSMS_* variables are reported, and `csms serve`
says where its data is and which defaults are unsafe. Run as subprocesses, as staff do."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

CSMS = [sys.executable, "-m", "csms.cli.main"]

# How the data directory locates the SQLite file, and that no command creates an empty one.
pytestmark = pytest.mark.sqlite_only
HINT = "point at yours with --data-dir, --config or CSMS_DATABASE_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return {**env, **extra}


def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSMS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**extra),
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str], line: str) -> None:
    """Exit 1 and exactly one line on stderr, nothing on stdout."""
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    "args",
    [
        ["chargers", "list"],
        ["chargers", "add", "CP1"],
        ["tokens", "add", "CARD1"],
        ["transactions", "list", "--json"],
        ["tariffs", "list"],
        ["cdrs", "list"],
        ["locations", "list"],
        ["ocpi", "partners", "list"],
        ["commands", "list"],
    ],
)
def test_no_command_but_init_creates_a_database(tmp_path: Path, args: list[str]) -> None:
    refused(
        run(tmp_path, *args),
        f"no database at {tmp_path}/csms.db (data directory {tmp_path}): {HINT}, "
        "or create one there with `csms db init`",
    )
    assert tree(tmp_path) == []


@pytest.mark.slow
def test_a_mistyped_path_creates_nothing_either(tmp_path: Path) -> None:
    mistyped = tmp_path / "srv" / "csms-data" / "csms.db"
    url = f"sqlite+aiosqlite:///{mistyped}"
    refused(
        run(tmp_path, "tokens", "add", "CARD1", CSMS_DATABASE_URL=url),
        f"no database at {mistyped} (data directory {tmp_path}): {HINT}, "
        "or create one there with `csms db init`",
    )
    missing = tmp_path / "elsewhere"
    for args in (
        ["--data-dir", str(missing), "chargers", "list"],
        ["chargers", "list", "--data-dir", "elsewhere"],
    ):
        refused(
            run(tmp_path, *args),
            f"no database at {missing}/csms.db (data directory {missing}): {HINT}, "
            "or create one there with `csms db init`",
        )
    (tmp_path / "other.toml").write_text('[database]\nurl = "sqlite+aiosqlite:///db/x.db"\n')
    refused(
        run(tmp_path, "--config", "other.toml", "chargers", "list"),
        f"no database at {tmp_path}/db/x.db (data directory {tmp_path}): {HINT}, "
        "or create one there with `csms db init`",
    )
    assert tree(tmp_path) == ["other.toml"]


def test_a_file_without_our_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    refused(
        run(tmp_path, "tokens", "add", "C1", CSMS_DATABASE_URL="sqlite+aiosqlite:///empty.db"),
        f"the database at {tmp_path}/empty.db has no csms schema: {HINT}, "
        "or create the schema with `csms db init`",
    )
    (tmp_path / "notes.txt").write_text("not a database at all, but long enough to be read\n" * 3)
    result = run(tmp_path, "chargers", "list", CSMS_DATABASE_URL="sqlite:///notes.txt")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {tmp_path}/notes.txt is not a usable SQLite database")
    assert (tmp_path / "empty.db").read_bytes() == b""
    assert tree(tmp_path) == ["empty.db", "notes.txt"]


@pytest.mark.slow
def test_db_init_creates_it_once_then_commands_use_it(tmp_path: Path) -> None:
    data = tmp_path / "site" / "data"
    created = run(tmp_path, "db", "init", "--data-dir", "site/data")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created the csms database at {data}/csms.db (schema ")
    again = run(tmp_path, "--data-dir", str(data), "db", "init")
    assert again.stdout.startswith(f"the csms database at {data}/csms.db exists (schema ")
    added = run(tmp_path, "--data-dir", str(data), "tokens", "add", "CARD1")
    assert added.returncode == 0, added.stderr
    # From any folder, through the variable.
    listed = run(Path("/"), "tokens", "list", "--json", CSMS_DATA_DIR=str(data))
    assert [t["uid"] for t in json.loads(listed.stdout)] == ["CARD1"]
    assert listed.stderr == ""


@pytest.mark.slow
def test_global_options_work_before_the_subcommand(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/a.db"\n')
    assert run(tmp_path, "--config", "a.toml", "db", "init").returncode == 0
    assert run(tmp_path, "--config", "a.toml", "chargers", "add", "CP-A").returncode == 0
    listed = run(tmp_path, "--config", "a.toml", "chargers", "list", "--json")
    assert [c["id"] for c in json.loads(listed.stdout)] == ["CP-A"]
    # The command's own --config wins over the global one.
    (tmp_path / "b.toml").write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/b.db"\n')
    refused(
        run(tmp_path, "--config", "a.toml", "chargers", "list", "--config", "b.toml"),
        f"no database at {tmp_path}/b.db (data directory {tmp_path}): {HINT}, "
        "or create one there with `csms db init`",
    )


def test_unknown_environment_variables_are_named_with_the_closest_setting(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "init").returncode == 0
    result = run(
        tmp_path,
        "chargers",
        "list",
        CSMS_OCPP_PROT="9001",
        CSMS_DATA_DIR=str(tmp_path),
        CSMS_SIM_PASSWORD="not ours to judge",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: environment variable CSMS_OCPP_PROT is not a csms setting; ignored "
        "(did you mean CSMS_OCPP_PORT?)\n"
    )
    assert result.stdout == "no chargers\n"
    # A key in the file is refused, as before, and named the same way.
    (tmp_path / "csms.toml").write_text("[ocpp]\nprot = 9001\n")
    refused(
        run(tmp_path, "chargers", "list"), "unknown config key ocpp.prot (did you mean ocpp.port?)"
    )


def test_version_and_short_help_everywhere(tmp_path: Path) -> None:
    shown = run(tmp_path, "--version")
    assert (shown.returncode, shown.stdout) == (0, f"csms {version('csms')}\n")
    for args in (["-h"], ["chargers", "-h"], ["remote", "reset", "-h"], ["db", "init", "-h"]):
        helped = run(tmp_path, *args)
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith(f"Usage: csms {' '.join(args[:-1])}".rstrip())
        # Where the configuration and the data are: on the group and on every command.
        assert ("--data-dir" in helped.stdout) == (args != ["chargers", "-h"])
    for args in (["-h"], ["charger", "-h"], ["emsp", "-h"]):
        sim = subprocess.run(
            [sys.executable, "-m", "simulators", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            check=False,
        )
        assert sim.returncode == 0, sim.stderr
        assert sim.stdout.startswith("Usage: ") and "Show this message and exit." in sim.stdout
    assert tree(tmp_path) == []


class Served:
    def __init__(self, proc: subprocess.Popen[str], terminal: int) -> None:
        self.proc = proc
        self.terminal = terminal

    def screen_until(self, text: str, timeout: float = 20) -> str:
        """What the server printed on its terminal (stdout), up to `text`."""
        seen = b""
        deadline = time.monotonic() + timeout
        while text.encode() not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([self.terminal], [], [], 0.2)
            if ready:
                seen += os.read(self.terminal, 4096)
        return seen.decode().replace("\r\n", "\n")

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM; its log records."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, err
        return [json.loads(line) for line in err.splitlines()]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(cwd: Path, *args: str, **extra: str) -> Served:
        terminal, screen = pty.openpty()
        proc = subprocess.Popen(
            [*CSMS, *args],
            cwd=cwd,
            env=clean_env(**extra),
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=screen,
            stderr=subprocess.PIPE,
        )
        os.close(screen)
        served = Served(proc, terminal)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.communicate()
        os.close(served.terminal)


def write_config(where: Path, *, hosts: str, **extra: str) -> dict[str, int]:
    ports = {"ocpp": free_port(), "api": free_port(), "ocpi": free_port()}
    lines = [
        '[database]\nurl = "sqlite+aiosqlite:///state/csms.db"',  # relative: in the data dir
        f'[ocpp]\nhost = "{hosts}"\nport = {ports["ocpp"]}\nping_interval = 0',
        extra.get("ocpp", ""),
        f'[api]\nhost = "127.0.0.1"\nport = {ports["api"]}',
        f'[ocpi]\nhost = "{hosts}"\nport = {ports["ocpi"]}',
        extra.get("ocpi", ""),
        '[log]\nformat = "json"\n',
    ]
    where.mkdir(parents=True, exist_ok=True)
    (where / "csms.toml").write_text("\n".join(lines))
    return ports


def test_the_data_dir_finds_database_and_token_from_any_folder(tmp_path: Path, serve: Any) -> None:
    data, there, here = tmp_path / "data", tmp_path / "there", tmp_path / "here"
    there.mkdir()
    here.mkdir()
    write_config(data, hosts="127.0.0.1", ocpi=f'base_url = "http://127.0.0.1:{free_port()}"')
    served = serve(there, "--data-dir", str(data), "serve", CSMS_OCPP_PROT="1")
    screen = served.screen_until("API token file:")
    assert screen.splitlines() == [
        "csms is running (Ctrl-C stops it)",
        f"  data directory:  {data}",
        f"  configuration:   {data}/csms.toml",
        f"  database:        {data}/state/csms.db",
        f"  API token file:  {data}/.csms/api-token",
    ]
    # From another folder, the data directory leads a live command to the server's token.
    remote = run(here, "--data-dir", str(data), "remote", "reset", "NOT-HERE")
    assert (remote.returncode, remote.stderr) == (
        3,
        "error: NOT-HERE reset: not connected (unknown charger 'NOT-HERE')\n",
    )
    audit = run(here, "commands", "list", "--json", CSMS_DATA_DIR=str(data))
    assert [e["command"] for e in json.loads(audit.stdout)] == ["reset"]
    # Without it, the error says where it looked and how to point elsewhere.
    lost = run(here, "remote", "reset", "NOT-HERE")
    refused(
        lost,
        f"no API token at {here}/.csms/api-token (`csms serve` writes it there at its first "
        "start): point at the server's data directory with --data-dir or CSMS_DATA_DIR, "
        "or set api.token",
    )
    records = served.stop()
    assert tree(there) == [] and tree(here) == []
    (ignored,) = [r for r in records if r["event"] == "configuration_ignored"]
    assert ignored["level"] == "warning"
    assert "CSMS_OCPP_PROT" in ignored["detail"] and "CSMS_OCPP_PORT" in ignored["detail"]
    (started,) = [r for r in records if r["event"] == "csms_started"]
    assert {k: started[k] for k in ("data_dir", "config_file", "database", "api_token_file")} == {
        "data_dir": str(data),
        "config_file": str(data / "csms.toml"),
        "database": str(data / "state" / "csms.db"),
        "api_token_file": str(data / ".csms" / "api-token"),
    }
    # Loopback listeners and an explicit base URL: nothing unsafe to report.
    assert not [r for r in records if r["event"] == "unsafe_setting_found"]


def test_serve_warns_about_unsafe_defaults_on_every_interface(tmp_path: Path, serve: Any) -> None:
    write_config(tmp_path, hosts="0.0.0.0")
    served = serve(tmp_path, "serve")
    served.screen_until("API token file:")
    records = served.stop()
    warned = [r for r in records if r["event"] == "unsafe_setting_found"]
    assert [(r["level"], r["setting"]) for r in warned] == [
        ("warning", "ocpp.registration"),
        ("warning", "ocpp.require_auth"),
        ("warning", "ocpi.base_url"),
    ]
    assert "http://localhost:9100" in warned[2]["detail"]
    # Fixed in the configuration, they are gone.
    write_config(
        tmp_path,
        hosts="0.0.0.0",
        ocpp='registration = "pending"\nrequire_auth = true',
        ocpi='base_url = "https://ocpi.example.com"',
    )
    served = serve(tmp_path, "serve", "--only", "ocpp,ocpi")
    screen = served.screen_until("database:")
    assert "API token file" not in screen  # the API does not run
    records = served.stop()
    assert not [r for r in records if r["event"] == "unsafe_setting_found"]
