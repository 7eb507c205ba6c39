"""The charging state of each transaction event in a column of its own (billing reads it
there, not in the stored message); rows from before are filled from their payload

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# csms.core.transactions.ChargingState as of this revision (a migration does not import
# the code it outlives).
_STATES = ("Charging", "EVConnected", "SuspendedEV", "SuspendedEVSE", "Idle")


def upgrade() -> None:
    with op.batch_alter_table("transaction_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("charging_state", sa.String(length=16), nullable=True))
    events = sa.table(
        "transaction_events",
        sa.column("charging_state", sa.String(16)),
        sa.column("payload", sa.JSON()),
    )
    reported = events.c.payload["transactionInfo"]["chargingState"].as_string()
    op.execute(events.update().where(reported.in_(_STATES)).values(charging_state=reported))


def downgrade() -> None:
    with op.batch_alter_table("transaction_events", schema=None) as batch_op:
        batch_op.drop_column("charging_state")
