"""Measurands a simulated meter can sample, read off a station `Reading` (version-neutral).

Pure functions returning plain values; putting them on the wire is `v16_meter`'s and `v201_meter`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulators.station import Reading

__all__ = ["DEFAULT_MEASURANDS", "SUPPORTED_MEASURANDS", "Sample", "samples"]

#: The first six form the default sample set: with the current per phase and the current
#: offered (the cap of the charging profiles), a CSMS that manages load sees it obeyed.
SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Current.Offered",
    "Voltage",
    "SoC",
    "Power.Offered",
)
DEFAULT_MEASURANDS = SUPPORTED_MEASURANDS[:6]

_PHASES = ("L1", "L2", "L3")
_PHASE_VOLTAGES = ("L1-N", "L2-N", "L3-N")


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled value: a number shown with `decimals` digits, its unit and where it was taken."""

    measurand: str
    value: float
    decimals: int
    unit: str
    phase: str | None = None
    location: str = "Outlet"

    @property
    def text(self) -> str:
        return f"{self.value:.{self.decimals}f}"

    @property
    def number(self) -> int | float:
        return round(self.value) if self.decimals == 0 else round(self.value, self.decimals)


def samples(reading: Reading, measurands: Sequence[str] = DEFAULT_MEASURANDS) -> list[Sample]:
    """The values asked for, in that order; never empty (the energy register at least).

    SoC is left out when no vehicle is plugged in; unknown measurands are skipped."""
    out: list[Sample] = []
    for measurand in measurands:
        if measurand == "Energy.Active.Import.Register":
            out.append(Sample(measurand, reading.energy_wh, 0, "Wh"))
        elif measurand == "Power.Active.Import":
            out.append(Sample(measurand, reading.power_w, 0, "W"))
        elif measurand == "Power.Offered":
            out.append(Sample(measurand, reading.offered_power_w, 0, "W"))
        elif measurand == "Current.Offered":
            out.append(Sample(measurand, reading.offered_current_a, 1, "A"))
        elif measurand == "Current.Import":
            for phase, amps in zip(_PHASES, reading.current_a, strict=True):
                out.append(Sample(measurand, amps, 1, "A", phase))
        elif measurand == "Voltage":
            for phase, volts in zip(_PHASE_VOLTAGES, reading.voltage_v, strict=True):
                out.append(Sample(measurand, volts, 1, "V", phase))
        elif measurand == "SoC" and reading.soc_percent is not None:
            out.append(Sample(measurand, reading.soc_percent, 0, "Percent", location="EV"))
    if not out:
        out.append(Sample("Energy.Active.Import.Register", reading.energy_wh, 0, "Wh"))
    return out
