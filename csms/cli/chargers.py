"""`csms chargers`: list, show, add, remove, accept, reject and configure charge points.

Argument parsing and printing over csms.services.staff.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from csms.cli.common import (
    CliError,
    config_option,
    exact,
    iso,
    json_option,
    load,
    print_json,
    print_warning,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option, run_reads
from csms.core.charger import ConnectorState, RegistrationStatus
from csms.core.errors import CsmsError
from csms.services.staff import ChargerDetail, StaffService
from csms.views import charger_detail_json, charger_json, charger_overview_json


def _staff(db: Any) -> StaffService:
    from csms.core.clock import utc_now

    return StaffService(db, utc_now)


def _run(config_file: str | None, work: Any) -> Any:
    async def wrapped(db: Any) -> Any:
        try:
            return await work(_staff(db))
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    return run_db(config_file, wrapped)


def connector_label(c: ConnectorState) -> str:
    if c.evse_id == 0:
        return "0"
    return str(c.evse_id) if c.connector_id == 1 else f"{c.evse_id}/{c.connector_id}"


@click.group()
def chargers() -> None:
    """Charge points."""


@chargers.command("list")
@limit_option
@click.option(
    "--cert-expiring",
    "cert_expiring",
    metavar="DAYS",
    help="Only chargers whose latest certificate from our CA expires within DAYS (e.g. 30d).",
)
@config_option
@json_option
def list_cmd(limit: int, cert_expiring: str | None, config_file: str | None, as_json: bool) -> None:
    """Charge points, the most recently added first, with their connection and connector
    status."""
    if cert_expiring is not None:
        _cert_expiring(cert_expiring, limit, config_file, as_json)
        return
    page = run_reads(config_file, lambda r: r.chargers(limit=limit, newest_first=True))
    overview = page.items
    if as_json:
        print_json([charger_overview_json(o.charger, o.connectors) for o in overview])
        footer(len(overview), page.total, as_json=True)
        return
    if not overview:
        click.echo("no chargers")
        return
    now = datetime.now(UTC)
    rows = []
    for o in overview:
        cp = o.charger
        status = " ".join(
            f"{connector_label(c)}:{c.status.value}"
            + ("" if c.error_code == "NoError" else f"({c.error_code})")
            for c in o.connectors
        )
        rows.append(
            [
                cp.id,
                cp.ocpp_version or "-",
                cp.registration.value,
                "online" if cp.connected else "offline",
                when(cp.last_heartbeat_at, now),
                " ".join(x for x in (cp.vendor, cp.model) if x) or "-",
                status or "-",
            ]
        )
    table(
        ["ID", "OCPP", "REGISTRATION", "CONNECTION", "LAST HEARTBEAT", "MODEL", "CONNECTORS"], rows
    )
    footer(len(overview), page.total, as_json=False)


def _cert_expiring(text: str, limit: int, config_file: str | None, as_json: bool) -> None:
    """`list --cert-expiring`: soonest expiry first, with each charger's connection."""
    from csms.cli.ca import authority, certificate_json
    from csms.core.certificates import parse_days
    from csms.core.errors import UnknownChargePoint
    from csms.services.charger_certificates import expiring_chargers

    try:
        window = timedelta(days=parse_days(text))
    except ValueError as exc:
        raise CliError(f"--cert-expiring: {exc}") from None
    config = load(config_file)

    async def work(db: Any) -> list[tuple[Any, Any]]:
        staff = _staff(db)
        out = []
        for cert in (await expiring_chargers(authority(config, db), window))[:limit]:
            try:
                cp = (await staff.charger(cert.charge_point_id)).charger
            except UnknownChargePoint:  # removed since: its certificate still counts
                cp = None
            out.append((cert, cp))
        return out

    found = run_db(config_file, work)
    if as_json:
        print_json(
            [
                {
                    "charger": cert.charge_point_id,
                    "ocpp_version": None if cp is None else cp.ocpp_version,
                    "connected": None if cp is None else cp.connected,
                    "certificate": certificate_json(cert),
                }
                for cert, cp in found
            ]
        )
        return
    if not found:
        click.echo(f"no charger certificate expires within {window.days} days")
        return
    now = datetime.now(UTC)
    table(
        ["ID", "OCPP", "CONNECTION", "CERTIFICATE", "EXPIRES"],
        [
            [
                cert.charge_point_id,
                "-" if cp is None else cp.ocpp_version or "-",
                "unknown" if cp is None else "online" if cp.connected else "offline",
                cert.serial,
                when(cert.not_after, now),
            ]
            for cert, cp in found
        ],
    )


@chargers.command("show")
@click.argument("charger_id")
@config_option
@json_option
def show_cmd(charger_id: str, config_file: str | None, as_json: bool) -> None:
    """Everything known about one charge point."""
    detail: ChargerDetail = _run(config_file, lambda s: s.charger(charger_id))
    cp = detail.charger
    if as_json:
        print_json(charger_detail_json(detail))
        return
    now = datetime.now(UTC)
    pairs = [
        ("id", cp.id),
        ("ocpp version", cp.ocpp_version),
        (
            "registration",
            cp.registration.value
            + (" (registered by itself, not reviewed by staff)" if cp.auto_registered else ""),
        ),
        (
            "connection",
            ("online since " + when(cp.connected_at, now))
            if cp.connected
            else "offline"
            + (f" since {when(cp.disconnected_at, now)}" if cp.disconnected_at else ""),
        ),
        ("last heartbeat", when(cp.last_heartbeat_at, now)),
        ("last seen", when(cp.last_seen_at, now)),
        ("last boot", when(cp.last_boot_at, now)),
        ("vendor / model", " / ".join(x or "-" for x in (cp.vendor, cp.model))),
        ("serial number", cp.serial_number),
        ("charge box serial", cp.charge_box_serial),
        ("firmware", cp.firmware_version),
        ("iccid / imsi", " / ".join(x or "-" for x in (cp.iccid, cp.imsi))),
        ("meter", " / ".join(x or "-" for x in (cp.meter_type, cp.meter_serial))),
        (
            "firmware status",
            f"{cp.firmware_status} at {when(cp.firmware_status_at, now)}"
            if cp.firmware_status
            else None,
        ),
        (
            "diagnostics status",
            f"{cp.diagnostics_status} at {when(cp.diagnostics_status_at, now)}"
            if cp.diagnostics_status
            else None,
        ),
        ("validation", cp.validation or "(server default)"),
        ("password", "set" if cp.password_hash else "not set"),
        ("security profile", _PROFILES[cp.security_profile]),
        ("active transactions", ", ".join(str(t.id) for t in detail.active_transactions) or "none"),
        ("meter public key", _meter_keys_text(detail) or "none"),
    ]
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value if value is not None else '-'}")
    click.echo("")
    if detail.connectors:
        table(
            ["CONNECTOR", "STATUS", "ERROR", "INFO", "SINCE"],
            [
                [
                    connector_label(c),
                    c.status.value,
                    c.error_code,
                    c.info or c.vendor_error_code,
                    when(c.status_at, now),
                ]
                for c in detail.connectors
            ],
        )
    else:
        click.echo("no connector status reported yet")
    if detail.history:
        click.echo("\nrecent status changes:")
        table(
            ["AT", "CONNECTOR", "STATUS", "ERROR"],
            [
                [when(r.timestamp, now), str(r.evse_id), r.status.value, r.error_code]
                for r, _ in detail.history
            ],
        )
    if detail.reservations:
        click.echo("\nreservations:")
        table(
            ["ID", "EVSE", "TAG", "STATE", "EXPIRES"],
            [
                [r.id, r.evse_id or "any", r.id_tag, r.state.value, when(r.expires_at, now)]
                for r in detail.reservations
            ],
        )
    if detail.profiles:
        click.echo("\ncharging profiles:")
        table(
            ["ID", "EVSE", "PURPOSE", "STACK", "LIMIT", "UNTIL"],
            [
                [
                    p.profile.profile_id,
                    p.profile.evse_id,
                    p.profile.purpose.value,
                    p.profile.stack_level,
                    f"{exact(p.profile.limit)} {p.profile.unit}",
                    when(p.profile.start_at + timedelta(seconds=p.profile.duration_s), now)
                    if p.profile.duration_s
                    else "until cleared",
                ]
                for p in detail.profiles
            ],
        )
    if detail.local_list is not None:
        click.echo(
            f"\nlocal list: version {detail.local_list.version}, "
            f"{len(detail.local_list.entries)} entries, sent {when(detail.local_list.sent_at, now)}"
        )
    if detail.events:
        click.echo("\nrecent messages:")
        table(
            ["AT", "ACTION", "PAYLOAD"],
            [[when(e.received_at, now), e.action, _short(e.payload)] for e in detail.events],
        )
    if detail.unmatched:
        click.echo("\nmessages for unknown transactions:")
        table(
            ["AT", "ACTION", "TRANSACTION"],
            [
                [when(u["received_at"], now), u["action"], u["transaction_id"]]
                for u in detail.unmatched
            ],
        )


def _meter_keys_text(detail: ChargerDetail) -> str:
    """Its meters' keys, one `EVSE n: <first 16 hex>... (source, since)` each."""
    now = datetime.now(UTC)
    return "; ".join(
        ("charger" if k.evse_id == 0 else f"EVSE {k.evse_id}")
        + f": {k.public_key[-32:]} ({k.source}"
        + (f", meter {k.meter_serial}" if k.meter_serial else "")
        + f", {when(k.updated_at, now)})"
        for k in detail.meter_keys
    )


_PROFILES = {
    1: "1 (Basic password, if any, over ws:// or wss://)",
    2: "2 (Basic password over wss:// only)",
    3: "3 (wss:// with a client certificate from our CA)",
}


def _short(payload: dict[str, Any], limit: int = 80) -> str:
    import orjson

    text = orjson.dumps(payload).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


_VALIDATION = click.Choice(["strict", "lenient"])
_PROFILE = click.Choice(["1", "2", "3"])
_PROFILE_HELP = (
    "OCPP security profile: 1 = Basic password (if any) over ws://, 2 = Basic password over "
    "wss:// only, 3 = wss:// with a client certificate from our CA (CN = the id)."
)


def _profile_warnings(config_file: str | None, profile: int) -> None:
    """Say what keeps a charger at `profile` from connecting with this configuration."""
    if profile < 2:
        return
    from pathlib import Path

    from csms.config import tls_enabled

    config = load(config_file)
    if not tls_enabled(config.ocpp):
        print_warning(
            f"ocpp.tls_cert_file and ocpp.tls_key_file are not set: a profile-{profile} "
            "charger cannot connect until wss:// is configured"
        )
    elif profile == 3 and not config.ocpp.tls_client_ca_file:
        bundle = Path(config.ca.directory) / "trusted.pem"
        if not bundle.is_file():
            print_warning(
                f"no CA in {config.ca.directory} (csms ca init) and no ocpp.tls_client_ca_file: "
                "a profile-3 charger's certificate cannot be checked"
            )


def _operator() -> str | None:
    """Who runs this command (the audit log's requested_by)."""
    from csms.cli.api_client import _user

    return _user()


@chargers.command("add")
@click.argument("charger_id")
@click.option("--password", help="HTTP Basic password the charger must present (profile 1).")
@click.option("--validation", type=_VALIDATION, help="Schema validation for this charger.")
@click.option("--pending", is_flag=True, help="Register as Pending instead of Accepted.")
@click.option("--security-profile", "security_profile", type=_PROFILE, help=_PROFILE_HELP)
@config_option
@json_option
def add_cmd(
    charger_id: str,
    password: str | None,
    validation: str | None,
    pending: bool,
    security_profile: str | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Register a charge point before it connects."""
    registration = RegistrationStatus.PENDING if pending else RegistrationStatus.ACCEPTED
    profile = int(security_profile or 1)
    cp = _run(
        config_file,
        lambda s: s.add_charger(
            charger_id,
            password=password,
            validation=validation,
            registration=registration,
            security_profile=profile,
            requested_by=_operator(),
        ),
    )
    _profile_warnings(config_file, cp.security_profile)
    if as_json:
        print_json(charger_json(cp))
    else:
        shown = "" if cp.security_profile == 1 else f", security profile {cp.security_profile}"
        click.echo(f"charger {cp.id} added ({cp.registration.value}{shown})")


@chargers.command("set")
@click.argument("charger_id")
@click.option("--password", help="Set the HTTP Basic password.")
@click.option("--no-password", is_flag=True, help="Remove the password.")
@click.option("--validation", type=_VALIDATION, help="Schema validation for this charger.")
@click.option("--security-profile", "security_profile", type=_PROFILE, help=_PROFILE_HELP)
@click.option(
    "--meter-public-key",
    "meter_key",
    metavar="HEX|BASE64",
    help="The public key of the charger's meter (DER SubjectPublicKeyInfo as hex or base64, "
    "PEM, or a bare P-256 point): its signed meter values are verified with it, and no "
    "charger's report replaces it.",
)
@click.option("--no-meter-public-key", "no_meter_key", is_flag=True, help="Remove it.")
@click.option(
    "--evse",
    "evse_id",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="The EVSE whose meter the key is (0: the whole charger's).",
)
@config_option
def set_cmd(
    charger_id: str,
    password: str | None,
    no_password: bool,
    validation: str | None,
    security_profile: str | None,
    meter_key: str | None,
    no_meter_key: bool,
    evse_id: int,
    config_file: str | None,
) -> None:
    """Change a charge point's password, validation mode, security profile or meter public
    key (a new security profile and a meter key are written to the audit log)."""
    keyed = meter_key is not None or no_meter_key
    if (
        password is None
        and not no_password
        and validation is None
        and security_profile is None
        and not keyed
    ):
        raise CliError(
            "nothing to change: give --password, --no-password, --validation, "
            "--security-profile, --meter-public-key or --no-meter-public-key"
        )
    if password is not None and no_password:
        raise CliError("--password and --no-password exclude each other")
    if meter_key is not None and no_meter_key:
        raise CliError("--meter-public-key and --no-meter-public-key exclude each other")
    if keyed:
        _set_meter_key(charger_id, meter_key, evse_id, config_file)
    if password is None and not no_password and validation is None and security_profile is None:
        return
    before: ChargerDetail = _run(config_file, lambda s: s.charger(charger_id))
    cp = _run(
        config_file,
        lambda s: s.update_charger(
            charger_id,
            password=password,
            clear_password=no_password,
            validation=validation,
            security_profile=None if security_profile is None else int(security_profile),
            requested_by=_operator(),
        ),
    )
    click.echo(f"charger {charger_id} updated")
    if security_profile is not None:
        _profile_warnings(config_file, cp.security_profile)
    old = before.charger.security_profile
    if cp.security_profile != old:
        direction = "lowered" if cp.security_profile < old else "raised"
        click.echo(
            f"security profile {direction}: {old} -> {cp.security_profile} "
            "(recorded in the audit log)"
        )


def _set_meter_key(
    charger_id: str, text: str | None, evse_id: int, config_file: str | None
) -> None:
    """Set (or, `text` None, remove) a meter's public key; audited as the operator."""
    from csms.core.clock import utc_now
    from csms.services.meter_keys import MeterKeys, fingerprint

    async def work(db: Any) -> Any:
        keys = MeterKeys(db, utc_now)
        try:
            if text is None:
                return await keys.remove_by_staff(charger_id, evse_id, _operator())
            return await keys.set_by_staff(charger_id, evse_id, text, _operator())
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    key = run_db(config_file, work)
    where = "" if evse_id == 0 else f" EVSE {evse_id}"
    if text is None:
        click.echo(
            f"charger {charger_id}{where}: meter public key removed (recorded in the audit log)"
        )
    else:
        click.echo(
            f"charger {charger_id}{where}: meter public key {fingerprint(key.public_key)} "
            "set (recorded in the audit log)"
        )


@chargers.command("remove")
@click.argument("charger_id")
@yes_option
@config_option
def remove_cmd(charger_id: str, yes: bool, config_file: str | None) -> None:
    """Forget a charge point (its transactions are kept); asks first unless --yes."""
    confirm(f"remove charger {charger_id}", yes)
    _run(config_file, lambda s: s.remove_charger(charger_id))
    click.echo(f"charger {charger_id} removed")


@chargers.command("accept")
@click.argument("charger_id")
@config_option
def accept_cmd(charger_id: str, config_file: str | None) -> None:
    """Accept a Pending (or Rejected) charge point; it is Accepted at its next boot."""
    _run(
        config_file,
        lambda s: s.update_charger(charger_id, registration=RegistrationStatus.ACCEPTED),
    )
    click.echo(f"charger {charger_id} accepted")


@chargers.command("reject")
@click.argument("charger_id")
@config_option
def reject_cmd(charger_id: str, config_file: str | None) -> None:
    """Reject a charge point; it is told so at its next boot."""
    _run(
        config_file,
        lambda s: s.update_charger(charger_id, registration=RegistrationStatus.REJECTED),
    )
    click.echo(f"charger {charger_id} rejected")


@chargers.command("variables")
@click.argument("charger_id")
@click.option("--component", help="Only this component (case-insensitive prefix).")
@config_option
@json_option
def variables_cmd(
    charger_id: str, component: str | None, config_file: str | None, as_json: bool
) -> None:
    """The OCPP 2.0.1 device model the station reported (NotifyReport)."""
    found = _run(config_file, lambda s: s.variables(charger_id))
    if component:
        found = [v for v in found if v.component.lower().startswith(component.lower())]
    if as_json:
        print_json(
            [
                {
                    "component": v.component,
                    "component_instance": v.component_instance or None,
                    "evse_id": v.evse_id,
                    "connector_id": v.connector_id,
                    "variable": v.variable,
                    "variable_instance": v.variable_instance or None,
                    "key": v.key,
                    "attribute_type": v.attribute_type,
                    "value": v.value,
                    "mutability": v.mutability,
                    "persistent": v.persistent,
                    "constant": v.constant,
                    "characteristics": v.characteristics,
                    "updated_at": iso(v.updated_at),
                }
                for v in found
            ]
        )
        return
    if not found:
        click.echo("no device model reported (OCPP 2.0.1 stations report it on GetBaseReport)")
        return
    table(
        ["VARIABLE", "ATTRIBUTE", "VALUE", "MUTABILITY", "UNIT", "TYPE"],
        [
            [
                v.key,
                v.attribute_type,
                v.value,
                v.mutability,
                (v.characteristics or {}).get("unit"),
                (v.characteristics or {}).get("dataType"),
            ]
            for v in found
        ],
    )
