"""A charger whose id uses every punctuation mark of the id alphabet is addressable
everywhere: over OCPP (with Basic auth), by the operator API and by the CLI."""

from __future__ import annotations

import asyncio

import pytest

from csms.core.errors import UnknownChargePoint
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import csms, ok, remote
from tests.e2e.conftest import Running
from tests.e2e.sim import until

# identifierString: letters, digits and * - _ = : + | @ . (the colon is also the Basic
# auth separator, the others need escaping or mean something in URLs and routes).
ODD_ID = "Site:7|Bay+2@Hall=A*B.c-d_e"


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_id_with_every_allowed_mark_is_addressable(server: Running, version: str) -> None:
    await server.staff.add_charger(ODD_ID, password="s3cret-pass")
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=ODD_ID,
            password="s3cret-pass",
            version=version,
            connectors=1,
            sessions=0,
            seed=3,
            response_timeout=10,
        )
    )
    assert isinstance(cp, ChargerBase)  # create_charger gives the shared protocol
    cp.step_seconds = 0.02
    task = asyncio.create_task(cp.run())

    async def booted() -> bool:
        try:
            return (await server.staff.charger(ODD_ID)).charger.connected
        except UnknownChargePoint:
            return False

    try:
        await until(booted, "the charger's boot")
        shown = (await csms(server, "chargers", "show", ODD_ID, "--json")).json()
        assert shown["id"] == ODD_ID and shown["connected"] is True
        # Through the operator API (the CLI escapes the id into the URL path).
        cleared = await remote(server, "clear-cache", ODD_ID)
        assert cleared.code == 0, cleared
        body = cleared.json()
        assert body["ok"] is True and body["status"] == "Accepted"
        history = ok(await csms(server, "commands", "list", "--charger", ODD_ID, "--json"))
        assert ODD_ID in history
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cp.close()
