"""The TLS keys of [ocpp], [api] and [ocpi]: defaults, environment overrides, files taken
from the data directory, and the one clear error for settings that do not fit together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csms.config import ConfigError, build_config, load_config, tls_enabled


def test_defaults_serve_plain_only() -> None:
    config = build_config({}, {})
    ocpp = config.ocpp
    assert (ocpp.tls_port, ocpp.tls_cert_file, ocpp.tls_key_file) == (9443, "", "")
    assert (ocpp.tls_client_ca_file, ocpp.tls_ciphers, ocpp.plain) == ("", "", True)
    assert (config.api.tls_port, config.ocpi.tls_port) == (9201, 9101)
    assert not any(tls_enabled(s) for s in (ocpp, config.api, config.ocpi))


def test_environment_overrides_and_paths_from_the_data_directory(tmp_path: Path) -> None:
    env = {
        "CSMS_OCPP_TLS_PORT": "8443",
        "CSMS_OCPP_TLS_CERT_FILE": "tls/server.crt",
        "CSMS_OCPP_TLS_KEY_FILE": "/etc/csms/server.key",
        "CSMS_OCPP_TLS_CLIENT_CA_FILE": "tls/clients.pem",
        "CSMS_OCPP_PLAIN": "false",
        "CSMS_API_TLS_CERT_FILE": "api.crt",
        "CSMS_API_TLS_KEY_FILE": "api.key",
        "CSMS_OCPI_TLS_PORT": "9444",
    }
    config = load_config(None, env=env, data_dir=tmp_path)
    ocpp = config.ocpp
    assert ocpp.tls_port == 8443 and ocpp.plain is False
    assert ocpp.tls_cert_file == str(tmp_path / "tls" / "server.crt")
    assert ocpp.tls_key_file == "/etc/csms/server.key"
    assert ocpp.tls_client_ca_file == str(tmp_path / "tls" / "clients.pem")
    assert (config.api.tls_cert_file, config.api.tls_key_file) == (
        str(tmp_path / "api.crt"),
        str(tmp_path / "api.key"),
    )
    assert tls_enabled(config.api) and not tls_enabled(config.ocpi)
    assert config.ocpi.tls_port == 9444


TLS = {"tls_cert_file": "a.crt", "tls_key_file": "a.key"}


@pytest.mark.parametrize(
    ("section", "raw", "message"),
    [
        (
            "ocpp",
            {"tls_cert_file": "a.crt"},
            "ocpp.tls_cert_file is set but ocpp.tls_key_file is not: TLS needs both",
        ),
        (
            "api",
            {"tls_key_file": "a.key"},
            "api.tls_key_file is set but api.tls_cert_file is not: TLS needs both",
        ),
        (
            "ocpp",
            {"plain": False},
            "ocpp.plain = false without ocpp.tls_cert_file and ocpp.tls_key_file",
        ),
        ("ocpp", {"tls_client_ca_file": "ca.pem"}, "ocpp.tls_client_ca_file is set but TLS"),
        (
            "ocpi",
            {**TLS, "port": 9100, "tls_port": 9100},
            "ocpi.tls_port and ocpi.port are both 9100: give TLS its own port",
        ),
        ("ocpp", {"tls_port": 70000}, "ocpp.tls_port must be between 0 and 65535, not 70000"),
    ],
)
def test_settings_that_do_not_fit_are_one_clear_error(
    section: str, raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({section: raw}, {})
    assert str(info.value) == message or message in str(info.value)


def test_only_tls_may_share_the_plain_port_number_when_plain_is_off() -> None:
    config = build_config({"ocpp": {**TLS, "port": 9443, "plain": False}}, {})
    assert tls_enabled(config.ocpp) and not config.ocpp.plain
