"""Configuration keys of a simulated OCPP 1.6 charge point (GetConfiguration, ChangeConfiguration).

Pure bookkeeping of keys, values and read-only flags; applying a change is the charger's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from simulators.meter import DEFAULT_MEASURANDS
from simulators.profiles import ProfileRules
from simulators.v16_meter import SUPPORTED_MEASURANDS

__all__ = [
    "FEATURE_PROFILES",
    "SEND_LOCAL_LIST_MAX_LENGTH",
    "ConfigKey",
    "ConfigStatus",
    "Configuration",
]

#: SupportedFeatureProfiles: every 1.6 profile.
FEATURE_PROFILES = ",".join(
    (
        "Core",
        "FirmwareManagement",
        "LocalAuthListManagement",
        "Reservation",
        "SmartCharging",
        "RemoteTrigger",
    )
)
#: Entries one SendLocalList may carry.
SEND_LOCAL_LIST_MAX_LENGTH = 50

Validator = Callable[[str], bool]


class ConfigStatus(StrEnum):
    """ChangeConfiguration.conf statuses."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


def _non_negative_int(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _boolean(value: str) -> bool:
    return value.lower() in ("true", "false")


def _measurands(value: str) -> bool:
    items = [item.strip() for item in value.split(",") if item.strip()]
    return all(item in SUPPORTED_MEASURANDS for item in items)


def _anything(value: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ConfigKey:
    key: str
    value: str
    readonly: bool
    validator: Validator = _anything

    def wire(self) -> dict[str, object]:
        return {"key": self.key, "readonly": self.readonly, "value": self.value}


def _seconds(value: float) -> str:
    return f"{value:g}"


class Configuration:
    """Keys in the order a charger lists them; unknown keys are reported as unknown."""

    def __init__(self, keys: Iterable[ConfigKey]) -> None:
        self._keys = {k.key: k for k in keys}

    @classmethod
    def defaults(
        cls,
        *,
        connectors: int,
        heartbeat_interval: float,
        meter_interval: float,
        local_list_max_length: int = 100,
        rules: ProfileRules | None = None,
        meter_public_key: str | None = None,
    ) -> Configuration:
        """The keys of a new charger; `rules` limit the charging profiles it takes. A charger
        with a signing meter lists its public key (hex of the DER SubjectPublicKeyInfo) as
        the read-only `MeterPublicKey`, the key a CSMS reads with GetConfiguration."""
        rules = rules or ProfileRules()
        sampled = ",".join(DEFAULT_MEASURANDS)
        rw, ro = False, True
        meter_key = (
            [] if meter_public_key is None else [ConfigKey("MeterPublicKey", meter_public_key, ro)]
        )
        return cls(
            [
                ConfigKey("AllowOfflineTxForUnknownId", "false", rw, _boolean),
                ConfigKey("AuthorizationCacheEnabled", "true", rw, _boolean),
                ConfigKey("AuthorizeRemoteTxRequests", "true", rw, _boolean),
                ConfigKey("ChargeProfileMaxStackLevel", str(rules.max_stack_level), ro),
                ConfigKey("ChargingScheduleAllowedChargingRateUnit", "Current,Power", ro),
                ConfigKey("ChargingScheduleMaxPeriods", str(rules.max_periods), ro),
                ConfigKey("ClockAlignedDataInterval", "0", rw, _non_negative_int),
                ConfigKey("ConnectionTimeOut", "60", rw, _non_negative_int),
                ConfigKey("GetConfigurationMaxKeys", "50", ro),
                ConfigKey("HeartbeatInterval", _seconds(heartbeat_interval), rw, _non_negative_int),
                ConfigKey("LocalAuthListEnabled", "true", rw, _boolean),
                ConfigKey("LocalAuthListMaxLength", str(local_list_max_length), ro),
                ConfigKey("LocalAuthorizeOffline", "true", rw, _boolean),
                ConfigKey("LocalPreAuthorize", "false", rw, _boolean),
                ConfigKey("MaxChargingProfilesInstalled", str(rules.max_installed), ro),
                *meter_key,
                ConfigKey("MeterValuesAlignedData", SUPPORTED_MEASURANDS[0], rw, _measurands),
                ConfigKey("MeterValuesSampledData", sampled, rw, _measurands),
                ConfigKey(
                    "MeterValueSampleInterval", _seconds(meter_interval), rw, _non_negative_int
                ),
                ConfigKey("NumberOfConnectors", str(connectors), ro),
                ConfigKey("ReserveConnectorZeroSupported", "false", ro),
                ConfigKey("ResetRetries", "1", rw, _non_negative_int),
                ConfigKey("SendLocalListMaxLength", str(SEND_LOCAL_LIST_MAX_LENGTH), ro),
                ConfigKey("StopTransactionOnEVSideDisconnect", "true", rw, _boolean),
                ConfigKey("StopTransactionOnInvalidId", "true", rw, _boolean),
                ConfigKey("StopTxnAlignedData", "", rw, _measurands),
                ConfigKey("StopTxnSampledData", sampled, rw, _measurands),
                ConfigKey("SupportedFeatureProfiles", FEATURE_PROFILES, ro),
                ConfigKey("TransactionMessageAttempts", "3", rw, _non_negative_int),
                ConfigKey("TransactionMessageRetryInterval", "60", rw, _non_negative_int),
                ConfigKey("UnlockConnectorOnEVSideDisconnect", "true", rw, _boolean),
                ConfigKey("WebSocketPingInterval", "20", rw, _non_negative_int),
            ]
        )

    def get(self, keys: Sequence[str] | None = None) -> tuple[list[ConfigKey], list[str]]:
        """Known keys and unknown key names, as GetConfiguration answers them."""
        if not keys:
            return list(self._keys.values()), []
        known = [self._keys[k] for k in keys if k in self._keys]
        unknown = [k for k in keys if k not in self._keys]
        return known, unknown

    def change(self, key: str, value: str) -> ConfigStatus:
        """Apply a ChangeConfiguration from the CSMS."""
        entry = self._keys.get(key)
        if entry is None:
            return ConfigStatus.NOT_SUPPORTED
        if entry.readonly or not entry.validator(value):
            return ConfigStatus.REJECTED
        self._keys[key] = replace(entry, value=value)
        return ConfigStatus.ACCEPTED

    def set(self, key: str, value: str) -> None:
        """Set a key from the charger's own side (read-only keys included)."""
        self._keys[key] = replace(self._keys[key], value=value)

    def value(self, key: str) -> str:
        return self._keys[key].value

    def seconds(self, key: str) -> float:
        return float(self.value(key))

    def flag(self, key: str) -> bool:
        return self.value(key).lower() == "true"

    def items(self, key: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in self.value(key).split(",") if item.strip())

    def integer(self, key: str) -> int:
        return int(self.value(key))

    def profile_rules(self) -> ProfileRules:
        """What SetChargingProfile accepts, as the read-only smart charging keys say."""
        units = {"Current": "A", "Power": "W"}
        return ProfileRules(
            max_stack_level=self.integer("ChargeProfileMaxStackLevel"),
            max_periods=self.integer("ChargingScheduleMaxPeriods"),
            max_installed=self.integer("MaxChargingProfilesInstalled"),
            units=frozenset(
                units[item]
                for item in self.items("ChargingScheduleAllowedChargingRateUnit")
                if item in units
            ),
        )
