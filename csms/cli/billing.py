"""`csms tariffs` and `csms cdrs`: what sessions cost. Data commands: they work on the
database whether or not the server runs.

Argument parsing and printing over csms.services.billing.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from csms.cli.common import (
    CliError,
    config_option,
    iso,
    json_option,
    load,
    parse_time,
    print_json,
    run_db,
    table,
)
from csms.views import assignment_text, cdr_json, tariff_json

if TYPE_CHECKING:
    from csms.storage.cdrs import StoredCdr

T = TypeVar("T")


def _billing(config_file: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from csms.app import billing_limits, billing_retries
    from csms.core.clock import utc_now
    from csms.core.errors import CsmsError
    from csms.services.billing import BillingService, Identity

    config = load(config_file)

    async def wrapped(db: Any) -> T:
        service = BillingService(
            db,
            utc_now,
            Identity(config.ocpi.country_code, config.ocpi.party_id),
            billing_retries(config),
            billing_limits(config),
        )
        try:
            return await work(service)
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def money(amount: Decimal | float | int | None, currency: str) -> str:
    from csms.core.cost import display_amount

    if amount is None:
        return "-"
    return display_amount(Decimal(str(amount)), currency)


# --- tariffs ---------------------------------------------------------------------------


@click.group()
def tariffs() -> None:
    """Tariffs (OCPI 2.2.1 model) and where they apply."""


@tariffs.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@config_option
def tariffs_import(file: str, config_file: str | None) -> None:
    """Import one OCPI Tariff object or a list of them (all or nothing)."""
    try:
        document = orjson.loads(Path(file).read_bytes())
    except OSError as exc:
        raise CliError(f"{file}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise CliError(f"{file}: not valid JSON ({exc})") from None
    created, updated = _billing(config_file, lambda s: s.import_tariffs(document))
    click.echo(f"imported {created + updated} tariff(s): {created} new, {updated} updated")


@tariffs.command("list")
@config_option
@json_option
def tariffs_list(config_file: str | None, as_json: bool) -> None:
    """Every tariff with where it applies."""
    found = _billing(config_file, lambda s: s.tariffs())
    if as_json:
        print_json([tariff_json(t, assigned) for t, assigned in found])
        return
    if not found:
        click.echo("no tariffs")
        return
    table(
        ["ID", "CURRENCY", "TYPE", "ELEMENTS", "APPLIES TO", "UPDATED"],
        [
            [
                t.id,
                t.data.get("currency"),
                t.data.get("type"),
                len(t.data.get("elements") or []),
                ", ".join(assignment_text(a) for a in assigned) or "(nowhere)",
                iso(t.updated_at),
            ]
            for t, assigned in found
        ],
    )


@tariffs.command("show")
@click.argument("tariff_id")
@config_option
def tariffs_show(tariff_id: str, config_file: str | None) -> None:
    """The OCPI object and its assignments."""
    stored, assigned = _billing(config_file, lambda s: s.tariff(tariff_id))
    print_json(tariff_json(stored, assigned))


@tariffs.command("remove")
@click.argument("tariff_id")
@config_option
def tariffs_remove(tariff_id: str, config_file: str | None) -> None:
    """Remove a tariff (CDRs keep the tariffs as they were)."""
    gone = _billing(config_file, lambda s: s.remove_tariff(tariff_id))
    click.echo(f"removed tariff {tariff_id}" + (f" and {gone} assignment(s)" if gone else ""))


@tariffs.command("assign")
@click.argument("tariff_id")
@click.option("--location", "location", help="A location id.")
@click.option("--evse", "evse", metavar="UID", help="An EVSE uid (CHARGER*EVSE).")
@click.option("--connector", type=click.IntRange(1), help="One connector of --evse.")
@click.option("--default", "default", is_flag=True, help="Where nothing else applies.")
@config_option
def tariffs_assign(
    tariff_id: str,
    location: str | None,
    evse: str | None,
    connector: int | None,
    default: bool,
    config_file: str | None,
) -> None:
    """Connector beats EVSE beats location beats the default."""
    text = _billing(
        config_file,
        lambda s: s.assign(
            tariff_id, location=location, evse=evse, connector=connector, default=default
        ),
    )
    click.echo(f"tariff {tariff_id} applies to {text}")


# --- CDRs ------------------------------------------------------------------------------


@click.group()
def cdrs() -> None:
    """Charge detail records (immutable; corrections are credit CDRs)."""


def _window(date_from: str | None, date_to: str | None) -> tuple[datetime | None, datetime | None]:
    start = None if date_from is None else parse_time(date_from, "--from")
    end = None if date_to is None else parse_time(date_to, "--to")
    if start is not None and end is not None and end <= start:
        raise CliError("--to must be after --from")
    return start, end


@cdrs.command("list")
@click.option("--from", "date_from", metavar="ISO8601", help="Ended at or after (inclusive).")
@click.option("--to", "date_to", metavar="ISO8601", help="Ended before (exclusive).")
@click.option("--charger", "charger_id")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@config_option
@json_option
def cdrs_list(
    date_from: str | None,
    date_to: str | None,
    charger_id: str | None,
    limit: int,
    config_file: str | None,
    as_json: bool,
) -> None:
    """CDRs by end time, oldest first."""
    start, end = _window(date_from, date_to)
    found = _billing(
        config_file, lambda s: s.cdrs(date_from=start, date_to=end, cp_id=charger_id, limit=limit)
    )
    if as_json:
        print_json([cdr_json(c) for c in found])
        return
    if not found:
        click.echo("no CDRs")
        return
    table(
        ["ID", "TRANSACTION", "CHARGER", "START", "END", "KWH", "TOTAL", "INCL VAT", "NOTE"],
        [
            [
                c.id,
                c.transaction_id,
                c.charge_point_id,
                iso(c.start_at),
                iso(c.end_at),
                f"{c.energy_wh / 1000:.3f}",
                money(c.total_excl_vat, c.currency),
                money(c.total_incl_vat, c.currency),
                _note(c),
            ]
            for c in found
        ],
    )


def _note(cdr: StoredCdr) -> str:
    """What people should know about a CDR beside its figures."""
    notes = [f"credit of {cdr.credit_reference_id}"] if cdr.credit else []
    if not cdr.data.get("tariffs"):
        notes.append("no tariff")  # no tariff applied: the session cost nothing
    return "; ".join(notes)


@cdrs.command("show")
@click.argument("cdr_id")
@config_option
def cdrs_show(cdr_id: str, config_file: str | None) -> None:
    """The OCPI CDR object."""
    found = _billing(config_file, lambda s: s.cdr(cdr_id))
    print_json(cdr_json(found))


@cdrs.command("credit")
@click.argument("cdr_id")
@click.option("--reason", help="Why (kept as the credit CDR's remark).")
@config_option
def cdrs_credit(cdr_id: str, reason: str | None, config_file: str | None) -> None:
    """Cancel a CDR with a credit CDR; then `csms transactions resolve` issues a new one."""
    original, credit = _billing(config_file, lambda s: s.credit(cdr_id, reason))
    click.echo(
        f"credit CDR {credit.id} cancels {original.id} "
        f"({money(credit.total_excl_vat, credit.currency)} excl. VAT); "
        f"transaction {original.transaction_id} is held until resolved"
    )


CSV_FIELDS = (
    "id",
    "credit_reference_id",
    "transaction_id",
    "charger",
    "location_id",
    "evse_uid",
    "start",
    "end",
    "token_uid",
    "auth_method",
    "currency",
    "total_energy_kwh",
    "total_time_h",
    "total_parking_time_h",
    "total_excl_vat",
    "total_incl_vat",
    "tariff_ids",
)


@cdrs.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), required=True)
@click.option("--from", "date_from", metavar="ISO8601", help="Ended at or after (inclusive).")
@click.option("--to", "date_to", metavar="ISO8601", help="Ended before (exclusive).")
@config_option
def cdrs_export(
    fmt: str, date_from: str | None, date_to: str | None, config_file: str | None
) -> None:
    """JSON: a list of OCPI 2.2.1 CDR objects; CSV: one line per CDR for accounting."""
    start, end = _window(date_from, date_to)
    found = _billing(config_file, lambda s: s.cdrs(date_from=start, date_to=end))
    if fmt == "json":
        valid = [c.data for c in found if "cdr_location" in c.data]
        missing = len(found) - len(valid)
        if missing:
            click.echo(
                f"warning: {missing} CDR(s) left out: their charger is not linked to a "
                "location (`csms locations link`), so they have no cdr_location",
                err=True,
            )
        click.echo(orjson.dumps(valid, option=orjson.OPT_INDENT_2).decode())
        return
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for c in found:
        d = c.data
        location = d.get("cdr_location") or {}
        writer.writerow(
            [
                c.id,
                c.credit_reference_id or "",
                c.transaction_id,
                c.charge_point_id,
                location.get("id", ""),
                location.get("evse_uid", ""),
                d.get("start_date_time"),
                d.get("end_date_time"),
                (d.get("cdr_token") or {}).get("uid", ""),
                d.get("auth_method"),
                c.currency,
                d.get("total_energy"),
                d.get("total_time"),
                d.get("total_parking_time", 0),
                c.total_excl_vat,
                "" if c.total_incl_vat is None else c.total_incl_vat,
                " ".join(t.get("id", "") for t in d.get("tariffs") or []),
            ]
        )
    sys.stdout.write(out.getvalue())
