"""OCPP 1.6 charging profiles on the wire: `csChargingProfiles` read into the version-neutral
`Profile`, purposes both ways, and the GetCompositeSchedule answer.

Pure translation; which profile prevails is decided in `simulators.profiles`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulators.profiles import (
    CompositePeriod,
    Profile,
    Purpose,
    profile_from_schedule,
    schedule_periods,
)

__all__ = ["PURPOSES", "composite_answer", "profile_from_wire"]

#: chargingProfilePurpose on the 1.6 wire.
PURPOSES = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


def profile_from_wire(connector_id: int, profile: Mapping[str, Any]) -> Profile:
    """A `csChargingProfiles` (or RemoteStartTransaction `chargingProfile`) object."""
    return profile_from_schedule(
        int(profile["chargingProfileId"]),
        connector_id,
        PURPOSES[str(profile["chargingProfilePurpose"])],
        profile,
        profile.get("chargingSchedule") or {},
    )


def composite_answer(
    connector_id: int,
    periods: Sequence[CompositePeriod],
    unit: str,
    schedule_start: str,
    duration_s: int,
) -> dict[str, Any]:
    """GetCompositeSchedule.conf, Accepted."""
    return {
        "status": "Accepted",
        "connectorId": connector_id,
        "scheduleStart": schedule_start,
        "chargingSchedule": {
            "duration": duration_s,
            "startSchedule": schedule_start,
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": schedule_periods(periods, unit),
        },
    }
