"""OCPP 1.6 charging profiles on the wire: `csChargingProfiles` read into the version-neutral
`Profile`, purposes both ways, and the GetCompositeSchedule answer.

Pure translation; which profile prevails is decided in `simulators.profiles`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulators.clock import parse_wire_time
from simulators.profiles import CompositePeriod, Period, Profile, Purpose, schedule_periods

__all__ = ["PURPOSES", "composite_answer", "profile_from_wire"]

#: chargingProfilePurpose on the 1.6 wire.
PURPOSES = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


def profile_from_wire(connector_id: int, profile: Mapping[str, Any]) -> Profile:
    """A `csChargingProfiles` (or RemoteStartTransaction `chargingProfile`) object."""
    schedule = profile.get("chargingSchedule") or {}
    periods = sorted(
        (
            Period(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
            for p in schedule.get("chargingSchedulePeriod") or []
        ),
        key=lambda period: period.start_s,
    )
    duration = schedule.get("duration")
    return Profile(
        profile_id=int(profile["chargingProfileId"]),
        connector_id=connector_id,
        purpose=PURPOSES[str(profile["chargingProfilePurpose"])],
        stack_level=int(profile.get("stackLevel", 0)),
        unit=str(schedule.get("chargingRateUnit", "W")),
        periods=tuple(periods),
        kind=str(profile.get("chargingProfileKind", "Absolute")),
        start=parse_wire_time(schedule.get("startSchedule")),
        duration_s=None if duration is None else int(duration),
        recurrency=profile.get("recurrencyKind"),
        valid_from=parse_wire_time(profile.get("validFrom")),
        valid_to=parse_wire_time(profile.get("validTo")),
        transaction_id=profile.get("transactionId"),
        wire=dict(profile),
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
