"""What every command family shares: the charger's live connection as commands see it, who
asked, a command on its way (Order) and what a family makes of a request (Prepared).

No family's rules here; the families are the sibling modules, the façade is .service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from csms.core.authorization import AuthResult, AuthStatus, decide
from csms.core.charger import RegistrationStatus
from csms.core.clock import Clock
from csms.core.commands import Answer, Command, CommandRefused
from csms.core.versions import OcppVersion, ProtocolLimits
from csms.services.charging import Charging
from csms.storage import tokens as token_repo
from csms.storage.database import Database


class ChargerChannel(Protocol):
    """A charger's live connection as commands see it (csms.handlers.OcppSession)."""

    @property
    def version(self) -> OcppVersion: ...

    @property
    def registration(self) -> RegistrationStatus | None: ...

    def encode_command(self, command: Command) -> tuple[str, dict[str, Any]]: ...

    def decode_answer(self, command: Command, action: str, answer: dict[str, Any]) -> Answer: ...

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 - a deadline for the charger's answer
    ) -> dict[str, Any]: ...


# cp_id -> its live connection in this process, or None.
Channels = Callable[[str], ChargerChannel | None]


class Router(Protocol):
    """The other nodes on the same database (csms.services.nodes.Cluster): which one holds
    a charger's socket, and word from one a command was routed to."""

    @property
    def node_id(self) -> str: ...

    @property
    def pickup_timeout(self) -> float: ...

    async def holder(self, cp_id: str) -> str | None: ...

    def expect(self, entry_id: int) -> asyncio.Event: ...

    def forget(self, entry_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Requester:
    """Who sent a command: `source` is cli, api or ocpi; `name` a user or partner."""

    source: str = "api"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PartnerReservation:
    """A reservation an OCPI partner asks for (RESERVE_NOW): its id for it, kept with ours
    and never sent to the charger, what its Session shows (`info`), and our open reservation
    on the same charger it replaces (then the ReserveNow carries that id)."""

    partner_id: int
    reservation_id: str
    info: Mapping[str, Any]
    replaces: int | None = None


@dataclass(frozen=True, slots=True)
class Vouched:
    """A token another party vouches for (OCPI START_SESSION and RESERVE_NOW): sent without
    being looked up in our token table, as OCPP id token type `token_type`, with
    `group_id` as its parent."""

    token_type: str
    group_id: str | None = None
    reservation: PartnerReservation | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept with a command sent by another node."""
        found = self.reservation
        return {
            "token_type": self.token_type,
            "group_id": self.group_id,
            "reservation": None
            if found is None
            else {
                "partner_id": found.partner_id,
                "reservation_id": found.reservation_id,
                "info": dict(found.info),
                "replaces": found.replaces,
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Vouched:
        found = raw.get("reservation")
        return cls(
            str(raw["token_type"]),
            raw.get("group_id"),
            None
            if found is None
            else PartnerReservation(
                int(found["partner_id"]),
                str(found["reservation_id"]),
                dict(found["info"]),
                found.get("replaces"),
            ),
        )


@dataclass(frozen=True, slots=True)
class Order:
    """One command on its way: the charger, its audit log entry, who asked, the charger's
    connection and its OCPP version's limits, how long it has to answer."""

    cp_id: str
    entry_id: int
    requester: Requester
    channel: ChargerChannel
    limits: ProtocolLimits
    wait: float
    vouched: Vouched | None = None


AfterAnswer = Callable[[Answer], Awaitable[None]]


@dataclass(slots=True)
class Prepared:
    """A request resolved into what goes on the wire, and the bookkeeping around it."""

    command: Command
    # Extra facts for the result (ids we allocated...).
    data: dict[str, Any] = field(default_factory=dict)
    # Bookkeeping once the charger answered / when it did not.
    after: AfterAnswer | None = None
    failed: Callable[[], Awaitable[None]] | None = None
    # Further messages, each sent once the one before was accepted.
    more: list[Command] = field(default_factory=list)


async def authorized_token(
    db: Database, clock: Clock, charging: Charging, uid: str, vouched: Vouched | None
) -> tuple[str, AuthResult]:
    """The type and standing of a token staff want to use (a remote start, a reservation);
    refuses tokens that would not be accepted at the charger anyway. A vouched token is not
    looked up: its owner answers for it."""
    if vouched is not None:
        return vouched.token_type, AuthResult(AuthStatus.ACCEPTED, None, vouched.group_id)
    async with db.read() as conn:
        token = await token_repo.get(conn, uid)
    if token is None:
        if charging.authorization.allow_unknown_tags:
            return "ISO14443", decide(None, clock())
        raise CommandRefused(f"tag {uid!r} is not known (add it with `csms tokens add`)")
    auth = decide(token, clock())
    if not auth.accepted:
        raise CommandRefused(f"tag {uid!r} is {auth.status.value}")
    return token.type, auth
