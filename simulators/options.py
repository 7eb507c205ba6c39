"""Options of one simulated charger, validated when built; the CLI and the fleet fill them.

Version-neutral: nothing here knows how OCPP 1.6 or 2.0.1 put them on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from simulators.errors import OptionsError
from simulators.signed_meter import SIGNED_FAULTS

__all__ = ["REJECT_MODES", "SUPPORTED_VERSIONS", "ChargerOptions"]

SUPPORTED_VERSIONS = ("1.6", "2.0.1")
#: `reject_profiles`: none, those of transactions, or every profile.
REJECT_MODES = ("none", "tx", "all")
MAX_ID_TAG_LENGTH = 20


@dataclass(frozen=True, slots=True)
class ChargerOptions:
    """How one simulated charger connects and what its scripted run does."""

    url: str
    charger_id: str
    version: str = "1.6"
    connectors: int = 1
    sessions: int = 1
    session_seconds: float = 30.0
    meter_interval: float = 5.0
    tag: str = "SIMTAG01"
    password: str | None = None
    exit_when_done: bool = False
    vendor: str = "CsmsSim"
    model: str = "SimCharger-22"
    serial: str | None = None
    firmware: str = "1.0.0"
    seed: int | None = None
    rated_current_a: int = 32
    #: Send SignCertificate with a new key's CSR once booted (`--csr`); keep the signed
    #: chain and key in `cert_dir` as well as in memory.
    csr: bool = False
    cert_dir: str | None = None
    response_timeout: float = 30.0
    #: Wait before a new BootNotification when the CSMS says interval 0 with Pending/Rejected.
    boot_retry_seconds: float = 10.0
    #: wss:// only: the CA bundle (PEM) to trust instead of the system's (profile 2), and a
    #: client certificate with its key (profile 3).
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    #: Smart charging: how the charger is wired (1 or 3 phases) and the vehicles that plug
    #: in: phases they charge on, their onboard charger's current per phase (None: 16 or
    #: 32 A at random).
    phases: int = 3
    ev_phases: int = 3
    ev_max_current_a: int | None = None
    #: SetChargingProfile answered Rejected: "all", "tx" (TxProfile and TxDefaultProfile;
    #: a station maximum is taken) or "none"; `reject_zero`: any profile limiting to 0.
    reject_profiles: str = "none"
    reject_zero: bool = False
    #: 2.0.1: after TransactionEvent Started, NotifyEVChargingNeeds with a departure this
    #: many seconds later and this energy need (Wh); both or neither.
    departure_s: float | None = None
    energy_need_wh: int | None = None
    #: Eichrecht: the meter signs OCMF records of the energy register (begin, periodic, end)
    #: with its own P-256 key, read from `meter_key_file` (PEM; made there when missing) or
    #: new each run; `signed_fault` makes it misbehave (one of SIGNED_FAULTS).
    signed_meter: bool = False
    meter_key_file: str | None = None
    signed_fault: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise OptionsError(f"url must look like ws://host:port/path, got {self.url!r}")
        if not self.charger_id or any(c.isspace() for c in self.charger_id):
            raise OptionsError("charger id must be non-empty and contain no spaces")
        if self.version not in SUPPORTED_VERSIONS:
            known = ", ".join(SUPPORTED_VERSIONS)
            raise OptionsError(f"unknown OCPP version {self.version!r} (known: {known})")
        if not 1 <= self.connectors <= 99:
            raise OptionsError("connectors must be between 1 and 99")
        if self.sessions < 0:
            raise OptionsError("sessions cannot be negative")
        if self.session_seconds <= 0 or self.meter_interval <= 0:
            raise OptionsError("session seconds and meter interval must be positive")
        if not 1 <= len(self.tag) <= MAX_ID_TAG_LENGTH:
            raise OptionsError(f"tag must be 1 to {MAX_ID_TAG_LENGTH} characters")
        if self.response_timeout <= 0 or self.boot_retry_seconds <= 0:
            raise OptionsError("timeouts must be positive")
        if self.rated_current_a < 6:
            raise OptionsError("rated current must be at least 6 A")
        if (self.cert_file is None) != (self.key_file is None):
            raise OptionsError("a client certificate needs both --cert and --key")
        if parts.scheme == "ws" and (self.ca_file or self.cert_file):
            raise OptionsError("--ca, --cert and --key need a wss:// url")
        self._check_smart_charging()
        if (self.meter_key_file is not None or self.signed_fault is not None) and not (
            self.signed_meter
        ):
            raise OptionsError("--meter-key and --signed-fault need --signed-meter")
        if self.signed_fault is not None and self.signed_fault not in SIGNED_FAULTS:
            raise OptionsError(f"signed fault must be one of {', '.join(SIGNED_FAULTS)}")

    def _check_smart_charging(self) -> None:
        if self.phases not in (1, 3) or self.ev_phases not in (1, 3):
            raise OptionsError("phases and EV phases must be 1 or 3")
        if self.ev_max_current_a is not None and not 6 <= self.ev_max_current_a <= 80:
            raise OptionsError("EV max current must be between 6 and 80 A")
        if self.reject_profiles not in REJECT_MODES:
            raise OptionsError(f"reject profiles must be one of {', '.join(REJECT_MODES)}")
        if (self.departure_s is None) != (self.energy_need_wh is None):
            raise OptionsError("--departure and --energy-need go together")
        if self.departure_s is not None and self.energy_need_wh is not None:
            if self.version != "2.0.1":
                raise OptionsError("--departure and --energy-need need OCPP 2.0.1")
            if self.departure_s <= 0 or self.energy_need_wh <= 0:
                raise OptionsError("departure and energy need must be positive")

    @property
    def endpoint(self) -> str:
        """The websocket address: the CSMS url with the charger id as last path segment."""
        return f"{self.url.rstrip('/')}/{quote(self.charger_id, safe='')}"

    @property
    def serial_number(self) -> str:
        return self.serial if self.serial is not None else f"SN-{self.charger_id}"
