"""OCPP 2.0.1 charging profiles on the wire: `chargingProfile` read into the version-neutral
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

#: chargingProfilePurpose on the 2.0.1 wire.
PURPOSES = {
    "ChargingStationMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


def profile_from_wire(evse_id: int, profile: Mapping[str, Any]) -> Profile:
    """A `chargingProfile` object; of its schedules the first counts."""
    return profile_from_schedule(
        int(profile["id"]),
        evse_id,
        PURPOSES[str(profile["chargingProfilePurpose"])],
        profile,
        (profile.get("chargingSchedule") or [{}])[0],
    )


def composite_answer(
    evse_id: int,
    periods: Sequence[CompositePeriod],
    unit: str,
    schedule_start: str,
    duration_s: int,
) -> dict[str, Any]:
    """GetCompositeScheduleResponse, Accepted."""
    return {
        "status": "Accepted",
        "schedule": {
            "evseId": evse_id,
            "duration": duration_s,
            "scheduleStart": schedule_start,
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": schedule_periods(periods, unit),
        },
    }
