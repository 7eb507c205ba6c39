"""`csms db`: schema migrations.

Runs Alembic through csms.storage.migrate; nothing else.
"""

from __future__ import annotations

from typing import Any

import click

from csms.cli.common import config_option, run_db


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
def upgrade_cmd(config_file: str | None) -> None:
    """Create or upgrade the database schema to the newest version."""
    from csms.storage.migrate import current

    async def work(database: Any) -> str | None:
        return await current(database.engine)

    revision = run_db(config_file, work)
    click.echo(f"database schema at revision {revision}")
