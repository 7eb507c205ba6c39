"""Identifiers shared by every layer and how they compare.

Only normalisation and the alphabets of ids live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A charge point id is OCPP 2.0.1's identifierString (Part 2: a-z, A-Z, 0-9 and
# * - _ = : + | @ .), at most 48 characters (the identity's length in 2.0.1; 1.6 sets no
# rule of its own). Each character is one byte of printable ASCII, so that two different
# URLs never decode to one id, nothing unprintable reaches a log, and every id is a path
# segment the operator API routes (no "/", "{" or "}").
CHARGER_ID_MAX_LENGTH = 48
CHARGER_ID_CHARACTERS = "a-z, A-Z, 0-9 and * - _ = : + | @ ."
_CHARGER_ID = re.compile(rf"[A-Za-z0-9*\-_=:+|@.]{{1,{CHARGER_ID_MAX_LENGTH}}}")


def charger_id_problem(cp_id: str) -> str | None:
    """Why `cp_id` is not an acceptable charge point id, or None when it is."""
    if _CHARGER_ID.fullmatch(cp_id) is not None:
        return None
    if not cp_id:
        return "the charge point id is empty"
    if len(cp_id) > CHARGER_ID_MAX_LENGTH:
        return f"the charge point id is longer than {CHARGER_ID_MAX_LENGTH} characters"
    bad = next(c for c in cp_id if _CHARGER_ID.fullmatch(c) is None)
    return f"the charge point id contains {bad!a}; allowed are {CHARGER_ID_CHARACTERS}"


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
