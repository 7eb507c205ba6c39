from datetime import UTC, datetime

import pytest

from csms.core.metering import ENERGY_REGISTER, make_sample, normalise, register_wh

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "unit", "measurand", "expected"),
    [
        (12.5, "kWh", ENERGY_REGISTER, (12500.0, "Wh")),
        (12.5, "Wh", ENERGY_REGISTER, (12.5, "Wh")),
        (12.5, "kwh", ENERGY_REGISTER, (12500.0, "Wh")),
        (7.2, "kW", "Power.Active.Import", (7200.0, "W")),
        (3.0, "kvarh", "Energy.Reactive.Import.Register", (3000.0, "varh")),
        (55.0, "Percent", "SoC", (55.0, "%")),
        (21.0, "Celcius", "Temperature", (21.0, "Celsius")),
        (5.0, None, ENERGY_REGISTER, (5.0, "Wh")),
        (5.0, None, "Power.Active.Import", (5.0, "W")),
        (5.0, None, "Current.Import", (5.0, "A")),
        (5.0, "furlongs", "Voltage", (5.0, "furlongs")),
    ],
)
def test_normalise(
    value: float, unit: str | None, measurand: str, expected: tuple[float, str]
) -> None:
    assert normalise(value, unit, measurand) == expected


def test_sample_defaults_to_energy_register_in_wh() -> None:
    s = make_sample(timestamp=AT, raw_value="1234.5")
    assert s.measurand == ENERGY_REGISTER
    assert s.value == 1234.5
    assert s.unit == "Wh"


def test_signed_and_unparseable_values_keep_the_raw_text() -> None:
    signed = make_sample(timestamp=AT, raw_value="OCMF|{...}", signed=True)
    assert signed.value is None
    assert signed.raw_value == "OCMF|{...}"
    junk = make_sample(timestamp=AT, raw_value="n/a", unit="Wh")
    assert junk.value is None


def test_multiplier_is_a_power_of_ten() -> None:
    s = make_sample(timestamp=AT, raw_value=15, unit="kWh", multiplier=-1)
    assert s.value == pytest.approx(1500.0)


def test_register_reading_ignores_phases_and_other_measurands() -> None:
    samples = [
        make_sample(timestamp=AT, raw_value="7000", measurand="Power.Active.Import", unit="W"),
        make_sample(timestamp=AT, raw_value="1.0", unit="kWh", phase="L1"),
        make_sample(timestamp=AT, raw_value="3.5", unit="kWh"),
    ]
    assert register_wh(samples) == 3500.0
    assert register_wh(samples[:2]) is None
