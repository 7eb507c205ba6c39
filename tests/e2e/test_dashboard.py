"""The staff dashboard in a real browser (Debian's Chromium, headless, driven by Selenium)
against a real server with simulated chargers: without a token it shows nothing and the
API answers 401; logged in, its figures are those of /api/overview, /api/chargers and the
CLI for the same data; a charger's status change and disconnection appear within 2 s
without a reload; the browser console stays free of errors.

Skipped when Chromium or its driver is missing, unless CSMS_TEST_BROWSER=required (CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import pytest
import yarl

from csms.core.authorization import Token, TokenStatus
from csms.core.locations import Location
from csms.services.locations import LocationService
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import charger, hours_ago, register, until

pytest.importorskip("selenium")

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "test-token"  # tests/e2e/conftest.py make_config
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVE_WITHIN_S = 2.0
NOT_YET = "\u2013"  # what the page shows before its first figures

T = TypeVar("T")


def _browser_available() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module (each test starts from a blank tab)."""
    if not _browser_available():
        if os.environ.get("CSMS_TEST_BROWSER") == "required":
            pytest.fail(
                f"{CHROMIUM} and {CHROMEDRIVER} are required "
                "(apt-get install chromium chromium-driver)"
            )
        pytest.skip("no Chromium: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1600",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_page_load_timeout(20)
    try:
        yield browser
    finally:
        browser.quit()


class Page:
    """The browser, driven from the test's event loop: every WebDriver call (blocking HTTP
    to chromedriver) runs in a thread, so the server in this loop keeps answering."""

    def __init__(self, driver: webdriver.Chrome, server: Running) -> None:
        self.driver = driver
        self.server = server

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def open(self) -> None:
        await self.run(self.driver.get, "about:blank")
        await self.run(self.driver.get_log, "browser")  # what earlier tests left
        await self.run(self.driver.get, f"{self.server.api_url}/dashboard")
        await self.run(self.driver.execute_script, "sessionStorage.clear()")
        await self.run(self.driver.refresh)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, script, *args)

    async def text(self, css: str) -> str:
        value = await self.js(
            "const el = document.querySelector(arguments[0]); return el ? el.textContent : null",
            css,
        )
        return "" if value is None else str(value)

    async def visible(self, css: str) -> bool:
        return bool(
            await self.js(
                "const el = document.querySelector(arguments[0]);"
                "return !!el && !el.closest('[hidden]') && el.getClientRects().length > 0",
                css,
            )
        )

    async def log_in(self, token: str) -> None:
        field = await self.run(self.driver.find_element, By.ID, "token")
        await self.run(field.clear)
        await self.run(field.send_keys, token)
        button = await self.run(self.driver.find_element, By.ID, "login-button")
        await self.run(button.click)

    async def errors(self) -> list[dict[str, Any]]:
        entries = await self.run(self.driver.get_log, "browser")
        return [e for e in entries if e["level"] == "SEVERE"]

    async def wait(self, check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
        async def probe() -> Any:
            return await check()

        return await until(probe, what, seconds)


async def _api(http: aiohttp.ClientSession, server: Running, path: str) -> Any:
    async with http.get(server.api_url + path, headers=AUTH) as response:
        assert response.status == 200, (path, await response.text())
        return await response.json()


async def test_without_a_token_nothing_is_shown(
    start_server: StartServer, driver: webdriver.Chrome
) -> None:
    server = await start_server()
    await server.staff.add_charger("DASH-SECRET")
    page = Page(driver, server)
    await page.open()
    assert await page.visible("#login-form")
    assert not await page.visible("#board")
    assert await page.text("#chargers tbody") == ""
    assert "DASH-SECRET" not in await page.js("return document.body.innerText")
    # The API itself answers nothing without the token.
    async with aiohttp.ClientSession() as http:
        for path in ("/api/overview", "/api/events", "/api/chargers"):
            async with http.get(server.api_url + path) as response:
                assert response.status == 401, path
        async with http.get(server.api_url + "/dashboard") as response:
            assert response.status == 200
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        async with http.get(
            server.api_url + "/dashboard/static/vendor/leaflet/LICENSE"
        ) as response:
            assert response.status == 200 and "Agafonkin" in await response.text()
        # The files' open prefix opens nothing beside them.
        outside = yarl.URL(server.api_url + "/dashboard/static/%2e%2e/page.html", encoded=True)
        async with http.get(outside) as response:
            assert response.status in (403, 404)
    assert await page.errors() == []
    # A wrong token: refused, still nothing shown, only that 401 in the console.
    await page.log_in("not-the-token")
    await page.wait(lambda: page.text("#login-error"), "the refusal shown")
    assert "not accepted" in await page.text("#login-error")
    assert not await page.visible("#board")
    assert "DASH-SECRET" not in await page.js("return document.body.innerText")
    errors = await page.errors()
    assert errors and all("401" in e["message"] for e in errors), errors


async def _network(server: Running) -> None:
    """DASH-A (two connectors: one free, one charging at 11 kW, a session done before),
    DASH-B (free), DASH-C (never connected), DASH-D (unavailable, then gone), at one
    location."""
    locations = LocationService(server.app.db, server.app.clock)
    await locations.add(
        Location(
            id="DASH-LOC",
            name="Dashboard depot",
            address="Kade 3",
            city="Utrecht",
            postal_code="3511AA",
            country="NLD",
            latitude="52.0907",
            longitude="5.1214",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link("DASH-LOC", "DASH-A", None)
    await server.staff.add_token(Token("DASH-CARD", TokenStatus.ACCEPTED))
    await server.staff.add_charger("DASH-C")
    async with charger(server.url, "DASH-D") as d:
        await d.status(1, "Unavailable")


async def test_dashboard_shows_the_network_and_follows_it_live(
    start_server: StartServer, driver: webdriver.Chrome
) -> None:
    server = await start_server()
    await _network(server)
    async with (
        aiohttp.ClientSession() as http,
        charger(server.url, "DASH-A", connectors=2) as a,
        charger(server.url, "DASH-B") as b,
    ):
        await a.status(1, "Available")
        await b.status(1, "Available")
        # A finished session (for the statistics), then one running on connector 2.
        done = await a.start_transaction(1, "DASH-CARD", 1000, timestamp=hours_ago(2))
        await a.stop_transaction(
            int(done["transactionId"]), 6000, timestamp=hours_ago(1), reason="Local"
        )
        await a.status(2, "Charging")
        running = await a.start_transaction(2, "DASH-CARD", 0)
        tx = int(running["transactionId"])
        await a.meter_values(2, tx, [register(datetime.now(UTC), 1500)])

        overview = await _api(http, server, "/api/overview")
        expected = {
            "Available": 1,  # DASH-B
            "Occupied": 1,  # DASH-A: one connector charging
            "Reserved": 0,
            "Unavailable": 1,  # DASH-D, offline with its last status
            "Faulted": 0,
            "Unknown": 1,  # DASH-C never reported
        }
        assert overview["chargers"] == {"total": 4, "connected": 2, "by_status": expected}
        assert overview["sessions_running"] == 1
        assert overview["power_w"] == 11000.0
        assert overview["evses"]["total"] == 4
        # What the CLI lists for the same data.
        listed = ok(await csms(server, "chargers", "list", "--json"))
        cli = json.loads(listed)
        assert len(cli) == overview["chargers"]["total"]
        assert sum(1 for c in cli if c["connected"]) == overview["chargers"]["connected"]
        running_cli = json.loads(ok(await csms(server, "transactions", "list", "--json")))
        assert sum(1 for t in running_cli if t["state"] == "active") == 1

        page = Page(driver, server)
        await page.open()
        await page.log_in(TOKEN)
        await page.wait(lambda: page.visible("#board"), "the board after logging in")

        async def figures() -> dict[str, Any] | None:
            shown = await page.js(
                "const t = (id) => document.getElementById(id).textContent;"
                "const statuses = {};"
                "for (const li of document.querySelectorAll('#by-status li'))"
                "  statuses[li.dataset.status] = Number(li.querySelector('b').textContent);"
                "return {total: t('chargers-total'), connected: t('chargers-connected'),"
                " sessions: t('sessions-running'),"
                " watts: document.getElementById('power-now').dataset.watts,"
                " statuses: statuses,"
                " rows: document.querySelectorAll('#chargers tbody tr').length,"
                " live: document.getElementById('live').textContent}"
            )
            assert isinstance(shown, dict)
            return (
                shown
                if shown["total"] != NOT_YET and shown["rows"] and shown["live"] == "live"
                else None
            )

        shown = await page.wait(figures, "the overview and the chargers on the page")
        assert shown == {
            "total": "4",
            "connected": "2",
            "sessions": "1",
            "watts": "11000",
            "statuses": expected,
            "rows": 4,
            "live": "live",
        }

        async def row(cp_id: str) -> dict[str, Any]:
            found = await page.js(
                "const tr = document.querySelector(`#chargers tr[data-charger='${arguments[0]}']`);"
                "if (!tr) return null;"
                "return {status: tr.querySelector('.status').dataset.status,"
                " connection: tr.querySelector('.connection').textContent,"
                " evses: [...tr.querySelectorAll('.evses .badge')].map(b => b.dataset.status)}",
                cp_id,
            )
            assert isinstance(found, dict), cp_id
            return found

        assert await row("DASH-A") == {
            "status": "Occupied",
            "connection": "online",
            "evses": ["Available", "Charging"],
        }
        assert await row("DASH-C") == {"status": "Unknown", "connection": "offline", "evses": []}
        assert (await row("DASH-D"))["connection"] == "offline"

        # The map: the one location, as a marker (no tile server configured: no tiles).
        await page.wait(
            lambda: page.js("return document.getElementById('map-note').dataset.locations"),
            "the map",
        )
        assert await page.js("return document.getElementById('map-note').dataset.locations") == "1"
        assert (
            await page.js(
                "return document.querySelectorAll('#map path.leaflet-interactive').length"
            )
            == 1
        )

        await _statistics_as_the_api_gives_them(page, http, server)

        # Live: a status change and a disconnection appear without a reload.
        await page.js("window.csmsNoReload = 42")
        started = time.monotonic()
        await b.status(1, "Faulted", "GroundFailure")

        async def faulted() -> bool:
            return bool((await row("DASH-B"))["status"] == "Faulted")

        await page.wait(faulted, "DASH-B shown Faulted", LIVE_WITHIN_S)
        took = time.monotonic() - started
        assert took < LIVE_WITHIN_S, took

        async def counted() -> bool:
            statuses = (await figures() or {}).get("statuses", {})
            return bool(statuses.get("Faulted") == 1 and statuses.get("Available") == 0)

        await page.wait(counted, "the glance counting DASH-B as Faulted", LIVE_WITHIN_S)
        assert (await _api(http, server, "/api/overview"))["chargers"]["by_status"]["Faulted"] == 1

        started = time.monotonic()
        await b.close()

        async def offline() -> bool:
            return bool((await row("DASH-B"))["connection"] == "offline")

        await page.wait(offline, "DASH-B shown offline", LIVE_WITHIN_S)
        assert time.monotonic() - started < LIVE_WITHIN_S
        assert await page.js("return window.csmsNoReload") == 42

        assert await page.errors() == []


async def _statistics_as_the_api_gives_them(
    page: Page, http: aiohttp.ClientSession, server: Running
) -> None:
    """The statistics section shows the figures of /api/stats (default filters: the network,
    per day, the last 30 days), its heat map those of /api/stats/heatmap and its uptime those
    of /api/stats/uptime; on a server without them it says so."""
    paths = (await _api(http, server, "/api/openapi.json"))["paths"]
    if "/api/stats" not in paths:
        await page.wait(lambda: page.text("#stats-error"), "the statistics note")
        assert "no statistics endpoint" in await page.text("#stats-error")
        return
    stats = await _api(http, server, "/api/stats")
    sessions = sum(row["sessions"] for row in stats["rows"])
    energy = sum(Decimal(row["energy_kwh"]) for row in stats["rows"])
    assert sessions == 2  # the finished one and the running one

    async def totals() -> tuple[str, str] | None:
        shown = (await page.text("#total-sessions"), await page.text("#total-energy"))
        return None if NOT_YET in shown else shown

    shown = await page.wait(totals, "the statistics totals")
    assert shown == (str(sessions), f"{energy:.3f}")
    # What `csms stats` prints for the same data (its default range ends at its own now).
    cli = json.loads(ok(await csms(server, "stats", "--json")))
    assert (cli["by"], cli["period"]) == (stats["by"], stats["period"]) == ("network", "day")
    assert sum(row["sessions"] for row in cli["rows"]) == sessions
    assert sum(Decimal(row["energy_kwh"]) for row in cli["rows"]) == energy
    assert await page.text("#stats-error") == ""
    # The filters are the CLI's: per charger and week, one series per charger.
    by_charger = await _api(http, server, "/api/stats?by=charger&period=week")
    await page.js(
        "document.getElementById('f-by').value = 'charger';"
        "document.getElementById('f-period').value = 'week';"
        "document.querySelector('#filters button').click()"
    )

    async def series() -> list[str] | None:
        labels = await page.js(
            "return [...document.querySelectorAll('#chart-energy .u-series .u-label')]"
            ".map(l => l.textContent).slice(1)"
        )
        return labels if labels and labels != ["network"] else None

    assert sorted(await page.wait(series, "a series per charger")) == sorted(
        {r["group"] for r in by_charger["rows"]}
    )
    assert await page.text("#total-sessions") == str(sum(r["sessions"] for r in by_charger["rows"]))
    if "/api/stats/heatmap" in paths:
        heat = await _api(http, server, "/api/stats/heatmap")
        cells = await page.js(
            "return [...document.querySelectorAll('#heatmap .cell')].map(c => "
            "[Number(c.dataset.weekday), Number(c.dataset.hour), Number(c.dataset.value)])"
        )
        expected = {(r["weekday"], r["hour"]): float(r["utilisation_pct"]) for r in heat["rows"]}
        assert len(cells) == 7 * 24
        assert {(w, h): v for w, h, v in cells if v} == {k: v for k, v in expected.items() if v}
    if "/api/stats/uptime" in paths:
        uptime = await _api(http, server, "/api/stats/uptime?by=evse&period=month")
        chart = await page.js(
            "const d = document.getElementById('chart-uptime').dataset;"
            "return [d.groups.split(','), d.values.split(',').map(Number)]"
        )
        evses = sorted({r["group"] for r in uptime["rows"]})
        assert chart[0] == evses == ["DASH-A/1", "DASH-A/2", "DASH-B/1", "DASH-D/1"]
        cli_uptime = json.loads(
            ok(await csms(server, "stats", "uptime", "--by", "evse", "--period", "month", "--json"))
        )
        assert sorted({r["group"] for r in cli_uptime["rows"]}) == evses
        # One month row per EVSE unless the 30 days cross a month: the page sums them.
        for group, shown_pct in zip(evses, chart[1], strict=True):
            rows = [r for r in uptime["rows"] if r["group"] == group]
            period = sum(r["period_s"] for r in rows)
            counted = sum(r["outage_s"] - r["excluded_s"] for r in rows)
            assert shown_pct == round((period - counted) / period * 100, 2), group
