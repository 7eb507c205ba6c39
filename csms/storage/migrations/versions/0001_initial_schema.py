"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charge_points",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("registration", sa.String(length=16), nullable=False),
        sa.Column("ocpp_version", sa.String(), nullable=True),
        sa.Column("vendor", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("serial_number", sa.String(), nullable=True),
        sa.Column("charge_box_serial", sa.String(), nullable=True),
        sa.Column("firmware_version", sa.String(), nullable=True),
        sa.Column("iccid", sa.String(), nullable=True),
        sa.Column("imsi", sa.String(), nullable=True),
        sa.Column("meter_type", sa.String(), nullable=True),
        sa.Column("meter_serial", sa.String(), nullable=True),
        sa.Column("password_hash", sa.String(), nullable=True),
        sa.Column("validation", sa.String(length=16), nullable=True),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("last_boot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firmware_status", sa.String(), nullable=True),
        sa.Column("firmware_status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("diagnostics_status", sa.String(), nullable=True),
        sa.Column("diagnostics_status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("base_report_firmware", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_points")),
    )
    op.create_table(
        "charger_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charger_events")),
    )
    with op.batch_alter_table("charger_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_charger_events_cp_time", ["charge_point_id", "received_at"], unique=False
        )

    op.create_table(
        "device_variables",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("component", sa.String(length=50), nullable=False),
        sa.Column("component_instance", sa.String(length=50), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("variable", sa.String(length=50), nullable=False),
        sa.Column("variable_instance", sa.String(length=50), nullable=False),
        sa.Column("attribute_type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("mutability", sa.String(length=16), nullable=True),
        sa.Column("persistent", sa.Boolean(), nullable=True),
        sa.Column("constant", sa.Boolean(), nullable=True),
        sa.Column("characteristics", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_variables")),
        sa.UniqueConstraint(
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
    op.create_table(
        "id_tokens",
        sa.Column("uid_key", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parent_uid", sa.String(), nullable=True),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uid_key", name=op.f("pk_id_tokens")),
    )
    op.create_table(
        "meter_values",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("energy_wh", sa.Float(), nullable=True),
        sa.Column("power_w", sa.Float(), nullable=True),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_values")),
    )
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        batch_op.create_index("ix_meter_values_tx", ["transaction_id", "timestamp"], unique=False)

    op.create_table(
        "status_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=50), nullable=False),
        sa.Column("info", sa.String(), nullable=True),
        sa.Column("vendor_id", sa.String(), nullable=True),
        sa.Column("vendor_error_code", sa.String(), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_history")),
    )
    with op.batch_alter_table("status_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_status_history_cp_time", ["charge_point_id", "received_at"], unique=False
        )

    op.create_table(
        "transaction_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("ocpp_transaction_id", sa.String(length=64), nullable=False),
        sa.Column("seq_no", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("trigger_reason", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_events")),
        sa.UniqueConstraint("transaction_id", "seq_no", name="uq_transaction_events_seq"),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("ocpp_version", sa.String(), nullable=True),
        sa.Column("ocpp_transaction_id", sa.String(), nullable=True),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(), nullable=True),
        sa.Column("id_tag_key", sa.String(), nullable=True),
        sa.Column("auth_status", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("meter_start_wh", sa.BigInteger(), nullable=True),
        sa.Column("stop_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("meter_stop_wh", sa.BigInteger(), nullable=True),
        sa.Column("energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("stop_reason", sa.String(), nullable=True),
        sa.Column("stop_id_tag", sa.String(), nullable=True),
        sa.Column("flags", sa.String(), nullable=True),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("remote_start_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "charge_point_id", "ocpp_transaction_id", name="uq_transactions_ocpp_id"
        ),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transactions_cp_start", ["charge_point_id", "start_at"], unique=False
        )
        batch_op.create_index(
            "ix_transactions_cp_state", ["charge_point_id", "state"], unique=False
        )
        batch_op.create_index("ix_transactions_start", ["start_at"], unique=False)
        batch_op.create_index("ix_transactions_tag_state", ["id_tag_key", "state"], unique=False)

    op.create_table(
        "unmatched_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("ocpp_transaction_id", sa.String(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_messages")),
    )
    with op.batch_alter_table("unmatched_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_unmatched_messages_charge_point_id"), ["charge_point_id"], unique=False
        )

    op.create_table(
        "connectors",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=50), nullable=False),
        sa.Column("info", sa.String(), nullable=True),
        sa.Column("vendor_id", sa.String(), nullable=True),
        sa.Column("vendor_error_code", sa.String(), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["charge_point_id"],
            ["charge_points.id"],
            name=op.f("fk_connectors_charge_point_id_charge_points"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "charge_point_id", "evse_id", "connector_id", name=op.f("pk_connectors")
        ),
    )


def downgrade() -> None:
    op.drop_table("connectors")
    with op.batch_alter_table("unmatched_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unmatched_messages_charge_point_id"))

    op.drop_table("unmatched_messages")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_tag_state")
        batch_op.drop_index("ix_transactions_start")
        batch_op.drop_index("ix_transactions_cp_state")
        batch_op.drop_index("ix_transactions_cp_start")

    op.drop_table("transactions")
    op.drop_table("transaction_events")
    with op.batch_alter_table("status_history", schema=None) as batch_op:
        batch_op.drop_index("ix_status_history_cp_time")

    op.drop_table("status_history")
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        batch_op.drop_index("ix_meter_values_tx")

    op.drop_table("meter_values")
    op.drop_table("id_tokens")
    op.drop_table("device_variables")
    with op.batch_alter_table("charger_events", schema=None) as batch_op:
        batch_op.drop_index("ix_charger_events_cp_time")

    op.drop_table("charger_events")
    op.drop_table("charge_points")
