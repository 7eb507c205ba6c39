"""Set-up for every test: structlog's default console output with Python's plain tracebacks.

Tests that do not configure logging (the in-process servers) use structlog's defaults, which
switch to rich's tracebacks when rich is installed (import-linter, a test dependency, brings
it): tens of milliseconds per logged exception, every local variable printed. Plain
tracebacks, as `csms.logconfig` gives the server, keep the tests' timing and output as they
were without it.
"""

from __future__ import annotations

import structlog

_DEFAULTS = structlog.get_config()["processors"]
assert isinstance(_DEFAULTS[-1], structlog.dev.ConsoleRenderer)
structlog.configure(
    processors=[
        *_DEFAULTS[:-1],
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)
