"""The `Authorization: Token ...` header in both encodings: Base64 (OCPI 2.2.1) and raw
(2.1.1/2.2 implementations that never encoded it).

Pure functions; which partner a token belongs to is csms.services.partners' business.
"""

from __future__ import annotations

import base64
import binascii

from csms.core.partners import TokenEncoding, valid_token


def header_value(token: str, encoding: TokenEncoding) -> str:
    """The Authorization header value that presents `token` in `encoding`."""
    if encoding is TokenEncoding.BASE64:
        return "Token " + base64.b64encode(token.encode()).decode("ascii")
    return "Token " + token


def token_candidates(header: str | None) -> list[tuple[str, TokenEncoding]]:
    """What a received header may mean: the Base64-decoded token (when the value decodes to
    a valid token) first, then the value as a raw token. Empty when there is no usable
    `Token` credential. The scheme is matched case-insensitively."""
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates: list[tuple[str, TokenEncoding]] = []
    decoded = _b64decode(value)
    if decoded is not None and valid_token(decoded):
        candidates.append((decoded, TokenEncoding.BASE64))
    if valid_token(value):
        candidates.append((value, TokenEncoding.RAW))
    return candidates


def _b64decode(value: str) -> str | None:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
