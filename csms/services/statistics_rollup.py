"""The statistics roll-up: keeps each EVSE's occupied and charging time per whole UTC hour
(csms.storage.rollups) up to the last hour that has ended, so that the figures of a month
read thousands of sums instead of hundreds of thousands of status changes.

One pass: history that arrived since the last look (a status change, a transaction
started, updated or stopped) lowers the marks of its chargers to the hour it concerns,
and the cursor moves, in one write; then the hours between each charger's mark and the
last whole hour are made from the raw history (read outside the writer, in slices of
chargers and a day) and stored with the moved mark, one write per slice. Any step may be
cut short by a crash: what is stored is whole (rows and mark together), and the next pass
goes on from the marks. It runs on one process per database (the charging group's leader,
csms.app); the statistics service reads the raw history for whatever is not made yet, so
its figures never wait for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from csms.core.clock import Clock
from csms.storage import rollups
from csms.storage.database import Database, WriteTx
from csms.workers import Worker

log = structlog.get_logger(__name__)

# Chargers and hours made per write: a slice is a few thousand rows at most (50 chargers'
# day), so neither the event loop nor the writer (which commits the chargers' messages
# too) is held long by one.
SLICE_CHARGERS = 50
SLICE_HOURS = 24


@dataclass(frozen=True, slots=True)
class RollupPass:
    """What one pass did."""

    lowered: int  # chargers whose past changed
    slices: int
    rows: int
    done: bool  # every charger made up to the last whole hour


class StatisticsRollup:
    def __init__(self, db: Database, clock: Clock, *, period: float = 60.0) -> None:
        self._db = db
        self._clock = clock
        self.name = "statistics_rollup"
        self.worker = Worker(self.name, self._step, period=period, min_gap=1.0)
        self.running = self.worker.running

    async def _step(self) -> float | None:
        done = await self.run_pass()
        return None if done.done else 0.0

    async def run_pass(self, *, max_slices: int | None = None) -> RollupPass:
        """One pass (see the module docstring); `max_slices` stops it early (the rest is
        left for the next pass)."""
        began = time.perf_counter()
        now = self._clock()
        until = rollups.hour_number(now)
        async with self._db.read() as conn:
            seen = await rollups.seen_until(conn)
            changes = (
                {} if seen is None else await rollups.changed_since(conn, seen - rollups.OVERLAP)
            )
            first = await rollups.first_hour(conn)

        async def lower(tx: WriteTx) -> None:
            await rollups.lower_marks(await tx.connection(), changes, now)

        await self._db.write(lower)
        if first is None:
            return RollupPass(len(changes), 0, 0, True)
        slices = rows = 0
        while True:
            async with self._db.read() as conn:
                behind = await rollups.behind(conn, until, first)
            if not behind:
                break
            by_begin: dict[int, list[str]] = {}
            for cp_id, begin in behind.items():
                by_begin.setdefault(begin, []).append(cp_id)
            for begin, chargers in sorted(by_begin.items()):
                end = min(until, begin + SLICE_HOURS)
                for at in range(0, len(chargers), SLICE_CHARGERS):
                    if max_slices is not None and slices >= max_slices:
                        return RollupPass(len(changes), slices, rows, False)
                    part = sorted(chargers[at : at + SLICE_CHARGERS])
                    async with self._db.read() as conn:
                        made = await rollups.made_hours(conn, part, begin, end)

                    async def store(
                        tx: WriteTx,
                        part: list[str] = part,
                        begin: int = begin,
                        end: int = end,
                        made: rollups.Hours = made,
                    ) -> int:
                        return await rollups.store(await tx.connection(), part, begin, end, made)

                    rows += await self._db.write(store)
                    slices += 1
                    await asyncio.sleep(0)
        finished = True
        log.info(
            "statistics_rolled_up",
            lowered=len(changes),
            slices=slices,
            rows=rows,
            done=finished,
            duration_ms=round((time.perf_counter() - began) * 1000),
        )
        return RollupPass(len(changes), slices, rows, finished)
