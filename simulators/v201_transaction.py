"""OCPP 2.0.1 transactions of a simulated station: the open-transaction record, the
TransactionEvent payloads (camelCase, as on the wire) and the status mappings they need.

Pure functions and frozen records; numbering, queueing and sending are the charger's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulators.station import OCCUPIED, ConnectorStatus

__all__ = [
    "OpenTransaction",
    "charging_needs",
    "charging_state",
    "connector_status",
    "ended_event",
    "id_token",
    "model_status",
    "started_event",
    "station_status",
    "stop_trigger",
    "updated_event",
]

#: The station model's status for each 2.0.1 chargingState.
_CHARGING_STATES = {
    "Charging": ConnectorStatus.CHARGING,
    "SuspendedEV": ConnectorStatus.SUSPENDED_EV,
    "SuspendedEVSE": ConnectorStatus.SUSPENDED_EVSE,
    "EVConnected": ConnectorStatus.PREPARING,
    "Idle": ConnectorStatus.PREPARING,
}
#: triggerReason of the Ended event for each stoppedReason a session can end with.
_STOP_TRIGGERS = {
    "Local": "StopAuthorized",
    "Remote": "RemoteStop",
    "DeAuthorized": "Deauthorized",
    "ImmediateReset": "ResetCommand",
    "EVDisconnected": "EVCommunicationLost",
    "EnergyLimitReached": "EnergyLimitReached",
    "TimeLimitReached": "TimeLimitReached",
}


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction this station started and has not ended yet."""

    transaction_id: str
    evse_id: int
    connector_id: int
    #: The IdTokenType dict, or None for a transaction started before authorization.
    id_token: Mapping[str, Any] | None
    meter_start_wh: int
    remote_start_id: int | None = None
    reservation_id: int | None = None


def id_token(token: str, token_type: str = "ISO14443") -> dict[str, Any]:
    return {"idToken": token, "type": token_type}


def started_event(
    tx: OpenTransaction,
    *,
    seq_no: int,
    timestamp: str,
    trigger_reason: str,
    charging_state: str | None,
    meter_value: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": tx.transaction_id}
    if charging_state is not None:
        info["chargingState"] = charging_state
    if tx.remote_start_id is not None:
        info["remoteStartId"] = tx.remote_start_id
    payload: dict[str, Any] = {
        "eventType": "Started",
        "timestamp": timestamp,
        "triggerReason": trigger_reason,
        "seqNo": seq_no,
        "transactionInfo": info,
        "evse": {"id": tx.evse_id, "connectorId": tx.connector_id},
    }
    if tx.id_token is not None:
        payload["idToken"] = dict(tx.id_token)
    if tx.reservation_id is not None:
        payload["reservationId"] = tx.reservation_id
    if meter_value:
        payload["meterValue"] = [dict(entry) for entry in meter_value]
    return payload


def updated_event(
    transaction_id: str,
    *,
    seq_no: int,
    timestamp: str,
    trigger_reason: str,
    charging_state: str | None = None,
    token: Mapping[str, Any] | None = None,
    remote_start_id: int | None = None,
    meter_value: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": transaction_id}
    if charging_state is not None:
        info["chargingState"] = charging_state
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: dict[str, Any] = {
        "eventType": "Updated",
        "timestamp": timestamp,
        "triggerReason": trigger_reason,
        "seqNo": seq_no,
        "transactionInfo": info,
    }
    if token is not None:
        payload["idToken"] = dict(token)
    if meter_value:
        payload["meterValue"] = [dict(entry) for entry in meter_value]
    return payload


def ended_event(
    transaction_id: str,
    *,
    seq_no: int,
    timestamp: str,
    trigger_reason: str,
    stopped_reason: str,
    token: Mapping[str, Any] | None = None,
    meter_value: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": "Ended",
        "timestamp": timestamp,
        "triggerReason": trigger_reason,
        "seqNo": seq_no,
        "transactionInfo": {
            "transactionId": transaction_id,
            "chargingState": "Idle",
            "stoppedReason": stopped_reason,
        },
    }
    if token is not None:
        payload["idToken"] = dict(token)
    if meter_value:
        payload["meterValue"] = [dict(entry) for entry in meter_value]
    return payload


def charging_needs(
    evse_id: int,
    *,
    phases: int,
    departure: str,
    energy_wh: int,
    max_current_a: int,
    voltage_v: int = 230,
    min_current_a: int = 6,
) -> dict[str, Any]:
    """NotifyEVChargingNeedsRequest of an AC vehicle: its departure, the energy it wants and
    the currents (per phase) and voltage it takes."""
    return {
        "evseId": evse_id,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_single_phase" if phases == 1 else "AC_three_phase",
            "departureTime": departure,
            "acChargingParameters": {
                "energyAmount": energy_wh,
                "evMinCurrent": min_current_a,
                "evMaxCurrent": max_current_a,
                "evMaxVoltage": voltage_v,
            },
        },
    }


def stop_trigger(stopped_reason: str) -> str:
    """The triggerReason that goes with a stoppedReason."""
    return _STOP_TRIGGERS.get(stopped_reason, "AbnormalCondition")


def connector_status(status: ConnectorStatus) -> str:
    """The 2.0.1 connectorStatus for a station-model status (nine states fold into five)."""
    if status in OCCUPIED:
        return "Occupied"
    return status.value  # Available, Reserved, Unavailable and Faulted are spelled alike


def station_status(connector_status: str, current: ConnectorStatus) -> ConnectorStatus | None:
    """The station-model status for a reported 2.0.1 connectorStatus (None if unknown);
    Occupied keeps a more precise current state (Charging, SuspendedEV...)."""
    if connector_status == "Occupied":
        return current if current in OCCUPIED else ConnectorStatus.PREPARING
    try:
        status = ConnectorStatus(connector_status)
    except ValueError:
        return None
    return None if status in OCCUPIED else status


def charging_state(status: ConnectorStatus) -> str:
    """The transactionInfo.chargingState for a station-model status."""
    if status is ConnectorStatus.CHARGING:
        return "Charging"
    if status is ConnectorStatus.SUSPENDED_EV:
        return "SuspendedEV"
    if status is ConnectorStatus.SUSPENDED_EVSE:
        return "SuspendedEVSE"
    if status in OCCUPIED:
        return "EVConnected"
    return "Idle"


def model_status(state: str) -> ConnectorStatus | None:
    """The station-model status for a chargingState (None if unknown)."""
    return _CHARGING_STATES.get(state)
