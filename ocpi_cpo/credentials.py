"""The OCPI Credentials object: reading a partner's (untrusted) and writing ours.

Pure functions; the handshake that exchanges them is ocpi_cpo.registration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from csms.core.partners import PartyRole, Role, valid_token
from ocpi_cpo.errors import BadCredentials

URL_MAX = 255
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_PARTY = re.compile(r"^[A-Za-z0-9]{3}$")


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str = field(repr=False)
    url: str
    roles: tuple[PartyRole, ...]


def is_url(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= URL_MAX
        and value.startswith(("http://", "https://"))
        and not any(c.isspace() for c in value)
    )


def parse_credentials(data: Any) -> Credentials:
    """A Credentials object as a partner sent it. Raises BadCredentials naming the field.

    country_code and party_id are CiStrings: kept upper-cased. business_details is
    required by the spec but only checked when present (some hubs leave it out)."""
    if not isinstance(data, dict):
        raise BadCredentials("the credentials must be a JSON object")
    token = data.get("token")
    if not valid_token(token):
        raise BadCredentials("token: must be 1-64 printable ASCII characters without spaces")
    assert isinstance(token, str)
    url = data.get("url")
    if not is_url(url):
        raise BadCredentials("url: must be the http(s) URL of the versions endpoint")
    assert isinstance(url, str)
    raw_roles = data.get("roles")
    if not isinstance(raw_roles, list) or not raw_roles:
        raise BadCredentials("roles: must be a non-empty list")
    roles: dict[tuple[str, str, str], PartyRole] = {}
    for i, item in enumerate(raw_roles):
        where = f"roles[{i}]"
        if not isinstance(item, dict):
            raise BadCredentials(f"{where}: must be an object")
        try:
            role = Role(str(item.get("role")))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise BadCredentials(f"{where}.role: must be one of {allowed}") from None
        country = item.get("country_code")
        if not isinstance(country, str) or not _COUNTRY.match(country):
            raise BadCredentials(f"{where}.country_code: must be 2 letters (ISO 3166-1)")
        party = item.get("party_id")
        if not isinstance(party, str) or not _PARTY.match(party):
            raise BadCredentials(f"{where}.party_id: must be 3 letters or digits")
        details = item.get("business_details", {})
        if not isinstance(details, dict):
            raise BadCredentials(f"{where}.business_details: must be an object")
        name = details.get("name")
        if "name" in details and not (isinstance(name, str) and 0 < len(name) <= 100):
            raise BadCredentials(f"{where}.business_details.name: must be 1-100 characters")
        key = (role.value, country.upper(), party.upper())
        roles.setdefault(key, PartyRole(role, country.upper(), party.upper(), details))
    return Credentials(token, url, tuple(roles.values()))


def credentials_object(token: str, versions_url: str, roles: Sequence[PartyRole]) -> dict[str, Any]:
    """Our Credentials object as we send it (the token in clear, never Base64)."""
    return {
        "token": token,
        "url": versions_url,
        "roles": [
            {
                "role": r.role.value,
                "business_details": r.business_details,
                "party_id": r.party_id,
                "country_code": r.country_code,
            }
            for r in roles
        ],
    }
