"""`GET /api/sites` and `GET /api/sites/{site}` on a real server: the JSON of `csms sites
list|show --json`, paged by id with a cursor, readable with a viewer's token; 404 for an
unknown site, 400 for an unknown parameter, 401 without a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from csms.core.sites import Circuit, Site
from csms.core.users import Role
from csms.openadr import CapSink
from csms.services.sites import SiteService
from csms.services.users import UserService
from tests.e2e.cli import csms
from tests.e2e.conftest import Running

AUTH = {"Authorization": "Bearer test-token"}


async def _get(
    http: aiohttp.ClientSession,
    server: Running,
    path: str,
    expect: int = 200,
    headers: dict[str, str] = AUTH,
    **params: str,
) -> Any:
    async with http.get(server.api_url + path, params=params, headers=headers) as response:
        body = await response.json()
        assert response.status == expect, (path, body)
        return body


@pytest.mark.slow
async def test_sites_read_over_the_api(server: Running) -> None:
    db, clock = server.app.db, server.app.clock
    sites = SiteService(db, clock)
    sink: CapSink = sites  # what the OpenADR VEN is given
    await server.staff.add_charger("API-CP")
    for site_id in ("B-SITE", "A-SITE", "C-SITE"):
        await sites.add_site(Site(site_id, 32.0, 3, max_power_w=22_000.0), requested_by="t")
    await sites.add_circuit(Circuit("B-SITE", "row", 16.0, 1, phase=2), requested_by="t")
    await sites.link("B-SITE", "API-CP", circuit="row", max_current_a=16.0, requested_by="t")
    start = datetime.now(UTC) - timedelta(minutes=1)
    cap_id = await sink.add_cap(
        "B-SITE",
        7_000.0,
        start,
        start + timedelta(hours=3),
        source="openadr",
        reference="vtn:event-1:0",
        requested_by="ven-1",
    )
    viewer = await UserService(db, clock).add("vicky", Role.VIEWER)

    async with aiohttp.ClientSession() as http:
        page = await _get(http, server, "/api/sites", limit="2")
        assert [s["id"] for s in page["items"]] == ["A-SITE", "B-SITE"]
        assert page["total"] == 3 and page["limit"] == 2 and page["next_cursor"]
        rest = await _get(http, server, "/api/sites", limit="2", cursor=page["next_cursor"])
        assert [s["id"] for s in rest["items"]] == ["C-SITE"] and rest["next_cursor"] is None
        b = page["items"][1]
        assert b["circuits"] == ["row"] and b["chargers"] == ["API-CP"]
        assert b["max_power_kw"] == 22.0 and b["effective_a"] == round(7000 / 690, 2)
        assert [c["id"] for c in b["active_caps"]] == [cap_id]
        assert b["active_caps"][0]["source"] == "openadr"
        assert b["active_caps"][0]["reference"] == "vtn:event-1:0"

        shown = await _get(
            http, server, "/api/sites/B-SITE", headers={"Authorization": f"Bearer {viewer.token}"}
        )
        # The same JSON as the CLI's.
        cli = (await csms(server, "sites", "show", "B-SITE", "--json")).json()
        assert {**shown, "at": None} == {**cli, "at": None}
        assert shown["nodes"][1]["node"] == "row" and shown["nodes"][1]["phases"] == ["L3"]
        listed = (await csms(server, "sites", "list", "--json")).json()
        assert sorted(listed, key=lambda s: s["id"]) == [*page["items"], *rest["items"]]

        missing = await _get(http, server, "/api/sites/NOPE", 404)
        assert missing == {"error": "no site 'NOPE' (see `csms sites list`)"}
        bad = await _get(http, server, "/api/sites", 400, colour="red")
        assert bad["parameter"] == "colour"
        await _get(http, server, "/api/sites", 401, headers={})

        # A VTN cancels its event by reference prefix; the site reads as before.
        assert await sink.cancel_cap(
            "B-SITE", source="openadr", reference="vtn:event-1:", requested_by="ven-1"
        )
        assert not await sink.cancel_cap(
            "B-SITE", source="openadr", reference="vtn:event-1:", requested_by="ven-1"
        )
        again = await _get(http, server, "/api/sites/B-SITE")
        assert again["caps"] == [] and again["effective_a"] == round(22_000 / 690, 2)
        audit = await _get(http, server, "/api/audit", charger="site:B-SITE", source="openadr")
        assert [(e["command"], e["requested_by"]) for e in audit["items"]] == [
            ("site_uncap", "ven-1"),
            ("site_cap", "ven-1"),
        ]
