"""Composition root: builds the database, services and servers from a Config and runs them.

The only module that wires components together; nothing else creates engines or servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from csms.api.live import LiveContext
from csms.api.reads import ReadContext
from csms.api.server import ApiContext, build_api
from csms.api.token import TokenError, resolve_token
from csms.config import (
    COMPONENTS,
    ApiConfig,
    Config,
    OcpiConfig,
    database_location,
    sqlite_file,
    time_window,
)
from csms.core.certificates import CaSettings
from csms.core.clock import Clock, utc_now
from csms.core.failures import FailureLimiter, FailurePolicy
from csms.core.parties import Party
from csms.core.quotas import KeptLimits
from csms.core.versions import Limits, OcppVersion
from csms.gateway.listeners import HttpListener, ListenerLimits
from csms.gateway.server import OcppServer
from csms.gateway.tls import https_port, ocpp_tls, reload_all
from csms.gcpolicy import gc_policy
from csms.handlers.session import Adapter
from csms.handlers.v16 import V16Adapter
from csms.handlers.v201 import V201Adapter
from csms.metrics import Metrics
from csms.openadr import OpenAdrVen
from csms.payweb import build_pay_app
from csms.services.billing import BillingService, Identity, billing_limits, billing_retries
from csms.services.charger_certificates import ChargerCertificates
from csms.services.charger_input import ChargingSettings
from csms.services.charging import Charging
from csms.services.commands import CommandService
from csms.services.load_management import LoadManager, metric_families
from csms.services.meter_keys import MeterKeys
from csms.services.nodes import Cluster, ClusterSettings
from csms.services.overview import LiveFeed, OverviewService
from csms.services.overview import metric_families as live_metric_families
from csms.services.partners import PartnerService
from csms.services.payment_providers import providers as payment_providers
from csms.services.payments import PaymentService, payment_settings
from csms.services.pki import CertificateAuthority
from csms.services.quotas import QuotaSettings
from csms.services.reads import ReadService
from csms.services.sites import SiteService
from csms.services.statistics import StatisticsService
from csms.services.statistics_rollup import StatisticsRollup
from csms.services.users import UserService
from csms.signals import reload_on_hangup, stop_on_signals
from csms.storage import charge_points as cp_repo
from csms.storage.database import Database, DatabaseClosed, DatabaseWriterFailed, WriteTx
from csms.storage.leadership import AdvisoryLeader, LeaderLockHeld, SqliteLeaderLock
from csms.storage.migrate import upgrade
from csms.storage.opening import describe_startup_error, open_database
from csms.workers import Singletons, TaskSet
from ocpi_cpo.app import build_ocpi_app
from ocpi_cpo.context import AuthLimits, OcpiSettings, public_base_url
from ocpi_cpo.roaming import RoamingAuthorizer
from ocpi_cpo.routes.locations import PUBLISHER as LOCATION_PUBLISHER
from ocpi_cpo.sessions_publisher import SESSION_PUBLISHER

log = structlog.get_logger("csms.app")

# The groups of singleton work (csms.workers.Singletons), each led by one process per
# database: what a process serving chargers does for all of them (CDRs, reservation
# expiry), and what the OCPI bridge does for all partners (publishers, pushes, results).
CHARGING = "charging"
OCPI = "ocpi"
# Which component runs each group's work, and that work in words (for refusals).
SINGLETON_COMPONENT = {CHARGING: "ocpp", OCPI: "ocpi"}
SINGLETON_WORK = {
    CHARGING: "the CDR and reservation-expiry workers (csms serve with ocpp)",
    OCPI: "the OCPI publishers and push worker (csms serve with ocpi)",
}


def singleton_groups(components: Collection[str]) -> list[str]:
    """The groups of singleton work a process running `components` leads or waits for."""
    return [g for g, part in SINGLETON_COMPONENT.items() if part in components]


def charging_settings(config: Config) -> ChargingSettings:
    return ChargingSettings(
        registration=config.ocpp.registration,
        heartbeat_interval=config.ocpp.heartbeat_interval,
        allow_unknown_tags=config.ocpp.allow_unknown_tags,
        window=time_window(config.ocpp),
        quotas=QuotaSettings(
            kept=KeptLimits(
                messages_per_minute=config.ocpp.kept_messages_per_minute,
                bytes_per_minute=config.ocpp.kept_bytes_per_minute,
                burst_minutes=config.ocpp.kept_burst_minutes,
            ),
            auto_register_per_hour=config.ocpp.auto_register_per_hour,
            auto_register_limit=config.ocpp.auto_register_limit,
        ),
    )


def default_node_id() -> str:
    """A node id for a process that was given none: where it runs, and random, so that two
    apps in one process (tests, embedding) are two nodes too."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def cluster_settings(config: Config) -> ClusterSettings:
    cfg = config.cluster
    return ClusterSettings(
        heartbeat_interval=cfg.heartbeat_interval,
        dead_after=cfg.dead_after,
        pickup_timeout=cfg.pickup_timeout,
    )


def certificate_authority(
    config: Config, db: Database | None = None, clock: Clock = utc_now
) -> CertificateAuthority:
    """The CA of the `[ca]` section (its files need not exist: SignCertificate is then
    Rejected, and `csms ca init` creates them while the server runs)."""
    ca = config.ca
    settings = CaSettings(
        organisation=ca.organisation,
        common_name=ca.common_name,
        key_type=ca.key_type,
        ca_validity_days=ca.ca_validity_days,
        certificate_validity_days=ca.certificate_validity_days,
    )
    return CertificateAuthority(ca.directory, settings, clock, db)


def listener_limits(cfg: ApiConfig | OcpiConfig) -> ListenerLimits:
    return ListenerLimits(
        header_timeout=cfg.header_timeout,
        idle_timeout=cfg.idle_timeout,
        max_connections=cfg.max_connections,
    )


def _bounds(cfg: ApiConfig | OcpiConfig) -> dict[str, float]:
    """A listener's bounds, for its `*_listening` log line."""
    return {
        "header_timeout_s": cfg.header_timeout,
        "body_timeout_s": cfg.body_timeout,
        "idle_timeout_s": cfg.idle_timeout,
        "max_connections": cfg.max_connections,
    }


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise this process's soft limit of open files to its hard limit (every connection is
    one); (before, after) when it changed, None when it could not or need not."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit cannot be the soft one (the kernel caps it): ask for plenty.
    if soft == resource.RLIM_INFINITY:
        return None
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft >= target:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open_files_limit_unchanged", soft=soft, hard=hard, error=str(exc))
        return None
    return soft, target


class StartupError(Exception):
    """The system cannot start; the message says why in one line."""


class ServerFailed(Exception):
    """The running system met a failure it cannot serve through (its database writer
    died) and stopped; the message says why in one line."""


class CsmsApp:
    """The running system: OCPP server over the charging service and the database, the
    operator API and the OCPI bridge (`components` says which of them run).

    Everything is built here, each part given what it depends on. `start()` starts the
    parts in order and records how to stop each in one exit stack; `stop()` unwinds it:
    workers, OCPI, API, OCPP, the roaming client, then the database (checkpointed and
    closed) last."""

    def __init__(
        self, config: Config, clock: Clock = utc_now, components: Collection[str] = COMPONENTS
    ) -> None:
        unknown = set(components) - set(COMPONENTS)
        if unknown or not components:
            raise ValueError(f"components must be some of {COMPONENTS}, not {sorted(unknown)}")
        self.config = config
        self.clock = clock
        self.components = frozenset(components)
        self.db = open_database(config)
        # This process among the nodes that may share the database (PostgreSQL only: with
        # SQLite one process is the only node).
        self.node_id = config.cluster.node_id or default_node_id()
        self.cluster = (
            None
            if self.db.is_sqlite
            else Cluster(
                self.db,
                self.node_id,
                ",".join(c for c in COMPONENTS if c in self.components),
                clock,
                cluster_settings(config),
                config.database.url,
            )
        )
        self.metrics = Metrics()
        # Other parties' tokens at our chargers: wherever chargers are served, whether or not
        # this process serves OCPI too.
        self.roaming = RoamingAuthorizer(
            self.db,
            Party(config.ocpi.country_code, config.ocpi.party_id),
            clock,
            timeout=config.ocpi.authorize_timeout,
        )
        self.charging = Charging.build(
            self.db,
            clock,
            charging_settings(config),
            self.metrics,
            roaming=self.roaming,
            node_id=self.node_id,
            shared=self.cluster is not None,
        )
        v201 = V201Adapter(
            self.charging.stations,
            self.charging.authorization,
            self.charging.transactions,
            base_report=config.ocpp.base_report,
            call_timeout=config.ocpp.call_timeout,
        )
        v16 = V16Adapter(
            self.charging.stations, self.charging.authorization, self.charging.transactions
        )
        # The public keys of the chargers' meters (Eichrecht), as chargers report them.
        self.meter_keys = MeterKeys(self.db, clock, config.eichrecht)
        self.charging.transactions.meter_keys = v16.meter_keys = self.meter_keys
        v16.call_timeout = config.ocpp.call_timeout
        adapters: Sequence[Adapter] = (
            [v201, v16]
            if OcppVersion(config.ocpp.preferred_version) is OcppVersion.V201
            else [v16, v201]
        )
        # What each version's messages can carry, as its adapter states it.
        self.limits: Limits = {v16.version: v16.limits, v201.version: v201.limits}
        self.ocpp = OcppServer(
            config.ocpp,
            self.charging.stations,
            adapters,
            self.metrics,
            tls=ocpp_tls(config) if "ocpp" in self.components else None,
            organisation=config.ca.organisation,
        )
        self.commands = CommandService(
            self.db,
            clock,
            self.charging,
            self.ocpp.session,
            self.limits,
            default_timeout=config.ocpp.call_timeout,
            metrics=self.metrics,
            router=self.cluster,
        )
        self.ocpp.node_id = self.node_id
        if self.cluster is not None:
            self._wire_cluster(self.cluster)
        # Chargers' SignCertificate requests, signed by our CA (`csms ca init`).
        self.certificates = ChargerCertificates(
            certificate_authority(config, self.db, clock), self.commands
        )
        v16.certificates = v201.certificates = self.certificates
        self.billing = BillingService(
            self.db,
            clock,
            Identity(config.ocpi.country_code, config.ocpi.party_id),
            billing_retries(config),
            billing_limits(config),
            on_held=[self.metrics.billing_held],
            on_failed=[self.metrics.billing_failed],
            on_signature_held=[self.metrics.billing_signature_held],
            signed_data_url=config.eichrecht.url,
        )
        # Ad-hoc payment ([payments]): its worker is hosted with the charging singletons,
        # its pages (csms.payweb) are mounted on the OCPI listener, whose base URL is the
        # pay pages' public URL unless payments.public_url names another.
        self.payments = PaymentService(
            self.db,
            clock,
            payment_settings(config.payments, config.ocpi.offline_grace),
            payment_providers(
                config.payments, db=self.db, clock=clock, base_url=self._pay_base_url
            ),
            self.commands,
            self.charging,
            self.billing,
            Identity(config.ocpi.country_code, config.ocpi.party_id),
            self.metrics,
        )
        self.payments.public_url = config.payments.public_url or config.ocpi.base_url
        for hooks in (
            self.charging.transactions.on_started,
            self.charging.transactions.on_ended,
            self.billing.on_settled,
        ):
            hooks.append(self.payments.wake)
        self.charging.transactions.on_readings.append(self.payments.readings)
        self.partners = PartnerService(self.db, clock)
        # Work that runs on one process per database at a time (see csms.storage.leadership);
        # which groups this process may lead follows from its components.
        self.singletons = {group: Singletons(group) for group in SINGLETON_COMPONENT}
        for group, singletons in self.singletons.items():
            singletons.on_change.append(functools.partial(self.metrics.singleton_leader, group))
        self._leader: asyncio.Task[None] | None = None
        # What the charging services report: ended transactions wake billing, values not
        # taken as sent are counted (the OCPI publishers subscribe when OCPI starts).
        self.charging.transactions.on_ended.append(self.billing.wake)
        # The statistics' hourly sums (csms/services/statistics_rollup.py), made as hours end.
        self.rollup = StatisticsRollup(self.db, self.clock)
        self.charging.checks.on_flagged.append(self.metrics.input_flagged)
        # The dashboard's live feed: station changes committed here, to each watcher.
        self.live = LiveFeed()
        self.charging.stations.on_event.append(self.live.publish)
        self.metrics.families.append(functools.partial(live_metric_families, self.live))
        # Smart charging: sites' current shared among their sessions (csms sites ...), and
        # the caps an OpenADR VTN asks for (csms.openadr) through the sites service.
        self.sites = SiteService(self.db, clock)
        self.load: LoadManager | None = None
        if config.smart_charging.enabled:
            # Alone on its database (SQLite: one process) it follows the chargers through
            # the charging services' hooks instead of reading them all at every look.
            self.load = LoadManager(
                self.db, clock, self.commands, config.smart_charging, alone=self.db.is_sqlite
            )
            self.charging.transactions.on_charger.append(self.load.touched)
            self.charging.stations.on_charger.append(self.load.touched)
            for hooks in (
                self.charging.transactions.on_started,
                self.charging.transactions.on_ended,
                self.charging.stations.on_status,
            ):
                hooks.append(self.load.poke)
            self.charging.transactions.on_readings.append(self.load.readings)
            self.metrics.families.append(functools.partial(metric_families, self.load))
            v201.load = self.load
            load = self.load
            self.sites.on_changed.append(lambda _site: load.poke())
        self._api: HttpListener | None = None
        self._ocpi: HttpListener | None = None
        # How to stop what runs, in the reverse order of starting. The database and the
        # roaming client exist from here on: closed by stop() even if start() never ran.
        self._running = contextlib.AsyncExitStack()
        self._running.push_async_callback(self.db.close)
        self._running.push_async_callback(self._stop_part, "roaming", self.roaming.close)
        self.api_port: int | None = None
        self.ocpi_port: int | None = None
        self.ocpi_base_url: str | None = None
        self.ocpi_app: web.Application | None = None

    def _wire_cluster(self, cluster: Cluster) -> None:
        """What other nodes' notifications make this one do."""
        cluster.on_run = self.commands.run_routed
        self.ocpp.on_taken = cluster.taken
        if "ocpp" in self.components:
            cluster.on_release = self.ocpp.release
            cluster.on_revived = self.ocpp.reannounce
            self.ocpp.on_returned = self.charging.transactions.forget_charger
        stations = self.charging.stations

        def offline() -> None:
            # Chargers of a dead node went offline: as for a status change made here.
            for hook in stations.on_status:
                hook()

        cluster.on_offline.append(offline)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            # Whatever did start is closed again; the caller reports why in one line.
            await self._shutdown()
            raise

    async def _start(self) -> None:
        running = self._running
        await upgrade(self.db.engine)
        self.db.start()
        cluster = self.cluster
        if cluster is not None:
            await cluster.start()
            running.push_async_callback(self._stop_part, "cluster", cluster.stop)
        # A fresh process holds no sockets: nobody is connected to it yet. Alone on the
        # database (SQLite), it is the only node: no charger is connected at all.
        now = self.clock()

        async def reset_presence(w: WriteTx) -> None:
            conn = await w.connection()
            if cluster is None:
                await cp_repo.mark_all_disconnected(conn, now)
            else:
                await cp_repo.mark_node_disconnected(conn, self.node_id, now)

        if "ocpp" in self.components:
            await self.db.write(reset_presence)
            await self.ocpp.start()
            running.push_async_callback(self._stop_part, "ocpp", self.ocpp.stop)
            # CertificateSigned deliveries under way end before the connections do.
            running.push_async_callback(self._stop_part, "certificates", self.certificates.close)
        if "api" in self.components:
            self._api = await self._start_api()
            running.push_async_callback(self._stop_listener, "api")
        if "ocpi" in self.components:
            self._ocpi = await self._start_ocpi()
            running.push_async_callback(self._stop_listener, "ocpi")
        if "ocpp" in self.components:
            # Reservation expiry, CDR building and the load manager follow the chargers'
            # sessions; the OpenADR VEN caps their sites.
            charging = self.singletons[CHARGING]
            hosted: list[tuple[str, Any]] = [
                (w.name, w.running)
                for w in (
                    self.commands.reservations,
                    self.billing.worker,
                    self.rollup.worker,
                    self.payments.worker,
                )
            ]
            if self.load is not None:
                hosted.append((self.load.name, self.load.running))
            if self.config.openadr.enabled:
                # One VEN per database (two would register under one name with the VTN).
                ven = OpenAdrVen(self.config.openadr, self.sites, clock=self.clock)
                hosted.append(("openadr", ven.running))
            for name, work in hosted:
                await running.enter_async_context(charging.hosting(name, work))
        # Remote starts and receipts of payments under way end before the rest stops.
        running.push_async_callback(self._stop_part, "payments", self.payments.close)
        await self._lead()
        running.push_async_callback(self._stop_part, "leadership", self._stop_leading)

    def _pay_base_url(self) -> str:
        """Where drivers reach the pay pages (the test provider's checkout page among
        them)."""
        return self.payments.public_url

    async def _lead(self) -> None:
        """Lead this process's singleton groups: at once on SQLite (one process per file,
        which `serve` holds to with a lock file), else whenever the advisory lock is ours."""
        groups = [self.singletons[g] for g in singleton_groups(self.components)]
        for group in groups:
            self.metrics.singleton_leader(group.group, False)
        if self.db.is_sqlite:
            for group in groups:
                await group.lead()
            return
        if groups:
            # Named in its log lines as in the node registry ([cluster] node_id).
            leader = AdvisoryLeader(self.config.database.url, groups, node=self.node_id)
            self._leader = asyncio.get_running_loop().create_task(
                leader.run(), name="singleton-leader"
            )

    async def _stop_leading(self) -> None:
        """Stop the singleton work, then give up its locks."""
        task, self._leader = self._leader, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        for group in self.singletons.values():
            await group.follow()

    async def _start_api(self) -> HttpListener:
        cfg = self.config.api
        try:
            token = resolve_token(cfg, create=True)
        except TokenError as exc:
            raise StartupError(str(exc)) from None
        assert token is not None
        context = ApiContext(
            commands=self.commands,
            db=self.db,
            metrics=self.metrics,
            connected=self.ocpp.connected_by_version,
            token=token,
            started=time.monotonic(),
            body_timeout=cfg.body_timeout,
            max_body_size=cfg.max_body_size,
            users=UserService(self.db, self.clock, token),
            failures=FailureLimiter(FailurePolicy(), time.monotonic),
        )
        registry = self.ocpp.registry
        read_context = ReadContext(
            ReadService(self.db, self.clock, self.billing),
            # Without an OCPP server here, this process holds no charger's socket.
            (lambda cp_id: registry.get(cp_id) is not None) if "ocpp" in self.components else None,
            StatisticsService(self.db, self.clock, self.config.statistics),
        )
        live_context = LiveContext(
            OverviewService(self.db, self.clock), self.live, keepalive=cfg.events_keepalive
        )
        sock = _listening_socket(cfg.host, cfg.port)
        listener = HttpListener(
            "api",
            build_api(context, read_context, live_context, cfg.map_tiles),
            listener_limits(cfg),
            self.metrics,
            https=https_port("api", cfg),
        )
        try:
            await listener.start(sock)
        except BaseException:
            sock.close()
            raise
        self.api_port = listener.port
        log.info("api_listening", host=cfg.host, port=self.api_port, **_bounds(cfg))
        return listener

    async def _start_ocpi(self) -> HttpListener:
        cfg = self.config.ocpi
        # Bound first, so that an empty ocpi.base_url can name the port actually bound.
        sock = _listening_socket(cfg.host, cfg.port)
        self.ocpi_port = int(sock.getsockname()[1])
        self.ocpi_base_url = public_base_url(cfg, self.ocpi_port)
        if not self.config.payments.public_url:
            self.payments.public_url = self.ocpi_base_url
        settings = OcpiSettings.from_config(
            cfg, self.ocpi_base_url, self.clock, payments_enabled=self.config.payments.enabled
        )
        self.ocpi_app = build_ocpi_app(
            settings,
            self.partners,
            billing=self.billing,
            commands=self.commands,
            charging=self.charging,
            limits=self.limits,
            auth_limits=AuthLimits(
                FailureLimiter(FailurePolicy(), time.monotonic),
                lambda: self.metrics.auth_failed("ocpi"),
                lambda: self.metrics.auth_limited("ocpi"),
            ),
            singletons=self.singletons[OCPI],
        )
        # The drivers' payment pages on the same public listener (csms.payweb; the OCPI
        # transport hands them their requests untouched).
        self.ocpi_app.add_subapp("/pay", build_pay_app(self.payments))
        # Changes made in this process wake the publishers at once (others are found by
        # their periodic passes).
        self.charging.stations.on_status.append(self.ocpi_app[LOCATION_PUBLISHER].wake)
        self.charging.transactions.on_started.append(self.ocpi_app[SESSION_PUBLISHER].wake)
        self.charging.transactions.on_ended.append(self.ocpi_app[SESSION_PUBLISHER].wake)
        listener = HttpListener(
            "ocpi", self.ocpi_app, listener_limits(cfg), self.metrics, https=https_port("ocpi", cfg)
        )
        try:
            await listener.start(sock)
        except BaseException:
            sock.close()
            raise
        log.info(
            "ocpi_listening",
            host=cfg.host,
            port=self.ocpi_port,
            base_url=settings.base_url,
            **_bounds(cfg),
        )
        return listener

    def http_connections(self) -> dict[str, int]:
        """Connections open now on each HTTP listener that runs (`api`, `ocpi`)."""
        return {
            name: listener.open_connections
            for name, listener in (("api", self._api), ("ocpi", self._ocpi))
            if listener is not None
        }

    @property
    def api_tls_port(self) -> int | None:
        """The operator API's HTTPS port bound (None: no HTTPS)."""
        return None if self._api is None else self._api.tls_port

    @property
    def ocpi_tls_port(self) -> int | None:
        """The OCPI bridge's HTTPS port bound (None: no HTTPS)."""
        return None if self._ocpi is None else self._ocpi.tls_port

    def reload_tls(self) -> None:
        """SIGHUP: read every listener's certificate and key files again."""
        reload_all(
            [self.ocpp.tls, *(h.https.tls for h in (self._api, self._ocpi) if h and h.https)]
        )

    async def stop(self) -> None:
        await self._shutdown()
        log.info("csms_stopped")

    @property
    def failure(self) -> DatabaseWriterFailed | None:
        """Why the system can no longer serve (its database writer died), if it cannot."""
        return self.db.failure

    async def _shutdown(self) -> None:
        """Stop what runs, in the reverse order of starting; a part that fails to stop (its
        last writes refused by a dead database writer) does not keep the others from
        closing, and the database is closed last whatever happened before."""
        running, self._running = self._running, contextlib.AsyncExitStack()
        await running.aclose()

    async def _stop_listener(self, name: str) -> None:
        listener = self._api if name == "api" else self._ocpi
        if listener is not None:
            await self._stop_part(name, listener.stop)
        if name == "api":
            self._api = None
        else:
            self._ocpi = None

    async def _stop_part(self, part: str, stop: Callable[[], Awaitable[None]]) -> None:
        try:
            await stop()
        except DatabaseClosed as exc:
            log.warning("shutdown_incomplete", part=part, error=str(exc))
        except Exception:  # shutdown's boundary: the database must still be closed
            log.exception("shutdown_failed", part=part)

    async def __aenter__(self) -> CsmsApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The error names the address ("... (while attempting to bind on address ...)").
    sock = socket.create_server((host, port), family=family, backlog=128)
    sock.setblocking(False)
    return sock


def whereabouts(config: Config, components: Collection[str]) -> dict[str, str]:
    """Where the running system keeps its data, for its start-up line: data directory,
    configuration file, database and (with the API) the API token file."""
    found = {
        "data_dir": config.data_dir or os.getcwd(),
        "config_file": config.config_file or "none (built-in defaults)",
        "database": database_location(config.database.url),
    }
    if "api" in components:
        found["api_token_file"] = (
            "none (api.token is configured)" if config.api.token else config.api.token_file
        )
    return found


def is_loopback(host: str) -> bool:
    """Does `host` name this machine only? (A wildcard like 0.0.0.0 or "" does not.)"""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warnings(
    config: Config, components: Collection[str], ocpi_base_url: str | None
) -> list[tuple[str, str]]:
    """(setting, one line) for each default that is unsafe or misleading on a listener
    other machines reach: open registration, chargers without a password, and an OCPI
    URL for partners that names this machine only."""
    found: list[tuple[str, str]] = []
    ocpp = config.ocpp
    if "ocpp" in components and not is_loopback(ocpp.host):
        at = f"{ocpp.host or '*'}:{ocpp.port}"
        if ocpp.registration == "accept":
            found.append(
                (
                    "ocpp.registration",
                    f"OCPP listens on {at} and accepts every unknown charger "
                    '(registration = "accept"); set ocpp.registration = "pending" or "reject" '
                    "and add chargers with `csms chargers add`",
                )
            )
        if not ocpp.require_auth:
            found.append(
                (
                    "ocpp.require_auth",
                    f"OCPP listens on {at} and lets chargers without a password connect "
                    "(require_auth = false); give each charger a password and set "
                    "ocpp.require_auth = true",
                )
            )
    ocpi = config.ocpi
    if "ocpi" in components and ocpi_base_url and not is_loopback(ocpi.host):
        host = urlsplit(ocpi_base_url).hostname or ""
        if is_loopback(host) or host in ("0.0.0.0", "::"):  # noqa: S104 - naming, not binding
            found.append(
                (
                    "ocpi.base_url",
                    f"OCPI partners are told to reach this bridge at {ocpi_base_url}, which "
                    "names this machine only; set ocpi.base_url to the URL partners reach",
                )
            )
    return found


async def serve(
    config: Config,
    components: Collection[str] = COMPONENTS,
    on_started: Callable[[CsmsApp], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully; raises ServerFailed when
    it stopped because its database writer died. `on_started` is called once it serves."""
    # The SQLite driver thread needs the GIL between statements; a busy event loop would
    # otherwise hold it for the default 5 ms each time (measured: p50 latency 127 -> 22 ms
    # at 2,000 MeterValues/s).
    sys.setswitchinterval(0.0005)
    raised = raise_open_files_limit()
    if raised is not None:
        log.info("open_files_limit_raised", soft_before=raised[0], soft=raised[1])
    # Every later signal only sets it again: the shutdown, bounded, always completes.
    stop = stop_on_signals()
    lock = exclusive_sqlite(config, components)
    try:
        app = CsmsApp(config, components=components)
        await app.start()
    except Exception as exc:
        if lock is not None:
            lock.release()
        message = describe_startup_error(exc, config)
        if message is None:
            raise
        raise StartupError(message) from exc
    # A dead database writer stops the server: nothing it is told could be committed, and
    # a supervisor restarting it (or staff) must see a non-zero exit, not a hang.
    app.db.on_failure.append(lambda _failure: stop.set())
    collector = gc_policy()
    collector.start()
    background = TaskSet("csms")
    if "ocpp" in components:
        background.spawn(app.charging.transactions.warm_up(), name="warm-up")
    log.info(
        "csms_started",
        components=sorted(components),
        node_id=app.node_id,
        **whereabouts(config, components),
    )
    for setting, detail in exposure_warnings(config, components, app.ocpi_base_url):
        log.warning("unsafe_setting_found", setting=setting, detail=detail)
    if on_started is not None:
        on_started(app)
    reload_on_hangup(app.reload_tls)
    try:
        await stop.wait()
    finally:
        log.info("csms_stopping")
        await collector.stop()
        await background.close()
        await app.stop()
        if lock is not None:
            lock.release()
    if app.failure is not None:
        raise ServerFailed(str(app.failure))


def exclusive_sqlite(config: Config, components: Collection[str]) -> SqliteLeaderLock | None:
    """On a SQLite file, this process's claim to the singleton work of its components (held
    until released or the process ends); StartupError when another process holds it. None
    on another database, or when the components run no singleton work."""
    file = sqlite_file(config.database.url)
    groups = singleton_groups(components)
    if file is None or not groups:
        return None
    lock = SqliteLeaderLock(file.expanduser().absolute())
    try:
        lock.acquire(groups, SINGLETON_WORK)
    except LeaderLockHeld as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
    return lock
