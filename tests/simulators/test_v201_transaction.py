"""Unit tests of OCPP 2.0.1 TransactionEvent payloads and the status mappings behind them."""

from __future__ import annotations

from simulators.station import ConnectorStatus
from simulators.v201_meter import energy_value
from simulators.v201_transaction import (
    OpenTransaction,
    charging_state,
    connector_status,
    ended_event,
    id_token,
    model_status,
    started_event,
    station_status,
    stop_trigger,
    updated_event,
)

from .schemas import check_request

STAMP = "2025-01-01T10:00:00.000Z"
TX = OpenTransaction(
    "0b7c5f3e-8a4e-4e0c-9c6a-3a3f5f0e1d2c", 2, 1, id_token("TAG1"), 1000, remote_start_id=7
)


def test_started_event_carries_evse_token_and_begin_register() -> None:
    payload = started_event(
        TX,
        seq_no=0,
        timestamp=STAMP,
        trigger_reason="RemoteStart",
        charging_state="Charging",
        meter_value=[energy_value(1000, STAMP, "Transaction.Begin")],
    )
    check_request("TransactionEvent", payload)
    assert payload["eventType"] == "Started"
    assert payload["seqNo"] == 0
    assert payload["transactionInfo"] == {
        "transactionId": TX.transaction_id,
        "chargingState": "Charging",
        "remoteStartId": 7,
    }
    assert payload["evse"] == {"id": 2, "connectorId": 1}
    assert payload["idToken"] == {"idToken": "TAG1", "type": "ISO14443"}
    assert payload["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.Begin"
    assert "offline" not in payload and "reservationId" not in payload


def test_started_without_token_or_meter_value_is_still_valid() -> None:
    tx = OpenTransaction("t", 1, 1, None, 0, reservation_id=3)
    payload = started_event(
        tx,
        seq_no=5,
        timestamp=STAMP,
        trigger_reason="CablePluggedIn",
        charging_state="EVConnected",
        meter_value=[],
    )
    check_request("TransactionEvent", payload)
    assert "idToken" not in payload and "meterValue" not in payload
    assert payload["reservationId"] == 3


def test_updated_and_ended_events() -> None:
    updated = updated_event(
        TX.transaction_id,
        seq_no=1,
        timestamp=STAMP,
        trigger_reason="ChargingStateChanged",
        charging_state="SuspendedEV",
        meter_value=[energy_value(1500, STAMP, "Sample.Periodic")],
    )
    check_request("TransactionEvent", updated)
    assert "evse" not in updated and "idToken" not in updated
    assert updated["transactionInfo"]["chargingState"] == "SuspendedEV"
    ended = ended_event(
        TX.transaction_id,
        seq_no=2,
        timestamp=STAMP,
        trigger_reason=stop_trigger("Remote"),
        stopped_reason="Remote",
        meter_value=[energy_value(2000, STAMP, "Transaction.End")],
    )
    check_request("TransactionEvent", ended)
    assert ended["triggerReason"] == "RemoteStop"
    assert ended["transactionInfo"] == {
        "transactionId": TX.transaction_id,
        "chargingState": "Idle",
        "stoppedReason": "Remote",
    }


def test_stop_triggers() -> None:
    assert stop_trigger("Local") == "StopAuthorized"
    assert stop_trigger("DeAuthorized") == "Deauthorized"
    assert stop_trigger("ImmediateReset") == "ResetCommand"
    assert stop_trigger("PowerLoss") == "AbnormalCondition"


def test_nine_station_states_fold_into_five_connector_states() -> None:
    assert {connector_status(s) for s in ConnectorStatus} == {
        "Available",
        "Occupied",
        "Reserved",
        "Unavailable",
        "Faulted",
    }
    assert connector_status(ConnectorStatus.SUSPENDED_EV) == "Occupied"
    assert station_status("Occupied", ConnectorStatus.AVAILABLE) is ConnectorStatus.PREPARING
    assert station_status("Occupied", ConnectorStatus.CHARGING) is ConnectorStatus.CHARGING
    assert station_status("Reserved", ConnectorStatus.AVAILABLE) is ConnectorStatus.RESERVED
    assert station_status("Charging", ConnectorStatus.AVAILABLE) is None  # a 1.6 word
    assert station_status("Bogus", ConnectorStatus.AVAILABLE) is None


def test_charging_states_round_trip_through_the_station_model() -> None:
    for state in ("Charging", "SuspendedEV", "SuspendedEVSE", "EVConnected"):
        status = model_status(state)
        assert status is not None
        assert charging_state(status) == state
    assert charging_state(ConnectorStatus.AVAILABLE) == "Idle"
    assert model_status("Flying") is None
