"""Use cases of CPO staff on stored data: chargers, tokens, transactions.

Works with or without a running server (SQLite WAL lets both use the file); output
formatting is the CLI's business.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.core.authorization import Token, TokenStatus, parse_limit
from csms.core.charger import (
    SECURITY_PROFILE_CHANGE,
    SECURITY_PROFILES,
    ChargePoint,
    ConnectorState,
    RegistrationStatus,
    StatusReport,
)
from csms.core.clock import Clock, parse_timestamp
from csms.core.errors import AlreadyExists as AlreadyExists
from csms.core.errors import InvalidInput, InvalidParty, InvalidTimestamp, UnknownChargePoint
from csms.core.errors import UnknownToken as UnknownToken
from csms.core.errors import UnknownTransaction as UnknownTransaction
from csms.core.ids import charger_id_problem
from csms.core.metering import Sample
from csms.core.parties import LOCAL, PARTY_FORMAT, check_origin
from csms.core.passwords import hash_password
from csms.core.reservations import Reservation
from csms.core.transactions import Transaction
from csms.storage import charge_points as cp_repo
from csms.storage import charging_profiles as profile_repo
from csms.storage import commands as audit_repo
from csms.storage import device_model as device_repo
from csms.storage import events as event_repo
from csms.storage import local_lists as list_repo
from csms.storage import ocpi_tokens as ocpi_token_repo
from csms.storage import reservations as reservation_repo
from csms.storage import signed_values as signed_repo
from csms.storage import sites as site_repo
from csms.storage import tokens as token_repo
from csms.storage import transactions as tx_repo
from csms.storage.charging_profiles import StoredProfile
from csms.storage.database import Database, WriteTx
from csms.storage.device_model import DeviceVariable
from csms.storage.events import ChargerEvent
from csms.storage.local_lists import LocalList
from csms.storage.ocpi_tokens import Conflict as TokenConflict
from csms.storage.signed_values import MeterKey, StoredSignedValue
from csms.storage.transactions import StoredEvent

log = structlog.get_logger("csms.staff")

MIN_PASSWORD_LENGTH = 8
# What `update_token` may change.
_TOKEN_FIELDS = {
    "status",
    "expires_at",
    "parent_uid",
    "type",
    "origin",
    "max_concurrent",
    "priority",
}
# A token's priority on a load-managed site (csms.services.load_management): 0 to this.
MAX_TOKEN_PRIORITY = 100


@dataclass(frozen=True, slots=True)
class ChargerOverview:
    charger: ChargePoint
    connectors: tuple[ConnectorState, ...]


@dataclass(frozen=True, slots=True)
class ChargerDetail:
    charger: ChargePoint
    connectors: tuple[ConnectorState, ...]
    history: tuple[tuple[StatusReport, datetime], ...]
    active_transactions: tuple[Transaction, ...]
    events: tuple[ChargerEvent, ...]
    unmatched: tuple[dict[str, Any], ...]
    reservations: tuple[Reservation, ...] = ()  # still holding an EVSE
    profiles: tuple[StoredProfile, ...] = ()  # installed charging profiles
    local_list: LocalList | None = None  # as last sent
    meter_keys: tuple[MeterKey, ...] = ()  # its meters' public keys (Eichrecht)


@dataclass(frozen=True, slots=True)
class TransactionDetail:
    transaction: Transaction
    samples: tuple[Sample, ...]
    events: tuple[StoredEvent, ...] = ()
    # The values its meter signed, as received (Eichrecht).
    signed: tuple[StoredSignedValue, ...] = ()


class StaffService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # --- chargers ----------------------------------------------------------------------

    async def add_charger(
        self,
        cp_id: str,
        *,
        password: str | None = None,
        validation: str | None = None,
        registration: RegistrationStatus = RegistrationStatus.ACCEPTED,
        security_profile: int = 1,
        requested_by: str | None = None,
    ) -> ChargePoint:
        _check_charger_id(cp_id)
        _check_profile(security_profile)
        password_hash = _hash(password)
        _check_password_for(security_profile, password_hash)
        now = self._clock()

        async def unit(w: WriteTx) -> ChargePoint:
            conn = await w.connection()
            if await cp_repo.get(conn, cp_id) is not None:
                raise AlreadyExists(f"charger {cp_id} already exists")
            created = await cp_repo.create(
                conn,
                cp_id,
                registration,
                now,
                password_hash=password_hash,
                validation=validation,
                security_profile=security_profile,
            )
            if security_profile != 1:
                await _audit_profile(conn, cp_id, None, security_profile, requested_by, now)
            return created

        return await self._db.write(unit)

    async def update_charger(
        self,
        cp_id: str,
        *,
        password: str | None = None,
        clear_password: bool = False,
        validation: str | None = None,
        registration: RegistrationStatus | None = None,
        security_profile: int | None = None,
        requested_by: str | None = None,
    ) -> ChargePoint:
        """Change what is given. A new security profile is written to the audit log (who,
        old and new) and logged (security_profile_changed): never silently."""
        values: dict[str, Any] = {}
        if security_profile is not None:
            _check_profile(security_profile)
        if password is not None:
            values["password_hash"] = _hash(password)
        if clear_password:
            values["password_hash"] = None
        if validation is not None:
            values["validation"] = validation
        if registration is not None:
            values["registration"] = registration.value
        # Staff have looked at it: it no longer counts against ocpp.auto_register_limit.
        values["auto_registered"] = False
        now = self._clock()

        async def unit(w: WriteTx) -> ChargePoint:
            conn = await w.connection()
            before = await cp_repo.get(conn, cp_id)
            if before is None:
                raise UnknownChargePoint(f"no charger {cp_id}")
            changed = security_profile is not None and security_profile != before.security_profile
            _check_password_for(
                before.security_profile if security_profile is None else security_profile,
                values.get("password_hash", before.password_hash),
            )
            if changed:
                values["security_profile"] = security_profile
            await cp_repo.update_fields(conn, cp_id, now, **values)
            if changed:
                assert security_profile is not None
                await _audit_profile(
                    conn, cp_id, before.security_profile, security_profile, requested_by, now
                )
            charger = await cp_repo.get(conn, cp_id)
            assert charger is not None
            return charger

        return await self._db.write(unit)

    async def remove_charger(self, cp_id: str) -> None:
        """Forget a charger, its place on a site (smart charging) and its meter keys."""
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            if not await cp_repo.delete_charge_point(conn, cp_id):
                raise UnknownChargePoint(f"no charger {cp_id}")
            await site_repo.unlink(conn, [cp_id], now)
            # Its meters' keys go with it: a new charger of that id proves its own.
            await signed_repo.remove_keys_of(conn, cp_id)

        await self._db.write(unit)

    async def chargers(self) -> list[ChargerOverview]:
        async with self._db.read() as conn:
            chargers = await cp_repo.list_all(conn)
            connectors = await cp_repo.connectors_of(conn)
        by_cp: dict[str, list[ConnectorState]] = {}
        for c in connectors:
            by_cp.setdefault(c.charge_point_id, []).append(c)
        return [ChargerOverview(cp, tuple(by_cp.get(cp.id, ()))) for cp in chargers]

    async def charger(self, cp_id: str) -> ChargerDetail:
        async with self._db.read() as conn:
            charger = await cp_repo.get(conn, cp_id)
            if charger is None:
                raise UnknownChargePoint(f"no charger {cp_id}")
            connectors = await cp_repo.connectors_of(conn, [cp_id])
            history = await cp_repo.status_history(conn, cp_id)
            active = await tx_repo.list_transactions(conn, active_only=True, cp_id=cp_id)
            events = await event_repo.recent(conn, cp_id)
            unmatched = await tx_repo.list_unmatched(conn, cp_id, limit=20)
            reservations = await reservation_repo.open_for(conn, cp_id)
            profiles = await profile_repo.installed(conn, cp_id)
            local_list = await list_repo.get(conn, cp_id)
            meter_keys = await signed_repo.keys_of(conn, cp_id)
        now = self._clock()
        return ChargerDetail(
            charger,
            tuple(connectors),
            tuple(history),
            tuple(active),
            tuple(events),
            tuple(unmatched),
            tuple(r for r in reservations if r.holds(now)),
            tuple(profiles),
            local_list,
            tuple(meter_keys),
        )

    # --- tokens ------------------------------------------------------------------------

    async def add_token(self, token: Token) -> Token:
        _check_token(token)
        now = self._clock()

        async def unit(w: WriteTx) -> Token:
            conn = await w.connection()
            if await token_repo.get(conn, token.uid) is not None:
                raise AlreadyExists(f"token {token.uid} already exists")
            await token_repo.upsert(conn, [token], now)
            stored = await token_repo.get(conn, token.uid)
            assert stored is not None
            return stored

        return await self._db.write(unit)

    async def update_token(self, uid: str, **changes: Any) -> Token:
        """Change some of a stored token's fields (status, expires_at, parent_uid, type,
        origin, max_concurrent, priority); the others stay. Returns the token as stored."""
        unknown = set(changes) - _TOKEN_FIELDS
        if unknown:
            raise ValueError(f"not token fields: {sorted(unknown)}")
        if not changes:
            raise InvalidInput("nothing to change: give at least one option")
        now = self._clock()

        async def unit(w: WriteTx) -> Token:
            conn = await w.connection()
            stored = await token_repo.get(conn, uid)
            if stored is None:
                raise UnknownToken(f"no token {uid}")
            _check_token(replace(stored, **changes))
            values = {k: v.value if isinstance(v, TokenStatus) else v for k, v in changes.items()}
            await token_repo.set_fields(conn, uid, now, **values)
            changed = await token_repo.get(conn, uid)
            assert changed is not None
            return changed

        return await self._db.write(unit)

    async def set_token_status(self, uid: str, status: TokenStatus) -> None:
        now = self._clock()

        async def unit(w: WriteTx) -> None:
            conn = await w.connection()
            if not await token_repo.set_status(conn, uid, status, now):
                raise UnknownToken(f"no token {uid}")

        await self._db.write(unit)

    async def remove_token(self, uid: str) -> None:
        """Forget a token: it is unknown from now on (its transactions keep its uid)."""

        async def unit(w: WriteTx) -> None:
            if not await token_repo.remove(await w.connection(), uid):
                raise UnknownToken(f"no token {uid}")

        await self._db.write(unit)

    async def tokens(self) -> list[Token]:
        async with self._db.read() as conn:
            return await token_repo.list_all(conn)

    async def token_conflicts(self, uid: str | None = None) -> list[TokenConflict]:
        """Partner tokens whose uid another owner holds (of one uid): who authorizes it at
        our chargers, whose claim is not used (csms.storage.ocpi_tokens)."""
        async with self._db.read() as conn:
            return await ocpi_token_repo.conflicts(conn, uid)

    async def token(self, uid: str) -> Token:
        async with self._db.read() as conn:
            found = await token_repo.get(conn, uid)
        if found is None:
            raise UnknownToken(f"no token {uid}")
        return found

    async def import_tokens(
        self, tokens: Sequence[Token], *, limits: bool = True
    ) -> tuple[int, int]:
        """Insert or update tokens; returns (created, updated). Without `limits` (a file
        without a max_concurrent column) stored tokens keep their limit."""
        for token in tokens:
            _check_token(token)
        now = self._clock()

        async def unit(w: WriteTx) -> tuple[int, int]:
            conn = await w.connection()
            return await token_repo.upsert(conn, tokens, now, limits=limits)

        return await self._db.write(unit)

    # --- transactions --------------------------------------------------------------------

    async def transactions(
        self, *, active_only: bool = False, cp_id: str | None = None, limit: int | None = None
    ) -> list[Transaction]:
        async with self._db.read() as conn:
            return await tx_repo.list_transactions(
                conn, active_only=active_only, cp_id=cp_id, limit=limit
            )

    async def transaction(self, tx_id: int) -> TransactionDetail:
        async with self._db.read() as conn:
            tx = await tx_repo.get_with_meter(conn, tx_id)
            if tx is None:
                raise UnknownTransaction(f"no transaction {tx_id}")
            samples = await tx_repo.samples_of(conn, tx_id)
            events = await tx_repo.events_of(conn, tx_id)
            signed = (await signed_repo.signed_of(conn, [tx_id])).get(tx_id, [])
        return TransactionDetail(tx, tuple(samples), tuple(events), tuple(signed))

    async def transaction_events(self, tx_id: int) -> list[StoredEvent]:
        """The OCPP 2.0.1 TransactionEvents of a transaction, by seqNo."""
        async with self._db.read() as conn:
            return await tx_repo.events_of(conn, tx_id)

    async def variables(self, cp_id: str) -> list[DeviceVariable]:
        """The device model a 2.0.1 station reported."""
        async with self._db.read() as conn:
            if await cp_repo.get(conn, cp_id) is None:
                raise UnknownChargePoint(f"no charger {cp_id}")
            return await device_repo.variables_of(conn, cp_id)

    async def unmatched(self, cp_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        async with self._db.read() as conn:
            return await tx_repo.list_unmatched(conn, cp_id, limit)

    async def unmatched_page(
        self, cp_id: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """The newest unmatched messages and how many there are in all."""
        async with self._db.read() as conn:
            found = await tx_repo.list_unmatched(conn, cp_id, limit)
            return found, await tx_repo.count_unmatched(conn, cp_id)


def _hash(password: str | None) -> str | None:
    if password is None:
        return None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 64:
        raise InvalidInput("password must have at most 64 characters")
    return hash_password(password)


def _check_charger_id(cp_id: str) -> None:
    """The id a charger may connect with (the handshake refuses any other)."""
    problem = charger_id_problem(cp_id)
    if problem is not None:
        raise InvalidInput(f"invalid charger id {cp_id!r}: {problem}")


def _check_token(token: Token) -> None:
    if not token.uid or len(token.uid) > 36 or token.uid.strip() != token.uid:
        raise InvalidInput(f"invalid token uid {token.uid!r} (1 to 36 characters, no spaces)")
    if token.parent_uid is not None and len(token.parent_uid) > 36:
        raise InvalidInput(f"invalid parent uid {token.parent_uid!r}")
    if token.max_concurrent is not None and token.max_concurrent < 1:
        raise InvalidInput(f"max_concurrent must be at least 1, not {token.max_concurrent}")
    if token.priority is not None and not 0 <= token.priority <= MAX_TOKEN_PRIORITY:
        raise InvalidInput(f"priority must be 0 to {MAX_TOKEN_PRIORITY}, not {token.priority}")
    origin = check_origin(token.origin)
    if origin != token.origin:
        raise InvalidInput(f"token origin must be written {origin!r}, not {token.origin!r}")


def token_owner(text: str | None) -> str:
    """The origin of a token from an `--owner`/`owner` value: `CC*PID` for a token another
    party (an eMSP) owns, nothing or `local` for our own customers' tokens."""
    if text is None or not text.strip():
        return LOCAL
    try:
        return check_origin(text)
    except InvalidParty:
        raise InvalidInput(f"must be {PARTY_FORMAT} (or local), not {text!r}") from None


@dataclass(frozen=True, slots=True)
class TokenFile:
    tokens: list[Token]
    # Whether the file gives each token's limit of concurrent transactions.
    limits: bool


def parse_tokens_csv(text: str) -> TokenFile:
    """Tokens from CSV with a header row:
    uid[,status][,expires][,parent][,type][,owner][,max_concurrent] (owner: `CC*PID` of the
    party owning the token, empty for ours; max_concurrent: a number or `unlimited`, empty
    for 1).

    Raises InvalidInput naming the line of the first bad row; nothing is half-read.
    """
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise InvalidInput("the file is empty")
    fields = [f.strip().lower() for f in reader.fieldnames]
    if "uid" not in fields:
        raise InvalidInput("the header row must name a 'uid' column")
    allowed = {"uid", "status", "expires", "parent", "type", "owner", "max_concurrent"}
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise InvalidInput(f"unknown column(s): {', '.join(unknown)}")
    reader.fieldnames = fields
    tokens: list[Token] = []
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        uid = (row.get("uid") or "").strip()
        if not uid:
            raise InvalidInput(f"line {line}: uid is empty")
        if uid.upper() in seen:
            raise InvalidInput(f"line {line}: uid {uid} appears twice")
        seen.add(uid.upper())
        status_text = (row.get("status") or "Accepted").strip() or "Accepted"
        try:
            status = token_status(status_text)
        except InvalidInput as exc:
            raise InvalidInput(f"line {line}: status {exc}") from None
        expires_text = (row.get("expires") or "").strip()
        expires = None
        if expires_text:
            try:
                expires = parse_timestamp(expires_text)
            except InvalidTimestamp:
                raise InvalidInput(
                    f"line {line}: expires is not a date/time: {expires_text!r}"
                ) from None
        try:
            origin = token_owner(row.get("owner"))
        except InvalidInput as exc:
            raise InvalidInput(f"line {line}: owner {exc}") from None
        try:
            limit = token_limit((row.get("max_concurrent") or "").strip() or "1")
        except InvalidInput as exc:
            raise InvalidInput(f"line {line}: max_concurrent {exc}") from None
        token = Token(
            uid=uid,
            status=status,
            type=(row.get("type") or "ISO14443").strip() or "ISO14443",
            expires_at=expires,
            parent_uid=(row.get("parent") or "").strip() or None,
            origin=origin,
            max_concurrent=limit,
        )
        try:
            _check_token(token)
        except InvalidInput as exc:
            raise InvalidInput(f"line {line}: {exc}") from None
        tokens.append(token)
    return TokenFile(tokens, "max_concurrent" in fields)


# The token_* parsers below refuse with a message that names no field ("must be ..."):
# the caller puts the option or column it came from in front.


def token_limit(text: str) -> int | None:
    """A token's limit of concurrent transactions from `N` or `unlimited` (None)."""
    return parse_limit(text)


def token_status(text: str) -> TokenStatus:
    """A token status in any case: `blocked` is Blocked."""
    for status in TokenStatus:
        if status.value.lower() == text.strip().lower():
            return status
    *first, last = (s.value for s in TokenStatus)
    raise InvalidInput(f"must be one of {', '.join(first)} or {last}, not {text!r}")


def _check_profile(profile: int) -> None:
    if profile not in SECURITY_PROFILES:
        raise InvalidInput(f"security profile must be 1, 2 or 3, not {profile}")


def _check_password_for(profile: int, password_hash: str | None) -> None:
    if profile == 2 and password_hash is None:
        raise InvalidInput(
            "security profile 2 is TLS plus a Basic password: the charger needs a password"
        )


async def _audit_profile(
    conn: AsyncConnection,
    cp_id: str,
    old: int | None,
    new: int,
    requested_by: str | None,
    now: datetime,
) -> None:
    """Record a charger's new security profile in the audit log, and log it."""
    change = f"{old if old is not None else 'new charger'} -> {new}"
    entry = await audit_repo.record_change(
        conn,
        cp_id=cp_id,
        command=SECURITY_PROFILE_CHANGE,
        params={"security_profile": new, "previous": old},
        message=f"security profile {change}",
        source="cli",
        requested_by=requested_by,
        now=now,
    )
    downgrade = old is not None and new < old
    # A lowered profile is what an attacker with staff access would do: a warning.
    (log.warning if downgrade else log.info)(
        "security_profile_changed",
        charge_point_id=cp_id,
        old=old,
        new=new,
        requested_by=requested_by,
        audit_id=entry,
        downgrade=downgrade,
    )
