"""ChargingProfiles module, Receiver interface: `/ocpi/2.2.1/chargingprofiles/{session_id}`.
GET asks the session's EVSE for its composite schedule (ActiveChargingProfile), PUT sets a
TxProfile bound to the session's transaction, DELETE clears the session's TxProfiles.

Each request is answered at once with a ChargingProfileResponse; what the charger said
follows as one POST to the request's response_url (ocpi_cpo.results). The commands go
through the CSMS's command path (csms.services.commands, audit log included); the OCPI
rules are csms.core.ocpi_profiles'.

What the partner is told at once:
- 2001 (no result follows): response_url or duration missing or invalid, or a
  ChargingProfile OCPP cannot carry (csms.core.ocpi_profiles.parse_charging_profile).
- UNKNOWN_SESSION (no result follows): no such session, a session that is not running, one
  at a charger we do not publish, or one of a token none of the caller's parties owns (a
  hub: any party but us) - another party's session does not exist for the caller.
- NOT_SUPPORTED (no result follows): the bridge runs without the command path, or the
  charger's OCPP 2.0.1 device model reports SmartChargingCtrlr Enabled/Available false (the
  rule that also takes CHARGING_PROFILE_CAPABLE off its EVSEs). An OCPP 1.6 charger reports
  nothing we keep: it says itself, with a CALLERROR NotSupported/NotImplemented, and the
  result is REJECTED.
- ACCEPTED otherwise, with the timeout the result comes within: the charger's time to answer
  (ocpp.call_timeout) and a margin. A charger that is offline, busy, does not answer in time
  or answers with a CALLERROR gets the result REJECTED, like one that says Rejected: the one
  rule for every failure at the charger's side. TOO_OFTEN is never answered (the command
  path already sends one CALL at a time per charger).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from csms.core.ocpi_profiles import (
    BadProfileRequest,
    ProfileResponse,
    active_profile_result,
    clear_request,
    clear_result,
    composite_request,
    duration,
    parse_set_charging_profile,
    response_url,
    session_tx_id,
    set_request,
    set_result,
)
from csms.core.parties import Party, audience, owner_of
from csms.core.partners import InterfaceRole
from csms.services.commands import CommandService, Requester
from csms.storage import charging_profiles as profile_repo
from csms.storage import device_model as device_repo
from csms.storage import ocpi_sessions as session_repo
from ocpi_cpo.context import COMMANDS, PARTNERS, RESULTS, SETTINGS
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.transport import add_endpoint, add_route, caller_of, read_json, reply, sender_of
from ocpi_cpo.versions import VERSION_PATH

log = structlog.get_logger("ocpi_cpo.chargingprofiles")

PATH = f"{VERSION_PATH}/chargingprofiles"
KIND_GET = "CHARGING_PROFILE_GET"
KIND_SET = "CHARGING_PROFILE_SET"
KIND_CLEAR = "CHARGING_PROFILE_CLEAR"
# Seconds on top of the charger's time to answer, for the audit log and the queue.
MARGIN_S = 5
# The 2.0.1 controller whose Enabled/Available false means no smart charging.
CONTROLLER = "SmartChargingCtrlr"

Work = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class _Session:
    """A running session the caller may steer: its transaction, charger and EVSE."""

    tx_id: int
    charge_point_id: str
    evse_id: int


def _bad(exc: BadProfileRequest) -> OcpiFailure:
    return OcpiFailure(Status.INVALID_PARAMETERS, str(exc))


def _timeout(commands: CommandService) -> int:
    """ChargingProfileResponse.timeout: within this the result is POSTed."""
    return math.ceil(commands.default_timeout) + MARGIN_S


def _respond(request: web.Request, result: ProfileResponse) -> web.Response:
    commands = request.app.get(COMMANDS)
    timeout = _timeout(commands) if commands is not None else MARGIN_S
    return reply(request, {"result": result.value, "timeout": timeout})


async def _session(request: web.Request) -> _Session | None:
    """The session the path names, when it is one of ours the caller's parties own and it is
    running; None otherwise."""
    tx_id = session_tx_id(request.match_info["session_id"])
    if tx_id is None:
        return None
    settings = request.app[SETTINGS]
    us = Party(settings.country_code, settings.party_id)
    async with request.app[PARTNERS].db.read() as conn:
        rows = await session_repo.sessions_by_id(conn, str(us), [tx_id])
    if not rows:
        return None
    row = rows[0]
    if not row.tx.active:
        return None
    if not audience(caller_of(request).partner.roles, us).sees(owner_of(row.origin)):
        return None
    return _Session(row.tx.id, row.tx.charge_point_id, row.tx.evse_id)


async def _smart_charging_off(request: web.Request, cp_id: str) -> bool:
    async with request.app[PARTNERS].db.read() as conn:
        off = await device_repo.disabled_components(conn, [cp_id], [CONTROLLER])
    return CONTROLLER in off.get(cp_id, set())


async def _target(request: web.Request) -> _Session | web.Response:
    """The session to act on, or the answer that ends the request here."""
    if COMMANDS not in request.app:
        return _respond(request, ProfileResponse.NOT_SUPPORTED)
    session = await _session(request)
    if session is None:
        return _respond(request, ProfileResponse.UNKNOWN_SESSION)
    if await _smart_charging_off(request, session.charge_point_id):
        return _respond(request, ProfileResponse.NOT_SUPPORTED)
    return session


async def _accept(
    request: web.Request,
    kind: str,
    url: str,
    session: _Session,
    details: dict[str, Any],
    work: Work,
) -> web.Response:
    """Store the request, start its work, answer ACCEPTED."""
    partner = caller_of(request).partner
    timeout = _timeout(request.app[COMMANDS])
    results = request.app[RESULTS]
    request_id = await results.open(
        partner_id=partner.id,
        reply_to=sender_of(request),
        kind=kind,
        response_url=url,
        request={"session_id": str(session.tx_id), **details},
        charge_point_id=session.charge_point_id,
        timeout_s=timeout,
    )
    results.run(request_id, kind, work, timeout)
    log.info(
        "ocpi_charging_profile_requested",
        kind=kind,
        request_id=request_id,
        charge_point_id=session.charge_point_id,
        evse_id=session.evse_id,
        transaction_id=session.tx_id,
    )
    return _respond(request, ProfileResponse.ACCEPTED)


def _requester(request: web.Request) -> Requester:
    return Requester("ocpi", caller_of(request).partner.name)


async def get_active_profile(request: web.Request) -> web.Response:
    try:
        url = response_url(request.query.get("response_url"))
        seconds = duration(request.query.get("duration"))
    except BadProfileRequest as exc:
        raise _bad(exc) from None
    target = await _target(request)
    if isinstance(target, web.Response):
        return target
    session = target
    commands = request.app[COMMANDS]
    db = request.app[PARTNERS].db
    clock = request.app[SETTINGS].clock
    requester = _requester(request)

    async def work() -> dict[str, Any]:
        # In the unit of the session's own TxProfile, if it has one; else the charger's.
        async with db.read() as conn:
            installed = await profile_repo.installed(conn, session.charge_point_id)
        units = [s.profile.unit for s in installed if s.transaction_id == session.tx_id]
        ask = composite_request(session.evse_id, seconds, units[-1] if units else None)
        result = await commands.execute(session.charge_point_id, ask, requester)
        return active_profile_result(result.outcome, result.data, clock())

    return await _accept(request, KIND_GET, url, session, {"duration": seconds}, work)


async def put_profile(request: web.Request) -> web.Response:
    body = await read_json(request)
    try:
        profile, url = parse_set_charging_profile(body)
    except BadProfileRequest as exc:
        raise _bad(exc) from None
    target = await _target(request)
    if isinstance(target, web.Response):
        return target
    session = target
    commands = request.app[COMMANDS]
    install = set_request(profile, session.evse_id, session.tx_id)
    requester = _requester(request)

    async def work() -> dict[str, Any]:
        result = await commands.execute(session.charge_point_id, install, requester)
        return set_result(result.outcome)

    details = {"charging_profile": body["charging_profile"]}
    return await _accept(request, KIND_SET, url, session, details, work)


async def delete_profile(request: web.Request) -> web.Response:
    try:
        url = response_url(request.query.get("response_url"))
    except BadProfileRequest as exc:
        raise _bad(exc) from None
    target = await _target(request)
    if isinstance(target, web.Response):
        return target
    session = target
    commands = request.app[COMMANDS]
    requester = _requester(request)

    async def work() -> dict[str, Any]:
        result = await commands.execute(
            session.charge_point_id, clear_request(session.tx_id), requester
        )
        return clear_result(result.outcome, result.status)

    return await _accept(request, KIND_CLEAR, url, session, {}, work)


def setup(app: web.Application) -> None:
    add_endpoint(app, "chargingprofiles", InterfaceRole.RECEIVER, PATH)
    path = PATH + "/{session_id}"
    add_route(app, "GET", path, get_active_profile)
    add_route(app, "PUT", path, put_profile)
    add_route(app, "DELETE", path, delete_profile)
