"""The OCPI commands module (Receiver) on a real server, with a simulated charger of each
OCPP version and fake eMSPs: START_SESSION starts a real OCPP session whose Session and CDR
are the eMSP's (auth_method COMMAND, its token and authorization_reference), STOP_SESSION
(ours, unknown, another party's), RESERVE_NOW / CANCEL_RESERVATION with our reservation ids
and RESERVATION sessions, a reservation that expires, UNLOCK_CONNECTOR, a charger that never
answers (TIMEOUT, and its late start still a correct session), and the requests refused at
once (unknown location, EVSE, connector or command type, invalid fields)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.reservations import ReservationState
from csms.core.transactions import Transaction
from csms.services.locations import LocationService
from csms.storage import reservations as reservation_repo
from csms.storage.reservations import PartnerReservation
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from simulators.versions import create_charger
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner, Seen
from tests.e2e.ocpi_rules import cdr_errors, session_errors
from tests.e2e.sim import ts, until

VERSIONS = ["1.6", "2.0.1"]
LOCATION = "LOC-CMD"
HUB_ROLE = {
    "role": "HUB",
    "country_code": "BE",
    "party_id": "HUB",
    "business_details": {"name": "A hub"},
}
OTHER_ROLE = {
    "role": "EMSP",
    "country_code": "FR",
    "party_id": "OTH",
    "business_details": {"name": "Other eMSP"},
}
ENDPOINTS = (
    ("credentials", "SENDER"),
    ("locations", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
)
# The charger's wait for an answer: a silent charger's command times out after this.
CALL_TIMEOUT = 2.0


def now() -> datetime:
    return datetime.now(UTC)


def token(uid: str, party: tuple[str, str] = ("DE", "EMS"), **changes: Any) -> dict[str, Any]:
    """An eMSP's token as a command carries it: whitelist NEVER (no copy of ours would let
    it charge, only the command's vouching does)."""
    return {
        "country_code": party[0],
        "party_id": party[1],
        "uid": uid,
        "type": "APP_USER",
        "contract_id": f"{party[0]}-{party[1]}-{uid}",
        "issuer": "Fake eMSP",
        "valid": True,
        "whitelist": "NEVER",
        "last_updated": ts(now()),
        **changes,
    }


@dataclass
class Peer:
    fake: FakePartner
    commands_url: str

    async def send(
        self, command: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], str]:
        """POST a command with a fresh response_url; (HTTP status, envelope, that url)."""
        url = f"{self.fake.results_url}/{command}/{uuid.uuid4()}"
        assert self.fake.our_token is not None
        status, answer, _ = await self.fake.call(
            "POST",
            f"{self.commands_url}/{command}",
            self.fake.our_token,
            {"response_url": url, **body},
            headers=headers,
        )
        return status, answer, url

    async def accepted(
        self, command: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> str:
        """A command answered 200 / 1000 / ACCEPTED; returns its response_url."""
        status, answer, url = await self.send(command, body, headers)
        assert status == 200 and answer["status_code"] == 1000, answer
        assert answer["data"]["result"] == "ACCEPTED", answer
        assert isinstance(answer["data"]["timeout"], int) and answer["data"]["timeout"] > 0
        return url

    async def result(self, url: str, seconds: float = 20.0) -> dict[str, Any]:
        """The one CommandResult POSTed to `url`."""

        async def posted() -> list[Seen]:
            return [s for s in self.fake.results if s.path == _path(url)]

        (seen,) = await until(posted, f"the result at {url}", seconds)
        assert seen.method == "POST"
        body: dict[str, Any] = seen.body
        return body

    def addressed_to(self, url: str) -> tuple[str, str]:
        """The OCPI-to-* headers of the result POSTed to `url`."""
        (seen,) = self.results_at(url)
        return seen.headers["OCPI-to-country-code"], seen.headers["OCPI-to-party-id"]

    def results_at(self, url: str) -> list[Seen]:
        return [s for s in self.fake.results if s.path == _path(url)]

    def sessions(self, session_id: str) -> list[dict[str, Any]]:
        """The Session PUTs it received for one session id, in order."""
        return [
            s.body
            for s in self.fake.pushes
            if s.method == "PUT" and s.path.endswith(f"/sessions/NL/CSM/{session_id}")
        ]

    def cdrs(self, session_id: str) -> list[dict[str, Any]]:
        return [
            s.body
            for s in self.fake.pushes
            if s.method == "POST"
            and s.path.endswith("/cdrs")
            and s.body.get("session_id") == session_id
        ]


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@dataclass
class World:
    server: Running
    cp: V16Charger | V201Charger
    cp_id: str
    version: str
    emsp: Peer
    other: Peer
    emsp_id: int
    task: asyncio.Task[Any] | None = field(default=None, repr=False)

    def evse(self, n: int) -> str:
        return f"{self.cp_id}*{n}"

    async def running(self) -> Transaction | None:
        active = await self.server.staff.transactions(active_only=True, cp_id=self.cp_id)
        return active[0] if active else None

    async def partner_reservation(self, partner_id: int, ocpi_id: str) -> PartnerReservation:
        async with self.server.app.db.read() as conn:
            held = await reservation_repo.of_partner(conn, partner_id, ocpi_id)
        assert held is not None
        return held


async def _register(server: Running, name: str, role: dict[str, Any]) -> tuple[Peer, int]:
    fake = await FakePartner(roles=(role,), endpoints=ENDPOINTS).start()
    invitation = await server.app.partners.add(name)
    await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.ocpi_url}/ocpi/2.2.1", fake.our_token)
    (commands,) = [e for e in details["data"]["endpoints"] if e["identifier"] == "commands"]
    assert commands["role"] == "RECEIVER"
    return Peer(fake, commands["url"]), invitation.partner.id


@pytest.fixture(params=VERSIONS)
async def world(request: pytest.FixtureRequest, start_server: StartServer) -> AsyncIterator[World]:
    version: str = request.param
    server = await start_server(
        ocpp={"call_timeout": CALL_TIMEOUT}, ocpi={"session_update_interval": 1.0}
    )
    cp_id = f"CMD-{version}"
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id=LOCATION,
            name="Commands depot",
            address="Kade 2",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link(LOCATION, cp_id, None)
    emsp, emsp_id = await _register(server, "emsp", EMSP_ROLE)
    other, _ = await _register(server, "other", OTHER_ROLE)
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            connectors=2,
            sessions=0,
            meter_interval=0.3,
            seed=7,
            response_timeout=10,
        )
    )
    assert isinstance(cp, V16Charger | V201Charger)
    task = asyncio.create_task(cp.run())
    world = World(server, cp, cp_id, version, emsp, other, emsp_id, task)

    async def published() -> bool:
        assert emsp.fake.our_token is not None
        status, body, _ = await emsp.fake.call(
            "GET", f"{server.ocpi_url}/ocpi/2.2.1/locations/{LOCATION}", emsp.fake.our_token
        )
        if status != 200:
            return False
        evses = {e["uid"]: e for e in body["data"].get("evses", [])}
        return all(
            uid in evses and "RESERVABLE" in evses[uid]["capabilities"]
            for uid in (world.evse(1), world.evse(2))
        )

    await until(published, "the charger's EVSEs published")
    yield world
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()
    for peer in (emsp, other):
        await peer.fake.stop()


async def test_start_and_stop_a_session(world: World) -> None:
    emsp, other = world.emsp, world.other
    uid = f"APP-{world.version}"
    url = await emsp.accepted(
        "START_SESSION",
        {
            "token": token(uid),
            "location_id": LOCATION,
            "evse_uid": world.evse(1),
            "connector_id": "1",
            "authorization_reference": "AUTH-REF-1",
        },
    )
    result = await emsp.result(url)
    assert result["result"] == "ACCEPTED" and result["message"][0]["language"] == "en"
    tx = await until(world.running, "the started transaction")
    assert (tx.evse_id, tx.id_tag, tx.auth_status) == (1, uid, "Accepted")
    session_id = str(tx.id)

    async def first_push() -> list[dict[str, Any]]:
        return emsp.sessions(session_id)

    session = (await until(first_push, "the session PUT"))[0]
    assert session_errors(session) == []
    assert session["status"] == "ACTIVE" and session["auth_method"] == "COMMAND"
    assert session["authorization_reference"] == "AUTH-REF-1"
    assert session["cdr_token"] == {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": uid,
        "type": "APP_USER",
        "contract_id": f"DE-EMS-{uid}",
    }
    assert (session["location_id"], session["evse_uid"]) == (LOCATION, world.evse(1))

    # Another eMSP may not stop it; nobody may stop what does not run.
    status, answer, refused = await other.send("STOP_SESSION", {"session_id": session_id})
    assert status == 200 and answer["status_code"] == 1000
    assert answer["data"]["result"] == "REJECTED"
    for unknown in ("999999", "R1", "nope"):
        status, answer, lost = await emsp.send("STOP_SESSION", {"session_id": unknown})
        assert status == 200 and answer["data"]["result"] == "UNKNOWN_SESSION", answer
        assert emsp.results_at(lost) == []

    stop_url = await emsp.accepted("STOP_SESSION", {"session_id": session_id})
    assert (await emsp.result(stop_url))["result"] == "ACCEPTED"

    async def ended() -> Transaction | None:
        done = await world.server.staff.transaction(tx.id)
        return None if done.transaction.active else done.transaction

    finished = await until(ended, "the transaction's end")
    assert finished.stop_reason == "Remote"
    status, answer, late = await emsp.send("STOP_SESSION", {"session_id": session_id})
    assert answer["data"]["result"] == "UNKNOWN_SESSION"

    async def final_and_cdr() -> bool:
        puts = emsp.sessions(session_id)
        return bool(puts) and puts[-1]["status"] == "COMPLETED" and bool(emsp.cdrs(session_id))

    await until(final_and_cdr, "the final session and the CDR", seconds=30)
    final = emsp.sessions(session_id)[-1]
    assert session_errors(final) == []
    assert final["auth_method"] == "COMMAND" and final["authorization_reference"] == "AUTH-REF-1"
    assert final["cdr_token"]["uid"] == uid and "end_date_time" in final
    (cdr,) = emsp.cdrs(session_id)
    assert cdr_errors(cdr) == []
    assert cdr["auth_method"] == "COMMAND" and cdr["authorization_reference"] == "AUTH-REF-1"
    assert cdr["cdr_token"]["contract_id"] == f"DE-EMS-{uid}"
    # The other eMSP saw nothing of it, and no refused command was answered later.
    assert other.sessions(session_id) == [] and other.results_at(refused) == []
    assert emsp.results_at(late) == []
    assert [len(emsp.results_at(u)) for u in (url, stop_url)] == [1, 1]


async def test_reserve_cancel_and_expire(world: World) -> None:
    emsp = world.emsp
    partner_id = world.emsp_id
    uid = f"RES-{world.version}"
    expiry = now() + timedelta(minutes=10)
    url = await emsp.accepted(
        "RESERVE_NOW",
        {
            "token": token(uid),
            "expiry_date": ts(expiry),
            "reservation_id": "emsp-res-1",
            "location_id": LOCATION,
            "evse_uid": world.evse(2),
            "authorization_reference": "AUTH-RES-1",
        },
    )
    assert (await emsp.result(url))["result"] == "ACCEPTED"
    held = await world.partner_reservation(partner_id, "emsp-res-1")
    ours = held.reservation
    assert ours.state is ReservationState.ACTIVE and ours.evse_id == 2 and ours.id_tag == uid
    # The charger holds it under our id; the eMSP's id never went there.
    at_charger = world.cp.reservations.get(ours.id)
    assert at_charger is not None and at_charger.id_tag == uid
    assert at_charger.connector_id == 2
    session_id = f"R{ours.id}"

    async def shown() -> list[dict[str, Any]]:
        return emsp.sessions(session_id)

    (session,) = await until(shown, "the RESERVATION session")
    assert session_errors(session) == []
    assert session["status"] == "RESERVATION" and session["kwh"] == 0
    assert session["auth_method"] == "COMMAND"
    assert session["authorization_reference"] == "AUTH-RES-1"
    assert session["cdr_token"]["uid"] == uid and session["evse_uid"] == world.evse(2)

    # The same reservation_id again: the reservation is replaced (same id at the charger).
    later = now() + timedelta(minutes=20)
    again = await emsp.accepted(
        "RESERVE_NOW",
        {
            "token": token(uid),
            "expiry_date": ts(later),
            "reservation_id": "emsp-res-1",
            "location_id": LOCATION,
            "evse_uid": world.evse(2),
        },
    )
    assert (await emsp.result(again))["result"] == "ACCEPTED"
    replaced = (await world.partner_reservation(partner_id, "emsp-res-1")).reservation
    assert replaced.id == ours.id and replaced.state is ReservationState.ACTIVE
    assert abs((replaced.expires_at - later).total_seconds()) < 1
    assert len(world.cp.reservations) == 1

    async def pushed_again() -> bool:
        return len(emsp.sessions(session_id)) == 2

    await until(pushed_again, "the replaced reservation's session")
    assert "authorization_reference" not in emsp.sessions(session_id)[-1]

    cancel = await emsp.accepted("CANCEL_RESERVATION", {"reservation_id": "EMSP-RES-1"})
    assert (await emsp.result(cancel))["result"] == "ACCEPTED"
    assert world.cp.reservations.get(ours.id) is None
    cancelled = (await world.partner_reservation(partner_id, "emsp-res-1")).reservation
    assert cancelled.state is ReservationState.CANCELLED

    async def completed() -> bool:
        return bool(emsp.sessions(session_id)[-1]["status"] == "COMPLETED")

    await until(completed, "the reservation's final session")
    final = emsp.sessions(session_id)[-1]
    assert session_errors(final) == [] and final["kwh"] == 0 and "end_date_time" in final
    unknown = await emsp.accepted("CANCEL_RESERVATION", {"reservation_id": "emsp-res-1"})
    assert (await emsp.result(unknown))["result"] == "UNKNOWN_RESERVATION"
    never = await emsp.accepted("CANCEL_RESERVATION", {"reservation_id": "never-made"})
    assert (await emsp.result(never))["result"] == "UNKNOWN_RESERVATION"

    # A reservation that runs out: RESERVATION, then COMPLETED once expired.
    short = await emsp.accepted(
        "RESERVE_NOW",
        {
            "token": token(uid),
            "expiry_date": ts(now() + timedelta(seconds=3)),
            "reservation_id": "emsp-res-2",
            "location_id": LOCATION,
            "evse_uid": world.evse(1),
        },
    )
    assert (await emsp.result(short))["result"] == "ACCEPTED"
    brief = (await world.partner_reservation(partner_id, "emsp-res-2")).reservation
    assert brief.id != ours.id
    brief_session = f"R{brief.id}"

    async def expired() -> bool:
        puts = emsp.sessions(brief_session)
        return [p["status"] for p in puts] == ["RESERVATION", "COMPLETED"]

    await until(expired, "the expired reservation's sessions", seconds=20)
    gone = (await world.partner_reservation(partner_id, "emsp-res-2")).reservation
    assert gone.state is ReservationState.EXPIRED
    assert all(session_errors(p) == [] for p in emsp.sessions(brief_session))
    for done in (url, again, cancel, unknown, never, short):
        assert len(emsp.results_at(done)) == 1


async def test_a_reservation_used_by_its_session(world: World) -> None:
    emsp = world.emsp
    partner_id = world.emsp_id
    uid = f"USE-{world.version}"
    url = await emsp.accepted(
        "RESERVE_NOW",
        {
            "token": token(uid),
            "expiry_date": ts(now() + timedelta(minutes=10)),
            "reservation_id": "use-1",
            "location_id": LOCATION,
            "evse_uid": world.evse(1),
        },
    )
    assert (await emsp.result(url))["result"] == "ACCEPTED"
    reservation = (await world.partner_reservation(partner_id, "use-1")).reservation
    start = await emsp.accepted(
        "START_SESSION",
        {"token": token(uid), "location_id": LOCATION, "evse_uid": world.evse(1)},
    )
    assert (await emsp.result(start))["result"] == "ACCEPTED"
    tx = await until(world.running, "the transaction on the reserved EVSE")
    assert tx.id_tag == uid and tx.reservation_id == reservation.id

    async def completed() -> bool:
        puts = emsp.sessions(f"R{reservation.id}")
        return bool(puts) and puts[-1]["status"] == "COMPLETED"

    await until(completed, "the used reservation's final session")
    used = (await world.partner_reservation(partner_id, "use-1")).reservation
    assert used.state is ReservationState.USED and used.transaction_id == tx.id


async def test_unlock_connector(world: World) -> None:
    emsp = world.emsp
    body = {"location_id": LOCATION, "evse_uid": world.evse(2), "connector_id": "1"}
    url = await emsp.accepted("UNLOCK_CONNECTOR", body)
    assert (await emsp.result(url))["result"] == "ACCEPTED"
    history = await world.server.app.commands.history(world.cp_id)
    assert history[0].command == "unlock" and history[0].source == "ocpi"
    assert history[0].requested_by == "emsp" and history[0].status == "Unlocked"
    assert emsp.addressed_to(url) == ("DE", "EMS")
    status, answer, lost = await emsp.send("UNLOCK_CONNECTOR", {**body, "connector_id": "9"})
    assert (status, answer["status_code"], answer["data"]["result"]) == (404, 2003, "REJECTED")
    assert emsp.results_at(lost) == []


async def test_unlock_is_refused_while_another_owners_session_runs(world: World) -> None:
    emsp, other = world.emsp, world.other
    uid = f"UNL-{world.version}"
    start = {"token": token(uid), "location_id": LOCATION, "evse_uid": world.evse(1)}
    assert (await emsp.result(await emsp.accepted("START_SESSION", start)))["result"] == "ACCEPTED"
    tx = await until(world.running, "the started transaction")
    body = {"location_id": LOCATION, "evse_uid": world.evse(1), "connector_id": "1"}
    with capture_logs() as logs:
        status, answer, refused = await other.send("UNLOCK_CONNECTOR", body)
    assert (status, answer["status_code"], answer["data"]["result"]) == (200, 1000, "REJECTED")
    text = answer["data"]["message"][0]["text"]
    assert "is in use by a session that is not one of your tokens'" in text
    assert "DE*EMS" not in text and uid not in text  # whose session it is stays unsaid
    (logged,) = [e for e in logs if e["event"] == "ocpi_unlock_refused"]
    assert (logged["session_owner"], logged["transaction_id"]) == ("DE*EMS", tx.id)
    assert logged["ocpi_partner"] == "other"
    history = await world.server.app.commands.history(world.cp_id)
    assert "unlock" not in [h.command for h in history]  # nothing went to the charger

    # The eMSP whose customer charges may ask (a stuck cable is its driver's); the charger
    # decides (the simulator keeps a charging connector locked).
    own = await emsp.accepted("UNLOCK_CONNECTOR", body)
    assert (await emsp.result(own))["result"] in ("ACCEPTED", "EVSE_OCCUPIED")
    history = await world.server.app.commands.history(world.cp_id)
    assert (history[0].command, history[0].requested_by) == ("unlock", "emsp")

    # A session of one of our own cards is nobody's over OCPI: refused for every partner.
    await world.server.staff.add_token(Token("LOCAL-CARD", TokenStatus.ACCEPTED))
    assert world.cp.start_session(2, "LOCAL-CARD") is not None

    async def local_running() -> bool:
        active = await world.server.staff.transactions(active_only=True, cp_id=world.cp_id)
        return any(t.evse_id == 2 and t.id_tag == "LOCAL-CARD" for t in active)

    await until(local_running, "the local card's transaction")
    local = {**body, "evse_uid": world.evse(2)}
    for peer in (emsp, other):
        status, answer, lost = await peer.send("UNLOCK_CONNECTOR", local)
        assert (status, answer["data"]["result"]) == (200, "REJECTED"), answer
        assert peer.results_at(lost) == []
    assert other.results_at(refused) == []


async def test_a_command_may_not_vouch_for_a_uid_another_owner_holds(world: World) -> None:
    emsp, other = world.emsp, world.other
    uid = f"HELD-{world.version}"
    start = {"token": token(uid), "location_id": LOCATION, "evse_uid": world.evse(1)}
    assert (await emsp.result(await emsp.accepted("START_SESSION", start)))["result"] == "ACCEPTED"
    await until(world.running, "the first owner's transaction")
    await world.server.staff.add_token(Token("OUR-CARD", TokenStatus.ACCEPTED))

    for held_uid, holder in ((uid.lower(), "DE*EMS"), ("OUR-CARD", "local")):
        claim = token(held_uid, ("FR", "OTH"))
        with capture_logs() as logs:
            status, answer, url = await other.send(
                "START_SESSION", {**start, "token": claim, "evse_uid": world.evse(2)}
            )
        assert (status, answer["data"]["result"]) == (200, "REJECTED"), answer
        text = answer["data"]["message"][0]["text"]
        assert "is another owner's at our chargers" in text and holder not in text
        (logged,) = [e for e in logs if e["event"] == "token_uid_conflict"]
        assert (logged["claimed_by"], logged["held_by"]) == ("FR*OTH", holder)
        assert other.results_at(url) == []
    # The claims were not stored: the uids stay with their owners.
    shown = await world.server.staff.token(uid)
    assert shown.origin == "DE*EMS"
    assert await world.server.staff.token_conflicts() == []


async def test_a_hub_gets_each_result_addressed_to_the_party_that_sent_the_command(
    world: World,
) -> None:
    hub, _ = await _register(world.server, "hub", HUB_ROLE)
    try:
        body = {"location_id": LOCATION, "evse_uid": world.evse(1), "connector_id": "1"}
        behind = {"OCPI-from-country-code": "FR", "OCPI-from-party-id": "X2E"}
        routed = await hub.accepted("UNLOCK_CONNECTOR", body, behind)
        assert (await hub.result(routed))["result"] == "ACCEPTED"
        assert hub.addressed_to(routed) == ("FR", "X2E")
        # Without OCPI-from headers the result is the hub's own.
        own = await hub.accepted("UNLOCK_CONNECTOR", body)
        assert (await hub.result(own))["result"] == "ACCEPTED"
        assert hub.addressed_to(own) == ("BE", "HUB")
    finally:
        await hub.fake.stop()


async def test_a_silent_charger_times_out_and_a_late_start_is_the_emsps(world: World) -> None:
    emsp = world.emsp
    uid = f"LATE-{world.version}"
    action = "RemoteStartTransaction" if world.version == "1.6" else "RequestStartTransaction"
    world.cp.unanswered.add(action)
    url = await emsp.accepted(
        "START_SESSION",
        {
            "token": token(uid),
            "location_id": LOCATION,
            "evse_uid": world.evse(2),
            "authorization_reference": "AUTH-LATE",
        },
    )
    result = await emsp.result(url)
    assert result["result"] == "TIMEOUT"
    assert await world.running() is None
    # The driver starts anyway (the command arrived after all): the eMSP vouched for it.
    world.cp.unanswered.clear()
    assert world.cp.start_session(2, uid) is not None
    tx = await until(world.running, "the late transaction")
    assert (tx.id_tag, tx.evse_id, tx.auth_status) == (uid, 2, "Accepted")

    async def pushed() -> list[dict[str, Any]]:
        return emsp.sessions(str(tx.id))

    session = (await until(pushed, "the late session"))[0]
    assert session_errors(session) == []
    assert session["auth_method"] == "COMMAND" and session["authorization_reference"] == "AUTH-LATE"
    assert session["cdr_token"]["party_id"] == "EMS" and session["cdr_token"]["uid"] == uid
    assert len(emsp.results_at(url)) == 1


async def test_requests_refused_at_once(world: World) -> None:
    emsp = world.emsp
    start: dict[str, Any] = {
        "token": token("APP-X"),
        "location_id": LOCATION,
        "evse_uid": world.evse(1),
    }

    status, answer, url = await emsp.send("FLY_AWAY", {})
    assert (status, answer["status_code"]) == (200, 2001) and "unknown command" in str(answer)
    for changes in (
        {"location_id": "NOWHERE"},
        {"evse_uid": "NOPE*1"},
        {"connector_id": "7"},
    ):
        status, answer, url = await emsp.send("START_SESSION", {**start, **changes})
        assert (status, answer["status_code"]) == (404, 2003), answer
        assert answer["data"]["result"] == "REJECTED"
    for broken in (
        {"evse_uid": None, "connector_id": "1"},
        {"token": {**start["token"], "whitelist": "MAYBE"}},
        {"token": None},
        {"location_id": None},
    ):
        body = {k: v for k, v in {**start, **broken}.items() if v is not None}
        status, answer, url = await emsp.send("START_SESSION", body)
        assert (status, answer["status_code"]) == (200, 2001), (broken, answer)
    status, answer, url = await emsp.send(
        "START_SESSION", {**start, "token": token("APP-X", ("FR", "OTH"))}
    )
    assert answer["data"]["result"] == "REJECTED" and "FR*OTH" in str(answer["data"])
    long_uid = "A-VERY-LONG-APP-USER-TOKEN-UID"
    long_token = token(long_uid, contract_id="DE-EMS-C00042")
    status, answer, url = await emsp.send("START_SESSION", {**start, "token": long_token})
    if world.version == "1.6":
        assert answer["data"]["result"] == "REJECTED"
        assert "OCPP 1.6" in answer["data"]["message"][0]["text"]
    else:
        assert answer["data"]["result"] == "ACCEPTED"
        assert (await emsp.result(url))["result"] == "ACCEPTED"
    assert len(emsp.fake.results) == (0 if world.version == "1.6" else 1)

    # A charger that is not connected: accepted, and the result says the EVSE cannot.
    await world.cp.disconnect()
    unlock = {"location_id": LOCATION, "evse_uid": world.evse(1), "connector_id": "1"}
    url = await emsp.accepted("UNLOCK_CONNECTOR", unlock)
    result = await emsp.result(url)
    assert result["result"] == "EVSE_INOPERATIVE" and "not connected" in str(result["message"])
