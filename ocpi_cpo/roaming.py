"""Roaming authorization: another party's token presented at one of our chargers is decided
by its whitelist rule and, when the rule says so, by its eMSP in real time
(`POST {tokens}/{uid}/authorize` with the location references), bounded by
`ocpi.authorize_timeout` so that the charger always gets its answer in time. A 2.1.1 eMSP
is asked without routing headers and its answer read as 2.2.1's.

Used by csms.services.authorization (its `roaming` hook) for 1.6 Authorize/StartTransaction and
2.0.1 Authorize/TransactionEvent alike. It needs the database and an HTTP client only, so it
works in a process that runs the OCPP server without the OCPI one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from csms.core.authorization import Token
from csms.core.clock import Clock
from csms.core.parties import Party, owner_of
from csms.core.partners import InterfaceRole, Partner, PartnerStatus, Role
from csms.core.roaming import (
    Allowed,
    Grant,
    NoAnswer,
    PartnerToken,
    RealtimeAnswer,
    decide_roaming,
    needs_realtime,
    presented_types,
)
from csms.storage import ocpi_evses as evse_repo
from csms.storage import ocpi_tokens as token_repo
from csms.storage import partners as partner_repo
from csms.storage.database import Database
from ocpi_cpo.client import Credential, OcpiClient, route
from ocpi_cpo.envelope import Status
from ocpi_cpo.errors import PartnerError, PartnerHttpError, PartnerRefused
from ocpi_cpo.v211 import objects as v211

log = structlog.get_logger("ocpi_cpo.roaming")


@dataclass(frozen=True, slots=True)
class _Target:
    partner: Partner
    url: str  # the eMSP's tokens endpoint (Sender interface)


class RoamingAuthorizer:
    """csms.services.authorization.Roaming for partners' tokens. `close()` releases its HTTP
    connections."""

    def __init__(
        self,
        db: Database,
        us: Party,
        clock: Clock,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._db = db
        self._us = us
        self._clock = clock
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: OcpiClient | None = None

    def _http(self) -> OcpiClient:
        if self._client is None:
            self._session = aiohttp.ClientSession()
            # Its own bound lies beyond ours: ours decides what a slow eMSP is.
            self._client = OcpiClient(self._session, timeout=self.timeout + 5.0)
        return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._client = None

    async def authorize(
        self, cp_id: str, evse_id: int | None, uid: str, token_type: str | None, token: Token
    ) -> Grant | None:
        owner = owner_of(token.origin)
        if owner is None or owner == self._us:
            return None
        types = [t.value for t in presented_types(token_type)]
        async with self._db.read() as conn:
            stored = await token_repo.find(conn, uid, owner, types)
            if stored is None:
                return None
            if not needs_realtime(stored):
                return decide_roaming(stored, None)
            references = await _references(conn, cp_id, evse_id)
            target = await _target(conn, stored)
        if target is None:
            return decide_roaming(stored, NoAnswer.NO_ENDPOINT)
        return decide_roaming(stored, await self._ask(target, stored, references))

    async def _ask(
        self, target: _Target, token: PartnerToken, references: dict[str, Any] | None
    ) -> RealtimeAnswer | NoAnswer:
        partner = target.partner
        if not partner.their_token:
            return NoAnswer.NO_ENDPOINT
        url = f"{target.url.rstrip('/')}/{token.uid}/authorize"
        credential = Credential(partner.their_token, partner.token_encoding)
        # 2.1.1 has no routing headers; its LocationReferences are 2.2.1's (plus optional
        # connector_ids), so the request body is the same in both versions.
        in_211 = partner.version == v211.VERSION
        routing = None if in_211 else route(self._us, partner.roles, token.party)
        started = asyncio.get_running_loop().time()
        fields = {"partner": partner.name, "uid": token.uid, "url": url}
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._http().request(
                    "POST",
                    url,
                    credential,
                    json=references,
                    params={"type": token.type},
                    routing=routing,
                )
        except TimeoutError:
            log.warning("realtime_authorization_timed_out", timeout_s=self.timeout, **fields)
            return NoAnswer.TIMED_OUT
        except (PartnerRefused, PartnerHttpError) as exc:
            # An eMSP that does not know the token says 2004, with HTTP 404 or 200.
            if exc.status_code == Status.UNKNOWN_TOKEN:
                log.info("realtime_authorization_unknown_token", **fields)
                return RealtimeAnswer(Allowed.NOT_ALLOWED, unknown=True)
            log.warning("realtime_authorization_failed", detail=str(exc), **fields)
            return NoAnswer.UNREACHABLE
        except PartnerError as exc:
            log.warning("realtime_authorization_failed", detail=str(exc), **fields)
            return NoAnswer.UNREACHABLE
        data = reply.data
        if in_211 and isinstance(data, dict):
            data = v211.authorization_info_to_221(data)
        answer = _answer(data)
        took_ms = round((asyncio.get_running_loop().time() - started) * 1000, 1)
        if answer is None:
            log.warning("realtime_authorization_unreadable", data=reply.data, **fields)
            return NoAnswer.UNREACHABLE
        log.info(
            "realtime_authorization",
            allowed=answer.allowed.value,
            authorization_reference=answer.authorization_reference,
            duration_ms=took_ms,
            **fields,
        )
        return answer


def _answer(data: Any) -> RealtimeAnswer | None:
    """An AuthorizationInfo as the decision needs it (None: not one)."""
    if not isinstance(data, dict):
        return None
    try:
        allowed = Allowed(str(data.get("allowed")))
    except ValueError:
        return None
    reference = data.get("authorization_reference")
    if not isinstance(reference, str) or not reference:
        reference = None
    return RealtimeAnswer(allowed, reference[:36] if reference else None)


async def _references(conn: Any, cp_id: str, evse_id: int | None) -> dict[str, Any] | None:
    """LocationReferences of this charger (its EVSE when known) as published, or None when
    it is not published (the eMSP is asked without them)."""
    published = await evse_repo.of_chargers(conn, [cp_id])
    evses = [e for (_, n), e in sorted(published.items()) if evse_id in (None, n)]
    if not evses:
        return None
    return {"location_id": evses[0].location_id, "evse_uids": [e.uid for e in evses]}


async def _target(conn: Any, token: PartnerToken) -> _Target | None:
    """Whom to ask: the partner that gave us the token, else a registered partner speaking
    for its party, else a hub; with its tokens endpoint (Sender interface)."""
    candidates: list[Partner] = []
    if token.partner_id is not None:
        given_by = await partner_repo.get(conn, token.partner_id)
        if given_by is not None:
            candidates.append(given_by)
    everyone = await partner_repo.list_all(conn)
    party = (token.country_code, token.party_id)
    candidates += [
        p for p in everyone if any((r.country_code, r.party_id) == party for r in p.roles)
    ]
    candidates += [p for p in everyone if any(r.role is Role.HUB for r in p.roles)]
    for partner in candidates:
        if partner.status is not PartnerStatus.REGISTERED:
            continue
        endpoint = partner.endpoint("tokens", InterfaceRole.SENDER) or partner.endpoint("tokens")
        if endpoint is not None:
            return _Target(partner, endpoint.url)
    return None
