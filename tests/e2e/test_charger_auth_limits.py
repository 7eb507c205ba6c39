"""Abuse limits at the OCPP handshake: back-off after wrong charger passwords (per charger
id and per source address, answered 429 without a password check), and a cap on the
connections one address may hold."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.typing import Subprotocol

from tests.e2e.conftest import Running, StartServer
from tests.e2e.logs import captured_logs
from tests.e2e.raw import BOOT, basic, call, open_raw
from tests.e2e.test_tls import make_pki, tls_sections

# Small numbers so that the test waits out a back-off in well under a second.
LIMITS = {"auth_free_failures": 3, "auth_backoff_cap_seconds": 0.5}


async def _status(server: Running, cp_id: str, password: str) -> tuple[int, str | None]:
    """The HTTP status of a handshake (101: in, then closed) and its Retry-After."""
    try:
        ws = await open_raw(server.url, cp_id, headers=basic(cp_id, password))
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.headers.get("Retry-After")
    await ws.close()
    return 101, None


async def _metrics(server: Running) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        return await response.text()


async def test_wrong_passwords_are_answered_429_then_the_right_one_gets_in(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpp=LIMITS)
    await server.staff.add_charger("CP-GUESS", password="right-pass")
    with captured_logs() as logs:
        answers = [await _status(server, "CP-GUESS", f"guess-{n}") for n in range(30)]
        statuses = [status for status, _ in answers]
        # Three free failures and the fourth that starts the back-off: 401 each.
        assert statuses[:4] == [401, 401, 401, 401]
        limited = [after for status, after in answers if status == 429]
        assert len(limited) >= 10
        assert set(limited) == {"1"}
        # During the back-off even the right password is not looked at.
        assert await _status(server, "CP-GUESS", "right-pass") == (429, "1")
        await asyncio.sleep(0.6)
        ws = await open_raw(server.url, "CP-GUESS", headers=basic("CP-GUESS", "right-pass"))
        assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
        await ws.close()
    wrong = statuses.count(401)
    assert wrong + statuses.count(429) == 30
    # Logged once per key, however many windows followed.
    events = logs.named("auth_failures_limited")
    assert sorted(e["key"] for e in events) == ["addr:127.0.0.1", "cp:CP-GUESS"]
    assert all(e["listener"] == "ocpp" and e["charger_id"] == "CP-GUESS" for e in events)
    assert all(e["failures"] == 4 for e in events)
    metrics = await _metrics(server)
    assert f'csms_auth_failures_total{{listener="ocpp"}} {wrong}\n' in metrics
    assert f'csms_auth_limited_total{{listener="ocpp"}} {len(limited) + 1}\n' in metrics


async def test_success_resets_the_charger_id_but_not_the_address(
    start_server: StartServer,
) -> None:
    server = await start_server(ocpp=LIMITS)
    await server.staff.add_charger("CP-R", password="right-pass")
    for n in range(4):
        assert (await _status(server, "CP-R", f"bad-{n}"))[0] == 401
    await asyncio.sleep(0.6)
    assert (await _status(server, "CP-R", "right-pass"))[0] == 101
    app_failures = server.app.ocpp.failures
    assert app_failures.failures("cp:CP-R") == 0
    assert app_failures.failures("addr:127.0.0.1") == 4
    # The address is still over its free failures: its next wrong guess starts a back-off.
    assert (await _status(server, "CP-R", "bad-again"))[0] == 401
    assert (await _status(server, "CP-R", "right-pass"))[0] == 429


async def test_a_charger_without_password_is_not_counted(start_server: StartServer) -> None:
    server = await start_server(ocpp={**LIMITS, "require_auth": True})
    await server.staff.add_charger("CP-NOPASS")
    for _ in range(8):
        assert (await _status(server, "CP-NOPASS", "whatever"))[0] == 401
    assert server.app.ocpp.failures.failures("cp:CP-NOPASS") == 0
    # An unknown id is a guess like any other (and answered the same way).
    assert (await _status(server, "CP-UNKNOWN", "whatever"))[0] == 401
    assert server.app.ocpp.failures.failures("cp:CP-UNKNOWN") == 1


async def test_connections_per_address_are_capped(start_server: StartServer) -> None:
    server = await start_server(ocpp={"max_connections_per_address": 2})
    first = await open_raw(server.url, "CP-N1")
    second = await open_raw(server.url, "CP-N2")
    with captured_logs() as logs, pytest.raises(InvalidStatus) as info:
        await open_raw(server.url, "CP-N3")
    assert info.value.response.status_code == 503
    (refused,) = logs.named("connection_refused")
    assert refused["reason"] == "too many connections from this address"
    assert refused["limit"] == 2
    await first.close()
    for _ in range(50):  # the count drops once the server saw the close
        if server.app.ocpp.connections_from("127.0.0.1") == 1:
            break
        await asyncio.sleep(0.02)
    third = await open_raw(server.url, "CP-N3")
    assert (await call(third, "BootNotification", BOOT))[2]["status"] == "Accepted"
    await third.close()
    await second.close()


async def test_profile_3_without_its_certificate_backs_off_too(
    start_server: StartServer, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    sections = tls_sections(pki)
    sections["ocpp"] |= LIMITS
    server = await start_server(**sections)
    await server.staff.add_charger("CP3", security_profile=3)
    trust = ssl.create_default_context(cafile=pki.server_ca)
    trust.check_hostname = False
    url = f"wss://127.0.0.1:{server.app.ocpp.tls_port}/ocpp/CP3"

    async def without_certificate() -> int:
        with pytest.raises(InvalidStatus) as info:
            await connect(url, ssl=trust, subprotocols=[Subprotocol("ocpp1.6")])
        return info.value.response.status_code

    statuses = [await without_certificate() for _ in range(6)]
    assert statuses == [403, 403, 403, 403, 429, 429]
    metrics = await _metrics(server)
    assert 'csms_auth_failures_total{listener="ocpp"} 4\n' in metrics
    assert 'csms_auth_limited_total{listener="ocpp"} 2\n' in metrics


async def test_refused_client_certificates_are_logged_counted_and_back_off(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A certificate from a foreign CA or an expired one fails inside the TLS handshake,
    before any HTTP: the server still logs it, counts it and backs the address off."""
    pki = make_pki(tmp_path)
    sections = tls_sections(pki)
    sections["ocpp"] |= LIMITS
    server = await start_server(**sections)
    await server.staff.add_charger("CP3", security_profile=3)
    url = f"wss://127.0.0.1:{server.app.ocpp.tls_port}/ocpp/CP3"

    def client(pair: tuple[str, str]) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=pki.server_ca)
        context.check_hostname = False
        context.load_cert_chain(*pair)
        return context

    async def attempt(pair: tuple[str, str]) -> int | str:
        try:
            ws = await connect(url, ssl=client(pair), subprotocols=[Subprotocol("ocpp1.6")])
        except InvalidStatus as exc:
            return exc.response.status_code
        except (OSError, InvalidMessage) as exc:
            # The TLS handshake failed: no HTTP at all (under TLS 1.3 the client learns it
            # when it waits for the upgrade's answer).
            return type(exc).__name__
        await ws.close()
        return 101

    with captured_logs() as logs:
        refused = [await attempt(pki.foreign), await attempt(pki.expired)]
        refused += [await attempt(pki.foreign) for _ in range(3)]
        # Five refused certificates (three are free): the address now waits, and the
        # right certificate from there is answered 429 without being looked at.
        limited = await attempt(pki.cp3)
        await asyncio.sleep(0.6)  # the back-off (cap 0.5 s) is over
        after = await attempt(pki.cp3)
    assert all(not isinstance(r, int) for r in refused), refused
    assert limited == 429
    assert after == 101
    reasons = [e["reason"] for e in logs.named("tls_handshake_refused")]
    # Each is logged until the back-off starts (the fourth); the fifth came during it.
    assert reasons == [
        "unable to get local issuer certificate",
        "certificate has expired",
        "unable to get local issuer certificate",
        "unable to get local issuer certificate",
    ], reasons
    [limiting] = logs.named("auth_failures_limited")
    assert limiting["key"] == "addr:127.0.0.1" and limiting["failures"] == 4
    metrics = await _metrics(server)
    assert 'csms_tls_handshake_failures_total{listener="ocpp",kind="certificate"} 5\n' in metrics
    assert 'csms_auth_failures_total{listener="ocpp"} 5\n' in metrics
    assert 'csms_auth_limited_total{listener="ocpp"} 1\n' in metrics


async def test_a_client_without_tls_is_counted_not_blamed(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Plain HTTP (or anything else that is not TLS) on the wss:// port fails the
    handshake: counted as "other", not as a failed authentication; the port keeps
    serving."""
    pki = make_pki(tmp_path)
    server = await start_server(**tls_sections(pki))
    port = server.app.ocpp.tls_port
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ocpp/CP1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, no HTTP answer
        writer.close()
    metrics = await _metrics(server)
    assert 'csms_tls_handshake_failures_total{listener="ocpp",kind="other"} 5\n' in metrics
    assert "csms_auth_failures_total{" not in metrics
    trust = ssl.create_default_context(cafile=pki.server_ca)
    trust.check_hostname = False
    ws = await connect(
        f"wss://127.0.0.1:{port}/ocpp/CP1", ssl=trust, subprotocols=[Subprotocol("ocpp1.6")]
    )
    await ws.close()
