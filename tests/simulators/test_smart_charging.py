"""Unit tests of smart charging in the simulators: current per phase under a cap on 1- and
3-phase outlets and vehicles, watts turned into amperes with the phases in use, the draw
following the schedule, pausing at 0 A, the profiles a charger declines, the meter values
that show it, and 2.0.1 NotifyEVChargingNeeds."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from simulators.errors import OptionsError
from simulators.meter import DEFAULT_MEASURANDS, samples
from simulators.options import ChargerOptions
from simulators.profiles import Period, Profile, ProfilePolicy, Purpose
from simulators.station import Cap, ConnectorStatus, EvProfile, Station
from simulators.v16 import V16Charger
from simulators.v201_transaction import charging_needs

from .conftest import START, Connect16, Connect201, FakeClock
from .fake_csms import FakeCsms
from .schemas import check_request

URL = "ws://127.0.0.1:9/ocpp"


def charging(
    *,
    phases: int = 3,
    ev_phases: int = 3,
    ev_max: int | None = 32,
    rated: int = 32,
    need: int | None = None,
    seed: int = 1,
) -> Station:
    station = Station(
        1,
        random.Random(seed),
        rated_current_a=rated,
        phases=phases,
        ev=EvProfile(ev_phases, ev_max, need),
    )
    station.set_status(1, ConnectorStatus.PREPARING)
    station.set_status(1, ConnectorStatus.CHARGING)
    station.advance(1)
    return station


def on_phases(station: Station) -> tuple[float, float, float]:
    return station.reading(1).current_a


# -- the station model ------------------------------------------------------------------


def test_a_cap_in_amperes_holds_on_every_phase_in_use() -> None:
    station = charging()
    assert all(30.5 <= amps <= 32 for amps in on_phases(station))  # 32 A EV, a little under
    station.set_cap(1, Cap(amps=10))
    for _ in range(5):
        station.advance(1)
        assert all(9.5 <= amps <= 10 for amps in on_phases(station))
        reading = station.reading(1)
        assert reading.offered_current_a == 10
        assert reading.power_w == pytest.approx(3 * 230 * 10, rel=0.07)
        assert reading.power_w == pytest.approx(
            sum(a * v for a, v in zip(reading.current_a, reading.voltage_v, strict=True)),
            rel=0.01,
        )


def test_a_single_phase_ev_on_a_three_phase_charger_draws_on_l1_only() -> None:
    station = charging(ev_phases=1)
    l1, l2, l3 = on_phases(station)
    assert 30.5 <= l1 <= 32 and l2 == 0 and l3 == 0
    assert station.reading(1).power_w == pytest.approx(230 * 32, rel=0.07)
    station.set_cap(1, Cap(amps=16))
    station.advance(1)
    l1, l2, l3 = on_phases(station)
    assert 15 <= l1 <= 16 and l2 == 0 and l3 == 0


def test_a_single_phase_charger_is_rated_and_draws_on_one_phase() -> None:
    station = charging(phases=1, ev_phases=3, rated=32)
    assert station.connector(1).rated_power_w == 230 * 32
    l1, l2, l3 = on_phases(station)
    assert l1 > 30 and l2 == 0 and l3 == 0


def test_watts_become_amperes_with_the_phases_in_use() -> None:
    three = charging()
    three.set_cap(1, Cap(watts=6900))  # 10 A on three phases
    three.advance(1)
    assert all(9.5 <= amps <= 10 for amps in on_phases(three))
    assert three.reading(1).power_w <= 6900
    assert three.reading(1).offered_current_a == 10
    single = charging(ev_phases=1)
    single.set_cap(1, Cap(watts=6900))  # 30 A on the one phase the EV uses
    single.advance(1)
    l1, l2, l3 = on_phases(single)
    assert 28.5 <= l1 <= 30 and l2 == 0 and l3 == 0
    assert single.reading(1).power_w <= 6900


def test_number_phases_of_the_period_limits_the_phases_used() -> None:
    station = charging()
    station.set_cap(1, Cap(watts=6900, phases=1))
    station.advance(1)
    l1, l2, l3 = on_phases(station)
    assert 28.5 <= l1 <= 30 and l2 == 0 and l3 == 0
    station.set_cap(1, Cap(amps=16, phases=1))
    station.advance(1)
    l1, l2, l3 = on_phases(station)
    assert 15 <= l1 <= 16 and l2 == 0 and l3 == 0


def test_zero_amperes_pause_the_session_and_a_higher_cap_resumes_it() -> None:
    station = charging()
    station.set_cap(1, Cap(amps=0))
    assert station.status(1) is ConnectorStatus.SUSPENDED_EVSE
    before = station.reading(1).energy_wh
    station.advance(600)
    reading = station.reading(1)
    assert reading.power_w == 0 and reading.current_a == (0, 0, 0)
    assert reading.energy_wh == before
    station.set_status(1, ConnectorStatus.SUSPENDED_EVSE)  # announcing it keeps the pause ours
    station.set_cap(1, Cap(amps=16))
    assert station.status(1) is ConnectorStatus.CHARGING
    assert all(15 <= amps <= 16 for amps in on_phases(station))


def test_a_pause_the_station_did_not_make_is_not_lifted_by_a_cap() -> None:
    station = charging()
    station.set_status(1, ConnectorStatus.SUSPENDED_EVSE)
    station.set_cap(1, Cap(amps=16))
    assert station.status(1) is ConnectorStatus.SUSPENDED_EVSE


def test_the_ev_max_current_and_tapering_near_full_lower_the_draw() -> None:
    station = charging(ev_max=10)
    assert all(9.5 <= amps <= 10 for amps in on_phases(station))
    near_full = charging(need=1000)  # the need is delivered at 80 %: start just under it
    while (near_full.reading(1).soc_percent or 0) < 90:
        near_full.advance(10)
    assert near_full.status(1) is ConnectorStatus.CHARGING
    assert 0 < max(on_phases(near_full)) < 0.65 * 32  # tapered: 60 % of 32 A at 90 %


def test_an_energy_need_fits_the_battery_before_tapering() -> None:
    station = charging(need=30_000)
    vehicle = station.connector(1).vehicle
    assert vehicle is not None
    room = vehicle.capacity_wh * 0.8 - vehicle.stored_wh
    assert room == pytest.approx(30_000 * 0.92, abs=10)  # less the first second's


# -- profiles a charger declines ------------------------------------------------------------


def profile(purpose: Purpose, *periods: Period, unit: str = "A", connector: int = 1) -> Profile:
    return Profile(1, connector, purpose, 0, unit, periods, start=START)


def test_reject_policies() -> None:
    tx = profile(Purpose.TX, Period(0, 16))
    default = profile(Purpose.TX_DEFAULT, Period(0, 16))
    station_max = profile(Purpose.STATION_MAX, Period(0, 16), connector=0)
    assert ProfilePolicy().refusal(tx, START) is None
    everything = ProfilePolicy("all")
    assert all(everything.refusal(p, START) for p in (tx, default, station_max))
    only_max = ProfilePolicy("tx")
    assert only_max.refusal(tx, START) and only_max.refusal(default, START)
    assert only_max.refusal(station_max, START) is None
    with pytest.raises(ValueError, match="reject mode"):
        ProfilePolicy("some")


def test_reject_zero_looks_at_the_period_in_force() -> None:
    no_zero = ProfilePolicy(reject_zero=True)
    later_zero = profile(Purpose.TX_DEFAULT, Period(0, 16), Period(600, 0))
    assert no_zero.refusal(later_zero, START) is None
    assert no_zero.refusal(later_zero, START + timedelta(seconds=700))
    assert no_zero.refusal(profile(Purpose.TX, Period(0, 0), unit="W"), START)
    future = Profile(1, 1, Purpose.TX_DEFAULT, 0, "A", (Period(0, 0),), start=START)
    assert no_zero.refusal(future, START - timedelta(hours=1))  # not yet in force: its first


def test_options_check_the_smart_charging_flags() -> None:
    ok = ChargerOptions(URL, "CP", phases=1, ev_phases=1, ev_max_current_a=16)
    assert (ok.phases, ok.ev_phases, ok.ev_max_current_a) == (1, 1, 16)
    bad: list[dict[str, Any]] = [
        {"phases": 2},
        {"ev_phases": 0},
        {"ev_max_current_a": 3},
        {"reject_profiles": "some"},
        {"departure_s": 3600},
        {"departure_s": 3600, "energy_need_wh": 10_000},  # 1.6 has no NotifyEVChargingNeeds
        {"departure_s": 0, "energy_need_wh": 10_000, "version": "2.0.1"},
    ]
    for extra in bad:
        with pytest.raises(OptionsError):
            ChargerOptions(URL, "CP", **extra)


# -- meter values ---------------------------------------------------------------------------


def test_default_samples_show_current_per_phase_power_energy_and_the_cap() -> None:
    assert {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Current.Offered",
    } <= set(DEFAULT_MEASURANDS)
    station = charging(ev_phases=1)
    station.set_cap(1, Cap(amps=10))
    station.advance(1)
    got = {(s.measurand, s.phase): s.value for s in samples(station.reading(1))}
    assert 9.5 <= got[("Current.Import", "L1")] <= 10
    assert got[("Current.Import", "L2")] == got[("Current.Import", "L3")] == 0
    assert got[("Current.Offered", None)] == 10
    assert got[("Power.Active.Import", None)] <= 230 * 1.02 * 10


# -- the charger: profiles over time --------------------------------------------------------


def test_the_draw_follows_the_composite_schedule_between_looks() -> None:
    clock = FakeClock()
    cp = V16Charger(
        ChargerOptions(URL, "CP", ev_max_current_a=32), clock=clock, rng=random.Random(3)
    )
    default = Profile(
        1, 0, Purpose.TX_DEFAULT, 0, "A", (Period(0, 16), Period(600, 8)), start=START
    )
    cp.profiles.install(default)  # before the transaction
    cp.station.set_status(1, ConnectorStatus.PREPARING)
    cp.station.set_status(1, ConnectorStatus.CHARGING)
    cp.profiles.transaction_started(1, START)
    assert all(15 <= a <= 16 for a in cp.reading(1).current_a)
    start_wh = cp.reading(1).energy_wh
    clock.now = START + timedelta(seconds=1200)  # nobody looked while the schedule changed
    reading = cp.reading(1)
    assert all(7.5 <= a <= 8 for a in reading.current_a)
    # 10 minutes at about 16 A and 10 at about 8 A, not 20 minutes at 16 A
    expected = 3 * 230 * (16 + 8) * 600 / 3600
    assert 0.93 * expected <= reading.energy_wh - start_wh <= 1.02 * expected
    tx = Profile(2, 1, Purpose.TX, 0, "W", (Period(0, 0),), start=START)
    cp.profiles.install(tx)  # during the transaction: 0 W pauses it
    clock.now += timedelta(seconds=5)
    assert cp.reading(1).power_w == 0
    assert cp.station.status(1) is ConnectorStatus.SUSPENDED_EVSE
    cp.profiles.end_transaction(1)
    clock.now += timedelta(seconds=5)
    assert all(7.5 <= a <= 8 for a in cp.reading(1).current_a)
    assert cp.station.status(1) is ConnectorStatus.CHARGING


def a16(profile_id: int, purpose: str, limit: float, unit: str = "A") -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": "2025-01-01T10:00:00.000Z",
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }


def a201(profile_id: int, purpose: str, limit: float) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2025-01-01T10:00:00.000Z",
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            }
        ],
    }


async def test_a_16_charger_that_takes_a_station_maximum_only(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(reject_profiles="tx") as cp:
        default = {"connectorId": 1, "csChargingProfiles": a16(1, "TxDefaultProfile", 10)}
        assert await csms16.call("SetChargingProfile", default) == {"status": "Rejected"}
        station_max = {"connectorId": 0, "csChargingProfiles": a16(2, "ChargePointMaxProfile", 10)}
        assert await csms16.call("SetChargingProfile", station_max) == {"status": "Accepted"}
        assert cp.station.connector(1).offered_current_a == 10
        assert len(cp.profiles) == 1


async def test_a_16_charger_that_takes_no_zero(csms16: FakeCsms, charger16: Connect16) -> None:
    async with charger16(reject_zero=True) as cp:
        zero = {"connectorId": 1, "csChargingProfiles": a16(1, "TxDefaultProfile", 0, "W")}
        assert await csms16.call("SetChargingProfile", zero) == {"status": "Rejected"}
        six = {"connectorId": 1, "csChargingProfiles": a16(1, "TxDefaultProfile", 6)}
        assert await csms16.call("SetChargingProfile", six) == {"status": "Accepted"}
        assert cp.station.connector(1).offered_current_a == 6


async def test_a_201_station_that_takes_no_profile(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201(reject_profiles="all") as cp:
        for evse, purpose in ((1, "TxDefaultProfile"), (0, "ChargingStationMaxProfile")):
            asked = {"evseId": evse, "chargingProfile": a201(1, purpose, 10)}
            assert await csms201.call("SetChargingProfile", asked) == {"status": "Rejected"}
        assert len(cp.profiles) == 0


async def test_201_sends_the_charging_needs_after_the_start(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    clock = FakeClock()
    async with charger201(
        clock=clock,
        departure_s=7200,
        energy_need_wh=20_000,
        ev_phases=1,
        ev_max_current_a=16,
        meter_interval=60,
    ) as cp:
        control = cp.start_session(1, "TAG1")
        assert control is not None
        await csms201.expect("TransactionEvent", eventType="Started")
        needs = await csms201.expect("NotifyEVChargingNeeds")
        sent = [r.action for r in csms201.received if r.action != "StatusNotification"]
        assert sent.index("NotifyEVChargingNeeds") == sent.index("TransactionEvent") + 1
        assert needs == {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_single_phase",
                "departureTime": "2025-01-01T12:00:00.000Z",
                "acChargingParameters": {
                    "energyAmount": 20_000,
                    "evMinCurrent": 6,
                    "evMaxCurrent": 16,
                    "evMaxVoltage": 230,
                },
            },
        }
        control.stop("Local")


def test_charging_needs_fit_the_schema() -> None:
    three = charging_needs(
        2, phases=3, departure="2025-01-01T12:00:00Z", energy_wh=1, max_current_a=32
    )
    check_request("NotifyEVChargingNeeds", three)
    assert three["chargingNeeds"]["requestedEnergyTransfer"] == "AC_three_phase"


async def test_16_reports_suspended_evse_at_0_a_and_charging_when_it_rises(
    csms16: FakeCsms, charger16: Connect16
) -> None:
    async with charger16(meter_interval=0.05) as cp:
        control = cp.start_session(1, "TAG1")
        assert control is not None
        await csms16.expect("StatusNotification", connectorId=1, status="Charging")
        tx = await csms16.expect("StartTransaction")
        assert tx["connectorId"] == 1
        mark = csms16.mark()
        zero = {"connectorId": 1, "csChargingProfiles": a16(1, "TxDefaultProfile", 0)}
        assert await csms16.call("SetChargingProfile", zero) == {"status": "Accepted"}
        await csms16.expect("StatusNotification", mark, connectorId=1, status="SuspendedEVSE")
        meter = await csms16.expect("MeterValues", mark)
        values = {
            (v["measurand"], v.get("phase")): v["value"]
            for v in meter["meterValue"][0]["sampledValue"]
        }
        assert values[("Power.Active.Import", None)] == "0"
        assert values[("Current.Import", "L1")] == "0.0"
        assert values[("Current.Offered", None)] == "0.0"
        mark = csms16.mark()
        ten = {"connectorId": 1, "csChargingProfiles": a16(1, "TxDefaultProfile", 10)}
        assert await csms16.call("SetChargingProfile", ten) == {"status": "Accepted"}
        await csms16.expect("StatusNotification", mark, connectorId=1, status="Charging")
        meter = await csms16.expect(
            "MeterValues",
            csms16.mark() - 1,
            match=lambda p: any(
                v["measurand"] == "Current.Offered" and v["value"] == "10.0"
                for v in p["meterValue"][0]["sampledValue"]
            ),
        )
        currents = [
            float(v["value"])
            for v in meter["meterValue"][0]["sampledValue"]
            if v["measurand"] == "Current.Import"
        ]
        assert len(currents) == 3 and all(9.5 <= amps <= 10 for amps in currents)
        control.stop("Local")


async def test_201_reports_the_charging_state_suspended_evse_at_0_a(
    csms201: FakeCsms, charger201: Connect201
) -> None:
    async with charger201(meter_interval=0.05) as cp:
        control = cp.start_session(1, "TAG1")
        assert control is not None
        await csms201.expect("TransactionEvent", eventType="Started")
        mark = csms201.mark()
        zero = {"evseId": 1, "chargingProfile": a201(1, "TxDefaultProfile", 0)}
        assert await csms201.call("SetChargingProfile", zero) == {"status": "Accepted"}
        paused = await csms201.expect(
            "TransactionEvent", mark, triggerReason="ChargingStateChanged"
        )
        assert paused["transactionInfo"]["chargingState"] == "SuspendedEVSE"
        mark = csms201.mark()
        ten = {"evseId": 1, "chargingProfile": a201(1, "TxDefaultProfile", 10)}
        assert await csms201.call("SetChargingProfile", ten) == {"status": "Accepted"}
        resumed = await csms201.expect(
            "TransactionEvent", mark, triggerReason="ChargingStateChanged"
        )
        assert resumed["transactionInfo"]["chargingState"] == "Charging"
        currents = [
            v["value"]
            for v in resumed["meterValue"][0]["sampledValue"]
            if v["measurand"] == "Current.Import"
        ]
        assert len(currents) == 3 and all(9.5 <= amps <= 10 for amps in currents)
        control.stop("Local")


def test_the_command_line_flags_reach_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import simulators.cli

    made: list[ChargerOptions] = []

    def refuse(options: ChargerOptions, **kwargs: Any) -> Any:
        made.append(options)
        raise ValueError("stop here")

    monkeypatch.setattr(simulators.cli, "create_charger", refuse)
    args = [
        "charger",
        "--url",
        URL,
        "--id",
        "CP",
        "--version",
        "2.0.1",
        "--phases",
        "1",
        "--ev-phases",
        "1",
        "--ev-max-current",
        "16",
        "--reject-profiles",
        "tx",
        "--reject-zero",
        "--departure",
        "3600",
        "--energy-need",
        "12000",
    ]
    result = CliRunner().invoke(simulators.cli.main, args)
    assert result.exit_code == 2  # our stand-in refused, as a usage error
    (options,) = made
    assert (options.phases, options.ev_phases, options.ev_max_current_a) == (1, 1, 16)
    assert (options.reject_profiles, options.reject_zero) == ("tx", True)
    assert (options.departure_s, options.energy_need_wh) == (3600, 12000)
    bad = CliRunner().invoke(simulators.cli.main, [*args[:7], "--departure", "60"])
    assert bad.exit_code == 2
    assert len(made) == 1  # refused before any charger was made


def test_the_station_maximum_is_shared_by_the_connectors_that_charge() -> None:
    clock = FakeClock()
    options = ChargerOptions(URL, "CP", connectors=2, ev_max_current_a=32)
    cp = V16Charger(options, clock=clock, rng=random.Random(5))
    station_max = Profile(1, 0, Purpose.STATION_MAX, 0, "A", (Period(0, 16),), start=START)
    cp.profiles.install(station_max)
    for cid in (1, 2):
        cp.station.set_status(cid, ConnectorStatus.PREPARING)
        cp.station.set_status(cid, ConnectorStatus.CHARGING)
    clock.now += timedelta(seconds=1)
    for cid in (1, 2):
        assert all(7.5 <= a <= 8 for a in cp.reading(cid).current_a)
        assert cp.reading(cid).offered_current_a == 8
    cp.station.set_status(2, ConnectorStatus.FINISHING)
    clock.now += timedelta(seconds=1)
    assert all(15 <= a <= 16 for a in cp.reading(1).current_a)
    assert cp.reading(2).power_w == 0
