"""The credentials handshake in both directions: a partner registering with us (POST/PUT
to our credentials endpoint) and us registering with a partner (`csms ocpi partners
register`).

Calls the partner through ocpi_cpo.client and stores through csms.services.partners; a
handshake that fails stores nothing (and takes back what it had to store early).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from csms.core.partners import (
    Direction,
    Endpoint,
    InterfaceRole,
    Partner,
    PartyRole,
    Registration,
    Role,
    TokenEncoding,
    new_token,
)
from csms.services.partners import Caller, PartnerExists, PartnerService, UnknownPartner
from ocpi_cpo.client import Credential, OcpiClient
from ocpi_cpo.credentials import Credentials, credentials_object, parse_credentials
from ocpi_cpo.errors import (
    BadCredentials,
    MissingEndpoints,
    NoCommonVersion,
    PartnerApiUnusable,
    PartnerError,
    PartnerHttpError,
)
from ocpi_cpo.v211 import objects as v211
from ocpi_cpo.versions import (
    V211,
    VERSION,
    VERSIONS,
    VersionsError,
    missing_endpoints,
    parse_version_details,
    parse_versions,
)

log = structlog.get_logger("ocpi_cpo.registration")

Required = tuple[tuple[str, InterfaceRole | None], ...]


@dataclass(frozen=True, slots=True)
class Us:
    """What we tell partners about ourselves in our credentials."""

    versions_url: str
    roles: tuple[PartyRole, ...]

    def credentials(self, token: str, version: str = VERSION) -> dict[str, object]:
        """Our Credentials object in `version` (2.1.1: one party, our first role)."""
        if version == V211:
            return v211.credentials(token, self.versions_url, self.roles[0])
        return credentials_object(token, self.versions_url, self.roles)


def parse_credentials_in(version: str, data: object, role: Role = Role.EMSP) -> Credentials:
    """A partner's Credentials object in `version` (2.1.1: its one party, as `role`)."""
    if version == V211:
        return v211.parse_credentials(data, role)
    return parse_credentials(data)


def role_211(partner: Partner) -> Role:
    """The role a 2.1.1 partner's party is stored with (2.1.1 credentials do not say): the
    one it had (set by an operator, e.g. HUB), else EMSP."""
    return partner.roles[0].role if len(partner.roles) == 1 else Role.EMSP


@dataclass(frozen=True, slots=True)
class Discovery:
    """A partner's endpoints in the version chosen, and the token encoding it accepted."""

    versions_url: str
    version: str
    endpoints: tuple[Endpoint, ...]
    encoding: TokenEncoding


def encodings_from(first: TokenEncoding) -> tuple[TokenEncoding, ...]:
    """Try `first`, then the other encoding (after a 401)."""
    other = TokenEncoding.RAW if first is TokenEncoding.BASE64 else TokenEncoding.BASE64
    return (first, other)


class Registrar:
    def __init__(
        self,
        partners: PartnerService,
        client: OcpiClient,
        us: Us,
        required: Required = (("credentials", None),),
    ) -> None:
        self.partners = partners
        self.client = client
        self.us = us
        # The credentials endpoint is needed to register at all.
        self.required: Required = (("credentials", None), *required)
        # Hooks called with the stored partner once a handshake (either direction, first
        # registration or update) is stored; they must not block (start a task instead).
        self.on_registered: list[Callable[[Partner], None]] = []

    def _registered(self, partner: Partner) -> None:
        for hook in list(self.on_registered):
            try:
                hook(partner)
            except Exception:  # a hook's failure must not undo a stored registration
                log.exception("registration_hook_failed", ocpi_partner=partner.name)

    async def discover(
        self,
        versions_url: str,
        token: str,
        encodings: Sequence[TokenEncoding],
        correlation_id: str | None = None,
        version: str | None = None,
    ) -> Discovery:
        """GET the partner's versions (trying each encoding while it answers 401), pick
        `version` (the one the partner registers in with us), or else the highest both
        speak (2.2.1 before 2.1.1), GET its details and check the endpoints we require.

        Raises PartnerApiUnusable (3001), NoCommonVersion (3002), MissingEndpoints (3003)."""
        reply = None
        encoding = encodings[0]
        for i, encoding in enumerate(encodings):
            try:
                reply = await self.client.get(
                    versions_url, Credential(token, encoding), correlation_id=correlation_id
                )
                break
            except PartnerHttpError as exc:
                if exc.http_status != 401 or i == len(encodings) - 1:
                    raise PartnerApiUnusable(f"versions: {exc}") from exc
            except PartnerError as exc:
                raise PartnerApiUnusable(f"versions: {exc}") from exc
        assert reply is not None
        try:
            versions = parse_versions(reply.data)
        except VersionsError as exc:
            raise PartnerApiUnusable(f"versions: GET {versions_url}: {exc}") from exc
        wanted = (version,) if version is not None else VERSIONS
        chosen = next((v for v in wanted if v in versions), None)
        if chosen is None:
            offered = ", ".join(sorted(versions)) or "none"
            raise NoCommonVersion(
                f"the partner offers OCPI {offered}; we speak {' and '.join(wanted)}"
            )
        details_url = versions[chosen]
        if chosen == V211:
            # 2.1.1 sends tokens as they are (Base64 came with 2.2).
            encoding = TokenEncoding.RAW
        try:
            details = await self.client.get(
                details_url, Credential(token, encoding), correlation_id=correlation_id
            )
            version_found, endpoints = parse_version_details(details.data)
        except PartnerError as exc:
            raise PartnerApiUnusable(f"version details: {exc}") from exc
        except VersionsError as exc:
            raise PartnerApiUnusable(f"version details: GET {details_url}: {exc}") from exc
        if version_found != chosen:
            raise PartnerApiUnusable(
                f"version details: GET {details_url} describes version {version_found}, "
                f"not {chosen}"
            )
        missing = missing_endpoints(endpoints, self.required)
        if missing:
            raise MissingEndpoints(
                f"the partner's {chosen} endpoints lack what we require: {', '.join(missing)}"
            )
        return Discovery(versions_url, chosen, endpoints, encoding)

    async def accept_credentials(
        self,
        caller: Caller,
        body: object,
        correlation_id: str | None,
        version: str = VERSION,
    ) -> tuple[Partner, str]:
        """A partner's POST (first registration, `caller` used token A) or PUT (update,
        `caller` used its registered token) to our credentials endpoint of `version`: fetch
        its endpoints of that version with the token it sent, then store everything with a
        new token for it, which the old one stops being. Registering in the other version
        than before switches the partner's version. 2.1.1 tokens go unencoded (RAW is tried
        first). Returns the stored partner and the new token to answer with.

        Raises RegistrationError; StateChanged (csms.services.partners) when the partner
        changed meanwhile (a concurrent POST, a removal)."""
        theirs: Credentials = parse_credentials_in(version, body, role_211(caller.partner))
        first = TokenEncoding.RAW if version == V211 else caller.encoding
        discovery = await self.discover(
            theirs.url, theirs.token, encodings_from(first), correlation_id, version
        )
        token = new_token()
        registration = Registration(
            direction=caller.partner.direction or Direction.INBOUND,
            roles=theirs.roles,
            endpoints=discovery.endpoints,
            versions_url=theirs.url,
            version=discovery.version,
            their_token=theirs.token,
            our_token=token,
            token_encoding=discovery.encoding,
        )
        partner = await self.partners.complete(caller, registration)
        log.info(
            "ocpi_partner_registered" if caller.one_time else "ocpi_partner_updated",
            ocpi_partner=partner.name,
            ocpi_party=partner.parties,
            token_encoding=discovery.encoding.value,
            ocpi_version=discovery.version,
            endpoints=len(discovery.endpoints),
        )
        self._registered(partner)
        return partner, token

    async def register_with(
        self,
        name: str,
        versions_url: str,
        token_a: str,
        encodings: Sequence[TokenEncoding] = (TokenEncoding.BASE64, TokenEncoding.RAW),
    ) -> Partner:
        """Register with a partner as the credentials Sender: discover its endpoints with
        its token A (in the highest version both speak), POST our credentials of that
        version with a fresh token for it, store its answer.

        Raises PartnerExists, RegistrationError (discovery, or a bad answer) or
        PartnerError (the POST failed). Nothing stays stored on failure."""
        with contextlib.suppress(UnknownPartner):
            await self.partners.get(name)
            raise PartnerExists(f"partner {name} exists")
        discovery = await self.discover(versions_url, token_a, encodings)
        credentials_url = _endpoint_url(discovery.endpoints, "credentials")
        offered = new_token()
        invitation = await self.partners.begin_outbound(name, offered, discovery.encoding)
        theirs: Credentials | None = None
        try:
            reply = await self.client.request(
                "POST",
                credentials_url,
                Credential(token_a, discovery.encoding),
                json=self.us.credentials(offered, discovery.version),
            )
            try:
                theirs = parse_credentials_in(discovery.version, reply.data)
            except BadCredentials as exc:
                raise BadCredentials(f"the partner's credentials answer: {exc}") from exc
            caller = Caller(invitation.partner, offered, discovery.encoding, one_time=True)
            partner = await self.partners.complete(
                caller,
                Registration(
                    direction=Direction.OUTBOUND,
                    roles=theirs.roles,
                    endpoints=discovery.endpoints,
                    versions_url=versions_url,
                    version=discovery.version,
                    their_token=theirs.token,
                    our_token=offered,
                    token_encoding=discovery.encoding,
                ),
            )
        except BaseException:
            await asyncio.shield(
                self._undo_outbound(invitation.partner, offered, theirs, credentials_url)
            )
            raise
        log.info(
            "ocpi_registered_with_partner",
            ocpi_partner=partner.name,
            ocpi_party=partner.parties,
            token_encoding=discovery.encoding.value,
            ocpi_version=discovery.version,
            endpoints=len(discovery.endpoints),
        )
        self._registered(partner)
        return partner

    async def _undo_outbound(
        self, partner: Partner, offered: str, theirs: Credentials | None, credentials_url: str
    ) -> None:
        await self.partners.abandon_outbound(partner, offered)
        if theirs is None:
            return
        # The partner took our credentials but we could not keep its answer: tell it.
        with contextlib.suppress(PartnerError):
            await self.client.request(
                "DELETE", credentials_url, Credential(theirs.token, partner.token_encoding)
            )


def _endpoint_url(endpoints: Sequence[Endpoint], identifier: str) -> str:
    for e in endpoints:
        if e.identifier == identifier:
            return e.url
    raise MissingEndpoints(f"the partner offers no {identifier} endpoint")
