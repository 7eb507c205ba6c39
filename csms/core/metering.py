"""Meter samples: one version-neutral sample type, unit normalisation and the bounds of a
usable reading.

Energy is normalised to Wh, power to W, reactive to var/varh, apparent power to VA;
parsing of wire formats is the adapters' job.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import NamedTuple

ENERGY_REGISTER = "Energy.Active.Import.Register"
DEFAULT_MEASURAND = ENERGY_REGISTER

# unit as sent (case-folded) -> (normalised unit, factor)
_UNITS: dict[str, tuple[str, float]] = {
    "wh": ("Wh", 1.0),
    "kwh": ("Wh", 1000.0),
    "mwh": ("Wh", 1_000_000.0),
    "varh": ("varh", 1.0),
    "kvarh": ("varh", 1000.0),
    "w": ("W", 1.0),
    "kw": ("W", 1000.0),
    "va": ("VA", 1.0),
    "kva": ("VA", 1000.0),
    "var": ("var", 1.0),
    "kvar": ("var", 1000.0),
    "a": ("A", 1.0),
    "ma": ("A", 0.001),
    "v": ("V", 1.0),
    "kv": ("V", 1000.0),
    "k": ("K", 1.0),
    "celsius": ("Celsius", 1.0),
    "celcius": ("Celsius", 1.0),
    "fahrenheit": ("Fahrenheit", 1.0),
    "percent": ("%", 1.0),
    "%": ("%", 1.0),
    "hertz": ("Hz", 1.0),
    "hz": ("Hz", 1.0),
    "deg": ("deg", 1.0),
    "s": ("s", 1.0),
}

# The spellings the OCPP enums use, looked up without case folding.
_UNITS_EXACT = {
    spelled: _UNITS[spelled.lower()]
    for spelled in (
        "Wh",
        "kWh",
        "varh",
        "kvarh",
        "W",
        "kW",
        "VA",
        "kVA",
        "var",
        "kvar",
        "A",
        "V",
        "K",
        "Celsius",
        "Celcius",
        "Fahrenheit",
        "Percent",
    )
}
_INF = float("inf")

# The largest magnitude a reading may have in its normalised unit (1 TWh, 1 TW, 1 TA ...):
# a charger's lifetime register stays far below it (350 kW for 30 years is 0.09 TWh), and
# any value within it fits a 64-bit integer and a float with room for arithmetic.
MAX_READING = 1e12
# The same for the integer registers of 1.6 StartTransaction/StopTransaction (Wh).
MAX_REGISTER_WH = 10**12
# A 2.0.1 unitOfMeasure.multiplier (a power of ten) beyond this is not a unit.
MAX_MULTIPLIER = 24

_DEFAULT_UNIT_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("Energy.Reactive", "varh"),
    ("Energy.Apparent", "VAh"),
    ("Energy", "Wh"),
    ("Power.Reactive", "var"),
    ("Power.Apparent", "VA"),
    ("Power.Factor", ""),
    ("Power", "W"),
    ("Current", "A"),
    ("Voltage", "V"),
    ("SoC", "%"),
    ("Frequency", "Hz"),
    ("Temperature", "Celsius"),
)


class Sample(NamedTuple):
    """One sampled value. A NamedTuple rather than a frozen dataclass: seven or more are built
    per meter message, and a frozen dataclass pays a setattr per field (measured: sample
    construction was 12 % of the event loop's time at 2,000 TransactionEvents/s)."""

    timestamp: datetime
    measurand: str
    value: float | None  # normalised; None when the value is signed data or not a number
    unit: str
    raw_value: str
    phase: str | None = None
    location: str | None = None
    context: str | None = None
    signed: bool = False
    # The value was a number but not a usable reading (NaN, infinite, beyond MAX_READING,
    # a negative energy register, an absurd multiplier): kept as raw_value, value None.
    refused: bool = False


class SignedMeterValue(NamedTuple):
    """A value the meter signed, exactly as the charger sent it (OCPP 1.6 `SignedData`
    sampled value, 2.0.1 `signedMeterValue`). `data` is never decoded nor re-encoded here:
    the signature covers its bytes (for OCMF, the payload between the pipes), so it is
    stored as received and only read by the verifier. A NamedTuple like Sample: built on
    the meter-value path."""

    timestamp: datetime
    context: str | None
    measurand: str | None
    data: str
    encoding_method: str | None = None  # 2.0.1 encodingMethod (e.g. "OCMF"); None in 1.6
    signing_method: str | None = None  # 2.0.1 signingMethod
    public_key: str | None = None  # 2.0.1 publicKey as sent (base64), None when empty


def usable_reading(value: float, measurand: str) -> bool:
    """Whether a normalised reading can be stored and computed with: finite, within
    MAX_READING, and not negative for an energy register."""
    if not math.isfinite(value) or abs(value) > MAX_READING:
        return False
    return value >= 0 or not (measurand.startswith("Energy") and measurand.endswith("Register"))


def usable_register(wh: int | None) -> bool:
    """Whether a 1.6 meterStart/meterStop (Wh) is a register reading: 0 to MAX_REGISTER_WH."""
    return wh is not None and 0 <= wh <= MAX_REGISTER_WH


def default_unit(measurand: str) -> str:
    for prefix, unit in _DEFAULT_UNIT_BY_PREFIX:
        if measurand.startswith(prefix):
            return unit
    return ""


def normalise(value: float, unit: str | None, measurand: str) -> tuple[float, str]:
    """(value, unit) in the system's units. An unknown unit is kept as sent."""
    if not unit:
        return value, default_unit(measurand)
    known = _UNITS_EXACT.get(unit) or _UNITS.get(unit.strip().lower())
    if known is None:
        return value, unit
    norm_unit, factor = known
    return value * factor, norm_unit


def make_sample(
    *,
    timestamp: datetime,
    raw_value: str | float | int,
    measurand: str | None = None,
    unit: str | None = None,
    phase: str | None = None,
    location: str | None = None,
    context: str | None = None,
    signed: bool = False,
    multiplier: int = 0,
) -> Sample:
    """Build a normalised sample; `multiplier` is the 2.0.1 power-of-ten exponent."""
    measurand = measurand or DEFAULT_MEASURAND
    text = raw_value if isinstance(raw_value, str) else str(raw_value)
    value: float | None = None
    norm_unit = unit if unit else default_unit(measurand)
    refused = False
    if not signed:
        try:
            number = float(raw_value)
        except OverflowError:  # an integer beyond any float: a number, but no reading
            number = _INF
        except (TypeError, ValueError):
            number = None
        if number is not None:
            if number == number and -_INF < number < _INF and abs(multiplier) <= MAX_MULTIPLIER:
                if multiplier:
                    number *= 10.0**multiplier
                value, norm_unit = normalise(number, unit, measurand)
                if not usable_reading(value, measurand):
                    value = None
            refused = value is None
    return Sample(
        timestamp=timestamp,
        measurand=measurand,
        value=value,
        unit=norm_unit,
        raw_value=text,
        phase=phase,
        location=location,
        context=context,
        signed=signed,
        refused=refused,
    )


ACTIVE_POWER = "Power.Active.Import"


def active_power_w(samples: list[Sample] | tuple[Sample, ...]) -> float | None:
    """Total active import power in W from one meter value (phase-less reading, else the
    sum over phases)."""
    phases = 0.0
    seen_phase = False
    for s in samples:
        if s.measurand == ACTIVE_POWER and s.value is not None and s.unit == "W":
            if s.phase is None:
                return s.value
            if s.phase in ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N"):
                phases += s.value
                seen_phase = True
    return phases if seen_phase else None


def register_wh(samples: list[Sample] | tuple[Sample, ...]) -> float | None:
    """The energy import register in Wh from one meter value, if it has one (no phase or
    the total over phases)."""
    for s in samples:
        if (
            s.measurand == ENERGY_REGISTER
            and s.value is not None
            and s.unit == "Wh"
            and (s.phase is None)
        ):
            return s.value
    return None
