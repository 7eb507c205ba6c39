"""Commands module, Receiver interface: `POST /ocpi/2.2.1/commands/{command}` with one of
START_SESSION, STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION, UNLOCK_CONNECTOR, and
`POST /ocpi/2.1.1/commands/{command}` with the four 2.1.1 has (no CANCEL_RESERVATION): the
2.1.1 body is read into 2.2.1 and answered with the 2.1.1 CommandResponse (its result is
converted when it is sent: ocpi_cpo.push).

The handler only reads the request and answers what ocpi_cpo.commands decided; an unknown
command type is answered 2001. Partners' reservations are pushed as Sessions while the app
runs (ocpi_cpo.reservation_sessions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from csms.core.ocpi_commands import CommandType
from csms.core.parties import Party
from csms.core.partners import InterfaceRole, PartyRole, Role
from ocpi_cpo.commands import CommandReceiver
from ocpi_cpo.context import (
    CHARGING,
    COMMANDS,
    LIMITS,
    PARTNERS,
    PUSHER,
    RESULTS,
    SETTINGS,
    SINGLETONS,
)
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.reservation_sessions import ReservationSessions
from ocpi_cpo.transport import (
    add_endpoint,
    add_route,
    caller_of,
    read_json,
    reply,
    sender_of,
)
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import V211, V211_PATH, VERSION_PATH

PATH = f"{VERSION_PATH}/commands"
PATH_211 = f"{V211_PATH}/commands"
RECEIVER = web.AppKey("ocpi_command_receiver", CommandReceiver)
RESERVATION_SESSIONS = web.AppKey("ocpi_reservation_sessions", ReservationSessions)


async def post_command(request: web.Request) -> web.Response:
    text = request.match_info["command"]
    try:
        kind = CommandType(text)
    except ValueError:
        known = ", ".join(c.value for c in CommandType)
        raise OcpiFailure(
            Status.INVALID_PARAMETERS, f"unknown command {text!r}; one of: {known}"
        ) from None
    body = await read_json(request)
    answer = await request.app[RECEIVER].receive(
        caller_of(request).partner, kind, body, sender_of(request)
    )
    return reply(
        request,
        answer.response,
        status=answer.status,
        message=answer.message if answer.status != Status.SUCCESS else None,
        http_status=answer.http_status,
    )


async def post_command_211(request: web.Request) -> web.Response:
    text = request.match_info["command"]
    if text not in v211.COMMANDS:
        known = ", ".join(sorted(v211.COMMANDS))
        raise OcpiFailure(Status.INVALID_PARAMETERS, f"unknown command {text!r}; one of: {known}")
    partner = caller_of(request).partner
    body = await read_json(request)
    if isinstance(body, dict):
        # A 2.1.1 token carries no party: it is the partner's (2.1.1: one party).
        party = partner.roles[0] if partner.roles else PartyRole(Role.EMSP, "", "")
        body = v211.command_to_221(text, body, party)
    answer = await request.app[RECEIVER].receive(partner, CommandType(text), body, None)
    return reply(
        request,
        v211.command_response(answer.response),
        status=answer.status,
        message=answer.message if answer.status != Status.SUCCESS else None,
        http_status=answer.http_status,
    )


def setup(app: web.Application) -> None:
    add_endpoint(app, "commands", InterfaceRole.RECEIVER, PATH)
    add_route(app, "POST", PATH + "/{command}", post_command)
    add_endpoint(app, "commands", InterfaceRole.RECEIVER, PATH_211, V211)
    add_route(app, "POST", PATH_211 + "/{command}", post_command_211, version=V211)
    app.cleanup_ctx.append(_receiving)


async def _receiving(app: web.Application) -> AsyncIterator[None]:
    """The receiver (once the app's results exist) and the reservation sessions' loop, woken
    by commands and by transactions and statuses of chargers in this process."""
    settings = app[SETTINGS]
    db = app[PARTNERS].db
    receiver = CommandReceiver(
        db,
        settings,
        app[RESULTS],
        app.get(COMMANDS),
        charging := app.get(CHARGING),
        limits=app[LIMITS],
    )
    app[RECEIVER] = receiver
    publisher = ReservationSessions(
        db, settings.clock, Party(settings.country_code, settings.party_id)
    )
    app[RESERVATION_SESSIONS] = publisher
    receiver.on_reservation.append(publisher.wake)

    def wake_pusher() -> None:
        if PUSHER in app:
            app[PUSHER].wake()

    publisher.on_enqueued.append(wake_pusher)
    hooks = (
        [] if charging is None else [charging.transactions.on_started, charging.stations.on_status]
    )
    for hook in hooks:
        hook.append(publisher.wake)
    async with app[SINGLETONS].hosting(publisher.worker.name, publisher.worker.running):
        yield
    for hook in hooks:
        hook.remove(publisher.wake)
