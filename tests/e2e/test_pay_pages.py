"""The payment pages on a real server's OCPI listener (csms.app mounts csms.payweb at /pay):
served beside OCPI without its token or envelope, the EVSE's page saying why paying is not
possible, 404 pages, the webhook's refusals; OCPI keeps its own rules on the same port. And
the whole flow over plain HTTP, as a browser without scripts goes through it, with a
simulated charger of each OCPP version (tests/e2e/test_pay_browser.py runs it in Chromium)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Running, StartServer
from tests.e2e.pay_station import (
    PAYING_CARD,
    TARIFF_WORDS,
    VERSIONS,
    Station,
    ended,
    paying_station,
    receipt_of,
)
from tests.e2e.sim import until


async def test_the_pages_beside_ocpi_on_its_listener(start_server: StartServer) -> None:
    server: Running = await start_server()  # payments not enabled
    await server.staff.add_charger("PAGES-1")
    base = server.ocpi_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/pay/PAGES-1*1") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
            assert "Paying on the spot is not offered at this charger." in page
            assert 'id="pay-form"' not in page
            assert "X-Request-ID" not in response.headers  # not an OCPI answer
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        async with http.get(f"{base}/pay/-/evses/PAGES-1*1") as response:
            evse = await response.json()
            assert evse["payable"] is False and evse["evse_uid"] == "PAGES-1*1"
        async with http.get(f"{base}/pay/NOWHERE*1") as response:
            assert response.status == 404
            assert 'id="message-title">Not found<' in await response.text()
        async with http.get(f"{base}/pay/-/payments/unknownpayment0000000") as response:
            assert response.status == 404
        async with http.get(f"{base}/pay/-/static/pay.css") as response:
            assert response.status == 200 and response.content_type == "text/css"
        async with http.post(f"{base}/pay/-/webhooks/nobody", data=b"{}") as response:
            assert response.status == 404
            assert "error" in await response.json()
        async with http.post(
            f"{base}/pay/-/webhooks/test", data=b'{"id": "evt_forged"}'
        ) as response:
            assert response.status == 400
            assert "error" in await response.json()
        # OCPI on the same port: a token is still required, and answered in the envelope.
        async with http.get(f"{base}/ocpi/versions") as response:
            assert response.status == 401
            body = await response.json()
            assert body["status_code"] == 2000 and "X-Request-ID" in response.headers


@pytest.fixture(params=VERSIONS)
async def station(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> AsyncIterator[Station]:
    async with paying_station(start_server, tmp_path, request.param) as station:
        yield station


def _element(page: str, element_id: str) -> str:
    """The text of the element with that id (one without markup inside)."""
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert found is not None, element_id
    return html.unescape(found.group(1)).strip()


@pytest.mark.slow
async def test_pay_charge_stop_and_the_receipt_over_http(station: Station) -> None:
    """The whole flow as a browser without scripts goes through it (forms, redirects, the
    status JSON a script would poll), and the providers' webhook endpoint on the way."""
    server, cp_id, uid = station.server, station.cp_id, station.evse_uid
    base = server.ocpi_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/pay/{uid}") as response:
            page = await response.text()
        assert _element(page, "status") == "Available"
        assert re.findall(r"<li>([^<]*)</li>", page)[1:] == TARIFF_WORDS
        async with http.post(
            f"{base}/pay/{uid}", data={"cap": "12.50", "email": ""}, allow_redirects=False
        ) as response:
            assert response.status == 303
            checkout = response.headers["Location"]
        assert checkout.startswith(f"{base}/pay/-/test-psp/")
        async with http.get(checkout) as response:
            assert _element(await response.text(), "amount") == "12.50 EUR"
        async with http.post(
            checkout, data={"card": PAYING_CARD}, allow_redirects=False
        ) as response:
            assert response.status == 303
            progress_url = response.headers["Location"]
        payment_id = progress_url.rsplit("/", 1)[1]
        assert progress_url == f"{base}/pay/-/payments/{payment_id}"
        async with http.get(progress_url) as response:
            assert response.status == 200
            assert '<noscript><meta http-equiv="refresh"' in await response.text()

        async def status() -> dict[str, Any]:
            async with http.get(f"{progress_url}/status") as answer:
                assert answer.status == 200
                body: dict[str, Any] = await answer.json()
                return body

        async def charging() -> dict[str, Any] | None:
            now = await status()
            return now if now["state"] == "charging" and now["cost_so_far"] else None

        first = await until(charging, "the session charging, with a cost", 40)
        assert first["cap"] == first["authorized"] == "12.50"

        async def grown() -> bool:
            return Decimal((await status())["cost_so_far"]) > Decimal(first["cost_so_far"])

        await until(grown, "the cost growing", 20)
        # The provider's webhook for the authorisation, replayed: acknowledged each time,
        # and nothing changes; a forged one is refused.
        tester = server.app.payments.test_provider
        assert tester is not None
        payment, events_before = await server.app.payments.show(payment_id)
        assert payment.checkout_ref is not None
        body, headers = tester.webhook(tester.event_for(await tester.intent(payment.checkout_ref)))
        for _ in range(2):
            async with http.post(
                f"{base}/pay/-/webhooks/test", data=body, headers=headers
            ) as response:
                assert response.status == 200
                assert await response.json() == {"received": True}
        async with http.post(
            f"{base}/pay/-/webhooks/test", data=body + b" ", headers=headers
        ) as response:
            assert response.status == 400
        _, events_after = await server.app.payments.show(payment_id)
        assert [e.to_state for e in events_after] == [e.to_state for e in events_before]
        # Stop as the page's form does without a script: back to the page.
        async with http.post(f"{progress_url}/stop", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"/pay/-/payments/{payment_id}"

        async def captured() -> dict[str, Any] | None:
            now = await status()
            return now if now["state"] == "captured" else None

        done = await until(captured, "the payment captured", 60)
        assert done["settled"] is True and done["stop_reason"] == "driver"
        async with http.get(progress_url) as response:
            page = await response.text()
    (tx,) = await server.staff.transactions(cp_id=cp_id)
    await ended(server, tx.id, cp_id)
    (cdr,) = await server.app.billing.cdrs_of(tx.id)
    for element_id, text in receipt_of(cdr, Decimal("12.50")).items():
        assert _element(page, element_id) == text, element_id
    assert done["receipt"]["cdr_id"] == cdr.id
    assert Decimal(done["receipt"]["total_incl_vat"]) == cdr.total_incl_vat
    assert done["captured"] == _element(page, "receipt-captured").removesuffix(" EUR")
    assert 'id="stop-form" method="post"' in page and "hidden>" in page
