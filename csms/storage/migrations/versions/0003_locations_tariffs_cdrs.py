"""locations, tariffs and their assignments, CDRs; transactions.billing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cdrs",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.String(length=39), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_excl_vat", sa.String(length=40), nullable=False),
        sa.Column("total_incl_vat", sa.String(length=40), nullable=True),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.Boolean(), nullable=False),
        sa.Column("credit_reference_id", sa.String(length=39), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_cdrs")),
        sa.UniqueConstraint("id", name=op.f("uq_cdrs_id")),
    )
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.create_index("ix_cdrs_cp_end", ["charge_point_id", "end_at"], unique=False)
        batch_op.create_index("ix_cdrs_end", ["end_at"], unique=False)
        batch_op.create_index("ix_cdrs_tx", ["transaction_id"], unique=False)

    op.create_table(
        "charger_locations",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("connector_standard", sa.String(length=32), nullable=False),
        sa.Column("connector_format", sa.String(length=16), nullable=False),
        sa.Column("power_type", sa.String(length=16), nullable=False),
        sa.Column("max_voltage", sa.Integer(), nullable=False),
        sa.Column("max_amperage", sa.Integer(), nullable=False),
        sa.Column("max_electric_power", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", name=op.f("pk_charger_locations")),
    )
    with op.batch_alter_table("charger_locations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_charger_locations_location_id"), ["location_id"], unique=False
        )

    op.create_table(
        "locations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("city", sa.String(length=45), nullable=False),
        sa.Column("postal_code", sa.String(length=10), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("latitude", sa.String(length=10), nullable=False),
        sa.Column("longitude", sa.String(length=11), nullable=False),
        sa.Column("time_zone", sa.String(length=255), nullable=False),
        sa.Column("publish", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
    )
    op.create_table(
        "tariff_assignments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tariff_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariff_assignments")),
        sa.UniqueConstraint("scope", "target", name="uq_tariff_assignments_target"),
    )
    with op.batch_alter_table("tariff_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tariff_assignments_tariff_id"), ["tariff_id"], unique=False
        )

    op.create_table(
        "tariffs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billing", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_transactions_billing"), ["billing"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transactions_billing"))
        batch_op.drop_column("billing")

    op.drop_table("tariffs")
    with op.batch_alter_table("tariff_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tariff_assignments_tariff_id"))

    op.drop_table("tariff_assignments")
    op.drop_table("locations")
    with op.batch_alter_table("charger_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charger_locations_location_id"))

    op.drop_table("charger_locations")
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.drop_index("ix_cdrs_tx")
        batch_op.drop_index("ix_cdrs_end")
        batch_op.drop_index("ix_cdrs_cp_end")

    op.drop_table("cdrs")
