"""OCPI commands without I/O: the five request objects and their Token checked field by
field, the EVSE a command goes to, the CommandResponse/CommandResult bodies, the mapping of
OCPP outcomes to CommandResultType and a reservation's Session."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.core.commands import Outcome
from csms.core.ocpi_commands import (
    CancelReservation,
    CommandType,
    Evse,
    InvalidCommand,
    ReservationFacts,
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
    parse_token,
    reservation_info,
    reservation_session,
    reservation_status,
    result_type,
)
from csms.core.ocpi_locations import Capability
from csms.core.ocpi_sessions import SessionStatus
from csms.core.parties import Party
from csms.core.reservations import ReservationState
from csms.core.roaming import Whitelist
from csms.handlers.v16.limits import LIMITS as V16_LIMITS
from csms.handlers.v201.limits import LIMITS as V201_LIMITS
from tests.e2e.ocpi_rules import session_errors

US = Party("NL", "CSM")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
URL = "https://emsp.example/results/1"
TOKEN: dict[str, Any] = {
    "country_code": "de",
    "party_id": "ems",
    "uid": "APP-1",
    "type": "APP_USER",
    "contract_id": "DE-EMS-C00001-1",
    "issuer": "Fake eMSP",
    "group_id": "GRP-1",
    "valid": True,
    "whitelist": "NEVER",
    "last_updated": "2026-11-23T10:00:00Z",
}


def body(kind: CommandType, **changes: Any) -> dict[str, Any]:
    base: dict[str, dict[str, Any]] = {
        CommandType.START_SESSION: {
            "response_url": URL,
            "token": copy.deepcopy(TOKEN),
            "location_id": "LOC1",
            "evse_uid": "CP1*1",
            "connector_id": "1",
            "authorization_reference": "REF-1",
        },
        CommandType.STOP_SESSION: {"response_url": URL, "session_id": "17"},
        CommandType.RESERVE_NOW: {
            "response_url": URL,
            "token": copy.deepcopy(TOKEN),
            "expiry_date": "2026-11-23T13:00:00Z",
            "reservation_id": "res-9",
            "location_id": "LOC1",
        },
        CommandType.CANCEL_RESERVATION: {"response_url": URL, "reservation_id": "res-9"},
        CommandType.UNLOCK_CONNECTOR: {
            "response_url": URL,
            "location_id": "LOC1",
            "evse_uid": "CP1*2",
            "connector_id": "1",
        },
    }
    out = base[kind]
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_every_command_parses() -> None:
    start = parse_command(CommandType.START_SESSION, body(CommandType.START_SESSION))
    assert isinstance(start, StartSession)
    assert (start.location_id, start.evse_uid, start.connector_id) == ("LOC1", "CP1*1", "1")
    assert start.authorization_reference == "REF-1" and start.response_url == URL
    token = start.token
    assert (token.country_code, token.party_id, token.party) == ("DE", "EMS", Party("DE", "EMS"))
    assert (token.uid, token.type, token.contract_id) == ("APP-1", "APP_USER", "DE-EMS-C00001-1")
    assert token.whitelist is Whitelist.NEVER and token.valid is True
    assert token.last_updated == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert token.group_id == "GRP-1" and token.data["issuer"] == "Fake eMSP"
    assert token.cdr_token() == {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "APP-1",
        "type": "APP_USER",
        "contract_id": "DE-EMS-C00001-1",
    }

    stop = parse_command(CommandType.STOP_SESSION, body(CommandType.STOP_SESSION))
    assert stop == StopSession(URL, "17")
    reserve = parse_command(CommandType.RESERVE_NOW, body(CommandType.RESERVE_NOW))
    assert isinstance(reserve, ReserveNow)
    assert reserve.expiry_date == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert (reserve.reservation_id, reserve.evse_uid, reserve.authorization_reference) == (
        "res-9",
        None,
        None,
    )
    cancel = parse_command(CommandType.CANCEL_RESERVATION, body(CommandType.CANCEL_RESERVATION))
    assert cancel == CancelReservation(URL, "res-9")
    unlock = parse_command(CommandType.UNLOCK_CONNECTOR, body(CommandType.UNLOCK_CONNECTOR))
    assert unlock == UnlockConnector(URL, "LOC1", "CP1*2", "1")


@pytest.mark.parametrize(
    ("kind", "changes", "complaint"),
    [
        (CommandType.START_SESSION, {"response_url": None}, "response_url is missing"),
        (CommandType.START_SESSION, {"response_url": "ftp://x/y"}, "http(s) URL"),
        (CommandType.START_SESSION, {"location_id": None}, "location_id is missing"),
        (CommandType.START_SESSION, {"location_id": "L" * 37}, "longer than 36"),
        (CommandType.START_SESSION, {"evse_uid": None}, "connector_id is given without"),
        (CommandType.START_SESSION, {"token": None}, "token: must be a JSON object"),
        (CommandType.START_SESSION, {"token": "APP-1"}, "token: must be a JSON object"),
        (CommandType.STOP_SESSION, {"session_id": 17}, "session_id must be a non-empty"),
        (CommandType.STOP_SESSION, {"session_id": ""}, "session_id must be a non-empty"),
        (CommandType.RESERVE_NOW, {"expiry_date": "tomorrow"}, "expiry_date is not an OCPI"),
        (CommandType.RESERVE_NOW, {"reservation_id": None}, "reservation_id is missing"),
        (CommandType.CANCEL_RESERVATION, {"reservation_id": "é"}, "printable ASCII"),
        (CommandType.UNLOCK_CONNECTOR, {"connector_id": None}, "connector_id is missing"),
        (CommandType.UNLOCK_CONNECTOR, {"evse_uid": None}, "evse_uid is missing"),
    ],
)
def test_invalid_fields_are_named(
    kind: CommandType, changes: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(InvalidCommand, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse_command(kind, body(kind, **changes))


def test_a_body_that_is_no_object() -> None:
    with pytest.raises(InvalidCommand, match="the body must be a JSON object"):
        parse_command(CommandType.STOP_SESSION, ["session_id", "17"])


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"uid": None}, "token.uid: is required"),
        ({"type": "CARD"}, "token.type: must be one of"),
        ({"whitelist": "SOMETIMES"}, "token.whitelist: must be one of"),
        ({"valid": "yes"}, "token.valid: must be true or false"),
        ({"issuer": None}, "token.issuer: is required"),
        ({"issuer": "x" * 65}, "token.issuer: must be at most 64"),
        ({"last_updated": None}, "token.last_updated: is required"),
        ({"country_code": "DEU"}, "token.country_code: must be an ISO 3166-1"),
        ({"party_id": "E-S"}, "token.party_id: must be 3 letters"),
        ({"contract_id": "C" * 37}, "token.contract_id: must be at most 36"),
    ],
)
def test_token_rules(changes: dict[str, Any], complaint: str) -> None:
    raw = {**TOKEN, **changes}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InvalidCommand, match=complaint):
        parse_token(raw)


def test_id_tag_length_per_version() -> None:
    assert fits_charger("A" * 20, V16_LIMITS) and not fits_charger("A" * 21, V16_LIMITS)
    assert fits_charger("A" * 36, V201_LIMITS) and fits_charger("A" * 36, None)


def evse(cp: str, n: int, status: str = "AVAILABLE", caps: tuple[str, ...] = ()) -> Evse:
    everything = (
        Capability.REMOTE_START_STOP_CAPABLE.value,
        Capability.RESERVABLE.value,
        Capability.UNLOCK_CAPABLE.value,
    )
    return Evse(cp, n, f"{cp}*{n}", status, caps or everything, ("1",))


def test_the_evse_a_command_goes_to() -> None:
    evses = [
        evse("CP1", 1, "CHARGING"),
        evse("CP1", 2, "AVAILABLE", (Capability.RFID_READER.value,)),
        evse("CP2", 1, "AVAILABLE"),
        evse("CP3", 1, "REMOVED"),
    ]
    start = Capability.REMOTE_START_STOP_CAPABLE
    # Named: any case; a REMOVED one does not exist; one without the capability cannot.
    assert find_evse(evses, "cp1*1", start) == evses[0]
    assert find_evse(evses, "CP3*1", start) is Unresolved.UNKNOWN
    assert find_evse(evses, "CP9*1", start) is Unresolved.UNKNOWN
    assert find_evse(evses, "CP1*2", start) is Unresolved.NOT_SUPPORTED
    assert find_evse(evses, "CP1*2", None) == evses[1]
    # Not named: an AVAILABLE one that can, before a busy one.
    assert find_evse(evses, None, start) == evses[2]
    assert find_evse(evses[:1], None, start) == evses[0]
    assert find_evse(evses[1:2], None, start) is Unresolved.NOT_SUPPORTED
    assert find_evse([evses[3]], None, start) is Unresolved.UNKNOWN
    assert evses[0].connector("1") == "1" and evses[0].connector("2") is None


def test_published_evse_data() -> None:
    data = {
        "uid": "CP1*1",
        "status": "AVAILABLE",
        "capabilities": ["RESERVABLE"],
        "connectors": [{"id": "1", "tariff_ids": ["T1"]}, {"id": "2"}],
    }
    found = Evse.from_published("CP1", 1, data)
    assert found == Evse("CP1", 1, "CP1*1", "AVAILABLE", ("RESERVABLE",), ("1", "2"), ("T1",))
    assert found.can(Capability.RESERVABLE) and not found.can(Capability.UNLOCK_CAPABLE)


def test_response_and_result_bodies() -> None:
    assert command_response(ResponseType.ACCEPTED, 35.2) == {"result": "ACCEPTED", "timeout": 36}
    refused = command_response(ResponseType.UNKNOWN_SESSION, 30, "no session '9'")
    assert refused == {
        "result": "UNKNOWN_SESSION",
        "timeout": 30,
        "message": [{"language": "en", "text": "no session '9'"}],
    }
    assert command_result(ResultType.TIMEOUT) == {"result": "TIMEOUT"}
    long = command_result(ResultType.FAILED, "x" * 600)
    assert len(long["message"][0]["text"]) == 512


@pytest.mark.parametrize(
    ("kind", "outcome", "status", "expected"),
    [
        (CommandType.START_SESSION, Outcome.ACCEPTED, "Accepted", ResultType.ACCEPTED),
        (CommandType.START_SESSION, Outcome.REJECTED, "Rejected", ResultType.REJECTED),
        (CommandType.RESERVE_NOW, Outcome.REJECTED, "Occupied", ResultType.EVSE_OCCUPIED),
        (CommandType.RESERVE_NOW, Outcome.REJECTED, "Faulted", ResultType.EVSE_INOPERATIVE),
        (CommandType.RESERVE_NOW, Outcome.REJECTED, "Unavailable", ResultType.EVSE_INOPERATIVE),
        (CommandType.RESERVE_NOW, Outcome.REJECTED, "Rejected", ResultType.REJECTED),
        (
            CommandType.CANCEL_RESERVATION,
            Outcome.REJECTED,
            "Rejected",
            ResultType.UNKNOWN_RESERVATION,
        ),
        (CommandType.UNLOCK_CONNECTOR, Outcome.ACCEPTED, "Unlocked", ResultType.ACCEPTED),
        (CommandType.UNLOCK_CONNECTOR, Outcome.REJECTED, "UnlockFailed", ResultType.FAILED),
        (CommandType.UNLOCK_CONNECTOR, Outcome.REJECTED, "NotSupported", ResultType.NOT_SUPPORTED),
        (
            CommandType.UNLOCK_CONNECTOR,
            Outcome.REJECTED,
            "OngoingAuthorizedTransaction",
            ResultType.EVSE_OCCUPIED,
        ),
        (CommandType.STOP_SESSION, Outcome.TIMED_OUT, None, ResultType.TIMEOUT),
        (CommandType.STOP_SESSION, Outcome.NOT_CONNECTED, None, ResultType.EVSE_INOPERATIVE),
        (CommandType.STOP_SESSION, Outcome.CALL_ERROR, "NotImplemented", ResultType.NOT_SUPPORTED),
        (CommandType.STOP_SESSION, Outcome.CALL_ERROR, "NotSupported", ResultType.NOT_SUPPORTED),
        (CommandType.STOP_SESSION, Outcome.CALL_ERROR, "InternalError", ResultType.FAILED),
        (CommandType.STOP_SESSION, Outcome.INVALID, None, ResultType.REJECTED),
    ],
)
def test_outcomes_become_result_types(
    kind: CommandType, outcome: Outcome, status: str | None, expected: ResultType
) -> None:
    assert result_type(kind, outcome, status) is expected


def test_reservation_statuses() -> None:
    assert reservation_status(ReservationState.PENDING) is None
    assert reservation_status(ReservationState.ACTIVE) is SessionStatus.RESERVATION
    for ended in (
        ReservationState.USED,
        ReservationState.CANCELLED,
        ReservationState.EXPIRED,
        ReservationState.REJECTED,
    ):
        assert reservation_status(ended) is SessionStatus.COMPLETED


def test_a_reservation_as_a_session() -> None:
    token = parse_token(TOKEN)
    info = reservation_info(
        location_id="LOC1",
        evse=evse("CP1", 2),
        token=token,
        authorization_reference="REF-7",
        currency="EUR",
    )
    held = ReservationFacts(5, SessionStatus.RESERVATION, NOW, None, info, NOW)
    session = reservation_session(held, US)
    assert session_errors(session) == []
    assert session["id"] == "R5" and session["status"] == "RESERVATION"
    assert (session["country_code"], session["party_id"]) == ("NL", "CSM")
    assert session["kwh"] == 0 and session["charging_periods"] == []
    assert session["auth_method"] == "COMMAND" and session["authorization_reference"] == "REF-7"
    assert session["cdr_token"] == token.cdr_token()
    assert (session["location_id"], session["evse_uid"], session["connector_id"]) == (
        "LOC1",
        "CP1*2",
        "1",
    )
    assert session["start_date_time"] == "2026-11-23T12:00:00Z"
    assert "end_date_time" not in session and "total_cost" not in session
    later = NOW + timedelta(minutes=20)
    done = reservation_session(
        ReservationFacts(5, SessionStatus.COMPLETED, NOW, later, info, later), US
    )
    assert session_errors(done) == []
    assert done["status"] == "COMPLETED" and done["end_date_time"] == "2026-11-23T12:20:00Z"
    assert done["last_updated"] == "2026-11-23T12:20:00Z" and done["kwh"] == 0
