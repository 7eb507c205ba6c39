"""Every statement on the charging hot path (authorize, start, meter values, stop, for both
versions, and the CDRs that follow) finds its rows through an index: none scans
transactions, meter readings, events, tokens, reservations, status history or CDRs,
whatever their size. Run through the real services on each database; each statement they
send is captured and explained: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN with
sequential scans priced out (enable_seqscan off), so that a scan left in the plan is one
no index could avoid."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from csms.core.authorization import Token, TokenStatus
from csms.core.metering import SignedMeterValue, make_sample
from csms.core.transactions import TransactionEvent, TxEventType
from csms.services.billing import BillingService, Identity
from csms.services.charger_input import ChargingSettings
from csms.services.charging import Charging
from csms.services.staff import StaffService
from csms.services.transactions import MeterReport, StartRequest, StopRequest
from csms.storage import transactions as tx_repo
from csms.storage.database import Database
from csms.storage.migrate import upgrade
from tests.postgres import db_url_for

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
# Tables that grow with the operating history.
LARGE = ("transactions", "meter_values", "transaction_events", "id_tokens", "reservations",
         "charging_profiles", "unmatched_messages", "status_history", "cdrs",
         "signed_meter_values")  # fmt: skip


@pytest.fixture
async def captured(tmp_path: Path) -> tuple[str, list[tuple[str, Any]]]:
    url = db_url_for(tmp_path / "plans.db")
    db = Database.from_url(url)
    await upgrade(db.engine)
    db.start()
    await StaffService(db, lambda: NOW).add_token(Token("CARD1", TokenStatus.ACCEPTED))
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, many: bool) -> None:
        statements.append((sql, params[0] if many else params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    charging = Charging.build(db, lambda: NOW, ChargingSettings())
    try:
        await drive(db, charging)
    finally:
        await db.close()
    return url, statements


def reading(at: datetime, wh: int, context: str = "Sample.Periodic") -> tuple[Any, ...]:
    return (
        make_sample(
            timestamp=at, raw_value=wh, measurand="Energy.Active.Import.Register", unit="Wh",
            context=context,
        ),
        make_sample(timestamp=at, raw_value=11000, measurand="Power.Active.Import", unit="W"),
    )  # fmt: skip


async def drive(db: Database, charging: Charging) -> None:
    start = NOW - timedelta(hours=1)
    # OCPP 1.6: Authorize, StartTransaction, MeterValues, StopTransaction; then a resend.
    await charging.stations.connected("CP16", "1.6", None)
    assert (await charging.authorization.authorize("CP16", "CARD1")).accepted
    req = StartRequest(1, 1, "CARD1", 1000, start)
    started = await charging.transactions.start_transaction("CP16", "1.6", req)
    await charging.transactions.start_transaction("CP16", "1.6", req)
    # With a signed value (Eichrecht): billing reads them and the meter keys.
    signed = SignedMeterValue(start, "Sample.Periodic", "Energy.Active.Import.Register", "x")
    await charging.transactions.meter_values(
        "CP16",
        MeterReport(
            1,
            1,
            started.transaction_id,
            reading(start + timedelta(minutes=5), 2000),
            signed=(signed,),
        ),
    )
    await charging.transactions.stop_transaction(
        "CP16",
        StopRequest(started.transaction_id, 3000, start + timedelta(minutes=30), "CARD1"),
    )
    # OCPP 2.0.1: Started, Updated, Ended, and MeterValues outside the transaction.
    await charging.stations.connected("CP201", "2.0.1", None)
    events = [
        (TxEventType.STARTED, 0, start, reading(start, 1000, "Transaction.Begin"), "CARD1"),
        (TxEventType.UPDATED, 1, start + timedelta(minutes=5), reading(start, 1500), None),
        (TxEventType.ENDED, 2, start + timedelta(minutes=30), reading(start, 3000), None),
    ]
    for kind, seq, at, samples, token in events:
        await charging.transactions.transaction_event(
            "CP201",
            "2.0.1",
            TransactionEvent(
                "T-1",
                kind,
                seq,
                at,
                "Authorized",
                evse_id=1,
                connector_id=1,
                id_token=token,
                token_type=None if token is None else "ISO14443",
                samples=samples,
            ),
            {"eventType": kind.value},
        )
    await charging.transactions.station_meter_values("CP201", 1, reading(NOW, 3100))
    # The CDRs of both sessions.
    billing = BillingService(db, lambda: NOW, Identity("NL", "CPO"))
    assert await billing.bill_pending() == 2
    # Look-ups coalesced from several chargers at once (a burst) take another form.
    async with db.read(snapshot=False) as conn:
        await tx_repo.starts_at(conn, [("CP16", start), ("CPX", NOW)])
        await tx_repo.by_ocpp_ids(conn, [("CP201", "T-1"), ("CPX", "T-2")])
        await tx_repo.get_many(conn, [1, 2, 3])
        await tx_repo.holders(conn, ["CARD1", "CARD2"])


def plan(url: str, sql: str, params: Any) -> list[str]:
    """The plan's steps, one per line, in SQLite's words ("SCAN t", "SEARCH t USING INDEX
    ... (charge_point_id=?)") whatever the database, so one rule judges both."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1])
        try:
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params or ()).fetchall()
        finally:
            conn.close()
        return [str(r[-1]) for r in rows]
    return asyncio.run(_postgres_plan(url, sql, params))


async def _postgres_plan(url: str, sql: str, params: Any) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("SET enable_seqscan = off")
        lines = [r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *(params or ()))]
    finally:
        await conn.close()
    steps: list[str] = []
    for line in lines:
        text = line.strip().removeprefix("->").strip()
        scan = re.match(r"Seq Scan on (\w+)", text)
        index = re.match(r"(?:Index|Index Only|Bitmap Heap) Scan (?:using \w+ )?on (\w+)", text)
        if scan:
            steps.append(f"SCAN {scan.group(1)}")
        elif index:
            steps.append(f"SEARCH {index.group(1)} USING INDEX")
        elif text.startswith(("Index Cond:", "Recheck Cond:")) and steps:
            cond = text.split(":", 1)[1].strip()
            if re.fullmatch(r"\((?:\w+\.)?charge_point_id = \$\d+\)", cond):
                steps[-1] += " (charge_point_id=?)"
    return steps


async def test_no_hot_path_statement_scans_a_growing_table(
    captured: tuple[str, list[tuple[str, Any]]],
) -> None:
    url, statements = captured
    checked = 0
    scans = []
    loop = asyncio.get_running_loop()
    for sql, params in statements:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb not in ("SELECT", "UPDATE", "DELETE"):
            continue  # inserts and transaction control have no rows to find
        for step in await loop.run_in_executor(None, plan, url, sql, params):
            checked += 1
            words = step.split()
            whole_table = words[:1] == ["SCAN"] and words[1] in LARGE and "INDEX" not in step
            # A charger's rows are its whole history: an index on (charge_point_id, x) used
            # for the charger alone walks all of them.
            whole_history = words[1] in LARGE and step.endswith("(charge_point_id=?)")
            if whole_table or whole_history:
                scans.append(f"{step}  <-  {' '.join(sql.split())[:160]}")
    assert checked >= 10, statements
    assert scans == []
