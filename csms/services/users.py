"""Use cases on the operator API's staff users: add one (its token is returned once),
list, show, disable, enable, rotate its token, and find the user of a bearer token.

Works with or without a running server (both read the same database, so a disabled or
rotated token is refused by the server at its next request); printing is the CLI's.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from csms.core.clock import Clock
from csms.core.errors import InvalidInput
from csms.core.errors import UnknownUser as UnknownUser
from csms.core.errors import UserExists as UserExists
from csms.core.users import (
    LOCAL,
    Identity,
    Role,
    StaffUser,
    new_token,
    token_digest,
    user_name_problem,
)
from csms.storage import users as user_repo
from csms.storage.database import Database, WriteTx
from csms.storage.paging import Page


@dataclass(frozen=True, slots=True)
class Issued:
    """A user with the token just issued to it: shown once, never stored."""

    user: StaffUser
    token: str


class UserService:
    def __init__(self, db: Database, clock: Clock, local_token: str | None = None) -> None:
        """`local_token`: the operator API's own token (api.token or its file), the `local`
        admin; None where no API is served (the CLI)."""
        self._db = db
        self._clock = clock
        self._local = None if local_token is None else local_token.encode()

    async def add(self, name: str, role: Role) -> Issued:
        problem = user_name_problem(name)
        if problem is not None:
            raise InvalidInput(f"invalid user name {name!r}: {problem}")
        token = new_token()
        now = self._clock()

        async def unit(w: WriteTx) -> StaffUser:
            conn = await w.connection()
            if await user_repo.get(conn, name) is not None:
                raise UserExists(f"user {name} already exists")
            return await user_repo.add(conn, name, role, token_digest(token), now)

        return Issued(await self._db.write(unit), token)

    async def user(self, name: str) -> StaffUser:
        async with self._db.read() as conn:
            found = await user_repo.get(conn, name)
        if found is None:
            raise UnknownUser(f"no user {name}")
        return found

    async def users(self, limit: int = 100, after: int | None = None) -> Page[StaffUser]:
        """Users, the most recently added first; `after`: the next_key of the page before."""
        async with self._db.read() as conn:
            return await user_repo.listing(conn, after=after, limit=limit)

    async def set_enabled(self, name: str, enabled: bool) -> StaffUser:
        return await self._change(name, enabled=enabled)

    async def set_role(self, name: str, role: Role) -> StaffUser:
        return await self._change(name, role=role.value)

    async def rotate(self, name: str) -> Issued:
        """A new token for the user; the old one is refused from now on."""
        token = new_token()
        user = await self._change(
            name, token_digest=token_digest(token), token_issued_at=self._clock()
        )
        return Issued(user, token)

    async def _change(self, name: str, **values: object) -> StaffUser:
        now = self._clock()

        async def unit(w: WriteTx) -> StaffUser:
            conn = await w.connection()
            if not await user_repo.set_fields(conn, name, now, **values):
                raise UnknownUser(f"no user {name}")
            changed = await user_repo.get(conn, name)
            assert changed is not None
            return changed

        return await self._db.write(unit)

    async def identify(self, token: str) -> Identity | None:
        """Who holds `token`: the local admin, an enabled user, or None (unknown, rotated
        away or disabled). Read from the database at every call, so that a change made by
        `csms users` on the same database takes effect at once. The time taken does not
        depend on how much of the token is right: it is compared in constant time with the
        local token and looked up by its digest."""
        given = token.encode()
        if self._local is not None and hmac.compare_digest(given, self._local):
            return LOCAL
        digest = token_digest(token)
        async with self._db.read(snapshot=False) as conn:
            user = await user_repo.by_digest(conn, digest)
        if user is None or not user.enabled:
            return None
        return Identity(user.name, user.role)
