"""What the OCPI app knows about us (settings from `[ocpi]`, the clock) and the typed keys
of its state: settings, partner service, route registry, partner client, registrar and
push worker.

Values and keys only; they are filled in by ocpi_cpo.app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from aiohttp import web

from csms.config import OcpiConfig, required_endpoints
from csms.core.clock import Clock, utc_now
from csms.core.failures import FailureLimiter
from csms.core.partners import InterfaceRole, PartyRole, Role
from csms.core.versions import Limits
from csms.services.billing import BillingService
from csms.services.charging import Charging
from csms.services.commands import CommandService
from csms.services.partners import PartnerService
from csms.workers import Singletons
from ocpi_cpo.client import OcpiClient
from ocpi_cpo.locations_publisher import LocationPublisher
from ocpi_cpo.push import Pusher
from ocpi_cpo.registration import Registrar, Required, Us
from ocpi_cpo.results import AsyncResults
from ocpi_cpo.versions import VERSIONS_PATH, OurEndpoint


@dataclass(frozen=True, slots=True)
class OcpiSettings:
    """`[ocpi]` as the bridge uses it, with the public base URL resolved (no trailing /)."""

    base_url: str
    country_code: str = "NL"
    party_id: str = "CSM"
    business_name: str = "CSMS"
    business_website: str = ""
    page_limit: int = 100
    request_timeout: float = 10.0
    required: Required = ()
    push_interval: float = 1.0
    push_alert_after: float = 900.0
    location_push_rate: float = 20.0
    offline_grace: float = 300.0
    session_update_interval: float = 60.0
    authorize_timeout: float = 5.0
    # Seconds a request's body may take to arrive once its headers are in, and its largest
    # size in bytes.
    body_timeout: float = 30.0
    max_body_size: int = 4 * 1024 * 1024
    clock: Clock = utc_now
    # `[payments] enabled`: EVSEs with an ad-hoc tariff are published payable.
    payments_enabled: bool = False

    @classmethod
    def from_config(
        cls,
        config: OcpiConfig,
        base_url: str,
        clock: Clock = utc_now,
        *,
        payments_enabled: bool = False,
    ) -> OcpiSettings:
        return cls(
            base_url=base_url.rstrip("/"),
            clock=clock,
            payments_enabled=payments_enabled,
            country_code=config.country_code,
            party_id=config.party_id,
            business_name=config.business_name,
            business_website=config.business_website,
            page_limit=config.page_limit,
            request_timeout=config.request_timeout,
            push_interval=config.push_interval,
            push_alert_after=config.push_alert_after,
            location_push_rate=config.location_push_rate,
            offline_grace=config.offline_grace,
            session_update_interval=config.session_update_interval,
            authorize_timeout=config.authorize_timeout,
            body_timeout=config.body_timeout,
            max_body_size=config.max_body_size,
            required=tuple(
                (module, None if role is None else InterfaceRole(role))
                for module, role in required_endpoints(config.required_endpoints)
            ),
        )

    def url(self, path: str) -> str:
        """The absolute public URL of a path on our server."""
        return self.base_url + path

    @property
    def versions_url(self) -> str:
        return self.url(VERSIONS_PATH)

    @property
    def us(self) -> Us:
        details: dict[str, object] = {"name": self.business_name}
        if self.business_website:
            details["website"] = self.business_website
        role = PartyRole(Role.CPO, self.country_code, self.party_id, details)
        return Us(self.versions_url, (role,))


def public_base_url(config: OcpiConfig, bound_port: int | None = None) -> str:
    """`ocpi.base_url`, or when it is empty http://HOST:PORT (the bound port if known; a
    wildcard host becomes 127.0.0.1)."""
    if config.base_url:
        return config.base_url.rstrip("/")
    port = bound_port if bound_port is not None else config.port
    host = config.host
    if host in ("", "0.0.0.0"):  # noqa: S104 - not binding, naming
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Access(StrEnum):
    """Which tokens a route accepts."""

    # Versions and credentials: token A (registration not finished) or a registered token;
    # no routing headers.
    CONFIGURATION = "configuration"
    # Everything else: a registered partner's token only; routing headers on the answer.
    FUNCTIONAL = "functional"


@dataclass(slots=True)
class Registry:
    """Our endpoints (for the version details) and the access rule of every route, filled
    by each module's setup before the app starts."""

    endpoints: list[OurEndpoint] = field(default_factory=list)
    access: dict[web.AbstractRoute, Access] = field(default_factory=dict)
    # The OCPI version each route speaks (2.2.1 unless add_route says otherwise).
    versions: dict[web.AbstractRoute, str] = field(default_factory=dict)


def _uncounted() -> None:
    pass


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """The back-off after unknown tokens, per source address (csms.core.failures), and
    the hooks that count a wrong token and a request refused while its address waits."""

    limiter: FailureLimiter
    failed: Callable[[], None] = _uncounted
    limited: Callable[[], None] = _uncounted


SETTINGS = web.AppKey("ocpi_settings", OcpiSettings)
AUTH_LIMITS = web.AppKey("ocpi_auth_limits", AuthLimits)
PARTNERS = web.AppKey("ocpi_partners", PartnerService)
BILLING = web.AppKey("ocpi_billing", BillingService)
REGISTRY = web.AppKey("ocpi_registry", Registry)
CLIENT = web.AppKey("ocpi_client", OcpiClient)
REGISTRAR = web.AppKey("ocpi_registrar", Registrar)
PUSHER = web.AppKey("ocpi_pusher", Pusher)
LOCATION_PUBLISHER = web.AppKey("ocpi_location_publisher", LocationPublisher)
# The CSMS's command path (the one `csms remote` uses) and its chargers' use cases; absent
# when the bridge runs without them (then commands answer that the EVSE is unreachable).
COMMANDS = web.AppKey("ocpi_commands", CommandService)
CHARGING = web.AppKey("ocpi_charging", Charging)
RESULTS = web.AppKey("ocpi_results", AsyncResults)
# The bridge's singleton work (publishers, the push worker, the results sweep): it runs
# while this process leads the group (csms.app decides; alone, the bridge always leads).
SINGLETONS = web.AppKey("ocpi_singletons", Singletons)
# What each OCPP version's messages can carry (the adapters' limits, given by csms.app):
# which token uids a charger takes, which chargers report a device model.
LIMITS: web.AppKey[Limits] = web.AppKey("ocpi_protocol_limits")
