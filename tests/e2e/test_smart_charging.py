"""Smart charging on a real server with simulated chargers of both OCPP versions: the load
manager shares a site's current among its sessions and the chargers' meter readings show
it; circuits limit their chargers together; a charger that refuses profiles is left
unmanaged with its rating reserved; a cap lowers the site for its window; a session with
a departure under a price schedule charges only in the cheap slots.

Sites are set up with the real `csms sites` command line; shares are read from what the
chargers accepted (their installed profiles) and what they measured (meter values)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, select

from csms.core.authorization import Token, TokenStatus
from csms.core.errors import UnknownChargePoint
from csms.storage import load_management as lm_repo
from csms.storage import sites as site_repo
from csms.storage import transactions as tx_repo
from csms.storage.models import SiteAllocationRow, SiteLinkRow
from simulators.options import ChargerOptions
from simulators.profiles import Purpose
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from simulators.versions import create_charger
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until
from tests.test_openadr import Vtn

_share = cast(Table, SiteAllocationRow.__table__)
_link = cast(Table, SiteLinkRow.__table__)

CARD = "SMART-CARD"
# The load manager looks twice a second; readings count 2 s after a new share.
SMART = {"poll_interval": 0.5, "settle": 2.0, "command_timeout": 5.0, "store_interval": 0.5}


@dataclass
class Fleet:
    server: Running
    chargers: dict[str, V16Charger | V201Charger]
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def cp(self, cp_id: str) -> V16Charger | V201Charger:
        return self.chargers[cp_id]


@contextlib.asynccontextmanager
async def fleet(
    server: Running, specs: Sequence[tuple[str, str]], **options: Any
) -> AsyncIterator[Fleet]:
    """Simulated chargers (id, OCPP version) connected and booted, with their connector
    known to the server; stopped and closed at the end."""
    found = Fleet(server, {})
    for cp_id, version in specs:
        cp = create_charger(
            ChargerOptions(
                url=server.url,
                charger_id=cp_id,
                version=version,
                connectors=1,
                sessions=0,
                meter_interval=1.0,
                seed=len(found.chargers) + 1,
                response_timeout=10,
                **options,
            )
        )
        assert isinstance(cp, V16Charger | V201Charger)
        cp.step_seconds = 0.02
        found.chargers[cp_id] = cp
        found.tasks.append(asyncio.create_task(cp.run()))
    try:
        for cp_id in found.chargers:

            async def announced(cp_id: str = cp_id) -> bool:
                try:
                    detail = await server.staff.charger(cp_id)
                except UnknownChargePoint:
                    return False
                return 1 in {c.evse_id for c in detail.connectors}

            await until(announced, f"{cp_id}'s connector")
        yield found
    finally:
        for task in found.tasks:
            task.cancel()
        await asyncio.wait(found.tasks)
        for cp in found.chargers.values():
            await cp.close()


async def _smart_server(start_server: StartServer) -> Running:
    server = await start_server(
        ocpp={"registration": "accept", "call_timeout": 5.0}, smart_charging=SMART
    )
    await server.staff.add_token(Token(CARD, TokenStatus.ACCEPTED, max_concurrent=None))
    return server


def installed(cp: V16Charger | V201Charger, purpose: Purpose) -> list[float]:
    """The limits of the profiles of a purpose the simulated charger holds."""
    return [p.periods[0].limit for p in cp.profiles.all() if p.purpose is purpose]


async def shares(server: Running, site: str) -> dict[str, tuple[float, float | None, str]]:
    """Per charger: the stored share, the limit it accepted, and why."""
    async with server.app.db.read() as conn:
        rows = await conn.execute(select(_share).where(_share.c.site_id == site))
        return {r.charge_point_id: (r.granted_a, r.sent_a, r.reason) for r in rows}


async def wait_shares(
    server: Running,
    site: str,
    expected: dict[str, float],
    seconds: float = 10.0,
    unmanaged: Sequence[str] = (),
) -> float:
    """Seconds until every charger named accepted its expected share (and no other
    session of the site runs); an unmanaged charger is told nothing, its share reserved."""
    started = time.monotonic()

    async def reached() -> bool:
        now = await shares(server, site)
        if set(now) != set(expected):
            return False
        return all(
            now[cp][0] == pytest.approx(a, abs=0.05)
            and (cp in unmanaged or now[cp][1] == pytest.approx(a, abs=0.05))
            for cp, a in expected.items()
        )

    await until(reached, f"shares {expected}", seconds)
    return time.monotonic() - started


class Watch:
    """Sums the newest measured current per phase of a site's sessions twice a second, and
    keeps the longest stretch above the limit + 1 A."""

    def __init__(self, server: Running, cp_ids: Sequence[str], limit_a: float) -> None:
        self.server = server
        self.cp_ids = list(cp_ids)
        self.limit_a = limit_a
        self.longest_over = 0.0
        self.peak = 0.0
        self._over_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            async with self.server.app.db.read() as conn:
                running = await lm_repo.running_sessions(conn, self.cp_ids)
                readings = await lm_repo.last_readings(conn, [r.transaction_id for r in running])
            totals = [0.0, 0.0, 0.0]
            for reading in readings.values():
                for i, amps in enumerate(reading.currents):
                    totals[i] += amps or 0.0
            top = max(totals)
            self.peak = max(self.peak, top)
            now = time.monotonic()
            if top > self.limit_a + 1.0:
                if self._over_since is None:
                    self._over_since = now
                self.longest_over = max(self.longest_over, now - self._over_since)
            else:
                self._over_since = None
            await asyncio.sleep(0.5)

    def __enter__(self) -> Watch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _running_tx(server: Running, cp_id: str) -> int:
    async def found() -> int | None:
        async with server.app.db.read() as conn:
            running = await lm_repo.running_sessions(conn, [cp_id])
        return running[0].transaction_id if running else None

    return int(await until(found, f"a session on {cp_id}"))


async def test_four_chargers_share_a_32_a_site_as_sessions_come_and_go(
    start_server: StartServer,
) -> None:
    server = await _smart_server(start_server)
    ids = ["SC-A", "SC-B", "SC-C", "SC-D"]
    versions = ["1.6", "2.0.1", "1.6", "2.0.1"]
    async with fleet(server, list(zip(ids, versions, strict=True)), ev_max_current_a=32) as f:
        ok(await csms(server, "sites", "add", "HOME", "--max-current", "32", "--phases", "3"))
        for cp_id in ids:
            await link(server, "HOME", cp_id, 32)

        # Every charger gets its safe share as a TxDefaultProfile: 32 A / 4.
        async def defaults() -> bool:
            found = [installed(f.cp(cp), Purpose.TX_DEFAULT) for cp in ids]
            return found == [[8.0]] * len(ids)

        await until(defaults, "the TxDefaultProfiles")

        with Watch(server, ids, 32.0) as watch:
            expected: dict[str, float] = {}
            for n, (cp_id, share) in enumerate(zip(ids, [32.0, 16.0, 10.6, 8.0], strict=True)):
                assert f.cp(cp_id).start_session(1, CARD) is not None
                await _running_tx(server, cp_id)
                expected = {cp: share for cp in ids[: n + 1]}
                await wait_shares(server, "HOME", expected)
                # The charger's own profiles say so too: a TxProfile, or none when the
                # share is its TxDefaultProfile's (the fourth: 8 A).
                held = installed(f.cp(cp_id), Purpose.TX) or installed(
                    f.cp(cp_id), Purpose.TX_DEFAULT
                )
                assert held == [pytest.approx(share)]
            # All four draw about 8 A each now (their readings follow within seconds).
            await asyncio.sleep(4)
            # One leaves: the others get a third each within 5 s.
            control = f.cp("SC-B").sessions.on_connector(1)
            assert control is not None
            control.stop("Local")
            took = await wait_shares(server, "HOME", {cp: 10.6 for cp in ("SC-A", "SC-C", "SC-D")})
            assert took < 5.0
            await asyncio.sleep(3)
        assert watch.longest_over <= 5.0, (watch.longest_over, watch.peak)
        assert watch.peak > 20.0  # the sessions did draw what they were given

        text = ok(await csms(server, "sites", "show", "HOME", "--json"))
        assert "SC-A" in text
        metrics = await _metrics(server)
        assert metrics['csms_load_site_limit_amperes{site="HOME"}'] == 32.0
        assert metrics['csms_load_site_allocated_amperes{site="HOME",phase="L1"}'] == pytest.approx(
            31.8, abs=0.05
        )


async def test_a_site_with_room_to_spare_takes_starts_and_stops_without_reallocating(
    start_server: StartServer,
) -> None:
    """70 A for three 32 A chargers: the first two sessions get their 32 A each without a
    new allocation (the counter of plans taken over grows); the third does not fit, so
    all three are shared afresh (23.3 A); when one leaves, the two get 32 A again, and a
    new start is shared afresh again."""
    server = await _smart_server(start_server)
    ids = ["RM-A", "RM-B", "RM-C"]
    async with fleet(server, [(i, "1.6") for i in ids], ev_max_current_a=32) as f:
        ok(await csms(server, "sites", "add", "ROOMY", "--max-current", "70", "--phases", "3"))
        for cp_id in ids:
            await link(server, "ROOMY", cp_id, 32)
        await wait_shares(server, "ROOMY", {})
        before = (await _metrics(server))["csms_load_steady_total"]
        for n, cp_id in enumerate(ids[:2]):
            assert f.cp(cp_id).start_session(1, CARD) is not None
            await _running_tx(server, cp_id)
            await wait_shares(server, "ROOMY", {cp: 32.0 for cp in ids[: n + 1]})
            assert installed(f.cp(cp_id), Purpose.TX) == [pytest.approx(32.0)]
        taken_over = (await _metrics(server))["csms_load_steady_total"] - before
        # Alone on its database; with several nodes (PostgreSQL) every look is made afresh.
        assert taken_over >= 1 if server.app.db.is_sqlite else taken_over == 0
        assert f.cp("RM-C").start_session(1, CARD) is not None
        took = await wait_shares(server, "ROOMY", {cp: 23.3 for cp in ids})
        assert took < 5.0
        for cp_id in ids:
            # A TxProfile, or none where the share is the charger's safe share (the third).
            held = installed(f.cp(cp_id), Purpose.TX) or installed(f.cp(cp_id), Purpose.TX_DEFAULT)
            assert held == [pytest.approx(23.3)]
        control = f.cp("RM-A").sessions.on_connector(1)
        assert control is not None
        control.stop("Local")
        took = await wait_shares(server, "ROOMY", {"RM-B": 32.0, "RM-C": 32.0})
        assert took < 5.0
        for cp_id in ("RM-B", "RM-C"):
            assert installed(f.cp(cp_id), Purpose.TX) == [pytest.approx(32.0)]
        # Full again: the next start is shared afresh.
        assert f.cp("RM-A").start_session(1, CARD) is not None
        await wait_shares(server, "ROOMY", {cp: 23.3 for cp in ids})


async def test_a_circuit_limits_its_chargers_together(start_server: StartServer) -> None:
    server = await _smart_server(start_server)
    ids = ["CI-A", "CI-B", "CI-C"]
    async with fleet(server, [(i, "1.6") for i in ids], ev_max_current_a=32) as f:
        ok(await csms(server, "sites", "add", "YARD", "--max-current", "63", "--phases", "3"))
        ok(await csms(server, "sites", "add-circuit", "YARD", "WALL", "--max-current", "16"))
        for cp_id in ids[:2]:
            await link(server, "YARD/WALL", cp_id, 32)
        await link(server, "YARD", "CI-C", 32)
        for cp_id in ids:
            assert f.cp(cp_id).start_session(1, CARD) is not None
        # 16 A for the two on the circuit together; the third is limited by its rating.
        await wait_shares(server, "YARD", {"CI-A": 8.0, "CI-B": 8.0, "CI-C": 32.0}, 15.0)
        await asyncio.sleep(4)
        async with server.app.db.read() as conn:
            running = await lm_repo.running_sessions(conn, ids[:2])
            readings = await lm_repo.last_readings(conn, [r.transaction_id for r in running])
        wall = sum(max(a or 0.0 for a in r.currents) for r in readings.values())
        assert 10.0 < wall <= 16.5, readings


async def test_refused_profiles_lead_to_a_station_maximum_or_to_an_unmanaged_charger(
    start_server: StartServer,
) -> None:
    """One charger takes every profile, one only a station maximum (it refuses TxProfiles
    and TxDefaultProfiles), one none: the second is told its share as a station maximum,
    the third is left unmanaged with its 16 A reserved from the 40 A site."""
    server = await _smart_server(start_server)
    async with (
        fleet(server, [("UM-GOOD", "2.0.1")], ev_max_current_a=32) as good,
        fleet(server, [("UM-MAX", "1.6")], reject_profiles="tx", ev_max_current_a=32) as most,
        fleet(server, [("UM-BAD", "1.6")], reject_profiles="all", ev_max_current_a=32) as bad,
    ):
        ok(await csms(server, "sites", "add", "SHED", "--max-current", "40", "--phases", "3"))
        await link(server, "SHED", "UM-GOOD", 32)
        await link(server, "SHED", "UM-MAX", 32)
        await link(server, "SHED", "UM-BAD", 16)

        async def unmanaged() -> Any:
            async with server.app.db.read() as conn:
                rows = (await conn.execute(select(_link).where(_link.c.site_id == "SHED"))).all()
            return {r.charge_point_id: r.unmanaged_reason for r in rows if not r.managed}

        left = await until(unmanaged, "UM-BAD to be left unmanaged", 30.0)
        assert list(left) == ["UM-BAD"] and "refused" in left["UM-BAD"]
        # Its 16 A rating is reserved: the two others share the remaining 24 A.
        for fleet_, cp_id in ((good, "UM-GOOD"), (most, "UM-MAX"), (bad, "UM-BAD")):
            assert fleet_.cp(cp_id).start_session(1, CARD) is not None
        expected = {"UM-GOOD": 12.0, "UM-MAX": 12.0, "UM-BAD": 16.0}
        await wait_shares(server, "SHED", expected, 20.0, unmanaged=["UM-BAD"])
        assert (await shares(server, "SHED"))["UM-BAD"] == (16.0, None, "unmanaged")
        # The station maximum carries the share; no transaction profile was taken.
        station = most.cp("UM-MAX")
        assert installed(station, Purpose.STATION_MAX) == [12.0]
        assert installed(station, Purpose.TX) == installed(station, Purpose.TX_DEFAULT) == []
        text = ok(await csms(server, "sites", "show", "SHED"))
        assert "unmanaged" in text
        metrics = await _metrics(server)
        assert metrics["csms_load_unmanaged_chargers"] == 1.0


async def link(server: Running, node: str, cp_id: str, max_a: int) -> None:
    ok(await csms(server, "sites", "link", node, "--charger", cp_id, "--max-current", str(max_a)))


async def _metrics(server: Running) -> dict[str, float]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.api_url}/metrics",
            headers={"Authorization": f"Bearer {server.config.api.token}"},
        ) as response,
    ):
        text = await response.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
async def test_a_demand_response_event_caps_the_site_for_its_window(
    start_server: StartServer,
) -> None:
    """A local OpenADR VTN's 11 kW setpoint event becomes a cap through the server's VEN:
    the shares are within the cap soon after its start and back soon after its end."""
    vtn = Vtn()
    await vtn.start()
    try:
        server = await start_server(
            ocpp={"registration": "accept", "call_timeout": 5.0},
            smart_charging=SMART,
            openadr={
                "enabled": True,
                "vtn_url": vtn.url,
                "ven_name": "csms-e2e",
                "poll_interval": 1.0,
                "site": "FARM",
            },
        )
        await server.staff.add_token(Token(CARD, TokenStatus.ACCEPTED, max_concurrent=None))
        ids = ["DR-A", "DR-B"]
        async with fleet(server, [(ids[0], "1.6"), (ids[1], "2.0.1")], ev_max_current_a=32) as f:
            ok(await csms(server, "sites", "add", "FARM", "--max-current", "63", "--phases", "3"))
            for cp_id in ids:
                await link(server, "FARM", cp_id, 32)
                assert f.cp(cp_id).start_session(1, CARD) is not None
            await wait_shares(server, "FARM", {cp: 31.5 for cp in ids}, 15.0)
            # (The event starts at T+60 s and lasts 15 minutes: shortened here.)
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
            end = start + timedelta(seconds=12)
            event_id = vtn.add(
                "LOAD_CONTROL",
                "x-loadControlSetpoint",
                [{"dtstart": start, "duration": end - start, "signal_payload": 11.0}],
            )
            await until(_past(start), "the event's start", 20.0)
            # 11 kW over 3 phases at 230 V: 15.9 A per phase, 7.9 A each (rounded down).
            took = await wait_shares(server, "FARM", {cp: 7.9 for cp in ids}, 10.0)
            assert took < 5.0
            assert {s[2] for s in (await shares(server, "FARM")).values()} == {"cap"}
            assert vtn.opts[event_id] == "optIn"
            await asyncio.sleep(3)
            async with server.app.db.read() as conn:
                running = await lm_repo.running_sessions(conn, ids)
                readings = await lm_repo.last_readings(conn, [r.transaction_id for r in running])
            drawn = sum(r.power_w or 0.0 for r in readings.values())
            assert 5_000 < drawn <= 11_000, readings
            await until(_past(end), "the event's end", 30.0)
            took = await wait_shares(server, "FARM", {cp: 31.5 for cp in ids}, 10.0)
            assert took < 5.0
    finally:
        await vtn.stop()


def _past(moment: datetime) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return datetime.now(UTC) >= moment

    return check


async def test_a_departure_session_charges_in_the_cheap_slots_and_gets_its_energy(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Day-ahead prices in 6 s slots: expensive, cheap, expensive, cheap. A session that
    needs 50 Wh before the end of the fourth charges only in the cheap ones and has its
    energy by then. The 2.0.1 EV says its needs (NotifyEVChargingNeeds); staff then set
    the departure to the end of the fourth slot."""
    server = await _smart_server(start_server)
    async with fleet(
        server, [("TOU-1", "2.0.1")], ev_max_current_a=32, departure_s=3600, energy_need_wh=5000
    ) as f:
        ok(await csms(server, "sites", "add", "HOUSE", "--max-current", "32", "--phases", "3"))
        await link(server, "HOUSE", "TOU-1", 32)
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
        slots = [(0.40, 0), (0.10, 6), (0.45, 12), (0.12, 18)]
        prices = tmp_path / "prices.csv"
        prices.write_text(
            "start,end,price\n"
            + "".join(
                f"{_iso(t0 + timedelta(seconds=at))},{_iso(t0 + timedelta(seconds=at + 6))},{p}\n"
                for p, at in slots
            )
        )
        ok(await csms(server, "sites", "prices", "HOUSE", "--import", str(prices)))
        assert f.cp("TOU-1").start_session(1, CARD) is not None
        tx_id = await _running_tx(server, "TOU-1")

        async def from_ev() -> Any:
            async with server.app.db.read() as conn:
                return (await site_repo.needs(conn, [tx_id])).get(tx_id)

        need = await until(from_ev, "the EV's charging needs")
        assert (need.energy_wh, need.source) == (5000.0, "ev")
        departure = t0 + timedelta(seconds=24)
        ok(
            await csms(
                server,
                "sites",
                "need",
                str(tx_id),
                "--departure",
                _iso(departure),
                "--energy",
                "0.05",
            )
        )
        await until(_past(departure + timedelta(seconds=1.5)), "the departure", 40.0)
        async with server.app.db.read() as conn:
            samples = await tx_repo.samples_of(conn, tx_id)
    currents: dict[datetime, float] = {}
    energy: list[tuple[datetime, float]] = []
    for sample in samples:
        if sample.measurand == "Current.Import" and sample.value is not None:
            currents[sample.timestamp] = max(currents.get(sample.timestamp, 0.0), sample.value)
        if sample.measurand == "Energy.Active.Import.Register" and sample.value is not None:
            energy.append((sample.timestamp, sample.value))

    def during(first: float, last: float) -> list[float]:
        # Readings inside a slot, 2.5 s after it began (the share's way to the EV).
        lo, hi = t0 + timedelta(seconds=first + 2.5), t0 + timedelta(seconds=last)
        return [a for at, a in sorted(currents.items()) if lo <= at < hi]

    assert during(0, 6) and max(during(0, 6)) < 1.0, currents
    assert during(6, 12) and min(during(6, 12)) > 20.0, currents
    assert during(12, 18) and max(during(12, 18)) < 1.0, currents
    by_departure = [wh for at, wh in energy if at <= departure + timedelta(seconds=1)]
    delivered = by_departure[-1] - energy[0][1]
    assert 50.0 <= delivered <= 90.0, energy
