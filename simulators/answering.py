"""What the request answers of both versions ask of a simulated charger alike: the local
list, remote start targets, reservations, charging profiles, composite schedules, the
heartbeat. Each version's `AnsweringCharger` (simulators.v16_requests,
simulators.v201_requests) adds its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from simulators.local_list import LocalList
from simulators.profiles import CompositePeriod, Profile, ProfileRules
from simulators.reservations import Reservation


class SharedAnswering(Protocol):
    @property
    def local_list(self) -> LocalList: ...

    def local_list_enabled(self) -> bool: ...

    def remote_start_target(
        self, id_tag: str, candidates: Iterable[int], *, authorizes: bool
    ) -> int | None: ...

    def reserve(self, reservation: Reservation) -> tuple[str, list[int]]: ...

    def cancel_reservation(self, reservation_id: int) -> tuple[Reservation | None, list[int]]: ...

    async def expire_reservation(
        self,
        reservation: Reservation,
        expired: Callable[[Reservation, list[int]], Awaitable[None]],
    ) -> None: ...

    def composite_schedule(self, connector_id: int, duration_s: int) -> list[CompositePeriod]: ...

    def profile_refusal(self, profile: Profile, rules: ProfileRules) -> str | None: ...

    def heartbeat_changed(self) -> None: ...
