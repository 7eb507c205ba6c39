"""structlog set-up: one event per line on stderr, JSON in production, readable on a terminal,
for our events and for the standard-library records of libraries alike.

Configured once by the composition root; modules only call `structlog.get_logger(name)`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog

from csms.logcontext import add_current_call

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Our own loggers (structlog.get_logger("csms.ocpp") ...) log at the configured level;
# everything else (websockets, aiohttp, sqlalchemy, alembic ...) only from WARNING up.
OUR_LOGGERS = ("csms", "ocpi_cpo", "simulators")
# The name of our handler on the root logger, so that configuring again replaces it.
HANDLER_NAME = "csms"


class ChargerLogLimit:
    """At most `per_minute` warnings and errors about one charger (its `charge_point_id`)
    reach the log each minute: a charger sending junk as fast as it may must not fill the
    disk with a line per frame. The first line over the limit becomes one
    `charger_log_lines_dropped` notice, the rest of that minute's are dropped, and the next
    line about that charger that is written says how many were (`dropped_lines`).
    A structlog processor; `per_minute` 0 lets everything through."""

    WINDOW_S = 60.0
    MAX_TRACKED = 10_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        # charge point id -> [window start, lines in the window, lines dropped]
        self._windows: dict[str, list[float]] = {}
        self._sweep_at = self.MAX_TRACKED

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.per_minute or event_dict.get("level") not in ("warning", "error"):
            return event_dict
        cp_id = event_dict.get("charge_point_id")
        if not isinstance(cp_id, str):
            return event_dict
        now = self._clock()
        window = self._windows.get(cp_id)
        if window is None or now - window[0] >= self.WINDOW_S:
            dropped = int(window[2]) if window is not None else 0
            if window is None and len(self._windows) >= self._sweep_at:
                self._windows = {
                    k: w for k, w in self._windows.items() if now - w[0] < self.WINDOW_S
                }
                self._sweep_at = max(self.MAX_TRACKED, 2 * len(self._windows))
            window = self._windows[cp_id] = [now, 0.0, 0.0]
            if dropped:
                event_dict["dropped_lines"] = dropped
        window[1] += 1
        if window[1] <= self.per_minute:
            return event_dict
        window[2] += 1
        if window[1] == self.per_minute + 1:
            # Instead of this line: one saying that the charger's lines are held back.
            return {
                key: event_dict[key]
                for key in ("charge_point_id", "ocpp_version", "peer", "level", "logger")
                if key in event_dict
            } | {"event": "charger_log_lines_dropped", "per_minute": self.per_minute}
        raise structlog.DropEvent


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=default).decode()  # type: ignore[arg-type]


def _renderer(fmt: str) -> list[structlog.types.Processor]:
    """The last processors of every line: JSON with the traceback as a field, or the
    console renderer (which prints tracebacks itself, readably: plainly, as Python does,
    whether or not `rich` is installed, whose tracebacks would also print local variables)."""
    if fmt == "json":
        return [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ]
    return [
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    ]


def configure_logging(
    level: str = "info", fmt: str = "console", charger_lines_per_minute: int = 0
) -> None:
    """Set up structlog on top of the standard library's logging, so that our events and
    library records (websockets, aiohttp, sqlalchemy ...) share one handler on stderr and
    one format: each line has `timestamp`, `level`, `logger` and `event`. Warnings and
    errors about one charger are limited to `charger_lines_per_minute` (ChargerLogLimit).

    Our events are filtered by structlog before any work is done (a debug call below the
    level costs one no-op method call); they then pass through `logging` to the handler,
    whose ProcessorFormatter renders them and the libraries' records alike."""
    numeric = _LEVELS.get(level, logging.INFO)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_current_call,
            structlog.processors.add_log_level,
            ChargerLogLimit(charger_lines_per_minute),
            timestamper,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records that did not come through structlog (libraries): the same fields. A record
        # logged while a charger's message is handled carries that charger and message.
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            add_current_call,
            structlog.processors.add_log_level,
            timestamper,
        ],
        processors=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(fmt),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries stay quiet unless something is wrong; ours log at the configured level.
    root.setLevel(max(numeric, logging.WARNING))
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(numeric)
    # Python warnings (DeprecationWarning ...) become records too, instead of raw text.
    logging.captureWarnings(True)
    # Records carry no thread, process or source location that we never show: the
    # logging HOWTO's "Optimization" settings, which spare each record a stack walk.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
