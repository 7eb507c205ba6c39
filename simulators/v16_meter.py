"""OCPP 1.6 `meterValue` entries built from station readings (camelCase, as on the wire).

Pure functions; which measurands to include is decided by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulators.station import Reading

__all__ = ["SUPPORTED_MEASURANDS", "meter_value"]

#: The first five form the default sample set.
SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "SoC",
    "Power.Offered",
    "Current.Offered",
)

_PHASES = ("L1", "L2", "L3")
_PHASE_VOLTAGES = ("L1-N", "L2-N", "L3-N")


def meter_value(
    reading: Reading,
    timestamp: str,
    measurands: Sequence[str] = SUPPORTED_MEASURANDS[:5],
    context: str = "Sample.Periodic",
) -> dict[str, Any]:
    """One `meterValue` element: a timestamp and the sampled values asked for."""
    values: list[dict[str, str]] = []

    def add(measurand: str, value: str, unit: str, **extra: str) -> None:
        sampled = {"value": value, "context": context, "format": "Raw", "measurand": measurand}
        sampled.update(extra)
        sampled.setdefault("location", "Outlet")
        sampled["unit"] = unit
        values.append(sampled)

    for measurand in measurands:
        if measurand == "Energy.Active.Import.Register":
            add(measurand, str(reading.energy_wh), "Wh")
        elif measurand == "Power.Active.Import":
            add(measurand, str(reading.power_w), "W")
        elif measurand == "Power.Offered":
            add(measurand, str(reading.offered_power_w), "W")
        elif measurand == "Current.Offered":
            add(measurand, f"{reading.offered_current_a:.1f}", "A")
        elif measurand == "Current.Import":
            for phase, amps in zip(_PHASES, reading.current_a, strict=True):
                add(measurand, f"{amps:.1f}", "A", phase=phase)
        elif measurand == "Voltage":
            for phase, volts in zip(_PHASE_VOLTAGES, reading.voltage_v, strict=True):
                add(measurand, f"{volts:.1f}", "V", phase=phase)
        elif measurand == "SoC" and reading.soc_percent is not None:
            add(measurand, str(reading.soc_percent), "Percent", location="EV")
    if not values:
        add("Energy.Active.Import.Register", str(reading.energy_wh), "Wh")
    return {"timestamp": timestamp, "sampledValue": values}
