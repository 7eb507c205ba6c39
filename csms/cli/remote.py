"""`csms remote`: commands to a live charger through the operator API, one call each, saying
plainly what the charger answered; `csms commands list`: the audit log, from the database.

Argument parsing and printing only: the server checks parameters and talks OCPP.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from csms.cli import api_client
from csms.cli.common import (
    CliError,
    config_option,
    exact,
    json_option,
    load,
    parse_time,
    print_json,
    table,
    when,
)
from csms.cli.listing import footer, limit_option
from csms.views import command_record_json

F = TypeVar("F", bound=Callable[..., Any])

# Exit status per outcome, for scripts (click uses 2 for bad usage).
EXIT_CODES = {
    "accepted": 0,
    "rejected": 1,
    "invalid": 1,
    "not_connected": 3,
    "timed_out": 4,
    "call_error": 5,
}


def live_options(fn: F) -> F:
    fn = click.option(
        "--api",
        "api",
        metavar="URL",
        help="Operator API URL (default: from api.host/api.port in the config).",
    )(fn)
    fn = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 600),
        default=None,
        help="Seconds to wait for the charger (default: ocpp.call_timeout).",
    )(fn)
    return json_option(config_option(fn))


def send(
    cp_id: str,
    path: str,
    params: dict[str, Any],
    *,
    config_file: str | None,
    api: str | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """POST one command, print the result, exit with its status."""
    config = load(config_file)
    wait = (timeout or config.ocpp.call_timeout) + 15.0
    status, body = api_client.request(
        config,
        api,
        "POST",
        api_client.charger_path(cp_id, f"remote/{path}"),
        body={k: v for k, v in params.items() if v is not None},
        query={"timeout": timeout},
        wait=wait,
    )
    if not isinstance(body, dict) or "outcome" not in body:
        message = body.get("error") if isinstance(body, dict) else None
        raise CliError(message or f"unexpected answer from the API (HTTP {status})")
    if as_json:
        print_json(body)
    else:
        show(path.replace("/", " "), body)
    sys.exit(EXIT_CODES.get(str(body["outcome"]), 1))


def show(command: str, body: dict[str, Any]) -> None:
    line = f"{body['charger']} {command}: {body['message']}"
    if body["ok"]:
        click.echo(line)
    else:
        click.echo(f"error: {line}", err=True)
    data = body.get("data") or {}
    if "keys" in data:
        rows = [
            [k["key"], k.get("value"), "yes" if k.get("readonly") else ""]
            if "status" not in k
            else [k["key"], f"({k['status']})", ""]
            for k in data["keys"]
        ]
        if rows:
            table(["KEY", "VALUE", "READ-ONLY"], rows)
        if data.get("unknown"):
            click.echo(f"unknown: {', '.join(data['unknown'])}")
    if "periods" in data:
        click.echo(
            f"schedule from {when(data.get('start'))} for {data.get('duration_s')} s "
            f"(EVSE {data.get('evse_id')}, unit {data.get('unit')})"
        )
        table(
            ["FROM_S", "LIMIT", "PHASES"],
            [[p.get("start_s"), exact(p.get("limit")), p.get("phases")] for p in data["periods"]],
        )
    if "list_version" in data and "csms_list_version" in data:
        ours = data["csms_list_version"]
        note = "" if ours == data["list_version"] else " (differs!)"
        click.echo(f"charger list version {data['list_version']}, last sent {ours}{note}")
    if "file_name" in data:
        click.echo(f"file: {data['file_name']}")
    if "data" in data:
        click.echo(f"data: {data['data']}")
    if "certificates" in data:
        rows = [[c.get("type"), c.get("hash_data")] for c in data["certificates"]]
        if rows:
            table(["TYPE", "HASH_DATA"], rows)
        else:
            click.echo("no certificates")
    if "ocpp_transaction_id" in data:
        click.echo(f"transaction id on the charger: {data['ocpp_transaction_id']}")


@click.group()
def remote() -> None:
    """Commands to a connected charger (through the running server's API)."""


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option("--tag", required=True, help="Id tag to start the transaction for.")
@click.option("--evse", type=click.IntRange(1), help="EVSE (1.6: connector).")
@live_options
def start(cp_id: str, tag: str, evse: int | None, **live: Any) -> None:
    """RemoteStartTransaction / RequestStartTransaction."""
    send(cp_id, "start", {"tag": tag, "evse": evse}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option(
    "--transaction",
    "transaction",
    type=click.IntRange(1),
    required=True,
    help="Our transaction id (see `csms transactions list`).",
)
@live_options
def stop(cp_id: str, transaction: int, **live: Any) -> None:
    """RemoteStopTransaction / RequestStopTransaction."""
    send(cp_id, "stop", {"transaction": transaction}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option("--hard", is_flag=True, help="Hard reset (2.0.1: Immediate); default soft/OnIdle.")
@live_options
def reset(cp_id: str, hard: bool, **live: Any) -> None:
    """Reset the charger."""
    send(cp_id, "reset", {"hard": hard}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option("--evse", type=click.IntRange(1), required=True)
@live_options
def unlock(cp_id: str, evse: int, **live: Any) -> None:
    """UnlockConnector."""
    send(cp_id, "unlock", {"evse": evse}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.argument("state", type=click.Choice(["operative", "inoperative"], case_sensitive=False))
@click.option("--evse", type=click.IntRange(0), help="EVSE (default: the whole charger).")
@live_options
def availability(cp_id: str, state: str, evse: int | None, **live: Any) -> None:
    """ChangeAvailability (a Scheduled answer is reported as such)."""
    send(cp_id, "availability", {"state": state.lower(), "evse": evse}, **live)


@remote.command("config-get")
@click.argument("cp_id", metavar="CP")
@click.argument("keys", nargs=-1)
@live_options
def config_get(cp_id: str, keys: tuple[str, ...], **live: Any) -> None:
    """GetConfiguration (1.6) / GetVariables (2.0.1: Component[.instance].Variable)."""
    send(cp_id, "config-get", {"keys": list(keys) or None}, **live)


@remote.command("config-set")
@click.argument("cp_id", metavar="CP")
@click.argument("key")
@click.argument("value")
@live_options
def config_set(cp_id: str, key: str, value: str, **live: Any) -> None:
    """ChangeConfiguration (1.6) / SetVariables (2.0.1)."""
    send(cp_id, "config-set", {"key": key, "value": value}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.argument("message")
@click.option("--evse", type=click.IntRange(0))
@live_options
def trigger(cp_id: str, message: str, evse: int | None, **live: Any) -> None:
    """TriggerMessage (BootNotification, Heartbeat, StatusNotification, MeterValues, ...;
    either version's name)."""
    from csms.core.commands import CommandRefused, check_trigger

    try:
        check_trigger(message)
    except CommandRefused as exc:
        raise CliError(str(exc)) from None
    send(cp_id, "trigger", {"message": message, "evse": evse}, **live)


@remote.command("clear-cache")
@click.argument("cp_id", metavar="CP")
@live_options
def clear_cache(cp_id: str, **live: Any) -> None:
    """ClearCache."""
    send(cp_id, "clear-cache", {}, **live)


@remote.command("data-transfer")
@click.argument("cp_id", metavar="CP")
@click.argument("vendor")
@click.option("--message-id", "message_id")
@click.option("--data")
@live_options
def data_transfer(
    cp_id: str, vendor: str, message_id: str | None, data: str | None, **live: Any
) -> None:
    """DataTransfer."""
    send(cp_id, "data-transfer", {"vendor": vendor, "message_id": message_id, "data": data}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option("--tag", required=True)
@click.option("--expires", required=True, metavar="ISO8601")
@click.option("--evse", type=click.IntRange(1), help="EVSE to hold (default: any).")
@live_options
def reserve(cp_id: str, tag: str, expires: str, evse: int | None, **live: Any) -> None:
    """ReserveNow: hold an EVSE for a tag until EXPIRES."""
    if parse_time(expires, "--expires") <= datetime.now(UTC):
        raise CliError(f"--expires {expires} is in the past")
    send(cp_id, "reserve", {"tag": tag, "expires": expires, "evse": evse}, **live)


@remote.command("cancel-reservation")
@click.argument("cp_id", metavar="CP")
@click.argument("reservation_id", type=click.IntRange(1))
@live_options
def cancel_reservation(cp_id: str, reservation_id: int, **live: Any) -> None:
    """CancelReservation."""
    send(cp_id, "cancel-reservation", {"reservation": reservation_id}, **live)


@remote.command("local-list")
@click.argument("cp_id", metavar="CP")
@click.argument("action", type=click.Choice(["send", "version"]))
@click.option("--full", "mode", flag_value="full", default=True, help="Send the whole list.")
@click.option(
    "--differential",
    "mode",
    flag_value="differential",
    help="Send what changed since the last list.",
)
@live_options
def local_list(cp_id: str, action: str, mode: str, **live: Any) -> None:
    """SendLocalList from the token table / GetLocalListVersion."""
    if action == "send":
        send(cp_id, "local-list/send", {"mode": mode}, **live)
    else:
        send(cp_id, "local-list/version", {}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option("--location", required=True, metavar="URL")
@click.option("--retrieve", metavar="ISO8601", help="When to download (default: now).")
@live_options
def firmware(cp_id: str, location: str, retrieve: str | None, **live: Any) -> None:
    """UpdateFirmware; progress shows in `csms chargers show`."""
    if retrieve is not None:
        parse_time(retrieve, "--retrieve")
    send(cp_id, "firmware", {"location": location, "retrieve": retrieve}, **live)


@remote.command()
@click.argument("cp_id", metavar="CP")
@click.option("--location", required=True, metavar="URL")
@live_options
def diagnostics(cp_id: str, location: str, **live: Any) -> None:
    """GetDiagnostics (2.0.1: GetLog); progress shows in `csms chargers show`."""
    send(cp_id, "diagnostics", {"location": location}, **live)


@remote.group()
def profile() -> None:
    """Charging profiles (smart charging)."""


@profile.command("set")
@click.argument("cp_id", metavar="CP")
@click.option("--evse", type=click.IntRange(0), required=True, help="EVSE (0: whole charger).")
@click.option("--limit", type=click.FloatRange(0, min_open=True), required=True)
@click.option("--unit", type=click.Choice(["W", "A"]), required=True)
@click.option(
    "--purpose",
    type=click.Choice(["TxDefaultProfile", "TxProfile", "ChargePointMaxProfile"]),
    default="TxDefaultProfile",
    show_default=True,
)
@click.option("--stack", type=click.IntRange(0), default=0, show_default=True)
@click.option("--duration", type=click.IntRange(1), help="Seconds (default: until cleared).")
@live_options
def profile_set(
    cp_id: str,
    evse: int,
    limit: float,
    unit: str,
    purpose: str,
    stack: int,
    duration: int | None,
    **live: Any,
) -> None:
    """SetChargingProfile: cap an EVSE (or the charger) at LIMIT."""
    params = {
        "evse": evse,
        "limit": limit,
        "unit": unit,
        "purpose": purpose,
        "stack": stack,
        "duration": duration,
    }
    send(cp_id, "profile/set", params, **live)


@profile.command("clear")
@click.argument("cp_id", metavar="CP")
@click.option("--id", "profile_id", type=click.IntRange(1), help="Profile id (default: all).")
@live_options
def profile_clear(cp_id: str, profile_id: int | None, **live: Any) -> None:
    """ClearChargingProfile."""
    send(cp_id, "profile/clear", {"id": profile_id}, **live)


@profile.command("composite")
@click.argument("cp_id", metavar="CP")
@click.option("--evse", type=click.IntRange(0), required=True)
@click.option("--duration", type=click.IntRange(1), required=True)
@live_options
def profile_composite(cp_id: str, evse: int, duration: int, **live: Any) -> None:
    """GetCompositeSchedule."""
    send(cp_id, "profile/composite", {"evse": evse, "duration": duration}, **live)


@remote.group()
def certificates() -> None:
    """Certificates on the charger: install, list, delete, renew its own."""


_INSTALLABLE = ["csms-root", "manufacturer-root", "v2g-root", "mo-root"]


def _read_pem(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


@certificates.command("install")
@click.argument("cp_id", metavar="CP")
@click.option("--file", "path", required=True, metavar="PEM", help="The certificate (PEM).")
@click.option(
    "--type",
    "kind",
    type=click.Choice(_INSTALLABLE),
    default="csms-root",
    show_default=True,
    help="What it is for (1.6: csms-root or manufacturer-root).",
)
@live_options
def certificates_install(cp_id: str, path: str, kind: str, **live: Any) -> None:
    """InstallCertificate: a root certificate the charger trusts from now on."""
    send(cp_id, "certificates/install", {"certificate": _read_pem(path), "type": kind}, **live)


@certificates.command("list")
@click.argument("cp_id", metavar="CP")
@click.option(
    "--type",
    "kinds",
    multiple=True,
    type=click.Choice([*_INSTALLABLE, "v2g-chain"]),
    help="Only these kinds (repeat; default: every kind, 1.6: csms-root).",
)
@live_options
def certificates_list(cp_id: str, kinds: tuple[str, ...], **live: Any) -> None:
    """GetInstalledCertificateIds: each certificate's type and hash data (for delete)."""
    send(cp_id, "certificates/list", {"type": list(kinds) or None}, **live)


@certificates.command("delete")
@click.argument("cp_id", metavar="CP")
@click.option(
    "--hash-data",
    "hash_data",
    metavar="ALG:NAME_HASH:KEY_HASH:SERIAL",
    help="The certificate as `certificates list` shows it.",
)
@click.option("--file", "path", metavar="PEM", help="Instead: the certificate itself (PEM).")
@live_options
def certificates_delete(cp_id: str, hash_data: str | None, path: str | None, **live: Any) -> None:
    """DeleteCertificate, named by its hash data or by the certificate file."""
    if (hash_data is None) == (path is None):
        raise CliError("give either --hash-data or --file")
    params = {"hash_data": hash_data, "certificate": None if path is None else _read_pem(path)}
    send(cp_id, "certificates/delete", params, **live)


@certificates.command("renew")
@click.argument("cp_id", metavar="CP")
@live_options
def certificates_renew(cp_id: str, **live: Any) -> None:
    """Ask the charger for a new signing request (2.0.1 TriggerMessage
    SignChargingStationCertificate, 1.6 ExtendedTriggerMessage SignChargePointCertificate);
    our CA answers it with a new certificate."""
    send(cp_id, "certificates/renew", {}, **live)


# --- the audit log -------------------------------------------------------------------------


@click.group()
def commands() -> None:
    """The audit log of commands sent to chargers."""


@commands.command("list")
@click.option("--charger", "charger_id", help="Only this charger's commands.")
@limit_option
@config_option
@json_option
def list_cmd(charger_id: str | None, limit: int, config_file: str | None, as_json: bool) -> None:
    """Newest first: who sent what, and what the charger answered."""
    from csms.cli.listing import run_reads

    page = run_reads(config_file, lambda r: r.audit(cp_id=charger_id, limit=limit))
    records = page.items
    if as_json:
        print_json([command_record_json(r) for r in records])
        footer(len(records), page.total, as_json=True)
        return
    if not records:
        click.echo("no commands")
        return
    now = datetime.now(UTC)
    table(
        ["ID", "WHEN", "CHARGER", "COMMAND", "BY", "OUTCOME", "ANSWER"],
        [
            [
                r.id,
                when(r.created_at, now),
                r.charge_point_id,
                r.command,
                r.source + (f":{r.requested_by}" if r.requested_by else ""),
                r.outcome or "pending",
                r.message,
            ]
            for r in records
        ],
    )
    footer(len(records), page.total, as_json=False)


@commands.command("show")
@click.argument("entry_id", metavar="ID")
@config_option
@json_option
def show_cmd(entry_id: str, config_file: str | None, as_json: bool) -> None:
    """One audit log entry: the parameters sent and the charger's whole answer."""
    from csms.cli.listing import run_reads

    if not (entry_id.isascii() and entry_id.isdigit()) or len(entry_id) > 18:
        raise CliError(
            f"no audit log entry {entry_id!r}: entry ids are whole numbers "
            "(see `csms commands list`)"
        )
    record = run_reads(config_file, lambda r: r.audit_entry(int(entry_id)))
    data = command_record_json(record)
    if as_json:
        print_json(data)
        return
    now = datetime.now(UTC)
    pairs = [
        ("entry", str(record.id)),
        ("charger", record.charge_point_id),
        ("command", record.command + (f" ({record.action})" if record.action else "")),
        ("asked by", record.source + (f":{record.requested_by}" if record.requested_by else "")),
        ("asked", when(record.created_at, now)),
        ("finished", when(record.finished_at, now)),
        ("outcome", record.outcome or "pending"),
        ("status", record.status or "-"),
        ("message", record.message or "-"),
        ("parameters", _compact(record.params)),
        ("answer", _compact(record.answer)),
    ]
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")


def _compact(value: Any) -> str:
    import orjson

    return "-" if value is None else orjson.dumps(value).decode()
