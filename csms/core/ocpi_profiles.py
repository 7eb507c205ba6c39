"""OCPI 2.2.1 smart charging (the ChargingProfiles module, Receiver interface) as pure values:
a partner's request checked, the CSMS command request it becomes, and the charger's
answer as the result body POSTed to the partner's response_url.

No I/O and no HTTP: ocpi_cpo.routes.chargingprofiles finds sessions and sends the commands.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from csms.core.clock import parse_timestamp
from csms.core.command_requests import (
    ProfileClearRequest,
    ProfileCompositeRequest,
    ProfileSetRequest,
)
from csms.core.commands import MAX_PERIODS, Outcome, ProfilePurpose, SchedulePeriod
from csms.core.errors import BadProfileRequest as BadProfileRequest
from csms.core.errors import InvalidTimestamp
from csms.core.tariffs import ocpi_datetime

# A response_url is stored with the request (csms.storage.ocpi_commands): at most this long.
MAX_URL_LENGTH = 512
# The longest ActiveChargingProfile a partner may ask for (a week).
MAX_DURATION_S = 7 * 24 * 3600
# The stack level of the TxProfiles partners set: a second PUT on a session replaces the
# first at the charger (same EVSE, purpose and stack level).
STACK_LEVEL = 0


class ProfileResponse(StrEnum):
    """ChargingProfileResponseType: our answer to the request itself, given at once."""

    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ProfileResult(StrEnum):
    """ChargingProfileResultType: what the EVSE did, POSTed to the response_url later."""

    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class OcpiProfile:
    """An OCPI ChargingProfile, checked: the periods (the first at 0 s, ascending) in `unit`
    from `start_at`, or from the start of charging when that is None."""

    unit: str  # "W" or "A"
    periods: tuple[SchedulePeriod, ...]
    start_at: datetime | None = None
    duration_s: int | None = None
    min_rate: float | None = None


# --- reading requests -----------------------------------------------------------------------


def session_tx_id(session_id: str) -> int | None:
    """Our transaction id for an OCPI session id (which is its decimal form); None when the
    id cannot be one of our sessions."""
    if not (session_id.isascii() and session_id.isdigit()) or len(session_id) > 18:
        return None
    tx_id = int(session_id)
    return tx_id if tx_id > 0 and str(tx_id) == session_id else None


def response_url(value: object) -> str:
    """The URL the result goes to: an absolute http(s) URL."""
    if value is None or value == "":
        raise BadProfileRequest("response_url is required")
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise BadProfileRequest(
            f"response_url must be a URL of at most {MAX_URL_LENGTH} characters"
        )
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadProfileRequest(f"response_url is not an http(s) URL: {value!r}")
    return value


def duration(value: str | None) -> int:
    """The `duration` of a GET ActiveChargingProfile: whole seconds, 1 to a week."""
    if value is None or not value.strip():
        raise BadProfileRequest("duration is required (seconds)")
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_DURATION_S:
        raise BadProfileRequest(
            f"duration must be a whole number of seconds, 1 to {MAX_DURATION_S}"
        )
    return int(text)


def parse_set_charging_profile(body: object) -> tuple[OcpiProfile, str]:
    """A SetChargingProfile object: its checked profile and its response_url."""
    if not isinstance(body, dict):
        raise BadProfileRequest("the body must be a SetChargingProfile object")
    url = response_url(body.get("response_url"))
    return parse_charging_profile(body.get("charging_profile")), url


def parse_charging_profile(data: object) -> OcpiProfile:
    """An OCPI ChargingProfile object, as OCPP will take it: W or A, at least one period, the
    first at 0 s and the others after each other, limits of at most one decimal."""
    if not isinstance(data, dict):
        raise BadProfileRequest("charging_profile is required (a ChargingProfile object)")
    unit = data.get("charging_rate_unit")
    if unit not in ("W", "A"):
        raise BadProfileRequest("charging_profile.charging_rate_unit must be W or A")
    start_at = None
    start = data.get("start_date_time")
    if start is not None:
        try:
            start_at = parse_timestamp(start) if isinstance(start, str) else None
        except InvalidTimestamp:
            start_at = None
        if start_at is None:
            raise BadProfileRequest(
                f"charging_profile.start_date_time is not a date and time: {start!r}"
            )
    seconds = data.get("duration")
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1
    ):
        raise BadProfileRequest("charging_profile.duration must be a whole number of seconds >= 1")
    min_rate = data.get("min_charging_rate")
    return OcpiProfile(
        unit=unit,
        periods=_periods(data.get("charging_profile_period")),
        start_at=start_at,
        duration_s=seconds,
        min_rate=None if min_rate is None else _rate(min_rate, "min_charging_rate"),
    )


def _rate(value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or abs(value * 10 - round(value * 10)) > 1e-6
    ):
        raise BadProfileRequest(
            f"charging_profile.{what} must be a number >= 0 with at most one decimal"
        )
    return float(value)


def _periods(raw: object) -> tuple[SchedulePeriod, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PERIODS:
        raise BadProfileRequest(
            f"charging_profile.charging_profile_period must list 1 to {MAX_PERIODS} periods"
        )
    periods: list[SchedulePeriod] = []
    for item in raw:
        start = item.get("start_period") if isinstance(item, dict) else None
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise BadProfileRequest(
                "charging_profile_period.start_period must be a whole number of seconds >= 0"
            )
        periods.append(SchedulePeriod(start, _rate(item.get("limit"), "limit")))
    if periods[0].start_s != 0:
        raise BadProfileRequest("the first charging_profile_period must start at 0")
    if any(b.start_s <= a.start_s for a, b in itertools.pairwise(periods)):
        raise BadProfileRequest("charging_profile_period must be in ascending start_period order")
    return tuple(periods)


# --- the CSMS commands they become --------------------------------------------------------


def set_request(profile: OcpiProfile, evse_id: int, tx_id: int) -> ProfileSetRequest:
    """The `profile-set` request: the profile as the TxProfile of transaction `tx_id` on its
    EVSE."""
    return ProfileSetRequest(
        evse=evse_id,
        unit=profile.unit,
        periods=profile.periods,
        purpose=ProfilePurpose.TX,
        stack=STACK_LEVEL,
        duration=profile.duration_s,
        start=profile.start_at,
        relative=profile.start_at is None,
        min_rate=profile.min_rate,
        transaction=tx_id,
    )


def clear_request(tx_id: int) -> ProfileClearRequest:
    """The `profile-clear` request: every TxProfile of transaction `tx_id`."""
    return ProfileClearRequest(transaction=tx_id)


def composite_request(evse_id: int, duration_s: int, unit: str | None) -> ProfileCompositeRequest:
    """The `profile-composite` request (no unit: the charger's choice)."""
    return ProfileCompositeRequest(evse_id, duration_s, unit)


# --- the charger's answers as results -------------------------------------------------------


def set_result(outcome: Outcome) -> dict[str, Any]:
    """ChargingProfileResult: ACCEPTED when the charger accepted the profile; REJECTED for
    anything else (Rejected, a CALLERROR such as NotSupported, no answer, not connected,
    refused by the CSMS)."""
    result = ProfileResult.ACCEPTED if outcome.ok else ProfileResult.REJECTED
    return {"result": result.value}


def clear_result(outcome: Outcome, status: str | None) -> dict[str, Any]:
    """ClearProfileResult: ACCEPTED when the charger cleared profiles, UNKNOWN when it had
    none matching (OCPP Unknown), REJECTED for anything else."""
    if outcome.ok:
        return {"result": ProfileResult.ACCEPTED.value}
    if outcome is Outcome.REJECTED and status == "Unknown":
        return {"result": ProfileResult.UNKNOWN.value}
    return {"result": ProfileResult.REJECTED.value}


def active_profile_result(
    outcome: Outcome, data: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """ActiveChargingProfileResult from a GetCompositeSchedule: ACCEPTED with the schedule
    when the charger gave one, UNKNOWN when it accepted but gave none (or one we cannot
    read), REJECTED for anything else. `now` stands in for a start the charger left out."""
    if not outcome.ok:
        return {"result": ProfileResult.REJECTED.value}
    profile = active_profile(data, now)
    if profile is None:
        return {"result": ProfileResult.UNKNOWN.value}
    return {"result": ProfileResult.ACCEPTED.value, "profile": profile}


def active_profile(data: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """An OCPI ActiveChargingProfile from a composite schedule as the version adapters read
    it (start, duration_s, unit, periods of start_s and limit); None without periods or
    unit. Limits keep one decimal (rounded down: a limit must not grow)."""
    unit = data.get("unit")
    raw = data.get("periods")
    if unit not in ("W", "A") or not isinstance(raw, list) or not raw:
        return None
    periods: list[dict[str, Any]] = []
    for period in raw:
        start = period.get("start_s") if isinstance(period, Mapping) else None
        limit = period.get("limit") if isinstance(period, Mapping) else None
        if (
            isinstance(start, bool)
            or not isinstance(start, int)
            or isinstance(limit, bool)
            or not isinstance(limit, int | float)
            or not math.isfinite(limit)
        ):
            return None
        periods.append({"start_period": start, "limit": _one_decimal(limit)})
    start_at = now
    if isinstance(data.get("start"), str):
        try:
            start_at = parse_timestamp(data["start"])
        except InvalidTimestamp:
            start_at = now
    when = ocpi_datetime(start_at)
    charging_profile: dict[str, Any] = {
        "start_date_time": when,
        "charging_rate_unit": unit,
        "charging_profile_period": periods,
    }
    seconds = data.get("duration_s")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        charging_profile["duration"] = seconds
    return {"start_date_time": when, "charging_profile": charging_profile}


def _one_decimal(value: float) -> float | int:
    tenths = math.floor(value * 10 + 1e-6)
    return tenths // 10 if tenths % 10 == 0 else tenths / 10
