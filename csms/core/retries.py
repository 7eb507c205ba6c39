"""Retry schedules for work that failed: exponential back-off with a cap.

Pure arithmetic; the loops that retry (csms.workers, billing, OCPI publication) read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    """Wait `first` seconds after the first failure, `factor` times longer after each
    further one, never longer than `cap`."""

    first: float
    cap: float
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not self.first > 0:
            raise ValueError(f"the first back-off must be positive, not {self.first!r}")
        if not self.cap >= self.first:
            raise ValueError(f"the back-off cap {self.cap!r} is below the first {self.first!r}")
        if not self.factor >= 1:
            raise ValueError(f"the back-off factor must be at least 1, not {self.factor!r}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 = the first); 0 for
        none."""
        if failures <= 0:
            return 0.0
        # Past 64 doublings every sane cap is reached; the bound keeps the power finite.
        return float(min(self.cap, self.first * self.factor ** min(failures - 1, 64)))

    def next_at(self, failures: int, now: datetime) -> datetime:
        """When to try again after the `failures`-th failure at `now`."""
        return now + timedelta(seconds=self.delay(failures))
