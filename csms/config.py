"""Configuration: frozen dataclasses loaded from TOML, overridable by CSMS_<SECTION>_<KEY>.

Only parsing and validation of settings live here; nothing here opens sockets or files
other than the configuration file itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from csms.core.clock import TimeWindow, parse_timestamp
from csms.core.errors import InvalidTimestamp

DEFAULT_CONFIG_FILE = "csms.toml"
# The data directory: relative database paths and the API token file are resolved against
# it (default: the working directory).
DATA_DIR_VARIABLE = "CSMS_DATA_DIR"
# CSMS_ variables that are not configuration keys but are read by our code: never reported
# as unknown. The simulators (csms-sim) read their own CSMS_SIM_* variables.
# The Stripe keys are also read from CSMS_STRIPE_SECRET_KEY and CSMS_STRIPE_WEBHOOK_SECRET
# (secrets kept out of the file), besides CSMS_PAYMENTS_STRIPE_<KEY>.
STRIPE_VARIABLES = {
    "CSMS_STRIPE_SECRET_KEY": "secret_key",
    "CSMS_STRIPE_WEBHOOK_SECRET": "webhook_secret",
}
OTHER_VARIABLES = frozenset({DATA_DIR_VARIABLE, *STRIPE_VARIABLES})
OTHER_PREFIXES = ("CSMS_SIM_",)

# The parts `csms serve` runs (all by default; `--only` picks some).
COMPONENTS = ("ocpp", "ocpi", "api")

Registration = Literal["accept", "pending", "reject"]
Validation = Literal["strict", "lenient"]
NoSubprotocol = Literal["refuse", "ocpp1.6"]
OcppVersion = Literal["2.0.1", "1.6"]
LogFormat = Literal["console", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
CaKeyType = Literal["ec", "rsa"]
PaymentProviderName = Literal["test", "stripe"]
# A TOML table of strings (`[section.key]` or an inline table), kept as sorted (key, value)
# pairs so that the settings stay frozen and hashable; from the environment: "k=v,k=v".
StringTable = tuple[tuple[str, str], ...]


class ConfigError(Exception):
    """A configuration key is unknown or has a bad value; the message names the key."""


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///csms.db"
    # Group commit: how long the writer waits for more work before committing (ms),
    # and how many units of work one transaction may hold at most.
    commit_delay_ms: float = 2.0
    max_batch: int = 500


@dataclass(frozen=True, slots=True)
class OcppConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a CSMS listens for chargers on every interface
    port: int = 9000
    path: str = "/ocpp"
    registration: Registration = "accept"
    heartbeat_interval: int = 300
    # Seconds between WebSocket pings; 0 turns pinging off (some chargers never answer).
    ping_interval: float = 60.0
    # Seconds to wait for a pong before the connection is considered dead.
    ping_timeout: float = 30.0
    # Seconds without any frame from the charger after which it is disconnected; 0 = never.
    idle_timeout: float = 0.0
    # What to do with a handshake that carries no Sec-WebSocket-Protocol header.
    no_subprotocol: NoSubprotocol = "ocpp1.6"
    # The version chosen when a charger offers both.
    preferred_version: OcppVersion = "2.0.1"
    # After a 2.0.1 station's first Accepted boot with a new firmware version, ask once for
    # its full device model (GetBaseReport FullInventory).
    base_report: bool = True
    # Seconds the CSMS waits for a charger's answer to its own requests.
    call_timeout: float = 30.0
    # Require HTTP Basic auth from every charger (security profile 1). When false, chargers
    # that have a password set must still present it.
    require_auth: bool = False
    validation: Validation = "strict"
    # May a tag that is not in the token table start a transaction? (answered Invalid, but the
    # transaction is recorded so its energy is not lost).
    allow_unknown_tags: bool = False
    # Largest accepted frame, in bytes.
    max_message_size: int = 65536
    # The window of plausible charger timestamps: not before earliest_timestamp (RFC 3339
    # or a date) and at most max_clock_ahead seconds after the CSMS's clock. A start, stop,
    # event, reading or status time outside it is replaced by the time of receipt, logged
    # and counted, and its transaction is held for staff instead of billed.
    earliest_timestamp: str = "2010-01-01T00:00:00Z"
    max_clock_ahead: float = 86400.0
    # Frames read from one connection a second, with bursts of up to message_burst; a
    # faster charger is read more slowly (nothing is refused). 0 = no limit.
    message_rate: float = 200.0
    message_burst: int = 2000
    # What one charger may have stored as sent (DataTransfer, security and other events,
    # 2.0.1 reports): messages and bytes (as JSON) a minute, and bursts of up to
    # kept_burst_minutes' worth. Beyond it the message is answered but not stored. 0 = no
    # limit of that kind.
    kept_messages_per_minute: int = 60
    kept_bytes_per_minute: int = 65536
    kept_burst_minutes: float = 15.0
    # Unknown charge points that may register themselves (a row is made at their first
    # BootNotification, whatever `registration` says): at most auto_register_per_hour an
    # hour, and at most auto_register_limit not yet acted on by staff. Beyond either,
    # unknown ids are refused at the handshake. 0 = no limit of that kind.
    auto_register_per_hour: int = 100
    auto_register_limit: int = 1000
    # Seconds a client has to complete the WebSocket opening handshake (its HTTP upgrade
    # request and our checks) before the connection is closed.
    handshake_timeout: float = 10.0
    # wss:// (security profiles 2 and 3) on tls_port when tls_cert_file and tls_key_file
    # (PEM; relative paths from the data directory) are set. Client certificates (profile
    # 3) are checked against tls_client_ca_file; empty: the CA's trusted.pem (`csms ca
    # init`) when it exists. plain = false turns the ws:// listener on `port` off.
    tls_port: int = 9443
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # OpenSSL cipher list for TLS 1.2 on wss:// (TLS 1.3 suites are not affected); empty:
    # Python's defaults (forward-secret AEAD and SHA-2 suites only).
    tls_ciphers: str = ""
    plain: bool = True
    # Failed charger authentication (wrong Basic password, missing or wrong client
    # certificate for a profile-3 charger), per charger id and per source address: after
    # auth_free_failures failures, a key waits 1 s, doubled at each further failure up to
    # auth_backoff_cap_seconds; meanwhile its handshakes get 429 without a password check.
    auth_free_failures: int = 10
    auth_backoff_cap_seconds: float = 60.0
    # Concurrent connections (handshaking or open) from one source address (IPv6: per /64)
    # on the OCPP listeners; over it the handshake gets 503. 0 = no limit.
    max_connections_per_address: int = 0


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 9200
    # Empty means: generate one on first start and store it in token_file.
    token: str = ""
    token_file: str = ".csms/api-token"  # noqa: S105 - a path, not a secret
    # Listener bounds (see the README's Reliability section): seconds a client has to send
    # a request's headers (from connecting, or from its first byte after an answer), seconds
    # to send a request's body once its headers are in, seconds an open connection may wait
    # between requests, connections open at once (more are answered 503 and closed), and
    # the largest request body in bytes.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 75.0
    max_connections: int = 64
    max_body_size: int = 1024 * 1024
    # HTTPS on tls_port (beside http on `port`) when both files (PEM) are set.
    tls_port: int = 9201
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # The dashboard map's tile server, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png
    # (empty: markers on a blank map, nothing is fetched from outside the operator's network).
    map_tiles: str = ""
    # Seconds between keep-alive comments on GET /api/events (proxies close quiet
    # connections); the stream's token is checked again at each.
    events_keepalive: float = 15.0


@dataclass(frozen=True, slots=True)
class OcpiConfig:
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 9100
    # Public URL partners reach the bridge at; empty means http://HOST:PORT as bound.
    base_url: str = "http://localhost:9100"
    country_code: str = "NL"
    party_id: str = "CSM"
    # BusinessDetails in our credentials (website empty: not sent).
    business_name: str = "CSMS"
    business_website: str = ""
    # Most objects in one page of a list (and the X-Limit header's value when asked for more).
    page_limit: int = 100
    # Seconds each HTTP request to a partner may take.
    request_timeout: float = 10.0
    # Endpoints a partner must offer to register (comma list of `module` or `module:ROLE`).
    required_endpoints: str = "credentials"
    # Longest wait, in seconds, before the push worker looks at the outbox again (pushes
    # enqueued by another process, e.g. the CLI, are seen within this time).
    push_interval: float = 1.0
    # Seconds a push may wait undelivered before `ocpi_push_overdue` is logged for its
    # partner (once per episode; `ocpi_push_recovered` when its backlog is younger again).
    push_alert_after: float = 900.0
    # Whole-location PUTs per second to each partner, at most: a bulk import of thousands
    # of locations goes out at this pace instead of all at once (0: no pace). EVSE status
    # and EVSE pushes are not paced.
    location_push_rate: float = 20.0
    # Seconds a charger may be disconnected before its EVSEs show UNKNOWN to partners.
    offline_grace: float = 300.0
    # Seconds between the updates (PATCH) of a running session pushed to partners.
    session_update_interval: float = 60.0
    # Seconds a real-time authorization of another party's token may take (asking its eMSP)
    # before the token's whitelist rule decides without the answer; keep it below the
    # chargers' own message timeout.
    authorize_timeout: float = 5.0
    # Listener bounds, as for [api]: header, body and idle timeouts in seconds, connections
    # open at once, largest request body in bytes (pushed token lists can be large).
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 75.0
    max_connections: int = 256
    max_body_size: int = 4 * 1024 * 1024
    # HTTPS on tls_port (beside http on `port`) when both files (PEM) are set.
    tls_port: int = 9101
    tls_cert_file: str = ""
    tls_key_file: str = ""


@dataclass(frozen=True, slots=True)
class BillingConfig:
    # A transaction whose CDR cannot be built (e.g. its tariff no longer parses) is tried
    # again after retry_delay seconds, doubling up to retry_max_delay, and held for staff
    # (`csms transactions list` shows why) after max_attempts failed attempts.
    max_attempts: int = 5
    retry_delay: float = 10.0
    retry_max_delay: float = 900.0
    # Bounds of one CDR: a session whose pricing needs more charging periods (tariff time
    # boundaries, status changes, ...), or whose CDR would be larger in bytes, is held for
    # staff (`too_large: ...`) instead of priced.
    max_periods: int = 1000
    max_cdr_bytes: int = 1_000_000


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: LogLevel = "info"
    format: LogFormat = "console"
    # Warnings and errors about one charger written a minute at most; 0 = no limit.
    charger_lines_per_minute: int = 60


@dataclass(frozen=True, slots=True)
class CaConfig:
    # The certificate authority for charging station certificates (`csms ca init`): its
    # files (key mode 0600) in `directory`, relative to the data directory; O of every
    # certificate it issues; CN of its own certificate; its key ("ec": P-256, "rsa": 3072
    # bits); how many days its own and the chargers' certificates are valid.
    directory: str = ".csms/ca"
    organisation: str = "CSMS"
    common_name: str = "CSMS Charging Station CA"
    key_type: CaKeyType = "ec"
    ca_validity_days: int = 3650
    certificate_validity_days: int = 365


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    # This process's name among the nodes sharing one PostgreSQL database (its row in the
    # `nodes` table, its LISTEN channel, the holder recorded for each charger it serves);
    # empty: hostname:pid:random, a new node at every start. A fixed id lets a restarted node
    # mark offline at once the chargers it held before.
    node_id: str = ""
    # Seconds between two heartbeats of this node's row; a node whose heartbeat is older
    # than dead_after seconds is dead: any live node marks its chargers offline.
    heartbeat_interval: float = 10.0
    dead_after: float = 30.0
    # Seconds a command routed to the node holding the charger may wait until that node
    # takes it up; then it fails as "not connected" (the node is dead or unreachable).
    pickup_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class SmartChargingConfig:
    # The load manager shares each site's current among its sessions (csms sites ...);
    # false: sites are kept but no charger is told anything.
    enabled: bool = True
    # Seconds between two looks at the sites, their sessions and meter readings (changes
    # made here are acted on at once; the look notices what other processes changed), and
    # the longest time between two full recomputations.
    poll_interval: float = 2.0
    interval: float = 60.0
    # The charging profiles' stack level (above staff's usual 0, so the share prevails).
    stack_level: int = 1
    # Lowest current of a running session per phase (IEC 61851: 6 A); below it, paused.
    min_current: float = 6.0
    # Seconds a session runs while one of equal priority waits paused, before they swap.
    rotate_after: float = 300.0
    # Seconds after a new share before the meter readings show what the EV takes of it.
    settle: float = 10.0
    # Attempts at a profile a charger refuses before it is left unmanaged (its rated
    # current reserved from the budget); and how long a charger may take to answer.
    attempts: int = 3
    command_timeout: float = 10.0
    # Seconds between two writes of the shares staff read (csms sites show, the API): the
    # chargers are told at once, the record follows (a busy site's shares change at every
    # start and stop).
    store_interval: float = 10.0


@dataclass(frozen=True, slots=True)
class StatisticsConfig:
    # Uptime (csms stats uptime, NEVI 23 CFR 680.116(b)): a charger offline for longer than
    # offline_grace seconds is out of order for the time beyond it (a short network drop is
    # not an outage: a charger keeps charging and authorising from its cache meanwhile).
    offline_grace: float = 900.0
    # The longest range one query may summarise, in days (a year of hours is 8,760 rows per
    # group: more is asked for by mistake).
    max_range_days: int = 400


@dataclass(frozen=True, slots=True)
class OpenAdrConfig:
    # The OpenADR 2.0b VEN (csms.openadr; needs `pip install 'csms[openadr]'`): it registers
    # as ven_name (ven_id: the id the VTN gave us, empty: the VTN assigns one) with the VTN
    # at vtn_url (e.g. https://vtn.example/OpenADR2/Simple/2.0b), polls it every
    # poll_interval seconds at most (faster when the VTN asks so), and turns load-control
    # events into site caps.
    enabled: bool = False
    vtn_url: str = ""
    ven_name: str = ""
    ven_id: str = ""
    poll_interval: float = 10.0
    # The site an event applies to when it names no resource or group we map (a single-site
    # VEN), and resource or group ids (or VEN ids) named by events -> site names.
    site: str = ""
    resource_sites: StringTable = ()
    # SIMPLE signal levels 1, 2, 3 as fractions of site_limit_kw (level 0: no cap); the
    # LOAD_CONTROL x-loadControlCapacity signal is a fraction of site_limit_kw too. 0 (unset):
    # events with those signals are opted out.
    simple_levels: tuple[float, ...] = (0.7, 0.5, 0.0)
    site_limit_kw: float = 0.0
    # TLS client certificate and key (PEM; also sign our messages), the CA the VTN's
    # certificate is checked against (empty: the system's), and the VTN certificate's
    # OpenADR fingerprint its message signatures are checked against (empty: not checked).
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    vtn_fingerprint: str = ""


# Where OCPP 1.6 chargers publish their meters' public keys (Eichrecht).
KEY_SOURCES = ("data_transfer", "config_key")


@dataclass(frozen=True, slots=True)
class EichrechtConfig:
    # Where OCPP 1.6 chargers publish their meter's public key, as a comma-separated list:
    # `data_transfer` (DataTransfer vendorId generalConfiguration, messageId
    # setMeterConfiguration, taken when it comes), `config_key` (the configuration key
    # `config_key`, read with GetConfiguration after every accepted boot), or `none`.
    # vendor_key_sources and vendor_config_keys override both per vendor (the
    # chargePointVendor of its BootNotification). OCPP 2.0.1 stations send the key with
    # their signed values; staff can set one for any charger (csms chargers set
    # --meter-public-key), which no charger's report replaces.
    key_sources: str = "data_transfer"
    vendor_key_sources: StringTable = ()
    config_key: str = "MeterPublicKey"
    vendor_config_keys: StringTable = ()
    # The OCPI CDR's signed_data.url shown to drivers to check the signed data (e.g. the
    # Transparenzsoftware's page, or a page of ours per CDR): `{cdr_id}` is replaced by the
    # CDR's id; empty: no url.
    url: str = ""

    def key_sources_of(self, vendor: str | None) -> frozenset[str]:
        """The 1.6 key sources trusted for a charger of this vendor."""
        text = dict(self.vendor_key_sources).get(vendor or "", self.key_sources)
        return frozenset(s.strip() for s in text.split(",") if s.strip() and s.strip() != "none")

    def config_key_of(self, vendor: str | None) -> str:
        return dict(self.vendor_config_keys).get(vendor or "", self.config_key)


@dataclass(frozen=True, slots=True)
class StripeConfig:
    # [payments.stripe]: the Stripe account's secret key (sk_...) and the signing secret of
    # the webhook endpoint {public_url}/pay/-/webhooks/stripe (whsec_...); also read from
    # CSMS_STRIPE_SECRET_KEY and CSMS_STRIPE_WEBHOOK_SECRET. api_base: Stripe's API unless
    # set (tests point it at a fake).
    secret_key: str = ""
    webhook_secret: str = ""
    api_base: str = ""


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    # Ad-hoc payment (a QR code on each EVSE opens {public_url}/pay/{evse_uid}): off unless
    # enabled; the payment service provider is "test" (runs inside the CSMS, for demos) or
    # "stripe" ([payments.stripe]).
    enabled: bool = False
    provider: PaymentProviderName = "test"
    # The URL drivers reach the pay pages at (the OCPI listener's); empty: ocpi.base_url.
    public_url: str = ""
    # The amount a driver may ask to hold, in the ad-hoc tariff's currency: offered,
    # least, most.
    default_cap: Decimal = Decimal(30)
    min_cap: Decimal = Decimal(5)
    max_cap: Decimal = Decimal(150)
    # Seconds an authorised payment may wait for its session to start before it is voided.
    start_timeout: float = 180.0
    # Kept free below the cap for the last step of a price component (an amount), and the
    # seconds of the current rate kept free too (the stop takes effect that much later).
    stop_margin: Decimal = Decimal("0.5")
    stop_lookahead: float = 60.0
    # First wait before a failed capture or void is tried again (seconds, doubling, at
    # most an hour).
    capture_retry: float = 60.0
    # Seconds a driver has to finish the provider's checkout; the payment then fails.
    checkout_timeout: float = 1800.0
    # Receipts by e-mail (when smtp_host is set and the driver gave an address).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = ""
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    stripe: StripeConfig = field(default_factory=StripeConfig)


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ocpp: OcppConfig = field(default_factory=OcppConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    ocpi: OcpiConfig = field(default_factory=OcpiConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    ca: CaConfig = field(default_factory=CaConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    smart_charging: SmartChargingConfig = field(default_factory=SmartChargingConfig)
    openadr: OpenAdrConfig = field(default_factory=OpenAdrConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    eichrecht: EichrechtConfig = field(default_factory=EichrechtConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)
    # Where the settings came from (not keys of the file): the data directory the paths
    # above were resolved against ("" = not resolved: relative to the working directory)
    # and the configuration file read ("" = none, built-in defaults).
    data_dir: str = ""
    config_file: str = ""


_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "ocpp": OcppConfig,
    "api": ApiConfig,
    "ocpi": OcpiConfig,
    "billing": BillingConfig,
    "log": LogConfig,
    "ca": CaConfig,
    "cluster": ClusterConfig,
    "smart_charging": SmartChargingConfig,
    "openadr": OpenAdrConfig,
    "statistics": StatisticsConfig,
    "eichrecht": EichrechtConfig,
    "payments": PaymentsConfig,
}
# Tables inside a section (`[payments.stripe]`), each read like a section of its own.
_SUBSECTIONS: dict[str, dict[str, type[Any]]] = {"payments": {"stripe": StripeConfig}}


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    data_dir: str | Path | None = None,
    warn: typing.Callable[[str], None] | None = None,
) -> Config:
    """Read the TOML file (if any), apply CSMS_<SECTION>_<KEY> overrides and resolve the
    relative paths (SQLite database, API token file) against the data directory.

    The data directory is `data_dir`, else $CSMS_DATA_DIR, else the working directory.
    `path=None` means `csms.toml` in the working directory when it exists, else
    `csms.toml` in the data directory when that exists, else the built-in defaults. An
    explicitly named file that does not exist is an error. `warn` is told, one line each,
    about environment variables that are no setting and about a data directory's
    csms.toml left unread.
    """
    env = os.environ if env is None else env
    base = data_directory(data_dir, env)
    raw: dict[str, Any] = {}
    if path is None:
        path = _default_config_file(base, warn)
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {_absolute(p)} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {p} is a directory") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from exc
    if warn is not None:
        for line in environment_warnings(env):
            warn(line)
    config = build_config(raw, env)
    return with_data_dir(config, base, None if path is None else _absolute(Path(path)))


def data_directory(given: str | Path | None, env: Mapping[str, str]) -> Path:
    """The data directory as an absolute path: `given`, else $CSMS_DATA_DIR, else the
    working directory (it need not exist)."""
    chosen = given if given not in (None, "") else env.get(DATA_DIR_VARIABLE) or "."
    return _absolute(Path(chosen))


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def _default_config_file(data_dir: Path, warn: typing.Callable[[str], None] | None) -> Path | None:
    here = Path(DEFAULT_CONFIG_FILE)
    there = data_dir / DEFAULT_CONFIG_FILE
    if here.is_file():
        if warn is not None and there.is_file() and not _same_file(here, there):
            warn(
                f"reading {_absolute(here)}, not {there} of the data directory "
                "(name the file with --config)"
            )
        return here
    return there if there.is_file() else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


_SQLITE_URL = re.compile(r"^(sqlite(?:\+[A-Za-z0-9_]+)?):///([^?]*)(\?.*)?$")


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL (relative as written); None for another database,
    an in-memory one or a `file:` URI."""
    match = _SQLITE_URL.match(url)
    if match is None:
        return None
    path = match.group(2)
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path)


def database_location(url: str) -> str:
    """The database, for people: an SQLite database's file, else its URL without the
    password."""
    file = sqlite_file(url)
    if file is not None:
        return str(file)
    from sqlalchemy.engine import make_url  # here: `csms remote` does not load SQLAlchemy

    return make_url(url).render_as_string(hide_password=True)


def with_data_dir(config: Config, data_dir: Path, config_file: Path | None = None) -> Config:
    """`config` with a relative SQLite path, API token file and CA directory made absolute
    under `data_dir` (an absolute path), and with where it came from recorded."""
    database = config.database
    match = _SQLITE_URL.match(database.url)
    file = sqlite_file(database.url)
    if match is not None and file is not None:
        absolute = _absolute(data_dir / file.expanduser())
        url = f"{match.group(1)}:///{absolute}{match.group(3) or ''}"
        database = dataclasses.replace(database, url=url)
    api = dataclasses.replace(
        config.api, token_file=str(_absolute(data_dir / Path(config.api.token_file).expanduser()))
    )
    ca = dataclasses.replace(
        config.ca, directory=str(_absolute(data_dir / Path(config.ca.directory).expanduser()))
    )
    return dataclasses.replace(
        config,
        database=database,
        api=_tls_files(api, data_dir),
        ocpp=_tls_files(config.ocpp, data_dir),
        ocpi=_tls_files(config.ocpi, data_dir),
        ca=ca,
        openadr=_openadr_files(config.openadr, data_dir),
        data_dir=str(data_dir),
        config_file="" if config_file is None else str(config_file),
    )


_TLS_FILES = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
_Listener = typing.TypeVar("_Listener", OcppConfig, ApiConfig, OcpiConfig)


def _tls_files(section: _Listener, data_dir: Path) -> _Listener:
    """`section` with its TLS files (those set) made absolute under `data_dir`."""
    files: dict[str, Any] = {
        key: str(_absolute(data_dir / Path(getattr(section, key)).expanduser()))
        for key in _TLS_FILES
        if getattr(section, key, "")
    }
    return dataclasses.replace(section, **files)


def _openadr_files(section: OpenAdrConfig, data_dir: Path) -> OpenAdrConfig:
    """`section` with its certificate, key and CA files (those set) made absolute under
    `data_dir`."""
    files: dict[str, Any] = {
        key: str(_absolute(data_dir / Path(getattr(section, key)).expanduser()))
        for key in ("cert_file", "key_file", "ca_file")
        if getattr(section, key)
    }
    return dataclasses.replace(section, **files)


def environment_variables() -> list[str]:
    """Every CSMS_<SECTION>_<KEY> variable that overrides a configuration key."""
    names = []
    for section, cls in _SECTIONS.items():
        subsections = _SUBSECTIONS.get(section, {})
        names += [
            f"CSMS_{section.upper()}_{f.name.upper()}"
            for f in dataclasses.fields(cls)
            if f.name not in subsections
        ]
        for sub, sub_cls in subsections.items():
            prefix = f"CSMS_{section.upper()}_{sub.upper()}"
            names += [f"{prefix}_{f.name.upper()}" for f in dataclasses.fields(sub_cls)]
    return names


def environment_warnings(env: Mapping[str, str]) -> list[str]:
    """One line for each CSMS_* variable that is no setting (and so would be ignored), with
    the closest setting when there is one."""
    known = environment_variables()
    lines = []
    for name in sorted(env):
        if (
            not name.startswith("CSMS_")
            or name in known
            or name in OTHER_VARIABLES
            or name.startswith(OTHER_PREFIXES)
        ):
            continue
        line = f"environment variable {name} is not a csms setting; ignored"
        close = _closest(name, [*known, *OTHER_VARIABLES])
        lines.append(line + (f" (did you mean {close}?)" if close else ""))
    return lines


def _closest(word: str, candidates: typing.Iterable[str]) -> str | None:
    """The candidate a typo of `word` most likely meant, if any is close enough."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return close[0] if close else None


def build_config(raw: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            close = _closest(name, _SECTIONS)
            hint = f" (did you mean [{close}]?)" if close else ""
            raise ConfigError(f"unknown config section [{name}]{hint}")
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table")
    for name, cls in _SECTIONS.items():
        sections[name] = _section(name, cls, dict(raw.get(name, {})), env)
    return Config(**sections)


def _section(name: str, cls: type[Any], values: dict[str, Any], env: Mapping[str, str]) -> Any:
    """One section (or a table inside one, `name` dotted) from its TOML table and the
    environment."""
    subsections = _SUBSECTIONS.get(name, {})
    hints = typing.get_type_hints(cls)
    known = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in subsections}
    inner: dict[str, Any] = {}
    for sub, sub_cls in subsections.items():
        table = values.pop(sub, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}.{sub}] must be a table")
        inner[sub] = _section(f"{name}.{sub}", sub_cls, dict(table), env)
    for key in values:
        if key not in known:
            close = _closest(key, known)
            hint = f" (did you mean {name}.{close}?)" if close else ""
            raise ConfigError(f"unknown config key {name}.{key}{hint}")
    prefix = "CSMS_" + name.upper().replace(".", "_")
    for key in known:
        env_key = f"{prefix}_{key.upper()}"
        if env_key in env:
            values[key] = _from_env(f"{name}.{key}", env[env_key], known[key])
    if cls is StripeConfig:
        for env_key, key in STRIPE_VARIABLES.items():
            if env.get(env_key) and not values.get(key):
                values[key] = env[env_key]
    kwargs = {key: _check(f"{name}.{key}", val, known[key]) for key, val in values.items()}
    section = cls(**kwargs, **inner)
    _validate_section(name, section)
    return section


def _check(key: str, value: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _check(key, value, options[0])
    if origin is tuple:
        return _check_tuple(key, value, tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"{key} must be one of {choices}, not {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, not {value!r}")
        return value
    if tp is float:
        # TOML has nan and inf literals: neither is a duration, a delay or a limit.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, not {value!r}")
        return float(value)
    if tp is Decimal:
        # An amount of money: written as a TOML number or a string ("0.50"), kept exact.
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key} must be an amount, not {value!r}")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{key} must be an amount, not {value!r}") from None
        if not amount.is_finite():
            raise ConfigError(f"{key} must be a finite amount, not {value!r}")
        return amount
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
        return value
    raise ConfigError(f"{key} has an unsupported type")  # pragma: no cover


def _check_tuple(key: str, value: Any, tp: Any) -> Any:
    """A TOML array of numbers (`tuple[float, ...]`) or a table of strings (StringTable)."""
    if tp == StringTable:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table of strings, not {value!r}")
        for name, item in value.items():
            if not isinstance(item, str):
                raise ConfigError(f"{key}.{name} must be a string, not {item!r}")
        return tuple(sorted(value.items()))
    if tp == tuple[float, ...]:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be an array of numbers, not {value!r}")
        return tuple(_check(f"{key}[{i}]", item, float) for i, item in enumerate(value))
    raise ConfigError(f"{key} has an unsupported type")  # pragma: no cover


def _from_env(key: str, text: str, tp: Any) -> Any:
    if tp == StringTable:
        pairs: dict[str, str] = {}
        for item in text.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ConfigError(
                    f"{key} (from environment) must be `key=value` pairs separated by commas, "
                    f"not {text!r}"
                )
            pairs[name.strip()] = value.strip()
        return pairs
    if tp == tuple[float, ...]:
        return [_from_env(key, item, float) for item in text.split(",") if item.strip()]
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} (from environment) must be true or false, not {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"{key} (from environment) must be an integer, not {text!r}"
            ) from None
    if tp is Decimal:
        return text.strip()
    if tp is float:
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{key} (from environment) must be a number, not {text!r}") from None
        # float() also reads nan, inf and infinity (any case).
        if not math.isfinite(number):
            raise ConfigError(f"{key} (from environment) must be a finite number, not {text!r}")
        return number
    return text


def _validate_section(name: str, section: Any) -> None:
    if isinstance(section, EichrechtConfig):
        _validate_eichrecht(section)
    if isinstance(section, OcppConfig | ApiConfig | OcpiConfig):
        for key in ("port", "tls_port"):
            port = getattr(section, key)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name}.{key} must be between 0 and 65535, not {port}")
        _validate_tls(name, section)
    if isinstance(section, OcppConfig):
        if not section.path.startswith("/"):
            raise ConfigError(f"ocpp.path must start with '/', not {section.path!r}")
        for key in ("heartbeat_interval", "ping_interval", "ping_timeout", "idle_timeout"):
            if getattr(section, key) < 0:
                raise ConfigError(f"ocpp.{key} must not be negative")
        if section.heartbeat_interval == 0:
            raise ConfigError("ocpp.heartbeat_interval must be positive")
        if section.call_timeout <= 0:
            raise ConfigError("ocpp.call_timeout must be positive")
        if section.max_message_size < 1024:
            raise ConfigError("ocpp.max_message_size must be at least 1024")
        time_window(section)
        for key in (
            "message_rate",
            "kept_messages_per_minute",
            "kept_bytes_per_minute",
            "auto_register_per_hour",
            "auto_register_limit",
            "auth_free_failures",
            "max_connections_per_address",
        ):
            if getattr(section, key) < 0:
                raise ConfigError(f"ocpp.{key} must not be negative")
        if not section.auth_backoff_cap_seconds > 0:
            raise ConfigError("ocpp.auth_backoff_cap_seconds must be positive")
        if section.message_rate and section.message_burst < 1:
            raise ConfigError("ocpp.message_burst must be at least 1")
        if not section.kept_burst_minutes > 0:
            raise ConfigError("ocpp.kept_burst_minutes must be positive")
        if not section.handshake_timeout > 0:
            raise ConfigError("ocpp.handshake_timeout must be positive")
    if isinstance(section, ApiConfig | OcpiConfig):
        _validate_listener(name, section)
    if isinstance(section, OcpiConfig):
        _validate_ocpi(section)
    if isinstance(section, LogConfig) and section.charger_lines_per_minute < 0:
        raise ConfigError("log.charger_lines_per_minute must not be negative")
    if isinstance(section, BillingConfig):
        if section.max_attempts < 1:
            raise ConfigError("billing.max_attempts must be at least 1")
        if not section.retry_delay > 0:
            raise ConfigError("billing.retry_delay must be positive")
        if not section.retry_max_delay >= section.retry_delay:
            raise ConfigError("billing.retry_max_delay must not be below billing.retry_delay")
        if section.max_periods < 1:
            raise ConfigError("billing.max_periods must be at least 1")
        if section.max_cdr_bytes < 10_000:
            raise ConfigError("billing.max_cdr_bytes must be at least 10000")
    if isinstance(section, CaConfig):
        if not section.organisation.strip():
            raise ConfigError("ca.organisation must not be empty")
        if not section.common_name.strip():
            raise ConfigError("ca.common_name must not be empty")
        if not 1 <= section.ca_validity_days <= 36500:
            raise ConfigError("ca.ca_validity_days must be between 1 and 36500")
        if not 1 <= section.certificate_validity_days <= 36500:
            raise ConfigError("ca.certificate_validity_days must be between 1 and 36500")
    if isinstance(section, ApiConfig) and not 0 < section.events_keepalive <= 3600:
        raise ConfigError("api.events_keepalive must be more than 0 and at most 3600 seconds")
    if isinstance(section, ApiConfig) and section.map_tiles:
        tiles = section.map_tiles
        if not tiles.startswith(("https://", "http://")) or not all(
            part in tiles for part in ("{z}", "{x}", "{y}")
        ):
            raise ConfigError(
                "api.map_tiles must be an http(s) URL with {z}, {x} and {y}, not " + repr(tiles)
            )
    if isinstance(section, ClusterConfig):
        _validate_cluster(section)
    if isinstance(section, SmartChargingConfig):
        _validate_smart_charging(section)
    if isinstance(section, OpenAdrConfig):
        _validate_openadr(section)
    if isinstance(section, StatisticsConfig):
        if not 0 <= section.offline_grace <= 86400:
            raise ConfigError("statistics.offline_grace must be between 0 and 86400 seconds")
        if not 1 <= section.max_range_days <= 3660:
            raise ConfigError("statistics.max_range_days must be between 1 and 3660")
    if isinstance(section, PaymentsConfig):
        _validate_payments(section)
    if (
        isinstance(section, StripeConfig)
        and section.api_base
        and not section.api_base.startswith(("http://", "https://"))
    ):
        raise ConfigError(
            f"payments.stripe.api_base must be an http(s) URL, not {section.api_base!r}"
        )
    if isinstance(section, DatabaseConfig):
        if "://" not in section.url:
            raise ConfigError(f"database.url is not a database URL: {section.url!r}")
        if section.max_batch < 1:
            raise ConfigError("database.max_batch must be at least 1")
        if section.commit_delay_ms < 0:
            raise ConfigError("database.commit_delay_ms must not be negative")


def _validate_payments(section: PaymentsConfig) -> None:
    if section.public_url and not section.public_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"payments.public_url must be an http(s) URL or empty, not {section.public_url!r}"
        )
    if not 0 < section.min_cap <= section.default_cap <= section.max_cap:
        raise ConfigError(
            "payments caps must be positive with min_cap <= default_cap <= max_cap, not "
            f"{section.min_cap} <= {section.default_cap} <= {section.max_cap}"
        )
    if section.stop_margin < 0:
        raise ConfigError("payments.stop_margin must not be negative")
    if not section.stop_margin < section.min_cap:
        raise ConfigError("payments.stop_margin must be below payments.min_cap")
    for key in ("start_timeout", "capture_retry", "checkout_timeout"):
        if not getattr(section, key) > 0:
            raise ConfigError(f"payments.{key} must be positive")
    if section.stop_lookahead < 0:
        raise ConfigError("payments.stop_lookahead must not be negative")
    if not 0 < section.smtp_port <= 65535:
        raise ConfigError(
            f"payments.smtp_port must be between 1 and 65535, not {section.smtp_port}"
        )
    if section.smtp_host and not section.smtp_from:
        raise ConfigError("payments.smtp_host is set but payments.smtp_from is not")


def _validate_eichrecht(section: EichrechtConfig) -> None:
    given = [("eichrecht.key_sources", section.key_sources)] + [
        (f"eichrecht.vendor_key_sources.{vendor}", text)
        for vendor, text in section.vendor_key_sources
    ]
    for key, text in given:
        names = [s.strip() for s in text.split(",") if s.strip()]
        for source in names:
            if source not in (*KEY_SOURCES, "none"):
                raise ConfigError(
                    f"{key} must list data_transfer, config_key or none, not {source!r}"
                )
    for key, value in [("eichrecht.config_key", section.config_key)] + [
        (f"eichrecht.vendor_config_keys.{v}", t) for v, t in section.vendor_config_keys
    ]:
        if not value.strip() or len(value) > 50:
            raise ConfigError(f"{key} must be a configuration key name (1 to 50 characters)")
    if section.url and not section.url.startswith(("http://", "https://")):
        raise ConfigError(f"eichrecht.url must be an http(s) URL, not {section.url!r}")


# A century: beyond it no clock is plausible, and now + ahead must stay a datetime.
_MAX_AHEAD_S = 100 * 366 * 86400.0


def _validate_cluster(section: ClusterConfig) -> None:
    if len(section.node_id) > 200 or not section.node_id.isprintable():
        raise ConfigError("cluster.node_id must be printable and at most 200 characters")
    for key in ("heartbeat_interval", "dead_after", "pickup_timeout"):
        if not getattr(section, key) > 0:
            raise ConfigError(f"cluster.{key} must be positive")
    if not section.dead_after > section.heartbeat_interval:
        raise ConfigError("cluster.dead_after must be longer than cluster.heartbeat_interval")


def _validate_smart_charging(section: SmartChargingConfig) -> None:
    for key in ("poll_interval", "interval", "rotate_after", "command_timeout", "store_interval"):
        if not getattr(section, key) > 0:
            raise ConfigError(f"smart_charging.{key} must be positive")
    if section.settle < 0:
        raise ConfigError("smart_charging.settle must not be negative")
    if not 0 <= section.stack_level <= 100:
        raise ConfigError("smart_charging.stack_level must be between 0 and 100")
    if not 0 < section.min_current <= 32:
        raise ConfigError("smart_charging.min_current must be above 0 and at most 32 A")
    if section.attempts < 1:
        raise ConfigError("smart_charging.attempts must be at least 1")


# The OpenADR certificate fingerprint: the last 10 bytes of its SHA-256, hex, colon-separated.
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){9}$")


def _validate_openadr(section: OpenAdrConfig) -> None:
    if not 0 < section.poll_interval <= 86400:
        raise ConfigError("openadr.poll_interval must be above 0 and at most 86400 seconds")
    if section.site_limit_kw < 0:
        raise ConfigError("openadr.site_limit_kw must not be negative")
    levels = section.simple_levels
    if len(levels) != 3:
        raise ConfigError(
            "openadr.simple_levels must hold 3 fractions (SIMPLE levels 1, 2, 3), "
            f"not {len(levels)}"
        )
    if not all(0 <= level <= 1 for level in levels):
        raise ConfigError("openadr.simple_levels must be fractions between 0 and 1")
    if not levels[0] >= levels[1] >= levels[2]:
        raise ConfigError("openadr.simple_levels must not rise from level 1 to level 3")
    for name, site in section.resource_sites:
        if not site.strip():
            raise ConfigError(f"openadr.resource_sites.{name} must name a site")
    if bool(section.cert_file) != bool(section.key_file):
        given, missing = (
            ("cert_file", "key_file") if section.cert_file else ("key_file", "cert_file")
        )
        raise ConfigError(f"openadr.{given} is set but openadr.{missing} is not: TLS needs both")
    if section.vtn_fingerprint and not _FINGERPRINT.match(section.vtn_fingerprint):
        raise ConfigError(
            "openadr.vtn_fingerprint must be 10 hex bytes separated by colons "
            f"(AB:CD:...), not {section.vtn_fingerprint!r}"
        )
    if section.vtn_url and not section.vtn_url.startswith(("http://", "https://")):
        raise ConfigError(f"openadr.vtn_url must be an http(s) URL, not {section.vtn_url!r}")
    if not section.enabled:
        return
    if not section.vtn_url:
        raise ConfigError("openadr.enabled = true needs openadr.vtn_url")
    if not section.ven_name.strip():
        raise ConfigError("openadr.enabled = true needs openadr.ven_name")
    if not section.site.strip() and not section.resource_sites:
        raise ConfigError(
            "openadr.enabled = true needs openadr.site or openadr.resource_sites "
            "(which site an event caps)"
        )
    if importlib.util.find_spec("openleadr") is None:
        raise ConfigError(
            "openadr.enabled = true needs the openleadr package: pip install 'csms[openadr]'"
        )


def time_window(section: OcppConfig) -> TimeWindow:
    """The window of plausible charger timestamps that ocpp.earliest_timestamp and
    ocpp.max_clock_ahead describe."""
    try:
        earliest = parse_timestamp(section.earliest_timestamp)
    except InvalidTimestamp:
        raise ConfigError(
            "ocpp.earliest_timestamp must be an RFC 3339 date-time or a date, "
            f"not {section.earliest_timestamp!r}"
        ) from None
    if not 0 <= section.max_clock_ahead <= _MAX_AHEAD_S:
        raise ConfigError("ocpp.max_clock_ahead must be between 0 and 3162240000 (a century)")
    return TimeWindow(earliest, timedelta(seconds=section.max_clock_ahead))


def tls_enabled(section: OcppConfig | ApiConfig | OcpiConfig) -> bool:
    """Does this listener serve TLS (wss:// or https://) on its tls_port?"""
    return bool(section.tls_cert_file and section.tls_key_file)


def _validate_tls(name: str, section: OcppConfig | ApiConfig | OcpiConfig) -> None:
    cert, key = section.tls_cert_file, section.tls_key_file
    if bool(cert) != bool(key):
        given, missing = (
            ("tls_cert_file", "tls_key_file") if cert else ("tls_key_file", "tls_cert_file")
        )
        raise ConfigError(f"{name}.{given} is set but {name}.{missing} is not: TLS needs both")
    if not tls_enabled(section):
        if isinstance(section, OcppConfig):
            if section.tls_client_ca_file:
                raise ConfigError(
                    "ocpp.tls_client_ca_file is set but TLS is not: set ocpp.tls_cert_file "
                    "and ocpp.tls_key_file too"
                )
            if not section.plain:
                raise ConfigError(
                    "ocpp.plain = false without ocpp.tls_cert_file and ocpp.tls_key_file "
                    "would leave chargers no listener"
                )
        return
    if (
        section.port
        and section.port == section.tls_port
        and (not isinstance(section, OcppConfig) or section.plain)
    ):
        raise ConfigError(
            f"{name}.tls_port and {name}.port are both {section.port}: give TLS its own port"
        )


def _validate_listener(name: str, section: ApiConfig | OcpiConfig) -> None:
    for key in ("header_timeout", "body_timeout", "idle_timeout"):
        if not getattr(section, key) > 0:
            raise ConfigError(f"{name}.{key} must be positive")
    if section.max_connections < 1:
        raise ConfigError(f"{name}.max_connections must be at least 1")
    if section.max_body_size < 1024:
        raise ConfigError(f"{name}.max_body_size must be at least 1024")


_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PARTY = re.compile(r"^[A-Z0-9]{3}$")
_REQUIRED = re.compile(r"^[a-z][a-z0-9_-]*(:(SENDER|RECEIVER))?$")


def required_endpoints(text: str) -> tuple[tuple[str, str | None], ...]:
    """`ocpi.required_endpoints` as (module identifier, interface role or None) pairs."""
    out: list[tuple[str, str | None]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not _REQUIRED.match(item):
            raise ConfigError(
                f"ocpi.required_endpoints: {item!r} is not `module` or `module:SENDER|RECEIVER`"
            )
        module, _, role = item.partition(":")
        out.append((module, role or None))
    return tuple(out)


def _validate_ocpi(section: OcpiConfig) -> None:
    if section.base_url and not section.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"ocpi.base_url must be an http(s) URL or empty, not {section.base_url!r}"
        )
    if not _COUNTRY.match(section.country_code):
        raise ConfigError(
            f"ocpi.country_code must be 2 upper-case letters (ISO 3166-1 alpha-2), "
            f"not {section.country_code!r}"
        )
    if not _PARTY.match(section.party_id):
        raise ConfigError(
            f"ocpi.party_id must be 3 upper-case letters or digits, not {section.party_id!r}"
        )
    if not 0 < len(section.business_name) <= 100:
        raise ConfigError("ocpi.business_name must be 1 to 100 characters")
    if section.business_website and not section.business_website.startswith(
        ("http://", "https://")
    ):
        raise ConfigError("ocpi.business_website must be an http(s) URL or empty")
    if section.page_limit < 1:
        raise ConfigError("ocpi.page_limit must be at least 1")
    if section.request_timeout <= 0:
        raise ConfigError("ocpi.request_timeout must be positive")
    if section.push_interval <= 0:
        raise ConfigError("ocpi.push_interval must be positive")
    if section.push_alert_after <= 0:
        raise ConfigError("ocpi.push_alert_after must be positive")
    if section.location_push_rate < 0:
        raise ConfigError("ocpi.location_push_rate must not be negative (0: no pace)")
    if section.authorize_timeout <= 0:
        raise ConfigError("ocpi.authorize_timeout must be positive")
    if section.offline_grace < 0:
        raise ConfigError("ocpi.offline_grace must not be negative")
    if section.session_update_interval <= 0:
        raise ConfigError("ocpi.session_update_interval must be positive")
    required_endpoints(section.required_endpoints)
