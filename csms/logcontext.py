"""The OCPP message being handled, for log events (action and message_id).

One ContextVar set per message is far cheaper than binding structlog context variables;
the logging set-up merges it into every event. Nothing else lives here.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

CURRENT_CALL: ContextVar[tuple[str, str] | None] = ContextVar("csms_current_call", default=None)


def add_current_call(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: action and message_id of the message in hand, if any."""
    current = CURRENT_CALL.get()
    if current is not None:
        event.setdefault("action", current[0])
        event.setdefault("message_id", current[1])
    return event
