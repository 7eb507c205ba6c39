"""`csms transactions`: list and show charging transactions and their meter values.

Argument parsing and printing over csms.services.staff.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from csms.cli.billing import _billing, money
from csms.cli.chargers import _run
from csms.cli.common import (
    CliError,
    config_option,
    duration,
    exact,
    json_option,
    kwh,
    print_json,
    table,
    when,
)
from csms.cli.listing import footer, limit_option, run_reads
from csms.core.transactions import Transaction
from csms.services.reads import PricedTransaction
from csms.views import transaction_detail_json, transaction_json, unmatched_json


def billing_text(t: Transaction, width: int | None = None) -> str | None:
    """Where a transaction stands with its CDR, for people: `held: <why>`, `pending (2
    failed attempts: <error>)`; cut to `width` characters in tables."""
    if t.billing is None:
        return None
    text = t.billing
    if t.held_reason:
        text = f"{t.billing}: {t.held_reason}"
    elif t.billing_attempts:
        plural = "s" if t.billing_attempts > 1 else ""
        text = f"{t.billing} ({t.billing_attempts} failed attempt{plural}: {t.billing_error})"
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


@click.group()
def transactions() -> None:
    """Charging transactions."""


@transactions.command("list")
@click.option("--active", is_flag=True, help="Only transactions still running.")
@click.option("--charger", "charger_id", help="Only this charger's transactions.")
@limit_option
@config_option
@json_option
def list_cmd(
    active: bool, charger_id: str | None, limit: int, config_file: str | None, as_json: bool
) -> None:
    """Transactions, the most recently started first."""
    from csms.core.transactions import TransactionState

    state = TransactionState.ACTIVE if active else None
    page = run_reads(
        config_file, lambda r: r.transactions(cp_id=charger_id, state=state, limit=limit)
    )
    found = page.items
    now = datetime.now(UTC)
    if as_json:
        print_json([transaction_json(t, now) for t in found])
        footer(len(found), page.total, as_json=True)
        return
    if not found:
        click.echo("no transactions")
        return
    rows = []
    for t in found:
        end = t.stop_at or now
        energy = t.energy_wh if not t.active else t.live_energy_wh()
        rows.append(
            [
                t.id,
                t.charge_point_id,
                t.ocpp_version,
                t.evse_id,
                t.id_tag,
                t.state.value,
                when(t.start_at, now),
                duration((end - t.start_at).total_seconds()),
                kwh(energy),
                t.stop_reason,
                ",".join(t.flags) or None,
                t.signature_state,
                billing_text(t, width=60),
            ]
        )
    table(
        [
            "ID",
            "CHARGER",
            "OCPP",
            "EVSE",
            "TAG",
            "STATE",
            "STARTED",
            "DURATION",
            "KWH",
            "REASON",
            "FLAGS",
            "SIGNED",
            "BILLING",
        ],
        rows,
    )
    footer(len(found), page.total, as_json=False)


def transaction_number(text: str) -> int:
    """A transaction id from the command line: a whole number, or one line saying so."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise CliError(
            f"no transaction {text!r}: transaction ids are whole numbers "
            "(see `csms transactions list`)"
        )
    return int(text)


@transactions.command("show")
@click.argument("transaction_id")
@config_option
@json_option
def show_cmd(transaction_id: str, config_file: str | None, as_json: bool) -> None:
    """One transaction with its cost, its events and its meter values."""
    number = transaction_number(transaction_id)
    # Its cost is computed as the API computes it; what keeps it from being computed (a
    # broken tariff ...) is said and does not hide the rest.
    found: PricedTransaction = run_reads(config_file, lambda r: r.transaction(number))
    detail, now, priced, cost_error = found.detail, found.now, found.priced, found.cost_error
    t = detail.transaction
    if as_json:
        print_json(transaction_detail_json(detail, now, priced, cost_error))
        return
    data = transaction_json(t, now)
    pairs = [
        (
            "transaction",
            f"{t.id} ({t.state.value})"
            + (f", OCPP id {t.ocpp_transaction_id}" if t.ocpp_transaction_id else ""),
        ),
        ("charger", f"{t.charge_point_id} (OCPP {t.ocpp_version}), EVSE {t.evse_id}"),
        ("id tag", f"{t.id_tag} ({t.auth_status})" if t.id_tag else "-"),
        ("started", when(t.start_at, now)),
        ("stopped", when(t.stop_at, now) if t.stop_at else "-"),
        ("duration", duration(data["duration_s"])),
        ("meter start", f"{t.meter_start_wh} Wh" if t.meter_start_wh is not None else "-"),
        ("meter stop", f"{t.meter_stop_wh} Wh" if t.meter_stop_wh is not None else "-"),
        ("energy", f"{kwh(data['energy_wh'])} kWh" + (" (so far)" if t.active else "")),
        ("stop reason", t.stop_reason or "-"),
        ("flags", ", ".join(t.flags) + " (not billable until resolved)" if t.flags else "none"),
        (
            "cost" + (" so far" if t.active else ""),
            _cost_line(priced) if priced is not None else f"cannot be computed: {cost_error}",
        ),
        ("billing", billing_text(t) or ("running" if t.active else "-")),
        ("signature", _signature_text(t, len(detail.signed))),
    ]
    if t.billing_retry_at is not None and t.billing == "pending":
        pairs.append(("next attempt", when(t.billing_retry_at, now)))
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")
    if detail.events:
        click.echo(f"\ntransaction events ({len(detail.events)}):")
        table(
            ["SEQ", "EVENT", "TRIGGER", "AT", "OFFLINE"],
            [
                [
                    e.seq_no,
                    e.event_type,
                    e.trigger_reason,
                    when(e.timestamp, now),
                    "yes" if e.offline else "",
                ]
                for e in detail.events
            ],
        )
    if detail.signed:
        click.echo(f"\nsigned meter values ({len(detail.signed)}):")
        table(
            ["AT", "CONTEXT", "METER", "ENCODING", "DATA"],
            [
                [
                    when(v.timestamp, now),
                    v.context,
                    v.meter_serial,
                    v.encoding_method,
                    v.data if len(v.data) <= 60 else v.data[:57] + "...",
                ]
                for v in detail.signed
            ],
        )
    if detail.samples:
        click.echo(f"\nmeter values ({len(detail.samples)}):")
        table(
            ["AT", "MEASURAND", "PHASE", "VALUE", "UNIT", "CONTEXT"],
            [
                [
                    when(s.timestamp, now),
                    s.measurand,
                    s.phase,
                    s.raw_value if s.value is None else exact(s.value),
                    s.unit,
                    s.context,
                ]
                for s in detail.samples
            ],
        )


def _signature_text(t: Transaction, count: int) -> str:
    """What is known of its signed meter values (Eichrecht)."""
    state = {
        None: "not checked yet" if count else "none",
        "verified": "verified",
        "failed": "failed verification",
        "released": "released by staff after failing verification",
    }.get(t.signature_state, t.signature_state or "")
    text = f"{state}, {count} signed value{'s' if count != 1 else ''}" if count else state
    if t.signature_problem:
        text += f" ({t.signature_problem})"
    return text


def _cost_line(priced: Any) -> str:
    cost = priced.cost
    total = cost.total_cost
    text = money(total.excl_vat, cost.currency) + " excl. VAT"
    if total.incl_vat is not None:
        text += f", {money(total.incl_vat, cost.currency)} incl. VAT"
    tariff = "no tariff applies" if priced.tariff is None else f"tariff {priced.tariff.id}"
    return f"{text} ({tariff})"


@transactions.command("resolve")
@click.argument("transaction_id", type=int)
@click.option("--energy-wh", type=click.IntRange(0), help="The energy to bill, in Wh.")
@click.option("--void", is_flag=True, help="Do not bill this transaction.")
@click.option(
    "--retry",
    is_flag=True,
    help="Bill it again as it is (once what made its CDR fail, e.g. a tariff or a meter "
    "key, is mended); signed meter values are verified again.",
)
@click.option(
    "--release-signature",
    is_flag=True,
    help="Bill it although its signed meter values failed verification (needs --reason; "
    "recorded in the audit log).",
)
@click.option("--reason", help="Why a transaction is released (--release-signature).")
@config_option
def resolve_cmd(
    transaction_id: int,
    energy_wh: int | None,
    void: bool,
    retry: bool,
    release_signature: bool,
    reason: str | None,
    config_file: str | None,
) -> None:
    """Settle a held transaction (flagged meter data, credited, its CDR failed, or its
    signed meter values failed verification): bill it with the given energy, void it, try
    its CDR again, or release it despite its signature."""
    from csms.cli.chargers import _operator

    if reason is not None and not release_signature:
        raise CliError("--reason goes with --release-signature")

    async def work(s: Any) -> Any:
        resolved = await s.resolve(
            transaction_id,
            energy_wh=energy_wh,
            void=void,
            retry=retry,
            release_signature=release_signature,
            reason=reason,
            requested_by=_operator(),
        )
        after = await s.bill(transaction_id)
        return resolved, await s.cdrs_of(transaction_id), after

    resolved, cdrs, now_held = _billing(config_file, work)
    if void:
        click.echo(f"transaction {transaction_id} is void: no CDR")
        return
    issued = cdrs[-1] if cdrs and not cdrs[-1].credit else None
    if issued is not None:
        done = f", CDR {issued.id}"
    elif now_held is not None and now_held.billing_attempts:
        done = f", CDR not issued: {now_held.billing_error}"
    else:
        done = ", CDR not issued yet"
    click.echo(f"transaction {transaction_id}: {resolved.energy_wh} Wh{done}")


@transactions.command("unmatched")
@click.option("--charger", "charger_id", help="Only this charger's messages.")
@limit_option
@config_option
@json_option
def unmatched_cmd(
    charger_id: str | None, limit: int, config_file: str | None, as_json: bool
) -> None:
    """Stop/meter messages that named a transaction the CSMS does not know, newest first."""
    found, total = _run(config_file, lambda s: s.unmatched_page(charger_id, limit))
    if as_json:
        print_json([unmatched_json(u) for u in found])
        footer(len(found), total, as_json=True)
        return
    if not found:
        click.echo("no unmatched messages")
        return
    now = datetime.now(UTC)
    table(
        ["AT", "CHARGER", "ACTION", "TRANSACTION"],
        [
            [when(u["received_at"], now), u["charge_point_id"], u["action"], u["transaction_id"]]
            for u in found
        ],
    )
    footer(len(found), total, as_json=False)
