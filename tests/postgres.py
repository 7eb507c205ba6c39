"""A throw-away PostgreSQL server for the test run, and the database each test gets.

`--db sqlite|postgres|both` (or CSMS_TEST_DB) picks the databases the storage and
end-to-end suites run on; the default, `auto`, is both when PostgreSQL's server programs
are installed (Debian's `postgresql` package) and SQLite alone, with a warning, when they
are not. `.ci/run` sets CSMS_TEST_DB=both, so CI fails rather than skip PostgreSQL.

The controlling pytest process starts one cluster (initdb in a temporary directory, a free
loopback port, trust authentication, as an unprivileged user when run as root) and stops
it at the end; xdist workers find it through CSMS_TEST_PG_URL. CSMS_TEST_PG_URL set
beforehand (postgresql+asyncpg://user@host:port) uses that server instead.

Each test database is created from a template that holds the migrated schema, so a
server start in a test costs a CREATE DATABASE, not fifteen migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL_ENV = "CSMS_TEST_PG_URL"
CHOICE_ENV = "CSMS_TEST_DB"
TEMPLATE = "csms_template"
BACKENDS = ("sqlite", "postgres")


def server_programs() -> Path | None:
    """The directory of initdb/pg_ctl/postgres: PATH first, then Debian's layout."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A PostgreSQL server this process started (and stops)."""

    directory: Path
    bin: Path
    port: int
    user: str | None  # the OS user it runs as (None: this one)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://csms@127.0.0.1:{self.port}"

    def _run(self, *args: str | Path) -> None:
        command = [str(a) for a in args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @classmethod
    def start(cls, *, durable: bool = False) -> Cluster:
        """initdb and start a server on a free loopback port. `durable`: fsync and
        synchronous commit as in production (benchmarks); off for tests, which never kill
        the database server itself."""
        programs = server_programs()
        if programs is None:
            raise RuntimeError(
                "PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
                "apt-get install postgresql, or run with --db sqlite"
            )
        directory = Path(tempfile.mkdtemp(prefix="csms-pg-"))
        user = None
        if os.geteuid() == 0:  # initdb refuses root
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        cluster = cls(directory, programs, _free_port(), user)
        data = directory / "data"
        cluster._run(
            programs / "initdb", "-D", data, "-U", "csms", "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-instructions",
        )  # fmt: skip
        settings = [
            f"-p {cluster.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={directory}",
            "-c max_connections=400",
            "-c shared_buffers=128MB",
        ]
        if not durable:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        cluster._run(
            programs / "pg_ctl", "-D", data, "-l", directory / "log", "-w", "-t", "60",
            "-o", " ".join(settings), "start",
        )  # fmt: skip
        return cluster

    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children)."""
        try:
            first = (self.directory / "data" / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(self.bin / "pg_ctl", "-D", self.directory / "data", "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# --- databases -------------------------------------------------------------------------


def _run_sync(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion from synchronous code, even inside a running event
    loop (tests call make_config from async fixtures): in a thread of its own."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


async def _admin(server_url: str, *statements: str) -> None:
    import asyncpg  # the postgres extra, a test dependency

    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_database(server_url: str, name: str) -> str:
    """A new empty database `name` on the server (dropped first if it exists); its URL."""
    _run_sync(
        lambda: _admin(
            server_url,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
        )
    )
    return f"{server_url}/{name}"


def database_name(key: str) -> str:
    """A database name for a test's key (its SQLite path, say): stable, short, safe."""
    return "t_" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:24]


_made: set[str] = set()
_lock = threading.Lock()


def database_url(server_url: str, key: str, *, empty: bool = False) -> str:
    """The URL of the database for `key`, created on first use: from the migrated template,
    or `empty` (no schema: for tests of the migrations themselves)."""
    name = database_name(key) + ("_e" if empty else "")
    with _lock:
        if name not in _made:
            template = "template0" if empty else TEMPLATE
            _run_sync(
                lambda: _admin(
                    server_url,
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
                )
            )
            _made.add(name)
    return f"{server_url}/{name}"


def prepare_template(server_url: str) -> None:
    """The template database: the schema at the newest migration."""
    from csms.storage.database import create_engine
    from csms.storage.migrate import upgrade

    async def migrate() -> None:
        await _admin(
            server_url,
            f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)',
            f'CREATE DATABASE "{TEMPLATE}"',
        )
        engine = create_engine(f"{server_url}/{TEMPLATE}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    _run_sync(migrate)


# --- which database the running test is on ------------------------------------------------


class Current:
    """The backend of the tests running now in this process (set per module by the
    `backend` fixture; read by tests.e2e.conftest.make_config and the storage tests)."""

    backend = "sqlite"


def db_url_for(db_path: Path, *, empty: bool = False) -> str:
    """The database URL for a test's database file: that SQLite file, or the PostgreSQL
    database made for it."""
    if Current.backend == "sqlite":
        return f"sqlite+aiosqlite:///{db_path}"
    server = os.environ.get(URL_ENV)
    if not server:
        raise RuntimeError(f"{URL_ENV} is not set: the PostgreSQL server did not start")
    return database_url(server, str(db_path), empty=empty)
