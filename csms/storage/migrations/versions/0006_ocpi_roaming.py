"""OCPI roaming: partners' tokens (and their whitelist rule on the id token mirror), how a
transaction was authorized, reservations made by partners, partners' commands awaiting
their result, and the parties hubs report

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("whitelist", sa.String(length=16), nullable=True))
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_method", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("authorization_reference", sa.String(length=36), nullable=True)
        )
        batch_op.add_column(sa.Column("cdr_token", sa.JSON(), nullable=True))
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ocpi_partner_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("ocpi_reservation_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("ocpi", sa.JSON(), nullable=True))
        batch_op.create_index(
            "ix_reservations_ocpi", ["ocpi_partner_id", "ocpi_reservation_id"], unique=False
        )

    op.create_table(
        "ocpi_tokens",
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("uid_key", sa.String(length=255), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("whitelist", sa.String(length=16), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partner_id", _ID, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "country_code", "party_id", "uid", "type", name=op.f("pk_ocpi_tokens")
        ),
    )
    with op.batch_alter_table("ocpi_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_ocpi_tokens_uid_key", ["uid_key"], unique=False)
        batch_op.create_index("ix_ocpi_tokens_last_updated", ["last_updated"], unique=False)

    op.create_table(
        "ocpi_commands",
        sa.Column("id", _ID, nullable=False),
        sa.Column("partner_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("response_url", sa.String(length=512), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["ocpi_partners.id"],
            name=op.f("fk_ocpi_commands_partner_id_ocpi_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpi_commands")),
    )
    with op.batch_alter_table("ocpi_commands", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ocpi_commands_state_deadline", ["state", "deadline"], unique=False
        )

    op.create_table(
        "ocpi_hub_parties",
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partner_id", _ID, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "country_code", "party_id", "role", name=op.f("pk_ocpi_hub_parties")
        ),
    )


def downgrade() -> None:
    op.drop_table("ocpi_hub_parties")
    op.drop_table("ocpi_commands")
    op.drop_table("ocpi_tokens")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_reservations_ocpi")
        batch_op.drop_column("ocpi")
        batch_op.drop_column("ocpi_reservation_id")
        batch_op.drop_column("ocpi_partner_id")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_column("cdr_token")
        batch_op.drop_column("authorization_reference")
        batch_op.drop_column("auth_method")
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.drop_column("whitelist")
