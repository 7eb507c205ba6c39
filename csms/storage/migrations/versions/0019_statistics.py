"""Statistics and uptime: each charger's connections coming up and going down, the
maintenance windows staff enter, an index of the audit log by command and time (staff's
availability commands) and one of CDRs by the CDR they credit

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "connectivity_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connectivity_history")),
    )
    op.create_index(
        "ix_connectivity_history_cp_at",
        "connectivity_history",
        ["charge_point_id", "at"],
        unique=False,
    )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", _ID, nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", _TZ, nullable=False),
        sa.Column("ends_at", _TZ, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    op.create_index(
        "ix_maintenance_windows_cp_start",
        "maintenance_windows",
        ["charge_point_id", "starts_at"],
        unique=False,
    )
    op.create_index("ix_commands_command_time", "commands", ["command", "created_at"], unique=False)
    op.create_index("ix_cdrs_credit_reference", "cdrs", ["credit_reference_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cdrs_credit_reference", table_name="cdrs")
    op.drop_index("ix_commands_command_time", table_name="commands")
    op.drop_index("ix_maintenance_windows_cp_start", table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
    op.drop_index("ix_connectivity_history_cp_at", table_name="connectivity_history")
    op.drop_table("connectivity_history")
