"""ca_certificates: the charging station certificates our CA issued

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ca_certificates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("issuer_serial", sa.String(length=40), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_certificates")),
        sa.UniqueConstraint("serial", name=op.f("uq_ca_certificates_serial")),
    )
    op.create_index(
        "ix_ca_certificates_charge_point_id", "ca_certificates", ["charge_point_id"], unique=False
    )
    op.create_index("ix_ca_certificates_not_after", "ca_certificates", ["not_after"], unique=False)
    op.create_index(
        "ix_ca_certificates_issuer_serial", "ca_certificates", ["issuer_serial"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ca_certificates_issuer_serial", table_name="ca_certificates")
    op.drop_index("ix_ca_certificates_not_after", table_name="ca_certificates")
    op.drop_index("ix_ca_certificates_charge_point_id", table_name="ca_certificates")
    op.drop_table("ca_certificates")
