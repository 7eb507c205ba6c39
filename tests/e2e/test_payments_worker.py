"""The payment service's worker and the test provider on a real server and database, with
payments stored in the states the worker acts on: an abandoned checkout fails, a session
that never started is voided after start_timeout, a refund is staff's, partial or whole;
the test provider moves money once per idempotency key; and the rules of the state logic
(which provider event moves which payment, the back-off, the receipt text)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from csms.core.errors import InvalidInput
from csms.core.payments import (
    CheckoutRequest,
    EventKind,
    Payment,
    PaymentDeclined,
    PaymentError,
    PaymentState,
    StopReason,
    new_payment_id,
    new_tag,
)
from csms.services.payment_providers.test import TestProvider
from csms.services.payments import (
    MAX_RETRY_S,
    PaymentService,
    Receipt,
    _event_target,
    _retry_delay,
    receipt_text,
)
from csms.storage import cdrs as cdr_repo
from csms.storage import payments as repo
from csms.storage.cdrs import StoredCdr
from csms.storage.database import WriteTx
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_smtp import FakeSmtp
from tests.e2e.sim import until
from tests.services.fakes import Clock

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
PAYING_CARD = "4242424242424242"
DECLINED_CARD = "4000 0000 0000 0002"


@pytest.fixture
async def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def server(start_server: StartServer, clock: Clock) -> Running:
    return await start_server(clock, payments={"enabled": True, "provider": "test"})


def _service(server: Running) -> tuple[PaymentService, TestProvider]:
    service = server.app.payments
    assert service.test_provider is not None
    return service, service.test_provider


async def _stored(
    server: Running,
    state: PaymentState,
    at: datetime,
    cap_minor: int = 2000,
    *,
    paid: bool = False,
    **changes: object,
) -> Payment:
    """A payment stored as the worker would find it, its checkout opened at the provider
    (and `paid` there before the row exists: the worker may act on it at once)."""
    _, tester = _service(server)
    payment_id = new_payment_id()
    checkout = await tester.checkout(
        CheckoutRequest(payment_id, cap_minor, "EUR", "Charging", "http://x/r", "http://x/c"),
        key=f"checkout-{payment_id}",
    )
    if paid:
        await tester.pay(checkout.checkout_ref, PAYING_CARD)
    payment = Payment(
        id=payment_id,
        evse_uid="CP9*1",
        charge_point_id="CP9",
        evse_id=1,
        connector_id=None,
        location_id=None,
        tariff_id=None,
        provider="test",
        checkout_ref=checkout.checkout_ref,
        provider_ref=checkout.provider_ref,
        state=state,
        currency="EUR",
        cap_minor=cap_minor,
        authorized_minor=None,
        captured_minor=None,
        refunded_minor=0,
        id_tag=new_tag(),
        transaction_id=None,
        cdr_id=None,
        email=None,
        stop_reason=None,
        attempts=0,
        next_try_at=None,
        last_error=None,
        created_at=at,
        updated_at=at,
    )
    payment = replace(payment, **changes)  # type: ignore[arg-type]

    async def unit(w: WriteTx) -> None:
        await repo.add(await w.connection(), payment)

    await server.app.db.write(unit)
    return payment


async def _reaches(server: Running, payment_id: str, state: PaymentState) -> Payment:
    service = server.app.payments

    async def check() -> Payment | None:
        service.wake()
        found = (await service.show(payment_id))[0]
        return found if found.state is state else None

    found: Payment = await until(check, f"payment {payment_id} {state.value}")
    return found


async def test_an_abandoned_checkout_fails_after_checkout_timeout(
    server: Running, clock: Clock
) -> None:
    service, tester = _service(server)
    payment = await _stored(server, PaymentState.CREATED, START)
    clock.now = START + timedelta(seconds=1799)
    service.wake()
    assert (await service.show(payment.id))[0].state is PaymentState.CREATED
    clock.now = START + timedelta(seconds=1801)
    failed = await _reaches(server, payment.id, PaymentState.FAILED)
    assert failed.authorized_minor is None
    events = (await service.show(payment.id))[1]
    assert [(e.what, e.to_state) for e in events] == [("checkout_expired", PaymentState.FAILED)]
    # The driver pays too late: the payment stays failed and the hold is released at once.
    assert payment.checkout_ref is not None
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    shown, events = await service.show(payment.id)
    assert shown.state is PaymentState.FAILED
    assert [e.what for e in events][1:] == [
        "webhook intent.authorized",
        "late_authorization_voided",
    ]
    assert (await tester.intent(payment.checkout_ref)).state == "canceled"


async def test_an_authorised_payment_whose_session_never_starts_is_voided(
    server: Running, clock: Clock
) -> None:
    service, tester = _service(server)
    payment = await _stored(server, PaymentState.CREATED, START)
    assert payment.checkout_ref is not None
    # Authorised at the provider, but the payment is STARTING (the start went out) when
    # the worker first sees it: no transaction comes for the token.
    tester.on_event = None
    await tester.pay(payment.checkout_ref, PAYING_CARD)

    async def starting(w: WriteTx) -> None:
        conn = await w.connection()
        current = await repo.get(conn, payment.id)
        assert current is not None
        await repo.save(conn, replace(current, state=PaymentState.STARTING, authorized_minor=2000))

    await server.app.db.write(starting)
    clock.now = START + timedelta(seconds=179)
    service.wake()
    assert (await service.show(payment.id))[0].state is PaymentState.STARTING
    clock.now = START + timedelta(seconds=181)
    voided = await _reaches(server, payment.id, PaymentState.VOIDED)
    assert voided.captured_minor is None and voided.attempts == 0
    intent = await tester.intent(payment.checkout_ref)
    assert intent.state == "canceled" and intent.captured_minor is None
    events = (await service.show(payment.id))[1]
    assert [e.what for e in events] == ["start_timed_out"]


async def test_refunds_partial_then_whole(server: Running) -> None:
    service, tester = _service(server)
    payment = await _stored(server, PaymentState.CREATED, START)
    assert payment.checkout_ref is not None
    tester.on_event = None
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    await tester.capture(payment.checkout_ref, 1234, key="capture-x")

    async def captured(w: WriteTx) -> None:
        conn = await w.connection()
        current = await repo.get(conn, payment.id)
        assert current is not None
        await repo.save(
            conn,
            replace(
                current, state=PaymentState.CAPTURED, authorized_minor=2000, captured_minor=1234
            ),
        )

    await server.app.db.write(captured)
    for amount in (Decimal(0), Decimal("12.35"), Decimal("0.001")):
        with pytest.raises(InvalidInput):
            await service.refund(payment.id, amount, reason=None, actor="alice")
    part = await service.refund(payment.id, Decimal("2.34"), reason="slow", actor="alice")
    assert (part.state, part.refunded_minor) == (PaymentState.CAPTURED, 234)
    rest = await service.refund(payment.id, None, reason=None, actor="cli")
    assert (rest.state, rest.refunded_minor) == (PaymentState.REFUNDED, 1234)
    with pytest.raises(PaymentError):
        await service.refund(payment.id, None, reason=None, actor="cli")
    intent = await tester.intent(payment.checkout_ref)
    assert intent.refunded_minor == 1234
    events = (await service.show(payment.id))[1]
    assert [(e.what, e.actor, e.to_state) for e in events] == [
        ("refund", "alice", None),
        ("refund", "cli", PaymentState.REFUNDED),
    ]
    assert events[0].detail is not None and events[0].detail.endswith(": slow")
    assert (await service.list(state=PaymentState.REFUNDED))[0].id == payment.id


async def test_the_test_provider_moves_money_once_per_key(server: Running) -> None:
    _, tester = _service(server)
    tester.on_event = None
    request = CheckoutRequest("p-1", 3000, "EUR", "Charging", "http://x/r", "http://x/c")
    first = await tester.checkout(request, key="checkout-p-1")
    again = await tester.checkout(request, key="checkout-p-1")
    assert again.checkout_ref == first.checkout_ref
    ref = first.checkout_ref
    with pytest.raises(InvalidInput):
        await tester.pay(ref, "1111 2222 3333 4444")
    with pytest.raises(PaymentDeclined):
        await tester.capture(ref, 100, key="capture-early")  # nothing held yet
    assert await tester.pay(ref, PAYING_CARD) == "http://x/r"
    assert await tester.pay(ref, PAYING_CARD) == "http://x/r"  # the form sent twice
    status = await tester.status(ref, None)
    assert (status.state.value, status.authorized_minor) == ("authorized", 3000)
    with pytest.raises(PaymentDeclined):
        await tester.capture(ref, 3001, key="capture-too-much")
    done = await tester.capture(ref, 2500, key="capture-p-1")
    assert (done.state.value, done.captured_minor) == ("captured", 2500)
    # A retry after a lost answer: the same key answers the same, nothing moves again.
    repeated = await tester.capture(ref, 2500, key="capture-p-1")
    assert repeated.captured_minor == 2500
    with pytest.raises(PaymentDeclined):
        await tester.capture(ref, 100, key="capture-again")
    with pytest.raises(PaymentDeclined):
        await tester.void(ref, key="void-p-1")
    refund = await tester.refund(ref, 500, key="refund-1")
    assert await tester.refund(ref, 500, key="refund-1") == refund
    assert (await tester.intent(ref)).refunded_minor == 500

    declined = await tester.checkout(replace(request, payment_id="p-2"), key="checkout-p-2")
    with pytest.raises(PaymentDeclined):
        await tester.pay(declined.checkout_ref, DECLINED_CARD)
    assert (await tester.status(declined.checkout_ref, None)).state.value == "failed"


def test_provider_events_move_only_payments_waiting_for_them() -> None:
    created, authorized = PaymentState.CREATED, PaymentState.AUTHORIZED
    assert _event_target(created, EventKind.AUTHORIZED) is PaymentState.AUTHORIZED
    assert _event_target(created, EventKind.FAILED) is PaymentState.FAILED
    assert _event_target(created, EventKind.CANCELED) is PaymentState.FAILED
    assert _event_target(authorized, EventKind.CANCELED) is PaymentState.VOIDED
    # A hold the provider dropped before the capture (Stripe: after 7 days uncaptured).
    ended = PaymentState.ENDED
    assert _event_target(ended, EventKind.CANCELED) is PaymentState.VOIDED
    for state in PaymentState:
        for kind in (EventKind.CAPTURED, EventKind.REFUNDED, EventKind.OTHER):
            assert _event_target(state, kind) is None
        if state not in (created, authorized):
            for kind in EventKind:
                if (state, kind) != (ended, EventKind.CANCELED):
                    assert _event_target(state, kind) is None, (state, kind)


def test_failed_steps_back_off_doubling_up_to_an_hour() -> None:
    assert [_retry_delay(60.0, n) for n in (1, 2, 3, 4)] == [60.0, 120.0, 240.0, 480.0]
    assert _retry_delay(60.0, 7) == MAX_RETRY_S == _retry_delay(60.0, 1000)


def test_receipt_text_shows_the_cdr_figures_and_vat() -> None:
    receipt = Receipt(
        cdr_id="NLCSM0001",
        start_at=START,
        end_at=START + timedelta(hours=1),
        energy_kwh=Decimal("15.250"),
        total_excl_vat=Decimal("7.63"),
        total_incl_vat=Decimal("9.08"),
        vat=Decimal("1.45"),
        currency="EUR",
        captured=Decimal("9.08"),
        released=Decimal("0.92"),
        location_name="Pay depot",
        address="Kade 3, 1011AB Amsterdam",
        evse_uid="CP1*1",
    )
    text = receipt_text(receipt)
    for line in (
        "Charging session NLCSM0001",
        "Location: Pay depot, Kade 3, 1011AB Amsterdam",
        "Energy: 15.250 kWh",
        "Total excl. VAT: 7.63 EUR",
        "VAT: 1.45 EUR",
        "Total incl. VAT: 9.08 EUR",
        "Charged to your card: 9.08 EUR",
        "Released from the hold: 0.92 EUR",
    ):
        assert f"\n{line}\n" in text, line


async def test_a_failed_capture_is_retried_with_back_off_until_it_succeeds(
    server: Running, clock: Clock
) -> None:
    service, tester = _service(server)
    tester.on_event = None
    # The session ended with a CDR of 7.40 EUR incl. VAT; the provider cannot capture yet
    # (nothing is held at first: a capture that fails).
    payment = await _stored(
        server,
        PaymentState.ENDED,
        START,
        authorized_minor=2000,
        transaction_id=424242,
        stop_reason=StopReason.CHARGER,
    )
    assert payment.checkout_ref is not None
    cdr = StoredCdr(
        seq=await _next_seq(server),
        id="NLCSMPAY001",
        transaction_id=424242,
        charge_point_id="CP9",
        start_at=START - timedelta(hours=1),
        end_at=START,
        currency="EUR",
        total_excl_vat=Decimal("6.2185"),
        total_incl_vat=Decimal("7.4000"),
        energy_wh=12437,
        credit=False,
        credit_reference_id=None,
        reason=None,
        data={},
        created_at=START,
    )

    async def add_cdr(w: WriteTx) -> None:
        await cdr_repo.add(await w.connection(), cdr)

    await server.app.db.write(add_cdr)
    failures = service.capture_failures
    with capture_logs() as logs:

        async def failed_once() -> Payment | None:
            service.wake()
            found = (await service.show(payment.id))[0]
            return found if found.attempts == 1 else None

        failed = await until(failed_once, "the failed capture")
    assert failed.state is PaymentState.ENDED
    assert failed.next_try_at == START + timedelta(seconds=60)
    assert failed.last_error == "PaymentDeclined: nothing to capture: the payment is pending"
    assert service.capture_failures == failures + 1
    (logged,) = [e for e in logs if e["event"] == "payment_capture_failed"]
    assert (logged["attempts"], logged["retry_in_s"]) == (1, 60.0)
    # The hold comes; before the back-off ends nothing is tried, after it the capture is.
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    clock.now = START + timedelta(seconds=59)
    service.wake()
    assert (await service.show(payment.id))[0].attempts == 1
    clock.now = START + timedelta(seconds=61)
    captured = await _reaches(server, payment.id, PaymentState.CAPTURED)
    assert (captured.captured_minor, captured.cdr_id) == (740, "NLCSMPAY001")
    assert (captured.attempts, captured.next_try_at, captured.last_error) == (0, None, None)
    intent = await tester.intent(payment.checkout_ref)
    assert (intent.state, intent.captured_minor) == ("captured", 740)
    progress = await service.progress(payment.id)
    assert progress.receipt is None  # no transaction row: nothing to show live
    events = (await service.show(payment.id))[1]
    assert [(e.what, e.to_state) for e in events] == [
        ("capture_failed", None),
        ("captured", PaymentState.CAPTURED),
    ]
    text = "\n".join(
        f"{n} {v}" for n, _, _, samples in service.metric_families() for _, v in samples
    )
    assert "csms_payment_capture_failures_total 1" in text


async def _next_seq(server: Running) -> int:
    async with server.app.db.read() as conn:
        return await cdr_repo.next_seq(conn)


async def _ended_with_cdr(
    server: Running, email: str | None, total: tuple[str, str] = ("6.2185", "7.4000")
) -> Payment:
    """A payment whose session ended with a CDR of 7.40 EUR incl. VAT, held at the test
    provider (whose id for the hold we were never told)."""
    _, tester = _service(server)
    tester.on_event = None
    payment = await _stored(
        server,
        PaymentState.ENDED,
        START,
        authorized_minor=2000,
        transaction_id=515151,
        stop_reason=StopReason.DRIVER,
        email=email,
        provider_ref=None,  # never told (its webhook lost): asked of the provider
    )
    assert payment.checkout_ref is not None
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    cdr = StoredCdr(
        seq=await _next_seq(server),
        id="NLCSMPAY002",
        transaction_id=515151,
        charge_point_id="CP9",
        start_at=START - timedelta(hours=1),
        end_at=START,
        currency="EUR",
        total_excl_vat=Decimal(total[0]),
        total_incl_vat=Decimal(total[1]),
        energy_wh=12437,
        credit=False,
        credit_reference_id=None,
        reason=None,
        data={},
        created_at=START,
    )

    async def add_cdr(w: WriteTx) -> None:
        await cdr_repo.add(await w.connection(), cdr)

    await server.app.db.write(add_cdr)
    return payment


async def test_the_receipt_is_emailed_after_the_capture(
    start_server: StartServer, clock: Clock
) -> None:
    mail = FakeSmtp()
    await mail.start()
    try:
        server = await start_server(
            clock,
            payments={
                "enabled": True,
                "smtp_host": "127.0.0.1",
                "smtp_port": mail.port,
                "smtp_from": "receipts@cpo.example",
            },
        )
        service = server.app.payments
        payment = await _ended_with_cdr(server, "driver@example.com")
        await _reaches(server, payment.id, PaymentState.CAPTURED)

        async def sent() -> bool:
            return [e.what for e in (await service.show(payment.id))[1]][-1] == "receipt_sent"

        await until(sent, "the receipt e-mailed")
        ((sender, recipients, message),) = mail.messages
        assert (sender, recipients) == ("receipts@cpo.example", ["driver@example.com"])
        assert message["Subject"] == "Your charging receipt (NLCSMPAY002)"
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        text = body.decode().replace("\r\n", "\n")
        for line in (
            "Energy: 12.437 kWh",
            "Total excl. VAT: 6.22 EUR",
            "VAT: 1.18 EUR",
            "Total incl. VAT: 7.40 EUR",
            "Charged to your card: 7.40 EUR",
            "Released from the hold: 12.60 EUR",
        ):
            assert f"\n{line}\n" in text, line
        assert service.receipts == {"sent": 1}
        shown, events = await service.show(payment.id)
        assert shown.provider_ref == payment.checkout_ref
        assert [e.what for e in events] == [
            "provider_ref_learnt",
            "captured",
            "receipt_sent",
        ]
    finally:
        await mail.stop()


async def test_a_receipt_that_cannot_be_sent_is_logged_not_retried(
    start_server: StartServer, clock: Clock
) -> None:
    mail = FakeSmtp()
    await mail.start()
    await mail.stop()  # nobody listens on its port any more
    server = await start_server(
        clock,
        payments={
            "enabled": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "smtp_from": "receipts@cpo.example",
        },
    )
    service = server.app.payments
    with capture_logs() as logs:
        payment = await _ended_with_cdr(server, "driver@example.com")
        await _reaches(server, payment.id, PaymentState.CAPTURED)

        async def failed() -> bool:
            return [e.what for e in (await service.show(payment.id))[1]][-1] == "receipt_failed"

        await until(failed, "the receipt's failure recorded")
    assert [e["event"] for e in logs].count("payment_receipt_failed") == 1
    shown = (await service.show(payment.id))[0]
    assert (shown.state, shown.captured_minor) == (PaymentState.CAPTURED, 740)
    assert service.receipts == {"failed": 1}


async def test_a_session_that_costs_nothing_releases_the_whole_hold(server: Running) -> None:
    service, tester = _service(server)
    payment = await _ended_with_cdr(server, None, ("0", "0"))
    voided = await _reaches(server, payment.id, PaymentState.VOIDED)
    assert (voided.cdr_id, voided.captured_minor) == ("NLCSMPAY002", None)
    assert payment.checkout_ref is not None
    assert (await tester.intent(payment.checkout_ref)).state == "canceled"
    events = (await service.show(payment.id))[1]
    assert [(e.what, e.to_state) for e in events][-1] == ("nothing_to_pay", PaymentState.VOIDED)


async def test_a_payment_authorised_long_ago_is_voided_not_started(
    server: Running, clock: Clock
) -> None:
    """Authorised while this service was down for longer than start_timeout: the driver
    has gone, no session is started for it."""
    service, tester = _service(server)
    tester.on_event = None
    clock.now = START + timedelta(seconds=181)
    payment = await _stored(
        server, PaymentState.AUTHORIZED, START, paid=True, authorized_minor=2000
    )
    assert payment.checkout_ref is not None
    voided = await _reaches(server, payment.id, PaymentState.VOIDED)
    assert voided.transaction_id is None
    assert (await tester.intent(payment.checkout_ref)).state == "canceled"
    events = (await service.show(payment.id))[1]
    assert [e.what for e in events] == ["start_timed_out"]
