"""Unit tests of the OCPP 2.0.1 charging profiles and the power cap they set."""

from __future__ import annotations

from typing import Any

from simulators.v201_profiles import ChargingProfiles


def profile(
    profile_id: int, limit: float, unit: str = "W", purpose: str = "TxDefaultProfile", **extra: Any
) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stackLevel": extra.pop("stackLevel", 0),
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [
                    {"startPeriod": 3600, "limit": 1.0},
                    {"startPeriod": 0, "limit": limit, **extra},
                ],
            }
        ],
    }


def test_lowest_limit_of_evse_and_station_profiles_wins() -> None:
    profiles = ChargingProfiles()
    assert profiles.limit_w(1) is None
    profiles.install(1, profile(1, 11_000))
    profiles.install(0, profile(2, 16, "A", "ChargingStationMaxProfile"))
    assert profiles.limit_w(1) == 11_000
    assert profiles.limit_w(2) == 3 * 230 * 16
    profiles.install(2, profile(3, 10, "A", numberPhases=1))
    assert profiles.limit_w(2) == 2300


def test_same_id_replaces_and_clear_by_id_or_criteria() -> None:
    profiles = ChargingProfiles()
    profiles.install(1, profile(1, 5000))
    profiles.install(1, profile(1, 7000))
    assert len(profiles) == 1
    assert profiles.limit_w(1) == 7000
    profiles.install(2, profile(2, 6000, stackLevel=2))
    assert not profiles.clear(profile_id=9)
    assert profiles.clear(criteria={"evseId": 2, "stackLevel": 2})
    assert profiles.clear(criteria={"chargingProfilePurpose": "TxDefaultProfile"})
    assert len(profiles) == 0


def test_tx_profiles_end_with_the_transaction_on_their_evse() -> None:
    profiles = ChargingProfiles()
    profiles.install(1, profile(1, 5000, purpose="TxProfile"))
    profiles.install(1, profile(2, 9000))
    profiles.end_transaction(1)
    assert profiles.limit_w(1) == 9000
