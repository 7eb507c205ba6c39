"""The same behaviour from chargers of both OCPP versions, driven by the simulators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.authorization import Token, TokenStatus
from simulators.options import ChargerOptions
from simulators.v201 import V201Charger
from simulators.versions import create_charger
from tests.e2e.conftest import Running, StartServer

VERSIONS = ["1.6", "2.0.1"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_scripted_sessions_are_stored_the_same_way(server: Running, version: str) -> None:
    await server.staff.add_token(Token("SIMTAG01", TokenStatus.ACCEPTED))
    cp_id = f"SIM-{version}"
    charger = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            connectors=2,
            sessions=2,
            session_seconds=1.2,
            meter_interval=0.4,
            exit_when_done=True,
            seed=3,
        )
    )
    summary = await charger.run()
    assert summary.sessions_completed == 2
    assert summary.errors == 0
    found = await server.staff.transactions(cp_id=cp_id)
    assert len(found) == 2
    for tx in found:
        assert tx.ocpp_version == version
        assert tx.state.value == "completed"
        assert tx.auth_status == "Accepted"
        assert tx.id_tag == "SIMTAG01"
        assert tx.flags == ()
        assert tx.meter_start_wh is not None and tx.meter_stop_wh is not None
        assert tx.energy_wh == tx.meter_stop_wh - tx.meter_start_wh
        assert 0 < tx.energy_wh < 60
        detail = await server.staff.transaction(tx.id)
        assert any(s.measurand == "Power.Active.Import" for s in detail.samples)
        if version == "2.0.1":
            kinds = [e.event_type for e in detail.events]
            assert kinds[0] == "Started" and kinds[-1] == "Ended"
    overview = {o.charger.id: o for o in await server.staff.chargers()}
    charger_row = overview[cp_id].charger
    assert (charger_row.ocpp_version, charger_row.vendor) == (version, "CsmsSim")
    evses = {c.evse_id for c in overview[cp_id].connectors}
    assert {1, 2} <= evses


@pytest.mark.parametrize("order", ["queued", "reverse", "shuffled"])
async def test_201_offline_period_is_replayed(server: Running, order: str) -> None:
    await server.staff.add_token(Token("ROAD", TokenStatus.ACCEPTED))
    cp = V201Charger(
        ChargerOptions(
            url=server.url, charger_id="OFF1", version="2.0.1", response_timeout=10, seed=1
        )
    )
    await cp.connect()
    assert (await cp.boot())["status"] == "Accepted"
    await cp.go_offline()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    tx_id, answer = await cp.start_transaction(1, "ROAD", 3_000_000, timestamp=start)
    assert answer == {}  # queued
    for minutes, wh in ((15, 3_002_000), (30, 3_004_000)):
        await cp.update_transaction(
            tx_id, meter_wh=wh, timestamp=start + timedelta(minutes=minutes)
        )
    await cp.end_transaction(tx_id, 3_005_500, timestamp=start + timedelta(minutes=40))
    assert len(cp.queued) == 4
    delivered = await cp.reconnect(order=order)
    assert [d.error for d in delivered] == [None] * 4
    await cp.close()
    (tx,) = await server.staff.transactions(cp_id="OFF1")
    assert tx.ocpp_transaction_id == tx_id
    assert (tx.start_at, tx.stop_at) == (start, start + timedelta(minutes=40))
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (3_000_000, 3_005_500, 5_500)
    assert (tx.id_tag, tx.auth_status) == ("ROAD", "Accepted")
    events = await server.staff.transaction_events(tx.id)
    assert len(events) == 4 and all(e.offline for e in events)


async def test_201_restart_keeps_a_running_transaction(start_server: StartServer) -> None:
    first = await start_server()
    await first.staff.add_token(Token("KEEP", TokenStatus.ACCEPTED))
    cp = V201Charger(
        ChargerOptions(url=first.url, charger_id="R201", version="2.0.1", response_timeout=10)
    )
    await cp.connect()
    await cp.boot()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    tx_id, _ = await cp.start_transaction(1, "KEEP", 10_000, timestamp=start)
    await cp.update_transaction(tx_id, meter_wh=12_000, timestamp=start + timedelta(minutes=10))
    await cp.close()
    await first.stop()
    second = await start_server()
    cp = V201Charger(
        ChargerOptions(url=second.url, charger_id="R201", version="2.0.1", response_timeout=10)
    )
    await cp.connect()
    # The new process does not know the transaction's seqNos yet: a resent event is still
    # recognised from the database, and the transaction continues.
    again = await cp.transaction_event(
        {
            "eventType": "Updated",
            "timestamp": (start + timedelta(minutes=10)).isoformat(),
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 1,
            "transactionInfo": {"transactionId": tx_id},
        }
    )
    assert again == {}
    end = start + timedelta(minutes=30)
    ended = await cp.transaction_event(
        {
            "eventType": "Ended",
            "timestamp": end.isoformat(),
            "triggerReason": "StopAuthorized",
            "seqNo": 2,
            "transactionInfo": {"transactionId": tx_id, "stoppedReason": "Local"},
            "meterValue": [
                {
                    "timestamp": end.isoformat(),
                    "sampledValue": [
                        {
                            "value": 15_000,
                            "context": "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                        }
                    ],
                }
            ],
        }
    )
    assert ended == {}
    await cp.close()
    (tx,) = await second.staff.transactions(cp_id="R201")
    assert (tx.energy_wh, tx.state.value) == (5_000, "completed")
    assert [e.seq_no for e in await second.staff.transaction_events(tx.id)] == [0, 1, 2]
