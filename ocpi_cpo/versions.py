"""OCPI versions and version details: the version we speak, reading a partner's lists
(untrusted) and writing ours.

Pure functions and values; the HTTP handlers are in ocpi_cpo.routes.versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from csms.core.partners import Endpoint, InterfaceRole
from ocpi_cpo.credentials import is_url
from ocpi_cpo.errors import VersionsError as VersionsError

VERSION = "2.2.1"
VERSIONS_PATH = "/ocpi/versions"
VERSION_PATH = f"/ocpi/{VERSION}"


@dataclass(frozen=True, slots=True)
class OurEndpoint:
    """One endpoint of ours as listed in our version details; `path` is absolute on our
    server (e.g. /ocpi/2.2.1/credentials) and becomes a URL under ocpi.base_url."""

    identifier: str
    role: InterfaceRole
    path: str


def parse_versions(data: Any) -> dict[str, str]:
    """A partner's versions list as {version: details URL}."""
    if not isinstance(data, list) or not data:
        raise VersionsError("the versions list is empty or not a list")
    out: dict[str, str] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise VersionsError(f"versions[{i}] is not an object")
        version, url = item.get("version"), item.get("url")
        if not isinstance(version, str) or not is_url(url):
            raise VersionsError(f"versions[{i}] lacks a version or a valid url")
        assert isinstance(url, str)
        out.setdefault(version, url)
    return out


def parse_version_details(data: Any) -> tuple[str, tuple[Endpoint, ...]]:
    """A partner's version details as (version, endpoints). Endpoints with an unknown role
    or a bad URL are refused; unknown (custom) module identifiers are kept."""
    if not isinstance(data, dict):
        raise VersionsError("the version details are not an object")
    version = data.get("version")
    if not isinstance(version, str):
        raise VersionsError("the version details lack a version")
    raw = data.get("endpoints")
    if not isinstance(raw, list):
        raise VersionsError("the version details lack an endpoints list")
    endpoints: dict[tuple[str, InterfaceRole], Endpoint] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise VersionsError(f"endpoints[{i}] is not an object")
        identifier, url = item.get("identifier"), item.get("url")
        if not isinstance(identifier, str) or not identifier or not is_url(url):
            raise VersionsError(f"endpoints[{i}] lacks an identifier or a valid url")
        assert isinstance(url, str)
        try:
            role = InterfaceRole(str(item.get("role")))
        except ValueError:
            if identifier != "credentials":
                raise VersionsError(
                    f"endpoints[{i}] ({identifier}): role must be SENDER or RECEIVER"
                ) from None
            role = InterfaceRole.SENDER  # the role means nothing for credentials
        endpoints.setdefault((identifier, role), Endpoint(identifier, role, url))
    return version, tuple(endpoints.values())


def missing_endpoints(
    endpoints: Sequence[Endpoint], required: Sequence[tuple[str, InterfaceRole | None]]
) -> list[str]:
    """The required endpoints (module, or module with role) that `endpoints` lacks."""
    missing = []
    for identifier, role in required:
        found = any(
            e.identifier == identifier
            and (role is None or identifier == "credentials" or e.role == role)
            for e in endpoints
        )
        if not found:
            missing.append(identifier if role is None else f"{identifier} {role.value}")
    return missing


def versions_list(base_url: str) -> list[dict[str, str]]:
    return [{"version": VERSION, "url": base_url + VERSION_PATH}]


def version_details(base_url: str, endpoints: Sequence[OurEndpoint]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "endpoints": [
            {"identifier": e.identifier, "role": e.role.value, "url": base_url + e.path}
            for e in endpoints
        ],
    }
