"""Charge point identity, boot information and the registration decision.

Pure data and rules; storage of charge points lives in csms.storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from csms.core.status import ConnectorStatus

RegistrationPolicy = Literal["accept", "pending", "reject"]


class RegistrationStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class BootInfo:
    vendor: str
    model: str
    serial_number: str | None = None
    charge_box_serial: str | None = None
    firmware_version: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial: str | None = None
    reason: str | None = None


SECURITY_PROFILES = (1, 2, 3)
# The audit log's command name for a change of a charger's security profile (nothing is
# sent to the charger; the entry records who changed it, from what, to what).
SECURITY_PROFILE_CHANGE = "security_profile"
# The audit log's command names for a meter's public key set, changed or removed (by staff
# or by the charger's own report), and for a transaction whose signed values failed
# verification released for billing by staff (Eichrecht).
METER_KEY_CHANGE = "meter_public_key"
SIGNATURE_RELEASE = "signature_release"


@dataclass(frozen=True, slots=True)
class ChargePoint:
    id: str
    registration: RegistrationStatus
    ocpp_version: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    charge_box_serial: str | None = None
    firmware_version: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial: str | None = None
    password_hash: str | None = None
    validation: str | None = None
    connected: bool = False
    last_boot_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    last_seen_at: datetime | None = None
    connected_at: datetime | None = None
    disconnected_at: datetime | None = None
    firmware_status: str | None = None
    firmware_status_at: datetime | None = None
    diagnostics_status: str | None = None
    diagnostics_status_at: datetime | None = None
    base_report_firmware: str | None = None
    # Registered by itself (an unknown id under ocpp.registration) and not acted on by
    # staff since.
    auto_registered: bool = False
    created_at: datetime | None = None
    # OCPP security profile: 1 = Basic password over ws:// (or none), 2 = Basic password
    # over wss:// only, 3 = wss:// with a client certificate from our CA naming the id.
    security_profile: int = 1
    # The node (csms serve process) that recorded its latest connection.
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorState:
    charge_point_id: str
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    error_code: str
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    status_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status the charger reported. OCPP 1.6 connector N is EVSE N / connector 1; its
    connector 0 (the whole charger) is EVSE 0 / connector 0."""

    evse_id: int
    connector_id: int
    status: ConnectorStatus
    error_code: str
    timestamp: datetime
    info: str | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None


def registration_for(known: ChargePoint | None, policy: RegistrationPolicy) -> RegistrationStatus:
    """What a charger gets at boot: a known charger keeps what staff decided; an unknown
    one gets what the policy says."""
    if known is not None:
        return known.registration
    return {
        "accept": RegistrationStatus.ACCEPTED,
        "pending": RegistrationStatus.PENDING,
        "reject": RegistrationStatus.REJECTED,
    }[policy]


# The highest EVSE number (2.0.1 evseId, 1.6 connectorId) and connector number a charger
# may report: each becomes a row, and a charger must not create EVSE 2^62. Real stations
# have a handful; controllers that present a car park as one charge point a few hundred.
MAX_EVSE_ID = 1000

# Integers in OCPP payloads: what a 64-bit signed database column holds, symmetric:
# -2^63 itself is left out, because orjson reads -2^63 - 1 as a float that equals it.
INT_MAX = 2**63 - 1
INT_MIN = -INT_MAX


def evse_of_v16_connector(connector_id: int) -> tuple[int, int]:
    """(evse_id, connector_id) for an OCPP 1.6 connector id."""
    if connector_id == 0:
        return (0, 0)
    return (connector_id, 1)
