"""The eMSP simulator's tokens, real-time authorization and commands against a real CSMS with
a simulated 1.6 charger: tokens pushed, pulled by the CPO and patched are what the CPO holds;
the charger's Authorize reaches the simulator in each answer mode; START_SESSION and
STOP_SESSION run a real session whose result comes back to the command's response_url; and
`csms-sim emsp` does the same from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from csms.app import CsmsApp
from csms.core.clock import utc_now
from csms.core.locations import Location
from csms.core.parties import Party as CsmsParty
from csms.core.transactions import Transaction
from csms.services.locations import LocationService
from csms.storage import ocpi_tokens as ocpi_token_repo
from simulators.emsp import EmspSimulator, Party
from simulators.emsp_tokens import parse_mode
from simulators.errors import EmspError
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from tests.e2e.conftest import Running, make_config

T = TypeVar("T")

LOCATION = "LOC-SIM"
CP_ID = "EMSP-SIM-16"
EVSE = f"{CP_ID}*1"
AUTHORIZE_TIMEOUT = 1.0


async def until(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 20.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass
class World:
    cpo: Running
    emsp: EmspSimulator
    cp: V16Charger

    @property
    def versions_url(self) -> str:
        return f"{self.cpo.ocpi_url}/ocpi/versions"

    async def running(self) -> Transaction | None:
        active = await self.cpo.staff.transactions(active_only=True, cp_id=CP_ID)
        return active[0] if active else None


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Running]:
    config = make_config(
        tmp_path / "csms.db",
        ocpp={"call_timeout": 5.0},
        ocpi={"session_update_interval": 1.0, "authorize_timeout": AUTHORIZE_TIMEOUT},
    )
    app = CsmsApp(config)
    await app.start()
    locations = LocationService(app.db, utc_now)
    await locations.add(
        Location(
            id=LOCATION,
            name="eMSP simulator depot",
            address="Kade 3",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link(LOCATION, CP_ID, None)
    yield Running(app, config, tmp_path / "csms.db")
    await app.stop()


@pytest.fixture
async def world(cpo: Running) -> AsyncIterator[World]:
    """The CPO, a running 1.6 charger at LOCATION (sessions only when asked), and the eMSP
    simulator registered with the CPO, once the charger's EVSE is published."""
    cp = V16Charger(
        ChargerOptions(
            url=cpo.url,
            charger_id=CP_ID,
            connectors=1,
            sessions=0,
            meter_interval=0.3,
            seed=3,
            response_timeout=10,
        )
    )
    task = asyncio.create_task(cp.run())
    emsp = EmspSimulator(Party("NL", "EMS", "Sim eMSP"))
    await emsp.start()
    world = World(cpo, emsp, cp)
    invitation = await cpo.app.partners.add("sim")
    await emsp.register(world.versions_url, invitation.token_a)

    async def published() -> bool:
        locations = await emsp.pull("locations")
        evses = [e["uid"] for loc in locations for e in loc.get("evses", [])]
        return EVSE in evses

    await until(published, "the charger's EVSE published")
    yield world
    await emsp.stop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()


async def test_tokens_pushed_pulled_and_patched_are_what_the_cpo_holds(cpo: Running) -> None:
    async with EmspSimulator(Party("NL", "EMS", "Sim eMSP")) as emsp:
        emsp.add_token("PULLED01", "ALLOWED_OFFLINE")
        invitation = await cpo.app.partners.add("tokens")
        await emsp.register(f"{cpo.ocpi_url}/ocpi/versions", invitation.token_a)

        # The CPO pulls our token list after registering (its tokens Sender is offered).
        async def pulled() -> bool:
            return any(p.method == "GET" and p.module == "tokens" for p in emsp.received)

        await until(pulled, "the CPO's pull of our tokens")
        held = await until(
            lambda: _held_or_none(emsp, "PULLED01"), "the pulled token stored", seconds=10
        )
        assert held["whitelist"] == "ALLOWED_OFFLINE" and held["contract_id"] == "NL-EMS-CPULLED01"

        made = emsp.add_tokens(4)
        sent = await emsp.push_tokens(made)
        assert [(s.uid, s.http_status) for s in sent] == [
            ("EMS0001", 201),
            ("EMS0002", 201),
            ("EMS0003", 201),
            ("EMS0004", 201),
        ]
        for token in made:
            at_cpo = await emsp.token_at_cpo(token["uid"])
            assert {k: at_cpo[k] for k in ("uid", "type", "whitelist", "valid", "issuer")} == {
                "uid": token["uid"],
                "type": "RFID",
                "whitelist": token["whitelist"],
                "valid": True,
                "issuer": "Sim eMSP",
            }
        # Pushed again: the CPO had them all.
        assert {s.http_status for s in await emsp.push_tokens()} == {200}

        patched = await emsp.patch_token("EMS0002", {"valid": False, "whitelist": "NEVER"})
        assert patched.http_status == 200
        at_cpo = await emsp.token_at_cpo("EMS0002")
        assert (at_cpo["valid"], at_cpo["whitelist"]) == (False, "NEVER")
        assert at_cpo["last_updated"].startswith(patched.body["last_updated"][:19])


async def _held_or_none(emsp: EmspSimulator, uid: str) -> dict[str, Any] | None:
    try:
        return await emsp.token_at_cpo(uid)
    except EmspError:
        return None


async def test_the_chargers_authorize_reaches_the_emsp_in_each_mode(world: World) -> None:
    emsp, cp = world.emsp, world.cp
    rules = {"ACC": "NEVER", "DNY": "NEVER", "BLK": "NEVER", "DWN": "ALLOWED", "DWX": "NEVER"}
    rules |= {"SLW": "ALLOWED", "SLX": "NEVER"}
    for uid, rule in rules.items():
        emsp.add_token(uid, rule)
    await emsp.push_tokens()

    async def status(uid: str) -> str:
        return str((await cp.authorize(uid))["idTagInfo"]["status"])

    assert await status("ACC") == "Accepted"
    asked = emsp.authorizations[-1]
    assert (asked.uid, asked.allowed) == ("ACC", "ALLOWED") and asked.reference
    assert asked.location is not None and asked.location["location_id"] == LOCATION
    assert EVSE in asked.location["evse_uids"]

    emsp.authorize_mode = parse_mode("deny")
    assert await status("DNY") == "Invalid"
    emsp.authorize_mode = parse_mode("deny:BLOCKED")
    assert await status("BLK") == "Blocked"
    assert [a.allowed for a in emsp.authorizations] == ["ALLOWED", "NOT_ALLOWED", "BLOCKED"]

    # Down: an ALLOWED token falls back to what the CPO holds, a NEVER one is refused.
    emsp.authorize_mode = parse_mode("down")
    assert await status("DWN") == "Accepted"
    assert await status("DWX") == "Invalid"
    assert [a.answer for a in emsp.authorizations[-2:]] == ["HTTP 503", "HTTP 503"]

    # Slower than the CPO waits: the same, and the charger is answered within its bound.
    emsp.authorize_mode = parse_mode(f"slow:{AUTHORIZE_TIMEOUT * 2}")
    started = time.monotonic()
    assert await status("SLW") == "Accepted"
    assert await status("SLX") == "Invalid"
    took = time.monotonic() - started
    assert 2 * AUTHORIZE_TIMEOUT <= took < 2 * AUTHORIZE_TIMEOUT + 3.0
    lines = [p.line for p in emsp.received if p.module == "tokens" and p.target == "ACC/authorize"]
    assert lines == [f"POST tokens ACC/authorize RFID at {LOCATION} [{EVSE}]: {asked.answer}"]


async def test_start_and_stop_a_session_with_commands(world: World) -> None:
    emsp = world.emsp
    emsp.add_token("CMD01", "NEVER")
    await emsp.push_tokens()

    sent = await emsp.start_session("CMD01", LOCATION, EVSE, "1", "SIM-REF-1")
    assert sent.response is not None and sent.response.result == "ACCEPTED"
    assert sent.response.timeout is not None and sent.response.timeout > 0
    result = await emsp.command_result(sent.id, 20)
    assert (result.command, result.result) == ("START_SESSION", "ACCEPTED")
    assert emsp.stores.commands.sent[sent.id].request["response_url"].startswith(emsp.base_url)

    # The session the CPO pushes to us is the command's: our token and reference.
    async def session() -> dict[str, Any] | None:
        for held in emsp.stores.sessions.values():
            if held.get("cdr_token", {}).get("uid") == "CMD01":
                return held
        return None

    started = await until(session, "the session pushed to the eMSP")
    assert started["auth_method"] == "COMMAND"
    assert started["authorization_reference"] == "SIM-REF-1"
    assert (started["location_id"], started["evse_uid"]) == (LOCATION, EVSE)

    stop = await emsp.stop_session(started["id"])
    assert stop.response is not None and stop.response.result == "ACCEPTED"
    assert (await emsp.command_result(stop.id, 20)).result == "ACCEPTED"

    async def completed() -> bool:
        held = await session()
        return held is not None and held["status"] == "COMPLETED"

    await until(completed, "the session completed", seconds=30)
    # A session that is over cannot be stopped again: answered at once, no result follows.
    again = await emsp.stop_session(started["id"])
    assert again.response is not None and again.response.result == "UNKNOWN_SESSION"
    assert [len(emsp.stores.commands.results_of(c.id)) for c in (sent, stop, again)] == [1, 1, 0]
    assert f"POST commands START_SESSION/{sent.id} ACCEPTED" in [
        p.line.split(":")[0] for p in emsp.received
    ]


async def test_unlock_and_an_unknown_location(world: World) -> None:
    emsp = world.emsp
    sent = await emsp.unlock_connector(LOCATION, EVSE, "1")
    assert sent.response is not None and sent.response.result == "ACCEPTED"
    result = await emsp.command_result(sent.id, 20)
    assert result.result in ("ACCEPTED", "FAILED", "NOT_SUPPORTED")
    with pytest.raises(EmspError, match="2003"):
        await emsp.unlock_connector("NO-SUCH-LOC", EVSE, "1")
    assert sent.id in emsp.stores.commands.sent and len(emsp.stores.commands.sent) == 1


# --- csms-sim emsp ---------------------------------------------------------------------------


async def _line(stream: asyncio.StreamReader, what: str, seconds: float = 30.0) -> str:
    async with asyncio.timeout(seconds):
        while True:
            raw = await stream.readline()
            assert raw, f"output ended before {what}"
            line = raw.decode().strip()
            if what in line:
                return line


async def _command(*args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators",
        "emsp",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def test_command_line_pushes_tokens_and_starts_a_session(world: World) -> None:
    invitation = await world.cpo.app.partners.add("cli")
    proc = await _command(
        "--versions-url",
        world.versions_url,
        "--token-a",
        invitation.token_a,
        "--party-id",
        "CLI",
        "--token",
        "CLITAG1:NEVER",
        "--tokens",
        "2",
        "--authorize",
        "deny:BLOCKED",
        "--command",
        "START_SESSION",
        "--location",
        LOCATION,
        "--evse",
        EVSE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        await _line(proc.stdout, "registered")
        assert await _line(proc.stdout, "CLITAG1") == "PUT token CLITAG1 RFID NEVER: HTTP 201"
        assert await _line(proc.stdout, "CLI0001") == "PUT token CLI0001 RFID ALWAYS: HTTP 201"
        assert await _line(proc.stdout, "CLI0002") == "PUT token CLI0002 RFID ALLOWED: HTTP 201"
        answer = await _line(proc.stdout, "command START_SESSION")
        match = re.fullmatch(
            r"command START_SESSION ([0-9a-f]{32}): ACCEPTED \(timeout \d+ s\)", answer
        )
        assert match is not None, answer
        command_id = match.group(1)
        result = await _line(proc.stdout, f"POST commands START_SESSION/{command_id}")
        assert result.startswith(f"POST commands START_SESSION/{command_id} ACCEPTED")
        # The CPO holds the tokens with the rules given.
        async with world.cpo.app.db.read() as conn:
            stored = await ocpi_token_repo.get(conn, CsmsParty("NL", "CLI"), "CLITAG1", "RFID")
        assert stored is not None and stored.whitelist.value == "NEVER"
        # The charger's session runs with our token.
        tx = await until(world.running, "the started transaction")
        assert tx.id_tag == "CLITAG1"
        proc.send_signal(signal.SIGTERM)
        stopped = await _line(proc.stdout, "eMSP stopped")
        assert "push(es) received" in stopped
        async with asyncio.timeout(15):
            code = await proc.wait()
        err = await proc.stderr.read()
        assert code == 0, err
        assert b"Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_command_line_json_and_a_command_refused(world: World) -> None:
    invitation = await world.cpo.app.partners.add("cli-json")
    proc = await _command(
        "--versions-url",
        world.versions_url,
        "--token-a",
        invitation.token_a,
        "--party-id",
        "CLJ",
        "--json",
        "--command",
        "STOP_SESSION",
        "--session",
        "999999",
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        event = json.loads(await _line(proc.stdout, '"event": "command"'))
        assert event["command"] == "STOP_SESSION"
        assert event["response"]["result"] == "UNKNOWN_SESSION"
        assert event["request"]["session_id"] == "999999"
        assert event["request"]["response_url"].endswith(f"/STOP_SESSION/{event['id']}")
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    bad = await _command(
        "--versions-url", world.versions_url, "--token-a", "x", "--command", "START_SESSION"
    )
    async with asyncio.timeout(30):
        _, err = await bad.communicate()
    assert bad.returncode == 2
    assert err.decode().strip() == "csms-sim: --command START_SESSION needs --location and --token"
