"""Commands to chargers (csms remote, the operator API, OCPI): check and resolve the request,
send it over the charger's live connection, interpret the answer, keep the audit log.

The wire format belongs to the version adapters; this module sees only csms.core commands.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from csms.core.authorization import AuthResult, AuthStatus, decide
from csms.core.bounds import INT32_MAX, OutOfBounds, bounded_int, bounded_int_text, bounded_time
from csms.core.charger import RegistrationStatus
from csms.core.clock import Clock, format_timestamp, parse_timestamp
from csms.core.commands import (
    MAX_PERIODS,
    Answer,
    CancelReservation,
    ChangeAvailability,
    ChargerBusy,
    ChargerCallError,
    ChargingProfile,
    ClearCache,
    ClearChargingProfile,
    Command,
    CommandName,
    CommandRecord,
    CommandRefused,
    CommandResult,
    DataTransfer,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetLocalListLimits,
    GetLocalListVersion,
    LocalListEntry,
    Outcome,
    ProfilePurpose,
    RemoteStart,
    RemoteStop,
    Reserve,
    Reset,
    SchedulePeriod,
    SendLocalList,
    SetChargingProfile,
    SetConfiguration,
    Trigger,
    Unlock,
    UpdateFirmware,
    VariableKey,
    check_trigger,
    trigger_name,
)
from csms.core.ids import token_key
from csms.core.reservations import OPEN_STATES, ReservationState, check_start
from csms.core.roaming import offline_usable
from csms.metrics import Metrics
from csms.services.charging import Charging
from csms.storage import charging_profiles as profile_repo
from csms.storage import commands as command_repo
from csms.storage import device_model as device_repo
from csms.storage import local_lists as list_repo
from csms.storage import reservations as reservation_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.database import Database, WriteTx
from csms.workers import Worker

log = structlog.get_logger("csms.commands")

MAX_TIMEOUT_S = 600.0
# Local lists up to this size go in one SendLocalList without asking the charger its limits.
SAFE_LIST_MESSAGE = 20

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


class ChargerChannel(Protocol):
    """A charger's live connection as commands see it (csms.handlers.OcppSession)."""

    @property
    def version(self) -> str: ...

    @property
    def registration(self) -> RegistrationStatus | None: ...

    def encode_command(self, command: Command) -> tuple[str, dict[str, Any]]: ...

    def decode_answer(self, command: Command, action: str, answer: dict[str, Any]) -> Answer: ...

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 - a deadline for the charger's answer
    ) -> dict[str, Any]: ...


# cp_id -> its live connection in this process, or None.
Channels = Callable[[str], ChargerChannel | None]


@dataclass(frozen=True, slots=True)
class Requester:
    """Who sent a command: `source` is cli, api or ocpi; `name` a user or partner."""

    source: str = "api"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PartnerReservation:
    """A reservation an OCPI partner asks for (RESERVE_NOW): its id for it, kept with ours
    and never sent to the charger, what its Session shows (`info`), and our open reservation
    on the same charger it replaces (then the ReserveNow carries that id)."""

    partner_id: int
    reservation_id: str
    info: Mapping[str, Any]
    replaces: int | None = None


@dataclass(frozen=True, slots=True)
class Vouched:
    """A token another party vouches for (OCPI START_SESSION and RESERVE_NOW): sent without
    being looked up in our token table, as OCPP id token type `token_type`, with
    `group_id` as its parent."""

    token_type: str
    group_id: str | None = None
    reservation: PartnerReservation | None = None


AfterAnswer = Callable[[Answer], Awaitable[None]]


@dataclass(slots=True)
class _Prepared:
    command: Command
    # Extra facts for the result (ids we allocated...).
    data: dict[str, Any] = field(default_factory=dict)
    # Bookkeeping once the charger answered / when it did not.
    after: AfterAnswer | None = None
    failed: Callable[[], Awaitable[None]] | None = None
    # Further messages, each sent once the one before was accepted.
    more: list[Command] = field(default_factory=list)


class Params:
    """A command's parameters as sent by the CLI or an API client, checked one by one."""

    def __init__(self, raw: Mapping[str, Any], allowed: frozenset[str]) -> None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            hint = f"; it takes: {', '.join(sorted(allowed))}" if allowed else ""
            raise CommandRefused(f"unknown parameter {unknown[0]!r}{hint}")
        self._raw = raw

    def _get(self, name: str, required: bool) -> Any:
        value = self._raw.get(name)
        if value is None and required:
            raise CommandRefused(f"parameter {name!r} is required")
        return value

    def text(self, name: str, *, required: bool = False, max_len: int = 2000) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise CommandRefused(f"parameter {name!r} must be a non-empty string")
        if len(value) > max_len:
            raise CommandRefused(f"parameter {name!r} is longer than {max_len} characters")
        return value

    def required_text(self, name: str, max_len: int = 2000) -> str:
        value = self.text(name, required=True, max_len=max_len)
        assert value is not None
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int = 0, maximum: int = INT32_MAX
    ) -> int | None:
        """An integer (or its decimal text) in [minimum, maximum]: every integer a command
        takes goes on the wire as an OCPP integer (32 bits) or looks up one of our ids."""
        value = self._get(name, required)
        if value is None:
            return None
        what = f"parameter {name!r}"
        try:
            if isinstance(value, str):
                return bounded_int_text(value, what, minimum, maximum)
            if isinstance(value, bool) or not isinstance(value, int):
                raise OutOfBounds(f"{what} must be an integer, not {type(value).__name__}")
            return bounded_int(value, what, minimum, maximum)
        except OutOfBounds as exc:
            raise CommandRefused(str(exc)) from None

    def required_integer(self, name: str, minimum: int = 0) -> int:
        value = self.integer(name, required=True, minimum=minimum)
        assert value is not None
        return value

    def number(self, name: str) -> float:
        value = self._get(name, True)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise CommandRefused(f"parameter {name!r} must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise CommandRefused(f"parameter {name!r} must be a number > 0")
        return float(value)

    def rate(self, name: str) -> float | None:
        """An optional finite number >= 0 (a charging rate)."""
        value = self._raw.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise CommandRefused(f"parameter {name!r} must be a number") from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise CommandRefused(f"parameter {name!r} must be a number >= 0")
        return float(value)

    def periods(self, name: str) -> tuple[SchedulePeriod, ...]:
        """Charging schedule periods written `START:LIMIT` (seconds into the schedule, the
        limit from then on), the first at 0 and in ascending order; () when not given."""
        value = self._raw.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_PERIODS:
            raise CommandRefused(
                f"parameter {name!r} must be a list of 1 to {MAX_PERIODS} START:LIMIT strings"
            )
        out: list[SchedulePeriod] = []
        for item in value:
            start, sep, limit = item.partition(":") if isinstance(item, str) else ("", "", "")
            try:
                period = SchedulePeriod(int(start), float(limit))
            except ValueError:
                period = None
            if (
                not sep
                or period is None
                or period.start_s < 0
                or not math.isfinite(period.limit)
                or period.limit < 0
            ):
                raise CommandRefused(
                    f"parameter {name!r}: {item!r} is not START:LIMIT (seconds >= 0, limit >= 0)"
                )
            out.append(period)
        if out[0].start_s != 0:
            raise CommandRefused(f"parameter {name!r}: the first period must start at 0")
        if any(later.start_s <= earlier.start_s for earlier, later in itertools.pairwise(out)):
            raise CommandRefused(f"parameter {name!r}: periods must start in ascending order")
        return tuple(out)

    def flag(self, name: str) -> bool:
        value = self._raw.get(name, False)
        if not isinstance(value, bool):
            raise CommandRefused(f"parameter {name!r} must be true or false")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self._raw.get(name, default)
        if value is None:
            raise CommandRefused(f"parameter {name!r} is required: one of {', '.join(options)}")
        for option in options:
            if isinstance(value, str) and value.lower() == option.lower():
                return option
        raise CommandRefused(f"parameter {name!r} must be one of: {', '.join(options)}")

    def time(self, name: str, *, required: bool = False) -> datetime | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise CommandRefused(f"parameter {name!r} must be an ISO 8601 date/time string")
        try:
            return bounded_time(value, f"parameter {name!r}")
        except OutOfBounds as exc:
            raise CommandRefused(str(exc)) from None

    def texts(self, name: str) -> tuple[str, ...]:
        value = self._raw.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise CommandRefused(f"parameter {name!r} must be a list of strings")
        return tuple(value)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a command, as the API documents it."""

    type: str  # JSON schema type, or "date-time"
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()


_EVSE = Param("integer", "EVSE id (1.6: connector id)")
PARAMETERS: dict[CommandName, dict[str, Param]] = {
    CommandName.START: {
        "tag": Param("string", "id tag to start for", True),
        "evse": Param("integer", "EVSE to start on (default: the charger picks)"),
    },
    CommandName.STOP: {"transaction": Param("integer", "our transaction id", True)},
    CommandName.RESET: {"hard": Param("boolean", "Hard (1.6) / Immediate (2.0.1) reset")},
    CommandName.UNLOCK: {"evse": Param("integer", "EVSE whose connector to unlock", True)},
    CommandName.AVAILABILITY: {
        "state": Param("string", "new availability", True, ("operative", "inoperative")),
        "evse": Param("integer", "EVSE (default: the whole charger)"),
    },
    CommandName.CONFIG_GET: {
        "keys": Param("array", "1.6 keys or 2.0.1 Component[.instance].Variable names")
    },
    CommandName.CONFIG_SET: {
        "key": Param("string", "1.6 key or 2.0.1 Component[.instance].Variable", True),
        "value": Param("string", "new value", True),
    },
    CommandName.TRIGGER: {
        "message": Param("string", "message to trigger (either version's name)", True),
        "evse": _EVSE,
    },
    CommandName.CLEAR_CACHE: {},
    CommandName.DATA_TRANSFER: {
        "vendor": Param("string", "vendorId", True),
        "message_id": Param("string", "messageId"),
        "data": Param("string", "data"),
    },
    CommandName.RESERVE: {
        "tag": Param("string", "id tag the reservation is for", True),
        "expires": Param("date-time", "when the reservation ends", True),
        "evse": Param("integer", "EVSE to hold (default: any)"),
    },
    CommandName.CANCEL_RESERVATION: {"reservation": Param("integer", "reservation id", True)},
    CommandName.LOCAL_LIST_SEND: {
        "mode": Param(
            "string", "full list or changes since the last one", False, ("full", "differential")
        ),
    },
    CommandName.LOCAL_LIST_VERSION: {},
    CommandName.FIRMWARE: {
        "location": Param("string", "URL of the firmware image", True),
        "retrieve": Param("date-time", "when to download (default: now)"),
    },
    CommandName.DIAGNOSTICS: {"location": Param("string", "URL to upload the log to", True)},
    CommandName.PROFILE_SET: {
        "evse": Param("integer", "EVSE (0: the whole charger)", True),
        "limit": Param("number", "the limit, in the unit (required unless periods are given)"),
        "periods": Param(
            "array", "instead of limit, a schedule: START:LIMIT each (seconds from its start)"
        ),
        "unit": Param("string", "W or A", True, ("W", "A")),
        "purpose": Param(
            "string",
            "profile purpose (default TxDefaultProfile)",
            False,
            tuple(p.value for p in ProfilePurpose),
        ),
        "stack": Param("integer", "stack level (default 0)"),
        "duration": Param("integer", "seconds the limit lasts (default: until cleared)"),
        "start": Param("date-time", "when the schedule starts (default: now)"),
        "relative": Param(
            "boolean", "the schedule counts from the start of charging (Tx/TxDefault profiles)"
        ),
        "min_rate": Param("number", "lowest rate the EV charges at, in the unit (a hint)"),
        "transaction": Param(
            "integer", "TxProfile: our transaction it is for (checked to run on the EVSE)"
        ),
    },
    CommandName.PROFILE_CLEAR: {
        "id": Param("integer", "profile id (default: all)"),
        "transaction": Param("integer", "instead of id: the TxProfiles of this transaction"),
    },
    CommandName.PROFILE_COMPOSITE: {
        "evse": Param("integer", "EVSE (0: the whole charger)", True),
        "duration": Param("integer", "seconds to look ahead", True),
        "unit": Param("string", "W or A", False, ("W", "A")),
    },
}
_ALLOWED = {name: frozenset(params) for name, params in PARAMETERS.items()}


def check_params(name: CommandName, raw: Mapping[str, Any], now: datetime) -> None:
    """What can be checked of a command's parameters without the charger: names, types,
    ranges and choices (a TriggerMessage either version can send, ...). CommandRefused says
    what is wrong and, where there are choices, names them. What depends on the charger
    (its OCPP version's limits, its transactions and reservations) is checked once it is
    known."""
    p = Params(raw, _ALLOWED[name])
    match name:
        case CommandName.START:
            p.required_text("tag", 36)
            p.integer("evse", minimum=1)
        case CommandName.STOP:
            p.required_integer("transaction", 1)
        case CommandName.RESET:
            p.flag("hard")
        case CommandName.UNLOCK:
            p.required_integer("evse", 1)
        case CommandName.AVAILABILITY:
            p.choice("state", ("operative", "inoperative"))
            p.integer("evse")
        case CommandName.CONFIG_GET:
            p.texts("keys")
        case CommandName.CONFIG_SET:
            p.required_text("key", 500)
            CommandService._raw_value(p)
        case CommandName.TRIGGER:
            check_trigger(p.required_text("message", 64))
            p.integer("evse")
        case CommandName.DATA_TRANSFER:
            p.required_text("vendor", 255)
            p.text("message_id", max_len=50)
            p.text("data", max_len=100_000)
        case CommandName.RESERVE:
            p.required_text("tag", 36)
            expires = p.time("expires", required=True)
            p.integer("evse", minimum=1)
            if expires is not None and expires <= now:
                raise CommandRefused(f"expires {format_timestamp(expires)} is in the past")
        case CommandName.CANCEL_RESERVATION:
            p.required_integer("reservation", 1)
        case CommandName.LOCAL_LIST_SEND:
            p.choice("mode", ("full", "differential"), default="full")
        case CommandName.FIRMWARE:
            p.required_text("location", 512)
            p.time("retrieve")
        case CommandName.DIAGNOSTICS:
            p.required_text("location", 512)
        case CommandName.PROFILE_SET:
            _check_profile(p)
        case CommandName.PROFILE_CLEAR:
            profile_id = p.integer("id", minimum=1)
            if p.integer("transaction", minimum=1) is not None and profile_id is not None:
                raise CommandRefused("give either a profile id or a transaction, not both")
        case CommandName.PROFILE_COMPOSITE:
            p.required_integer("evse")
            p.required_integer("duration", 1)
            if p.text("unit"):
                p.choice("unit", ("W", "A"))
        case CommandName.CLEAR_CACHE | CommandName.LOCAL_LIST_VERSION:
            pass


def _check_profile(p: Params) -> None:
    """SetChargingProfile's parameters and how they combine (see _prepare_profile)."""
    evse = p.required_integer("evse")
    periods = p.periods("periods")
    if periods and p._raw.get("limit") is not None:
        raise CommandRefused("give either a limit or periods, not both")
    if not periods:
        p.number("limit")
    p.choice("unit", ("W", "A"))
    purpose = ProfilePurpose.parse(p.text("purpose") or ProfilePurpose.TX_DEFAULT.value)
    p.integer("stack")
    p.integer("duration", minimum=1)
    start = p.time("start")
    relative = p.flag("relative")
    p.rate("min_rate")
    wanted_tx = p.integer("transaction", minimum=1)
    if purpose is ProfilePurpose.CHARGER_MAX and evse != 0:
        raise CommandRefused("a ChargePointMaxProfile applies to the whole charger: --evse 0")
    if relative and (start is not None or purpose is ProfilePurpose.CHARGER_MAX):
        raise CommandRefused(
            "a relative schedule counts from the start of charging: no start, and a "
            "TxProfile or TxDefaultProfile"
        )
    if wanted_tx is not None and purpose is not ProfilePurpose.TX:
        raise CommandRefused("only a TxProfile is for a transaction")
    if purpose is ProfilePurpose.TX and evse == 0:
        raise CommandRefused("a TxProfile needs the EVSE of a running transaction")


class CommandService:
    """Sends commands to chargers connected to this process and records each one."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        charging: Charging,
        channels: Channels,
        *,
        default_timeout: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._charging = charging
        self._channels = channels
        self.default_timeout = default_timeout
        self._metrics = metrics
        # Marks reservations Expired when their time comes (started by the app); woken when
        # a reservation is made or settled, so that its expiry is looked at.
        self.reservations = Worker("reservations", self._expire_due, period=60.0)

    # --- running a command -----------------------------------------------------------

    async def execute(
        self,
        cp_id: str,
        name: CommandName,
        params: Mapping[str, Any],
        requester: Requester = Requester(),
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the charger's answer
        *,
        vouched: Vouched | None = None,
    ) -> CommandResult:
        """Run one command to its end: never raises for anything the charger or the caller
        did; the result says what happened, and the audit log has it. `vouched`: the token
        of a start or reservation is another party's, which answers for it."""
        params = dict(params)
        entry_id = await self._open_entry(cp_id, name, params, requester)
        wait = min(timeout or self.default_timeout, MAX_TIMEOUT_S)
        try:
            # Bad parameters are said as such, whether or not the charger is connected.
            check_params(name, params, self._clock())
        except CommandRefused as exc:
            return await self._finish(entry_id, cp_id, name, None, Outcome.INVALID, None, str(exc))
        channel = self._channels(cp_id)
        action: str | None = None
        prepared: _Prepared | None = None
        try:
            if channel is None:
                known = await self._charging.stations.charge_point(cp_id)
                message = "not connected" if known else f"not connected (unknown charger {cp_id!r})"
                return await self._finish(
                    entry_id, cp_id, name, None, Outcome.NOT_CONNECTED, None, message
                )
            registration = channel.registration
            if registration is not RegistrationStatus.ACCEPTED and not (
                registration is RegistrationStatus.PENDING and name in _WHILE_PENDING
            ):
                state = "not booted yet" if registration is None else registration.value
                raise CommandRefused(f"the charger's registration is {state}")
            prepared = await self._prepare(
                cp_id,
                name,
                Params(params, _ALLOWED[name]),
                channel,
                entry_id,
                requester,
                wait,
                vouched,
            )
            action, payload = channel.encode_command(prepared.command)
        except CommandRefused as exc:
            if prepared is not None and prepared.failed is not None:
                await prepared.failed()
            return await self._finish(
                entry_id, cp_id, name, action, Outcome.INVALID, None, str(exc)
            )
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
                return await self._finish(
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
            return await self._finish(
                entry_id, cp_id, name, action, outcome, status, part + message, data=prepared.data
            )
        raise AssertionError("a command has at least one message")  # pragma: no cover

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
    ) -> CommandResult:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            await command_repo.close_entry(
                await w.connection(),
                entry_id,
                action=action,
                outcome=outcome.value,
                status=status,
                message=message,
                answer=raw,
                params=None,
                now=now,
            )

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

    # --- per command -----------------------------------------------------------------

    async def _prepare(
        self,
        cp_id: str,
        name: CommandName,
        p: Params,
        channel: ChargerChannel,
        entry_id: int,
        requester: Requester,
        wait: float,
        vouched: Vouched | None = None,
    ) -> _Prepared:
        version = channel.version
        match name:
            case CommandName.START:
                return await self._prepare_start(cp_id, p, version, entry_id, vouched)
            case CommandName.STOP:
                return await self._prepare_stop(cp_id, p)
            case CommandName.RESET:
                return _Prepared(Reset(p.flag("hard")))
            case CommandName.UNLOCK:
                return _Prepared(Unlock(p.required_integer("evse", 1)))
            case CommandName.AVAILABILITY:
                state = p.choice("state", ("operative", "inoperative"))
                return _Prepared(ChangeAvailability(state == "operative", p.integer("evse")))
            case CommandName.CONFIG_GET:
                return _Prepared(GetConfiguration(p.texts("keys")))
            case CommandName.CONFIG_SET:
                return self._prepare_config_set(cp_id, p, version)
            case CommandName.TRIGGER:
                message = trigger_name(p.required_text("message", 64), version)
                return _Prepared(Trigger(message, p.integer("evse")))
            case CommandName.CLEAR_CACHE:
                return _Prepared(ClearCache())
            case CommandName.DATA_TRANSFER:
                return _Prepared(
                    DataTransfer(
                        p.required_text("vendor", 255),
                        p.text("message_id", max_len=50),
                        p.text("data", max_len=100_000),
                    )
                )
            case CommandName.RESERVE:
                return await self._prepare_reserve(cp_id, p, requester, vouched, version)
            case CommandName.CANCEL_RESERVATION:
                return await self._prepare_cancel(cp_id, p)
            case CommandName.LOCAL_LIST_SEND:
                mode = p.choice("mode", ("full", "differential"), default="full")
                return await self._prepare_local_list(
                    cp_id, channel, full=mode == "full", wait=wait
                )
            case CommandName.LOCAL_LIST_VERSION:
                return await self._prepare_list_version(cp_id)
            case CommandName.FIRMWARE:
                location = p.required_text("location", 512)
                retrieve = p.time("retrieve") or self._clock()
                return _Prepared(
                    UpdateFirmware(entry_id, location, retrieve), {"request_id": entry_id}
                )
            case CommandName.DIAGNOSTICS:
                location = p.required_text("location", 512)
                return _Prepared(GetDiagnostics(entry_id, location), {"request_id": entry_id})
            case CommandName.PROFILE_SET:
                return await self._prepare_profile(cp_id, p)
            case CommandName.PROFILE_CLEAR:
                return await self._prepare_profile_clear(cp_id, p)
            case CommandName.PROFILE_COMPOSITE:
                unit = p.choice("unit", ("W", "A"), default="W") if p.text("unit") else None
                return _Prepared(
                    GetCompositeSchedule(
                        p.required_integer("evse"), p.required_integer("duration", 1), unit
                    )
                )
        raise AssertionError(name)  # pragma: no cover

    async def _authorized_token(
        self, uid: str, vouched: Vouched | None = None
    ) -> tuple[str, AuthResult]:
        """The type and standing of a token staff want to use; refuses tokens that would not
        be accepted at the charger anyway. A vouched token is not looked up: its owner
        answers for it."""
        if vouched is not None:
            return vouched.token_type, AuthResult(AuthStatus.ACCEPTED, None, vouched.group_id)
        async with self._db.read() as conn:
            token = await token_repo.get(conn, uid)
        if token is None:
            if self._charging.authorization.allow_unknown_tags:
                return "ISO14443", decide(None, self._clock())
            raise CommandRefused(f"tag {uid!r} is not known (add it with `csms tokens add`)")
        auth = decide(token, self._clock())
        if not auth.accepted:
            raise CommandRefused(f"tag {uid!r} is {auth.status.value}")
        return token.type, auth

    async def _prepare_start(
        self, cp_id: str, p: Params, version: str, entry_id: int, vouched: Vouched | None = None
    ) -> _Prepared:
        tag = p.required_text("tag", 36 if version != "1.6" else 20)
        evse = p.integer("evse", minimum=1)
        token_type, auth = await self._authorized_token(tag, vouched)
        async with self._db.read() as conn:
            reservations = await reservation_repo.open_for(conn, cp_id)
            busy = await tx_repo.active_on_evse(conn, cp_id, evse) if evse else None
        if busy is not None:
            raise CommandRefused(f"EVSE {evse} is busy with transaction {busy.id}")
        check = check_start(reservations, evse, tag, auth.parent_uid, self._clock())
        if evse is not None and check.blocked_by is not None:
            raise CommandRefused(
                f"EVSE {evse} is reserved for another tag (reservation {check.blocked_by.id} "
                f"until {format_timestamp(check.blocked_by.expires_at)})"
            )

        async def after(answer: Answer) -> None:
            if answer.ok and version == "1.6":
                self._charging.transactions.note_remote_start(cp_id, tag, evse, entry_id)

        return _Prepared(
            RemoteStart(tag, token_type, evse, entry_id), {"remote_start_id": entry_id}, after
        )

    async def _prepare_stop(self, cp_id: str, p: Params) -> _Prepared:
        tx_id = p.required_integer("transaction", 1)
        async with self._db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
        if tx is None:
            raise CommandRefused(f"no transaction {tx_id}")
        if tx.charge_point_id != cp_id:
            raise CommandRefused(f"transaction {tx_id} runs on {tx.charge_point_id}, not {cp_id}")
        if not tx.active:
            raise CommandRefused(f"transaction {tx_id} has already ended")
        wire = tx.ocpp_transaction_id or str(tx.id)
        return _Prepared(RemoteStop(tx.id, wire), {"transaction_id": tx.id})

    def _prepare_config_set(self, cp_id: str, p: Params, version: str) -> _Prepared:
        key = p.required_text("key", 500 if version != "1.6" else 50)
        value = self._raw_value(p)
        command = SetConfiguration(key, value)
        if version == "1.6":
            return _Prepared(command)
        variable = VariableKey.parse(key)

        async def after(answer: Answer) -> None:
            if answer.ok:
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await device_repo.set_value(
                        await w.connection(),
                        cp_id,
                        variable.component,
                        variable.instance,
                        variable.variable,
                        value,
                        now,
                    )

                await self._db.write(unit)

        return _Prepared(command, after=after)

    @staticmethod
    def _raw_value(p: Params) -> str:
        # An empty string is a legitimate configuration value.
        raw = p._get("value", True)
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if not isinstance(raw, str | int | float):
            raise CommandRefused("parameter 'value' must be a string")
        text = str(raw)
        if len(text) > 1000:
            raise CommandRefused("parameter 'value' is longer than 1000 characters")
        return text

    async def _prepare_reserve(
        self,
        cp_id: str,
        p: Params,
        requester: Requester,
        vouched: Vouched | None = None,
        version: str = "2.0.1",
    ) -> _Prepared:
        tag = p.required_text("tag", 36 if version != "1.6" else 20)
        expires = p.time("expires", required=True)
        assert expires is not None
        evse = p.integer("evse", minimum=1)
        now = self._clock()
        if expires <= now:
            raise CommandRefused(f"expires {format_timestamp(expires)} is in the past")
        token_type, auth = await self._authorized_token(tag, vouched)
        partner = None if vouched is None else vouched.reservation
        replaces = None if partner is None else partner.replaces
        async with self._db.read() as conn:
            holding = [r for r in await reservation_repo.open_for(conn, cp_id) if r.holds(now)]
        if replaces is not None and not any(r.id == replaces for r in holding):
            raise CommandRefused(f"reservation {replaces} on {cp_id} is no longer open")
        for r in holding:
            if evse is not None and r.evse_id == evse and r.id != replaces:
                raise CommandRefused(
                    f"EVSE {evse} is already reserved (reservation {r.id} until "
                    f"{format_timestamp(r.expires_at)})"
                )
        data = {"expires_at": format_timestamp(expires)}
        if replaces is not None:
            # The charger replaces the reservation with this id; ours changes only once it
            # did (a refused ReserveNow leaves the old one in place).
            async def replaced(answer: Answer) -> None:
                if not answer.ok:
                    return
                at = self._clock()

                async def unit(w: WriteTx) -> None:
                    await reservation_repo.replace(
                        await w.connection(),
                        replaces,
                        evse_id=evse,
                        id_tag=tag,
                        parent_id_tag=auth.parent_uid,
                        expires_at=expires,
                        ocpi=None if partner is None else partner.info,
                        now=at,
                    )

                await self._db.write(unit)
                self.reservations.wake()

            return _Prepared(
                Reserve(replaces, tag, token_type, auth.parent_uid, expires, evse),
                {"reservation_id": replaces, "replaced": True, **data},
                replaced,
            )

        async def create(w: WriteTx) -> int:
            return await reservation_repo.create(
                await w.connection(),
                cp_id=cp_id,
                evse_id=evse,
                id_tag=tag,
                parent_id_tag=auth.parent_uid,
                expires_at=expires,
                source=requester.source,
                now=now,
                ocpi_partner_id=None if partner is None else partner.partner_id,
                ocpi_reservation_id=None if partner is None else partner.reservation_id,
                ocpi=None if partner is None else partner.info,
            )

        reservation_id = await self._db.write(create)

        async def settle(state: ReservationState) -> None:
            at = self._clock()

            async def unit(w: WriteTx) -> None:
                await reservation_repo.set_state(await w.connection(), reservation_id, state, at)

            await self._db.write(unit)
            self.reservations.wake()

        async def after(answer: Answer) -> None:
            await settle(ReservationState.ACTIVE if answer.ok else ReservationState.REJECTED)

        async def failed() -> None:
            await settle(ReservationState.REJECTED)

        return _Prepared(
            Reserve(reservation_id, tag, token_type, auth.parent_uid, expires, evse),
            {"reservation_id": reservation_id, **data},
            after,
            failed,
        )

    async def _prepare_cancel(self, cp_id: str, p: Params) -> _Prepared:
        reservation_id = p.required_integer("reservation", 1)
        async with self._db.read() as conn:
            reservation = await reservation_repo.get(conn, reservation_id)
        if reservation is None or reservation.charge_point_id != cp_id:
            raise CommandRefused(f"no reservation {reservation_id} on {cp_id}")
        if reservation.state not in OPEN_STATES:
            raise CommandRefused(
                f"reservation {reservation_id} is already {reservation.state.value}"
            )

        async def after(answer: Answer) -> None:
            if answer.ok:
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await reservation_repo.set_state(
                        await w.connection(), reservation_id, ReservationState.CANCELLED, now
                    )

                await self._db.write(unit)

        return _Prepared(
            CancelReservation(reservation_id), {"reservation_id": reservation_id}, after
        )

    async def _prepare_local_list(
        self, cp_id: str, channel: ChargerChannel, *, full: bool, wait: float
    ) -> _Prepared:
        now = self._clock()
        async with self._db.read() as conn:
            tokens = await token_repo.list_all(conn)
            stored = await list_repo.get(conn, cp_id)
        current: dict[str, dict[str, Any]] = {}
        for token in tokens:
            if not offline_usable(token.whitelist):
                # Another party's token that its eMSP must be asked about (ALLOWED, NEVER):
                # a charger deciding from its list would not ask.
                continue
            auth = decide(token, now)
            current[token_key(token.uid)] = {
                "uid": token.uid,
                "type": token.type,
                "status": auth.status.value,
                "expires_at": None
                if auth.expires_at is None
                else format_timestamp(auth.expires_at),
                "parent": auth.parent_uid,
            }
        if not full and stored is None:
            raise CommandRefused("no list was sent to this charger yet: send --full first")
        entries: list[LocalListEntry] = []
        if full:
            entries = [_entry(item) for item in current.values()]
        else:
            assert stored is not None
            for key, item in current.items():
                if stored.entries.get(key) != item:
                    entries.append(_entry(item))
            for key, item in stored.entries.items():
                if key not in current:
                    entries.append(LocalListEntry(item["uid"], item["type"], None))
        per_message = len(entries)
        if len(entries) > SAFE_LIST_MESSAGE:
            limit, max_entries = await self._list_limits(channel, wait)
            if max_entries is not None and len(current) > max_entries:
                raise CommandRefused(
                    f"the charger holds at most {max_entries} entries; "
                    f"the token table has {len(current)}"
                )
            per_message = limit or len(entries)
        base = stored.version if stored else 0
        # A list longer than the charger takes at once goes as the first part (Full when
        # asked) and then differential updates, each with the next version number.
        chunks = [
            tuple(entries[i : i + per_message]) for i in range(0, len(entries), per_message)
        ] or [()]
        commands: list[Command] = [
            SendLocalList(base + 1 + i, full and i == 0, chunk) for i, chunk in enumerate(chunks)
        ]
        version = base + len(commands)

        async def after(answer: Answer) -> None:
            if answer.ok:
                at = self._clock()

                async def unit(w: WriteTx) -> None:
                    await list_repo.put(await w.connection(), cp_id, version, current, at)

                await self._db.write(unit)

        data: dict[str, Any] = {"list_version": version, "entries": len(entries), "full": full}
        if len(commands) > 1:
            data["messages"] = len(commands)
        return _Prepared(commands[0], data, after, more=commands[1:])

    async def _list_limits(
        self, channel: ChargerChannel, wait: float
    ) -> tuple[int | None, int | None]:
        """(entries per SendLocalList, entries in all) as the charger reports them."""
        command = GetLocalListLimits()
        action, payload = channel.encode_command(command)
        try:
            raw = await channel.call(action, payload, wait)
        except (TimeoutError, ChargerCallError, ConnectionError) as exc:
            log.warning("local_list_limits_unknown", detail=str(exc))
            return None, None
        data = channel.decode_answer(command, action, raw).data
        return data.get("per_message"), data.get("max_entries")

    async def _prepare_list_version(self, cp_id: str) -> _Prepared:
        async with self._db.read() as conn:
            stored = await list_repo.get(conn, cp_id)
        return _Prepared(
            GetLocalListVersion(), {"csms_list_version": stored.version if stored else 0}
        )

    async def _prepare_profile(self, cp_id: str, p: Params) -> _Prepared:
        """One limit (`limit`) or a schedule (`periods`), from now, from `start` or, with
        `relative`, from the start of charging; a TxProfile is bound to the transaction
        running on the EVSE (which must be `transaction` when that is given)."""
        evse = p.required_integer("evse")
        periods = p.periods("periods")
        if periods and p._raw.get("limit") is not None:
            raise CommandRefused("give either a limit or periods, not both")
        limit = periods[0].limit if periods else p.number("limit")
        unit = p.choice("unit", ("W", "A"))
        purpose = ProfilePurpose.parse(p.text("purpose") or ProfilePurpose.TX_DEFAULT.value)
        stack = p.integer("stack") or 0
        duration = p.integer("duration", minimum=1)
        start = p.time("start")
        relative = p.flag("relative")
        min_rate = p.rate("min_rate")
        wanted_tx = p.integer("transaction", minimum=1)
        now = self._clock()
        tx_id: int | None = None
        wire_tx: str | None = None
        if purpose is ProfilePurpose.CHARGER_MAX and evse != 0:
            raise CommandRefused("a ChargePointMaxProfile applies to the whole charger: --evse 0")
        if relative and (start is not None or purpose is ProfilePurpose.CHARGER_MAX):
            raise CommandRefused(
                "a relative schedule counts from the start of charging: no start, and a "
                "TxProfile or TxDefaultProfile"
            )
        if wanted_tx is not None and purpose is not ProfilePurpose.TX:
            raise CommandRefused("only a TxProfile is for a transaction")
        if purpose is ProfilePurpose.TX:
            if evse == 0:
                raise CommandRefused("a TxProfile needs the EVSE of a running transaction")
            async with self._db.read() as conn:
                tx = await tx_repo.active_on_evse(conn, cp_id, evse)
            if tx is None:
                raise CommandRefused(f"no transaction is running on EVSE {evse}")
            if wanted_tx is not None and tx.id != wanted_tx:
                raise CommandRefused(f"transaction {wanted_tx} is not running on EVSE {evse}")
            tx_id, wire_tx = tx.id, tx.ocpp_transaction_id or str(tx.id)
        start_at = start or now

        async def create(w: WriteTx) -> int:
            return await profile_repo.create(
                await w.connection(),
                cp_id=cp_id,
                evse_id=evse,
                purpose=purpose,
                stack_level=stack,
                limit=limit,
                unit=unit,
                start_at=start_at,
                duration_s=duration,
                transaction_id=tx_id,
                now=now,
            )

        profile_id = await self._db.write(create)
        profile = ChargingProfile(
            profile_id,
            evse,
            purpose,
            stack,
            limit,
            unit,
            start_at,
            duration,
            wire_tx,
            periods=periods,
            min_rate=min_rate,
            relative=relative,
        )

        async def settle(ok: bool) -> None:
            at = self._clock()

            async def unit_of_work(w: WriteTx) -> None:
                conn = await w.connection()
                state = profile_repo.INSTALLED if ok else profile_repo.REJECTED
                await profile_repo.set_state(conn, profile_id, state, at)
                if ok:
                    await profile_repo.replace_same_slot(conn, cp_id, profile, at)

            await self._db.write(unit_of_work)

        async def after(answer: Answer) -> None:
            await settle(answer.ok)

        async def failed() -> None:
            await settle(False)

        data: dict[str, Any] = {"profile_id": profile_id}
        if tx_id is not None:
            data["transaction_id"] = tx_id
        return _Prepared(SetChargingProfile(profile), data, after, failed)

    async def _prepare_profile_clear(self, cp_id: str, p: Params) -> _Prepared:
        profile_id = p.integer("id", minimum=1)
        tx_id = p.integer("transaction", minimum=1)
        if tx_id is not None:
            if profile_id is not None:
                raise CommandRefused("give either a profile id or a transaction, not both")
            return await self._prepare_tx_profiles_clear(cp_id, tx_id)
        if profile_id is not None:
            async with self._db.read() as conn:
                found = await profile_repo.get(conn, profile_id)
            if found is None or found[0] != cp_id:
                raise CommandRefused(f"no charging profile {profile_id} on {cp_id}")

        async def after(answer: Answer) -> None:
            # Unknown: the charger does not have it (any more), so it is not installed either.
            if answer.ok or (answer.status == "Unknown" and profile_id is not None):
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await profile_repo.clear(await w.connection(), cp_id, profile_id, now)

                await self._db.write(unit)

        return _Prepared(ClearChargingProfile(profile_id), {}, after)

    async def _prepare_tx_profiles_clear(self, cp_id: str, tx_id: int) -> _Prepared:
        """Clear every TxProfile of a running transaction: those on its EVSE (a TxProfile is
        for the transaction on its EVSE). Unknown: the charger had none (any more)."""
        async with self._db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
        if tx is None or tx.charge_point_id != cp_id:
            raise CommandRefused(f"no transaction {tx_id} on {cp_id}")
        if not tx.active:
            raise CommandRefused(f"transaction {tx_id} has already ended")

        async def after(answer: Answer) -> None:
            if answer.ok or answer.status == "Unknown":
                now = self._clock()

                async def unit(w: WriteTx) -> None:
                    await profile_repo.end_with_transaction(await w.connection(), cp_id, tx_id, now)

                await self._db.write(unit)

        command = ClearChargingProfile(None, tx.evse_id, ProfilePurpose.TX)
        return _Prepared(command, {"transaction_id": tx_id}, after)

    # --- the audit log ---------------------------------------------------------------

    async def history(self, cp_id: str | None = None, limit: int = 100) -> list[CommandRecord]:
        async with self._db.read() as conn:
            return await command_repo.recent(conn, cp_id=cp_id, limit=limit)

    # --- reservations expire on time -------------------------------------------------

    async def _expire_due(self) -> float:
        """One pass of the reservations worker: returns the time until the next expiry."""
        now = self._clock()

        async def unit(w: WriteTx) -> list[Any]:
            return await reservation_repo.expire_due(await w.connection(), now)

        for reservation in await self._db.write(unit):
            log.info(
                "reservation_expired",
                charge_point_id=reservation.charge_point_id,
                reservation_id=reservation.id,
                evse_id=reservation.evse_id,
            )
        async with self._db.read() as conn:
            upcoming = await reservation_repo.next_expiry(conn)
        if upcoming is None:
            return 60.0
        return min(60.0, max(0.01, (upcoming - self._clock()).total_seconds()))


def _entry(item: dict[str, Any]) -> LocalListEntry:
    from csms.core.authorization import AuthStatus

    expires = item.get("expires_at")
    return LocalListEntry(
        item["uid"],
        item["type"],
        AuthResult(
            AuthStatus(item["status"]),
            None if expires is None else parse_timestamp(expires),
            item.get("parent"),
        ),
    )


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
    ):
        if key in data:
            facts.append(f"{label} {data[key]}")
    if facts and answer.ok:
        text += " [" + ", ".join(facts) + "]"
    return text
