"""Staff users of the operator API: their roles, what each role may do, and their bearer
tokens (made here, stored only as a digest).

Pure: no I/O; the users are stored by csms.storage.users and managed by csms.services.users.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.core.errors import InvalidInput


class Role(StrEnum):
    """What a user may do on the operator API; each role may do what the ones before it
    may: viewers read, operators also send commands to chargers, admins also manage users."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
ROLE_CHOICES = tuple(r.value for r in Role)

# The user of the operator API's own token (api.token, else the data directory's token
# file): an admin that is not stored with the others, and a name no stored user may take.
LOCAL_USER = "local"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# Tokens we issue: a prefix people and secret scanners recognise, then 256 random bits.
TOKEN_PREFIX = "csms_u_"  # noqa: S105 - a prefix, not a secret
# BLAKE2b keyed with a fixed, public key: the key only separates these digests from any
# other use of the hash. A token is 256 random bits, so its digest can be neither reversed
# nor guessed; a slow password hash would add nothing but cost on every request.
_DIGEST_KEY = b"csms staff token v1"


def user_name_problem(name: str) -> str | None:
    """Why `name` cannot be a user's name, or None: 1 to 64 letters, digits and `._@-`,
    starting with a letter or digit; `local` is the operator API's own token."""
    if not _NAME.fullmatch(name):
        return "use 1 to 64 letters, digits and . _ @ -, starting with a letter or digit"
    if name.lower() == LOCAL_USER:
        return f"{LOCAL_USER!r} is the user of the API's own token (api.token or its file)"
    return None


def parse_role(text: str) -> Role:
    """A role in any case; InvalidInput naming the choices."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"must be one of {', '.join(ROLE_CHOICES[:-1])} or {ROLE_CHOICES[-1]}, not {text!r}"
        ) from None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored of a token and looked up by: 64 hex digits."""
    return hashlib.blake2b(token.encode(), digest_size=32, key=_DIGEST_KEY).hexdigest()


@dataclass(frozen=True, slots=True)
class StaffUser:
    name: str
    role: Role
    enabled: bool
    created_at: datetime
    updated_at: datetime
    # When the current token was issued (`add`, `rotate`).
    token_issued_at: datetime


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request to the operator API comes from: a stored user, or `local` (the API's
    own token, an admin)."""

    name: str
    role: Role

    @property
    def local(self) -> bool:
        return self.name == LOCAL_USER


LOCAL = Identity(LOCAL_USER, Role.ADMIN)
