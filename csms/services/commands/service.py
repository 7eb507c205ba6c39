"""The command path (csms remote, the operator API, OCPI): a typed request checked, handed to
its family to resolve, sent over the charger's live connection (several messages one after
the other when it takes several), the answer interpreted, the audit log kept.

The families (.remote, .control, .configuration, .reservations, .local_lists, .profiles,
.firmware, .certificates) hold each command's rules; the wire format belongs to the version
adapters.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

import structlog

from csms.core.charger import RegistrationStatus
from csms.core.clock import Clock
from csms.core.command_requests import (
    AvailabilityRequest,
    CancelReservationRequest,
    CertificateDeleteRequest,
    CertificateInstallRequest,
    CertificateListRequest,
    CertificateRenewRequest,
    CertificateSignedRequest,
    ClearCacheRequest,
    CommandRequest,
    ConfigGetRequest,
    ConfigSetRequest,
    DataTransferRequest,
    DiagnosticsRequest,
    FirmwareRequest,
    LocalListSendRequest,
    LocalListVersionRequest,
    ProfileClearRequest,
    ProfileCompositeRequest,
    ProfileSetRequest,
    ReserveRequest,
    ResetRequest,
    StartRequest,
    StopRequest,
    TriggerRequest,
    UnlockRequest,
    parse_request,
)
from csms.core.commands import (
    Answer,
    ChargerBusy,
    ChargerCallError,
    ClearChargingProfile,
    CommandName,
    CommandRecord,
    CommandRefused,
    CommandResult,
    Outcome,
    RoutedCommand,
    SetChargingProfile,
)
from csms.core.versions import Limits
from csms.core.waiting import wait_event
from csms.metrics import Metrics
from csms.services.charging import Charging
from csms.services.commands.base import (
    Channels,
    Order,
    Prepared,
    Requester,
    Router,
    Vouched,
)
from csms.services.commands.certificates import prepare as prepare_certificates
from csms.services.commands.configuration import Configuration
from csms.services.commands.control import prepare as prepare_control
from csms.services.commands.firmware import FirmwareAndLogs
from csms.services.commands.local_lists import LocalLists
from csms.services.commands.profiles import ChargingProfiles
from csms.services.commands.remote import RemoteStartStop
from csms.services.commands.reservations import Reservations
from csms.storage import commands as command_repo
from csms.storage import nodes as node_repo
from csms.storage.database import Database, WriteTx

log = structlog.get_logger("csms.commands")

MAX_TIMEOUT_S = 600.0
# Who asks when nobody says: an API client.
ANYONE = Requester()

# What staff may send to a charger that is still Pending (configure it, make it boot again);
# a Rejected charger gets nothing (OCPP: the CSMS does not initiate messages to it).
_WHILE_PENDING = frozenset(
    {
        CommandName.CONFIG_GET,
        CommandName.CONFIG_SET,
        CommandName.TRIGGER,
        CommandName.DATA_TRANSFER,
        CommandName.RESET,
    }
)


class CommandService:
    """Sends commands to chargers connected to this process (with a `router`, to those
    other nodes on the same database hold, through them) and records each one.
    `limits`: each OCPP version's, as its adapter states them."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        charging: Charging,
        channels: Channels,
        limits: Limits,
        *,
        default_timeout: float = 30.0,
        metrics: Metrics | None = None,
        router: Router | None = None,
    ) -> None:
        if not limits:
            raise ValueError("the limits of at least one OCPP version are needed")
        self._db = db
        self._clock = clock
        self._charging = charging
        self._channels = channels
        self._limits = limits
        self.default_timeout = default_timeout
        self._metrics = metrics
        # Other nodes on the same database (PostgreSQL): a command for a charger one of
        # them holds is sent there.
        self._router = router
        self._remote = RemoteStartStop(db, clock, charging)
        self._configuration = Configuration(db, clock)
        self._reservations = Reservations(db, clock, charging)
        self._local_lists = LocalLists(db, clock)
        self._profiles = ChargingProfiles(db, clock)
        self._firmware = FirmwareAndLogs(clock)
        # Marks reservations Expired when their time comes (started by the app).
        self.reservations = self._reservations.worker

    # --- requests ----------------------------------------------------------------------

    def parse(self, name: CommandName, raw: Mapping[str, Any]) -> CommandRequest:
        """The request the JSON parameters `raw` stand for (CommandRefused: why not), checked
        as far as it can be without the charger."""
        return parse_request(name, raw, self._clock(), self._limits.values())

    async def refuse(
        self,
        cp_id: str,
        name: CommandName,
        params: Mapping[str, Any],
        requester: Requester,
        reason: str,
    ) -> CommandResult:
        """Record a command whose parameters were refused (as `parse` says) and say so."""
        entry_id = await self._open_entry(cp_id, name, dict(params), requester)
        return await self._finish(entry_id, cp_id, name, None, Outcome.INVALID, None, reason)

    # --- running a command -----------------------------------------------------------

    async def execute(
        self,
        cp_id: str,
        request: CommandRequest,
        requester: Requester = ANYONE,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the charger's answer
        *,
        vouched: Vouched | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> CommandResult:
        """Run one command to its end: never raises for anything the charger or the caller
        did; the result says what happened, and the audit log has it. `vouched`: the token
        of a start or reservation is another party's, which answers for it. `params`: the
        parameters as the client sent them, for the audit log (default: the request's JSON
        form)."""
        name = request.name
        audited = dict(request.params() if params is None else params)
        wait = min(timeout or self.default_timeout, MAX_TIMEOUT_S)
        router = self._router
        if router is not None and self._channels(cp_id) is None:
            # Another node may hold the charger: a valid request is stored for it there.
            holder = await router.holder(cp_id)
            if holder is not None and holder != router.node_id:
                try:
                    checked = self.parse(name, request.params())
                except CommandRefused:
                    pass  # refused below, as for a charger held here
                else:
                    return await self._send_elsewhere(
                        cp_id, checked, audited, requester, wait, vouched, holder
                    )
        entry_id = await self._open_entry(cp_id, name, audited, requester)
        return await self._run(entry_id, cp_id, request, requester, wait, vouched, None)

    async def run_routed(self, entry_id: int) -> None:
        """Send a command another node stored for a charger held here (its audit entry,
        taken up here so that it runs once), record the answer and tell that node."""
        router = self._router
        assert router is not None, "routed commands need the cluster"

        async def unit(w: WriteTx) -> RoutedCommand | None:
            return await command_repo.claim(await w.connection(), entry_id, router.node_id)

        routed = await self._db.write(unit)
        if routed is None:
            return  # taken up already, or given up by the node that asked
        log.info(
            "command_taken_up",
            charge_point_id=routed.charge_point_id,
            command=routed.command.value,
            command_id=entry_id,
            origin_node=routed.origin_node,
        )
        vouched = None if routed.vouched is None else Vouched.from_json(routed.vouched)
        try:
            request = self.parse(routed.command, routed.request)
        except CommandRefused as exc:
            await self._finish(
                entry_id,
                routed.charge_point_id,
                routed.command,
                None,
                Outcome.INVALID,
                None,
                str(exc),
                reply_to=routed.origin_node,
            )
            return
        await self._run(
            entry_id,
            routed.charge_point_id,
            request,
            Requester(routed.source, routed.requested_by),
            routed.timeout or self.default_timeout,
            vouched,
            routed.origin_node,
        )

    async def _run(
        self,
        entry_id: int,
        cp_id: str,
        request: CommandRequest,
        requester: Requester,
        wait: float,
        vouched: Vouched | None,
        reply_to: str | None,
    ) -> CommandResult:
        """Send the command of an open audit entry over this node's connection to the
        charger. `reply_to`: the node that routed it here, told when it is done."""
        name = request.name
        finish = functools.partial(self._finish, reply_to=reply_to)
        try:
            # Bad parameters are said as such, whether or not the charger is connected. A
            # request built in code is held to the same rules as one from the API: through
            # its JSON form.
            request = self.parse(name, request.params())
        except CommandRefused as exc:
            return await finish(entry_id, cp_id, name, None, Outcome.INVALID, None, str(exc))
        channel = self._channels(cp_id)
        action: str | None = None
        prepared: Prepared | None = None
        try:
            if channel is None:
                known = await self._charging.stations.charge_point(cp_id)
                message = "not connected" if known else f"not connected (unknown charger {cp_id!r})"
                return await finish(
                    entry_id, cp_id, name, None, Outcome.NOT_CONNECTED, None, message
                )
            registration = channel.registration
            if registration is not RegistrationStatus.ACCEPTED and not (
                registration is RegistrationStatus.PENDING and name in _WHILE_PENDING
            ):
                state = "not booted yet" if registration is None else registration.value
                raise CommandRefused(f"the charger's registration is {state}")
            order = Order(
                cp_id,
                entry_id,
                requester,
                channel,
                self._limits[channel.version],
                wait,
                vouched,
            )
            prepared = await self._prepare(request, order)
            action, payload = channel.encode_command(prepared.command)
        except CommandRefused as exc:
            if prepared is not None and prepared.failed is not None:
                await prepared.failed()
            return await finish(entry_id, cp_id, name, action, Outcome.INVALID, None, str(exc))
        log.info(
            "command_sent",
            charge_point_id=cp_id,
            command=name.value,
            action=action,
            command_id=entry_id,
            source=requester.source,
        )
        steps = [prepared.command, *prepared.more]
        for index, command in enumerate(steps):
            if index:  # later parts of a command sent in several messages (local lists)
                action, payload = channel.encode_command(command)
            part = f"message {index + 1} of {len(steps)}: " if len(steps) > 1 else ""
            try:
                raw = await channel.call(action, payload, wait)
            except ChargerBusy:
                outcome, status = Outcome.TIMED_OUT, None
                message = (
                    f"timed out after {wait:g} s: not sent, an earlier command to this "
                    "charger was still waiting for its answer"
                )
            except TimeoutError:
                outcome, status = Outcome.TIMED_OUT, None
                message = f"timed out: no answer from the charger within {wait:g} s"
            except ChargerCallError as exc:
                outcome, status = Outcome.CALL_ERROR, exc.code
                message = f"CALLERROR {exc.code}: {exc.description or '(no description)'}"
            except ConnectionError:
                outcome, status = Outcome.NOT_CONNECTED, None
                message = "not connected: the charger disconnected before answering"
            else:
                answer = channel.decode_answer(command, action, raw)
                if answer.ok and index + 1 < len(steps):
                    continue
                if prepared.after is not None and (answer.ok or index == 0):
                    await prepared.after(answer)
                outcome = Outcome.ACCEPTED if answer.ok else Outcome.REJECTED
                return await finish(
                    entry_id,
                    cp_id,
                    name,
                    action,
                    outcome,
                    answer.status,
                    part * (not answer.ok) + _describe(answer, prepared.data),
                    data={**prepared.data, **answer.data},
                    raw=raw,
                )
            if prepared.failed is not None:
                await prepared.failed()
            return await finish(
                entry_id, cp_id, name, action, outcome, status, part + message, data=prepared.data
            )
        raise AssertionError("a command has at least one message")  # pragma: no cover

    def holds(self, cp_id: str) -> bool:
        """Whether this node holds a connection to the charger."""
        return self._channels(cp_id) is not None

    async def tell(
        self,
        cp_id: str,
        command: SetChargingProfile | ClearChargingProfile,
        wait: float,
    ) -> tuple[Outcome, str | None]:
        """Send a profile the CSMS decides by itself, many times a day (the load manager's
        shares), over this node's connection: no audit entry and no stored profile (its
        sender keeps what the charger accepted). The outcome and the charger's status;
        NOT_CONNECTED when the charger is not held here or has not booted."""
        channel = self._channels(cp_id)
        if channel is None or channel.registration is not RegistrationStatus.ACCEPTED:
            return Outcome.NOT_CONNECTED, None
        action, payload = channel.encode_command(command)
        try:
            raw = await channel.call(action, payload, wait)
        except (ChargerBusy, TimeoutError):
            return Outcome.TIMED_OUT, None
        except ChargerCallError as exc:
            return Outcome.CALL_ERROR, exc.code
        except ConnectionError:
            return Outcome.NOT_CONNECTED, None
        answer = channel.decode_answer(command, action, raw)
        return (Outcome.ACCEPTED if answer.ok else Outcome.REJECTED), answer.status

    async def _send_elsewhere(
        self,
        cp_id: str,
        request: CommandRequest,
        audited: dict[str, Any],
        requester: Requester,
        wait: float,
        vouched: Vouched | None,
        holder: str,
    ) -> CommandResult:
        """Have node `holder` send the command: its audit entry is opened with what that
        node needs, and the node notified with the entry's id, in one transaction; the
        answer is read back from the entry. A node that does not take it up within the
        pickup time (dead, unreachable) leaves the command "not connected"; one that took
        it up and never finished leaves it timed out once the charger's time is over."""
        router = self._router
        assert router is not None
        name = request.name
        now = self._clock()

        async def route(w: WriteTx) -> int:
            conn = await w.connection()
            entry_id = await command_repo.open_entry(
                conn,
                cp_id=cp_id,
                command=name.value,
                params=audited,
                source=requester.source,
                requested_by=requester.name,
                now=now,
            )
            await command_repo.route(
                conn,
                entry_id,
                request=request.params(),
                timeout_s=wait,
                vouched=None if vouched is None else vouched.to_json(),
                origin=router.node_id,
                target=holder,
            )
            payload = node_repo.message(node_repo.RUN, id=entry_id)
            await node_repo.notify(conn, holder, payload)
            return entry_id

        entry_id = await self._db.write(route)
        # No await since the commit: the holder's answer cannot have come yet (and one
        # that got lost is found by reading the entry).
        done = router.expect(entry_id)
        try:
            log.info(
                "command_routed",
                charge_point_id=cp_id,
                command=name.value,
                command_id=entry_id,
                source=requester.source,
                node=holder,
            )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + router.pickup_timeout
            taken_up = False
            while True:
                remaining = deadline - loop.time()
                if remaining > 0:
                    # Checked at least every second: a lost notification costs a second.
                    await wait_event(done, min(1.0, remaining))
                    done.clear()
                else:
                    ended = await self._end_routed(
                        entry_id, cp_id, name, holder, wait, taken_up=taken_up
                    )
                    if ended is not None:
                        return ended
                    if not taken_up:
                        # Taken up in time: the charger's own deadline runs there, then
                        # the answer is recorded.
                        taken_up = True
                        deadline = loop.time() + wait + router.pickup_timeout
                async with self._db.read() as conn:
                    result = await command_repo.result_of(conn, entry_id)
                if result is not None:
                    (log.info if result.outcome.ok else log.warning)(
                        "command_finished",
                        charge_point_id=cp_id,
                        command=name.value,
                        action=result.action,
                        command_id=entry_id,
                        outcome=result.outcome.value,
                        status=result.status,
                        detail=result.message,
                        node=holder,
                    )
                    return result
        finally:
            router.forget(entry_id)

    async def _end_routed(
        self,
        entry_id: int,
        cp_id: str,
        name: CommandName,
        holder: str,
        wait: float,
        *,
        taken_up: bool,
    ) -> CommandResult | None:
        """End a routed command that node `holder` did not take up in time (not
        connected) or did not finish in time (timed out); None when it did meanwhile."""
        if taken_up:
            outcome = Outcome.TIMED_OUT
            message = f"timed out: node {holder} sent no answer within {wait:g} s"
        else:
            outcome = Outcome.NOT_CONNECTED
            pickup = 0.0 if self._router is None else self._router.pickup_timeout
            message = (
                f"not connected: node {holder}, which holds the charger, did not take the "
                f"command up within {pickup:g} s"
            )
        now = self._clock()

        async def unit(w: WriteTx) -> bool:
            return await command_repo.end_unless(
                await w.connection(),
                entry_id,
                outcome=outcome.value,
                message=message,
                now=now,
                taken_up=taken_up,
            )

        if not await self._db.write(unit):
            return None
        if self._metrics is not None:
            self._metrics.command(name.value, outcome.value)
        log.warning(
            "command_finished",
            charge_point_id=cp_id,
            command=name.value,
            action=None,
            command_id=entry_id,
            outcome=outcome.value,
            status=None,
            detail=message,
            node=holder,
        )
        return CommandResult(entry_id, cp_id, name, None, outcome, None, message)

    async def _prepare(self, request: CommandRequest, order: Order) -> Prepared:
        """The family of `request` resolves it into what goes on the wire."""
        match request:
            case StartRequest() | StopRequest():
                return await self._remote.prepare(request, order)
            case (
                ResetRequest()
                | UnlockRequest()
                | AvailabilityRequest()
                | TriggerRequest()
                | ClearCacheRequest()
                | DataTransferRequest()
            ):
                return prepare_control(request, order)
            case ConfigGetRequest() | ConfigSetRequest():
                return self._configuration.prepare(request, order)
            case ReserveRequest() | CancelReservationRequest():
                return await self._reservations.prepare(request, order)
            case LocalListSendRequest() | LocalListVersionRequest():
                return await self._local_lists.prepare(request, order)
            case FirmwareRequest() | DiagnosticsRequest():
                return self._firmware.prepare(request, order)
            case ProfileSetRequest() | ProfileClearRequest() | ProfileCompositeRequest():
                return await self._profiles.prepare(request, order)
            case (
                CertificateInstallRequest()
                | CertificateListRequest()
                | CertificateDeleteRequest()
                | CertificateRenewRequest()
                | CertificateSignedRequest()
            ):
                return prepare_certificates(request, order)

    # --- the audit log ---------------------------------------------------------------

    async def _open_entry(
        self, cp_id: str, name: CommandName, params: dict[str, Any], requester: Requester
    ) -> int:
        now = self._clock()

        async def unit(w: WriteTx) -> int:
            return await command_repo.open_entry(
                await w.connection(),
                cp_id=cp_id,
                command=name.value,
                params=params,
                source=requester.source,
                requested_by=requester.name,
                now=now,
            )

        return await self._db.write(unit)

    async def _finish(
        self,
        entry_id: int,
        cp_id: str,
        name: CommandName,
        action: str | None,
        outcome: Outcome,
        status: str | None,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        reply_to: str | None = None,
    ) -> CommandResult:
        """Record how a command ended; `reply_to`: the node that routed it here, told in
        the same transaction (it reads the result, data included, from the entry)."""
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            await command_repo.close_entry(
                conn,
                entry_id,
                action=action,
                outcome=outcome.value,
                status=status,
                message=message,
                answer=raw,
                params=None,
                now=now,
                result=None if reply_to is None else dict(data or {}),
            )
            if reply_to is not None:
                payload = node_repo.message(node_repo.DONE, id=entry_id)
                await node_repo.notify(conn, reply_to, payload)

        await self._db.write(unit)
        if self._metrics is not None:
            self._metrics.command(name.value, outcome.value)
        (log.info if outcome.ok else log.warning)(
            "command_finished",
            charge_point_id=cp_id,
            command=name.value,
            action=action,
            command_id=entry_id,
            outcome=outcome.value,
            status=status,
            detail=message,
        )
        return CommandResult(
            entry_id, cp_id, name, action, outcome, status, message, dict(data or {})
        )

    async def history(self, cp_id: str | None = None, limit: int = 100) -> list[CommandRecord]:
        async with self._db.read() as conn:
            return await command_repo.recent(conn, cp_id=cp_id, limit=limit)


_NOTES = {
    "Scheduled": "takes effect when the running transaction ends",
    "RebootRequired": "the new value applies after a reboot",
}


def _describe(answer: Answer, data: Mapping[str, Any]) -> str:
    """One line for people: the charger's word, what it means, the ids we allocated."""
    text = answer.status
    note = _NOTES.get(answer.status)
    if note:
        text += f": {note}"
    if answer.reason:
        text += f" ({answer.reason})"
    facts = []
    for key, label in (
        ("remote_start_id", "remoteStartId"),
        ("reservation_id", "reservation"),
        ("profile_id", "profile"),
        ("list_version", "list version"),
        ("request_id", "request"),
        ("hash_data", "certificate"),
    ):
        if key in data:
            facts.append(f"{label} {data[key]}")
    if facts and answer.ok:
        text += " [" + ", ".join(facts) + "]"
    return text
