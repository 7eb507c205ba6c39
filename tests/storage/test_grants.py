"""Stored roaming decisions (auth_grants) on a real SQLite file: kept per charger and token
until used or expired, replaced by a newer one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from csms.core.authorization import AuthStatus
from csms.core.ocpi_sessions import AuthMethod
from csms.core.roaming import Grant
from csms.storage import grants as grant_repo
from csms.storage.database import Database, WriteTx
from csms.storage.grants import Standing
from csms.storage.migrate import upgrade
from tests.postgres import db_url_for

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TOKEN = {"country_code": "DE", "party_id": "EMS", "uid": "APP-1", "type": "APP_USER"}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "g.db"))
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


def grant(reference: str) -> Grant:
    return Grant(AuthStatus.ACCEPTED, AuthMethod.COMMAND, TOKEN, reference, "START_SESSION")


async def save(db: Database, cp_id: str, standing: Standing, now: datetime = NOW) -> None:
    async def unit(w: WriteTx) -> None:
        await grant_repo.save(await w.connection(), cp_id, "APP-1", standing, now)

    await db.write(unit)


async def get(db: Database, cp_id: str, now: datetime = NOW) -> Standing | None:
    async with db.read() as conn:
        return await grant_repo.get(conn, cp_id, "APP-1", now)


async def test_kept_until_used_or_expired(db: Database) -> None:
    await save(db, "CP1", Standing(grant("R1"), 2, NOW + timedelta(minutes=15)))
    found = await get(db, "CP1")
    assert found == Standing(grant("R1"), 2, NOW + timedelta(minutes=15))
    assert found.grant.cdr_token == TOKEN and found.grant.method is AuthMethod.COMMAND
    assert await get(db, "CP2") is None  # another charger
    assert await get(db, "CP1", NOW + timedelta(minutes=15)) is None  # expired

    # A newer decision replaces it; using it removes it.
    await save(db, "CP1", Standing(grant("R2"), None, NOW + timedelta(hours=2)))
    again = await get(db, "CP1")
    assert again is not None and again.grant.authorization_reference == "R2"
    assert again.evse_id is None

    async def used(w: WriteTx) -> None:
        await grant_repo.remove(await w.connection(), "CP1", "APP-1")

    await db.write(used)
    assert await get(db, "CP1") is None


async def test_expired_rows_are_dropped_when_another_is_saved(db: Database) -> None:
    await save(db, "OLD", Standing(grant("R1"), None, NOW + timedelta(minutes=1)))
    later = NOW + timedelta(minutes=5)
    await save(db, "NEW", Standing(grant("R2"), None, later + timedelta(minutes=15)), later)
    async with db.read() as conn:
        # Even asked as of before its expiry, the old row is gone.
        assert await grant_repo.get(conn, "OLD", "APP-1", NOW) is None
    assert await get(db, "NEW", later) is not None
