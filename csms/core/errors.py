"""Every error the CSMS domain and its services raise, in one tree, and how any error is
shown in one line. Nothing here does I/O; each class says who raises it and what to do.

CsmsError
 ├── InvalidInput              a value the domain cannot accept: refuse the request (400,
 │    │                        OCPI 2001, a CLI message), never retry it unchanged
 │    ├── InvalidTimestamp     not an RFC 3339 date-time (csms.core.clock.parse_timestamp)
 │    │    └── TimestampOutOfRange   well formed, but outside the years 1 to 9999 in UTC
 │    ├── OutOfBounds          a number, depth or date-time outside its bounds (core.bounds)
 │    ├── InvalidParty         not an OCPI party `CC*PID` (core.parties)
 │    ├── InvalidLocation      a location, EVSE, connector or opening hours staff described
 │    ├── FieldError           a field of an OCPI object partners or staff hand us; `path`
 │    │                        (core.ocpi_fields; core.ocpi_tokens calls it InvalidToken)
 │    ├── TariffError          a tariff document that does not follow OCPI 2.2.1 (core.tariffs)
 │    ├── BadPartnerName       not 1-64 letters, digits, '.', '_' or '-' (services.partners)
 │    ├── BadProfile           an unknown partner profile or switch (services.partners)
 │    ├── InvalidCommand       an OCPI command body breaking 2.2.1 (core.ocpi_commands): 2001
 │    ├── OcmfError            an OCMF record, meter key or signature algorithm that cannot be
 │    │                        used; `problem` is its SignatureProblem (core.ocmf)
 │    └── BadProfileRequest    an OCPI charging profile request (core.ocpi_profiles): 2001
 ├── NotFound                  an id that names nothing: 404, or say what was looked for
 │    ├── UnknownChargePoint   a charge point id that is not registered
 │    ├── UnknownToken         a token uid that is not stored
 │    ├── UnknownTransaction   a transaction id that is not stored
 │    ├── UnknownLocation      a location id that is not stored
 │    ├── UnknownTariff        a tariff id that is not stored
 │    ├── UnknownCdr           a CDR id that is not stored
 │    ├── UnknownPartner       no OCPI partner of that name
 │    ├── UnknownUser          no staff user of the operator API of that name
 │    └── UnknownSite          no smart-charging site of that id (services.sites)
 ├── AlreadyExists             the name or id is taken: choose another, or change that one
 │    ├── PartnerExists        an OCPI partner of that name exists
 │    ├── UserExists           a staff user of that name exists
 │    └── SiteExists           a smart-charging site of that id exists
 ├── StateChanged              an OCPI partner changed while a handshake was under way: the
 │                             handshake is refused, the other side may try again
 ├── CommandRefused            the CSMS will not send this command (bad parameters, unknown
 │                             transaction ...): outcome `invalid`, nothing was sent
 ├── ChargerCallError          the charger answered our CALL with a CALLERROR: outcome
 │                             `call_error`, with its code and description
 ├── ChargerBusy               (also a TimeoutError) the time ran out while earlier CALLs to
 │                             the same charger were unanswered: outcome `timed_out`
 ├── TooManyPeriods            pricing a session would take more charging periods than allowed
 ├── CdrTooLarge               a CDR would exceed billing.max_cdr_bytes: held, staff look
 ├── CostUnavailable           a session's cost cannot be computed from what is stored
 └── PkiError                  the certificate authority cannot do it (csms.services.pki):
      │                        staff read the message and act
      ├── NoCa                 no CA in the directory yet (`csms ca init`)
      ├── CaExists             `init` where a CA already is (`csms ca rotate` replaces it)
      ├── BadCa                a CA to import, or the one on disk, is unusable
      └── UnknownCa            no previous CA with that serial (retire)

None of these is a ValueError: a caller catches the class it can handle, so a ValueError
from a bug is never mistaken for bad input. A precondition a caller broke (a naive
datetime, a negative period) is a bug and stays a ValueError.

The OCPI bridge has its own tree (`ocpi_cpo.errors.OcpiError`: failures answered to the
request in hand, `PartnerError` for calls we made to partners, registration errors);
storage has `csms.storage.database.DatabaseClosed`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class CsmsError(Exception):
    """Root of every error raised by the CSMS domain and services; its message is one line
    meant for people (the CLI and the API show it as it is)."""


# --- input --------------------------------------------------------------------------------


class InvalidInput(CsmsError):
    """A value the domain cannot accept; the message says which and why. Raised by the
    parsers and checks of `csms.core` and by the services; the caller refuses the request
    (HTTP 400, OCPI 2001, a CLI error line) and never retries it unchanged."""


class InvalidTimestamp(InvalidInput):
    """Text that is not an RFC 3339 / ISO 8601 date-time (`parse_timestamp`); the message is
    the parser's. Callers answer with their own wording naming the field."""


class TimestampOutOfRange(InvalidTimestamp):
    """A well-formed date-time whose instant is not within the years 1 to 9999 in UTC (such
    as 9999-12-31T23:59:59-05:00): Python, databases and OCPI cannot hold it."""


class OutOfBounds(InvalidInput):
    """A value outside what the system accepts (`csms.core.bounds`); the message names it
    and the bound. The API answers 400, OCPI 2001, a command is refused."""


class InvalidParty(InvalidInput):
    """Text or values that name no OCPI party (`Party`, `parse_party`, `check_origin`); the
    message shows the expected form."""


class InvalidLocation(InvalidInput):
    """A location, EVSE, connector or opening hours as staff described them
    (`csms.core.locations`, `csms.core.ocpi_locations`, `csms.services.locations`); the
    message names the field."""


class FieldError(InvalidInput):
    """A field of an OCPI object (tariff, token, command) that cannot be accepted; `path`
    names the field ("" for the whole object, `a.b` within it) and the message says what is
    wrong. Raised by `csms.core.ocpi_fields` and the parsers built on it; OCPI routes answer
    2001 with the text."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class TariffError(InvalidInput):
    """A tariff document that does not follow OCPI 2.2.1 (`csms.core.tariffs`).

    `path` locates the offending field (`elements[0].price_components[1].step_size`, prefixed
    with `[i].` for the i-th tariff of a list); `tariff_id` is the tariff's id when it had one.
    A stored tariff that raises it holds the CDRs it prices until staff mend it.
    """

    def __init__(self, message: str, path: str = "", tariff_id: str | None = None) -> None:
        self.message = message
        self.path = path
        self.tariff_id = tariff_id
        super().__init__(message, path, tariff_id)

    def __str__(self) -> str:
        who = "tariff" if self.tariff_id is None else f'tariff "{self.tariff_id}"'
        return f"{who}: {self.path}: {self.message}" if self.path else f"{who}: {self.message}"


class BadPartnerName(InvalidInput):
    """An OCPI partner name that is not 1-64 letters, digits, '.', '_' or '-'
    (`csms.services.partners`)."""


class BadProfile(InvalidInput):
    """An unknown partner profile or profile switch (`csms.services.partners`)."""


class InvalidCommand(InvalidInput):
    """An OCPI command request body that breaks the 2.2.1 rules (`csms.core.ocpi_commands`);
    answered with OCPI status 2001, the text says where."""


class SignatureProblem(StrEnum):
    """Why the signed values of a transaction cannot back its bill; the value is what the
    hold reason, the metric label and the CLI show."""

    MALFORMED = "malformed"
    NO_PUBLIC_KEY = "no_public_key"
    BAD_KEY = "bad_key"
    UNKNOWN_ALGORITHM = "unknown_algorithm"
    BAD_SIGNATURE = "bad_signature"
    NO_SIGNED_VALUES = "no_signed_values"
    NO_BEGIN = "no_begin"
    NO_END = "no_end"
    METER_CHANGED = "meter_changed"
    PAGINATION_GAP = "pagination_gap"
    # A reading the meter itself marks unusable: status other than G (OK), an error flag
    # for energy (EF contains E) or an exception (TX=X). The specification requires such a
    # record to fail the check.
    METER_ERROR = "meter_error"
    ENERGY_MISMATCH = "energy_mismatch"


class OcmfError(InvalidInput):
    """An OCMF record, meter key or signature algorithm that cannot be used (raised by
    `csms.core.ocmf` and `csms.services.meter_signatures`); `problem` says which rule it breaks
    and the message is one line (`OcmfError(problem, detail)`)."""

    def __init__(self, problem: SignatureProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


class BadProfileRequest(InvalidInput):
    """A parameter of an OCPI charging profile request is missing or invalid
    (`csms.core.ocpi_profiles`); answered with OCPI status 2001."""


# --- lookups ------------------------------------------------------------------------------


class NotFound(CsmsError):
    """An id that names nothing; the message says what was looked for. The API answers 404,
    the CLI prints the message."""


class UnknownChargePoint(NotFound):
    """A charge point id that is not registered."""


class UnknownToken(NotFound):
    """A token uid that is not stored (staff use cases)."""


class UnknownTransaction(NotFound):
    """A transaction id that is not stored."""


class UnknownLocation(NotFound):
    """A location id that is not stored."""


class UnknownTariff(NotFound):
    """A tariff id that is not stored."""


class UnknownCdr(NotFound):
    """A CDR id that is not stored."""


class UnknownPartner(NotFound):
    """No OCPI partner of that name (`csms.services.partners`)."""


class UnknownUser(NotFound):
    """No staff user of the operator API of that name (`csms.services.users`)."""


class UnknownSite(NotFound):
    """No smart-charging site of that id (`csms.services.sites`): `csms sites list` shows
    them."""


class AlreadyExists(CsmsError):
    """An id or name that is taken (a user, a token, a charger ...): the caller picks another
    or changes the existing one."""


class PartnerExists(AlreadyExists):
    """An OCPI partner of that name exists."""


class UserExists(AlreadyExists):
    """A staff user of the operator API of that name exists (`csms users add`)."""


class SiteExists(AlreadyExists):
    """A smart-charging site of that id exists: change it with `csms sites set`."""


class StateChanged(CsmsError):
    """An OCPI partner changed (another handshake, staff) while a handshake was under way;
    the handshake is refused and the other side may try again."""


# --- commands -----------------------------------------------------------------------------


class CommandRefused(CsmsError):
    """The CSMS will not send this command (bad parameters, unknown transaction, ...): the
    command service records outcome `invalid`; nothing reached the charger."""


class ChargerCallError(CsmsError):
    """The charger answered a CALL with a CALLERROR (raised by the connection session); the
    command ends with outcome `call_error`, `code` and `description` as the charger sent
    them."""

    def __init__(self, code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


class ChargerBusy(CsmsError, TimeoutError):
    """The time ran out while earlier CALLs to the same charger were still unanswered; a
    TimeoutError too, so that it ends a command as `timed_out`."""


# --- billing ------------------------------------------------------------------------------


class TooManyPeriods(CsmsError):
    """Pricing a session would take more charging periods than allowed (a session that spans
    years under a time-of-day tariff): it is refused before the work is done
    (`csms.core.cost`)."""


class CdrTooLarge(CsmsError):
    """A CDR would exceed billing.max_cdr_bytes; the billing worker holds it for staff."""


class CostUnavailable(CsmsError):
    """A session's cost cannot be computed from what is stored (a time or a number no
    arithmetic can hold); the message says what failed."""


# --- certificate authority ----------------------------------------------------------------


class PkiError(CsmsError):
    """Root of the certificate authority's errors (csms.services.pki); the CLI prints the
    message. A refused signing request is no exception (a Refused value)."""


class NoCa(PkiError):
    """No CA in the directory yet: create or import one with `csms ca init`."""


class CaExists(PkiError):
    """`init` where a CA already is: `csms ca rotate` replaces it."""


class BadCa(PkiError):
    """A CA to import, or the one on disk, is unusable; the message says why."""


class UnknownCa(PkiError):
    """No previous CA with that serial (`csms ca retire`)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An error as people read it in a list or a log field: its type and message on one
    line, at most `limit` characters. A database driver's error is shown as the driver
    raised it (without the statement a wrapper such as SQLAlchemy's adds)."""
    shown: BaseException = exc
    original = getattr(exc, "orig", None)
    if isinstance(original, BaseException):
        shown = original
    text = " ".join(str(shown).split())
    name = type(shown).__name__
    return (f"{name}: {text}" if text else name)[:limit]
