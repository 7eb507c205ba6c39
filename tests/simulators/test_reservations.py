"""Unit tests of the reservation book both simulators keep: who may use a connector, when a
reservation of any connector blocks, and which connectors show Reserved."""

from __future__ import annotations

from datetime import UTC, datetime

from simulators.reservations import Reservation, ReservationBook

EXPIRY = datetime(2025, 1, 1, 11, 0, tzinfo=UTC)


def book(*reservations: Reservation) -> ReservationBook:
    out = ReservationBook()
    for reservation in reservations:
        out.add(reservation)
    return out


def test_tags_and_parents_are_case_insensitive() -> None:
    reservation = Reservation(1, 1, "abc", EXPIRY, parent_id_tag="Fleet")
    assert reservation.admits("ABC")
    assert reservation.admits("other", "FLEET")
    assert not reservation.admits("other")
    assert not reservation.admits(None)


def test_a_reserved_connector_is_kept_for_its_tag() -> None:
    reservations = book(Reservation(1, 1, "A", EXPIRY))
    free = {1, 2}
    assert reservations.blocking(1, "B", None, free) is not None
    assert reservations.blocking(1, "a", None, free) is None
    assert reservations.blocking(2, "B", None, free) is None
    assert reservations.usable(1, "A") == reservations.get(1)
    assert reservations.usable(2, "A") is None
    assert reservations.refusal(1, free) == "Occupied"
    assert reservations.refusal(2, free) is None
    assert reservations.shown_reserved(free) == {1}


def test_reservations_of_any_connector_block_only_the_last_free_ones() -> None:
    reservations = book(Reservation(1, 0, "A", EXPIRY))
    assert reservations.shown_reserved({1, 2}) == set()
    assert reservations.blocking(1, "B", None, {1, 2}) is None  # connector 2 is left for A
    assert reservations.blocking(2, "B", None, {2}) is not None  # it would take A's last one
    assert reservations.blocking(2, "A", None, {2}) is None
    assert reservations.usable(2, "A") == reservations.get(1)
    assert reservations.shown_reserved({2}) == {2}
    assert reservations.refusal(0, {1, 2}) is None  # a second one still fits
    assert reservations.refusal(0, {2}) == "Occupied"
    assert reservations.refusal(2, {1, 2}) is None  # connector 1 stays for A
    assert reservations.refusal(2, {2}) == "Occupied"  # would leave A nothing
    mixed = book(Reservation(1, 0, "A", EXPIRY), Reservation(2, 1, "B", EXPIRY))
    assert mixed.shown_reserved({1, 2}) == {1, 2}  # B holds 1, so A needs 2


def test_add_replaces_by_id_and_remove_forgets() -> None:
    reservations = book(Reservation(1, 1, "A", EXPIRY))
    reservations.add(Reservation(1, 2, "A", EXPIRY))
    assert [r.connector_id for r in reservations.all()] == [2]
    assert reservations.remove(1) is not None
    assert reservations.remove(1) is None
    assert len(reservations) == 0
