"""SQLAlchemy 2 typed table models of the CSMS.

Rows never leave csms.storage: repositories turn them into csms.core objects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# An integer as a charger sends it: up to 64 bits (SQLite's INTEGER always is).
_WIRE_INT = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        dict[str, Any] | None: JSON,
        str: String,
    }


class ChargePointRow(Base):
    __tablename__ = "charge_points"
    __table_args__ = (
        Index("ix_charge_points_updated", "updated_at"),
        Index("ix_charge_points_node", "node_id"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    registration: Mapped[str] = mapped_column(String(16))
    ocpp_version: Mapped[str | None]
    vendor: Mapped[str | None]
    model: Mapped[str | None]
    serial_number: Mapped[str | None]
    charge_box_serial: Mapped[str | None]
    firmware_version: Mapped[str | None]
    iccid: Mapped[str | None]
    imsi: Mapped[str | None]
    meter_type: Mapped[str | None]
    meter_serial: Mapped[str | None]
    password_hash: Mapped[str | None]
    validation: Mapped[str | None] = mapped_column(String(16))
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    last_boot_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    firmware_status: Mapped[str | None]
    firmware_status_at: Mapped[datetime | None]
    diagnostics_status: Mapped[str | None]
    diagnostics_status_at: Mapped[datetime | None]
    # Firmware version for which the full device-model report was last requested (2.0.1).
    base_report_firmware: Mapped[str | None]
    # Created by its own boot (ocpp.registration for an unknown id) and not acted on by
    # staff since: counts against ocpp.auto_register_limit.
    auto_registered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # OCPP security profile 1, 2 or 3 (rows made before this column, and chargers that
    # registered themselves: 1). A server default only: the bulk upserts name their columns.
    security_profile: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # The node (csms serve process) that recorded the charger's latest connection: the
    # one holding its socket while `connected` (several nodes share a PostgreSQL database).
    node_id: Mapped[str | None] = mapped_column(String(255))


class ConnectorRow(Base):
    """Current status per EVSE/connector (1.6 connector N = EVSE N connector 1; 0/0 is the
    charger itself)."""

    __tablename__ = "connectors"
    __table_args__ = (Index("ix_connectors_updated", "updated_at"),)

    charge_point_id: Mapped[str] = mapped_column(
        ForeignKey("charge_points.id", ondelete="CASCADE"), primary_key=True
    )
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(50))
    info: Mapped[str | None]
    vendor_id: Mapped[str | None]
    vendor_error_code: Mapped[str | None]
    status_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StatusHistoryRow(Base):
    __tablename__ = "status_history"
    __table_args__ = (
        Index("ix_status_history_cp_time", "charge_point_id", "received_at"),
        # A session's status changes (its charging and parking time), for its CDR.
        Index("ix_status_history_evse_time", "charge_point_id", "evse_id", "status_at"),
        # Uptime's outage changes (Faulted, Unavailable): a few thousand rows of a month's
        # hundreds of thousands (csms.storage.statistics.status_changes).
        Index(
            "ix_status_history_outage",
            "status_at",
            sqlite_where=text("status IN ('Faulted', 'Unavailable')"),
            postgresql_where=text("status IN ('Faulted', 'Unavailable')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int]
    connector_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(50))
    info: Mapped[str | None]
    vendor_id: Mapped[str | None]
    vendor_error_code: Mapped[str | None]
    status_at: Mapped[datetime]
    received_at: Mapped[datetime]


class IdTokenRow(Base):
    __tablename__ = "id_tokens"

    uid_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    uid: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None]
    parent_uid: Mapped[str | None]
    origin: Mapped[str] = mapped_column(String(64), default="local")
    # An OCPI partner's token: its WhitelistType (None for ours and staff-owned tokens).
    whitelist: Mapped[str | None] = mapped_column(String(16))
    # How many transactions it may hold at once; None: any number (fleet, free vend).
    max_concurrent: Mapped[int | None] = mapped_column(Integer, server_default="1")
    # Its sessions' priority on a load-managed site (None: 0, the default).
    priority: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TransactionRow(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_cp_state", "charge_point_id", "state"),
        Index("ix_transactions_tag_state", "id_tag_key", "state"),
        Index("ix_transactions_start", "start_at"),
        Index("ix_transactions_cp_start", "charge_point_id", "start_at"),
        Index("ix_transactions_updated", "updated_at"),
        UniqueConstraint("charge_point_id", "ocpp_transaction_id", name="uq_transactions_ocpp_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    ocpp_version: Mapped[str | None]
    # The id on the wire for OCPP 2.0.1 (a string); for 1.6 the wire id is `id` itself.
    ocpp_transaction_id: Mapped[str | None]
    evse_id: Mapped[int]
    connector_id: Mapped[int]
    id_tag: Mapped[str | None]
    id_tag_key: Mapped[str | None]
    auth_status: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime]
    # OCPP 1.6 meterStart; for 2.0.1 the Transaction.Begin register reading (None until known).
    meter_start_wh: Mapped[int | None] = mapped_column(BigInteger)
    stop_at: Mapped[datetime | None]
    meter_stop_wh: Mapped[int | None] = mapped_column(BigInteger)
    energy_wh: Mapped[int | None] = mapped_column(BigInteger)
    stop_reason: Mapped[str | None]
    stop_id_tag: Mapped[str | None]
    flags: Mapped[str | None]  # comma-separated csms.core.transactions.EnergyFlag values
    # 64-bit like every integer a charger may send (csms.handlers.schemas.bound).
    reservation_id: Mapped[int | None] = mapped_column(_WIRE_INT)
    remote_start_id: Mapped[int | None] = mapped_column(_WIRE_INT)
    # Roaming: how the token was authorized (OCPI AuthMethod), the eMSP's reference for it
    # and the eMSP's token as a CdrToken (None for our own customers' tokens).
    auth_method: Mapped[str | None] = mapped_column(String(16))
    authorization_reference: Mapped[str | None] = mapped_column(String(36))
    cdr_token: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # None while running; then pending -> billed (a CDR exists), held (flagged meter data,
    # waiting for staff) or void.
    billing: Mapped[str | None] = mapped_column(String(16), index=True)
    # Failed attempts at its CDR while pending, the last one's error (one line) and when
    # to try again (None: at once); why it is held, when it is (`cdr_failed: ...`,
    # `flagged: ...`, `credited by ...`).
    billing_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    billing_error: Mapped[str | None] = mapped_column(String(300))
    billing_retry_at: Mapped[datetime | None]
    held_reason: Mapped[str | None] = mapped_column(String(300))
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Eichrecht (csms.core.transactions.SignatureState): NULL when nothing was checked;
    # the problem found (`<problem>: <detail>`), kept after staff released it.
    signature_state: Mapped[str | None] = mapped_column(String(16))
    signature_problem: Mapped[str | None] = mapped_column(Text)


class TransactionEventRow(Base):
    """Every OCPP 2.0.1 TransactionEvent as received (its readings go to meter_values);
    (transaction, seqNo) is unique, which makes a resent event a no-op."""

    __tablename__ = "transaction_events"
    __table_args__ = (
        UniqueConstraint("transaction_id", "seq_no", name="uq_transaction_events_seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    ocpp_transaction_id: Mapped[str] = mapped_column(String(64))
    seq_no: Mapped[int] = mapped_column(_WIRE_INT)
    event_type: Mapped[str] = mapped_column(String(16))
    trigger_reason: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime]
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the vehicle was doing (csms.core.transactions.ChargingState), when reported.
    charging_state: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class DeviceVariableRow(Base):
    """The OCPP 2.0.1 device model a station reports (NotifyReport): one row per variable
    attribute, with its characteristics."""

    __tablename__ = "device_variables"
    __table_args__ = (
        UniqueConstraint(
            "charge_point_id",
            "component",
            "component_instance",
            "evse_id",
            "connector_id",
            "variable",
            "variable_instance",
            "attribute_type",
            name="uq_device_variables_key",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    component: Mapped[str] = mapped_column(String(50))
    component_instance: Mapped[str] = mapped_column(String(50), default="")
    evse_id: Mapped[int] = mapped_column(Integer, default=-1)
    connector_id: Mapped[int] = mapped_column(Integer, default=-1)
    variable: Mapped[str] = mapped_column(String(50))
    variable_instance: Mapped[str] = mapped_column(String(50), default="")
    attribute_type: Mapped[str] = mapped_column(String(16), default="Actual")
    value: Mapped[str | None]
    mutability: Mapped[str | None] = mapped_column(String(16))
    persistent: Mapped[bool | None] = mapped_column(Boolean)
    constant: Mapped[bool | None] = mapped_column(Boolean)
    characteristics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class MeterValueRow(Base):
    """One meter reading: every sampled value of one timestamp, kept as JSON (measurand,
    value normalised, unit, phase, location, context, raw value, signed), with the energy
    register and active power pulled out into columns for queries. One row per reading
    instead of one per sampled value keeps the hot insert path cheap."""

    __tablename__ = "meter_values"
    __table_args__ = (Index("ix_meter_values_tx", "transaction_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int]
    connector_id: Mapped[int]
    timestamp: Mapped[datetime]
    energy_wh: Mapped[float | None] = mapped_column(Float)
    power_w: Mapped[float | None] = mapped_column(Float)
    samples: Mapped[list[Any]] = mapped_column(JSON)


class SignedMeterValueRow(Base):
    """A value the meter signed (Eichrecht), exactly as received: `data` is the text the
    charger sent (1.6 SignedData value, 2.0.1 signedMeterData), never re-encoded, since the
    signature covers its bytes. Written in the same write as the readings it came with."""

    __tablename__ = "signed_meter_values"
    __table_args__ = (Index("ix_signed_meter_values_tx", "transaction_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int]
    connector_id: Mapped[int]
    timestamp: Mapped[datetime]
    context: Mapped[str | None] = mapped_column(String(32))
    measurand: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)
    encoding_method: Mapped[str | None] = mapped_column(String(50))
    signing_method: Mapped[str | None] = mapped_column(String(50))
    # 2.0.1 publicKey as sent with the value (NULL when empty or 1.6).
    public_key: Mapped[str | None] = mapped_column(Text)
    # The meter's serial (OCMF MS) when the value could be read as OCMF.
    meter_serial: Mapped[str | None] = mapped_column(String(64))


class MeterPublicKeyRow(Base):
    """The public key of a charger's meter (evse_id 0: the whole charger's), as canonical
    hex of its DER SubjectPublicKeyInfo, and where it came from: `ocpp` (2.0.1 publicKey),
    `config_key` or `data_transfer` (1.6), `staff` (`csms chargers set --meter-public-key`,
    which the charger's own reports do not replace)."""

    __tablename__ = "meter_public_keys"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    meter_serial: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class UnmatchedMessageRow(Base):
    """Transaction messages that name a transaction we do not know, kept for staff."""

    __tablename__ = "unmatched_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64))
    ocpp_transaction_id: Mapped[str | None]
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class ChargerEventRow(Base):
    """Messages with no state of their own yet (DataTransfer, firmware/diagnostics status,
    security events ...): stored as sent, visible to staff."""

    __tablename__ = "charger_events"
    __table_args__ = (Index("ix_charger_events_cp_time", "charge_point_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class CommandRow(Base):
    """The audit log: every command sent (or refused) to a charger, who asked, and what the
    charger answered. Written before the CALL goes out and completed when it ends."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_cp", "charge_point_id", "id"),
        # Staff's availability commands over a time range (uptime, csms.storage.statistics).
        Index("ix_commands_command_time", "command", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    command: Mapped[str] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None]
    answer: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # A command for a charger held by another node (PostgreSQL, several nodes): the request
    # in its JSON form, its deadline and vouching party, the node that asked, the node asked
    # to send it and the node that took it up; `result` is what the sender found (the
    # result's data), read back by the node that asked. NULL for commands sent locally.
    request: Mapped[dict[str, Any] | None]
    timeout_s: Mapped[float | None] = mapped_column(Float)
    vouched: Mapped[dict[str, Any] | None]
    origin_node: Mapped[str | None] = mapped_column(String(255))
    target_node: Mapped[str | None] = mapped_column(String(255))
    runner_node: Mapped[str | None] = mapped_column(String(255))
    result: Mapped[dict[str, Any] | None]


class ReservationRow(Base):
    """Reservations made with ReserveNow; `id` is the reservationId on the wire."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_cp_state", "charge_point_id", "state"),
        Index("ix_reservations_state_expiry", "state", "expires_at"),
        Index("ix_reservations_ocpi", "ocpi_partner_id", "ocpi_reservation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int | None]  # None: any EVSE of the charger
    id_tag: Mapped[str] = mapped_column(String(255))
    id_tag_key: Mapped[str] = mapped_column(String(255))
    parent_id_tag: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(64))
    # Made by an OCPI RESERVE_NOW: the partner, its reservation_id (never sent to the
    # charger) and what the session shows (token, location, EVSE, authorization_reference).
    ocpi_partner_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite")
    )
    ocpi_reservation_id: Mapped[str | None] = mapped_column(String(36))
    ocpi: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChargingProfileRow(Base):
    """Charging profiles installed with SetChargingProfile; `id` is the profile id on the
    wire."""

    __tablename__ = "charging_profiles"
    __table_args__ = (Index("ix_charging_profiles_cp_state", "charge_point_id", "state"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int]
    purpose: Mapped[str] = mapped_column(String(32))
    stack_level: Mapped[int]
    limit: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(1))
    start_at: Mapped[datetime]
    duration_s: Mapped[int | None]
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LocalListRow(Base):
    """The local authorization list a charger holds, as we last sent it: its version and
    every entry (uid -> status, expiry, parent), which differential updates are computed
    against."""

    __tablename__ = "local_lists"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int]
    entries: Mapped[dict[str, Any]]
    sent_at: Mapped[datetime]


class LocationRow(Base):
    """A site staff describe (the OCPI Location); chargers are linked to one."""

    __tablename__ = "locations"
    __table_args__ = (
        Index("ix_locations_publish_order", "publish", "created_at", "id"),
        Index("ix_locations_last_updated", "last_updated"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(45))
    city: Mapped[str] = mapped_column(String(45))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    state: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(3))
    latitude: Mapped[str] = mapped_column(String(10))
    longitude: Mapped[str] = mapped_column(String(11))
    time_zone: Mapped[str] = mapped_column(String(255))
    publish: Mapped[bool] = mapped_column(Boolean, default=True)
    parking_type: Mapped[str | None] = mapped_column(String(32))
    facilities: Mapped[list[Any] | None] = mapped_column(JSON)
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The OCPI last_updated: the latest real change of the location or of one of its EVSEs.
    last_updated: Mapped[datetime]
    # Digest of the location (without EVSEs) as last pushed to partners; None: never pushed.
    published_digest: Mapped[str | None] = mapped_column(String(64))


class ChargerLocationRow(Base):
    """Which location a charger stands at, and what its connectors are."""

    __tablename__ = "charger_locations"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(36), index=True)
    connector_standard: Mapped[str] = mapped_column(String(32))
    connector_format: Mapped[str] = mapped_column(String(16))
    power_type: Mapped[str] = mapped_column(String(16))
    max_voltage: Mapped[int]
    max_amperage: Mapped[int]
    max_electric_power: Mapped[int | None]
    updated_at: Mapped[datetime]


class TariffRow(Base):
    """A tariff as OCPI 2.2.1 describes it, kept as the validated object."""

    __tablename__ = "tariffs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    type: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TariffAssignmentRow(Base):
    """Which tariff applies where: the default, a location, an EVSE or one connector; for
    everyone, or (`ad_hoc`) for drivers who pay on the spot, each target having one of each."""

    __tablename__ = "tariff_assignments"
    __table_args__ = (
        UniqueConstraint("scope", "target", "ad_hoc", name="uq_tariff_assignments_target"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tariff_id: Mapped[str] = mapped_column(String(36), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # default | location | evse | connector
    target: Mapped[str] = mapped_column(String(64))  # "" | location id | evse uid | uid#connector
    ad_hoc: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]


class CdrRow(Base):
    """A charge detail record: immutable once written. Corrections are new rows (credit
    CDRs referring to the one they cancel)."""

    __tablename__ = "cdrs"
    __table_args__ = (
        Index("ix_cdrs_end", "end_at"),
        Index("ix_cdrs_cp_end", "charge_point_id", "end_at"),
        Index("ix_cdrs_tx", "transaction_id"),
        # Whether a CDR was credited (the statistics' revenue).
        Index("ix_cdrs_credit_reference", "credit_reference_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    id: Mapped[str] = mapped_column(String(39), unique=True)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    total_excl_vat: Mapped[str] = mapped_column(String(40))  # Decimal as text, exact
    total_incl_vat: Mapped[str | None] = mapped_column(String(40))
    energy_wh: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[bool] = mapped_column(Boolean, default=False)
    credit_reference_id: Mapped[str | None] = mapped_column(String(39))
    reason: Mapped[str | None]
    data: Mapped[dict[str, Any]]  # the OCPI 2.2.1 CDR object
    created_at: Mapped[datetime]


class PartnerRow(Base):
    """An OCPI partner (eMSP, hub): its status and the credentials tokens exchanged with it.
    Tokens we issued are kept as SHA-256 hashes only; the one we present to it is kept."""

    __tablename__ = "ocpi_partners"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | registered | unregistered
    direction: Mapped[str | None] = mapped_column(String(16))  # inbound | outbound
    # One-time token: token A we issued, or the token we offered while registering with it.
    token_a_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The token it presents once registered (token C we issued, or token B we offered).
    our_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    their_token: Mapped[str | None] = mapped_column(String(255))
    token_encoding: Mapped[str] = mapped_column(String(8))  # base64 | raw
    versions_url: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    registered_at: Mapped[datetime | None]
    # The partner's profile: {"name": preset, switch: value ...} (csms.core.partners.
    # PartnerProfile.stored); NULL: the default.
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The outcome of the last push (written with the push's own outcome).
    last_success_at: Mapped[datetime | None]
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class PartnerRoleRow(Base):
    """A CredentialsRole of a partner (the parties it speaks for)."""

    __tablename__ = "ocpi_partner_roles"
    __table_args__ = (Index("ix_ocpi_partner_roles_party", "country_code", "party_id"),)

    partner_id: Mapped[int] = mapped_column(
        ForeignKey("ocpi_partners.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(3), primary_key=True)
    business_details: Mapped[dict[str, Any]]


class PartnerEndpointRow(Base):
    """An endpoint from a partner's version details (module identifier, interface role, URL)."""

    __tablename__ = "ocpi_partner_endpoints"

    partner_id: Mapped[int] = mapped_column(
        ForeignKey("ocpi_partners.id", ondelete="CASCADE"), primary_key=True
    )
    identifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    url: Mapped[str] = mapped_column(String(255))


class EvseLinkRow(Base):
    """What staff say about one EVSE of a linked charger: its eMI3 EVSE id and connector
    details that differ from the charger's defaults (None: the charger's default)."""

    __tablename__ = "evse_links"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evse_code: Mapped[str | None] = mapped_column(String(48), unique=True)
    connector_standard: Mapped[str | None] = mapped_column(String(32))
    connector_format: Mapped[str | None] = mapped_column(String(16))
    power_type: Mapped[str | None] = mapped_column(String(16))
    max_voltage: Mapped[int | None]
    max_amperage: Mapped[int | None]
    max_electric_power: Mapped[int | None]
    updated_at: Mapped[datetime]


class OcpiEvseRow(Base):
    """An EVSE as published over OCPI: the rendered object, a digest of it (without
    timestamps) and when it last really changed. Kept after the charger is unlinked or
    removed, as REMOVED."""

    __tablename__ = "ocpi_evses"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    location_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    last_updated: Mapped[datetime]


class OutboxRow(Base):
    """One push to one partner (the durable outbox): delivered in id order per object,
    retried with backoff until the partner answers 1000."""

    __tablename__ = "ocpi_outbox"
    __table_args__ = (
        Index("ix_ocpi_outbox_pending", "delivered_at", "id"),
        Index("ix_ocpi_outbox_object", "partner_id", "object_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("ocpi_partners.id", ondelete="CASCADE"),
    )
    module: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(512))
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    object_key: Mapped[str] = mapped_column(String(160))
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    # `CC*PID` the push is for behind a hub (OCPI-to-* headers); NULL: the partner itself.
    to_party: Mapped[str | None] = mapped_column(String(8))
    # The URL after the partner's endpoint for the module (`NL/CSM/LOC1/EVSE1`; empty: the
    # endpoint itself), so that the push goes to the endpoint the partner has when it is
    # sent. NULL: `url` as stored (a command's response_url, pushes from before 0022).
    path: Mapped[str | None] = mapped_column(String(512))


class SessionPushRow(Base):
    """How far a session has been pushed to a partner: charging periods sent, whether the
    final session went out, and when it was last pushed."""

    __tablename__ = "ocpi_session_pushes"
    __table_args__ = (Index("ix_ocpi_session_pushes_open", "completed", "pushed_at"),)

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("ocpi_partners.id", ondelete="CASCADE"),
        primary_key=True,
    )
    periods_sent: Mapped[int]
    completed: Mapped[bool] = mapped_column(Boolean)
    pushed_at: Mapped[datetime]


class SessionFailureRow(Base):
    """A session the publisher could not render into an OCPI Session (its data is broken):
    its failed attempts, the last error and when to try again. Gone once it is pushed."""

    __tablename__ = "ocpi_session_failures"
    __table_args__ = (Index("ix_ocpi_session_failures_next", "next_attempt_at"),)

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    attempts: Mapped[int]
    last_error: Mapped[str] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime]
    failed_at: Mapped[datetime]


class CursorRow(Base):
    """Where a publisher loop got to (a timestamp or sequence number as text)."""

    __tablename__ = "ocpi_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))


class OcpiTokenRow(Base):
    """A token an eMSP pushed or we pulled from it (the OCPI Token object as stored, after
    PATCHes); keyed as the spec keys it: the owner party, uid and type."""

    __tablename__ = "ocpi_tokens"
    __table_args__ = (
        Index("ix_ocpi_tokens_uid_key", "uid_key"),
        Index("ix_ocpi_tokens_last_updated", "last_updated"),
    )

    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(3), primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    uid_key: Mapped[str] = mapped_column(String(255))
    contract_id: Mapped[str] = mapped_column(String(36))
    whitelist: Mapped[str] = mapped_column(String(16))
    valid: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]]
    last_updated: Mapped[datetime]
    partner_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    received_at: Mapped[datetime]


class OcpiCommandRow(Base):
    """A command or charging-profile request a partner sent, until its one asynchronous
    result is queued for its response_url (`result` then holds the body sent)."""

    __tablename__ = "ocpi_commands"
    __table_args__ = (Index("ix_ocpi_commands_state_deadline", "state", "deadline"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("ocpi_partners.id", ondelete="CASCADE"),
    )
    kind: Mapped[str] = mapped_column(String(32))
    response_url: Mapped[str] = mapped_column(String(512))
    request: Mapped[dict[str, Any]]
    charge_point_id: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))  # pending | done
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deadline: Mapped[datetime]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # `CC*PID` the request said it came from (its result is routed back there); NULL: none.
    reply_to: Mapped[str | None] = mapped_column(String(8))
    # Failed attempts at queueing its result, the last error and when to try again.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime | None]


class HubPartyRow(Base):
    """A party a hub says is connected to it (OCPI hub client info), as last reported."""

    __tablename__ = "ocpi_hub_parties"

    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(3), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    last_updated: Mapped[datetime]
    partner_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    received_at: Mapped[datetime]


class GrantRow(Base):
    """A decision for another party's token that stands at one charger until its transaction
    starts or it expires: what a partner's command vouched for (OCPI START_SESSION,
    RESERVE_NOW) or what the eMSP answered an Authorize. Kept so a restart between the
    decision and the StartTransaction loses neither."""

    __tablename__ = "auth_grants"
    __table_args__ = (Index("ix_auth_grants_expires_at", "expires_at"),)

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    uid_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    evse_id: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))
    cdr_token: Mapped[dict[str, Any]] = mapped_column(JSON)
    authorization_reference: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]


class CaCertificateRow(Base):
    """A charging station certificate our CA issued (`csms ca issue`, SignCertificate):
    serials and the SHA-256 fingerprint in lower-case hex, the certificate as PEM."""

    __tablename__ = "ca_certificates"
    __table_args__ = (
        Index("ix_ca_certificates_charge_point_id", "charge_point_id"),
        Index("ix_ca_certificates_not_after", "not_after"),
        Index("ix_ca_certificates_issuer_serial", "issuer_serial"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    issuer_serial: Mapped[str] = mapped_column(String(40))
    issued_at: Mapped[datetime]
    pem: Mapped[str] = mapped_column(Text)


class StaffUserRow(Base):
    """A staff user of the operator API: role viewer, operator or admin, and the digest of
    its bearer token (csms.core.users.token_digest; the token itself is never stored)."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    token_issued_at: Mapped[datetime]


class NodeRow(Base):
    """A `csms serve` process sharing the database with others, and when it last said it
    was alive (csms.services.nodes)."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    components: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


# --- smart charging (csms.services.load_management) -----------------------------------


class SiteRow(Base):
    """A grid connection whose current the load manager shares among the sessions of the
    chargers below it: its limit per phase (in A, or in W over its phases and voltage)."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    location_id: Mapped[str | None] = mapped_column(String(36))
    max_current_a: Mapped[float] = mapped_column(Float)
    max_power_w: Mapped[float | None] = mapped_column(Float)
    phases: Mapped[int]
    voltage_v: Mapped[float] = mapped_column(Float)
    # Time-of-day prices per kWh ([["07:00", "0.35"], ...]) in `timezone` (None: UTC).
    daily_prices: Mapped[list[Any] | None] = mapped_column(JSON)
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SiteCircuitRow(Base):
    """A circuit of a site, under the site or under another circuit (`parent`)."""

    __tablename__ = "site_circuits"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(64))
    max_current_a: Mapped[float] = mapped_column(Float)
    max_power_w: Mapped[float | None] = mapped_column(Float)
    phases: Mapped[int]
    # A 1-phase circuit: the site phase it is wired to (L1, L2, L3).
    phase: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SiteLinkRow(Base):
    """A charger under a site (directly, or under one of its circuits); whether the load
    manager controls it, and how."""

    __tablename__ = "site_links"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    circuit: Mapped[str | None] = mapped_column(String(64))
    # A charger wired to one phase: which (None: all the phases of its node).
    phase: Mapped[str | None] = mapped_column(String(2))
    # Each EVSE's rated maximum per phase (None: the node's limit).
    max_current_a: Mapped[float | None] = mapped_column(Float)
    # auto: TxProfiles, falling back to a station maximum when refused; tx; max.
    profile_mode: Mapped[str] = mapped_column(String(8), server_default="auto")
    managed: Mapped[bool] = mapped_column(Boolean, server_default=true())
    unmanaged_reason: Mapped[str | None] = mapped_column(String(300))
    unmanaged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SiteCapRow(Base):
    """A temporary limit on a site (demand response, set by staff or by an OpenADR VTN)."""

    __tablename__ = "site_caps"
    __table_args__ = (Index("ix_site_caps_site_end", "site_id", "end_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    limit_w: Mapped[float] = mapped_column(Float)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(300))
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class SitePriceRow(Base):
    """An imported energy price (day-ahead) of a site for a time slot, per kWh."""

    __tablename__ = "site_prices"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start_at: Mapped[datetime] = mapped_column(primary_key=True)
    end_at: Mapped[datetime]
    price: Mapped[str] = mapped_column(String(32))


class ChargingNeedRow(Base):
    """What a session needs by when (the EV's NotifyEVChargingNeeds, or staff), and its
    priority among the sessions of its site."""

    __tablename__ = "charging_needs"

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    departure_at: Mapped[datetime | None]
    energy_wh: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[int | None]
    source: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime]


class SiteAllocationRow(Base):
    """The load manager's latest share for each running session of a site (what
    `csms sites show` prints), and what the charger was last told."""

    __tablename__ = "site_allocations"

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    node: Mapped[str] = mapped_column(String(64))
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int]
    phases: Mapped[str] = mapped_column(String(8))
    granted_a: Mapped[float] = mapped_column(Float)
    paused: Mapped[bool] = mapped_column(Boolean)
    measured_a: Mapped[float | None] = mapped_column(Float)
    # Why it gets what it gets: share, rotation, price, cap, unmanaged.
    reason: Mapped[str | None] = mapped_column(String(32))
    # The limit the charger accepted last, and its profile id.
    sent_a: Mapped[float | None] = mapped_column(Float)
    profile_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


# --- statistics and uptime (csms.storage.statistics) ----------------------------------


class ConnectivityRow(Base):
    """A charger's connection coming up (`connected`) or going down, written in the same
    write as the charge_points change: the offline time uptime counts."""

    __tablename__ = "connectivity_history"
    __table_args__ = (Index("ix_connectivity_history_cp_at", "charge_point_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    connected: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime]
    # The node (csms serve process) that saw it (several nodes share a PostgreSQL database).
    node_id: Mapped[str | None] = mapped_column(String(255))


class EvseHourRow(Base):
    """An EVSE's occupied and charging time in one whole UTC hour (`hour`: hours since
    1970-01-01 00:00 UTC), in microseconds, made from the raw history by the statistics
    roll-up (csms.storage.rollups); hours with neither have no row."""

    __tablename__ = "evse_hours"
    # Covering: a month's sums are read from the index alone, without a row look-up each.
    __table_args__ = (
        Index(
            "ix_evse_hours_hour", "hour", "charge_point_id", "evse_id", "occupied_us", "charging_us"
        ),
    )

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    evse_id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    occupied_us: Mapped[int] = mapped_column(BigInteger)
    charging_us: Mapped[int] = mapped_column(BigInteger)


class RollupMarkRow(Base):
    """How far a charger's `evse_hours` are made: every hour before `rolled_until` (hours
    since the epoch) is; later ones are not (they are read from the raw history)."""

    __tablename__ = "rollup_marks"

    charge_point_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    rolled_until: Mapped[int] = mapped_column(BigInteger)


class RollupCursorRow(Base):
    """Up to when the roll-up has looked for history that arrived (`received_at` of status
    changes, `updated_at` of transactions) and lowered the marks of the chargers it
    concerns."""

    __tablename__ = "rollup_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_until: Mapped[datetime]


class MaintenanceWindowRow(Base):
    """Time staff take a charger (or one EVSE) out of the uptime figures: `planned`
    maintenance, or an outage `excluded` after the fact with a reason."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_cp_start", "charge_point_id", "starts_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int | None]  # None: the whole charger
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


# --- ad-hoc payment (csms.storage.payments) -------------------------------------------


class PaymentRow(Base):
    """One ad-hoc payment (csms.core.payments.Payment): a driver's pre-authorisation, the
    session it paid for and what was captured. Amounts in minor units of `currency`."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("id_tag", name="uq_payments_id_tag"),
        Index("ix_payments_state", "state", "next_try_at"),
        Index("ix_payments_checkout_ref", "checkout_ref"),
        Index("ix_payments_transaction", "transaction_id"),
        Index("ix_payments_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    evse_uid: Mapped[str] = mapped_column(String(64))
    charge_point_id: Mapped[str] = mapped_column(String(255))
    evse_id: Mapped[int]
    connector_id: Mapped[int | None]
    location_id: Mapped[str | None] = mapped_column(String(36))
    tariff_id: Mapped[str | None] = mapped_column(String(36))
    provider: Mapped[str] = mapped_column(String(16))
    checkout_ref: Mapped[str | None] = mapped_column(String(255))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    cap_minor: Mapped[int] = mapped_column(BigInteger)
    authorized_minor: Mapped[int | None] = mapped_column(BigInteger)
    captured_minor: Mapped[int | None] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    id_tag: Mapped[str] = mapped_column(String(20))
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    cdr_id: Mapped[str | None] = mapped_column(String(36))
    email: Mapped[str | None] = mapped_column(String(254))
    stop_reason: Mapped[str | None] = mapped_column(String(16))
    # Failed attempts at the step due (void, capture), when to try again, the last error.
    attempts: Mapped[int] = mapped_column(Integer)
    next_try_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PaymentEventRow(Base):
    """Every change of a payment (state changes, provider events, staff actions), written
    in the same write as the change; a provider's event id is stored once (replays are
    no-ops)."""

    __tablename__ = "payment_events"
    __table_args__ = (
        UniqueConstraint("provider_event_id", name="uq_payment_events_provider_event_id"),
        Index("ix_payment_events_payment", "payment_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    what: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(Text)
    provider_event_id: Mapped[str | None] = mapped_column(String(255))


class TestPspIntentRow(Base):
    """A pre-authorisation held by the test payment provider (the one that runs inside the
    CSMS for demos), with the idempotency keys it has answered."""

    __tablename__ = "test_psp_intents"
    __table_args__ = (UniqueConstraint("payment_id", name="uq_test_psp_intents_payment_id"),)

    checkout_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    return_url: Mapped[str] = mapped_column(Text)
    cancel_url: Mapped[str] = mapped_column(Text)
    authorized_minor: Mapped[int | None] = mapped_column(BigInteger)
    captured_minor: Mapped[int | None] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    # idempotency key -> the answer given (JSON), so that a key used again moves no money.
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
