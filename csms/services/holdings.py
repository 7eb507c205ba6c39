"""Which running transactions hold each id token, kept in memory by the authorization service
so that the limit of concurrent transactions costs no database look-up per start.

A token's entry is read from the database once (one look-up in the (id_tag_key, state)
index), then kept up to date by the starts and stops of this process, when it is the only
one that creates and ends transactions. With several nodes on one database (`shared`),
another node starts and ends transactions too (a charger may even move to it in the middle
of one): the entry is then read again at every start, and this node's own starts and stops
not yet committed are laid over it. Nothing here decides: csms.core.authorization does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

# (charge point, EVSE) of a running transaction.
Place = tuple[str, int]
# Entries kept at most; beyond it, tokens that hold nothing are forgotten (read again).
MAX_TOKENS = 200_000
# Shared: seconds at most this node's own starts not yet committed, and its stops, are laid
# over what the database says (their writes are committed well before).
OWN_CHANGES_S = 60.0


class HoldersLoader(Protocol):
    """Reads a token's running, accepted transactions (csms.storage.database.BatchLoader
    over csms.storage.transactions.holders)."""

    async def load(self, key: str) -> dict[int, Place] | None: ...


class Holdings:
    """Per token key: the running, accepted transactions it holds (id -> place).

    `ensure(key)` before counting; `add` a transaction before its write (the slot is taken
    at once, so two chargers starting with a card at the same moment cannot both get the
    last slot), say when its write is `committed`, and `remove` it when its write failed or
    it ended.
    """

    def __init__(
        self,
        loader: HoldersLoader,
        *,
        shared: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._shared = shared
        self._monotonic = monotonic
        # Shared: this node's recent starts (id -> place, when) and stops (id -> when).
        self._started: dict[str, dict[int, tuple[Place, float]]] = {}
        self._stopped: dict[str, dict[int, float]] = {}
        self._held: dict[str, dict[int, Place]] = {}
        # Loads in flight per key, and transactions that ended meanwhile: a load's snapshot
        # may still show them running.
        self._loading: dict[str, int] = {}
        self._ended: dict[str, set[int]] = {}

    async def ensure(self, key: str) -> None:
        if self._shared:
            await self._reload(key)
            return
        if key in self._held:
            return
        self._loading[key] = self._loading.get(key, 0) + 1
        try:
            loaded = await self._loader.load(key)
        finally:
            left = self._loading[key] - 1
            if left:
                self._loading[key] = left
            else:
                del self._loading[key]
        if key not in self._held:
            if len(self._held) >= MAX_TOKENS:
                self._forget_idle()
            ended = self._ended.get(key, set())
            self._held[key] = {i: p for i, p in (loaded or {}).items() if i not in ended}
        if key not in self._loading:
            self._ended.pop(key, None)

    async def _reload(self, key: str) -> None:
        """Shared: what the database says now, with this node's recent changes over it."""
        loaded = dict(await self._loader.load(key) or {})
        oldest = self._monotonic() - OWN_CHANGES_S
        started = {
            i: entry for i, entry in self._started.get(key, {}).items() if entry[1] >= oldest
        }
        stopped = {i: at for i, at in self._stopped.get(key, {}).items() if at >= oldest}
        # What is older is committed (or failed) by now: the database says it.
        if started:
            self._started[key] = started
        else:
            self._started.pop(key, None)
        if stopped:
            self._stopped[key] = stopped
        else:
            self._stopped.pop(key, None)
        loaded.update({i: place for i, (place, _at) in started.items()})
        for i in stopped:
            loaded.pop(i, None)
        if len(self._held) >= MAX_TOKENS and key not in self._held:
            self._forget_idle()
        self._held[key] = loaded

    def count(self, key: str, counts: Callable[[int, Place], bool]) -> int:
        """How many of the key's transactions `counts` (by id and place) accepts."""
        held = self._held.get(key)
        if not held:
            return 0
        return sum(1 for tx_id, place in held.items() if counts(tx_id, place))

    def add(self, key: str, tx_id: int, place: Place) -> None:
        if self._shared:
            self._started.setdefault(key, {})[tx_id] = (place, self._monotonic())
            self._stopped.get(key, {}).pop(tx_id, None)
        held = self._held.get(key)
        if held is not None:
            held[tx_id] = place

    def committed(self, key: str, tx_id: int) -> None:
        """The write of a transaction `add`ed is committed: from now on the database says
        whether it holds the token (another node may end it)."""
        if self._shared:
            self._started.get(key, {}).pop(tx_id, None)

    def remove(self, key: str, tx_id: int) -> None:
        if self._shared:
            self._stopped.setdefault(key, {})[tx_id] = self._monotonic()
            self._started.get(key, {}).pop(tx_id, None)
        held = self._held.get(key)
        if held is not None:
            held.pop(tx_id, None)
        elif key in self._loading:
            self._ended.setdefault(key, set()).add(tx_id)

    def _forget_idle(self) -> None:
        for key in [k for k, held in self._held.items() if not held]:
            del self._held[key]
