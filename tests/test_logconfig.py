"""The logging set-up: our events and library records as one JSON object per line (or a
readable console line), with the logger name, and filtered debug calls that cost nothing.

Each case runs in a child interpreter: logging is configured process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

# What the child does after configure_logging(LEVEL, FORMAT).
SCRIPT = """
import logging, warnings
import structlog
from csms.logconfig import configure_logging
from csms.logcontext import CURRENT_CALL

configure_logging({level!r}, {fmt!r})
log = structlog.get_logger("csms.example")
structlog.contextvars.bind_contextvars(charge_point_id="CP9")
CURRENT_CALL.set(("Heartbeat", "m-1"))
log.debug("example_debugged", n=0)
log.info("example_happened", n=1)
logging.getLogger("websockets.server").warning("peer %s misbehaved", "1.2.3.4")
logging.getLogger("sqlalchemy.engine.Engine").info("BEGIN (implicit)")
logging.getLogger("aiohttp.access").info("GET / 200")
try:
    {{}}["missing"]
except KeyError:
    log.exception("example_failed")
    logging.getLogger("aiohttp.server").exception("Error handling request")
warnings.warn("old thing", DeprecationWarning, stacklevel=1)
"""


def run(level: str, fmt: str, extra: str = "") -> tuple[str, str]:
    code = SCRIPT.format(level=level, fmt=fmt) + textwrap.dedent(extra)
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def records(stderr: str) -> list[dict[str, Any]]:
    """Every line of stderr as a JSON object (fails on a line that is not one)."""
    out = []
    for line in stderr.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert {"logger", "level", "timestamp", "event"} <= record.keys(), line
        out.append(record)
    return out


def test_json_every_line_is_one_object_with_the_logger_name() -> None:
    _, err = run("info", "json")
    found = {(r["logger"], r["event"]): r for r in records(err)}
    ours = found["csms.example", "example_happened"]
    assert ours["level"] == "info" and ours["n"] == 1
    assert ours["timestamp"].endswith("Z")
    # Context of the connection and of the message, on our events and on library records.
    assert (ours["charge_point_id"], ours["action"], ours["message_id"]) == (
        "CP9",
        "Heartbeat",
        "m-1",
    )
    library = found["websockets.server", "peer 1.2.3.4 misbehaved"]
    assert library["level"] == "warning" and library["charge_point_id"] == "CP9"
    # Exceptions are a field of the one line, ours and the libraries'.
    for key in (("csms.example", "example_failed"), ("aiohttp.server", "Error handling request")):
        failed = found[key]
        assert failed["level"] == "error"
        assert "Traceback" in failed["exception"] and "KeyError: 'missing'" in failed["exception"]
    warned = [r for r in found.values() if r["logger"] == "py.warnings"]
    assert len(warned) == 1 and "DeprecationWarning: old thing" in warned[0]["event"]
    # Below the level: our debug, and the libraries' info records.
    assert ("csms.example", "example_debugged") not in found
    assert {r["logger"] for r in found.values()} == {
        "csms.example",
        "websockets.server",
        "aiohttp.server",
        "py.warnings",
    }


def test_debug_shows_ours_but_libraries_stay_at_warning() -> None:
    _, err = run("debug", "json")
    found = {(r["logger"], r["event"]) for r in records(err)}
    assert ("csms.example", "example_debugged") in found
    assert not any(logger.startswith(("sqlalchemy", "aiohttp.access")) for logger, _ in found)


def test_console_is_readable_with_logger_names() -> None:
    _, err = run("info", "console")
    lines = err.splitlines()
    happened = next(line for line in lines if "example_happened" in line)
    assert "[info" in happened and "[csms.example]" in happened and "n=1" in happened
    assert any("[websockets.server]" in line and "misbehaved" in line for line in lines)
    assert "Traceback (most recent call last):" in err  # printed below its event, readably
    assert not any(line.startswith("{") for line in lines)


def test_filtered_calls_cost_nothing_and_loggers_are_cached() -> None:
    out, _ = run(
        "info",
        "json",
        """
        import logging, structlog
        config = structlog.get_config()
        print(config["wrapper_class"] is structlog.make_filtering_bound_logger(logging.INFO))
        print(config["cache_logger_on_first_use"])
        """,
    )
    assert out.split() == ["True", "True"]


def test_configuring_again_replaces_the_handler() -> None:
    _, err = run(
        "info",
        "json",
        """
        configure_logging("warning", "json")
        log.info("not_shown")
        log.warning("shown_once")
        """,
    )
    events = [r["event"] for r in records(err)]
    assert events.count("shown_once") == 1 and "not_shown" not in events


def test_charger_log_limit_drops_a_floods_lines_and_says_so() -> None:
    import structlog

    from csms.logconfig import ChargerLogLimit

    now = [0.0]
    limit = ChargerLogLimit(3, clock=lambda: now[0])

    def line(cp: str | None, level: str = "warning", event: str = "frame_unreadable") -> Any:
        entry: dict[str, Any] = {"event": event, "level": level, "ocpp_version": "1.6"}
        if cp is not None:
            entry["charge_point_id"] = cp
        try:
            return limit(None, level, entry)
        except structlog.DropEvent:
            return None

    written = [line("JUNK") for _ in range(3)]
    assert [w["event"] for w in written] == ["frame_unreadable"] * 3
    notice = line("JUNK", "error", "call_failed")
    assert notice == {
        "charge_point_id": "JUNK",
        "ocpp_version": "1.6",
        "level": "error",
        "event": "charger_log_lines_dropped",
        "per_minute": 3,
    }
    assert [line("JUNK") for _ in range(5)] == [None] * 5
    # Other chargers, lines about no charger and info lines are not limited.
    assert line("CALM") is not None
    assert line(None) is not None
    assert line("JUNK", "info", "heartbeat") is not None
    # A minute on, the first line written says how many were dropped.
    now[0] = 60.0
    assert line("JUNK")["dropped_lines"] == 6
    assert "dropped_lines" not in line("JUNK")
    assert line("JUNK") is not None  # the third line of the new minute
    assert line("JUNK")["event"] == "charger_log_lines_dropped"
    assert ChargerLogLimit(0)(None, "warning", {"level": "warning", "charge_point_id": "X"})
