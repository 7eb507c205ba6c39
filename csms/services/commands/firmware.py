"""Firmware updates and diagnostics (log) uploads: each asks the charger to fetch or send a
file, under a request id (the audit log entry's) its status notifications name.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from csms.core.clock import Clock
from csms.core.command_requests import DiagnosticsRequest, FirmwareRequest
from csms.core.commands import GetDiagnostics, UpdateFirmware
from csms.services.commands.base import Order, Prepared


class FirmwareAndLogs:
    """`firmware` and `diagnostics`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def prepare(self, request: FirmwareRequest | DiagnosticsRequest, order: Order) -> Prepared:
        request_id = order.entry_id
        match request:
            case FirmwareRequest():
                retrieve = request.retrieve or self._clock()
                return Prepared(
                    UpdateFirmware(request_id, request.location, retrieve),
                    {"request_id": request_id},
                )
            case DiagnosticsRequest():
                return Prepared(
                    GetDiagnostics(request_id, request.location), {"request_id": request_id}
                )
