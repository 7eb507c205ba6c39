"""The back-off after failed authentication: free failures, doubling waits up to the
maximum, forgetting after a quiet spell, one report per window, bounded memory."""

from __future__ import annotations

import pytest

from csms.core.failures import FailureLimiter, FailurePolicy, address_key, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**policy: float) -> tuple[FailureLimiter, Clock]:
    clock = Clock()
    return FailureLimiter(FailurePolicy(**policy), clock), clock  # type: ignore[arg-type]


def test_free_failures_then_doubling_waits_up_to_the_maximum() -> None:
    limits, clock = limiter(free=3, first_wait=1.0, max_wait=8.0, forget_after=100.0)
    waits = [limits.failed("10.0.0.1").wait for _ in range(3)]
    assert waits == [0.0, 0.0, 0.0]
    assert limits.wait("10.0.0.1") == 0.0
    waits = [limits.failed("10.0.0.1").wait for _ in range(6)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert limits.wait("10.0.0.1") == 8.0
    clock.now += 5.5
    assert limits.wait("10.0.0.1") == pytest.approx(2.5)
    clock.now += 2.5
    assert limits.wait("10.0.0.1") == 0.0  # the back-off is over: an attempt is taken
    assert limits.failures("10.0.0.1") == 9
    # Another key is not affected.
    assert limits.wait("10.0.0.2") == 0.0
    assert limits.failures("10.0.0.2") == 0


def test_limiting_is_reported_once_per_window() -> None:
    limits, clock = limiter(free=1, first_wait=1.0, max_wait=4.0, forget_after=60.0)
    started = [limits.failed("cp1").started_limiting for _ in range(5)]
    assert started == [False, True, False, False, False]
    clock.now += 59.0  # not quiet long enough: same window
    assert limits.failed("cp1").started_limiting is False
    assert limits.failures("cp1") == 6
    clock.now += 60.0  # quiet for forget_after: the key starts afresh
    assert limits.wait("cp1") == 0.0
    assert limits.failures("cp1") == 0
    first = limits.failed("cp1")
    assert (first.wait, first.failures, first.started_limiting) == (0.0, 1, False)
    assert limits.failed("cp1").started_limiting is True


def test_a_huge_number_of_failures_stays_at_the_maximum() -> None:
    limits, _clock = limiter(free=0, first_wait=0.5, max_wait=30.0)
    for _ in range(5000):
        last = limits.failed("x")
    assert last.wait == 30.0
    assert last.failures == 5000


def test_memory_is_bounded_least_recently_failed_first() -> None:
    limits, _clock = limiter(free=0, max_keys=3)
    for key in ("a", "b", "c"):
        limits.failed(key)
    limits.failed("a")  # a failed most recently now
    limits.failed("d")  # b is the oldest: forgotten
    assert len(limits) == 3
    assert limits.failures("b") == 0
    assert (limits.failures("a"), limits.failures("c"), limits.failures("d")) == (2, 1, 1)


@pytest.mark.parametrize(
    "policy",
    [
        {"free": -1},
        {"first_wait": 0.0},
        {"first_wait": 10.0, "max_wait": 5.0},
        {"max_wait": 100.0, "forget_after": 50.0},
        {"max_keys": 0},
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"free >= 0|forget_after"):
        FailurePolicy(**policy)  # type: ignore[arg-type]


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after(s) for s in (0.0, 0.2, 1.0, 1.01, 59.5)] == ["1", "1", "1", "2", "60"]


def test_addresses_are_keyed_by_host_ipv6_by_its_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:bbbb::9") == address_key("2001:db8:1:2:aaaa::1")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "unknown"
    assert address_key("/run/csms.sock") == "/run/csms.sock"


def test_success_forgets_one_key_only() -> None:
    limits, _clock = limiter(free=1, first_wait=1.0, max_wait=4.0, forget_after=100.0)
    for _ in range(3):
        limits.failed("cp:CP1")
        limits.failed("addr:10.0.0.1")
    assert limits.wait("cp:CP1") == 2.0
    limits.succeeded("cp:CP1")
    assert (limits.failures("cp:CP1"), limits.wait("cp:CP1")) == (0, 0.0)
    assert limits.failures("addr:10.0.0.1") == 3
    limits.succeeded("cp:never-failed")  # nothing to forget: no error
    # Starting afresh: free failures again, then a new report of the window.
    assert limits.failed("cp:CP1").wait == 0.0
    assert limits.failed("cp:CP1").started_limiting
