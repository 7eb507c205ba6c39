"""OCPP 2.0.1 adapter: translates 2.0.1 payloads to csms.services calls and back.

The only place that knows 2.0.1 field names; state and rules live in csms.core/services.
"""

from __future__ import annotations

from csms.handlers.v201.adapter import V201Adapter

__all__ = ["V201Adapter"]
