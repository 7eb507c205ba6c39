"""`csms locations` end to end: add with the OCPI details, link a charger and describe one
of its EVSEs before it ever connected, show, update, unpublish and remove, import a JSON
file, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import csms, ok, one_line_error
from tests.e2e.conftest import Running

SITE = [
    "--name",
    "Depot",
    "--address",
    "Kade 1",
    "--city",
    "Amsterdam",
    "--postal-code",
    "1011AA",
    "--country",
    "NLD",
    "--lat",
    "52.3702",
    "--lon",
    "4.8952",
    "--time-zone",
    "Europe/Amsterdam",
]


@pytest.mark.slow
async def test_describe_a_site_for_partners(server: Running, tmp_path: Path) -> None:
    out = ok(
        await csms(
            server,
            "locations",
            "add",
            "AMS-1",
            *SITE,
            "--opening-hours",
            "Mo-Fr 07:00-22:00; Sa 09:00-17:00",
            "--facilities",
            "wifi,cafe",
            "--parking-type",
            "parking_garage",
        )
    )
    assert out == "added location AMS-1\n"
    out = ok(
        await csms(
            server,
            "locations",
            "link",
            "AMS-1",
            "--charger",
            "NEW-CP",
            "--evse",
            "2",
            "--evse-id",
            "NL*CSM*E0002",
            "--connector-standard",
            "IEC_62196_T2_COMBO",
            "--power-type",
            "DC",
            "--max-power",
            "50000",
        )
    )
    assert out == "charger NEW-CP EVSE 2 is at location AMS-1\n"
    shown = json.loads(ok(await csms(server, "locations", "show", "AMS-1", "--json")))
    assert shown["parking_type"] == "PARKING_GARAGE"
    assert shown["facilities"] == ["WIFI", "CAFE"]
    assert shown["opening_times"]["regular_hours"][5] == {
        "weekday": 6,
        "period_begin": "09:00",
        "period_end": "17:00",
    }
    (charger,) = shown["chargers"]
    assert charger["charger"] == "NEW-CP" and charger["evses"] == {"2": {"evse_id": "NL*CSM*E0002"}}

    out = ok(await csms(server, "locations", "update", "AMS-1", "--name", "Depot Noord"))
    assert out == "updated location AMS-1\n"
    listed = json.loads(ok(await csms(server, "locations", "list", "--json")))
    assert [(loc["id"], loc["name"], loc["chargers"]) for loc in listed] == [
        ("AMS-1", "Depot Noord", ["NEW-CP"])
    ]
    # A published location is unpublished first, so that partners learn it is gone.
    one_line_error(await csms(server, "locations", "remove", "AMS-1", "--yes"), "is published")
    ok(await csms(server, "locations", "update", "AMS-1", "--no-publish"))
    assert ok(await csms(server, "locations", "remove", "AMS-1", "--yes")) == (
        "removed location AMS-1\n"
    )
    assert ok(await csms(server, "locations", "list")) == "no locations\n"

    # Bad input: one line each, nothing stored.
    one_line_error(
        await csms(server, "locations", "add", "X1", *SITE, "--facilities", "SAUNA"),
        "facility must be one of",
    )
    one_line_error(
        await csms(server, "locations", "add", "X1", *SITE[:-1], "Mars/Olympus"),
        "unknown time zone",
    )
    one_line_error(
        await csms(
            server, "locations", "link", "NOPE", "--charger", "C", "--evse", "1", "--evse-id", "E1"
        ),
        "eMI3",
    )
    one_line_error(await csms(server, "locations", "update", "NOPE", "--name", "x"), "no location")

    document = [
        {
            "id": f"IMP-{n}",
            "name": f"Imported {n}",
            "address": "Weg 1",
            "city": "Utrecht",
            "country": "NLD",
            "coordinates": {"latitude": "52.09", "longitude": "5.12"},
            "time_zone": "Europe/Amsterdam",
            "facilities": ["TRAIN_STATION"],
            "opening_times": "24/7",
            "chargers": [{"id": f"IMP-CP{n}", "evses": [{"evse": 1, "evse_id": f"NL*CSM*EI{n}"}]}],
        }
        for n in range(3)
    ]
    path = tmp_path / "locations.json"
    path.write_text(json.dumps(document))
    out = ok(await csms(server, "locations", "import", str(path)))
    assert out == "imported 3 locations (3 new, 0 updated)\n"
    # All or nothing: one bad item and none is stored.
    document[1]["country"] = "Netherlands"
    document.append({**document[0], "id": "IMP-NEW"})
    path.write_text(json.dumps(document))
    ran = await csms(server, "locations", "import", str(path))
    assert ran.code == 1, ran
    assert ran.err.splitlines() == [
        "locations.json: item 1 (location 'IMP-1'): country must be ISO 3166-1 alpha-3 in "
        "capitals (e.g. NLD), not 'Netherlands'",
        "locations.json: item 3 (location 'IMP-NEW'): EVSE id NL*CSM*EI0 is given twice "
        "(also item 0 (location 'IMP-0'))",
        "locations.json: item 3 (location 'IMP-NEW'): charger 'IMP-CP0' is placed twice "
        "(also item 0 (location 'IMP-0'))",
        "error: 3 problem(s) in 2 row(s); nothing imported",
    ]
    listed = json.loads(ok(await csms(server, "locations", "list", "--json")))
    assert [loc["id"] for loc in listed] == ["IMP-2", "IMP-1", "IMP-0"]  # added at once
