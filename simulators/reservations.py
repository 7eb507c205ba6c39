"""Reservations a simulated charger holds (ReserveNow, both OCPP versions): a connector, or any
connector (0), kept for one id tag (or its parent/group) until it expires.

Pure decisions over which connectors are free; statuses and messages are the charger's job.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Reservation", "ReservationBook", "same_tag"]


def same_tag(a: str | None, b: str | None) -> bool:
    """Id tags and tokens are compared case-insensitively."""
    return a is not None and b is not None and a.casefold() == b.casefold()


@dataclass(frozen=True, slots=True)
class Reservation:
    """Connector `connector_id` (0: any connector) held for `id_tag` until `expires_at`."""

    reservation_id: int
    connector_id: int
    id_tag: str
    expires_at: datetime
    #: 1.6 parentIdTag, 2.0.1 groupIdToken: a tag of that group may use it too.
    parent_id_tag: str | None = None

    def admits(self, id_tag: str | None, parent_id_tag: str | None = None) -> bool:
        return same_tag(id_tag, self.id_tag) or same_tag(parent_id_tag, self.parent_id_tag)


class ReservationBook:
    """Reservations by id; a new one with a known id replaces the old one."""

    def __init__(self) -> None:
        self._by_id: dict[int, Reservation] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> tuple[Reservation, ...]:
        return tuple(self._by_id.values())

    def get(self, reservation_id: int) -> Reservation | None:
        return self._by_id.get(reservation_id)

    def add(self, reservation: Reservation) -> None:
        self._by_id[reservation.reservation_id] = reservation

    def remove(self, reservation_id: int) -> Reservation | None:
        return self._by_id.pop(reservation_id, None)

    def on_connector(self, connector_id: int) -> Reservation | None:
        """The reservation of that very connector (not of any connector)."""
        for reservation in self._by_id.values():
            if reservation.connector_id == connector_id:
                return reservation
        return None

    def anywhere(self) -> list[Reservation]:
        return [r for r in self._by_id.values() if r.connector_id == 0]

    def refusal(self, connector_id: int, free: Set[int]) -> str | None:
        """Occupied when a new reservation of `connector_id` (0: any) cannot be met, given
        the connectors that could take a session now; None when it can."""
        unclaimed = self._unclaimed(free)
        if connector_id == 0:
            return None if len(unclaimed) > len(self.anywhere()) else "Occupied"
        if connector_id not in unclaimed or len(unclaimed) <= len(self.anywhere()):
            return "Occupied"
        return None

    def usable(
        self, connector_id: int, id_tag: str | None, parent_id_tag: str | None = None
    ) -> Reservation | None:
        """The reservation a session of this tag on this connector uses up, if any."""
        own = self.on_connector(connector_id)
        if own is not None:
            return own if own.admits(id_tag, parent_id_tag) else None
        for reservation in self.anywhere():
            if reservation.admits(id_tag, parent_id_tag):
                return reservation
        return None

    def blocking(
        self,
        connector_id: int,
        id_tag: str | None,
        parent_id_tag: str | None,
        free: Set[int],
    ) -> Reservation | None:
        """The reservation that keeps this tag from starting on this connector: the
        connector's own for another tag, or reservations of any connector that would be
        left without one."""
        own = self.on_connector(connector_id)
        if own is not None:
            return None if own.admits(id_tag, parent_id_tag) else own
        others = [r for r in self.anywhere() if not r.admits(id_tag, parent_id_tag)]
        if not others:
            return None
        mine = 1 if self.usable(connector_id, id_tag, parent_id_tag) is not None else 0
        left = len(self._unclaimed(free) - {connector_id})
        return others[0] if left < len(self.anywhere()) - mine else None

    def shown_reserved(self, free: Set[int]) -> set[int]:
        """Connectors to show as Reserved: the reserved ones, and every unclaimed free one
        once reservations of any connector need them all."""
        specific = {r.connector_id for r in self._by_id.values() if r.connector_id != 0}
        unclaimed = self._unclaimed(free)
        if self.anywhere() and len(unclaimed) <= len(self.anywhere()):
            return specific | unclaimed
        return specific

    def _unclaimed(self, free: Set[int]) -> set[int]:
        specific = {r.connector_id for r in self._by_id.values() if r.connector_id != 0}
        return set(free) - specific
