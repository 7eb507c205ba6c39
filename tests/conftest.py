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


# --- the databases the storage and end-to-end suites run on (tests/postgres.py) ----------

import os  # noqa: E402

import pytest  # noqa: E402

from tests import postgres  # noqa: E402

_cluster: postgres.Cluster | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["auto", "sqlite", "postgres", "both"],
        default=os.environ.get(postgres.CHOICE_ENV, "auto"),
        help="databases for the storage and end-to-end suites (env CSMS_TEST_DB); auto: "
        "both when PostgreSQL is installed, else SQLite",
    )


def selected_backends(config: pytest.Config) -> tuple[str, ...]:
    choice = config.getoption("--db")
    if choice == "auto":
        have = os.environ.get(postgres.URL_ENV) or postgres.server_programs() is not None
        return postgres.BACKENDS if have else ("sqlite",)
    return postgres.BACKENDS if choice == "both" else (choice,)


def pytest_configure(config: pytest.Config) -> None:
    global _cluster
    config.addinivalue_line(
        "markers",
        "sqlite_only: about the SQLite file itself, or what always runs on one (csms demo)",
    )
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL (several nodes)")
    if hasattr(config, "workerinput"):  # an xdist worker: the controller started it
        return
    if "postgres" not in selected_backends(config) or os.environ.get(postgres.URL_ENV):
        if os.environ.get(postgres.URL_ENV) and "postgres" in selected_backends(config):
            postgres.prepare_template(os.environ[postgres.URL_ENV])
        return
    _cluster = postgres.Cluster.start()
    os.environ[postgres.URL_ENV] = _cluster.url
    postgres.prepare_template(_cluster.url)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        os.environ.pop(postgres.URL_ENV, None)
        _cluster = None


def pytest_report_header(config: pytest.Config) -> str:
    backends = selected_backends(config)
    missing = "postgres" not in backends and config.getoption("--db") == "auto"
    note = " (PostgreSQL is not installed: its runs are left out)" if missing else ""
    return f"databases: {', '.join(backends)}{note}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    backends = selected_backends(metafunc.config)
    if metafunc.definition.get_closest_marker("sqlite_only"):
        backends = tuple(b for b in backends if b == "sqlite")
    if metafunc.definition.get_closest_marker("postgres_only"):
        backends = tuple(b for b in backends if b == "postgres")
    metafunc.parametrize("backend", backends, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The database this test runs on (parametrized: sqlite, postgres)."""
    chosen: str = request.param
    postgres.Current.backend = chosen
    return chosen
