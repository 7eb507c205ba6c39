"""charge_points.security_profile: the OCPP security profile each charger must connect
with (existing chargers keep profile 1: Basic password, if any, over ws://)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("security_profile", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.drop_column("security_profile")
