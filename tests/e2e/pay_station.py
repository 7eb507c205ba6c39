"""A charging station that takes ad-hoc payments, for the payment pages' end-to-end tests
(tests/e2e/test_pay_pages.py over HTTP, tests/e2e/test_pay_browser.py in Chromium): a real
server with payments on and the test provider, and a simulated charger of either OCPP
version at location AMS-1 whose EVSE has the ad-hoc tariff SPOT."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from csms.core.cost import display_amount
from csms.core.errors import UnknownChargePoint
from csms.core.payments import from_minor, to_minor
from csms.core.transactions import Transaction
from csms.storage.cdrs import StoredCdr
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until
from tests.e2e.test_billing import _place

# 1.00 start fee and 0.50 per kWh, plus 19 % VAT.
TARIFF = {
    "id": "SPOT",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 1.00, "vat": 19.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.50, "vat": 19.0, "step_size": 1},
            ]
        }
    ],
}
TARIFF_WORDS = ["1.19 EUR start fee", "0.595 EUR per kWh", "Prices incl. 19 % VAT"]
PAYING_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
VERSIONS = ["1.6", "2.0.1"]


@dataclass
class Station:
    server: Running
    cp_id: str
    evse_uid: str
    charger: ChargerBase


@asynccontextmanager
async def paying_station(
    start_server: StartServer, tmp_path: Path, version: str
) -> AsyncIterator[Station]:
    server = await start_server(payments={"enabled": True, "provider": "test"})
    cp_id = f"PAY-{version.replace('.', '')}"
    path = tmp_path / "tariffs.json"
    path.write_text(json.dumps([TARIFF]))
    assert "1 new" in ok(await csms(server, "tariffs", "import", str(path)))
    await _place(server, cp_id)
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            connectors=1,
            sessions=0,
            meter_interval=1.0,
            seed=24,
            response_timeout=10,
        )
    )
    assert isinstance(cp, ChargerBase)
    cp.step_seconds = 0.02
    task = asyncio.create_task(cp.run())

    async def announced() -> bool:
        try:
            detail = await server.staff.charger(cp_id)
        except UnknownChargePoint:
            return False
        return any(c.evse_id == 1 and c.status.value == "Available" for c in detail.connectors)

    try:
        await until(announced, "the charger's EVSE, available")
        uid = f"{cp_id}*1"
        ok(await csms(server, "tariffs", "assign", "SPOT", "--evse", uid, "--ad-hoc"))
        yield Station(server, cp_id, uid, cp)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await cp.close()


async def ended(server: Running, tx_id: int, cp_id: str) -> Transaction:
    """The transaction once it has ended."""

    async def stopped() -> Transaction | None:
        found = [t for t in await server.staff.transactions(cp_id=cp_id) if t.id == tx_id]
        return found[0] if found and found[0].stop_at is not None else None

    tx: Transaction = await until(stopped, "the transaction ended")
    return tx


def receipt_of(cdr: StoredCdr, cap: Decimal) -> dict[str, str]:
    """What the receipt must say for the CDR, by the page's element ids: its totals as the
    CDR states them, the captured amount (the total incl. VAT in cents) and the rest of
    the hold released."""
    incl = cdr.total_incl_vat
    assert incl is not None
    captured = from_minor(to_minor(incl, cdr.currency), cdr.currency)
    return {
        "receipt-cdr": cdr.id,
        "receipt-total-incl": display_amount(incl, cdr.currency),
        "receipt-total-excl": display_amount(cdr.total_excl_vat, cdr.currency),
        "receipt-vat": display_amount(incl - cdr.total_excl_vat, cdr.currency),
        "receipt-captured": display_amount(captured, cdr.currency),
        "receipt-released": display_amount(cap - captured, cdr.currency),
    }
