"""Checks of a charger's connector defaults and of one EVSE's details, shared by
`locations link` and `locations import` (a module of their own so that neither service
imports the other)."""

from __future__ import annotations

from dataclasses import replace

from csms.core.errors import InvalidLocation
from csms.core.locations import ConnectorSpec, choice
from csms.core.ocpi_locations import (
    CONNECTOR_FORMATS,
    CONNECTOR_STANDARDS,
    POWER_TYPES,
    evse_code,
)
from csms.storage.locations import EvseDetail


def validate_spec(spec: ConnectorSpec) -> ConnectorSpec:
    """The connector description with its OCPI enums checked (InvalidLocation names the field)."""
    spec = replace(
        spec,
        standard=choice(spec.standard, CONNECTOR_STANDARDS, "connector standard"),
        format=choice(spec.format, CONNECTOR_FORMATS, "connector format"),
        power_type=choice(spec.power_type, POWER_TYPES, "power type"),
    )
    for name, value in (("max voltage", spec.max_voltage), ("max amperage", spec.max_amperage)):
        if value < 1:
            raise InvalidLocation(f"{name} must be at least 1")
    if spec.max_electric_power is not None and spec.max_electric_power < 1:
        raise InvalidLocation("max power must be at least 1 W")
    return spec


def validate_detail(detail: EvseDetail) -> EvseDetail:
    out = detail
    if detail.evse_code is not None:
        out = replace(out, evse_code=evse_code(detail.evse_code))
    if detail.standard is not None:
        out = replace(
            out, standard=choice(detail.standard, CONNECTOR_STANDARDS, "connector standard")
        )
    if detail.format is not None:
        out = replace(out, format=choice(detail.format, CONNECTOR_FORMATS, "connector format"))
    if detail.power_type is not None:
        out = replace(out, power_type=choice(detail.power_type, POWER_TYPES, "power type"))
    return out
