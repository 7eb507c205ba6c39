"""OCPI routing behind hubs (the party each push is for, and the party each partner request
came from), and the roaming decisions that stand until their transaction starts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocpi_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("to_party", sa.String(length=8), nullable=True))
    with op.batch_alter_table("ocpi_commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_to", sa.String(length=8), nullable=True))
    op.create_table(
        "auth_grants",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("uid_key", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("cdr_token", sa.JSON(), nullable=False),
        sa.Column("authorization_reference", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "uid_key"),
    )
    op.create_index("ix_auth_grants_expires_at", "auth_grants", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_auth_grants_expires_at", table_name="auth_grants")
    op.drop_table("auth_grants")
    with op.batch_alter_table("ocpi_commands", schema=None) as batch_op:
        batch_op.drop_column("reply_to")
    with op.batch_alter_table("ocpi_outbox", schema=None) as batch_op:
        batch_op.drop_column("to_party")
