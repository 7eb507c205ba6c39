"""Identifiers shared by every layer and how they compare.

Only normalisation of ids lives here.
"""

from __future__ import annotations


def token_key(uid: str) -> str:
    """Id tokens compare case-insensitively (CiString in OCPP 1.6, idToken in 2.0.1)."""
    return uid.strip().upper()
