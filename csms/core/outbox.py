"""The OCPI push outbox as the domain sees it: one entry per push to one partner, and the
retry schedule.

Pure values and rules; storing entries is csms.storage.outbox's job and delivering them
ocpi_cpo.push's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.core.parties import Party

# Retry schedule: 2 s, 4 s, 8 s ... capped at 5 minutes (never given up: the push stays
# due until the partner answers 1000 or staff drop it).
FIRST_RETRY = timedelta(seconds=2)
LAST_RETRY = timedelta(minutes=5)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt (1 = the first)."""
    if attempts <= 0:
        return timedelta(0)
    # 2 ** 8 * 2 s is already past the cap; the min keeps the power small.
    delay: timedelta = FIRST_RETRY * (2 ** min(attempts - 1, 10))
    return min(delay, LAST_RETRY)


@dataclass(frozen=True, slots=True)
class Push:
    """A push to enqueue: `url` is absolute (the partner's endpoint plus `path`: our
    country_code/party_id and the object's ids); `object_key` orders pushes of one object
    (e.g. `locations/LOC1`, `sessions/17`): a later push waits for the earlier one."""

    module: str
    method: str
    url: str
    body: dict[str, Any] | None
    object_key: str
    # The party behind the partner the push is for (a session's and CDR's token owner, a
    # command's sender): a hub routes it there. None: the partner itself (a broadcast).
    to: Party | None = None
    # `url` after the partner's endpoint for `module` (empty: the endpoint itself). The
    # push is sent to the partner's endpoint as it is at sending time plus this, so a
    # partner that changed version or endpoints meanwhile gets it at its new ones. None:
    # `url` is not under an endpoint (a command's response_url): sent to it as it is.
    path: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    partner_id: int
    partner_name: str
    module: str
    method: str
    url: str
    body: dict[str, Any] | None
    object_key: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    to: Party | None = None
    path: str | None = None
