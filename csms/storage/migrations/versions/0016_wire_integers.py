"""64-bit columns for the integers a charger sends that were 32-bit on PostgreSQL:
transactions.reservation_id and remote_start_id, transaction_events.seq_no

The schemas accept any integer up to 2^63-1 (csms.handlers.schemas.bound); SQLite's
INTEGER holds them, PostgreSQL's integer does not (a seqNo of 2^31 failed the write).
Nothing changes on SQLite.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("transactions", "reservation_id"),
    ("transactions", "remote_start_id"),
    ("transaction_events", "seq_no"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
