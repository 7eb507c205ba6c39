"""OCPP 1.6 `meterValue` entries built from station readings (camelCase, as on the wire).

Pure functions; which measurands to include is decided by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulators.meter import DEFAULT_MEASURANDS, SUPPORTED_MEASURANDS, samples
from simulators.station import Reading

__all__ = ["SUPPORTED_MEASURANDS", "meter_value"]


def meter_value(
    reading: Reading,
    timestamp: str,
    measurands: Sequence[str] = DEFAULT_MEASURANDS,
    context: str = "Sample.Periodic",
) -> dict[str, Any]:
    """One `meterValue` element: a timestamp and the sampled values asked for (as text)."""
    values: list[dict[str, str]] = []
    for sample in samples(reading, measurands):
        sampled = {
            "value": sample.text,
            "context": context,
            "format": "Raw",
            "measurand": sample.measurand,
        }
        if sample.phase is not None:
            sampled["phase"] = sample.phase
        sampled["location"] = sample.location
        sampled["unit"] = sample.unit
        values.append(sampled)
    return {"timestamp": timestamp, "sampledValue": values}
