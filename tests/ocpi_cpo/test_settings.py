"""The [ocpi] keys as the bridge reads them."""

from __future__ import annotations

import pytest

from csms.config import ConfigError, build_config
from csms.core.partners import InterfaceRole
from ocpi_cpo.context import OcpiSettings, public_base_url


def test_defaults() -> None:
    cfg = build_config({}, {}).ocpi
    settings = OcpiSettings.from_config(cfg, public_base_url(cfg))
    assert settings.base_url == "http://localhost:9100"
    assert settings.versions_url == "http://localhost:9100/ocpi/versions"
    assert settings.page_limit == 100
    assert settings.required == (("credentials", None),)
    (role,) = settings.us.roles
    assert (role.role.value, role.country_code, role.party_id) == ("CPO", "NL", "CSM")
    assert role.business_details == {"name": "CSMS"}


def test_base_url_behind_a_proxy_and_derived() -> None:
    cfg = build_config({"ocpi": {"base_url": "https://ocpi.example.com/cpo/"}}, {}).ocpi
    assert public_base_url(cfg) == "https://ocpi.example.com/cpo"
    empty = build_config({"ocpi": {"base_url": "", "host": "0.0.0.0"}}, {}).ocpi
    assert public_base_url(empty, 40123) == "http://127.0.0.1:40123"
    assert public_base_url(empty) == "http://127.0.0.1:9100"
    v6 = build_config({"ocpi": {"base_url": "", "host": "::1"}}, {}).ocpi
    assert public_base_url(v6, 1) == "http://[::1]:1"


def test_required_endpoints_and_business_details() -> None:
    cfg = build_config(
        {
            "ocpi": {
                "required_endpoints": "credentials, cdrs:RECEIVER,tokens",
                "business_website": "https://cpo.example.com",
            }
        },
        {},
    ).ocpi
    settings = OcpiSettings.from_config(cfg, "http://x")
    assert settings.required == (
        ("credentials", None),
        ("cdrs", InterfaceRole.RECEIVER),
        ("tokens", None),
    )
    assert settings.us.roles[0].business_details == {
        "name": "CSMS",
        "website": "https://cpo.example.com",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"country_code": "NLD"}, "ocpi.country_code"),
        ({"party_id": "cs"}, "ocpi.party_id"),
        ({"base_url": "localhost:9100"}, "ocpi.base_url"),
        ({"page_limit": 0}, "ocpi.page_limit"),
        ({"request_timeout": 0}, "ocpi.request_timeout"),
        ({"required_endpoints": "cdrs:BOTH"}, "ocpi.required_endpoints"),
        ({"business_name": ""}, "ocpi.business_name"),
        ({"business_website": "example.com"}, "ocpi.business_website"),
    ],
)
def test_bad_values_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        build_config({"ocpi": values}, {})
    assert message in str(info.value)
