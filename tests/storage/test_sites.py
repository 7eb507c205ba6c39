"""The sites repository on each database: trees of sites, circuits and links, the window
of caps, imported prices, charging needs kept field by field, token priorities, stored
shares, and the fingerprint the load manager polls to notice another process's changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.authorization import Token, TokenStatus
from csms.core.sites import ROOT, ChargingNeed, Circuit, Link, ProfileMode, Share, Site
from csms.storage import sites as repo
from csms.storage import tokens as token_repo
from csms.storage.database import Database, WriteTx
from csms.storage.migrate import upgrade
from csms.storage.models import TransactionRow
from tests.postgres import db_url_for

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
T = TypeVar("T")
_tx = cast(Table, TransactionRow.__table__)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(db_url_for(tmp_path / "sites.db"))
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


async def _transaction(conn: AsyncConnection, tag: str | None, cp: str = "CP1") -> int:
    result = await conn.execute(
        insert(_tx).values(
            charge_point_id=cp,
            ocpp_version="1.6",
            evse_id=1,
            connector_id=1,
            id_tag=tag,
            id_tag_key=None if tag is None else tag.upper(),
            auth_status="Accepted",
            state="active",
            start_at=NOW,
            meter_start_wh=0,
            received_at=NOW,
            updated_at=NOW,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def test_trees_hold_sites_circuits_and_links(db: Database) -> None:
    depot = Site("DEPOT", 63.0, 3, location_id=None)
    home = Site("HOME", 32.0, 1, voltage_v=240.0, max_power_w=7000.0)

    async def build(conn: AsyncConnection) -> None:
        assert await repo.save_site(conn, depot, NOW)
        assert await repo.save_site(conn, home, NOW)
        await repo.save_circuit(conn, Circuit("DEPOT", "row-a", 32.0, 3), NOW)
        await repo.save_circuit(conn, Circuit("DEPOT", "row-a1", 16.0, 1, "row-a", None, 1), NOW)
        await repo.save_link(conn, Link("CP1", "DEPOT", "row-a1", None, 16.0), NOW)
        await repo.save_link(conn, Link("CP2", "DEPOT", None, 2, 32.0, ProfileMode.MAX), NOW)

    await write(db, build)
    trees = await read(db, repo.trees)
    assert [t.site for t in trees] == [depot, home]
    depot_tree = trees[0]
    assert depot_tree.circuits == (
        Circuit("DEPOT", "row-a", 32.0, 3),
        Circuit("DEPOT", "row-a1", 16.0, 1, "row-a", None, 1),
    )
    assert depot_tree.links == (
        Link("CP1", "DEPOT", "row-a1", None, 16.0),
        Link("CP2", "DEPOT", None, 2, 32.0, ProfileMode.MAX),
    )
    assert depot_tree.node_phases("row-a1") == (1,)
    assert await read(db, lambda c: repo.tree(c, "NOPE")) is None
    assert await read(db, lambda c: repo.site_ids(c, newest_first=True)) in (
        ["HOME", "DEPOT"],
        ["DEPOT", "HOME"],  # both added at the same instant: by id descending
    )

    # Saving again replaces; the load manager's verdict on a charger is kept apart.
    await write(db, lambda c: repo.save_site(c, Site("DEPOT", 80.0, 3), NOW))
    assert await write(db, lambda c: repo.mark_unmanaged(c, "CP2", "rejected profiles", NOW))
    found = await read(db, lambda c: repo.tree(c, "DEPOT"))
    assert found is not None and found.site.max_current_a == 80.0
    assert found.links[1].managed is False
    assert found.links[1].unmanaged_reason == "rejected profiles"
    assert await write(db, lambda c: repo.mark_managed(c, "CP2", NOW))
    assert (await read(db, lambda c: repo.link_of(c, "CP2"))) == Link(
        "CP2", "DEPOT", None, 2, 32.0, ProfileMode.MAX
    )
    assert not await write(db, lambda c: repo.mark_unmanaged(c, "CP9", "x", NOW))

    # Removing a site takes everything of it along.
    assert await write(db, lambda c: repo.remove_site(c, "DEPOT"))
    assert await read(db, lambda c: repo.link_of(c, "CP1")) is None
    assert [t.site.id for t in await read(db, repo.trees)] == ["HOME"]


async def test_caps_in_force_or_ahead(db: Database) -> None:
    await write(db, lambda c: repo.save_site(c, Site("S", 32.0, 3), NOW))
    await write(db, lambda c: repo.save_site(c, Site("T", 32.0, 3), NOW))
    hour = timedelta(hours=1)

    async def add(conn: AsyncConnection, start: datetime, end: datetime, **kw: Any) -> int:
        cap = await repo.add_cap(
            conn,
            kw.pop("site", "S"),
            11_000.0,
            start,
            end,
            source=kw.pop("source", "staff"),
            requested_by="alice",
            reference=kw.pop("reference", None),
            reason=None,
            now=NOW,
        )
        return cap.id

    past = await write(db, lambda c: add(c, NOW - 2 * hour, NOW - hour))
    now_on = await write(db, lambda c: add(c, NOW - hour, NOW + hour))
    ahead = await write(db, lambda c: add(c, NOW + hour, NOW + 2 * hour))
    other = await write(db, lambda c: add(c, NOW, NOW + hour, site="T"))
    adr1 = await write(
        db, lambda c: add(c, NOW, NOW + hour, source="openadr", reference="ven1:ev1:a")
    )
    adr2 = await write(
        db, lambda c: add(c, NOW, NOW + hour, source="openadr", reference="ven1:ev1:b")
    )

    ids = [c.id for c in await read(db, lambda c: repo.caps(c, NOW, "S"))]
    assert ids == [now_on, adr1, adr2, ahead]
    assert past not in ids
    everywhere = [c.id for c in await read(db, lambda c: repo.caps(c, NOW))]
    assert sorted(everywhere) == sorted([now_on, ahead, other, adr1, adr2])
    (first,) = [c for c in await read(db, lambda c: repo.caps(c, NOW, "S")) if c.id == now_on]
    assert first.active(NOW) and not first.active(NOW + hour)
    assert first.limit_w == 11_000.0 and first.requested_by == "alice"

    # Cancelled by exact reference, by a prefix ending in ':', by id.
    cancel = repo.cancel_caps
    assert await write(
        db, lambda c: cancel(c, "S", now=NOW, source="openadr", reference="ven1:ev1:a")
    ) == [adr1]
    assert await write(
        db, lambda c: cancel(c, "S", now=NOW, source="openadr", reference="ven1:")
    ) == [adr2]
    assert (
        await write(db, lambda c: cancel(c, "S", now=NOW, source="openadr", reference="ven1:"))
        == []
    )
    assert await write(db, lambda c: cancel(c, "S", now=NOW, cap_id=past)) == []  # over
    assert await write(db, lambda c: cancel(c, "S", now=NOW, cap_id=ahead)) == [ahead]
    assert [c.id for c in await read(db, lambda c: repo.caps(c, NOW, "S"))] == [now_on]
    history = await read(db, lambda c: repo.cap_history(c, "S", 10))
    assert [(cap.id, cancelled is not None) for cap, cancelled in history] == [
        (adr2, True),
        (adr1, True),
        (ahead, True),
        (now_on, False),
        (past, False),
    ]


async def test_prices_replace_what_they_overlap(db: Database) -> None:
    await write(db, lambda c: repo.save_site(c, Site("S", 32.0, 3), NOW))
    hour = timedelta(hours=1)
    day = [(NOW + n * hour, NOW + (n + 1) * hour, Decimal(f"0.{10 + n}")) for n in range(24)]
    assert await write(db, lambda c: repo.replace_prices(c, "S", day, NOW)) == 0
    window = await read(
        db, lambda c: repo.price_slots(c, "S", NOW + 90 * timedelta(minutes=1), NOW + 3 * hour)
    )
    assert window == [day[1], day[2]]
    # Two new slots replace the three they overlap; the rest stays.
    new = [
        (NOW + 2 * hour, NOW + 3 * hour, Decimal("-0.05")),
        (NOW + 3 * hour, NOW + 5 * hour, Decimal("0.5")),
    ]
    assert await write(db, lambda c: repo.replace_prices(c, "S", new, NOW)) == 3
    found = await read(db, lambda c: repo.price_slots(c, "S", NOW, NOW + 6 * hour))
    assert found == [day[0], day[1], *new, day[5]]
    assert await write(db, lambda c: repo.clear_prices(c, "S", NOW)) == 23
    assert await read(db, lambda c: repo.price_slots(c, "S", NOW, NOW + 48 * hour)) == []


async def test_needs_keep_what_is_not_given_and_tokens_give_priorities(db: Database) -> None:
    async def setup(conn: AsyncConnection) -> tuple[int, int, int]:
        await token_repo.upsert(
            conn,
            [
                Token("VIP", TokenStatus.ACCEPTED, priority=5),
                Token("PLAIN", TokenStatus.ACCEPTED),
            ],
            NOW,
        )
        return (
            await _transaction(conn, "vip"),
            await _transaction(conn, "PLAIN"),
            await _transaction(conn, None),
        )

    vip, plain, anonymous = await write(db, setup)
    priorities = await read(db, lambda c: repo.token_priorities(c, [vip, plain, anonymous, 999]))
    assert priorities == {vip: 5}
    assert await read(db, lambda c: repo.token_priorities(c, [])) == {}

    leave = NOW + timedelta(hours=8)
    first = await write(
        db, lambda c: repo.set_need(c, ChargingNeed(plain, leave, 20_000.0, None, "ev"), NOW)
    )
    assert first == ChargingNeed(plain, leave, 20_000.0, None, "ev")
    # Staff give a priority only: the EV's departure and energy stay.
    second = await write(
        db,
        lambda c: repo.set_need(c, ChargingNeed(plain, priority=3, source="staff"), NOW),
    )
    assert second == ChargingNeed(plain, leave, 20_000.0, 3, "staff")
    assert await read(db, lambda c: repo.needs(c, [plain, vip])) == {plain: second}
    assert await read(db, lambda c: repo.needs(c, [])) == {}


async def test_shares_are_replaced_per_site(db: Database) -> None:
    one = Share(1, "S", ROOT, "CP1", 1, (0, 1, 2), 16.0, False, 15.2, "share", 16.0, 7)
    two = Share(2, "S", "row-a", "CP2", 1, (1,), 0.0, True, None, "rotation")
    moved = Share(3, "T", ROOT, "CP3", 2, (0,), 10.5, False)
    await write(db, lambda c: repo.save_shares(c, "S", [one, two], NOW))
    await write(db, lambda c: repo.save_shares(c, "T", [moved], NOW))
    assert await read(db, lambda c: repo.shares(c, "S")) == [one, two]
    # The session of CP3 now counts under S: T's row goes, S's rows are replaced.
    again = Share(3, "S", ROOT, "CP3", 2, (0,), 8.0, False)
    await write(db, lambda c: repo.save_shares(c, "S", [again], NOW))
    assert await read(db, lambda c: repo.shares(c, "S")) == [again]
    assert await read(db, lambda c: repo.shares(c, "T")) == []
    assert set(await read(db, lambda c: repo.share_times(c, "S"))) == {3}
    await write(db, lambda c: repo.save_shares(c, "S", [], NOW))
    assert await read(db, lambda c: repo.shares(c, "S")) == []


async def test_fingerprint_changes_with_every_staff_change(db: Database) -> None:
    moments = iter(NOW + timedelta(seconds=n) for n in range(1, 100))
    seen = [await read(db, repo.fingerprint)]

    async def changed(work: Callable[[AsyncConnection], Awaitable[Any]]) -> None:
        await write(db, work)
        value = await read(db, repo.fingerprint)
        assert value not in seen, work
        seen.append(value)

    async def same() -> None:
        assert await read(db, repo.fingerprint) == seen[-1]

    await changed(lambda c: repo.save_site(c, Site("S", 32.0, 3), next(moments)))
    await same()
    await changed(lambda c: repo.save_site(c, Site("S", 40.0, 3), next(moments)))
    await changed(lambda c: repo.save_circuit(c, Circuit("S", "a", 16.0, 3), next(moments)))
    await changed(lambda c: repo.save_circuit(c, Circuit("S", "a", 20.0, 3), next(moments)))
    await changed(lambda c: repo.save_link(c, Link("CP1", "S", "a"), next(moments)))
    await changed(lambda c: repo.save_link(c, Link("CP1", "S"), next(moments)))
    await changed(lambda c: repo.unlink(c, ["CP1"], next(moments)))
    await changed(lambda c: repo.remove_circuits(c, "S", ["a"], next(moments)))

    async def cap(conn: AsyncConnection) -> None:
        await repo.add_cap(
            conn,
            "S",
            5000.0,
            NOW,
            NOW + timedelta(hours=1),
            source="staff",
            requested_by="a",
            reference=None,
            reason=None,
            now=NOW,
        )

    await changed(cap)
    await changed(lambda c: repo.cancel_caps(c, "S", now=next(moments), source="staff"))
    slot = [(NOW, NOW + timedelta(hours=1), Decimal("0.3"))]
    await changed(lambda c: repo.replace_prices(c, "S", slot, next(moments)))
    # The same slot at another price: the count and times are as they were, the site's
    # row dates the change.
    other = [(NOW, NOW + timedelta(hours=1), Decimal("0.4"))]
    await changed(lambda c: repo.replace_prices(c, "S", other, next(moments)))
    tx = await write(db, lambda c: _transaction(c, None))
    await same()  # a transaction is not a staff change
    await changed(lambda c: repo.set_need(c, ChargingNeed(tx, energy_wh=1000.0), next(moments)))
    await changed(lambda c: repo.set_need(c, ChargingNeed(tx, priority=2), next(moments)))
    await write(
        db,
        lambda c: repo.save_shares(c, "S", [Share(tx, "S", ROOT, "CP1", 1, (0,), 6.0, False)], NOW),
    )
    await same()  # the load manager's own shares are not
    await changed(lambda c: repo.remove_site(c, "S"))
