"""Commands the eMSP simulator sends a CPO (OCPI 2.2.1 commands module, as Sender): the five
request objects, the CommandResponse read back, and the CommandResults the CPO posts to each
command's response_url, kept per command id.

Pure values and rules; sending, serving the callbacks and waiting for them are simulators.emsp's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulators.clock import wire_time
from simulators.errors import EmspError, OptionsError, PushRefused

__all__ = [
    "COMMANDS",
    "RESPONSES",
    "RESULTS",
    "CommandBook",
    "CommandResponse",
    "CommandResult",
    "Sent",
    "cancel_reservation",
    "read_response",
    "reserve_now",
    "start_session",
    "stop_session",
    "text_of",
    "unlock_connector",
]

Json = dict[str, Any]
#: Builds a command's request object for its response_url.
Build = Callable[[str], Json]

COMMANDS = (
    "CANCEL_RESERVATION",
    "RESERVE_NOW",
    "START_SESSION",
    "STOP_SESSION",
    "UNLOCK_CONNECTOR",
)
#: CommandResponseType: the CPO's answer to the request itself.
RESPONSES = ("ACCEPTED", "NOT_SUPPORTED", "REJECTED", "UNKNOWN_SESSION")
#: CommandResultType: what the charger made of it, posted later to the response_url.
RESULTS = (
    "ACCEPTED",
    "CANCELED_RESERVATION",
    "EVSE_OCCUPIED",
    "EVSE_INOPERATIVE",
    "FAILED",
    "NOT_SUPPORTED",
    "REJECTED",
    "TIMEOUT",
    "UNKNOWN_RESERVATION",
)
_ID_MAX = 36
# A command's token must carry the Token object's required fields.
_TOKEN_FIELDS = (
    "country_code",
    "party_id",
    "uid",
    "type",
    "contract_id",
    "issuer",
    "valid",
    "whitelist",
    "last_updated",
)


def text_of(message: Any) -> str | None:
    """The first text of a DisplayText list (a plain string is taken too); None when none."""
    if isinstance(message, str):
        return message or None
    if isinstance(message, list):
        for item in message:
            if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"]:
                return str(item["text"])
    return None


@dataclass(frozen=True, slots=True)
class CommandResponse:
    """The CPO's CommandResponse: whether it passes the command on, and for how many seconds
    a result may take (None: OCPI 2.1.1 does not say)."""

    result: str
    timeout: int | None
    message: str | None = None

    @property
    def accepted(self) -> bool:
        return self.result == "ACCEPTED"


@dataclass(frozen=True, slots=True)
class Sent:
    """A command as sent: the id its response_url ends with, its type, the request object,
    when, and the CPO's CommandResponse (None until the CPO answered)."""

    id: str
    command: str
    request: Json = field(repr=False)
    at: datetime
    response: CommandResponse | None = None

    @property
    def response_url(self) -> str:
        return str(self.request["response_url"])

    @property
    def line(self) -> str:
        if self.response is None:
            return f"command {self.command} {self.id}: no answer"
        r = self.response
        text = f"command {self.command} {self.id}: {r.result}"
        if r.timeout is not None:
            text += f" (timeout {r.timeout} s)"
        return f"{text}: {r.message}" if r.message else text

    def as_json(self) -> Json:
        r = self.response
        return {
            "event": "command",
            "command": self.command,
            "id": self.id,
            "at": wire_time(self.at),
            "request": self.request,
            "response": None
            if r is None
            else {"result": r.result, "timeout": r.timeout, "message": r.message},
        }


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One CommandResult the CPO posted to a command's response_url."""

    command_id: str
    command: str
    result: str
    message: str | None
    body: Any = field(repr=False)
    at: datetime

    @property
    def line(self) -> str:
        text = f"command {self.command} {self.command_id} result: {self.result}"
        return f"{text}: {self.message}" if self.message else text


def _id(value: str | None, what: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise OptionsError(f"{what} is required")
        return None
    if len(value) > _ID_MAX:
        raise OptionsError(f"{what} must be at most {_ID_MAX} characters: {value!r}")
    return value


def _token(token: Json) -> Json:
    missing = [f for f in _TOKEN_FIELDS if token.get(f) is None]
    if missing:
        raise OptionsError(f"the command's token lacks {', '.join(missing)}")
    return copy.deepcopy(token)


def _object(response_url: str, **fields: Any) -> Json:
    """A request object: response_url first, absent optional fields left out."""
    body: Json = {"response_url": response_url}
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def start_session(
    token: Json,
    location_id: str,
    evse_uid: str | None = None,
    connector_id: str | None = None,
    authorization_reference: str | None = None,
) -> Build:
    """StartSession: `token` at a location (an EVSE, a connector of it); OptionsError for a
    connector without its EVSE."""
    _id(location_id, "location_id")
    _id(evse_uid, "evse_uid", required=False)
    _id(connector_id, "connector_id", required=False)
    _id(authorization_reference, "authorization_reference", required=False)
    if connector_id and not evse_uid:
        raise OptionsError("START_SESSION: a connector_id needs its evse_uid")
    checked = _token(token)
    return lambda url: _object(
        url,
        token=checked,
        location_id=location_id,
        evse_uid=evse_uid or None,
        connector_id=connector_id or None,
        authorization_reference=authorization_reference or None,
    )


def stop_session(session_id: str) -> Build:
    _id(session_id, "session_id")
    return lambda url: _object(url, session_id=session_id)


def reserve_now(
    token: Json,
    expiry_date: datetime,
    reservation_id: str,
    location_id: str,
    evse_uid: str | None = None,
    authorization_reference: str | None = None,
) -> Build:
    _id(reservation_id, "reservation_id")
    _id(location_id, "location_id")
    _id(evse_uid, "evse_uid", required=False)
    _id(authorization_reference, "authorization_reference", required=False)
    checked = _token(token)
    expiry = wire_time(expiry_date)
    return lambda url: _object(
        url,
        token=checked,
        expiry_date=expiry,
        reservation_id=reservation_id,
        location_id=location_id,
        evse_uid=evse_uid or None,
        authorization_reference=authorization_reference or None,
    )


def cancel_reservation(reservation_id: str) -> Build:
    _id(reservation_id, "reservation_id")
    return lambda url: _object(url, reservation_id=reservation_id)


def unlock_connector(location_id: str, evse_uid: str, connector_id: str) -> Build:
    _id(location_id, "location_id")
    _id(evse_uid, "evse_uid")
    _id(connector_id, "connector_id")
    return lambda url: _object(
        url, location_id=location_id, evse_uid=evse_uid, connector_id=connector_id
    )


def read_response(data: Any, where: str) -> CommandResponse:
    """The CommandResponse in a CPO's answer to `where`; EmspError when it is not one."""
    if not isinstance(data, dict):
        raise EmspError(f"{where}: the answer's data is not a CommandResponse")
    result = data.get("result")
    if result not in RESPONSES:
        raise EmspError(f"{where}: CommandResponse result {result!r} is not a CommandResponseType")
    timeout = data.get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise EmspError(f"{where}: CommandResponse timeout {timeout!r} is not a number of seconds")
    return CommandResponse(str(result), int(timeout), text_of(data.get("message")))


class CommandBook:
    """The commands sent, by id, and the results posted for each (a reservation may get a
    second one: CANCELED_RESERVATION). `results`: the values a result may have (2.2.1's
    CommandResultType; in 2.1.1 the CommandResponseType), and `bare`: whether a bare value
    is taken for a result object (2.1.1's eMSP interface names the type, not an object)."""

    def __init__(self, results: tuple[str, ...] = RESULTS, *, bare: bool = False) -> None:
        self.sent: dict[str, Sent] = {}
        self.results: dict[str, list[CommandResult]] = {}
        self.allowed = results
        self.bare = bare

    def expect(self, sent: Sent) -> None:
        """A command about to go out: its result may arrive before its response does."""
        self.sent[sent.id] = sent
        self.results.setdefault(sent.id, [])

    def answered(self, command_id: str, response: CommandResponse) -> Sent:
        sent = self.sent[command_id]
        self.sent[command_id] = Sent(sent.id, sent.command, sent.request, sent.at, response)
        return self.sent[command_id]

    def forget(self, command_id: str) -> None:
        """A command that never reached the CPO."""
        self.sent.pop(command_id, None)
        self.results.pop(command_id, None)

    def results_of(self, command_id: str) -> list[CommandResult]:
        return list(self.results.get(command_id, ()))

    def take(self, command: str, command_id: str, body: Any, at: datetime) -> CommandResult:
        """A CommandResult posted to a response_url; PushRefused for an id we never sent
        (404) or a body that is not a CommandResult (2001)."""
        sent = self.sent.get(command_id)
        if sent is None or sent.command != command:
            raise PushRefused(404, 2000, f"no {command} command {command_id} was sent")
        if self.bare and isinstance(body, str):
            body = {"result": body}
        if not isinstance(body, dict):
            raise PushRefused(200, 2001, "the CommandResult must be a JSON object")
        result = body.get("result")
        if result not in self.allowed:
            allowed = ", ".join(self.allowed)
            raise PushRefused(200, 2001, f"result {result!r} is not one of {allowed}")
        taken = CommandResult(
            command_id, command, str(result), text_of(body.get("message")), body, at
        )
        self.results[command_id].append(taken)
        return taken
