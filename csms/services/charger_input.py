"""What the charging services share: their settings, and the checks of what chargers send
that cannot be taken as sent (times outside the plausible window, unusable readings).

Checks only log, count and return the safe form; nothing here stores anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from csms.core.charger import RegistrationPolicy
from csms.core.clock import TimeWindow
from csms.core.metering import Sample, usable_register
from csms.core.transactions import InputFlag, TransactionEvent
from csms.services.quotas import QuotaSettings

log = structlog.get_logger("csms.services")

# OCPP 2.0.1 token type of a transaction started without any authorization (free charging).
NO_AUTHORIZATION = "NoAuthorization"
# Entries an in-memory cache of the charging services holds at most (then it starts over).
MAX_ENTRIES = 200_000


@dataclass(frozen=True, slots=True)
class ChargingSettings:
    registration: RegistrationPolicy = "accept"
    heartbeat_interval: int = 300
    allow_unknown_tags: bool = False
    # Charger timestamps outside it are replaced by the time of receipt and flagged.
    window: TimeWindow = field(default_factory=TimeWindow)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)


def added(flags: tuple[InputFlag, ...], *new: InputFlag) -> tuple[InputFlag, ...]:
    return tuple(dict.fromkeys([*flags, *new]))


class InputChecks:
    """Checks of chargers' times and readings against the window of plausible times; one
    per process, shared by the station and transaction services."""

    def __init__(self, window: TimeWindow) -> None:
        self.window = window
        # Called with (kind, action) when a charger's value was not taken as sent: kind
        # "timestamp" (outside the window), "reading" or "register" (no usable number).
        self.on_flagged: list[Callable[[str, str], None]] = []

    def _flag(self, kind: str, action: str) -> None:
        for hook in self.on_flagged:
            hook(kind, action)

    def plausible(
        self, cp_id: str, action: str, field: str, moment: datetime, now: datetime
    ) -> bool:
        """Whether a charger's timestamp lies in the window; one that does not is logged
        and counted (the caller stores the time of receipt instead)."""
        if self.window.holds(moment, now):
            return True
        log.warning(
            "implausible_timestamp_replaced",
            charge_point_id=cp_id,
            action=action,
            field=field,
            sent=moment.isoformat(),
            stored=now.isoformat(),
        )
        self._flag("timestamp", action)
        return False

    def register(self, cp_id: str, action: str, field: str, wh: int) -> int | None:
        """A 1.6 meterStart/meterStop, or None (logged, counted) when it is no register."""
        if usable_register(wh):
            return wh
        log.warning(
            "unusable_register_refused", charge_point_id=cp_id, action=action, field=field, sent=wh
        )
        self._flag("register", action)
        return None

    def samples(
        self, cp_id: str, action: str, samples: tuple[Sample, ...], now: datetime
    ) -> tuple[tuple[Sample, ...], tuple[InputFlag, ...]]:
        """Samples as they are stored: a time outside the window becomes the time of
        receipt. Returns them with the flags they earn their transaction (one log line
        per kind and message)."""
        if not samples:
            return samples, ()
        window = self.window
        earliest, latest = window.earliest, window.latest(now)
        late: Sample | None = None
        refused: Sample | None = None
        for sample in samples:
            if not earliest <= sample.timestamp <= latest:
                late = late or sample
            if sample.refused:
                refused = refused or sample
        if late is None and refused is None:
            return samples, ()
        flags: list[InputFlag] = []
        if late is not None:
            self.plausible(cp_id, action, "meterValue.timestamp", late.timestamp, now)
            samples = tuple(
                s if earliest <= s.timestamp <= latest else s._replace(timestamp=now)
                for s in samples
            )
            flags.append(InputFlag.IMPLAUSIBLE_TIMESTAMP)
        if refused is not None:
            log.warning(
                "unusable_reading_refused",
                charge_point_id=cp_id,
                action=action,
                measurand=refused.measurand,
                sent=refused.raw_value[:40],
                readings=sum(s.refused for s in samples),
            )
            self._flag("reading", action)
            flags.append(InputFlag.UNUSABLE_READING)
        return samples, tuple(flags)

    def event(
        self, cp_id: str, event: TransactionEvent, now: datetime
    ) -> tuple[TransactionEvent, tuple[InputFlag, ...]]:
        """A 2.0.1 TransactionEvent as it is stored (see `samples`)."""
        samples, flags = self.samples(cp_id, "TransactionEvent", event.samples, now)
        if samples is not event.samples:
            event = event._replace(samples=samples)
        if not self.plausible(cp_id, "TransactionEvent", "timestamp", event.timestamp, now):
            event = event._replace(timestamp=now)
            flags = added(flags, InputFlag.IMPLAUSIBLE_TIMESTAMP)
        return event, flags
