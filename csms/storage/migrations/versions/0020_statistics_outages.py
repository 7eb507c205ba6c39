"""Statistics: a partial index of the status history's outage rows (Faulted, Unavailable), so
that uptime reads the few changes that matter to it instead of every status change

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


def downgrade() -> None:
    op.drop_index("ix_status_history_outage", table_name="status_history")
