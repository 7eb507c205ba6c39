"""Reservations: an EVSE (or any EVSE of a charger) held for one id token until it expires.

Pure decisions over Reservation values; storing and expiring them is the services' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.core.ids import token_key


class ReservationState(StrEnum):
    PENDING = "Pending"  # sent, the charger has not answered yet
    ACTIVE = "Active"  # the charger accepted it
    USED = "Used"  # a transaction started with it
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    REJECTED = "Rejected"  # the charger refused it (or never answered)


OPEN_STATES = frozenset({ReservationState.PENDING, ReservationState.ACTIVE})


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    charge_point_id: str
    evse_id: int | None
    id_tag: str
    parent_id_tag: str | None
    state: ReservationState
    expires_at: datetime
    transaction_id: int | None = None
    source: str = "api"
    created_at: datetime | None = None

    def holds(self, now: datetime) -> bool:
        """Still holding its EVSE at `now`."""
        return self.state in OPEN_STATES and self.expires_at > now

    def covers(self, evse_id: int | None) -> bool:
        return self.evse_id is None or evse_id is None or self.evse_id == evse_id

    def admits(self, id_tag: str, parent_uid: str | None = None) -> bool:
        """May `id_tag` (with its group/parent) use this reservation?"""
        key = token_key(id_tag)
        if key == token_key(self.id_tag):
            return True
        return (
            self.parent_id_tag is not None
            and parent_uid is not None
            and (token_key(parent_uid) == token_key(self.parent_id_tag))
        )


def blocking(
    reservations: list[Reservation],
    evse_id: int | None,
    id_tag: str,
    parent_uid: str | None,
    now: datetime,
    evse_count: int | None = None,
) -> Reservation | None:
    """The reservation that stops `id_tag` from charging on `evse_id`, if any.

    An EVSE-specific reservation blocks its EVSE for other tokens. Reservations for "any
    EVSE" block only when they would otherwise leave no EVSE free (they need one of
    `evse_count` EVSEs); without a count they do not block.
    """
    holding = [r for r in reservations if r.holds(now)]
    for r in holding:
        if r.evse_id is not None and r.evse_id == evse_id and not r.admits(id_tag, parent_uid):
            return r
    anywhere = [r for r in holding if r.evse_id is None and not r.admits(id_tag, parent_uid)]
    if anywhere and evse_count is not None:
        specific = {r.evse_id for r in holding if r.evse_id is not None}
        free = evse_count - len(specific - {evse_id}) - 1  # what is left if this one starts
        if free < len(anywhere):
            return anywhere[0]
    return None


def matching(
    reservations: list[Reservation],
    evse_id: int | None,
    id_tag: str,
    parent_uid: str | None,
    now: datetime,
    reservation_id: int | None = None,
) -> Reservation | None:
    """The reservation a transaction starting now uses: the one it names, else one for its
    token on its EVSE (or for any EVSE)."""
    holding = [r for r in reservations if r.holds(now)]
    if reservation_id is not None:
        return next((r for r in holding if r.id == reservation_id), None)
    for r in holding:
        if r.evse_id == evse_id and r.admits(id_tag, parent_uid):
            return r
    for r in holding:
        if r.evse_id is None and r.admits(id_tag, parent_uid):
            return r
    return None


@dataclass(frozen=True, slots=True)
class StartCheck:
    """What the reservations of a charger say about a transaction starting now."""

    used: Reservation | None  # the reservation this transaction consumes
    blocked_by: Reservation | None  # a reservation held for someone else


def check_start(
    reservations: list[Reservation],
    evse_id: int | None,
    id_tag: str | None,
    parent_uid: str | None,
    now: datetime,
    reservation_id: int | None = None,
    evse_count: int | None = None,
) -> StartCheck:
    if id_tag is None:
        # No token yet (plugged in first): only a reservation named on the wire is used.
        named = (
            next((r for r in reservations if r.id == reservation_id and r.holds(now)), None)
            if reservation_id is not None
            else None
        )
        return StartCheck(named, None)
    used = matching(reservations, evse_id, id_tag, parent_uid, now, reservation_id)
    if used is not None:
        return StartCheck(used, None)
    return StartCheck(None, blocking(reservations, evse_id, id_tag, parent_uid, now, evse_count))
