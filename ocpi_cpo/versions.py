"""OCPI versions and version details: the versions we speak (2.2.1 and 2.1.1), reading a
partner's lists (untrusted) and writing ours.

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
V211 = "2.1.1"
# What we speak, best first: registering with a partner picks the first it offers too.
VERSIONS = (VERSION, V211)
VERSIONS_PATH = "/ocpi/versions"
VERSION_PATH = f"/ocpi/{VERSION}"
V211_PATH = f"/ocpi/{V211}"

# 2.1.1 endpoints have no role: each module is stored with the role *we* use it in, so
# that partner.endpoint(module, role) finds a 2.1.1 partner's endpoints as a 2.2.1 one's.
# We push locations, sessions, CDRs and tariffs to it and send it command results; we pull
# its tokens (and ask it to authorize them).
V211_ROLES = {
    "locations": InterfaceRole.RECEIVER,
    "sessions": InterfaceRole.RECEIVER,
    "cdrs": InterfaceRole.RECEIVER,
    "tariffs": InterfaceRole.RECEIVER,
    "commands": InterfaceRole.RECEIVER,
    "tokens": InterfaceRole.SENDER,
    "credentials": InterfaceRole.SENDER,
}


def version_path(version: str) -> str:
    """Where a version of ours is served: /ocpi/2.2.1 or /ocpi/2.1.1."""
    return f"/ocpi/{version}"


@dataclass(frozen=True, slots=True)
class OurEndpoint:
    """One endpoint of ours as listed in our version details; `path` is absolute on our
    server (e.g. /ocpi/2.2.1/credentials) and becomes a URL under ocpi.base_url."""

    identifier: str
    role: InterfaceRole
    path: str
    version: str = VERSION


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
    or a bad URL are refused; unknown (custom) module identifiers are kept. 2.1.1 details
    (no roles) are stored with the role we use each module in (V211_ROLES)."""
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
        if version == V211:
            if identifier in V211_ROLES:
                role = V211_ROLES[identifier]
                endpoints.setdefault((identifier, role), Endpoint(identifier, role, url))
            continue  # a custom 2.1.1 module: without a role we could not use it
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
    return [{"version": v, "url": base_url + version_path(v)} for v in VERSIONS]


def version_details(
    base_url: str, endpoints: Sequence[OurEndpoint], version: str = VERSION
) -> dict[str, Any]:
    """Our endpoints of one version; 2.1.1 endpoints have no role (and each module is listed
    once: we serve only one side of each)."""
    if version == V211:
        listed: list[dict[str, str]] = []
        for e in endpoints:
            if e.version == V211 and e.identifier not in {x["identifier"] for x in listed}:
                listed.append({"identifier": e.identifier, "url": base_url + e.path})
        return {"version": V211, "endpoints": listed}
    return {
        "version": version,
        "endpoints": [
            {"identifier": e.identifier, "role": e.role.value, "url": base_url + e.path}
            for e in endpoints
            if e.version == version
        ],
    }
