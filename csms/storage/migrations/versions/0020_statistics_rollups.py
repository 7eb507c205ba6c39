"""Statistics: a partial index of the status history's outage rows (Faulted, Unavailable), so
that uptime reads the few changes that matter to it instead of every status change; the
hourly roll-up of each EVSE's occupied and charging time, how far each charger's is made,
and the roll-up's cursor

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_OUTAGE = sa.text("status IN ('Faulted', 'Unavailable')")


def upgrade() -> None:
    op.create_index(
        "ix_status_history_outage",
        "status_history",
        ["status_at"],
        unique=False,
        sqlite_where=_OUTAGE,
        postgresql_where=_OUTAGE,
    )
    op.create_table(
        "evse_hours",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("occupied_us", sa.BigInteger(), nullable=False),
        sa.Column("charging_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "evse_id", "hour", name=op.f("pk_evse_hours")),
    )
    op.create_index(
        "ix_evse_hours_hour",
        "evse_hours",
        ["hour", "charge_point_id", "evse_id", "occupied_us", "charging_us"],
        unique=False,
    )
    op.create_table(
        "rollup_marks",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("rolled_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", name=op.f("pk_rollup_marks")),
    )
    op.create_table(
        "rollup_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("seen_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_cursor")),
    )


def downgrade() -> None:
    op.drop_table("rollup_cursor")
    op.drop_table("rollup_marks")
    op.drop_index("ix_evse_hours_hour", table_name="evse_hours")
    op.drop_table("evse_hours")
    op.drop_index("ix_status_history_outage", table_name="status_history")
