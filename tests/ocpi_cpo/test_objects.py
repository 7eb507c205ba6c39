"""Credentials, versions and version details from (untrusted) partners."""

from __future__ import annotations

from typing import Any

import pytest

from csms.core.partners import Endpoint, InterfaceRole, PartyRole, Role
from ocpi_cpo.credentials import credentials_object, parse_credentials
from ocpi_cpo.errors import BadCredentials
from ocpi_cpo.versions import (
    OurEndpoint,
    VersionsError,
    missing_endpoints,
    parse_version_details,
    parse_versions,
    version_details,
    versions_list,
)

GOOD: dict[str, Any] = {
    "token": "ebf3b399-779f-4497-9b9d-ac6ad3cc44d2",
    "url": "https://example.com/ocpi/versions/",
    "roles": [
        {
            "role": "EMSP",
            "party_id": "exa",
            "country_code": "nl",
            "business_details": {"name": "Example"},
        },
        {"role": "EMSP", "party_id": "EXA", "country_code": "NL"},
    ],
}


def test_good_credentials() -> None:
    creds = parse_credentials(GOOD)
    assert creds.token == GOOD["token"]
    # CiStrings upper-cased; the duplicate role folded into one.
    assert creds.roles == (PartyRole(Role.EMSP, "NL", "EXA", {"name": "Example"}),)
    assert "ebf3b399" not in repr(creds)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": ""}, "token:"),
        ({"token": "a b"}, "token:"),
        ({"token": "x" * 65}, "token:"),
        ({"url": "ftp://x"}, "url:"),
        ({"url": None}, "url:"),
        ({"roles": []}, "roles: must be a non-empty list"),
        ({"roles": [{"role": "DRIVER", "party_id": "EXA", "country_code": "NL"}]}, ".role"),
        ({"roles": [{"role": "EMSP", "party_id": "EXAMPLE", "country_code": "NL"}]}, "party_id"),
        ({"roles": [{"role": "EMSP", "party_id": "EXA", "country_code": "NLD"}]}, "country_code"),
        (
            {
                "roles": [
                    {"role": "EMSP", "party_id": "EXA", "country_code": "NL", "business_details": 1}
                ]
            },
            "business_details",
        ),
    ],
)
def test_bad_credentials_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadCredentials, match=None) as info:
        parse_credentials({**GOOD, **change})
    assert message in str(info.value)


def test_credentials_must_be_an_object() -> None:
    with pytest.raises(BadCredentials, match="JSON object"):
        parse_credentials([GOOD])


def test_our_credentials_object() -> None:
    role = PartyRole(Role.CPO, "NL", "CSM", {"name": "CSMS"})
    assert credentials_object("tok", "https://cpo/ocpi/versions", [role]) == {
        "token": "tok",
        "url": "https://cpo/ocpi/versions",
        "roles": [
            {
                "role": "CPO",
                "business_details": {"name": "CSMS"},
                "party_id": "CSM",
                "country_code": "NL",
            }
        ],
    }


def test_versions_and_details() -> None:
    assert parse_versions(
        [
            {"version": "2.1.1", "url": "https://e/2.1.1"},
            {"version": "2.2.1", "url": "https://e/2.2.1"},
        ]
    ) == {"2.1.1": "https://e/2.1.1", "2.2.1": "https://e/2.2.1"}
    version, endpoints = parse_version_details(
        {
            "version": "2.2.1",
            "endpoints": [
                {"identifier": "credentials", "role": "RECEIVER", "url": "https://e/c"},
                {"identifier": "credentials", "url": "https://e/c"},
                {"identifier": "cdrs", "role": "RECEIVER", "url": "https://e/cdrs"},
                {"identifier": "nltnm-tokens", "role": "SENDER", "url": "https://e/x"},
            ],
        }
    )
    assert version == "2.2.1"
    assert endpoints == (
        Endpoint("credentials", InterfaceRole.RECEIVER, "https://e/c"),
        Endpoint("credentials", InterfaceRole.SENDER, "https://e/c"),
        Endpoint("cdrs", InterfaceRole.RECEIVER, "https://e/cdrs"),
        Endpoint("nltnm-tokens", InterfaceRole.SENDER, "https://e/x"),
    )
    required = (
        ("credentials", InterfaceRole.SENDER),
        ("cdrs", InterfaceRole.RECEIVER),
        ("tokens", None),
        ("sessions", InterfaceRole.RECEIVER),
    )
    assert missing_endpoints(endpoints, required) == ["tokens", "sessions RECEIVER"]


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        [{"version": "2.2.1"}],
        [{"version": "2.2.1", "url": "not a url"}],
        ["2.2.1"],
    ],
)
def test_bad_versions(data: Any) -> None:
    with pytest.raises(VersionsError):
        parse_versions(data)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"endpoints": []},
        {"version": "2.2.1"},
        {
            "version": "2.2.1",
            "endpoints": [{"identifier": "cdrs", "role": "BOTH", "url": "https://e"}],
        },
        {"version": "2.2.1", "endpoints": [{"identifier": "cdrs", "role": "SENDER"}]},
    ],
)
def test_bad_details(data: Any) -> None:
    with pytest.raises(VersionsError):
        parse_version_details(data)


def test_our_versions_and_details_are_absolute() -> None:
    base = "https://ocpi.example.com/cpo"
    assert versions_list(base) == [
        {"version": "2.2.1", "url": f"{base}/ocpi/2.2.1"},
        {"version": "2.1.1", "url": f"{base}/ocpi/2.1.1"},
    ]
    ours = [
        OurEndpoint("credentials", InterfaceRole.SENDER, "/ocpi/2.2.1/credentials"),
        OurEndpoint("credentials", InterfaceRole.SENDER, "/ocpi/2.1.1/credentials", "2.1.1"),
        OurEndpoint("tokens", InterfaceRole.RECEIVER, "/ocpi/2.1.1/tokens", "2.1.1"),
    ]
    # 2.1.1 endpoints have no role.
    assert version_details(base, ours, "2.1.1") == {
        "version": "2.1.1",
        "endpoints": [
            {"identifier": "credentials", "url": f"{base}/ocpi/2.1.1/credentials"},
            {"identifier": "tokens", "url": f"{base}/ocpi/2.1.1/tokens"},
        ],
    }
    details = version_details(base, ours)
    assert details == {
        "version": "2.2.1",
        "endpoints": [
            {
                "identifier": "credentials",
                "role": "SENDER",
                "url": f"{base}/ocpi/2.2.1/credentials",
            }
        ],
    }


def test_v211_details_get_the_roles_we_use_them_in() -> None:
    version, endpoints = parse_version_details(
        {
            "version": "2.1.1",
            "endpoints": [
                {"identifier": m, "url": f"https://emsp.example.com/ocpi/2.1.1/{m}"}
                for m in ("credentials", "locations", "sessions", "cdrs", "tariffs", "tokens")
            ]
            + [
                {"identifier": "commands", "url": "https://emsp.example.com/cmd"},
                {"identifier": "custom", "url": "https://emsp.example.com/custom"},
            ],
        }
    )
    assert version == "2.1.1"
    roles = {e.identifier: e.role for e in endpoints}
    assert roles == {
        "credentials": InterfaceRole.SENDER,
        "locations": InterfaceRole.RECEIVER,
        "sessions": InterfaceRole.RECEIVER,
        "cdrs": InterfaceRole.RECEIVER,
        "tariffs": InterfaceRole.RECEIVER,
        "tokens": InterfaceRole.SENDER,
        "commands": InterfaceRole.RECEIVER,
    }
