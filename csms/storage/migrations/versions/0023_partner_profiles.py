"""OCPI partners' profiles (documented habits of hubs) and the outcome of the last push to
each (connection health)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocpi_partners") as batch:
        batch.add_column(sa.Column("profile", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ocpi_partners") as batch:
        batch.drop_column("last_error")
        batch.drop_column("last_error_at")
        batch.drop_column("last_success_at")
        batch.drop_column("profile")
