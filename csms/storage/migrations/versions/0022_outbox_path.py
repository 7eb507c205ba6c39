"""OCPI outbox: the part of a push's URL after the partner's endpoint, so that a push is
sent to the partner's endpoint as it is when the push goes out (a partner that changes
version or endpoints while pushes wait gets them at its new endpoints)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocpi_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("path", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ocpi_outbox", schema=None) as batch_op:
        batch_op.drop_column("path")
