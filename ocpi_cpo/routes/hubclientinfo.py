"""HubClientInfo module, Receiver interface: a hub tells us which parties are connected to
it, `GET/PUT /ocpi/2.2.1/hubclientinfo/{country_code}/{party_id}`.

Only a partner with the HUB role may PUT; any registered partner may GET. The ClientInfo
object is read here (the edge); storing is csms.storage.hub_parties'.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import structlog
from aiohttp import web

from csms.core.errors import InvalidInput
from csms.core.ocpi_tokens import parse_ocpi_datetime
from csms.core.parties import Party
from csms.core.partners import InterfaceRole, Role
from csms.storage import hub_parties as repo
from csms.storage.database import WriteTx
from csms.storage.hub_parties import HubParty
from ocpi_cpo.context import PARTNERS
from ocpi_cpo.envelope import Status, format_datetime
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.transport import add_endpoint, add_route, caller_of, read_json, reply, settings_of
from ocpi_cpo.versions import VERSION_PATH

log = structlog.get_logger("ocpi_cpo.hubclientinfo")

PATH = f"{VERSION_PATH}/hubclientinfo"
OBJECT_PATH = PATH + "/{country_code}/{party_id}"

_COUNTRY = re.compile(r"[A-Za-z]{2}")
_PARTY = re.compile(r"[A-Za-z0-9]{3}")


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    OFFLINE = "OFFLINE"
    PLANNED = "PLANNED"
    SUSPENDED = "SUSPENDED"


def _invalid(message: str) -> OcpiFailure:
    return OcpiFailure(Status.INVALID_PARAMETERS, message)


def _party(country_code: object, party_id: object, where: str) -> Party:
    if not isinstance(country_code, str) or not _COUNTRY.fullmatch(country_code):
        raise _invalid(f"country_code{where}: must be 2 letters (ISO 3166-1 alpha-2)")
    if not isinstance(party_id, str) or not _PARTY.fullmatch(party_id):
        raise _invalid(f"party_id{where}: must be 3 letters or digits")
    return Party(country_code.upper(), party_id.upper())


def _enum_value(kind: type[StrEnum], body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise _invalid(f"{key}: is required")
    allowed = [member.value for member in kind]
    if value not in allowed:
        raise _invalid(f"{key}: must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def parse_client_info(body: object, hub_id: int) -> HubParty:
    """A ClientInfo object (all five fields required). Raises OcpiFailure 2001."""
    if not isinstance(body, dict):
        raise _invalid("the body must be a ClientInfo JSON object")
    for key in ("country_code", "party_id"):
        if body.get(key) is None:
            raise _invalid(f"{key}: is required")
    party = _party(body["country_code"], body["party_id"], "")
    role = _enum_value(Role, body, "role")
    status = _enum_value(ConnectionStatus, body, "status")
    if body.get("last_updated") is None:
        raise _invalid("last_updated: is required")
    try:
        last_updated = parse_ocpi_datetime(body["last_updated"])
    except InvalidInput as exc:
        raise _invalid(str(exc)) from None
    return HubParty(party.country_code, party.party_id, role, status, last_updated, hub_id)


def client_info(party: HubParty) -> dict[str, Any]:
    return {
        "party_id": party.party_id,
        "country_code": party.country_code,
        "role": party.role,
        "status": party.status,
        "last_updated": format_datetime(party.last_updated),
    }


async def get_client_info(request: web.Request) -> web.Response:
    info = request.match_info
    party = _party(info["country_code"], info["party_id"], " (URL)")
    async with request.app[PARTNERS].db.read() as conn:
        found = await repo.of_party(conn, party)
    if not found:
        # Neither a location (2003) nor a token (2004): the generic client error.
        raise OcpiFailure(Status.CLIENT_ERROR, f"unknown party {party}", http_status=404)
    return reply(request, client_info(found[0]))


async def put_client_info(request: web.Request) -> web.Response:
    caller = caller_of(request).partner
    if not any(r.role is Role.HUB for r in caller.roles):
        raise _invalid(f"only a hub may push ClientInfo objects (your roles: {caller.parties})")
    info = request.match_info
    url_party = _party(info["country_code"], info["party_id"], " (URL)")
    body = await read_json(request)
    party = parse_client_info(body, caller.id)
    if party.party != url_party:
        raise _invalid(f"the ClientInfo is of party {party.party}, the URL names {url_party}")
    now = settings_of(request).clock()

    async def unit(w: WriteTx) -> bool:
        return await repo.save(await w.connection(), party, now)

    created = await request.app[PARTNERS].db.write(unit)
    log.info(
        "hub_party_reported",
        ocpi_partner=caller.name,
        ocpi_party=str(party.party),
        role=party.role,
        connection_status=party.status,
        created=created,
    )
    return reply(request, http_status=201 if created else 200)


def setup(app: web.Application) -> None:
    add_endpoint(app, "hubclientinfo", InterfaceRole.RECEIVER, PATH)
    add_route(app, "GET", OBJECT_PATH, get_client_info)
    add_route(app, "PUT", OBJECT_PATH, put_client_info)
