"""Which running transactions hold each id token, kept in memory by the authorization service
so that the limit of concurrent transactions costs no database look-up per start.

A token's entry is read from the database once (one look-up in the (id_tag_key, state)
index), then kept up to date by the starts and stops of this process, which is the only
one that creates and ends transactions. Nothing here decides: csms.core.authorization does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

# (charge point, EVSE) of a running transaction.
Place = tuple[str, int]
# Entries kept at most; beyond it, tokens that hold nothing are forgotten (read again).
MAX_TOKENS = 200_000


class HoldersLoader(Protocol):
    """Reads a token's running, accepted transactions (csms.storage.database.BatchLoader
    over csms.storage.transactions.holders)."""

    async def load(self, key: str) -> dict[int, Place] | None: ...


class Holdings:
    """Per token key: the running, accepted transactions it holds (id -> place).

    `ensure(key)` before counting; `add` a transaction before its write (the slot is taken
    at once, so two chargers starting with a card at the same moment cannot both get the
    last slot) and `remove` it when its write failed or it ended.
    """

    def __init__(self, loader: HoldersLoader) -> None:
        self._loader = loader
        self._held: dict[str, dict[int, Place]] = {}
        # Loads in flight per key, and transactions that ended meanwhile: a load's snapshot
        # may still show them running.
        self._loading: dict[str, int] = {}
        self._ended: dict[str, set[int]] = {}

    async def ensure(self, key: str) -> None:
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

    def count(self, key: str, counts: Callable[[int, Place], bool]) -> int:
        """How many of the key's transactions `counts` (by id and place) accepts."""
        held = self._held.get(key)
        if not held:
            return 0
        return sum(1 for tx_id, place in held.items() if counts(tx_id, place))

    def add(self, key: str, tx_id: int, place: Place) -> None:
        held = self._held.get(key)
        if held is not None:
            held[tx_id] = place

    def remove(self, key: str, tx_id: int) -> None:
        held = self._held.get(key)
        if held is not None:
            held.pop(tx_id, None)
        elif key in self._loading:
            self._ended.setdefault(key, set()).add(tx_id)

    def _forget_idle(self) -> None:
        for key in [k for k, held in self._held.items() if not held]:
            del self._held[key]
