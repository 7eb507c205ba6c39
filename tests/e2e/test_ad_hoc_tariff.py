"""The ad-hoc tariff (issue 24): `csms tariffs assign --ad-hoc` beside the regular tariff of
the same EVSE; a session whose token is an AD_HOC_USER (the one-time token of a driver
paying on the spot) is priced by it, everyone else's by the regular one."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from csms.core.authorization import AuthStatus, Token, TokenStatus
from csms.core.ocpi_sessions import AuthMethod
from csms.core.roaming import Grant
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import Ran, csms
from tests.e2e.conftest import Running
from tests.e2e.sim import charger, until
from tests.e2e.test_billing import _place


def ok(ran: Ran) -> str:
    assert ran.code == 0, (ran.out, ran.err)
    return ran.out


def energy_tariff(tariff_id: str, price: str) -> dict[str, Any]:
    return {
        "id": tariff_id,
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": float(price), "vat": 20.0, "step_size": 1}
                ]
            }
        ],
    }


async def _session(server: Running, cp_id: str, tag: str) -> tuple[int, int, dict[str, Any]]:
    """One short 1.6 session for `tag`: (transaction id, energy in Wh, its CDR)."""
    simulated = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version="1.6",
            sessions=1,
            session_seconds=1.5,
            meter_interval=0.5,
            tag=tag,
            exit_when_done=True,
            seed=3,
        )
    )
    await simulated.run()
    (tx,) = [t for t in await server.staff.transactions(cp_id=cp_id) if t.id_tag == tag]
    assert tx.energy_wh

    async def cdr() -> Any:
        return await server.app.billing.cdrs_of(tx.id)

    (stored,) = await until(cdr, "the CDR")
    return tx.id, tx.energy_wh, stored.data


async def test_an_ad_hoc_tariff_prices_sessions_paid_on_the_spot(
    server: Running, tmp_path: Path
) -> None:
    cp_id = "ADHOC-1"
    path = tmp_path / "tariffs.json"
    path.write_text(json.dumps([energy_tariff("REG", "0.30"), energy_tariff("SPOT", "0.50")]))
    assert "2 new" in ok(await csms(server, "tariffs", "import", str(path)))
    await _place(server, cp_id)
    await server.staff.add_token(Token("CARD-R", TokenStatus.ACCEPTED))
    async with charger(server.url, cp_id) as cp:
        await cp.status(1, "Available")  # the charger and its EVSE known
    out = ok(await csms(server, "tariffs", "assign", "REG", "--location", "AMS-1"))
    assert out == "tariff REG applies to location AMS-1\n"
    out = ok(await csms(server, "tariffs", "assign", "SPOT", "--evse", f"{cp_id}*1", "--ad-hoc"))
    assert out == f"tariff SPOT applies to EVSE {cp_id}*1, for ad-hoc payment\n"
    # Both kinds side by side, each named.
    shown = json.loads(ok(await csms(server, "tariffs", "show", "SPOT", "--json")))
    assert shown["assigned_to"] == [f"evse {cp_id}*1 (ad hoc)"]
    listed = ok(await csms(server, "tariffs", "list"))
    assert f"evse {cp_id}*1 (ad hoc)" in listed and "location AMS-1" in listed
    billing = server.app.billing
    spot = await billing.ad_hoc_tariff(f"{cp_id}*1")
    assert spot is not None and spot.id == "SPOT"
    assert (await billing.ad_hoc_tariff(f"{cp_id}*1", 1)) is not None
    assert await billing.ad_hoc_tariff("NOBODY*1") is None
    # A regular card pays the regular tariff.
    _, wh, cdr = await _session(server, cp_id, "CARD-R")
    assert cdr["tariffs"][0]["id"] == "REG"
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == Decimal(wh) / 1000 * Decimal("0.30")
    # A one-time token vouched for as an AD_HOC_USER (as the payment service does) pays the
    # ad-hoc one.
    tag = "PAYTESTADHOC0000001"
    grant = Grant(
        AuthStatus.ACCEPTED,
        AuthMethod.COMMAND,
        {
            "uid": tag,
            "type": "AD_HOC_USER",
            "contract_id": tag,
            "country_code": "NL",
            "party_id": "CSM",
        },
        reason="AD_HOC_PAYMENT",
    )
    await server.app.charging.authorization.expect_start(cp_id, tag, 1, grant)
    _, wh, cdr = await _session(server, cp_id, tag)
    assert cdr["cdr_token"]["type"] == "AD_HOC_USER"
    assert cdr["tariffs"][0]["id"] == "SPOT"
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == Decimal(wh) / 1000 * Decimal("0.50")
    # Without an ad-hoc assignment, such a session is priced as anyone's.
    await _session_without_ad_hoc(server, tmp_path)


async def _session_without_ad_hoc(server: Running, tmp_path: Path) -> None:
    removed = ok(await csms(server, "tariffs", "remove", "SPOT", "--yes"))
    assert "SPOT" in removed
    assert await server.app.billing.ad_hoc_tariff("ADHOC-1*1") is None
