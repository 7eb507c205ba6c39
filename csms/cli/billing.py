"""`csms tariffs` and `csms cdrs`: what sessions cost. Data commands: they work on the
database whether or not the server runs.

Argument parsing and printing over csms.services.billing.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from csms.cli.common import (
    CliError,
    billing_service,
    config_option,
    exact,
    json_option,
    kwh,
    load,
    parse_time,
    print_json,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option, run_reads
from csms.views import assignment_text, cdr_json, published_tariff, tariff_json

if TYPE_CHECKING:
    from csms.services.reads import ReadService
    from csms.storage.cdrs import StoredCdr

T = TypeVar("T")


def _billing(config_file: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from csms.core.errors import CsmsError

    config = load(config_file)

    async def wrapped(db: Any) -> T:
        try:
            return await work(billing_service(db, config))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def money(amount: Decimal | float | int | None, currency: str) -> str:
    """An amount as a CDR states it: to OCPI's 4 decimals, with at least the currency's
    minor unit and no rounding beyond: `3.70 EUR`, `3.7035 EUR`, `494 JPY`."""
    from decimal import ROUND_HALF_UP

    from csms.core.cost import minor_unit

    if amount is None:
        return "-"
    value = Decimal(str(amount)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    exponent = value.normalize().as_tuple().exponent
    digits = max(minor_unit(currency), -exponent if isinstance(exponent, int) else 0)
    return f"{value.quantize(Decimal(1).scaleb(-digits))} {currency}"


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
@limit_option
@config_option
@json_option
def tariffs_list(limit: int, config_file: str | None, as_json: bool) -> None:
    """Tariffs, the most recently added first, with where each applies."""
    page = run_reads(config_file, lambda r: r.tariffs(limit=limit, newest_first=True))
    found = page.items
    if as_json:
        print_json([tariff_json(t, assigned) for t, assigned in found])
        footer(len(found), page.total, as_json=True)
        return
    if not found:
        click.echo("no tariffs")
        return
    now = datetime.now(UTC)
    table(
        ["ID", "CURRENCY", "TYPE", "ELEMENTS", "APPLIES TO", "UPDATED"],
        [
            [
                t.id,
                t.data.get("currency"),
                published_tariff(t, assigned).get("type"),
                len(t.data.get("elements") or []),
                ", ".join(assignment_text(a) for a in assigned) or "(nowhere)",
                when(t.updated_at, now),
            ]
            for t, assigned in found
        ],
    )
    footer(len(found), page.total, as_json=False)


@tariffs.command("show")
@click.argument("tariff_id")
@config_option
@json_option
def tariffs_show(tariff_id: str, config_file: str | None, as_json: bool) -> None:
    """One tariff: its prices, restrictions and where it applies (--json: the OCPI object
    with `assigned_to`)."""
    stored, assigned = run_reads(config_file, lambda r: r.tariff(tariff_id))
    if as_json:
        print_json(tariff_json(stored, assigned))
        return
    now = datetime.now(UTC)
    d = published_tariff(stored, assigned)
    currency = str(d.get("currency", ""))
    pairs = [
        ("tariff", f"{stored.id} ({currency}" + (f", {d['type']})" if d.get("type") else ")")),
        ("party", f"{d.get('country_code', '-')}*{d.get('party_id', '-')}"),
        ("applies to", ", ".join(assignment_text(a) for a in assigned) or "(nowhere)"),
        ("description", _alt_text(d.get("tariff_alt_text")) or "-"),
        ("valid", _validity(d, now)),
        ("min / max price", " / ".join(_price_bound(d.get(k), currency) for k in _BOUNDS)),
        ("updated", when(stored.updated_at, now)),
    ]
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")
    elements = d.get("elements") or []
    click.echo(f"\nelements ({len(elements)}):")
    table(
        ["#", "PRICE", "STEP", "VAT", "WHEN"],
        [
            [
                str(n) if i == 0 else "",
                _price_text(pc, currency),
                _step_text(pc),
                "-" if pc.get("vat") is None else f"{exact(pc['vat'])}%",
                _restrictions_text(element.get("restrictions")) if i == 0 else "",
            ]
            for n, element in enumerate(elements, 1)
            for i, pc in enumerate(element.get("price_components") or [])
        ],
    )


_BOUNDS = ("min_price", "max_price")
_PER = {"ENERGY": "/kWh", "TIME": "/h", "PARKING_TIME": "/h", "FLAT": " per session"}


def _price_text(pc: dict[str, Any], currency: str) -> str:
    kind = str(pc.get("type", "?"))
    return f"{kind} {exact(pc.get('price'))} {currency}{_PER.get(kind, '')}"


def _step_text(pc: dict[str, Any]) -> str:
    step = pc.get("step_size")
    if step is None or pc.get("type") == "FLAT":
        return "-"
    return f"{exact(step)} {'Wh' if pc.get('type') == 'ENERGY' else 's'}"


def _restrictions_text(restrictions: dict[str, Any] | None) -> str:
    if not restrictions:
        return "always"
    return ", ".join(
        f"{key}={','.join(map(str, value)) if isinstance(value, list) else exact(value)}"
        if not isinstance(value, str)
        else f"{key}={value}"
        for key, value in restrictions.items()
    )


def _alt_text(texts: list[dict[str, Any]] | None) -> str:
    return "; ".join(f"{t.get('text')} ({t.get('language')})" for t in texts or [])


def _validity(d: dict[str, Any], now: datetime) -> str:
    start, end = d.get("start_date_time"), d.get("end_date_time")
    if start is None and end is None:
        return "always"
    return f"from {when(start, now) if start else '-'} until {when(end, now) if end else '-'}"


def _price_bound(bound: dict[str, Any] | None, currency: str) -> str:
    if not bound:
        return "-"
    text = f"{money(bound.get('excl_vat'), currency)} excl. VAT"
    if bound.get("incl_vat") is not None:
        text += f" ({money(bound['incl_vat'], currency)} incl.)"
    return text


@tariffs.command("remove")
@click.argument("tariff_id")
@yes_option
@config_option
def tariffs_remove(tariff_id: str, yes: bool, config_file: str | None) -> None:
    """Remove a tariff (CDRs keep the tariffs as they were); asks first unless --yes."""
    confirm(f"remove tariff {tariff_id}", yes)
    gone = _billing(config_file, lambda s: s.remove_tariff(tariff_id))
    click.echo(f"removed tariff {tariff_id}" + (f" and {gone} assignment(s)" if gone else ""))


@tariffs.command("assign")
@click.argument("tariff_id")
@click.option("--location", "location", help="A location id.")
@click.option("--evse", "evse", metavar="UID", help="An EVSE uid (CHARGER*EVSE).")
@click.option("--connector", type=click.IntRange(1), help="One connector of --evse.")
@click.option("--default", "default", is_flag=True, help="Where nothing else applies.")
@click.option(
    "--ad-hoc",
    "ad_hoc",
    is_flag=True,
    help="For drivers who pay on the spot (QR code, payment page), beside the regular tariff.",
)
@config_option
def tariffs_assign(
    tariff_id: str,
    location: str | None,
    evse: str | None,
    connector: int | None,
    default: bool,
    ad_hoc: bool,
    config_file: str | None,
) -> None:
    """Connector beats EVSE beats location beats the default. An --ad-hoc tariff prices the
    sessions drivers pay on the spot; it is published to OCPI partners as AD_HOC_PAYMENT."""
    text = _billing(
        config_file,
        lambda s: s.assign(
            tariff_id,
            location=location,
            evse=evse,
            connector=connector,
            default=default,
            ad_hoc=ad_hoc,
        ),
    )
    if default and ad_hoc:
        click.echo(
            f"tariff {tariff_id} is now the default for ad-hoc payment: it applies where no "
            "other ad-hoc tariff does"
        )
    elif default:
        click.echo(f"tariff {tariff_id} is now the default: it applies where no other does")
    else:
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
@click.option("--charger", "charger_id", help="Only this charger's CDRs.")
@limit_option
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
    """CDRs, the most recently issued first (the OCPI objects under --json)."""
    start, end = _window(date_from, date_to)
    page = run_reads(
        config_file, lambda r: r.cdrs(cp_id=charger_id, since=start, until=end, limit=limit)
    )
    found = page.items
    if as_json:
        print_json([cdr_json(c) for c in found])
        footer(len(found), page.total, as_json=True)
        return
    if not found:
        click.echo("no CDRs")
        return
    now = datetime.now(UTC)
    table(
        ["ID", "TRANSACTION", "CHARGER", "START", "END", "KWH", "TOTAL", "INCL VAT", "NOTE"],
        [
            [
                c.id,
                c.transaction_id,
                c.charge_point_id,
                when(c.start_at, now),
                when(c.end_at, now),
                kwh(c.energy_wh),
                money(c.total_excl_vat, c.currency),
                money(c.total_incl_vat, c.currency),
                _note(c),
            ]
            for c in found
        ],
    )
    footer(len(found), page.total, as_json=False)


def _note(cdr: StoredCdr) -> str:
    """What people should know about a CDR beside its figures."""
    notes = [f"credit of {cdr.credit_reference_id}"] if cdr.credit else []
    if "cdr_location" not in cdr.data:
        notes.append("no location")
    if not cdr.data.get("tariffs"):
        notes.append("no tariff")  # no tariff applied: the session cost nothing
    return "; ".join(notes)


@cdrs.command("show")
@click.argument("cdr_id")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the CDR's signed meter values again (OCMF): one line per value and a "
    "verdict; exit 1 when they do not verify.",
)
@click.option(
    "--public-key",
    "public_key",
    metavar="HEX|BASE64|PEM",
    help="With --verify: check with this meter key instead of the one in the CDR.",
)
@config_option
@json_option
def cdrs_show(
    cdr_id: str, verify: bool, public_key: str | None, config_file: str | None, as_json: bool
) -> None:
    """One CDR: session, token, energy, time, cost (--json: the OCPI CDR object).
    --verify: its signed meter values checked again, as a driver's verifier would."""
    if public_key is not None and not verify:
        raise CliError("--public-key is for --verify")

    ocpi = load(config_file).ocpi
    # Our CDR ids: our country code and party id, then a sequence number.
    example = f"{ocpi.country_code}{ocpi.party_id}{1:010d}"

    async def work(r: ReadService) -> StoredCdr:
        from csms.services.reads import NotFound

        try:
            return await r.cdr(cdr_id)
        except NotFound as exc:
            raise CliError(f"{exc}: CDR ids look like {example} (see `csms cdrs list`)") from None

    c: StoredCdr = run_reads(config_file, work)
    if verify:
        _verify(c, public_key, as_json=as_json)
        return
    if as_json:
        print_json(cdr_json(c))
        return
    now = datetime.now(UTC)
    d = c.data
    location = d.get("cdr_location") or {}
    token = d.get("cdr_token") or {}
    tariffs = [str(t.get("id")) for t in d.get("tariffs") or []]
    pairs = [
        ("cdr", c.id + (f" (credit of {c.credit_reference_id})" if c.credit else "")),
        ("transaction", f"{c.transaction_id} on {c.charge_point_id}"),
        (
            "location",
            f"{location.get('id')}, EVSE {location.get('evse_uid')}"
            + (f" ({location['evse_id']})" if location.get("evse_id") else "")
            if location
            else "none (the charger is linked to no location)",
        ),
        ("started", when(c.start_at, now)),
        ("ended", when(c.end_at, now)),
        (
            "token",
            f"{token.get('uid', '-')} ({token.get('type', '-')}, "
            f"{token.get('country_code', '-')}*{token.get('party_id', '-')})",
        ),
        ("authorized by", d.get("auth_method") or "-"),
        ("energy", f"{kwh(c.energy_wh)} kWh"),
        (
            "time",
            f"{exact(d.get('total_time'))} h"
            + (
                f", parking {exact(d['total_parking_time'])} h"
                if d.get("total_parking_time")
                else ""
            ),
        ),
        ("tariffs", ", ".join(tariffs) or "none"),
        (
            "total",
            f"{money(c.total_excl_vat, c.currency)} excl. VAT"
            + (
                f", {money(c.total_incl_vat, c.currency)} incl. VAT"
                if c.total_incl_vat is not None
                else ""
            ),
        ),
    ]
    if c.reason:
        pairs.append(("reason", c.reason))
    if d.get("remark"):
        pairs.append(("remark", str(d["remark"])))
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")
    periods = d.get("charging_periods") or []
    if periods:
        click.echo(f"\ncharging periods ({len(periods)}):")
        table(
            ["START", "TARIFF", "DIMENSIONS"],
            [
                [
                    when(period.get("start_date_time"), now),
                    period.get("tariff_id"),
                    ", ".join(
                        f"{dim.get('type')} {exact(dim.get('volume'))}"
                        for dim in period.get("dimensions") or []
                    ),
                ]
                for period in periods
            ],
        )


def _verify(cdr: StoredCdr, public_key: str | None, *, as_json: bool) -> None:
    """`cdrs show --verify`: a line per signed value, then the verdict; a failure is the
    one-line error (exit 1), after the lines that show where."""
    from csms.core.ocmf import OcmfError
    from csms.services.meter_signatures import verify_cdr

    try:
        checked = verify_cdr(cdr.data, public_key=public_key)
    except OcmfError as exc:
        raise CliError(f"CDR {cdr.id}: {exc}") from None
    verdict = checked.verdict
    billed = "-" if checked.billed_wh is None else f"{checked.billed_wh / 1000:f}"
    if as_json:
        print_json(
            {
                "cdr_id": cdr.id,
                "verified": verdict.ok,
                "problem": None if verdict.ok else str(verdict.problem),
                "detail": verdict.detail,
                "signed_energy_wh": None
                if verdict.signed_energy_wh is None
                else f"{verdict.signed_energy_wh:f}",
                "billed_energy_kwh": billed,
                "signed_values": [
                    {
                        "nature": v.nature,
                        "pagination": v.pagination,
                        "signature": v.signature,
                        "summary": v.summary,
                    }
                    for v in checked.values
                ],
            }
        )
    else:
        table(
            ["NATURE", "PG", "SIGNATURE", "READING"],
            [[v.nature, v.pagination or "-", v.signature, v.summary] for v in checked.values],
        )
    if not verdict.ok:
        raise CliError(f"CDR {cdr.id} not verified: {verdict.problem}: {verdict.detail}")
    if not as_json:
        click.echo(f"verified: {verdict.detail}; the CDR bills {billed} kWh")


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    help="The CDRs on stdout (required unless --safe is given).",
)
@click.option("--from", "date_from", metavar="ISO8601", help="Ended at or after (inclusive).")
@click.option("--to", "date_to", metavar="ISO8601", help="Ended before (exclusive).")
@click.option(
    "--safe",
    "safe_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Also write, for each CDR with signed meter values, DIR/<cdr id>.xml that the "
    "S.A.F.E. Transparenzsoftware opens (without --format: only these files).",
)
@config_option
@click.pass_context
def cdrs_export(
    ctx: click.Context,
    fmt: str | None,
    date_from: str | None,
    date_to: str | None,
    safe_dir: str | None,
    config_file: str | None,
) -> None:
    """Every CDR that ended in the window, by end time, for accounting. JSON: the CDR
    objects as stored (OCPI 2.2.1); CSV: one line per CDR. Both hold the same CDRs: one
    whose charger is linked to no location has no cdr_location (a warning counts them)."""
    if fmt is None and safe_dir is None:
        (option,) = [p for p in ctx.command.params if p.name == "fmt"]
        raise click.MissingParameter(ctx=ctx, param=option)
    start, end = _window(date_from, date_to)
    found = _billing(config_file, lambda s: s.cdrs(date_from=start, date_to=end))
    if safe_dir is not None:
        _write_safe(found, Path(safe_dir), quiet=fmt is not None)
    if fmt is None:
        return
    missing = sum("cdr_location" not in c.data for c in found)
    if missing:
        click.echo(
            f"warning: {missing} CDR(s) have no cdr_location: their charger is not linked "
            "to a location (`csms locations link`); partners do not get them",
            err=True,
        )
    if fmt == "json":
        click.echo(orjson.dumps([cdr_json(c) for c in found], option=orjson.OPT_INDENT_2).decode())
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
                exact(d.get("total_energy")),
                exact(d.get("total_time")),
                exact(d.get("total_parking_time", 0)),
                c.total_excl_vat,
                "" if c.total_incl_vat is None else c.total_incl_vat,
                " ".join(t.get("id", "") for t in d.get("tariffs") or []),
            ]
        )
    sys.stdout.write(out.getvalue())


def _write_safe(found: list[StoredCdr], directory: Path, *, quiet: bool) -> None:
    """One Transparenzsoftware XML file per CDR with signed_data. What is said goes to
    stderr when the CDRs also go to stdout (--format), so that stdout stays the export."""
    from csms.core.ocmf import OcmfError, safe_xml_of_cdr

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{directory}: {exc.strerror}") from None
    written = 0
    unsigned = 0
    for c in found:
        signed_data = c.data.get("signed_data")
        if not signed_data:
            unsigned += 1
            continue
        try:
            xml = safe_xml_of_cdr(signed_data, transaction_id=c.transaction_id)
        except OcmfError as exc:
            click.echo(f"warning: CDR {c.id} skipped: {exc}", err=True)
            continue
        path = directory / f"{_file_name(c.id)}.xml"
        partial = path.with_name(path.name + ".part")
        try:
            partial.write_text(xml, encoding="utf-8")
            partial.replace(path)
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror}") from None
        written += 1
    click.echo(
        f"wrote {written} S.A.F.E. file(s) to {directory}"
        + (f"; {unsigned} CDR(s) without signed meter values" if unsigned else ""),
        err=quiet,
    )


def _file_name(cdr_id: str) -> str:
    """A CDR id as a file name: letters, digits, '.', '_' and '-' kept, anything else '_'
    (ids come from partners' data too; no path may escape the directory)."""
    name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in cdr_id)
    return name.lstrip(".") or "_"
