"""End-to-end fixtures: a real CSMS on 127.0.0.1 (port 0) over a real SQLite file or a real
PostgreSQL database (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from csms.app import CsmsApp
from csms.config import Config, build_config
from csms.core.clock import Clock, utc_now
from csms.services.staff import StaffService
from tests.postgres import db_url_for


@dataclass
class Running:
    app: CsmsApp
    config: Config
    db_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.app.ocpp.port}/ocpp"

    @property
    def port(self) -> int:
        return self.app.ocpp.port

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.app.api_port}"

    @property
    def ocpi_url(self) -> str:
        assert self.app.ocpi_base_url is not None
        return self.app.ocpi_base_url

    @property
    def staff(self) -> StaffService:
        return StaffService(self.app.db, utc_now)

    async def stop(self) -> None:
        await self.app.stop()


@pytest.fixture(scope="module", autouse=True)
def _on_backend(backend: str) -> str:
    """Every end-to-end test runs on each selected database (tests/postgres.py)."""
    return backend


def make_config(db_path: Path, **sections: dict[str, Any]) -> Config:
    """A server's configuration on loopback ports; its database is `db_path` on SQLite or
    the PostgreSQL database made for that path."""
    raw: dict[str, dict[str, Any]] = {
        "database": {"url": db_url_for(db_path)},
        "ocpp": {"host": "127.0.0.1", "port": 0, "ping_interval": 0},
        "api": {"host": "127.0.0.1", "port": 0, "token": "test-token"},
        # An empty base_url is derived from the port actually bound.
        "ocpi": {"host": "127.0.0.1", "port": 0, "base_url": ""},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return build_config(raw, {})


StartServer = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start a server; `await start_server(ocpp={...})`, `clock=` to inject one. Several
    may run (restarts)."""
    running: list[Running] = []
    db_path = tmp_path / "csms.db"

    async def start(clock: Clock = utc_now, **sections: dict[str, Any]) -> Running:
        config = make_config(db_path, **sections)
        app = CsmsApp(config, clock)
        await app.start()
        server = Running(app, config, db_path)
        running.append(server)
        return server

    yield start
    for server in running:
        await _stop(server)


# A server stops in well under a second; one that does not is a bug, shown with what waits.
STOP_TIMEOUT_S = 30.0


async def _stop(server: Running) -> None:
    stopping = asyncio.ensure_future(server.app.stop())
    done, _ = await asyncio.wait({stopping}, timeout=STOP_TIMEOUT_S)
    if stopping in done:
        stopping.result()
        return
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    stopping.cancel()
    raise AssertionError(f"the server did not stop within {STOP_TIMEOUT_S:g} s:\n{out.getvalue()}")


@pytest.fixture
async def server(start_server: StartServer) -> Running:
    return await start_server()
