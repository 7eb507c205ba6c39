"""Tariffs, live cost and CDRs end to end: simulated sessions of both versions under a
time-of-day tariff, checked against a hand calculation and the OCPI 2.2.1 CDR rules;
credits, corrections and flagged meter data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import ConnectorSpec, Location
from csms.services.locations import LocationService
from csms.services.sessions import SessionService
from simulators.options import ChargerOptions
from simulators.v201 import V201Charger
from simulators.versions import create_charger
from tests.e2e.cli import Ran, csms
from tests.e2e.conftest import Running
from tests.e2e.ocpi_rules import cdr_errors, published_evse_ids, session_errors
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import charger, register, ts, until

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def ok(ran: Ran) -> str:
    assert ran.code == 0, (ran.out, ran.err)
    return ran.out


def time_of_day_tariff(now: datetime) -> list[dict[str, Any]]:
    """Energy costs 0.25/kWh from an hour ago to two hours from now (Amsterdam time, which
    may wrap past midnight), 0.40/kWh otherwise; every session pays 0.50 once. VAT 21 %."""
    local = now.astimezone(AMSTERDAM)
    start = (local - timedelta(hours=1)).strftime("%H:%M")
    end = (local + timedelta(hours=2)).strftime("%H:%M")
    return [
        {
            "id": "TOD-1",
            "currency": "EUR",
            "type": "REGULAR",
            "tariff_alt_text": [{"language": "en", "text": "Cheap now, dearer later"}],
            "elements": [
                {
                    "price_components": [
                        {"type": "FLAT", "price": 0.50, "vat": 21.0, "step_size": 1},
                    ]
                },
                {
                    "price_components": [
                        {"type": "ENERGY", "price": 0.25, "vat": 21.0, "step_size": 1}
                    ],
                    "restrictions": {"start_time": start, "end_time": end},
                },
                {
                    "price_components": [
                        {"type": "ENERGY", "price": 0.40, "vat": 21.0, "step_size": 1}
                    ]
                },
            ],
        }
    ]


async def _set_up(
    server: Running, tmp_path: Path, cp_id: str, evse_code: str | None = None
) -> None:
    """CARD1, the time-of-day tariff at location AMS-1 and `cp_id` there; with
    `evse_code`, staff name its EVSE 1 so (and say it has a cable)."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    path = tmp_path / "tariffs.json"
    path.write_text(json.dumps(time_of_day_tariff(datetime.now(UTC))))
    assert "1 new" in ok(await csms(server, "tariffs", "import", str(path)))
    await _place(server, cp_id)
    if evse_code is not None:
        link = ("locations", "link", "AMS-1", "--charger", cp_id, "--evse", "1")
        ok(await csms(server, *link, "--evse-id", evse_code, "--format", "CABLE"))
    out = ok(await csms(server, "tariffs", "assign", "TOD-1", "--location", "AMS-1"))
    assert out == "tariff TOD-1 applies to location AMS-1\n"


async def _place(server: Running, cp_id: str) -> None:
    """Location AMS-1 with `cp_id` linked there (as `csms locations add` and `link` do;
    test_locations_cli.py runs those commands)."""
    places = LocationService(server.app.db, utc_now)
    await places.add(
        Location(
            id="AMS-1",
            name="Depot",
            address="Kade 1",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await places.link("AMS-1", cp_id, ConnectorSpec())


def ocpi_amount(value: Decimal) -> Decimal:
    """An amount as OCPI objects carry it: 4 decimals, half up (not Python's half even)."""
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def expected(energy_wh: int) -> tuple[Decimal, Decimal]:
    """The hand calculation: 0.50 flat + kWh x 0.25, each plus 21 % VAT."""
    excl = Decimal("0.50") + Decimal(energy_wh) / 1000 * Decimal("0.25")
    return excl, excl * Decimal("1.21")


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_session_under_a_time_of_day_tariff_makes_a_valid_cdr(
    server: Running, tmp_path: Path, version: str
) -> None:
    cp_id = f"BILL-{version}"
    evse_code = f"NL*CSM*EB{version.replace('.', '')}*1"
    await _set_up(server, tmp_path, cp_id, evse_code)
    charger = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            sessions=1,
            session_seconds=2.0,
            meter_interval=0.5,
            tag="CARD1",
            exit_when_done=True,
            seed=11,
        )
    )
    await charger.run()
    (tx,) = await server.staff.transactions(cp_id=cp_id)
    assert tx.energy_wh and tx.energy_wh > 0

    async def cdr_made() -> list[Any]:
        return await server.app.billing.cdrs_of(tx.id)

    (stored,) = await until(cdr_made, "the CDR")
    exported = json.loads(ok(await csms(server, "cdrs", "export", "--format", "json")))
    assert len(exported) == 1
    cdr = exported[0]
    # The EVSE as the location publisher shows it to partners.
    evse_ids = await until(lambda: _published_evse_ids(server, "AMS-1"), "the published EVSE")
    assert evse_ids == {f"{cp_id}*1": evse_code}
    assert cdr_errors(cdr, evse_ids) == []
    excl, incl = expected(tx.energy_wh)
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == ocpi_amount(excl)
    assert Decimal(str(cdr["total_cost"]["incl_vat"])) == ocpi_amount(incl)
    assert Decimal(str(cdr["total_energy"])) == Decimal(tx.energy_wh) / 1000
    assert Decimal(str(cdr["total_fixed_cost"]["excl_vat"])) == Decimal("0.5")
    assert cdr["tariffs"][0]["id"] == "TOD-1"
    assert cdr["cdr_location"]["id"] == "AMS-1"
    assert cdr["cdr_location"]["evse_uid"] == f"{cp_id}*1"
    assert cdr["cdr_location"]["evse_id"] == evse_code
    assert cdr["cdr_location"]["connector_format"] == "CABLE"
    assert cdr["cdr_token"]["uid"] == "CARD1" and cdr["cdr_token"]["type"] == "RFID"
    assert cdr["auth_method"] == "AUTH_REQUEST"
    assert cdr["session_id"] == str(tx.id)
    assert cdr["id"] == stored.id
    assert {p.get("tariff_id") for p in cdr["charging_periods"]} == {"TOD-1"}
    energy_dims = [
        Decimal(str(d["volume"]))
        for p in cdr["charging_periods"]
        for d in p["dimensions"]
        if d["type"] == "ENERGY"
    ]
    assert sum(energy_dims) == Decimal(tx.energy_wh) / 1000
    # People see money as the CDR states it (4 decimals), at least in the minor unit.
    listed = ok(await csms(server, "cdrs", "list"))
    stated = ocpi_amount(excl)  # e.g. 0.503 -> "0.503 EUR", 0.5 -> "0.50 EUR"
    digits = max(2, -int(stated.normalize().as_tuple().exponent))
    assert f" {stated.quantize(Decimal(1).scaleb(-digits))} EUR " in listed
    # The final total equals the last live estimate over the same data.
    priced = await server.app.billing.price(tx.id)
    assert priced.cost.total_cost.excl_vat == excl
    shown = json.loads(ok(await csms(server, "transactions", "show", str(tx.id), "--json")))
    assert shown["billing"] == "billed"
    assert Decimal(str(shown["cost"]["total_cost"]["excl_vat"])) == ocpi_amount(excl)
    csv_out = ok(await csms(server, "cdrs", "export", "--format", "csv"))
    header, row = csv_out.strip().splitlines()
    assert header.startswith("id,credit_reference_id,transaction_id")
    assert row.startswith(f"{stored.id},,{tx.id},{cp_id},AMS-1,")


async def _published_evse_ids(server: Running, location_id: str) -> dict[str, str]:
    shown = json.loads(ok(await csms(server, "locations", "show", location_id, "--json")))
    return published_evse_ids([shown])


@pytest.mark.slow
async def test_credit_and_corrected_cdr(server: Running, tmp_path: Path) -> None:
    cp_id = "BILL-CREDIT"
    await _set_up(server, tmp_path, cp_id)
    charger = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            sessions=1,
            session_seconds=1.0,
            meter_interval=0.4,
            tag="CARD1",
            exit_when_done=True,
        )
    )
    await charger.run()
    (tx,) = await server.staff.transactions(cp_id=cp_id)

    async def cdr_made() -> list[Any]:
        return await server.app.billing.cdrs_of(tx.id)

    (first,) = await until(cdr_made, "the CDR")
    out = ok(await csms(server, "cdrs", "credit", first.id, "--reason", "wrong meter"))
    assert f"cancels {first.id}" in out
    again = await csms(server, "cdrs", "credit", first.id)
    assert again.code == 1 and "already credited" in again.err
    corrected = ok(await csms(server, "transactions", "resolve", str(tx.id), "--energy-wh", "5000"))
    assert "CDR" in corrected and "5000 Wh" in corrected
    cdrs = await server.app.billing.cdrs_of(tx.id)
    assert [c.credit for c in cdrs] == [False, True, False]
    credit, fresh = cdrs[1], cdrs[2]
    assert credit.credit_reference_id == first.id
    assert credit.total_excl_vat == -first.total_excl_vat
    assert credit.data["credit"] is True and credit.data["remark"] == "wrong meter"
    assert cdr_errors(credit.data) == []
    excl, _ = expected(5000)
    assert fresh.total_excl_vat == excl
    # The original is unchanged: CDRs are immutable.
    assert (await server.app.billing.cdr(first.id)).data == first.data


@pytest.mark.slow
async def test_a_sub_second_session_has_its_periods_within_start_and_end(
    server: Running, tmp_path: Path
) -> None:
    """Start and stop in the same second (with milliseconds): the CDR and the Session keep
    the milliseconds of their start and end, so no period starts after the end."""
    cp_id = "BILL-SHORT"
    await _set_up(server, tmp_path, cp_id)
    ws = await open_raw(server.url, cp_id)
    await call(ws, "BootNotification", BOOT)
    second = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    begin, middle, end = (second + timedelta(milliseconds=ms) for ms in (120, 450, 870))
    started = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD1", "meterStart": 1000, "timestamp": ts(begin)},
    )
    tx_id = started[2]["transactionId"]
    await call(
        ws,
        "MeterValues",
        {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(middle, 1002)]},
    )
    await call(
        ws,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": 1004, "timestamp": ts(end), "idTag": "CARD1"},
    )

    async def cdr_made() -> list[Any]:
        return await server.app.billing.cdrs_of(tx_id)

    (stored,) = await until(cdr_made, "the CDR")
    cdr = stored.data
    assert cdr_errors(cdr) == []
    assert (cdr["start_date_time"], cdr["end_date_time"]) == (ts(begin), ts(end))
    assert cdr["charging_periods"][0]["start_date_time"] == ts(begin)
    assert Decimal(str(cdr["total_energy"])) == Decimal("0.004")
    session = await SessionService(server.app.db, utc_now, server.app.billing).session(tx_id)
    assert session is not None and session_errors(session) == []
    assert (session["start_date_time"], session["end_date_time"]) == (ts(begin), ts(end))
    await ws.close()


@pytest.mark.slow
async def test_a_session_without_a_tariff_gets_a_cdr_that_says_so(server: Running) -> None:
    """No tariff applies (none assigned, no default): the session costs nothing, and its CDR
    and Session name no tariff (no `tariffs`, no period `tariff_id`) instead of a made-up
    one; `csms cdrs list` and `transactions show` say so."""
    cp_id = "BILL-NOTARIFF"
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    await _place(server, cp_id)
    ws = await open_raw(server.url, cp_id)
    await call(ws, "BootNotification", BOOT)
    begin = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    started = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD1", "meterStart": 1000, "timestamp": ts(begin)},
    )
    tx_id = started[2]["transactionId"]
    await call(
        ws,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": tx_id,
            "meterValue": [register(begin + timedelta(minutes=10), 3000)],
        },
    )
    await call(
        ws,
        "StopTransaction",
        {
            "transactionId": tx_id,
            "meterStop": 5500,
            "timestamp": ts(begin + timedelta(minutes=20)),
            "idTag": "CARD1",
        },
    )

    async def cdr_made() -> list[Any]:
        return await server.app.billing.cdrs_of(tx_id)

    (stored,) = await until(cdr_made, "the CDR")
    cdr = stored.data
    assert cdr_errors(cdr) == []
    assert "tariffs" not in cdr
    assert cdr["charging_periods"]
    assert [p for p in cdr["charging_periods"] if "tariff_id" in p] == []
    assert cdr["total_cost"] == {"excl_vat": 0, "incl_vat": 0}
    assert Decimal(str(cdr["total_energy"])) == Decimal("4.5")
    assert cdr["cdr_location"]["id"] == "AMS-1"
    header, row = ok(await csms(server, "cdrs", "export", "--format", "csv")).splitlines()
    assert header.endswith(",tariff_ids") and row.endswith(",")
    # People see it in the list: the NOTE column.
    listed = ok(await csms(server, "cdrs", "list")).splitlines()
    (line,) = [x for x in listed if x.startswith(stored.id)]
    assert line.rstrip().endswith("no tariff"), listed
    assert "0.00 EUR" in line
    shown = ok(await csms(server, "transactions", "show", str(tx_id)))
    assert "no tariff applies" in shown
    # The OCPI Session names none either.
    session = await SessionService(server.app.db, utc_now, server.app.billing).session(tx_id)
    assert session is not None and session_errors(session) == []
    assert [p for p in session["charging_periods"] if "tariff_id" in p] == []
    # A credit CDR of it keeps saying so.
    ok(await csms(server, "cdrs", "credit", stored.id))
    listed = ok(await csms(server, "cdrs", "list")).splitlines()
    (credit,) = [x for x in listed if f"credit of {stored.id}" in x]
    assert credit.rstrip().endswith(f"credit of {stored.id}; no tariff")
    await ws.close()


@pytest.mark.slow
async def test_flagged_meter_data_is_held_until_resolved(server: Running) -> None:
    await server.staff.add_token(Token("CARD9", TokenStatus.ACCEPTED))
    ws = await open_raw(server.url, "BILL-FLAG")
    await call(ws, "BootNotification", BOOT)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD9", "meterStart": 5000, "timestamp": now},
    )
    tx_id = started[2]["transactionId"]
    live = json.loads(ok(await csms(server, "transactions", "show", str(tx_id), "--json")))
    assert live["billing"] is None and live["cost"]["total_cost"]["excl_vat"] == 0
    await call(
        ws,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": 4000, "timestamp": now, "idTag": "CARD9"},
    )

    async def held() -> bool:
        detail = await server.staff.transaction(tx_id)
        return detail.transaction.billing == "held"

    await until(held, "the transaction to be held")
    assert await server.app.billing.cdrs_of(tx_id) == []
    shown = ok(await csms(server, "transactions", "show", str(tx_id)))
    assert "not billable until resolved" in shown and "held: flagged: meter_backwards" in shown
    (listed,) = json.loads(ok(await csms(server, "transactions", "list", "--json")))
    assert (listed["billing"], listed["held_reason"]) == ("held", "flagged: meter_backwards")
    retried = await csms(server, "transactions", "resolve", str(tx_id), "--retry")
    assert retried.code == 1 and "flagged meter data (meter_backwards)" in retried.err
    out = ok(await csms(server, "transactions", "resolve", str(tx_id), "--void"))
    assert out == f"transaction {tx_id} is void: no CDR\n"
    assert (await server.staff.transaction(tx_id)).transaction.billing == "void"
    bad = await csms(server, "transactions", "resolve", str(tx_id))
    assert (
        bad.code == 1
        and bad.err == "error: give --energy-wh N, --void, --retry or --release-signature\n"
    )
    # A session the CSMS refused (unknown tag) is not billed.
    refused = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "STRANGER", "meterStart": 100, "timestamp": now},
    )
    assert refused[2]["idTagInfo"]["status"] == "Invalid"
    other_id = refused[2]["transactionId"]
    await call(
        ws, "StopTransaction", {"transactionId": other_id, "meterStop": 100, "timestamp": now}
    )

    async def void() -> bool:
        return (await server.staff.transaction(other_id)).transaction.billing == "void"

    await until(void, "the refused session to be void")
    assert await server.app.billing.cdrs_of(other_id) == []
    await ws.close()


@pytest.mark.slow
async def test_tariff_import_errors_and_management(server: Running, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    tariffs = time_of_day_tariff(datetime.now(UTC))
    tariffs.append({**tariffs[0], "id": "BAD-1", "currency": "euro"})
    bad.write_text(json.dumps(tariffs))
    ran = await csms(server, "tariffs", "import", str(bad))
    assert ran.code == 1 and "BAD-1" in ran.err and "currency" in ran.err
    assert ran.err.count("\n") == 1
    assert "no tariffs" in ok(await csms(server, "tariffs", "list"))
    (tmp_path / "junk.json").write_text("{not json")
    junk = await csms(server, "tariffs", "import", str(tmp_path / "junk.json"))
    assert junk.code == 1 and "not valid JSON" in junk.err
    good = tmp_path / "good.json"
    good.write_text(json.dumps(tariffs[0]))
    ok(await csms(server, "tariffs", "import", str(good)))
    ok(await csms(server, "tariffs", "assign", "TOD-1", "--default"))
    listed = json.loads(ok(await csms(server, "tariffs", "list", "--json")))
    assert listed[0]["id"] == "TOD-1" and listed[0]["assigned_to"] == ["default"]
    wrong = await csms(server, "tariffs", "assign", "TOD-1", "--evse", "NOPE*1")
    assert wrong.code == 1 and "no EVSE 'NOPE*1'" in wrong.err
    both = await csms(server, "tariffs", "assign", "TOD-1", "--default", "--location", "X")
    assert both.code == 1 and "choose one of" in both.err
    out = ok(await csms(server, "tariffs", "remove", "TOD-1", "--yes"))
    assert out == "removed tariff TOD-1 and 1 assignment(s)\n"


@pytest.mark.slow
async def test_which_tariff_applies(server: Running, tmp_path: Path) -> None:
    await server.staff.add_token(Token("CARD7", TokenStatus.ACCEPTED))
    base = time_of_day_tariff(datetime.now(UTC))[0]
    document = [{**base, "id": name} for name in ("T-DEFAULT", "T-LOC", "T-EVSE", "T-CONN")]
    path = tmp_path / "four.json"
    path.write_text(json.dumps(document))
    assert "4 new" in ok(await csms(server, "tariffs", "import", str(path)))
    shown = json.loads(ok(await csms(server, "tariffs", "show", "T-LOC", "--json")))
    assert shown["id"] == "T-LOC" and shown["country_code"] == "NL" and shown["party_id"] == "CSM"
    ws = await open_raw(server.url, "WHICH-1")
    await call(ws, "BootNotification", BOOT)
    await call(
        ws,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD7", "meterStart": 1000, "timestamp": an_hour_ago},
    )
    tx_id = started[2]["transactionId"]

    async def applied() -> str | None:
        priced = await server.app.billing.price(tx_id)
        return None if priced.tariff is None else priced.tariff.id

    assert await applied() is None
    ok(await csms(server, "tariffs", "assign", "T-DEFAULT", "--default"))
    assert await applied() == "T-DEFAULT"
    ok(
        await csms(
            server,
            "locations",
            "add",
            "L1",
            "--address",
            "A 1",
            "--city",
            "Utrecht",
            "--country",
            "NLD",
            "--lat",
            "52.09",
            "--lon",
            "5.12",
            "--time-zone",
            "Europe/Amsterdam",
        )
    )
    ok(await csms(server, "locations", "link", "L1", "--charger", "WHICH-1"))
    ok(await csms(server, "tariffs", "assign", "T-LOC", "--location", "L1"))
    assert await applied() == "T-LOC"
    ok(await csms(server, "tariffs", "assign", "T-EVSE", "--evse", "WHICH-1*1"))
    assert await applied() == "T-EVSE"
    out = ok(
        await csms(server, "tariffs", "assign", "T-CONN", "--evse", "WHICH-1*1", "--connector", "1")
    )
    assert out == "tariff T-CONN applies to WHICH-1*1 connector 1\n"
    assert await applied() == "T-CONN"
    listed = json.loads(ok(await csms(server, "locations", "list", "--json")))
    assert listed[0]["chargers"] == ["WHICH-1"]
    assert listed[0]["coordinates"] == {"latitude": "52.09000", "longitude": "5.12000"}
    bad = await csms(
        server,
        "locations",
        "add",
        "L2",
        "--address",
        "A",
        "--city",
        "C",
        "--country",
        "NL",
        "--lat",
        "1",
        "--lon",
        "2",
        "--time-zone",
        "Europe/Amsterdam",
    )
    assert bad.code == 1 and "alpha-3" in bad.err
    await call(
        ws,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": 3000, "timestamp": now, "idTag": "CARD7"},
    )

    async def billed() -> list[Any]:
        return await server.app.billing.cdrs_of(tx_id)

    (cdr,) = await until(billed, "the CDR")
    assert cdr.data["tariffs"][0]["id"] == "T-CONN"
    assert cdr.energy_wh == 2000
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "no CDRs" in ok(await csms(server, "cdrs", "list", "--from", later))
    assert cdr.id in ok(await csms(server, "cdrs", "list", "--from", earlier, "--to", later))
    assert "no CDRs" in ok(await csms(server, "cdrs", "list", "--charger", "OTHER"))
    await ws.close()


PARKING_TARIFF = {
    "id": "PARK-1",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]},
        {"price_components": [{"type": "PARKING_TIME", "price": 2.00, "step_size": 60}]},
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_time_the_vehicle_stops_drawing_is_priced_as_parking(
    server: Running, tmp_path: Path, version: str
) -> None:
    """Half an hour charging, then half an hour parked (1.6: status SuspendedEV; 2.0.1:
    chargingState SuspendedEV): the CDR bills 0.5 h of parking at 2.00/h and the energy."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    path = tmp_path / "parking.json"
    path.write_text(json.dumps(PARKING_TARIFF))
    ok(await csms(server, "tariffs", "import", str(path)))
    ok(await csms(server, "tariffs", "assign", "PARK-1", "--default"))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    parked, end = start + timedelta(minutes=30), start + timedelta(minutes=60)
    cp_id = f"PARK-{version}"
    options = ChargerOptions(url=server.url, charger_id=cp_id, version=version, response_timeout=10)
    if version == "1.6":
        async with charger(server.url, cp_id) as cp:
            await cp.status(1, "Charging", timestamp=start)
            started = await cp.start_transaction(1, "CARD1", 1000, timestamp=start)
            await cp.status(1, "SuspendedEV", timestamp=parked)
            await cp.stop_transaction(started["transactionId"], 11_000, timestamp=end)
    else:
        station = V201Charger(options)
        await station.connect()
        try:
            await station.boot()
            tx_id, _ = await station.start_transaction(1, "CARD1", 1000, timestamp=start)
            await station.update_transaction(
                tx_id, meter_wh=11_000, charging_state="SuspendedEV", timestamp=parked
            )
            await station.end_transaction(tx_id, 11_000, timestamp=end)
        finally:
            await station.close()
    (tx,) = await server.staff.transactions(cp_id=cp_id)
    assert tx.energy_wh == 10_000

    async def cdr_made() -> list[Any]:
        return await server.app.billing.cdrs_of(tx.id)

    (stored,) = await until(cdr_made, "the CDR")
    cdr = stored.data
    assert Decimal(str(cdr["total_parking_time"])) == Decimal("0.5")
    assert Decimal(str(cdr["total_parking_cost"]["excl_vat"])) == Decimal("1")
    assert Decimal(str(cdr["total_energy_cost"]["excl_vat"])) == Decimal("3")
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == Decimal("4")
