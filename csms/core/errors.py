"""Domain errors.

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
