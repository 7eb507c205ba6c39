"""Statistics and uptime end to end: a simulated charger sends, over real OCPP, a day's
history with timestamps three days ago (two sessions, one across midnight, a fault), a
maintenance window is entered with the CLI, and `csms stats` (table, JSON, CSV, plots)
and the API's /api/stats endpoints are asked about it. The figures are the hand-computed
ones, and the CLI, CSV, JSON and API agree."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from csms.app import CsmsApp
from csms.core.authorization import Token, TokenStatus
from tests.e2e.cli import Ran, csms, ok, one_line_error
from tests.e2e.conftest import Running, make_config
from tests.e2e.sim import charger, until

AUTH = {"Authorization": "Bearer test-token"}
CP = "STATS-1"
TARIFF = {
    "id": "T-STATS",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]}
    ],
}


@dataclass
class World:
    server: Running
    http: aiohttp.ClientSession
    day: datetime  # 00:00 UTC three days ago: the day the history was made

    def iso(self, at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    def at(self, hours: float) -> datetime:
        return self.day + timedelta(hours=hours)

    async def api(self, path: str, expect: int = 200, /, **params: str) -> Any:
        async with self.http.get(
            self.server.api_url + path, params=params, headers=AUTH
        ) as response:
            body = await response.json()
            assert response.status == expect, (path, params, body)
            return body

    async def cli(self, *args: str) -> Ran:
        return await csms(self.server, "stats", *args)

    def range_args(self, days: int = 2) -> tuple[str, ...]:
        return ("--from", self.iso(self.day), "--to", self.iso(self.at(24 * days)))

    def range_params(self, days: int = 2) -> dict[str, str]:
        return {"from": self.iso(self.day), "to": self.iso(self.at(24 * days))}


async def _history(server: Running, day: datetime) -> None:
    """EVSE 1: plugged 10:00-12:10, session 10:05-12:05 charging until 11:35 (20 kWh);
    Faulted 14:00-16:00. EVSE 2: plugged 22:58, session 23:00 to 01:00 the next day, charging
    all through (10 kWh), free at 01:02."""

    def at(hours: float) -> str:
        return (day + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")

    async with charger(server.url, CP) as cp:
        await cp.status(1, "Preparing", timestamp=at(10))
        first = await cp.start_transaction(1, "CARD1", 1000, timestamp=at(10 + 5 / 60))
        await cp.status(1, "Charging", timestamp=at(10 + 5 / 60))
        await cp.status(1, "SuspendedEV", timestamp=at(11 + 35 / 60))
        await cp.stop_transaction(first["transactionId"], 21_000, timestamp=at(12 + 5 / 60))
        await cp.status(1, "Finishing", timestamp=at(12 + 5 / 60))
        await cp.status(1, "Available", timestamp=at(12 + 10 / 60))
        await cp.status(1, "Faulted", "GroundFailure", timestamp=at(14))
        await cp.status(1, "Available", timestamp=at(16))
        await cp.status(2, "Preparing", timestamp=at(22 + 58 / 60))
        second = await cp.start_transaction(2, "CARD2", 500, timestamp=at(23))
        await cp.status(2, "Charging", timestamp=at(23))
        await cp.stop_transaction(second["transactionId"], 10_500, timestamp=at(25))
        await cp.status(2, "Finishing", timestamp=at(25))
        await cp.status(2, "Available", timestamp=at(25 + 2 / 60))


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """One server and one history per database the module runs on."""
    db_path = tmp_path_factory.mktemp("stats") / "csms.db"
    config = make_config(db_path)
    app = CsmsApp(config)
    await app.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield await _world(Running(app, config, db_path), http)
    finally:
        await app.stop()


async def _world(server: Running, http: aiohttp.ClientSession) -> World:
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("T-STATS", default=True)
    for card in ("CARD1", "CARD2"):
        await server.staff.add_token(Token(card, TokenStatus.ACCEPTED))
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day -= timedelta(days=3)
    await _history(server, day)
    txs = await server.staff.transactions()
    assert len(txs) == 2

    async def billed() -> bool:
        return all([await server.app.billing.cdrs_of(t.id) for t in txs])

    await until(billed, "a CDR for both sessions")
    window = await csms(
        server,
        "maintenance",
        "add",
        CP,
        "--evse",
        "1",
        "--from",
        (day + timedelta(hours=15)).isoformat(),
        "--until",
        (day + timedelta(hours=17)).isoformat(),
        "--reason",
        "meter swap",
    )
    ok(window)
    return World(server, http, day)


async def test_figures_are_the_hand_computed_ones_everywhere(world: World) -> None:
    shown = await world.cli("--by", "charger", "--period", "day", *world.range_args(), "--json")
    cli = shown.json()
    api = await world.api("/api/stats", by="charger", period="day", **world.range_params())
    assert cli == api  # one service, one JSON
    assert (cli["by"], cli["period"], cli["scope"]) == ("charger", "day", {})
    first, second = cli["rows"]
    assert (first["group"], first["start"], first["end"]) == (
        CP,
        world.iso(world.day),
        world.iso(world.at(24)),
    )
    # Day one: both sessions started (20 + 10 kWh, 0.30/kWh + 21 % VAT), EVSE 1 plugged
    # 10:00-12:10 (charging 10:05-11:35), EVSE 2 plugged from 22:58 and charging from 23:00.
    assert first["evses"] == 2 and first["sessions"] == 2
    assert first["energy_kwh"] == "30.000"
    assert first["revenue"] == [{"currency": "EUR", "excl_vat": "9.00", "incl_vat": "10.89"}]
    assert first["occupied_s"] == 7800 + 3720
    assert first["charging_s"] == 5400 + 3600
    assert first["idle_s"] == 7800 + 3720 - 9000
    assert first["utilisation_pct"] == 6.67  # 11,520 s of 2 x 86,400 s
    assert first["unique_tokens"] == 2
    assert first["avg_session_s"] == 7200 and first["avg_energy_kwh"] == "15.000"
    assert first["by_origin"] == {"local": 2, "roaming": 0, "remote": 0}
    # Day two: no session started, but EVSE 2 charged until 01:00 and was free at 01:02.
    assert second["sessions"] == 0 and second["energy_kwh"] == "0.000"
    assert second["revenue"] == []
    assert (second["occupied_s"], second["charging_s"]) == (3720, 3600)
    assert second["utilisation_pct"] == 2.15

    # The CSV says the same, with revenue in its currency's columns.
    rows = list(csv.DictReader(io.StringIO(ok(await world.cli(
        "--by", "charger", "--period", "day", *world.range_args(), "--csv"
    )))))  # fmt: skip
    assert [r["group"] for r in rows] == [CP, CP]
    assert rows[0]["sessions"] == "2" and rows[0]["energy_kwh"] == "30.000"
    assert (rows[0]["revenue_excl_vat_EUR"], rows[0]["revenue_incl_vat_EUR"]) == ("9.00", "10.89")
    assert float(rows[0]["occupied_s"]) == first["occupied_s"]
    assert rows[1]["revenue_excl_vat_EUR"] == "0" and rows[1]["sessions_local"] == "0"

    # The table for people.
    table = ok(await world.cli("--by", "charger", *world.range_args()))
    line = next(x for x in table.splitlines() if x.startswith(CP))
    assert " 2 " in line and "30" in line and "9.00/10.89 EUR" in line and "6.67" in line

    # Per EVSE and per hour: the session across midnight is split by the hour.
    per_evse = await world.api("/api/stats", by="evse", period="hour", **world.range_params())
    cells = {(r["group"], r["start"]): r for r in per_evse["rows"]}
    assert len(per_evse["rows"]) == 2 * 48
    assert cells[(f"{CP}/2", world.iso(world.at(22)))]["occupied_s"] == 120
    assert cells[(f"{CP}/2", world.iso(world.at(23)))]["charging_s"] == 3600
    assert cells[(f"{CP}/2", world.iso(world.at(24)))]["charging_s"] == 3600
    assert cells[(f"{CP}/2", world.iso(world.at(25)))]["occupied_s"] == 120
    assert cells[(f"{CP}/1", world.iso(world.at(11)))]["charging_s"] == 35 * 60
    assert sum(r["sessions"] for r in per_evse["rows"]) == 2


async def test_uptime_counts_the_fault_less_the_maintenance_window(world: World) -> None:
    cli = (await world.cli("uptime", "--period", "day", *world.range_args(1), "--json")).json()
    api = await world.api("/api/stats/uptime", period="day", **world.range_params(1))
    assert cli == api and cli["by"] == "evse" and cli["grace_s"] == 900
    rows = {r["group"]: r for r in cli["rows"]}
    # Faulted 14:00-16:00, of which 15:00-16:00 inside the window: (86400 - 3600) / 86400.
    assert rows[f"{CP}/1"]["outage_s"] == 7200 and rows[f"{CP}/1"]["excluded_s"] == 3600
    assert rows[f"{CP}/1"]["uptime_pct"] == 95.83
    assert rows[f"{CP}/2"]["outage_s"] == 0 and rows[f"{CP}/2"]["uptime_pct"] == 100.0
    by_charger = await world.api(
        "/api/stats/uptime", by="charger", period="day", **world.range_params(1)
    )
    (row,) = by_charger["rows"]
    assert (row["evses"], row["period_s"], row["uptime_pct"]) == (2, 172800, 97.92)
    text = ok(await world.cli("uptime", *world.range_args(1), "--csv"))
    assert f"{CP}/1,{world.iso(world.day)}" in text and ",95.83" in text


async def test_heat_map_and_plots(world: World, tmp_path: Path) -> None:
    heat = await world.api("/api/stats/heatmap", **world.range_params())
    assert len(heat["rows"]) == 7 * 24
    weekday = world.day.weekday()
    cell = {(c["weekday"], c["hour"]): c["utilisation_pct"] for c in heat["rows"]}
    assert cell[(weekday, 10)] == 50.0  # EVSE 1 plugged the whole hour, EVSE 2 not
    assert cell[(weekday, 3)] == 0.0
    png, svg = tmp_path / "stats.png", tmp_path / "uptime.svg"
    drawn = await world.cli(*world.range_args(), "--period", "hour", "--plot", str(png))
    assert drawn.code == 0 and f"drawn: {png}" in drawn.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    ok(await world.cli("uptime", *world.range_args(), "--plot", str(svg)))
    assert "<svg" in svg.read_text()[:2000] and f"{CP}/1" in svg.read_text()


async def test_bad_input_is_one_line(world: World) -> None:
    one_line_error(await world.cli("--from", "2026-12-02", "--to", "2026-12-01"), "must end")
    one_line_error(await world.cli("--charger", "NOPE"), "no charger NOPE")
    one_line_error(await world.cli("--from", "yesterday"), "--from")
    one_line_error(await world.cli("--json", "--csv"), "exclude each other")
    one_line_error(await world.cli("--plot", "out.pdf"), "PNG or SVG")
    one_line_error(await world.cli("--from", "2020-01-01", "--to", "2026-01-01"), "400 days")
    one_line_error(await world.cli("--by", "charger", "uptime"), "after the subcommand")
    bad = await world.api("/api/stats", 400, period="fortnight")
    assert bad["parameter"] == "period"
    assert (
        "no location NOWHERE" in (await world.api("/api/stats", 404, location="NOWHERE"))["error"]
    )
    unknown = await world.api("/api/stats", 400, grouping="charger")
    assert unknown["parameter"] == "grouping"
    async with world.http.get(world.server.api_url + "/api/stats") as response:
        assert response.status == 401


async def test_scope_narrows_to_the_chargers_named(world: World) -> None:
    everyone = await world.api("/api/stats", period="month", **world.range_params())
    mine = await world.api("/api/stats", period="month", charger=CP, **world.range_params())
    assert mine["scope"] == {"charger": [CP]}
    assert [r["sessions"] for r in mine["rows"]] == [r["sessions"] for r in everyone["rows"]]
    kwh = sum(Decimal(r["energy_kwh"]) for r in mine["rows"])
    assert kwh == Decimal("30.000")
