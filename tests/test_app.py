"""What `csms serve` warns about at start-up: defaults that are unsafe or misleading on a
listener other machines reach."""

from __future__ import annotations

import pytest

from csms.app import exposure_warnings, is_loopback, whereabouts
from csms.config import COMPONENTS, build_config


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("csms.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_defaults_on_every_interface_earn_three_warnings() -> None:
    config = build_config({}, {})
    found = exposure_warnings(config, COMPONENTS, "http://localhost:9100")
    assert [setting for setting, _ in found] == [
        "ocpp.registration",
        "ocpp.require_auth",
        "ocpi.base_url",
    ]
    assert found[0][1].startswith("OCPP listens on 0.0.0.0:9000 and accepts every unknown")
    assert "http://localhost:9100" in found[2][1]


def test_safe_settings_or_loopback_listeners_earn_none() -> None:
    safe = build_config(
        {
            "ocpp": {"registration": "pending", "require_auth": True},
            "ocpi": {"base_url": "https://ocpi.example.com"},
        },
        {},
    )
    assert exposure_warnings(safe, COMPONENTS, "https://ocpi.example.com") == []
    local = build_config({"ocpp": {"host": "127.0.0.1"}, "ocpi": {"host": "127.0.0.1"}}, {})
    assert exposure_warnings(local, COMPONENTS, "http://localhost:9100") == []


def test_only_the_parts_that_run_are_judged() -> None:
    config = build_config({"ocpi": {"base_url": "http://127.0.0.2:9100"}}, {})
    assert [s for s, _ in exposure_warnings(config, ("ocpi",), "http://127.0.0.2:9100")] == [
        "ocpi.base_url"
    ]
    assert [s for s, _ in exposure_warnings(config, ("ocpp", "api"), None)] == [
        "ocpp.registration",
        "ocpp.require_auth",
    ]
    # An empty ocpi.base_url on a wildcard host names 127.0.0.1: unreachable as well.
    empty = build_config({"ocpi": {"base_url": ""}}, {})
    assert [s for s, _ in exposure_warnings(empty, ("ocpi",), "http://127.0.0.1:9100")] == [
        "ocpi.base_url"
    ]


def test_whereabouts_name_the_token_file_only_when_the_api_runs() -> None:
    config = build_config({"api": {"token": "secret-token"}}, {})
    assert whereabouts(config, ("ocpp",)).keys() == {"data_dir", "config_file", "database"}
    assert whereabouts(config, COMPONENTS)["api_token_file"] == "none (api.token is configured)"
    assert whereabouts(config, COMPONENTS)["database"] == "csms.db"
