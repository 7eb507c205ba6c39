"""The Stripe payment provider: a Checkout Session pre-authorises the cap (a PaymentIntent
with manual capture), the CDR's total is captured from it, the rest released.

Only the translation between csms.core.payments and Stripe's API lives here (through
Stripe's own async client over aiohttp, and its webhook signature check); what to do with
a payment is csms.services.payments'.

Errors, as the protocol asks: Stripe unreachable, answering 5xx, 409 or 429, or refusing
our key (401/403: the operator fixes the configuration, the same call then succeeds) ->
ProviderUnavailable (retried); any other refusal (402 card errors, 400/404 invalid
requests) -> PaymentDeclined (not retried); a webhook whose signature does not verify ->
BadSignature.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import stripe
import structlog
from stripe.params.checkout import SessionCreateParams

from csms.core.payments import (
    BadSignature,
    Checkout,
    CheckoutRequest,
    EventKind,
    PaymentDeclined,
    PaymentError,
    ProviderEvent,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
)

__all__ = ["EVENT_KINDS", "WEBHOOK_EVENTS", "StripeProvider"]

_T = TypeVar("_T")
log = structlog.get_logger("csms.payments")

# Stripe's webhook events and what they mean for a payment. The rest are stored and
# change nothing (EventKind.OTHER), among them `payment_intent.payment_failed`: a card
# declined in Checkout leaves the session open for another card, so it is no failure of
# the payment; the checkout's end without a payment is `checkout.session.expired`.
EVENT_KINDS: Mapping[str, EventKind] = {
    "checkout.session.completed": EventKind.AUTHORIZED,
    "payment_intent.amount_capturable_updated": EventKind.AUTHORIZED,
    "checkout.session.expired": EventKind.FAILED,
    "payment_intent.canceled": EventKind.CANCELED,
    "payment_intent.succeeded": EventKind.CAPTURED,
    "charge.refunded": EventKind.REFUNDED,
}

# The events an operator enables on the webhook endpoint (the README lists them).
WEBHOOK_EVENTS = (*EVENT_KINDS, "payment_intent.payment_failed")

# How long a Checkout Session may stay open (Stripe's bounds: 30 minutes to 24 hours).
_MIN_EXPIRY_S = 31 * 60
_MAX_EXPIRY_S = 24 * 3600
# PaymentIntent states in which the driver may still pay (Checkout is open).
_PENDING = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action", "processing"}
)
# The error code Stripe answers a capture or cancel with when the PaymentIntent is no
# longer in a state that allows it (captured or canceled already).
_UNEXPECTED_STATE = "payment_intent_unexpected_state"


class StripeProvider:
    """A PaymentProvider over Stripe's API (`api_base`: Stripe's when None; tests give a
    fake). Every call carries the caller's idempotency key: Stripe answers a repeated key
    with the first answer for 24 hours (Stripe's client retries a lost answer under it by
    itself, `max_network_retries`). A capture or a void retried after the key expired, or
    after a failure Stripe keeps under the key, is decided by the PaymentIntent's state
    (`_once`, `_already`). A checkout's `expires_at` is part of its request, so a checkout
    repeated by the caller later under the same key is refused by Stripe as another
    request (the payment service makes one checkout per payment)."""

    name = "stripe"

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        *,
        checkout_expiry_s: float = 1800.0,
        timeout_s: float = 30.0,
        max_network_retries: int = 2,
        webhook_tolerance_s: int = 300,
    ) -> None:
        if not secret_key:
            raise ValueError("the Stripe provider needs a secret key")
        # Stripe's client would otherwise write an id to ~/.config/stripe (a blocking file
        # write on the event loop, in a server's home) and report the platform to Stripe.
        stripe.enable_telemetry = False
        self._webhook_secret = webhook_secret
        # Stripe takes 30 minutes to 24 hours (a minute more than the least, so that the
        # time the request travels does not make it too short).
        self._checkout_expiry_s = int(min(max(checkout_expiry_s, _MIN_EXPIRY_S), _MAX_EXPIRY_S))
        self._webhook_tolerance_s = webhook_tolerance_s
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._client = stripe.StripeClient(
            secret_key,
            http_client=self._http,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=max_network_retries,
        )

    # --- pre-authorisation ----------------------------------------------------------------

    async def checkout(self, request: CheckoutRequest, *, key: str) -> Checkout:
        """A Checkout Session for one line of `amount_minor`, paid by card and only
        authorised (capture_method manual), open for `checkout_expiry_s`; our payment id
        rides along as metadata of the session and of its PaymentIntent, so every webhook
        names it."""
        metadata = {"payment_id": request.payment_id}
        params: SessionCreateParams = {
            "mode": "payment",
            "allowed_payment_method_types": ["card"],
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount_minor,
                        "product_data": {"name": request.description},
                    },
                }
            ],
            "payment_intent_data": {
                "capture_method": "manual",
                "description": request.description,
                "metadata": metadata,
            },
            "metadata": metadata,
            "client_reference_id": request.payment_id,
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
            # The checkout closes about when the service gives up on it (checkout_timeout),
            # so that a driver cannot pay for a payment that has failed already.
            "expires_at": int(time.time()) + self._checkout_expiry_s,
        }
        if request.email:
            params["customer_email"] = request.email
        session = await _call(
            self._client.v1.checkout.sessions.create_async(params, {"idempotency_key": key})
        )
        if not session.url:
            raise ProviderUnavailable("Stripe made a checkout without a page to send to")
        return Checkout(
            checkout_ref=session.id,
            redirect_url=session.url,
            provider_ref=_ref(session.payment_intent),
        )

    async def status(self, checkout_ref: str | None, provider_ref: str | None) -> ProviderStatus:
        """From the PaymentIntent when its id is known, else from the Checkout Session
        (with its PaymentIntent, once the driver paid)."""
        if provider_ref:
            intent = await _call(
                self._client.v1.payment_intents.retrieve_async(
                    provider_ref, {"expand": ["latest_charge"]}
                )
            )
            return _intent_status(intent)
        if not checkout_ref:
            raise ValueError("neither a checkout nor a payment intent to look at")
        session = await _call(
            self._client.v1.checkout.sessions.retrieve_async(
                checkout_ref, {"expand": ["payment_intent", "payment_intent.latest_charge"]}
            )
        )
        paid = session.payment_intent
        if session.status == "expired":
            return ProviderStatus(
                ProviderState.FAILED, _ref(paid), reason="the checkout expired unpaid"
            )
        if paid is None:
            return ProviderStatus(ProviderState.PENDING)
        if isinstance(paid, str):  # not expanded: look it up
            return await self.status(None, paid)
        return _intent_status(paid)

    # --- moving money ---------------------------------------------------------------------

    async def capture(self, provider_ref: str, amount_minor: int, *, key: str) -> ProviderStatus:
        """Capture `amount_minor` of the hold; Stripe releases the rest at once."""
        if amount_minor <= 0:
            raise ValueError("a capture takes a positive amount (void a hold of nothing)")

        async def attempt(with_key: str) -> stripe.PaymentIntent:
            return await _call(
                self._client.v1.payment_intents.capture_async(
                    provider_ref,
                    {"amount_to_capture": amount_minor, "expand": ["latest_charge"]},
                    {"idempotency_key": with_key},
                )
            )

        try:
            intent = await self._once(attempt, provider_ref, key, ProviderState.CAPTURED)
        except PaymentDeclined as exc:
            done = await self._already(exc, provider_ref, ProviderState.CAPTURED)
            if done is None or done.captured_minor != amount_minor:
                raise
            return done
        if isinstance(intent, ProviderStatus):
            if intent.captured_minor != amount_minor:
                raise PaymentDeclined(
                    f"the payment was captured already, for {intent.captured_minor} "
                    f"rather than {amount_minor}"
                )
            return intent
        return _intent_status(intent)

    async def void(self, provider_ref: str, *, key: str) -> ProviderStatus:
        """Cancel the PaymentIntent (the hold is released). Given a Checkout Session id
        (`cs_...`: the driver has not paid yet), expire the session so that it can no
        longer be paid, and cancel its PaymentIntent if it was paid meanwhile."""
        if provider_ref.startswith("cs_"):
            return await self._expire(provider_ref, key=key)

        async def attempt(with_key: str) -> stripe.PaymentIntent:
            return await _call(
                self._client.v1.payment_intents.cancel_async(
                    provider_ref, {"expand": ["latest_charge"]}, {"idempotency_key": with_key}
                )
            )

        try:
            intent = await self._once(attempt, provider_ref, key, ProviderState.CANCELED)
        except PaymentDeclined as exc:
            done = await self._already(exc, provider_ref, ProviderState.CANCELED)
            if done is None:
                raise
            return done
        return intent if isinstance(intent, ProviderStatus) else _intent_status(intent)

    async def _once(
        self,
        attempt: Callable[[str], Awaitable[stripe.PaymentIntent]],
        provider_ref: str,
        key: str,
        target: ProviderState,
    ) -> stripe.PaymentIntent | ProviderStatus:
        """A capture or cancel under `key`, and what to do when Stripe failed it (5xx).

        Stripe keeps a failure that happened inside the call under its idempotency key for
        24 hours and answers it again to every retry with that key, so retrying with the
        key alone would fail for a day. A PaymentIntent is captured or canceled at most
        once (Stripe's own state machine refuses a second time), so after such a failure
        the provider looks at the PaymentIntent: done already -> its status; still
        capturable -> one more attempt at once under a new key. Anything else (Stripe not
        reached: nothing is kept under the key) is raised for the caller to retry."""
        try:
            return await attempt(key)
        except ProviderUnavailable as exc:
            if not _answered_by_stripe(exc):
                raise
            status = await self.status(None, provider_ref)
            if status.state is target:
                return status
            if status.state not in (ProviderState.AUTHORIZED, ProviderState.PENDING):
                raise
            fresh = f"{key}-{secrets.token_hex(4)}"
            # (Not the keys: they carry the payment id, the key of the driver's page.)
            log.warning("stripe_call_rekeyed", provider_ref=provider_ref, error=str(exc))
            return await attempt(fresh)

    async def refund(self, provider_ref: str, amount_minor: int, *, key: str) -> str:
        if amount_minor <= 0:
            raise ValueError("a refund takes a positive amount")
        refund = await _call(
            self._client.v1.refunds.create_async(
                {"payment_intent": provider_ref, "amount": amount_minor},
                {"idempotency_key": key},
            )
        )
        return refund.id

    async def _expire(self, checkout_ref: str, *, key: str) -> ProviderStatus:
        try:
            await _call(
                self._client.v1.checkout.sessions.expire_async(
                    checkout_ref, options={"idempotency_key": key}
                )
            )
        except PaymentDeclined:
            # Not open any more: paid meanwhile (then release the hold) or expired.
            status = await self.status(checkout_ref, None)
            if status.state is ProviderState.AUTHORIZED and status.provider_ref:
                return await self.void(status.provider_ref, key=f"{key}-intent")
            if status.state in (ProviderState.FAILED, ProviderState.CANCELED):
                return ProviderStatus(ProviderState.CANCELED, status.provider_ref)
            raise
        return ProviderStatus(ProviderState.CANCELED)

    async def _already(
        self, exc: PaymentDeclined, provider_ref: str, target: ProviderState
    ) -> ProviderStatus | None:
        """The PaymentIntent's status when Stripe refused a capture or cancel because it is
        in `target` already (a retry whose first attempt went through, after the 24 hours
        Stripe keeps idempotency keys), else None."""
        if not isinstance(exc.__cause__, stripe.InvalidRequestError):
            return None
        if exc.__cause__.code != _UNEXPECTED_STATE:
            return None
        status = await self.status(None, provider_ref)
        return status if status.state is target else None

    # --- webhooks -------------------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """The event, once its `Stripe-Signature` verifies with the endpoint's secret and
        is at most `webhook_tolerance_s` old (so a captured request cannot be replayed
        later); the payment is named by the metadata we gave the checkout."""
        signature = _header(headers, "Stripe-Signature")
        try:
            event = self._client.construct_event(
                body, signature, self._webhook_secret, tolerance=self._webhook_tolerance_s
            )
        except stripe.SignatureVerificationError as exc:
            raise BadSignature(f"the Stripe signature does not verify: {exc.user_message}") from exc
        except (ValueError, TypeError, AttributeError) as exc:  # signed, but no JSON object
            raise BadSignature("the webhook's body is not a Stripe event") from exc
        try:
            event_id, type_, obj = event.id, event.type, event.data.object.to_dict()
        except (AttributeError, KeyError, TypeError) as exc:
            raise BadSignature("the webhook's body is not a Stripe event") from exc
        if not isinstance(event_id, str) or not isinstance(type_, str):
            raise BadSignature("the webhook's body is not a Stripe event")
        return _event(event_id, type_, obj)

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


# --- translation ----------------------------------------------------------------------------


def _intent_status(intent: stripe.PaymentIntent) -> ProviderStatus:
    refunded = None
    charge = intent.latest_charge
    if charge is not None and not isinstance(charge, str):
        refunded = charge.amount_refunded
    if intent.status == "requires_capture":
        return ProviderStatus(
            ProviderState.AUTHORIZED, intent.id, authorized_minor=intent.amount_capturable
        )
    if intent.status == "succeeded":
        return ProviderStatus(
            ProviderState.CAPTURED,
            intent.id,
            captured_minor=intent.amount_received,
            refunded_minor=refunded,
        )
    if intent.status == "canceled":
        return ProviderStatus(ProviderState.CANCELED, intent.id, reason=intent.cancellation_reason)
    error = intent.last_payment_error
    reason = error.message if error is not None else None
    if intent.status in _PENDING:
        return ProviderStatus(ProviderState.PENDING, intent.id, reason=reason)
    return ProviderStatus(ProviderState.FAILED, intent.id, reason=reason or intent.status)


def _event(event_id: str, type_: str, obj: Mapping[str, Any]) -> ProviderEvent:
    kind = EVENT_KINDS.get(type_, EventKind.OTHER)
    kind_of_object = obj.get("object")
    metadata = obj.get("metadata") or {}
    payment_id = metadata.get("payment_id") or obj.get("client_reference_id")
    checkout_ref = provider_ref = None
    amount = None
    if kind_of_object == "checkout.session":
        checkout_ref = obj.get("id")
        provider_ref = _ref(obj.get("payment_intent"))
        amount = obj.get("amount_total")
    elif kind_of_object == "payment_intent":
        provider_ref = obj.get("id")
        if kind is EventKind.AUTHORIZED:
            amount = obj.get("amount_capturable")
        elif kind is EventKind.CAPTURED:
            amount = obj.get("amount_received")
        else:
            amount = obj.get("amount")
    elif kind_of_object == "charge":
        provider_ref = _ref(obj.get("payment_intent"))
        amount = obj.get("amount_refunded") if kind is EventKind.REFUNDED else obj.get("amount")
    return ProviderEvent(
        event_id=event_id,
        kind=kind,
        type=type_,
        payment_id=payment_id if isinstance(payment_id, str) and payment_id else None,
        checkout_ref=checkout_ref if isinstance(checkout_ref, str) else None,
        provider_ref=provider_ref,
        amount_minor=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
    )


def _ref(value: object) -> str | None:
    """The id of an expandable field: the string, or the expanded object's id."""
    if isinstance(value, str):
        return value or None
    ref = value.get("id") if isinstance(value, Mapping) else getattr(value, "id", None)
    return ref if isinstance(ref, str) and ref else None


def _answered_by_stripe(exc: PaymentError) -> bool:
    """Whether Stripe answered the call that failed (HTTP 5xx), as opposed to not being
    reached at all."""
    cause = exc.__cause__
    return (
        isinstance(cause, stripe.StripeError)
        and not isinstance(cause, stripe.APIConnectionError)
        and cause.http_status is not None
        and cause.http_status >= 500
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    low = name.lower()
    return next((v for k, v in headers.items() if k.lower() == low), None)


async def _call(call: Awaitable[_T]) -> _T:
    """Await a call of Stripe's client, its errors turned into ours."""
    try:
        return await call
    except stripe.CardError as exc:
        raise PaymentDeclined(_message(exc, "the card was declined")) from exc
    except stripe.APIConnectionError as exc:
        raise ProviderUnavailable("Stripe cannot be reached") from exc
    except stripe.StripeError as exc:
        status = exc.http_status
        if status is None or status >= 500 or status in (401, 403, 409, 429):
            raise ProviderUnavailable(_message(exc, f"Stripe failed (HTTP {status})")) from exc
        raise PaymentDeclined(_message(exc, f"Stripe refused (HTTP {status})")) from exc
    except (TimeoutError, aiohttp.ClientError) as exc:  # reading the answer
        raise ProviderUnavailable("Stripe's answer did not arrive") from exc


def _message(exc: stripe.StripeError, default: str) -> str:
    text = exc.user_message
    return f"{default}: {text}" if text else default
