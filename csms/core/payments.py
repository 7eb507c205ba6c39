"""Ad-hoc payment: a driver without a contract pays for one session on the spot (the EVSE's
QR code opens a payment page, the payment service provider pre-authorises an amount cap,
the session is started for a one-time token, the CDR's total is captured and the rest
released).

This module is the domain: the payment's states and the moves allowed between them, the
provider interface every payment service provider implements, and the arithmetic (minor
units, when to stop at the cap, what to capture). No I/O; the service is
csms.services.payments, the providers csms.services.payment_providers.

Money is kept in minor units (cents) as int: that is what providers take and what is
stored, so no rounding happens between us and them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Protocol

from csms.core.errors import CsmsError, InvalidInput, NotFound

__all__ = [
    "TAG_PREFIX",
    "BadSignature",
    "Checkout",
    "CheckoutRequest",
    "EventKind",
    "InvalidTransition",
    "NotPayable",
    "Payment",
    "PaymentDeclined",
    "PaymentError",
    "PaymentEvent",
    "PaymentProvider",
    "PaymentState",
    "ProviderEvent",
    "ProviderState",
    "ProviderStatus",
    "ProviderUnavailable",
    "StopReason",
    "UnknownPayment",
    "capture_amount",
    "check_transition",
    "from_minor",
    "is_one_time_tag",
    "minor_exponent",
    "new_payment_id",
    "new_tag",
    "should_stop",
    "to_minor",
]


class PaymentState(StrEnum):
    """Where a payment stands. Every change is stored with its reason (payment_events)."""

    # Made; the driver is at the provider's checkout.
    CREATED = "created"
    # The provider holds `authorized_minor` on the driver's card.
    AUTHORIZED = "authorized"
    # The remote start went out for the payment's one-time token.
    STARTING = "starting"
    # A transaction runs for the token (`transaction_id`).
    CHARGING = "charging"
    # A stop went out (the cap was near, or the driver pressed stop).
    STOPPING = "stopping"
    # The transaction ended; the capture waits for its CDR (and is retried while failing).
    ENDED = "ended"
    # The CDR's total was captured and the rest released. Refunds keep it here until all
    # of the captured amount is refunded.
    CAPTURED = "captured"
    # Everything captured was refunded.
    REFUNDED = "refunded"
    # The hold was released without taking money (never started, nothing to pay).
    VOIDED = "voided"
    # The pre-authorisation did not happen (declined, abandoned, expired checkout).
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({PaymentState.REFUNDED, PaymentState.VOIDED, PaymentState.FAILED})

# The moves allowed; anything else is a bug or a late, out-of-order provider event.
TRANSITIONS: Mapping[PaymentState, frozenset[PaymentState]] = {
    PaymentState.CREATED: frozenset(
        {PaymentState.AUTHORIZED, PaymentState.FAILED, PaymentState.VOIDED}
    ),
    PaymentState.AUTHORIZED: frozenset({PaymentState.STARTING, PaymentState.VOIDED}),
    PaymentState.STARTING: frozenset(
        {PaymentState.CHARGING, PaymentState.ENDED, PaymentState.VOIDED}
    ),
    PaymentState.CHARGING: frozenset({PaymentState.STOPPING, PaymentState.ENDED}),
    PaymentState.STOPPING: frozenset({PaymentState.ENDED}),
    PaymentState.ENDED: frozenset({PaymentState.CAPTURED, PaymentState.VOIDED}),
    PaymentState.CAPTURED: frozenset({PaymentState.REFUNDED}),
    PaymentState.REFUNDED: frozenset(),
    PaymentState.VOIDED: frozenset(),
    PaymentState.FAILED: frozenset(),
}


class StopReason(StrEnum):
    """Why a paid session ended (or was stopped by us)."""

    CAP = "cap"  # the cost came within the margin of the amount held
    DRIVER = "driver"  # the driver pressed stop on the page
    CHARGER = "charger"  # the charger ended it (unplugged, full, local stop)


class PaymentError(CsmsError):
    """A payment cannot go on as asked; the message says why in words for the driver or
    staff."""


class InvalidTransition(PaymentError):
    """A state change the machine does not allow (TRANSITIONS)."""


class UnknownPayment(NotFound):
    """No payment of that id."""


class NotPayable(InvalidInput):
    """This EVSE cannot be paid for on the spot now (not published, no ad-hoc tariff,
    payments off, busy or offline): the message says which, for the driver."""


class PaymentDeclined(PaymentError):
    """The provider refused: a declined card, an amount it will not hold. Not retried."""


class ProviderUnavailable(PaymentError):
    """The provider could not be reached or failed (network, HTTP 5xx, timeout): retried."""


class BadSignature(PaymentError):
    """A webhook whose signature does not verify (or is missing, or too old)."""


def check_transition(current: PaymentState, target: PaymentState) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"a payment cannot go from {current.value} to {target.value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """One ad-hoc payment as stored (table `payments`). Amounts in minor units of
    `currency`."""

    id: str  # public and unguessable: the page's URL carries it (new_payment_id)
    evse_uid: str
    charge_point_id: str
    evse_id: int
    connector_id: int | None
    location_id: str | None
    tariff_id: str | None
    provider: str  # PaymentProvider.name
    checkout_ref: str | None  # the provider's checkout (Stripe: Checkout Session id)
    provider_ref: str | None  # the provider's pre-authorisation (Stripe: PaymentIntent id)
    state: PaymentState
    currency: str
    cap_minor: int  # what the driver asked to hold
    authorized_minor: int | None  # what the provider holds
    captured_minor: int | None
    refunded_minor: int
    id_tag: str  # the one-time token the session runs under (new_tag)
    transaction_id: int | None
    cdr_id: str | None
    email: str | None  # for the receipt, when the driver gave one
    stop_reason: StopReason | None
    attempts: int  # failed attempts at the step due (void, capture)
    next_try_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One stored change of a payment (table `payment_events`): a state change, a provider
    event, a staff action. `provider_event_id` is unique: a webhook replayed changes
    nothing."""

    payment_id: str
    at: datetime
    from_state: PaymentState | None
    to_state: PaymentState | None
    what: str  # "authorized", "capture_failed", "refund", "webhook payment_intent.canceled"...
    actor: str  # "driver", "provider", "charger", "csms", or a staff user's name
    detail: str | None = None
    provider_event_id: str | None = None


# --- the provider interface ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """What a provider's checkout is asked to pre-authorise."""

    payment_id: str
    amount_minor: int
    currency: str
    description: str  # shown to the driver by the provider ("Charging at DE*ABC*E1")
    return_url: str  # where the driver goes after paying (our progress page)
    cancel_url: str  # where the driver goes after giving up (the EVSE's page)
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Checkout:
    checkout_ref: str
    redirect_url: str  # the provider's page the driver is sent to
    provider_ref: str | None = None  # when the pre-authorisation's id is known already


class ProviderState(StrEnum):
    """A pre-authorisation as the provider sees it."""

    PENDING = "pending"  # the driver has not finished the checkout
    AUTHORIZED = "authorized"  # held, capturable
    CAPTURED = "captured"  # (partly) captured, the rest released
    CANCELED = "canceled"  # released without capture (voided)
    FAILED = "failed"  # declined, expired


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    state: ProviderState
    provider_ref: str | None = None
    authorized_minor: int | None = None  # capturable now (AUTHORIZED)
    captured_minor: int | None = None
    refunded_minor: int | None = None
    reason: str | None = None  # why FAILED, in the provider's words


class EventKind(StrEnum):
    """What a webhook says, in our terms."""

    AUTHORIZED = "authorized"
    FAILED = "failed"
    CANCELED = "canceled"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    OTHER = "other"  # acknowledged and stored, changes nothing


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A verified webhook: `event_id` is the provider's (idempotency), `payment_id` ours
    (the metadata we gave the checkout), when the provider says it."""

    event_id: str
    kind: EventKind
    type: str  # the provider's own event type, for the audit trail
    payment_id: str | None
    checkout_ref: str | None = None
    provider_ref: str | None = None
    amount_minor: int | None = None


class PaymentProvider(Protocol):
    """A payment service provider that pre-authorises, captures (partly), voids and refunds.

    Every call that moves money takes an idempotency key: the same key twice moves money
    once (a retry after a lost answer is safe). Unreachable or failing providers raise
    ProviderUnavailable (retried), refusals PaymentDeclined (not retried)."""

    name: str

    async def checkout(self, request: CheckoutRequest, *, key: str) -> Checkout: ...

    async def status(self, checkout_ref: str | None, provider_ref: str | None) -> ProviderStatus:
        """The pre-authorisation's state now (after the driver came back, or to reconcile)."""
        ...

    async def capture(self, provider_ref: str, amount_minor: int, *, key: str) -> ProviderStatus:
        """Capture `amount_minor` (at most what is held) and release the rest."""
        ...

    async def void(self, provider_ref: str, *, key: str) -> ProviderStatus: ...

    async def refund(self, provider_ref: str, amount_minor: int, *, key: str) -> str:
        """Refund part or all of what was captured; returns the provider's refund id."""
        ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """The event a webhook carries, or BadSignature."""
        ...

    async def close(self) -> None: ...


# --- arithmetic ---------------------------------------------------------------------------

# ISO 4217 currencies whose minor unit is not 1/100 (the ones a CPO may meet).
_EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "HUF": 2, "CLP": 0, "BHD": 3, "KWD": 3, "JOD": 3}


def minor_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount in minor units, rounded half up (cost is rounded as a CDR rounds it)."""
    exponent = minor_exponent(currency)
    return int((amount * (Decimal(10) ** exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor(amount_minor: int, currency: str) -> Decimal:
    exponent = minor_exponent(currency)
    return (Decimal(amount_minor) / (Decimal(10) ** exponent)).quantize(
        Decimal(1).scaleb(-exponent)
    )


def should_stop(
    cost_minor: int,
    cap_minor: int,
    rate_minor_per_s: float,
    *,
    margin_minor: int,
    lookahead_s: float,
) -> bool:
    """Whether to stop now so that the final cost stays within the cap: what the session
    costs so far plus what it will cost until the stop takes effect (`lookahead_s` at the
    current `rate_minor_per_s`), plus a fixed margin for the final step of a price
    component, reaches the cap."""
    if cost_minor < 0 or cap_minor <= 0 or margin_minor < 0 or lookahead_s < 0:
        raise ValueError("negative cost, margin or lookahead, or no cap")
    coming = max(0.0, rate_minor_per_s) * lookahead_s
    return cost_minor + coming + margin_minor >= cap_minor


def capture_amount(total_minor: int, authorized_minor: int) -> tuple[int, int]:
    """What to capture for a CDR's total (incl. VAT), and what could not be (the total
    above the hold, which staff see as a shortfall). Never more than is held."""
    if total_minor < 0 or authorized_minor < 0:
        raise ValueError("negative amount")
    captured = min(total_minor, authorized_minor)
    return captured, total_minor - captured


# One-time tokens: "PAY" and 17 characters of an alphabet without look-alikes, 20 in all
# (an OCPP 1.6 idTag holds 20). 31**17 is about 2**84: not guessable.
TAG_PREFIX = "PAY"
_TAG_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_TAG_LENGTH = 20


def new_tag() -> str:
    body = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(_TAG_LENGTH - len(TAG_PREFIX)))
    return TAG_PREFIX + body


def is_one_time_tag(tag: str) -> bool:
    """Whether a token presented at a charger may be a payment's one-time token (new_tag):
    only those are looked up among the stored decisions when nobody stores the token."""
    return tag.startswith(TAG_PREFIX)


def new_payment_id() -> str:
    """22 URL-safe characters (128 bits): the payment page's URL is its only key. Never
    starting with '-', which a command line would take for an option (`csms payments show
    ID`)."""
    while True:
        found = secrets.token_urlsafe(16)
        if not found.startswith("-"):
            return found
