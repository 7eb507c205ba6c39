"""The OCPI ChargingProfiles module (Receiver) on a real server: a fake eMSP steers the
session of its token on a simulated charger of each OCPP version (PUT a TxProfile, GET the
ActiveChargingProfile, DELETE), gets each result POSTed to its response_url, and is refused
what it may not do; a raw charger shows the CALL on the wire and what a CALLERROR, silence
and being offline come to. Charging preferences are answered 404 / 2001."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import parse_timestamp, utc_now
from csms.core.command_requests import ConfigSetRequest
from csms.core.errors import UnknownChargePoint
from csms.core.locations import Location
from csms.services.locations import LocationService
from csms.storage import charging_profiles as profile_repo
from csms.storage import ocpi_commands as request_repo
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.profiles import Period, Profile, Purpose
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from simulators.versions import create_charger
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import EMSP_ROLE, FakePartner
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import ts, until

VERSIONS = ["1.6", "2.0.1"]
EMS_CARD = "EMS-SMART"  # owned by the fake eMSP's party, DE*EMS
OTHER_ROLE = {
    "role": "EMSP",
    "country_code": "FR",
    "party_id": "OTH",
    "business_details": {"name": "Other eMSP"},
}
# The charger's time to answer (ocpp.call_timeout): results come within it + 5 s.
CALL_TIMEOUT = 2.0
TIMEOUT = 7


@dataclass
class Peer:
    """A fake partner registered with the server, and our chargingprofiles endpoint."""

    fake: FakePartner
    partner_id: int
    profiles_url: str
    sessions_url: str

    @property
    def token(self) -> str:
        assert self.fake.our_token is not None
        return self.fake.our_token

    def url(self, session_id: object, **query: object) -> str:
        url = f"{self.profiles_url}/{session_id}"
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url

    def reply_to(self, tail: str) -> str:
        return f"{self.fake.results_url}/{tail}"

    async def ask(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        """A request whose answer is a ChargingProfileResponse (HTTP 200, 1000)."""
        status, answer, _ = await self.fake.call(method, url, self.token, body)
        assert status == 200 and answer["status_code"] == 1000, answer
        data: dict[str, Any] = answer["data"]
        assert data["timeout"] == TIMEOUT, data
        return data

    async def result(self, tail: str) -> dict[str, Any]:
        """The one result POSTed to reply_to(tail), once it arrived."""

        async def arrived() -> list[Any]:
            return [s for s in self.fake.results if s.path.endswith(f"/results/{tail}")]

        (seen,) = await until(arrived, f"the result {tail}")
        assert seen.method == "POST"
        body: dict[str, Any] = seen.body
        return body

    def results_for(self, tail: str) -> list[Any]:
        return [s for s in self.fake.results if s.path.endswith(f"/results/{tail}")]


async def _register(server: Running, name: str, role: dict[str, Any]) -> Peer:
    fake = await FakePartner(roles=(role,)).start()
    invitation = await server.app.partners.add(name)
    await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.ocpi_url}/ocpi/2.2.1", fake.our_token)
    ours = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    return Peer(
        fake,
        invitation.partner.id,
        ours[("chargingprofiles", "RECEIVER")],
        ours[("sessions", "SENDER")],
    )


async def _site(server: Running, *cp_ids: str) -> None:
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id="LOC-SC",
            name="Smart depot",
            address="Kade 2",
            city="Amsterdam",
            postal_code="1011AB",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    for cp_id in cp_ids:
        await locations.link("LOC-SC", cp_id, None)
    await server.staff.add_token(Token(EMS_CARD, TokenStatus.ACCEPTED, origin="DE*EMS"))


async def _running_tx(server: Running, cp_id: str) -> int:
    async def running() -> Any:
        active = await server.staff.transactions(active_only=True, cp_id=cp_id)
        return active[0] if active else None

    tx = await until(running, f"a transaction on {cp_id}")
    assert tx.id_tag == EMS_CARD and tx.evse_id == 1
    return int(tx.id)


@dataclass
class Stage:
    server: Running
    cp: ChargerBase
    cp_id: str
    version: str
    tx_id: int
    emsp: Peer
    other: Peer

    def tx_profiles(self) -> list[Profile]:
        return [p for p in self.cp.profiles.all() if p.purpose is Purpose.TX]

    def wire_tx(self) -> object:
        cp = self.cp
        assert isinstance(cp, V16Charger | V201Charger)
        found = cp.transaction_on(1)
        assert found is not None
        return found.transaction_id

    async def stored(self) -> list[Any]:
        async with self.server.app.db.read() as conn:
            return [
                s
                for s in await profile_repo.installed(conn, self.cp_id)
                if s.transaction_id == self.tx_id
            ]

    async def requests(self, peer: Peer) -> list[Any]:
        async with self.server.app.db.read() as conn:
            return await request_repo.recent(conn, peer.partner_id)


@pytest.fixture(params=VERSIONS)
async def stage(request: pytest.FixtureRequest, start_server: StartServer) -> AsyncIterator[Stage]:
    version: str = request.param
    cp_id = f"SMART-{version}"
    server = await start_server(ocpp={"call_timeout": CALL_TIMEOUT})
    await _site(server, cp_id)
    emsp = await _register(server, "emsp", EMSP_ROLE)
    other = await _register(server, "other", OTHER_ROLE)
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            connectors=2,
            sessions=0,
            meter_interval=0.5,
            seed=7,
            response_timeout=10,
        )
    )
    assert isinstance(cp, V16Charger | V201Charger)
    cp.step_seconds = 0.02
    task = asyncio.create_task(cp.run())

    async def announced() -> bool:
        try:
            detail = await server.staff.charger(cp_id)
        except UnknownChargePoint:
            return False
        return {c.evse_id for c in detail.connectors} >= {1, 2}

    await until(announced, "the charger's connectors")
    assert cp.start_session(1, EMS_CARD) is not None
    tx_id = await _running_tx(server, cp_id)
    yield Stage(server, cp, cp_id, version, tx_id, emsp, other)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()
    for peer in (emsp, other):
        await peer.fake.stop()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_profile_is_set_read_replaced_and_cleared(stage: Stage) -> None:
    emsp, cp, tx_id = stage.emsp, stage.cp, stage.tx_id
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    schedule = {
        "start_date_time": _iso(start),
        "duration": 3600,
        "charging_rate_unit": "W",
        "min_charging_rate": 1400,
        "charging_profile_period": [
            {"start_period": 0, "limit": 7000},
            {"start_period": 600, "limit": 3700},
        ],
    }

    # PUT: the TxProfile of this transaction at the charger, with both periods.
    body = {"charging_profile": schedule, "response_url": emsp.reply_to("set-1")}
    assert await emsp.ask("PUT", emsp.url(tx_id), body) == {"result": "ACCEPTED", "timeout": 7}
    assert await emsp.result("set-1") == {"result": "ACCEPTED"}
    (installed,) = stage.tx_profiles()
    assert installed.connector_id == 1 and installed.transaction_id == stage.wire_tx()
    assert installed.periods == (Period(0, 7000.0), Period(600, 3700.0))
    assert installed.unit == "W" and installed.kind == "Absolute"
    assert installed.start == start and installed.duration_s == 3600
    schedule_wire = installed.wire["chargingSchedule"]
    if stage.version == "2.0.1":
        schedule_wire = schedule_wire[0]
    assert schedule_wire["minChargingRate"] == 1400
    assert cp.station.connector(1).limit_w == 7000
    (stored,) = await stage.stored()
    assert stored.profile.limit == 7000 and stored.profile.unit == "W"
    (entry, *_) = await stage.server.app.commands.history(stage.cp_id)
    assert (entry.command, entry.source, entry.requested_by) == ("profile-set", "ocpi", "emsp")
    assert entry.outcome == "accepted" and entry.params["transaction"] == tx_id

    # GET: the composite schedule, in the unit of the session's profile.
    url = emsp.url(tx_id, duration=900, response_url=emsp.reply_to("get-1"))
    assert (await emsp.ask("GET", url))["result"] == "ACCEPTED"
    got = await emsp.result("get-1")
    assert got["result"] == "ACCEPTED"
    active = got["profile"]
    asked_at = parse_timestamp(active["start_date_time"])
    assert abs((asked_at - datetime.now(UTC)).total_seconds()) < 30
    profile = active["charging_profile"]
    assert profile["charging_rate_unit"] == "W" and profile["duration"] == 900
    first, second = profile["charging_profile_period"]
    assert first == {"start_period": 0, "limit": 7000}
    assert second["limit"] == 3700 and 570 <= second["start_period"] <= 600

    # PUT again, relative and in A: it replaces the first at the charger.
    relative = {
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 10}],
    }
    body = {"charging_profile": relative, "response_url": emsp.reply_to("set-2")}
    assert (await emsp.ask("PUT", emsp.url(tx_id), body))["result"] == "ACCEPTED"
    assert await emsp.result("set-2") == {"result": "ACCEPTED"}
    (installed,) = stage.tx_profiles()
    assert installed.kind == "Relative" and installed.start is None
    assert installed.unit == "A" and installed.periods == (Period(0, 10.0),)
    (stored,) = await stage.stored()
    assert stored.profile.unit == "A" and stored.profile.limit == 10
    url = emsp.url(tx_id, duration=60, response_url=emsp.reply_to("get-2"))
    assert (await emsp.ask("GET", url))["result"] == "ACCEPTED"
    got = await emsp.result("get-2")
    profile = got["profile"]["charging_profile"]
    assert profile["charging_rate_unit"] == "A"
    assert profile["charging_profile_period"] == [{"start_period": 0, "limit": 10}]

    # DELETE: gone at the charger and here; a second DELETE finds nothing.
    url = emsp.url(tx_id, response_url=emsp.reply_to("clear-1"))
    assert (await emsp.ask("DELETE", url))["result"] == "ACCEPTED"
    assert await emsp.result("clear-1") == {"result": "ACCEPTED"}
    assert stage.tx_profiles() == []
    assert await stage.stored() == []
    url = emsp.url(tx_id, response_url=emsp.reply_to("clear-2"))
    assert (await emsp.ask("DELETE", url))["result"] == "ACCEPTED"
    assert await emsp.result("clear-2") == {"result": "UNKNOWN"}
    assert len(await stage.requests(emsp)) == 6


async def test_what_the_partner_may_not_do(stage: Stage) -> None:
    emsp, other, tx_id = stage.emsp, stage.other, stage.tx_id
    profile = {
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 16}],
    }

    def put(tail: str) -> dict[str, Any]:
        return {"charging_profile": profile, "response_url": emsp.reply_to(tail)}

    unknown = {"result": "UNKNOWN_SESSION", "timeout": TIMEOUT}
    # No such session, and ids that cannot be ours.
    for session_id in (tx_id + 1000, "0", "abc", f"0{tx_id}"):
        assert await emsp.ask("PUT", emsp.url(session_id), put("never-1")) == unknown
    url = emsp.url(tx_id + 1000, duration=60, response_url=emsp.reply_to("never-2"))
    assert await emsp.ask("GET", url) == unknown
    url = emsp.url(tx_id + 1000, response_url=emsp.reply_to("never-3"))
    assert await emsp.ask("DELETE", url) == unknown
    # Another party's session does not exist for it.
    other_put = {"charging_profile": profile, "response_url": other.reply_to("never-4")}
    assert await other.ask("PUT", other.url(tx_id), other_put) == unknown
    url = other.url(tx_id, duration=60, response_url=other.reply_to("never-5"))
    assert await other.ask("GET", url) == unknown

    # Missing or invalid parameters: 2001.
    bad_requests: list[tuple[str, str, Any]] = [
        ("GET", emsp.url(tx_id, duration=60), None),
        ("GET", emsp.url(tx_id, response_url=emsp.reply_to("never-6")), None),
        ("GET", emsp.url(tx_id, duration="soon", response_url=emsp.reply_to("never-6")), None),
        ("DELETE", emsp.url(tx_id), None),
        ("DELETE", emsp.url(tx_id, response_url="not-a-url"), None),
        ("PUT", emsp.url(tx_id), {"charging_profile": profile}),
        ("PUT", emsp.url(tx_id), {"response_url": emsp.reply_to("never-7")}),
        (
            "PUT",
            emsp.url(tx_id),
            {
                "charging_profile": {**profile, "charging_rate_unit": "kW"},
                "response_url": emsp.reply_to("never-7"),
            },
        ),
        (
            "PUT",
            emsp.url(tx_id),
            {
                "charging_profile": {**profile, "charging_profile_period": []},
                "response_url": emsp.reply_to("never-7"),
            },
        ),
    ]
    for method, url, body in bad_requests:
        status, answer, _ = await emsp.fake.call(method, url, emsp.token, body)
        assert status == 200 and answer["status_code"] == 2001, (method, url, answer)
    status, answer, _ = await emsp.fake.call(
        "PUT", emsp.url(tx_id), emsp.token, raw_body=b"{not json"
    )
    assert status == 400 and answer["status_code"] == 2001

    # None of these was stored or sent to the charger, and no result follows.
    assert await stage.requests(emsp) == [] and await stage.requests(other) == []
    assert stage.tx_profiles() == []
    await asyncio.sleep(0.5)
    assert emsp.fake.results == [] and other.fake.results == []


# 2.0.1 only: a 1.6 charger's configuration is not kept, the charger itself refuses (below).
@pytest.mark.parametrize("stage", ["2.0.1"], indirect=True)
async def test_a_station_without_smart_charging_is_not_supported(stage: Stage) -> None:
    emsp, commands = stage.emsp, stage.server.app.commands

    async def smart(enabled: str) -> None:
        result = await commands.execute(
            stage.cp_id, ConfigSetRequest("SmartChargingCtrlr.Enabled", enabled)
        )
        assert result.ok, result.message

    await smart("false")
    body = {
        "charging_profile": {
            "charging_rate_unit": "W",
            "charging_profile_period": [{"start_period": 0, "limit": 5000}],
        },
        "response_url": emsp.reply_to("off-1"),
    }
    answer = await emsp.ask("PUT", emsp.url(stage.tx_id), body)
    assert answer == {"result": "NOT_SUPPORTED", "timeout": TIMEOUT}
    url = emsp.url(stage.tx_id, duration=60, response_url=emsp.reply_to("off-2"))
    assert (await emsp.ask("GET", url))["result"] == "NOT_SUPPORTED"
    assert await stage.requests(emsp) == []
    await smart("true")
    body["response_url"] = emsp.reply_to("on-1")
    assert (await emsp.ask("PUT", emsp.url(stage.tx_id), body))["result"] == "ACCEPTED"
    assert await emsp.result("on-1") == {"result": "ACCEPTED"}
    assert emsp.results_for("off-1") == emsp.results_for("off-2") == []


async def test_charging_preferences_are_not_supported(stage: Stage) -> None:
    emsp = stage.emsp
    url = f"{emsp.sessions_url}/{stage.tx_id}/charging_preferences"
    preferences = {"profile_type": "FAST", "departure_time": _iso(datetime.now(UTC))}
    status, answer, _ = await emsp.fake.call("PUT", url, emsp.token, preferences)
    assert status == 404 and answer["status_code"] == 2001
    assert "CHARGING_PREFERENCES_CAPABLE" in answer["status_message"]
    status, answer, headers = await emsp.fake.call("GET", url, emsp.token)
    assert status == 405 and answer["status_code"] == 2000 and "PUT" in headers["Allow"]


# --- on the wire: a raw 1.6 charger -------------------------------------------------------


async def _next_call(ws: ClientConnection, action: str) -> list[Any]:
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame[0] == 2 and frame[2] == action:
            return list(frame)


async def test_on_the_wire_call_errors_silence_and_offline(start_server: StartServer) -> None:
    server = await start_server(ocpp={"call_timeout": CALL_TIMEOUT})
    await _site(server, "SMART-RAW")
    emsp = await _register(server, "emsp", EMSP_ROLE)
    ws = await open_raw(server.url, "SMART-RAW")
    await call(ws, "BootNotification", BOOT)
    started = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": EMS_CARD, "meterStart": 0, "timestamp": ts(utc_now())},
    )
    tx_id = int(started[2]["transactionId"])
    start = datetime(2030, 1, 1, tzinfo=UTC)
    body = {
        "charging_profile": {
            "start_date_time": _iso(start),
            "charging_rate_unit": "A",
            "min_charging_rate": 6.5,
            "charging_profile_period": [
                {"start_period": 0, "limit": 16},
                {"start_period": 1800, "limit": 8.5},
            ],
        },
        "response_url": emsp.reply_to("wire-1"),
    }

    # The CALL as sent; a CALLERROR NotSupported is REJECTED.
    assert (await emsp.ask("PUT", emsp.url(tx_id), body))["result"] == "ACCEPTED"
    frame = await _next_call(ws, "SetChargingProfile")
    assert frame[3] == {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": frame[3]["csChargingProfiles"]["chargingProfileId"],
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": tx_id,
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16.0},
                    {"startPeriod": 1800, "limit": 8.5},
                ],
                "startSchedule": "2030-01-01T00:00:00.000Z",
                "minChargingRate": 6.5,
            },
        },
    }
    await ws.send(orjson.dumps([4, frame[1], "NotSupported", "no smart charging", {}]).decode())
    assert await emsp.result("wire-1") == {"result": "REJECTED"}

    # No answer at all: REJECTED once the charger's time is up.
    body["response_url"] = emsp.reply_to("wire-2")
    asked = asyncio.get_running_loop().time()
    assert (await emsp.ask("PUT", emsp.url(tx_id), body))["result"] == "ACCEPTED"
    await _next_call(ws, "SetChargingProfile")
    assert await emsp.result("wire-2") == {"result": "REJECTED"}
    waited = asyncio.get_running_loop().time() - asked
    assert CALL_TIMEOUT - 0.5 < waited < TIMEOUT

    # The clear is a ClearChargingProfile of the session's TxProfiles, by criteria.
    url = emsp.url(tx_id, response_url=emsp.reply_to("wire-3"))
    assert (await emsp.ask("DELETE", url))["result"] == "ACCEPTED"
    frame = await _next_call(ws, "ClearChargingProfile")
    assert frame[3] == {"connectorId": 1, "chargingProfilePurpose": "TxProfile"}
    await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
    assert await emsp.result("wire-3") == {"result": "ACCEPTED"}

    # Offline: accepted (the session is running), then REJECTED.
    await ws.close()

    async def offline() -> bool:
        return not (await server.staff.charger("SMART-RAW")).charger.connected

    await until(offline, "the charger offline")
    url = emsp.url(tx_id, duration=60, response_url=emsp.reply_to("wire-4"))
    assert (await emsp.ask("GET", url))["result"] == "ACCEPTED"
    assert await emsp.result("wire-4") == {"result": "REJECTED"}
    (entry, *_) = await server.app.commands.history("SMART-RAW")
    assert entry.command == "profile-composite" and entry.outcome == "not_connected"
    await emsp.fake.stop()
