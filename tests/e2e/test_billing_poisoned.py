"""Transactions whose CDR cannot be built do not block the others, on the real server.

150 ended transactions at a site whose stored tariff no longer parses (written into the
database past the services, as a tariff an older version accepted would be) fail on every
attempt. A simulated charger's session is still billed within seconds; the poisoned ones
wait out their back-off (the server's clock is moved on instead of sleeping), are tried
again, and end held with the reason, which `csms transactions list` and `show` display
and /metrics counts; once the tariff is mended, `csms transactions resolve --retry` bills
one.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert, update

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.ids import token_key
from csms.core.locations import Location
from csms.services.locations import LocationService
from csms.storage import billing as billing_repo
from csms.storage.models import TariffRow, TransactionRow
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until
from tests.e2e.sql import execute

POISONED = 150
# Tried three times, a minute and then two apart.
RETRIES = {"max_attempts": 3, "retry_delay": 60.0, "retry_max_delay": 120.0}
TARIFF = {
    "id": "T-BAD",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}],
}
BROKEN = {
    **TARIFF,
    "elements": [{"price_components": [{"type": "ENERGY", "price": "abc", "step_size": 1}]}],
}
ERROR = 'TariffError: tariff "T-BAD": elements[0].price_components[0].price: must be a number'


def _poison(db_path: Path) -> None:
    """Break the stored tariff and add the ended transactions it prices, straight into the
    tables."""
    start = datetime.now(UTC) - timedelta(hours=2)
    stop = start + timedelta(minutes=30)
    rows = [
        {
            "charge_point_id": "POISON",
            "ocpp_version": "1.6",
            "evse_id": 1,
            "connector_id": 1,
            "id_tag": "CARD1",
            "id_tag_key": token_key("CARD1"),
            "auth_status": "Accepted",
            "state": "completed",
            "start_at": start + timedelta(seconds=i),
            "meter_start_wh": 1000,
            "stop_at": stop + timedelta(seconds=i),
            "meter_stop_wh": 6000,
            "energy_wh": 5000,
            "stop_reason": "Local",
            "billing": "pending",
            "billing_attempts": 0,
            "received_at": stop,
            "updated_at": stop,
        }
        for i in range(POISONED)
    ]
    execute(
        db_path,
        update(TariffRow).where(TariffRow.id == "T-BAD").values(data=BROKEN),
        (insert(TransactionRow), rows),
    )


def _site(location_id: str) -> Location:
    return Location(
        id=location_id,
        name=location_id,
        address="Kade 1",
        city="Amsterdam",
        postal_code="1011AA",
        country="NLD",
        latitude="52.3702",
        longitude="4.8952",
        time_zone="Europe/Amsterdam",
    )


async def _metrics(server: Running) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        assert response.status == 200
        return (await response.text()).splitlines()


async def _held(server: Running) -> int:
    async with server.app.db.read() as conn:
        return await billing_repo.count_held(conn)


async def _attempted(server: Running, attempts: int) -> bool:
    """Every poisoned transaction has failed this many times, and waits for its next try."""
    poisoned = await server.staff.transactions(cp_id="POISON")
    return all(
        t.billing == "pending"
        and t.billing_attempts == attempts
        and t.billing_error == ERROR
        and t.billing_retry_at is not None
        and t.billing_retry_at > server.app.clock()
        for t in poisoned
    )


@pytest.mark.slow
async def test_poisoned_transactions_are_held_and_a_good_one_is_billed_meanwhile(
    start_server: StartServer, tmp_path: Path
) -> None:
    offset = timedelta(0)

    def clock() -> datetime:
        return utc_now() + offset

    server = await start_server(clock=clock, billing=RETRIES)
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    locations = LocationService(server.app.db, utc_now)
    for location_id, cp_id in (("BAD-SITE", "POISON"), ("GOOD-SITE", "GOOD")):
        await locations.add(_site(location_id))
        await locations.link(location_id, cp_id, None)
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("T-BAD", location="BAD-SITE")
    await asyncio.to_thread(_poison, server.db_path)
    poisoned = await server.staff.transactions(cp_id="POISON")
    assert len(poisoned) == POISONED and {t.billing for t in poisoned} == {"pending"}
    server.app.billing.wake()
    await until(lambda: _attempted(server, 1), "a first attempt at every poisoned one")

    good = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id="GOOD",
            sessions=1,
            session_seconds=1.0,
            meter_interval=0.4,
            tag="CARD1",
            exit_when_done=True,
        )
    )
    await good.run()
    (tx,) = await server.staff.transactions(cp_id="GOOD")

    async def billed() -> list[Any]:
        return await server.app.billing.cdrs_of(tx.id)

    # Billed while the poisoned ones wait (a liveness bound, not a speed test) ...
    (cdr,) = await until(billed, "the good session's CDR", seconds=10)
    assert cdr.energy_wh == tx.energy_wh
    # ... and none of them was tried again before its time.
    assert await _attempted(server, 1)

    # A minute later each is tried again; two more minutes, and the third failure holds it.
    offset += timedelta(seconds=61)
    server.app.billing.wake()
    await until(lambda: _attempted(server, 2), "a second attempt at every poisoned one")

    async def all_held() -> bool:
        return await _held(server) == POISONED

    offset += timedelta(seconds=121)
    server.app.billing.wake()
    await until(all_held, "every poisoned transaction to be held", seconds=60)
    listed = json.loads(ok(await csms(server, "transactions", "list", "--limit", "500", "--json")))
    held = [t for t in listed if t["charger"] == "POISON"]
    assert len(held) == POISONED
    for t in held:
        assert t["billing"] == "held"
        assert t["held_reason"] == f"cdr_failed: {ERROR}"
        assert (t["billing_attempts"], t["billing_error"]) == (3, ERROR)
        assert t["billing_retry_at"] is None
    (good_row,) = [t for t in listed if t["charger"] == "GOOD"]
    assert (good_row["billing"], good_row["held_reason"]) == ("billed", None)
    table = ok(await csms(server, "transactions", "list", "--charger", "POISON", "--limit", "1"))
    assert "held: cdr_failed: TariffError" in table

    lines = await _metrics(server)
    assert f"csms_transactions_held {POISONED}" in lines
    assert f'csms_billing_held_total{{reason="cdr_failed"}} {POISONED}' in lines
    assert f"csms_billing_failures_total {3 * POISONED}" in lines

    # `show` still shows a transaction whose cost cannot be computed, and why.
    first = held[-1]["id"]
    shown = ok(await csms(server, "transactions", "show", str(first)))
    assert f"held: cdr_failed: {ERROR}" in shown
    assert "cannot be computed: tariff" in shown

    # Staff mend the tariff, then bill one again as it is.
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(TARIFF))
    ok(await csms(server, "tariffs", "import", str(path)))
    out = ok(await csms(server, "transactions", "resolve", str(first), "--retry"))
    assert out.startswith(f"transaction {first}: 5000 Wh, CDR NLCSM")
    shown_json = json.loads(ok(await csms(server, "transactions", "show", str(first), "--json")))
    assert shown_json["billing"] == "billed"
    assert (shown_json["held_reason"], shown_json["billing_attempts"]) == (None, 0)
    assert await _held(server) == POISONED - 1
