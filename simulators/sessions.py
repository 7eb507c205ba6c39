"""Running charging sessions of a simulated charger, whatever its OCPP version: one handle per
session, the book of them, whether a tag may start (authorization, reservations), and the
metering loop of a session.

No messages are built here: the loop calls back into the version's session code to send.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from simulators.errors import NotConnectedError
from simulators.events import StepKind
from simulators.local_list import ListEntry
from simulators.reservations import Reservation

__all__ = [
    "Admission",
    "ReadAnswer",
    "SessionBook",
    "SessionControl",
    "admit",
    "sample_until_stopped",
]

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
            async with asyncio.timeout(seconds):
                await self._stop.wait()
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
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


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


class Admission(Protocol):
    """What `admit` asks of the charger (both versions): its local list, its reservations,
    its clock, whether the list alone may authorize, and where to report."""

    @property
    def pre_authorize(self) -> bool: ...

    def local_entry(self, id_tag: str) -> ListEntry | None: ...

    def now(self) -> datetime: ...

    def report(self, kind: StepKind, text: str) -> None: ...

    def reservation_blocking(
        self, connector_id: int, id_tag: str | None, parent_id_tag: str | None = None
    ) -> Reservation | None: ...

    def use_reservation(
        self, connector_id: int, id_tag: str | None, parent_id_tag: str | None = None
    ) -> int | None: ...


#: Reads an Authorize answer: the tag's status and its parent (1.6) or group (2.0.1) tag.
ReadAnswer = Callable[[dict[str, Any]], tuple[str, str | None]]


async def admit(
    cp: Admission,
    control: SessionControl[Any],
    ask: Callable[[], Awaitable[dict[str, Any]]] | None,
    read: ReadAnswer,
) -> tuple[bool, int | None]:
    """May the session's tag start (both versions)? Returns the decision and the id of the
    reservation it uses up.

    A connector reserved for another tag refuses at once, unless the reservation names a
    parent the tag may belong to, which the Authorize answer (or the local list) tells.
    `ask` sends Authorize (None: no authorization, as for a remote start the charger does
    not check); with LocalPreAuthorize an Accepted local-list entry is enough. Offline the
    local list decides, and a tag it does not know is accepted, as real chargers do."""
    note = f"#{control.number} "
    cid, tag = control.connector_id, control.id_tag
    entry = cp.local_entry(tag)
    parent = None if entry is None else entry.parent_id_tag
    held = cp.reservation_blocking(cid, tag, parent)
    if held is not None and held.parent_id_tag is None:
        cp.report(StepKind.SESSION_REFUSED, f"{note}connector={cid} is reserved for another tag")
        return False, None
    if ask is not None:
        listed = None if entry is None else entry.status_at(cp.now())
        if listed == "Accepted" and cp.pre_authorize:
            cp.report(StepKind.AUTHORIZED, f"{note}authorized tag={tag} by the local list")
        else:
            try:
                status, answered_parent = read(await ask())
                how = ""
            except NotConnectedError:
                status, answered_parent = listed or "Accepted", None
                how = " locally (offline)"
            if status != "Accepted":
                cp.report(StepKind.SESSION_REFUSED, f"{note}tag={tag} not authorized: {status}")
                return False, None
            cp.report(StepKind.AUTHORIZED, f"{note}authorized tag={tag}{how}")
            parent = answered_parent or parent
    if cp.reservation_blocking(cid, tag, parent) is not None:
        cp.report(StepKind.SESSION_REFUSED, f"{note}connector={cid} is reserved for another tag")
        return False, None
    return True, cp.use_reservation(cid, tag, parent)
