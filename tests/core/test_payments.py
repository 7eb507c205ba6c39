"""The ad-hoc payment domain (csms.core.payments): the state machine, minor units, when to
stop at the cap, what to capture, one-time tokens and payment ids."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.core.payments import (
    TRANSITIONS,
    InvalidTransition,
    PaymentState,
    capture_amount,
    check_transition,
    from_minor,
    minor_exponent,
    new_payment_id,
    new_tag,
    should_stop,
    to_minor,
)


def test_the_happy_path_is_allowed_and_final_states_go_nowhere() -> None:
    path = [
        PaymentState.CREATED,
        PaymentState.AUTHORIZED,
        PaymentState.STARTING,
        PaymentState.CHARGING,
        PaymentState.STOPPING,
        PaymentState.ENDED,
        PaymentState.CAPTURED,
        PaymentState.REFUNDED,
    ]
    for current, target in itertools.pairwise(path):
        check_transition(current, target)
    for final in (PaymentState.REFUNDED, PaymentState.VOIDED, PaymentState.FAILED):
        assert final.final and not TRANSITIONS[final]
        for target in PaymentState:
            with pytest.raises(InvalidTransition):
                check_transition(final, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (PaymentState.CREATED, PaymentState.CHARGING),  # no session before the money is held
        (PaymentState.CHARGING, PaymentState.VOIDED),  # a session ran: it is captured
        (PaymentState.CAPTURED, PaymentState.ENDED),
        (PaymentState.ENDED, PaymentState.CHARGING),
    ],
)
def test_moves_outside_the_machine_are_refused(current: PaymentState, target: PaymentState) -> None:
    with pytest.raises(InvalidTransition, match=f"from {current.value} to {target.value}"):
        check_transition(current, target)


def test_minor_units() -> None:
    assert minor_exponent("EUR") == 2 and minor_exponent("jpy") == 0 and minor_exponent("KWD") == 3
    assert to_minor(Decimal("10.005"), "EUR") == 1001  # half up, as a CDR rounds
    assert to_minor(Decimal("10.004"), "EUR") == 1000
    assert to_minor(Decimal("1500"), "JPY") == 1500
    assert from_minor(1001, "EUR") == Decimal("10.01")
    assert str(from_minor(5, "EUR")) == "0.05"
    assert from_minor(1234, "KWD") == Decimal("1.234")


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["EUR", "JPY", "KWD"]))
def test_minor_units_round_trip(amount: int, currency: str) -> None:
    assert to_minor(from_minor(amount, currency), currency) == amount


def test_stopping_leaves_room_for_what_is_still_coming() -> None:
    # 10.00 held, 0.50 margin: at 9.40 with nothing coming, not yet; at 9.50, stop.
    assert not should_stop(940, 1000, 0.0, margin_minor=50, lookahead_s=60)
    assert should_stop(950, 1000, 0.0, margin_minor=50, lookahead_s=60)
    # Drawing 0.5 cents a second: the next minute costs 0.30 more.
    assert should_stop(700, 1000, 0.5, margin_minor=0, lookahead_s=60) is False
    assert should_stop(700, 1000, 0.5, margin_minor=0, lookahead_s=600)
    # A rate that went down (a meter jump back) never lowers the bar.
    assert should_stop(950, 1000, -5.0, margin_minor=50, lookahead_s=60)
    with pytest.raises(ValueError):
        should_stop(0, 0, 0.0, margin_minor=0, lookahead_s=0)


@given(
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**7),
)
def test_never_more_is_captured_than_held(total: int, held: int) -> None:
    captured, shortfall = capture_amount(total, held)
    assert 0 <= captured <= held and captured <= total
    assert captured + shortfall == total and shortfall >= 0


def test_one_time_tokens_fit_ocpp_16_and_are_not_guessable() -> None:
    tags = {new_tag() for _ in range(2000)}
    assert len(tags) == 2000
    for tag in tags:
        assert len(tag) == 20 and re.fullmatch(r"PAY[A-HJ-NP-Z2-9]{17}", tag), tag


def test_payment_ids_are_url_safe_and_never_look_like_an_option() -> None:
    ids = {new_payment_id() for _ in range(5000)}
    assert len(ids) == 5000
    for found in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", found) and not found.startswith("-"), found


def test_a_provider_event_moves_only_what_it_may() -> None:
    from csms.core.payments import EventKind
    from csms.services.payments import _event_target

    assert _event_target(PaymentState.CREATED, EventKind.AUTHORIZED) is PaymentState.AUTHORIZED
    assert _event_target(PaymentState.CREATED, EventKind.CANCELED) is PaymentState.FAILED
    assert _event_target(PaymentState.AUTHORIZED, EventKind.CANCELED) is PaymentState.VOIDED
    # A hold the provider dropped before the capture: nothing left to capture.
    assert _event_target(PaymentState.ENDED, EventKind.CANCELED) is PaymentState.VOIDED
    # A running session keeps going (its stop and capture follow); late or repeated
    # events of a settled payment change nothing.
    assert _event_target(PaymentState.CHARGING, EventKind.CANCELED) is None
    assert _event_target(PaymentState.CAPTURED, EventKind.AUTHORIZED) is None
    assert _event_target(PaymentState.VOIDED, EventKind.CANCELED) is None
    for state in PaymentState:
        for kind in EventKind:
            target = _event_target(state, kind)
            if target is not None:
                check_transition(state, target)
