"""Unit tests of the pure station model: meter, power, limits, statuses, determinism."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.station import ConnectorStatus, Station

THREE_PHASE_16A_W = 3 * 230 * 16  # 11 040 W
THREE_PHASE_32A_W = 3 * 230 * 32  # 22 080 W


def charging_station(seed: int = 1, connectors: int = 1, rated_current_a: int = 32) -> Station:
    station = Station(connectors, random.Random(seed), rated_current_a=rated_current_a)
    for cid in station.connector_ids:
        station.set_status(cid, ConnectorStatus.PREPARING)
        station.set_status(cid, ConnectorStatus.CHARGING)
    return station


def test_meters_start_at_a_realistic_integer_register() -> None:
    station = Station(4, random.Random(7))
    for cid in station.connector_ids:
        meter = station.connector(cid).meter_wh
        assert isinstance(meter, int)
        assert 1_000_000 <= meter <= 5_000_000


def test_connectors_are_numbered_from_one_and_zero_is_the_station() -> None:
    station = Station(2, random.Random(1))
    assert station.connector_ids == (1, 2)
    assert station.status(0) is ConnectorStatus.AVAILABLE
    with pytest.raises(ValueError, match="no connector 3"):
        station.connector(3)


def test_idle_connector_draws_no_power_and_meter_stays() -> None:
    station = Station(1, random.Random(1))
    before = station.connector(1).meter_wh
    station.advance(3600)
    assert station.reading(1).power_w == 0
    assert station.connector(1).meter_wh == before


def test_charging_power_is_three_phase_16_or_32_amps_with_some_noise() -> None:
    seen = set()
    for seed in range(40):
        station = charging_station(seed)
        for _ in range(5):
            station.advance(10)
            power = station.reading(1).power_w
            assert 0.94 * THREE_PHASE_16A_W <= power <= 1.02 * THREE_PHASE_32A_W  # mains ±2 %
            seen.add(round(power / THREE_PHASE_16A_W))
    assert seen == {1, 2}  # both 11 kW and 22 kW vehicles show up


def test_rated_current_caps_power() -> None:
    for seed in range(20):
        station = charging_station(seed, rated_current_a=16)
        station.advance(1)
        assert station.reading(1).power_w <= 1.02 * THREE_PHASE_16A_W
        assert max(station.reading(1).current_a) <= 16


def test_energy_follows_power_over_time() -> None:
    station = charging_station(3)
    start = station.connector(1).meter_wh
    expected_wh = 0.0
    for _ in range(60):
        expected_wh += station.reading(1).power_w * 60 / 3600
        station.advance(60)
    assert station.connector(1).meter_wh - start == pytest.approx(expected_wh, abs=1)


def test_fractions_of_a_watt_hour_are_carried_not_lost() -> None:
    station = charging_station(5)
    station.set_limit(1, 3600)
    start = station.connector(1).meter_wh
    expected_wh = 0.0
    for _ in range(3600):
        expected_wh += station.reading(1).power_w / 3600
        station.advance(1)  # about 1 Wh per second: rounding each step would lose half
    assert expected_wh > 3400
    assert station.connector(1).meter_wh - start == pytest.approx(expected_wh, abs=1)


def test_limit_caps_power_and_can_be_lifted() -> None:
    station = charging_station(2)
    station.set_limit(1, 4200)
    for _ in range(10):
        station.advance(5)
        assert station.reading(1).power_w <= 4200
    assert station.reading(1).offered_power_w == 4200
    station.set_limit(1, 0)
    assert station.reading(1).power_w == 0
    station.set_limit(1, None)
    assert station.reading(1).power_w > 4200


def test_negative_limit_is_refused() -> None:
    station = Station(1, random.Random(1))
    with pytest.raises(ValueError, match="negative"):
        station.set_limit(1, -1)


def test_same_seed_gives_the_same_readings() -> None:
    def run(seed: int) -> list[tuple[int, int, int | None]]:
        station = charging_station(seed, connectors=2)
        out = []
        for _ in range(20):
            station.advance(7.5)
            for cid in station.connector_ids:
                r = station.reading(cid)
                out.append((r.energy_wh, r.power_w, r.soc_percent))
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_plugging_in_brings_a_vehicle_and_unplugging_takes_it_away() -> None:
    station = Station(1, random.Random(1))
    assert station.reading(1).soc_percent is None
    station.set_status(1, ConnectorStatus.PREPARING)
    soc = station.reading(1).soc_percent
    assert soc is not None
    assert 10 <= soc <= 70
    assert station.reading(1).power_w == 0  # plugged in, not yet charging
    station.set_status(1, ConnectorStatus.AVAILABLE)
    assert station.reading(1).soc_percent is None


def test_soc_rises_while_charging() -> None:
    station = charging_station(9)
    before = station.reading(1).soc_percent
    station.advance(3600)
    after = station.reading(1).soc_percent
    assert before is not None
    assert after is not None
    assert after > before


def test_full_battery_suspends_charging() -> None:
    station = charging_station(4)
    for _ in range(100):
        station.advance(600)
    assert station.status(1) is ConnectorStatus.SUSPENDED_EV
    assert station.reading(1).power_w == 0
    assert station.reading(1).soc_percent == 100


def test_phase_currents_and_voltages_match_power() -> None:
    station = charging_station(6)
    station.advance(1)
    r = station.reading(1)
    assert all(225 <= v <= 235 for v in r.voltage_v)
    delivered = sum(a * v for a, v in zip(r.current_a, r.voltage_v, strict=True))
    assert delivered == pytest.approx(r.power_w, rel=0.01)


def test_inoperative_station_makes_idle_connectors_unavailable() -> None:
    station = Station(2, random.Random(1))
    station.set_status(2, ConnectorStatus.CHARGING)
    station.set_operative(0, False)
    assert station.status(0) is ConnectorStatus.UNAVAILABLE
    assert station.status(1) is ConnectorStatus.UNAVAILABLE
    assert station.status(2) is ConnectorStatus.CHARGING  # changes once the session ends
    assert station.connector(2).idle_status is ConnectorStatus.UNAVAILABLE
    station.set_operative(0, True)
    assert station.status(1) is ConnectorStatus.AVAILABLE


def test_time_cannot_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        Station(1, random.Random(1)).advance(-1)


@given(
    seed=st.integers(0, 2**32),
    steps=st.lists(st.floats(0, 3600, allow_nan=False), max_size=30),
    limit=st.none() | st.integers(0, 30_000),
)
def test_meter_never_goes_down(seed: int, steps: list[float], limit: int | None) -> None:
    station = charging_station(seed)
    station.set_limit(1, limit)
    last = station.connector(1).meter_wh
    for seconds in steps:
        station.advance(seconds)
        meter = station.connector(1).meter_wh
        assert meter >= last
        power = station.reading(1).power_w
        assert power >= 0
        if limit is not None:
            assert power <= limit
        last = meter
