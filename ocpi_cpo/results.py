"""Asynchronous results of partners' requests (OCPI commands and charging profile
requests): every request we accept gets exactly one result POSTed to its response_url.

A request is stored when accepted, with a deadline. Its work runs in a task here; what the
work returns (or, past the deadline, the kind's timeout result) is queued in the durable
outbox in the same transaction that closes the request, so the result is sent once and
retried until the partner takes it. Requests still open after a restart are closed with
their timeout result once their deadline passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog

from csms.core.clock import Clock
from csms.core.errors import one_line
from csms.core.parties import Party
from csms.core.retries import Backoff
from csms.storage import ocpi_commands as request_repo
from csms.storage.database import Database, WriteTx
from csms.workers import TaskSet, Worker

log = structlog.get_logger("ocpi_cpo.results")

# What a request that got no result in time answers, by kind: commands say TIMEOUT;
# charging profile results have no such value, and an EVSE that did not do it REJECTED.
COMMAND_TIMEOUT: dict[str, Any] = {"result": "TIMEOUT"}
PROFILE_TIMEOUT: dict[str, Any] = {"result": "REJECTED"}
PROFILE_KINDS = ("CHARGING_PROFILE_GET", "CHARGING_PROFILE_SET", "CHARGING_PROFILE_CLEAR")
# Beyond a request's own deadline: how long its task has to finish before the sweep closes
# it (the task normally closes it itself, at its deadline).
SWEEP_GRACE = timedelta(seconds=5)
SWEEP_EVERY_S = 5.0
# A result that could not be queued is tried again after 5 s, 10 s ... at most 5 minutes
# apart (the request stays open, so the partner still gets its one result).
RESULT_RETRY = Backoff(first=5.0, cap=300.0)


def timeout_result(kind: str) -> dict[str, Any]:
    return dict(PROFILE_TIMEOUT if kind in PROFILE_KINDS else COMMAND_TIMEOUT)


Work = Callable[[], Awaitable[dict[str, Any]]]


class AsyncResults:
    """One per OCPI app. `wake` is the push worker's (a result is sent at once)."""

    def __init__(self, db: Database, clock: Clock, wake: Callable[[], None]) -> None:
        self._db = db
        self._clock = clock
        self._wake = wake
        # The work of each request, by request id, held until it ends.
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._running = TaskSet("ocpi-results")
        # Closes requests left open past their deadline (started with the OCPI app).
        self.sweeper = Worker("ocpi-results", self._sweep_pass, period=SWEEP_EVERY_S)

    async def open(
        self,
        *,
        partner_id: int,
        reply_to: Party | None,
        kind: str,
        response_url: str,
        request: dict[str, Any],
        charge_point_id: str | None,
        timeout_s: float,
    ) -> int:
        """Store an accepted request; its result is due within `timeout_s` and goes to the
        partner's party `reply_to` (None: the partner itself)."""
        now = self._clock()
        deadline = now + timedelta(seconds=timeout_s)

        async def unit(w: WriteTx) -> int:
            return await request_repo.open_request(
                await w.connection(),
                partner_id=partner_id,
                reply_to=reply_to,
                kind=kind,
                response_url=response_url,
                request=request,
                charge_point_id=charge_point_id,
                deadline=deadline,
                now=now,
            )

        return await self._db.write(unit)

    def run(self, request_id: int, kind: str, work: Work, timeout_s: float) -> None:
        """Do `work` in the background; its result (or the timeout result after
        `timeout_s`) goes to the partner."""
        task = self._running.spawn(
            self._run(request_id, kind, work, timeout_s), name=f"ocpi-result-{request_id}"
        )
        self._tasks[request_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(request_id, None))

    async def _run(self, request_id: int, kind: str, work: Work, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                body = await work()
        except TimeoutError:
            body = timeout_result(kind)
        except Exception:  # the task boundary: the partner still gets its one result
            log.exception("ocpi_request_failed", request_id=request_id, kind=kind)
            body = {"result": "FAILED"} if kind not in PROFILE_KINDS else dict(PROFILE_TIMEOUT)
        try:
            await self.finish(request_id, body)
        except Exception as exc:  # noqa: BLE001 - the sweep closes it past its deadline
            await self._not_queued(request_id, 0, exc)

    async def finish(self, request_id: int, body: dict[str, Any]) -> bool:
        """Queue the result unless the request has one already."""
        now = self._clock()

        async def unit(w: WriteTx) -> bool:
            return await request_repo.finish(await w.connection(), request_id, body, now)

        done = await self._db.write(unit)
        if done:
            log.info("ocpi_result_queued", request_id=request_id, result=body.get("result"))
            self._wake()
        return done

    async def sweep(self) -> int:
        """Close requests past their deadline that no task here is working on (left by a
        previous run of the server, or whose result could not be queued): each gets its
        timeout result. One that fails again is recorded and backed off; the others are
        closed all the same."""
        now = self._clock()
        async with self._db.read() as conn:
            late = await request_repo.overdue(conn, now - SWEEP_GRACE, now)
        closed = 0
        for request in late:
            if request.id in self._tasks:
                continue
            try:
                finished = await self.finish(request.id, timeout_result(request.kind))
            except Exception as exc:  # noqa: BLE001 - recorded and logged per request
                await self._not_queued(request.id, request.attempts, exc)
                continue
            if finished:
                closed += 1
        return closed

    async def _not_queued(self, request_id: int, attempts: int, exc: Exception) -> None:
        now = self._clock()
        error = one_line(exc)
        attempts += 1
        retry_at = RESULT_RETRY.next_at(attempts, now)

        async def unit(w: WriteTx) -> None:
            await request_repo.attempt_failed(
                await w.connection(), request_id, attempts, error, retry_at
            )

        await self._db.write(unit)
        log.warning(
            "ocpi_result_not_queued",
            request_id=request_id,
            attempts=attempts,
            error=error,
            retry_at=retry_at.isoformat(),
        )

    async def _sweep_pass(self) -> None:
        await self.sweep()

    async def close(self) -> None:
        """Stop the work in flight: its requests stay open and are swept after a restart."""
        await self._running.close()
