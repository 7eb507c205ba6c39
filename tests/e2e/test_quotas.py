"""Bounds one charger cannot push past: what it may have stored as sent (DataTransfer,
events, reports), how fast its frames are read, and how many unknown ids register
themselves. Each over a real server with simulated chargers and raw sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs
from websockets.exceptions import InvalidStatus

from csms.core.authorization import Token, TokenStatus
from csms.core.charger import RegistrationStatus
from csms.core.clock import utc_now
from csms.storage import charge_points as cp_repo
from csms.storage import events as event_repo
from tests.e2e.conftest import Running, StartServer
from tests.e2e.raw import BOOT, BOOT201, call, open_booted, open_raw
from tests.e2e.sim import charger, hours_ago, register, until
from tests.e2e.v201 import V201, session_events


class MovingClock:
    """The server's clock: real time plus an offset the test moves on (buckets refill)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.offset


async def metrics(server: Running) -> dict[str, float]:
    """`GET /metrics` as {sample name with labels: value}."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        assert response.status == 200
        text = await response.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def stored_events(server: Running, cp_id: str) -> list[str]:
    async with server.app.db.read() as conn:
        return [e.action for e in await event_repo.recent(conn, cp_id, limit=10_000)]


async def charge_point_ids(server: Running) -> set[str]:
    async with server.app.db.read() as conn:
        return {cp.id for cp in await cp_repo.list_all(conn)}


def events_named(
    logs: Sequence[MutableMapping[str, Any]], name: str
) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# --- messages kept as sent ------------------------------------------------------------


async def test_data_transfer_over_quota_is_rejected_unstored_and_sessions_go_on(
    start_server: StartServer,
) -> None:
    clock = MovingClock()
    server = await start_server(
        clock=clock,
        ocpp={"kept_messages_per_minute": 5, "kept_bytes_per_minute": 0, "kept_burst_minutes": 1},
    )
    await server.staff.add_token(Token("T1", TokenStatus.ACCEPTED))
    async with charger(server.url, "NOISY") as cp, charger(server.url, "CALM") as calm:
        with capture_logs() as logs:
            answers = [
                (await cp.data_transfer("Vendor", data="x" * 100))["status"] for _ in range(8)
            ]
            # Over the quota a firmware status still updates the charger, unstored.
            await cp.firmware_status("Downloading")
        assert answers == ["UnknownVendorId"] * 5 + ["Rejected"] * 3
        over = events_named(logs, "kept_messages_over_quota")
        assert [(e["charge_point_id"], e["action"], e["refused"]) for e in over] == [
            ("NOISY", "DataTransfer", 1)
        ]
        # Transactions and meter values are never limited.
        tx_id = (await cp.start_transaction(1, "T1", 1_000, timestamp=hours_ago(1)))[
            "transactionId"
        ]
        await cp.meter_values(1, tx_id, [register(hours_ago(0.5), 5_000)])
        stop = await cp.stop_transaction(tx_id, 9_000, id_tag="T1")
        assert stop["idTagInfo"]["status"] == "Accepted"
        # Another charger has its own quota.
        assert (await calm.data_transfer("Vendor", data="y"))["status"] == "UnknownVendorId"
        # A minute later one message's worth is back.
        clock.offset += timedelta(seconds=13)
        assert (await cp.data_transfer("Vendor"))["status"] == "UnknownVendorId"
        assert (await cp.data_transfer("Vendor"))["status"] == "Rejected"
    assert await stored_events(server, "NOISY") == ["DataTransfer"] * 6
    detail = await server.staff.charger("NOISY")
    assert detail.charger.firmware_status == "Downloading"
    tx = await server.staff.transaction(tx_id)
    assert tx.transaction.energy_wh == 8_000
    assert [s.value for s in tx.samples if s.measurand.startswith("Energy")] == [5_000]
    counted = await metrics(server)
    kept = 'csms_kept_messages_total{action="DataTransfer",outcome="%s"}'
    assert counted[kept % "stored"] == 7  # NOISY 6, CALM 1
    assert counted[kept % "dropped"] == 4
    firmware = 'csms_kept_messages_total{action="FirmwareStatusNotification",outcome="dropped"}'
    assert counted[firmware] == 1


async def test_64kb_data_transfers_fill_the_byte_quota_and_reports_count_too(
    start_server: StartServer,
) -> None:
    fixed = utc_now()  # no refill while the test runs
    server = await start_server(
        clock=lambda: fixed,
        ocpp={
            "kept_messages_per_minute": 0,
            "kept_bytes_per_minute": 131_072,
            "kept_burst_minutes": 1,
        },
    )
    await server.staff.add_token(Token("T2", TokenStatus.ACCEPTED))
    ws = await open_booted(server.url, "FLOOD201", "2.0.1")
    payload = {"vendorId": "Flood", "data": "z" * 60_000}
    size = len(orjson.dumps(payload))
    replies = [await call(ws, "DataTransfer", payload) for _ in range(10)]
    assert [r[2]["status"] for r in replies] == ["UnknownVendorId"] * 2 + ["Rejected"] * 8
    assert replies[-1][2]["statusInfo"]["reasonCode"] == "RateLimitExceeded"
    # A device-model report over the quota is answered and not stored.
    report = {
        "requestId": 1,
        "generatedAt": "2026-01-01T00:00:00Z",
        "seqNo": 0,
        "tbc": False,
        "reportData": [
            {
                "component": {"name": "Junk"},
                "variable": {"name": "V" * 40},
                "variableAttribute": [{"value": "v" * 2500}],
            }
        ]
        * 10,
    }
    reply = await call(ws, "NotifyReport", report)
    assert reply[0] == 3 and reply[2] == {}
    # A transaction goes through whole.
    for event in session_events("TX-FLOOD", hours_ago(2), token="T2"):
        reply = await call(ws, "TransactionEvent", event)
        assert reply[0] == 3, reply
    await ws.close()
    assert await stored_events(server, "FLOOD201") == ["DataTransfer"] * 2
    assert await server.staff.variables("FLOOD201") == []
    (tx,) = await server.staff.transactions(cp_id="FLOOD201")
    assert tx.energy_wh == 11_000
    counted = await metrics(server)
    dropped = 'csms_kept_bytes_total{action="DataTransfer",outcome="dropped"}'
    assert counted[dropped] == 8 * size
    assert counted['csms_kept_messages_total{action="NotifyReport",outcome="dropped"}'] == 1


# --- reading frames -------------------------------------------------------------------


async def test_a_junk_flood_is_read_at_the_message_rate_and_others_are_served(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpp={"message_rate": 50.0, "message_burst": 10})
    calm = await open_booted(server.url, "CALM16", "1.6")
    junk = await open_raw(server.url, "JUNK16")
    with capture_logs() as logs:
        started = time.monotonic()
        for n in range(60):
            await junk.send(f"not json {n}")

        async def heartbeats() -> list[float]:
            took = []
            for _ in range(5):
                t = time.monotonic()
                assert (await call(calm, "Heartbeat", {}))[0] == 3
                took.append(time.monotonic() - t)
                await asyncio.sleep(0.1)
            return took

        waits = await heartbeats()
        replies = [orjson.loads(await asyncio.wait_for(junk.recv(), 10)) for _ in range(60)]
        elapsed = time.monotonic() - started
    # Every frame is answered (nothing refused), 50 of them at 50 a second at most.
    assert [r[:3] for r in replies] == [[4, "-1", "FormationViolation"]] * 60
    assert elapsed >= 0.9
    assert max(waits) < 0.5
    throttled = events_named(logs, "charger_throttled")
    assert [e["charge_point_id"] for e in throttled] == ["JUNK16"]
    counted = await metrics(server)
    # 50 frames beyond the burst wait at most; fewer when a loaded machine reads them slower
    # than the rate anyway (the elapsed time above shows the rate held).
    assert counted["csms_ocpp_throttled_total"] >= 25
    await junk.close()
    await calm.close()


# --- charge points that register themselves ---------------------------------------------


async def test_ids_that_only_connect_leave_no_rows_and_must_boot_first(server: Running) -> None:
    async def churn(index: int) -> None:
        ws = await open_raw(server.url, f"CHURN-{index:04d}")
        await ws.close()

    for batch in range(10):
        await asyncio.gather(*(churn(batch * 50 + i) for i in range(50)))
    assert await charge_point_ids(server) == set()
    ws = await open_raw(server.url, "EARLY")
    refused = await call(ws, "Heartbeat", {})
    assert refused[2] == "SecurityError" and "BootNotification" in refused[3]
    assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    await ws.close()
    assert await charge_point_ids(server) == {"EARLY"}
    assert (await server.staff.charger("EARLY")).charger.auto_registered


async def test_churned_booting_ids_are_bounded_per_hour(start_server: StartServer) -> None:
    clock = MovingClock()
    server = await start_server(
        clock=clock, ocpp={"auto_register_per_hour": 20, "auto_register_limit": 0}
    )
    await server.staff.add_charger("KNOWN")
    outcomes: list[str] = []

    async def churn(index: int) -> None:
        try:
            ws = await open_raw(server.url, f"BOOTER-{index:04d}")
        except InvalidStatus as exc:
            outcomes.append(str(exc.response.status_code))
            return
        outcomes.append((await call(ws, "BootNotification", BOOT))[2]["status"])
        await ws.close()

    with capture_logs() as logs:
        for batch in range(8):
            await asyncio.gather(*(churn(batch * 50 + i) for i in range(50)))
    assert len(outcomes) == 400
    assert outcomes.count("Accepted") == 20
    # Refused at the handshake once the hour's allowance is used (or Rejected at the boot
    # when it ran out while they connected), none stored.
    assert outcomes.count("403") + outcomes.count("Rejected") == 380
    assert outcomes.count("403") > 0
    ids = await charge_point_ids(server)
    assert len(ids) == 21 and "KNOWN" in ids
    refusals = events_named(logs, "unknown_charger_refused")
    assert len(refusals) == 1 and refusals[0]["reason"] == "auto-registration rate reached"
    counted = await metrics(server)
    assert counted['csms_chargers_refused_total{reason="auto-registration rate reached"}'] == 380
    # A charger staff added is never refused; an unknown one is again after a while.
    ws = await open_booted(server.url, "KNOWN", "1.6")
    await ws.close()
    clock.offset += timedelta(minutes=3)  # one registration's worth of the hour
    ws = await open_booted(server.url, "LATECOMER", "2.0.1")
    await ws.close()
    assert len(await charge_point_ids(server)) == 22


async def test_auto_registered_chargers_waiting_for_staff_are_bounded(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpp={"auto_register_per_hour": 0, "auto_register_limit": 2})
    for cp_id in ("AUTO-1", "AUTO-2"):
        await (await open_booted(server.url, cp_id, "1.6")).close()
    with pytest.raises(InvalidStatus) as refused:
        await open_raw(server.url, "AUTO-3", subprotocols=V201)
    assert refused.value.response.status_code == 403
    assert b"auto-registration limit reached" in refused.value.response.body
    # Staff act on one of them: it no longer waits, and a new unknown id may register.
    accepted = await server.staff.update_charger("AUTO-1", registration=RegistrationStatus.ACCEPTED)
    assert not accepted.auto_registered

    async def registers() -> bool:
        try:
            ws = await open_raw(server.url, "AUTO-3", subprotocols=V201)
        except InvalidStatus:
            return False
        reply = await call(ws, "BootNotification", BOOT201)
        await ws.close()
        return bool(reply[2]["status"] == "Accepted")

    assert await until(registers, "a registration after staff acted on one", 10.0)
    assert await charge_point_ids(server) == {"AUTO-1", "AUTO-2", "AUTO-3"}


async def test_boots_racing_for_the_last_registration_get_one_row(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpp={"auto_register_per_hour": 1, "auto_register_limit": 0})
    first = await open_raw(server.url, "RACE-A")
    second = await open_raw(server.url, "RACE-B")
    assert (await call(first, "BootNotification", BOOT))[2]["status"] == "Accepted"
    late = await call(second, "BootNotification", BOOT)
    assert late[2]["status"] == "Rejected" and 0 < late[2]["interval"] <= 60
    assert (await call(second, "Heartbeat", {}))[2] == "SecurityError"
    await first.close()
    await second.close()
    assert await charge_point_ids(server) == {"RACE-A"}
