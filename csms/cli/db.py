"""`csms db`: create the database and migrate its schema.

Runs Alembic through csms.storage.migrate; nothing else. With `csms serve` and `csms demo`
these are the only commands that may create a database.
"""

from __future__ import annotations

from typing import Any

import click

from csms.cli.common import config_option, load, run_db
from csms.config import database_location


@click.group()
def db() -> None:
    """Database schema."""


@db.command("init")
@config_option
def init_cmd(config_file: str | None) -> None:
    """Create the database (and its schema) where the configuration points; a database
    that is already there is upgraded to the newest schema and kept."""
    from csms.storage.migrate import current, upgrade

    config = load(config_file)

    async def work(database: Any) -> tuple[str | None, str | None]:
        before = await current(database.engine)
        await upgrade(database.engine)
        return before, await current(database.engine)

    before, after = run_db(config_file, work, create=True, upgrade_first=False)
    at = database_location(config.database.url)
    if before is None:
        click.echo(f"created the csms database at {at} (schema revision {after})")
    else:
        click.echo(f"the csms database at {at} exists (schema revision {after})")


@db.command("upgrade")
@config_option
def upgrade_cmd(config_file: str | None) -> None:
    """Create or upgrade the database schema to the newest version."""
    from csms.storage.migrate import current

    async def work(database: Any) -> str | None:
        return await current(database.engine)

    config = load(config_file)
    revision = run_db(config_file, work, create=True)
    at = database_location(config.database.url)
    click.echo(f"the csms database at {at}: schema at revision {revision}")
