"""Repository of smart charging: sites with their circuits and linked chargers, caps,
imported prices, charging needs, the load manager's stored shares and token priorities.

Takes an AsyncConnection; returns csms.core.sites values. Rules (what may be linked where,
which cap applies) are the services'; here only reading and writing rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.sites import (
    PHASE_NAMES,
    Cap,
    ChargingNeed,
    Circuit,
    Link,
    ProfileMode,
    Share,
    Site,
    SiteTree,
    parse_phase,
    phase_name,
)
from csms.storage.models import (
    ChargingNeedRow,
    IdTokenRow,
    SiteAllocationRow,
    SiteCapRow,
    SiteCircuitRow,
    SiteLinkRow,
    SitePriceRow,
    SiteRow,
    TransactionRow,
)

_site = cast(Table, SiteRow.__table__)
_circ = cast(Table, SiteCircuitRow.__table__)
_link = cast(Table, SiteLinkRow.__table__)
_cap = cast(Table, SiteCapRow.__table__)
_price = cast(Table, SitePriceRow.__table__)
_need = cast(Table, ChargingNeedRow.__table__)
_alloc = cast(Table, SiteAllocationRow.__table__)
_tok = cast(Table, IdTokenRow.__table__)
_tx = cast(Table, TransactionRow.__table__)


def _phase(text: str | None) -> int | None:
    return None if text is None else parse_phase(text)


def _phase_text(index: int | None) -> str | None:
    return None if index is None else phase_name(index)


def _to_site(row: Any) -> Site:
    return Site(
        id=row.id,
        max_current_a=row.max_current_a,
        phases=row.phases,
        voltage_v=row.voltage_v,
        max_power_w=row.max_power_w,
        location_id=row.location_id,
        daily_prices=tuple((str(at), Decimal(str(price))) for at, price in row.daily_prices or ()),
        timezone=row.timezone,
    )


def _to_circuit(row: Any) -> Circuit:
    return Circuit(
        site_id=row.site_id,
        name=row.name,
        max_current_a=row.max_current_a,
        phases=row.phases,
        parent=row.parent,
        max_power_w=row.max_power_w,
        phase=_phase(row.phase),
    )


def _to_link(row: Any) -> Link:
    return Link(
        charge_point_id=row.charge_point_id,
        site_id=row.site_id,
        circuit=row.circuit,
        phase=_phase(row.phase),
        max_current_a=row.max_current_a,
        profile_mode=ProfileMode(row.profile_mode),
        managed=bool(row.managed),
        unmanaged_reason=row.unmanaged_reason,
    )


def _to_cap(row: Any) -> Cap:
    return Cap(
        id=row.id,
        site_id=row.site_id,
        limit_w=row.limit_w,
        start_at=row.start_at,
        end_at=row.end_at,
        source=row.source,
        requested_by=row.requested_by,
        reference=row.reference,
        reason=row.reason,
    )


# --- sites, circuits, links ---------------------------------------------------------------


def _site_values(site: Site) -> dict[str, Any]:
    return {
        "location_id": site.location_id,
        "max_current_a": site.max_current_a,
        "max_power_w": site.max_power_w,
        "phases": site.phases,
        "voltage_v": site.voltage_v,
        "daily_prices": [[at, str(price)] for at, price in site.daily_prices] or None,
        "timezone": site.timezone,
    }


async def get_site(conn: AsyncConnection, site_id: str) -> Site | None:
    row = (await conn.execute(select(_site).where(_site.c.id == site_id))).first()
    return None if row is None else _to_site(row)


async def save_site(conn: AsyncConnection, site: Site, now: datetime) -> bool:
    """Insert or replace a site's own fields; True when it was new."""
    values = {**_site_values(site), "updated_at": now}
    result = await conn.execute(update(_site).where(_site.c.id == site.id).values(values))
    if result.rowcount:
        return False
    await conn.execute(insert(_site).values(id=site.id, created_at=now, **values))
    return True


async def touch_site(conn: AsyncConnection, site_id: str, now: datetime) -> None:
    """Something of the site changed that leaves no row of its own to date (prices
    replaced, a circuit or link removed): `fingerprint` must see it even when the counts
    come back to what they were."""
    await conn.execute(update(_site).where(_site.c.id == site_id).values(updated_at=now))


async def remove_site(conn: AsyncConnection, site_id: str) -> bool:
    """Forget a site with its circuits, links, caps, prices and shares; False when there
    is no such site."""
    for table in (_circ, _link, _cap, _price, _alloc):
        await conn.execute(delete(table).where(table.c.site_id == site_id))
    result = await conn.execute(delete(_site).where(_site.c.id == site_id))
    return bool(result.rowcount)


async def site_ids(conn: AsyncConnection, *, newest_first: bool = False) -> list[str]:
    """Every site's id: by id, or the most recently added first."""
    order = (_site.c.created_at.desc(), _site.c.id.desc()) if newest_first else (_site.c.id,)
    return [r[0] for r in (await conn.execute(select(_site.c.id).order_by(*order))).all()]


async def save_circuit(conn: AsyncConnection, circuit: Circuit, now: datetime) -> bool:
    """Insert or replace a circuit; True when it was new."""
    values = {
        "parent": circuit.parent,
        "max_current_a": circuit.max_current_a,
        "max_power_w": circuit.max_power_w,
        "phases": circuit.phases,
        "phase": _phase_text(circuit.phase),
        "updated_at": now,
    }
    where = and_(_circ.c.site_id == circuit.site_id, _circ.c.name == circuit.name)
    result = await conn.execute(update(_circ).where(where).values(values))
    if result.rowcount:
        return False
    await conn.execute(
        insert(_circ).values(site_id=circuit.site_id, name=circuit.name, created_at=now, **values)
    )
    return True


async def remove_circuits(
    conn: AsyncConnection, site_id: str, names: Collection[str], now: datetime
) -> int:
    """Forget these circuits of a site (not what hangs below them); how many there were."""
    if not names:
        return 0
    result = await conn.execute(
        delete(_circ).where(_circ.c.site_id == site_id, _circ.c.name.in_(sorted(names)))
    )
    await touch_site(conn, site_id, now)
    return int(result.rowcount)


async def link_of(conn: AsyncConnection, cp_id: str) -> Link | None:
    row = (await conn.execute(select(_link).where(_link.c.charge_point_id == cp_id))).first()
    return None if row is None else _to_link(row)


async def save_link(conn: AsyncConnection, link: Link, now: datetime) -> bool:
    """Insert or replace a charger's link (with whether it is managed); True when new."""
    values = {
        "site_id": link.site_id,
        "circuit": link.circuit,
        "phase": _phase_text(link.phase),
        "max_current_a": link.max_current_a,
        "profile_mode": link.profile_mode.value,
        "managed": link.managed,
        "unmanaged_reason": None if link.managed else link.unmanaged_reason,
        "unmanaged_at": None if link.managed else now,
        "updated_at": now,
    }
    result = await conn.execute(
        update(_link).where(_link.c.charge_point_id == link.charge_point_id).values(values)
    )
    if result.rowcount:
        return False
    await conn.execute(
        insert(_link).values(charge_point_id=link.charge_point_id, created_at=now, **values)
    )
    return True


async def unlink(conn: AsyncConnection, cp_ids: Iterable[str], now: datetime) -> int:
    """Take chargers off their site; how many were linked."""
    ids = sorted(set(cp_ids))
    if not ids:
        return 0
    stmt = select(_link.c.site_id).where(_link.c.charge_point_id.in_(ids)).distinct()
    sites = [r[0] for r in (await conn.execute(stmt)).all()]
    result = await conn.execute(delete(_link).where(_link.c.charge_point_id.in_(ids)))
    for site_id in sites:
        await touch_site(conn, site_id, now)
    return int(result.rowcount)


async def mark_unmanaged(conn: AsyncConnection, cp_id: str, reason: str, now: datetime) -> bool:
    """The load manager gave up on a charger (it refuses profiles): its rated power is
    reserved from now on, staff read `reason`. False when the charger is linked nowhere."""
    result = await conn.execute(
        update(_link)
        .where(_link.c.charge_point_id == cp_id)
        .values(managed=False, unmanaged_reason=reason[:300], unmanaged_at=now, updated_at=now)
    )
    return bool(result.rowcount)


async def mark_managed(conn: AsyncConnection, cp_id: str, now: datetime) -> bool:
    """Manage a charger again (staff linked it anew, or it accepted a profile)."""
    result = await conn.execute(
        update(_link)
        .where(_link.c.charge_point_id == cp_id)
        .values(managed=True, unmanaged_reason=None, unmanaged_at=None, updated_at=now)
    )
    return bool(result.rowcount)


async def trees(conn: AsyncConnection) -> list[SiteTree]:
    """Every site with its circuits and linked chargers, by site id."""
    sites = [_to_site(r) for r in (await conn.execute(select(_site).order_by(_site.c.id))).all()]
    return await _grow(conn, sites)


async def tree(conn: AsyncConnection, site_id: str) -> SiteTree | None:
    site = await get_site(conn, site_id)
    if site is None:
        return None
    (found,) = await _grow(conn, [site])
    return found


async def _grow(conn: AsyncConnection, sites: Sequence[Site]) -> list[SiteTree]:
    if not sites:
        return []
    ids = [s.id for s in sites]
    circuits: dict[str, list[Circuit]] = {i: [] for i in ids}
    links: dict[str, list[Link]] = {i: [] for i in ids}
    stmt = select(_circ).where(_circ.c.site_id.in_(ids)).order_by(_circ.c.site_id, _circ.c.name)
    for row in (await conn.execute(stmt)).all():
        circuits[row.site_id].append(_to_circuit(row))
    stmt = (
        select(_link)
        .where(_link.c.site_id.in_(ids))
        .order_by(_link.c.site_id, _link.c.charge_point_id)
    )
    for row in (await conn.execute(stmt)).all():
        links[row.site_id].append(_to_link(row))
    return [SiteTree(s, tuple(circuits[s.id]), tuple(links[s.id])) for s in sites]


# --- caps ---------------------------------------------------------------------------------


async def add_cap(
    conn: AsyncConnection,
    site_id: str,
    limit_w: float,
    start: datetime,
    end: datetime,
    *,
    source: str,
    requested_by: str,
    reference: str | None,
    reason: str | None,
    now: datetime,
) -> Cap:
    result = await conn.execute(
        insert(_cap)
        .values(
            site_id=site_id,
            limit_w=limit_w,
            start_at=start,
            end_at=end,
            source=source,
            reference=reference,
            requested_by=requested_by,
            reason=reason,
            created_at=now,
        )
        .returning(_cap.c.id)
    )
    cap_id = int(result.scalar_one())
    return Cap(cap_id, site_id, limit_w, start, end, source, requested_by, reference, reason)


async def caps(conn: AsyncConnection, at: datetime, site_id: str | None = None) -> list[Cap]:
    """The caps in force at `at` or later (not cancelled, not ended), by start."""
    stmt = select(_cap).where(_cap.c.cancelled_at.is_(None), _cap.c.end_at > at)
    if site_id is not None:
        stmt = stmt.where(_cap.c.site_id == site_id)
    stmt = stmt.order_by(_cap.c.start_at, _cap.c.id)
    return [_to_cap(r) for r in (await conn.execute(stmt)).all()]


async def cap_history(
    conn: AsyncConnection, site_id: str, limit: int
) -> list[tuple[Cap, datetime | None]]:
    """A site's caps, ended and cancelled ones included, the latest added first; with when
    each was cancelled (None: it was not)."""
    stmt = select(_cap).where(_cap.c.site_id == site_id).order_by(_cap.c.id.desc()).limit(limit)
    return [(_to_cap(r), r.cancelled_at) for r in (await conn.execute(stmt)).all()]


async def get_cap(conn: AsyncConnection, cap_id: int) -> tuple[Cap, datetime | None] | None:
    row = (await conn.execute(select(_cap).where(_cap.c.id == cap_id))).first()
    return None if row is None else (_to_cap(row), row.cancelled_at)


async def cancel_caps(
    conn: AsyncConnection,
    site_id: str,
    *,
    now: datetime,
    cap_id: int | None = None,
    source: str | None = None,
    reference: str | None = None,
) -> list[int]:
    """Cancel the site's caps that have not ended: the one with `cap_id`, or those of
    `source` whose reference is `reference` (or starts with it when it ends in ':'). The
    ids cancelled."""
    conditions = [_cap.c.site_id == site_id, _cap.c.cancelled_at.is_(None), _cap.c.end_at > now]
    if cap_id is not None:
        conditions.append(_cap.c.id == cap_id)
    if source is not None:
        conditions.append(_cap.c.source == source)
    if reference is not None:
        if reference.endswith(":"):
            conditions.append(func.substr(_cap.c.reference, 1, len(reference)) == reference)
        else:
            conditions.append(_cap.c.reference == reference)
    found = [r[0] for r in (await conn.execute(select(_cap.c.id).where(*conditions))).all()]
    if found:
        await conn.execute(update(_cap).where(_cap.c.id.in_(found)).values(cancelled_at=now))
    return sorted(found)


# --- prices -------------------------------------------------------------------------------


async def replace_prices(
    conn: AsyncConnection,
    site_id: str,
    slots: Sequence[tuple[datetime, datetime, Decimal]],
    now: datetime,
) -> int:
    """Store imported prices: the site's slots overlapping the new ones' span are
    replaced. Returns how many stored slots were replaced."""
    if not slots:
        return 0
    first, last = min(s[0] for s in slots), max(s[1] for s in slots)
    result = await conn.execute(
        delete(_price).where(
            _price.c.site_id == site_id, _price.c.start_at < last, _price.c.end_at > first
        )
    )
    await conn.execute(
        insert(_price),
        [
            {"site_id": site_id, "start_at": start, "end_at": end, "price": str(price)}
            for start, end, price in slots
        ],
    )
    await touch_site(conn, site_id, now)
    return int(result.rowcount)


async def clear_prices(conn: AsyncConnection, site_id: str, now: datetime) -> int:
    result = await conn.execute(delete(_price).where(_price.c.site_id == site_id))
    await touch_site(conn, site_id, now)
    return int(result.rowcount)


async def price_slots(
    conn: AsyncConnection, site_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, Decimal]]:
    """The site's imported prices (per kWh) of the slots overlapping [start, end), by start."""
    stmt = (
        select(_price.c.start_at, _price.c.end_at, _price.c.price)
        .where(_price.c.site_id == site_id, _price.c.start_at < end, _price.c.end_at > start)
        .order_by(_price.c.start_at)
    )
    return [(r[0], r[1], Decimal(r[2])) for r in (await conn.execute(stmt)).all()]


# --- charging needs and priorities --------------------------------------------------------


def _to_need(row: Any) -> ChargingNeed:
    return ChargingNeed(
        transaction_id=row.transaction_id,
        departure_at=row.departure_at,
        energy_wh=row.energy_wh,
        priority=row.priority,
        source=row.source,
    )


async def needs(conn: AsyncConnection, tx_ids: Collection[int]) -> dict[int, ChargingNeed]:
    if not tx_ids:
        return {}
    stmt = select(_need).where(_need.c.transaction_id.in_(sorted(set(tx_ids))))
    return {r.transaction_id: _to_need(r) for r in (await conn.execute(stmt)).all()}


async def set_need(conn: AsyncConnection, need: ChargingNeed, now: datetime) -> ChargingNeed:
    """Store what a session needs; a field given as None keeps the stored value. Returns
    the need as stored."""
    given = {
        k: v
        for k, v in (
            ("departure_at", need.departure_at),
            ("energy_wh", need.energy_wh),
            ("priority", need.priority),
        )
        if v is not None
    }
    values = {**given, "source": need.source, "updated_at": now}
    result = await conn.execute(
        update(_need).where(_need.c.transaction_id == need.transaction_id).values(values)
    )
    if not result.rowcount:
        await conn.execute(insert(_need).values(transaction_id=need.transaction_id, **values))
    stored = await needs(conn, [need.transaction_id])
    return stored[need.transaction_id]


async def token_priorities(conn: AsyncConnection, tx_ids: Collection[int]) -> dict[int, int]:
    """The priority of the token that started each transaction, where the token has one."""
    if not tx_ids:
        return {}
    stmt = (
        select(_tx.c.id, _tok.c.priority)
        .select_from(_tx.join(_tok, _tok.c.uid_key == _tx.c.id_tag_key))
        .where(_tx.c.id.in_(sorted(set(tx_ids))), _tok.c.priority.is_not(None))
    )
    return {int(r[0]): int(r[1]) for r in (await conn.execute(stmt)).all()}


# --- the load manager's shares ------------------------------------------------------------


def _phases_text(phases: Sequence[int]) -> str:
    return ",".join(PHASE_NAMES[p] for p in phases)


def _to_share(row: Any) -> Share:
    return Share(
        transaction_id=row.transaction_id,
        site_id=row.site_id,
        node=row.node,
        charge_point_id=row.charge_point_id,
        evse_id=row.evse_id,
        phases=tuple(parse_phase(p) for p in row.phases.split(",") if p),
        granted_a=row.granted_a,
        paused=bool(row.paused),
        measured_a=row.measured_a,
        reason=row.reason,
        sent_a=row.sent_a,
        profile_id=row.profile_id,
    )


async def save_shares(
    conn: AsyncConnection, site_id: str, shares: Sequence[Share], now: datetime
) -> None:
    """Replace the site's stored shares with these (a session moved from another site
    leaves that one)."""
    ids = [s.transaction_id for s in shares]
    stale = _alloc.c.site_id == site_id
    await conn.execute(delete(_alloc).where(or_(stale, _alloc.c.transaction_id.in_(ids))))
    if not shares:
        return
    await conn.execute(insert(_alloc), [_share_row(site_id, s, now) for s in shares])


def _share_row(site_id: str, s: Share, now: datetime) -> dict[str, Any]:
    return {
        "transaction_id": s.transaction_id,
        "site_id": site_id,
        "node": s.node,
        "charge_point_id": s.charge_point_id,
        "evse_id": s.evse_id,
        "phases": _phases_text(s.phases),
        "granted_a": s.granted_a,
        "paused": s.paused,
        "measured_a": s.measured_a,
        "reason": s.reason,
        "sent_a": s.sent_a,
        "profile_id": s.profile_id,
        "updated_at": now,
    }


async def update_shares(
    conn: AsyncConnection,
    site_id: str,
    changed: Sequence[Share],
    gone: Collection[int],
    now: datetime,
) -> None:
    """Write the shares that changed and drop those of `gone` sessions, leaving the
    site's other rows as they are (the load manager's look, at most once a second)."""
    dropped = [*gone, *(s.transaction_id for s in changed)]
    if dropped:
        await conn.execute(delete(_alloc).where(_alloc.c.transaction_id.in_(dropped)))
    if changed:
        await conn.execute(insert(_alloc), [_share_row(site_id, s, now) for s in changed])


async def shares(conn: AsyncConnection, site_id: str) -> list[Share]:
    stmt = select(_alloc).where(_alloc.c.site_id == site_id).order_by(_alloc.c.transaction_id)
    return [_to_share(r) for r in (await conn.execute(stmt)).all()]


async def share_times(conn: AsyncConnection, site_id: str) -> dict[int, datetime]:
    """When each stored share of the site was written."""
    stmt = select(_alloc.c.transaction_id, _alloc.c.updated_at).where(_alloc.c.site_id == site_id)
    return {int(r[0]): r[1] for r in (await conn.execute(stmt)).all()}


# --- noticing changes ---------------------------------------------------------------------


async def fingerprint(conn: AsyncConnection) -> tuple[Any, ...]:
    """A value that changes whenever staff change a site, circuit, link, cap, price or
    need (another process may have): one round trip of aggregates over small tables. The
    load manager compares it with the last one it saw."""

    def summary(table: Table, *columns: Any) -> Any:
        return [
            select(func.count()).select_from(table).scalar_subquery(),
            *(select(func.max(c)).scalar_subquery() for c in columns),
        ]

    stmt = select(
        *summary(_site, _site.c.updated_at),
        *summary(_circ, _circ.c.updated_at),
        *summary(_link, _link.c.updated_at),
        *summary(_cap, _cap.c.id, _cap.c.cancelled_at),
        *summary(_price, _price.c.end_at),
        *summary(_need, _need.c.updated_at),
    )
    return tuple((await conn.execute(stmt)).one())
