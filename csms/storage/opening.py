"""Opening the configured database, and saying in one line why it could not be opened.

Kept apart from csms.app so that the data commands of `csms` open the database without
importing the servers."""

from __future__ import annotations

from csms.config import Config
from csms.storage.database import Database


def open_database(config: Config) -> Database:
    return Database.from_url(
        config.database.url,
        commit_delay_ms=config.database.commit_delay_ms,
        max_batch=config.database.max_batch,
    )


def describe_startup_error(exc: BaseException, config: Config) -> str | None:
    """One line for errors an operator can fix (port taken, database unreachable, driver
    missing); None for anything else (a bug, which should keep its traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, ModuleNotFoundError):
        return (
            f"the database driver {exc.name!r} is not installed "
            "(for PostgreSQL: pip install 'csms[postgres]')"
        )
    if isinstance(exc, SQLAlchemyError):
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return f"database {safe_url(config.database.url)}: {detail}"
    if isinstance(exc, OSError) and _raised_in_database_driver(exc):
        # asyncpg's connection errors (refused, unreachable host) are plain OSErrors that
        # SQLAlchemy passes on unwrapped.
        return f"database {safe_url(config.database.url)}: cannot connect: {exc}"
    if isinstance(exc, OSError):
        if exc.filename is not None:
            return f"cannot start: {exc.strerror} ({exc.filename})"
        return f"cannot start: {exc}"
    return None


def _raised_in_database_driver(exc: BaseException) -> bool:
    """Whether `exc` was raised inside SQLAlchemy or the database driver."""
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(("asyncpg", "sqlalchemy", "aiosqlite")):
            return True
        frame = frame.tb_next
    return False


def safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
