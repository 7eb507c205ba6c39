"""Charging profiles a simulated charger keeps (SetChargingProfile, both OCPP versions): which one
prevails on a connector at a moment, the power cap that follows, and the composite schedule.

Pure bookkeeping over version-neutral records; `v16_profiles` and `v201_profiles` read the wire.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from simulators.clock import parse_wire_time
from simulators.options import REJECT_MODES
from simulators.station import NOMINAL_VOLTAGE_V, PHASES, Cap

__all__ = [
    "ChargingProfiles",
    "CompositePeriod",
    "Limit",
    "Period",
    "Profile",
    "ProfilePolicy",
    "ProfileRules",
    "Purpose",
    "Rating",
    "profile_from_schedule",
    "schedule_periods",
]

_CYCLES = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}


class Purpose(StrEnum):
    """chargingProfilePurpose of either version (1.6 ChargePointMaxProfile and 2.0.1
    ChargingStationMaxProfile are one thing)."""

    STATION_MAX = "StationMax"
    TX_DEFAULT = "TxDefault"
    TX = "Tx"


@dataclass(frozen=True, slots=True)
class Period:
    """One chargingSchedulePeriod: from `start_s` seconds into the schedule, at most `limit`."""

    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class Limit:
    """A cap resolved for an outlet: watts, and the number of phases it is used on."""

    watts: float
    phases: int = PHASES

    def amps(self) -> float:
        return self.watts / (NOMINAL_VOLTAGE_V * self.phases)


@dataclass(frozen=True, slots=True)
class Profile:
    """An installed charging profile; connector 0 is the station as a whole."""

    profile_id: int
    connector_id: int
    purpose: Purpose
    stack_level: int
    unit: str
    periods: tuple[Period, ...]
    kind: str = "Absolute"
    start: datetime | None = None
    duration_s: int | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | str | None = None
    #: The profile as the CSMS sent it (camelCase).
    wire: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def cap(self, period: Period) -> Cap:
        """The period's limit in its own unit: per phase in A, in total in W; W become A
        only with the phases the session actually uses."""
        if self.unit == "A":
            return Cap(amps=period.limit, phases=period.phases)
        return Cap(watts=period.limit, phases=period.phases)

    def origin(self, at: datetime, transaction_start: datetime | None) -> datetime:
        """When the schedule in force at `at` began: the start of the schedule (or of its
        current day or week when recurring), the transaction start for Relative ones."""
        if self.kind == "Relative" or self.start is None:
            return transaction_start or at
        cycle = _CYCLES.get(self.recurrency or "") if self.kind == "Recurring" else None
        if cycle is None:
            return self.start
        return self.start + cycle * math.floor((at - self.start) / cycle)

    def limit_at(self, at: datetime, transaction_start: datetime | None = None) -> Cap | None:
        """The cap of this profile at `at`, or None when it does not limit then."""
        if self.valid_from is not None and at < self.valid_from:
            return None
        if self.valid_to is not None and at >= self.valid_to:
            return None
        elapsed = (at - self.origin(at, transaction_start)).total_seconds()
        if elapsed < 0 or (self.duration_s is not None and elapsed >= self.duration_s):
            return None
        current = [period for period in self.periods if period.start_s <= elapsed]
        return self.cap(current[-1]) if current else None

    def changes(
        self, start: datetime, end: datetime, transaction_start: datetime | None
    ) -> set[datetime]:
        """The moments within (start, end) at which this profile's cap may change."""
        moments = {m for m in (self.valid_from, self.valid_to) if m is not None}
        origin = self.origin(start, transaction_start)
        cycle = _CYCLES.get(self.recurrency or "") if self.kind == "Recurring" else None
        while origin < end:
            moments.update(origin + timedelta(seconds=p.start_s) for p in self.periods)
            if self.duration_s is not None:
                moments.add(origin + timedelta(seconds=self.duration_s))
            if cycle is None:
                break
            origin += cycle
        return {m for m in moments if start < m < end}


@dataclass(frozen=True, slots=True)
class ProfileRules:
    """What a charger accepts: stack levels, periods per schedule, profiles kept, units."""

    max_stack_level: int = 8
    max_periods: int = 24
    max_installed: int = 16
    units: frozenset[str] = frozenset({"A", "W"})


@dataclass(frozen=True, slots=True)
class ProfilePolicy:
    """Which profiles a charger declines whatever their content, as some real ones do: all,
    those of transactions (it supports a station maximum only), or a 0 A/W limit."""

    reject: str = "none"
    reject_zero: bool = False

    def __post_init__(self) -> None:
        if self.reject not in REJECT_MODES:
            raise ValueError(f"reject mode must be one of {', '.join(REJECT_MODES)}")

    def refusal(
        self, profile: Profile, at: datetime, transaction_start: datetime | None = None
    ) -> str | None:
        """Why this charger declines `profile` (None: it does not). A profile's limit is the
        one of the period in force at `at`, else (not in force yet) its first period's."""
        if self.reject == "all":
            return "this charger takes no charging profiles"
        if self.reject == "tx" and profile.purpose is not Purpose.STATION_MAX:
            return "this charger takes a station maximum profile only"
        if self.reject_zero:
            cap = profile.limit_at(at, transaction_start)
            if cap is None and profile.periods:
                cap = profile.cap(profile.periods[0])
            if cap is not None and cap.amps_on(PHASES) <= 0:
                return "this charger takes no limit of 0"
        return None


@dataclass(frozen=True, slots=True)
class Rating:
    """What an outlet can deliver without profiles: `amps` per phase on `phases` phases
    (the wiring, or fewer when the vehicle plugged in charges on fewer)."""

    amps: float
    phases: int = PHASES

    def resolve(self, cap: Cap | None) -> Limit:
        """The lower of the rating and `cap`, in watts on the phases used."""
        used = self.phases if cap is None else cap.phases_used(self.phases)
        amps = self.amps if cap is None else min(self.amps, cap.amps_on(used))
        return Limit(amps * NOMINAL_VOLTAGE_V * used, used)


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    """One period of a composite schedule: from `start_s` seconds, at most `limit`."""

    start_s: int
    limit: Limit


class ChargingProfiles:
    """Installed profiles by id.

    On a connector the cap is the lower of the station-wide maximum profile and the profile
    for the transaction: its TxProfile, else the connector's TxDefaultProfile, else the
    station's (connector 0). Within a purpose the highest stack level in force wins."""

    def __init__(self) -> None:
        self._by_id: dict[int, Profile] = {}
        self._transaction_starts: dict[int, datetime] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> tuple[Profile, ...]:
        return tuple(self._by_id.values())

    def get(self, profile_id: int) -> Profile | None:
        return self._by_id.get(profile_id)

    def refusal(self, profile: Profile, rules: ProfileRules) -> str | None:
        """Why a charger would refuse to install `profile` (None: it would not)."""
        if not 0 <= profile.stack_level <= rules.max_stack_level:
            return f"stack level {profile.stack_level} out of range"
        if not profile.periods or len(profile.periods) > rules.max_periods:
            return f"{len(profile.periods)} periods"
        if profile.periods[0].start_s != 0:
            return "first period does not start at 0"
        if any(period.limit < 0 for period in profile.periods):
            return "negative limit"
        if profile.unit not in rules.units:
            return f"unit {profile.unit} not supported"
        kept = [p for p in self._by_id.values() if not _replaced_by(p, profile)]
        if len(kept) >= rules.max_installed:
            return f"already {len(kept)} profiles installed"
        return None

    def install(self, profile: Profile) -> None:
        """Keep `profile`; one with the same id, or the same connector, purpose and stack
        level, is replaced."""
        for old in [p for p in self._by_id.values() if _replaced_by(p, profile)]:
            del self._by_id[old.profile_id]
        self._by_id[profile.profile_id] = profile

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile: those matching every criterion given; True if any went."""
        chosen = [
            p
            for p in self._by_id.values()
            if (profile_id is None or p.profile_id == profile_id)
            and (connector_id is None or p.connector_id == connector_id)
            and (purpose is None or p.purpose is purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        for p in chosen:
            del self._by_id[p.profile_id]
        return bool(chosen)

    def started(self, connector_id: int) -> datetime | None:
        """When the transaction on a connector started (None: none runs)."""
        return self._transaction_starts.get(connector_id)

    def transaction_started(self, connector_id: int, at: datetime) -> None:
        """Relative profiles on this connector count from now."""
        self._transaction_starts[connector_id] = at

    def end_transaction(self, connector_id: int) -> bool:
        """TxProfiles end with the transaction on their connector; True if any did."""
        self._transaction_starts.pop(connector_id, None)
        ended = [
            p.profile_id
            for p in self._by_id.values()
            if p.purpose is Purpose.TX and p.connector_id == connector_id
        ]
        for profile_id in ended:
            del self._by_id[profile_id]
        return bool(ended)

    def limit(self, connector_id: int, at: datetime, sharing: int = 1) -> Cap | None:
        """The cap the profiles put on a connector (0: the station maximum) at `at`: the
        station maximum and the transaction's profile both hold; the station maximum is
        for the whole station, shared equally by the `sharing` connectors that charge."""
        if not self._by_id:
            return None
        started = self._transaction_starts.get(connector_id)
        station = self._prevailing(Purpose.STATION_MAX, 0, at, started)
        if connector_id == 0:
            return station
        if station is not None and sharing > 1:
            station = station.shared(sharing)
        tx = (
            self._prevailing(Purpose.TX, connector_id, at, started)
            or self._prevailing(Purpose.TX_DEFAULT, connector_id, at, started)
            or self._prevailing(Purpose.TX_DEFAULT, 0, at, started)
        )
        return tx if station is None else station.lower(tx)

    def moments(self, start: datetime, end: datetime) -> list[datetime]:
        """The moments within (start, end) at which any connector's cap may change, in order."""
        found: set[datetime] = set()
        if not self._by_id:
            return []
        starts: set[datetime | None] = {None, *self._transaction_starts.values()}
        for profile in self._by_id.values():
            for started in starts:
                found |= profile.changes(start, end, started)
        return sorted(found)

    def composite(
        self,
        connector_id: int,
        ratings: Mapping[int, Rating],
        start: datetime,
        duration_s: int,
    ) -> list[CompositePeriod]:
        """The cap over `duration_s` seconds from `start`, never above the rating: for a
        connector its own, for 0 the sum of the connectors' caps under the station maximum."""
        end = start + timedelta(seconds=max(duration_s, 0))
        periods: list[CompositePeriod] = []
        for moment in [start, *self.moments(start, end)]:
            limit = self._capped(connector_id, ratings, moment)
            if not periods or periods[-1].limit != limit:
                periods.append(CompositePeriod(int((moment - start).total_seconds()), limit))
        return periods

    def _capped(self, connector_id: int, ratings: Mapping[int, Rating], at: datetime) -> Limit:
        if connector_id != 0:
            return ratings[connector_id].resolve(self.limit(connector_id, at))
        total = sum(self._capped(cid, ratings, at).watts for cid in ratings)
        phases = max((rating.phases for rating in ratings.values()), default=PHASES)
        whole = Rating(total / (NOMINAL_VOLTAGE_V * phases), phases)
        return whole.resolve(self.limit(0, at))

    def _prevailing(
        self, purpose: Purpose, connector_id: int, at: datetime, started: datetime | None
    ) -> Cap | None:
        candidates = sorted(
            (p for p in self._by_id.values() if p.purpose is purpose),
            key=lambda p: p.stack_level,
            reverse=True,
        )
        for profile in candidates:
            if profile.connector_id != connector_id:
                continue
            limit = profile.limit_at(at, started)
            if limit is not None:
                return limit
        return None


def profile_from_schedule(
    profile_id: int,
    connector_id: int,
    purpose: Purpose,
    profile: Mapping[str, Any],
    schedule: Mapping[str, Any],
) -> Profile:
    """A profile from its wire fields that both OCPP versions name alike; the versions differ
    only in the id field, the purpose names and how the schedule is nested."""
    periods = sorted(
        (
            Period(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
            for p in schedule.get("chargingSchedulePeriod") or []
        ),
        key=lambda period: period.start_s,
    )
    duration = schedule.get("duration")
    return Profile(
        profile_id=profile_id,
        connector_id=connector_id,
        purpose=purpose,
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


def schedule_periods(periods: Iterable[CompositePeriod], unit: str) -> list[dict[str, Any]]:
    """`chargingSchedulePeriod` entries (the same in both versions) in `unit` (A or W), with
    at most one decimal; numberPhases only when it is not three."""
    out: list[dict[str, Any]] = []
    for period in periods:
        value = period.limit.amps() if unit == "A" else period.limit.watts
        limit = math.floor(value * 10 + 1e-6) / 10
        entry: dict[str, Any] = {
            "startPeriod": period.start_s,
            "limit": int(limit) if limit.is_integer() else limit,
        }
        if period.limit.phases != PHASES:
            entry["numberPhases"] = period.limit.phases
        out.append(entry)
    return out


def _replaced_by(old: Profile, new: Profile) -> bool:
    return old.profile_id == new.profile_id or (
        old.connector_id == new.connector_id
        and old.purpose is new.purpose
        and old.stack_level == new.stack_level
    )
