"""The durable OCPI push outbox against the real server (port 0, a real SQLite file) and a
fake eMSP: delivery with our credentials and headers, retries while the partner is down,
order per object, a restart in between, and `csms ocpi outbox`.

Pushes are enqueued with csms.storage.outbox.enqueue on the server's own database, as the
producers do in their transactions.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from csms.core.clock import utc_now
from csms.core.outbox import OutboxEntry, Push
from csms.core.partners import Partner
from csms.storage import outbox
from csms.storage.database import WriteTx
from ocpi_cpo.context import PUSHER
from ocpi_cpo.push import Pusher
from tests.e2e.cli import Ran, cli_env, csms, one_line_error
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner, Seen

FAST = {"push_interval": 0.1}


@pytest.fixture
async def server(start_server: StartServer) -> Running:
    return await start_server(ocpi=FAST)


@pytest.fixture
async def partner() -> AsyncIterator[FakePartner]:
    fake = await FakePartner().start()
    yield fake
    await fake.stop()


async def registered(server: Running, partner: FakePartner, name: str = "emsp1") -> Partner:
    invitation = await server.app.partners.add(name)
    await partner.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    return await server.app.partners.get(name)


def location_push(partner: FakePartner, location: str, body: dict[str, Any]) -> Push:
    url = f"{partner.base}/2.2.1/locations/NL/CSM/{location}"
    return Push("locations", "PUT", url, body, f"locations/{location}")


def evse_patch(partner: FakePartner, location: str, evse: str, status: str) -> Push:
    url = f"{partner.base}/2.2.1/locations/NL/CSM/{location}/{evse}"
    return Push("locations", "PATCH", url, {"status": status}, f"locations/{location}")


async def enqueue(server: Running, partner_id: int, *pushes: Push) -> list[int]:
    now = utc_now()

    async def unit(w: WriteTx) -> list[int]:
        conn = await w.connection()
        return [await outbox.enqueue(conn, partner_id, push, now) for push in pushes]

    return await server.app.db.write(unit)


async def entry(server: Running, entry_id: int) -> OutboxEntry:
    async with server.app.db.read() as conn:
        found = await outbox.get(conn, entry_id)
    assert found is not None
    return found


async def retry_now(server: Running) -> int:
    now = utc_now()

    async def unit(w: WriteTx) -> int:
        return await outbox.retry_now(await w.connection(), now)

    return await server.app.db.write(unit)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)


async def delivered(server: Running, entry_id: int, timeout: float = 10.0) -> OutboxEntry:
    async def check() -> bool:
        return (await entry(server, entry_id)).delivered_at is not None

    await eventually(check, timeout, f"delivery of push {entry_id}")
    return await entry(server, entry_id)


async def failed(server: Running, entry_id: int, attempts: int = 1) -> OutboxEntry:
    async def check() -> bool:
        return (await entry(server, entry_id)).attempts >= attempts

    await eventually(check, what=f"{attempts} failed attempts of push {entry_id}")
    found = await entry(server, entry_id)
    assert found.delivered_at is None
    return found


def pusher_of(server: Running) -> Pusher:
    app = server.app.ocpi_app
    assert app is not None
    return app[PUSHER]


def paths(pushes: list[Seen]) -> list[tuple[str, str]]:
    return [(s.method, s.path.rsplit("/CSM/", 1)[1]) for s in pushes]


# --- delivery ------------------------------------------------------------------------------


async def test_a_push_reaches_the_partner_with_our_credentials_and_headers(
    server: Running, partner: FakePartner
) -> None:
    emsp = await registered(server, partner)
    body = {"id": "LOC1", "name": "Depot", "evses": []}
    with capture_logs() as logs:
        put, patch = await enqueue(
            server,
            emsp.id,
            location_push(partner, "LOC1", body),
            evse_patch(partner, "LOC1", "EVSE1", "CHARGING"),
        )
        done = await delivered(server, patch)
    assert (await entry(server, put)).delivered_at is not None
    assert (done.attempts, done.last_error) == (1, None)

    assert paths(partner.pushes) == [("PUT", "LOC1"), ("PATCH", "LOC1/EVSE1")]
    first, second = partner.pushes
    assert first.body == body and second.body == {"status": "CHARGING"}
    token = str(partner.their_token_b)
    for seen in partner.pushes:
        assert seen.headers["Authorization"] == "Token " + base64.b64encode(token.encode()).decode()
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.headers["OCPI-from-country-code"] == "NL"
        assert seen.headers["OCPI-from-party-id"] == "CSM"
        assert seen.headers["OCPI-to-country-code"] == "DE"
        assert seen.headers["OCPI-to-party-id"] == "EMS"
    # Fresh ids on every request.
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    assert first.headers["X-Correlation-ID"] != second.headers["X-Correlation-ID"]

    events = [e for e in logs if e["event"] == "push_delivered"]
    assert [(e["method"], e["partner"], e["module"]) for e in events] == [
        ("PUT", "emsp1", "locations"),
        ("PATCH", "emsp1", "locations"),
    ]
    assert token not in str(logs)


async def test_a_raw_token_partner_gets_the_raw_token(
    server: Running, partner: FakePartner
) -> None:
    partner.sends = partner.accepts = "raw"
    emsp = await registered(server, partner, "old-emsp")
    (put,) = await enqueue(server, emsp.id, location_push(partner, "LOC1", {"id": "LOC1"}))
    await delivered(server, put)
    (seen,) = partner.pushes
    assert seen.headers["Authorization"] == f"Token {partner.their_token_b}"


async def test_wake_sends_at_once(start_server: StartServer, partner: FakePartner) -> None:
    # A long interval: without wake() the push would wait for it.
    server = await start_server(ocpi={"push_interval": 60.0})
    emsp = await registered(server, partner)
    await asyncio.sleep(0.2)  # the worker has looked and is waiting
    (put,) = await enqueue(server, emsp.id, location_push(partner, "LOC1", {"id": "LOC1"}))
    pusher_of(server).wake()
    await delivered(server, put, timeout=3.0)


# --- failures and retries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "error"),
    [
        ("http-503", "HTTP 503, status 3000"),
        ("status-2001", "status 2001: refused by the fake (2001)"),
        ("port-closed", "unreachable: cannot connect"),
    ],
)
async def test_a_push_waits_while_the_partner_is_down_then_goes_through(
    server: Running, partner: FakePartner, down: str, error: str
) -> None:
    emsp = await registered(server, partner)
    if down == "http-503":
        partner.push_answer = lambda _seen: (503, 3000)
    elif down == "status-2001":
        partner.push_answer = lambda _seen: (200, 2001)
    else:
        await partner.stop()

    with capture_logs() as logs:
        (put,) = await enqueue(server, emsp.id, location_push(partner, "LOC1", {"id": "LOC1"}))
        pending = await failed(server, put)
    assert pending.last_error is not None and pending.last_error.startswith(error)
    assert "\n" not in pending.last_error
    # Retried with backoff: not before 2 s after the first failure.
    assert pending.next_attempt_at - utc_now() > timedelta(seconds=1)
    warning = next(e for e in logs if e["event"] == "push_failed")
    assert warning["log_level"] == "warning"
    assert warning["partner"] == "emsp1" and warning["module"] == "locations"
    assert warning["method"] == "PUT" and warning["url"] == pending.url
    assert warning["attempts"] == 1 and warning["error"].startswith(error)
    assert warning["retry_at"]
    assert str(partner.their_token_b) not in str(logs)

    # The partner comes back; staff make the failing push due at once.
    if down == "port-closed":
        await partner.start()  # on the same port
    partner.push_answer = None
    assert await retry_now(server) == 1
    done = await delivered(server, put)
    assert done.attempts >= 2 and done.last_error is None
    assert partner.pushes[-1].method == "PUT"


async def test_a_bad_entry_fails_alone(server: Running, partner: FakePartner) -> None:
    emsp = await registered(server, partner)
    bad = Push("locations", "PUT", "http://[::1/nowhere", {"id": "X"}, "locations/X")
    broken, good = await enqueue(
        server, emsp.id, bad, location_push(partner, "LOC1", {"id": "LOC1"})
    )
    await delivered(server, good)
    pending = await failed(server, broken)
    assert pending.last_error is not None and pending.last_error.startswith("unreachable: ")


async def test_a_push_is_never_given_up(server: Running, partner: FakePartner) -> None:
    emsp = await registered(server, partner)
    partner.push_answer = lambda _seen: (500, 3000)
    (put,) = await enqueue(server, emsp.id, location_push(partner, "LOC1", {"id": "LOC1"}))
    for attempts in range(1, 4):
        await failed(server, put, attempts)
        assert await retry_now(server) == 1
    pending = await failed(server, put, attempts=4)
    assert pending.last_error == "HTTP 500, status 3000: refused by the fake (3000)"


async def test_one_object_waits_for_its_earlier_push_others_go_on(
    server: Running, partner: FakePartner
) -> None:
    emsp = await registered(server, partner)
    partner.push_answer = lambda seen: (503, 3000) if "/LOC1" in seen.path else (200, 1000)
    a1, a2, b1 = await enqueue(
        server,
        emsp.id,
        location_push(partner, "LOC1", {"id": "LOC1"}),
        evse_patch(partner, "LOC1", "EVSE1", "CHARGING"),
        location_push(partner, "LOC2", {"id": "LOC2"}),
    )
    await delivered(server, b1)
    await failed(server, a1)
    # The second push of LOC1 was not sent while the first is failing.
    assert ("PATCH", "LOC1/EVSE1") not in paths(partner.pushes)
    assert (await entry(server, a2)).attempts == 0

    partner.push_answer = None
    await retry_now(server)
    await delivered(server, a2)
    sent = paths(partner.pushes)
    assert sent.count(("PATCH", "LOC1/EVSE1")) == 1
    # LOC1 in order: every PUT (the failed ones, then the delivered one) before the PATCH.
    assert sent[-1] == ("PATCH", "LOC1/EVSE1") and sent[-2] == ("PUT", "LOC1")


async def test_many_objects_are_sent_concurrently_and_all_arrive(
    server: Running, partner: FakePartner
) -> None:
    emsp = await registered(server, partner)
    ids = await enqueue(
        server,
        emsp.id,
        *(location_push(partner, f"LOC{i}", {"id": f"LOC{i}"}) for i in range(30)),
    )
    for entry_id in ids:
        await delivered(server, entry_id)
    assert sorted(paths(partner.pushes)) == sorted(("PUT", f"LOC{i}") for i in range(30))


async def test_a_pending_push_survives_a_restart(
    start_server: StartServer, server: Running, partner: FakePartner
) -> None:
    emsp = await registered(server, partner)
    partner.push_answer = lambda _seen: (503, 3000)
    (put,) = await enqueue(server, emsp.id, location_push(partner, "LOC1", {"id": "LOC1"}))
    before = await failed(server, put)
    await server.stop()

    partner.push_answer = None
    again = await start_server(ocpi=FAST)
    assert (await entry(again, put)).delivered_at is None
    await retry_now(again)
    done = await delivered(again, put)
    assert done.id == before.id and done.attempts > before.attempts
    assert paths(partner.pushes)[-1] == ("PUT", "LOC1")


# --- csms ocpi outbox ------------------------------------------------------------------------


async def cli_outbox(server: Running, *args: str) -> Ran:
    return await csms(server, "ocpi", "outbox", *args, env=cli_env(server))


@pytest.mark.slow
async def test_the_outbox_command(server: Running, partner: FakePartner) -> None:
    emsp = await registered(server, partner)
    # A second partner, invited but not registered: its push waits, never tried.
    waiting = (await server.app.partners.add("emsp2")).partner
    partner.push_answer = lambda seen: (503, 3000) if "/LOC1" in seen.path else (200, 1000)
    a1, b1 = await enqueue(
        server,
        emsp.id,
        location_push(partner, "LOC1", {"id": "LOC1"}),
        location_push(partner, "LOC2", {"id": "LOC2"}),
    )
    (c1,) = await enqueue(server, waiting.id, location_push(partner, "LOC3", {"id": "LOC3"}))
    await delivered(server, b1)
    await failed(server, a1)

    # Push the next retry of a1 far out: only --retry-now will bring it back soon.
    now = utc_now()

    async def later(w: WriteTx) -> None:
        await outbox.failed(await w.connection(), a1, 20, "HTTP 503", now)

    await server.app.db.write(later)

    human = await cli_outbox(server)
    assert human.code == 0, human.err
    lines = human.out.splitlines()
    assert lines[:2] == ["emsp1: 1 pending, 1 failing", "emsp2: 1 pending, 0 failing"]
    assert lines[3].split() == [
        "ID",
        "PARTNER",
        "MODULE",
        "METHOD",
        "URL",
        "ATTEMPTS",
        "NEXT",
        "ATTEMPT",
        "LAST",
        "ERROR",
    ]
    (row,) = [line for line in lines if line.startswith(f"{a1} ")]
    assert "emsp1" in row and "PUT" in row and "/LOC1" in row and "HTTP 503" in row
    assert any(line.startswith(f"{c1} ") for line in lines)
    assert not any(line.startswith(f"{b1} ") for line in lines)

    listed = (await cli_outbox(server, "--json")).json()
    assert listed["counts"] == {
        "emsp1": {"pending": 1, "failing": 1},
        "emsp2": {"pending": 1, "failing": 0},
    }
    assert [e["id"] for e in listed["entries"]] == [c1, a1]  # newest first
    first = listed["entries"][1]
    assert first["partner"] == "emsp1" and first["module"] == "locations"
    assert first["method"] == "PUT" and first["url"].endswith("/LOC1")
    assert first["attempts"] == 20 and first["last_error"] == "HTTP 503"
    assert first["next_attempt_at"] and first["delivered_at"] is None
    # Never a token in the output.
    assert str(partner.their_token_b) not in human.out + str(listed)

    failing = (await cli_outbox(server, "--failing", "--json")).json()
    assert [e["id"] for e in failing["entries"]] == [a1]
    only = (await cli_outbox(server, "--partner", "emsp2", "--json")).json()
    assert only["counts"] == {"emsp2": {"pending": 1, "failing": 0}}
    assert [e["id"] for e in only["entries"]] == [c1]
    recent = (await cli_outbox(server, "--delivered", "--limit", "5", "--json")).json()
    assert [e["id"] for e in recent["entries"]] == [b1]
    assert recent["entries"][0]["delivered_at"] is not None

    one_line_error(await cli_outbox(server, "--partner", "nope"), "no partner nope")
    one_line_error(await cli_outbox(server, "--drop", str(b1), "--yes"), f"no pending push {b1}")
    one_line_error(await cli_outbox(server, "--drop", "99999", "-y"), "no pending push 99999")

    dropped = await cli_outbox(server, "--drop", str(c1), "--yes")
    assert dropped.code == 0 and f"push {c1} dropped" in dropped.out
    assert (
        await cli_outbox(server, "--partner", "emsp2")
    ).out.strip() == "emsp2: 0 pending, 0 failing"

    # The partner is back: --retry-now makes the failing push due now.
    partner.push_answer = None
    retried = await cli_outbox(server, "--retry-now")
    assert retried.code == 0 and retried.out.strip() == "1 failing push due now"
    done = await delivered(server, a1, timeout=5.0)
    assert done.attempts == 21
    assert (await cli_outbox(server)).out.strip() == "no pending pushes"


async def test_a_backlog_failing_again_does_not_hold_up_a_new_push(
    start_server: StartServer, partner: FakePartner
) -> None:
    """150 pushes that failed before are due again (say after a partner outage), and the
    partner stalls on each of them past our request timeout: at 4 requests at a time they
    take a long while to go round. A new push to the same partner goes first."""
    server = await start_server(ocpi={**FAST, "request_timeout": 0.5})
    emsp = await registered(server, partner)
    partner.push_delay = lambda seen: 1.0 if "/POISON" in seen.path else 0.0
    now = utc_now()

    async def backlog(w: WriteTx) -> list[int]:
        conn = await w.connection()
        ids = []
        for i in range(150):
            push = location_push(partner, f"POISON{i}", {"id": f"POISON{i}"})
            entry_id = await outbox.enqueue(conn, emsp.id, push, now)
            # Failed once before, due again now.
            await outbox.failed(conn, entry_id, 1, "HTTP 503", now - timedelta(seconds=2))
            ids.append(entry_id)
        return ids

    stalled = await server.app.db.write(backlog)
    pusher_of(server).wake()

    async def backlog_under_way() -> bool:
        return sum("/POISON" in s.path for s in partner.pushes) >= 4

    await eventually(backlog_under_way, what="the backlog being sent")
    (fresh,) = await enqueue(server, emsp.id, location_push(partner, "LOC1", {"id": "LOC1"}))
    pusher_of(server).wake()
    # A liveness bound (the backlog alone would take over 15 s to go round), not a speed test.
    done = await delivered(server, fresh, timeout=5.0)
    assert done.attempts == 1
    tried = [await entry(server, i) for i in stalled]
    assert any(e.attempts == 2 for e in tried)
    for e in tried:
        assert e.delivered_at is None
        if e.attempts == 2:
            assert e.last_error is not None and e.last_error.startswith("unreachable: ")
