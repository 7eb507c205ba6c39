"""Signed meter values and meter keys in storage: kept exactly as given, read back per
transaction in time order (a value received twice once), keys per EVSE with the charger's
as fall-back; and billing reads them for a batch of transactions in one statement each,
however many transactions it bills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from csms.core.authorization import Token, TokenStatus
from csms.core.metering import SignedMeterValue, make_sample
from csms.services.billing import BillingService, Identity
from csms.services.charger_input import ChargingSettings
from csms.services.charging import Charging
from csms.services.staff import StaffService
from csms.services.transactions import MeterReport, StartRequest, StopRequest
from csms.storage import signed_values as signed_repo
from csms.storage.database import Database, WriteTx
from csms.storage.migrate import upgrade
from csms.storage.signed_values import MeterKey
from tests.postgres import db_url_for

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
# Bytes a re-serialiser would change: spaces, an escape, a non-ASCII character.
ODD = 'OCMF|{"FV" : "1.0", "GI":"SIM \\u00e9 ü",  "RD":[]}|{"SD":"3045"}'


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "signed.db"))
    await upgrade(database.engine)
    database.start()
    try:
        yield database
    finally:
        await database.close()


def value(at: datetime, data: str, context: str = "Sample.Periodic") -> SignedMeterValue:
    return SignedMeterValue(at, context, "Energy.Active.Import.Register", data, "OCMF", None, "K")


async def test_values_read_back_exactly_in_time_order_once_each(db: Database) -> None:
    later, earlier = value(NOW, "B2"), value(NOW - timedelta(minutes=1), ODD, "Transaction.Begin")

    async def unit(w: WriteTx) -> None:
        for tx_id, values in ((7, [later, earlier, later]), (8, [value(NOW, "other")])):
            signed_repo.add_later(
                w,
                cp_id="CP",
                evse_id=1,
                connector_id=1,
                transaction_id=tx_id,
                values=values,
                serials=["M1"] * len(values),
            )

    await db.write(unit)
    async with db.read() as conn:
        found = await signed_repo.signed_of(conn, [7, 9])
    assert list(found) == [7]
    assert [v.data for v in found[7]] == [ODD, "B2"]
    first = found[7][0]
    assert (first.context, first.encoding_method, first.public_key, first.meter_serial) == (
        "Transaction.Begin",
        "OCMF",
        "K",
        "M1",
    )
    assert first.timestamp == earlier.timestamp


async def test_an_evse_without_a_key_of_its_own_takes_the_chargers(db: Database) -> None:
    keys = [MeterKey("CP", 0, "AA", "staff", None, NOW), MeterKey("CP", 2, "BB", "ocpp", "M", NOW)]

    async def unit(w: WriteTx) -> None:
        conn = await w.connection()
        for key in keys:
            await signed_repo.save_key(conn, key)
        await signed_repo.save_key(conn, MeterKey("CP", 2, "CC", "ocpp", "M", NOW))

    await db.write(unit)
    async with db.read() as conn:
        found = await signed_repo.meter_keys(conn, [("CP", 1), ("CP", 2), ("CQ", 1)])
        assert await signed_repo.meter_key(conn, "CP", 3) == keys[0]
    assert found == {("CP", 1): keys[0], ("CP", 2): MeterKey("CP", 2, "CC", "ocpp", "M", NOW)}


@pytest.mark.parametrize("sessions", [3, 12])
async def test_billing_reads_signed_values_and_keys_once_per_batch(
    db: Database, sessions: int
) -> None:
    """Unsigned transactions and one with a signed value: the CDR pass reads the signed
    values and the meter keys of all of them in one statement each."""
    await StaffService(db, lambda: NOW).add_token(Token("CARD1", TokenStatus.ACCEPTED))
    charging = Charging.build(db, lambda: NOW, ChargingSettings())
    start = NOW - timedelta(hours=1)
    for number in range(sessions):
        cp_id = f"CP{number}"
        await charging.stations.connected(cp_id, "1.6", None)
        started = await charging.transactions.start_transaction(
            cp_id, "1.6", StartRequest(1, 1, "CARD1", 1000, start)
        )
        tx_id = started.transaction_id
        signed = (value(start, "OCMF|{}|{}"),) if number == 0 else ()
        reading = make_sample(
            timestamp=start + timedelta(minutes=5),
            raw_value=1500,
            measurand="Energy.Active.Import.Register",
            unit="Wh",
        )
        await charging.transactions.meter_values(
            cp_id, MeterReport(1, 1, tx_id, (reading,), signed=signed)
        )
        await charging.transactions.stop_transaction(
            cp_id, StopRequest(tx_id, 2000, start + timedelta(minutes=30), "CARD1")
        )
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        statements.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    billing = BillingService(db, lambda: NOW, Identity("NL", "CPO"))
    assert await billing.bill_pending() == sessions
    event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert sum("FROM signed_meter_values" in s for s in reads) == 1
    assert sum("FROM meter_public_keys" in s for s in reads) == 1
    async with db.read() as conn:
        held = await signed_repo.signed_of(conn, [1])
    assert [v.data for v in held[1]] == ["OCMF|{}|{}"]
