"""What the payment pages say (csms.payweb.words): states, statuses, connectors, figures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from csms.core.payments import PaymentState, StopReason
from csms.payweb.words import (
    NOT_YET,
    connector_words,
    duration_text,
    energy_text,
    money_text,
    settled,
    state_words,
    status_words,
    time_text,
)


def test_every_state_has_words_and_only_final_ones_settle() -> None:
    for state in PaymentState:
        words = state_words(state)
        assert words.headline and words.explanation.endswith(".")
    assert {s for s in PaymentState if settled(s)} == {
        PaymentState.CAPTURED,
        PaymentState.REFUNDED,
        PaymentState.VOIDED,
        PaymentState.FAILED,
    }


def test_why_it_stopped_once_it_stops() -> None:
    assert state_words(PaymentState.CAPTURED, StopReason.CAP).explanation.startswith(
        "Charging was stopped because the amount held was nearly reached. Thank you."
    )
    assert state_words(PaymentState.ENDED, StopReason.CHARGER).explanation.startswith(
        "The charger ended the session."
    )
    # Still charging: nothing about a stop yet.
    charging = state_words(PaymentState.CHARGING, None)
    assert charging == state_words(PaymentState.CHARGING, StopReason.DRIVER)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("AVAILABLE", ("Available", "available")),
        ("CHARGING", ("In use", "busy")),
        ("RESERVED", ("Reserved", "busy")),
        ("INOPERATIVE", ("Out of service", "down")),
        ("OUTOFORDER", ("Out of order", "down")),
        ("UNKNOWN", ("Offline", "down")),
        ("SOMETHING", ("Something", "down")),
    ],
)
def test_statuses(status: str, words: tuple[str, str]) -> None:
    assert status_words(status) == words


def test_connectors() -> None:
    assert connector_words(1, "IEC_62196_T2", Decimal("22.080")) == (
        "Connector 1: Type 2, up to 22.1 kW"
    )
    assert connector_words(2, "IEC_62196_T2_COMBO", Decimal(150)) == (
        "Connector 2: CCS (Combo 2), up to 150 kW"
    )
    assert connector_words(1, "NEW_PLUG_X", None) == "Connector 1: NEW PLUG X"


def test_figures() -> None:
    assert money_text(None, "EUR") == NOT_YET
    assert money_text(Decimal("1.005"), "EUR") == "1.01 EUR"
    assert money_text(Decimal(12), "JPY") == "12 JPY"
    assert energy_text(None) == NOT_YET
    assert energy_text(Decimal("1.5")) == "1.50 kWh"
    assert energy_text(Decimal("12.3456")) == "12.346 kWh"
    assert energy_text(Decimal(0)) == "0.00 kWh"
    assert duration_text(None) == NOT_YET
    assert duration_text(0) == "0:00:00"
    assert duration_text(307) == "0:05:07"
    assert duration_text(43200) == "12:00:00"
    assert duration_text(-3) == "0:00:00"
    cet = timezone(timedelta(hours=1))
    assert time_text(datetime(2026, 12, 6, 11, 5, tzinfo=cet)) == "2026-12-06 10:05 UTC"
