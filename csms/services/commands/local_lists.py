"""Local authorization lists: SendLocalList (the full list, or the changes since the one the
charger holds, split into parts the charger takes at once) and GetLocalListVersion.

The wire format is the version adapters'; this module sees csms.core commands only.
"""

from __future__ import annotations

from typing import Any

import structlog

from csms.core.authorization import AuthResult, AuthStatus, decide
from csms.core.clock import Clock, format_timestamp, parse_timestamp
from csms.core.command_requests import LocalListSendRequest, LocalListVersionRequest
from csms.core.commands import (
    Answer,
    ChargerCallError,
    Command,
    CommandRefused,
    GetLocalListLimits,
    GetLocalListVersion,
    LocalListEntry,
    SendLocalList,
)
from csms.core.ids import token_key
from csms.core.roaming import offline_usable
from csms.services.commands.base import ChargerChannel, Order, Prepared
from csms.storage import local_lists as list_repo
from csms.storage import tokens as token_repo
from csms.storage.database import Database, WriteTx

log = structlog.get_logger("csms.commands")

# Local lists up to this size go in one SendLocalList without asking the charger its limits.
SAFE_LIST_MESSAGE = 20


class LocalLists:
    """`local-list-send` and `local-list-version`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def prepare(
        self, request: LocalListSendRequest | LocalListVersionRequest, order: Order
    ) -> Prepared:
        match request:
            case LocalListSendRequest():
                return await self._send(order.cp_id, order.channel, request.full, order.wait)
            case LocalListVersionRequest():
                return await self._version(order.cp_id)

    async def _send(self, cp_id: str, channel: ChargerChannel, full: bool, wait: float) -> Prepared:
        now = self._clock()
        async with self._db.read() as conn:
            tokens = await token_repo.list_all(conn)
            stored = await list_repo.get(conn, cp_id)
        current: dict[str, dict[str, Any]] = {}
        for token in tokens:
            if not offline_usable(token.whitelist):
                # Another party's token that its eMSP must be asked about (ALLOWED, NEVER):
                # a charger deciding from its list would not ask.
                continue
            auth = decide(token, now)
            current[token_key(token.uid)] = {
                "uid": token.uid,
                "type": token.type,
                "status": auth.status.value,
                "expires_at": None
                if auth.expires_at is None
                else format_timestamp(auth.expires_at),
                "parent": auth.parent_uid,
            }
        if not full and stored is None:
            raise CommandRefused("no list was sent to this charger yet: send --full first")
        entries: list[LocalListEntry] = []
        if full:
            entries = [_entry(item) for item in current.values()]
        else:
            assert stored is not None
            for key, item in current.items():
                if stored.entries.get(key) != item:
                    entries.append(_entry(item))
            for key, item in stored.entries.items():
                if key not in current:
                    entries.append(LocalListEntry(item["uid"], item["type"], None))
        per_message = len(entries)
        if len(entries) > SAFE_LIST_MESSAGE:
            limit, max_entries = await self._limits(channel, wait)
            if max_entries is not None and len(current) > max_entries:
                raise CommandRefused(
                    f"the charger holds at most {max_entries} entries; "
                    f"the token table has {len(current)}"
                )
            per_message = limit or len(entries)
        base = stored.version if stored else 0
        # A list longer than the charger takes at once goes as the first part (Full when
        # asked) and then differential updates, each with the next version number.
        chunks = [
            tuple(entries[i : i + per_message]) for i in range(0, len(entries), per_message)
        ] or [()]
        commands: list[Command] = [
            SendLocalList(base + 1 + i, full and i == 0, chunk) for i, chunk in enumerate(chunks)
        ]
        version = base + len(commands)

        async def after(answer: Answer) -> None:
            if answer.ok:
                at = self._clock()

                async def unit(w: WriteTx) -> None:
                    await list_repo.put(await w.connection(), cp_id, version, current, at)

                await self._db.write(unit)

        data: dict[str, Any] = {"list_version": version, "entries": len(entries), "full": full}
        if len(commands) > 1:
            data["messages"] = len(commands)
        return Prepared(commands[0], data, after, more=commands[1:])

    async def _limits(self, channel: ChargerChannel, wait: float) -> tuple[int | None, int | None]:
        """(entries per SendLocalList, entries in all) as the charger reports them."""
        command = GetLocalListLimits()
        action, payload = channel.encode_command(command)
        try:
            raw = await channel.call(action, payload, wait)
        except (TimeoutError, ChargerCallError, ConnectionError) as exc:
            log.warning("local_list_limits_unknown", detail=str(exc))
            return None, None
        data = channel.decode_answer(command, action, raw).data
        return data.get("per_message"), data.get("max_entries")

    async def _version(self, cp_id: str) -> Prepared:
        async with self._db.read() as conn:
            stored = await list_repo.get(conn, cp_id)
        return Prepared(
            GetLocalListVersion(), {"csms_list_version": stored.version if stored else 0}
        )


def _entry(item: dict[str, Any]) -> LocalListEntry:
    expires = item.get("expires_at")
    return LocalListEntry(
        item["uid"],
        item["type"],
        AuthResult(
            AuthStatus(item["status"]),
            None if expires is None else parse_timestamp(expires),
            item.get("parent"),
        ),
    )
