"""The [ca] configuration section: defaults, environment overrides, bounds, and its
directory taken from the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.config import CaConfig, ConfigError, build_config, load_config


def test_defaults_and_overrides(tmp_path: Path) -> None:
    assert build_config({}, {}).ca == CaConfig()
    config = load_config(
        None,
        env={"CSMS_CA_KEY_TYPE": "rsa", "CSMS_CA_CERTIFICATE_VALIDITY_DAYS": "90"},
        data_dir=tmp_path,
    )
    assert (config.ca.key_type, config.ca.certificate_validity_days) == ("rsa", 90)
    assert config.ca.directory == str(tmp_path / ".csms" / "ca")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"key_type": "dsa"}, "ca.key_type must be one of 'ec', 'rsa', not 'dsa'"),
        ({"organisation": " "}, "ca.organisation must not be empty"),
        ({"ca_validity_days": 0}, "ca.ca_validity_days must be between 1 and 36500"),
        ({"certificate_validity_days": 40000}, "ca.certificate_validity_days must be between"),
    ],
)
def test_bad_values_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"ca": raw}, {})
    assert message in str(info.value)
