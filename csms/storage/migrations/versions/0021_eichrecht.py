"""Eichrecht: signed meter values kept exactly as received, the public keys of chargers'
meters, and what billing found of a transaction's signatures

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_meter_values",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("context", sa.String(length=32), nullable=True),
        sa.Column("measurand", sa.String(length=64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("encoding_method", sa.String(length=50), nullable=True),
        sa.Column("signing_method", sa.String(length=50), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("meter_serial", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signed_meter_values")),
    )
    op.create_index(
        "ix_signed_meter_values_tx",
        "signed_meter_values",
        ["transaction_id", "timestamp"],
        unique=False,
    )
    op.create_table(
        "meter_public_keys",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("meter_serial", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "evse_id", name=op.f("pk_meter_public_keys")),
    )
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("signature_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("signature_problem", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("signature_problem")
        batch.drop_column("signature_state")
    op.drop_table("meter_public_keys")
    op.drop_index("ix_signed_meter_values_tx", table_name="signed_meter_values")
    op.drop_table("signed_meter_values")
