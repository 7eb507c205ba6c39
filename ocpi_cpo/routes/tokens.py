"""Tokens module, Receiver interface: eMSPs (and hubs for them) push their Token objects,
`GET/PUT/PATCH /ocpi/2.2.1/tokens/{country_code}/{party_id}/{uid}[?type=]`, and in 2.1.1
`/ocpi/2.1.1/tokens/{country_code}/{party_id}/{uid}` (no type in the URL: a PUT's is the
token's own, GET and PATCH find the stored token of that uid whatever its type). 2.1.1
bodies are read into 2.2.1 (ocpi_cpo.v211.objects) and handled as 2.2.1 ones.

A partner writes and reads only tokens of its own credentials parties (a hub: of any party
but ours). Validation and PATCH merging are csms.core.ocpi_tokens'; saving (with the id
token mirror chargers see) ocpi_cpo.token_sync's. This module also runs the pull of a
partner's tokens after each registration (ocpi_cpo.token_sync.TokenPuller).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from csms.core.ocpi_sessions import TokenType
from csms.core.ocpi_tokens import (
    InvalidToken,
    TokenKey,
    check_key,
    key_of,
    may_write,
    merge_patch,
    parse_key,
    parse_token,
)
from csms.core.partners import InterfaceRole, PartyRole, Role
from csms.core.roaming import PartnerToken
from csms.storage import ocpi_tokens as token_repo
from csms.storage.database import WriteTx
from csms.storage.ocpi_tokens import Saved
from ocpi_cpo.context import PARTNERS
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.token_sync import ensure_puller, log_stored, our_party, store_tokens
from ocpi_cpo.transport import (
    add_endpoint,
    add_route,
    caller_of,
    read_json,
    replace_body,
    reply,
    settings_of,
)
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH

PATH = f"{VERSION_PATH}/tokens"
OBJECT_PATH = PATH + "/{country_code}/{party_id}/{uid}"
PATH_211 = f"{V211_PATH}/tokens"
OBJECT_PATH_211 = PATH_211 + "/{country_code}/{party_id}/{uid}"


def _invalid(exc: InvalidToken) -> OcpiFailure:
    return OcpiFailure(Status.INVALID_PARAMETERS, str(exc))


def _unknown(key: TokenKey) -> OcpiFailure:
    return OcpiFailure(Status.UNKNOWN_TOKEN, f"unknown token {key}", http_status=404)


def _key(request: web.Request, type_: str | None = None) -> TokenKey:
    """The token the URL names (of `type_`, else the URL's ?type=), if the caller may speak
    for its party (else 2001)."""
    info = request.match_info
    try:
        key = parse_key(
            info["country_code"],
            info["party_id"],
            info["uid"],
            type_ if type_ is not None else request.query.get("type"),
        )
    except InvalidToken as exc:
        raise _invalid(exc) from None
    partner = caller_of(request).partner
    if not may_write(partner.roles, our_party(settings_of(request)), key.party):
        raise OcpiFailure(
            Status.INVALID_PARAMETERS,
            f"party {key.party} is not one of your credentials roles ({partner.parties})",
        )
    return key


async def get_token(request: web.Request) -> web.Response:
    key = _key(request)
    async with request.app[PARTNERS].db.read() as conn:
        token = await token_repo.get(conn, key.party, key.uid, key.type)
    if token is None:
        raise _unknown(key)
    return reply(request, dict(token.data))


async def put_token(request: web.Request) -> web.Response:
    key = _key(request)
    body = await read_json(request)
    try:
        token = parse_token(body)
        check_key(token, key)
    except InvalidToken as exc:
        raise _invalid(exc) from None
    return await _store(request, token)


@dataclass(frozen=True, slots=True)
class _Patched:
    token: PartnerToken | None = None  # None (and no error): unknown token
    saved: Saved | None = None
    error: InvalidToken | None = None


async def patch_token(request: web.Request) -> web.Response:
    return await _patch(request, _key(request))


async def _patch(request: web.Request, key: TokenKey) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("last_updated") is None:
        # Refused before the token is looked up: the spec's own example of 2001.
        raise _invalid(InvalidToken("last_updated", "is required in a PATCH"))
    partner = caller_of(request).partner
    now = settings_of(request).clock()

    # Read, merge and save in one write: of two PATCHes of one token, neither is lost.
    async def unit(w: WriteTx) -> _Patched:
        conn = await w.connection()
        current = await token_repo.get(conn, key.party, key.uid, key.type)
        if current is None:
            return _Patched()
        try:
            token = merge_patch(current, body)
            check_key(token, key_of(current))
        except InvalidToken as exc:
            return _Patched(error=exc)
        return _Patched(token, await token_repo.save(conn, token, partner.id, now))

    patched = await request.app[PARTNERS].db.write(unit)
    if patched.error is not None:
        raise _invalid(patched.error)
    if patched.token is None or patched.saved is None:
        raise _unknown(key)
    log_stored(partner, patched.token, patched.saved, source="patch")
    return reply(request)


async def _store(request: web.Request, token: PartnerToken) -> web.Response:
    partner = caller_of(request).partner
    now = settings_of(request).clock()
    (saved,) = await store_tokens(request.app[PARTNERS].db, [token], partner, now, source="push")
    return reply(request, http_status=201 if saved.created else 200)


# --- 2.1.1 ---------------------------------------------------------------------------------


async def _stored_key_211(request: web.Request) -> TokenKey:
    """The key of the stored token a 2.1.1 URL names: 2.1.1 URLs carry no type, so the
    token of that party and uid of any type (RFID first); 2003 when there is none."""
    key = _key(request)
    async with request.app[PARTNERS].db.read() as conn:
        for kind in (key.type, *(t.value for t in TokenType if t.value != key.type)):
            if await token_repo.get(conn, key.party, key.uid, kind) is not None:
                return TokenKey(key.party, key.uid, kind)
    raise _unknown(key)


def _party_of(key: TokenKey) -> PartyRole:
    return PartyRole(Role.EMSP, key.party.country_code, key.party.party_id)


async def get_token_211(request: web.Request) -> web.Response:
    key = await _stored_key_211(request)
    async with request.app[PARTNERS].db.read() as conn:
        token = await token_repo.get(conn, key.party, key.uid, key.type)
    if token is None:
        raise _unknown(key)
    return reply(request, v211.token(token.data))


async def put_token_211(request: web.Request) -> web.Response:
    body = await read_json(request)
    kind = body.get("type") if isinstance(body, dict) else None
    key = _key(request, kind if isinstance(kind, str) and kind in v211.TOKEN_TYPES else None)
    if isinstance(body, dict):
        body = v211.token_to_221(body, _party_of(key))
    try:
        token = parse_token(body)
        check_key(token, key)
    except InvalidToken as exc:
        raise _invalid(exc) from None
    return await _store(request, token)


async def patch_token_211(request: web.Request) -> web.Response:
    key = await _stored_key_211(request)
    body = await read_json(request)
    if isinstance(body, dict):
        replace_body(request, v211.token_patch_to_221(body))
    return await _patch(request, key)


def setup(app: web.Application) -> None:
    add_endpoint(app, "tokens", InterfaceRole.RECEIVER, PATH)
    add_route(app, "GET", OBJECT_PATH, get_token)
    add_route(app, "PUT", OBJECT_PATH, put_token)
    add_route(app, "PATCH", OBJECT_PATH, patch_token)
    add_endpoint(app, "tokens", InterfaceRole.RECEIVER, PATH_211, V211)
    add_route(app, "GET", OBJECT_PATH_211, get_token_211, version=V211)
    add_route(app, "PUT", OBJECT_PATH_211, put_token_211, version=V211)
    add_route(app, "PATCH", OBJECT_PATH_211, patch_token_211, version=V211)
    ensure_puller(app)
