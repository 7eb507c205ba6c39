"""Unit tests of the OCPP 1.6 configuration keys of the simulated charger."""

from __future__ import annotations

from simulators.v16_config import ConfigStatus, Configuration


def config() -> Configuration:
    return Configuration.defaults(connectors=2, heartbeat_interval=300, meter_interval=5)


def test_get_all_and_some_keys() -> None:
    cfg = config()
    everything, unknown = cfg.get(None)
    assert unknown == []
    keys = {entry.key: entry for entry in everything}
    assert keys["NumberOfConnectors"].value == "2"
    assert keys["NumberOfConnectors"].readonly
    assert keys["HeartbeatInterval"].value == "300"
    assert keys["HeartbeatInterval"].wire() == {
        "key": "HeartbeatInterval",
        "readonly": False,
        "value": "300",
    }
    some, unknown = cfg.get(["MeterValueSampleInterval", "NoSuchKey"])
    assert [entry.key for entry in some] == ["MeterValueSampleInterval"]
    assert unknown == ["NoSuchKey"]


def test_change_validates_and_respects_readonly() -> None:
    cfg = config()
    assert cfg.change("HeartbeatInterval", "60") is ConfigStatus.ACCEPTED
    assert cfg.seconds("HeartbeatInterval") == 60
    assert cfg.change("HeartbeatInterval", "-5") is ConfigStatus.REJECTED
    assert cfg.change("NumberOfConnectors", "4") is ConfigStatus.REJECTED
    assert cfg.change("NoSuchKey", "1") is ConfigStatus.NOT_SUPPORTED
    assert cfg.change("AuthorizeRemoteTxRequests", "False") is ConfigStatus.ACCEPTED
    assert not cfg.flag("AuthorizeRemoteTxRequests")
    assert cfg.change("MeterValuesSampledData", "SoC,Voltage") is ConfigStatus.ACCEPTED
    assert cfg.items("MeterValuesSampledData") == ("SoC", "Voltage")
    assert cfg.change("MeterValuesSampledData", "Temperature") is ConfigStatus.REJECTED


def test_smart_charging_keys_are_read_only_and_give_the_profile_rules() -> None:
    cfg = config()
    rules = cfg.profile_rules()
    assert (rules.max_stack_level, rules.max_periods, rules.max_installed) == (8, 24, 16)
    assert rules.units == {"A", "W"}
    assert cfg.change("ChargeProfileMaxStackLevel", "3") is ConfigStatus.REJECTED
    cfg.set("ChargingScheduleAllowedChargingRateUnit", "Current")
    assert cfg.profile_rules().units == {"A"}
    assert cfg.flag("LocalAuthListEnabled")
    assert cfg.integer("LocalAuthListMaxLength") == 100
    assert cfg.integer("SendLocalListMaxLength") == 50
    assert not cfg.flag("ReserveConnectorZeroSupported")
