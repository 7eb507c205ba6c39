"""The test payment provider: a provider that runs inside the CSMS (for demos and tests),
with a hosted checkout page served by the pay app (/pay/-/test-psp/{checkout_ref}).

It holds, captures, voids and refunds nothing but rows of test_psp_intents, and honours
idempotency keys as a real provider does (the same key twice answers the first answer).
Card 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined. A payment made on its page
is told to the payment service at once (`on_event`, as a webhook would), and webhooks it
signs (`sign`) verify like a real provider's, so that replays can be tested over HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson
import structlog

from csms.core.clock import Clock
from csms.core.errors import InvalidInput
from csms.core.payments import (
    BadSignature,
    Checkout,
    CheckoutRequest,
    EventKind,
    PaymentDeclined,
    ProviderEvent,
    ProviderState,
    ProviderStatus,
    UnknownPayment,
)
from csms.storage import payments as repo
from csms.storage.database import Database, WriteTx
from csms.storage.payments import StoredIntent

__all__ = ["DECLINED_CARD", "PAYING_CARD", "SIGNATURE_HEADER", "TestIntent", "TestProvider"]

log = structlog.get_logger("csms.payments.test_psp")

PAYING_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
SIGNATURE_HEADER = "Test-Psp-Signature"

# What the pay app shows on the hosted page: the stored intent.
TestIntent = StoredIntent

OnEvent = Callable[[ProviderEvent], Awaitable[object]]


def _card(number: str) -> str:
    return "".join(ch for ch in number if not ch.isspace() and ch != "-")


class TestProvider:
    """The provider named "test". `base_url()` is where the pay app is reached (its hosted
    page is `{base_url()}/pay/-/test-psp/{checkout_ref}`); `secret` signs its webhooks."""

    __test__ = False  # not a test class, whatever pytest thinks of the name
    name = "test"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        base_url: Callable[[], str],
        *,
        secret: bytes | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._base_url = base_url
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        # Told of a payment made on the hosted page (the payment service), like a webhook.
        self.on_event: OnEvent | None = None

    # --- the provider interface -----------------------------------------------------------

    async def checkout(self, request: CheckoutRequest, *, key: str) -> Checkout:
        now = self._clock()

        async def unit(w: WriteTx) -> StoredIntent:
            conn = await w.connection()
            held = await repo.intent_of_payment(conn, request.payment_id)
            if held is not None:
                return held
            intent = StoredIntent(
                checkout_ref="tps_" + secrets.token_urlsafe(12),
                payment_id=request.payment_id,
                amount_minor=request.amount_minor,
                currency=request.currency,
                description=request.description[:255],
                state=ProviderState.PENDING.value,
                return_url=request.return_url,
                cancel_url=request.cancel_url,
                authorized_minor=None,
                captured_minor=None,
                refunded_minor=0,
                answers={key: {"checkout": True}},
                reason=None,
                created_at=now,
                updated_at=now,
            )
            await repo.add_intent(conn, intent)
            return intent

        intent = await self._db.write(unit)
        url = f"{self._base_url().rstrip('/')}/pay/-/test-psp/{intent.checkout_ref}"
        return Checkout(intent.checkout_ref, url, intent.checkout_ref)

    async def status(self, checkout_ref: str | None, provider_ref: str | None) -> ProviderStatus:
        intent = await self.intent(checkout_ref or provider_ref or "")
        return _status(intent)

    async def capture(self, provider_ref: str, amount_minor: int, *, key: str) -> ProviderStatus:
        def move(intent: StoredIntent) -> StoredIntent:
            if intent.state != ProviderState.AUTHORIZED.value:
                raise PaymentDeclined(f"nothing to capture: the payment is {intent.state}")
            held = intent.authorized_minor or 0
            if not 0 <= amount_minor <= held:
                raise PaymentDeclined(f"cannot capture {amount_minor} of {held} held")
            return replace(intent, state=ProviderState.CAPTURED.value, captured_minor=amount_minor)

        return _status(await self._change(provider_ref, key, move))

    async def void(self, provider_ref: str, *, key: str) -> ProviderStatus:
        def move(intent: StoredIntent) -> StoredIntent:
            if intent.state in (ProviderState.CAPTURED.value,):
                raise PaymentDeclined("a captured payment cannot be voided; refund it")
            if intent.state == ProviderState.FAILED.value:
                return intent
            return replace(intent, state=ProviderState.CANCELED.value)

        return _status(await self._change(provider_ref, key, move))

    async def refund(self, provider_ref: str, amount_minor: int, *, key: str) -> str:
        def move(intent: StoredIntent) -> StoredIntent:
            if intent.state != ProviderState.CAPTURED.value:
                raise PaymentDeclined(f"nothing to refund: the payment is {intent.state}")
            left = (intent.captured_minor or 0) - intent.refunded_minor
            if not 0 < amount_minor <= left:
                raise PaymentDeclined(f"cannot refund {amount_minor} of {left} captured")
            return replace(intent, refunded_minor=intent.refunded_minor + amount_minor)

        intent = await self._change(provider_ref, key, move)
        return f"tre_{intent.checkout_ref}_{intent.refunded_minor}"

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        if not given or not hmac.compare_digest(given, self._signature(body)):
            raise BadSignature("the test provider's webhook signature does not verify")
        try:
            data = orjson.loads(body)
            return ProviderEvent(
                event_id=str(data["id"]),
                kind=EventKind(data["kind"]),
                type=str(data["type"]),
                payment_id=data.get("payment_id"),
                checkout_ref=data.get("checkout_ref"),
                provider_ref=data.get("provider_ref"),
                amount_minor=data.get("amount_minor"),
            )
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise BadSignature(f"the webhook is no test provider event: {exc}") from None

    async def close(self) -> None:
        return None

    # --- beyond the interface: the hosted page ------------------------------------------

    async def intent(self, checkout_ref: str) -> TestIntent:
        async with self._db.read() as conn:
            found = await repo.get_intent(conn, checkout_ref)
        if found is None:
            raise UnknownPayment(f"no test checkout {checkout_ref!r}")
        return found

    async def pay(self, checkout_ref: str, card_number: str) -> str:
        """Pay on the hosted page: the URL to send the driver to (the return URL), after the
        payment service was told; PaymentDeclined for the declining card, InvalidInput for a
        card the test provider does not know."""
        card = _card(card_number)
        if card not in (PAYING_CARD, DECLINED_CARD):
            raise InvalidInput(
                "use the test card 4242 4242 4242 4242 (pays) or 4000 0000 0000 0002 (declined)"
            )
        intent = await self.intent(checkout_ref)
        if intent.state == ProviderState.AUTHORIZED.value and card == PAYING_CARD:
            return intent.return_url  # paid already (the form sent twice)
        if intent.state != ProviderState.PENDING.value:
            raise PaymentDeclined(f"this checkout is {intent.state}")
        paying = card == PAYING_CARD

        def move(current: StoredIntent) -> StoredIntent:
            if current.state != ProviderState.PENDING.value:
                return current
            if paying:
                return replace(
                    current,
                    state=ProviderState.AUTHORIZED.value,
                    authorized_minor=current.amount_minor,
                )
            return replace(current, state=ProviderState.FAILED.value, reason="card declined")

        intent = await self._change(checkout_ref, f"pay-{checkout_ref}", move)
        event = self.event_for(intent)
        log.info(
            "test_psp_paid" if paying else "test_psp_declined",
            checkout_ref=checkout_ref,
            payment_id=intent.payment_id,
        )
        if self.on_event is not None:
            await self.on_event(event)
        if not paying:
            raise PaymentDeclined("the card was declined")
        return intent.return_url

    def event_for(self, intent: StoredIntent) -> ProviderEvent:
        """The event the test provider tells of an intent's state (its webhook)."""
        kind = {
            ProviderState.AUTHORIZED.value: EventKind.AUTHORIZED,
            ProviderState.FAILED.value: EventKind.FAILED,
            ProviderState.CANCELED.value: EventKind.CANCELED,
            ProviderState.CAPTURED.value: EventKind.CAPTURED,
        }.get(intent.state, EventKind.OTHER)
        return ProviderEvent(
            event_id=f"evt_{intent.checkout_ref}_{intent.state}",
            kind=kind,
            type=f"intent.{intent.state}",
            payment_id=intent.payment_id,
            checkout_ref=intent.checkout_ref,
            provider_ref=intent.checkout_ref,
            amount_minor=intent.authorized_minor,
        )

    def webhook(self, event: ProviderEvent) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the webhook that tells `event` (tests send it)."""
        body = orjson.dumps(
            {
                "id": event.event_id,
                "kind": event.kind.value,
                "type": event.type,
                "payment_id": event.payment_id,
                "checkout_ref": event.checkout_ref,
                "provider_ref": event.provider_ref,
                "amount_minor": event.amount_minor,
            }
        )
        return body, {SIGNATURE_HEADER: self._signature(body), "Content-Type": "application/json"}

    # --- internals ----------------------------------------------------------------------

    def _signature(self, body: bytes) -> str:
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    async def _change(
        self, ref: str, key: str, move: Callable[[StoredIntent], StoredIntent]
    ) -> StoredIntent:
        """Apply `move` to the intent once per idempotency key: a key seen before answers
        the intent as it stands (no money moves twice)."""
        now = self._clock()

        async def unit(w: WriteTx) -> StoredIntent:
            conn = await w.connection()
            intent = await repo.get_intent(conn, ref)
            if intent is None:
                raise UnknownPayment(f"no test payment {ref!r}")
            if key in intent.answers:
                return intent
            changed = move(intent)
            answers: dict[str, Any] = {**intent.answers, key: {"state": changed.state}}
            changed = replace(changed, answers=answers, updated_at=now)
            await repo.save_intent(conn, changed)
            return changed

        return await self._db.write(unit)


def _status(intent: StoredIntent) -> ProviderStatus:
    return ProviderStatus(
        state=ProviderState(intent.state),
        provider_ref=intent.checkout_ref,
        authorized_minor=intent.authorized_minor
        if intent.state == ProviderState.AUTHORIZED.value
        else None,
        captured_minor=intent.captured_minor,
        refunded_minor=intent.refunded_minor,
        reason=intent.reason,
    )
