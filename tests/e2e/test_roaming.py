"""Roaming authorization at our chargers, on a real server with raw 1.6 and 2.0.1 chargers
and a fake eMSP answering real-time authorization requests: every whitelist rule with the
eMSP answering, refusing, being down (HTTP 503 and port closed) and being slow; the
authorization_reference carried into the transaction, the session push and the CDR; and
which partner tokens go into a charger's local list."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection

from csms.core.clock import utc_now
from csms.core.command_requests import LocalListSendRequest
from csms.core.locations import Location
from csms.core.roaming import PartnerToken, Whitelist
from csms.core.transactions import Transaction
from csms.services.locations import LocationService
from csms.storage import ocpi_tokens as ocpi_token_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import WriteTx
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner, Seen, error, ok
from tests.e2e.ocpi_rules import cdr_errors
from tests.e2e.raw import BOOT, BOOT201, call, open_raw
from tests.e2e.sim import register, ts, until
from tests.e2e.v201 import V201, new_tx_id, reading, tx_event

CP16 = "ROAM-16"
CP201 = "ROAM-201"
TIMEOUT = 1.0  # ocpi.authorize_timeout in these tests
ENDPOINTS = (
    ("credentials", "SENDER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
)


@dataclass
class Emsp:
    """How the fake eMSP answers real-time authorization requests."""

    fake: FakePartner
    partner_id: int = 0
    mode: str = "accept"  # accept | not_allowed | blocked | unknown | down | slow
    asked: list[Seen] = field(default_factory=list)
    references: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def handle(self, request: web.Request, sub: str, seen: Seen) -> web.StreamResponse:
        if request.method == "GET" and not sub:  # its token list: empty
            return ok([], headers={"X-Total-Count": "0", "X-Limit": "100"})
        uid, _, action = sub.partition("/")
        if request.method != "POST" or action != "authorize":
            return error(404, 2000, "unknown path")
        self.asked.append(seen)
        if self.mode == "down":
            return web.Response(status=503, text="maintenance")
        if self.mode == "unknown":
            return error(404, 2004, "unknown token")
        if self.mode == "slow":
            await asyncio.sleep(TIMEOUT * 3)
        allowed = {"not_allowed": "NOT_ALLOWED", "blocked": "BLOCKED"}.get(self.mode, "ALLOWED")
        info: dict[str, Any] = {"allowed": allowed, "token": _token_object(uid, "ALLOWED")}
        if allowed == "ALLOWED":
            info["authorization_reference"] = f"REF-{next(self.references)}"
        return ok(info)


def _token_object(uid: str, whitelist: str, valid: bool = True) -> dict[str, Any]:
    return {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": uid,
        "type": "RFID",
        "contract_id": f"DE-EMS-C{uid}",
        "issuer": "Fake eMSP",
        "valid": valid,
        "whitelist": whitelist,
        "last_updated": "2026-11-01T00:00:00Z",
    }


@dataclass
class World:
    server: Running
    emsp: Emsp

    async def token(self, uid: str, whitelist: str, *, valid: bool = True) -> None:
        """The eMSP's token as the tokens module stores it."""
        obj = _token_object(uid, whitelist, valid)
        token = PartnerToken(
            country_code="DE",
            party_id="EMS",
            uid=uid,
            type="RFID",
            contract_id=obj["contract_id"],
            whitelist=Whitelist(whitelist),
            valid=valid,
            last_updated=datetime(2026, 11, 1, tzinfo=UTC),
            data=obj,
            partner_id=self.emsp.partner_id,
        )

        async def unit(w: WriteTx) -> None:
            saved = await ocpi_token_repo.save(await w.connection(), token, token.partner_id, now())
            assert saved.mirrored

        await self.server.app.db.write(unit)


async def _site(server: Running) -> None:
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id="LOC-R",
            name="Roaming",
            address="Kade 2",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link("LOC-R", CP16, None)
    await locations.link("LOC-R", CP201, None)


@pytest.fixture
async def world(start_server: StartServer) -> AsyncIterator[World]:
    server = await start_server(ocpi={"authorize_timeout": TIMEOUT, "session_update_interval": 1.0})
    await _site(server)
    fake = FakePartner(roles=(EMSP_ROLE,), endpoints=ENDPOINTS)
    emsp = Emsp(fake)
    fake.sender_handlers["tokens"] = emsp.handle
    await fake.start()
    invitation = await server.app.partners.add("emsp")
    await fake.register_with(f"{server.app.ocpi_base_url}/ocpi/versions", invitation.token_a)
    emsp.partner_id = invitation.partner.id
    yield World(server, emsp)
    await fake.stop()


def now() -> datetime:
    return datetime.now(UTC)


async def charger16(server: Running) -> ClientConnection:
    ws = await open_raw(server.url, CP16)
    await call(ws, "BootNotification", BOOT)
    for connector in (1, 2):
        status = {"connectorId": connector, "errorCode": "NoError", "status": "Available"}
        await call(ws, "StatusNotification", status)
    return ws


async def charger201(server: Running) -> ClientConnection:
    ws = await open_raw(server.url, CP201, subprotocols=V201)
    await call(ws, "BootNotification", BOOT201)
    return ws


async def authorize16(ws: ClientConnection, uid: str) -> str:
    answer = await call(ws, "Authorize", {"idTag": uid})
    return str(answer[2]["idTagInfo"]["status"])


async def _published(world: World) -> None:
    """Wait until the location publisher has our chargers' EVSEs (location references)."""
    from csms.storage import ocpi_evses

    async def ready() -> bool:
        async with world.server.app.db.read() as conn:
            return len(await ocpi_evses.of_chargers(conn, [CP16, CP201])) >= 1

    await until(ready, "the EVSEs to be published")


async def test_each_whitelist_rule_with_an_answering_emsp(world: World) -> None:
    await world.token("ALWAYS-1", "ALWAYS")
    await world.token("ALLOWED-1", "ALLOWED")
    await world.token("OFFLINE-1", "ALLOWED_OFFLINE")
    await world.token("NEVER-1", "NEVER")
    await world.token("INVALID-1", "ALWAYS", valid=False)
    ws = await charger16(world.server)
    await _published(world)

    # ALWAYS: accepted from the stored token, the eMSP is not asked.
    assert await authorize16(ws, "ALWAYS-1") == "Accepted"
    assert world.emsp.asked == []
    # valid: false -> Blocked, not asked either.
    assert await authorize16(ws, "INVALID-1") == "Blocked"
    assert world.emsp.asked == []

    # ALLOWED, ALLOWED_OFFLINE and NEVER ask the eMSP, which decides.
    for uid in ("ALLOWED-1", "OFFLINE-1", "NEVER-1"):
        assert await authorize16(ws, uid) == "Accepted", uid
    assert [s.path.rsplit("/", 2)[-2] for s in world.emsp.asked] == [
        "ALLOWED-1",
        "OFFLINE-1",
        "NEVER-1",
    ]
    first = world.emsp.asked[0]
    assert first.path.endswith("/tokens/ALLOWED-1/authorize")
    assert first.method == "POST"
    # The location references name the charger's published location and its EVSE(s).
    assert first.body["location_id"] == "LOC-R"
    assert first.body["evse_uids"] and all(
        u.startswith(f"{CP16}*") for u in first.body["evse_uids"]
    )
    # Routed to the token's party, from ours; our credentials token for that partner.
    assert first.headers["OCPI-to-country-code"] == "DE"
    assert first.headers["OCPI-to-party-id"] == "EMS"
    assert first.headers["OCPI-from-party-id"] == "CSM"

    # The eMSP says no: refused whatever the rule.
    world.emsp.mode = "not_allowed"
    await world.token("ALLOWED-2", "ALLOWED")
    assert await authorize16(ws, "ALLOWED-2") == "Invalid"
    world.emsp.mode = "blocked"
    await world.token("NEVER-3", "NEVER")
    assert await authorize16(ws, "NEVER-3") == "Blocked"
    # An answer given at this charger stands for the session it leads to: not asked again.
    asked = len(world.emsp.asked)
    assert await authorize16(ws, "NEVER-1") == "Accepted"
    assert len(world.emsp.asked) == asked
    # An eMSP that no longer knows the token (HTTP 404, 2004) has answered: refused, even
    # for ALLOWED (which would fall back to the stored token if the eMSP were unreachable).
    world.emsp.mode = "unknown"
    await world.token("ALLOWED-3", "ALLOWED")
    assert await authorize16(ws, "ALLOWED-3") == "Invalid"
    await ws.close()


async def test_emsp_down_each_rule(world: World) -> None:
    for uid, rule in (("A-1", "ALLOWED"), ("O-1", "ALLOWED_OFFLINE"), ("N-1", "NEVER")):
        await world.token(uid, rule)
    ws = await charger16(world.server)

    # HTTP 503: unreachable. ALLOWED and ALLOWED_OFFLINE fall back to the token, NEVER not.
    world.emsp.mode = "down"
    assert await authorize16(ws, "A-1") == "Accepted"
    assert await authorize16(ws, "O-1") == "Accepted"
    assert await authorize16(ws, "N-1") == "Invalid"
    assert len(world.emsp.asked) == 3

    # Port closed: the same.
    await world.emsp.fake.stop()
    for uid, rule in (("A-2", "ALLOWED"), ("O-2", "ALLOWED_OFFLINE"), ("N-2", "NEVER")):
        await world.token(uid, rule)
    assert await authorize16(ws, "A-2") == "Accepted"
    assert await authorize16(ws, "O-2") == "Accepted"
    assert await authorize16(ws, "N-2") == "Invalid"
    await ws.close()


async def test_slow_emsp_is_bounded(world: World) -> None:
    for uid, rule in (("A-S", "ALLOWED"), ("O-S", "ALLOWED_OFFLINE"), ("N-S", "NEVER")):
        await world.token(uid, rule)
    world.emsp.mode = "slow"
    ws = await charger16(world.server)
    answers = {}
    for uid in ("A-S", "O-S", "N-S"):
        started = time.monotonic()
        answers[uid] = await authorize16(ws, uid)
        took = time.monotonic() - started
        # Answered at the bound (not after the eMSP's 3 s), well within a charger's timeout.
        assert TIMEOUT * 0.9 <= took < TIMEOUT + 2.0, (uid, took)
    # A slow eMSP is not an offline one: only ALLOWED falls back.
    assert answers == {"A-S": "Accepted", "O-S": "Invalid", "N-S": "Invalid"}
    await ws.close()


async def test_reference_reaches_transaction_session_and_cdr_16(world: World) -> None:
    await world.token("CARD-16", "ALLOWED")
    ws = await charger16(world.server)
    await _published(world)
    assert await authorize16(ws, "CARD-16") == "Accepted"
    start = now()
    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD-16", "meterStart": 1000, "timestamp": ts(start)},
    )
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    tx_id = int(answer[2]["transactionId"])
    # The Authorize's answer stands for the transaction: the eMSP was asked once.
    assert len(world.emsp.asked) == 1
    async with world.server.app.db.read() as conn:
        tx = await tx_repo.get(conn, tx_id)
    assert tx is not None
    assert tx.auth_method == "AUTH_REQUEST"
    assert tx.authorization_reference == "REF-1"
    assert tx.cdr_token == {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "CARD-16",
        "type": "RFID",
        "contract_id": "DE-EMS-CCARD-16",
    }
    await call(
        ws,
        "MeterValues",
        {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(start, 1000)]},
    )

    def session_pushes() -> list[Seen]:
        return [s for s in world.emsp.fake.pushes if s.path.endswith(f"/sessions/NL/CSM/{tx_id}")]

    async def pushed() -> list[Seen]:
        return [s for s in session_pushes() if s.method == "PUT"]

    (put, *_) = await until(pushed, "the session PUT")
    assert put.body["auth_method"] == "AUTH_REQUEST"
    assert put.body["authorization_reference"] == "REF-1"
    assert put.body["cdr_token"]["contract_id"] == "DE-EMS-CCARD-16"
    stop = start + timedelta(minutes=1)
    await call(
        ws,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": 3000, "timestamp": ts(stop), "idTag": "CARD-16"},
    )

    async def cdr() -> list[Seen]:
        return [
            s
            for s in world.emsp.fake.pushes
            if s.path.endswith("/cdrs") and s.body.get("session_id") == str(tx_id)
        ]

    (posted,) = await until(cdr, "the CDR push")
    assert cdr_errors(posted.body) == []
    assert posted.body["authorization_reference"] == "REF-1"
    assert posted.body["auth_method"] == "AUTH_REQUEST"
    assert posted.body["cdr_token"]["uid"] == "CARD-16"
    assert posted.body["cdr_token"]["party_id"] == "EMS"

    # The next session of that card asks the eMSP again (the answer was used).
    assert await authorize16(ws, "CARD-16") == "Accepted"
    assert len(world.emsp.asked) == 2
    await ws.close()


async def test_start_without_authorize_asks_at_start_16(world: World) -> None:
    await world.token("WL-CARD", "ALWAYS")
    await world.token("RT-CARD", "NEVER")
    world.emsp.mode = "not_allowed"
    ws = await charger16(world.server)
    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "WL-CARD", "meterStart": 0, "timestamp": ts(now())},
    )
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    async with world.server.app.db.read() as conn:
        tx = await tx_repo.get(conn, int(answer[2]["transactionId"]))
    assert tx is not None and tx.auth_method == "WHITELIST" and tx.authorization_reference is None
    # A charger that started offline (its own decision): the eMSP's no makes it Invalid.
    answer = await call(
        ws,
        "StartTransaction",
        {"connectorId": 2, "idTag": "RT-CARD", "meterStart": 0, "timestamp": ts(now())},
    )
    assert answer[2]["idTagInfo"]["status"] == "Invalid"
    assert len(world.emsp.asked) == 1
    await ws.close()


async def test_v201_authorize_and_transaction_event(world: World) -> None:
    await world.token("CARD-201", "ALLOWED_OFFLINE")
    await world.token("DENY-201", "NEVER")
    ws = await charger201(world.server)
    answer = await call(ws, "Authorize", {"idToken": {"idToken": "CARD-201", "type": "ISO14443"}})
    assert answer[2]["idTokenInfo"]["status"] == "Accepted"
    tx_id = new_tx_id()
    start = now()
    answer = await call(
        ws,
        "TransactionEvent",
        tx_event(
            "Started",
            tx_id,
            0,
            start,
            trigger="Authorized",
            token="CARD-201",
            meter=[reading(start, 5000, "Transaction.Begin")],
        ),
    )
    assert answer[2]["idTokenInfo"]["status"] == "Accepted"
    assert len(world.emsp.asked) == 1
    async with world.server.app.db.read() as conn:
        tx = await tx_repo.find_by_ocpp_id(conn, CP201, tx_id)
    assert tx is not None
    assert tx.auth_method == "AUTH_REQUEST" and tx.authorization_reference == "REF-1"
    assert tx.cdr_token is not None and tx.cdr_token["contract_id"] == "DE-EMS-CCARD-201"

    # Presented again inside its own transaction (to stop): no new real-time request.
    answer = await call(
        ws,
        "TransactionEvent",
        tx_event(
            "Ended",
            tx_id,
            1,
            start + timedelta(minutes=5),
            trigger="StopAuthorized",
            token="CARD-201",
            stopped_reason="Local",
            meter=[reading(start + timedelta(minutes=5), 7000, "Transaction.End")],
        ),
    )
    assert answer[2]["idTokenInfo"]["status"] == "Accepted"
    assert len(world.emsp.asked) == 1

    # A token the eMSP refuses, first seen in a TransactionEvent.
    world.emsp.mode = "not_allowed"
    other = new_tx_id()
    answer = await call(
        ws,
        "TransactionEvent",
        tx_event("Started", other, 0, now(), trigger="Authorized", token="DENY-201"),
    )
    assert answer[2]["idTokenInfo"]["status"] == "Invalid"
    assert len(world.emsp.asked) == 2
    await ws.close()


async def test_local_list_has_offline_usable_partner_tokens_only(world: World) -> None:
    for uid, rule in (
        ("L-ALWAYS", "ALWAYS"),
        ("L-OFFLINE", "ALLOWED_OFFLINE"),
        ("L-ALLOWED", "ALLOWED"),
        ("L-NEVER", "NEVER"),
    ):
        await world.token(uid, rule)
    ws = await charger16(world.server)
    calls: list[list[Any]] = []

    async def answer_charger() -> None:
        import orjson

        while True:
            frame = orjson.loads(await ws.recv())
            if frame[0] == 2:
                calls.append(frame)
                await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())

    task = asyncio.create_task(answer_charger())
    try:
        result = await world.server.app.commands.execute(CP16, LocalListSendRequest(full=True))
    finally:
        task.cancel()
    assert result.outcome.ok, result.message
    (send,) = [c for c in calls if c[2] == "SendLocalList"]
    listed = {e["idTag"]: e["idTagInfo"]["status"] for e in send[3]["localAuthorizationList"]}
    assert listed == {"L-ALWAYS": "Accepted", "L-OFFLINE": "Accepted"}
    await ws.close()


async def test_mirror_keeps_our_own_token(world: World) -> None:
    """A partner token whose uid is one of our own cards does not take it over."""
    from csms.core.authorization import Token, TokenStatus

    await world.server.staff.add_token(Token("OURS-1", TokenStatus.ACCEPTED))
    token = PartnerToken(
        "DE",
        "EMS",
        "OURS-1",
        "RFID",
        "C-1",
        Whitelist.NEVER,
        True,
        now(),
        {},
        world.emsp.partner_id,
    )

    async def unit(w: WriteTx) -> bool:
        return (await ocpi_token_repo.save(await w.connection(), token, None, now())).mirrored

    assert await world.server.app.db.write(unit) is False
    async with world.server.app.db.read() as conn:
        ours = await token_repo.get(conn, "OURS-1")
    assert ours is not None and ours.origin == "local" and ours.whitelist is None
    ws = await charger16(world.server)
    assert await authorize16(ws, "OURS-1") == "Accepted"
    assert world.emsp.asked == []
    await ws.close()


async def accepted_start16(server: Running, ws: ClientConnection, uid: str) -> Transaction:
    """A StartTransaction on connector 1, answered Accepted; the transaction as stored."""
    start = {"connectorId": 1, "idTag": uid, "meterStart": 0, "timestamp": ts(now())}
    answer = await call(ws, "StartTransaction", start)
    assert answer[2]["idTagInfo"]["status"] == "Accepted"
    async with server.app.db.read() as conn:
        tx = await tx_repo.get(conn, int(answer[2]["transactionId"]))
    assert tx is not None
    return tx


async def _restart(world: World, start_server: StartServer) -> Running:
    """A new process over the same database: nothing kept in memory."""
    await world.server.stop()
    world.server = await start_server(
        ocpi={"authorize_timeout": TIMEOUT, "session_update_interval": 1.0}
    )
    return world.server


async def test_an_authorize_answer_stands_across_a_restart_16(
    world: World, start_server: StartServer
) -> None:
    await world.token("CARD-R", "ALLOWED")
    ws = await charger16(world.server)
    await _published(world)
    assert await authorize16(ws, "CARD-R") == "Accepted"
    assert len(world.emsp.asked) == 1
    await ws.close()
    server = await _restart(world, start_server)

    # The eMSP would now refuse: the Authorize's answer stands for this transaction.
    world.emsp.mode = "not_allowed"
    ws = await charger16(server)
    tx = await accepted_start16(server, ws, "CARD-R")
    assert len(world.emsp.asked) == 1
    assert (tx.auth_method, tx.authorization_reference) == ("AUTH_REQUEST", "REF-1")
    # Used up: the next session is the eMSP's to decide.
    assert await authorize16(ws, "CARD-R") == "Invalid"
    assert len(world.emsp.asked) == 2
    await ws.close()


async def test_a_start_session_vouches_across_a_restart_16(
    world: World, start_server: StartServer
) -> None:
    ws = await charger16(world.server)
    await _published(world)
    fake = world.emsp.fake
    assert fake.our_token is not None
    command = {
        "response_url": f"{fake.results_url}/start/1",
        "token": {**_token_object("APP-R", "NEVER"), "type": "APP_USER"},
        "location_id": "LOC-R",
        "evse_uid": f"{CP16}*1",
        "authorization_reference": "APP-REF-7",
    }
    base = world.server.app.ocpi_base_url
    status, answer, _ = await fake.call(
        "POST", f"{base}/ocpi/2.2.1/commands/START_SESSION", fake.our_token, command
    )
    assert (status, answer["data"]["result"]) == (200, "ACCEPTED")
    remote = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert remote[2] == "RemoteStartTransaction" and remote[3]["idTag"] == "APP-R"
    await ws.send(orjson.dumps([3, remote[1], {"status": "Accepted"}]).decode())
    await ws.close()
    server = await _restart(world, start_server)

    # The charger starts after our restart: still the eMSP's session, not asked again.
    world.emsp.mode = "not_allowed"
    ws = await charger16(server)
    tx = await accepted_start16(server, ws, "APP-R")
    assert world.emsp.asked == []
    assert (tx.auth_method, tx.authorization_reference) == ("COMMAND", "APP-REF-7")
    assert tx.cdr_token is not None and tx.cdr_token["type"] == "APP_USER"
    await ws.close()
