"""Malformed frames get the right CALLERROR and the connection keeps working."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Running, StartServer
from tests.e2e.raw import BOOT, call, exchange, open_booted, open_raw

LONG_SERIAL = {**BOOT, "chargePointSerialNumber": "SN-" + "9" * 30}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"e1","Heartbeat",{', "FormationViolation"),
        ('[2,"e1","Heartbeat",["x"]]', "FormationViolation"),
        ('[2,"e1","Heartbeat"]', "ProtocolError"),
        ('[7,"e1","Heartbeat",{}]', "ProtocolError"),
        ('[2,"e1","NoSuchAction",{}]', "NotImplemented"),
        ('[2,"e1","RemoteStartTransaction",{"idTag":"X"}]', "NotSupported"),
        ('[2,"e1","Heartbeat",{"extra":1}]', "FormationViolation"),
        ('[2,"e1","BootNotification",{"chargePointVendor":"V"}]', "OccurenceConstraintViolation"),
        (
            '[2,"e1","BootNotification",{"chargePointVendor":1,"chargePointModel":"M"}]',
            "TypeConstraintViolation",
        ),
        (
            '[2,"e1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Lost"}]',
            "PropertyConstraintViolation",
        ),
        (
            '[2,"e1","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":0,'
            '"timestamp":"yesterday"}]',
            "PropertyConstraintViolation",
        ),
        ('[2,"e1","Authorize",{"idTag":"' + "X" * 21 + '"}]', "TypeConstraintViolation"),
    ],
)
async def test_malformed_frame_gets_callerror_and_connection_survives(
    server: Running, frame: str, code: str
) -> None:
    ws = await open_raw(server.url, "CP1")
    await call(ws, "BootNotification", BOOT)
    reply = await exchange(ws, frame)
    assert reply[0] == 4
    assert reply[1] == "e1"
    assert reply[2] == code
    assert isinstance(reply[3], str) and reply[3]
    # The same connection still works.
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    await ws.close()


# The error code of the CALLERROR with id "-1" that answers a frame whose id cannot be read.
UNREADABLE = {"1.6": "FormationViolation", "2.0.1": "RpcFrameworkError"}


@pytest.mark.parametrize("version", sorted(UNREADABLE))
@pytest.mark.parametrize(
    "frame", ["not json at all", "{}", "[]", '[2, 17, "Heartbeat", {}]', "\u0000\u0001"]
)
async def test_frame_without_readable_id_gets_callerror_with_id_minus_1(
    server: Running, version: str, frame: str
) -> None:
    ws = await open_booted(server.url, f"UNREADABLE-{version}", version)
    reply = await exchange(ws, frame)
    assert reply[:3] == [4, "-1", UNREADABLE[version]]
    assert isinstance(reply[3], str) and reply[3] and reply[4] == {}
    # The connection stays open and keeps working.
    heartbeat = await call(ws, "Heartbeat", {})
    assert heartbeat[0] == 3 and "currentTime" in heartbeat[2]
    await ws.close()


async def test_binary_frame_is_handled_like_text(server: Running) -> None:
    ws = await open_raw(server.url, "CP1")
    await ws.send(b'[2,"b1","Heartbeat",{}]')
    reply = await asyncio.wait_for(ws.recv(), 5)
    assert '"b1"' in str(reply)
    await ws.close()


@pytest.mark.slow
async def test_one_chargers_garbage_does_not_disturb_another(server: Running) -> None:
    bad = await open_raw(server.url, "BAD")
    good = await open_raw(server.url, "GOOD")
    await call(good, "BootNotification", BOOT)
    for _ in range(50):
        await bad.send('[2,"x","Heartbeat",{')
    assert (await call(good, "Heartbeat", {}))[0] == 3
    await bad.close()
    await good.close()


async def test_lenient_mode_accepts_what_strict_refuses(start_server: StartServer) -> None:
    strict = await start_server()
    ws = await open_raw(strict.url, "CP-STRICT")
    reply = await call(ws, "BootNotification", LONG_SERIAL)
    assert reply[0] == 4 and reply[2] == "TypeConstraintViolation"
    await ws.close()
    # Per charger ...
    await strict.staff.add_charger("CP-LENIENT", validation="lenient")
    ws = await open_raw(strict.url, "CP-LENIENT")
    reply = await call(ws, "BootNotification", LONG_SERIAL)
    assert reply[2]["status"] == "Accepted"
    odd = await call(
        ws, "StatusNotification", {"connectorId": 1, "errorCode": "Mode3Error", "status": "Faulted"}
    )
    assert odd[0] == 3
    await ws.close()
    detail = await strict.staff.charger("CP-LENIENT")
    assert detail.charger.serial_number == LONG_SERIAL["chargePointSerialNumber"]
    (connector,) = detail.connectors
    assert connector.error_code == "OtherError"
    assert connector.vendor_error_code == "Mode3Error"
    await strict.stop()
    # ... or for the whole server.
    lenient = await start_server(ocpp={"validation": "lenient"})
    ws = await open_raw(lenient.url, "CP-STRICT")
    assert (await call(ws, "BootNotification", LONG_SERIAL))[2]["status"] == "Accepted"
    await ws.close()
