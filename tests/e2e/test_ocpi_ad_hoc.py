"""Ad-hoc payment over OCPI (issue 24) on a real server: a tariff assigned only with
`--ad-hoc` is served and pushed as type AD_HOC_PAYMENT (and loses the type when it also
prices everyone); with payments on, an EVSE it applies to is CREDIT_CARD_PAYABLE and
DEBIT_CARD_PAYABLE and lists it after the regular tariff in its connectors' tariff_ids;
with payments off nothing about the EVSEs changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms.core.locations import ConnectorSpec
from csms.storage.locations import EvseDetail
from ocpi_cpo.v211 import objects as v211
from tests.e2e.cli import csms as run_csms
from tests.e2e.cli import ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner, Seen
from tests.e2e.ocpi_location_rules import location_errors
from tests.e2e.sim import until
from tests.e2e.test_ocpi_locations import charger, locations, publisher, send_status, site

PAYABLE = {"CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE"}
# What our CSMS can do with any charger it talks to (ocpi_cpo.locations_publisher).
USUAL = [
    "CHARGING_PROFILE_CAPABLE",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "UNLOCK_CAPABLE",
]


def energy_tariff(tariff_id: str, price: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": tariff_id,
        "currency": "EUR",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": price, "vat": 21, "step_size": 1}]}
        ],
        **extra,
    }


class Emsp:
    """The fake eMSP (taking locations and tariffs pushes) registered with the server."""

    def __init__(self, server: Running, fake: FakePartner, endpoints: dict[str, str]) -> None:
        self.server = server
        self.fake = fake
        self.endpoints = endpoints

    async def get(self, module: str, path: str = "") -> Any:
        assert self.fake.our_token is not None
        status, body, _ = await self.fake.call(
            "GET", self.endpoints[module] + path, self.fake.our_token
        )
        assert status == 200 and body["status_code"] == 1000, body
        return body["data"]

    async def tariffs(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in await self.get("tariffs")}

    async def evses(self, location_id: str) -> dict[str, dict[str, Any]]:
        await publisher(self.server).publish()
        location = await self.get("locations", f"/{location_id}")
        assert location_errors(location) == []
        return {e["uid"]: e for e in location["evses"]}

    def tariff_puts(self, tariff_id: str) -> list[Seen]:
        return [
            s for s in self.fake.pushes if s.method == "PUT" and s.path.endswith(f"/{tariff_id}")
        ]


async def _emsp(server: Running) -> AsyncIterator[Emsp]:
    fake = await FakePartner(
        endpoints=(
            ("credentials", "SENDER"),
            ("locations", "RECEIVER"),
            ("tariffs", "RECEIVER"),
        )
    ).start()
    invitation = await server.app.partners.add("emsp")
    await fake.register_with(f"{server.app.ocpi_base_url}/ocpi/versions", invitation.token_a)
    assert fake.our_token is not None
    _, details, _ = await fake.call("GET", f"{server.app.ocpi_base_url}/ocpi/2.2.1", fake.our_token)
    endpoints = {
        e["identifier"]: e["url"] for e in details["data"]["endpoints"] if e["role"] == "SENDER"
    }
    yield Emsp(server, fake, endpoints)
    await fake.stop()


@pytest.fixture
async def paying(start_server: StartServer) -> AsyncIterator[Emsp]:
    server = await start_server(payments={"enabled": True})
    async for emsp in _emsp(server):
        yield emsp


@pytest.fixture
async def not_paying(start_server: StartServer) -> AsyncIterator[Emsp]:
    server = await start_server()
    async for emsp in _emsp(server):
        yield emsp


async def _site_with_two_chargers(server: Running) -> None:
    """Location AMS-1 with PAY-1 (the ad-hoc tariff on its EVSE) and PLAIN-1 (none), both
    booted (so that their capabilities are known), REG for everyone at the location."""
    await server.app.billing.import_tariffs(
        [energy_tariff("REG", 0.3), energy_tariff("SPOT", 0.5, type="REGULAR")]
    )
    service = locations(server)
    await service.add(site("AMS-1"))
    for cp_id in ("PAY-1", "PLAIN-1"):
        await service.link("AMS-1", cp_id, ConnectorSpec())
        async with charger(server, "1.6", cp_id) as cp:
            await send_status(cp, "1.6", "Available")
    assert ok(await run_csms(server, "tariffs", "assign", "REG", "--location", "AMS-1")) == (
        "tariff REG applies to location AMS-1\n"
    )
    out = ok(await run_csms(server, "tariffs", "assign", "SPOT", "--evse", "PAY-1*1", "--ad-hoc"))
    assert out == "tariff SPOT applies to EVSE PAY-1*1, for ad-hoc payment\n"


async def test_a_payable_evse_and_its_ad_hoc_tariff(paying: Emsp) -> None:
    server = paying.server
    await _site_with_two_chargers(server)

    evses = await paying.evses("AMS-1")
    pay, plain = evses["PAY-1*1"], evses["PLAIN-1*1"]
    assert pay["capabilities"] == [
        "CHARGING_PROFILE_CAPABLE",
        "CREDIT_CARD_PAYABLE",
        "DEBIT_CARD_PAYABLE",
        "REMOTE_START_STOP_CAPABLE",
        "RESERVABLE",
        "RFID_READER",
        "UNLOCK_CAPABLE",
    ]
    assert [c["tariff_ids"] for c in pay["connectors"]] == [["REG", "SPOT"]]
    assert plain["capabilities"] == USUAL
    assert [c["tariff_ids"] for c in plain["connectors"]] == [["REG"]]
    # 2.1.1 knows CREDIT_CARD_PAYABLE only, and one tariff per connector: the regular one.
    old = v211.evse(pay)
    assert old["capabilities"] == ["CHARGING_PROFILE_CAPABLE", "CREDIT_CARD_PAYABLE", *USUAL[1:]]
    assert [c["tariff_id"] for c in old["connectors"]] == ["REG"]

    # The tariff is AD_HOC_PAYMENT for partners (its file said REGULAR), changed now.
    tariffs = await paying.tariffs()
    assert tariffs["SPOT"]["type"] == "AD_HOC_PAYMENT"
    assert "type" not in tariffs["REG"]
    assert tariffs["SPOT"]["last_updated"] > tariffs["REG"]["last_updated"]
    (stored, _) = await server.app.billing.tariff("SPOT")
    assert stored.data["type"] == "REGULAR"  # what staff imported is kept as it was
    # Staff see it as partners do.
    shown = (await run_csms(server, "tariffs", "show", "SPOT", "--json")).json()
    assert shown["type"] == "AD_HOC_PAYMENT"
    assert shown["assigned_to"] == ["evse PAY-1*1 (ad hoc)"]
    text = ok(await run_csms(server, "tariffs", "show", "SPOT"))
    assert text.startswith("tariff           SPOT (EUR, AD_HOC_PAYMENT)\n"), text
    listed = ok(await run_csms(server, "tariffs", "list")).splitlines()
    assert [line.split()[:3] for line in listed[1:]] == [
        ["SPOT", "EUR", "AD_HOC_PAYMENT"],
        ["REG", "EUR", "-"],
    ]

    async def put_of(tariff_id: str, count: int) -> dict[str, Any]:
        async def found() -> list[Seen] | None:
            puts = paying.tariff_puts(tariff_id)
            return puts if len(puts) >= count else None

        puts = await until(found, f"{count} PUT(s) of tariff {tariff_id}")
        return puts[count - 1].body  # type: ignore[no-any-return]

    # Partners taking tariffs were sent it again with the type (after the import's PUT).
    first = await put_of("SPOT", 2)
    assert first["type"] == "AD_HOC_PAYMENT" and first["id"] == "SPOT"
    assert first["last_updated"] == tariffs["SPOT"]["last_updated"]

    # The EVSE went to partners payable.
    async def evse_pushed() -> Seen | None:
        for seen in paying.fake.pushes:
            body = seen.body if isinstance(seen.body, dict) else {}
            for evse in body.get("evses", [body]):
                if evse.get("uid") == "PAY-1*1" and set(evse.get("capabilities", [])) >= PAYABLE:
                    return seen
        return None

    await until(evse_pushed, "the payable EVSE pushed")

    # A charger that never connected cannot be started remotely: not payable, and its
    # connectors list no ad-hoc tariff (AMS-2 has no regular one).
    service = locations(server)
    await service.add(site("AMS-2"))
    await service.link("AMS-2", "NEVER-1", None, (1, EvseDetail()))
    ok(await run_csms(server, "tariffs", "assign", "SPOT", "--location", "AMS-2", "--ad-hoc"))
    never = (await paying.evses("AMS-2"))["NEVER-1*1"]
    assert never["status"] == "PLANNED" and never["capabilities"] == []
    assert ["tariff_ids" in c for c in never["connectors"]] == [False]
    # Once it also prices everyone's sessions somewhere, it is no longer ad hoc only: the
    # type of its file again, pushed.
    ok(await run_csms(server, "tariffs", "assign", "SPOT", "--default"))
    assert (await paying.tariffs())["SPOT"]["type"] == "REGULAR"
    assert (await put_of("SPOT", 3))["type"] == "REGULAR"
    # Its EVSE is still payable with it (and REG, nearer, for everyone).
    evses = await paying.evses("AMS-1")
    assert set(evses["PAY-1*1"]["capabilities"]) >= PAYABLE
    assert [c["tariff_ids"] for c in evses["PAY-1*1"]["connectors"]] == [["REG", "SPOT"]]

    # A connector's own ad-hoc tariff beats the EVSE's; REG ad hoc elsewhere too.
    ok(
        await run_csms(
            server, "tariffs", "assign", "REG", "--evse", "PAY-1*1", "--connector", "1", "--ad-hoc"
        )
    )
    evses = await paying.evses("AMS-1")
    assert [c["tariff_ids"] for c in evses["PAY-1*1"]["connectors"]] == [["REG"]]
    assert set(evses["PAY-1*1"]["capabilities"]) >= PAYABLE
    assert "type" not in (await paying.tariffs())["REG"]  # REG still prices everyone


async def test_with_payments_off_no_evse_is_payable(not_paying: Emsp) -> None:
    server = not_paying.server
    await _site_with_two_chargers(server)
    evses = await not_paying.evses("AMS-1")
    assert evses["PAY-1*1"]["capabilities"] == USUAL
    assert [c["tariff_ids"] for c in evses["PAY-1*1"]["connectors"]] == [["REG"]]
    # The tariff itself is what it is: partners may show it.
    assert (await not_paying.tariffs())["SPOT"]["type"] == "AD_HOC_PAYMENT"
