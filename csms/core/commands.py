"""Commands the CSMS sends to chargers, version-neutral: what staff or partners ask for, with
everything resolved that the wire needs, and the neutral answer each version's reply becomes.

No I/O and no OCPP field names here; the version adapters translate both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from csms.core.authorization import AuthResult
from csms.core.errors import ChargerBusy as ChargerBusy
from csms.core.errors import ChargerCallError as ChargerCallError
from csms.core.errors import CommandRefused as CommandRefused
from csms.core.versions import OcppVersion


class CommandName(StrEnum):
    """The command names of `csms remote` and of the operator API (fixed by contract)."""

    START = "start"
    STOP = "stop"
    RESET = "reset"
    UNLOCK = "unlock"
    AVAILABILITY = "availability"
    CONFIG_GET = "config-get"
    CONFIG_SET = "config-set"
    TRIGGER = "trigger"
    CLEAR_CACHE = "clear-cache"
    DATA_TRANSFER = "data-transfer"
    RESERVE = "reserve"
    CANCEL_RESERVATION = "cancel-reservation"
    LOCAL_LIST_SEND = "local-list-send"
    LOCAL_LIST_VERSION = "local-list-version"
    FIRMWARE = "firmware"
    DIAGNOSTICS = "diagnostics"
    PROFILE_SET = "profile-set"
    PROFILE_CLEAR = "profile-clear"
    PROFILE_COMPOSITE = "profile-composite"
    CERTIFICATES_INSTALL = "certificates-install"
    CERTIFICATES_LIST = "certificates-list"
    CERTIFICATES_DELETE = "certificates-delete"
    CERTIFICATES_RENEW = "certificates-renew"
    # Sent by the CSMS itself after a charger's SignCertificate; not an API command.
    CERTIFICATE_SIGNED = "certificate-signed"


# Commands the CSMS sends on its own: audited like the others, not served by the API.
INTERNAL_COMMANDS = frozenset({CommandName.CERTIFICATE_SIGNED})


class Outcome(StrEnum):
    """How a command ended. Only ACCEPTED is a success."""

    ACCEPTED = "accepted"  # the charger agreed (Accepted, Unlocked, Scheduled, RebootRequired)
    REJECTED = "rejected"  # the charger answered, and said no
    NOT_CONNECTED = "not_connected"
    TIMED_OUT = "timed_out"
    CALL_ERROR = "call_error"  # the charger answered with a CALLERROR
    INVALID = "invalid"  # refused by the CSMS before anything was sent

    @property
    def ok(self) -> bool:
        return self is Outcome.ACCEPTED


# --- the commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteStart:
    id_tag: str
    token_type: str
    evse_id: int | None
    remote_start_id: int


@dataclass(frozen=True, slots=True)
class RemoteStop:
    transaction_id: int  # ours
    ocpp_transaction_id: str  # on the wire (1.6: our id as a number)


@dataclass(frozen=True, slots=True)
class Reset:
    hard: bool


@dataclass(frozen=True, slots=True)
class Unlock:
    evse_id: int


@dataclass(frozen=True, slots=True)
class ChangeAvailability:
    operative: bool
    evse_id: int | None  # None: the whole charger


@dataclass(frozen=True, slots=True)
class VariableKey:
    """An OCPP 2.0.1 variable as staff write it: `Component[.instance].Variable`."""

    component: str
    variable: str
    instance: str | None = None

    @classmethod
    def parse(cls, text: str) -> VariableKey:
        parts = text.split(".")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        if len(parts) == 3 and all(parts):
            return cls(parts[0], parts[2], parts[1])
        raise CommandRefused(
            f"{text!r} is not a 2.0.1 variable: write Component.Variable or "
            "Component.instance.Variable (e.g. OCPPCommCtrlr.HeartbeatInterval)"
        )

    def __str__(self) -> str:
        if self.instance:
            return f"{self.component}.{self.instance}.{self.variable}"
        return f"{self.component}.{self.variable}"


@dataclass(frozen=True, slots=True)
class GetConfiguration:
    keys: tuple[str, ...]  # empty: everything the charger will report (1.6 only)


@dataclass(frozen=True, slots=True)
class SetConfiguration:
    key: str
    value: str


# What TriggerMessage may ask for, per version; the other version's name is translated.
TRIGGERS_V16 = frozenset(
    {
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    }
)
TRIGGERS_V201 = frozenset(
    {
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargingStationCertificate",
        "SignV2GCertificate",
        "StatusNotification",
        "TransactionEvent",
        "SignCombinedCertificate",
        "PublishFirmwareStatusNotification",
    }
)
_TRIGGERS = {OcppVersion.V16: TRIGGERS_V16, OcppVersion.V201: TRIGGERS_V201}
_TRIGGER_ALIASES = {
    OcppVersion.V16: {"LogStatusNotification": "DiagnosticsStatusNotification"},
    OcppVersion.V201: {"DiagnosticsStatusNotification": "LogStatusNotification"},
}


# What TriggerMessage may ask for of a charger of either version.
TRIGGERS = TRIGGERS_V16 | TRIGGERS_V201


def check_trigger(requested: str) -> None:
    """Refuse, naming the choices, a message no charger of either version can be asked
    for (the charger's own version is checked once it is known, by trigger_name)."""
    if requested.lower() not in {n.lower() for n in TRIGGERS}:
        raise CommandRefused(
            f"{requested!r} is not a message TriggerMessage can ask for; choose one of: "
            f"{', '.join(sorted(TRIGGERS))}"
        )


def trigger_name(requested: str, version: OcppVersion) -> str:
    """The TriggerMessage name for a charger of `version` (case-insensitive; the other
    version's name for the same message is accepted)."""
    names = _TRIGGERS[version]
    by_lower = {n.lower(): n for n in (*names, *_TRIGGER_ALIASES[version])}
    found = by_lower.get(requested.lower())
    if found is None:
        raise CommandRefused(
            f"{requested!r} cannot be triggered on an OCPP {version} charger; "
            f"choose one of: {', '.join(sorted(names))}"
        )
    return _TRIGGER_ALIASES[version].get(found, found)


@dataclass(frozen=True, slots=True)
class Trigger:
    message: str  # already the name of the charger's version
    evse_id: int | None


@dataclass(frozen=True, slots=True)
class ClearCache:
    pass


@dataclass(frozen=True, slots=True)
class DataTransfer:
    vendor_id: str
    message_id: str | None
    data: str | None


@dataclass(frozen=True, slots=True)
class Reserve:
    reservation_id: int
    id_tag: str
    token_type: str
    parent_id_tag: str | None
    expires_at: datetime
    evse_id: int | None  # None: any EVSE


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class LocalListEntry:
    uid: str
    token_type: str
    auth: AuthResult | None  # None: remove the entry (differential updates)


@dataclass(frozen=True, slots=True)
class SendLocalList:
    version: int
    full: bool
    entries: tuple[LocalListEntry, ...]


@dataclass(frozen=True, slots=True)
class GetLocalListVersion:
    pass


@dataclass(frozen=True, slots=True)
class GetLocalListLimits:
    """How many entries a charger takes per SendLocalList and holds in all (Answer.data:
    `per_message`, `max_entries`, each None when the charger does not say)."""


@dataclass(frozen=True, slots=True)
class UpdateFirmware:
    request_id: int
    location: str
    retrieve_at: datetime


@dataclass(frozen=True, slots=True)
class GetDiagnostics:
    request_id: int
    location: str


class ProfilePurpose(StrEnum):
    """Charging profile purposes, by their OCPP 1.6 names (2.0.1 calls the last one
    ChargingStationMaxProfile)."""

    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"
    CHARGER_MAX = "ChargePointMaxProfile"

    @classmethod
    def parse(cls, text: str) -> ProfilePurpose:
        if text.lower() == "chargingstationmaxprofile":
            return cls.CHARGER_MAX
        for purpose in cls:
            if purpose.value.lower() == text.lower():
                return purpose
        raise CommandRefused(
            f"unknown profile purpose {text!r}; choose one of: {', '.join(p.value for p in cls)}"
        )


# Periods one charging schedule may have (the most OCPP 2.0.1 allows).
MAX_PERIODS = 1024


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """From `start_s` seconds into a charging schedule on, at most `limit` (in its unit)."""

    start_s: int
    limit: float


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A charging schedule from `start_at` for `duration_s` (or until cleared): one constant
    `limit`, or with `periods` several limits one after the other (`limit` is then the
    first one's). A `relative` schedule counts from the start of charging instead (TxProfile
    and TxDefaultProfile; `start_at` is then only when it was made)."""

    profile_id: int
    evse_id: int  # 0: the whole charger
    purpose: ProfilePurpose
    stack_level: int
    limit: float
    unit: str  # "W" or "A"
    start_at: datetime
    duration_s: int | None = None
    ocpp_transaction_id: str | None = None  # TxProfile only
    periods: tuple[SchedulePeriod, ...] = ()  # empty: `limit` from 0 s
    min_rate: float | None = None  # the lowest rate the EV charges at (a hint, in the unit)
    relative: bool = False

    @property
    def schedule(self) -> tuple[SchedulePeriod, ...]:
        """The periods as sent: `periods`, or the one constant `limit`."""
        return self.periods or (SchedulePeriod(0, self.limit),)


@dataclass(frozen=True, slots=True)
class SetChargingProfile:
    profile: ChargingProfile


@dataclass(frozen=True, slots=True)
class ClearChargingProfile:
    """Clear one profile by id, or those matching every criterion given; nothing given:
    every profile on the charger."""

    profile_id: int | None
    evse_id: int | None = None
    purpose: ProfilePurpose | None = None


@dataclass(frozen=True, slots=True)
class GetCompositeSchedule:
    evse_id: int
    duration_s: int
    unit: str | None


@dataclass(frozen=True, slots=True)
class InstallCertificate:
    kind: str  # a csms.core.charger_certificates.CertificateKind value
    pem: str


@dataclass(frozen=True, slots=True)
class GetInstalledCertificates:
    kinds: tuple[str, ...]  # CertificateKind values; empty: every kind (2.0.1)


@dataclass(frozen=True, slots=True)
class DeleteCertificate:
    """A certificate named by its hash data (csms.core.charger_certificates.HashData)."""

    algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial: str


@dataclass(frozen=True, slots=True)
class RequestCertificate:
    """Ask the charger to send a new signing request for its own certificate (2.0.1
    TriggerMessage SignChargingStationCertificate, 1.6 ExtendedTriggerMessage
    SignChargePointCertificate)."""


@dataclass(frozen=True, slots=True)
class SendCertificate:
    """The chain our CA signed for the charger (CertificateSigned)."""

    chain_pem: str
    use: str = "ChargingStationCertificate"  # a CertificateUse value


Command = (
    RemoteStart
    | RemoteStop
    | Reset
    | Unlock
    | ChangeAvailability
    | GetConfiguration
    | SetConfiguration
    | Trigger
    | ClearCache
    | DataTransfer
    | Reserve
    | CancelReservation
    | SendLocalList
    | GetLocalListVersion
    | GetLocalListLimits
    | UpdateFirmware
    | GetDiagnostics
    | SetChargingProfile
    | ClearChargingProfile
    | GetCompositeSchedule
    | InstallCertificate
    | GetInstalledCertificates
    | DeleteCertificate
    | RequestCertificate
    | SendCertificate
)


# --- answers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A charger's reply in neutral terms: its status word, whether that is a yes, a reason
    it gave, and command-specific data (configuration keys, a schedule, a list version...)."""

    status: str
    ok: bool
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command came to, as shown to staff and recorded in the audit log."""

    id: int
    charge_point_id: str
    command: CommandName
    action: str | None
    outcome: Outcome
    status: str | None  # the charger's status word, when it answered
    message: str  # one line for people
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome.ok


@dataclass(frozen=True, slots=True)
class RoutedCommand:
    """A command another node stored for a charger this node holds, to be sent here: the
    request in its JSON form, who asked, how long the charger has to answer, the party
    vouching for its token (JSON form, if any) and the node to tell when it is done."""

    id: int
    charge_point_id: str
    command: CommandName
    request: dict[str, Any]
    source: str
    requested_by: str | None
    timeout: float
    vouched: dict[str, Any] | None
    origin_node: str


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One audit log entry."""

    id: int
    charge_point_id: str
    command: str
    action: str | None
    params: dict[str, Any]
    source: str
    requested_by: str | None
    outcome: str | None  # None while waiting for the charger
    status: str | None
    message: str | None
    answer: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
