"""The certificate authority's rules that need no cryptography: keys, subjects, validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.certificates import (
    CLOCK_SKEW,
    KeyInfo,
    Refusal,
    colon_hex,
    common_name_problem,
    key_problem,
    parse_days,
    serial_hex,
    validity,
)
from csms.core.errors import InvalidInput

NOW = datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (KeyInfo("ec", 256, "secp256r1"), None),
        (KeyInfo("ec", 384, "secp384r1"), None),
        (KeyInfo("ec", 521, "secp521r1"), Refusal.UNSUPPORTED_KEY),
        (KeyInfo("ec", 256, "brainpoolP256r1"), Refusal.UNSUPPORTED_KEY),
        (KeyInfo("rsa", 2048), None),
        (KeyInfo("rsa", 4096), None),
        (KeyInfo("rsa", 2047), Refusal.WEAK_KEY),
        (KeyInfo("dsa", 2048), Refusal.UNSUPPORTED_KEY),
    ],
)
def test_accepted_keys(key: KeyInfo, reason: Refusal | None) -> None:
    problem = key_problem(key)
    assert (None if problem is None else problem.reason) is reason


def test_the_common_name_is_the_charger_id() -> None:
    assert common_name_problem(["CP1"], "CP1") is None
    for names, text in (
        (["CP2"], "the CSR's subject CN is 'CP2', not the charger id 'CP1'"),
        ([], "the CSR's subject has no CN; it must be the charger id 'CP1'"),
        (["CP1", "CP1"], "the CSR's subject has 2 CNs"),
        (["cp1"], "'cp1', not the charger id 'CP1'"),
    ):
        problem = common_name_problem(names, "CP1")
        assert problem is not None and problem.reason is Refusal.WRONG_COMMON_NAME
        assert text in problem.detail


def test_validity_starts_before_now_and_ends_with_the_ca() -> None:
    start = NOW.replace(microsecond=0)
    assert validity(NOW, 365) == (start - CLOCK_SKEW, start + timedelta(days=365))
    ca_end = NOW + timedelta(days=30)
    assert validity(NOW, 365, ca_end) == (start - CLOCK_SKEW, ca_end)


def test_days_and_hex() -> None:
    assert parse_days("30d") == parse_days("30") == parse_days(" 30D ") == 30
    for bad in ("", "d", "-1d", "1.5d", "30 days"):
        with pytest.raises(InvalidInput, match="not a number of days"):
            parse_days(bad)
    assert serial_hex(0x1092) == "1092" and serial_hex(0xABC) == "0abc"
    assert colon_hex("0abc") == "0A:BC"
