"""The device model a station reports: one attribute of one variable of one component.

Version-neutral values built by the OCPP 2.0.1 adapter from NotifyReport; storing them is
csms.storage.device_model's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The attribute a report that names none is about (OCPP 2.0.1 AttributeEnumType default).
ACTUAL = "Actual"


@dataclass(frozen=True, slots=True)
class ReportedVariable:
    """One variable attribute as reported: its key (component and its instance, EVSE and
    connector when the component is one's, variable and its instance, attribute type),
    the value and what the station says of it. Empty strings for absent names and
    instances; `characteristics` as reported (unit, data type, limits), kept for staff."""

    component: str
    component_instance: str
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str
    attribute_type: str = ACTUAL
    value: str | None = None
    mutability: str | None = None
    persistent: bool | None = None
    constant: bool | None = None
    characteristics: Mapping[str, Any] | None = None
