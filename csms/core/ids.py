"""Identifier types shared by every layer.

Only NewTypes and their normalisation live here.
"""

from __future__ import annotations

from typing import NewType

ChargePointId = NewType("ChargePointId", str)
TransactionId = NewType("TransactionId", int)
TokenUid = NewType("TokenUid", str)


def token_key(uid: str) -> str:
    """Id tokens compare case-insensitively (CiString in OCPP 1.6, idToken in 2.0.1)."""
    return uid.strip().upper()
