"""structlog set-up: one event per line on stderr, JSON in production, readable on a terminal,
for our events and for the standard-library records of libraries alike.

Configured once by the composition root; modules only call `structlog.get_logger(name)`.
"""

from __future__ import annotations

import logging
import sys

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


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=default).decode()  # type: ignore[arg-type]


def _renderer(fmt: str) -> list[structlog.types.Processor]:
    """The last processors of every line: JSON with the traceback as a field, or the
    console renderer (which prints tracebacks itself, readably)."""
    if fmt == "json":
        return [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ]
    return [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog on top of the standard library's logging, so that our events and
    library records (websockets, aiohttp, sqlalchemy ...) share one handler on stderr and
    one format: each line has `timestamp`, `level`, `logger` and `event`.

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
