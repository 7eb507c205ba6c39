"""Unit tests of `V201Charger` without a CSMS: while offline every TransactionEvent is queued
with its own seqNo and timestamp, so the station side can be checked without a socket."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.errors import NotConnectedError, OptionsError
from simulators.options import ChargerOptions
from simulators.reservations import Reservation
from simulators.station import ConnectorStatus
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from simulators.v201_profiles import profile_from_wire
from simulators.versions import create_charger

from .schemas import check_request

START = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def station(clock: FakeClock | None = None, **options: Any) -> V201Charger:
    opts = ChargerOptions(
        url="ws://127.0.0.1:1/ocpp", charger_id="CS1", version="2.0.1", seed=1, **options
    )
    return V201Charger(opts, clock=clock or FakeClock(), rng=random.Random(1))


def test_versions_pick_the_class_and_classes_check_the_version() -> None:
    assert isinstance(create_charger(station().options), V201Charger)
    with pytest.raises(OptionsError, match=r"plays OCPP 2\.0\.1, not 1\.6"):
        V201Charger(ChargerOptions(url="ws://h:1/o", charger_id="A"))
    with pytest.raises(OptionsError, match=r"plays OCPP 1\.6, not 2\.0\.1"):
        V16Charger(ChargerOptions(url="ws://h:1/o", charger_id="A", version="2.0.1"))


async def test_offline_transaction_is_queued_with_times_seq_numbers_and_offline_flag() -> None:
    clock = FakeClock()
    cp = station(clock)
    tx, answer = await cp.start_transaction(1, "TAG1", 1000)
    assert answer == {}
    assert cp.station.status(1) is ConnectorStatus.CHARGING
    clock.now += timedelta(minutes=5)
    await cp.update_transaction(tx, meter_wh=1500)
    clock.now += timedelta(minutes=5)
    await cp.end_transaction(tx, 2000)
    events = [m.payload for m in cp.queued]
    for payload in events:
        check_request("TransactionEvent", payload)
    assert [(e["eventType"], e["seqNo"], e["offline"]) for e in events] == [
        ("Started", 0, True),
        ("Updated", 1, True),
        ("Ended", 2, True),
    ]
    assert [e["timestamp"] for e in events] == [
        "2025-01-01T10:00:00.000Z",
        "2025-01-01T10:05:00.000Z",
        "2025-01-01T10:10:00.000Z",
    ]
    assert {e["transactionInfo"]["transactionId"] for e in events} == {tx}
    assert len(tx) == 36
    assert events[2]["triggerReason"] == "StopAuthorized"
    assert events[2]["meterValue"][0]["sampledValue"][0]["value"] == 2000
    assert cp.open_transactions == {}
    assert cp.station.status(1) is ConnectorStatus.FINISHING
    assert cp.has_queued(tx) and cp.has_queued() and not cp.has_queued("other")


async def test_seq_no_is_one_counter_for_all_transactions() -> None:
    cp = station(connectors=2)
    a, _ = await cp.start_transaction(1, "A", 0)
    b, _ = await cp.start_transaction(2, "B", 0)
    await cp.update_transaction(a, meter_wh=10)
    await cp.end_transaction(b, 5, stopped_reason="Remote")
    seqs = [(m.payload["transactionInfo"]["transactionId"], m.payload["seqNo"]) for m in cp.queued]
    assert seqs == [(a, 0), (b, 1), (a, 2), (b, 3)]
    assert cp.seq.upcoming == 4
    assert cp.queued[3].payload["triggerReason"] == "RemoteStop"


async def test_low_level_event_is_sent_as_given() -> None:
    cp = station()
    await cp.transaction_event(
        {"eventType": "Updated", "seqNo": 77, "offline": False, "timestamp": "T"}, validate=False
    )
    await cp.transaction_event({"eventType": "Updated", "triggerReason": "Trigger"})
    first, second = (m.payload for m in cp.queued)
    assert first == {"eventType": "Updated", "seqNo": 77, "offline": False, "timestamp": "T"}
    assert second["seqNo"] == 0  # taken from the counter, which explicit numbers do not move
    assert second["offline"] is True
    assert second["timestamp"] == "2025-01-01T10:00:00.000Z"


async def test_cable_first_transaction_is_authorized_later() -> None:
    cp = station()
    tx, _ = await cp.start_transaction(
        1, None, 0, trigger_reason="CablePluggedIn", charging_state="EVConnected"
    )
    assert cp.open_transactions[tx].id_token is None
    assert cp.station.status(1) is ConnectorStatus.PREPARING
    await cp.update_transaction(
        tx,
        trigger_reason="RemoteStart",
        id_token="R1",
        token_type="Central",
        remote_start_id=9,
        charging_state="Charging",
    )
    record = cp.open_transactions[tx]
    assert record.id_token == {"idToken": "R1", "type": "Central"}
    assert record.remote_start_id == 9
    assert cp.station.status(1) is ConnectorStatus.CHARGING
    started, updated = (m.payload for m in cp.queued)
    check_request("TransactionEvent", started)
    check_request("TransactionEvent", updated)
    assert "idToken" not in started
    assert updated["transactionInfo"]["remoteStartId"] == 9


async def test_a_reservation_is_used_by_its_token_only() -> None:
    cp = station()
    assert cp.reserve(Reservation(4, 1, "RES", START + timedelta(hours=1))) == ("Accepted", [1])
    assert cp.station.status(1) is ConnectorStatus.RESERVED
    await cp.start_transaction(1, "other", 0)  # through the message methods: not checked
    assert "reservationId" not in cp.queued[0].payload
    await cp.start_transaction(1, "res", 0)
    assert cp.queued[1].payload["reservationId"] == 4
    assert cp.reservations.all() == ()


async def test_messages_other_than_transaction_events_need_a_connection() -> None:
    cp = station()
    with pytest.raises(NotConnectedError):
        await cp.heartbeat()
    with pytest.raises(NotConnectedError):
        await cp.meter_values(1)
    assert cp.queued == ()


async def test_charging_profile_caps_the_evse_until_its_transaction_ends() -> None:
    cp = station(connectors=2)
    tx, _ = await cp.start_transaction(1, "A", 0)
    cp.profiles.install(
        profile_from_wire(
            1,
            {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
                    }
                ],
            },
        )
    )
    cp.apply_charging_limits()
    assert cp.station.connector(1).limit_w == 3 * 230 * 10
    assert cp.station.connector(2).limit_w is None
    await cp.end_transaction(tx, 10)
    assert cp.station.connector(1).limit_w is None


def test_device_model_follows_the_station() -> None:
    cp = station(connectors=2)
    cp.station.set_operative(2, False)
    cp.station.set_status(1, ConnectorStatus.CHARGING)
    cp.sync_device_model()
    results = cp.device.get_variables(
        [
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "AvailabilityState"},
            },
            {
                "component": {"name": "EVSE", "evse": {"id": 2}},
                "variable": {"name": "AvailabilityState"},
            },
        ]
    )
    assert [r["attributeValue"] for r in results] == ["Occupied", "Unavailable"]
    assert cp.wire_status(2) == "Unavailable"
