"""How commands fail, through the CLI and the operator API: offline charger, timeout,
CALLERROR, Rejected, late answers, commands beside the charger's own CALLs, the queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import ClientConnection

from csms.core.authorization import Token, TokenStatus
from tests.e2e.cli import csms, remote
from tests.e2e.conftest import Running, StartServer
from tests.e2e.raw import BOOT, BOOT201, call, open_raw
from tests.e2e.v201 import V201, tx_event


async def _booted(server: Running, cp_id: str) -> ClientConnection:
    ws = await open_raw(server.url, cp_id)
    reply = await call(ws, "BootNotification", BOOT)
    assert reply[2]["status"] == "Accepted"
    return ws


async def _next_call(ws: ClientConnection, timeout: float = 10.0) -> list[Any]:
    frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert frame[0] == 2, frame
    return list(frame)


async def _answer(ws: ClientConnection, message_id: str, payload: dict[str, Any]) -> None:
    await ws.send(orjson.dumps([3, message_id, payload]).decode())


async def test_not_connected_fails_at_once(server: Running) -> None:
    await server.staff.add_charger("OFFLINE-1")
    ran = await remote(server, "reset", "OFFLINE-1")
    assert ran.code == 3
    body = ran.json()
    assert body["outcome"] == "not_connected" and body["message"] == "not connected"
    human = await csms(server, "remote", "reset", "NOBODY")
    assert human.code == 3
    assert human.err == "error: NOBODY reset: not connected (unknown charger 'NOBODY')\n"


async def test_timeout_then_late_answer_does_not_confuse_the_next_command(
    server: Running,
) -> None:
    ws = await _booted(server, "SLOW-1")
    first = asyncio.create_task(remote(server, "reset", "SLOW-1", "--timeout", "1"))
    reset = await _next_call(ws)
    assert reset[2] == "Reset" and reset[3] == {"type": "Soft"}
    ran = await first
    assert ran.code == 4
    assert ran.json()["outcome"] == "timed_out"
    assert "timed out" in ran.json()["message"]
    # The late answer arrives after the timeout; then the next command gets its own answer.
    await _answer(ws, reset[1], {"status": "Rejected"})
    second = asyncio.create_task(remote(server, "clear-cache", "SLOW-1"))
    clear = await _next_call(ws)
    assert clear[2] == "ClearCache" and clear[1] != reset[1]
    await _answer(ws, clear[1], {"status": "Accepted"})
    ran = await second
    assert ran.code == 0, ran.err
    assert ran.json()["status"] == "Accepted"
    # The connection survived the stray answer.
    reply = await call(ws, "Heartbeat", {})
    assert "currentTime" in reply[2]
    await ws.close()


async def test_call_error_and_rejected_are_reported(server: Running) -> None:
    ws = await _booted(server, "ERR-1")
    pending = asyncio.create_task(remote(server, "unlock", "ERR-1", "--evse", "1"))
    frame = await _next_call(ws)
    assert frame[2:] == ["UnlockConnector", {"connectorId": 1}]
    await ws.send(orjson.dumps([4, frame[1], "NotSupported", "no lock here", {}]).decode())
    ran = await pending
    assert ran.code == 5
    assert ran.json()["outcome"] == "call_error"
    assert ran.json()["message"] == "CALLERROR NotSupported: no lock here"

    pending = asyncio.create_task(csms(server, "remote", "clear-cache", "ERR-1"))
    frame = await _next_call(ws)
    await _answer(ws, frame[1], {"status": "Rejected"})
    ran = await pending
    assert ran.code == 1
    assert "ERR-1 clear-cache: Rejected" in ran.err
    await ws.close()


async def test_command_beside_the_chargers_own_calls(server: Running) -> None:
    """Our CALL neither waits for nor blocks the charger's CALLs, in both directions."""
    ws = await _booted(server, "BUSY-1")
    # The charger's CALL is in flight (its answer unread) when our command goes out.
    await ws.send(orjson.dumps([2, "own-1", "Heartbeat", {}]).decode())
    pending = asyncio.create_task(remote(server, "trigger", "BUSY-1", "Heartbeat"))
    seen: dict[str, Any] = {}
    while "call" not in seen:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame[0] == 3:
            seen["own"] = frame
        else:
            seen["call"] = frame
    ours = seen["call"]
    assert ours[2] == "TriggerMessage"
    # While our CALL waits for its answer, the charger keeps talking and gets answers.
    for n in range(3):
        reply = await call(ws, "Heartbeat", {})
        assert reply[0] == 3 and "currentTime" in reply[2], (n, reply)
    await _answer(ws, ours[1], {"status": "Accepted"})
    ran = await pending
    assert ran.code == 0 and ran.json()["status"] == "Accepted"
    if "own" not in seen:
        own = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        seen["own"] = own
    assert seen["own"][1] == "own-1" and "currentTime" in seen["own"][2]
    await ws.close()


async def test_one_call_in_flight_per_charger(server: Running) -> None:
    ws = await _booted(server, "QUEUE-1")
    first = asyncio.create_task(remote(server, "clear-cache", "QUEUE-1"))
    frame1 = await _next_call(ws)
    second = asyncio.create_task(remote(server, "reset", "QUEUE-1", "--hard"))
    # Nothing else arrives while the first CALL is unanswered.
    try:
        early = await asyncio.wait_for(ws.recv(), 2.0)
    except TimeoutError:
        early = None
    assert early is None, early
    await _answer(ws, frame1[1], {"status": "Accepted"})
    frame2 = await _next_call(ws)
    assert frame2[2:] == ["Reset", {"type": "Hard"}]
    await _answer(ws, frame2[1], {"status": "Accepted"})
    assert (await first).code == 0
    assert (await second).code == 0
    await ws.close()


async def test_refused_before_sending_and_audit_log(server: Running) -> None:
    await server.staff.add_token(Token("GOOD", TokenStatus.ACCEPTED))
    await server.staff.add_token(Token("BAD", TokenStatus.BLOCKED))
    ws = await _booted(server, "AUDIT-1")
    ran = await remote(server, "stop", "AUDIT-1", "--transaction", "999")
    assert ran.code == 1
    assert ran.json()["outcome"] == "invalid"
    assert ran.json()["message"] == "no transaction 999"
    ran = await remote(server, "start", "AUDIT-1", "--tag", "BAD")
    assert ran.code == 1 and ran.json()["message"] == "tag 'BAD' is Blocked"
    ran = await remote(server, "trigger", "AUDIT-1", "TransactionEvent")
    assert ran.code == 1 and "cannot be triggered on an OCPP 1.6 charger" in ran.json()["message"]
    listed = await csms(server, "commands", "list", "--charger", "AUDIT-1", "--json")
    assert listed.code == 0, listed.err
    entries = listed.json()
    assert [e["command"] for e in entries] == ["trigger", "start", "stop"]
    assert all(e["source"] == "cli" and e["outcome"] == "invalid" for e in entries)
    assert entries[1]["params"] == {"tag": "BAD"}
    human = await csms(server, "commands", "list")
    assert "AUDIT-1" in human.out and "no transaction 999" in human.out
    await ws.close()


async def test_api_token_health_and_metrics(server: Running) -> None:
    base = server.api_url
    ws = await _booted(server, "API-1")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/health") as response:
            assert response.status == 200
            health = await response.json()
        assert health["status"] == "ok" and health["database"] == "ok"
        assert health["chargers_connected"] == 1
        async with http.post(f"{base}/api/chargers/API-1/remote/reset") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        auth = {"Authorization": "Bearer test-token"}
        async with http.post(
            f"{base}/api/chargers/API-1/remote/reset", headers=auth, data=b"{not json"
        ) as response:
            assert response.status == 400
            assert "not valid JSON" in (await response.json())["error"]
        async with http.post(
            f"{base}/api/chargers/API-1/remote/teleport", headers=auth, json={}
        ) as response:
            assert response.status == 404
            assert "profile/set" in (await response.json())["error"]
        async with http.post(
            f"{base}/api/chargers/API-1/remote/reset", headers=auth, json={"hard": "yes"}
        ) as response:
            assert response.status == 400
            body = await response.json()
            assert body["outcome"] == "invalid" and "'hard'" in body["message"]

        async def answer_one() -> None:
            frame = await _next_call(ws)
            await _answer(ws, frame[1], {"status": "Accepted"})

        answering = asyncio.create_task(answer_one())
        async with http.post(
            f"{base}/api/chargers/API-1/remote/reset", headers=auth, json={"hard": True}
        ) as response:
            assert response.status == 200
            body = await response.json()
        await answering
        assert body["ok"] is True and body["action"] == "Reset"
        async with http.get(f"{base}/api/commands?charger=API-1", headers=auth) as response:
            log = await response.json()
        assert log[0]["source"] == "api" and log[0]["outcome"] == "accepted"
        async with http.get(f"{base}/metrics", headers=auth) as response:
            assert response.status == 200
            text = await response.text()
        async with http.get(f"{base}/api/openapi.json", headers=auth) as response:
            spec = await response.json()
    assert 'csms_chargers_connected{ocpp_version="1.6"} 1' in text
    boots = 'csms_ocpp_messages_total{direction="in",action="BootNotification",type="call"} 1'
    assert boots in text
    assert 'csms_ocpp_messages_total{direction="out",action="Reset",type="call"} 1' in text
    assert 'csms_commands_total{command="reset",outcome="accepted"} 1' in text
    assert "csms_transactions_active 0" in text
    assert 'csms_ocpp_call_duration_seconds_count{action="Reset"} 1' in text
    assert "/api/chargers/{charger}/remote/profile/set" in spec["paths"]
    await ws.close()


async def test_queued_command_times_out_without_being_sent(server: Running) -> None:
    ws = await _booted(server, "QUEUE-2")
    first = asyncio.create_task(remote(server, "clear-cache", "QUEUE-2", "--timeout", "1.5"))
    await _next_call(ws)  # never answered
    await asyncio.sleep(0.2)
    second = await remote(server, "reset", "QUEUE-2", "--timeout", "0.5")
    assert second.code == 4
    assert "not sent, an earlier command" in second.json()["message"]
    assert (await first).code == 4
    try:
        stray = await asyncio.wait_for(ws.recv(), 0.5)
    except TimeoutError:
        stray = None
    assert stray is None  # the queued reset never went out
    await ws.close()


async def test_scheduled_reboot_required_and_api_option(server: Running) -> None:
    ws = await _booted(server, "NOTES-1")
    pending = asyncio.create_task(
        csms(
            server,
            "remote",
            "availability",
            "NOTES-1",
            "inoperative",
            "--api",
            server.api_url,
        )
    )
    frame = await _next_call(ws)
    assert frame[2:] == ["ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}]
    await _answer(ws, frame[1], {"status": "Scheduled"})
    ran = await pending
    assert ran.code == 0
    assert ran.out == (
        "NOTES-1 availability: Scheduled: takes effect when the running transaction ends\n"
    )
    pending = asyncio.create_task(
        remote(server, "config-set", "NOTES-1", "WebSocketPingInterval", "0")
    )
    frame = await _next_call(ws)
    await _answer(ws, frame[1], {"status": "RebootRequired"})
    ran = await pending
    assert ran.code == 0
    assert ran.json()["message"] == "RebootRequired: the new value applies after a reboot"
    wrong = await csms(server, "remote", "reset", "NOTES-1", "--api", "http://127.0.0.1:9")
    assert wrong.code == 1 and "cannot reach the CSMS API at http://127.0.0.1:9" in wrong.err
    await ws.close()


async def test_pending_and_rejected_chargers_get_only_what_ocpp_allows(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpp={"registration": "pending"})
    ws = await open_raw(server.url, "PEND-1")
    reply = await call(ws, "BootNotification", BOOT)
    assert reply[2]["status"] == "Pending"
    ran = await remote(server, "start", "PEND-1", "--tag", "X")
    assert ran.code == 1 and ran.json()["message"] == "the charger's registration is Pending"
    pending = asyncio.create_task(remote(server, "config-get", "PEND-1", "HeartbeatInterval"))
    frame = await _next_call(ws)
    assert frame[2] == "GetConfiguration"
    await _answer(
        ws,
        frame[1],
        {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]},
    )
    assert (await pending).code == 0
    await ws.close()


async def test_a_reserved_connector_starts_only_for_its_tag(server: Running) -> None:
    for uid in ("OWNER", "OTHER"):
        await server.staff.add_token(Token(uid, TokenStatus.ACCEPTED))
    ws = await _booted(server, "RES-1")
    pending = asyncio.create_task(
        remote(
            server,
            "reserve",
            "RES-1",
            "--tag",
            "OWNER",
            "--evse",
            "1",
            "--expires",
            "2099-01-01T00:00:00Z",
        )
    )
    frame = await _next_call(ws)
    assert frame[2] == "ReserveNow"
    reservation_id = frame[3]["reservationId"]
    assert frame[3]["connectorId"] == 1 and frame[3]["idTag"] == "OWNER"
    await _answer(ws, frame[1], {"status": "Accepted"})
    assert (await pending).json()["data"]["reservation_id"] == reservation_id
    now = "2026-11-23T12:00:00Z"
    # A charger that ignores the reservation: the CSMS says Invalid for another tag ...
    other = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "OTHER", "meterStart": 0, "timestamp": now},
    )
    assert other[2]["idTagInfo"]["status"] == "Invalid"
    # ... and Accepted for its own tag, which uses the reservation.
    mine = await call(
        ws,
        "StartTransaction",
        {
            "connectorId": 1,
            "idTag": "owner",
            "meterStart": 0,
            "timestamp": now,
            "reservationId": reservation_id,
        },
    )
    assert mine[2]["idTagInfo"]["status"] == "Accepted"
    tx = (await server.staff.transaction(mine[2]["transactionId"])).transaction
    assert tx.reservation_id == reservation_id
    shown = (await csms(server, "chargers", "show", "RES-1", "--json")).json()
    assert shown["reservations"] == []
    await ws.close()


async def test_a_reserved_evse_on_201(server: Running) -> None:
    for uid in ("OWNER", "OTHER"):
        await server.staff.add_token(Token(uid, TokenStatus.ACCEPTED))
    ws = await open_raw(server.url, "RES-2", subprotocols=V201)
    await call(ws, "BootNotification", BOOT201)
    pending = asyncio.create_task(
        remote(
            server,
            "reserve",
            "RES-2",
            "--tag",
            "OWNER",
            "--evse",
            "1",
            "--expires",
            "2099-01-01T00:00:00Z",
        )
    )
    while True:  # the base report request comes first
        frame = await _next_call(ws)
        if frame[2] == "ReserveNow":
            break
        await _answer(ws, frame[1], {"status": "Accepted"})
    await _answer(ws, frame[1], {"status": "Accepted"})
    reservation_id = (await pending).json()["data"]["reservation_id"]
    start = datetime.now(UTC)
    other = await call(
        ws,
        "TransactionEvent",
        tx_event("Started", "t-other", 0, start, trigger="Authorized", token="OTHER"),
    )
    assert other[2]["idTokenInfo"]["status"] == "NotAtThisTime"
    # The station reports the reservation it ended itself.
    await call(
        ws,
        "ReservationStatusUpdate",
        {"reservationId": reservation_id, "reservationUpdateStatus": "Removed"},
    )
    shown = (await csms(server, "chargers", "show", "RES-2", "--json")).json()
    assert shown["reservations"] == []
    await ws.close()
