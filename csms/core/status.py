"""One connector status model for OCPP 1.6 and 2.0.1.

The enum keeps the 1.6 detail (Preparing, Charging, ...) and `base` gives the 2.0.1 view.
"""

from __future__ import annotations

from enum import StrEnum


class ConnectorStatus(StrEnum):
    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"
    # OCPP 1.6 detail of Occupied
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"

    @property
    def base(self) -> ConnectorStatus:
        """The five-value (OCPP 2.0.1) status this one belongs to."""
        if self in _OCCUPIED_DETAIL:
            return ConnectorStatus.OCCUPIED
        return self


_OCCUPIED_DETAIL = frozenset(
    {
        ConnectorStatus.PREPARING,
        ConnectorStatus.CHARGING,
        ConnectorStatus.SUSPENDED_EV,
        ConnectorStatus.SUSPENDED_EVSE,
        ConnectorStatus.FINISHING,
    }
)

NO_ERROR = "NoError"
