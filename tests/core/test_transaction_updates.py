"""How 2.0.1 TransactionEvents, in any order, change a transaction (merge_event), a new
transaction from its first message, and the energy settled at its end."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from csms.core.authorization import AuthResult, AuthStatus
from csms.core.metering import Sample, make_sample
from csms.core.ocpi_sessions import AuthMethod
from csms.core.roaming import Grant
from csms.core.transaction_updates import (
    TransactionChanges,
    adds_only_readings,
    merge_event,
    new_transaction,
    opened_by,
    settled_energy,
)
from csms.core.transactions import (
    BillingState,
    EnergyFlag,
    InputFlag,
    Transaction,
    TransactionEvent,
    TransactionState,
    TxEventType,
)

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
ACCEPTED = AuthResult(AuthStatus.ACCEPTED)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def register(when: datetime, wh: float, context: str = "Sample.Periodic") -> Sample:
    return make_sample(
        timestamp=when,
        raw_value=wh,
        measurand="Energy.Active.Import.Register",
        unit="Wh",
        context=context,
    )


def event(
    kind: TxEventType,
    seq_no: int,
    when: datetime,
    *samples: Sample,
    evse_id: int | None = None,
    connector_id: int | None = None,
    id_token: str | None = None,
    stopped_reason: str | None = None,
    remote_start_id: int | None = None,
    reservation_id: int | None = None,
) -> TransactionEvent:
    return TransactionEvent(
        "T-1",
        kind,
        seq_no,
        when,
        "Trigger",
        evse_id=evse_id,
        connector_id=connector_id,
        id_token=id_token,
        token_type=None if id_token is None else "ISO14443",
        stopped_reason=stopped_reason,
        remote_start_id=remote_start_id,
        reservation_id=reservation_id,
        samples=samples,
    )


STARTED = event(
    TxEventType.STARTED,
    0,
    at(0),
    register(at(0), 1000, "Transaction.Begin"),
    evse_id=1,
    connector_id=2,
    id_token="CARD1",
    remote_start_id=7,
)
UPDATED = event(TxEventType.UPDATED, 1, at(10), register(at(10), 1500))
LATER = event(TxEventType.UPDATED, 2, at(20), register(at(20), 2500))
ENDED = event(
    TxEventType.ENDED,
    3,
    at(30),
    register(at(30), 3000, "Transaction.End"),
    stopped_reason="EVDisconnected",
)


def replay(events: list[TransactionEvent]) -> Transaction:
    """The transaction after these events, in this order, as the service applies them:
    the first creates it, every later one merges."""
    tx: Transaction | None = None
    for e in events:
        auth = ACCEPTED if e.id_token is not None else None
        if tx is None:
            tx = opened_by(
                1,
                "CP1",
                "2.0.1",
                e,
                auth_status=None if auth is None else auth.status.value,
                reservation_id=e.reservation_id,
                grant=None,
            )
            tx = merge_event(tx, e, auth=auth, created=True).applied_to(tx)
        else:
            tx = merge_event(tx, e, auth=auth).applied_to(tx)
    assert tx is not None
    return tx


def test_events_in_order_make_the_transaction() -> None:
    tx = replay([STARTED, UPDATED, LATER, ENDED])
    assert tx.start_at == at(0)
    assert tx.stop_at == at(30)
    assert (tx.meter_start_wh, tx.meter_stop_wh) == (1000, 3000)
    assert (tx.evse_id, tx.connector_id) == (1, 2)
    assert (tx.id_tag, tx.auth_status) == ("CARD1", "Accepted")
    assert tx.remote_start_id == 7
    assert tx.state is TransactionState.COMPLETED
    assert tx.stop_reason == "EVDisconnected"
    assert tx.billing == BillingState.PENDING.value


@pytest.mark.parametrize(
    "order", list(itertools.permutations([STARTED, UPDATED, LATER, ENDED])), ids=str
)
def test_any_arrival_order_gives_the_same_transaction(order: tuple[TransactionEvent]) -> None:
    """An offline queue replayed in any order: same start, stop, readings, token, EVSE."""
    assert replay(list(order)) == replay([STARTED, UPDATED, LATER, ENDED])


def test_started_after_updated_moves_the_start_back_and_fills_token_and_evse() -> None:
    tx = replay([UPDATED])
    assert (tx.start_at, tx.meter_start_wh, tx.evse_id, tx.connector_id) == (at(10), 1500, 0, 0)
    assert tx.id_tag is None
    changes = merge_event(tx, STARTED, auth=ACCEPTED)
    assert changes.start_at == at(0)
    assert changes.meter_start_wh == 1000
    assert (changes.id_tag, changes.auth_status) == ("CARD1", "Accepted")
    assert (changes.evse_id, changes.connector_id) == (1, 2)
    assert changes.remote_start_id == 7
    assert changes.state is None and changes.stop_at is None


def test_an_evse_named_without_a_connector_is_its_connector_1() -> None:
    tx = replay([UPDATED])
    changes = merge_event(tx, event(TxEventType.UPDATED, 5, at(11), evse_id=2))
    assert (changes.evse_id, changes.connector_id) == (2, 1)


def test_the_first_event_naming_token_evse_remote_start_and_reservation_wins() -> None:
    tx = replay([STARTED])
    other = event(
        TxEventType.UPDATED,
        1,
        at(5),
        evse_id=3,
        connector_id=1,
        id_token="CARD2",
        remote_start_id=9,
        reservation_id=4,
    )
    changes = merge_event(tx, other, auth=ACCEPTED)
    assert changes.id_tag is None and changes.auth_status is None
    assert changes.evse_id is None and changes.remote_start_id is None
    assert changes.reservation_id == 4  # none was named before


def test_ended_before_started_creates_a_finished_transaction_that_started_completes() -> None:
    ended_first = replay([ENDED])
    assert ended_first.state is TransactionState.COMPLETED
    assert ended_first.billing == BillingState.PENDING.value
    assert (ended_first.start_at, ended_first.stop_at) == (at(30), at(30))
    assert (ended_first.meter_start_wh, ended_first.meter_stop_wh) == (3000, 3000)
    changes = merge_event(ended_first, STARTED, auth=ACCEPTED)
    assert changes.billing is None  # it was due for billing already
    assert changes.state is None
    done = changes.applied_to(ended_first)
    assert (done.start_at, done.meter_start_wh, done.meter_stop_wh) == (at(0), 1000, 3000)
    assert (done.id_tag, done.evse_id) == ("CARD1", 1)


def test_a_transaction_made_from_an_event_takes_only_its_end() -> None:
    tx = opened_by(1, "CP1", "2.0.1", UPDATED, auth_status=None, reservation_id=None, grant=None)
    assert merge_event(tx, UPDATED, created=True).empty
    changes = merge_event(replay([UPDATED]), ENDED, created=True)
    assert changes.start_at is None and changes.meter_start_wh is None
    assert changes.state is TransactionState.COMPLETED


@pytest.mark.parametrize("e", [STARTED, UPDATED, LATER, ENDED], ids=lambda e: e.event_type)
def test_a_repeated_event_changes_nothing_more(e: TransactionEvent) -> None:
    once = replay([STARTED, UPDATED, LATER, ENDED])
    assert merge_event(once, e, auth=ACCEPTED).applied_to(once) == once


def test_a_repeated_ended_does_not_make_the_transaction_due_for_billing_again() -> None:
    billed = replace(replay([STARTED, ENDED]), billing=BillingState.BILLED.value)
    changes = merge_event(billed, ENDED)
    assert changes.billing is None
    assert changes.applied_to(billed).billing == BillingState.BILLED.value


def test_a_late_updated_after_ended_raises_the_stop_reading_only() -> None:
    done = replay([STARTED, ENDED])
    late = event(TxEventType.UPDATED, 9, at(29), register(at(29), 3400))
    changes = merge_event(done, late)
    assert changes == TransactionChanges(meter_stop_wh=3400)
    lower = event(TxEventType.UPDATED, 10, at(28), register(at(28), 2000))
    assert merge_event(done, lower).meter_stop_wh == 3000


def test_an_updated_of_a_running_transaction_never_sets_the_stop_reading() -> None:
    running = replay([STARTED])
    assert merge_event(running, LATER).meter_stop_wh is None


def test_meter_start_prefers_transaction_begin_to_the_lowest_reading() -> None:
    first = event(
        TxEventType.STARTED,
        0,
        at(0),
        register(at(0), 900),
        register(at(0), 1000, "Transaction.Begin"),
        evse_id=1,
    )
    tx = opened_by(1, "CP1", "2.0.1", first, auth_status=None, reservation_id=None, grant=None)
    assert tx.meter_start_wh == 1000
    plain = first._replace(samples=(register(at(0), 900), register(at(1), 950)))
    tx = opened_by(1, "CP1", "2.0.1", plain, auth_status=None, reservation_id=None, grant=None)
    assert tx.meter_start_wh == 900
    # A lower reading arriving later lowers it; a higher one does not.
    assert merge_event(tx, event(TxEventType.UPDATED, 1, at(2), register(at(2), 800))) == (
        TransactionChanges(meter_start_wh=800)
    )


def test_meter_stop_prefers_transaction_end_and_never_goes_below_one_stored() -> None:
    running = replay([STARTED, UPDATED])
    both = event(
        TxEventType.ENDED,
        3,
        at(30),
        register(at(30), 3100),
        register(at(30), 3000, "Transaction.End"),
    )
    assert merge_event(running, both).meter_stop_wh == 3000
    plain = both._replace(samples=(register(at(29), 2900), register(at(30), 3100)))
    assert merge_event(running, plain).meter_stop_wh == 3100
    stored = replace(running, meter_stop_wh=3500)
    assert merge_event(stored, both).meter_stop_wh == 3500
    assert merge_event(running, both._replace(samples=())).meter_stop_wh is None


def test_stop_reason_defaults_to_local_and_the_stopping_token_is_kept() -> None:
    running = replay([STARTED])
    changes = merge_event(running, ENDED._replace(stopped_reason=None, id_token="CARD9"))
    assert changes.stop_reason == "Local"
    assert changes.stop_id_tag == "CARD9"
    assert changes.stop_at == at(30)
    assert merge_event(running, ENDED).stop_reason == "EVDisconnected"


def test_flags_are_added_once() -> None:
    running = replay([STARTED])
    changes = merge_event(running, UPDATED, flags=(InputFlag.IMPLAUSIBLE_TIMESTAMP,))
    assert changes.flags == ("implausible_timestamp",)
    flagged = changes.applied_to(running)
    assert merge_event(flagged, UPDATED, flags=(InputFlag.IMPLAUSIBLE_TIMESTAMP,)).empty


def test_another_partys_grant_comes_with_the_token_only() -> None:
    grant = Grant(AuthStatus.ACCEPTED, AuthMethod.AUTH_REQUEST, {"uid": "CARD1"}, "REF-1")
    tokenless = replay([UPDATED])
    changes = merge_event(tokenless, STARTED, auth=ACCEPTED, grant=grant)
    assert changes.roaming is grant
    tx = changes.applied_to(tokenless)
    assert (tx.auth_method, tx.authorization_reference, tx.cdr_token) == (
        "AUTH_REQUEST",
        "REF-1",
        {"uid": "CARD1"},
    )
    # The token is known already: the grant changes nothing.
    assert merge_event(replay([STARTED]), UPDATED, grant=grant).roaming is None


def test_only_readings_is_the_common_case() -> None:
    running = replay([STARTED])
    assert adds_only_readings(running, UPDATED)
    assert not adds_only_readings(running, ENDED)
    assert not adds_only_readings(running, UPDATED._replace(id_token="CARD1"))
    assert not adds_only_readings(running, UPDATED._replace(timestamp=at(-1)))
    assert not adds_only_readings(running, UPDATED._replace(samples=(register(at(10), 999),)))
    assert not adds_only_readings(running, UPDATED._replace(reservation_id=3))
    assert not adds_only_readings(replay([UPDATED]), UPDATED._replace(evse_id=1))
    assert not adds_only_readings(replay([STARTED, ENDED]), UPDATED)
    for e in (UPDATED, LATER):
        assert adds_only_readings(running, e) == merge_event(running, e).empty


def test_new_transaction_is_running_in_utc_with_the_grant() -> None:
    grant = Grant(AuthStatus.ACCEPTED, AuthMethod.COMMAND, {"uid": "X"})
    tx = new_transaction(
        5,
        cp_id="CP1",
        ocpp_version="1.6",
        evse_id=1,
        connector_id=1,
        id_tag="X",
        auth_status="Accepted",
        start_at=at(0).astimezone(tz=None),
        meter_start_wh=10,
        grant=grant,
    )
    assert tx.active and tx.start_at.tzinfo is UTC and tx.start_at == at(0)
    assert (tx.auth_method, tx.cdr_token) == ("COMMAND", {"uid": "X"})


def test_settled_energy_takes_missing_registers_from_readings() -> None:
    readings = [(at(10), 1500.0), (at(20), 2500.0)]
    assert settled_energy(1000, 3000, at(0), at(30), readings).energy_wh == 2000
    assert settled_energy(None, None, at(0), at(30), readings).energy_wh == 1000
    assert settled_energy(-5, None, at(0), at(30), readings).energy_wh == 1000
    nothing = settled_energy(None, 3000, at(0), at(30), [])
    assert nothing.energy_wh is None
    assert nothing.flags == (EnergyFlag.NO_METER_READINGS,)
    # A stop before the start counts as no time at all (and so as implausible energy).
    assert EnergyFlag.IMPLAUSIBLE_ENERGY in settled_energy(1000, 3000, at(30), at(0), []).flags
