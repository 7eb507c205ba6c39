"""OCPP 2.0.1 `meterValue` entries built from station readings (camelCase, as on the wire).

Pure functions: values are JSON numbers with a `unitOfMeasure`; the caller picks measurands.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from simulators.meter import DEFAULT_MEASURANDS, Sample, samples
from simulators.station import Reading

__all__ = ["energy_value", "meter_value", "register_wh", "signed_meter_value", "with_signed"]

ENERGY_REGISTER = "Energy.Active.Import.Register"


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


def signed_meter_value(record: str, public_key: str, signing_method: str) -> dict[str, Any]:
    """SignedMeterValueType of an OCMF record: its text base64-encoded, the algorithm, the
    encoding and the meter's public key (base64 of the DER SubjectPublicKeyInfo)."""
    return {
        "signedMeterData": base64.b64encode(record.encode("utf-8")).decode("ascii"),
        "signingMethod": signing_method,
        "encodingMethod": "OCMF",
        "publicKey": public_key,
    }


def register_wh(entry: Mapping[str, Any]) -> int | None:
    """The energy register (Wh) of a `meterValue` entry, None when it has none."""
    for sampled in entry.get("sampledValue", ()):
        if sampled.get("measurand") == ENERGY_REGISTER and "phase" not in sampled:
            return int(sampled["value"])
    return None


def with_signed(entry: Mapping[str, Any], signed: Mapping[str, Any]) -> dict[str, Any]:
    """`entry` with `signedMeterValue` on its energy register (the plain value it signs)."""
    values = []
    for sampled in entry.get("sampledValue", ()):
        if sampled.get("measurand") == ENERGY_REGISTER and "phase" not in sampled:
            sampled = {**sampled, "signedMeterValue": dict(signed)}
        values.append(sampled)
    return {**entry, "sampledValue": values}
