"""The public keys of chargers' meters (Eichrecht): reported by chargers (OCPP 2.0.1 with
their signed values, 1.6 by DataTransfer or a configuration key) or set by staff.

Every change is logged (`meter_key_changed`) and written to the audit log in the same write.
A key staff set is never replaced by a charger's report: a charger reporting another key
is logged (`meter_key_mismatch`) and its values are verified against the staff's key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.config import EichrechtConfig
from csms.core.charger import METER_KEY_CHANGE
from csms.core.clock import Clock
from csms.core.errors import InvalidInput, UnknownChargePoint
from csms.core.metering import SignedMeterValue
from csms.core.ocmf import OcmfError, decode_signed, parse
from csms.services.charger_input import MAX_ENTRIES
from csms.services.meter_signatures import canonical_public_key
from csms.storage import charge_points as cp_repo
from csms.storage import commands as audit_repo
from csms.storage import signed_values as signed_repo
from csms.storage.database import Database, WriteTx
from csms.storage.signed_values import MeterKey

log = structlog.get_logger("csms.eichrecht")

# How long a key a charger reported is taken as known without looking at the stored one
# again (staff may have changed it from another process meanwhile), in seconds.
RECHECK_S = 600.0


class KeySource(StrEnum):
    OCPP = "ocpp"  # OCPP 2.0.1 publicKey with a signed value
    CONFIG_KEY = "config_key"  # OCPP 1.6 configuration key (GetConfiguration)
    DATA_TRANSFER = "data_transfer"  # OCPP 1.6 DataTransfer setMeterConfiguration
    STAFF = "staff"  # csms chargers set --meter-public-key


@dataclass(frozen=True, slots=True)
class ReportedKey:
    """A key a charger reported for one of its EVSEs (0: the whole charger)."""

    evse_id: int
    text: str
    meter_serial: str | None = None
    algorithm: str | None = None


def fingerprint(public_key: str | None) -> str | None:
    """A short name of a key for logs and the audit log: the first 16 hex digits of the
    SHA-256 of its DER bytes."""
    if public_key is None:
        return None
    try:
        der = bytes.fromhex(public_key)
    except ValueError:
        der = public_key.encode()
    return hashlib.sha256(der).hexdigest()[:16]


def meter_serial_of(value: SignedMeterValue) -> str | None:
    """The meter serial (OCMF MS) of a signed value, if it reads as OCMF."""
    try:
        serial = parse(decode_signed(value.data)).meter_serial
    except OcmfError:
        return None
    return None if serial is None else str(serial)


class MeterKeys:
    """The meters' public keys. One per process (chargers' reports) or per CLI call."""

    def __init__(self, db: Database, clock: Clock, settings: EichrechtConfig | None = None) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings or EichrechtConfig()
        # (charger, EVSE) -> (key text as the charger last reported it, when it was
        # compared with the stored key): a station repeats its key with every signed value.
        self._known: dict[tuple[str, int], tuple[str, float]] = {}

    # --- what chargers report ------------------------------------------------------

    def sources_of(self, vendor: str | None) -> frozenset[str]:
        return self.settings.key_sources_of(vendor)

    def config_key_of(self, vendor: str | None) -> str:
        return self.settings.config_key_of(vendor)

    async def vendor_of(self, cp_id: str) -> str | None:
        async with self._db.read() as conn:
            charger = await cp_repo.get(conn, cp_id)
        return None if charger is None else charger.vendor

    async def with_values(
        self, cp_id: str, evse_id: int, values: Sequence[SignedMeterValue]
    ) -> None:
        """The keys OCPP 2.0.1 signed values carry (or 1.6 values wrapped the same way)."""
        reported = [
            ReportedKey(evse_id, v.public_key, None, v.signing_method)
            for v in values
            if v.public_key
        ]
        if reported:
            await self.reported(cp_id, reported[-1:], KeySource.OCPP)

    async def reported(self, cp_id: str, keys: Sequence[ReportedKey], source: KeySource) -> int:
        """Keys a charger reported: stored when new or changed (not over a staff key).
        Returns how many could be read (an unreadable one is logged and skipped)."""
        now_s = time.monotonic()
        fresh: list[tuple[ReportedKey, str]] = []
        readable = 0
        for key in keys:
            place = (cp_id, key.evse_id)
            known = self._known.get(place)
            if known is not None and known[0] == key.text and now_s - known[1] < RECHECK_S:
                readable += 1
                continue
            try:
                canonical = canonical_public_key(key.text, key.algorithm)
            except OcmfError as exc:
                log.warning(
                    "meter_key_unreadable",
                    charge_point_id=cp_id,
                    evse_id=key.evse_id,
                    source=source.value,
                    reason=str(exc),
                )
                continue
            readable += 1
            fresh.append((key, canonical))
        if not fresh:
            return readable
        now = self._clock()

        async def unit(w: WriteTx) -> list[MeterKey | None]:
            """Per fresh key: the staff key it differs from (kept), else None."""
            conn = await w.connection()
            kept: list[MeterKey | None] = []
            for key, canonical in fresh:
                before = await signed_repo.own_key(conn, cp_id, key.evse_id)
                staff = before is not None and before.source == KeySource.STAFF.value
                if before is not None and (staff or before.public_key == canonical):
                    kept.append(before if staff and before.public_key != canonical else None)
                    continue
                new = MeterKey(cp_id, key.evse_id, canonical, source.value, key.meter_serial, now)
                await _change(conn, cp_id, key.evse_id, before, new, None, now)
                kept.append(None)
            return kept

        kept = await self._db.write(unit)
        for (key, canonical), staff_key in zip(fresh, kept, strict=True):
            if len(self._known) >= MAX_ENTRIES:
                self._known.clear()
            self._known[(cp_id, key.evse_id)] = (key.text, now_s)
            if staff_key is not None:
                log.warning(
                    "meter_key_mismatch",
                    charge_point_id=cp_id,
                    evse_id=key.evse_id,
                    source=source.value,
                    staff_fingerprint=fingerprint(staff_key.public_key),
                    reported_fingerprint=fingerprint(canonical),
                )
        return readable

    def forget(self, cp_id: str) -> None:
        """Compare the charger's next reports with the stored keys again."""
        for place in [p for p in self._known if p[0] == cp_id]:
            del self._known[place]

    # --- staff ----------------------------------------------------------------------

    async def set_by_staff(
        self, cp_id: str, evse_id: int, text: str, requested_by: str | None
    ) -> MeterKey:
        """Staff set a meter's key (hex or base64 of the DER SubjectPublicKeyInfo, PEM, or a
        bare uncompressed P-256 point): it replaces any, and chargers' reports do not
        replace it."""
        if evse_id < 0:
            raise InvalidInput("--evse must not be negative")
        try:
            canonical = canonical_public_key(text.strip())
        except OcmfError as exc:
            raise InvalidInput(f"the meter public key cannot be read: {exc}") from None
        now = self._clock()

        async def unit(w: WriteTx) -> MeterKey:
            conn = await w.connection()
            if await cp_repo.get(conn, cp_id) is None:
                raise UnknownChargePoint(f"no charger {cp_id}")
            before = await signed_repo.own_key(conn, cp_id, evse_id)
            new = MeterKey(cp_id, evse_id, canonical, KeySource.STAFF.value, None, now)
            if before is not None and (before.public_key, before.source) == (canonical, new.source):
                return before  # the same key again: nothing changes, nothing to audit
            await _change(conn, cp_id, evse_id, before, new, requested_by, now)
            return new

        return await self._db.write(unit)

    async def remove_by_staff(self, cp_id: str, evse_id: int, requested_by: str | None) -> MeterKey:
        """Staff remove a meter's key (the charger may report one again)."""
        now = self._clock()

        async def unit(w: WriteTx) -> MeterKey:
            conn = await w.connection()
            if await cp_repo.get(conn, cp_id) is None:
                raise UnknownChargePoint(f"no charger {cp_id}")
            before = await signed_repo.own_key(conn, cp_id, evse_id)
            if before is None:
                where = "" if evse_id == 0 else f" for EVSE {evse_id}"
                raise InvalidInput(f"charger {cp_id} has no meter public key{where}")
            await _change(conn, cp_id, evse_id, before, None, requested_by, now)
            return before

        return await self._db.write(unit)

    async def keys(self, cp_id: str) -> list[MeterKey]:
        async with self._db.read() as conn:
            return await signed_repo.keys_of(conn, cp_id)


async def _change(
    conn: AsyncConnection,
    cp_id: str,
    evse_id: int,
    before: MeterKey | None,
    after: MeterKey | None,
    requested_by: str | None,
    now: datetime,
) -> None:
    """Store (or remove) a key, with its audit entry and log line, in the caller's write."""
    if after is None:
        await signed_repo.remove_key(conn, cp_id, evse_id)
    else:
        await signed_repo.save_key(conn, after)
    old = fingerprint(None if before is None else before.public_key)
    new = fingerprint(None if after is None else after.public_key)
    source = KeySource.STAFF.value if after is None else after.source
    staff = source == KeySource.STAFF.value
    entry = await audit_repo.record_change(
        conn,
        cp_id=cp_id,
        command=METER_KEY_CHANGE,
        params={
            "evse_id": evse_id,
            "source": None if after is None else after.source,
            "fingerprint": new,
            "previous": old,
            "previous_source": None if before is None else before.source,
            "meter_serial": None if after is None else after.meter_serial,
        },
        message=f"meter public key of EVSE {evse_id}: {old or 'none'} -> {new or 'none'}"
        + ("" if after is None else f" ({after.source})"),
        source="cli" if staff else "charger",
        requested_by=requested_by,
        now=now,
    )
    # A key replaced by another is what a swapped meter, or an attack, looks like.
    (log.warning if before is not None else log.info)(
        "meter_key_changed",
        charge_point_id=cp_id,
        evse_id=evse_id,
        source=source,
        old_fingerprint=old,
        new_fingerprint=new,
        requested_by=requested_by,
        audit_id=entry,
    )
