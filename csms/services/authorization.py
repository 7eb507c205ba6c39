"""Use cases of id tokens presented at chargers: Authorize, the decision for a token that
starts or joins a transaction, other parties' tokens (roaming grants) and token limits.

Decisions are csms.core.authorization's and csms.core.roaming's; this module loads what
they need through a TokenStore and keeps the running transactions each token holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from csms.core.authorization import AuthResult, AuthStatus, Token, decide, over_limit
from csms.core.clock import Clock
from csms.core.ids import token_key
from csms.core.payments import is_one_time_tag
from csms.core.roaming import Grant
from csms.services.charger_input import MAX_ENTRIES, NO_AUTHORIZATION
from csms.services.holdings import Holdings, Place
from csms.storage import grants as grant_repo
from csms.storage import tokens as token_repo
from csms.storage.database import BatchLoader, Database, WriteTx
from csms.storage.grants import Standing

log = structlog.get_logger("csms.services")

# How long another party's decision for a token at a charger (a real-time answer, or a
# command's vouching) stands for the transaction it leads to.
GRANT_TTL_S = 900.0


class Roaming(Protocol):
    """Decides about other parties' tokens (ocpi_cpo.roaming: their whitelist rule and, when
    it says so, their eMSP in real time)."""

    async def authorize(
        self, cp_id: str, evse_id: int | None, uid: str, token_type: str | None, token: Token
    ) -> Grant | None:
        """The decision for `token` (an id token row owned by another party) presented at
        this charger, or None when it is not a partner's token after all (the local
        decision applies)."""
        ...


class TokenStore(Protocol):
    """Where tokens and the roaming decisions standing at chargers are kept."""

    async def token(self, key: str) -> Token | None:
        """The token of this token_key, or None."""
        ...

    async def standing(self, cp_id: str, uid_key: str, now: datetime) -> Standing | None:
        """A decision stored for the token at the charger that has not expired."""
        ...

    async def keep_standing(
        self, cp_id: str, uid_key: str, standing: Standing, now: datetime
    ) -> None: ...

    async def drop_standing(self, cp_id: str, uid_key: str) -> None: ...


class DatabaseTokens:
    """TokenStore on the database: token look-ups coalesced across chargers (a burst of a
    thousand starts costs a few queries)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._tokens = BatchLoader(db, token_repo.get_many)

    async def token(self, key: str) -> Token | None:
        return await self._tokens.load(key)

    async def standing(self, cp_id: str, uid_key: str, now: datetime) -> Standing | None:
        async with self._db.read() as conn:
            return await grant_repo.get(conn, cp_id, uid_key, now)

    async def keep_standing(
        self, cp_id: str, uid_key: str, standing: Standing, now: datetime
    ) -> None:
        async def unit(w: WriteTx) -> None:
            await grant_repo.save(await w.connection(), cp_id, uid_key, standing, now)

        await self._db.write(unit)

    async def drop_standing(self, cp_id: str, uid_key: str) -> None:
        async def unit(w: WriteTx) -> None:
            await grant_repo.remove(await w.connection(), cp_id, uid_key)

        await self._db.write(unit)


class AuthorizationService:
    """Tokens presented at chargers, decided. One instance per process: it keeps which
    running transactions hold each token (`holdings`, updated by the transaction service)
    and the roaming decisions standing at each charger."""

    def __init__(
        self,
        store: TokenStore,
        clock: Clock,
        holdings: Holdings,
        *,
        allow_unknown_tags: bool = False,
        roaming: Roaming | None = None,
        shared: bool = False,
    ) -> None:
        self._store = store
        self._clock = clock
        self.holdings = holdings
        # Tokens nobody knows are accepted for transactions (free charging set-ups).
        self.allow_unknown_tags = allow_unknown_tags
        # Other parties' tokens are decided here when given (csms.app, by Charging.build).
        self.roaming = roaming
        # Decisions for other parties' tokens, by (charge point, token key): what its
        # Authorize got, or what a partner's command vouched for; used by the transaction
        # that follows. Stored too (auth_grants): this is the cache of this process. With
        # several nodes on one database (`shared`) nothing is cached: a decision made or
        # used on another node (a command's, for a charger it holds) is read each time.
        self._grants: dict[tuple[str, str], Standing] = {}
        self._shared = shared

    async def authorize(
        self,
        cp_id: str,
        id_tag: str,
        token_type: str | None = None,
        evse_id: int | None = None,
    ) -> AuthResult:
        """Authorize: transactions at this charger do not count against the token's limit
        (a 1.6 charger may authorize the same card again for its transaction in
        progress)."""
        now = self._clock()
        if token_type == NO_AUTHORIZATION:
            return AuthResult(AuthStatus.ACCEPTED)
        token = await self.token(id_tag)
        grant = await self.grant_for(cp_id, id_tag, token_type, evse_id, token)
        busy = await self._over_limit(id_tag, token, grant, lambda _tx_id, place: place[0] != cp_id)
        if grant is not None:
            if grant.accepted and busy:
                return AuthResult(AuthStatus.CONCURRENT_TX)
            return grant.auth()
        return decide(token, now, busy_elsewhere=busy)

    async def decide_start(
        self,
        cp_id: str,
        evse_id: int,
        id_tag: str,
        token: Token | None,
        grant: Grant | None,
        now: datetime,
    ) -> AuthResult:
        """The answer for a token that starts a transaction on this EVSE (1.6
        StartTransaction); `grant`: another party's decision. A transaction still marked
        running on this EVSE does not count: this start tells that it ended (its stop was
        lost)."""
        busy = await self._over_limit(
            id_tag, token, grant, lambda _tx_id, place: place != (cp_id, evse_id)
        )
        auth = decide(token, now, busy_elsewhere=busy)
        if grant is not None:
            auth = grant.auth()
            if auth.accepted and busy:
                auth = AuthResult(AuthStatus.CONCURRENT_TX)
        elif token is None and self.allow_unknown_tags:
            auth = AuthResult(AuthStatus.ACCEPTED)
        return auth

    async def decide_in_transaction(
        self,
        cp_id: str,
        evse_id: int | None,
        id_tag: str,
        token_type: str | None,
        own_tx: int | None,
        token: Token | None,
        grant: Grant | None,
        now: datetime,
    ) -> AuthResult:
        """The decision for a token presented inside a transaction (2.0.1): its own
        transaction does not make it busy, nor one on the same EVSE; `grant`: another
        party's decision."""
        if token_type == NO_AUTHORIZATION:
            return AuthResult(AuthStatus.ACCEPTED)
        busy = await self._over_limit(
            id_tag,
            token,
            grant,
            lambda tx_id, place: tx_id != own_tx and place != (cp_id, evse_id),
        )
        if grant is not None:
            auth = grant.auth()
            return AuthResult(AuthStatus.CONCURRENT_TX) if auth.accepted and busy else auth
        auth = decide(token, now, busy_elsewhere=busy)
        if token is None and self.allow_unknown_tags:
            auth = AuthResult(AuthStatus.ACCEPTED)
        return auth

    async def token(self, id_tag: str) -> Token | None:
        return await self._store.token(token_key(id_tag))

    async def _over_limit(
        self,
        id_tag: str,
        token: Token | None,
        grant: Grant | None,
        counts: Callable[[int, Place], bool],
    ) -> bool:
        """Whether the token already holds as many running transactions (those `counts`
        accepts) as it may. Tokens with no limit, and tokens nobody vouches for, are not
        looked at."""
        if token is None and (grant is None or not grant.accepted):
            return False
        limit = token.max_concurrent if token is not None else 1
        if limit is None:
            return False
        key = token_key(id_tag)
        await self.holdings.ensure(key)
        return over_limit(limit, self.holdings.count(key, counts))

    # --- other parties' tokens ---------------------------------------------------------

    async def grant_for(
        self,
        cp_id: str,
        id_tag: str,
        token_type: str | None,
        evse_id: int | None,
        token: Token | None,
    ) -> Grant | None:
        """The decision for another party's token at this charger: one that stands (a
        partner's command vouched for it, or an Authorize got it), else the roaming
        decision now (for a token of another party's, not ours), else None."""
        now = self._clock()
        key = (cp_id, token_key(id_tag))
        standing = self._grants.get(key)
        if standing is None and (
            token.whitelist is not None if token is not None else is_one_time_tag(id_tag)
        ):
            # Not decided by this process: a decision may stand from before a restart, or
            # from another node. Our own cards never have one, nor does a stranger's card
            # (no read for it); of the tokens nobody stores only the one-time token of a
            # driver paying on the spot does (csms.services.payments).
            standing = await self._store.standing(cp_id, key[1], now)
            if standing is not None:
                self._cache_grant(key, standing)
        if standing is not None:
            if standing.until <= now:
                self._grants.pop(key, None)
            elif evse_id is None or standing.evse_id in (None, evse_id):
                return standing.grant
        if self.roaming is None or token is None or token.whitelist is None:
            return None
        grant = await self.roaming.authorize(cp_id, evse_id, id_tag, token_type, token)
        if grant is not None and grant.accepted:
            await self._keep_grant(
                cp_id, key[1], Standing(grant, None, now + timedelta(seconds=GRANT_TTL_S)), now
            )
        if grant is not None:
            log.info(
                "roaming_authorization",
                charge_point_id=cp_id,
                id_token=id_tag,
                status=grant.status.value,
                method=grant.method.value,
                reason=grant.reason,
                authorization_reference=grant.authorization_reference,
            )
        return grant

    def _cache_grant(self, key: tuple[str, str], standing: Standing) -> None:
        if self._shared:
            return
        if len(self._grants) >= MAX_ENTRIES:
            self._grants.clear()
        self._grants[key] = standing

    async def _keep_grant(
        self, cp_id: str, uid_key: str, standing: Standing, now: datetime
    ) -> None:
        """Store a decision (it survives a restart) and cache it."""
        await self._store.keep_standing(cp_id, uid_key, standing, now)
        self._cache_grant((cp_id, uid_key), standing)

    async def grant_used(self, cp_id: str, id_tag: str, grant: Grant) -> None:
        """A transaction took this decision: the token's next session is decided afresh."""
        key = (cp_id, token_key(id_tag))
        standing = self._grants.get(key)
        if standing is not None and standing.grant is not grant:
            return  # a newer decision replaced it meanwhile
        self._grants.pop(key, None)
        await self._store.drop_standing(cp_id, key[1])

    async def expect_start(
        self,
        cp_id: str,
        uid: str,
        evse_id: int | None,
        grant: Grant,
        ttl_s: float = GRANT_TTL_S,
    ) -> None:
        """Another party vouches for `uid` at this charger (OCPI START_SESSION or
        RESERVE_NOW): its Authorize and the transaction it starts (on `evse_id`, or any EVSE
        when None) within `ttl_s` get `grant`, without asking anyone again. Call it before
        the command goes out: a charger may start late, even after the command timed out,
        or after a restart of ours (the decision is stored)."""
        now = self._clock()
        standing = Standing(grant, evse_id, now + timedelta(seconds=ttl_s))
        await self._keep_grant(cp_id, token_key(uid), standing, now)
