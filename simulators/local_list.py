"""The local authorization list of a simulated charger (SendLocalList, GetLocalListVersion, both
OCPP versions): its version, its entries, and how full and differential updates apply.

Pure bookkeeping over neutral entries; the 1.6 and 2.0.1 request handlers read the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["ListEntry", "LocalList", "UpdateStatus"]


class UpdateStatus(StrEnum):
    """How an update went; 1.6 adds NotSupported, decided by the charger's configuration."""

    ACCEPTED = "Accepted"
    FAILED = "Failed"
    VERSION_MISMATCH = "VersionMismatch"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One id tag and what the list says about it."""

    id_tag: str
    status: str
    expires_at: datetime | None = None
    parent_id_tag: str | None = None
    #: idTagInfo (1.6) or idTokenInfo (2.0.1) as the CSMS sent it.
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def status_at(self, at: datetime) -> str:
        """The status, Expired once `expires_at` has passed."""
        if self.expires_at is not None and at >= self.expires_at and self.status == "Accepted":
            return "Expired"
        return self.status


class LocalList:
    """Version 0 and no entries until the first update; tags are case-insensitive."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.version = 0
        self._entries: dict[str, ListEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> tuple[ListEntry, ...]:
        return tuple(self._entries.values())

    def lookup(self, id_tag: str) -> ListEntry | None:
        return self._entries.get(id_tag.casefold())

    def update(
        self,
        version: int,
        full: bool,
        changes: Sequence[tuple[str, ListEntry | None]],
    ) -> UpdateStatus:
        """Apply a SendLocalList: `changes` are (tag, entry) pairs, an entry None deleting the
        tag (differential only). A differential update must bring a newer version; a list
        that would grow past `max_length`, or repeats a tag, fails and changes nothing."""
        if not full and version <= self.version:
            return UpdateStatus.VERSION_MISMATCH
        keys = [tag.casefold() for tag, _ in changes]
        if len(set(keys)) != len(keys) or (full and any(e is None for _, e in changes)):
            return UpdateStatus.FAILED
        entries = {} if full else dict(self._entries)
        for key, (_, entry) in zip(keys, changes, strict=True):
            if entry is None:
                entries.pop(key, None)
            else:
                entries[key] = entry
        if len(entries) > self.max_length:
            return UpdateStatus.FAILED
        self._entries = entries
        self.version = version
        return UpdateStatus.ACCEPTED
