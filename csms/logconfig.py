"""structlog set-up: one event per line, JSON in production, readable on a terminal.

Configured once by the composition root; modules only call `structlog.get_logger()`.
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


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=default).decode()  # type: ignore[arg-type]


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog (and route stdlib logging of libraries through the same level)."""
    numeric = _LEVELS.get(level, logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_current_call,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (websockets, aiohttp, sqlalchemy) log through stdlib logging: keep them quiet
    # unless asked, and on stderr.
    logging.basicConfig(
        level=max(numeric, logging.WARNING),
        stream=sys.stderr,
        format="%(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))
