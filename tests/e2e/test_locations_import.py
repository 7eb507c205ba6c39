"""`csms locations import` end to end (a real subprocess on a real database, no server:
it is a data command): a CSV with one EVSE per line and OCPI JSON give the same rows as
`locations add` + `locations link`; every bad row is reported with its line and nothing is
imported; `--skip-invalid` imports the rest; a re-import changes nothing partners see; the
location publisher sees what was imported; a bulk import reaches a partner at the
configured pace."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, select

from csms.core.clock import utc_now
from csms.core.locations import ConnectorSpec
from csms.storage import locations as location_repo
from csms.storage.database import Database
from csms.storage.locations import EvseDetail
from csms.storage.migrate import upgrade
from csms.storage.models import OutboxRow
from ocpi_cpo.locations_publisher import Identity, LocationPublisher
from ocpi_cpo.routes.locations import PUBLISHER
from tests.e2e.cli import Ran, csms, ok
from tests.e2e.conftest import StartServer
from tests.e2e.fake_partner import FakePartner
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.test_ocpi_tokens import until
from tests.e2e.test_sites_cli import sites_cli, with_db
from tests.postgres import db_url_for

_out = cast(Table, OutboxRow.__table__)

HEADER = [
    "location_id",
    "name",
    "address",
    "city",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "time_zone",
    "facilities",
    "opening_hours",
    "charger_id",
    "evse",
    "evse_id",
    "power_type",
    "max_power",
]


def _row(n: int, number: int, **changes: str) -> list[str]:
    row = {
        "location_id": f"{changes.pop('prefix', 'CSV')}-{n}",
        "name": f"Site {n}",
        "address": f"Kade {n}",
        "city": "Amsterdam",
        "postal_code": "1011AA",
        "country": "NLD",
        "latitude": "52.3702",
        "longitude": "4.8952",
        "time_zone": "Europe/Amsterdam",
        "facilities": "WIFI,CAFE",
        "opening_hours": "24/7",
        "charger_id": f"CP-CSV-{n}",
        "evse": str(number),
        "evse_id": f"NL*CSM*ECSV{n}X{number}",
        "power_type": "AC_3_PHASE" if number == 1 else "DC",
        "max_power": "22000",
    }
    row.update(changes)
    return [row[h] for h in HEADER]


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        out.writerows(rows)
    return path


@pytest.fixture
def database(backend: str, tmp_path: Path) -> str:
    """A fresh database with the schema per test (as `csms db init` leaves it)."""
    url = db_url_for(tmp_path / "csms.db")

    async def make() -> None:
        db = Database.from_url(url)
        await upgrade(db.engine)
        await db.engine.dispose()

    asyncio.run(make())
    return url


async def _show(url: str, location_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(
        ok(await sites_cli(url, "locations", "show", location_id, "--json"))
    )
    return shown


def _same_shape(shown: dict[str, Any], ids: tuple[str, str, str]) -> dict[str, Any]:
    """A shown location with its ids renamed (charger, location, EVSE id stem) and without
    its time."""
    text = json.dumps(shown, sort_keys=True)
    for old, new in zip(ids, ("CP", "LOC", "EVSE"), strict=True):
        text = text.replace(old, new)
    out: dict[str, Any] = json.loads(text)
    out.pop("last_updated")
    return out


async def test_csv_rows_are_what_add_and_link_store(database: str, tmp_path: Path) -> None:
    url = database
    path = _write_csv(tmp_path / "sites.csv", [_row(1, 1), _row(1, 2), _row(2, 1)])
    out = ok(await sites_cli(url, "locations", "import", str(path)))
    assert out == "imported 2 locations (2 new, 0 updated)\n"
    # The same site by hand, under other ids.
    site = ["--name", "Site 1", "--address", "Kade 1", "--city", "Amsterdam"]
    site += ["--postal-code", "1011AA", "--country", "NLD", "--lat", "52.3702"]
    site += ["--lon", "4.8952", "--time-zone", "Europe/Amsterdam", "--facilities", "WIFI,CAFE"]
    link = ["link", "HAND-1", "--charger", "CP-HAND-1"]
    for args in (
        ["add", "HAND-1", *site, "--opening-hours", "24/7"],
        [*link, "--power-type", "AC_3_PHASE", "--max-power", "22000"],
        [*link, "--evse", "1", "--evse-id", "NL*CSM*EHAND1X1"],
        [*link, "--evse", "2", "--evse-id", "NL*CSM*EHAND1X2", "--power-type", "DC"],
    ):
        ok(await sites_cli(url, "locations", *args))
    imported = await _show(url, "CSV-1")
    by_hand = await _show(url, "HAND-1")
    # What `show` leaves out (an EVSE's own connector), from the stored rows.

    async def stored(db: Database) -> dict[str, tuple[ConnectorSpec, dict[int, EvseDetail]]]:
        async with db.read() as conn:
            found = await location_repo.links(conn, ["CP-CSV-1", "CP-HAND-1"])
        return {link.charge_point_id: (link.spec, link.evses) for link in found}

    links = await with_db(url, stored)
    spec = ConnectorSpec(power_type="AC_3_PHASE", max_electric_power=22000)
    assert links["CP-CSV-1"] == (
        spec,
        {
            1: EvseDetail(evse_code="NL*CSM*ECSV1X1"),
            2: EvseDetail(evse_code="NL*CSM*ECSV1X2", power_type="DC"),
        },
    )
    assert links["CP-HAND-1"] == (
        spec,
        {
            1: EvseDetail(evse_code="NL*CSM*EHAND1X1"),
            2: EvseDetail(evse_code="NL*CSM*EHAND1X2", power_type="DC"),
        },
    )
    assert _same_shape(imported, ("CP-CSV-1", "CSV-1", "ECSV1")) == _same_shape(
        by_hand, ("CP-HAND-1", "HAND-1", "EHAND1")
    )


async def test_three_bad_rows_are_all_reported_and_nothing_is_imported(
    database: str, tmp_path: Path
) -> None:
    url = database
    rows = [
        _row(1, 1),
        _row(1, 2, country="Netherlands"),  # line 3
        _row(2, 1),
        _row(3, 1, evse="zero"),  # line 5
        _row(4, 1),
        _row(5, 1, power_type="NUCLEAR"),  # line 7
    ]
    path = _write_csv(tmp_path / "bad.csv", rows)
    ran = await sites_cli(url, "locations", "import", str(path))
    assert ran.code == 1, ran
    lines = ran.err.splitlines()
    assert len(lines) == 4, ran.err
    assert lines[0].startswith("bad.csv: line 3: location 'CSV-1' has other country than on line 2")
    assert lines[1] == "bad.csv: line 5: evse 'zero' is not a whole number"
    assert lines[2] == (
        "bad.csv: line 7: power type must be one of AC_1_PHASE, AC_2_PHASE, "
        "AC_2_PHASE_SPLIT, AC_3_PHASE, DC, not 'NUCLEAR'"
    )
    assert lines[3] == "error: 3 problem(s) in 3 row(s); nothing imported"
    listed = json.loads(ok(await sites_cli(url, "locations", "list", "--json")))
    assert listed == []

    # --skip-invalid: the locations of the valid rows go in; the bad ones are still told.
    ran = await sites_cli(url, "locations", "import", "--skip-invalid", str(path))
    assert ran.code == 0, ran
    assert ran.out == (
        "imported 2 locations (2 new, 0 updated); skipped 3 invalid row(s) (3 problem(s))\n"
    )
    assert [line.split(":")[1].strip() for line in ran.err.splitlines()] == [
        "line 3",
        "line 5",
        "line 7",
    ]
    listed = json.loads(ok(await sites_cli(url, "locations", "list", "--json")))
    assert sorted(loc["id"] for loc in listed) == ["CSV-2", "CSV-4"]


async def test_json_and_a_missing_header(database: str, tmp_path: Path) -> None:
    url = database
    document = [
        {
            "id": "JS-1",
            "address": "Weg 1",
            "city": "Utrecht",
            "country": "NLD",
            "coordinates": {"latitude": "52.09", "longitude": "5.12"},
            "time_zone": "Europe/Amsterdam",
            "chargers": [{"id": "CP-JS-1", "evses": [{"evse": 1, "evse_id": "NL*CSM*EJS1"}]}],
        },
        {"id": "JS-2", "address": "Weg 2"},
    ]
    path = tmp_path / "sites.txt"
    path.write_text(json.dumps(document))
    ran = await sites_cli(url, "locations", "import", str(path))
    assert ran.code == 1 and "name it .json or .csv, or give --format" in ran.err, ran
    ran = await sites_cli(url, "locations", "import", "--format", "json", str(path))
    assert ran.code == 1, ran
    assert ran.err.splitlines() == [
        "sites.txt: item 1 (location 'JS-2'): missing 'coordinates'",
        "error: 1 problem(s) in 1 row(s); nothing imported",
    ]
    ran = await sites_cli(
        url, "locations", "import", "--format", "json", "--skip-invalid", str(path)
    )
    assert ran.out.startswith("imported 1 locations (1 new, 0 updated)"), ran
    headless = tmp_path / "headless.csv"
    headless.write_text(",".join(_row(1, 1)) + "\n")
    ran = await sites_cli(url, "locations", "import", str(headless))
    assert ran.code == 1 and ran.err.startswith("error: line 1: header: missing column(s)"), ran


async def test_reimport_is_idempotent_and_the_publisher_sees_it(
    database: str, tmp_path: Path
) -> None:
    url = database
    rows = [_row(n, e) for n in range(1, 6) for e in (1, 2)]
    path = _write_csv(tmp_path / "sites.csv", rows)
    assert ok(await sites_cli(url, "locations", "import", str(path))).startswith(
        "imported 5 locations (5 new, 0 updated)"
    )

    async def publish(db: Database) -> int:
        publisher = LocationPublisher(
            db, utc_now, Identity("NL", "CSM", "Test CPO"), grace=timedelta(minutes=5)
        )
        return await publisher.publish()

    assert await with_db(url, publish) == 10  # every imported EVSE
    before = [await _show(url, f"CSV-{n}") for n in range(1, 6)]
    ran: Ran = await sites_cli(url, "locations", "import", str(path))
    assert ran.out == "imported 5 locations (0 new, 5 updated)\n", ran
    after = [await _show(url, f"CSV-{n}") for n in range(1, 6)]
    assert [b["last_updated"] for b in before] == [a["last_updated"] for a in after]
    assert await with_db(url, publish) == 0  # nothing partners see changed


async def test_a_bulk_import_reaches_a_partner_paced(
    start_server: StartServer, tmp_path: Path
) -> None:
    """50 new locations at `location_push_rate = 20`: all 50 PUTs arrive, spread over the
    49 steps of 50 ms the pace asks for (not all at once)."""
    server = await start_server(ocpi={"push_interval": 0.1, "location_push_rate": 20.0})
    fake = await FakePartner().start()
    try:
        invitation = await server.app.partners.add("emsp1")
        await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
        path = _write_csv(tmp_path / "fifty.csv", [_row(n, 1) for n in range(1, 51)])
        assert ok(await csms(server, "locations", "import", str(path))).startswith(
            "imported 50 locations (50 new, 0 updated)"
        )
        assert server.app.ocpi_app is not None
        await server.app.ocpi_app[PUBLISHER].publish()  # the loop may have done it already
        await until(lambda: len(fake.pushes) >= 50, "the 50 PUTs", seconds=30)
        puts = [p for p in fake.pushes if p.method == "PUT"]
        assert sorted(p.path.rsplit("/", 1)[1] for p in puts) == sorted(
            f"CSV-{n}" for n in range(1, 51)
        )

        async def delivered(db: Database) -> tuple[float, list[float]]:
            """When the pass enqueued the pushes, and when each was delivered."""
            async with db.read() as conn:
                stmt = select(_out.c.created_at, _out.c.delivered_at).where(
                    _out.c.module == "locations", _out.c.delivered_at.is_not(None)
                )
                rows = (await conn.execute(stmt)).all()
            return (
                min((r[0].timestamp() for r in rows), default=0.0),
                sorted(r[1].timestamp() for r in rows),
            )

        enqueued, times = 0.0, list[float]()
        for _ in range(100):  # the last answer is in; its outcome is written just after
            enqueued, times = await delivered(server.app.db)
            if len(times) == 50:
                break
            await asyncio.sleep(0.05)
        assert len(times) == 50
        # The n-th push goes no earlier than n steps of 1/20 s after the pass: a push
        # worker round that comes late sends what is due together, never ahead of the pace.
        early = [
            (n, round(t - enqueued, 3)) for n, t in enumerate(times) if t - enqueued < n / 20 - 0.01
        ]
        assert early == [], [round(t - enqueued, 3) for t in times]
        assert times[-1] - enqueued >= 49 / 20 - 0.01
    finally:
        await fake.stop()


async def test_a_status_change_does_not_wait_behind_a_paced_import(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Only whole locations are paced: while 50 imported locations trickle out at 5 a
    second, an EVSE of an already published location that starts charging reaches the
    partner within seconds (partners show availability live)."""
    server = await start_server(ocpi={"push_interval": 0.1, "location_push_rate": 5.0})
    fake = await FakePartner().start()
    try:
        invitation = await server.app.partners.add("emsp1")
        await fake.register_with(f"{server.ocpi_url}/ocpi/versions", invitation.token_a)
        first = _write_csv(tmp_path / "one.csv", [_row(1, 1, prefix="LIVE")])
        ok(await csms(server, "locations", "import", str(first)))
        await until(
            lambda: any(p.path.endswith("/LIVE-1") for p in fake.pushes), "LIVE-1", seconds=15
        )
        ws = await open_raw(server.url, "CP-CSV-1")
        try:
            assert (await call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
            bulk = _write_csv(tmp_path / "bulk.csv", [_row(n, 1) for n in range(2, 52)])
            ok(await csms(server, "locations", "import", str(bulk)))
            assert server.app.ocpi_app is not None
            await server.app.ocpi_app[PUBLISHER].publish()
            status = {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": "Charging",
                "timestamp": utc_now().isoformat(),
            }
            assert (await call(ws, "StatusNotification", status))[0] == 3

            def charging() -> bool:
                return any(
                    p.method == "PATCH"
                    and "/LIVE-1/" in p.path
                    and p.body.get("status") == "CHARGING"
                    for p in fake.pushes
                )

            await until(charging, "the CHARGING status of LIVE-1's EVSE", seconds=5)
            bulk_puts = [p for p in fake.pushes if p.method == "PUT" and "/CSV-" in p.path]
            assert len(bulk_puts) < 40, len(bulk_puts)  # the import is still under way
        finally:
            await ws.close()
    finally:
        await fake.stop()
