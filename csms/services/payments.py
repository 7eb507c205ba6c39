"""Ad-hoc payment: a driver pays for one session at an EVSE on the spot (the pay pages of
csms.payweb call this service), from the pre-authorisation to the capture of the CDR's total.

The payment's states and moves are csms.core.payments'; every move is a compare-and-set of
the stored row with its payment_events row in the same write, so the driver's page, the
provider's webhooks and the worker never move one payment twice. The worker (`worker`, one
per database: hosted like billing's) starts authorised sessions, follows them (the cost so
far against the cap), captures what the CDR says once it exists, voids what never started
and fails abandoned checkouts; failures at the provider are retried with back-off.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import smtplib
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import structlog

from csms.config import PaymentsConfig
from csms.core.authorization import AuthStatus
from csms.core.clock import Clock
from csms.core.command_requests import StartRequest, StopRequest
from csms.core.commands import Outcome
from csms.core.errors import CsmsError, InvalidInput, NotFound, one_line
from csms.core.locations import Location, evse_uid
from csms.core.ocpi_locations import Presence, evse_status
from csms.core.ocpi_sessions import AuthMethod
from csms.core.pay_links import pay_url
from csms.core.payments import (
    CheckoutRequest,
    EventKind,
    NotPayable,
    Payment,
    PaymentError,
    PaymentEvent,
    PaymentProvider,
    PaymentState,
    ProviderEvent,
    ProviderState,
    ProviderUnavailable,
    StopReason,
    UnknownPayment,
    capture_amount,
    check_transition,
    from_minor,
    minor_exponent,
    new_payment_id,
    new_tag,
    should_stop,
    to_minor,
)
from csms.core.roaming import Grant
from csms.core.status import ConnectorStatus
from csms.core.tariffs import Tariff, TariffError
from csms.core.transactions import Transaction
from csms.metrics import Family, Metrics, labels
from csms.services.billing import FREE_CURRENCY, BillingService, Identity
from csms.services.charging import Charging
from csms.services.commands import CommandService, Requester, Vouched
from csms.services.payment_providers.test import TestProvider
from csms.storage import charge_points as cp_repo
from csms.storage import locations as location_repo
from csms.storage import payments as repo
from csms.storage import transactions as tx_repo
from csms.storage.cdrs import StoredCdr
from csms.storage.database import Database, WriteTx
from csms.workers import TaskSet, Worker

__all__ = [
    "PayPage",
    "PaymentService",
    "PaymentSettings",
    "Progress",
    "Receipt",
    "SmtpSettings",
    "UnknownEvse",
    "payment_settings",
]

log = structlog.get_logger("csms.payments")

# The longest wait between two tries of a failed capture or void.
MAX_RETRY_S = 3600.0
# How often a stop that went out is sent again while the session still runs.
STOP_RESEND_S = 30.0
# The worker's longest wait between passes (it is woken by starts, readings, stops, CDRs).
PERIOD_S = 5.0
# The charger statuses a driver can start from: free, or plugged in and waiting.
_STARTABLE = frozenset(
    {ConnectorStatus.AVAILABLE, ConnectorStatus.PREPARING, ConnectorStatus.OCCUPIED}
)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_MAX_ERROR = 300
# States of a payment given up before any session: a late authorisation is released.
_GIVEN_UP = frozenset({PaymentState.FAILED, PaymentState.VOIDED})
# The OCPP 2.0.1 idToken type of a one-time token (1.6 sends the tag alone).
CENTRAL = "Central"


class UnknownEvse(NotFound):
    """No EVSE of that uid."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = ""
    starttls: bool = False


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """`[payments]` as the service uses it (amounts as Decimal, in the tariff's currency)."""

    enabled: bool = False
    provider: str = "test"
    default_cap: Decimal = Decimal(30)
    min_cap: Decimal = Decimal(5)
    max_cap: Decimal = Decimal(150)
    start_timeout: float = 180.0
    stop_margin: Decimal = Decimal("0.5")
    stop_lookahead: float = 60.0
    capture_retry: float = 60.0
    checkout_timeout: float = 1800.0
    smtp: SmtpSettings | None = None
    # How long a charger may be offline before its EVSEs count as UNKNOWN (ocpi).
    offline_grace: float = 300.0


def payment_settings(config: PaymentsConfig, offline_grace: float = 300.0) -> PaymentSettings:
    smtp = (
        SmtpSettings(
            config.smtp_host,
            config.smtp_port,
            config.smtp_from,
            config.smtp_user,
            config.smtp_password,
            config.smtp_starttls,
        )
        if config.smtp_host
        else None
    )
    return PaymentSettings(
        enabled=config.enabled,
        provider=config.provider,
        default_cap=config.default_cap,
        min_cap=config.min_cap,
        max_cap=config.max_cap,
        start_timeout=config.start_timeout,
        stop_margin=config.stop_margin,
        stop_lookahead=config.stop_lookahead,
        capture_retry=config.capture_retry,
        checkout_timeout=config.checkout_timeout,
        smtp=smtp,
        offline_grace=offline_grace,
    )


@dataclass(frozen=True, slots=True)
class PayPage:
    evse_uid: str
    location_name: str | None
    address: str | None  # "street, postal_code city"
    status: str  # the EVSE's OCPI status: AVAILABLE, CHARGING, ...
    connectors: list[tuple[int, str, Decimal | None]]  # (id, standard, max kW)
    tariff: Tariff | None  # the ad-hoc tariff
    currency: str
    default_cap: Decimal
    min_cap: Decimal
    max_cap: Decimal
    payable: bool
    reason: str | None  # why not payable, for the driver


@dataclass(frozen=True, slots=True)
class Receipt:
    cdr_id: str
    start_at: datetime
    end_at: datetime
    energy_kwh: Decimal
    total_excl_vat: Decimal
    total_incl_vat: Decimal
    vat: Decimal  # incl - excl
    currency: str
    captured: Decimal
    released: Decimal  # authorized - captured
    location_name: str | None
    address: str | None
    evse_uid: str


@dataclass(frozen=True, slots=True)
class Progress:
    payment: Payment
    energy_kwh: Decimal | None
    cost_so_far: Decimal | None  # incl. VAT
    duration_s: int | None
    receipt: Receipt | None


@dataclass(frozen=True, slots=True)
class _Evse:
    """Where a payment's EVSE is, as far as the page needs it."""

    uid: str
    cp_id: str
    evse_id: int
    location: Location | None


def _address(location: Location | None) -> str | None:
    if location is None:
        return None
    town = " ".join(p for p in (location.postal_code, location.city) if p)
    return ", ".join(p for p in (location.address, town) if p)


def _retry_delay(base: float, attempts: int) -> float:
    return min(MAX_RETRY_S, base * float(1 << min(30, max(0, attempts - 1))))


def _incl_vat(excl: Decimal, incl: Decimal | None) -> Decimal:
    return incl if incl is not None else excl


class PaymentService:
    """Ad-hoc payments, from the pay page to the capture. One per process."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: PaymentSettings,
        providers: Mapping[str, PaymentProvider],
        commands: CommandService,
        charging: Charging,
        billing: BillingService,
        identity: Identity,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings
        self.providers = dict(providers)
        self._commands = commands
        self._charging = charging
        self._billing = billing
        self.identity = identity
        # The public URL the pay app is reached at (set by the app once its listener is
        # bound: by default the OCPI base URL).
        self.public_url = ""
        found = self.providers.get(settings.provider)
        self.provider: PaymentProvider | None = found
        self.test_provider: TestProvider | None = found if isinstance(found, TestProvider) else None
        if self.test_provider is not None:
            self.test_provider.on_event = self._test_event
        self.worker = Worker("payments", self._pass, period=PERIOD_S, min_gap=0.2)
        self._tasks = TaskSet("payments")
        # Payments with a step under way in this process that waits for a charger or the
        # provider (a start, a stop, a capture, a void): the worker's pass never waits for
        # one, so that one slow provider or charger delays nobody's stop at the cap.
        self._busy: set[str] = set()
        # Transactions of payments being charged (readings of them wake the worker), and
        # the last cost seen of each payment (its rate), and when a stop last went out.
        self._paid_tx: set[int] = set()
        # Of those, the ones with readings since the last pass began (priced at once; the
        # others at most every PERIOD_S: their readings may reach another node).
        self._fresh: set[int] = set()
        self._fresh_in_pass: set[int] = set()
        self._last_cost: dict[str, tuple[datetime, int]] = {}
        self._stop_sent: dict[str, datetime] = {}
        # Payments whose hold this process is releasing now (see _void).
        self._voiding: set[str] = set()
        # Counters for /metrics: state changes by target state, failed captures and voids,
        # receipts e-mailed and failed.
        self.moves: dict[str, int] = {}
        self.capture_failures = 0
        self.void_failures = 0
        self.receipts: dict[str, int] = {}
        if metrics is not None:
            metrics.families.append(self.metric_families)

    # --- hooks ----------------------------------------------------------------------------

    def wake(self) -> None:
        self.worker.wake()

    def readings(self, tx_id: int, _samples: Sequence[Any]) -> None:
        """New readings of a transaction: a paid one's cost is checked against its cap."""
        if tx_id in self._paid_tx:
            self._fresh.add(tx_id)
            self.worker.wake()

    async def close(self) -> None:
        await self._tasks.close()
        for provider in self.providers.values():
            await provider.close()

    # --- the page ---------------------------------------------------------------------------

    async def page(self, evse_uid: str) -> PayPage:
        evse = await self._evse(evse_uid)
        now = self._clock()
        async with self._db.read() as conn:
            charger = await cp_repo.get(conn, evse.cp_id)
            connectors = await cp_repo.connectors_of(conn, [evse.cp_id])
            linked = await location_repo.of_charger(conn, evse.cp_id)
            detail = await location_repo.evse_detail(conn, evse.cp_id, evse.evse_id)
            running = await self._running_on(conn, evse)
        spec = None if linked is None else linked[1]
        if spec is not None and detail is not None:
            spec = detail.spec(spec)
        mine = [c for c in connectors if c.evse_id == evse.evse_id]
        level = next((c.status for c in connectors if c.evse_id == 0 and c.connector_id == 0), None)
        presence = Presence(
            removed=False,
            installed=charger is not None and charger.last_boot_at is not None,
            connected=charger is not None and charger.connected,
            disconnected_at=None if charger is None else charger.disconnected_at,
        )
        status = evse_status(
            [c.status for c in mine],
            level,
            presence,
            now,
            timedelta(seconds=self.settings.offline_grace),
        )
        kw = None
        if spec is not None:
            if spec.max_electric_power is not None:
                kw = Decimal(spec.max_electric_power) / 1000
            else:
                phases = 3 if spec.power_type == "AC_3_PHASE" else 1
                kw = Decimal(spec.max_voltage * spec.max_amperage * phases) / 1000
        standard = spec.standard if spec is not None else "IEC_62196_T2"
        listed = [(c.connector_id, standard, kw) for c in mine] or [(1, standard, kw)]
        tariff = await self._tariff(evse)
        reason = self._why_not(evse, charger is not None and charger.connected, mine, tariff)
        if reason is None and running:
            reason = "This charger is in use. Please try another one or come back later."
        return PayPage(
            evse_uid=evse.uid,
            location_name=None if evse.location is None else evse.location.name,
            address=_address(evse.location),
            status=status.value,
            connectors=listed,
            tariff=tariff,
            currency=tariff.currency if tariff is not None else FREE_CURRENCY,
            default_cap=self.settings.default_cap,
            min_cap=self.settings.min_cap,
            max_cap=self.settings.max_cap,
            payable=reason is None,
            reason=reason,
        )

    def _why_not(
        self, evse: _Evse, connected: bool, connectors: Sequence[Any], tariff: Tariff | None
    ) -> str | None:
        if not self.settings.enabled or self.provider is None:
            return "Paying on the spot is not offered at this charger."
        if evse.location is None or not evse.location.publish:
            return "This charger is not open to the public."
        if tariff is None:
            return "No price for paying on the spot is set at this charger."
        if not connected:
            return "The charger is offline at the moment."
        statuses = {c.status for c in connectors}
        if statuses and not statuses & _STARTABLE:
            if statuses & {ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED}:
                return "This charger is out of order at the moment."
            return "This charger is in use. Please try another one or come back later."
        return None

    async def _running_on(self, conn: Any, evse: _Evse) -> bool:
        """Whether a session runs at the EVSE, or a paid one is about to start there."""
        if await tx_repo.active_on_evse(conn, evse.cp_id, evse.evse_id) is not None:
            return True
        busy = (PaymentState.AUTHORIZED, PaymentState.STARTING)
        return any(
            p.evse_uid == evse.uid and p.state in busy for p in await repo.open_payments(conn)
        )

    async def _evse(self, uid: str) -> _Evse:
        cp_id, star, number = uid.rpartition("*")
        async with self._db.read() as conn:
            # A plain uid names its charger; only a digest uid needs every charger's EVSEs.
            connectors = await cp_repo.connectors_of(conn, [cp_id] if star else None)
            found = next(
                (
                    (c.charge_point_id, c.evse_id)
                    for c in connectors
                    if c.evse_id and evse_uid(c.charge_point_id, c.evse_id) == uid
                ),
                None,
            )
            if (
                found is None
                and star
                and number.isdigit()
                and int(number) > 0
                and await cp_repo.get(conn, cp_id) is not None
            ):
                # A charger that has not reported this EVSE's status yet, but is known.
                found = (cp_id, int(number))
            if found is None:
                raise UnknownEvse(f"no EVSE {uid!r}")
            linked = await location_repo.of_charger(conn, found[0])
        return _Evse(uid, found[0], found[1], None if linked is None else linked[0])

    async def _tariff(self, evse: _Evse, connector_id: int | None = None) -> Tariff | None:
        """The ad-hoc tariff that applies at the EVSE (None: it cannot be paid on the spot;
        one that cannot be read counts as none, and is logged)."""
        try:
            return await self._billing.ad_hoc_tariff(evse.uid, connector_id)
        except TariffError as exc:
            log.warning("payment_tariff_unreadable", evse_uid=evse.uid, error=one_line(exc))
            return None

    # --- the driver -----------------------------------------------------------------------

    async def begin(self, evse_uid: str, cap: Decimal, *, email: str | None) -> tuple[Payment, str]:
        """A payment for a session at the EVSE, holding `cap`: the payment (CREATED) and
        the provider's checkout URL to send the driver to."""
        page = await self.page(evse_uid)
        if not page.payable:
            raise NotPayable(page.reason or "This charger cannot be paid for on the spot.")
        provider = self.provider
        assert provider is not None  # payable says so
        if not cap.is_finite() or not page.min_cap <= cap <= page.max_cap:
            raise InvalidInput(
                f"the amount must be between {page.min_cap} and {page.max_cap} {page.currency}"
            )
        exponent = minor_exponent(page.currency)
        if cap != cap.quantize(Decimal(1).scaleb(-exponent)):
            raise InvalidInput(f"the amount has more than {exponent} decimals")
        if email is not None:
            email = email.strip() or None
        if email is not None and (len(email) > 254 or not _EMAIL.match(email)):
            raise InvalidInput(f"{email!r} is not an e-mail address")
        evse = await self._evse(evse_uid)
        now = self._clock()
        payment = Payment(
            id=new_payment_id(),
            evse_uid=evse.uid,
            charge_point_id=evse.cp_id,
            evse_id=evse.evse_id,
            connector_id=None,
            location_id=None if evse.location is None else evse.location.id,
            tariff_id=None if page.tariff is None else page.tariff.id,
            provider=provider.name,
            checkout_ref=None,
            provider_ref=None,
            state=PaymentState.CREATED,
            currency=page.currency,
            cap_minor=to_minor(cap, page.currency),
            authorized_minor=None,
            captured_minor=None,
            refunded_minor=0,
            id_tag=new_tag(),
            transaction_id=None,
            cdr_id=None,
            email=email,
            stop_reason=None,
            attempts=0,
            next_try_at=None,
            last_error=None,
            created_at=now,
            updated_at=now,
        )

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            await repo.add(conn, payment)
            await repo.add_event(
                conn,
                PaymentEvent(
                    payment.id,
                    now,
                    None,
                    PaymentState.CREATED,
                    "created",
                    "driver",
                    f"cap {cap} {page.currency} at {evse.uid}",
                ),
            )

        await self._db.write(unit)
        self._count(PaymentState.CREATED)
        log.info(
            "payment_created",
            payment_id=payment.id,
            evse_uid=evse.uid,
            cap_minor=payment.cap_minor,
            currency=payment.currency,
        )
        base = self.public_url.rstrip("/")
        request = CheckoutRequest(
            payment_id=payment.id,
            amount_minor=payment.cap_minor,
            currency=payment.currency,
            description=f"Charging at {evse.uid}",
            return_url=f"{base}/pay/-/payments/{payment.id}",
            cancel_url=pay_url(base, evse.uid),
            email=email,
        )
        try:
            checkout = await provider.checkout(request, key=f"checkout-{payment.id}")
        except PaymentError as exc:
            await self._move(
                payment, PaymentState.FAILED, "checkout_failed", "provider", one_line(exc)
            )
            raise
        refs: dict[str, Any] = {"checkout_ref": checkout.checkout_ref}
        if checkout.provider_ref is not None:
            refs["provider_ref"] = checkout.provider_ref
        # Whatever its state by now (a provider's webhook may have come first).
        moved = await self._move(
            payment,
            None,
            "checkout_opened",
            "provider",
            checkout.checkout_ref,
            any_state=True,
            **refs,
        )
        return moved or payment, checkout.redirect_url

    async def returned(self, payment_id: str) -> Payment:
        """The driver came back from the checkout: ask the provider, unless its webhook told
        us already."""
        payment = await self._get(payment_id)
        if payment.state is not PaymentState.CREATED:
            return payment
        provider = self.providers.get(payment.provider)
        if provider is None or (payment.checkout_ref is None and payment.provider_ref is None):
            return payment
        try:
            status = await provider.status(payment.checkout_ref, payment.provider_ref)
        except PaymentError as exc:
            log.warning("payment_status_failed", payment_id=payment.id, error=one_line(exc))
            return payment
        if status.state is ProviderState.AUTHORIZED:
            await self._authorized(payment, status.authorized_minor, status.provider_ref)
        elif status.state in (ProviderState.FAILED, ProviderState.CANCELED):
            await self._move(
                payment, PaymentState.FAILED, "checkout_failed", "provider", status.reason
            )
        return await self._get(payment_id)

    async def progress(self, payment_id: str) -> Progress:
        payment = await self._get(payment_id)
        energy: Decimal | None = None
        cost: Decimal | None = None
        duration: int | None = None
        receipt: Receipt | None = None
        if payment.transaction_id is not None:
            async with self._db.read() as conn:
                tx = await tx_repo.get_with_meter(conn, payment.transaction_id)
            if tx is not None:
                wh = tx.live_energy_wh()
                energy = None if wh is None else Decimal(wh) / 1000
                end = tx.stop_at or self._clock()
                duration = max(0, int((end - tx.start_at).total_seconds()))
                cdr = await self._cdr(payment)
                if cdr is not None:
                    cost = _incl_vat(cdr.total_excl_vat, cdr.total_incl_vat)
                    energy = Decimal(cdr.energy_wh) / 1000
                    receipt = await self._receipt(payment, cdr)
                else:
                    cost = await self._cost(tx)
        return Progress(payment, energy, cost, duration, receipt)

    async def stop(self, payment_id: str) -> Progress:
        """The driver pressed stop."""
        payment = await self._get(payment_id)
        if payment.state is PaymentState.CHARGING:
            moved = await self._move(
                payment,
                PaymentState.STOPPING,
                "stop_requested",
                "driver",
                stop_reason=StopReason.DRIVER,
            )
            if moved is not None:
                await self._send_stop(moved)
        elif payment.state in (PaymentState.AUTHORIZED, PaymentState.STARTING):
            raise InvalidInput("the session has not started yet")
        return await self.progress(payment_id)

    async def webhook(self, provider: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """A provider's webhook: True when its event is new (stored and acted on), False for
        a replay; BadSignature when it does not verify, NotFound for an unknown provider."""
        found = self.providers.get(provider)
        if found is None:
            raise NotFound(f"no payment provider {provider!r}")
        event = found.verify_webhook(body, headers)
        return await self._event(found.name, event)

    # --- staff ----------------------------------------------------------------------------

    async def list(self, *, state: PaymentState | None = None, limit: int = 100) -> list[Payment]:
        async with self._db.read() as conn:
            return await repo.listing(conn, state, limit)

    async def show(self, payment_id: str) -> tuple[Payment, builtins.list[PaymentEvent]]:
        async with self._db.read() as conn:
            payment = await repo.get(conn, payment_id)
            if payment is None:
                raise UnknownPayment(f"no payment {payment_id!r}")
            return payment, await repo.events_of(conn, payment_id)

    async def refund(
        self, payment_id: str, amount: Decimal | None, *, reason: str | None, actor: str
    ) -> Payment:
        """Give back part (`amount`) or all of what was captured."""
        payment = await self._get(payment_id)
        if payment.state is not PaymentState.CAPTURED or payment.provider_ref is None:
            raise PaymentError(f"payment {payment_id} is {payment.state.value}: nothing to refund")
        left = (payment.captured_minor or 0) - payment.refunded_minor
        minor = left if amount is None else to_minor(amount, payment.currency)
        if amount is not None and from_minor(minor, payment.currency) != amount:
            raise InvalidInput(f"{amount} is not an amount of {payment.currency}")
        if not 0 < minor <= left:
            raise InvalidInput(
                f"the refund must be more than 0 and at most "
                f"{from_minor(left, payment.currency)} {payment.currency}"
            )
        provider = self._provider_of(payment)
        key = f"refund-{payment.id}-{payment.refunded_minor}-{minor}"
        refund_id = await provider.refund(payment.provider_ref, minor, key=key)
        total = payment.refunded_minor + minor
        target = PaymentState.REFUNDED if total >= (payment.captured_minor or 0) else None
        detail = f"{from_minor(minor, payment.currency)} {payment.currency} ({refund_id})"
        if reason:
            detail += f": {reason}"
        moved = await self._move(
            payment, target, "refund", actor, detail, refunded_minor=total, same_state=True
        )
        if moved is None:
            raise PaymentError(f"payment {payment_id} changed meanwhile; look again")
        log.info("payment_refunded", payment_id=payment.id, refunded_minor=minor, actor=actor)
        return moved

    # --- provider events ------------------------------------------------------------------

    async def _test_event(self, event: ProviderEvent) -> bool:
        return await self._event("test", event)

    async def _event(self, provider: str, event: ProviderEvent) -> bool:
        """Store a provider's event once and act on it (a replay changes nothing)."""
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[bool, Payment | None, Payment | None]:
            conn = await w.connection()
            if await repo.event_seen(conn, event.event_id):
                return False, None, None
            payment = None
            if event.payment_id is not None:
                payment = await repo.get(conn, event.payment_id)
            if payment is None:
                payment = await repo.by_ref(conn, provider, event.checkout_ref, event.provider_ref)
            target = None if payment is None else _event_target(payment.state, event.kind)
            what = f"webhook {event.type}"
            if payment is None:
                await repo.add_event(
                    conn,
                    PaymentEvent(
                        "", now, None, None, what, "provider", "no such payment", event.event_id
                    ),
                )
                return True, None, None
            changes: dict[str, Any] = {}
            if target is PaymentState.AUTHORIZED:
                changes["authorized_minor"] = (
                    event.amount_minor if event.amount_minor is not None else payment.cap_minor
                )
                if event.provider_ref is not None:
                    changes["provider_ref"] = event.provider_ref
            new = payment
            if target is not None:
                # An event that moves nothing is only stored: the payment stays as it was
                # (a step that read it, such as a refund whose own webhook arrives before
                # its answer, still finds it unchanged).
                new = replace(payment, state=target, updated_at=now, **changes)
                await repo.save(conn, new)
            await repo.add_event(
                conn,
                PaymentEvent(
                    payment.id,
                    now,
                    payment.state if target else None,
                    target,
                    what,
                    "provider",
                    None,
                    event.event_id,
                ),
            )
            return True, payment, new

        fresh, before, after = await self._db.write(unit)
        if not fresh:
            log.info("payment_event_replayed", event_id=event.event_id, type=event.type)
            return False
        if before is None or after is None:
            log.warning("payment_event_unmatched", event_id=event.event_id, type=event.type)
            return True
        if after.state is not before.state:
            self._moved(before, after)
        if (
            before.state is PaymentState.ENDED
            and after.state is PaymentState.VOIDED
            and after.id not in self._voiding
        ):
            log.error(
                "payment_hold_lost",
                payment_id=after.id,
                transaction_id=after.transaction_id,
                event_id=event.event_id,
                type=event.type,
            )
        if after.state is PaymentState.AUTHORIZED:
            self.worker.wake()
        elif event.kind is EventKind.AUTHORIZED and after.state in _GIVEN_UP:
            await self._release_late(after, event.provider_ref or after.provider_ref)
        return True

    async def _release_late(self, payment: Payment, provider_ref: str | None) -> None:
        """An authorisation that came after the payment was given up (the checkout expired,
        the hold was released): the money is released at once, never kept."""
        provider = self.providers.get(payment.provider)
        if provider is None or provider_ref is None:
            return
        try:
            await provider.void(provider_ref, key=f"void-{payment.id}")
        except PaymentError as exc:
            self.void_failures += 1
            log.error("payment_void_failed", payment_id=payment.id, error=one_line(exc))
            await self._move(payment, None, "late_authorization_void_failed", "csms", one_line(exc))
            return
        log.warning("payment_late_authorization_voided", payment_id=payment.id)
        await self._move(payment, None, "late_authorization_voided", "csms", provider_ref)

    async def _authorized(
        self, payment: Payment, authorized_minor: int | None, provider_ref: str | None
    ) -> None:
        changes: dict[str, Any] = {
            "authorized_minor": authorized_minor
            if authorized_minor is not None
            else payment.cap_minor
        }
        if provider_ref is not None:
            changes["provider_ref"] = provider_ref
        moved = await self._move(
            payment, PaymentState.AUTHORIZED, "authorized", "provider", **changes
        )
        if moved is not None:
            self.worker.wake()

    # --- the worker -----------------------------------------------------------------------

    async def _pass(self) -> float | None:
        """One look at every payment under way; returns when the next is due at the latest."""
        now = self._clock()
        async with self._db.read() as conn:
            payments = await repo.open_payments(conn)
        self._fresh_in_pass, self._fresh = self._fresh, set()
        self._paid_tx = {
            p.transaction_id
            for p in payments
            if p.transaction_id is not None
            and p.state in (PaymentState.CHARGING, PaymentState.STOPPING)
        }
        soonest: float | None = None
        for payment in payments:
            try:
                due = await self._step(payment, now)
            except Exception:  # one payment's trouble does not stop the others'
                log.exception("payment_step_failed", payment_id=payment.id)
                due = None
            if due is not None:
                soonest = due if soonest is None else min(soonest, due)
        return soonest

    async def _step(self, payment: Payment, now: datetime) -> float | None:
        state = payment.state
        if payment.id in self._busy:
            return None  # its step under way wakes the worker when done
        if payment.next_try_at is not None and now < payment.next_try_at:
            return (payment.next_try_at - now).total_seconds()
        if state is PaymentState.CREATED:
            expires = payment.created_at + timedelta(seconds=self.settings.checkout_timeout)
            if now < expires:
                return (expires - now).total_seconds()
            self._background(payment, self._expire(payment))
            return None
        if state is PaymentState.AUTHORIZED:
            late = payment.updated_at + timedelta(seconds=self.settings.start_timeout)
            if now >= late:
                # Authorised long ago (this service was down meanwhile): the driver is gone.
                work = self._void(payment, "start_timed_out", "authorised but never started")
                self._background(payment, work)
            else:
                self._background(payment, self._start(payment))
            return None
        if state is PaymentState.STARTING:
            return await self._starting_step(payment, now)
        if state in (PaymentState.CHARGING, PaymentState.STOPPING):
            return await self._charging_step(payment, now)
        if state is PaymentState.ENDED:
            cdr = await self._cdr(payment)
            if cdr is not None:  # else billing wakes us when it made one
                self._background(payment, self._capture(payment, cdr, now))
        return None

    def _background(self, payment: Payment, work: Coroutine[Any, Any, object]) -> None:
        """Run a step that waits for a charger or the provider beside the pass (one per
        payment at a time); the worker looks again when it is done."""
        self._busy.add(payment.id)

        async def run() -> None:
            try:
                await work
            except Exception:  # the task's boundary: the worker's period brings it back
                log.exception("payment_step_failed", payment_id=payment.id)
                self._busy.discard(payment.id)
                return
            self._busy.discard(payment.id)
            self.worker.wake()

        self._tasks.spawn(run(), name=f"payment-{payment.id}")

    async def _expire(self, payment: Payment) -> None:
        """The checkout took too long: failed, unless the provider holds the money (its
        webhook lost)."""
        provider = self.providers.get(payment.provider)
        if provider is not None and (payment.checkout_ref or payment.provider_ref):
            try:
                status = await provider.status(payment.checkout_ref, payment.provider_ref)
            except PaymentError as exc:
                log.warning("payment_status_failed", payment_id=payment.id, error=one_line(exc))
            else:
                if status.state is ProviderState.AUTHORIZED:
                    await self._authorized(payment, status.authorized_minor, status.provider_ref)
                    return
        await self._move(payment, PaymentState.FAILED, "checkout_expired", "csms")

    async def _start(self, payment: Payment) -> None:
        """Authorised: the remote start for the payment's one-time token (a start the
        charger refuses voids the payment at once)."""
        moved = await self._move(payment, PaymentState.STARTING, "start_requested", "csms")
        if moved is None:
            return
        cdr_token = {
            "uid": payment.id_tag,
            "type": "AD_HOC_USER",
            "contract_id": payment.id_tag,
            "country_code": self.identity.country_code,
            "party_id": self.identity.party_id,
        }
        grant = Grant(
            AuthStatus.ACCEPTED,
            AuthMethod.COMMAND,
            cdr_token,
            None,
            reason="AD_HOC_PAYMENT",
        )
        # Before the command goes out: the charger may start late, even after a timeout.
        await self._charging.authorization.expect_start(
            payment.charge_point_id,
            payment.id_tag,
            payment.evse_id,
            grant,
            ttl_s=self.settings.start_timeout,
        )
        result = await self._commands.execute(
            payment.charge_point_id,
            StartRequest(payment.id_tag, payment.evse_id),
            Requester("payment", payment.id),
            vouched=Vouched(CENTRAL, group_id=None, reservation=None),
        )
        log.info(
            "payment_start_answered",
            payment_id=payment.id,
            charge_point_id=payment.charge_point_id,
            evse_id=payment.evse_id,
            outcome=result.outcome.value,
        )
        if result.outcome is Outcome.TIMED_OUT:
            # The charger may have taken the command all the same: its session may still
            # start (the grant stands for start_timeout), else the hold is voided then.
            return
        if not result.ok:
            # Refused, or never sent: no session comes. The grant goes with the hold.
            await self._charging.authorization.grant_used(
                payment.charge_point_id, payment.id_tag, grant
            )
            await self._void(moved, "start_refused", result.message)

    async def _starting_step(self, payment: Payment, now: datetime) -> float | None:
        tx = await self._transaction(payment)
        if tx is not None:
            moved = await self._move(
                payment,
                PaymentState.CHARGING,
                "session_started",
                "charger",
                f"transaction {tx.id}",
                transaction_id=tx.id,
                connector_id=tx.connector_id,
            )
            if moved is not None:
                self._paid_tx.add(tx.id)
                if not tx.active:
                    await self._ended(moved, tx)
            return None
        deadline = payment.updated_at + timedelta(seconds=self.settings.start_timeout)
        if now < deadline and payment.attempts == 0:
            return (deadline - now).total_seconds()
        self._background(
            payment, self._void(payment, "start_timed_out", "the session did not start")
        )
        return None

    async def _charging_step(self, payment: Payment, now: datetime) -> float | None:
        tx = await self._transaction(payment)
        if tx is None:
            return None
        if not tx.active:
            await self._ended(payment, tx)
            return None
        if payment.state is PaymentState.STOPPING:
            sent = self._stop_sent.get(payment.id)
            if sent is None or (now - sent).total_seconds() >= STOP_RESEND_S:
                self._background(payment, self._send_stop(payment))
            return STOP_RESEND_S
        last = self._last_cost.get(payment.id)
        if last is not None and tx.id not in self._fresh_in_pass:
            # Nothing new was read here: priced again once a period has passed (another
            # node's readings, a price per hour).
            waited = (now - last[0]).total_seconds()
            if waited < PERIOD_S:
                return PERIOD_S - waited
        cost = await self._cost(tx)
        if cost is None:
            return None
        cost_minor = to_minor(cost, payment.currency)
        rate = 0.0
        if last is not None and now > last[0]:
            rate = max(0.0, (cost_minor - last[1]) / (now - last[0]).total_seconds())
        if last is None or now > last[0]:
            self._last_cost[payment.id] = (now, cost_minor)
        held = payment.authorized_minor or payment.cap_minor
        log.debug(
            "payment_cost_checked",
            payment_id=payment.id,
            transaction_id=tx.id,
            cost_minor=cost_minor,
            rate_minor_per_s=round(rate, 3),
            held_minor=held,
        )
        if should_stop(
            cost_minor,
            held,
            rate,
            margin_minor=to_minor(self.settings.stop_margin, payment.currency),
            lookahead_s=self.settings.stop_lookahead,
        ):
            moved = await self._move(
                payment,
                PaymentState.STOPPING,
                "stop_requested",
                "csms",
                f"cost so far {from_minor(cost_minor, payment.currency)} of "
                f"{from_minor(held, payment.currency)} {payment.currency}",
                stop_reason=StopReason.CAP,
            )
            if moved is not None:
                self._background(moved, self._send_stop(moved))
        return None

    async def _send_stop(self, payment: Payment) -> None:
        if payment.transaction_id is None:
            return
        self._stop_sent[payment.id] = self._clock()
        result = await self._commands.execute(
            payment.charge_point_id,
            StopRequest(payment.transaction_id),
            Requester("payment", payment.id),
        )
        log.info(
            "payment_stop_answered",
            payment_id=payment.id,
            transaction_id=payment.transaction_id,
            reason=None if payment.stop_reason is None else payment.stop_reason.value,
            outcome=result.outcome.value,
        )

    async def _ended(self, payment: Payment, tx: Transaction) -> None:
        changes: dict[str, Any] = {}
        if payment.stop_reason is None:
            changes["stop_reason"] = StopReason.CHARGER
        moved = await self._move(
            payment,
            PaymentState.ENDED,
            "session_ended",
            "charger",
            f"transaction {tx.id}: {tx.stop_reason or 'stopped'}",
            **changes,
        )
        if moved is not None:
            self._paid_tx.discard(tx.id)
            self._last_cost.pop(payment.id, None)
            self._stop_sent.pop(payment.id, None)

    async def _capture(self, payment: Payment, cdr: StoredCdr, now: datetime) -> None:
        """The CDR is there: capture its total (at most what is held) and release the
        rest; nothing to pay voids the hold."""
        total = _incl_vat(cdr.total_excl_vat, cdr.total_incl_vat)
        if cdr.currency != payment.currency:
            await self._failed(
                payment,
                "capture_failed",
                f"the CDR is in {cdr.currency}, the payment in {payment.currency}",
                now,
            )
            return None
        held = payment.authorized_minor or 0
        amount, shortfall = capture_amount(to_minor(total, payment.currency), held)
        if amount == 0:
            await self._void(payment, "nothing_to_pay", f"CDR {cdr.id}: 0", cdr_id=cdr.id)
            return None
        provider = self._provider_of(payment)
        try:
            ref = await self._hold_ref(provider, payment)
            status = await provider.capture(ref, amount, key=f"capture-{payment.id}")
        except PaymentError as exc:
            await self._failed(payment, "capture_failed", one_line(exc), now)
            return None
        captured = status.captured_minor if status.captured_minor is not None else amount
        detail = f"CDR {cdr.id}: {from_minor(captured, payment.currency)} {payment.currency}"
        if shortfall:
            detail += f" (shortfall {from_minor(shortfall, payment.currency)})"
            log.warning("payment_shortfall", payment_id=payment.id, shortfall_minor=shortfall)
        moved = await self._move(
            payment,
            PaymentState.CAPTURED,
            "captured",
            "csms",
            detail,
            captured_minor=captured,
            cdr_id=cdr.id,
            attempts=0,
            next_try_at=None,
            last_error=None,
        )
        if moved is not None and moved.email and self.settings.smtp is not None:
            self._tasks.spawn(self._mail_receipt(moved, cdr), name=f"receipt-{moved.id}")
        return None

    async def _void(
        self, payment: Payment, what: str, detail: str | None, *, cdr_id: str | None = None
    ) -> None:
        """Release the hold (key `void-{id}`); a failure is tried again later."""
        provider = self._provider_of(payment)
        now = self._clock()
        if payment.provider_ref is not None or payment.checkout_ref is not None:
            # Our own void's webhook may arrive before the move below: not a lost hold.
            self._voiding.add(payment.id)
            try:
                ref = await self._hold_ref(provider, payment)
                await provider.void(ref, key=f"void-{payment.id}")
            except PaymentError as exc:
                await self._failed(payment, "void_failed", one_line(exc), now)
                return
            finally:
                self._voiding.discard(payment.id)
        changes: dict[str, Any] = {"attempts": 0, "next_try_at": None, "last_error": None}
        if cdr_id is not None:
            changes["cdr_id"] = cdr_id
        await self._move(payment, PaymentState.VOIDED, what, "csms", detail, **changes)

    async def _hold_ref(self, provider: PaymentProvider, payment: Payment) -> str:
        """The provider's id of the payment's hold, asked of it when we were never told
        (its webhook lost, the driver not back); ProviderUnavailable when it has none."""
        if payment.provider_ref is not None:
            return payment.provider_ref
        status = await provider.status(payment.checkout_ref, None)
        if status.provider_ref is None:
            raise ProviderUnavailable("the provider names no pre-authorisation for it yet")
        await self._move(
            payment,
            None,
            "provider_ref_learnt",
            "provider",
            status.provider_ref,
            any_state=True,
            provider_ref=status.provider_ref,
        )
        return status.provider_ref

    async def _failed(self, payment: Payment, what: str, error: str, now: datetime) -> None:
        """A capture or void that failed: counted, logged, tried again after a back-off."""
        attempts = payment.attempts + 1
        delay = _retry_delay(self.settings.capture_retry, attempts)
        if what == "capture_failed":
            self.capture_failures += 1
        else:
            self.void_failures += 1
        log.error(
            f"payment_{what}",  # payment_capture_failed, payment_void_failed
            payment_id=payment.id,
            attempts=attempts,
            retry_in_s=delay,
            error=error,
        )
        await self._move(
            payment,
            None,
            what,
            "csms",
            error,
            attempts=attempts,
            next_try_at=now + timedelta(seconds=delay),
            last_error=error[:_MAX_ERROR],
        )

    # --- receipts -------------------------------------------------------------------------

    async def _receipt(self, payment: Payment, cdr: StoredCdr) -> Receipt | None:
        if payment.state not in (PaymentState.CAPTURED, PaymentState.REFUNDED):
            return None
        location = None
        if payment.location_id is not None:
            async with self._db.read() as conn:
                location = await location_repo.get(conn, payment.location_id)
        incl = _incl_vat(cdr.total_excl_vat, cdr.total_incl_vat)
        captured = from_minor(payment.captured_minor or 0, payment.currency)
        held = from_minor(payment.authorized_minor or 0, payment.currency)
        return Receipt(
            cdr_id=cdr.id,
            start_at=cdr.start_at,
            end_at=cdr.end_at,
            energy_kwh=Decimal(cdr.energy_wh) / 1000,
            total_excl_vat=cdr.total_excl_vat,
            total_incl_vat=incl,
            vat=incl - cdr.total_excl_vat,
            currency=cdr.currency,
            captured=captured,
            released=held - captured,
            location_name=None if location is None else location.name,
            address=_address(location),
            evse_uid=payment.evse_uid,
        )

    async def _mail_receipt(self, payment: Payment, cdr: StoredCdr) -> None:
        smtp = self.settings.smtp
        receipt = await self._receipt(payment, cdr)
        if smtp is None or receipt is None or payment.email is None:
            return
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = payment.email
        message["Subject"] = f"Your charging receipt ({receipt.cdr_id})"
        message.set_content(receipt_text(receipt))
        try:
            await asyncio.to_thread(_send_mail, smtp, message)
        except (OSError, smtplib.SMTPException) as exc:
            self.receipts["failed"] = self.receipts.get("failed", 0) + 1
            log.warning("payment_receipt_failed", payment_id=payment.id, error=one_line(exc))
            await self._move(payment, None, "receipt_failed", "csms", one_line(exc))
            return
        self.receipts["sent"] = self.receipts.get("sent", 0) + 1
        log.info("payment_receipt_sent", payment_id=payment.id)
        await self._move(payment, None, "receipt_sent", "csms")

    # --- shared steps ---------------------------------------------------------------------

    async def _get(self, payment_id: str) -> Payment:
        async with self._db.read() as conn:
            payment = await repo.get(conn, payment_id)
        if payment is None:
            raise UnknownPayment(f"no payment {payment_id!r}")
        return payment

    def _provider_of(self, payment: Payment) -> PaymentProvider:
        provider = self.providers.get(payment.provider)
        if provider is None:
            raise ProviderUnavailable(f"payment provider {payment.provider!r} is not configured")
        return provider

    async def _transaction(self, payment: Payment) -> Transaction | None:
        async with self._db.read() as conn:
            if payment.transaction_id is not None:
                return await tx_repo.get_with_meter(conn, payment.transaction_id)
            return await repo.transaction_of_tag(conn, payment.charge_point_id, payment.id_tag)

    async def _cost(self, tx: Transaction) -> Decimal | None:
        """What the session costs so far, incl. VAT (None when it cannot be priced now)."""
        try:
            priced = await self._billing.price(tx.id)
        except CsmsError as exc:
            log.warning("payment_cost_unavailable", transaction_id=tx.id, error=one_line(exc))
            return None
        total = priced.cost.total_cost
        return _incl_vat(total.excl_vat, total.incl_vat)

    async def _cdr(self, payment: Payment) -> StoredCdr | None:
        if payment.transaction_id is None:
            return None
        cdrs = [c for c in await self._billing.cdrs_of(payment.transaction_id) if not c.credit]
        if payment.cdr_id is not None:
            return next((c for c in cdrs if c.id == payment.cdr_id), None)
        return cdrs[0] if cdrs else None

    async def _move(
        self,
        payment: Payment,
        to: PaymentState | None,
        what: str,
        actor: str,
        detail: str | None = None,
        *,
        same_state: bool = False,
        any_state: bool = False,
        **changes: Any,
    ) -> Payment | None:
        """Write the payment (moved to `to`, or staying where it is when None, with
        `changes`) and its event in one write, if it still stands as `payment` says; None
        when it moved meanwhile (someone else acted). `any_state`: a change that moves
        nothing is written whatever the state is by now."""
        if to is not None:
            check_transition(payment.state, to)
        now = self._clock()

        async def unit(w: WriteTx) -> Payment | None:
            conn = await w.connection()
            current = await repo.get(conn, payment.id)
            if current is None or (current.state is not payment.state and not any_state):
                return None
            if same_state and current.updated_at != payment.updated_at:
                return None
            new = replace(current, state=to or current.state, updated_at=now, **changes)
            await repo.save(conn, new)
            await repo.add_event(
                conn,
                PaymentEvent(
                    payment.id,
                    now,
                    current.state if to is not None else None,
                    to,
                    what,
                    actor,
                    detail,
                ),
            )
            return new

        moved = await self._db.write(unit)
        if moved is None:
            log.info("payment_moved_meanwhile", payment_id=payment.id, wanted=what)
        elif to is not None:
            self._moved(payment, moved)
        return moved

    def _moved(self, before: Payment, after: Payment) -> None:
        self._count(after.state)
        log.info(
            "payment_state_changed",
            payment_id=after.id,
            from_state=before.state.value,
            to_state=after.state.value,
            evse_uid=after.evse_uid,
            transaction_id=after.transaction_id,
        )

    def _count(self, state: PaymentState) -> None:
        self.moves[state.value] = self.moves.get(state.value, 0) + 1

    def metric_families(self) -> builtins.list[Family]:
        """The payments' figures for /metrics (csms.metrics.Metrics.families)."""
        return [
            (
                "csms_payments_total",
                "counter",
                "Ad-hoc payments that reached each state in this process.",
                [(labels(state=s), n) for s, n in sorted(self.moves.items())],
            ),
            (
                "csms_payment_capture_failures_total",
                "counter",
                "Failed attempts at capturing a payment (each is retried with back-off).",
                [("", self.capture_failures)],
            ),
            (
                "csms_payment_void_failures_total",
                "counter",
                "Failed attempts at releasing a payment's hold (retried with back-off).",
                [("", self.void_failures)],
            ),
            (
                "csms_payment_receipts_total",
                "counter",
                "Receipts e-mailed (sent) or not (failed).",
                [(labels(result=r), n) for r, n in sorted(self.receipts.items())],
            ),
        ]


def _event_target(state: PaymentState, kind: EventKind) -> PaymentState | None:
    """The move a provider's event makes of a payment in `state` (None: stored only)."""
    if state is PaymentState.CREATED:
        return {
            EventKind.AUTHORIZED: PaymentState.AUTHORIZED,
            EventKind.FAILED: PaymentState.FAILED,
            EventKind.CANCELED: PaymentState.FAILED,
        }.get(kind)
    if state is PaymentState.AUTHORIZED and kind is EventKind.CANCELED:
        return PaymentState.VOIDED
    if state is PaymentState.ENDED and kind is EventKind.CANCELED:
        # The provider dropped the hold before the CDR was captured (Stripe cancels an
        # uncaptured PaymentIntent after 7 days): nothing can be captured any more, so the
        # capture stops being retried; staff are told (payment_hold_lost).
        return PaymentState.VOIDED
    return None


def receipt_text(receipt: Receipt) -> str:
    """The receipt as plain text (the e-mail's body)."""
    cur = receipt.currency
    lines = [
        "Thank you for charging with us.",
        "",
        f"Charging session {receipt.cdr_id}",
        f"Charger: {receipt.evse_uid}",
    ]
    if receipt.location_name or receipt.address:
        lines.append(
            "Location: " + ", ".join(p for p in (receipt.location_name, receipt.address) if p)
        )
    lines += [
        f"From: {receipt.start_at.isoformat(timespec='seconds')}",
        f"To: {receipt.end_at.isoformat(timespec='seconds')}",
        f"Energy: {receipt.energy_kwh:.3f} kWh",
        "",
        f"Total excl. VAT: {receipt.total_excl_vat:.2f} {cur}",
        f"VAT: {receipt.vat:.2f} {cur}",
        f"Total incl. VAT: {receipt.total_incl_vat:.2f} {cur}",
        "",
        f"Charged to your card: {receipt.captured:.2f} {cur}",
        f"Released from the hold: {receipt.released:.2f} {cur}",
    ]
    return "\n".join(lines) + "\n"


def _send_mail(smtp: SmtpSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.user:
            client.login(smtp.user, smtp.password)
        client.send_message(message)
