"""A charger's status on the dashboard: the most pressing of its EVSEs' and its own."""

from __future__ import annotations

import pytest

from csms.core.overview import STATUS_KEYS, charger_status, count_by_status
from csms.core.status import ConnectorStatus as S


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), "Unknown"),
        ((S.AVAILABLE,), "Available"),
        ((S.AVAILABLE, S.CHARGING), "Occupied"),
        ((S.AVAILABLE, S.SUSPENDED_EV, S.RESERVED), "Occupied"),
        ((S.AVAILABLE, S.RESERVED), "Reserved"),
        ((S.CHARGING, S.UNAVAILABLE), "Unavailable"),
        ((S.UNAVAILABLE, S.FAULTED, S.CHARGING), "Faulted"),
        # EVSE 0 (the charger itself) counts like any other.
        ((S.FAULTED, S.AVAILABLE, S.AVAILABLE), "Faulted"),
        ((S.FINISHING,), "Occupied"),
    ],
)
def test_charger_status(statuses: tuple[S, ...], expected: str) -> None:
    assert charger_status(statuses) == expected


def test_counts_have_every_key_in_order() -> None:
    counts = count_by_status(["Occupied", "Available", "Occupied", "Unknown"])
    assert list(counts) == list(STATUS_KEYS)
    assert counts == {
        "Available": 1,
        "Occupied": 2,
        "Reserved": 0,
        "Unavailable": 0,
        "Faulted": 0,
        "Unknown": 1,
    }
