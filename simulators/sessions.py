"""Running charging sessions of a simulated charger, whatever its OCPP version: one handle per
session, the book of them, and the metering loop of a session.

No messages are built here: the loop calls back into the version's session code to send.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from simulators.errors import NotConnectedError
from simulators.events import StepKind
from simulators.station import OCCUPIED, ConnectorStatus, Station

__all__ = ["SessionBook", "SessionControl", "connector_free", "sample_until_stopped"]

#: The transaction id type: int in OCPP 1.6 (given by the CSMS), str in 2.0.1 (our uuid).
TxId = TypeVar("TxId", int, str)


class SessionControl(Generic[TxId]):
    """Handle on one running session: where it runs, for whom, and how to stop it."""

    def __init__(self, number: int, connector_id: int, id_tag: str) -> None:
        self.number = number
        self.connector_id = connector_id
        self.id_tag = id_tag
        self.transaction_id: TxId | None = None
        self.reason = "Local"
        self._stop = asyncio.Event()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def stop(self, reason: str) -> None:
        """Ask the session to end with this stop reason (first reason wins)."""
        if not self._stop.is_set():
            self.reason = reason
            self._stop.set()

    async def wait_stop(self, seconds: float | None) -> bool:
        """Wait up to `seconds` (None: forever); True if a stop was requested."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True


class SessionBook(Generic[TxId]):
    """The sessions running on a charger, at most one per connector; numbers count from 1."""

    def __init__(self) -> None:
        self._by_connector: dict[int, SessionControl[TxId]] = {}
        self._numbers = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()

    def open(self, connector_id: int, id_tag: str) -> SessionControl[TxId]:
        if connector_id in self._by_connector:
            raise ValueError(f"connector {connector_id} already has a session")
        control: SessionControl[TxId] = SessionControl(next(self._numbers), connector_id, id_tag)
        self._by_connector[connector_id] = control
        self._idle.clear()
        return control

    def close(self, control: SessionControl[TxId]) -> None:
        if self._by_connector.get(control.connector_id) is control:
            del self._by_connector[control.connector_id]
        if not self._by_connector:
            self._idle.set()

    def on_connector(self, connector_id: int) -> SessionControl[TxId] | None:
        return self._by_connector.get(connector_id)

    def by_transaction(self, transaction_id: TxId) -> SessionControl[TxId] | None:
        for control in self._by_connector.values():
            if control.transaction_id == transaction_id:
                return control
        return None

    def all(self) -> tuple[SessionControl[TxId], ...]:
        return tuple(self._by_connector.values())

    def retarget(self, provisional: TxId, real: TxId) -> None:
        """A transaction started offline got its id from the CSMS."""
        control = self.by_transaction(provisional)
        if control is not None:
            control.transaction_id = real

    async def wait_idle(self, seconds: float | None) -> bool:
        """Wait up to `seconds` (None: forever) until no session runs; True if none does."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True


def connector_free(station: Station, book: SessionBook[Any], connector_id: int) -> bool:
    """A connector can take a new session: operative, no vehicle, no session."""
    connector = station.connector(connector_id)
    return (
        connector.operative
        and connector.status not in OCCUPIED
        and connector.status is not ConnectorStatus.FAULTED
        and book.on_connector(connector_id) is None
    )


async def sample_until_stopped(
    control: SessionControl[Any],
    seconds: float | None,
    interval: Callable[[], float],
    sample: Callable[[], Awaitable[None]],
) -> None:
    """Call `sample` every `interval()` seconds (0: never) until `seconds` pass (None: never)
    or a stop is requested; the last stretch is left to the stop message."""
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    while not control.stop_requested:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return
        every = interval() or None
        wait = remaining if every is None else min(every, remaining or every)
        if await control.wait_stop(wait):
            return
        if remaining is not None and wait is not None and wait >= remaining:
            return
        await sample()


async def authorized(
    report: Callable[[StepKind, str], None],
    control: SessionControl[Any],
    ask: Callable[[], Awaitable[dict[str, Any]]],
    status_of: Callable[[dict[str, Any]], str],
) -> bool:
    """Authorize a session's tag before it starts (both versions); offline, the charger
    accepts it locally, as real chargers do."""
    note = f"#{control.number} "
    try:
        answer = await ask()
    except NotConnectedError:
        report(StepKind.AUTHORIZED, f"{note}authorized tag={control.id_tag} locally (offline)")
        return True
    status = status_of(answer)
    if status != "Accepted":
        report(StepKind.SESSION_REFUSED, f"{note}tag={control.id_tag} not authorized: {status}")
        return False
    report(StepKind.AUTHORIZED, f"{note}authorized tag={control.id_tag}")
    return True
