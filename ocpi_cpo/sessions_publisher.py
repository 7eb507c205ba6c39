"""The session publisher: a loop that runs publication passes of csms.services.sessions
(sessions PUT, PATCHed and PUT final, then CDRs POSTed, all through the push outbox).

Nothing is lost between passes or in a crash: each pass reconciles the database with what
was pushed. `wake()` runs a pass at once (a transaction started or ended in this process),
at most one each MIN_GAP seconds; otherwise one runs every `period` seconds. The sessions
and cdrs modules share one service and one publisher (`ensure_publisher`), run by the app's
cleanup_ctx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from csms.services.sessions import SessionService
from csms.workers import Worker
from ocpi_cpo.context import BILLING, PARTNERS, PUSHER, SETTINGS, SINGLETONS

log = structlog.get_logger("ocpi_cpo.sessions_publisher")

# Longest wait between passes: a session started in another process (another OCPP node)
# is seen within this time, and one ended there is pushed final soon after it is billed.
MAX_PERIOD = 5.0
# Shortest: every start and stop of this process wakes the publisher; hundreds a second
# (a busy hour, a burst after a power cut) make one pass each 0.2 s, not one each.
MIN_GAP = 0.2


class SessionPublisher:
    def __init__(self, sessions: SessionService, period: float = MAX_PERIOD) -> None:
        self.sessions = sessions
        self.period = period
        self.worker = Worker(
            "ocpi-sessions", self._pass, period=period, min_gap=min(MIN_GAP, period)
        )
        # Called after a pass enqueued something (the push worker's wake).
        self.on_enqueued: list[Callable[[], None]] = []

    def wake(self) -> None:
        self.worker.wake()

    async def _pass(self) -> None:
        if await self.sessions.publish():
            for hook in self.on_enqueued:
                hook()


SESSIONS = web.AppKey("ocpi_sessions", SessionService)
SESSION_PUBLISHER = web.AppKey("ocpi_session_publisher", SessionPublisher)


def ensure_publisher(app: web.Application) -> SessionService:
    """The app's session service, and its publisher running with the app (set up once,
    by whichever of the sessions and cdrs modules comes first)."""
    if SESSIONS in app:
        return app[SESSIONS]
    if BILLING not in app:
        raise ValueError("sessions and CDRs need the billing service (build_ocpi_app billing=)")
    settings = app[SETTINGS]
    interval = settings.session_update_interval
    service = SessionService(
        app[PARTNERS].db, settings.clock, app[BILLING], update_interval=interval
    )
    app[SESSIONS] = service
    app[SESSION_PUBLISHER] = SessionPublisher(service, min(interval, MAX_PERIOD))
    app.cleanup_ctx.append(_publishing)
    return service


async def _publishing(app: web.Application) -> AsyncIterator[None]:
    """The publisher runs while the app does, woken when billing settles transactions;
    what it enqueues wakes the push worker."""
    publisher = app[SESSION_PUBLISHER]

    def wake_pusher() -> None:
        if PUSHER in app:
            app[PUSHER].wake()

    publisher.on_enqueued.append(wake_pusher)
    # A settled transaction (its CDR made) is ready for its final push.
    settled = app[BILLING].on_settled
    settled.append(publisher.wake)
    async with app[SINGLETONS].hosting(publisher.worker.name, publisher.worker.running):
        yield
    settled.remove(publisher.wake)
