"""Alembic environment: runs on the connection handed over by csms.storage.migrate.

Offline SQL generation is not supported; migrations always run against a live database.
"""

from __future__ import annotations

from alembic import context

from csms.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `csms db upgrade`")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
