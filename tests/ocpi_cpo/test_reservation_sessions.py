"""Partners' reservations as Sessions on a real SQLite file: one whose stored data cannot
be rendered (written by an older version without its token) is left out, logged and
looked at again only after a back-off, and the others are pushed all the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from csms.core.parties import Party
from csms.core.reservations import ReservationState
from csms.services.partners import PartnerService
from csms.storage import outbox as outbox_repo
from csms.storage import reservations as reservation_repo
from csms.storage.database import Database, WriteTx
from csms.storage.migrate import upgrade
from ocpi_cpo.reservation_sessions import RENDER_RETRY, ReservationSessions

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
INFO = {
    "location_id": "LOC1",
    "evse_uid": "CP1*1",
    "connector_id": "1",
    "currency": "EUR",
    "cdr_token": {
        "country_code": "DE",
        "party_id": "EMS",
        "uid": "TOKEN1",
        "type": "RFID",
        "contract_id": "DE-EMS-C1",
    },
}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/r.db")
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


async def _partner(db: Database) -> int:
    """A registered partner that takes sessions (stored as a handshake would leave it)."""
    partner_id = (await PartnerService(db, lambda: START).add("emsp")).partner.id
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE ocpi_partners SET status = 'registered' WHERE id = :id"),
            {"id": partner_id},
        )
        await conn.execute(
            text(
                "INSERT INTO ocpi_partner_endpoints (partner_id, identifier, role, url) "
                "VALUES (:id, 'sessions', 'RECEIVER', 'http://emsp.example/sessions')"
            ),
            {"id": partner_id},
        )
    return partner_id


async def _reservation(db: Database, partner_id: int, ocpi: dict[str, Any]) -> int:
    async def unit(w: WriteTx) -> int:
        conn = await w.connection()
        reservation_id = await reservation_repo.create(
            conn,
            cp_id="CP1",
            evse_id=1,
            id_tag="TOKEN1",
            parent_id_tag=None,
            expires_at=START + timedelta(hours=1),
            source="ocpi",
            now=START,
            ocpi_partner_id=partner_id,
            ocpi_reservation_id=f"R{len(ocpi)}",
            ocpi=ocpi,
        )
        await reservation_repo.set_state(conn, reservation_id, ReservationState.ACTIVE, START)
        return reservation_id

    return await db.write(unit)


async def test_a_reservation_that_cannot_be_rendered_does_not_stop_the_others(
    db: Database,
) -> None:
    partner_id = await _partner(db)
    broken = await _reservation(db, partner_id, {k: v for k, v in INFO.items() if k != "cdr_token"})
    fine = await _reservation(db, partner_id, INFO)
    moment = [START]
    publisher = ReservationSessions(db, lambda: moment[0], Party("NL", "CSM"))

    with capture_logs() as logs:
        assert await publisher.publish() == 1
    async with db.read() as conn:
        (entry,) = await outbox_repo.listing(conn, partner_id=partner_id)
    assert entry.body is not None and entry.body["id"].endswith(str(fine))
    (failed,) = [e for e in logs if e["event"] == "reservation_session_failed"]
    assert (failed["reservation_id"], failed["attempts"]) == (broken, 1)
    assert failed["error"] == "KeyError: 'cdr_token'"

    # Not looked at again before its back-off has passed; then again.
    with capture_logs() as logs:
        assert await publisher.publish() == 0
    assert not [e for e in logs if e["event"] == "reservation_session_failed"]
    moment[0] += timedelta(seconds=RENDER_RETRY.delay(1))
    with capture_logs() as logs:
        assert await publisher.publish() == 0
    (again,) = [e for e in logs if e["event"] == "reservation_session_failed"]
    assert again["attempts"] == 2
