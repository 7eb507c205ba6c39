"""OCPI publication: location details and last_updated, per-EVSE link details, the
published EVSE state, the push outbox, session push progress and publisher cursors

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parking_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("facilities", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("opening_hours", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_updated", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("published_digest", sa.String(length=64), nullable=True))
    op.execute("UPDATE locations SET last_updated = updated_at")
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.alter_column(
            "last_updated", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.create_index(
            "ix_locations_publish_order", ["publish", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_locations_last_updated", ["last_updated"], unique=False)

    op.create_table(
        "evse_links",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("evse_code", sa.String(length=48), nullable=True),
        sa.Column("connector_standard", sa.String(length=32), nullable=True),
        sa.Column("connector_format", sa.String(length=16), nullable=True),
        sa.Column("power_type", sa.String(length=16), nullable=True),
        sa.Column("max_voltage", sa.Integer(), nullable=True),
        sa.Column("max_amperage", sa.Integer(), nullable=True),
        sa.Column("max_electric_power", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "evse_id", name=op.f("pk_evse_links")),
        sa.UniqueConstraint("evse_code", name=op.f("uq_evse_links_evse_code")),
    )

    op.create_table(
        "ocpi_evses",
        sa.Column("charge_point_id", sa.String(length=255), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "evse_id", name=op.f("pk_ocpi_evses")),
        sa.UniqueConstraint("uid", name=op.f("uq_ocpi_evses_uid")),
    )
    with op.batch_alter_table("ocpi_evses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ocpi_evses_location_id"), ["location_id"], unique=False
        )

    op.create_table(
        "ocpi_outbox",
        sa.Column("id", _ID, nullable=False),
        sa.Column("partner_id", _ID, nullable=False),
        sa.Column("module", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("object_key", sa.String(length=160), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["ocpi_partners.id"],
            name=op.f("fk_ocpi_outbox_partner_id_ocpi_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpi_outbox")),
    )
    with op.batch_alter_table("ocpi_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_ocpi_outbox_pending", ["delivered_at", "id"], unique=False)
        batch_op.create_index(
            "ix_ocpi_outbox_object", ["partner_id", "object_key", "id"], unique=False
        )

    op.create_table(
        "ocpi_session_pushes",
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", _ID, nullable=False),
        sa.Column("periods_sent", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["ocpi_partners.id"],
            name=op.f("fk_ocpi_session_pushes_partner_id_ocpi_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "transaction_id", "partner_id", name=op.f("pk_ocpi_session_pushes")
        ),
    )
    with op.batch_alter_table("ocpi_session_pushes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ocpi_session_pushes_open", ["completed", "pushed_at"], unique=False
        )

    op.create_table(
        "ocpi_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ocpi_cursors")),
    )

    # What the EVSE reconciler and the session publisher scan for changes.
    with op.batch_alter_table("connectors", schema=None) as batch_op:
        batch_op.create_index("ix_connectors_updated", ["updated_at"], unique=False)
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.create_index("ix_charge_points_updated", ["updated_at"], unique=False)
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index("ix_transactions_updated", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_updated")
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.drop_index("ix_charge_points_updated")
    with op.batch_alter_table("connectors", schema=None) as batch_op:
        batch_op.drop_index("ix_connectors_updated")
    op.drop_table("ocpi_cursors")
    op.drop_table("ocpi_session_pushes")
    op.drop_table("ocpi_outbox")
    op.drop_table("ocpi_evses")
    op.drop_table("evse_links")
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.drop_index("ix_locations_last_updated")
        batch_op.drop_index("ix_locations_publish_order")
        batch_op.drop_column("published_digest")
        batch_op.drop_column("last_updated")
        batch_op.drop_column("opening_hours")
        batch_op.drop_column("facilities")
        batch_op.drop_column("parking_type")
