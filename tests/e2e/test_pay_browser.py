"""Ad-hoc payment in a real browser (Debian's Chromium, headless, phone-sized, driven by
Selenium) against a real server with a simulated charger of each OCPP version and the
test payment provider: open the EVSE's page, read the ad-hoc tariff, watch its live status
(out of service and back), pay (after a cancelled checkout and a declined card), see the
session start on the charger and the cost grow, stop from the page, and read the receipt
with the CDR's amounts; the browser console stays free of errors.

Skipped when Chromium or its driver is missing, unless CSMS_TEST_BROWSER=required (CI).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from csms.core.payments import PaymentState, StopReason, to_minor
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from tests.e2e.cli import ok, remote
from tests.e2e.conftest import StartServer
from tests.e2e.pay_station import (
    DECLINED_CARD,
    PAYING_CARD,
    TARIFF_WORDS,
    VERSIONS,
    Station,
    ended,
    paying_station,
    receipt_of,
)
from tests.e2e.sim import until

pytest.importorskip("selenium")

from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.e2e.test_dashboard import driver  # noqa: F401  (the module's Chromium)

T = TypeVar("T")
CAP = Decimal(20)


@pytest.fixture(params=VERSIONS)
async def station(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> AsyncIterator[Station]:
    async with paying_station(start_server, tmp_path, request.param) as station:
        yield station


class Browser:
    """The browser, driven from the test's event loop: every WebDriver call (blocking HTTP
    to chromedriver) runs in a thread, so the server in this loop keeps answering."""

    def __init__(self, chrome: webdriver.Chrome) -> None:
        self.driver = chrome

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def open(self, url: str) -> None:
        await self.run(self.driver.get, "about:blank")
        await self.run(self.driver.get_log, "browser")  # what earlier tests left
        await self.run(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, script, *args)

    async def text(self, css: str) -> str:
        value = await self.js(
            "const el = document.querySelector(arguments[0]); return el ? el.textContent : null",
            css,
        )
        return "" if value is None else str(value).strip()

    async def texts(self, css: str) -> list[str]:
        found = await self.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())",
            css,
        )
        return [str(t) for t in found]

    async def attribute(self, css: str, name: str) -> str | None:
        value = await self.js(
            "const el = document.querySelector(arguments[0]);"
            "return el ? el.getAttribute(arguments[1]) : null",
            css,
            name,
        )
        return None if value is None else str(value)

    async def visible(self, css: str) -> bool:
        return bool(
            await self.js(
                "const el = document.querySelector(arguments[0]);"
                "return !!el && !el.closest('[hidden]') && el.getClientRects().length > 0",
                css,
            )
        )

    async def url(self) -> str:
        return str(await self.run(lambda: self.driver.current_url))

    async def type_into(self, element_id: str, text: str) -> None:
        field = await self.run(self.driver.find_element, By.ID, element_id)
        await self.run(field.clear)
        await self.run(field.send_keys, text)

    async def click(self, element_id: str) -> None:
        button = await self.run(self.driver.find_element, By.ID, element_id)
        await self.run(button.click)

    async def errors(self) -> list[dict[str, Any]]:
        entries = await self.run(self.driver.get_log, "browser")
        return [e for e in entries if e["level"] == "SEVERE"]

    async def fits_the_width(self) -> bool:
        """Nothing sticks out sideways (no horizontal scrolling on a phone)."""
        return bool(
            await self.js("return document.documentElement.scrollWidth <= window.innerWidth")
        )


def _amount(text: str) -> Decimal:
    """ "1.23 EUR" -> Decimal("1.23")."""
    number, currency = text.split()
    assert currency == "EUR", text
    return Decimal(number)


@pytest.mark.slow
async def test_pay_charge_stop_and_read_the_receipt(
    station: Station,
    driver: webdriver.Chrome,  # noqa: F811
) -> None:
    server, cp_id, uid = station.server, station.cp_id, station.evse_uid
    page = Browser(driver)
    await page.run(driver.set_window_size, 390, 844)  # a phone
    await page.open(f"{server.ocpi_url}/pay/{uid}")

    # The EVSE's page: where, its status, the tariff in words, the form.
    assert await page.text("#location") == "Depot"
    assert await page.text("#address") == "Kade 1, 1011AA Amsterdam"
    assert await page.text("#evse-id") == uid
    assert await page.text("#status") == "Available"
    assert await page.texts("#tariff li") == TARIFF_WORDS
    assert await page.attribute("#cap", "value") == "30"
    assert await page.visible("#pay-button")
    assert await page.fits_the_width()

    # The status is live: staff take the EVSE out of service and the page, without a
    # reload, says so and offers no payment; back in service, the form returns.
    ok(await remote(server, "availability", cp_id, "inoperative", "--evse", "1"))

    async def closed() -> bool:
        return await page.visible("#not-payable") and not await page.visible("#pay-button")

    await until(closed, "the page showing the EVSE out of service", 15)
    assert await page.text("#status") == "Out of service"
    assert "out of order" in await page.text("#reason")
    ok(await remote(server, "availability", cp_id, "operative", "--evse", "1"))

    async def open_again() -> bool:
        return await page.visible("#pay-button")

    await until(open_again, "the form back", 15)
    assert await page.text("#status") == "Available"

    # Pay: the test provider's checkout holds the cap; a declined card first.
    await page.type_into("cap", str(CAP))
    await page.click("pay-button")

    async def at_checkout() -> bool:
        return "/pay/-/test-psp/" in await page.url() and bool(await page.text("#amount"))

    await until(at_checkout, "the test provider's checkout")
    assert await page.text("#amount") == "20.00 EUR"
    assert await page.text("#description") == f"Charging at {uid}"
    # Cancel leads back to the EVSE's page, which still takes payments.
    await page.click("cancel")

    async def evse_page_again() -> bool:
        return "/pay/-/" not in await page.url() and await page.visible("#pay-button")

    await until(evse_page_again, "the EVSE's page after cancelling")
    await page.type_into("cap", str(CAP))
    await page.click("pay-button")
    await until(at_checkout, "the test provider's checkout again")
    await page.type_into("card", DECLINED_CARD)
    await page.click("pay")

    async def declined() -> str:
        return await page.text("#error")

    assert "declined" in await until(declined, "the declined card's message")
    assert await server.staff.transactions(cp_id=cp_id) == []
    # The declined payment's page says so and leads back to the EVSE's page.
    await page.click("return")

    async def failed_shown() -> bool:
        return await page.attribute("#state", "data-state") == "failed"

    await until(failed_shown, "the failed payment's page")
    assert await page.text("#state") == "Payment not completed"
    await page.click("back")
    await until(evse_page_again, "the EVSE's page again")
    await page.type_into("cap", str(CAP))
    await page.click("pay-button")
    await until(at_checkout, "the test provider's checkout a third time")
    await page.type_into("card", PAYING_CARD)
    await page.click("pay")

    # Back on our progress page: the session starts on the simulated charger.
    async def on_progress() -> bool:
        return "/pay/-/payments/" in await page.url()

    await until(on_progress, "the progress page")
    payment_id = (await page.url()).rstrip("/").rsplit("/", 1)[1]

    async def charging_shown() -> bool:
        return await page.attribute("#state", "data-state") == "charging"

    await until(charging_shown, "the page showing the session charging", 40)
    assert await page.text("#state") == "Charging"
    (tx,) = await server.staff.transactions(active_only=True, cp_id=cp_id)
    payment, _ = await server.app.payments.show(payment_id)
    assert tx.id_tag == payment.id_tag and tx.id_tag.startswith("PAY")
    assert payment.state is PaymentState.CHARGING and payment.transaction_id == tx.id
    assert payment.authorized_minor == to_minor(CAP, "EUR")
    # The simulated charger runs it for the one-time token (2.0.1: a Central idToken).
    cp = station.charger
    if isinstance(cp, V16Charger):
        record16 = cp.transaction_on(1)
        assert record16 is not None and record16.id_tag == payment.id_tag
    else:
        assert isinstance(cp, V201Charger)
        record201 = cp.transaction_on(1)
        assert record201 is not None
        assert record201.id_token == {"idToken": payment.id_tag, "type": "Central"}
    assert await page.text("#cap-held") == "20.00 EUR"
    assert await page.visible("#stop-button")

    # The cost grows while the charger meters (the start fee, then energy).
    async def cost_shown() -> Decimal | None:
        text = await page.text("#cost")
        return _amount(text) if text.endswith("EUR") else None

    first: Decimal = await until(cost_shown, "the cost so far")
    assert first >= Decimal("1.19")

    async def grown() -> bool:
        return (await cost_shown() or Decimal(0)) > first

    await until(grown, "the cost growing", 20)
    assert await page.text("#energy") != "\u2013"
    assert await page.fits_the_width()

    # Stop from the page; the receipt comes once the CDR is captured.
    await page.click("stop-button")

    async def receipt_shown() -> bool:
        return await page.visible("#receipt")

    await until(receipt_shown, "the receipt", 60)
    assert await page.attribute("#state", "data-state") == "captured"
    assert await page.text("#state") == "Paid"
    assert "You stopped charging." in await page.text("#state-text")
    assert not await page.visible("#stop-button")

    finished = await ended(server, tx.id, cp_id)
    assert finished.energy_wh is not None
    (cdr,) = await server.app.billing.cdrs_of(tx.id)
    assert cdr.data["cdr_token"]["type"] == "AD_HOC_USER"
    assert cdr.data["tariffs"][0]["id"] == "SPOT"
    incl = cdr.total_incl_vat
    assert incl is not None
    # The hand calculation, as the CDR states it.
    assert cdr.total_excl_vat == Decimal("1.00") + Decimal(cdr.energy_wh) / 1000 * Decimal("0.50")
    for element_id, text in receipt_of(cdr, CAP).items():
        assert await page.text(f"#{element_id}") == text, element_id
    kwh = Decimal(cdr.energy_wh) / 1000
    shown_kwh = Decimal((await page.text("#receipt-energy")).removesuffix(" kWh"))
    assert abs(shown_kwh - kwh) < Decimal("0.001")
    payment, events = await server.app.payments.show(payment_id)
    assert payment.state is PaymentState.CAPTURED
    assert payment.stop_reason is StopReason.DRIVER
    assert payment.captured_minor == to_minor(incl, "EUR")
    assert payment.cdr_id == cdr.id
    assert [e.to_state for e in events if e.to_state is not None][-1] is PaymentState.CAPTURED
    assert await page.fits_the_width()
    # The one answer that was not a success: the declined card's page (HTTP 402).
    errors = await page.errors()
    assert [e for e in errors if "/pay/-/test-psp/" not in e["message"]] == [], errors
    assert [e["message"].rsplit(" ", 4)[1:] for e in errors] == [
        ["of", "402", "(Payment", "Required)"]
    ]
