"""The roaming decision for another party's token: each whitelist rule with an answer, with
no answer for each reason, and the token types a charger's id token may be."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.core.authorization import AuthStatus
from csms.core.ocpi_sessions import AuthMethod, TokenType
from csms.core.roaming import (
    Allowed,
    NoAnswer,
    PartnerToken,
    RealtimeAnswer,
    Whitelist,
    decide_roaming,
    needs_realtime,
    ocpp_token_type,
    offline_usable,
    presented_types,
)


def token(whitelist: Whitelist, valid: bool = True) -> PartnerToken:
    return PartnerToken(
        "DE",
        "EMS",
        "CARD1",
        "RFID",
        "DE-EMS-C1",
        whitelist,
        valid,
        datetime(2026, 11, 1, tzinfo=UTC),
        {"group_id": "FLEET"},
    )


def test_always_accepts_without_asking() -> None:
    t = token(Whitelist.ALWAYS)
    assert not needs_realtime(t)
    grant = decide_roaming(t, None)
    assert grant.status is AuthStatus.ACCEPTED
    assert grant.method is AuthMethod.WHITELIST
    assert grant.authorization_reference is None
    assert grant.cdr_token == {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "CARD1",
        "type": "RFID",
        "contract_id": "DE-EMS-C1",
    }


@pytest.mark.parametrize("rule", list(Whitelist))
def test_invalid_token_is_blocked_whatever_the_rule(rule: Whitelist) -> None:
    t = token(rule, valid=False)
    assert not needs_realtime(t)
    assert decide_roaming(t, None).status is AuthStatus.BLOCKED


@pytest.mark.parametrize(
    ("allowed", "status"),
    [
        (Allowed.ALLOWED, AuthStatus.ACCEPTED),
        (Allowed.BLOCKED, AuthStatus.BLOCKED),
        (Allowed.EXPIRED, AuthStatus.EXPIRED),
        (Allowed.NO_CREDIT, AuthStatus.INVALID),
        (Allowed.NOT_ALLOWED, AuthStatus.INVALID),
    ],
)
@pytest.mark.parametrize("rule", [Whitelist.ALLOWED, Whitelist.ALLOWED_OFFLINE, Whitelist.NEVER])
def test_an_answer_decides(rule: Whitelist, allowed: Allowed, status: AuthStatus) -> None:
    t = token(rule)
    assert needs_realtime(t)
    grant = decide_roaming(t, RealtimeAnswer(allowed, "REF-9"))
    assert grant.status is status
    assert grant.method is AuthMethod.AUTH_REQUEST
    assert grant.authorization_reference == "REF-9"


def test_unknown_to_its_emsp_is_invalid() -> None:
    grant = decide_roaming(token(Whitelist.ALLOWED), RealtimeAnswer(Allowed.ALLOWED, unknown=True))
    assert grant.status is AuthStatus.INVALID


@pytest.mark.parametrize(
    ("rule", "why", "status"),
    [
        (Whitelist.ALLOWED, NoAnswer.UNREACHABLE, AuthStatus.ACCEPTED),
        (Whitelist.ALLOWED, NoAnswer.TIMED_OUT, AuthStatus.ACCEPTED),
        (Whitelist.ALLOWED, NoAnswer.NO_ENDPOINT, AuthStatus.ACCEPTED),
        (Whitelist.ALLOWED_OFFLINE, NoAnswer.UNREACHABLE, AuthStatus.ACCEPTED),
        (Whitelist.ALLOWED_OFFLINE, NoAnswer.NO_ENDPOINT, AuthStatus.ACCEPTED),
        (Whitelist.ALLOWED_OFFLINE, NoAnswer.TIMED_OUT, AuthStatus.INVALID),
        (Whitelist.NEVER, NoAnswer.UNREACHABLE, AuthStatus.INVALID),
        (Whitelist.NEVER, NoAnswer.TIMED_OUT, AuthStatus.INVALID),
        (Whitelist.NEVER, NoAnswer.NO_ENDPOINT, AuthStatus.INVALID),
    ],
)
def test_without_an_answer_the_rule_decides(
    rule: Whitelist, why: NoAnswer, status: AuthStatus
) -> None:
    grant = decide_roaming(token(rule), why)
    assert grant.status is status
    assert grant.authorization_reference is None
    expected = AuthMethod.WHITELIST if status is AuthStatus.ACCEPTED else AuthMethod.AUTH_REQUEST
    assert grant.method is expected
    assert why.value in grant.reason


def test_token_types() -> None:
    assert ocpp_token_type("RFID") == "ISO14443"
    assert ocpp_token_type("APP_USER") == "Central"
    assert ocpp_token_type("nonsense") == "Central"
    assert presented_types(None) == (TokenType.RFID,)
    assert presented_types("ISO15693") == (TokenType.RFID,)
    assert TokenType.APP_USER in presented_types("Central")
    assert token(Whitelist.NEVER).group_id == "FLEET"


def test_offline_usable() -> None:
    assert offline_usable(None)  # ours
    assert offline_usable("ALWAYS")
    assert offline_usable("ALLOWED_OFFLINE")
    assert not offline_usable("ALLOWED")
    assert not offline_usable("NEVER")
