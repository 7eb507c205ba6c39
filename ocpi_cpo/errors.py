"""Every error the OCPI bridge raises, in one tree (the domain's errors it meets, such as
csms.core.errors.FieldError, are the domain tree's: see csms/core/errors.py).

OcpiError
 ├── OcpiFailure              answer the request in hand with this HTTP status + OCPI status
 ├── PageError                a pagination parameter of a request that cannot be used (2001)
 ├── VersionsError            a partner's versions or version details cannot be used
 ├── Unsendable               a push cannot become a request now (ocpi_cpo.outgoing): the
 │                            partner offers no endpoint for its module, or the object
 │                            cannot be shown in the partner's version
 ├── PartnerError             a call we made to a partner failed (ocpi_cpo.client); the one
 │    │                       PartnerError: the partner use cases' refusals (UnknownPartner,
 │    │                       PartnerExists ...) are domain errors in csms.core.errors
 │    ├── PartnerUnreachable  no connection, timeout, bad URL
 │    ├── PartnerHttpError    HTTP status outside 2xx (with the envelope's status if any)
 │    ├── PartnerBadResponse  not JSON, not an OCPI envelope, or data of the wrong shape
 │    └── PartnerRefused      an envelope whose status_code is not a success (1xxx)
 └── RegistrationError        a credentials handshake failed; `status` is what to answer
      ├── BadCredentials      2001: the credentials object is invalid
      ├── PartnerApiUnusable  3001: the partner's versions/details could not be used
      ├── NoCommonVersion     3002: the partner does not speak 2.2.1
      └── MissingEndpoints    3003: an endpoint we require is not offered
"""

from __future__ import annotations

from ocpi_cpo.envelope import Status


class OcpiError(Exception):
    """Root of the OCPI bridge's errors."""


class OcpiFailure(OcpiError):
    """Raised by a handler: the transport answers with the envelope for it.

    `http_status` defaults to 200: per the 2.2.1 errata, an authenticated request with valid
    JSON that addresses an existing resource gets no HTTP error, only the OCPI status."""

    def __init__(self, status: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status


class PageError(OcpiError):
    """A pagination parameter that cannot be used (ocpi_cpo.pagination); the message names
    it. The transport answers 2001."""


class VersionsError(OcpiError):
    """A partner's versions or version details cannot be used (ocpi_cpo.versions); the
    message says why. Registration turns it into PartnerApiUnusable."""


class Unsendable(OcpiError):
    """An outbox entry that cannot be sent as things stand (ocpi_cpo.outgoing); the message
    says why. The pusher records it as a failed attempt: it is tried again later, and staff
    see the reason in `csms ocpi outbox`."""


class PartnerError(OcpiError):
    """A request to a partner failed. `method` and `url` say which."""

    def __init__(self, method: str, url: str, detail: str) -> None:
        super().__init__(f"{method} {url}: {detail}")
        self.method = method
        self.url = url
        self.detail = detail


class PartnerUnreachable(PartnerError):
    pass


class PartnerHttpError(PartnerError):
    def __init__(
        self,
        method: str,
        url: str,
        http_status: int,
        status_code: int | None = None,
        status_message: str | None = None,
    ) -> None:
        detail = f"HTTP {http_status}"
        if status_code is not None:
            detail += f" (OCPI status {status_code}"
            detail += f": {status_message})" if status_message else ")"
        super().__init__(method, url, detail)
        self.http_status = http_status
        self.status_code = status_code
        self.status_message = status_message


class PartnerBadResponse(PartnerError):
    pass


class PartnerRefused(PartnerError):
    def __init__(self, method: str, url: str, status_code: int, status_message: str | None) -> None:
        detail = f"OCPI status {status_code}"
        if status_message:
            detail += f": {status_message}"
        super().__init__(method, url, detail)
        self.status_code = status_code
        self.status_message = status_message


class RegistrationError(OcpiError):
    status: Status = Status.CLIENT_ERROR


class BadCredentials(RegistrationError):
    status = Status.INVALID_PARAMETERS


class PartnerApiUnusable(RegistrationError):
    status = Status.CLIENT_API_UNUSABLE


class NoCommonVersion(RegistrationError):
    status = Status.UNSUPPORTED_VERSION


class MissingEndpoints(RegistrationError):
    status = Status.NO_MATCHING_ENDPOINTS
