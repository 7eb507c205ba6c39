"""Ad-hoc payment: payments, their events (a provider's event stored once) and the test
payment provider's pre-authorisations

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("evse_uid", sa.String(length=64), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("tariff_id", sa.String(length=36), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("checkout_ref", sa.String(length=255), nullable=True),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cap_minor", sa.BigInteger(), nullable=False),
        sa.Column("authorized_minor", sa.BigInteger(), nullable=True),
        sa.Column("captured_minor", sa.BigInteger(), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("id_tag", sa.String(length=20), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("cdr_id", sa.String(length=36), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("stop_reason", sa.String(length=16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("id_tag", name="uq_payments_id_tag"),
    )
    op.create_index("ix_payments_state", "payments", ["state", "next_try_at"])
    op.create_index("ix_payments_checkout_ref", "payments", ["checkout_ref"])
    op.create_index("ix_payments_transaction", "payments", ["transaction_id"])
    op.create_index("ix_payments_created", "payments", ["created_at"])
    op.create_table(
        "payment_events",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("payment_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("what", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("provider_event_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
        sa.UniqueConstraint("provider_event_id", name="uq_payment_events_provider_event_id"),
    )
    op.create_index("ix_payment_events_payment", "payment_events", ["payment_id", "id"])
    op.create_table(
        "test_psp_intents",
        sa.Column("checkout_ref", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=False),
        sa.Column("cancel_url", sa.Text(), nullable=False),
        sa.Column("authorized_minor", sa.BigInteger(), nullable=True),
        sa.Column("captured_minor", sa.BigInteger(), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("checkout_ref", name=op.f("pk_test_psp_intents")),
        sa.UniqueConstraint("payment_id", name="uq_test_psp_intents_payment_id"),
    )


def downgrade() -> None:
    op.drop_table("test_psp_intents")
    op.drop_index("ix_payment_events_payment", table_name="payment_events")
    op.drop_table("payment_events")
    for index in (
        "ix_payments_created",
        "ix_payments_transaction",
        "ix_payments_checkout_ref",
        "ix_payments_state",
    ):
        op.drop_index(index, table_name="payments")
    op.drop_table("payments")
