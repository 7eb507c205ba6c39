"""`csms demo --history-days N`: weeks of history in seconds, so that `csms stats` and the
dashboard have pictures to show at once.

The demo's chargers send their past over real OCPP, as a charger that was offline sends
its queued messages: each day's sessions (plug in, start, charge, the EV full and waiting,
stop, unplug) and now and then a fault, all with the timestamps of when they happened.
The system records them as it records any message (status history, transactions, meter
registers), and bills each session with the demo tariff. Busier in the evening than at
night, the same every run (a fixed seed).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from csms.core.authorization import Token, TokenStatus
from csms.core.versions import OcppVersion

if TYPE_CHECKING:
    from csms.app import CsmsApp
    from simulators.v16 import V16Charger
    from simulators.v201 import V201Charger

Echo = Callable[[str], None]

# The drivers of the past: our own customers' cards (local origin), a few per charger (a
# card is in one session at a time).
CARDS_PER_CHARGER = 3
# Relative weight of a session starting in each hour of the day (UTC).
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 7, 9, 8, 6, 5, 5, 5, 5, 6, 8, 10, 12, 11, 8, 5, 3, 2)
EVSE_POWER_W = (3700, 7400, 11000)


@dataclass(frozen=True, slots=True)
class _Session:
    evse: int
    plug: datetime
    start: datetime
    full: datetime  # the EV stops drawing (SuspendedEV)
    stop: datetime
    unplug: datetime
    energy_wh: int
    card: str


@dataclass(frozen=True, slots=True)
class _Fault:
    evse: int
    start: datetime
    end: datetime


def cards_of(charger_id: str) -> list[str]:
    return [f"{charger_id}-CARD-{n}" for n in range(1, CARDS_PER_CHARGER + 1)]


def plan(charger_id: str, days: int, today: datetime) -> tuple[list[_Session], list[_Fault]]:
    """One charger's past `days` days before `today` (00:00 UTC): its sessions, none
    overlapping on an EVSE, and its faults."""
    rng = random.Random(charger_id)
    cards = cards_of(charger_id)
    sessions: list[_Session] = []
    faults: list[_Fault] = []
    free = {1: today - timedelta(days=days)}
    for day in range(days, 0, -1):
        midnight = today - timedelta(days=day)
        for _ in range(rng.randint(2, 6)):
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            plug = midnight + timedelta(hours=hour, minutes=rng.randint(0, 59))
            evse = 1
            if plug < free[evse] + timedelta(minutes=5):
                continue
            start = plug + timedelta(minutes=rng.randint(1, 4))
            charging = timedelta(minutes=rng.randint(25, 200))
            full = start + charging
            stop = full + timedelta(minutes=rng.randint(0, 90))
            unplug = stop + timedelta(minutes=rng.randint(1, 5))
            if unplug >= today:
                continue
            power = rng.choice(EVSE_POWER_W)
            energy = int(power * charging.total_seconds() / 3600 * rng.uniform(0.85, 1.0))
            sessions.append(
                _Session(evse, plug, start, full, stop, unplug, energy, rng.choice(cards))
            )
            free[evse] = unplug
        if rng.random() < 0.06:
            begin = midnight + timedelta(hours=rng.randint(0, 20))
            if all(s.unplug < begin or s.plug > begin + timedelta(hours=4) for s in sessions):
                faults.append(_Fault(1, begin, begin + timedelta(hours=rng.randint(1, 3))))
    sessions.sort(key=lambda s: s.plug)
    return sessions, faults


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def fill_history(
    app: CsmsApp,
    url: str,
    chargers: Sequence[tuple[str, OcppVersion]],
    days: int,
    echo: Echo,
) -> int:
    """Send each charger's (id, version) past `days` days over OCPP (all chargers at
    once); then bill them. Returns how many sessions were sent."""
    from csms.services.staff import StaffService

    staff = StaffService(app.db, app.clock)
    for charger_id, _ in chargers:
        for card in cards_of(charger_id):
            await staff.add_token(Token(card, TokenStatus.ACCEPTED))
    today = app.clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    counts = await asyncio.gather(*(_one(url, c, days, today) for c in chargers))
    await app.billing.bill_pending()
    total = sum(counts)
    echo(
        f"history  {total} past session(s) over {days} day(s) on {len(chargers)} charger(s), "
        "billed: try csms stats"
    )
    return total


async def _one(url: str, charger: tuple[str, OcppVersion], days: int, today: datetime) -> int:
    from simulators.options import ChargerOptions
    from simulators.v16 import V16Charger
    from simulators.v201 import V201Charger

    charger_id, version = charger
    options = ChargerOptions(
        url=url,
        charger_id=charger_id,
        version=version.value,
        response_timeout=30,
        vendor="CsmsDemo",
    )
    sim = V201Charger(options) if version is OcppVersion.V201 else V16Charger(options)
    sessions, faults = plan(charger_id, days, today)
    await sim.connect()
    try:
        answer = await sim.boot()
        if answer.get("status") != "Accepted":
            raise RuntimeError(f"{charger_id} was not accepted: {answer}")
        if isinstance(sim, V201Charger):
            await _v201(sim, sessions, faults)
        else:
            await _v16(sim, sessions, faults)
    finally:
        await sim.close()
    return len(sessions)


def _events(
    sessions: Sequence[_Session], faults: Sequence[_Fault]
) -> list[tuple[datetime, object]]:
    """Sessions and faults in the order they happened."""
    found: list[tuple[datetime, object]] = [(s.plug, s) for s in sessions]
    found += [(f.start, f) for f in faults]
    found.sort(key=lambda item: item[0])
    return found


async def _v16(cp: V16Charger, sessions: Sequence[_Session], faults: Sequence[_Fault]) -> None:
    meter = 1_000_000
    for _, event in _events(sessions, faults):
        if isinstance(event, _Fault):
            await cp.status(event.evse, "Faulted", "GroundFailure", timestamp=_stamp(event.start))
            await cp.status(event.evse, "Available", timestamp=_stamp(event.end))
            continue
        assert isinstance(event, _Session)
        s = event
        await cp.status(s.evse, "Preparing", timestamp=_stamp(s.plug))
        started = await cp.start_transaction(s.evse, s.card, meter, timestamp=_stamp(s.start))
        await cp.status(s.evse, "Charging", timestamp=_stamp(s.start))
        if s.stop > s.full:
            await cp.status(s.evse, "SuspendedEV", timestamp=_stamp(s.full))
        meter += s.energy_wh
        await cp.stop_transaction(started["transactionId"], meter, timestamp=_stamp(s.stop))
        await cp.status(s.evse, "Finishing", timestamp=_stamp(s.stop))
        await cp.status(s.evse, "Available", timestamp=_stamp(s.unplug))


async def _v201(cp: V201Charger, sessions: Sequence[_Session], faults: Sequence[_Fault]) -> None:
    meter = 1_000_000
    for _, event in _events(sessions, faults):
        if isinstance(event, _Fault):
            await cp.status(event.evse, 1, "Faulted", timestamp=_stamp(event.start))
            await cp.status(event.evse, 1, "Available", timestamp=_stamp(event.end))
            continue
        assert isinstance(event, _Session)
        s = event
        await cp.status(s.evse, 1, "Occupied", timestamp=_stamp(s.plug))
        tx_id, _ = await cp.start_transaction(s.evse, s.card, meter, timestamp=_stamp(s.start))
        meter += s.energy_wh
        if s.stop > s.full:
            await cp.update_transaction(
                tx_id, meter_wh=meter, charging_state="SuspendedEV", timestamp=_stamp(s.full)
            )
        await cp.end_transaction(tx_id, meter, timestamp=_stamp(s.stop))
        await cp.status(s.evse, 1, "Available", timestamp=_stamp(s.unplug))
