"""OCPP 2.0.1 `meterValue` entries built from station readings (camelCase, as on the wire).

Pure functions: values are JSON numbers with a `unitOfMeasure`; the caller picks measurands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulators.meter import DEFAULT_MEASURANDS, Sample, samples
from simulators.station import Reading

__all__ = ["energy_value", "meter_value"]


def _sampled(sample: Sample, context: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "value": sample.number,
        "context": context,
        "measurand": sample.measurand,
    }
    if sample.phase is not None:
        entry["phase"] = sample.phase
    entry["location"] = sample.location
    entry["unitOfMeasure"] = {"unit": sample.unit}
    return entry


def meter_value(
    reading: Reading,
    timestamp: str,
    measurands: Sequence[str] = DEFAULT_MEASURANDS,
    context: str = "Sample.Periodic",
) -> dict[str, Any]:
    """One `meterValue` element: a timestamp and the sampled values asked for."""
    values = [_sampled(sample, context) for sample in samples(reading, measurands)]
    return {"timestamp": timestamp, "sampledValue": values}


def energy_value(energy_wh: int, timestamp: str, context: str) -> dict[str, Any]:
    """A `meterValue` with only the energy register (as a start or stop reading)."""
    sample = Sample("Energy.Active.Import.Register", energy_wh, 0, "Wh")
    return {"timestamp": timestamp, "sampledValue": [_sampled(sample, context)]}
