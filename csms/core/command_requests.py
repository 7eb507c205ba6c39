"""What staff (csms remote, the operator API) and partners (OCPI) ask a charger to do: one
typed request per command, read from the JSON parameters the API takes, and the JSON form
the audit log keeps.

Pure values and checks, no I/O: whatever can be checked without the charger is checked
here (names, types, ranges, choices, how parameters combine; the parameters one by one
with csms.core.command_params); what depends on the charger (its OCPP version's limits, its
transactions and reservations) is csms.services.commands'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from csms.core.charger_certificates import (
    INSTALLABLE,
    LISTABLE,
    CertificateUse,
    HashData,
    parse_hash_data,
)
from csms.core.clock import format_timestamp
from csms.core.command_params import ALLOWED, Params
from csms.core.commands import (
    CommandName,
    CommandRefused,
    ProfilePurpose,
    SchedulePeriod,
    check_trigger,
)
from csms.core.versions import ProtocolLimits

# --- the requests: one per command; `params()` is the JSON form the audit log keeps ----------


def _optional(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


@dataclass(frozen=True, slots=True)
class StartRequest:
    name: ClassVar[CommandName] = CommandName.START
    tag: str
    evse: int | None = None  # None: the charger picks

    def params(self) -> dict[str, Any]:
        return _optional(tag=self.tag, evse=self.evse)


@dataclass(frozen=True, slots=True)
class StopRequest:
    name: ClassVar[CommandName] = CommandName.STOP
    transaction: int  # ours

    def params(self) -> dict[str, Any]:
        return {"transaction": self.transaction}


@dataclass(frozen=True, slots=True)
class ResetRequest:
    name: ClassVar[CommandName] = CommandName.RESET
    hard: bool = False

    def params(self) -> dict[str, Any]:
        return {"hard": True} if self.hard else {}


@dataclass(frozen=True, slots=True)
class UnlockRequest:
    name: ClassVar[CommandName] = CommandName.UNLOCK
    evse: int

    def params(self) -> dict[str, Any]:
        return {"evse": self.evse}


@dataclass(frozen=True, slots=True)
class AvailabilityRequest:
    name: ClassVar[CommandName] = CommandName.AVAILABILITY
    operative: bool
    evse: int | None = None  # None: the whole charger

    def params(self) -> dict[str, Any]:
        state = "operative" if self.operative else "inoperative"
        return _optional(state=state, evse=self.evse)


@dataclass(frozen=True, slots=True)
class ConfigGetRequest:
    name: ClassVar[CommandName] = CommandName.CONFIG_GET
    keys: tuple[str, ...] = ()  # empty: everything the charger reports (1.6)

    def params(self) -> dict[str, Any]:
        return {"keys": list(self.keys)} if self.keys else {}


@dataclass(frozen=True, slots=True)
class ConfigSetRequest:
    name: ClassVar[CommandName] = CommandName.CONFIG_SET
    key: str  # a 1.6 key or a 2.0.1 Component[.instance].Variable
    value: str

    def params(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    name: ClassVar[CommandName] = CommandName.TRIGGER
    message: str  # as asked: either version's name, any case
    evse: int | None = None

    def params(self) -> dict[str, Any]:
        return _optional(message=self.message, evse=self.evse)


@dataclass(frozen=True, slots=True)
class ClearCacheRequest:
    name: ClassVar[CommandName] = CommandName.CLEAR_CACHE

    def params(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class DataTransferRequest:
    name: ClassVar[CommandName] = CommandName.DATA_TRANSFER
    vendor: str
    message_id: str | None = None
    data: str | None = None

    def params(self) -> dict[str, Any]:
        return _optional(vendor=self.vendor, message_id=self.message_id, data=self.data)


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    name: ClassVar[CommandName] = CommandName.RESERVE
    tag: str
    expires: datetime
    evse: int | None = None  # None: any EVSE

    def params(self) -> dict[str, Any]:
        return _optional(tag=self.tag, expires=format_timestamp(self.expires), evse=self.evse)


@dataclass(frozen=True, slots=True)
class CancelReservationRequest:
    name: ClassVar[CommandName] = CommandName.CANCEL_RESERVATION
    reservation: int  # ours

    def params(self) -> dict[str, Any]:
        return {"reservation": self.reservation}


@dataclass(frozen=True, slots=True)
class LocalListSendRequest:
    name: ClassVar[CommandName] = CommandName.LOCAL_LIST_SEND
    full: bool = True  # False: the changes since the list last sent

    def params(self) -> dict[str, Any]:
        return {"mode": "full" if self.full else "differential"}


@dataclass(frozen=True, slots=True)
class LocalListVersionRequest:
    name: ClassVar[CommandName] = CommandName.LOCAL_LIST_VERSION

    def params(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class FirmwareRequest:
    name: ClassVar[CommandName] = CommandName.FIRMWARE
    location: str
    retrieve: datetime | None = None  # None: now

    def params(self) -> dict[str, Any]:
        return _optional(location=self.location, retrieve=_time(self.retrieve))


@dataclass(frozen=True, slots=True)
class DiagnosticsRequest:
    name: ClassVar[CommandName] = CommandName.DIAGNOSTICS
    location: str

    def params(self) -> dict[str, Any]:
        return {"location": self.location}


@dataclass(frozen=True, slots=True)
class ProfileSetRequest:
    """One `limit`, or a schedule (`periods`), from now, from `start` or, `relative`, from
    the start of charging; a TxProfile is for the transaction running on the EVSE (which
    must be `transaction` when that is given)."""

    name: ClassVar[CommandName] = CommandName.PROFILE_SET
    evse: int  # 0: the whole charger
    unit: str  # "W" or "A"
    limit: float | None = None  # None when periods are given
    periods: tuple[SchedulePeriod, ...] = ()
    purpose: ProfilePurpose = ProfilePurpose.TX_DEFAULT
    stack: int = 0
    duration: int | None = None
    start: datetime | None = None
    relative: bool = False
    min_rate: float | None = None
    transaction: int | None = None

    @property
    def first_limit(self) -> float:
        """The limit from the schedule's start."""
        if self.periods:
            return self.periods[0].limit
        assert self.limit is not None
        return self.limit

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"evse": self.evse, "purpose": self.purpose.value}
        out["stack"] = self.stack
        if self.transaction is not None:
            out["transaction"] = self.transaction
        out["unit"] = self.unit
        if self.periods:
            out["periods"] = [f"{p.start_s}:{p.limit!r}" for p in self.periods]
        elif self.limit is not None:
            out["limit"] = self.limit
        if self.relative:
            out["relative"] = True
        if self.start is not None:
            out["start"] = format_timestamp(self.start)
        return {**out, **_optional(duration=self.duration, min_rate=self.min_rate)}


@dataclass(frozen=True, slots=True)
class ProfileClearRequest:
    """Clear one profile (`profile_id`), the TxProfiles of a running `transaction`, or
    (neither) every profile on the charger."""

    name: ClassVar[CommandName] = CommandName.PROFILE_CLEAR
    profile_id: int | None = None
    transaction: int | None = None

    def params(self) -> dict[str, Any]:
        return _optional(id=self.profile_id, transaction=self.transaction)


@dataclass(frozen=True, slots=True)
class ProfileCompositeRequest:
    name: ClassVar[CommandName] = CommandName.PROFILE_COMPOSITE
    evse: int  # 0: the whole charger
    duration: int
    unit: str | None = None  # None: the charger's choice

    def params(self) -> dict[str, Any]:
        return _optional(evse=self.evse, duration=self.duration, unit=self.unit)


# The longest certificate (InstallCertificate) and chain (CertificateSigned) OCPP carries.
CERTIFICATE_MAX = 5500
CHAIN_MAX = 10_000


@dataclass(frozen=True, slots=True)
class CertificateInstallRequest:
    name: ClassVar[CommandName] = CommandName.CERTIFICATES_INSTALL
    kind: str  # a CertificateKind value (INSTALLABLE)
    pem: str

    def params(self) -> dict[str, Any]:
        return {"type": self.kind, "certificate": self.pem}


@dataclass(frozen=True, slots=True)
class CertificateListRequest:
    name: ClassVar[CommandName] = CommandName.CERTIFICATES_LIST
    kinds: tuple[str, ...] = ()  # CertificateKind values; empty: every kind (1.6: csms-root)

    def params(self) -> dict[str, Any]:
        return {"type": list(self.kinds)} if self.kinds else {}


@dataclass(frozen=True, slots=True)
class CertificateDeleteRequest:
    """The certificate to delete by its hash data, or (`pem`) the certificate itself, whose
    hash data the CSMS computes."""

    name: ClassVar[CommandName] = CommandName.CERTIFICATES_DELETE
    hash_data: HashData | None = None
    pem: str | None = None

    def params(self) -> dict[str, Any]:
        if self.hash_data is not None:
            return {"hash_data": str(self.hash_data)}
        return {"certificate": self.pem}


@dataclass(frozen=True, slots=True)
class CertificateRenewRequest:
    name: ClassVar[CommandName] = CommandName.CERTIFICATES_RENEW

    def params(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class CertificateSignedRequest:
    """The chain our CA signed for a charger's request (sent by the CSMS itself)."""

    name: ClassVar[CommandName] = CommandName.CERTIFICATE_SIGNED
    chain_pem: str
    use: CertificateUse = CertificateUse.CHARGING_STATION

    def params(self) -> dict[str, Any]:
        return {"chain": self.chain_pem, "type": self.use.value}


CommandRequest = (
    StartRequest
    | StopRequest
    | ResetRequest
    | UnlockRequest
    | AvailabilityRequest
    | ConfigGetRequest
    | ConfigSetRequest
    | TriggerRequest
    | ClearCacheRequest
    | DataTransferRequest
    | ReserveRequest
    | CancelReservationRequest
    | LocalListSendRequest
    | LocalListVersionRequest
    | FirmwareRequest
    | DiagnosticsRequest
    | ProfileSetRequest
    | ProfileClearRequest
    | ProfileCompositeRequest
    | CertificateInstallRequest
    | CertificateListRequest
    | CertificateDeleteRequest
    | CertificateRenewRequest
    | CertificateSignedRequest
)


# --- reading a request from its JSON parameters ----------------------------------------------


def parse_request(
    name: CommandName,
    raw: Mapping[str, Any],
    now: datetime,
    limits: Iterable[ProtocolLimits],
) -> CommandRequest:
    """The request `raw` stands for, checked as far as it can be without the charger:
    names, types, ranges and choices (a TriggerMessage either version can send, ...) and
    how parameters combine. Lengths are those of the most generous of `limits` (the OCPP
    versions spoken); the charger's own version is checked once it is known.
    CommandRefused says what is wrong and, where there are choices, names them."""
    widest = list(limits)
    id_token_max = max(lim.id_token_max for lim in widest)
    config_key_max = max(lim.config_key_max for lim in widest)
    p = Params(raw, ALLOWED[name])
    match name:
        case CommandName.START:
            return StartRequest(p.required_text("tag", id_token_max), p.integer("evse", minimum=1))
        case CommandName.STOP:
            return StopRequest(p.required_integer("transaction", 1))
        case CommandName.RESET:
            return ResetRequest(p.flag("hard"))
        case CommandName.UNLOCK:
            return UnlockRequest(p.required_integer("evse", 1))
        case CommandName.AVAILABILITY:
            state = p.choice("state", ("operative", "inoperative"))
            return AvailabilityRequest(state == "operative", p.integer("evse"))
        case CommandName.CONFIG_GET:
            return ConfigGetRequest(p.texts("keys"))
        case CommandName.CONFIG_SET:
            return ConfigSetRequest(p.required_text("key", config_key_max), p.config_value("value"))
        case CommandName.TRIGGER:
            message = p.required_text("message", 64)
            check_trigger(message)
            return TriggerRequest(message, p.integer("evse"))
        case CommandName.CLEAR_CACHE:
            return ClearCacheRequest()
        case CommandName.DATA_TRANSFER:
            return DataTransferRequest(
                p.required_text("vendor", 255),
                p.text("message_id", max_len=50),
                p.text("data", max_len=100_000),
            )
        case CommandName.RESERVE:
            tag = p.required_text("tag", id_token_max)
            expires = p.time("expires", required=True)
            assert expires is not None
            evse = p.integer("evse", minimum=1)
            check_expiry(expires, now)
            return ReserveRequest(tag, expires, evse)
        case CommandName.CANCEL_RESERVATION:
            return CancelReservationRequest(p.required_integer("reservation", 1))
        case CommandName.LOCAL_LIST_SEND:
            mode = p.choice("mode", ("full", "differential"), default="full")
            return LocalListSendRequest(full=mode == "full")
        case CommandName.LOCAL_LIST_VERSION:
            return LocalListVersionRequest()
        case CommandName.FIRMWARE:
            return FirmwareRequest(p.required_text("location", 512), p.time("retrieve"))
        case CommandName.DIAGNOSTICS:
            return DiagnosticsRequest(p.required_text("location", 512))
        case CommandName.PROFILE_SET:
            return _profile_set(p)
        case CommandName.PROFILE_CLEAR:
            profile_id = p.integer("id", minimum=1)
            transaction = p.integer("transaction", minimum=1)
            if transaction is not None and profile_id is not None:
                raise CommandRefused("give either a profile id or a transaction, not both")
            return ProfileClearRequest(profile_id, transaction)
        case CommandName.PROFILE_COMPOSITE:
            evse = p.required_integer("evse")
            duration = p.required_integer("duration", 1)
            unit = p.choice("unit", ("W", "A")) if p.text("unit") else None
            return ProfileCompositeRequest(evse, duration, unit)
        case CommandName.CERTIFICATES_INSTALL:
            kind = p.choice("type", INSTALLABLE, default=INSTALLABLE[0])
            return CertificateInstallRequest(kind, _pem(p, "certificate", CERTIFICATE_MAX))
        case CommandName.CERTIFICATES_LIST:
            kinds = p.texts("type")
            for kind in kinds:
                if kind.lower() not in LISTABLE:
                    raise CommandRefused(f"parameter 'type' must be some of: {', '.join(LISTABLE)}")
            return CertificateListRequest(tuple(dict.fromkeys(k.lower() for k in kinds)))
        case CommandName.CERTIFICATES_DELETE:
            text = p.text("hash_data", max_len=400)
            if (text is None) == (not p.given("certificate")):
                raise CommandRefused("give either hash_data or a certificate, one of them")
            if text is not None:
                return CertificateDeleteRequest(parse_hash_data(text))
            return CertificateDeleteRequest(pem=_pem(p, "certificate", CHAIN_MAX))
        case CommandName.CERTIFICATES_RENEW:
            return CertificateRenewRequest()
        case CommandName.CERTIFICATE_SIGNED:
            use = p.choice("type", tuple(u.value for u in CertificateUse))
            return CertificateSignedRequest(_pem(p, "chain", CHAIN_MAX), CertificateUse(use))
    raise AssertionError(name)  # pragma: no cover


def _pem(p: Params, name: str, longest: int) -> str:
    """A PEM text parameter: BEGIN ... END armour, at most `longest` characters."""
    text = p.required_text(name, longest)
    if "-----BEGIN CERTIFICATE-----" not in text or "-----END CERTIFICATE-----" not in text:
        raise CommandRefused(f"parameter {name!r} must be a PEM certificate (BEGIN CERTIFICATE)")
    return text


def check_expiry(expires: datetime, now: datetime) -> None:
    """A reservation must end in the future."""
    if expires <= now:
        raise CommandRefused(f"expires {format_timestamp(expires)} is in the past")


def _profile_set(p: Params) -> ProfileSetRequest:
    """SetChargingProfile's parameters and how they combine."""
    evse = p.required_integer("evse")
    periods = p.periods("periods")
    if periods and p.given("limit"):
        raise CommandRefused("give either a limit or periods, not both")
    limit = None if periods else p.number("limit")
    unit = p.choice("unit", ("W", "A"))
    purpose = ProfilePurpose.parse(p.text("purpose") or ProfilePurpose.TX_DEFAULT.value)
    stack = p.integer("stack") or 0
    duration = p.integer("duration", minimum=1)
    start = p.time("start")
    relative = p.flag("relative")
    min_rate = p.rate("min_rate")
    transaction = p.integer("transaction", minimum=1)
    if purpose is ProfilePurpose.CHARGER_MAX and evse != 0:
        raise CommandRefused("a ChargePointMaxProfile applies to the whole charger: --evse 0")
    if relative and (start is not None or purpose is ProfilePurpose.CHARGER_MAX):
        raise CommandRefused(
            "a relative schedule counts from the start of charging: no start, and a "
            "TxProfile or TxDefaultProfile"
        )
    if transaction is not None and purpose is not ProfilePurpose.TX:
        raise CommandRefused("only a TxProfile is for a transaction")
    if purpose is ProfilePurpose.TX and evse == 0:
        raise CommandRefused("a TxProfile needs the EVSE of a running transaction")
    return ProfileSetRequest(
        evse=evse,
        unit=unit,
        limit=limit,
        periods=periods,
        purpose=purpose,
        stack=stack,
        duration=duration,
        start=start,
        relative=relative,
        min_rate=min_rate,
        transaction=transaction,
    )
