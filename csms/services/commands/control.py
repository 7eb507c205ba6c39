"""Commands that need nothing but the charger: reset, unlock, availability, TriggerMessage,
ClearCache and DataTransfer.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from csms.core.command_requests import (
    AvailabilityRequest,
    ClearCacheRequest,
    DataTransferRequest,
    ResetRequest,
    TriggerRequest,
    UnlockRequest,
)
from csms.core.commands import (
    ChangeAvailability,
    ClearCache,
    DataTransfer,
    Reset,
    Trigger,
    Unlock,
    trigger_name,
)
from csms.services.commands.base import Order, Prepared

ControlRequest = (
    ResetRequest
    | UnlockRequest
    | AvailabilityRequest
    | TriggerRequest
    | ClearCacheRequest
    | DataTransferRequest
)


def prepare(request: ControlRequest, order: Order) -> Prepared:
    """The command for `request`; a TriggerMessage by the name the charger's version uses."""
    match request:
        case ResetRequest():
            return Prepared(Reset(request.hard))
        case UnlockRequest():
            return Prepared(Unlock(request.evse))
        case AvailabilityRequest():
            return Prepared(ChangeAvailability(request.operative, request.evse))
        case TriggerRequest():
            message = trigger_name(request.message, order.channel.version)
            return Prepared(Trigger(message, request.evse))
        case ClearCacheRequest():
            return Prepared(ClearCache())
        case DataTransferRequest():
            return Prepared(DataTransfer(request.vendor, request.message_id, request.data))
