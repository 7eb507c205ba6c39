"""`csms payments list|show|refund` end to end: payments as the payment service stores them
(a captured one held and captured at the test provider for real), listed and filtered,
shown with their events, refunded in part and then in full through the provider with the
refund audited, and one-line errors for what cannot be done; then the whole way, a session
paid on the spot at a simulated charger refunded from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from csms.core.clock import utc_now
from csms.core.payments import (
    CheckoutRequest,
    Payment,
    PaymentEvent,
    PaymentState,
    StopReason,
    new_payment_id,
    new_tag,
)
from csms.services.locations import LocationService
from csms.services.payment_providers.test import TestProvider
from csms.storage import charge_points as cp_repo
from csms.storage import payments as repo
from csms.storage.database import WriteTx
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from tests.e2e.cli import csms, ok, one_line_error
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until
from tests.e2e.test_ocpi_locations import site

CARD = "4242 4242 4242 4242"
T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def _payment(state: PaymentState, at: datetime, **changes: object) -> Payment:
    values: dict[str, object] = {
        "id": new_payment_id(),
        "evse_uid": "PAY-1*1",
        "charge_point_id": "PAY-1",
        "evse_id": 1,
        "connector_id": None,
        "location_id": "AMS-1",
        "tariff_id": "SPOT",
        "provider": "test",
        "checkout_ref": None,
        "provider_ref": None,
        "state": state,
        "currency": "EUR",
        "cap_minor": 3000,
        "authorized_minor": 3000,
        "captured_minor": None,
        "refunded_minor": 0,
        "id_tag": new_tag(),
        "transaction_id": None,
        "cdr_id": None,
        "email": None,
        "stop_reason": None,
        "attempts": 0,
        "next_try_at": None,
        "last_error": None,
        "created_at": at,
        "updated_at": at,
    }
    values.update(changes)
    return Payment(**values)  # type: ignore[arg-type]


async def _store(server: Running, payment: Payment, events: list[tuple[str, str]]) -> None:
    async def unit(w: WriteTx) -> None:
        conn = await w.connection()
        await repo.add(conn, payment)
        before: PaymentState | None = None
        for n, (state, what) in enumerate(events):
            target = PaymentState(state)
            await repo.add_event(
                conn,
                PaymentEvent(
                    payment.id,
                    payment.created_at + timedelta(seconds=n),
                    before,
                    target,
                    what,
                    "provider" if what == "authorized" else "csms",
                ),
            )
            before = target

    await server.app.db.write(unit)


async def _captured(server: Running) -> Payment:
    """A payment held (30.00 EUR) and captured (12.34 EUR) at the test provider, as the
    payment service leaves it after the CDR."""
    provider = TestProvider(server.app.db, utc_now, lambda: "https://charge.example.com")
    payment = _payment(
        PaymentState.CAPTURED,
        T0 + timedelta(minutes=2),
        captured_minor=1234,
        transaction_id=17,
        cdr_id="CDR-17",
        stop_reason=StopReason.DRIVER,
        email="driver@example.com",
    )
    checkout = await provider.checkout(
        CheckoutRequest(
            payment.id, 3000, "EUR", "Charging at PAY-1*1", "https://x/ret", "https://x/cancel"
        ),
        key=f"checkout-{payment.id}",
    )
    await provider.pay(checkout.checkout_ref, CARD)
    await provider.capture(checkout.checkout_ref, 1234, key=f"capture-{payment.id}")
    payment = replace(
        payment, checkout_ref=checkout.checkout_ref, provider_ref=checkout.checkout_ref
    )
    await _store(
        server,
        payment,
        [
            ("created", "created"),
            ("authorized", "authorized"),
            ("starting", "start_sent"),
            ("charging", "started"),
            ("stopping", "driver_stop"),
            ("ended", "ended"),
            ("captured", "captured"),
        ],
    )
    return payment


async def test_staff_list_show_and_refund_payments(server: Running) -> None:
    assert ok(await csms(server, "payments", "list")) == "no payments\n"
    captured = await _captured(server)
    voided = _payment(PaymentState.VOIDED, T0 + timedelta(minutes=1))
    await _store(server, voided, [("created", "created"), ("voided", "never_started")])
    charging = _payment(PaymentState.CHARGING, T0 + timedelta(minutes=3), transaction_id=18)
    await _store(server, charging, [("created", "created"), ("charging", "started")])

    listed = (await csms(server, "payments", "list", "--json")).json()
    assert [(p["id"], p["state"]) for p in listed] == [
        (charging.id, "charging"),
        (captured.id, "captured"),
        (voided.id, "voided"),
    ]
    assert listed[1]["cap"] == "30.00" and listed[1]["captured"] == "12.34"
    assert listed[1]["refunded"] == "0.00" and listed[1]["currency"] == "EUR"
    text = ok(await csms(server, "payments", "list", "--state", "captured"))
    lines = text.splitlines()
    header = ["ID", "STATE", "EVSE", "HELD", "CAPTURED", "REFUNDED", "TX", "CREATED"]
    assert lines[0].split() == header
    assert len(lines) == 2 and lines[1].split()[:8] == [
        captured.id,
        "captured",
        "PAY-1*1",
        "30.00",
        "EUR",
        "12.34",
        "EUR",
        "-",
    ]
    assert ok(await csms(server, "payments", "list", "--state", "failed")) == (
        "no failed payments\n"
    )
    limited = (await csms(server, "payments", "list", "--limit", "1", "--json")).json()
    assert [p["id"] for p in limited] == [charging.id]

    shown = (await csms(server, "payments", "show", captured.id, "--json")).json()
    assert shown["state"] == "captured" and shown["stop_reason"] == "driver"
    assert shown["transaction_id"] == 17 and shown["cdr_id"] == "CDR-17"
    assert [(e["from_state"], e["to_state"], e["what"]) for e in shown["events"]][-2:] == [
        ("stopping", "ended", "ended"),
        ("ended", "captured", "captured"),
    ]
    text = ok(await csms(server, "payments", "show", captured.id))
    assert "state        captured (stopped: driver)\n" in text
    assert "captured     12.34 EUR\n" in text
    assert "events (7):" in text and "ended -> captured" in text

    # A partial refund, audited with who did it and why, through the provider.
    out = ok(
        await csms(
            server,
            "payments",
            "refund",
            captured.id,
            "--amount",
            "2.34",
            "--reason",
            "cable was faulty",
            "--yes",
        )
    )
    assert out == (
        f"refunded 2.34 EUR of payment {captured.id}: 2.34 EUR of 12.34 EUR refunded, "
        "now captured\n"
    )
    shown = (await csms(server, "payments", "show", captured.id, "--json")).json()
    assert shown["state"] == "captured" and shown["refunded"] == "2.34"
    last = shown["events"][-1]
    assert last["what"] == "refund" and last["actor"] == getpass.getuser()
    assert last["detail"].startswith("2.34 EUR (") and last["detail"].endswith(
        "): cable was faulty"
    )
    # The rest: the payment is refunded in full.
    out = ok(await csms(server, "payments", "refund", captured.id, "--yes"))
    assert out == (
        f"refunded 10.00 EUR of payment {captured.id}: 12.34 EUR of 12.34 EUR refunded, "
        "now refunded\n"
    )
    async with server.app.db.read() as conn:
        intent = await repo.get_intent(conn, str(captured.provider_ref))
    assert intent is not None and intent.refunded_minor == 1234  # the provider gave it back
    listed = (await csms(server, "payments", "list", "--state", "refunded", "--json")).json()
    assert [(p["id"], p["refunded"]) for p in listed] == [(captured.id, "12.34")]

    # What cannot be done: one line each, nothing changed.
    one_line_error(
        await csms(server, "payments", "refund", captured.id, "--yes"), "nothing to refund"
    )
    one_line_error(
        await csms(server, "payments", "refund", voided.id, "--yes"), "is voided: nothing"
    )
    one_line_error(
        await csms(server, "payments", "refund", voided.id, "--amount", "ten", "--yes"),
        "--amount: 'ten' is not an amount",
    )
    one_line_error(
        await csms(server, "payments", "refund", voided.id, "--amount", "-1", "--yes"),
        "--amount must be more than 0",
    )
    one_line_error(await csms(server, "payments", "show", "nope"), "no payment 'nope'")
    one_line_error(await csms(server, "payments", "refund", "nope", "--yes"), "no payment")
    one_line_error(await csms(server, "payments", "refund", charging.id), "add --yes")
    ran = await csms(server, "payments", "list", "--state", "paid")
    assert ran.code == 2 and "invalid value for '--state'" in ran.err


async def test_refunds_beyond_what_was_captured_are_refused(server: Running) -> None:
    captured = await _captured(server)
    one_line_error(
        await csms(server, "payments", "refund", captured.id, "--amount", "12.35", "--yes"),
        "the refund must be more than 0 and at most 12.34 EUR",
    )
    one_line_error(
        await csms(server, "payments", "refund", captured.id, "--amount", "1.005", "--yes"),
        "1.005 is not an amount of EUR",
    )
    shown = (await csms(server, "payments", "show", captured.id, "--json")).json()
    assert shown["refunded"] == "0.00" and shown["events"][-1]["what"] == "captured"


async def test_refund_of_a_session_paid_on_the_spot(start_server: StartServer) -> None:
    """The whole way: a driver pays at a simulated 1.6 charger, charges, stops from the
    page; once the CDR's total is captured, staff see it and refund it from the command
    line, and the provider gave the money back."""
    server = await start_server(payments={"enabled": True, "provider": "test"})
    app = server.app
    await LocationService(app.db, utc_now).add(site("AMS-1"))
    await LocationService(app.db, utc_now).link("AMS-1", "PAID-1", None)
    await app.billing.import_tariffs(
        {
            "id": "SPOT",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "FLAT", "price": 1.00, "vat": 21.0, "step_size": 1},
                        {"type": "ENERGY", "price": 0.50, "vat": 21.0, "step_size": 1},
                    ]
                }
            ],
        }
    )
    options = ChargerOptions(
        url=server.url, charger_id="PAID-1", version="1.6", sessions=0, meter_interval=0.3
    )
    cp = V16Charger(options)
    task = asyncio.create_task(cp.run())
    try:

        async def evse_known() -> bool:
            async with app.db.read() as conn:
                return bool(await cp_repo.connectors_of(conn, ["PAID-1"]))

        await until(evse_known, "the charger's EVSE")
        ok(await csms(server, "tariffs", "assign", "SPOT", "--evse", "PAID-1*1", "--ad-hoc"))
        payments = app.payments
        tester = payments.test_provider
        assert tester is not None

        async def payable() -> bool:
            return (await payments.page("PAID-1*1")).payable

        await until(payable, "the EVSE payable")
        payment, _ = await payments.begin("PAID-1*1", Decimal(20), email=None)
        assert payment.checkout_ref is not None
        await tester.pay(payment.checkout_ref, CARD)

        async def in_state(state: PaymentState) -> bool:
            return (await payments.progress(payment.id)).payment.state is state

        await until(lambda: in_state(PaymentState.CHARGING), "the paid session", seconds=30)
        await asyncio.sleep(1.5)  # some energy
        await payments.stop(payment.id)
        await until(lambda: in_state(PaymentState.CAPTURED), "the capture", seconds=60)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await cp.close()

    shown = (await csms(server, "payments", "show", payment.id, "--json")).json()
    cdr = await app.billing.cdr(shown["cdr_id"])
    assert cdr.total_incl_vat is not None
    captured = cdr.total_incl_vat.quantize(Decimal("0.01"))
    assert shown["state"] == "captured" and shown["stop_reason"] == "driver"
    assert Decimal(shown["captured"]) == captured >= Decimal("1.21")  # the start fee at least
    assert shown["tariff_id"] == "SPOT" and shown["authorized"] == "20.00"
    out = ok(await csms(server, "payments", "refund", payment.id, "--reason", "test", "--yes"))
    assert out == (
        f"refunded {captured} EUR of payment {payment.id}: {captured} EUR of {captured} EUR "
        "refunded, now refunded\n"
    )
    assert payment.checkout_ref is not None
    intent = await tester.intent(payment.checkout_ref)
    async with app.db.read() as conn:
        stored = await repo.get_intent(conn, payment.checkout_ref)
    assert intent.state == "captured" and stored is not None
    assert stored.refunded_minor == stored.captured_minor == int(captured * 100)
    events = (await csms(server, "payments", "show", payment.id, "--json")).json()["events"]
    assert [e["to_state"] for e in events if e["to_state"]][-2:] == ["captured", "refunded"]
