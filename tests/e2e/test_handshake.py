"""Handshake: path, subprotocols, HTTP Basic auth, connection replacement."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.core.charger import RegistrationStatus
from tests.e2e.conftest import Running, StartServer
from tests.e2e.logs import captured_logs
from tests.e2e.raw import BOOT, basic, call, open_raw
from tests.e2e.sim import until


async def test_ocpp16_is_negotiated(server: Running) -> None:
    ws = await open_raw(server.url, "CP1")
    assert ws.subprotocol == "ocpp1.6"
    reply = await call(ws, "BootNotification", BOOT)
    assert reply[2]["status"] == "Accepted"
    await ws.close()


async def test_percent_encoded_id_is_decoded(server: Running) -> None:
    ws = await open_raw(server.url, "CP%2A%3A%7C-X")
    await call(ws, "BootNotification", BOOT)
    await ws.close()
    detail = await server.staff.charger("CP*:|-X")
    assert detail.charger.vendor == "TestVendor"


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        # Not UTF-8: both once decoded to the same two replacement characters (one charger).
        ("%FF%FE", "the charge point id is not valid UTF-8"),
        ("%C0%AF", "the charge point id is not valid UTF-8"),
        ("CP%00NUL", "the charge point id contains '\\x00'"),
        ("CP%7B1%7D", "the charge point id contains '{'"),
        ("CP%20X", "the charge point id contains ' '"),
        ("CP%2F1", "the charge point id contains '/'"),
        ("CP%C3%A9", "the charge point id contains '\\xe9'"),
        ("%25", "the charge point id contains '%'"),
        ("X" * 49, "the charge point id is longer than 48 characters"),
    ],
)
async def test_ids_outside_the_alphabet_are_refused_at_the_handshake(
    server: Running, segment: str, reason: str
) -> None:
    with captured_logs() as logs, pytest.raises(InvalidStatus) as info:
        await open_raw(server.url, segment)
    assert info.value.response.status_code == 400
    assert reason in info.value.response.body.decode()
    (refused,) = logs.named("handshake_refused")
    assert refused["reason"].startswith(reason)
    # The log shows the path as sent (escaped), never a raw NUL or undecodable byte.
    assert refused["path"] == f"/ocpp/{segment}" and refused["path"].isascii()
    assert logs.tracebacks() == []
    assert await server.staff.chargers() == []


async def test_every_character_of_the_alphabet_connects(server: Running) -> None:
    cp_id = "az-AZ_09*=:+|@." + "x" * 33  # 48 characters
    ws = await open_raw(server.url, quote(cp_id, safe=""))
    assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
    await ws.close()
    assert [o.charger.id for o in await server.staff.chargers()] == [cp_id]


async def test_basic_auth_with_a_colon_in_the_id(server: Running) -> None:
    # identifierString allows ":"; the user of a Basic header ends at the first colon,
    # so the header is read as the id from the URL followed by ":" and the password.
    await server.staff.add_charger("SITE:7", password="s3cret-pass")
    ws = await open_raw(server.url, "SITE:7", headers=basic("SITE:7", "s3cret-pass"))
    assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
    await ws.close()
    with pytest.raises(InvalidStatus) as info:
        await open_raw(server.url, "SITE:7", headers=basic("SITE:7", "wrong-pass"))
    assert info.value.response.status_code == 401


async def test_unsupported_subprotocol_is_refused(server: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_raw(server.url, "CP1", subprotocols=["ocpp1.2", "wamp"])
    assert info.value.response.status_code == 400


async def test_wrong_path_is_refused(server: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_raw(server.url.replace("/ocpp", "/other"), "CP1")
    assert info.value.response.status_code == 404


async def test_missing_subprotocol_assumed_16_or_refused(start_server: StartServer) -> None:
    lenient = await start_server()
    ws = await open_raw(lenient.url, "CP1", subprotocols=[])
    assert ws.subprotocol is None
    assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
    await ws.close()
    await lenient.stop()
    strict = await start_server(ocpp={"no_subprotocol": "refuse"})
    with pytest.raises(InvalidStatus) as info:
        await open_raw(strict.url, "CP1", subprotocols=[])
    assert info.value.response.status_code == 400


async def test_basic_auth_accepts_the_right_password_only(server: Running) -> None:
    await server.staff.add_charger("CP-AUTH", password="s3cret-pass")
    for headers in (None, basic("CP-AUTH", "wrong-pass"), basic("OTHER", "s3cret-pass")):
        with pytest.raises(InvalidStatus) as info:
            await open_raw(server.url, "CP-AUTH", headers=headers)
        assert info.value.response.status_code == 401
        assert "Basic" in info.value.response.headers["WWW-Authenticate"]
    for _ in range(2):  # the second time is served from the verification cache
        ws = await open_raw(server.url, "CP-AUTH", headers=basic("CP-AUTH", "s3cret-pass"))
        assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
        await ws.close()


async def test_require_auth_refuses_chargers_without_password(start_server: StartServer) -> None:
    server = await start_server(ocpp={"require_auth": True})
    with pytest.raises(InvalidStatus) as info:
        await open_raw(server.url, "NEW1", headers=basic("NEW1", "anything-at-all"))
    assert info.value.response.status_code == 401


async def test_new_connection_replaces_the_old_one(server: Running) -> None:
    first = await open_raw(server.url, "CP1")
    await call(first, "BootNotification", BOOT)
    second = await open_raw(server.url, "CP1")
    # The old socket is closed by the server ...
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(first.recv(), 5)
    # ... and the new one works, without a new boot, and the charger is shown connected.
    reply = await call(second, "Heartbeat", {})
    assert reply[0] == 3
    assert len(server.app.ocpp.registry) == 1
    detail = await server.staff.charger("CP1")
    assert detail.charger.connected
    await second.close()


async def test_a_charger_back_within_one_batch_behind_another_stays_connected(
    start_server: StartServer,
) -> None:
    # A wide commit window: A's connection, B's drop and B's return go into one batch.
    server = await start_server(database={"commit_delay_ms": 500.0})
    first_a = await open_raw(server.url, "CP-A")
    await call(first_a, "BootNotification", BOOT)
    await first_a.close()
    await until(lambda: _offline(server, "CP-A"), "CP-A offline")
    old_b = await open_raw(server.url, "CP-B")
    await call(old_b, "BootNotification", BOOT)
    writer = server.app.db.stats
    batches = writer.batches
    a = await open_raw(server.url, "CP-A")  # known: its connection is written at once
    await old_b.close()
    # The old socket is gone (its disconnect submitted) before the new one opens.
    await until(lambda: _true(server.app.ocpp.registry.get("CP-B") is None), "CP-B's socket closed")
    new_b = await open_raw(server.url, "CP-B")
    assert (await call(new_b, "Heartbeat", {}))[0] == 3
    # One batch for A's connection and B's drop and return, one for the heartbeat.
    assert writer.batches - batches == 2
    detail = await server.staff.charger("CP-B")
    assert detail.charger.connected
    assert (await server.staff.charger("CP-A")).charger.connected
    await a.close()
    await new_b.close()


async def _offline(server: Running, cp_id: str) -> bool:
    return not (await server.staff.charger(cp_id)).charger.connected


async def _true(value: bool) -> bool:
    return value


async def test_pending_registration_until_staff_accept(start_server: StartServer) -> None:
    server = await start_server(ocpp={"registration": "pending"})
    ws = await open_raw(server.url, "NEWCP")
    boot = await call(ws, "BootNotification", BOOT)
    assert boot[2]["status"] == "Pending"
    assert 0 < boot[2]["interval"] <= 60
    # While Pending only BootNotification is allowed.
    refused = await call(ws, "Heartbeat", {})
    assert refused[:3] == [4, refused[1], "SecurityError"]
    await server.staff.update_charger("NEWCP", registration=RegistrationStatus.ACCEPTED)
    assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    await ws.close()


async def test_rejected_registration(start_server: StartServer) -> None:
    server = await start_server(ocpp={"registration": "reject"})
    ws = await open_raw(server.url, "STRANGER")
    boot = await call(ws, "BootNotification", BOOT)
    assert boot[2]["status"] == "Rejected"
    refused = await call(
        ws, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    )
    assert refused[2] == "SecurityError"
    await ws.close()
    overview = {o.charger.id: o for o in await server.staff.chargers()}
    assert overview["STRANGER"].charger.registration is RegistrationStatus.REJECTED
    assert overview["STRANGER"].connectors == ()


async def test_idle_connection_is_closed(start_server: StartServer) -> None:
    server = await start_server(ocpp={"idle_timeout": 0.4})
    ws = await open_raw(server.url, "QUIET")
    await call(ws, "BootNotification", BOOT)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1001


async def test_ping_keeps_a_live_charger_connected(start_server: StartServer) -> None:
    server = await start_server(ocpp={"ping_interval": 0.2, "ping_timeout": 1})
    ws = await open_raw(server.url, "PINGED")
    await call(ws, "BootNotification", BOOT)
    await asyncio.sleep(1.0)  # several pings answered by the client library
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    await ws.close()


async def test_simultaneous_connections_leave_exactly_one(server: Running) -> None:
    await server.staff.add_charger("RACE")  # known: it may send more than a boot at once
    sockets = await asyncio.gather(*(open_raw(server.url, "RACE") for _ in range(3)))
    await asyncio.sleep(0.5)
    assert len(server.app.ocpp.registry) == 1
    alive = []
    for ws in sockets:
        try:
            await call(ws, "Heartbeat", {})
            alive.append(ws)
        except (ConnectionClosed, TimeoutError):
            pass
    assert len(alive) == 1
    assert (await server.staff.charger("RACE")).charger.connected
    await alive[0].close()
