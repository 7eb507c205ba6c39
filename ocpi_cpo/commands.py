"""OCPI commands a partner sends us (Receiver): each request is checked and answered at once
(CommandResponse); an accepted one runs as the OCPP command through the CSMS's command path
(csms.services.commands, the one `csms remote` uses) in the background, and its
CommandResult goes to the partner's response_url exactly once (ocpi_cpo.results).

Decisions (OCPI leaves them to the CPO):
- A command for an EVSE of a charger that is not connected is ACCEPTED and its result is
  EVSE_INOPERATIVE, the same as when the charger drops before answering: the eMSP learns
  why from one place, and every command to an existing EVSE leaves its trace in the audit
  log. So is every command when this server has no command path at all.
- Unknown or unpublished location, EVSE or connector: HTTP 404, status 2003, result
  REJECTED, no callback. An EVSE that lacks the capability a command needs: NOT_SUPPORTED.
- The token of START_SESSION and RESERVE_NOW is not authorized again (the eMSP vouches for
  it) but must belong to one of the caller's parties (a hub's: any party but us); it is
  stored (unless we hold a newer copy) so that the session is the eMSP's, and the charger's
  Authorize and transaction get the eMSP's decision (csms.services.authorization.expect_start).
- STOP_SESSION takes our transaction id; an unknown, ended or unpublished session is
  UNKNOWN_SESSION, one of another party's token REJECTED.
- UNLOCK_CONNECTOR of an EVSE where a session of another owner's token runs (another
  party's, ours, or a tag we do not know) is REJECTED: it would release a charging car's
  cable. With no session running, or the caller's own, it goes to the charger.
- START_SESSION and RESERVE_NOW with a token whose uid is already another owner's id token
  (the rule of csms.storage.ocpi_tokens: the first owner keeps a uid) are REJECTED.
- RESERVE_NOW and CANCEL_RESERVATION use our reservation ids on the wire; the partner's
  reservation_id is kept with ours. A RESERVE_NOW with a reservation_id the partner still
  holds replaces it (on the same charger: a ReserveNow with our id; elsewhere: the old one
  is cancelled once the new one is accepted). A CANCEL_RESERVATION of a reservation we do
  not hold (any more) is ACCEPTED with the result UNKNOWN_RESERVATION.

Parsing and mapping rules are csms.core.ocpi_commands'; the Session a reservation is shown
as, ocpi_cpo.reservation_sessions'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from csms.core.authorization import AuthStatus
from csms.core.command_requests import (
    CancelReservationRequest,
    ReserveRequest,
    StartRequest,
    StopRequest,
    UnlockRequest,
)
from csms.core.command_requests import CommandRequest as ChargerRequest
from csms.core.ocpi_commands import (
    NEEDS,
    CancelReservation,
    CommandRequest,
    CommandType,
    Evse,
    InvalidCommand,
    ReserveNow,
    ResponseType,
    ResultType,
    StartSession,
    StopSession,
    UnlockConnector,
    Unresolved,
    command_response,
    command_result,
    find_evse,
    fits_charger,
    parse_command,
    reservation_info,
    result_type,
)
from csms.core.ocpi_locations import Capability
from csms.core.ocpi_sessions import AuthMethod
from csms.core.parties import Party, audience, owner_of
from csms.core.partners import Partner
from csms.core.reservations import OPEN_STATES
from csms.core.roaming import Grant, PartnerToken, ocpp_token_type
from csms.core.versions import Limits, OcppVersion, ProtocolLimits
from csms.services.billing import FREE_CURRENCY
from csms.services.charging import Charging
from csms.services.commands import (
    MAX_TIMEOUT_S,
    CommandService,
    PartnerReservation,
    Requester,
    Vouched,
)
from csms.storage import charge_points as cp_repo
from csms.storage import locations as location_repo
from csms.storage import ocpi_evses as evse_repo
from csms.storage import ocpi_sessions as session_repo
from csms.storage import ocpi_tokens as token_repo
from csms.storage import reservations as reservation_repo
from csms.storage import tariffs as tariff_repo
from csms.storage import tokens as id_token_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, WriteTx
from ocpi_cpo.context import OcpiSettings
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.results import AsyncResults

log = structlog.get_logger("ocpi_cpo.commands")

# Beyond the wait for the charger's answer: the bookkeeping around it, so that the command
# path itself reports a silent charger (TIMEOUT) before the result's deadline does.
RESULT_GRACE_S = 5.0
# When the CSMS has no command path: how long a result is promised in.
DEFAULT_WAIT_S = 30.0

Work = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Answer:
    """The immediate answer to a command request: the CommandResponse and its envelope."""

    response: dict[str, Any]
    status: Status = Status.SUCCESS
    http_status: int = 200
    message: str | None = None


class CommandReceiver:
    """Receives the partners' commands. One per OCPI app (built once its results exist)."""

    def __init__(
        self,
        db: Database,
        settings: OcpiSettings,
        results: AsyncResults,
        commands: CommandService | None = None,
        charging: Charging | None = None,
        *,
        limits: Limits | None = None,
    ) -> None:
        self._db = db
        # Each OCPP version's limits (which token uids its chargers take).
        self._limits: Limits = limits if limits is not None else {}
        self._clock = settings.clock
        self._results = results
        self._commands = commands
        self._charging = charging
        self.us = Party(settings.country_code, settings.party_id)
        # Called when a reservation of a partner may have changed (the reservation
        # sessions' wake).
        self.on_reservation: list[Callable[[], None]] = []

    @property
    def wait_s(self) -> float:
        """How long the charger has to answer."""
        wait = self._commands.default_timeout if self._commands is not None else DEFAULT_WAIT_S
        return min(wait, MAX_TIMEOUT_S)

    @property
    def timeout_s(self) -> float:
        """The timeout we promise: the result is POSTed within it."""
        return self.wait_s + RESULT_GRACE_S

    # --- the requests ---------------------------------------------------------------------

    async def receive(
        self, partner: Partner, kind: CommandType, body: Any, sender: Party | None = None
    ) -> Answer:
        """Check one command request and, when it can go to a charger, start it. `sender` is
        the party the request said it came from (its result is routed back to it)."""
        try:
            request = parse_command(kind, body)
        except InvalidCommand as exc:
            raise OcpiFailure(Status.INVALID_PARAMETERS, str(exc)) from None
        answer = await self._dispatch(partner, kind, request, body, sender)
        (log.info if answer.response["result"] == "ACCEPTED" else log.warning)(
            "ocpi_command_answered",
            command=kind.value,
            result=answer.response["result"],
            ocpi_status=int(answer.status),
            detail=answer.message,
        )
        return answer

    async def _dispatch(
        self,
        partner: Partner,
        kind: CommandType,
        request: CommandRequest,
        body: Mapping[str, Any],
        sender: Party | None,
    ) -> Answer:
        match request:
            case StartSession():
                return await self._start(partner, request, body, sender)
            case StopSession():
                return await self._stop(partner, request, body, sender)
            case ReserveNow():
                return await self._reserve(partner, request, body, sender)
            case CancelReservation():
                return await self._cancel(partner, request, body, sender)
            case UnlockConnector():
                return await self._unlock(partner, request, body, sender)
        raise AssertionError(kind)  # pragma: no cover

    async def _start(
        self, partner: Partner, req: StartSession, body: Mapping[str, Any], sender: Party | None
    ) -> Answer:
        kind = CommandType.START_SESSION
        refused = await self._foreign_token(partner, req.token)
        if refused is not None:
            return refused
        found = await self._evse_at(partner, req.location_id, req.evse_uid, NEEDS[kind])
        if isinstance(found, Answer):
            return found
        _, evse = found
        if (
            req.connector_id is not None
            and evse.connector(req.connector_id, exact=partner.profile.case_sensitive_ids) is None
        ):
            return self._unknown(f"unknown connector {req.connector_id!r} of EVSE {evse.uid!r}")
        cp_id = evse.charge_point_id
        limits = await self._charger_limits(cp_id)
        if not fits_charger(req.token.uid, limits):
            return self._too_long(req.token.uid, limits)
        await self._keep_token(partner, req.token)
        grant = Grant(
            AuthStatus.ACCEPTED,
            AuthMethod.COMMAND,
            req.token.cdr_token(),
            req.authorization_reference,
            reason="START_SESSION",
        )
        if self._charging is not None:
            # Before the command goes out: the charger may start late, even after a timeout.
            await self._charging.authorization.expect_start(
                cp_id, req.token.uid, evse.evse_id, grant
            )
        vouched = self._vouched(req.token, limits)
        start = StartRequest(req.token.uid, evse.evse_id)
        return await self._accept(
            partner,
            sender,
            kind,
            req.response_url,
            body,
            cp_id,
            lambda: self._run(kind, cp_id, start, partner, vouched),
        )

    async def _stop(
        self, partner: Partner, req: StopSession, body: Mapping[str, Any], sender: Party | None
    ) -> Answer:
        kind = CommandType.STOP_SESSION
        unknown = self._refuse(ResponseType.UNKNOWN_SESSION, f"no session {req.session_id!r}")
        if not req.session_id.isdigit():
            return unknown
        async with self._db.read() as conn:
            row = await session_repo.session_of(conn, int(req.session_id))
            linked = (
                None
                if row is None
                else await location_repo.of_charger(conn, row.tx.charge_point_id)
            )
        if row is None or linked is None or not linked[0].publish:
            return unknown
        if not row.tx.active:
            return self._refuse(
                ResponseType.UNKNOWN_SESSION, f"session {req.session_id!r} has already ended"
            )
        if not audience(partner.roles, self.us).sees(owner_of(row.origin)):
            return self._refuse(
                ResponseType.REJECTED, f"session {req.session_id!r} is not one of your tokens'"
            )
        cp_id = row.tx.charge_point_id
        stop = StopRequest(row.tx.id)
        return await self._accept(
            partner,
            sender,
            kind,
            req.response_url,
            body,
            cp_id,
            lambda: self._run(kind, cp_id, stop, partner),
        )

    async def _reserve(
        self, partner: Partner, req: ReserveNow, body: Mapping[str, Any], sender: Party | None
    ) -> Answer:
        kind = CommandType.RESERVE_NOW
        refused = await self._foreign_token(partner, req.token)
        if refused is not None:
            return refused
        found = await self._evse_at(partner, req.location_id, req.evse_uid, NEEDS[kind])
        if isinstance(found, Answer):
            return found
        location_id, evse = found
        cp_id = evse.charge_point_id
        now = self._clock()
        if req.expiry_date <= now:
            return self._refuse(ResponseType.REJECTED, "expiry_date is in the past")
        limits = await self._charger_limits(cp_id)
        if not fits_charger(req.token.uid, limits):
            return self._too_long(req.token.uid, limits)
        async with self._db.read() as conn:
            held = await reservation_repo.of_partner(conn, partner.id, req.reservation_id)
            currency = await _currency(conn, evse)
        previous = None
        if held is not None and held.reservation.state in OPEN_STATES:
            previous = held.reservation
        await self._keep_token(partner, req.token)
        info = reservation_info(
            location_id=location_id,
            evse=evse,
            token=req.token,
            authorization_reference=req.authorization_reference,
            currency=currency,
        )
        same_charger = previous is not None and previous.charge_point_id == cp_id
        replaces = previous.id if previous is not None and same_charger else None
        evse_id = evse.evse_id if req.evse_uid is not None else None
        grant = Grant(
            AuthStatus.ACCEPTED,
            AuthMethod.COMMAND,
            req.token.cdr_token(),
            req.authorization_reference,
            reason="RESERVE_NOW",
        )
        if self._charging is not None:
            ttl = (req.expiry_date - now).total_seconds()
            await self._charging.authorization.expect_start(
                cp_id, req.token.uid, evse_id, grant, ttl_s=ttl
            )
        vouched = self._vouched(
            req.token,
            limits,
            PartnerReservation(partner.id, req.reservation_id, info, replaces),
        )
        reserve = ReserveRequest(req.token.uid, req.expiry_date, evse_id)
        moved_from = previous if previous is not None and not same_charger else None

        async def work() -> dict[str, Any]:
            out = await self._run(kind, cp_id, reserve, partner, vouched)
            if out["result"] == ResultType.ACCEPTED.value and moved_from is not None:
                # The reservation moved to another charger: the old one lets go.
                await self._run(
                    CommandType.CANCEL_RESERVATION,
                    moved_from.charge_point_id,
                    CancelReservationRequest(moved_from.id),
                    partner,
                )
            self._reservation_changed()
            return out

        return await self._accept(partner, sender, kind, req.response_url, body, cp_id, work)

    async def _cancel(
        self,
        partner: Partner,
        req: CancelReservation,
        body: Mapping[str, Any],
        sender: Party | None,
    ) -> Answer:
        kind = CommandType.CANCEL_RESERVATION
        async with self._db.read() as conn:
            held = await reservation_repo.of_partner(conn, partner.id, req.reservation_id)
        if held is None or held.reservation.state not in OPEN_STATES:
            state = "unknown" if held is None else held.reservation.state.value.lower()
            message = f"reservation {req.reservation_id!r} is {state}"

            async def unknown() -> dict[str, Any]:
                return command_result(ResultType.UNKNOWN_RESERVATION, message)

            cp = None if held is None else held.reservation.charge_point_id
            return await self._accept(partner, sender, kind, req.response_url, body, cp, unknown)
        reservation = held.reservation
        cp_id = reservation.charge_point_id
        cancel = CancelReservationRequest(reservation.id)

        async def work() -> dict[str, Any]:
            out = await self._run(kind, cp_id, cancel, partner)
            self._reservation_changed()
            return out

        return await self._accept(partner, sender, kind, req.response_url, body, cp_id, work)

    async def _unlock(
        self,
        partner: Partner,
        req: UnlockConnector,
        body: Mapping[str, Any],
        sender: Party | None,
    ) -> Answer:
        kind = CommandType.UNLOCK_CONNECTOR
        found = await self._evse_at(partner, req.location_id, req.evse_uid, NEEDS[kind])
        if isinstance(found, Answer):
            return found
        _, evse = found
        if evse.connector(req.connector_id, exact=partner.profile.case_sensitive_ids) is None:
            return self._unknown(f"unknown connector {req.connector_id!r} of EVSE {evse.uid!r}")
        cp_id = evse.charge_point_id
        async with self._db.read() as conn:
            running = await tx_repo.active_on_evse(conn, cp_id, evse.evse_id)
            row = None if running is None else await session_repo.session_of(conn, running.id)
        if row is not None and not audience(partner.roles, self.us).sees(owner_of(row.origin)):
            # Unlocking lets go of the cable of a car that is charging: only for the party
            # whose customer it is (the spec's REJECTED: "Session might not be from a
            # customer of the eMSP that send this request"). Who charges is not said.
            log.warning(
                "ocpi_unlock_refused",
                ocpi_partner=partner.name,
                charge_point_id=cp_id,
                evse_id=evse.evse_id,
                transaction_id=row.tx.id,
                session_owner=row.origin or "unknown tag",
            )
            return self._refuse(
                ResponseType.REJECTED,
                f"connector {req.connector_id!r} of EVSE {evse.uid!r} is in use by a session "
                "that is not one of your tokens'",
            )
        unlock = UnlockRequest(evse.evse_id)
        return await self._accept(
            partner,
            sender,
            kind,
            req.response_url,
            body,
            cp_id,
            lambda: self._run(kind, cp_id, unlock, partner),
        )

    # --- shared steps -----------------------------------------------------------------------

    async def _accept(
        self,
        partner: Partner,
        sender: Party | None,
        kind: CommandType,
        response_url: str,
        body: Mapping[str, Any],
        cp_id: str | None,
        work: Work,
    ) -> Answer:
        """Store the request and start its work; its result goes to `response_url`."""
        timeout = self.timeout_s
        request_id = await self._results.open(
            partner_id=partner.id,
            reply_to=sender,
            kind=kind.value,
            response_url=response_url,
            request=dict(body),
            charge_point_id=cp_id,
            timeout_s=timeout,
        )
        self._results.run(request_id, kind.value, work, timeout)
        log.info(
            "ocpi_command_accepted",
            command=kind.value,
            charge_point_id=cp_id,
            request_id=request_id,
        )
        return Answer(command_response(ResponseType.ACCEPTED, timeout))

    async def _run(
        self,
        kind: CommandType,
        cp_id: str,
        request: ChargerRequest,
        partner: Partner,
        vouched: Vouched | None = None,
    ) -> dict[str, Any]:
        """The OCPP command to its end, as a CommandResult."""
        if self._commands is None:
            return command_result(
                ResultType.EVSE_INOPERATIVE, "chargers cannot be reached from this server"
            )
        result = await self._commands.execute(
            cp_id,
            request,
            Requester("ocpi", partner.name),
            self.wait_s,
            vouched=vouched,
        )
        return command_result(result_type(kind, result.outcome, result.status), result.message)

    async def _evse_at(
        self, partner: Partner, location_id: str, uid: str | None, capability: Capability | None
    ) -> tuple[str, Evse] | Answer:
        """The published location's id and the EVSE a command goes to, or the answer why
        there is none. Ids match in any case (CiString) unless the partner's profile
        compares them as sent."""
        exact = partner.profile.case_sensitive_ids
        async with self._db.read() as conn:
            location = await location_repo.get_any_case(conn, location_id)
            if location is not None and exact and location.id != location_id:
                location = None
            if location is None or not location.publish:
                return self._unknown(f"unknown location {location_id!r}")
            published = (await evse_repo.at_locations(conn, [location.id]))[location.id]
        evses = [
            Evse.from_published(e.charge_point_id, e.evse_id, {**e.data, "status": e.status})
            for e in published
        ]
        found = find_evse(evses, uid, capability, exact=exact)
        if found is Unresolved.UNKNOWN:
            what = f"EVSE {uid!r}" if uid is not None else "EVSE"
            return self._unknown(f"unknown {what} at location {location.id!r}")
        if found is Unresolved.NOT_SUPPORTED:
            able = capability.value if capability is not None else "that"
            return self._refuse(ResponseType.NOT_SUPPORTED, f"the EVSE is not {able}")
        assert isinstance(found, Evse)
        return location.id, found

    async def _foreign_token(self, partner: Partner, token: PartnerToken) -> Answer | None:
        """REJECTED when the token is not of one of the caller's parties, or when its uid is
        already another owner's id token (ours, or a party's that stored it first: that one
        authorizes the uid at our chargers, and the session would be shown as its)."""
        if not audience(partner.roles, self.us).sees(token.party):
            return self._refuse(
                ResponseType.REJECTED, f"token of {token.party} is not yours to use"
            )
        async with self._db.read() as conn:
            held = await id_token_repo.get(conn, token.uid)
        if held is None or held.origin == str(token.party):
            return None
        log.warning(
            "token_uid_conflict",
            uid=token.uid,
            claimed_by=str(token.party),
            held_by=held.origin,
            ocpi_partner=partner.name,
            detail="a command vouches for a uid another owner holds; refused",
        )
        return self._refuse(
            ResponseType.REJECTED,
            f"token uid {token.uid!r} is another owner's at our chargers (see `csms tokens "
            "conflicts` on our side); use a token of your own",
        )

    async def _charger_limits(self, cp_id: str) -> ProtocolLimits | None:
        """The limits of the charger's OCPP version; None before it told us its version."""
        async with self._db.read() as conn:
            charger = await cp_repo.get(conn, cp_id)
        version = None if charger is None else OcppVersion.of(charger.ocpp_version)
        return None if version is None else self._limits.get(version)

    def _too_long(self, uid: str, limits: ProtocolLimits | None) -> Answer:
        version = None if limits is None else limits.version
        return self._refuse(
            ResponseType.REJECTED,
            f"token uid {uid!r} is longer than an OCPP {version} charger takes",
        )

    def _vouched(
        self,
        token: PartnerToken,
        limits: ProtocolLimits | None,
        reservation: PartnerReservation | None = None,
    ) -> Vouched:
        group = token.group_id
        if group is not None and not fits_charger(group, limits):
            group = None  # no parent the charger could take
        return Vouched(ocpp_token_type(token.type), group, reservation)

    async def _keep_token(self, partner: Partner, token: PartnerToken) -> None:
        """Store the command's token unless we hold the same or a newer copy: sessions with
        it are then the eMSP's."""
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            stored = await token_repo.get(conn, token.party, token.uid, token.type)
            if stored is None or stored.last_updated < token.last_updated:
                await token_repo.save(conn, token, partner.id, now)

        await self._db.write(unit)

    def _reservation_changed(self) -> None:
        for hook in self.on_reservation:
            hook()

    def _refuse(self, result: ResponseType, message: str) -> Answer:
        return Answer(command_response(result, self.timeout_s, message), message=message)

    def _unknown(self, message: str) -> Answer:
        """HTTP 404 + 2003 with REJECTED: the command names no location, EVSE or connector of
        ours."""
        return Answer(
            command_response(ResponseType.REJECTED, self.timeout_s, message),
            Status.UNKNOWN_LOCATION,
            404,
            message,
        )


async def _currency(conn: Any, evse: Evse) -> str:
    """The currency of the EVSE's tariff (the first that names one), else the free one."""
    for tariff_id in evse.currency_tariffs:
        stored = await tariff_repo.get(conn, tariff_id)
        currency = None if stored is None else stored.data.get("currency")
        if isinstance(currency, str) and len(currency) == 3:
            return currency
    return FREE_CURRENCY
