"""The push retry schedule: doubling from 2 s, capped at 5 minutes, never giving up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from csms.core.outbox import FIRST_RETRY, LAST_RETRY, retry_delay


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 64), (7, 128), (8, 256), (9, 300)],
)
def test_the_delay_doubles_from_two_seconds(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


def test_the_delay_is_capped_at_five_minutes_forever() -> None:
    assert timedelta(minutes=5) == LAST_RETRY
    for attempts in (9, 10, 11, 50, 10_000, 2**40):
        assert retry_delay(attempts) == LAST_RETRY


def test_no_failure_means_no_delay() -> None:
    assert retry_delay(0) == timedelta(0)
    assert retry_delay(-3) == timedelta(0)


def test_the_schedule_never_shrinks() -> None:
    delays = [retry_delay(n) for n in range(1, 40)]
    assert delays[0] == FIRST_RETRY
    assert delays == sorted(delays)
