"""The Stripe provider against the fake of Stripe's API (tests/fake_stripe.py): checkout,
authorisation, (partial) capture, void, refund, idempotency keys, webhooks and their
signatures, and how Stripe's failures become ours. No network, no server of ours."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from csms.core.payments import (
    BadSignature,
    CheckoutRequest,
    EventKind,
    PaymentDeclined,
    ProviderState,
    ProviderUnavailable,
)
from csms.services.payment_providers.stripe import WEBHOOK_EVENTS, StripeProvider
from tests.fake_stripe import DECLINED_CARD, FakeStripe, StripeFailure


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    fake = await FakeStripe().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def provider(fake: FakeStripe) -> AsyncIterator[StripeProvider]:
    provider = StripeProvider(
        fake.secret_key, fake.webhook_secret, fake.api_base, max_network_retries=0
    )
    yield provider
    await provider.close()


def request(payment_id: str = "pay-1", amount_minor: int = 3000) -> CheckoutRequest:
    return CheckoutRequest(
        payment_id=payment_id,
        amount_minor=amount_minor,
        currency="EUR",
        description="Charging at DE*ABC*E1",
        return_url=f"https://csms.example/pay/-/payments/{payment_id}",
        cancel_url="https://csms.example/pay/DE*ABC*E1",
        email="driver@example.org",
    )


async def authorised(
    fake: FakeStripe, provider: StripeProvider, amount_minor: int = 3000
) -> tuple[str, str]:
    """A checkout the driver paid: (checkout_ref, provider_ref)."""
    checkout = await provider.checkout(request(amount_minor=amount_minor), key="checkout-pay-1")
    await fake.pay(checkout.checkout_ref)
    status = await provider.status(checkout.checkout_ref, None)
    assert status.provider_ref is not None
    return checkout.checkout_ref, status.provider_ref


# --- checkout and authorisation -------------------------------------------------------------


async def test_checkout_asks_stripe_for_a_manual_capture_hold(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    checkout = await provider.checkout(request(), key="checkout-pay-1")

    assert checkout.checkout_ref.startswith("cs_test_")
    assert checkout.redirect_url == f"{fake.api_base}/c/pay/{checkout.checkout_ref}"
    assert checkout.provider_ref is None  # made when the driver pays
    [sent] = fake.requests_to("POST", "/v1/checkout/sessions")
    assert sent.idempotency_key == "checkout-pay-1"
    assert sent.params["mode"] == "payment"
    assert sent.params["allowed_payment_method_types"] == ["card"]
    assert sent.params["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": "eur",
                "unit_amount": "3000",
                "product_data": {"name": "Charging at DE*ABC*E1"},
            },
        }
    ]
    assert sent.params["payment_intent_data"] == {
        "capture_method": "manual",
        "description": "Charging at DE*ABC*E1",
        "metadata": {"payment_id": "pay-1"},
    }
    assert sent.params["metadata"] == {"payment_id": "pay-1"}
    assert sent.params["client_reference_id"] == "pay-1"
    assert sent.params["success_url"] == "https://csms.example/pay/-/payments/pay-1"
    assert sent.params["cancel_url"] == "https://csms.example/pay/DE*ABC*E1"
    assert sent.params["customer_email"] == "driver@example.org"
    expires_in = int(sent.params["expires_at"]) - time.time()
    assert 31 * 60 - 5 < expires_in <= 31 * 60  # Stripe's least, and a minute
    status = await provider.status(checkout.checkout_ref, None)
    assert status.state is ProviderState.PENDING
    assert status.provider_ref is None


@pytest.mark.parametrize(("given", "expected"), [(3 * 3600, 3 * 3600), (10 * 86400, 86400)])
async def test_the_checkout_closes_when_the_service_gives_up(
    fake: FakeStripe, given: float, expected: int
) -> None:
    provider = StripeProvider(
        fake.secret_key, fake.webhook_secret, fake.api_base, checkout_expiry_s=given
    )
    try:
        checkout = await provider.checkout(request(), key="checkout-pay-1")
    finally:
        await provider.close()

    expires_in = fake.sessions[checkout.checkout_ref]["expires_at"] - time.time()
    assert expected - 5 < expires_in <= expected


async def test_the_same_checkout_key_makes_one_session(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    first = await provider.checkout(request(), key="checkout-pay-1")
    again = await provider.checkout(request(), key="checkout-pay-1")

    assert again == first
    assert len(fake.sessions) == 1
    assert [r.replayed for r in fake.requests_to("POST", "/v1/checkout/sessions")] == [
        False,
        True,
    ]


async def test_paid_checkout_is_authorised_for_the_amount(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    checkout = await provider.checkout(request(amount_minor=2500), key="checkout-pay-1")

    back = await fake.pay(checkout.checkout_ref)

    assert back == "https://csms.example/pay/-/payments/pay-1"
    by_session = await provider.status(checkout.checkout_ref, None)
    assert by_session.state is ProviderState.AUTHORIZED
    assert by_session.authorized_minor == 2500
    assert by_session.provider_ref is not None
    assert by_session.provider_ref.startswith("pi_")
    by_intent = await provider.status(None, by_session.provider_ref)
    assert by_intent == by_session


async def test_a_declined_card_leaves_the_checkout_open_for_another(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    checkout = await provider.checkout(request(), key="checkout-pay-1")

    with pytest.raises(StripeFailure, match="declined"):
        await fake.pay(checkout.checkout_ref, DECLINED_CARD)

    status = await provider.status(checkout.checkout_ref, None)
    assert status.state is ProviderState.PENDING
    assert status.reason == "Your card was declined."
    [failed] = fake.events_of("payment_intent.payment_failed")
    event = provider.verify_webhook(failed.body, {"Stripe-Signature": failed.signature})
    assert event.kind is EventKind.OTHER  # not the payment's end: the driver may go on
    await fake.pay(checkout.checkout_ref)
    status = await provider.status(checkout.checkout_ref, None)
    assert status.state is ProviderState.AUTHORIZED
    assert status.authorized_minor == 3000


async def test_an_expired_checkout_has_failed(fake: FakeStripe, provider: StripeProvider) -> None:
    checkout = await provider.checkout(request(), key="checkout-pay-1")

    await fake.expire(checkout.checkout_ref)

    status = await provider.status(checkout.checkout_ref, None)
    assert status.state is ProviderState.FAILED
    assert status.reason == "the checkout expired unpaid"


# --- capture --------------------------------------------------------------------------------


async def test_full_capture(fake: FakeStripe, provider: StripeProvider) -> None:
    _, intent = await authorised(fake, provider)

    status = await provider.capture(intent, 3000, key="capture-pay-1")

    assert status.state is ProviderState.CAPTURED
    assert status.captured_minor == 3000
    assert status.refunded_minor == 0
    assert fake.intents[intent]["amount_received"] == 3000


async def test_partial_capture_releases_the_rest(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    _, intent = await authorised(fake, provider)

    status = await provider.capture(intent, 1234, key="capture-pay-1")

    assert status.state is ProviderState.CAPTURED
    assert status.captured_minor == 1234
    held = fake.intents[intent]
    assert held["amount_received"] == 1234
    assert held["amount_capturable"] == 0  # the other 17.66 released
    [sent] = fake.requests_to("POST", r"/v1/payment_intents/.*/capture")
    assert sent.params["amount_to_capture"] == "1234"
    assert sent.idempotency_key == "capture-pay-1"
    assert (await provider.status(None, intent)).captured_minor == 1234


async def test_the_same_capture_key_captures_once(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    _, intent = await authorised(fake, provider)

    first = await provider.capture(intent, 1234, key="capture-pay-1")
    again = await provider.capture(intent, 1234, key="capture-pay-1")

    assert again == first
    sent = fake.requests_to("POST", r"/v1/payment_intents/.*/capture")
    assert [r.replayed for r in sent] == [False, True]
    assert len(fake.events_of("payment_intent.succeeded")) == 1


async def test_a_capture_retried_after_its_key_expired_is_recognised(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    """Stripe keeps a key 24 hours: a retry later meets a PaymentIntent captured already."""
    _, intent = await authorised(fake, provider)
    await provider.capture(intent, 1234, key="capture-pay-1")

    again = await provider.capture(intent, 1234, key="capture-pay-1-later")

    assert again.state is ProviderState.CAPTURED
    assert again.captured_minor == 1234
    with pytest.raises(PaymentDeclined, match="status of succeeded"):
        await provider.capture(intent, 2000, key="capture-pay-1-other")


async def test_capturing_more_than_is_held_is_refused(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    _, intent = await authorised(fake, provider)

    with pytest.raises(PaymentDeclined, match="capturable amount"):
        await provider.capture(intent, 3001, key="capture-pay-1")

    assert fake.intents[intent]["status"] == "requires_capture"
    with pytest.raises(ValueError, match="positive"):
        await provider.capture(intent, 0, key="capture-pay-1-zero")


# --- void and refund ------------------------------------------------------------------------


async def test_void_releases_the_hold(fake: FakeStripe, provider: StripeProvider) -> None:
    _, intent = await authorised(fake, provider)

    status = await provider.void(intent, key="void-pay-1")

    assert status.state is ProviderState.CANCELED
    assert fake.intents[intent]["status"] == "canceled"
    assert fake.intents[intent]["amount_capturable"] == 0
    assert await provider.void(intent, key="void-pay-1") == status  # replayed
    later = await provider.void(intent, key="void-pay-1-later")  # canceled already
    assert later.state is ProviderState.CANCELED
    assert len(fake.events_of("payment_intent.canceled")) == 1
    with pytest.raises(PaymentDeclined, match="status of canceled"):
        await provider.capture(intent, 100, key="capture-pay-1")


async def test_void_of_an_unpaid_checkout_expires_it(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    checkout = await provider.checkout(request(), key="checkout-pay-1")

    status = await provider.void(checkout.checkout_ref, key="void-pay-1")

    assert status.state is ProviderState.CANCELED
    assert fake.sessions[checkout.checkout_ref]["status"] == "expired"
    with pytest.raises(StripeFailure, match="no longer active"):
        await fake.pay(checkout.checkout_ref)


async def test_void_of_a_checkout_paid_meanwhile_releases_its_hold(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    checkout_ref, intent = await authorised(fake, provider)

    status = await provider.void(checkout_ref, key="void-pay-1")

    assert status.state is ProviderState.CANCELED
    assert status.provider_ref == intent
    assert fake.intents[intent]["status"] == "canceled"


async def test_refund_part_then_the_rest(fake: FakeStripe, provider: StripeProvider) -> None:
    _, intent = await authorised(fake, provider)
    await provider.capture(intent, 2000, key="capture-pay-1")

    first = await provider.refund(intent, 500, key="refund-pay-1-1")
    assert await provider.refund(intent, 500, key="refund-pay-1-1") == first  # replayed

    assert first.startswith("re_")
    assert (await provider.status(None, intent)).refunded_minor == 500
    with pytest.raises(PaymentDeclined, match="greater than unrefunded"):
        await provider.refund(intent, 1501, key="refund-pay-1-2")
    await provider.refund(intent, 1500, key="refund-pay-1-3")
    status = await provider.status(None, intent)
    assert status.state is ProviderState.CAPTURED
    assert (status.captured_minor, status.refunded_minor) == (2000, 2000)


# --- webhooks -------------------------------------------------------------------------------


async def test_webhooks_of_a_paid_session(fake: FakeStripe, provider: StripeProvider) -> None:
    checkout_ref, intent = await authorised(fake, provider, amount_minor=3000)
    await provider.capture(intent, 1234, key="capture-pay-1")
    await provider.refund(intent, 234, key="refund-pay-1")

    events = [
        provider.verify_webhook(e.body, {"Stripe-Signature": e.signature}) for e in fake.events
    ]

    seen = [
        (e.type, e.kind, e.payment_id, e.checkout_ref, e.provider_ref, e.amount_minor)
        for e in events
    ]
    assert seen == [
        ("charge.succeeded", EventKind.OTHER, "pay-1", None, intent, 3000),
        ("payment_intent.amount_capturable_updated", EventKind.AUTHORIZED, "pay-1", None,
         intent, 3000),
        ("checkout.session.completed", EventKind.AUTHORIZED, "pay-1", checkout_ref, intent,
         3000),
        ("charge.captured", EventKind.OTHER, "pay-1", None, intent, 3000),
        ("payment_intent.succeeded", EventKind.CAPTURED, "pay-1", None, intent, 1234),
        ("charge.refunded", EventKind.REFUNDED, "pay-1", None, intent, 234),
        ("refund.created", EventKind.OTHER, None, None, None, None),
    ]  # fmt: skip
    assert [e.event_id for e in events] == [e.id for e in fake.events]


async def test_webhooks_of_a_voided_and_an_expired_payment(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    _, intent = await authorised(fake, provider)
    await provider.void(intent, key="void-pay-1")
    unpaid = await provider.checkout(request("pay-2"), key="checkout-pay-2")
    await fake.expire(unpaid.checkout_ref)

    canceled = fake.events_of("payment_intent.canceled")[0]
    expired = fake.events_of("checkout.session.expired")[0]
    one = provider.verify_webhook(canceled.body, {"stripe-signature": canceled.signature})
    two = provider.verify_webhook(expired.body, {"stripe-signature": expired.signature})

    assert (one.kind, one.payment_id, one.provider_ref) == (EventKind.CANCELED, "pay-1", intent)
    assert (two.kind, two.payment_id, two.checkout_ref) == (
        EventKind.FAILED,
        "pay-2",
        unpaid.checkout_ref,
    )


async def test_a_replayed_webhook_is_the_same_event(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    """The provider verifies a replay like the first delivery; the event id it reports is
    what the service stores once (payment_events.provider_event_id is unique)."""
    await authorised(fake, provider)
    [authorized] = fake.events_of("payment_intent.amount_capturable_updated")
    headers = {"Stripe-Signature": authorized.signature}

    assert provider.verify_webhook(authorized.body, headers) == provider.verify_webhook(
        authorized.body, headers
    )


async def test_bad_webhook_signatures(fake: FakeStripe, provider: StripeProvider) -> None:
    await authorised(fake, provider)
    event = fake.events_of("checkout.session.completed")[0]
    tampered = event.body.replace(b'"pay-1"', b'"pay-2"')
    long_ago = int(time.time()) - 3600

    cases = {
        "no header": {},
        "another secret": {"Stripe-Signature": fake.sign(event.body, secret="whsec_other")},
        "another body": {"Stripe-Signature": event.signature},
        "too old": {"Stripe-Signature": fake.sign(event.body, timestamp=long_ago)},
        "garbage": {"Stripe-Signature": "nonsense"},
    }
    for name, headers in cases.items():
        body = tampered if name == "another body" else event.body
        with pytest.raises(BadSignature):
            provider.verify_webhook(body, headers)
        assert name  # (the case that failed shows in the traceback's locals)

    # Signed with the right secret, but no event: refused the same way, never a crash.
    for body in (
        b"not json",
        b"[1, 2]",
        b'"text"',
        b'{"id": "evt_1", "object": "event"}',
        b'{"id": "evt_1", "object": "event", "type": "x", "data": {"object": "text"}}',
        b'{"object": "event", "type": "x", "data": {"object": {}}}',
    ):
        with pytest.raises(BadSignature, match="not a Stripe event"):
            provider.verify_webhook(body, {"Stripe-Signature": fake.sign(body)})


async def test_webhooks_need_the_secret(fake: FakeStripe) -> None:
    provider = StripeProvider(fake.secret_key, "", fake.api_base)
    body = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}})
    try:
        with pytest.raises(BadSignature, match="secret"):
            provider.verify_webhook(body.encode(), {"Stripe-Signature": fake.sign(body.encode())})
    finally:
        await provider.close()


# --- failures -------------------------------------------------------------------------------


async def test_a_capture_stripe_failed_is_made_again_under_a_new_key(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    """Stripe keeps its 500 under the key and would answer it to every retry for a day:
    the provider sees the PaymentIntent still capturable and captures it under a new key
    (a PaymentIntent is captured at most once, whatever the key)."""
    _, intent = await authorised(fake, provider)
    capture_path = r"/v1/payment_intents/.*/capture"
    fake.fail_next("POST", capture_path, status=500)

    status = await provider.capture(intent, 1000, key="capture-pay-1")

    assert (status.state, status.captured_minor) == (ProviderState.CAPTURED, 1000)
    first, second = fake.requests_to("POST", capture_path)
    assert (first.status, first.idempotency_key) == (500, "capture-pay-1")
    assert second.status == 200
    assert second.idempotency_key is not None
    assert second.idempotency_key.startswith("capture-pay-1-")
    assert len(fake.events_of("payment_intent.succeeded")) == 1


async def test_a_capture_stripe_keeps_failing_is_unavailable_until_it_works(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    _, intent = await authorised(fake, provider)
    capture_path = r"/v1/payment_intents/.*/capture"
    fake.fail_next("POST", capture_path, status=500, times=2)

    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        await provider.capture(intent, 1000, key="capture-pay-1")

    assert fake.intents[intent]["status"] == "requires_capture"  # nothing moved
    status = await provider.capture(intent, 1000, key="capture-pay-1")  # the retry
    assert status.captured_minor == 1000
    sent = [(r.status, r.replayed) for r in fake.requests_to("POST", capture_path)]
    assert sent == [(500, False), (500, False), (500, True), (200, False)]
    assert len(fake.events_of("payment_intent.succeeded")) == 1


async def test_a_void_stripe_failed_is_made_again_under_a_new_key(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    _, intent = await authorised(fake, provider)
    fake.fail_next("POST", r"/v1/payment_intents/.*/cancel", status=502)

    status = await provider.void(intent, key="void-pay-1")

    assert status.state is ProviderState.CANCELED
    keys = [r.idempotency_key for r in fake.requests_to("POST", r"/v1/payment_intents/.*/cancel")]
    assert keys[0] == "void-pay-1"
    assert len(keys) == 2 and keys[1] is not None and keys[1].startswith("void-pay-1-")


async def test_the_client_retries_with_the_same_key(fake: FakeStripe) -> None:
    """A failure before Stripe began the call (nothing kept under the key): Stripe's client
    tries again by itself under the same key."""
    provider = StripeProvider(fake.secret_key, fake.webhook_secret, fake.api_base)
    try:
        _, intent = await authorised(fake, provider)
        fake.fail_next("POST", r"/v1/payment_intents/.*/capture", status=503, saved=False)

        status = await provider.capture(intent, 1000, key="capture-pay-1")

        assert status.captured_minor == 1000
        sent = fake.requests_to("POST", r"/v1/payment_intents/.*/capture")
        assert [(r.status, r.idempotency_key) for r in sent] == [
            (503, "capture-pay-1"),
            (200, "capture-pay-1"),
        ]
    finally:
        await provider.close()


async def test_stripe_unreachable_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = StripeProvider("sk_test_x", "whsec_x", f"http://127.0.0.1:{port}",
                              max_network_retries=0)  # fmt: skip
    try:
        with pytest.raises(ProviderUnavailable, match="cannot be reached"):
            await provider.status(None, "pi_1")
    finally:
        await provider.close()


async def test_a_wrong_key_is_unavailable_not_declined(fake: FakeStripe) -> None:
    """The operator fixes the key and the same call then goes through: retried."""
    provider = StripeProvider("sk_test_wrong", fake.webhook_secret, fake.api_base,
                              max_network_retries=0)  # fmt: skip
    try:
        with pytest.raises(ProviderUnavailable, match="Invalid API Key"):
            await provider.checkout(request(), key="checkout-pay-1")
    finally:
        await provider.close()


async def test_unknown_payment_intent_is_declined(provider: StripeProvider) -> None:
    with pytest.raises(PaymentDeclined, match="No such payment_intent"):
        await provider.capture("pi_missing", 100, key="capture-x")


def test_the_example_config_names_the_webhook_events() -> None:
    text = (Path(__file__).parents[2] / "config.example.toml").read_text(encoding="utf-8")
    comment = text[text.index("[payments.stripe]") : text.index("secret_key =")]

    named = re.findall(r"\b(?:checkout\.session|payment_intent|charge)\.[a-z_]+", comment)

    assert sorted(named) == sorted(WEBHOOK_EVENTS)


def test_the_readme_names_the_webhook_events() -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Stripe") :]
    section = section[: section.index("\n### ")]

    named = re.findall(r"`((?:checkout\.session|payment_intent|charge)\.[a-z_]+)`", section)

    assert sorted(named) == sorted(WEBHOOK_EVENTS)


def test_a_secret_key_is_needed() -> None:
    with pytest.raises(ValueError, match="secret key"):
        StripeProvider("", "whsec_x")


async def test_the_fake_hosted_page(fake: FakeStripe, provider: StripeProvider) -> None:
    """What a driver meets at the checkout URL: the amount, a declined card's message, the
    way back (cancel), and payment."""
    checkout = await provider.checkout(request(amount_minor=2500), key="checkout-pay-1")
    async with aiohttp.ClientSession() as http:
        async with http.get(checkout.redirect_url) as r:
            assert r.status == 200
            assert "25.00 EUR" in await r.text()
        declined = {"card": "4000 0000 0000 0002", "action": "pay"}
        async with http.post(checkout.redirect_url, data=declined) as r:
            assert r.status == 200
            assert "Your card was declined." in await r.text()
        cancel = {"action": "cancel"}
        async with http.post(checkout.redirect_url, data=cancel, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "https://csms.example/pay/DE*ABC*E1")
        paying = {"card": "4242 4242 4242 4242", "action": "pay"}
        async with http.post(checkout.redirect_url, data=paying, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "https://csms.example/pay/-/payments/pay-1"
    assert (await provider.status(checkout.checkout_ref, None)).authorized_minor == 2500
