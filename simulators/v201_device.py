"""The OCPP 2.0.1 device model of a simulated station: components, variables, their values and
mutability, as GetVariables, SetVariables and the NotifyReport of GetBaseReport see them.

Pure bookkeeping with camelCase dicts in and out; applying a change is the charger's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from simulators.meter import DEFAULT_MEASURANDS, SUPPORTED_MEASURANDS
from simulators.profiles import ProfileRules

__all__ = [
    "AttributeStatus",
    "ComponentKey",
    "DeviceModel",
    "Mutability",
    "Variable",
    "VariableKey",
]

MAX_VALUE_LENGTH = 1000
#: SendLocalList limits: entries, and bytes of the request, per message.
LOCAL_LIST_ITEMS_PER_MESSAGE = 50
LOCAL_LIST_BYTES_PER_MESSAGE = 20_000


class Mutability(StrEnum):
    READ_ONLY = "ReadOnly"
    READ_WRITE = "ReadWrite"
    WRITE_ONLY = "WriteOnly"


class AttributeStatus(StrEnum):
    """GetVariableStatusEnumType and SetVariableStatusEnumType together."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    REBOOT_REQUIRED = "RebootRequired"


@dataclass(frozen=True, slots=True)
class ComponentKey:
    """A component as OCPP names it: name, optional instance, optional EVSE and connector."""

    name: str
    instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None

    @classmethod
    def from_wire(cls, component: Mapping[str, Any]) -> ComponentKey:
        evse = component.get("evse") or {}
        return cls(
            name=str(component.get("name", "")),
            instance=component.get("instance"),
            evse_id=evse.get("id"),
            connector_id=evse.get("connectorId"),
        )

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.instance is not None:
            out["instance"] = self.instance
        if self.evse_id is not None:
            evse: dict[str, Any] = {"id": self.evse_id}
            if self.connector_id is not None:
                evse["connectorId"] = self.connector_id
            out["evse"] = evse
        return out


@dataclass(frozen=True, slots=True)
class VariableKey:
    name: str
    instance: str | None = None

    @classmethod
    def from_wire(cls, variable: Mapping[str, Any]) -> VariableKey:
        return cls(name=str(variable.get("name", "")), instance=variable.get("instance"))

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.instance is not None:
            out["instance"] = self.instance
        return out


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable's Actual attribute and its characteristics."""

    component: ComponentKey
    key: VariableKey
    value: str
    data_type: str = "string"
    mutability: Mutability = Mutability.READ_WRITE
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] = ()
    persistent: bool = True
    constant: bool = False

    def accepts(self, value: str) -> bool:
        """Whether `value` fits the data type, limits and list of this variable."""
        if len(value) > MAX_VALUE_LENGTH:
            return False
        if self.data_type == "integer":
            try:
                number: float = int(value)
            except ValueError:
                return False
            return self._within(number)
        if self.data_type == "decimal":
            try:
                number = float(value)
            except ValueError:
                return False
            return self._within(number)
        if self.data_type == "boolean":
            return value.lower() in ("true", "false")
        if self.data_type == "OptionList":
            return value in self.values_list
        if self.data_type in ("MemberList", "SequenceList"):
            items = [item.strip() for item in value.split(",") if item.strip()]
            return all(item in self.values_list for item in items)
        return True

    def _within(self, number: float) -> bool:
        if self.min_limit is not None and number < self.min_limit:
            return False
        return self.max_limit is None or number <= self.max_limit

    def report(self) -> dict[str, Any]:
        """One `reportData` entry of NotifyReport (WriteOnly values are not shown)."""
        attribute: dict[str, Any] = {
            "type": "Actual",
            "mutability": self.mutability.value,
            "persistent": self.persistent,
            "constant": self.constant,
        }
        if self.mutability is not Mutability.WRITE_ONLY:
            attribute["value"] = self.value
        characteristics: dict[str, Any] = {"dataType": self.data_type, "supportsMonitoring": False}
        if self.unit is not None:
            characteristics["unit"] = self.unit
        if self.min_limit is not None:
            characteristics["minLimit"] = self.min_limit
        if self.max_limit is not None:
            characteristics["maxLimit"] = self.max_limit
        if self.values_list:
            characteristics["valuesList"] = ",".join(self.values_list)
        return {
            "component": self.component.wire(),
            "variable": self.key.wire(),
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }


_AVAILABILITY = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
_TX_POINTS = (
    "ParkingBayOccupancy",
    "EVConnected",
    "Authorized",
    "PowerPathClosed",
    "EnergyTransfer",
)
_RW, _RO = Mutability.READ_WRITE, Mutability.READ_ONLY


def _component(name: str, instance: str | None = None) -> ComponentKey:
    return ComponentKey(name, instance)


def _measurands(component: ComponentKey, name: str, value: Sequence[str]) -> Variable:
    return Variable(
        component,
        VariableKey(name),
        ",".join(value),
        "MemberList",
        values_list=SUPPORTED_MEASURANDS,
    )


def _seconds(component: ComponentKey, name: str, value: float) -> Variable:
    return Variable(component, VariableKey(name), f"{value:g}", "integer", unit="s", min_limit=0)


def _flag(component: ComponentKey, name: str, value: bool, mutability: Mutability) -> Variable:
    return Variable(component, VariableKey(name), str(value).lower(), "boolean", mutability)


def _order(key: tuple[ComponentKey, VariableKey]) -> tuple[str, str, int, int, str, str]:
    component, variable = key
    return (
        component.name,
        component.instance or "",
        component.evse_id or 0,
        component.connector_id or 0,
        variable.name,
        variable.instance or "",
    )


class DeviceModel:
    """Variables keyed by component and variable; Actual is the only attribute type kept."""

    def __init__(self, variables: Iterable[Variable]) -> None:
        self._vars: dict[tuple[ComponentKey, VariableKey], Variable] = {}
        for variable in variables:
            self._vars[(variable.component, variable.key)] = variable
        self._components = {component for component, _ in self._vars}

    @classmethod
    def defaults(
        cls,
        *,
        evses: int,
        heartbeat_interval: float,
        meter_interval: float,
        vendor: str,
        model: str,
        serial_number: str,
        firmware: str,
        rated_power_w: int,
        items_per_report: int = 20,
        local_list_max_length: int = 100,
        rules: ProfileRules | None = None,
        signed_readings: bool = False,
    ) -> DeviceModel:
        """The variables of a new station; `rules` limit the charging profiles it takes. A
        station with a signing meter says so, read-only: SampledDataCtrlr.SignReadings true
        and OCPPCommCtrlr.PublicKeyWithSignedMeterValue EveryMeterValue."""
        rules = rules or ProfileRules()
        station = _component("ChargingStation")
        comm = _component("OCPPCommCtrlr")
        sampled = _component("SampledDataCtrlr")
        aligned = _component("AlignedDataCtrlr")
        auth = _component("AuthCtrlr")
        tx = _component("TxCtrlr")
        data = _component("DeviceDataCtrlr")
        smart = _component("SmartChargingCtrlr")
        reservation = _component("ReservationCtrlr")
        local_list = _component("LocalAuthListCtrlr")
        clock = _component("ClockCtrlr")
        security = _component("SecurityCtrlr")
        ended = (*DEFAULT_MEASURANDS[:1], "Power.Active.Import")
        variables = [
            Variable(station, VariableKey("Model"), model, mutability=_RO, constant=True),
            Variable(station, VariableKey("VendorName"), vendor, mutability=_RO, constant=True),
            Variable(
                station, VariableKey("SerialNumber"), serial_number, mutability=_RO, constant=True
            ),
            Variable(station, VariableKey("FirmwareVersion"), firmware, mutability=_RO),
            _flag(station, "Available", True, _RO),
            Variable(
                station,
                VariableKey("AvailabilityState"),
                "Available",
                "OptionList",
                _RO,
                values_list=_AVAILABILITY,
            ),
            Variable(station, VariableKey("SupplyPhases"), "3", "integer", _RO, constant=True),
            _seconds(comm, "HeartbeatInterval", heartbeat_interval),
            Variable(comm, VariableKey("MessageTimeout", "Default"), "30", "integer", unit="s"),
            Variable(comm, VariableKey("MessageAttempts", "TransactionEvent"), "3", "integer"),
            _seconds(comm, "MessageAttemptInterval", 60),
            _seconds(comm, "OfflineThreshold", 60),
            Variable(
                comm,
                VariableKey("NetworkConfigurationPriority"),
                "0",
                "SequenceList",
                values_list=("0",),
            ),
            Variable(comm, VariableKey("ResetRetries"), "1", "integer", min_limit=0),
            _flag(sampled, "Enabled", True, _RW),
            _seconds(sampled, "TxUpdatedInterval", meter_interval),
            _measurands(sampled, "TxStartedMeasurands", DEFAULT_MEASURANDS[:1]),
            _measurands(sampled, "TxUpdatedMeasurands", DEFAULT_MEASURANDS),
            _measurands(sampled, "TxEndedMeasurands", ended),
            _seconds(sampled, "TxEndedInterval", 0),
            _flag(aligned, "Enabled", False, _RW),
            _seconds(aligned, "Interval", 0),
            _measurands(aligned, "Measurands", DEFAULT_MEASURANDS[:1]),
            _flag(auth, "Enabled", True, _RW),
            _flag(auth, "AuthorizeRemoteStart", True, _RW),
            _flag(auth, "LocalAuthorizeOffline", True, _RW),
            _flag(auth, "LocalPreAuthorize", False, _RW),
            _flag(auth, "OfflineTxForUnknownIdEnabled", False, _RW),
            _seconds(tx, "EVConnectionTimeOut", 60),
            _flag(tx, "StopTxOnInvalidId", True, _RW),
            _flag(tx, "StopTxOnEVSideDisconnect", True, _RO),
            Variable(
                tx, VariableKey("TxStartPoint"), "Authorized", "MemberList", values_list=_TX_POINTS
            ),
            Variable(
                tx,
                VariableKey("TxStopPoint"),
                "EVConnected,Authorized",
                "MemberList",
                values_list=_TX_POINTS,
            ),
            Variable(
                data,
                VariableKey("ItemsPerMessage", "GetReport"),
                str(items_per_report),
                "integer",
                _RO,
            ),
            Variable(data, VariableKey("ItemsPerMessage", "GetVariables"), "50", "integer", _RO),
            Variable(data, VariableKey("ItemsPerMessage", "SetVariables"), "50", "integer", _RO),
            _flag(smart, "Enabled", True, _RW),
            Variable(
                smart, VariableKey("RateUnit"), "A,W", "MemberList", _RO, values_list=("A", "W")
            ),
            Variable(
                smart,
                VariableKey("Entries", "ChargingProfiles"),
                "0",
                "integer",
                _RO,
                max_limit=rules.max_installed,
            ),
            Variable(
                smart, VariableKey("ProfileStackLevel"), str(rules.max_stack_level), "integer", _RO
            ),
            Variable(
                smart, VariableKey("PeriodsPerSchedule"), str(rules.max_periods), "integer", _RO
            ),
            _flag(reservation, "Enabled", True, _RW),
            _flag(reservation, "NonEvseSpecific", True, _RW),
            _flag(local_list, "Enabled", True, _RW),
            Variable(
                local_list,
                VariableKey("Entries"),
                "0",
                "integer",
                _RO,
                max_limit=local_list_max_length,
            ),
            Variable(
                local_list,
                VariableKey("ItemsPerMessage"),
                str(LOCAL_LIST_ITEMS_PER_MESSAGE),
                "integer",
                _RO,
            ),
            Variable(
                local_list,
                VariableKey("BytesPerMessage"),
                str(LOCAL_LIST_BYTES_PER_MESSAGE),
                "integer",
                _RO,
            ),
            Variable(
                clock,
                VariableKey("TimeSource"),
                "Heartbeat",
                "SequenceList",
                values_list=("Heartbeat", "NTP", "GPS", "RealTimeClock", "MobileNetwork"),
            ),
            Variable(security, VariableKey("SecurityProfile"), "1", "integer", _RO),
            Variable(
                security, VariableKey("BasicAuthPassword"), "", mutability=Mutability.WRITE_ONLY
            ),
        ]
        if signed_readings:
            variables += [
                _flag(sampled, "SignReadings", True, _RO),
                Variable(
                    comm,
                    VariableKey("PublicKeyWithSignedMeterValue"),
                    "EveryMeterValue",
                    "OptionList",
                    _RO,
                    values_list=("Never", "OncePerTransaction", "EveryMeterValue"),
                ),
            ]
        for evse_id in range(1, evses + 1):
            for component in (
                ComponentKey("EVSE", evse_id=evse_id),
                ComponentKey("Connector", evse_id=evse_id, connector_id=1),
            ):
                variables += [
                    _flag(component, "Available", True, _RO),
                    Variable(
                        component,
                        VariableKey("AvailabilityState"),
                        "Available",
                        "OptionList",
                        _RO,
                        values_list=_AVAILABILITY,
                    ),
                    Variable(component, VariableKey("SupplyPhases"), "3", "integer", _RO),
                ]
            variables.append(
                Variable(
                    ComponentKey("EVSE", evse_id=evse_id),
                    VariableKey("Power"),
                    str(rated_power_w),
                    "decimal",
                    _RO,
                    unit="W",
                    max_limit=rated_power_w,
                )
            )
            variables.append(
                Variable(
                    ComponentKey("Connector", evse_id=evse_id, connector_id=1),
                    VariableKey("ConnectorType"),
                    "cType2",
                    mutability=_RO,
                    constant=True,
                )
            )
        return cls(variables)

    # -- CSMS side ----------------------------------------------------------------------

    def get_variables(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`getVariableResult` entries for GetVariables `getVariableData` entries."""
        return [self._get_one(request) for request in requests]

    def set_variables(
        self, requests: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Variable]]:
        """`setVariableResult` entries, and the variables that changed (new values)."""
        results: list[dict[str, Any]] = []
        changed: list[Variable] = []
        for request in requests:
            result, variable = self._set_one(request)
            results.append(result)
            if variable is not None:
                changed.append(variable)
        return results, changed

    def report(self, base: str) -> list[dict[str, Any]]:
        """`reportData` entries for GetBaseReport: FullInventory, ConfigurationInventory
        (writable variables) or SummaryInventory (availability)."""
        chosen = self.variables()
        if base == "ConfigurationInventory":
            chosen = [v for v in chosen if v.mutability is not Mutability.READ_ONLY]
        elif base == "SummaryInventory":
            chosen = [v for v in chosen if v.key.name in ("AvailabilityState", "Available")]
        return [variable.report() for variable in chosen]

    def select(self, component_variables: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`reportData` for GetReport's `componentVariable` (all when empty)."""
        if not component_variables:
            return [variable.report() for variable in self.variables()]
        wanted: list[Variable] = []
        for entry in component_variables:
            component = ComponentKey.from_wire(entry.get("component") or {})
            variable = entry.get("variable")
            for candidate in self.variables():
                if candidate.component != component or candidate in wanted:
                    continue
                if variable is None or candidate.key == VariableKey.from_wire(variable):
                    wanted.append(candidate)
        return [variable.report() for variable in wanted]

    # -- station side -------------------------------------------------------------------

    def variables(self) -> list[Variable]:
        """Every variable, ordered by component then variable."""
        return [self._vars[key] for key in sorted(self._vars, key=_order)]

    def find(self, component: ComponentKey, variable: VariableKey) -> Variable | None:
        return self._vars.get((component, variable))

    def value(self, component: str, variable: str, instance: str | None = None) -> str:
        """The Actual value of a station-level variable (KeyError if unknown)."""
        return self._vars[(ComponentKey(component), VariableKey(variable, instance))].value

    def seconds(self, component: str, variable: str) -> float:
        return float(self.value(component, variable))

    def flag(self, component: str, variable: str) -> bool:
        return self.value(component, variable).lower() == "true"

    def items(self, component: str, variable: str) -> tuple[str, ...]:
        return tuple(i.strip() for i in self.value(component, variable).split(",") if i.strip())

    def integer(self, component: str, variable: str, instance: str | None = None) -> int:
        return int(self.value(component, variable, instance))

    def profile_rules(self) -> ProfileRules:
        """What SetChargingProfile accepts, as SmartChargingCtrlr says."""
        entries = self.find(
            ComponentKey("SmartChargingCtrlr"), VariableKey("Entries", "ChargingProfiles")
        )
        return ProfileRules(
            max_stack_level=self.integer("SmartChargingCtrlr", "ProfileStackLevel"),
            max_periods=self.integer("SmartChargingCtrlr", "PeriodsPerSchedule"),
            max_installed=int(entries.max_limit or 0) if entries is not None else 0,
            units=frozenset(self.items("SmartChargingCtrlr", "RateUnit")),
        )

    def set(self, component: ComponentKey, variable: VariableKey, value: str) -> None:
        """Set a value from the station's own side (read-only variables included)."""
        key = (component, variable)
        self._vars[key] = replace(self._vars[key], value=value)

    def set_availability(self, component: ComponentKey, state: str) -> None:
        """Record AvailabilityState (and Available) of the station, an EVSE or a connector."""
        if (component, VariableKey("AvailabilityState")) in self._vars:
            self.set(component, VariableKey("AvailabilityState"), state)
        if (component, VariableKey("Available")) in self._vars:
            available = state not in ("Unavailable", "Faulted")
            self.set(component, VariableKey("Available"), str(available).lower())

    # -- internals ----------------------------------------------------------------------

    def _lookup(
        self, request: Mapping[str, Any]
    ) -> tuple[ComponentKey, VariableKey, Variable | None, AttributeStatus | None]:
        component = ComponentKey.from_wire(request.get("component") or {})
        variable_key = VariableKey.from_wire(request.get("variable") or {})
        if component not in self._components:
            return component, variable_key, None, AttributeStatus.UNKNOWN_COMPONENT
        variable = self._vars.get((component, variable_key))
        if variable is None:
            return component, variable_key, None, AttributeStatus.UNKNOWN_VARIABLE
        if request.get("attributeType", "Actual") != "Actual":
            return component, variable_key, variable, AttributeStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE
        return component, variable_key, variable, None

    def _get_one(self, request: Mapping[str, Any]) -> dict[str, Any]:
        component, key, variable, problem = self._lookup(request)
        result: dict[str, Any] = {
            "component": component.wire(),
            "variable": key.wire(),
        }
        if "attributeType" in request:
            result["attributeType"] = request["attributeType"]
        if problem is not None:
            result["attributeStatus"] = problem.value
        elif variable is None or variable.mutability is Mutability.WRITE_ONLY:
            result["attributeStatus"] = AttributeStatus.REJECTED.value
        else:
            result["attributeStatus"] = AttributeStatus.ACCEPTED.value
            result["attributeValue"] = variable.value
        return result

    def _set_one(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], Variable | None]:
        component, key, variable, problem = self._lookup(request)
        result: dict[str, Any] = {
            "component": component.wire(),
            "variable": key.wire(),
        }
        if "attributeType" in request:
            result["attributeType"] = request["attributeType"]
        value = str(request.get("attributeValue", ""))
        changed: Variable | None = None
        if problem is not None:
            status = problem
        elif (
            variable is None
            or variable.mutability is Mutability.READ_ONLY
            or not variable.accepts(value)
        ):
            status = AttributeStatus.REJECTED
        else:
            changed = replace(variable, value=value)
            self._vars[(component, key)] = changed
            status = AttributeStatus.ACCEPTED
        result["attributeStatus"] = status.value
        return result, changed
