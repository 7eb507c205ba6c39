"""SIGTERM and SIGINT as a request to stop cleanly, SIGHUP as one to reload certificates:
the one place that installs signal handlers, for `csms serve` (csms.app) and `csms demo`
(csms.cli.demo).

Only the handlers live here; what stopping means is the caller's. (The simulators keep
their own few lines: they import nothing from csms.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: asyncio.Event | None = None, *, once: bool = False) -> asyncio.Event:
    """An event (`stop`, or a new one) that SIGTERM and SIGINT set instead of ending the
    process; call from within the running loop.

    With `once`, a signal's handler is removed when it fires, so a second Ctrl-C interrupts
    a clean stop that takes too long (commands people run). Without, every later signal
    only sets the event again: a server's shutdown, bounded on its own, always completes
    (the database is checkpointed and closed). Where the loop cannot handle signals (not
    on this platform), nothing is installed.
    """
    event = asyncio.Event() if stop is None else stop
    loop = asyncio.get_running_loop()

    def fired(sig: signal.Signals) -> None:
        event.set()
        if once:
            loop.remove_signal_handler(sig)

    for sig in SIGNALS:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, fired, sig)
    return event


def reload_on_hangup(reload: Callable[[], None]) -> None:
    """Call `reload` on SIGHUP (`csms serve`: the listeners' TLS files); call from within
    the running loop. Nothing where the platform has no SIGHUP or the loop cannot handle
    signals."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        return
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(hangup, reload)
