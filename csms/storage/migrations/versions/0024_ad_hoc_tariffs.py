"""Ad-hoc tariffs: a tariff assignment may be for drivers who pay on the spot (`csms tariffs
assign --ad-hoc`), beside the regular assignment of the same target

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tariff_assignments") as batch:
        batch.add_column(
            sa.Column("ad_hoc", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.drop_constraint("uq_tariff_assignments_target", type_="unique")
        batch.create_unique_constraint(
            "uq_tariff_assignments_target", ["scope", "target", "ad_hoc"]
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM tariff_assignments WHERE ad_hoc"))
    with op.batch_alter_table("tariff_assignments") as batch:
        batch.drop_constraint("uq_tariff_assignments_target", type_="unique")
        batch.create_unique_constraint("uq_tariff_assignments_target", ["scope", "target"])
        batch.drop_column("ad_hoc")
