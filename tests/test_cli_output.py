"""How the CLI writes numbers, money and times for people, and which remote command
parameters are refused before the charger is looked for (no server, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from csms.cli.billing import money
from csms.cli.common import exact, kwh, when
from csms.cli.listing import more_line
from csms.core.command_requests import parse_request
from csms.core.commands import CommandName, CommandRefused, check_trigger
from csms.handlers.v16.limits import LIMITS as V16_LIMITS
from csms.handlers.v201.limits import LIMITS as V201_LIMITS

NOW = datetime(2026, 12, 4, 23, 12, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1687093, "1687093"),
        (1687093.0, "1687093"),
        (1e16, "10000000000000000"),
        (0.1, "0.1"),
        (16.5, "16.5"),
        (-3.25, "-3.25"),
        (Decimal("2.50"), "2.5"),
        (None, "-"),
    ],
)
def test_numbers_are_exact(value: Any, shown: str) -> None:
    assert exact(value) == shown


def test_kwh_to_the_wh() -> None:
    assert [kwh(wh) for wh in (1687093, 0, 1000, 7093.0, None)] == [
        "1687.093",
        "0.000",
        "1.000",
        "7.093",
        "-",
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("3.7"), "EUR", "3.70 EUR"),
        (Decimal("3.7035"), "EUR", "3.7035 EUR"),
        (Decimal("3.70351"), "EUR", "3.7035 EUR"),  # OCPI's 4 decimals, as the CDR has it
        (Decimal("0.503"), "EUR", "0.503 EUR"),
        (Decimal("494"), "JPY", "494 JPY"),
        (Decimal("100"), "EUR", "100.00 EUR"),
        (2.6279, "EUR", "2.6279 EUR"),
        (Decimal("-1.5"), "EUR", "-1.50 EUR"),
    ],
)
def test_money_as_the_cdr_states_it(amount: Any, currency: str, shown: str) -> None:
    assert money(amount, currency) == shown


def test_one_time_format() -> None:
    assert when(NOW - timedelta(seconds=1), NOW) == "2026-12-04 23:12:54 (1s ago)"
    assert when(NOW - timedelta(hours=26), NOW) == "2026-12-03 21:12:55 (1d02h ago)"
    assert when(NOW + timedelta(minutes=90), NOW) == "2026-12-05 00:42:55 (in 1h30m)"
    assert when("2026-12-04T23:12:50Z", NOW) == "2026-12-04 23:12:50 (5s ago)"
    assert when("2026-12-05T00:12:55+01:00", NOW) == "2026-12-04 23:12:55 (0s ago)"
    assert when(None, NOW) == "-"
    assert when("not a time", NOW) == "not a time"


def test_the_line_after_a_cut_list() -> None:
    assert more_line(100, 2345) == "showing 100 of 2345; --limit to see more"
    assert more_line(3, 3) is None


def test_trigger_messages_of_either_version() -> None:
    for name in (
        "Heartbeat",
        "heartbeat",
        "LogStatusNotification",
        "DiagnosticsStatusNotification",
    ):
        check_trigger(name)
    with pytest.raises(CommandRefused) as refused:
        check_trigger("Heartbeet")
    assert str(refused.value).startswith(
        "'Heartbeet' is not a message TriggerMessage can ask for; choose one of: "
        "BootNotification, DiagnosticsStatusNotification, FirmwareStatusNotification, Heartbeat,"
    )


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (CommandName.TRIGGER, {"message": "Heartbeet"}, "'Heartbeet' is not a message"),
        (CommandName.TRIGGER, {}, "parameter 'message' is required"),
        (CommandName.RESET, {"hard": "yes"}, "parameter 'hard' must be true or false"),
        (CommandName.RESET, {"soft": True}, "unknown parameter 'soft'; it takes: hard"),
        (
            CommandName.AVAILABILITY,
            {"state": "on"},
            "parameter 'state' must be one of: operative, inoperative",
        ),
        (CommandName.UNLOCK, {"evse": 0}, "parameter 'evse' must be"),
        (CommandName.RESERVE, {"tag": "A", "expires": "2026-12-04T00:00:00Z"}, "in the past"),
        (CommandName.RESERVE, {"tag": "A", "expires": "soon"}, "not an ISO 8601"),
        (
            CommandName.LOCAL_LIST_SEND,
            {"mode": "half"},
            "parameter 'mode' must be one of: full, differential",
        ),
        (
            CommandName.PROFILE_SET,
            {"evse": 1, "limit": 10, "unit": "W", "purpose": "ChargePointMaxProfile"},
            "a ChargePointMaxProfile applies to the whole charger: --evse 0",
        ),
        (CommandName.PROFILE_SET, {"evse": 1, "limit": 10, "unit": "kW"}, "'unit' must be one of"),
        (CommandName.PROFILE_CLEAR, {"id": 1, "transaction": 2}, "either a profile id or"),
        (CommandName.PROFILE_COMPOSITE, {"evse": 1}, "parameter 'duration' is required"),
    ],
)
def test_parameters_refused_without_the_charger(
    name: CommandName, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(CommandRefused) as refused:
        parse_request(name, params, NOW, (V16_LIMITS, V201_LIMITS))
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        (CommandName.TRIGGER, {"message": "StatusNotification", "evse": 1}),
        (CommandName.START, {"tag": "CARD1"}),
        (CommandName.STOP, {"transaction": 7}),
        (CommandName.RESERVE, {"tag": "A", "expires": "2026-12-05T10:00:00Z", "evse": 1}),
        (CommandName.PROFILE_SET, {"evse": 0, "limit": 10, "unit": "A"}),
        (CommandName.PROFILE_SET, {"evse": 1, "periods": ["0:16", "600:8"], "unit": "A"}),
        (CommandName.CONFIG_SET, {"key": "HeartbeatInterval", "value": 300}),
        (CommandName.CLEAR_CACHE, {}),
    ],
)
def test_good_parameters_pass(name: CommandName, params: dict[str, Any]) -> None:
    parse_request(name, params, NOW, (V16_LIMITS, V201_LIMITS))
