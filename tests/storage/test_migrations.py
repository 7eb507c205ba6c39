"""The migrations build exactly the schema the models describe, and the newest ones can be
undone and done again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from csms.storage.database import Database
from csms.storage.migrate import alembic_config, current, upgrade
from csms.storage.models import Base
from tests.postgres import db_url_for


async def _differences(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )


async def test_migrations_match_the_models_and_the_newest_one_reverts(tmp_path: Path) -> None:
    db = Database.from_url(db_url_for(tmp_path / "m.db", empty=True))
    try:
        await upgrade(db.engine)
        assert await _differences(db) == []
        head = await current(db.engine)
        assert head is not None

        def down(sync: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = sync
            command.downgrade(cfg, "-1")

        # The newest migrations that change this database's schema revert (a migration may
        # change one database only: 0016 widens PostgreSQL's integers, SQLite's need not).
        for _ in range(3):
            async with db.engine.begin() as conn:
                await conn.run_sync(down)
            if await _differences(db) != []:
                break
        assert await current(db.engine) != head
        assert await _differences(db) != []
        await upgrade(db.engine)
        assert await current(db.engine) == head
        assert await _differences(db) == []
    finally:
        await db.engine.dispose()
