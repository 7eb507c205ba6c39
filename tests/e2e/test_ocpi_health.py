"""Connection health per OCPI partner on a real server: a partner that answers 503 shows a
growing backlog and age of its oldest push (`csms ocpi partners show/list`, /metrics), the
alert event `ocpi_push_overdue` once past `[ocpi] push_alert_after`, then, once it answers
again, `ocpi_push_recovered`, an empty backlog and its last success."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from csms.core.clock import utc_now
from csms.core.outbox import Push
from csms.storage import outbox
from csms.storage.database import WriteTx
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner

ALERT_AFTER = 1.5
ERROR = "HTTP 503, status 3000: refused by the fake (3000)"


@pytest.fixture
async def server(start_server: StartServer) -> Running:
    return await start_server(ocpi={"push_interval": 0.1, "push_alert_after": ALERT_AFTER})


@pytest.fixture
async def partner() -> AsyncIterator[FakePartner]:
    fake = await FakePartner().start()
    yield fake
    await fake.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)


async def enqueue(server: Running, partner_id: int, partner: FakePartner, *ids: str) -> None:
    now = utc_now()

    async def unit(w: WriteTx) -> None:
        conn = await w.connection()
        for location in ids:
            url = f"{partner.base}/2.2.1/locations/NL/CSM/{location}"
            push = Push("locations", "PUT", url, {"id": location}, f"locations/{location}")
            await outbox.enqueue(conn, partner_id, push, now)

    await server.app.db.write(unit)


async def show(server: Running, name: str) -> dict[str, Any]:
    found = (await csms(server, "ocpi", "partners", "show", name, "--json")).json()
    assert isinstance(found, dict)
    return found


async def metrics(server: Running) -> dict[str, float]:
    """The partner gauges of /metrics, by `name{labels}`."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.api_url}/metrics",
            headers={"Authorization": f"Bearer {server.config.api.token}"},
        ) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(csms_ocpi_partner_\w+\{[^}]*\}) (\S+)$", line)
        if match:
            found[match[1]] = float(match[2])
    return found


async def test_a_failing_partner_shows_its_backlog_an_alert_then_recovery(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("hub1")
    await partner.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    emsp = await server.app.partners.get("hub1")
    # Before any push: nothing waits, nothing was tried.
    fresh = await show(server, "hub1")
    assert fresh["health"] == {
        "last_success_at": None,
        "last_error_at": None,
        "last_error": None,
        "backlog": 0,
        "oldest_push_at": None,
        "oldest_push_age_s": None,
    }
    assert fresh["profile"]["name"] == "default"

    partner.push_answer = lambda _seen: (503, 3000)
    with capture_logs() as logs:
        await enqueue(server, emsp.id, partner, "LOC1", "LOC2", "LOC3")

        async def tried() -> bool:
            return len(partner.pushes) >= 3

        await eventually(tried, "three refused pushes")
        first = await show(server, "hub1")
        health = first["health"]
        assert health["backlog"] == 3
        assert health["last_error"] == ERROR
        assert health["last_error_at"] is not None and health["last_success_at"] is None
        assert health["oldest_push_age_s"] is not None
        gauges = await metrics(server)
        assert gauges['csms_ocpi_partner_backlog{partner="hub1"}'] == 3
        assert gauges['csms_ocpi_partner_oldest_push_age_seconds{partner="hub1"}'] >= 0
        # No success yet: no sample for its time.
        assert 'csms_ocpi_partner_last_success_timestamp_seconds{partner="hub1"}' not in gauges

        # The backlog ages; past push_alert_after the alert is logged, once.
        async def overdue() -> bool:
            return any(e["event"] == "ocpi_push_overdue" for e in logs)

        await eventually(overdue, "ocpi_push_overdue")
        later = await show(server, "hub1")
        assert later["health"]["backlog"] == 3
        assert later["health"]["oldest_push_age_s"] > health["oldest_push_age_s"]
        assert later["health"]["oldest_push_age_s"] >= ALERT_AFTER
        assert later["health"]["oldest_push_at"] == health["oldest_push_at"]
        listed = ok(await csms(server, "ocpi", "partners", "list"))
        header, row = listed.splitlines()
        assert row.startswith("hub1 ")
        assert row[header.index("BACKLOG") :].split()[0] == "3"
        assert row[header.index("PROFILE") :].split()[0] == "default"
        assert row[header.index("OLDEST") :].split()[0].endswith("s")
        assert row[header.index("LAST OK") :].split()[0] == "-"
        text = ok(await csms(server, "ocpi", "partners", "show", "hub1"))
        assert "backlog:        3 pushes waiting" in text
        assert ERROR in text
        await asyncio.sleep(ALERT_AFTER)  # more rounds of the watch: no second alert
        (alert,) = [e for e in logs if e["event"] == "ocpi_push_overdue"]
        assert alert["partner"] == "hub1" and alert["backlog"] == 3
        assert alert["age_s"] >= ALERT_AFTER and alert["log_level"] == "warning"  # 0.1 s steps
        assert alert["alert_after_s"] == ALERT_AFTER

        # The partner answers again; staff make the failed pushes due now.
        partner.push_answer = None
        ok(await csms(server, "ocpi", "outbox", "--retry-now", "--partner", "hub1"))

        async def recovered() -> bool:
            return any(e["event"] == "ocpi_push_recovered" for e in logs)

        await eventually(recovered, "ocpi_push_recovered")
    (back,) = [e for e in logs if e["event"] == "ocpi_push_recovered"]
    assert back["partner"] == "hub1" and back["backlog"] == 0
    assert len([e for e in logs if e["event"] == "ocpi_push_overdue"]) == 1
    healthy = await show(server, "hub1")
    assert healthy["health"]["backlog"] == 0 and healthy["health"]["oldest_push_age_s"] is None
    # The last error is kept for the record; the last success is newer.
    assert healthy["health"]["last_error"] == ERROR
    success = datetime.fromisoformat(healthy["health"]["last_success_at"])
    error_at = datetime.fromisoformat(healthy["health"]["last_error_at"])
    assert success > error_at
    gauges = await metrics(server)
    assert gauges['csms_ocpi_partner_backlog{partner="hub1"}'] == 0
    assert gauges['csms_ocpi_partner_oldest_push_age_seconds{partner="hub1"}'] == 0
    stamp = gauges['csms_ocpi_partner_last_success_timestamp_seconds{partner="hub1"}']
    assert 0 <= stamp - success.timestamp() < 1  # the JSON shows whole seconds
