"""Commands to chargers (csms remote, the operator API, OCPI), one module per family behind
the CommandService façade (.service): remote start/stop (.remote), reset, unlock,
availability, trigger and data transfer (.control), configuration and variables
(.configuration), reservations (.reservations), local lists (.local_lists), charging
profiles (.profiles), firmware and diagnostics (.firmware), certificates on chargers
(.certificates).

Requests are csms.core.command_requests' typed values; the wire format is the adapters'.
"""

from __future__ import annotations

from csms.services.commands.base import (
    Channels,
    ChargerChannel,
    PartnerReservation,
    Requester,
    Vouched,
)
from csms.services.commands.service import MAX_TIMEOUT_S, CommandService

__all__ = [
    "MAX_TIMEOUT_S",
    "Channels",
    "ChargerChannel",
    "CommandService",
    "PartnerReservation",
    "Requester",
    "Vouched",
]
