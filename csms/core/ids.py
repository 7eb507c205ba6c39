"""Identifiers shared by every layer and how they compare.

Only normalisation of ids lives here.
"""

from __future__ import annotations

from collections.abc import Iterable


def token_key(uid: str) -> str:
    """Id tokens compare case-insensitively (CiString in OCPP 1.6, idToken in 2.0.1)."""
    return uid.strip().upper()


def first_duplicate(ids: Iterable[str]) -> str | None:
    """The first id that appears a second time (an import naming one object twice)."""
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None
