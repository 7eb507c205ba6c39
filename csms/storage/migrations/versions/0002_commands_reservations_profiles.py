"""commands, reservations, profiles, local lists

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "charging_profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("stack_level", sa.Integer(), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=1), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charging_profiles")),
    )
    with op.batch_alter_table("charging_profiles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_charging_profiles_cp_state", ["charge_point_id", "state"], unique=False
        )

    op.create_table(
        "commands",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index("ix_commands_cp", ["charge_point_id", "id"], unique=False)

    op.create_table(
        "local_lists",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", name=op.f("pk_local_lists")),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("id_tag", sa.String(length=255), nullable=False),
        sa.Column("id_tag_key", sa.String(length=255), nullable=False),
        sa.Column("parent_id_tag", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reservations_cp_state", ["charge_point_id", "state"], unique=False
        )
        batch_op.create_index("ix_reservations_state_expiry", ["state", "expires_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_reservations_state_expiry")
        batch_op.drop_index("ix_reservations_cp_state")

    op.drop_table("reservations")
    op.drop_table("local_lists")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index("ix_commands_cp")

    op.drop_table("commands")
    with op.batch_alter_table("charging_profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_profiles_cp_state")

    op.drop_table("charging_profiles")
