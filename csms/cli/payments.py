"""`csms payments`: ad-hoc payments for staff (list, show with their events, refund).
Data commands: they work on the database whether or not the server runs; a refund asks
the payment's provider itself.

Argument parsing and printing over csms.services.payments.PaymentService.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csms.cli.common import CliError, config_option, json_option, load, print_json, run_db, table
from csms.cli.common import when as ago
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import limit_option
from csms.core.payments import PaymentState, from_minor

if TYPE_CHECKING:
    from csms.config import Config
    from csms.services.payments import PaymentService

T = TypeVar("T")

# Who refunds from the command line when the system does not say who runs it.
CLI_ACTOR = "cli"


def payment_service(db: Any, config: Config) -> PaymentService:
    """The payment service as `csms serve` builds it, in a process that holds no charger
    (its commands find none connected here: staff commands never start or stop one)."""
    from csms.app import charging_settings
    from csms.cli.common import billing_service
    from csms.core.clock import utc_now
    from csms.core.versions import OcppVersion
    from csms.handlers.v16.limits import LIMITS as V16_LIMITS
    from csms.handlers.v201.limits import LIMITS as V201_LIMITS
    from csms.services.billing import Identity
    from csms.services.charging import Charging
    from csms.services.commands import CommandService
    from csms.services.payment_providers import providers
    from csms.services.payments import PaymentService, payment_settings
    from ocpi_cpo.context import public_base_url

    charging = Charging.build(db, utc_now, charging_settings(config))
    commands = CommandService(
        db,
        utc_now,
        charging,
        lambda _cp_id: None,  # no charger is connected to this process
        {OcppVersion.V16: V16_LIMITS, OcppVersion.V201: V201_LIMITS},
    )
    public = (config.payments.public_url or public_base_url(config.ocpi)).rstrip("/")
    service = PaymentService(
        db,
        utc_now,
        payment_settings(config.payments, config.ocpi.offline_grace),
        providers(config.payments, db=db, clock=utc_now, base_url=lambda: public),
        commands,
        charging,
        billing_service(db, config),
        Identity(config.ocpi.country_code, config.ocpi.party_id),
    )
    service.public_url = public
    return service


def _payments(config_file: str | None, work: Callable[[PaymentService], Awaitable[T]]) -> T:
    from csms.core.errors import CsmsError

    config = load(config_file)

    async def wrapped(db: Any) -> T:
        service = payment_service(db, config)
        try:
            return await work(service)
        except CsmsError as exc:
            raise CliError(str(exc)) from None
        finally:
            for provider in service.providers.values():
                await provider.close()

    return run_db(config_file, wrapped)


def _money(minor: int | None, currency: str) -> str:
    return "-" if minor is None else f"{from_minor(minor, currency)} {currency}"


@click.group()
def payments() -> None:
    """Ad-hoc payments: drivers who paid for a session on the spot (QR code, pay page)."""


@payments.command("list")
@click.option(
    "--state",
    type=click.Choice([s.value for s in PaymentState]),
    help="Only payments in this state.",
)
@limit_option
@config_option
@json_option
def payments_list(state: str | None, limit: int, config_file: str | None, as_json: bool) -> None:
    """Payments, the newest first: what was held, captured and refunded."""
    from csms.views import payment_json

    chosen = None if state is None else PaymentState(state)
    found = _payments(config_file, lambda s: s.list(state=chosen, limit=limit))
    if as_json:
        print_json([payment_json(p) for p in found])
        return
    if not found:
        click.echo("no payments" if state is None else f"no {state} payments")
        return
    now = datetime.now(UTC)
    table(
        ["ID", "STATE", "EVSE", "HELD", "CAPTURED", "REFUNDED", "TX", "CREATED"],
        [
            [
                p.id,
                p.state.value,
                p.evse_uid,
                _money(p.authorized_minor, p.currency),
                _money(p.captured_minor, p.currency),
                _money(p.refunded_minor or None, p.currency),
                p.transaction_id,
                ago(p.created_at, now),
            ]
            for p in found
        ],
    )


@payments.command("show")
@click.argument("payment_id")
@config_option
@json_option
def payments_show(payment_id: str, config_file: str | None, as_json: bool) -> None:
    """One payment with every change it went through (who, when, why)."""
    from csms.views import payment_event_json, payment_json

    payment, events = _payments(config_file, lambda s: s.show(payment_id))
    if as_json:
        print_json({**payment_json(payment), "events": [payment_event_json(e) for e in events]})
        return
    now = datetime.now(UTC)
    p, cur = payment, payment.currency
    pairs = [
        ("payment", p.id),
        ("state", p.state.value + (f" (stopped: {p.stop_reason.value})" if p.stop_reason else "")),
        ("evse", p.evse_uid + (f" connector {p.connector_id}" if p.connector_id else "")),
        ("location", p.location_id or "-"),
        ("tariff", p.tariff_id or "-"),
        ("provider", f"{p.provider} {p.provider_ref or p.checkout_ref or ''}".rstrip()),
        ("cap", _money(p.cap_minor, cur)),
        ("held", _money(p.authorized_minor, cur)),
        ("captured", _money(p.captured_minor, cur)),
        ("refunded", _money(p.refunded_minor, cur)),
        ("token", p.id_tag),
        ("transaction", "-" if p.transaction_id is None else str(p.transaction_id)),
        ("cdr", p.cdr_id or "-"),
        ("e-mail", p.email or "-"),
        ("created", ago(p.created_at, now)),
        ("updated", ago(p.updated_at, now)),
    ]
    if p.last_error:
        pairs.append(("last error", f"{p.last_error} (attempts: {p.attempts})"))
    if p.next_try_at is not None:
        pairs.append(("next try", ago(p.next_try_at, now)))
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")
    click.echo(f"\nevents ({len(events)}):")
    table(
        ["AT", "CHANGE", "WHAT", "BY", "DETAIL"],
        [
            [
                ago(e.at, now),
                _change(e.from_state, e.to_state),
                e.what,
                e.actor,
                e.detail or "",
            ]
            for e in events
        ],
    )


def _change(before: PaymentState | None, after: PaymentState | None) -> str:
    if after is None or before == after:
        return "-"
    return after.value if before is None else f"{before.value} -> {after.value}"


def _amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise CliError(f"--amount: {text!r} is not an amount (e.g. 4.50)") from None
    if not amount.is_finite() or amount <= 0:
        raise CliError(f"--amount must be more than 0, not {text}")
    return amount


@payments.command("refund")
@click.argument("payment_id")
@click.option("--amount", "amount_text", help="Refund this much (default: all not refunded yet).")
@click.option("--reason", help="Why, for the audit trail.")
@yes_option
@config_option
def payments_refund(
    payment_id: str,
    amount_text: str | None,
    reason: str | None,
    yes: bool,
    config_file: str | None,
) -> None:
    """Give a driver back part or all of a captured payment, through its provider. Asks
    first unless --yes; the payment's events record who did it and why."""
    from csms.cli.api_client import _user

    amount = _amount(amount_text)
    payment, _ = _payments(config_file, lambda s: s.show(payment_id))
    left = (payment.captured_minor or 0) - payment.refunded_minor
    what = (
        f"{amount} {payment.currency}"
        if amount is not None
        else f"all that is left ({_money(left, payment.currency)})"
    )
    confirm(f"refund {what} of payment {payment_id}", yes)
    actor = _user() or CLI_ACTOR
    done = _payments(
        config_file, lambda s: s.refund(payment_id, amount, reason=reason, actor=actor)
    )
    click.echo(
        f"refunded {_money(done.refunded_minor - payment.refunded_minor, done.currency)} of "
        f"payment {payment_id}: {_money(done.refunded_minor, done.currency)} of "
        f"{_money(done.captured_minor, done.currency)} refunded, now {done.state.value}"
    )
