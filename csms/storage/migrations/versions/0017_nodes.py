"""Several nodes on one database: the nodes and their heartbeats, the node holding each
charger, and what a command routed to another node needs (its request, deadline, vouching
party, the nodes involved, its result)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("components", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_id", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_charge_points_node", ["node_id"], unique=False)
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("timeout_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("vouched", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("origin_node", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("target_node", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("runner_node", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        for column in (
            "result",
            "runner_node",
            "target_node",
            "origin_node",
            "vouched",
            "timeout_s",
            "request",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.drop_index("ix_charge_points_node")
        batch_op.drop_column("node_id")
    op.drop_table("nodes")
