from datetime import UTC, datetime, timedelta

import pytest

from csms.core.authorization import (
    AuthStatus,
    Token,
    TokenStatus,
    decide,
    limit_text,
    over_limit,
    parse_limit,
)
from csms.core.errors import InvalidInput
from csms.core.ids import token_key

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_unknown_token_is_unknown() -> None:
    assert decide(None, NOW).status is AuthStatus.UNKNOWN


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TokenStatus.ACCEPTED, AuthStatus.ACCEPTED),
        (TokenStatus.BLOCKED, AuthStatus.BLOCKED),
        (TokenStatus.EXPIRED, AuthStatus.EXPIRED),
        (TokenStatus.INVALID, AuthStatus.INVALID),
    ],
)
def test_status_of_token(status: TokenStatus, expected: AuthStatus) -> None:
    assert decide(Token("A1", status), NOW).status is expected


def test_expiry_date_in_the_past_expires_an_accepted_token() -> None:
    token = Token("A1", TokenStatus.ACCEPTED, expires_at=NOW - timedelta(seconds=1))
    result = decide(token, NOW)
    assert result.status is AuthStatus.EXPIRED
    assert result.expires_at == NOW - timedelta(seconds=1)


def test_future_expiry_and_parent_are_returned() -> None:
    token = Token("A1", TokenStatus.ACCEPTED, expires_at=NOW + timedelta(days=1), parent_uid="P")
    result = decide(token, NOW)
    assert result.accepted
    assert result.expires_at == NOW + timedelta(days=1)
    assert result.parent_uid == "P"


def test_busy_token_gets_concurrent_tx_but_blocked_wins() -> None:
    assert decide(Token("A1", TokenStatus.ACCEPTED), NOW, busy_elsewhere=True).status is (
        AuthStatus.CONCURRENT_TX
    )
    assert decide(Token("A1", TokenStatus.BLOCKED), NOW, busy_elsewhere=True).status is (
        AuthStatus.BLOCKED
    )


def test_token_keys_ignore_case_and_surrounding_space() -> None:
    assert token_key(" abCD12 ") == token_key("ABCD12") == "ABCD12"


def test_limits_of_concurrent_transactions() -> None:
    assert not over_limit(None, 10_000)
    assert not over_limit(1, 0)
    assert over_limit(1, 1)
    assert not over_limit(3, 2)
    assert over_limit(3, 3)
    assert parse_limit("unlimited") is None
    assert parse_limit(" Unlimited ") is None
    assert parse_limit("2") == 2
    for bad in ("0", "-1", "1.5", "", "two", "²"):
        with pytest.raises(InvalidInput, match="at least 1"):
            parse_limit(bad)
    assert limit_text(None) == "unlimited" and limit_text(4) == "4"
