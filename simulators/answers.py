"""Dispatch of CSMS requests to a simulated charger's `on_<action>` answers, both versions.

Only the dispatch and its report line live here; the answers are in v16_/v201_requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from simulators.events import StepKind
from simulators.link import Reply

Payload = dict[str, Any]


class Reporter(Protocol):
    def report(self, kind: StepKind, text: str) -> None: ...


C = TypeVar("C", bound=Reporter)


class Answers(Generic[C]):
    """Called by the link with (action, camelCase payload); returns the reply."""

    _cp: C
    _handlers: dict[str, Callable[[Payload], Reply]]

    async def __call__(self, action: str, payload: Payload) -> Reply:
        reply = self._handlers[action](payload)
        outcome = reply.payload.get("status")
        self._cp.report(
            StepKind.REQUEST_ANSWERED,
            f"answered {action}" + (f": {outcome}" if outcome is not None else ""),
        )
        return reply
