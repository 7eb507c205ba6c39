"""OCPP 2.0.1 frame builders for the end-to-end tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.e2e.sim import hours_ago, ts

V201 = ["ocpp2.0.1"]


def reading(
    at: datetime, wh: float, context: str = "Sample.Periodic", power_w: float | None = 11000
) -> dict[str, Any]:
    values: list[dict[str, Any]] = [
        {
            "value": wh / 1000,
            "context": context,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "kWh"},
        },
    ]
    if power_w is not None:
        values.append(
            {
                "value": power_w,
                "context": context,
                "measurand": "Power.Active.Import",
                "unitOfMeasure": {"unit": "W"},
            }
        )
    return {"timestamp": ts(at), "sampledValue": values}


def tx_event(
    event_type: str,
    tx_id: str,
    seq_no: int,
    at: datetime,
    *,
    trigger: str = "MeterValuePeriodic",
    evse: int | None = 1,
    token: str | None = None,
    token_type: str = "ISO14443",
    meter: list[dict[str, Any]] | None = None,
    offline: bool = False,
    stopped_reason: str | None = None,
    remote_start_id: int | None = None,
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": tx_id}
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts(at),
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
    }
    if evse is not None:
        payload["evse"] = {"id": evse, "connectorId": 1}
    if token is not None:
        payload["idToken"] = {"idToken": token, "type": token_type}
    if meter is not None:
        payload["meterValue"] = meter
    if offline:
        payload["offline"] = True
    return payload


def session_events(tx_id: str, start: datetime, token: str = "TAG1") -> list[dict[str, Any]]:
    """Started (with Transaction.Begin), two Updated, Ended (Transaction.End): 11 kWh."""
    return [
        tx_event(
            "Started",
            tx_id,
            0,
            start,
            trigger="Authorized",
            token=token,
            meter=[reading(start, 1_000_000, "Transaction.Begin")],
        ),
        tx_event(
            "Updated",
            tx_id,
            1,
            start + timedelta(minutes=20),
            meter=[reading(start + timedelta(minutes=20), 1_004_000)],
        ),
        tx_event(
            "Updated",
            tx_id,
            2,
            start + timedelta(minutes=40),
            meter=[reading(start + timedelta(minutes=40), 1_008_000)],
        ),
        tx_event(
            "Ended",
            tx_id,
            3,
            start + timedelta(hours=1),
            trigger="StopAuthorized",
            stopped_reason="Local",
            meter=[reading(start + timedelta(hours=1), 1_011_000, "Transaction.End", power_w=None)],
        ),
    ]


def new_tx_id() -> str:
    return str(uuid.uuid4())


__all__ = ["V201", "hours_ago", "new_tx_id", "reading", "session_events", "ts", "tx_event"]
