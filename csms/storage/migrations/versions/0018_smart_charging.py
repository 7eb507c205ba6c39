"""Smart charging: sites with their circuits, the chargers linked to them, temporary caps
(demand response), energy prices, what a session needs by when, the load manager's latest
shares, and a token's priority

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("max_current_a", sa.Float(), nullable=False),
        sa.Column("max_power_w", sa.Float(), nullable=True),
        sa.Column("phases", sa.Integer(), nullable=False),
        sa.Column("voltage_v", sa.Float(), nullable=False),
        sa.Column("daily_prices", sa.JSON(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "site_circuits",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("max_current_a", sa.Float(), nullable=False),
        sa.Column("max_power_w", sa.Float(), nullable=True),
        sa.Column("phases", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=2), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("site_id", "name", name=op.f("pk_site_circuits")),
    )
    op.create_table(
        "site_links",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("circuit", sa.String(length=64), nullable=True),
        sa.Column("phase", sa.String(length=2), nullable=True),
        sa.Column("max_current_a", sa.Float(), nullable=True),
        sa.Column("profile_mode", sa.String(length=8), server_default="auto", nullable=False),
        sa.Column("managed", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("unmanaged_reason", sa.String(length=300), nullable=True),
        sa.Column("unmanaged_at", _TZ, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", name=op.f("pk_site_links")),
    )
    op.create_index(op.f("ix_site_links_site_id"), "site_links", ["site_id"], unique=False)
    op.create_table(
        "site_caps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("limit_w", sa.Float(), nullable=False),
        sa.Column("start_at", _TZ, nullable=False),
        sa.Column("end_at", _TZ, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("cancelled_at", _TZ, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_caps")),
    )
    op.create_index("ix_site_caps_site_end", "site_caps", ["site_id", "end_at"], unique=False)
    op.create_table(
        "site_prices",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("start_at", _TZ, nullable=False),
        sa.Column("end_at", _TZ, nullable=False),
        sa.Column("price", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "start_at", name=op.f("pk_site_prices")),
    )
    op.create_table(
        "charging_needs",
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("departure_at", _TZ, nullable=True),
        sa.Column("energy_wh", sa.Float(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_charging_needs")),
    )
    op.create_table(
        "site_allocations",
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("phases", sa.String(length=8), nullable=False),
        sa.Column("granted_a", sa.Float(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("measured_a", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("sent_a", sa.Float(), nullable=True),
        sa.Column("profile_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_site_allocations")),
    )
    op.create_index(
        op.f("ix_site_allocations_site_id"), "site_allocations", ["site_id"], unique=False
    )
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.drop_column("priority")
    op.drop_index(op.f("ix_site_allocations_site_id"), table_name="site_allocations")
    op.drop_table("site_allocations")
    op.drop_table("charging_needs")
    op.drop_table("site_prices")
    op.drop_index("ix_site_caps_site_end", table_name="site_caps")
    op.drop_table("site_caps")
    op.drop_index(op.f("ix_site_links_site_id"), table_name="site_links")
    op.drop_table("site_links")
    op.drop_table("site_circuits")
    op.drop_table("sites")
