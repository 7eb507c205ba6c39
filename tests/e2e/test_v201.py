"""OCPP 2.0.1 end to end: the same server, port and domain model as 1.6J."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from csms.core.authorization import Token, TokenStatus
from csms.core.charger import RegistrationStatus
from csms.handlers.schemas import SchemaSet
from tests.e2e.conftest import Running, StartServer
from tests.e2e.raw import BOOT, BOOT201, call, exchange, open_raw
from tests.e2e.v201 import V201, hours_ago, new_tx_id, reading, session_events, ts, tx_event

SCHEMAS = SchemaSet("2.0.1")


async def booted(server: Running, cp_id: str, calls: list[Any] | None = None) -> Any:
    ws = await open_raw(server.url, cp_id, subprotocols=V201)
    reply = await call(ws, "BootNotification", BOOT201, server_calls=calls)
    assert reply[2]["status"] == "Accepted"
    return ws


async def test_offering_both_versions_gets_201_unless_configured(
    start_server: StartServer,
) -> None:
    server = await start_server()
    ws = await open_raw(server.url, "BOTH", subprotocols=["ocpp1.6", "ocpp2.0.1"])
    assert ws.subprotocol == "ocpp2.0.1"
    await ws.close()
    await server.stop()
    old_first = await start_server(ocpp={"preferred_version": "1.6"})
    ws = await open_raw(old_first.url, "BOTH", subprotocols=["ocpp2.0.1", "ocpp1.6"])
    assert ws.subprotocol == "ocpp1.6"
    await ws.close()


async def test_full_session_with_energy(server: Running) -> None:
    await server.staff.add_token(Token("TAG1", TokenStatus.ACCEPTED))
    ws = await booted(server, "ST1")
    tx_id = new_tx_id()
    replies = [await call(ws, "TransactionEvent", e) for e in session_events(tx_id, hours_ago(2))]
    assert replies[0][2] == {"idTokenInfo": {"status": "Accepted"}}
    assert all(r[2] == {} for r in replies[1:])
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="ST1")
    assert tx.ocpp_version == "2.0.1"
    assert tx.ocpp_transaction_id == tx_id
    assert (tx.evse_id, tx.id_tag, tx.auth_status) == (1, "TAG1", "Accepted")
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1_000_000, 1_011_000, 11_000)
    assert tx.stop_reason == "Local"
    assert tx.state.value == "completed"
    detail = await server.staff.transaction(tx.id)
    registers = [s.value for s in detail.samples if s.measurand.startswith("Energy")]
    assert registers == [1_000_000, 1_004_000, 1_008_000, 1_011_000]
    events = await server.staff.transaction_events(tx.id)
    assert [(e.seq_no, e.event_type, e.trigger_reason) for e in events] == [
        (0, "Started", "Authorized"),
        (1, "Updated", "MeterValuePeriodic"),
        (2, "Updated", "MeterValuePeriodic"),
        (3, "Ended", "StopAuthorized"),
    ]


async def test_resent_event_is_a_no_op(server: Running) -> None:
    ws = await booted(server, "ST1")
    tx_id = new_tx_id()
    events = session_events(tx_id, hours_ago(2))
    for event in [events[0], events[1], events[1], events[2], events[3], events[3]]:
        assert (await call(ws, "TransactionEvent", event))[0] == 3
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="ST1")
    assert tx.energy_wh == 11_000
    assert len((await server.staff.transaction(tx.id)).samples) == 7  # nothing doubled
    assert len(await server.staff.transaction_events(tx.id)) == 4


@pytest.mark.parametrize("order", [[3, 2, 1, 0], [0, 3, 1, 2], [1, 0, 3, 2], [3, 0, 2, 1]])
async def test_events_out_of_order_give_the_same_transaction(
    server: Running, order: list[int]
) -> None:
    await server.staff.add_token(Token("TAG1", TokenStatus.ACCEPTED))
    ws = await booted(server, "ST1")
    tx_id = new_tx_id()
    start = hours_ago(3)
    events = session_events(tx_id, start)
    for i in order:
        await call(ws, "TransactionEvent", {**events[i], "offline": True})
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="ST1")
    assert tx.start_at == start
    assert tx.stop_at == start + timedelta(hours=1)
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1_000_000, 1_011_000, 11_000)
    assert (tx.id_tag, tx.auth_status, tx.evse_id) == ("TAG1", "Accepted", 1)
    assert tx.state.value == "completed" and tx.flags == ()
    assert [e.seq_no for e in await server.staff.transaction_events(tx.id)] == [0, 1, 2, 3]


async def test_ended_without_started_creates_the_whole_transaction(server: Running) -> None:
    ws = await booted(server, "ST1")
    tx_id = new_tx_id()
    start = hours_ago(5)
    ended = tx_event(
        "Ended",
        tx_id,
        0,
        start + timedelta(minutes=30),
        trigger="EVDeparted",
        token="ROAMER",
        stopped_reason="EVDisconnected",
        offline=True,
        meter=[
            reading(start, 500_000, "Transaction.Begin"),
            reading(start + timedelta(minutes=30), 507_000, "Transaction.End"),
        ],
    )
    reply = await call(ws, "TransactionEvent", ended)
    assert reply[2] == {"idTokenInfo": {"status": "Unknown"}}
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="ST1")
    assert tx.state.value == "completed"
    assert tx.energy_wh == 7000
    assert tx.stop_reason == "EVDisconnected"
    assert tx.id_tag == "ROAMER"


async def test_id_token_first_seen_in_updated(server: Running) -> None:
    await server.staff.add_token(Token("LATE", TokenStatus.ACCEPTED, parent_uid="FLEET"))
    ws = await booted(server, "ST1")
    tx_id = new_tx_id()
    start = hours_ago(1)
    started = await call(
        ws,
        "TransactionEvent",
        tx_event(
            "Started",
            tx_id,
            0,
            start,
            trigger="CablePluggedIn",
            meter=[reading(start, 10_000, "Transaction.Begin")],
        ),
    )
    assert started[2] == {}
    updated = await call(
        ws,
        "TransactionEvent",
        tx_event(
            "Updated", tx_id, 1, start + timedelta(minutes=1), trigger="Authorized", token="late"
        ),
    )
    assert updated[2]["idTokenInfo"]["status"] == "Accepted"
    assert updated[2]["idTokenInfo"]["groupIdToken"] == {"idToken": "FLEET", "type": "Central"}
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="ST1")
    assert (tx.id_tag, tx.auth_status) == ("late", "Accepted")
    assert tx.active


async def test_remote_start_id_and_evse_from_first_event_that_names_it(server: Running) -> None:
    ws = await booted(server, "ST1")
    tx_id = new_tx_id()
    start = hours_ago(1)
    await call(
        ws,
        "TransactionEvent",
        tx_event("Started", tx_id, 0, start, evse=None, trigger="RemoteStart", remote_start_id=42),
    )
    await call(ws, "TransactionEvent", tx_event("Updated", tx_id, 1, start, evse=2))
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="ST1")
    assert (tx.remote_start_id, tx.evse_id) == (42, 2)


async def test_concurrent_tx_and_no_authorization(server: Running) -> None:
    await server.staff.add_token(Token("SHARED", TokenStatus.ACCEPTED))
    ws1 = await booted(server, "ST1")
    ws2 = await booted(server, "ST2")
    start = hours_ago(1)
    first = await call(
        ws1, "TransactionEvent", tx_event("Started", new_tx_id(), 0, start, token="SHARED")
    )
    assert first[2]["idTokenInfo"]["status"] == "Accepted"
    busy = await call(ws2, "Authorize", {"idToken": {"idToken": "SHARED", "type": "ISO14443"}})
    assert busy[2]["idTokenInfo"]["status"] == "ConcurrentTx"
    free = await call(ws2, "Authorize", {"idToken": {"idToken": "", "type": "NoAuthorization"}})
    assert free[2]["idTokenInfo"]["status"] == "Accepted"
    await ws1.close()
    await ws2.close()


async def test_meter_values_outside_events_join_the_running_transaction(
    server: Running,
) -> None:
    ws = await booted(server, "ST1")
    start = hours_ago(1)
    await call(
        ws,
        "TransactionEvent",
        tx_event(
            "Started", new_tx_id(), 0, start, meter=[reading(start, 1000, "Transaction.Begin")]
        ),
    )
    later = start + timedelta(minutes=10)
    assert (await call(ws, "MeterValues", {"evseId": 1, "meterValue": [reading(later, 2500)]}))[
        2
    ] == {}
    await ws.close()
    (tx,) = await server.staff.transactions(active_only=True)
    assert tx.live_energy_wh() == 1500


async def test_status_boot_and_version_switch_keep_one_charger(server: Running) -> None:
    ws = await open_raw(server.url, "FLIP")  # 1.6 first
    await call(ws, "BootNotification", BOOT)
    await call(
        ws, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
    )
    await ws.close()
    ws = await booted(server, "FLIP")  # firmware update: now 2.0.1
    await call(
        ws,
        "StatusNotification",
        {
            "timestamp": ts(datetime.now(UTC)),
            "connectorStatus": "Faulted",
            "evseId": 1,
            "connectorId": 1,
        },
    )
    await ws.close()
    detail = await server.staff.charger("FLIP")
    assert detail.charger.ocpp_version == "2.0.1"
    assert detail.charger.vendor == "TestVendor" and detail.charger.serial_number == "SN-1"
    (connector,) = detail.connectors
    assert connector.status.value == "Faulted"
    assert [r.status.value for r, _ in detail.history] == ["Faulted", "Charging"]


async def next_server_call(ws: Any, timeout: float = 5.0) -> list[Any]:
    """Wait for the CSMS's next CALL and answer it Accepted."""
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame[0] == 2:
            await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
            return list(frame)


async def test_device_model_and_base_report_once_per_firmware(server: Running) -> None:
    ws = await booted(server, "DM1")
    request = await next_server_call(ws)
    assert request[2:] == [
        "GetBaseReport",
        {"requestId": request[3]["requestId"], "reportBase": "FullInventory"},
    ]
    report = {
        "requestId": request[3]["requestId"],
        "generatedAt": ts(datetime.now(UTC)),
        "seqNo": 0,
        "tbc": False,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [
                    {"type": "Actual", "value": "300", "mutability": "ReadWrite"}
                ],
                "variableCharacteristics": {
                    "dataType": "integer",
                    "unit": "s",
                    "supportsMonitoring": False,
                },
            },
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
                "variableAttribute": [
                    {"type": "MaxSet", "value": "22000"},
                    {"type": "Actual", "value": "0"},
                ],
            },
        ],
    }
    assert (await call(ws, "NotifyReport", report))[2] == {}
    # Booting again with the same firmware asks nothing more ...
    calls: list[Any] = []
    await call(ws, "BootNotification", BOOT201, server_calls=calls)
    with pytest.raises(TimeoutError):
        await next_server_call(ws, timeout=0.5)
    await ws.close()
    # ... a new firmware version is asked for once.
    ws = await open_raw(server.url, "DM1", subprotocols=V201)
    newer = {**BOOT201, "chargingStation": {**BOOT201["chargingStation"], "firmwareVersion": "2.0"}}
    await call(ws, "BootNotification", newer, server_calls=calls)
    if not calls:
        calls.append(await next_server_call(ws))
    assert [c[2] for c in calls] == ["GetBaseReport"]
    await ws.close()
    variables = {(v.key, v.attribute_type): v for v in await server.staff.variables("DM1")}
    assert variables[("OCPPCommCtrlr.HeartbeatInterval", "Actual")].value == "300"
    assert variables[("OCPPCommCtrlr.HeartbeatInterval", "Actual")].characteristics == {
        "dataType": "integer",
        "unit": "s",
        "supportsMonitoring": False,
    }
    assert variables[("EVSE@1.Power", "MaxSet")].value == "22000"


STATION_MESSAGES: dict[str, dict[str, Any]] = {
    "Heartbeat": {},
    "StatusNotification": {
        "timestamp": "2026-01-01T00:00:00Z",
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    },
    "Authorize": {"idToken": {"idToken": "X1", "type": "ISO14443"}},
    "TransactionEvent": tx_event("Started", "tx-all", 0, hours_ago(1)),
    "MeterValues": {"evseId": 0, "meterValue": [reading(hours_ago(1), 5)]},
    "NotifyReport": {"requestId": 1, "generatedAt": "2026-01-01T00:00:00Z", "seqNo": 0},
    "NotifyEvent": {
        "generatedAt": "2026-01-01T00:00:00Z",
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": "2026-01-01T00:00:00Z",
                "trigger": "Alerting",
                "actualValue": "1",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "ChargingStation"},
                "variable": {"name": "Problem"},
            }
        ],
    },
    "NotifyMonitoringReport": {"requestId": 1, "generatedAt": "2026-01-01T00:00:00Z", "seqNo": 0},
    "SecurityEventNotification": {"type": "FirmwareUpdated", "timestamp": "2026-01-01T00:00:00Z"},
    "FirmwareStatusNotification": {"status": "Downloading", "requestId": 3},
    "LogStatusNotification": {"status": "Uploading", "requestId": 4},
    "PublishFirmwareStatusNotification": {"status": "Idle"},
    "ReservationStatusUpdate": {"reservationId": 1, "reservationUpdateStatus": "Expired"},
    "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "EMS"}},
    "ClearedChargingLimit": {"chargingLimitSource": "EMS"},
    "NotifyEVChargingNeeds": {
        "evseId": 1,
        "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase"},
    },
    "NotifyEVChargingSchedule": {
        "timeBase": "2026-01-01T00:00:00Z",
        "evseId": 1,
        "chargingSchedule": {
            "id": 1,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000}],
        },
    },
    "ReportChargingProfiles": {
        "requestId": 1,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "chargingProfile": [
            {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000}],
                    }
                ],
            }
        ],
    },
    "NotifyCustomerInformation": {
        "data": "none",
        "seqNo": 0,
        "generatedAt": "2026-01-01T00:00:00Z",
        "requestId": 1,
    },
    "NotifyDisplayMessages": {"requestId": 1},
    "Get15118EVCertificate": {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": "AAAA",
    },
    "GetCertificateStatus": {
        "ocspRequestData": {
            "hashAlgorithm": "SHA256",
            "issuerNameHash": "a",
            "issuerKeyHash": "b",
            "serialNumber": "c",
            "responderURL": "http://ocsp",
        }
    },
    "SignCertificate": {"csr": "-----BEGIN CERTIFICATE REQUEST-----"},
    "DataTransfer": {"vendorId": "com.example", "messageId": "Ping"},
    "BootNotification": BOOT201,
}


async def test_every_station_message_gets_a_schema_valid_answer(server: Running) -> None:
    from ocpp.v201.enums import Action

    ws = await booted(server, "ALL")
    for action, payload in STATION_MESSAGES.items():
        request_validator = SCHEMAS.request_validator(action)
        assert request_validator is not None
        request_validator(payload)  # our sample is itself valid
        reply = await call(ws, action, payload)
        assert reply[0] == 3, (action, reply)
        validator = SCHEMAS.response_validator(action)
        assert validator is not None
        validator(reply[2])
    await ws.close()
    # Every station-to-CSMS action of 2.0.1 is covered above.
    sent_by_station = {a for a in STATION_MESSAGES}
    assert sent_by_station <= {a.value for a in Action}
    detail = await server.staff.charger("ALL")
    assert detail.charger.firmware_status == "Downloading"
    assert {e.action for e in detail.events} >= {"NotifyEvent", "SecurityEventNotification"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"e1","Heartbeat",{', "FormatViolation"),
        ('[2,"e1","Heartbeat",{"x":1}]', "FormatViolation"),
        ('[2,"e1","BootNotification",{"reason":"PowerUp"}]', "OccurrenceConstraintViolation"),
        (
            '[2,"e1","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z",'
            '"connectorStatus":"Lost","evseId":1,"connectorId":1}]',
            "PropertyConstraintViolation",
        ),
        ('[2,"e1","Heartbeat"]', "ProtocolError"),
        ('[5,"e1","Heartbeat",{}]', "MessageTypeNotSupported"),
        ('[2,"e1","Nope",{}]', "NotImplemented"),
        ('[2,"e1","RequestStartTransaction",{}]', "NotSupported"),
    ],
)
async def test_malformed_201_frames(server: Running, frame: str, code: str) -> None:
    ws = await booted(server, "BAD201")
    reply = await exchange(ws, frame)
    assert reply[:3] == [4, "e1", code]
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    await ws.close()


async def test_unreadable_frame_gets_rpc_framework_error(server: Running) -> None:
    ws = await booted(server, "BAD201")
    reply = await exchange(ws, "garbage")
    assert reply[:3] == [4, "-1", "RpcFrameworkError"]
    await ws.close()


async def test_lenient_201_accepts_an_over_long_serial(start_server: StartServer) -> None:
    long_boot = {
        **BOOT201,
        "chargingStation": {**BOOT201["chargingStation"], "serialNumber": "S" * 40},
    }
    strict = await start_server()
    ws = await open_raw(strict.url, "LONG", subprotocols=V201)
    assert (await call(ws, "BootNotification", long_boot))[2] == "TypeConstraintViolation"
    await ws.close()
    # Its boot was refused, so it is not stored: staff add it as lenient.
    await strict.staff.add_charger("LONG", validation="lenient")
    ws = await open_raw(strict.url, "LONG", subprotocols=V201)
    assert (await call(ws, "BootNotification", long_boot))[2]["status"] == "Accepted"
    await ws.close()


async def test_pending_201_station_may_only_boot(start_server: StartServer) -> None:
    server = await start_server(ocpp={"registration": "pending"})
    ws = await open_raw(server.url, "NEW201", subprotocols=V201)
    assert (await call(ws, "BootNotification", BOOT201))[2]["status"] == "Pending"
    assert (await call(ws, "Heartbeat", {}))[2] == "SecurityError"
    await server.staff.update_charger("NEW201", registration=RegistrationStatus.ACCEPTED)
    assert (await call(ws, "BootNotification", BOOT201))[2]["status"] == "Accepted"
    await ws.close()


async def drain(ws: Any) -> None:
    """Read (and drop) frames until the server closes the socket."""
    while True:
        await asyncio.wait_for(ws.recv(), 5)


async def test_basic_auth_and_replacement_for_201(server: Running) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    from tests.e2e.raw import basic

    await server.staff.add_charger("SEC201", password="s3cret-pass")
    with pytest.raises(InvalidStatus) as info:
        await open_raw(server.url, "SEC201", subprotocols=V201)
    assert info.value.response.status_code == 401
    first = await open_raw(
        server.url, "SEC201", subprotocols=V201, headers=basic("SEC201", "s3cret-pass")
    )
    assert (await call(first, "BootNotification", BOOT201))[2]["status"] == "Accepted"
    second = await open_raw(
        server.url, "SEC201", subprotocols=V201, headers=basic("SEC201", "s3cret-pass")
    )
    with pytest.raises(ConnectionClosed):
        await drain(first)
    assert (await call(second, "Heartbeat", {}))[0] == 3
    await second.close()


async def test_authorization_outcomes_201(server: Running) -> None:
    now = datetime.now(UTC)
    staff = server.staff
    await staff.add_token(Token("GOOD", TokenStatus.ACCEPTED, expires_at=now + timedelta(days=3)))
    await staff.add_token(Token("BLOCKED1", TokenStatus.BLOCKED))
    await staff.add_token(Token("OLD", TokenStatus.ACCEPTED, expires_at=now - timedelta(days=1)))
    await staff.add_token(Token("BAD", TokenStatus.INVALID))
    ws = await booted(server, "AUTH201")
    expected = {
        "good": "Accepted",
        "BLOCKED1": "Blocked",
        "OLD": "Expired",
        "BAD": "Invalid",
        "NOBODY": "Unknown",
    }
    check_answer = SCHEMAS.response_validator("Authorize")
    assert check_answer is not None
    for uid, status in expected.items():
        reply = await call(ws, "Authorize", {"idToken": {"idToken": uid, "type": "ISO14443"}})
        assert reply[2]["idTokenInfo"]["status"] == status, uid
        check_answer(reply[2])
    good = await call(ws, "Authorize", {"idToken": {"idToken": "GOOD", "type": "ISO14443"}})
    assert good[2]["idTokenInfo"]["cacheExpiryDateTime"].endswith("Z")
    await ws.close()


async def test_rejected_201_station(start_server: StartServer) -> None:
    server = await start_server(ocpp={"registration": "reject"})
    ws = await open_raw(server.url, "STRANGER201", subprotocols=V201)
    boot = await call(ws, "BootNotification", BOOT201)
    assert boot[2]["status"] == "Rejected"
    assert 0 < boot[2]["interval"] <= 60
    refused = await call(ws, "StatusNotification", STATION_MESSAGES["StatusNotification"])
    assert refused[2] == "SecurityError"
    await ws.close()
    (charger,) = [o.charger for o in await server.staff.chargers()]
    assert charger.registration is RegistrationStatus.REJECTED
