"""Bounds on what chargers make the CSMS keep: messages stored as sent, per charger, and
charge points that register themselves.

Decides, counts (csms.metrics) and logs, once per episode rather than once per message;
writes nothing itself (csms.services.stations stores what is admitted).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from csms.core.clock import Clock
from csms.core.quotas import Enrolment, KeptLimits, KeptQuota
from csms.metrics import Metrics
from csms.storage import charge_points as cp_repo
from csms.storage.database import Database

log = structlog.get_logger("csms.services")

# Seconds between two log lines about the same kind of excess (the metrics count each).
REPORT_EVERY_S = 60.0
# Seconds a count of auto-registered charge points is trusted (staff act in other processes).
WAITING_TTL_S = 2.0


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    kept: KeptLimits = field(default_factory=KeptLimits)
    # Unknown charge points that may register themselves: an hour, and waiting for staff.
    # 0: no limit.
    auto_register_per_hour: int = 100
    auto_register_limit: int = 1000


class Quotas:
    """One per process (its counts are this process's)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: QuotaSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings
        self._metrics = metrics
        self._kept = KeptQuota(settings.kept, report_every=REPORT_EVERY_S)
        self._enrolment = Enrolment(
            settings.auto_register_per_hour,
            settings.auto_register_limit,
            clock().timestamp(),
        )
        self._waiting: tuple[float, int] | None = None
        self._counting: asyncio.Lock | None = None
        self._refused_since = 0
        self._refusal_logged_at: float | None = None

    # --- messages kept as sent -------------------------------------------------------

    def keep(self, cp_id: str, action: str, payload: dict[str, Any]) -> bool:
        """May this message be stored as sent? Counted either way; over its quota, the
        charger gets one log line (then one a minute at most while it stays over)."""
        size = _size(payload)
        if size is None:
            # orjson cannot write it (nested too deep): it could not be stored at all.
            log.warning("kept_message_unstorable", charge_point_id=cp_id, action=action)
            if self._metrics is not None:
                self._metrics.kept(action, False, 0)
            return False
        decision = self._kept.admit(cp_id, size, self._clock().timestamp())
        if self._metrics is not None:
            self._metrics.kept(action, decision.kept, size)
        if decision.report:
            limits = self.settings.kept
            log.warning(
                "kept_messages_over_quota",
                charge_point_id=cp_id,
                action=action,
                refused=decision.refused,
                refused_bytes=decision.refused_bytes,
                messages_per_minute=limits.messages_per_minute,
                bytes_per_minute=limits.bytes_per_minute,
                burst_minutes=limits.burst_minutes,
            )
        return decision.kept

    # --- charge points that register themselves ------------------------------------------

    async def enrolment_refusal(self) -> str | None:
        """Why an unknown charge point may not register itself now (None: it may)."""
        waiting = await self._waiting_count() if self._enrolment.limit > 0 else None
        return self._enrolment.refusal(waiting, self._clock().timestamp())

    async def enrol(self) -> str | None:
        """An unknown charge point registers itself: counted now, before it is stored, so
        that boots arriving together cannot all pass one check. Returns why not (nothing
        counted) or None."""
        waiting = await self._waiting_count() if self._enrolment.limit > 0 else None
        now = self._clock().timestamp()
        refusal = self._enrolment.refusal(waiting, now)
        if refusal is None:
            self._enrolment.spend(now)
            if self._waiting is not None:
                self._waiting = (self._waiting[0], self._waiting[1] + 1)
        return refusal

    def refused(self, cp_id: str, reason: str, at: str, peer: str | None = None) -> None:
        """An unknown charge point was refused (`at`: handshake or boot): counted, and
        logged when first seen and then once a minute at most, with the count between."""
        if self._metrics is not None:
            self._metrics.charger_refused(reason)
        self._refused_since += 1
        now = time.monotonic()
        logged = self._refusal_logged_at
        if logged is not None and now - logged < REPORT_EVERY_S:
            return
        limits = self.settings
        log.warning(
            "unknown_charger_refused",
            charge_point_id=cp_id,
            reason=reason,
            at=at,
            peer=peer,
            refused=self._refused_since,
            auto_register_per_hour=limits.auto_register_per_hour,
            auto_register_limit=limits.auto_register_limit,
        )
        self._refusal_logged_at = now
        self._refused_since = 0

    async def _waiting_count(self) -> int:
        cached = self._waiting
        if cached is not None and time.monotonic() - cached[0] < WAITING_TTL_S:
            return cached[1]
        if self._counting is None:
            self._counting = asyncio.Lock()
        async with self._counting:  # a burst of handshakes costs one count
            cached = self._waiting
            if cached is not None and time.monotonic() - cached[0] < WAITING_TTL_S:
                return cached[1]
            async with self._db.read() as conn:
                count = await cp_repo.count_auto_registered(conn)
            self._waiting = (time.monotonic(), count)
            return count


def _size(payload: dict[str, Any]) -> int | None:
    """Bytes the payload takes as JSON, as it would be stored (None: it cannot be)."""
    try:
        return len(orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS))
    except orjson.JSONEncodeError:
        return None
