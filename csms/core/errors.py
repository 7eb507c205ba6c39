"""Domain errors, and how any error is shown in one line.

CsmsError
 ├── UnknownChargePoint   a charge point id that is not registered
 └── InvalidInput         a value the domain cannot accept (bad unit, bad timestamp ...)
"""

from __future__ import annotations


class CsmsError(Exception):
    """Root of every error raised by the CSMS domain and services."""


class UnknownChargePoint(CsmsError):
    pass


class InvalidInput(CsmsError):
    pass


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An error as people read it in a list or a log field: its type and message on one
    line, at most `limit` characters. A database driver's error is shown as the driver
    raised it (without the statement a wrapper such as SQLAlchemy's adds)."""
    shown: BaseException = exc
    original = getattr(exc, "orig", None)
    if isinstance(original, BaseException):
        shown = original
    text = " ".join(str(shown).split())
    name = type(shown).__name__
    return (f"{name}: {text}" if text else name)[:limit]
