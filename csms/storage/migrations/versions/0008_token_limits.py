"""How many transactions an id token may hold at once (a fleet or free-vend card: any
number; a personal card: one)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        # NULL: no limit. Existing tokens keep the rule they had: one at a time.
        batch_op.add_column(
            sa.Column("max_concurrent", sa.Integer(), nullable=True, server_default="1")
        )


def downgrade() -> None:
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.drop_column("max_concurrent")
