"""What a simulated charger reports while it runs: steps as data, and a tally of them.

Formatting for people is one field of a step; nothing here prints or logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Sink", "Step", "StepKind", "Summary", "Tally", "discard"]


class StepKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    BOOT_ACCEPTED = "boot_accepted"
    BOOT_REFUSED = "boot_refused"
    STATUS_SENT = "status_sent"
    HEARTBEAT_SENT = "heartbeat_sent"
    AUTHORIZED = "authorized"
    SESSION_STARTED = "session_started"
    METER_SENT = "meter_sent"
    SESSION_COMPLETED = "session_completed"
    SESSION_REFUSED = "session_refused"
    REQUEST_ANSWERED = "request_answered"
    QUEUE_FLUSHED = "queue_flushed"
    ERROR = "error"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a charger did, with a human line describing it."""

    charger_id: str
    kind: StepKind
    text: str

    @property
    def line(self) -> str:
        return f"{self.charger_id} {self.text}"


#: Receives every step; the CLI prints them, the fleet counts them.
Sink = Callable[[Step], None]


def discard(step: Step) -> None:
    """A sink that drops everything."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts of what happened, for one charger or added up over a fleet."""

    connections: int = 0
    boots_accepted: int = 0
    sessions_started: int = 0
    sessions_completed: int = 0
    errors: int = 0

    def __add__(self, other: Summary) -> Summary:
        return Summary(
            connections=self.connections + other.connections,
            boots_accepted=self.boots_accepted + other.boots_accepted,
            sessions_started=self.sessions_started + other.sessions_started,
            sessions_completed=self.sessions_completed + other.sessions_completed,
            errors=self.errors + other.errors,
        )


class Tally:
    """Counts steps by kind."""

    def __init__(self) -> None:
        self._counts: Counter[StepKind] = Counter()

    def count(self, step: Step) -> None:
        self._counts[step.kind] += 1

    def __getitem__(self, kind: StepKind) -> int:
        return self._counts[kind]

    def summary(self) -> Summary:
        return Summary(
            connections=self[StepKind.CONNECTED],
            boots_accepted=self[StepKind.BOOT_ACCEPTED],
            sessions_started=self[StepKind.SESSION_STARTED],
            sessions_completed=self[StepKind.SESSION_COMPLETED],
            errors=self[StepKind.ERROR],
        )
