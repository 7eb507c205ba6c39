from datetime import UTC, datetime, timedelta

from csms.core.transactions import EnergyFlag, session_energy

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def test_energy_is_stop_minus_start() -> None:
    r = session_energy(
        meter_start_wh=1_000_000,
        meter_stop_wh=1_011_000,
        start_at=START,
        stop_at=at(60),
        register_samples=[(at(30), 1_005_500.0)],
    )
    assert r.energy_wh == 11_000
    assert r.flags == ()
    assert r.billable


def test_meter_going_backwards_is_flagged_and_not_billed() -> None:
    r = session_energy(
        meter_start_wh=5000, meter_stop_wh=4000, start_at=START, stop_at=at(60), register_samples=[]
    )
    assert r.energy_wh is None
    assert EnergyFlag.METER_BACKWARDS in r.flags
    assert not r.billable


def test_samples_running_backwards_flag_the_session() -> None:
    r = session_energy(
        meter_start_wh=1000,
        meter_stop_wh=9000,
        start_at=START,
        stop_at=at(60),
        register_samples=[(at(10), 5000.0), (at(20), 3000.0)],
    )
    assert EnergyFlag.METER_BACKWARDS in r.flags
    assert not r.billable


def test_zero_start_with_lifetime_register_is_flagged() -> None:
    # An offline charger reported meterStart 0, but its register reads ~5 MWh.
    r = session_energy(
        meter_start_wh=0,
        meter_stop_wh=5_012_000,
        start_at=START,
        stop_at=at(60),
        register_samples=[(at(1), 5_001_000.0), (at(59), 5_011_800.0)],
    )
    assert EnergyFlag.START_LOOKS_LIKE_ZERO_RESET in r.flags
    assert not r.billable


def test_zero_start_without_samples_but_implausible_energy_is_flagged() -> None:
    r = session_energy(
        meter_start_wh=0,
        meter_stop_wh=3_000_000,
        start_at=START,
        stop_at=at(120),
        register_samples=[],
    )
    assert EnergyFlag.START_LOOKS_LIKE_ZERO_RESET in r.flags


def test_zero_start_on_a_new_meter_is_fine() -> None:
    r = session_energy(
        meter_start_wh=0,
        meter_stop_wh=22_000,
        start_at=START,
        stop_at=at(60),
        register_samples=[(at(30), 11_000.0)],
    )
    assert r.billable
    assert r.energy_wh == 22_000


def test_samples_outside_start_stop_range_are_flagged() -> None:
    r = session_energy(
        meter_start_wh=1000,
        meter_stop_wh=2000,
        start_at=START,
        stop_at=at(60),
        register_samples=[(at(30), 9000.0)],
    )
    assert EnergyFlag.SAMPLES_OUTSIDE_RANGE in r.flags


def test_zero_energy_session_is_billable() -> None:
    r = session_energy(
        meter_start_wh=1000, meter_stop_wh=1000, start_at=START, stop_at=at(5), register_samples=[]
    )
    assert r.energy_wh == 0
    assert r.billable
