"""Every `csms remote` command, through the CLI and the operator API, against a simulated
charger of each OCPP version, with its effect checked on the charger and in the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.core.authorization import Token, TokenStatus
from csms.core.errors import UnknownChargePoint
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import Ran, csms, remote
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until

VERSIONS = ["1.6", "2.0.1"]


def ok(ran: Ran) -> dict[str, Any]:
    assert ran.code == 0, (ran.out, ran.err)
    body: dict[str, Any] = ran.json()
    assert body["ok"] is True and body["outcome"] == "accepted"
    return body


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(params=VERSIONS)
async def station(
    request: pytest.FixtureRequest, start_server: StartServer
) -> AsyncIterator[tuple[Running, ChargerBase, str]]:
    version: str = request.param
    server = await start_server()
    for uid in ("CARD1", "CARD2"):
        await server.staff.add_token(Token(uid, TokenStatus.ACCEPTED))
    cp_id = f"REMOTE-{version}"
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            connectors=2,
            sessions=0,
            meter_interval=0.3,
            seed=5,
            response_timeout=10,
        )
    )
    assert isinstance(cp, ChargerBase)  # create_charger gives the shared protocol
    cp.step_seconds = 0.02
    task = asyncio.create_task(cp.run())

    async def announced() -> bool:
        try:
            detail = await server.staff.charger(cp_id)
        except UnknownChargePoint:
            return False
        return {c.evse_id for c in detail.connectors} >= {1, 2}

    await until(announced, "the charger's connectors")
    yield server, cp, cp_id
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()


async def status_of(server: Running, cp_id: str, evse: int) -> str:
    detail = await server.staff.charger(cp_id)
    return next(c.status.value for c in detail.connectors if c.evse_id == evse)


@pytest.mark.slow
async def test_every_command(station: tuple[Running, ChargerBase, str]) -> None:
    server, cp, cp_id = station
    version = "2.0.1" if cp_id.endswith("2.0.1") else "1.6"
    sent = 0

    async def run(*args: str) -> Ran:
        nonlocal sent
        sent += 1
        head = 2 if args[0] == "profile" else 1
        return await remote(server, *args[:head], cp_id, *args[head:])

    # --- configuration ---------------------------------------------------------------
    key = "HeartbeatInterval" if version == "1.6" else "OCPPCommCtrlr.HeartbeatInterval"
    assert ok(await run("config-set", key, "120"))["status"] == "Accepted"
    got = ok(await run("config-get", key, "Nope.Nothing"))
    assert got["data"]["keys"][0] == {"key": key, "value": "120", "readonly": False} or got["data"][
        "keys"
    ][0] == {"key": key, "value": "120"}
    assert got["data"]["unknown"] == ["Nope.Nothing"]
    if version == "1.6":
        everything = ok(await run("config-get"))["data"]["keys"]
        assert {"HeartbeatInterval", "SupportedFeatureProfiles"} <= {k["key"] for k in everything}
        refused = await run("config-set", "ChargeProfileMaxStackLevel", "99")
        assert refused.code == 1 and refused.json()["status"] == "Rejected"
    else:
        variables = await server.staff.variables(cp_id)
        stored = [
            v
            for v in variables
            if (v.component, v.variable) == ("OCPPCommCtrlr", "HeartbeatInterval")
            and v.attribute_type == "Actual"
        ]
        assert stored and stored[0].value == "120"
        missing = await run("config-get")
        assert missing.code == 1 and "name the variables" in missing.json()["message"]

    # --- trigger, data transfer, clear cache --------------------------------------------
    assert ok(await run("trigger", "StatusNotification", "--evse", "1"))["status"] == "Accepted"
    assert ok(await run("trigger", "heartbeat"))["action"] == "TriggerMessage"
    other = "LogStatusNotification" if version == "1.6" else "DiagnosticsStatusNotification"
    ok(await run("trigger", other))
    echo = ok(await run("data-transfer", "CsmsSim", "--message-id", "ping", "--data", "hello"))
    assert echo["data"]["data"] == "hello"
    unknown_vendor = await run("data-transfer", "SomeoneElse")
    assert unknown_vendor.code == 1 and unknown_vendor.json()["status"] == "UnknownVendorId"
    assert ok(await run("clear-cache"))["status"] == "Accepted"

    # --- availability ------------------------------------------------------------------
    ok(await run("availability", "inoperative", "--evse", "2"))

    async def unavailable() -> bool:
        return await status_of(server, cp_id, 2) == "Unavailable"

    await until(unavailable, "EVSE 2 Unavailable")
    ok(await run("availability", "operative", "--evse", "2"))

    async def available2() -> bool:
        return await status_of(server, cp_id, 2) == "Available"

    await until(available2, "EVSE 2 Available again")

    # --- remote start, profiles, remote stop -------------------------------------------
    started = ok(await run("start", "--tag", "CARD1", "--evse", "1"))

    async def running() -> Any:
        active = await server.staff.transactions(active_only=True, cp_id=cp_id)
        return active[0] if active else None

    tx = await until(running, "the remote-started transaction")
    assert tx.remote_start_id == started["id"] == started["data"]["remote_start_id"]
    assert (tx.evse_id, tx.id_tag, tx.auth_status) == (1, "CARD1", "Accepted")

    capped = ok(
        await run(
            "profile",
            "set",
            "--evse",
            "1",
            "--limit",
            "3700",
            "--unit",
            "W",
            "--purpose",
            "TxProfile",
        )
    )
    profile_id = capped["data"]["profile_id"]
    assert capped["data"]["transaction_id"] == tx.id
    assert cp.station.connector(1).limit_w == 3700
    composite = ok(await run("profile", "composite", "--evse", "1", "--duration", "600"))
    assert composite["data"]["unit"] == "W"
    assert composite["data"]["periods"][0]["limit"] == 3700
    shown = (await csms(server, "chargers", "show", cp_id, "--json")).json()
    assert [p["id"] for p in shown["charging_profiles"]] == [profile_id]

    async def capped_power() -> bool:
        detail = await server.staff.transaction(tx.id)
        powers = [
            s.value
            for s in detail.samples
            if s.measurand == "Power.Active.Import" and s.value is not None
        ]
        return bool(powers) and powers[-1] <= 3700

    await until(capped_power, "meter values under the cap")

    ok(await run("stop", "--transaction", str(tx.id)))

    async def stopped() -> Any:
        done = await server.staff.transaction(tx.id)
        return done.transaction if not done.transaction.active else None

    ended = await until(stopped, "the remote stop")
    assert ended.stop_reason == "Remote"
    again = await run("stop", "--transaction", str(tx.id))
    assert again.code == 1 and again.json()["message"] == f"transaction {tx.id} has already ended"
    shown = (await csms(server, "chargers", "show", cp_id, "--json")).json()
    assert shown["charging_profiles"] == []  # the TxProfile ended with its transaction

    station_max = ok(
        await run(
            "profile",
            "set",
            "--evse",
            "0",
            "--limit",
            "16",
            "--unit",
            "A",
            "--purpose",
            "ChargePointMaxProfile",
            "--duration",
            "3600",
        )
    )
    assert cp.station.connector(1).limit_w is not None
    cleared = ok(await run("profile", "clear", "--id", str(station_max["data"]["profile_id"])))
    assert cleared["status"] == "Accepted"
    assert cp.station.connector(1).limit_w is None
    not_there = await run("profile", "clear", "--id", "99999")
    assert not_there.code == 1 and "no charging profile 99999" in not_there.json()["message"]

    # --- reservations ------------------------------------------------------------------
    reserved = ok(await run("reserve", "--tag", "CARD2", "--evse", "2", "--expires", iso_in(120)))
    reservation_id = reserved["data"]["reservation_id"]

    async def reserved2() -> bool:
        return await status_of(server, cp_id, 2) == "Reserved"

    await until(reserved2, "EVSE 2 Reserved")
    blocked = await run("start", "--tag", "CARD1", "--evse", "2")
    assert blocked.code == 1
    assert f"reserved for another tag (reservation {reservation_id}" in blocked.json()["message"]
    ok(await run("start", "--tag", "CARD2", "--evse", "2"))
    tx2 = await until(running, "the reserved transaction")
    assert tx2.reservation_id == reservation_id and tx2.evse_id == 2
    shown = (await csms(server, "chargers", "show", cp_id, "--json")).json()
    assert shown["reservations"] == []  # used
    ok(await run("stop", "--transaction", str(tx2.id)))

    async def stopped2() -> bool:
        return not (await server.staff.transaction(tx2.id)).transaction.active

    await until(stopped2, "the second stop")

    short = ok(await run("reserve", "--tag", "CARD2", "--evse", "2", "--expires", iso_in(2)))
    await until(reserved2, "EVSE 2 Reserved again")
    await until(available2, "the reservation to expire on the charger", 10)

    async def expired() -> bool:
        listed = (await csms(server, "chargers", "show", cp_id, "--json")).json()
        return not listed["reservations"]

    await until(expired, "the reservation to expire in the CSMS", 10)
    assert short["data"]["reservation_id"] == reservation_id + 1

    third = ok(await run("reserve", "--tag", "CARD1", "--expires", iso_in(300), "--evse", "1"))
    third_id = str(third["data"]["reservation_id"])
    assert ok(await run("cancel-reservation", third_id))["status"] == "Accepted"
    assert cp.reservations.get(int(third_id)) is None
    twice = await run("cancel-reservation", third_id)
    assert twice.code == 1 and twice.json()["message"].endswith("is already Cancelled")

    # --- unlock ------------------------------------------------------------------------
    assert ok(await run("unlock", "--evse", "1"))["status"] == "Unlocked"

    # --- local authorization list ------------------------------------------------------
    differential_first = await run("local-list", "send", "--differential")
    assert (
        differential_first.code == 1
        and "send --full first" in differential_first.err + (differential_first.json()["message"])
    )
    full = ok(await run("local-list", "send", "--full"))
    assert full["data"]["list_version"] == 1 and full["data"]["entries"] == 2
    assert cp.local_list.version == 1
    assert {e.id_tag for e in cp.local_list.entries()} == {"CARD1", "CARD2"}
    await server.staff.set_token_status("CARD2", TokenStatus.BLOCKED)
    await server.staff.add_token(Token("CARD3", TokenStatus.ACCEPTED))
    diff = ok(await run("local-list", "send", "--differential"))
    assert diff["data"] == {"list_version": 2, "entries": 2, "full": False} | {
        k: v for k, v in diff["data"].items() if k not in ("list_version", "entries", "full")
    }
    assert cp.local_list.version == 2
    card2 = cp.local_list.lookup("CARD2")
    assert card2 is not None and card2.status_at(datetime.now(UTC)) == "Blocked"
    assert cp.local_list.lookup("CARD3") is not None
    listed = ok(await run("local-list", "version"))
    assert listed["data"]["list_version"] == 2 and listed["data"]["csms_list_version"] == 2

    # --- diagnostics, firmware, reset --------------------------------------------------
    diagnostics = ok(await run("diagnostics", "--location", "ftp://logs.example.com/up/"))
    assert diagnostics["data"].get("file_name")

    async def uploaded() -> bool:
        detail = await server.staff.charger(cp_id)
        return detail.charger.diagnostics_status == "Uploaded"

    await until(uploaded, "the diagnostics upload")

    firmware = ok(await run("firmware", "--location", "https://fw.example.com/fw-2.1.0.bin"))
    assert firmware["data"]["request_id"] == firmware["id"]

    async def updated() -> bool:
        detail = await server.staff.charger(cp_id)
        return (
            detail.charger.firmware_status == "Installed"
            and detail.charger.firmware_version == "2.1.0"
        )

    await until(updated, "the firmware update and reboot")

    before = (await server.staff.charger(cp_id)).charger.last_boot_at
    assert before is not None
    await cp.wait_ready()
    reset = ok(await run("reset", "--hard"))
    assert reset["action"] == "Reset"

    async def rebooted() -> bool:
        booted = (await server.staff.charger(cp_id)).charger.last_boot_at
        return booted is not None and booted > before

    await until(rebooted, "the reboot after the reset")

    # --- the audit log -----------------------------------------------------------------
    log = await csms(server, "commands", "list", "--charger", cp_id, "--limit", "500", "--json")
    entries = log.json()
    assert len(entries) == sent
    assert all(e["source"] == "cli" and e["finished_at"] for e in entries)
    assert {e["command"] for e in entries} >= {
        "start",
        "stop",
        "reset",
        "unlock",
        "availability",
        "config-get",
        "config-set",
        "trigger",
        "clear-cache",
        "data-transfer",
        "reserve",
        "cancel-reservation",
        "local-list-send",
        "local-list-version",
        "firmware",
        "diagnostics",
        "profile-set",
        "profile-clear",
        "profile-composite",
    }
    start_entry = next(e for e in entries if e["id"] == started["id"])
    assert start_entry["params"] == {"tag": "CARD1", "evse": 1}
    assert start_entry["answer"]["status"] == "Accepted"


async def test_a_long_local_list_goes_in_parts(station: tuple[Running, ChargerBase, str]) -> None:
    server, cp, cp_id = station
    await server.staff.import_tokens(
        [Token(f"BULK{n:03d}", TokenStatus.ACCEPTED) for n in range(70)]
    )
    sent = ok(await remote(server, "local-list", cp_id, "send"))
    # 72 tokens, 50 per message (what the simulated chargers report): a Full list of 50,
    # then a differential update with the other 22.
    assert sent["data"] == {"list_version": 2, "entries": 72, "full": True, "messages": 2}
    assert cp.local_list.version == 2
    assert len(cp.local_list.entries()) == 72
    version = ok(await remote(server, "local-list", cp_id, "version"))
    assert version["data"]["list_version"] == version["data"]["csms_list_version"] == 2
    await server.staff.import_tokens(
        [Token(f"MORE{n:03d}", TokenStatus.ACCEPTED) for n in range(40)]
    )
    too_many = await remote(server, "local-list", cp_id, "send")
    if cp_id.endswith("1.6"):  # 1.6 reports LocalAuthListMaxLength (100)
        assert too_many.code == 1
        assert too_many.json()["message"] == (
            "the charger holds at most 100 entries; the token table has 112"
        )
    else:  # 2.0.1 reports no total: the station refuses the part that overflows it
        assert too_many.code == 1
        assert too_many.json()["message"].startswith("message 3 of 3: ")
