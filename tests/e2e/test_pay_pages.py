"""The payment pages on a real server's OCPI listener (csms.app mounts csms.payweb at /pay):
served beside OCPI without its token or envelope, the EVSE's page saying why paying is not
possible, 404 pages, the webhook's refusals; OCPI keeps its own rules on the same port."""

from __future__ import annotations

import aiohttp

from tests.e2e.conftest import Running, StartServer


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
