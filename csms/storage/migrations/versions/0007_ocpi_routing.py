"""OCPI routing behind hubs: the party each push is for, and the party each partner request
came from (its result goes back there)

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


def downgrade() -> None:
    with op.batch_alter_table("ocpi_commands", schema=None) as batch_op:
        batch_op.drop_column("reply_to")
    with op.batch_alter_table("ocpi_outbox", schema=None) as batch_op:
        batch_op.drop_column("to_party")
