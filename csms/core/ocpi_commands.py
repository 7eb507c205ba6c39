"""OCPI 2.2.1 commands (the Receiver side): the five request objects checked field by field,
the EVSE a command goes to, the CommandResponse / CommandResult bodies, how an OCPP outcome
becomes a CommandResultType, and the Session object a partner's reservation is shown as.

Pure values and rules; resolving locations, running the OCPP command and delivering the
result are ocpi_cpo.commands' job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from csms.core import ocpi_tokens
from csms.core.commands import Outcome
from csms.core.errors import InvalidCommand as InvalidCommand
from csms.core.ocpi_locations import Capability
from csms.core.ocpi_sessions import AuthMethod, SessionStatus
from csms.core.ocpi_tokens import InvalidToken
from csms.core.parties import Party
from csms.core.reservations import ReservationState
from csms.core.roaming import PartnerToken
from csms.core.tariffs import ocpi_datetime
from csms.core.versions import ProtocolLimits

# OCPI CiString(36): ids of locations, EVSEs, connectors, sessions, reservations.
ID_MAX = 36
URL_MAX = 255
DISPLAY_TEXT_MAX = 512


class CommandType(StrEnum):
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class ResponseType(StrEnum):
    """CommandResponseType: our answer to the request itself."""

    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ResultType(StrEnum):
    """CommandResultType: what the charger made of it (the asynchronous result)."""

    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


# --- the request objects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartSession:
    response_url: str
    token: PartnerToken
    location_id: str
    evse_uid: str | None
    connector_id: str | None
    authorization_reference: str | None


@dataclass(frozen=True, slots=True)
class StopSession:
    response_url: str
    session_id: str


@dataclass(frozen=True, slots=True)
class ReserveNow:
    response_url: str
    token: PartnerToken
    expiry_date: datetime
    reservation_id: str
    location_id: str
    evse_uid: str | None
    authorization_reference: str | None


@dataclass(frozen=True, slots=True)
class CancelReservation:
    response_url: str
    reservation_id: str


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    response_url: str
    location_id: str
    evse_uid: str
    connector_id: str


CommandRequest = StartSession | StopSession | ReserveNow | CancelReservation | UnlockConnector


class _Fields:
    """One JSON object read field by field; every failure names the field's path."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise InvalidCommand(f"{path or 'the body'} must be a JSON object")
        self.raw = raw
        self.path = path

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def text(self, key: str, limit: int, *, required: bool = True) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise InvalidCommand(f"{self._name(key)} is missing")
            return None
        if not isinstance(value, str) or not value.strip():
            raise InvalidCommand(f"{self._name(key)} must be a non-empty string")
        if len(value) > limit:
            raise InvalidCommand(f"{self._name(key)} is longer than {limit} characters")
        return value

    def required(self, key: str, limit: int) -> str:
        value = self.text(key, limit)
        assert value is not None
        return value

    def cistring(self, key: str, limit: int = ID_MAX, *, required: bool = True) -> str | None:
        value = self.text(key, limit, required=required)
        if value is not None and not (value.isascii() and value.isprintable()):
            raise InvalidCommand(f"{self._name(key)} must be printable ASCII")
        return value

    def id(self, key: str) -> str:
        value = self.cistring(key)
        assert value is not None
        return value

    def url(self, key: str) -> str:
        value = self.required(key, URL_MAX)
        if not value.lower().startswith(("http://", "https://")):
            raise InvalidCommand(f"{self._name(key)} must be an http(s) URL")
        return value

    def moment(self, key: str) -> datetime:
        value = self.required(key, 40)
        try:
            return ocpi_tokens.parse_ocpi_datetime(value, self._name(key))
        except InvalidToken:
            raise InvalidCommand(f"{self._name(key)} is not an OCPI DateTime: {value!r}") from None


def parse_token(raw: Any, path: str = "token") -> PartnerToken:
    """An OCPI Token object as a command carries it: the tokens module's rules
    (csms.core.ocpi_tokens), its failures as InvalidCommand."""
    try:
        return ocpi_tokens.parse_token(raw, path)
    except InvalidToken as exc:
        raise InvalidCommand(str(exc)) from None


def parse_command(kind: CommandType, body: Any) -> CommandRequest:
    """The request object of `kind` in `body`; InvalidCommand says what is wrong."""
    f = _Fields(body, "")
    url = f.url("response_url")
    match kind:
        case CommandType.START_SESSION:
            evse_uid = f.cistring("evse_uid", required=False)
            connector_id = f.cistring("connector_id", required=False)
            if connector_id is not None and evse_uid is None:
                raise InvalidCommand("connector_id is given without evse_uid")
            return StartSession(
                url,
                parse_token(body.get("token")),
                f.id("location_id"),
                evse_uid,
                connector_id,
                f.cistring("authorization_reference", required=False),
            )
        case CommandType.STOP_SESSION:
            return StopSession(url, f.id("session_id"))
        case CommandType.RESERVE_NOW:
            return ReserveNow(
                url,
                parse_token(body.get("token")),
                f.moment("expiry_date"),
                f.id("reservation_id"),
                f.id("location_id"),
                f.cistring("evse_uid", required=False),
                f.cistring("authorization_reference", required=False),
            )
        case CommandType.CANCEL_RESERVATION:
            return CancelReservation(url, f.id("reservation_id"))
        case CommandType.UNLOCK_CONNECTOR:
            return UnlockConnector(url, f.id("location_id"), f.id("evse_uid"), f.id("connector_id"))
    raise AssertionError(kind)  # pragma: no cover


def fits_charger(uid: str, limits: ProtocolLimits | None) -> bool:
    """Whether a token uid can be sent as its id token to a charger whose OCPP version has
    these limits (None: it never told us its version, nothing to check against)."""
    return limits is None or limits.fits_id_token(uid)


# --- where a command goes ---------------------------------------------------------------------


# The EVSE capability each command at an EVSE needs.
NEEDS: dict[CommandType, Capability] = {
    CommandType.START_SESSION: Capability.REMOTE_START_STOP_CAPABLE,
    CommandType.RESERVE_NOW: Capability.RESERVABLE,
    CommandType.UNLOCK_CONNECTOR: Capability.UNLOCK_CAPABLE,
}


@dataclass(frozen=True, slots=True)
class Evse:
    """A published EVSE as commands see it: where it is on the charger and what it says."""

    charge_point_id: str
    evse_id: int
    uid: str
    status: str
    capabilities: tuple[str, ...]
    connectors: tuple[str, ...]
    currency_tariffs: tuple[str, ...] = ()

    @classmethod
    def from_published(cls, cp_id: str, evse_id: int, data: Mapping[str, Any]) -> Evse:
        connectors = [c for c in data.get("connectors") or () if isinstance(c, Mapping)]
        tariffs = [t for c in connectors for t in c.get("tariff_ids") or ()]
        return cls(
            charge_point_id=cp_id,
            evse_id=evse_id,
            uid=str(data.get("uid", "")),
            status=str(data.get("status", "")),
            capabilities=tuple(str(c) for c in data.get("capabilities") or ()),
            connectors=tuple(str(c.get("id")) for c in connectors),
            currency_tariffs=tuple(str(t) for t in tariffs),
        )

    @property
    def removed(self) -> bool:
        return self.status == "REMOVED"

    def can(self, capability: Capability) -> bool:
        return capability.value in self.capabilities

    def connector(self, connector_id: str, *, exact: bool = False) -> str | None:
        """The connector id as published (CiString: any case matches, unless `exact`: a
        partner whose profile compares ids as sent)."""
        return next((c for c in self.connectors if _same(c, connector_id, exact)), None)


class Unresolved(StrEnum):
    """Why no EVSE was found for a command."""

    UNKNOWN = "unknown"  # no such EVSE (or connector) at the location
    NOT_SUPPORTED = "not supported"  # it exists but cannot do the command


def _same(ours: str, theirs: str, exact: bool) -> bool:
    return ours == theirs if exact else ours.upper() == theirs.upper()


def find_evse(
    evses: Sequence[Evse], uid: str | None, capability: Capability | None, *, exact: bool = False
) -> Evse | Unresolved:
    """The EVSE a command at a location goes to: the one named (any case, or as written
    when `exact`), else the first (by charger and EVSE number) that can do it, an AVAILABLE
    one first. REMOVED EVSEs do not exist for commands."""
    present = [e for e in evses if not e.removed]
    if uid is not None:
        named = next((e for e in present if _same(e.uid, uid, exact)), None)
        if named is None:
            return Unresolved.UNKNOWN
        if capability is not None and not named.can(capability):
            return Unresolved.NOT_SUPPORTED
        return named
    if not present:
        return Unresolved.UNKNOWN
    able = [e for e in present if capability is None or e.can(capability)]
    if not able:
        return Unresolved.NOT_SUPPORTED
    ordered = sorted(able, key=lambda e: (e.status != "AVAILABLE", e.charge_point_id, e.evse_id))
    return ordered[0]


# --- answers -------------------------------------------------------------------------------


def display_text(message: str) -> list[dict[str, str]]:
    """An OCPI DisplayText list with one English text."""
    return [{"language": "en", "text": message[:DISPLAY_TEXT_MAX]}]


def command_response(
    result: ResponseType, timeout_s: float, message: str | None = None
) -> dict[str, Any]:
    """The CommandResponse object (timeout in whole seconds, rounded up)."""
    out: dict[str, Any] = {"result": result.value, "timeout": max(0, math.ceil(timeout_s))}
    if message:
        out["message"] = display_text(message)
    return out


def command_result(result: ResultType, message: str | None = None) -> dict[str, Any]:
    """The CommandResult object POSTed to the response_url."""
    out: dict[str, Any] = {"result": result.value}
    if message:
        out["message"] = display_text(message)
    return out


# OCPP status words of a refusal that say more than REJECTED (both versions' words).
_REFUSALS = {
    "Occupied": ResultType.EVSE_OCCUPIED,
    "OngoingAuthorizedTransaction": ResultType.EVSE_OCCUPIED,
    "Faulted": ResultType.EVSE_INOPERATIVE,
    "Unavailable": ResultType.EVSE_INOPERATIVE,
    "NotSupported": ResultType.NOT_SUPPORTED,
    "UnlockFailed": ResultType.FAILED,
}
_UNSUPPORTED_CALL_ERRORS = frozenset({"NotImplemented", "NotSupported"})


def result_type(kind: CommandType, outcome: Outcome, status: str | None) -> ResultType:
    """The CommandResultType of an OCPP command's end. `status` is the charger's status word
    (the CALLERROR code for CALL_ERROR). A CancelReservation the charger rejects names a
    reservation it does not have (OCPP: Rejected = no such reservation)."""
    match outcome:
        case Outcome.ACCEPTED:
            return ResultType.ACCEPTED
        case Outcome.REJECTED:
            if kind is CommandType.CANCEL_RESERVATION and status == "Rejected":
                return ResultType.UNKNOWN_RESERVATION
            return _REFUSALS.get(status or "", ResultType.REJECTED)
        case Outcome.TIMED_OUT:
            return ResultType.TIMEOUT
        case Outcome.NOT_CONNECTED:
            return ResultType.EVSE_INOPERATIVE
        case Outcome.CALL_ERROR:
            if status in _UNSUPPORTED_CALL_ERRORS:
                return ResultType.NOT_SUPPORTED
            return ResultType.FAILED
        case Outcome.INVALID:
            return ResultType.REJECTED
    raise AssertionError(outcome)  # pragma: no cover


# --- a partner's reservation as a Session ---------------------------------------------------


def reservation_session_id(reservation_id: int) -> str:
    """The Session id of our reservation `reservation_id` (never a transaction's id)."""
    return f"R{reservation_id}"


def reservation_status(state: ReservationState) -> SessionStatus | None:
    """What a reservation's Session shows: RESERVATION while the charger holds it, COMPLETED
    once it ended (used, cancelled, expired, or refused after it was shown); None while the
    charger has not accepted it yet."""
    if state is ReservationState.ACTIVE:
        return SessionStatus.RESERVATION
    if state is ReservationState.PENDING:
        return None
    return SessionStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class ReservationFacts:
    """What a reservation's Session is made of. `info` is what the RESERVE_NOW left with it
    (csms.storage.reservations keeps it as the reservation's `ocpi` data): location_id,
    evse_uid, connector_id, currency, cdr_token and authorization_reference."""

    reservation_id: int
    status: SessionStatus
    start: datetime
    end: datetime | None
    info: Mapping[str, Any]
    last_updated: datetime


def reservation_info(
    *,
    location_id: str,
    evse: Evse,
    token: PartnerToken,
    authorization_reference: str | None,
    currency: str,
) -> dict[str, Any]:
    """The facts a reservation's Session needs, kept with the reservation (JSON-ready)."""
    return {
        "location_id": location_id,
        "evse_uid": evse.uid,
        "connector_id": evse.connectors[0] if evse.connectors else "1",
        "currency": currency,
        "cdr_token": token.cdr_token(),
        "authorization_reference": authorization_reference,
    }


def reservation_session(facts: ReservationFacts, us: Party) -> dict[str, Any]:
    """The OCPI Session of a reservation: no energy, no cost, auth_method COMMAND."""
    info = facts.info
    out: dict[str, Any] = {
        "country_code": us.country_code,
        "party_id": us.party_id,
        "id": reservation_session_id(facts.reservation_id),
        "start_date_time": ocpi_datetime(facts.start),
    }
    if facts.status is SessionStatus.COMPLETED:
        out["end_date_time"] = ocpi_datetime(max(facts.end or facts.start, facts.start))
    out["kwh"] = 0
    out["cdr_token"] = dict(info["cdr_token"])
    out["auth_method"] = AuthMethod.COMMAND.value
    reference = info.get("authorization_reference")
    if reference:
        out["authorization_reference"] = str(reference)[:ID_MAX]
    out["location_id"] = info["location_id"]
    out["evse_uid"] = info["evse_uid"]
    out["connector_id"] = info["connector_id"]
    out["currency"] = info["currency"]
    out["charging_periods"] = []
    out["status"] = facts.status.value
    out["last_updated"] = ocpi_datetime(facts.last_updated)
    return out
