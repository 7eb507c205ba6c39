"""The OCPI tariffs module (Sender) on a real server: a registered partner pages through our
tariffs with limit 1, follows Link to the end, and filters on last_updated."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import Running
from tests.e2e.fake_partner import FakePartner

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def tariff(tariff_id: str, price: float) -> dict[str, object]:
    return {
        "id": tariff_id,
        "currency": "EUR",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": price, "vat": 21, "step_size": 1}]}
        ],
    }


@pytest.fixture
async def partner() -> AsyncIterator[FakePartner]:
    fake = await FakePartner().start()
    yield fake
    await fake.stop()


async def test_partners_page_through_our_tariffs(server: Running, partner: FakePartner) -> None:
    billing = server.app.billing
    for n in range(3):
        await billing.import_tariffs(tariff(f"T{n}", 0.2 + n / 10))
    invitation = await server.app.partners.add("emsp")
    versions_url = f"{server.app.ocpi_base_url}/ocpi/versions"
    await partner.register_with(versions_url, invitation.token_a)
    token = partner.our_token
    assert token is not None
    _, details, _ = await partner.call("GET", f"{server.app.ocpi_base_url}/ocpi/2.2.1", token)
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    url = endpoints[("tariffs", "SENDER")]

    seen: list[dict[str, object]] = []
    next_url: str | None = url + "?limit=1"
    while next_url is not None:
        status, body, headers = await partner.call("GET", next_url, token)
        assert status == 200 and body["status_code"] == 1000
        assert headers["X-Total-Count"] == "3"
        assert headers["X-Limit"] == "100"
        assert len(body["data"]) == 1
        seen.extend(body["data"])
        link = headers.get("Link")
        if link is None:
            next_url = None
        else:
            match = LINK.match(link)
            assert match is not None and match["url"].startswith("http://")
            assert "limit=1" in match["url"]
            next_url = match["url"]
    assert [t["id"] for t in seen] == ["T0", "T1", "T2"]  # oldest first, each once
    for t in seen:
        assert t["country_code"] == "NL" and t["party_id"] == "CSM"
        assert isinstance(t["last_updated"], str) and DATETIME.match(t["last_updated"])
        assert isinstance(t["elements"][0]["price_components"][0]["price"], float)  # type: ignore[index]
    # date_from is inclusive and date_to exclusive, on last_updated.
    middle = str(seen[1]["last_updated"])
    _, body, headers = await partner.call("GET", f"{url}?date_from={middle}", token)
    assert [t["id"] for t in body["data"]] == ["T1", "T2"] and headers["X-Total-Count"] == "2"
    assert "Link" not in headers
    _, body, _ = await partner.call("GET", f"{url}?date_to={middle}", token)
    assert [t["id"] for t in body["data"]] == ["T0"]
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, body, headers = await partner.call("GET", f"{url}?date_from={later}", token)
    assert body["data"] == [] and headers["X-Total-Count"] == "0"
    # An updated tariff keeps its place (a partner walking the pages sees each tariff once);
    # its last_updated moves, which date_from finds.
    await billing.import_tariffs(tariff("T0", 0.99))
    _, body, _ = await partner.call("GET", url, token)
    assert [t["id"] for t in body["data"]] == ["T0", "T1", "T2"]
    changed = str(body["data"][0]["last_updated"])
    assert changed > str(seen[2]["last_updated"])
    _, body, _ = await partner.call("GET", f"{url}?date_from={changed}", token)
    assert [t["id"] for t in body["data"]] == ["T0"]
    status, body, _ = await partner.call("GET", f"{url}?limit=ten", token)
    assert status == 200 and body["status_code"] == 2001
