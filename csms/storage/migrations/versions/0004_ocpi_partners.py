"""ocpi_partners, ocpi_partner_roles, ocpi_partner_endpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocpi_partners",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("token_a_hash", sa.String(length=64), nullable=True),
        sa.Column("our_token_hash", sa.String(length=64), nullable=True),
        sa.Column("their_token", sa.String(length=255), nullable=True),
        sa.Column("token_encoding", sa.String(length=8), nullable=False),
        sa.Column("versions_url", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpi_partners")),
        sa.UniqueConstraint("name", name=op.f("uq_ocpi_partners_name")),
        sa.UniqueConstraint("our_token_hash", name=op.f("uq_ocpi_partners_our_token_hash")),
        sa.UniqueConstraint("token_a_hash", name=op.f("uq_ocpi_partners_token_a_hash")),
    )
    op.create_table(
        "ocpi_partner_endpoints",
        sa.Column(
            "partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["ocpi_partners.id"],
            name=op.f("fk_ocpi_partner_endpoints_partner_id_ocpi_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "partner_id", "identifier", "role", name=op.f("pk_ocpi_partner_endpoints")
        ),
    )
    op.create_table(
        "ocpi_partner_roles",
        sa.Column(
            "partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("business_details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["ocpi_partners.id"],
            name=op.f("fk_ocpi_partner_roles_partner_id_ocpi_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "partner_id", "role", "country_code", "party_id", name=op.f("pk_ocpi_partner_roles")
        ),
    )
    with op.batch_alter_table("ocpi_partner_roles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ocpi_partner_roles_party", ["country_code", "party_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ocpi_partner_roles", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_partner_roles_party")

    op.drop_table("ocpi_partner_roles")
    op.drop_table("ocpi_partner_endpoints")
    op.drop_table("ocpi_partners")
