"""Charging profiles a simulated OCPP 2.0.1 station keeps (SetChargingProfile) and the power cap
they put on each EVSE.

Pure bookkeeping: applying the cap to the station model is the charger's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulators.station import NOMINAL_VOLTAGE_V, PHASES

__all__ = ["ChargingProfiles", "InstalledProfile"]


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    evse_id: int
    profile: Mapping[str, Any]

    @property
    def profile_id(self) -> int:
        return int(self.profile["id"])

    @property
    def purpose(self) -> str:
        return str(self.profile.get("chargingProfilePurpose", ""))

    @property
    def stack_level(self) -> int:
        return int(self.profile.get("stackLevel", 0))

    def first_limit_w(self) -> float | None:
        """The limit of the first period of the first schedule, in W."""
        schedules = self.profile.get("chargingSchedule") or []
        if not schedules:
            return None
        schedule = schedules[0]
        periods = sorted(
            schedule.get("chargingSchedulePeriod") or [], key=lambda p: p.get("startPeriod", 0)
        )
        if not periods:
            return None
        period = periods[0]
        limit = float(period["limit"])
        if schedule.get("chargingRateUnit") == "A":
            phases = int(period.get("numberPhases", PHASES))
            return limit * phases * NOMINAL_VOLTAGE_V
        return limit


class ChargingProfiles:
    """Installed profiles by id; installing an id again replaces the old one.

    The cap on an EVSE is the lowest first-period limit of any profile that applies to it (its
    own and the station-wide ones of EVSE 0); stack levels, recurrence and later periods are
    not modelled."""

    def __init__(self) -> None:
        self._by_id: dict[int, InstalledProfile] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def install(self, evse_id: int, profile: Mapping[str, Any]) -> InstalledProfile:
        installed = InstalledProfile(evse_id, dict(profile))
        self._by_id[installed.profile_id] = installed
        return installed

    def clear(
        self, profile_id: int | None = None, criteria: Mapping[str, Any] | None = None
    ) -> bool:
        """ClearChargingProfile: by id, or by evseId/purpose/stackLevel; True if any went."""
        chosen = [
            item
            for item in self._by_id.values()
            if (profile_id is None or item.profile_id == profile_id)
            and _matches(item, criteria or {})
        ]
        for item in chosen:
            del self._by_id[item.profile_id]
        return bool(chosen)

    def end_transaction(self, evse_id: int) -> None:
        """TxProfiles end with the transaction on their EVSE."""
        for item in list(self._by_id.values()):
            if item.purpose == "TxProfile" and item.evse_id == evse_id:
                del self._by_id[item.profile_id]

    def limit_w(self, evse_id: int) -> int | None:
        """The power cap on an EVSE, or None when no profile applies."""
        limits = [
            limit
            for item in self._by_id.values()
            if item.evse_id in (0, evse_id) and (limit := item.first_limit_w()) is not None
        ]
        return round(min(limits)) if limits else None


def _matches(item: InstalledProfile, criteria: Mapping[str, Any]) -> bool:
    if "evseId" in criteria and item.evse_id != criteria["evseId"]:
        return False
    purpose = criteria.get("chargingProfilePurpose")
    if purpose is not None and item.purpose != purpose:
        return False
    level = criteria.get("stackLevel")
    return level is None or item.stack_level == level
