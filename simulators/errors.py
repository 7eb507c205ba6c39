"""Exceptions raised by the simulators, rooted in `SimulatorError`.

    SimulatorError
    ├── OptionsError        bad options (also a ValueError)
    ├── ConnectError        the websocket could not be opened
    ├── NotConnectedError   a message needs a live connection and there is none
    ├── InvalidRequest      our own request failed the OCPP schema; nothing was sent
    ├── CallErrorReceived   the CSMS answered with a CALLERROR
    ├── InvalidResponse     the CSMS answer failed the OCPP schema
    ├── ResponseTimeout     the CSMS did not answer in time
    ├── EmspError           the eMSP simulator's OCPI call to a CPO failed (simulators.emsp)
    └── PushRefused         a push the eMSP simulator received cannot be taken (an OCPI answer)

No other module defines exceptions of its own.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallErrorReceived",
    "ConnectError",
    "EmspError",
    "InvalidRequest",
    "InvalidResponse",
    "NotConnectedError",
    "OptionsError",
    "PushRefused",
    "ResponseTimeout",
    "SimulatorError",
]


class SimulatorError(Exception):
    """Root of everything the simulators raise on purpose."""


class OptionsError(SimulatorError, ValueError):
    """An option has a value the simulator cannot work with."""


class ConnectError(SimulatorError):
    """The websocket to the CSMS could not be opened."""


class NotConnectedError(SimulatorError):
    """A message needs a live connection and the charger has none."""


class InvalidRequest(SimulatorError):
    """Our own request does not match the OCPP schema; it was not sent."""


class CallErrorReceived(SimulatorError):
    """The CSMS answered a CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str, details: Any) -> None:
        super().__init__(f"{action} answered with CALLERROR {code}: {description}")
        self.action = action
        self.code = code
        self.description = description
        self.details = details


class InvalidResponse(SimulatorError):
    """The CSMS answer does not match the OCPP schema for the action."""


class ResponseTimeout(SimulatorError):
    """The CSMS did not answer a CALL within the response timeout."""


class EmspError(SimulatorError):
    """The eMSP simulator could not register with or pull from a CPO; one line says why."""


class PushRefused(SimulatorError):
    """A push to the eMSP simulator cannot be taken: answered with this HTTP status and OCPI
    status code (2001 bad object, 2000/2003 unknown object)."""

    def __init__(self, http_status: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code
        self.message = message
