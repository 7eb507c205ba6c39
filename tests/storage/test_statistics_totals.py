"""The statistics service's figures against the plain path they replace, on each database:
on a random month (1.6 and 2.0.1 sessions across hour, day, week and month edges, running
sessions, sessions started before the range, CDRs billed, credited and billed again, odd
amounts, several currencies, tokens shared between EVSEs, locations and sites), every
grouping and period, ranges starting and ending mid-hour: exactly the rows that
csms.core.statistics.summarise makes from every session fact and status change."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.statistics import Figures, GroupBy, Period, group_function, summarise
from csms.services.statistics import StatisticsService
from csms.storage import statistics as repo
from csms.storage.database import Database
from csms.storage.migrate import upgrade
from csms.storage.models import (
    CdrRow,
    ChargePointRow,
    ChargerLocationRow,
    ConnectorRow,
    SiteLinkRow,
    StatusHistoryRow,
    TransactionEventRow,
    TransactionRow,
)
from tests.postgres import db_url_for
from tests.storage.test_statistics import table, write

BEGIN = datetime(2026, 10, 26, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 10, 17, 23, 123456, tzinfo=UTC)
STATUSES = ("Preparing", "Charging", "SuspendedEV", "Finishing", "Available", "Faulted")
AMOUNTS = ("1.50", "0.3", "12", "7.125", "-2.00", "1E+1", "0.00000001", "3.40")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "totals.db"))
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


def moment(rng: random.Random) -> datetime:
    span = (NOW - BEGIN).total_seconds()
    return BEGIN + timedelta(microseconds=rng.randrange(int(span * 1_000_000)))


async def random_network(conn: AsyncConnection, seed: int) -> None:
    rng = random.Random(seed)
    chargers = [f"R{k}" for k in range(1, 7)]
    for k, cp_id in enumerate(chargers):
        await conn.execute(
            insert(table(ChargePointRow)).values(
                id=cp_id, registration="Accepted", connected=False, created_at=BEGIN,
                updated_at=BEGIN,
            )
        )  # fmt: skip
        for evse_id in (1, 2):
            await conn.execute(
                insert(table(ConnectorRow)).values(
                    charge_point_id=cp_id, evse_id=evse_id, connector_id=1, status="Available",
                    error_code="NoError", status_at=BEGIN, updated_at=BEGIN,
                )
            )  # fmt: skip
        if k % 3:
            await conn.execute(
                insert(table(ChargerLocationRow)).values(
                    charge_point_id=cp_id, location_id=f"LOC{k % 2}",
                    connector_standard="IEC_62196_T2", connector_format="SOCKET",
                    power_type="AC_3_PHASE", max_voltage=230, max_amperage=32,
                    updated_at=BEGIN,
                )
            )  # fmt: skip
        if k % 2:
            await conn.execute(
                insert(table(SiteLinkRow)).values(
                    charge_point_id=cp_id, site_id=f"S{k % 3}", created_at=BEGIN,
                    updated_at=BEGIN,
                )
            )  # fmt: skip
    history: list[dict[str, Any]] = []
    for cp_id in chargers:
        for evse_id in (1, 2):
            for _ in range(60):
                when = moment(rng)
                history.append(
                    {
                        "charge_point_id": cp_id, "evse_id": evse_id, "connector_id": 1,
                        "status": rng.choice(STATUSES), "error_code": "NoError",
                        "status_at": when, "received_at": when,
                    }
                )  # fmt: skip
    await conn.execute(insert(table(StatusHistoryRow)), history)
    seq = 0
    for tx_id in range(1, 400):
        cp_id = rng.choice(chargers)
        v201 = chargers.index(cp_id) % 2 == 0
        start = moment(rng)
        stop: datetime | None = start + timedelta(seconds=rng.uniform(-60, 40_000))
        if rng.random() < 0.05:
            stop = None
        token = rng.choice(("AA", "BB", "CC", "DD", None))
        await conn.execute(
            insert(table(TransactionRow)).values(
                id=tx_id, charge_point_id=cp_id, ocpp_version="2.0.1" if v201 else "1.6",
                evse_id=rng.choice((1, 2, 2, 3)) if rng.random() > 0.02 else 0,
                connector_id=1, state="active" if stop is None else "completed",
                start_at=start, stop_at=stop,
                energy_wh=None if rng.random() < 0.1 else rng.randrange(0, 60_000),
                id_tag=token, id_tag_key=token,
                remote_start_id=rng.randrange(1, 99) if rng.random() < 0.2 else None,
                auth_method="WHITELIST" if rng.random() < 0.2 else None,
                received_at=start, updated_at=start,
            )
        )  # fmt: skip
        if v201:
            when = start
            for n in range(rng.randrange(0, 4)):
                when += timedelta(seconds=rng.uniform(0, 9_000))
                await conn.execute(
                    insert(table(TransactionEventRow)).values(
                        transaction_id=tx_id, charge_point_id=cp_id,
                        ocpp_transaction_id=f"T{tx_id}", seq_no=n, event_type="Updated",
                        trigger_reason="ChargingStateChanged", timestamp=when,
                        charging_state=rng.choice(("Charging", "SuspendedEV", "Idle")),
                        payload={}, received_at=when,
                    )
                )  # fmt: skip
        billed: list[str] = []
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            seq += 1
            cdr_id = f"CDR{seq:06d}"
            credit_of = billed[-1] if billed and rng.random() < 0.5 else None
            excl = rng.choice(AMOUNTS)
            await conn.execute(
                insert(table(CdrRow)).values(
                    seq=seq, id=cdr_id, transaction_id=tx_id, charge_point_id=cp_id,
                    start_at=start, end_at=start, currency=rng.choice(("EUR", "EUR", "CHF")),
                    total_excl_vat=excl,
                    total_incl_vat=rng.choice((excl, None, "", rng.choice(AMOUNTS))),
                    energy_wh=0, credit=credit_of is not None,
                    credit_reference_id=credit_of, data={}, created_at=start,
                )
            )  # fmt: skip
            billed.append(cdr_id)


async def plain_figures(
    conn: AsyncConnection, by: GroupBy, period: Period, start: datetime, end: datetime
) -> list[Figures]:
    """The path the service took before: every session fact and status change read and
    summed in Python."""
    location_of = await repo.charger_locations(conn)
    site_of = await repo.charger_sites(conn)
    evses = await repo.evses_in_scope(conn)
    facts = await repo.session_facts(conn, start, end)
    activity = await repo.evse_activity(conn, start, end, sessions=facts)
    every = sorted(set(evses) | {f.evse for f in facts if f.evse[1] >= 1} | set(activity))
    group_of = group_function(by, location_of, site_of)
    return summarise(facts, activity, group_of, every, start, end, period)


RANGES = (
    (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    (datetime(2026, 10, 30, 7, 42, 1, 5, tzinfo=UTC), NOW),
    (datetime(2026, 11, 9, 23, 59, 59, tzinfo=UTC), datetime(2026, 11, 10, 0, 30, tzinfo=UTC)),
)


@pytest.mark.parametrize("seed", [1, 2])
async def test_figures_equal_the_plain_path(db: Database, seed: int) -> None:
    await write(db, lambda conn: random_network(conn, seed))
    service = StatisticsService(db, lambda: NOW)
    checked = 0
    for start, end in RANGES:
        for by in ("evse", "charger", "location", "site", "network"):
            for period in ("hour", "day", "week", "month"):
                async with db.read() as conn:
                    expected = await plain_figures(conn, by, period, start, end)
                got = await service.figures(by, period, start, end)
                assert got.rows == expected, (by, period, start, end)
                checked += sum(row.sessions for row in got.rows)
    # Not a comparison of empty months: sessions, revenue and time were there to count.
    assert checked > 1000
    month = await service.figures("network", "month", *RANGES[0])
    assert month.rows[0].revenue and month.rows[0].occupied_s > 0
    assert month.rows[0].unique_tokens == 4
