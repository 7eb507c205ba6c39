"""Rows written straight into a test server's database, past the services: what an older
version stored, or a row broken by hand. On SQLite and PostgreSQL alike (tests/postgres.py).

Blocking: call it through asyncio.to_thread from a test whose server runs on the loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.sql.base import Executable

from csms.storage.database import create_engine
from tests.postgres import db_url_for

Params = dict[str, Any] | list[dict[str, Any]] | None
Statement = Executable | str | tuple[Executable | str, Params]


def execute(db_path: Path, *statements: Statement) -> list[Any]:
    """Run `statements` (SQL text or SQLAlchemy statements, each alone or with its
    parameters) in one transaction on the database of `db_path`; the rows of the last."""
    url = db_url_for(db_path)

    async def run() -> list[Any]:
        engine = create_engine(url)
        rows: list[Any] = []
        try:
            async with engine.begin() as conn:
                for item in statements:
                    statement, params = item if isinstance(item, tuple) else (item, None)
                    if isinstance(statement, str):
                        statement = text(statement)
                    result = await conn.execute(statement, params)
                    rows = [tuple(r) for r in result] if result.returns_rows else []
        finally:
            await engine.dispose()
        return rows

    return asyncio.run(run())
