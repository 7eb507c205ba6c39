"""What the server logged during a test: structlog events and standard-library records
(websockets, aiohttp ...), and whether any of them carries a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from structlog.processors import format_exc_info
from structlog.testing import capture_logs


@dataclass
class Captured:
    events: list[MutableMapping[str, Any]] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)

    def named(self, event: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def warnings(self) -> list[MutableMapping[str, Any]]:
        return [e for e in self.events if e["log_level"] in ("warning", "error", "critical")]

    def tracebacks(self) -> list[str]:
        """Every event or record that carries a traceback or was logged as an error."""
        found = [
            f"{e['event']}: {e.get('exception') or e}"
            for e in self.events
            if e.get("exception")
            or e.get("exc_info")
            or e["log_level"] in ("error", "critical", "exception")
        ]
        found += [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if r.exc_info or r.levelno >= logging.ERROR
        ]
        return found


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@contextmanager
def captured_logs() -> Iterator[Captured]:
    found = Captured()
    handler = _Collect(found.records)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # Tracebacks are rendered while the exception is in hand (`exception` field).
        with capture_logs(processors=[format_exc_info]) as events:
            found.events = events
            yield found
    finally:
        root.removeHandler(handler)
