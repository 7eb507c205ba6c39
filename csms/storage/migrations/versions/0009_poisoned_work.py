"""Work that cannot be done now does not block the rest: failed CDR attempts and held
reasons of transactions, sessions that could not be rendered for partners, and failed
attempts at queueing a partner request's result

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("billing_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("billing_error", sa.String(length=300), nullable=True))
        batch_op.add_column(
            sa.Column("billing_retry_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("held_reason", sa.String(length=300), nullable=True))
    op.create_table(
        "ocpi_session_failures",
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_ocpi_session_failures")),
    )
    op.create_index("ix_ocpi_session_failures_next", "ocpi_session_failures", ["next_attempt_at"])
    with op.batch_alter_table("ocpi_commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ocpi_commands", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("attempts")
    op.drop_index("ix_ocpi_session_failures_next", table_name="ocpi_session_failures")
    op.drop_table("ocpi_session_failures")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_column("held_reason")
        batch_op.drop_column("billing_retry_at")
        batch_op.drop_column("billing_error")
        batch_op.drop_column("billing_attempts")
