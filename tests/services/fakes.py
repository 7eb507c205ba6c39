"""In-memory implementations of the services' store protocols, for unit tests of their
rules (end-to-end tests use the real database)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csms.core.authorization import Token
from csms.core.charger import ChargePoint, RegistrationStatus, StatusReport
from csms.core.device_model import ReportedVariable
from csms.core.ids import token_key
from csms.core.reservations import ReservationState
from csms.core.roaming import Grant
from csms.services.holdings import Place
from csms.services.stations import Boot, Progress
from csms.storage.grants import Standing


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Tokens:
    """TokenStore: tokens by key, standing decisions by (charger, key)."""

    def __init__(self, *tokens: Token) -> None:
        self.tokens = {token_key(t.uid): t for t in tokens}
        self.standings: dict[tuple[str, str], Standing] = {}
        self.reads = 0

    async def token(self, key: str) -> Token | None:
        return self.tokens.get(key)

    async def standing(self, cp_id: str, uid_key: str, now: datetime) -> Standing | None:
        self.reads += 1
        found = self.standings.get((cp_id, uid_key))
        return found if found is not None and found.until > now else None

    async def keep_standing(
        self, cp_id: str, uid_key: str, standing: Standing, now: datetime
    ) -> None:
        self.standings[(cp_id, uid_key)] = standing

    async def drop_standing(self, cp_id: str, uid_key: str) -> None:
        self.standings.pop((cp_id, uid_key), None)


class Holders:
    """HoldersLoader: the running, accepted transactions of each token key."""

    def __init__(self, held: dict[str, dict[int, Place]] | None = None) -> None:
        self.held = held or {}

    async def load(self, key: str) -> dict[int, Place] | None:
        return self.held.get(key)


@dataclass
class Roaming:
    """Roaming: the eMSP's answer for every token, and who asked."""

    grant: Grant | None
    asked: list[tuple[str, int | None, str]] = field(default_factory=list)

    async def authorize(
        self, cp_id: str, evse_id: int | None, uid: str, token_type: str | None, token: Token
    ) -> Grant | None:
        self.asked.append((cp_id, evse_id, uid))
        return self.grant


class Admission:
    """Admission: every message kept unless `full`; enrolment refused with `refusal`."""

    def __init__(self, *, full: bool = False, refusal: str | None = None) -> None:
        self.full = full
        self.refusal = refusal
        self.refused_ids: list[str] = []
        self.enrolled = 0

    def keep(self, cp_id: str, action: str, payload: dict[str, Any]) -> bool:
        return not self.full

    async def enrolment_refusal(self) -> str | None:
        return self.refusal

    async def enrol(self) -> str | None:
        if self.refusal is None:
            self.enrolled += 1
        return self.refusal

    def refused(self, cp_id: str, reason: str, at: str, peer: str | None = None) -> None:
        self.refused_ids.append(cp_id)


class Stations:
    """StationStore: charge points by id and every write, in order."""

    def __init__(self, *known: ChargePoint) -> None:
        self.known = {cp.id: cp for cp in known}
        self.writes: list[tuple[Any, ...]] = []
        self.variables: list[ReportedVariable] = []

    async def charge_point(self, cp_id: str) -> ChargePoint | None:
        return self.known.get(cp_id)

    async def connected(
        self, cp_id: str, version: str, registration: RegistrationStatus, now: datetime
    ) -> None:
        self.writes.append(("connected", cp_id, version, registration))

    async def disconnected(self, cp_id: str, last_seen: datetime, now: datetime) -> None:
        self.writes.append(("disconnected", cp_id, last_seen))

    async def seen(self, seen: Sequence[tuple[str, datetime]]) -> None:
        self.writes.append(("seen", tuple(seen)))

    async def booted(self, cp_id: str, boot: Boot, now: datetime) -> None:
        self.writes.append(("booted", cp_id, boot))

    async def heartbeat(self, cp_id: str, now: datetime) -> None:
        self.writes.append(("heartbeat", cp_id, now))

    async def status(self, cp_id: str, report: StatusReport, now: datetime) -> None:
        self.writes.append(("status", cp_id, report))

    async def device_report(
        self, cp_id: str, variables: Sequence[ReportedVariable], now: datetime
    ) -> int:
        self.variables.extend(variables)
        return len(variables)

    async def keep_message(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any] | None,
        progress: Progress | None,
        now: datetime,
    ) -> None:
        self.writes.append(("message", cp_id, action, payload, progress))

    async def reservation_ended(
        self, cp_id: str, reservation_id: int, state: ReservationState, now: datetime
    ) -> None:
        self.writes.append(("reservation", cp_id, reservation_id, state))
