"""Rate limits as token buckets: what one charger may have stored as sent, how fast one
connection is read, how many unknown charge points register themselves.

Pure arithmetic on times passed in (seconds, any epoch); no clock, no I/O, no logging.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class TokenBucket:
    """`rate` tokens a second up to `capacity`; starts full.

    `take` spends tokens only when there are enough (a refusal costs nothing); `reserve`
    always spends and says how long to wait until the spent tokens would have been there.
    """

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def level(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def full(self, now: float) -> bool:
        return self.level(now) >= self.capacity

    def take(self, now: float, amount: float = 1.0) -> bool:
        self._refill(now)
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True

    def reserve(self, now: float, amount: float = 1.0) -> float:
        """Spend `amount` (the level may go below zero); seconds until it is paid back."""
        self._refill(now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass(frozen=True, slots=True)
class KeptLimits:
    """What one charger may have stored as sent: messages and bytes a minute, and how many
    minutes' worth it may use at once (a device-model report after a boot, a burst of
    events). Zero for a rate means no limit on it."""

    messages_per_minute: float = 60.0
    bytes_per_minute: float = 65536.0
    burst_minutes: float = 15.0

    @property
    def enabled(self) -> bool:
        return self.messages_per_minute > 0 or self.bytes_per_minute > 0


@dataclass(slots=True)
class Allowance:
    """One charger's buckets and what was refused since it was last reported."""

    messages: TokenBucket | None
    bytes: TokenBucket | None
    refused: int = 0
    refused_bytes: int = 0
    # When refusals were last reported (None: never).
    reported_at: float | None = None

    def full(self, now: float) -> bool:
        return all(b is None or b.full(now) for b in (self.messages, self.bytes))


@dataclass(frozen=True, slots=True)
class Decision:
    kept: bool
    # The charger went over its quota and that was not reported within `report_every`
    # seconds: one log line is due, with what was refused since the last one.
    report: bool = False
    refused: int = 0
    refused_bytes: int = 0


@dataclass(slots=True)
class KeptQuota:
    """Per-charger allowance for messages kept as sent.

    A message is kept only when both buckets hold enough (messages: 1, bytes: its size);
    a refused message spends nothing. Chargers whose buckets are full again are forgotten
    once more than `max_tracked` are tracked (a full bucket is what a new one would be).
    """

    limits: KeptLimits
    report_every: float = 60.0
    max_tracked: int = 10_000
    _by_charger: dict[str, Allowance] = field(default_factory=dict)
    # Tracked chargers at which the next sweep runs (at least twice those left by the last,
    # so that sweeps cost O(1) per message even when most buckets are in use).
    _sweep_at: int = 0

    def __len__(self) -> int:
        return len(self._by_charger)

    def _allowance(self, cp_id: str, now: float) -> Allowance:
        allowance = self._by_charger.get(cp_id)
        if allowance is None:
            if len(self._by_charger) >= max(self.max_tracked, self._sweep_at):
                self._forget_full(now)
                self._sweep_at = 2 * len(self._by_charger)
            limits = self.limits
            allowance = Allowance(
                _bucket(limits.messages_per_minute, limits.burst_minutes, now),
                _bucket(limits.bytes_per_minute, limits.burst_minutes, now),
            )
            self._by_charger[cp_id] = allowance
        return allowance

    def _forget_full(self, now: float) -> None:
        for cp_id in [k for k, a in self._by_charger.items() if a.full(now)]:
            del self._by_charger[cp_id]

    def admit(self, cp_id: str, size: int, now: float) -> Decision:
        """May a message of `size` bytes from `cp_id` be kept now?"""
        if not self.limits.enabled:
            return Decision(kept=True)
        allowance = self._allowance(cp_id, now)
        messages, sizes = allowance.messages, allowance.bytes
        fits = (messages is None or messages.level(now) >= 1) and (
            sizes is None or sizes.level(now) >= size
        )
        if fits:
            if messages is not None:
                messages.take(now)
            if sizes is not None:
                sizes.take(now, size)
            return Decision(kept=True)
        allowance.refused += 1
        allowance.refused_bytes += size
        due = allowance.reported_at is None or now - allowance.reported_at >= self.report_every
        if not due:
            return Decision(kept=False)
        decision = Decision(False, True, allowance.refused, allowance.refused_bytes)
        allowance.reported_at = now
        allowance.refused = 0
        allowance.refused_bytes = 0
        return decision


def _bucket(per_minute: float, burst_minutes: float, now: float) -> TokenBucket | None:
    if per_minute <= 0:
        return None
    return TokenBucket(per_minute / 60.0, per_minute * max(burst_minutes, 1 / 60), now)


class Enrolment:
    """How many unknown charge points may register themselves (auto-registration): at most
    `per_hour` an hour (that many at once after a quiet hour), and at most `limit` waiting
    for staff. Zero means no limit of that kind."""

    __slots__ = ("_bucket", "limit", "per_hour")

    def __init__(self, per_hour: int, limit: int, now: float) -> None:
        self.per_hour = per_hour
        self.limit = limit
        self._bucket = TokenBucket(per_hour / 3600.0, per_hour, now) if per_hour > 0 else None

    def refusal(self, waiting: int | None, now: float) -> str | None:
        """Why an unknown charge point may not register now (None: it may). `waiting`:
        auto-registered charge points staff have not acted on (None: not counted)."""
        if self.limit > 0 and waiting is not None and waiting >= self.limit:
            return "auto-registration limit reached"
        if self._bucket is not None and self._bucket.level(now) < 1:
            return "auto-registration rate reached"
        return None

    def spend(self, now: float) -> None:
        if self._bucket is not None:
            self._bucket.take(now)
