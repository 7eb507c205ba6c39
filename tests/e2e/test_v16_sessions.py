"""OCPP 1.6J charging sessions end to end: simulator -> real server -> SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.authorization import Token, TokenStatus
from simulators.errors import CallErrorReceived
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import charger, hours_ago, register, ts


async def test_scripted_session_is_stored_with_its_energy(server: Running) -> None:
    await server.staff.add_token(Token("SIMTAG01", TokenStatus.ACCEPTED))
    cp = V16Charger(
        ChargerOptions(
            url=server.url,
            charger_id="SIM1",
            connectors=2,
            sessions=1,
            session_seconds=1.5,
            meter_interval=0.5,
            exit_when_done=True,
            seed=7,
        )
    )
    summary = await cp.run()
    assert summary.sessions_completed == 1
    (tx,) = await server.staff.transactions(cp_id="SIM1")
    assert tx.state.value == "completed"
    assert tx.auth_status == "Accepted"
    assert tx.meter_stop_wh is not None and tx.meter_start_wh is not None
    assert tx.energy_wh == tx.meter_stop_wh - tx.meter_start_wh
    assert 0 < tx.energy_wh < 50  # 22 kW for ~1.5 s is about 9 Wh
    assert tx.flags == ()
    detail = await server.staff.transaction(tx.id)
    measurands = {s.measurand for s in detail.samples}
    assert {"Energy.Active.Import.Register", "Power.Active.Import"} <= measurands
    assert all(s.unit == "Wh" for s in detail.samples if s.measurand.startswith("Energy"))
    contexts = {s.context for s in detail.samples}
    assert "Sample.Periodic" in contexts
    charger_detail = await server.staff.charger("SIM1")
    assert charger_detail.charger.vendor == "CsmsSim"
    statuses = [r.status.value for r, _ in charger_detail.history]
    assert "Charging" in statuses and "Preparing" in statuses
    assert {(c.evse_id, c.connector_id) for c in charger_detail.connectors} == {
        (0, 0),
        (1, 1),
        (2, 1),
    }


async def test_exact_energy_and_samples_linked_to_the_transaction(server: Running) -> None:
    await server.staff.add_token(Token("TAG1", TokenStatus.ACCEPTED))
    start = hours_ago(1)
    async with charger(server.url, "CP1") as cp:
        started = await cp.start_transaction(1, "TAG1", 1_000_000, timestamp=ts(start))
        tx_id = started["transactionId"]
        assert started["idTagInfo"] == {"status": "Accepted"}
        for minute, wh in ((10, 1_003_000), (20, 1_006_500)):
            assert (
                await cp.meter_values(1, tx_id, [register(start + timedelta(minutes=minute), wh)])
                == {}
            )
        # Register in kWh with a Transaction.End sample inside transactionData.
        end = start + timedelta(minutes=30)
        stopped = await cp.stop_transaction(
            tx_id,
            1_011_000,
            timestamp=ts(end),
            id_tag="TAG1",
            reason="Local",
            transaction_data=[
                {
                    "timestamp": ts(end),
                    "sampledValue": [
                        {"value": "1011.0", "unit": "kWh", "context": "Transaction.End"}
                    ],
                }
            ],
        )
        assert stopped == {"idTagInfo": {"status": "Accepted"}}
    detail = await server.staff.transaction(tx_id)
    tx = detail.transaction
    assert (tx.start_at, tx.stop_at) == (start, end)
    assert tx.energy_wh == 11_000
    assert tx.stop_reason == "Local"
    registers = [s.value for s in detail.samples if s.measurand == "Energy.Active.Import.Register"]
    assert registers == [1_003_000, 1_006_500, 1_011_000]


async def test_authorization_outcomes(server: Running) -> None:
    now = datetime.now(UTC)
    staff = server.staff
    await staff.add_token(
        Token(
            "GOOD", TokenStatus.ACCEPTED, parent_uid="FLEET1", expires_at=now + timedelta(days=30)
        )
    )
    await staff.add_token(Token("BLOCKED1", TokenStatus.BLOCKED))
    await staff.add_token(Token("OLD", TokenStatus.ACCEPTED, expires_at=now - timedelta(days=1)))
    await staff.add_token(Token("EXP", TokenStatus.EXPIRED))
    await staff.add_token(Token("BAD", TokenStatus.INVALID))
    async with charger(server.url, "CP1") as cp:
        good = (await cp.authorize("good"))["idTagInfo"]  # id tags are case-insensitive
        assert good["status"] == "Accepted"
        assert good["parentIdTag"] == "FLEET1"
        assert good["expiryDate"].endswith("Z")
        assert (await cp.authorize("BLOCKED1"))["idTagInfo"]["status"] == "Blocked"
        assert (await cp.authorize("OLD"))["idTagInfo"]["status"] == "Expired"
        assert (await cp.authorize("EXP"))["idTagInfo"]["status"] == "Expired"
        assert (await cp.authorize("BAD"))["idTagInfo"]["status"] == "Invalid"
        assert (await cp.authorize("NOBODY"))["idTagInfo"]["status"] == "Invalid"
        # StartTransaction answers the same way, and still gives a transaction id.
        blocked = await cp.start_transaction(1, "BLOCKED1", 100)
        assert blocked["idTagInfo"]["status"] == "Blocked"
        assert blocked["transactionId"] > 0
        stop = await cp.stop_transaction(
            blocked["transactionId"], 100, id_tag="BLOCKED1", reason="DeAuthorized"
        )
        assert stop["idTagInfo"]["status"] == "Blocked"
        unknown = await cp.start_transaction(1, "NOBODY", 100)
        assert unknown["idTagInfo"]["status"] == "Invalid"
    (tx,) = [t for t in await staff.transactions() if t.id_tag == "NOBODY"]
    assert tx.auth_status == "Unknown"  # recorded (answered Invalid), so its energy is not lost


async def test_unknown_tags_may_start_when_configured(start_server: StartServer) -> None:
    server = await start_server(ocpp={"allow_unknown_tags": True})
    async with charger(server.url, "CP1") as cp:
        started = await cp.start_transaction(1, "WALKIN", 100)
        assert started["idTagInfo"]["status"] == "Accepted"


async def test_concurrent_tx(server: Running) -> None:
    await server.staff.add_token(Token("SHARED", TokenStatus.ACCEPTED))
    async with charger(server.url, "CP1") as one, charger(server.url, "CP2") as two:
        first = await one.start_transaction(1, "SHARED", 0)
        assert first["idTagInfo"]["status"] == "Accepted"
        assert (await two.authorize("shared"))["idTagInfo"]["status"] == "ConcurrentTx"
        second = await two.start_transaction(1, "SHARED", 0)
        assert second["idTagInfo"]["status"] == "ConcurrentTx"
        assert second["transactionId"] != first["transactionId"]
        # The same card on the same charger (to stop its own session) is fine.
        assert (await one.authorize("SHARED"))["idTagInfo"]["status"] == "Accepted"
        await one.stop_transaction(first["transactionId"], 10, id_tag="SHARED")
        assert (await two.authorize("SHARED"))["idTagInfo"]["status"] == "Accepted"


async def test_duplicate_stop_creates_one_stop_and_answers_both(server: Running) -> None:
    await server.staff.add_token(Token("T1", TokenStatus.ACCEPTED))
    start = hours_ago(2)
    async with charger(server.url, "CP1") as cp:
        tx_id = (await cp.start_transaction(1, "T1", 5000, timestamp=ts(start)))["transactionId"]
        payload = {
            "transactionId": tx_id,
            "meterStop": 9000,
            "idTag": "T1",
            "timestamp": ts(start + timedelta(hours=1)),
        }
        first = await cp.call("StopTransaction", payload)
        again = await cp.call(
            "StopTransaction",
            {**payload, "meterStop": 9999, "timestamp": ts(start + timedelta(hours=2))},
        )
        assert first == again == {"idTagInfo": {"status": "Accepted"}}
    tx = (await server.staff.transaction(tx_id)).transaction
    assert tx.energy_wh == 4000
    assert tx.stop_at == start + timedelta(hours=1)


async def test_repeated_start_returns_the_same_transaction(server: Running) -> None:
    await server.staff.add_token(Token("T1", TokenStatus.ACCEPTED))
    payload = {"connectorId": 1, "idTag": "T1", "meterStart": 77, "timestamp": ts(hours_ago(1))}
    async with charger(server.url, "CP1") as cp:
        first = await cp.call("StartTransaction", payload)
        second = await cp.call("StartTransaction", payload)
    assert first == second
    assert len(await server.staff.transactions(cp_id="CP1")) == 1


async def test_offline_queue_is_replayed_with_original_timestamps(server: Running) -> None:
    await server.staff.add_token(Token("ROAD", TokenStatus.ACCEPTED))
    async with charger(server.url, "CP1") as cp:
        await cp.go_offline()
        start = hours_ago(3)
        started = await cp.start_transaction(1, "ROAD", 2_000_000, timestamp=ts(start))
        provisional = started["transactionId"]
        assert provisional < 0  # the charger's own id while offline
        await cp.meter_values(1, provisional, [register(start + timedelta(minutes=30), 2_005_000)])
        await cp.stop_transaction(
            provisional, 2_010_000, timestamp=ts(start + timedelta(hours=1)), id_tag="ROAD"
        )
        assert len(cp.queued) == 3
        delivered = await cp.reconnect()
        assert [d.action for d in delivered] == [
            "StartTransaction",
            "MeterValues",
            "StopTransaction",
        ]
        assert all(d.error is None for d in delivered)
        real = cp.real_transaction_id(provisional)
    detail = await server.staff.transaction(real)
    tx = detail.transaction
    assert tx.start_at == start
    assert tx.stop_at == start + timedelta(hours=1)
    assert tx.energy_wh == 10_000
    assert [s.value for s in detail.samples if s.measurand.startswith("Energy")] == [2_005_000]


@pytest.mark.parametrize("tx_id", [-1, 0, 987654])
async def test_unknown_transaction_ids_are_answered_and_recorded(
    server: Running, tx_id: int
) -> None:
    await server.staff.add_token(Token("T1", TokenStatus.ACCEPTED))
    async with charger(server.url, "CP1") as cp:
        stop = await cp.call(
            "StopTransaction",
            {"transactionId": tx_id, "meterStop": 10, "timestamp": ts(hours_ago(0)), "idTag": "T1"},
        )
        assert stop == {"idTagInfo": {"status": "Accepted"}}
        assert (
            await cp.call(
                "StopTransaction",
                {"transactionId": tx_id, "meterStop": 10, "timestamp": ts(hours_ago(0))},
            )
            == {}
        )
        mv = await cp.call(
            "MeterValues",
            {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(hours_ago(0), 10)]},
        )
        assert mv == {}
    unmatched = await server.staff.unmatched("CP1")
    assert sorted(u["action"] for u in unmatched) == [
        "MeterValues",
        "StopTransaction",
        "StopTransaction",
    ]
    assert {u["transaction_id"] for u in unmatched} == {str(tx_id)}


async def test_another_chargers_transaction_id_is_not_touched(server: Running) -> None:
    async with charger(server.url, "CP1") as one, charger(server.url, "CP2") as two:
        tx_id = (await one.start_transaction(1, "T1", 0))["transactionId"]
        await two.call(
            "StopTransaction",
            {"transactionId": tx_id, "meterStop": 10, "timestamp": ts(hours_ago(0))},
        )
    tx = (await server.staff.transaction(tx_id)).transaction
    assert tx.active
    assert [u["charge_point_id"] for u in await server.staff.unmatched()] == ["CP2"]


async def test_meter_backwards_and_lifetime_start_are_flagged(server: Running) -> None:
    start = hours_ago(1)
    async with charger(server.url, "CP1") as cp:
        back = (await cp.start_transaction(1, "T1", 50_000, timestamp=ts(start)))["transactionId"]
        await cp.stop_transaction(back, 40_000, timestamp=ts(start + timedelta(minutes=30)))
        zero = (await cp.start_transaction(2, "T2", 0, timestamp=ts(start)))["transactionId"]
        await cp.meter_values(2, zero, [register(start + timedelta(minutes=5), 4_800_000)])
        await cp.stop_transaction(zero, 4_810_000, timestamp=ts(start + timedelta(minutes=40)))
    backwards = (await server.staff.transaction(back)).transaction
    assert "meter_backwards" in backwards.flags
    assert backwards.energy_wh is None
    lifetime = (await server.staff.transaction(zero)).transaction
    assert "meter_start_not_register" in lifetime.flags


async def test_live_energy_of_an_active_transaction(server: Running) -> None:
    start = hours_ago(1)
    async with charger(server.url, "CP1") as cp:
        tx_id = (await cp.start_transaction(1, "T1", 1000, timestamp=ts(start)))["transactionId"]
        await cp.meter_values(1, tx_id, [register(start + timedelta(minutes=5), 2500)])
        await cp.meter_values(1, tx_id, [register(start + timedelta(minutes=10), 4000)])
    (tx,) = await server.staff.transactions(active_only=True)
    assert tx.live_energy_wh() == 3000


async def test_status_firmware_diagnostics_and_data_transfer_are_kept(server: Running) -> None:
    async with charger(server.url, "CP1") as cp:
        old = datetime.now(UTC) - timedelta(minutes=10)
        await cp.status(0, "Available")
        await cp.status(1, "Faulted", error_code="GroundFailure", info="RCD tripped")
        # A late, older status goes to history but does not overwrite the current one.
        await cp.status(1, "Available", timestamp=ts(old))
        assert await cp.firmware_status("Downloading") == {}
        assert await cp.diagnostics_status("Uploaded") == {}
        assert await cp.data_transfer("com.example", "Ping", "x") == {"status": "UnknownVendorId"}
    detail = await server.staff.charger("CP1")
    current = {(c.evse_id, c.connector_id): c for c in detail.connectors}
    assert current[(1, 1)].status.value == "Faulted"
    assert current[(1, 1)].error_code == "GroundFailure"
    assert current[(1, 1)].info == "RCD tripped"
    assert current[(0, 0)].status.value == "Available"
    assert len(detail.history) == 3
    assert detail.charger.firmware_status == "Downloading"
    assert detail.charger.diagnostics_status == "Uploaded"
    assert {e.action for e in detail.events} >= {"DataTransfer", "FirmwareStatusNotification"}


async def test_server_restart_keeps_all_data(start_server: StartServer) -> None:
    first = await start_server()
    await first.staff.add_token(Token("KEEP", TokenStatus.ACCEPTED))
    async with charger(first.url, "CP1") as cp:
        tx_id = (await cp.start_transaction(1, "KEEP", 10, timestamp=ts(hours_ago(1))))[
            "transactionId"
        ]
        await cp.meter_values(1, tx_id, [register(hours_ago(0.5), 500)])
        await cp.status(1, "Charging")
    await first.stop()
    second = await start_server()
    assert [t.uid for t in await second.staff.tokens()] == ["KEEP"]
    # The charger comes back without a new boot (it is known and Accepted) and finishes.
    async with charger(second.url, "CP1", boot=False) as cp:
        assert "currentTime" in await cp.heartbeat()
        stop = await cp.stop_transaction(tx_id, 900, id_tag="KEEP")
        assert stop["idTagInfo"]["status"] == "Accepted"
    detail = await second.staff.transaction(tx_id)
    assert detail.transaction.energy_wh == 890
    assert [s.value for s in detail.samples if s.measurand.startswith("Energy")] == [500]
    overview = {o.charger.id: o for o in await second.staff.chargers()}
    assert overview["CP1"].connectors[0].status.value == "Charging"


async def test_callerror_reaches_the_simulator_as_an_exception(server: Running) -> None:
    async with charger(server.url, "CP1") as cp:
        with pytest.raises(CallErrorReceived) as info:
            await cp.call(
                "StartTransaction",
                {"connectorId": 0, "idTag": "T", "meterStart": 0, "timestamp": ts(hours_ago(0))},
            )
        assert "PropertyConstraintViolation" in str(info.value)
        assert "currentTime" in await cp.heartbeat()
