"""An index on status changes by EVSE and time: a 1.6 session's CDR reads the status
changes of its EVSE during the session, which walked the charger's whole history

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_status_history_evse_time",
        "status_history",
        ["charge_point_id", "evse_id", "status_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_status_history_evse_time", table_name="status_history")
