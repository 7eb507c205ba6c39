"""The CLI's refusal of a database without our schema, on the path PostgreSQL takes (an
engine, not a file check), shown here on SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.cli.common import CliError, require_schema
from csms.config import build_config, with_data_dir
from csms.storage.database import create_engine
from csms.storage.migrate import upgrade


async def test_a_database_without_our_schema_is_refused_then_accepted(tmp_path: Path) -> None:
    config = with_data_dir(build_config({}, {}), tmp_path)
    engine = create_engine(config.database.url)
    try:
        with pytest.raises(CliError) as info:
            await require_schema(engine, config)
        assert info.value.format_message() == (
            f"the database at {tmp_path}/csms.db has no csms schema: point at yours with "
            "--data-dir, --config or CSMS_DATABASE_URL, or create the schema with `csms db init`"
        )
        await upgrade(engine)
        await require_schema(engine, config)  # no error once the schema is there
    finally:
        await engine.dispose()
