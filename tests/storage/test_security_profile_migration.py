"""Revision 0014: chargers stored before security profiles keep profile 1 (they connect
as they did), and new rows get 1 unless staff say otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from csms.core.charger import RegistrationStatus
from csms.storage import charge_points as cp_repo
from csms.storage.database import Database
from csms.storage.migrate import upgrade
from tests.postgres import db_url_for


async def test_existing_chargers_keep_profile_1(tmp_path: Path) -> None:
    db = Database.from_url(db_url_for(tmp_path / "m.db", empty=True))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    try:
        await upgrade(db.engine, "0013")
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO charge_points (id, registration, password_hash, connected, "
                    "auto_registered, created_at, updated_at) "
                    "VALUES ('OLD', 'Accepted', 'pbkdf2$x', false, false, :now, :now)"
                ),
                {"now": now},
            )
        await upgrade(db.engine)
        async with db.engine.begin() as conn:
            old = await cp_repo.get(conn, "OLD")
            new = await cp_repo.create(conn, "NEW", RegistrationStatus.ACCEPTED, now)
            three = await cp_repo.create(
                conn, "THREE", RegistrationStatus.ACCEPTED, now, security_profile=3
            )
        assert old is not None and old.security_profile == 1 and old.password_hash == "pbkdf2$x"
        assert (new.security_profile, three.security_profile) == (1, 3)
    finally:
        await db.engine.dispose()
