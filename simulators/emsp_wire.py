"""OCPI 2.2.1 on the wire for the eMSP simulator: the Token header both ways, the response
envelope, reading a CPO's answers, versions and credentials, and the pagination Link (the
envelope, versions, details and Link are the same in 2.1.1: simulators.emsp_v211 has the rest).

Pure functions of bytes, strings and JSON values; the HTTP is simulators.emsp's business.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from simulators.errors import EmspError

__all__ = [
    "MAX_BODY",
    "VERSION",
    "Answer",
    "Endpoints",
    "accepted_token",
    "authorization",
    "details_url",
    "endpoints_of",
    "envelope",
    "next_link",
    "read_answer",
    "their_credentials",
]

VERSION = "2.2.1"
#: Largest answer read from a CPO, and largest push body taken.
MAX_BODY = 16 * 1024 * 1024

#: A CPO's endpoints: (identifier, role, url).
Endpoints = tuple[tuple[str, str, str], ...]

_LINK_NEXT = re.compile(r'<\s*([^>]+?)\s*>\s*;[^,]*?\brel\s*=\s*"?next"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful (HTTP 2xx, status 1xxx) answer of a CPO."""

    http_status: int
    status_code: int
    data: Any
    links: tuple[str, ...]
    total: int | None


def authorization(token: str) -> str:
    """The Authorization header presenting `token` (Base64, as 2.2.1 wants it)."""
    return "Token " + base64.b64encode(token.encode()).decode("ascii")


def accepted_token(header: str | None, tokens: Collection[str]) -> str | None:
    """The token of `Authorization: Token X` if it is one of `tokens`: X Base64-encoded
    (2.2.1), or raw as older implementations write it. The scheme is case-insensitive."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return None
    try:
        decoded: str | None = base64.b64decode(
            value + "=" * (-len(value) % 4), validate=True
        ).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = None
    for candidate in (decoded, value):
        if candidate is not None and candidate in tokens:
            return candidate
    return None


def envelope(status_code: int, message: str | None, data: Any, timestamp: str) -> dict[str, Any]:
    """An OCPI response body (`data` and `status_message` left out when there are none)."""
    body: dict[str, Any] = {"status_code": status_code}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message
    body["timestamp"] = timestamp
    return body


def read_answer(
    where: str, http_status: int, raw: bytes, links: tuple[str, ...], total_header: str | None
) -> Answer:
    """The envelope of a CPO's answer to `where` ("METHOD URL"), or EmspError saying in one
    line what is wrong with it."""
    if len(raw) > MAX_BODY:
        raise EmspError(f"{where}: answer larger than {MAX_BODY} bytes")
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError:
        document = None
    code = document.get("status_code") if isinstance(document, dict) else None
    message = document.get("status_message") if isinstance(document, dict) else None
    detail = "" if code is None else f" ({code}{f' {message}' if message else ''})"
    if not 200 <= http_status < 300:
        raise EmspError(f"{where}: HTTP {http_status}{detail}")
    if not isinstance(code, int) or isinstance(code, bool):
        raise EmspError(f"{where}: HTTP {http_status} but not an OCPI answer")
    if not 1000 <= code < 2000:
        raise EmspError(f"{where}: OCPI status {code}{f': {message}' if message else ''}")
    assert isinstance(document, dict)
    total = None
    if total_header is not None and total_header.strip().isdigit():
        total = int(total_header)
    return Answer(http_status, code, document.get("data"), links, total)


def next_link(links: Sequence[str], current: str) -> str | None:
    """The `rel="next"` URL of a page's Link headers (resolved against the page's URL)."""
    for header in links:
        match = _LINK_NEXT.search(header)
        if match:
            return urljoin(current, str(match.group(1)))
    return None


def details_url(versions: Any, where: str, version: str = VERSION) -> str:
    """The details URL of `version` (2.2.1 unless said) from a CPO's versions list."""
    if not isinstance(versions, list):
        raise EmspError(f"{where}: the versions are not a list")
    urls = {
        str(v.get("version")): v["url"]
        for v in versions
        if isinstance(v, dict) and isinstance(v.get("url"), str)
    }
    found = urls.get(version)
    if found is None:
        offered = ", ".join(sorted(urls)) or "none"
        raise EmspError(f"the CPO offers OCPI {offered}; the simulator speaks {version}")
    return str(found)


def endpoints_of(details: Any, where: str) -> Endpoints:
    """The endpoints of a CPO's version details (malformed entries skipped); the role is ""
    for a 2.1.1 endpoint, which has none."""
    if not isinstance(details, dict) or not isinstance(details.get("endpoints"), list):
        raise EmspError(f"{where}: the version details have no endpoints list")
    return tuple(
        (str(e["identifier"]), str(e.get("role", "")).upper(), str(e["url"]))
        for e in details["endpoints"]
        if isinstance(e, dict)
        and isinstance(e.get("identifier"), str)
        and isinstance(e.get("url"), str)
    )


def their_credentials(data: Any) -> tuple[str, tuple[dict[str, Any], ...]]:
    """The token and the roles of a CPO's credentials; EmspError when unusable."""
    if not isinstance(data, dict):
        raise EmspError("the CPO's credentials are not an object")
    token = data.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= 64:
        raise EmspError("the CPO's credentials have no usable token")
    roles = data.get("roles")
    if not isinstance(roles, list) or not roles:
        raise EmspError("the CPO's credentials have no roles")
    for i, role in enumerate(roles):
        if not (
            isinstance(role, dict)
            and isinstance(role.get("country_code"), str)
            and isinstance(role.get("party_id"), str)
        ):
            raise EmspError(f"the CPO's credentials roles[{i}] lack country_code or party_id")
    return token, tuple(roles)
