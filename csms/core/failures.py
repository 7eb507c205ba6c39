"""Exponential back-off after failed authentication, per key (a source address, a charger
id): the rule the listeners share, with an injected monotonic clock.

Pure: no I/O, no sleeping; a listener asks `wait(key)` before checking credentials and
tells `failed(key)` when they were wrong, then answers 429 (or delays) as it sees fit.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Seconds from an arbitrary start (time.monotonic in production, a counter in tests).
Monotonic = Callable[[], float]


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """`free` failures are let through without back-off; each further failure makes the key
    wait `first_wait` seconds, doubled every time, at most `max_wait`. A key without a
    failure for `forget_after` seconds starts afresh. At most `max_keys` keys are kept (the
    least recently failed are forgotten first), so that many addresses cannot fill memory."""

    free: int = 10
    first_wait: float = 1.0
    max_wait: float = 60.0
    forget_after: float = 900.0
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        if self.free < 0 or self.first_wait <= 0 or self.max_wait < self.first_wait:
            raise ValueError("free >= 0 and 0 < first_wait <= max_wait")
        if self.forget_after < self.max_wait or self.max_keys < 1:
            raise ValueError("forget_after >= max_wait and max_keys >= 1")


@dataclass(slots=True)
class _Record:
    failures: int
    last_failure: float
    until: float  # no attempt is taken before this instant
    reported: bool  # the start of this key's limiting was reported (logged) already


@dataclass(frozen=True, slots=True)
class Failure:
    """What one failed attempt led to: the seconds the key now waits (0: none yet), its
    consecutive failures, and whether this failure started limiting the key (log it once
    per window: the window lasts until the key is forgotten)."""

    wait: float
    failures: int
    started_limiting: bool


class FailureLimiter:
    """Failed attempts per key and the back-off they earned. A success does not reset a
    key (an attacker holding one valid token must not erase its failures with it) unless
    the listener says so (`succeeded`); a key is forgotten `forget_after` seconds after its
    last failure."""

    def __init__(self, policy: FailurePolicy, clock: Monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds before an attempt from `key` is taken; 0 when it may try now."""
        record = self._current(key)
        if record is None:
            return 0.0
        return max(0.0, record.until - self._clock())

    def failed(self, key: str) -> Failure:
        now = self._clock()
        policy = self.policy
        record = self._current(key)
        if record is None:
            record = _Record(0, now, now, reported=False)
        record.failures += 1
        record.last_failure = now
        over = record.failures - policy.free
        wait = 0.0
        if over > 0:
            # min() before the power: 2 ** 2000 would overflow a float.
            wait = policy.first_wait * 2.0 ** min(over - 1, 64)
            wait = min(wait, policy.max_wait)
            record.until = now + wait
        started = over > 0 and not record.reported
        if started:
            record.reported = True
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > policy.max_keys:
            self._records.popitem(last=False)
        return Failure(wait, record.failures, started)

    def succeeded(self, key: str) -> None:
        """Forget `key`'s failures. Only for keys a success proves were not guessed at by
        someone else (a charger id whose right password was given); never for an address."""
        self._records.pop(key, None)

    def failures(self, key: str) -> int:
        """Consecutive failures remembered for `key`."""
        record = self._current(key)
        return 0 if record is None else record.failures

    def __len__(self) -> int:
        return len(self._records)

    def _current(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is None:
            return None
        if self._clock() - record.last_failure >= self.policy.forget_after:
            del self._records[key]
            return None
        return record


def address_key(address: str | None) -> str:
    """The key of a source address: an IPv4 address as it is, an IPv6 address by its /64
    network (one host usually holds a whole /64, so its addresses share one back-off)."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address  # a Unix socket path or the like: as it is
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def retry_after(seconds: float) -> str:
    """An HTTP Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
