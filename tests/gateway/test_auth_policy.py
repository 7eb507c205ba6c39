"""The back-off policy that the ocpp.auth_* keys describe: capped, so that guessing at
one charger id never locks it out for longer than the cap."""

from __future__ import annotations

from csms.config import OcppConfig
from csms.core.failures import FailureLimiter
from csms.gateway.server import auth_policy


def test_defaults() -> None:
    policy = auth_policy(OcppConfig())
    assert (policy.free, policy.first_wait, policy.max_wait, policy.forget_after) == (
        10,
        1.0,
        60.0,
        900.0,
    )


def test_the_wait_of_one_id_never_exceeds_the_cap() -> None:
    now = [0.0]
    limits = FailureLimiter(
        auth_policy(OcppConfig(auth_free_failures=2, auth_backoff_cap_seconds=0.25)),
        lambda: now[0],
    )
    waits = [limits.failed("cp:CP1").wait for _ in range(1000)]
    assert waits[:3] == [0.0, 0.0, 0.25]
    assert max(waits) == 0.25
    now[0] += 0.25
    assert limits.wait("cp:CP1") == 0.0


def test_a_long_cap_keeps_its_keys_at_least_that_long() -> None:
    policy = auth_policy(OcppConfig(auth_backoff_cap_seconds=3600.0))
    assert (policy.max_wait, policy.forget_after) == (3600.0, 3600.0)
