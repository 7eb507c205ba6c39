"""`csms ca`: the certificate authority for charging station certificates: init (create
or import), show, rotate, retire, issue (sign a CSR by hand), certificates (what it issued).

Argument parsing and printing over csms.services.pki.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from csms.cli.common import (
    CliError,
    config_option,
    iso,
    json_option,
    load,
    print_json,
    require_database,
    run_db,
    table,
    when,
)
from csms.cli.confirm import confirm, yes_option
from csms.cli.listing import footer, limit_option
from csms.config import Config
from csms.core.certificates import (
    CaInfo,
    CaSettings,
    IssuedCertificate,
    Refused,
    colon_hex,
    parse_days,
)
from csms.core.clock import utc_now
from csms.core.errors import CsmsError, InvalidInput

if TYPE_CHECKING:
    from csms.services.pki import CaUse, CertificateAuthority

# The window `csms ca show` counts expiring certificates in.
SHOW_EXPIRING_DAYS = 30


def authority(config: Config, db: Any = None) -> CertificateAuthority:
    from csms.services.pki import CertificateAuthority

    ca = config.ca
    settings = CaSettings(
        organisation=ca.organisation,
        common_name=ca.common_name,
        key_type=ca.key_type,
        ca_validity_days=ca.ca_validity_days,
        certificate_validity_days=ca.certificate_validity_days,
    )
    return CertificateAuthority(Path(ca.directory), settings, utc_now, db)


def _files(config_file: str | None) -> tuple[Config, CertificateAuthority]:
    """The configuration and the CA, for commands on its files alone; their log events
    stay on stderr, warnings up, as data commands' do."""
    from csms.logconfig import configure_logging

    config = load(config_file)
    configure_logging("warning", config.log.format)
    return config, authority(config)


def ca_json(info: CaInfo) -> dict[str, Any]:
    return {
        "subject": info.subject,
        "serial": info.serial,
        "not_before": iso(info.not_before),
        "not_after": iso(info.not_after),
        "fingerprint_sha256": info.fingerprint_sha256,
        "key": info.key,
    }


def certificate_json(cert: IssuedCertificate) -> dict[str, Any]:
    return {
        "serial": cert.serial,
        "charger": cert.charge_point_id,
        "not_before": iso(cert.not_before),
        "not_after": iso(cert.not_after),
        "fingerprint_sha256": cert.fingerprint_sha256,
        "issuer_serial": cert.issuer_serial,
        "issued_at": iso(cert.issued_at),
    }


def _days_option(text: str | None, option: str) -> timedelta | None:
    if text is None:
        return None
    try:
        return timedelta(days=parse_days(text))
    except InvalidInput as exc:
        raise CliError(f"{option}: {exc}") from None


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"{what} {path} cannot be read: {exc.strerror}") from None


def _describe(info: CaInfo, now: datetime) -> list[tuple[str, str]]:
    return [
        ("subject", info.subject),
        ("serial", colon_hex(info.serial)),
        ("valid from", when(info.not_before, now)),
        ("valid until", when(info.not_after, now)),
        ("fingerprint", f"SHA-256 {colon_hex(info.fingerprint_sha256)}"),
        ("key", info.key),
    ]


def _print_pairs(pairs: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs) + 1
    for key, value in pairs:
        click.echo(f"{key + ':':<{width}} {value}")


@click.group()
def ca() -> None:
    """The certificate authority that signs charging station certificates."""


@ca.command("init")
@click.option("--import-cert", "import_cert", metavar="FILE", help="An existing CA certificate.")
@click.option("--import-key", "import_key", metavar="FILE", help="Its private key (PEM).")
@click.option(
    "--key-type",
    type=click.Choice(["ec", "rsa"]),
    default=None,
    help="Key of the new CA: ec (P-256) or rsa (3072 bits); default: ca.key_type.",
)
@yes_option
@config_option
def init_cmd(
    import_cert: str | None,
    import_key: str | None,
    key_type: str | None,
    yes: bool,
    config_file: str | None,
) -> None:
    """Create the CA (or import an existing one, PEM certificate and key); an existing CA
    is never replaced here (see `csms ca rotate`). A CA that would end before the
    certificates it issues (ca.certificate_validity_days) is confirmed first (--yes)."""
    from csms.services.pki import PkiError

    config = load(config_file)
    days = config.ca.certificate_validity_days

    def short_lived(info: CaInfo) -> None:
        if info.not_after < datetime.now(UTC) + timedelta(days=days):
            confirm(
                f"import the CA {info.serial}, which ends {iso(info.not_after)}, sooner than "
                f"the {days} days a charger certificate lasts (they would end with it)",
                yes,
            )

    if (import_cert is None) != (import_key is None):
        raise CliError("--import-cert and --import-key go together")
    if import_cert is not None and key_type is not None:
        raise CliError("--key-type is for a new CA; an imported CA keeps its key")
    _config, authority_ = _files(config_file)
    try:
        if import_cert is not None and import_key is not None:
            cert_pem = _read(import_cert, "--import-cert")
            key_pem = _read(import_key, "--import-key")
            info = authority_.import_pem(cert_pem, key_pem, before_install=short_lived)
            verb = "imported"
        else:
            if config.ca.ca_validity_days < days:
                confirm(
                    f"create a CA valid {config.ca.ca_validity_days} days, fewer than the "
                    f"{days} days a charger certificate lasts (they would end with it)",
                    yes,
                )
            info = authority_.create(key_type)
            verb = "created"
    except PkiError as exc:
        raise CliError(str(exc)) from None
    now = datetime.now(UTC)
    click.echo(f"{verb} CA {info.subject} in {authority_.files.directory}")
    _print_pairs([*_describe(info, now), ("trusted bundle", str(authority_.files.bundle))])


@ca.command("show")
@config_option
@json_option
def show_cmd(config_file: str | None, as_json: bool) -> None:
    """The current CA, the previous ones still trusted, and how many certificates each
    issued (and how many of those expire within 30 days)."""
    from csms.services.pki import PkiError

    config, authority_ = _files(config_file)
    try:
        current = authority_.current()
        previous = authority_.previous()
    except PkiError as exc:
        raise CliError(str(exc)) from None
    window = timedelta(days=SHOW_EXPIRING_DAYS)
    uses: dict[str, CaUse] | None
    try:
        require_database(config)
    except CliError:
        uses = None  # no database yet: nothing was issued through it

    else:

        async def work(db: Any) -> dict[str, CaUse]:
            reader = authority(config, db)
            return {c.serial: await reader.use(c.serial, window) for c in [current, *previous]}

        uses = run_db(config_file, work)
    if as_json:

        def with_use(info: CaInfo) -> dict[str, Any]:
            use = None if uses is None else uses[info.serial]
            return {
                **ca_json(info),
                "certificates_issued": None if use is None else use.issued,
                f"certificates_expiring_{SHOW_EXPIRING_DAYS}d": (
                    None if use is None else use.expiring
                ),
                "last_certificate_expires": None if use is None else iso(use.last_expiry),
            }

        print_json(
            {
                **with_use(current),
                "directory": str(authority_.files.directory),
                "trusted_bundle": str(authority_.files.bundle),
                "previous": [with_use(p) for p in previous],
            }
        )
        return
    now = datetime.now(UTC)

    def use_line(serial: str) -> str:
        if uses is None:
            return "- (no database yet)"
        use = uses[serial]
        return (
            f"{use.issued} certificates, {use.expiring} expiring within {SHOW_EXPIRING_DAYS} days"
        )

    _print_pairs(
        [
            *_describe(current, now),
            ("issued", use_line(current.serial)),
            ("directory", str(authority_.files.directory)),
            ("trusted bundle", str(authority_.files.bundle)),
        ]
    )
    for info in previous:
        click.echo()
        click.echo(f"previous CA, still trusted (retire: csms ca retire {info.serial}):")
        last = None if uses is None else uses[info.serial].last_expiry
        _print_pairs(
            [
                *_describe(info, now),
                ("issued", use_line(info.serial)),
                ("last certificate expires", when(last, now)),
            ]
        )


@ca.command("rotate")
@click.option(
    "--key-type",
    type=click.Choice(["ec", "rsa"]),
    default=None,
    help="Key of the new CA; default: that of the current one.",
)
@yes_option
@config_option
def rotate_cmd(key_type: str | None, yes: bool, config_file: str | None) -> None:
    """Replace the CA with a new one; the old one stays trusted (trusted.pem) until
    `csms ca retire SERIAL`, so the certificates it issued keep working."""
    from csms.services.pki import PkiError

    _config, authority_ = _files(config_file)
    try:
        serial = authority_.current().serial
        confirm(f"rotate the CA {serial} in {authority_.files.directory}", yes)
        old, new = authority_.rotate(key_type)
    except PkiError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"rotated: new CA {new.serial} ({new.key}) signs from now on")
    click.echo(
        f"previous CA {old.serial} stays trusted in {authority_.files.bundle} "
        f"until `csms ca retire {old.serial}`"
    )


@ca.command("retire")
@click.argument("serial", required=False)
@click.option(
    "--expired",
    is_flag=True,
    help="Retire every previous CA whose certificates have all expired.",
)
@yes_option
@config_option
def retire_cmd(serial: str | None, expired: bool, yes: bool, config_file: str | None) -> None:
    """Stop trusting a previous CA (its certificates are refused from then on): the one
    with SERIAL, or with --expired every one whose certificates have all expired."""
    from csms.services.pki import PkiError

    if (serial is None) == (not expired):
        raise CliError("name the previous CA to retire by its SERIAL, or give --expired")
    config, authority_ = _files(config_file)
    try:
        authority_.current()
        known = {p.serial for p in authority_.previous()}
    except PkiError as exc:
        raise CliError(str(exc)) from None
    if expired:
        if not known:
            click.echo("no previous CA to retire")
            return
        confirm("retire every previous CA whose certificates have all expired", yes)

        async def work(db: Any) -> list[CaInfo]:
            try:
                return await authority(config, db).retire_expired()
            except PkiError as exc:
                raise CliError(str(exc)) from None

        retired = run_db(config_file, work)
        for info in retired:
            click.echo(f"retired CA {info.serial}: no longer in {authority_.files.bundle}")
        if not retired:
            click.echo("no previous CA has only expired certificates; none retired")
        return
    assert serial is not None
    wanted = serial.lower().replace(":", "")
    if wanted in known:
        confirm(f"retire the previous CA {wanted}", yes)
    try:
        info = authority_.retire(wanted)
    except PkiError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"retired CA {info.serial}: no longer in {authority_.files.bundle}")


@ca.command("issue")
@click.argument("charger_id")
@click.option("--csr", "csr_file", required=True, metavar="FILE", help="The CSR (PEM).")
@click.option(
    "--out", "out_file", metavar="FILE", help="Write the PEM chain here (default: stdout)."
)
@config_option
def issue_cmd(
    charger_id: str, csr_file: str, out_file: str | None, config_file: str | None
) -> None:
    """Sign a charger's certificate signing request with the CA (the checks a charger's
    SignCertificate gets: key type and size, signature, CN = CHARGER_ID) and record it;
    prints the PEM chain (the certificate, then the CA's)."""
    csr = _read(csr_file, "--csr")
    config = load(config_file)

    async def work(db: Any) -> Any:
        try:
            return await authority(config, db).issue(charger_id, csr)
        except CsmsError as exc:
            raise CliError(str(exc)) from None

    result = run_db(config_file, work)
    if isinstance(result, Refused):
        raise CliError(f"refused ({result.reason.value}): {result.detail}")
    cert = result.certificate
    if out_file is None:
        click.echo(result.chain_pem, nl=False)
        return
    try:
        Path(out_file).write_text(result.chain_pem, encoding="ascii")
    except OSError as exc:
        raise CliError(f"--out {out_file} cannot be written: {exc.strerror}") from None
    click.echo(
        f"issued certificate {cert.serial} for {cert.charge_point_id}, valid until "
        f"{when(cert.not_after)}, written to {out_file}"
    )


@ca.command("certificates")
@click.option("--charger", "charger_id", metavar="ID", help="Only this charger's.")
@click.option(
    "--expiring",
    metavar="DAYS",
    help="Only those still valid that expire within this many days (e.g. 30d).",
)
@limit_option
@config_option
@json_option
def certificates_cmd(
    charger_id: str | None,
    expiring: str | None,
    limit: int,
    config_file: str | None,
    as_json: bool,
) -> None:
    """The certificates the CA issued, newest first."""
    window = _days_option(expiring, "--expiring")
    config = load(config_file)

    async def work(db: Any) -> Any:
        return await authority(config, db).certificates(
            charge_point_id=charger_id, expiring_within=window, limit=limit
        )

    page = run_db(config_file, work)
    if as_json:
        print_json([certificate_json(c) for c in page.items])
        footer(len(page.items), page.total, as_json=True)
        return
    if not page.items:
        click.echo("no certificates")
        return
    now = datetime.now(UTC)
    table(
        ["SERIAL", "CHARGER", "ISSUED", "VALID UNTIL", "ISSUER"],
        [
            [
                c.serial,
                c.charge_point_id,
                when(c.issued_at, now),
                when(c.not_after, now),
                c.issuer_serial,
            ]
            for c in page.items
        ],
    )
    footer(len(page.items), page.total, as_json=False)
