"""The HTTP client for calls to partners: our token in the partner's encoding, fresh
X-Request-ID and a kept X-Correlation-ID on every request, a timeout, and the envelope read
back into a Reply or one of the PartnerError exceptions (ocpi_cpo.errors).

Owns no session: the aiohttp ClientSession is made and closed by whoever builds the client
(the OCPI app's cleanup context, or a CLI command).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import structlog

from csms.core.bounds import holds_nul
from csms.core.parties import Party, destination
from csms.core.partners import PartyRole, TokenEncoding
from ocpi_cpo.authorization import header_value
from ocpi_cpo.envelope import is_success
from ocpi_cpo.errors import (
    PartnerBadResponse,
    PartnerHttpError,
    PartnerRefused,
    PartnerUnreachable,
)

log = structlog.get_logger("ocpi_cpo.client")

# A partner's answer larger than this is refused (the biggest we read are version details
# and credentials; list pulls come later and should page).
MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credential:
    """How we authenticate to a partner: the token it gave us and how to write it."""

    token: str = field(repr=False)
    encoding: TokenEncoding = TokenEncoding.BASE64


@dataclass(frozen=True, slots=True)
class Routing:
    """OCPI-from-* / OCPI-to-* headers of a request to a functional module."""

    from_country_code: str
    from_party_id: str
    to_country_code: str
    to_party_id: str

    def headers(self) -> dict[str, str]:
        return {
            "OCPI-from-country-code": self.from_country_code,
            "OCPI-from-party-id": self.from_party_id,
            "OCPI-to-country-code": self.to_country_code,
            "OCPI-to-party-id": self.to_party_id,
        }


def route(us: Party, roles: Sequence[PartyRole], to: Party | None = None) -> Routing | None:
    """The routing headers of our request to a partner with these roles, meant for `to`
    (None: the partner as a whole); see csms.core.parties.destination."""
    chosen = destination(roles, to)
    return None if chosen is None else Routing(us.country_code, us.party_id, *chosen)


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful (1xxx) answer of a partner."""

    http_status: int
    status_code: int
    status_message: str | None
    data: Any
    headers: Mapping[str, str]
    request_id: str
    correlation_id: str


class OcpiClient:
    def __init__(self, session: aiohttp.ClientSession, timeout: float = 10.0) -> None:
        self.session = session
        self.timeout = timeout

    async def get(self, url: str, credential: Credential, **kwargs: Any) -> Reply:
        return await self.request("GET", url, credential, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        credential: Credential,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        routing: Routing | None = None,
    ) -> Reply:
        """Send one request; return the Reply of a 2xx answer with a success status.

        Raises PartnerUnreachable, PartnerHttpError, PartnerBadResponse or PartnerRefused."""
        request_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        headers = {
            "Authorization": header_value(credential.token, credential.encoding),
            "X-Request-ID": request_id,
            "X-Correlation-ID": correlation_id,
            "Accept": "application/json",
        }
        if routing is not None:
            headers.update(routing.headers())
        body: bytes | None = None
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self.timeout),
                self.session.request(
                    method, url, data=body, headers=headers, params=params
                ) as response,
            ):
                raw = await response.content.read(MAX_BODY + 1)
                http_status = response.status
                response_headers = response.headers
        except TimeoutError as exc:
            raise PartnerUnreachable(method, url, f"no answer within {self.timeout:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            raise PartnerUnreachable(method, url, f"cannot connect: {reason}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            detail = str(exc) or type(exc).__name__
            raise PartnerUnreachable(method, url, detail) from exc
        log.debug(
            "ocpi_call_answered",
            method=method,
            url=url,
            http_status=http_status,
            request_id=request_id,
            correlation_id=correlation_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        status_code, message, data = _read(method, url, http_status, raw)
        return Reply(
            http_status,
            status_code,
            message,
            data,
            response_headers,
            request_id,
            correlation_id,
        )


def _read(method: str, url: str, http_status: int, raw: bytes) -> tuple[int, str | None, Any]:
    """status_code, status_message and data of a successful answer; raises the
    PartnerError that describes what is wrong with any other."""
    if len(raw) > MAX_BODY:
        raise PartnerBadResponse(method, url, f"answer larger than {MAX_BODY} bytes")
    document: Any = None
    if raw.strip():
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
    status_code: int | None = None
    message: str | None = None
    if isinstance(document, dict):
        code = document.get("status_code")
        if isinstance(code, int) and not isinstance(code, bool):
            status_code = code
        text = document.get("status_message")
        message = text if isinstance(text, str) and text else None
    if not 200 <= http_status < 300:
        raise PartnerHttpError(method, url, http_status, status_code, message)
    if status_code is None:
        kind = "JSON without status_code" if isinstance(document, dict) else "not an OCPI response"
        raise PartnerBadResponse(method, url, f"HTTP {http_status} but {kind}")
    if not is_success(status_code):
        raise PartnerRefused(method, url, status_code, message)
    assert isinstance(document, dict)
    if holds_nul(raw, document):
        # What a partner sends is stored (tokens, sessions), and PostgreSQL's text cannot
        # hold U+0000: refused like any malformed answer, on both databases.
        raise PartnerBadResponse(method, url, "the answer holds U+0000 (NUL) in a string")
    return status_code, message, document.get("data")
