"""What staff read through the operator API: filtered, paged listings of charge points,
transactions, CDRs, tokens, locations, tariffs, OCPI partners, the audit log and
smart-charging sites, and each object alone.

Read only. Filters arrive parsed (enums, times); their JSON shape lives in csms.views.

Raises (csms.core.errors) NotFound, or one of its Unknown* kinds, for an id that names
nothing (the API's 404), and InvalidInput for a filter that cannot match as given (an
unknown partner; the API's 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.authorization import Token, TokenStatus
from csms.core.charger import ConnectorState, RegistrationStatus
from csms.core.clock import Clock
from csms.core.commands import CommandRecord
from csms.core.errors import CsmsError, InvalidInput
from csms.core.errors import NotFound as NotFound
from csms.core.ids import token_key
from csms.core.locations import Location
from csms.core.parties import Party
from csms.core.partners import Partner, PartnerStatus
from csms.core.status import ConnectorStatus
from csms.core.transactions import Transaction, TransactionState
from csms.services.billing import BillingService, Priced
from csms.services.locations import LocationService, LocationView
from csms.services.sites import SiteService, SiteView
from csms.services.staff import (
    ChargerDetail,
    ChargerOverview,
    StaffService,
    TransactionDetail,
)
from csms.storage import cdrs as cdr_repo
from csms.storage import charge_points as cp_repo
from csms.storage import commands as command_repo
from csms.storage import locations as location_repo
from csms.storage import partners as partner_repo
from csms.storage import tariffs as tariff_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.cdrs import StoredCdr
from csms.storage.database import Database
from csms.storage.ocpi_tokens import Conflict as TokenConflict
from csms.storage.paging import Page
from csms.storage.tariffs import Assignment, StoredTariff

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PricedTransaction:
    """A transaction with its readings and its cost (final, or so far at `now`), or why the
    cost cannot be computed (a broken tariff must not hide the rest)."""

    detail: TransactionDetail
    now: datetime
    priced: Priced | None
    cost_error: str | None


class ReadService:
    def __init__(self, db: Database, clock: Clock, billing: BillingService) -> None:
        self._db = db
        self._clock = clock
        self._billing = billing
        self._staff = StaffService(db, clock)
        self._locations = LocationService(db, clock)
        self._sites = SiteService(db, clock)

    @property
    def clock(self) -> Clock:
        return self._clock

    # --- charge points -------------------------------------------------------------------

    async def chargers(
        self,
        *,
        registration: RegistrationStatus | None = None,
        connected: bool | None = None,
        ocpp_version: str | None = None,
        status: ConnectorStatus | None = None,
        after: str | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page[ChargerOverview]:
        async with self._db.read() as conn:
            page = await cp_repo.browse(
                conn,
                registration=registration,
                connected=connected,
                ocpp_version=ocpp_version,
                status=status,
                after=after,
                limit=limit,
                newest_first=newest_first,
            )
            connectors = await cp_repo.connectors_of(conn, [cp.id for cp in page.items])
        by_cp: dict[str, list[ConnectorState]] = {}
        for c in connectors:
            by_cp.setdefault(c.charge_point_id, []).append(c)
        items = [ChargerOverview(cp, tuple(by_cp.get(cp.id, ()))) for cp in page.items]
        return Page(items, page.total, page.next_key)

    async def charger(self, cp_id: str) -> ChargerDetail:
        return await self._staff.charger(cp_id)

    # --- transactions ----------------------------------------------------------------------

    async def transactions(
        self,
        *,
        cp_id: str | None = None,
        state: TransactionState | None = None,
        token: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        billing: str | None = None,
        after: int | None = None,
        limit: int,
    ) -> Page[Transaction]:
        async with self._db.read() as conn:
            return await tx_repo.browse(
                conn,
                cp_id=cp_id,
                state=state,
                tag_key=None if token is None else token_key(token),
                since=since,
                until=until,
                billing=billing,
                after=after,
                limit=limit,
            )

    async def transaction(self, tx_id: int) -> PricedTransaction:
        detail = await self._staff.transaction(tx_id)
        now = self._clock()
        try:
            priced: Priced | None = await self._billing.price(tx_id, now)
            cost_error = None
        except CsmsError as exc:
            priced, cost_error = None, str(exc)
        return PricedTransaction(detail, now, priced, cost_error)

    # --- CDRs --------------------------------------------------------------------------------

    async def cdrs(
        self,
        *,
        cp_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        token: str | None = None,
        partner: str | None = None,
        after: int | None = None,
        limit: int,
    ) -> Page[StoredCdr]:
        async with self._db.read() as conn:
            parties = None
            if partner is not None:
                parties = [(p.country_code, p.party_id) for p in await _parties(conn, partner)]
            return await cdr_repo.browse(
                conn,
                cp_id=cp_id,
                since=since,
                until=until,
                tag_key=None if token is None else token_key(token),
                parties=parties,
                after=after,
                limit=limit,
            )

    async def cdr(self, cdr_id: str) -> StoredCdr:
        return await self._billing.cdr(cdr_id)

    # --- tokens ------------------------------------------------------------------------------

    async def tokens(
        self,
        *,
        status: TokenStatus | None = None,
        owner: str | None = None,
        partner: str | None = None,
        after: str | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page[Token]:
        """`owner`: an origin as stored (`local`, `NL*EMS`); `partner`: tokens owned by one
        of the parties that partner registered (both given: tokens matching both)."""
        async with self._db.read() as conn:
            origins: list[str] | None = None if owner is None else [owner]
            if partner is not None:
                theirs = [str(p) for p in await _parties(conn, partner)]
                origins = theirs if origins is None else [o for o in origins if o in theirs]
            return await token_repo.browse(
                conn,
                status=status,
                origins=origins,
                after=after,
                limit=limit,
                newest_first=newest_first,
            )

    async def token_conflicts(self, uid: str | None = None) -> list[TokenConflict]:
        """Partner tokens whose uid another owner holds (of one uid)."""
        return await self._staff.token_conflicts(uid)

    async def token(self, uid: str) -> Token:
        return await self._staff.token(uid)

    # --- locations ---------------------------------------------------------------------------

    async def locations(
        self,
        *,
        published: bool | None = None,
        country: str | None = None,
        after: str | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page[tuple[Location, list[str]]]:
        async with self._db.read() as conn:
            page = await location_repo.browse(
                conn,
                published=published,
                country=country,
                after=after,
                limit=limit,
                newest_first=newest_first,
            )
            chargers = await location_repo.chargers_at_many(conn, [loc.id for loc in page.items])
        items = [(loc, chargers[loc.id]) for loc in page.items]
        return Page(items, page.total, page.next_key)

    async def location(self, location_id: str) -> LocationView:
        return await self._locations.show(location_id)

    # --- smart-charging sites ---------------------------------------------------------------

    async def sites(
        self, *, after: str | None = None, limit: int, newest_first: bool = False
    ) -> Page[SiteView]:
        """By id (or, `newest_first`, the most recently added first: one page). Sites are
        few: each is read whole and the page cut here."""
        found = await self._sites.sites(newest_first=newest_first)
        if newest_first:
            return Page(found[:limit], len(found), None)
        rest = [v for v in found if after is None or v.site.id > after]
        rest.sort(key=lambda v: v.site.id)
        items = rest[:limit]
        next_key = items[-1].site.id if len(rest) > limit else None
        return Page(items, len(found), next_key)

    async def site(self, site_id: str) -> SiteView:
        return await self._sites.show(site_id)

    # --- tariffs -----------------------------------------------------------------------------

    async def tariffs(
        self,
        *,
        currency: str | None = None,
        after: str | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page[tuple[StoredTariff, list[Assignment]]]:
        async with self._db.read() as conn:
            page = await tariff_repo.browse(
                conn, currency=currency, after=after, limit=limit, newest_first=newest_first
            )
            assigned = await tariff_repo.assignments(conn, ad_hoc=None) if page.items else []
        items = [(t, [a for a in assigned if a.tariff_id == t.id]) for t in page.items]
        return Page(items, page.total, page.next_key)

    async def tariff(self, tariff_id: str) -> tuple[StoredTariff, list[Assignment]]:
        async with self._db.read() as conn:
            stored = await tariff_repo.get(conn, tariff_id)
            if stored is None:
                raise NotFound(f"no tariff {tariff_id!r}")
            return stored, await tariff_repo.assignments(conn, tariff_id, ad_hoc=None)

    # --- OCPI partners -----------------------------------------------------------------------

    async def partners(
        self,
        *,
        status: PartnerStatus | None = None,
        after: str | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page[Partner]:
        """By name (or, `newest_first`, the most recently added first: one page). Partners
        are few: filtered and cut here rather than in SQL."""
        async with self._db.read() as conn:
            found = await partner_repo.with_health(conn, await partner_repo.list_all(conn))
        matching = [p for p in found if status is None or p.status == status]
        if newest_first:
            matching.sort(key=lambda p: (p.created_at or _EPOCH, p.name), reverse=True)
            return Page(matching[:limit], len(matching), None)
        rest = [p for p in matching if after is None or p.name > after]
        items = rest[:limit]
        next_key = items[-1].name if len(rest) > limit else None
        return Page(items, len(matching), next_key)

    async def partner(self, name: str) -> Partner:
        async with self._db.read() as conn:
            found = await partner_repo.get_by_name(conn, name)
            if found is None:
                raise NotFound(f"no partner {name!r}")
            (found,) = await partner_repo.with_health(conn, [found])
        return found

    # --- the audit log -----------------------------------------------------------------------

    async def audit(
        self,
        *,
        cp_id: str | None = None,
        command: str | None = None,
        outcome: str | None = None,
        source: str | None = None,
        partner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int,
    ) -> Page[CommandRecord]:
        """`outcome` `pending`: still waiting for the charger; `partner`: commands an OCPI
        partner of that name sent (a removed partner's entries stay in the log)."""
        if partner is not None:
            if source not in (None, "ocpi"):
                # A partner's commands all come over OCPI: nothing else can match.
                return Page([], 0, None)
            source = "ocpi"
        async with self._db.read() as conn:
            return await command_repo.browse(
                conn,
                cp_id=cp_id,
                command=command,
                outcome=outcome,
                source=source,
                requested_by=partner,
                since=since,
                until=until,
                after=after,
                limit=limit,
            )

    async def audit_entry(self, entry_id: int) -> CommandRecord:
        async with self._db.read() as conn:
            found = await command_repo.get(conn, entry_id)
        if found is None:
            raise NotFound(f"no audit log entry {entry_id}")
        return found


async def _parties(conn: AsyncConnection, name: str) -> Sequence[Party]:
    """The parties an OCPI partner registered (its credentials roles); InvalidInput when no
    partner has that name."""
    partner = await partner_repo.get_by_name(conn, name)
    if partner is None:
        raise InvalidInput(f"partner: no partner {name!r} (see GET /api/partners)")
    return sorted({Party(r.country_code, r.party_id) for r in partner.roles})
