"""OCPP 1.6J adapter: translates 1.6 payloads to csms.services calls and back.

The only place that knows 1.6 field names; state and rules live in csms.core/services.
"""

from __future__ import annotations

from csms.handlers.v16.adapter import V16Adapter

__all__ = ["V16Adapter"]
