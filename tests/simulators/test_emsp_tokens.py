"""The eMSP simulator's own tokens and commands without HTTP: Token objects, the token list's
pages, the authorize modes and answers, the command request objects, and the results kept
per command id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.emsp_commands import (
    CommandBook,
    Sent,
    cancel_reservation,
    read_response,
    reserve_now,
    start_session,
    stop_session,
    text_of,
    unlock_connector,
)
from simulators.emsp_tokens import (
    AuthorizeMode,
    TokenBook,
    authorization_info,
    location_references,
    new_token,
    parse_mode,
    parse_token_spec,
    token_type,
    where,
)
from simulators.errors import EmspError, OptionsError, PushRefused

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def token(uid: str, whitelist: str = "ALWAYS", at: datetime = T0, **kw: Any) -> dict[str, Any]:
    return new_token("nl", "ems", "Demo eMSP", uid, last_updated=at, whitelist=whitelist, **kw)


def test_a_token_object_has_every_required_field() -> None:
    assert token("04a1b2", "allowed_offline") == {
        "country_code": "NL",
        "party_id": "EMS",
        "uid": "04a1b2",
        "type": "RFID",
        "contract_id": "NL-EMS-C04A1B2",
        "visual_number": "NL-EMS-C04A1B2",
        "issuer": "Demo eMSP",
        "valid": True,
        "whitelist": "ALLOWED_OFFLINE",
        "last_updated": "2026-01-01T12:00:00.000Z",
    }
    app_user = token("U" * 36, "NEVER", type="app_user", valid=False)
    assert (app_user["type"], app_user["valid"], len(app_user["contract_id"])) == (
        "APP_USER",
        False,
        36,
    )
    for uid in ("", "U" * 37, "a/b", "a b"):
        with pytest.raises(OptionsError, match="uid"):
            token(uid)
    with pytest.raises(OptionsError, match="whitelist must be one of"):
        token("X1", "SOMETIMES")
    with pytest.raises(OptionsError, match="token type"):
        token("X1", type="CARD")
    assert token_type(None) == "RFID" and token_type("other") == "OTHER"


def test_token_specs_of_the_command_line() -> None:
    assert parse_token_spec("04A1") == ("04A1", "ALWAYS")
    assert parse_token_spec("04A1:never") == ("04A1", "NEVER")
    assert parse_token_spec("04A1:allowed_offline") == ("04A1", "ALLOWED_OFFLINE")
    with pytest.raises(OptionsError, match="whitelist"):
        parse_token_spec("04A1:sometimes")


def test_the_token_list_pages_and_filters_by_last_updated() -> None:
    book = TokenBook()
    for n in range(5):
        assert book.add(token(f"T{n}", at=T0 + timedelta(hours=n))) is True
    # Reissued: in place, the order kept; the uid compares case-insensitively.
    assert book.add(token("t1", "NEVER", at=T0 + timedelta(hours=1))) is False
    assert len(book) == 5

    page, total = book.page(0, 2)
    assert ([t["uid"] for t in page], total) == (["T0", "t1"], 5)
    assert [t["uid"] for t in book.page(4, 2)[0]] == ["T4"]
    assert book.page(9, 2) == ([], 5)
    # date_from inclusive, date_to exclusive.
    page, total = book.page(0, 10, T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert ([t["uid"] for t in page], total) == (["t1", "T2"], 2)

    # What goes out is a copy.
    page[0]["valid"] = False
    held = book.get("T1", "RFID")
    assert held is not None and held["valid"] is True
    assert book.get("T1", "APP_USER") is None


def test_a_patch_changes_the_held_token_and_says_what_to_send() -> None:
    book = TokenBook()
    book.add(token("T1"))
    later = T0 + timedelta(minutes=5)
    body = book.patch("t1", "RFID", {"valid": False, "whitelist": "never"}, later)
    assert body == {
        "valid": False,
        "whitelist": "NEVER",
        "last_updated": "2026-01-01T12:05:00.000Z",
    }
    held = book.get("T1")
    assert held is not None and (held["valid"], held["whitelist"]) == (False, "NEVER")
    with pytest.raises(OptionsError, match="no token T9"):
        book.patch("T9", "RFID", {"valid": False}, later)
    with pytest.raises(OptionsError, match="uid cannot change"):
        book.patch("T1", "RFID", {"uid": "T2"}, later)
    with pytest.raises(OptionsError, match="valid must be"):
        book.patch("T1", "RFID", {"valid": "no"}, later)


def test_authorize_modes() -> None:
    assert parse_mode("accept") == AuthorizeMode()
    assert parse_mode("deny") == AuthorizeMode("deny", "NOT_ALLOWED")
    assert parse_mode("deny:blocked") == AuthorizeMode("deny", "BLOCKED")
    assert parse_mode("slow") == AuthorizeMode("slow", seconds=10.0)
    assert parse_mode("SLOW:2.5").seconds == 2.5
    assert parse_mode("down").kind == "down"
    assert [parse_mode(m).line for m in ("deny:expired", "slow:3", "down")] == [
        "deny:EXPIRED",
        "slow:3",
        "down",
    ]
    for bad in ("maybe", "deny:ALLOWED", "slow:soon", "slow:-1", "down:5"):
        with pytest.raises(OptionsError):
            parse_mode(bad)

    valid, invalid = token("T1"), token("T2", valid=False)
    assert AuthorizeMode().answer(valid) == "ALLOWED"
    assert AuthorizeMode().answer(invalid) == "BLOCKED"
    assert parse_mode("slow:1").answer(valid) == "ALLOWED"
    assert parse_mode("deny:no_credit").answer(valid) == "NO_CREDIT"


def test_location_references_and_the_answer() -> None:
    assert location_references(None) is None and location_references({}) is None
    refs = location_references({"location_id": "LOC1", "evse_uids": ["E1", "E2"]})
    assert refs == {"location_id": "LOC1", "evse_uids": ["E1", "E2"]}
    assert location_references({"location_id": "L"}) == {"location_id": "L", "evse_uids": []}
    bads: list[Any] = [[], {"evse_uids": ["E1"]}, {"location_id": "L", "evse_uids": "E1"}]
    for bad in bads:
        with pytest.raises(PushRefused, check=lambda e: e.status_code == 2001):
            location_references(bad)
    assert where(refs) == "LOC1 [E1,E2]" and where(None) == "no location"

    t = token("T1")
    info = authorization_info(t, "ALLOWED", refs, "REF-1")
    assert info == {
        "allowed": "ALLOWED",
        "token": t,
        "location": refs,
        "authorization_reference": "REF-1",
    }
    # A refusal carries neither the location nor a reference.
    assert authorization_info(t, "BLOCKED", refs, "REF-2") == {"allowed": "BLOCKED", "token": t}


def test_command_request_objects() -> None:
    t = token("T1")
    url = "http://127.0.0.1:1/cb/START_SESSION/1"
    body = start_session(t, "LOC1", "E1", "2", "REF-1")(url)
    assert body == {
        "response_url": url,
        "token": t,
        "location_id": "LOC1",
        "evse_uid": "E1",
        "connector_id": "2",
        "authorization_reference": "REF-1",
    }
    assert start_session(t, "LOC1")(url) == {"response_url": url, "token": t, "location_id": "LOC1"}
    with pytest.raises(OptionsError, match="connector_id needs its evse_uid"):
        start_session(t, "LOC1", None, "2")
    with pytest.raises(OptionsError, match="lacks whitelist"):
        start_session({k: v for k, v in t.items() if k != "whitelist"}, "LOC1")
    with pytest.raises(OptionsError, match="location_id is required"):
        start_session(t, "")
    with pytest.raises(OptionsError, match="at most 36"):
        stop_session("S" * 37)

    assert stop_session("17")("u") == {"response_url": "u", "session_id": "17"}
    assert reserve_now(t, T0, "R1", "LOC1", "E1")("u") == {
        "response_url": "u",
        "token": t,
        "expiry_date": "2026-01-01T12:00:00.000Z",
        "reservation_id": "R1",
        "location_id": "LOC1",
        "evse_uid": "E1",
    }
    assert cancel_reservation("R1")("u") == {"response_url": "u", "reservation_id": "R1"}
    assert unlock_connector("LOC1", "E1", "1")("u") == {
        "response_url": "u",
        "location_id": "LOC1",
        "evse_uid": "E1",
        "connector_id": "1",
    }


def test_command_responses() -> None:
    answer = read_response(
        {"result": "REJECTED", "timeout": 30, "message": [{"language": "en", "text": "busy"}]}, "w"
    )
    assert (answer.result, answer.timeout, answer.message, answer.accepted) == (
        "REJECTED",
        30,
        "busy",
        False,
    )
    assert read_response({"result": "ACCEPTED", "timeout": 0}, "w").accepted
    for data, text in [
        ([], "not a CommandResponse"),
        ({"result": "OK", "timeout": 1}, "CommandResponseType"),
        ({"result": "ACCEPTED"}, "timeout None"),
        ({"result": "ACCEPTED", "timeout": True}, "timeout True"),
    ]:
        with pytest.raises(EmspError, match=f"^w: .*{text}"):
            read_response(data, "w")
    assert text_of("plain") == "plain" and text_of([{"language": "en"}]) is None


def test_results_are_kept_per_command_id() -> None:
    book = CommandBook()
    book.expect(Sent("c1", "RESERVE_NOW", {"response_url": "u"}, T0))
    book.take("RESERVE_NOW", "c1", {"result": "ACCEPTED"}, T0)
    second = book.take(
        "RESERVE_NOW",
        "c1",
        {"result": "CANCELED_RESERVATION", "message": [{"language": "en", "text": "roadworks"}]},
        T0,
    )
    assert [r.result for r in book.results_of("c1")] == ["ACCEPTED", "CANCELED_RESERVATION"]
    assert second.line == "command RESERVE_NOW c1 result: CANCELED_RESERVATION: roadworks"
    takes: list[tuple[str, str, Any, int]] = [
        ("RESERVE_NOW", "c2", {"result": "ACCEPTED"}, 2000),
        ("START_SESSION", "c1", {"result": "ACCEPTED"}, 2000),
        ("RESERVE_NOW", "c1", {"result": "FINE"}, 2001),
        ("RESERVE_NOW", "c1", ["ACCEPTED"], 2001),
    ]
    for command, cid, body, code in takes:

        def has_code(e: PushRefused, code: int = code) -> bool:
            return e.status_code == code

        with pytest.raises(PushRefused, check=has_code):
            book.take(command, cid, body, T0)
    assert len(book.results_of("c1")) == 2
    book.forget("c1")
    assert book.results_of("c1") == [] and "c1" not in book.sent
