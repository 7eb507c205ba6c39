"""The statistics repository on each database: from hand-made rows, exactly the session
facts (revenue of the CDR that stands, token origin), EVSE activity (the status before the
range included, sessions and 2.0.1 charging states), status changes, offline time from
the connectivity history that connects and disconnects write, staff's inoperative time
from accepted availability commands, maintenance windows, and the scope and groupings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.charger import RegistrationStatus
from csms.core.maintenance import WindowKind
from csms.core.statistics import EvseActivity, Interval, SessionFact
from csms.core.uptime import StatusChange
from csms.storage import charge_points as cp_repo
from csms.storage import statistics as repo
from csms.storage.database import Database, WriteTx
from csms.storage.migrate import upgrade
from csms.storage.models import (
    CdrRow,
    ChargePointRow,
    ChargerLocationRow,
    CommandRow,
    ConnectivityRow,
    ConnectorRow,
    SiteLinkRow,
    StatusHistoryRow,
    TransactionEventRow,
    TransactionRow,
)
from tests.postgres import db_url_for

T = TypeVar("T")
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def iv(a: datetime, b: datetime) -> Interval:
    return Interval(a, b)


def table(model: Any) -> Table:
    return cast(Table, model.__table__)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "stats.db"))
    await upgrade(database.engine)
    database.start()
    yield database
    await database.close()


async def write(db: Database, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def unit(w: WriteTx) -> T:
        return await work(await w.connection())

    return await db.write(unit)


async def read(db: Database, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with db.read() as conn:
        return await work(conn)


async def _charger(conn: AsyncConnection, cp_id: str, connectors: list[tuple[int, int]]) -> None:
    await conn.execute(
        insert(table(ChargePointRow)).values(
            id=cp_id, registration="Accepted", connected=False, created_at=START, updated_at=START
        )
    )
    for evse_id, connector_id in connectors:
        await conn.execute(
            insert(table(ConnectorRow)).values(
                charge_point_id=cp_id,
                evse_id=evse_id,
                connector_id=connector_id,
                status="Available",
                error_code="NoError",
                status_at=START,
                updated_at=START,
            )
        )


async def _status(conn: AsyncConnection, cp_id: str, evse_id: int, when: datetime, s: str) -> None:
    await conn.execute(
        insert(table(StatusHistoryRow)).values(
            charge_point_id=cp_id,
            evse_id=evse_id,
            connector_id=0 if evse_id == 0 else 1,
            status=s,
            error_code="NoError",
            status_at=when,
            received_at=when,
        )
    )


async def _tx(
    conn: AsyncConnection,
    tx_id: int,
    cp_id: str,
    evse_id: int,
    start: datetime,
    stop: datetime | None,
    **values: Any,
) -> None:
    await conn.execute(
        insert(table(TransactionRow)).values(
            id=tx_id,
            charge_point_id=cp_id,
            ocpp_version=values.pop("ocpp_version", "1.6"),
            evse_id=evse_id,
            connector_id=1,
            state="active" if stop is None else "completed",
            start_at=start,
            stop_at=stop,
            received_at=start,
            updated_at=start,
            **values,
        )
    )


async def _cdr(
    conn: AsyncConnection,
    seq: int,
    cdr_id: str,
    tx_id: int,
    excl: str,
    incl: str | None,
    *,
    credit_of: str | None = None,
) -> None:
    await conn.execute(
        insert(table(CdrRow)).values(
            seq=seq,
            id=cdr_id,
            transaction_id=tx_id,
            charge_point_id="CP1",
            start_at=START,
            end_at=START,
            currency="EUR",
            total_excl_vat=excl,
            total_incl_vat=incl,
            energy_wh=0,
            credit=credit_of is not None,
            credit_reference_id=credit_of,
            data={},
            created_at=START,
        )
    )


async def _event(conn: AsyncConnection, tx_id: int, seq: int, when: datetime, state: str) -> None:
    await conn.execute(
        insert(table(TransactionEventRow)).values(
            transaction_id=tx_id,
            charge_point_id="CP2",
            ocpp_transaction_id=f"T{tx_id}",
            seq_no=seq,
            event_type="Updated",
            trigger_reason="ChargingStateChanged",
            timestamp=when,
            charging_state=state,
            payload={},
            received_at=when,
        )
    )


async def _availability(
    conn: AsyncConnection, cp_id: str, when: datetime, state: str, evse: int | None, outcome: str
) -> None:
    params: dict[str, Any] = {"state": state}
    if evse is not None:
        params["evse"] = evse
    await conn.execute(
        insert(table(CommandRow)).values(
            charge_point_id=cp_id,
            command="availability",
            params=params,
            source="cli",
            outcome=outcome,
            created_at=when,
            finished_at=when + timedelta(seconds=1),
        )
    )


async def _network(conn: AsyncConnection) -> None:
    """CP1 (1.6, EVSEs 1 and 2) at location LOC1; CP2 (2.0.1, EVSE 1) on site S1."""
    await _charger(conn, "CP1", [(0, 0), (1, 1), (2, 1)])
    await _charger(conn, "CP2", [(1, 1)])
    await conn.execute(
        insert(table(ChargerLocationRow)).values(
            charge_point_id="CP1",
            location_id="LOC1",
            connector_standard="IEC_62196_T2",
            connector_format="SOCKET",
            power_type="AC_3_PHASE",
            max_voltage=230,
            max_amperage=32,
            updated_at=START,
        )
    )
    await conn.execute(
        insert(table(SiteLinkRow)).values(
            charge_point_id="CP2", site_id="S1", created_at=START, updated_at=START
        )
    )
    # CP1 EVSE 1: plugged in before the range; charging 01:00-03:00; free at 04:30.
    for when, status in [
        (at(31, 20, month=10), "Preparing"),
        (at(1, 1), "Charging"),
        (at(1, 3), "SuspendedEV"),
        (at(1, 4), "Finishing"),
        (at(1, 4, 30), "Available"),
        (at(30, 23), "Faulted"),
        (at(1, 0, month=12), "Available"),  # at the range's end: outside
    ]:
        await _status(conn, "CP1", 1, when, status)
    await _status(conn, "CP1", 0, at(10), "Unavailable")
    await _status(conn, "CP1", 0, at(11), "Available")
    # CP2 EVSE 1 (2.0.1): occupied 10:00-12:00 on the 5th.
    await _status(conn, "CP2", 1, at(5, 10), "Occupied")
    await _status(conn, "CP2", 1, at(5, 12), "Available")
    # Sessions.
    await _tx(
        conn, 1, "CP1", 1, at(31, 21, month=10), at(1, 4, 20), energy_wh=12000,
        id_tag="aa", id_tag_key="AA", remote_start_id=7,
    )  # fmt: skip
    await _tx(
        conn, 2, "CP2", 1, at(5, 10, 5), at(5, 11, 55), energy_wh=5000, ocpp_version="2.0.1",
        id_tag="cc", id_tag_key="CC", auth_method="WHITELIST",
        cdr_token={"uid": "cc", "type": "RFID", "contract_id": "NL-EMS-C1"},
    )  # fmt: skip
    await _tx(conn, 3, "CP1", 2, at(20), None, id_tag="bb", id_tag_key="BB")
    await _tx(conn, 4, "CP1", 1, at(1, month=10), at(2, month=10), energy_wh=1)
    await _tx(conn, 5, "CP1", 1, at(1, month=12), None)
    # T1: billed, credited, billed again; the last one stands.
    await _cdr(conn, 1, "NLCSM0000000001", 1, "10.00", "11.90")
    await _cdr(conn, 2, "NLCSM0000000002", 1, "-10.00", "-11.90", credit_of="NLCSM0000000001")
    await _cdr(conn, 3, "NLCSM0000000003", 1, "8.00", "9.52")
    # T2's charging states.
    await _event(conn, 2, 0, at(5, 10, 5), "EVConnected")
    await _event(conn, 2, 1, at(5, 10, 10), "Charging")
    await _event(conn, 2, 2, at(5, 11), "SuspendedEV")
    await _event(conn, 2, 3, at(5, 11, 30), "Charging")
    # Staff: CP1 inoperative from before the range until 02:00 on the 1st; EVSE 1 from
    # 08:00 on the 2nd until the charger is made operative at 10:00; one refused.
    await _availability(conn, "CP1", at(30, month=10), "inoperative", None, "accepted")
    await _availability(conn, "CP1", at(1, 2), "operative", None, "accepted")
    await _availability(conn, "CP1", at(2, 8), "inoperative", 1, "accepted")
    await _availability(conn, "CP1", at(2, 10), "operative", None, "accepted")
    await _availability(conn, "CP1", at(3, 8), "inoperative", 2, "rejected")


async def test_session_facts_have_revenue_and_origin(db: Database) -> None:
    await write(db, _network)

    async def billed_twice(conn: AsyncConnection) -> None:
        await _tx(conn, 6, "CP2", 1, at(6), at(6, 1), energy_wh=700, id_tag_key="CC")
        await _cdr(conn, 4, "NLCSM0000000004", 6, "1.00", None)
        await _cdr(conn, 5, "NLCSM0000000005", 6, "2.00", "2.38")

    await write(db, billed_twice)
    facts = await read(db, lambda c: repo.session_facts(c, START, END))
    assert facts == [
        SessionFact(
            transaction_id=1,
            evse=("CP1", 1),
            start_at=at(31, 21, month=10),
            stop_at=at(1, 4, 20),
            energy_wh=12000,
            token_key="AA",
            origin="remote",
            currency="EUR",
            revenue_excl=Decimal("8.00"),
            revenue_incl=Decimal("9.52"),
        ),
        SessionFact(2, ("CP2", 1), at(5, 10, 5), at(5, 11, 55), 5000, "CC", "roaming",
                    None, None, None),
        # Billed twice without a credit: the newest CDR stands.
        SessionFact(6, ("CP2", 1), at(6), at(6, 1), 700, "CC", "local", "EUR",
                    Decimal("2.00"), Decimal("2.38")),
        SessionFact(3, ("CP1", 2), at(20), None, None, "BB", "local", None, None, None),
    ]  # fmt: skip
    only_cp2 = await read(db, lambda c: repo.session_facts(c, START, END, ["CP2"]))
    assert [f.transaction_id for f in only_cp2] == [2, 6]


async def test_activity_includes_the_status_before_the_range_and_charging_states(
    db: Database,
) -> None:
    await write(db, _network)
    activity = await read(db, lambda c: repo.evse_activity(c, START, END))
    assert activity == {
        ("CP1", 1): EvseActivity(
            occupied=[iv(START, at(1, 4, 30))], charging=[iv(at(1, 1), at(1, 3))]
        ),
        ("CP1", 2): EvseActivity(occupied=[iv(at(20), END)], charging=[]),
        ("CP2", 1): EvseActivity(
            occupied=[iv(at(5, 10), at(5, 12))],
            charging=[iv(at(5, 10, 10), at(5, 11)), iv(at(5, 11, 30), at(5, 11, 55))],
        ),
    }
    facts = await read(db, lambda c: repo.session_facts(c, START, END))
    given = await read(db, lambda c: repo.evse_activity(c, START, END, sessions=facts))
    assert given == activity
    day = await read(db, lambda c: repo.evse_activity(c, at(1, 2), at(1, 12), ["CP1"]))
    assert day == {
        ("CP1", 1): EvseActivity(
            occupied=[iv(at(1, 2), at(1, 4, 30))], charging=[iv(at(1, 2), at(1, 3))]
        )
    }


async def test_status_changes_start_with_the_last_before_the_range(db: Database) -> None:
    """Only where the meaning to uptime changes: into or out of Faulted or Unavailable."""
    await write(db, _network)
    changes = await read(db, lambda c: repo.status_changes(c, START, END, ["CP1"]))
    assert changes == {
        ("CP1", 0): [StatusChange(at(10), "Unavailable"), StatusChange(at(11), "Available")],
        # In service from before the range (Charging ... Available change nothing) until
        # Faulted.
        ("CP1", 1): [
            StatusChange(at(31, 20, month=10), "Preparing"),
            StatusChange(at(30, 23), "Faulted"),
        ],
    }
    second = await read(db, lambda c: repo.status_changes(c, at(1, 2), END, ["CP2"]))
    assert second == {("CP2", 1): [StatusChange(at(5, 10), "Occupied")]}


async def test_staff_unavailable_from_accepted_availability_commands(db: Database) -> None:
    await write(db, _network)
    found = await read(db, lambda c: repo.staff_unavailable(c, START, END))
    second = timedelta(seconds=1)
    assert found == {
        ("CP1", 0): [iv(START, at(1, 2) + second)],
        ("CP1", 1): [iv(at(2, 8) + second, at(2, 10) + second)],
    }


async def test_connects_and_disconnects_write_the_connectivity_history(db: Database) -> None:
    async def connect(cp_id: str, when: datetime, node: str = "n1") -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.connected_later(w, cp_id, "1.6", RegistrationStatus.ACCEPTED, when, node)

        await db.write(unit)

    async def disconnect(cp_id: str, when: datetime, node: str = "n1") -> None:
        async def unit(w: WriteTx) -> None:
            cp_repo.disconnected_later(w, cp_id, node, when, when)

        await db.write(unit)

    await write(db, lambda c: _charger(c, "CP1", [(1, 1)]))
    await write(db, lambda c: _charger(c, "CP2", [(1, 1)]))
    await connect("CP1", at(31, month=10))
    await disconnect("CP1", at(15, 10))
    await connect("CP1", at(15, 10, 30))
    await disconnect("CP1", at(15, 11), node="other")  # another node holds it: no row
    await connect("CP2", at(20))

    async def restart(w: WriteTx) -> None:
        await cp_repo.mark_all_disconnected(await w.connection(), at(29))

    await db.write(restart)
    await disconnect("CP1", at(29, 1))  # already marked: no second row

    rows = await read(
        db,
        lambda c: c.execute(
            select(
                ConnectivityRow.charge_point_id,
                ConnectivityRow.connected,
                ConnectivityRow.at,
                ConnectivityRow.node_id,
            ).order_by(ConnectivityRow.at, ConnectivityRow.charge_point_id)
        ),
    )
    assert [tuple(r) for r in rows.all()] == [
        ("CP1", True, at(31, month=10), "n1"),
        ("CP1", False, at(15, 10), "n1"),
        ("CP1", True, at(15, 10, 30), "n1"),
        ("CP2", True, at(20), "n1"),
        ("CP1", False, at(29), "n1"),
        ("CP2", False, at(29), "n1"),
    ]
    offline = await read(db, lambda c: repo.offline_intervals(c, START, END))
    assert offline == {
        "CP1": [iv(at(15, 10), at(15, 10, 30)), iv(at(29), END)],
        "CP2": [iv(at(29), END)],
    }
    later = await read(db, lambda c: repo.offline_intervals(c, at(30), END, ["CP1"]))
    assert later == {"CP1": [iv(at(30), END)]}

    async def node_restart(w: WriteTx) -> int:
        return await cp_repo.mark_node_disconnected(await w.connection(), "n1", at(30, 12))

    await connect("CP2", at(30))
    assert await db.write(node_restart) == 1
    offline = await read(db, lambda c: repo.offline_intervals(c, at(29, 12), END, ["CP2"]))
    assert offline == {"CP2": [iv(at(29, 12), at(30)), iv(at(30, 12), END)]}


async def test_maintenance_windows_and_exclusions(db: Database) -> None:
    await write(db, _network)

    async def add(conn: AsyncConnection) -> list[int]:
        made = [
            await repo.add_window(
                conn, "CP1", None, at(10), at(10, 6), WindowKind.PLANNED, "new cables", "ann", END
            ),
            await repo.add_window(
                conn,
                "CP1",
                1,
                at(31, 22, month=10),
                at(1, 1),
                WindowKind.EXCLUDED,
                "vandalism",
                None,
                END,
            ),
            await repo.add_window(
                conn,
                "CP2",
                None,
                at(2, month=12),
                at(3, month=12),
                WindowKind.PLANNED,
                "x",
                None,
                END,
            ),
        ]
        return [w.id for w in made]

    ids = await write(db, add)
    found = await read(db, lambda c: repo.exclusions(c, START, END))
    assert found == {("CP1", 0): [iv(at(10), at(10, 6))], ("CP1", 1): [iv(START, at(1, 1))]}
    windows, total = await read(db, lambda c: repo.list_windows(c, limit=2))
    assert total == 3
    assert [w.id for w in windows] == [ids[2], ids[0]]
    first = await read(db, lambda c: repo.get_window(c, ids[0]))
    assert first is not None
    assert (first.charge_point_id, first.evse_id, first.kind, first.reason) == (
        "CP1",
        None,
        WindowKind.PLANNED,
        "new cables",
    )
    assert (first.starts_at, first.ends_at, first.created_by) == (at(10), at(10, 6), "ann")
    mine, total = await read(db, lambda c: repo.list_windows(c, "CP1", limit=10))
    assert ([w.id for w in mine], total) == ([ids[0], ids[1]], 2)
    assert await write(db, lambda c: repo.remove_window(c, ids[0]))
    assert not await write(db, lambda c: repo.remove_window(c, ids[0]))
    assert await read(db, lambda c: repo.exclusions(c, START, END, ["CP1"])) == {
        ("CP1", 1): [iv(START, at(1, 1))]
    }


async def test_scope_and_groupings(db: Database) -> None:
    await write(db, _network)
    assert await read(db, repo.evses_in_scope) == [("CP1", 1), ("CP1", 2), ("CP2", 1)]
    assert await read(db, lambda c: repo.evses_in_scope(c, ["CP2"])) == [("CP2", 1)]
    assert await read(db, repo.charger_locations) == {"CP1": "LOC1"}
    assert await read(db, repo.charger_sites) == {"CP2": "S1"}
    assert await read(db, lambda c: repo.charger_sites(c, ["CP1"])) == {}
