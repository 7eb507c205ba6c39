"""Back-off schedules: doubling from the first delay, capped, none before a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.retries import Backoff


def test_doubles_up_to_the_cap() -> None:
    backoff = Backoff(first=10.0, cap=60.0)
    assert [backoff.delay(n) for n in range(6)] == [0.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert backoff.delay(10_000) == 60.0


def test_next_attempt_time() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert Backoff(first=0.5, cap=1.0).next_at(1, now) == now + timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("first", "cap", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)]
)
def test_nonsense_is_refused(first: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(first=first, cap=cap, factor=factor)
