"""Many simulated chargers in one process: staggered start, shared counters, one summary.

Each charger is the same class the single-charger command uses; nothing here speaks OCPP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from simulators.errors import OptionsError, SimulatorError
from simulators.events import Step, StepKind, Summary
from simulators.options import ChargerOptions
from simulators.versions import Charger, create_charger

__all__ = ["Fleet", "FleetOptions", "FleetReport"]

log = logging.getLogger(__name__)

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """`template` gives url, version and the session script; ids and tags are per charger."""

    template: ChargerOptions
    chargers: int
    prefix: str = "SIM"
    tag_prefix: str = "TAG"
    #: Charger starts are spread evenly over this many seconds.
    ramp_seconds: float = 0.0
    verbose: bool = False
    #: Print a progress line this often (0: never).
    progress_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.chargers < 1:
            raise OptionsError("a fleet needs at least one charger")
        if self.ramp_seconds < 0 or self.progress_seconds < 0:
            raise OptionsError("ramp and progress seconds cannot be negative")
        self.charger_options(self.chargers)  # validates the longest id and tag

    def charger_options(self, index: int) -> ChargerOptions:
        seed = None if self.template.seed is None else self.template.seed + index
        return replace(
            self.template,
            charger_id=f"{self.prefix}{index:05d}",
            tag=f"{self.tag_prefix}{index:05d}",
            seed=seed,
        )


@dataclass(frozen=True, slots=True)
class FleetReport:
    chargers: int
    started: int
    online: int
    connected: int
    totals: Summary
    elapsed_seconds: float
    first_error: str | None

    @property
    def line(self) -> str:
        t = self.totals
        text = (
            f"fleet: chargers={self.chargers} started={self.started} connected={self.connected} "
            f"online={self.online} boots_accepted={t.boots_accepted} "
            f"sessions_completed={t.sessions_completed}/{t.sessions_started} "
            f"errors={t.errors} elapsed={self.elapsed_seconds:.1f}s"
        )
        return text if self.first_error is None else f"{text} first_error={self.first_error!r}"


class Fleet:
    def __init__(self, options: FleetOptions, *, out: Echo, err: Echo) -> None:
        self.options = options
        self._out = out
        self._err = err
        self._chargers: list[Charger] = []
        self._failed_runs = 0
        self._first_error: str | None = None
        self._started_at: float | None = None

    async def run(self) -> FleetReport:
        """Run every charger to its end (or until cancelled) and report."""
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        progress = asyncio.create_task(self._progress())
        try:
            n = self.options.chargers
            await asyncio.gather(
                *(self._one(i, self.options.ramp_seconds * (i - 1) / n) for i in range(1, n + 1))
            )
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
        return self.report()

    def report(self) -> FleetReport:
        totals = Summary()
        for charger in self._chargers:
            totals += charger.tally.summary()
        totals = replace(totals, errors=totals.errors + self._failed_runs)
        started_at = self._started_at
        elapsed = 0.0 if started_at is None else asyncio.get_running_loop().time() - started_at
        return FleetReport(
            chargers=self.options.chargers,
            started=len(self._chargers),
            online=sum(1 for c in self._chargers if c.online),
            connected=sum(1 for c in self._chargers if c.tally[StepKind.CONNECTED] > 0),
            totals=totals,
            elapsed_seconds=elapsed,
            first_error=self._first_error,
        )

    async def _one(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        charger = create_charger(self.options.charger_options(index), sink=self._step)
        self._chargers.append(charger)
        try:
            await charger.run()
        except SimulatorError as exc:
            self._fail(f"{charger.id} {exc}")
        except Exception:  # task boundary: one charger must not end the fleet
            log.exception("%s crashed", charger.id)
            self._fail(f"{charger.id} crashed (see log)")

    def _fail(self, text: str) -> None:
        self._failed_runs += 1
        if self._first_error is None:
            self._first_error = text
        if self.options.verbose:
            self._err(text)

    def _step(self, step: Step) -> None:
        if step.kind is StepKind.ERROR and self._first_error is None:
            self._first_error = step.line
        if self.options.verbose:
            self._out(step.line)

    async def _progress(self) -> None:
        every = self.options.progress_seconds
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            self._out(self.report().line)
