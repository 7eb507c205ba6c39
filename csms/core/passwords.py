"""Charger passwords (OCPP security profile 1): salted PBKDF2 hashes, never plain text.

Pure functions over hashlib; where hashes are stored is csms.storage's business.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_ALGORITHM = "pbkdf2_sha256"
_ITERATIONS = 60_000


def hash_password(password: str, *, iterations: int = _ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(
        (
            _ALGORITHM,
            str(iterations),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


# A hash of a password nobody knows, of the same kind and cost as the stored ones: an id
# without a password is verified against it, so that a wrong guess costs the same time
# whether the id exists or not.
DUMMY_HASH = (
    "pbkdf2_sha256$60000$rP9+GxtB39hClTEVFbewLQ==$2839TUghl/Uepr92GS1LFpw1v2Sfm/PuKYo/HPcdocs="
)


def verify_password(password: str, encoded: str) -> bool:
    try:
        algorithm, iterations, salt_b64, digest_b64 = encoded.split("$")
        if algorithm != _ALGORITHM:
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        rounds = int(iterations)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return hmac.compare_digest(digest, expected)


def verify_or_dummy(password: str, encoded: str | None) -> bool:
    """`verify_password` against `encoded`, or, when there is none (an unknown id, a
    charger without a password), against DUMMY_HASH and False: the same work either way."""
    if encoded is None:
        verify_password(password, DUMMY_HASH)
        return False
    return verify_password(password, encoded)
