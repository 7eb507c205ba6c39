"""Answers of a simulated OCPP 1.6 charger to CALLs from the CSMS, one `on_<action>` each.

Each handler decides the answer at once; any work that sends messages runs after the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from simulators.answers import Answers
from simulators.events import StepKind
from simulators.link import Reply
from simulators.v16_script import reboot
from simulators.v16_session import charge, end_transaction, is_free, notify

if TYPE_CHECKING:
    from simulators.v16 import V16Charger

__all__ = ["RequestHandler"]

Payload = dict[str, Any]


class RequestHandler(Answers["V16Charger"]):
    """Called by the link with (action, camelCase payload); returns the reply."""

    def __init__(self, cp: V16Charger) -> None:
        self._cp = cp
        self._handlers: dict[str, Callable[[Payload], Reply]] = {
            "GetConfiguration": self.on_get_configuration,
            "ChangeConfiguration": self.on_change_configuration,
            "TriggerMessage": self.on_trigger_message,
            "Reset": self.on_reset,
            "RemoteStartTransaction": self.on_remote_start_transaction,
            "RemoteStopTransaction": self.on_remote_stop_transaction,
            "UnlockConnector": self.on_unlock_connector,
            "ChangeAvailability": self.on_change_availability,
            "ClearCache": self.on_clear_cache,
            "DataTransfer": self.on_data_transfer,
        }

    def on_get_configuration(self, payload: Payload) -> Reply:
        known, unknown = self._cp.configuration.get(payload.get("key"))
        answer: Payload = {"configurationKey": [entry.wire() for entry in known]}
        if unknown:
            answer["unknownKey"] = unknown
        return Reply(answer)

    def on_change_configuration(self, payload: Payload) -> Reply:
        key = str(payload["key"])
        status = self._cp.configuration.change(key, str(payload["value"]))
        if status == "Accepted" and key == "HeartbeatInterval":
            self._cp.heartbeat_changed()
        return Reply({"status": status.value})

    def on_trigger_message(self, payload: Payload) -> Reply:
        requested = str(payload["requestedMessage"])
        connector_id = payload.get("connectorId")
        if connector_id is not None and not self._exists(connector_id, allow_zero=True):
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, after=lambda: self._triggered(requested, connector_id))

    def on_reset(self, payload: Payload) -> Reply:
        kind = str(payload["type"])
        return Reply({"status": "Accepted"}, after=lambda: reboot(self._cp, kind))

    def on_remote_start_transaction(self, payload: Payload) -> Reply:
        cp = self._cp
        wanted = payload.get("connectorId")
        if wanted is not None:
            candidates: tuple[int, ...] = (wanted,) if self._exists(wanted) else ()
        else:
            candidates = cp.station.connector_ids
        free = [cid for cid in candidates if is_free(cp, cid)]
        if not free:
            return Reply({"status": "Rejected"})
        control = cp.sessions.open(free[0], str(payload["idTag"]))
        check = cp.configuration.flag("AuthorizeRemoteTxRequests")
        return Reply(
            {"status": "Accepted"}, after=lambda: _quiet(charge(cp, control, None, authorize=check))
        )

    def on_remote_stop_transaction(self, payload: Payload) -> Reply:
        cp = self._cp
        transaction_id = int(payload["transactionId"])
        control = cp.sessions.by_transaction(transaction_id)
        if control is not None:
            control.stop("Remote")
            return Reply({"status": "Accepted"})
        if transaction_id in cp.open_transactions:
            return Reply(
                {"status": "Accepted"},
                after=lambda: end_transaction(cp, transaction_id, "Remote"),
            )
        return Reply({"status": "Rejected"})

    def on_unlock_connector(self, payload: Payload) -> Reply:
        connector_id = payload["connectorId"]
        if not self._exists(connector_id):
            return Reply({"status": "NotSupported"})
        control = self._cp.sessions.on_connector(connector_id)
        if control is not None:
            control.stop("UnlockCommand")
        return Reply({"status": "Unlocked"})

    def on_change_availability(self, payload: Payload) -> Reply:
        cp = self._cp
        connector_id = payload["connectorId"]
        if not self._exists(connector_id, allow_zero=True):
            return Reply({"status": "Rejected"})
        operative = payload["type"] == "Operative"
        affected = cp.station.connector_ids if connector_id == 0 else (connector_id,)
        busy = any(
            cp.sessions.on_connector(cid) is not None or cid in _transaction_connectors(cp)
            for cid in affected
        )
        before = {cid: cp.station.status(cid) for cid in (0, *affected)}
        cp.station.set_operative(connector_id, operative)
        changed = [cid for cid, status in before.items() if cp.station.status(cid) != status]
        # The model already holds the new statuses; the notifications only report them.
        after = (lambda: self._announce(changed)) if changed else None
        return Reply({"status": "Scheduled" if busy else "Accepted"}, after=after)

    def on_clear_cache(self, payload: Payload) -> Reply:
        return Reply({"status": "Accepted"})

    def on_data_transfer(self, payload: Payload) -> Reply:
        if payload.get("vendorId") != self._cp.options.vendor:
            return Reply({"status": "UnknownVendorId"})
        answer: Payload = {"status": "Accepted"}
        if "data" in payload:
            answer["data"] = payload["data"]
        return Reply(answer)

    def _exists(self, connector_id: Any, *, allow_zero: bool = False) -> bool:
        if not isinstance(connector_id, int):
            return False
        return (allow_zero and connector_id == 0) or self._cp.station.has_connector(connector_id)

    async def _announce(self, connector_ids: list[int]) -> None:
        for cid in connector_ids:
            await notify(self._cp, cid, self._cp.station.status(cid))

    async def _triggered(self, requested: str, connector_id: int | None) -> None:
        cp = self._cp
        connectors = cp.station.connector_ids if not connector_id else (connector_id,)
        if requested == "BootNotification":
            await cp.boot()
        elif requested == "Heartbeat":
            await cp.heartbeat()
            cp.report(StepKind.HEARTBEAT_SENT, "heartbeat (triggered)")
        elif requested == "StatusNotification":
            targets = (0, *connectors) if connector_id is None else (connector_id,)
            await self._announce(list(targets))
        elif requested == "MeterValues":
            for cid in connectors:
                tx = _transaction_on(cp, cid)
                await cp.meter_values(cid, tx, [cp.sample(cid, "Trigger")])
        elif requested == "FirmwareStatusNotification":
            await cp.firmware_status("Idle")
        elif requested == "DiagnosticsStatusNotification":
            await cp.diagnostics_status("Idle")


def _transaction_connectors(cp: V16Charger) -> set[int]:
    return {record.connector_id for record in cp.open_transactions.values()}


def _transaction_on(cp: V16Charger, connector_id: int) -> int | None:
    for record in cp.open_transactions.values():
        if record.connector_id == connector_id:
            return record.transaction_id
    return None


async def _quiet(coro: Coroutine[Any, Any, bool]) -> None:
    await coro
