"""Ad-hoc payment with the Stripe provider end to end: a real server whose provider talks to
the fake of Stripe's HTTP API (tests/fake_stripe.py, its webhooks signed and sent to our
/pay/-/webhooks/stripe), a simulated charger of each OCPP version, and the driver's side
over HTTP (no browser): the EVSE's page, the cap held by a Checkout Session, the hosted
page paid, the session started for the one-time token, stopped by the driver, and the
CDR's total captured from the PaymentIntent (the rest released). Replayed and forged
webhooks change nothing; a driver back before any webhook is served by asking Stripe; a
start that cannot happen releases the hold at Stripe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.core.errors import UnknownChargePoint
from csms.core.payments import PaymentState, StopReason, to_minor
from csms.core.transactions import Transaction
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until
from tests.e2e.test_billing import _place
from tests.fake_stripe import PAYING_CARD, FakeStripe

# 1.00 start fee and 0.50 per kWh, plus 19 % VAT.
TARIFF = {
    "id": "SPOT",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 1.00, "vat": 19.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.50, "vat": 19.0, "step_size": 1},
            ]
        }
    ],
}
CAP = Decimal(20)
JSON = {"Accept": "application/json"}


@dataclass
class Station:
    server: Running
    fake: FakeStripe
    http: aiohttp.ClientSession
    charger: ChargerBase
    run: asyncio.Task[Any]
    cp_id: str
    evse_uid: str
    connected: bool = True

    async def disconnect(self) -> None:
        """The charger goes away (its run cancelled, its connection closed)."""
        if not self.connected:
            return
        self.connected = False
        self.run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.run
        await self.charger.close()

    @property
    def base(self) -> str:
        """Where drivers reach the pay pages (payments.public_url: the OCPI base URL)."""
        return self.server.ocpi_url

    async def status(self, payment_id: str) -> dict[str, Any]:
        url = f"{self.base}/pay/-/payments/{payment_id}/status"
        async with self.http.get(url) as r:
            assert r.status == 200, await r.text()
            answer: dict[str, Any] = await r.json()
            return answer

    async def state_is(self, payment_id: str, state: PaymentState, seconds: float = 30) -> None:
        async def reached() -> bool:
            now: str = (await self.status(payment_id))["state"]
            return now == state.value

        await until(reached, f"payment {payment_id} {state.value}", seconds)

    async def begin(self) -> tuple[str, str]:
        """The driver asks to hold CAP: (our payment id, the Checkout Session id)."""
        async with self.http.get(f"{self.base}/pay/{self.evse_uid}") as r:
            assert r.status == 200, await r.text()
        form = {"cap": str(CAP), "email": "driver@example.org"}
        async with self.http.post(
            f"{self.base}/pay/{self.evse_uid}", data=form, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
            checkout_url = r.headers["Location"]
        prefix = f"{self.fake.api_base}/c/pay/"
        assert checkout_url.startswith(prefix)
        session_id = checkout_url.removeprefix(prefix)
        payment_id = self.fake.sessions[session_id]["metadata"]["payment_id"]
        return payment_id, session_id

    async def pay(self, session_id: str) -> str:
        """The driver pays on Stripe's hosted page; returns where it sends them back."""
        form = {"card": PAYING_CARD, "action": "pay"}
        async with self.http.post(
            f"{self.fake.api_base}/c/pay/{session_id}", data=form, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
            return r.headers["Location"]


def stripe_section(fake: FakeStripe) -> dict[str, Any]:
    return {
        "enabled": True,
        "provider": "stripe",
        "stripe": {
            "secret_key": fake.secret_key,
            "webhook_secret": fake.webhook_secret,
            "api_base": fake.api_base,
        },
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    fake = await FakeStripe().start()
    yield fake
    await fake.stop()


async def _station(
    start_server: StartServer, tmp_path: Path, fake: FakeStripe, version: str, **payments: Any
) -> Station:
    server = await start_server(payments=stripe_section(fake) | payments)
    fake.webhook_url = f"{server.ocpi_url}/pay/-/webhooks/stripe"
    cp_id = f"STRIPE-{version.replace('.', '')}"
    path = tmp_path / "tariffs.json"
    path.write_text(json.dumps([TARIFF]))
    assert "1 new" in ok(await csms(server, "tariffs", "import", str(path)))
    await _place(server, cp_id)
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            connectors=1,
            sessions=0,
            meter_interval=1.0,
            seed=24,
            response_timeout=10,
        )
    )
    assert isinstance(cp, ChargerBase)
    cp.step_seconds = 0.02

    async def announced() -> bool:
        try:
            detail = await server.staff.charger(cp_id)
        except UnknownChargePoint:
            return False
        return any(c.evse_id == 1 and c.status.value == "Available" for c in detail.connectors)

    run = asyncio.create_task(cp.run())
    await until(announced, "the charger's EVSE, available")
    uid = f"{cp_id}*1"
    ok(await csms(server, "tariffs", "assign", "SPOT", "--evse", uid, "--ad-hoc"))
    return Station(server, fake, aiohttp.ClientSession(), cp, run, cp_id, uid)


async def _close(station: Station) -> None:
    await station.http.close()
    await station.disconnect()


@pytest.fixture(params=["1.6", "2.0.1"])
async def station(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path, fake: FakeStripe
) -> AsyncIterator[Station]:
    """A server taking ad-hoc payments through (the fake) Stripe and a simulated charger of
    the version whose EVSE has the ad-hoc tariff SPOT."""
    station = await _station(start_server, tmp_path, fake, request.param)
    yield station
    await _close(station)


@pytest.fixture
async def station16(
    start_server: StartServer, tmp_path: Path, fake: FakeStripe
) -> AsyncIterator[Station]:
    """As `station`, 1.6 only; a failed capture or void is tried again after a second."""
    station = await _station(start_server, tmp_path, fake, "1.6", capture_retry=1.0)
    yield station
    await _close(station)


@pytest.mark.slow
async def test_paid_session_captures_the_cdr_total_at_stripe(station: Station) -> None:
    fake, server = station.fake, station.server
    payment_id, session_id = await station.begin()

    # The Checkout Session holds the cap with a manual capture, for our payment.
    session = fake.sessions[session_id]
    assert (session["amount_total"], session["currency"]) == (2000, "eur")
    assert session["client_reference_id"] == payment_id
    assert session["customer_email"] == "driver@example.org"
    [created] = fake.requests_to("POST", "/v1/checkout/sessions")
    assert created.idempotency_key == f"checkout-{payment_id}"
    assert created.params["payment_intent_data"]["capture_method"] == "manual"
    assert (await station.status(payment_id))["state"] == "created"

    # The driver pays; Stripe's webhooks reach us before the driver is back.
    back = await station.pay(session_id)
    assert back == f"{station.base}/pay/-/payments/{payment_id}"
    assert [(e.type, e.answers) for e in fake.events] == [
        ("charge.succeeded", [200]),
        ("payment_intent.amount_capturable_updated", [200]),
        ("checkout.session.completed", [200]),
    ]
    async with station.http.get(back) as r:
        assert r.status == 200
    await station.state_is(payment_id, PaymentState.CHARGING)
    intent_id = fake.sessions[session_id]["payment_intent"]
    payment, _ = await server.app.payments.show(payment_id)
    assert (payment.checkout_ref, payment.provider_ref) == (session_id, intent_id)
    assert payment.authorized_minor == 2000
    (tx,) = await server.staff.transactions(active_only=True, cp_id=station.cp_id)
    assert tx.id_tag == payment.id_tag
    # Nobody asked Stripe about the payment: the webhooks said it all.
    assert fake.requests_to("GET", r"/v1/.*") == []

    async def costing() -> bool:
        cost = (await station.status(payment_id))["cost_so_far"]
        return cost is not None and Decimal(cost) > Decimal("1.19")

    await until(costing, "the cost of energy so far", 20)
    async with station.http.post(
        f"{station.base}/pay/-/payments/{payment_id}/stop", headers=JSON
    ) as r:
        assert r.status == 200, await r.text()
    await station.state_is(payment_id, PaymentState.CAPTURED, 60)

    # The CDR's total incl. VAT was captured at Stripe, once; the rest released.
    ended = await _ended(server, tx.id, station.cp_id)
    (cdr,) = await server.app.billing.cdrs_of(ended.id)
    assert cdr.data["cdr_token"]["type"] == "AD_HOC_USER"
    assert cdr.total_incl_vat is not None
    total = to_minor(cdr.total_incl_vat, "EUR")
    assert 119 <= total < 2000  # the 1.19 start fee and what the energy cost
    intent = fake.intents[intent_id]
    assert intent["status"] == "succeeded"
    assert (intent["amount_received"], intent["amount_capturable"]) == (total, 0)
    [capture] = fake.requests_to("POST", rf"/v1/payment_intents/{intent_id}/capture")
    assert capture.idempotency_key == f"capture-{payment_id}"
    assert capture.params["amount_to_capture"] == str(total)
    payment, events = await server.app.payments.show(payment_id)
    assert payment.state is PaymentState.CAPTURED
    assert payment.stop_reason is StopReason.DRIVER
    assert (payment.captured_minor, payment.cdr_id) == (total, cdr.id)
    receipt = (await station.status(payment_id))["receipt"]
    assert receipt is not None
    assert receipt["cdr_id"] == cdr.id

    # Stripe's event of the capture came too, and was stored without moving anything.
    async def succeeded_stored() -> bool:
        _, now = await server.app.payments.show(payment_id)
        return any(e.what == "webhook payment_intent.succeeded" for e in now)

    await until(succeeded_stored, "the capture's webhook stored")
    assert all(e.answers == [200] for e in fake.events)

    # Every event delivered again (Stripe retries, or an attacker replays): acknowledged,
    # nothing changes; a forged one is refused.
    payment, events = await server.app.payments.show(payment_id)
    for event in list(fake.events):
        assert await fake.deliver(event) == 200
    forged = fake.events[0].body.replace(b'"livemode": false', b'"livemode": true')
    headers = {"Stripe-Signature": fake.events[0].signature}
    async with station.http.post(fake.webhook_url or "", data=forged, headers=headers) as r:
        assert r.status == 400
    assert await server.app.payments.show(payment_id) == (payment, events)


@pytest.mark.slow
async def test_driver_back_before_the_webhooks(station16: Station) -> None:
    """Stripe's webhooks are late: the driver's return asks Stripe, the session starts;
    the webhooks then change nothing."""
    station, fake, server = station16, station16.fake, station16.server
    fake.deliver_webhooks = False
    payment_id, session_id = await station.begin()

    back = await station.pay(session_id)
    assert [e.answers for e in fake.events] == [[], [], []]
    async with station.http.get(back) as r:
        assert r.status == 200
    await station.state_is(payment_id, PaymentState.CHARGING)
    [asked] = fake.requests_to("GET", rf"/v1/checkout/sessions/{session_id}")
    assert asked.params["expand"] == ["payment_intent", "payment_intent.latest_charge"]

    before = await server.app.payments.show(payment_id)
    for event in list(fake.events):
        assert await fake.deliver(event) == 200
    payment, events = await server.app.payments.show(payment_id)
    assert payment == before[0]
    assert [e.what for e in events[len(before[1]) :]] == [
        "webhook charge.succeeded",
        "webhook payment_intent.amount_capturable_updated",
        "webhook checkout.session.completed",
    ]
    assert all(e.to_state is None for e in events[len(before[1]) :])

    async with station.http.post(
        f"{station.base}/pay/-/payments/{payment_id}/stop", headers=JSON
    ) as r:
        assert r.status == 200, await r.text()
    await station.state_is(payment_id, PaymentState.CAPTURED, 60)


@pytest.mark.slow
async def test_a_start_that_cannot_happen_releases_the_hold(station16: Station) -> None:
    """Paid at Stripe, but the charger is gone by the time the driver is back: the remote
    start fails and the PaymentIntent is canceled (the hold released)."""
    station, fake, server = station16, station16.fake, station16.server
    fake.deliver_webhooks = False
    payment_id, session_id = await station.begin()
    back = await station.pay(session_id)
    await station.disconnect()

    async with station.http.get(back) as r:
        assert r.status == 200
    await station.state_is(payment_id, PaymentState.VOIDED, 30)

    intent_id = fake.sessions[session_id]["payment_intent"]
    assert fake.intents[intent_id]["status"] == "canceled"
    [cancel] = fake.requests_to("POST", rf"/v1/payment_intents/{intent_id}/cancel")
    assert cancel.idempotency_key == f"void-{payment_id}"
    payment, _ = await server.app.payments.show(payment_id)
    assert payment.captured_minor is None


@pytest.mark.slow
async def test_a_checkout_stripe_expires_fails_the_payment(station16: Station) -> None:
    """The driver never pays: Stripe expires the Checkout Session and says so; the payment
    fails, nothing was held, and the EVSE can be paid for again."""
    station, fake, server = station16, station16.fake, station16.server
    payment_id, session_id = await station.begin()

    await fake.expire(session_id)

    [expired] = fake.events_of("checkout.session.expired")
    assert expired.answers == [200]
    await station.state_is(payment_id, PaymentState.FAILED, 10)
    payment, events = await server.app.payments.show(payment_id)
    assert (payment.authorized_minor, payment.provider_ref) == (None, None)
    assert events[-1].what == "webhook checkout.session.expired"
    assert events[-1].provider_event_id == expired.id
    assert fake.intents == {}
    again, _ = await station.begin()
    assert again != payment_id


@pytest.mark.slow
async def test_a_failed_capture_is_retried_and_captures_once(station16: Station) -> None:
    """Stripe fails the capture twice (HTTP 500, kept under each key and answered again
    to the client's own retries): the provider's second try under a new key fails too, the
    payment waits its back-off and tries again, and the money is captured once; staff then
    refund it all through Stripe."""
    station, fake, server = station16, station16.fake, station16.server
    payment_id, session_id = await station.begin()
    async with station.http.get(await station.pay(session_id)) as r:
        assert r.status == 200
    await station.state_is(payment_id, PaymentState.CHARGING)
    intent_id = fake.sessions[session_id]["payment_intent"]
    capture_path = rf"/v1/payment_intents/{intent_id}/capture"
    fake.fail_next("POST", capture_path, status=500, times=2)
    async with station.http.post(
        f"{station.base}/pay/-/payments/{payment_id}/stop", headers=JSON
    ) as r:
        assert r.status == 200, await r.text()

    await station.state_is(payment_id, PaymentState.CAPTURED, 60)

    sent = fake.requests_to("POST", capture_path)
    fresh = [(r.status, r.idempotency_key) for r in sent if not r.replayed]
    key = f"capture-{payment_id}"
    assert [status for status, _ in fresh] == [500, 500, 200]
    assert fresh[0][1] == key
    assert all(k is not None and k.startswith(f"{key}-") for _, k in fresh[1:])
    assert len({k for _, k in fresh}) == 3
    assert all(r.status == 500 for r in sent if r.replayed)
    payment, events = await server.app.payments.show(payment_id)
    assert payment.captured_minor == fake.intents[intent_id]["amount_received"]
    assert payment.cdr_id is not None
    [failed] = [e for e in events if e.what == "capture_failed"]
    assert failed.detail is not None and "HTTP 500" in failed.detail
    assert (payment.attempts, payment.last_error) == (0, None)
    assert len(fake.events_of("payment_intent.succeeded")) == 1

    refunded = await server.app.payments.refund(
        payment_id, None, reason="charger fault", actor="cli"
    )

    assert refunded.state is PaymentState.REFUNDED
    assert refunded.refunded_minor == payment.captured_minor
    [refund] = fake.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (intent_id, payment.captured_minor)
    charge = fake.charges[fake.intents[intent_id]["latest_charge"]]
    assert charge["refunded"] is True


async def _ended(server: Running, tx_id: int, cp_id: str) -> Transaction:
    async def ended() -> Transaction | None:
        found = [t for t in await server.staff.transactions(cp_id=cp_id) if t.id == tx_id]
        return found[0] if found and found[0].stop_at is not None else None

    found: Transaction = await until(ended, "the transaction ended")
    return found
