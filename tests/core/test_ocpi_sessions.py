"""The OCPI Session object, its status and token, the pushes of sessions, CDRs and tariffs,
and when a session is pushed again; checked against the 2.2.1 field rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from csms.core import ocpi_pushes
from csms.core.cost import CdrDimensionType, ChargingPeriod, Cost, Dimension, cost_to_ocpi
from csms.core.ocpi_sessions import (
    AuthMethod,
    PushAction,
    PushState,
    SessionFacts,
    SessionStatus,
    TokenType,
    auth_method,
    cdr_token,
    closed_periods,
    final_ready,
    next_push,
    pushed_session,
    session_object,
    session_patch,
    session_status,
    token_type,
)
from csms.core.parties import Party
from csms.core.tariffs import Price
from csms.core.transactions import BillingState, Transaction, TransactionState
from tests.e2e.ocpi_rules import session_errors

US = Party("NL", "CSM")
EMS = Party("DE", "EMS")
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NOW = START + timedelta(minutes=45)
MINUTE = timedelta(minutes=1)


def tx(**changes: Any) -> Transaction:
    base = Transaction(
        id=17,
        charge_point_id="CP1",
        evse_id=1,
        connector_id=1,
        id_tag="CARD1",
        auth_status="Accepted",
        start_at=START,
        meter_start_wh=1000,
        state=TransactionState.ACTIVE,
    )
    return dataclasses.replace(base, **changes)


def ended(**changes: Any) -> Transaction:
    values: dict[str, Any] = {
        "state": TransactionState.COMPLETED,
        "stop_at": START + timedelta(minutes=30),
        "meter_stop_wh": 4000,
        "energy_wh": 3000,
        "billing": BillingState.BILLED.value,
    }
    return tx(**(values | changes))


def cost(periods: int = 3) -> dict[str, Any]:
    """Cost fields of a session with `periods` charging periods of 10 minutes."""
    made = Cost(
        currency="EUR",
        tariff_id="T1",
        charging_periods=tuple(
            ChargingPeriod(
                START + i * 10 * MINUTE,
                (
                    Dimension(CdrDimensionType.ENERGY, _d("1.25")),
                    Dimension(CdrDimensionType.TIME, _d("0.1666666")),
                ),
                "T1",
            )
            for i in range(periods)
        ),
        total_cost=Price(_d("1.50"), _d("1.815")),
        total_fixed_cost=None,
        total_energy_cost=Price(_d("1.50"), _d("1.815")),
        total_time_cost=None,
        total_parking_cost=None,
        total_energy_kwh=_d("3.75"),
        total_time_hours=_d("0.5"),
        total_parking_time_hours=_d("0"),
    )
    return {"currency": "EUR", **cost_to_ocpi(made)}


def _d(text: str) -> Decimal:
    return Decimal(text)


def facts(transaction: Transaction, **changes: Any) -> SessionFacts:
    base = SessionFacts(
        tx=transaction,
        us=US,
        owner=EMS,
        token_type="ISO14443",
        location_id="LOC1",
        evse_uid="CP1*1",
        cost=cost(),
        last_updated=NOW,
        whitelisted=True,
        meter_id="M-1",
    )
    return dataclasses.replace(base, **changes)


def test_a_running_session() -> None:
    session = session_object(facts(tx()))
    assert session_errors(session) == []
    assert session["country_code"] == "NL" and session["party_id"] == "CSM"  # the CPO's
    assert session["id"] == "17"
    assert session["start_date_time"] == "2026-11-23T10:00:00Z"
    assert "end_date_time" not in session
    assert session["kwh"] == 3.75 and isinstance(session["kwh"], float)
    assert session["cdr_token"] == {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "CARD1",
        "type": "RFID",
        "contract_id": "CARD1",
    }
    assert session["auth_method"] == "WHITELIST"
    assert "authorization_reference" not in session
    assert (session["location_id"], session["evse_uid"], session["connector_id"]) == (
        "LOC1",
        "CP1*1",
        "1",
    )
    assert session["meter_id"] == "M-1"
    assert session["currency"] == "EUR"
    assert session["total_cost"] == {"excl_vat": 1.5, "incl_vat": 1.815}
    assert len(session["charging_periods"]) == 3
    assert session["status"] == "ACTIVE"
    assert session["last_updated"] == "2026-11-23T10:45:00Z"


def test_a_completed_session() -> None:
    session = session_object(facts(ended(), last_updated=START + 31 * MINUTE))
    assert session_errors(session) == []
    assert session["end_date_time"] == "2026-11-23T10:30:00Z"
    assert session["status"] == "COMPLETED"
    assert session["last_updated"] == "2026-11-23T10:31:00Z"


def test_optional_fields_and_a_reference() -> None:
    session = session_object(
        facts(tx(id_tag=None), meter_id=None, authorization_reference="REF-1", owner=US)
    )
    assert session_errors(session) == []
    assert "meter_id" not in session
    assert session["authorization_reference"] == "REF-1"
    assert session["cdr_token"]["uid"] == "UNKNOWN"
    assert session["cdr_token"]["country_code"] == "NL"


@pytest.mark.parametrize(
    ("transaction", "status"),
    [
        (tx(), SessionStatus.ACTIVE),
        (tx(auth_status=None, id_tag=None), SessionStatus.PENDING),
        (tx(auth_status="Invalid"), SessionStatus.INVALID),
        (tx(auth_status="Blocked"), SessionStatus.INVALID),
        (ended(), SessionStatus.COMPLETED),
        (ended(auth_status=None), SessionStatus.COMPLETED),
        (ended(billing=BillingState.VOID.value), SessionStatus.INVALID),
        (ended(billing=BillingState.HELD.value), SessionStatus.COMPLETED),
        (ended(auth_status="Expired", billing=BillingState.VOID.value), SessionStatus.INVALID),
    ],
)
def test_status(transaction: Transaction, status: SessionStatus) -> None:
    assert session_status(transaction) is status


@pytest.mark.parametrize(
    ("ocpp", "ocpi"),
    [
        (None, TokenType.RFID),
        ("ISO14443", TokenType.RFID),
        ("ISO15693", TokenType.RFID),
        ("Local", TokenType.RFID),
        ("Central", TokenType.APP_USER),
        ("NoAuthorization", TokenType.AD_HOC_USER),
        ("eMAID", TokenType.OTHER),
        ("MacAddress", TokenType.OTHER),
        ("KeyCode", TokenType.OTHER),
        ("Something", TokenType.OTHER),
    ],
)
def test_token_types(ocpp: str | None, ocpi: TokenType) -> None:
    assert token_type(ocpp) is ocpi


def test_auth_method() -> None:
    assert auth_method(tx(remote_start_id=4), whitelisted=True) is AuthMethod.COMMAND
    assert auth_method(tx(), whitelisted=True) is AuthMethod.WHITELIST
    assert auth_method(tx()) is AuthMethod.AUTH_REQUEST


def test_cdr_token_is_cut_to_the_ocpi_lengths() -> None:
    token = cdr_token(EMS, "X" * 40, "eMAID", contract_id="DE-EMS-C" + "1" * 40)
    assert len(token["uid"]) == 36 and len(token["contract_id"]) == 36
    assert token["type"] == "OTHER"


def test_a_running_session_is_put_with_its_closed_periods_then_patched() -> None:
    session = session_object(facts(tx()))
    put = pushed_session(session, active=True)
    assert len(put["charging_periods"]) == 2  # the third still grows
    assert len(closed_periods(session, active=False)) == 3
    # Nothing closed since: the PATCH carries no periods.
    body, sent = session_patch(session, 2)
    assert sent == 2 and "charging_periods" not in body
    assert set(body) == {"last_updated", "kwh", "status", "total_cost"}
    # Two more periods later, one of them closed: it alone is appended.
    later = session_object(facts(tx(), cost=cost(periods=4)))
    body, sent = session_patch(later, 2)
    assert sent == 3
    assert [p["start_date_time"] for p in body["charging_periods"]] == ["2026-11-23T10:20:00Z"]
    # Periods re-cut into fewer: nothing is appended and the count does not go back.
    body, sent = session_patch(session_object(facts(tx(), cost=cost(periods=1))), 3)
    assert sent == 3 and "charging_periods" not in body


def state(sent: int = 0, completed: bool = False, pushed: datetime = NOW - MINUTE) -> PushState:
    return PushState(sent, completed, pushed)


def plan(current: PushState | None, **kwargs: Any) -> PushAction:
    values: dict[str, Any] = {
        "entitled": True,
        "active": True,
        "ready": False,
        "changed_at": START,
        "now": NOW,
        "interval": MINUTE,
    }
    return next_push(current, **(values | kwargs))


def test_when_sessions_are_pushed() -> None:
    # A running session: PUT once, then PATCH each interval.
    assert plan(None) is PushAction.PUT
    assert plan(state(pushed=NOW - MINUTE)) is PushAction.PATCH
    assert plan(state(pushed=NOW - MINUTE / 2)) is PushAction.NONE
    # Ended: final once billed (ready), not before.
    assert plan(state(), active=False) is PushAction.NONE
    assert plan(state(), active=False, ready=True) is PushAction.FINAL
    assert plan(None, active=False) is PushAction.NONE
    assert plan(None, active=False, ready=True) is PushAction.FINAL
    # Final already pushed: again only if the session changed since (voided, re-billed).
    done = state(completed=True, pushed=NOW - MINUTE)
    assert plan(done, active=False, ready=True, changed_at=NOW - 2 * MINUTE) is PushAction.NONE
    assert plan(done, active=False, ready=True, changed_at=NOW) is PushAction.FINAL
    # A partner that may not see it: nothing, or stop following it.
    assert plan(None, entitled=False) is PushAction.NONE
    assert plan(state(), entitled=False) is PushAction.CLOSE
    assert plan(done, entitled=False) is PushAction.NONE
    # Closed while running and entitled again: it starts over.
    assert plan(done) is PushAction.PUT


def test_final_waits_for_billing_within_a_grace() -> None:
    stopped = ended(billing=BillingState.PENDING.value)
    grace = 2 * MINUTE
    assert not final_ready(stopped, NOW - MINUTE, NOW, grace)
    assert final_ready(stopped, NOW - grace, NOW, grace)
    for billing in ("billed", "held", "void", None):
        assert final_ready(ended(billing=billing), NOW, NOW, grace)
    assert not final_ready(tx(), START, NOW, grace)


def test_push_urls_and_keys() -> None:
    session = session_object(facts(tx()))
    put = ocpi_pushes.session_put("https://emsp.example/ocpi/2.2.1/sessions/", US, session)
    assert put.method == "PUT" and put.module == "sessions"
    assert put.url == "https://emsp.example/ocpi/2.2.1/sessions/NL/CSM/17"
    assert put.object_key == "sessions/17" and put.body == session
    patch = ocpi_pushes.session_patch("https://e/s", US, session, {"kwh": 1})
    assert (patch.method, patch.url, patch.object_key, patch.body) == (
        "PATCH",
        "https://e/s/NL/CSM/17",
        "sessions/17",
        {"kwh": 1},
    )
    # Behind a hub, a session's pushes are routed to its token's eMSP.
    owner = Party(session["cdr_token"]["country_code"], session["cdr_token"]["party_id"])
    assert put.to == patch.to == owner
    cdr = ocpi_pushes.cdr_post(
        "https://e/cdrs",
        {
            "id": "NLCSM1",
            "session_id": "17",
            "cdr_token": {"country_code": "DE", "party_id": "X1Y"},
        },
    )
    # The CDR queues behind its session's pushes.
    assert (cdr.method, cdr.url, cdr.object_key) == ("POST", "https://e/cdrs", "sessions/17")
    assert cdr.to == Party("DE", "X1Y")
    assert ocpi_pushes.cdr_post("https://e/cdrs", {"id": "C", "cdr_token": {}}).to is None
    tariff = ocpi_pushes.tariff_put("https://e/tariffs", US, {"id": "T 1/2"})
    assert (
        tariff.url == "https://e/tariffs/NL/CSM/T%201%2F2" and tariff.object_key == "tariffs/T 1/2"
    )
    gone = ocpi_pushes.tariff_delete("https://e/tariffs", US, "T1")
    assert (gone.method, gone.body, gone.object_key) == ("DELETE", None, "tariffs/T1")


def test_pushes_keep_the_path_after_the_endpoint() -> None:
    """What the pusher puts after the partner's endpoint as it is when the push goes out
    (ocpi_cpo.outgoing): the URL is the endpoint of enqueueing plus this path."""
    session = session_object(facts(tx()))
    put = ocpi_pushes.session_put("https://e/s/", US, session)
    patch = ocpi_pushes.session_patch("https://e/s", US, session, {"kwh": 1})
    assert put.path == patch.path == "NL/CSM/17"
    assert put.url == patch.url == ocpi_pushes.under("https://e/s/", "NL/CSM/17")
    cdr = ocpi_pushes.cdr_post("https://e/cdrs", {"id": "C", "cdr_token": {}})
    assert cdr.path == "" and ocpi_pushes.under("https://e/cdrs", "") == "https://e/cdrs"
    tariff = ocpi_pushes.tariff_put("https://e/tariffs", US, {"id": "T 1/2"})
    assert tariff.path == "NL/CSM/T%201%2F2"
    assert ocpi_pushes.tariff_delete("https://e/tariffs", US, "T1").path == "NL/CSM/T1"
