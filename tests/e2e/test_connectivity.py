"""A simulated charger's connections coming up and going down are kept in the connectivity
history, which the statistics read as its offline time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from csms.core.statistics import Interval
from csms.storage import statistics as stats_repo
from csms.storage.models import ConnectivityRow
from tests.e2e.conftest import Running
from tests.e2e.sim import charger, until


async def _history(server: Running, cp_id: str) -> list[Any]:
    async with server.app.db.read() as conn:
        stmt = (
            select(ConnectivityRow.connected, ConnectivityRow.at, ConnectivityRow.node_id)
            .where(ConnectivityRow.charge_point_id == cp_id)
            .order_by(ConnectivityRow.at, ConnectivityRow.id)
        )
        return list((await conn.execute(stmt)).all())


async def test_connects_and_disconnects_make_the_connectivity_history(server: Running) -> None:
    began = datetime.now(UTC)
    async with charger(server.url, "LINK-1"):  # unknown: registers itself at its boot
        pass
    await until(lambda: _has(server, "LINK-1", 2), "the first disconnect recorded")
    async with charger(server.url, "LINK-1", boot=False):  # known: at the handshake
        pass
    rows = await until(lambda: _has(server, "LINK-1", 4), "the second disconnect recorded")
    assert [r.connected for r in rows] == [True, False, True, False]
    assert {r.node_id for r in rows} == {server.app.node_id}
    times = [r.at for r in rows]
    assert began <= times[0] <= times[1] <= times[2] <= times[3] <= datetime.now(UTC)
    end = datetime.now(UTC)
    async with server.app.db.read() as conn:
        offline = await stats_repo.offline_intervals(conn, began, end, ["LINK-1"])
    assert offline == {
        "LINK-1": [
            span
            for span in (Interval(times[1], times[2]), Interval(times[3], end))
            if span.start < span.end
        ]
    }


async def _has(server: Running, cp_id: str, count: int) -> list[Any] | None:
    rows = await _history(server, cp_id)
    return rows if len(rows) >= count else None
