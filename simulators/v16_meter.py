"""OCPP 1.6 `meterValue` entries built from station readings (camelCase, as on the wire).

Pure functions; which measurands to include is decided by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulators.meter import DEFAULT_MEASURANDS, SUPPORTED_MEASURANDS, samples
from simulators.station import Reading

__all__ = [
    "ENERGY_REGISTER",
    "SUPPORTED_MEASURANDS",
    "meter_value",
    "register_value",
    "register_wh",
    "with_signed",
]


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


ENERGY_REGISTER = "Energy.Active.Import.Register"


def register_wh(entry: Mapping[str, Any]) -> int | None:
    """The plain energy register (Wh) of a `meterValue` entry, None when it has none."""
    for sampled in entry.get("sampledValue", ()):
        if (
            sampled.get("measurand") == ENERGY_REGISTER
            and sampled.get("format", "Raw") == "Raw"
            and "phase" not in sampled
        ):
            return int(sampled["value"])
    return None


def register_value(energy_wh: int, timestamp: str, context: str) -> dict[str, Any]:
    """A `meterValue` with only the energy register (as a transaction's begin reading)."""
    sampled = {
        "value": str(energy_wh),
        "context": context,
        "format": "Raw",
        "measurand": ENERGY_REGISTER,
        "location": "Outlet",
        "unit": "Wh",
    }
    return {"timestamp": timestamp, "sampledValue": [sampled]}


def with_signed(entry: Mapping[str, Any], record: str, context: str) -> dict[str, Any]:
    """`entry` with the meter's signed record beside its plain values: a sampled value of
    format SignedData whose value is the OCMF text as the meter wrote it."""
    signed = {
        "value": record,
        "context": context,
        "format": "SignedData",
        "measurand": ENERGY_REGISTER,
        "location": "Outlet",
    }
    return {**entry, "sampledValue": [*entry.get("sampledValue", ()), signed]}
