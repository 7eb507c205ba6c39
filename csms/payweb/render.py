"""The payment pages as HTML and their figures as JSON, from the payment service's values
(PayPage, Progress, Receipt) and the templates in csms/payweb/templates.

Every value put into a page is escaped here; the templates hold no logic. No I/O besides
reading the templates once.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from csms.core.payments import Payment, PaymentState, from_minor, minor_exponent
from csms.core.tariff_words import describe
from csms.core.tariffs import Tariff
from csms.payweb.words import (
    connector_words,
    duration_text,
    energy_text,
    money_text,
    settled,
    state_words,
    status_words,
    time_text,
)
from csms.services.payments import PayPage, Progress, Receipt

__all__ = [
    "Links",
    "checkout_page",
    "evse_json",
    "evse_page",
    "message_page",
    "progress_json",
    "progress_page",
]

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class Links:
    """Where a page's links and forms go (the app's routes, wherever it is mounted)."""

    static: str  # the static files' prefix, without a trailing slash
    evse: str = ""  # the EVSE's page (its form posts there too)
    evse_status: str = ""  # the EVSE's status as JSON
    status: str = ""  # the payment's progress as JSON
    stop: str = ""  # the payment's stop


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _fill(name: str, **values: str) -> str:
    return _template(name).substitute(values)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _layout(kind: str, title: str, body: str, links: Links, head: str = "") -> str:
    return _fill(
        "layout.html", kind=kind, title=_e(title), body=body, static=_e(links.static), head=head
    )


def _error(message: str | None) -> str:
    return "" if not message else f'<p class="error" id="error" role="alert">{_e(message)}</p>'


def _amount_value(amount: Decimal) -> str:
    """An amount as an <input type=number> value: plain digits, no exponent."""
    return f"{amount.normalize():f}"


# --- the EVSE's page ------------------------------------------------------------------------


def evse_page(
    page: PayPage,
    links: Links,
    *,
    error: str | None = None,
    cap: str | None = None,
    email: str = "",
) -> str:
    """The EVSE's page: where it is, its status, its connectors, the ad-hoc tariff in
    words, and the form (cap, e-mail, Pay) when it is payable, else why not. `error`,
    `cap` and `email`: a refused form shown again as the driver filled it in."""
    status_text, status_class = status_words(page.status)
    connectors = "".join(
        f"<li>{_e(connector_words(cid, standard, kw))}</li>"
        for cid, standard, kw in page.connectors
    )
    tariff = (
        "".join(f"<li>{_e(line)}</li>" for line in describe(page.tariff))
        if page.tariff is not None
        else "<li>No price for paying here is set.</li>"
    )
    note = _alt_text(page.tariff) if page.tariff is not None else None
    tariff_note = f'<p id="tariff-note" class="hint">{_e(note)}</p>' if note else ""
    if page.payable:
        action = _fill(
            "evse_form.html",
            error=_error(error),
            action=_e(links.evse),
            status_url=_e(links.evse_status),
            currency=_e(page.currency),
            min_cap=_e(_amount_value(page.min_cap)),
            max_cap=_e(_amount_value(page.max_cap)),
            cap=_e(cap if cap is not None else _amount_value(page.default_cap)),
            step=_e(_amount_value(Decimal(1).scaleb(-minor_exponent(page.currency)))),
            email=_e(email),
        )
    else:
        action = _fill(
            "evse_closed.html",
            reason=_e(page.reason or "This charging point cannot be paid for here now."),
            status_url=_e(links.evse_status),
            error=_error(error),
        )
    body = _fill(
        "evse.html",
        location=_e(page.location_name or "Charging point"),
        address=_e(page.address or ""),
        evse_uid=_e(page.evse_uid),
        status=_e(page.status),
        status_text=_e(status_text),
        status_class=_e(status_class),
        connectors=connectors,
        tariff=tariff,
        tariff_note=tariff_note,
        action=action,
    )
    return _layout("evse", f"Charge at {page.location_name or page.evse_uid}", body, links)


def _alt_text(tariff: Tariff) -> str | None:
    """The operator's own words for the tariff (OCPI tariff_alt_text), English first."""
    texts = {t.language.lower(): t.text for t in tariff.tariff_alt_text}
    return texts.get("en") or next(iter(texts.values()), None)


def evse_json(page: PayPage) -> dict[str, Any]:
    """What the EVSE's page polls: its status (and whether paying is possible now)."""
    status_text, status_class = status_words(page.status)
    return {
        "evse_uid": page.evse_uid,
        "status": page.status,
        "status_text": status_text,
        "status_class": status_class,
        "payable": page.payable,
        "reason": page.reason,
    }


# --- the payment's progress -------------------------------------------------------------------


def _held(payment: Payment) -> Decimal:
    minor = payment.authorized_minor if payment.authorized_minor is not None else payment.cap_minor
    return from_minor(minor, payment.currency)


def progress_page(progress: Progress, links: Links) -> str:
    """The driver's page of one payment: its state in words, the session's figures, Stop
    while charging, the receipt once captured. Without its script it refreshes itself until
    the payment settles."""
    payment = progress.payment
    words = state_words(payment.state, payment.stop_reason)
    done = settled(payment.state)
    can_stop = payment.state is PaymentState.CHARGING
    back = ""
    if payment.state in (PaymentState.FAILED, PaymentState.VOIDED):
        back = (
            f'<p><a id="back" href="{_e(links.evse)}">Back to charging point '
            f"{_e(payment.evse_uid)}</a></p>"
        )
    body = _fill(
        "progress.html",
        evse_uid=_e(payment.evse_uid),
        state=_e(payment.state.value),
        settled="true" if done else "false",
        status_url=_e(links.status),
        headline=_e(words.headline),
        explanation=_e(words.explanation),
        energy=_e(energy_text(progress.energy_kwh)),
        cost=_e(money_text(progress.cost_so_far, payment.currency)),
        duration=_e(duration_text(progress.duration_s)),
        held=_e(money_text(_held(payment), payment.currency)),
        stop_url=_e(links.stop),
        stop_hidden="" if can_stop else "hidden",
        receipt="" if progress.receipt is None else _receipt(progress.receipt),
        back=back,
    )
    head = "" if done else '<noscript><meta http-equiv="refresh" content="5"></noscript>'
    return _layout("progress", words.headline, body, links, head)


def _receipt(r: Receipt) -> str:
    location = ", ".join(p for p in (r.location_name, r.address) if p)
    return _fill(
        "receipt.html",
        location=_e(location or "\u2013"),
        evse_uid=_e(r.evse_uid),
        start=_e(time_text(r.start_at)),
        end=_e(time_text(r.end_at)),
        energy=_e(energy_text(r.energy_kwh)),
        excl=_e(money_text(r.total_excl_vat, r.currency)),
        vat=_e(money_text(r.vat, r.currency)),
        incl=_e(money_text(r.total_incl_vat, r.currency)),
        captured=_e(money_text(r.captured, r.currency)),
        released=_e(money_text(r.released, r.currency)),
        cdr_id=_e(r.cdr_id),
    )


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _money(minor: int | None, currency: str) -> str | None:
    return None if minor is None else f"{from_minor(minor, currency):f}"


def progress_json(progress: Progress) -> dict[str, Any]:
    """GET /pay/-/payments/{id}/status: the payment (amounts as decimal strings in its
    currency), the session's figures, the receipt when there is one, and the same figures
    as the page writes them (`*_text`)."""
    payment = progress.payment
    words = state_words(payment.state, payment.stop_reason)
    receipt = progress.receipt
    return {
        "payment_id": payment.id,
        "evse_uid": payment.evse_uid,
        "state": payment.state.value,
        "settled": settled(payment.state),
        "headline": words.headline,
        "explanation": words.explanation,
        "stop_reason": None if payment.stop_reason is None else payment.stop_reason.value,
        "currency": payment.currency,
        "cap": _money(payment.cap_minor, payment.currency),
        "authorized": _money(payment.authorized_minor, payment.currency),
        "captured": _money(payment.captured_minor, payment.currency),
        "refunded": _money(payment.refunded_minor, payment.currency),
        "energy_kwh": _decimal(progress.energy_kwh),
        "cost_so_far": _decimal(progress.cost_so_far),
        "duration_s": progress.duration_s,
        "energy_text": energy_text(progress.energy_kwh),
        "cost_text": money_text(progress.cost_so_far, payment.currency),
        "duration_text": duration_text(progress.duration_s),
        "held_text": money_text(_held(payment), payment.currency),
        "receipt": None
        if receipt is None
        else {
            "cdr_id": receipt.cdr_id,
            "start_at": receipt.start_at.isoformat(),
            "end_at": receipt.end_at.isoformat(),
            "energy_kwh": _decimal(receipt.energy_kwh),
            "total_excl_vat": _decimal(receipt.total_excl_vat),
            "total_incl_vat": _decimal(receipt.total_incl_vat),
            "vat": _decimal(receipt.vat),
            "currency": receipt.currency,
            "captured": _decimal(receipt.captured),
            "released": _decimal(receipt.released),
        },
    }


# --- the test provider's checkout and plain messages --------------------------------------------


def checkout_page(
    *,
    amount: str,
    description: str,
    links: Links,
    action: str,
    cancel_url: str,
    open_: bool,
    return_url: str,
    error: str | None = None,
) -> str:
    """The test provider's hosted checkout: a card number to authorise `amount` with (while
    the checkout is open), else a link back to the payment's page (a declined card closes
    the checkout: `error` says so above the link)."""
    if open_:
        inner = _fill(
            "checkout_form.html",
            error=_error(error),
            action=_e(action),
            amount=_e(amount),
            cancel_url=_e(cancel_url),
        )
    else:
        inner = (
            _error(error) + '<p id="finished">This checkout is finished.</p>'
            f'<p><a id="return" href="{_e(return_url)}">Back to your payment</a></p>'
        )
    body = _fill("checkout.html", amount=_e(amount), description=_e(description), body=inner)
    return _layout("checkout", "Test payment", body, links)


def message_page(title: str, message: str, links: Links) -> str:
    """A page that only says something (not found, a failure)."""
    body = _fill("message.html", title=_e(title), message=_e(message))
    return _layout("message", title, body, links)
