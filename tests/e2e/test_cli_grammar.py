"""One grammar for the `csms` command line, run as a subprocess against a real server and its
SQLite file: `--json` on every list and show, tables and text for people with one time
format, lists newest first with one default limit, exact numbers, confirmation of
removals, parameters checked before the connection, messages that read naturally, and CDR
exports that hold the same CDRs in both formats."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.cli import Ran, cli_env, csms, one_line_error
from tests.e2e.conftest import Running
from tests.e2e.raw import BOOT, call, open_raw
from tests.e2e.sim import register, ts, until

# The grammar is the command line's, not the database's (each data command runs on
# PostgreSQL in its own module's tests): SQLite only, as the docstring says.
pytestmark = pytest.mark.sqlite_only

# The one time format for people: UTC to the second, then how long ago (or how soon).
PEOPLE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((?:\d+[smhd][\dsmh]* ago|in \S+)\)")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

TARIFF = {
    "id": "T1",
    "currency": "EUR",
    "type": "REGULAR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": 0.5, "vat": 21.0, "step_size": 1}]},
        {"price_components": [{"type": "ENERGY", "price": 0.3, "vat": 21.0, "step_size": 1}]},
    ],
}
SITE = (
    "--name",
    "Depot",
    "--address",
    "Kade 1",
    "--city",
    "Amsterdam",
    "--country",
    "NLD",
    "--lat",
    "52.3702",
    "--lon",
    "4.8952",
    "--time-zone",
    "Europe/Amsterdam",
)
# A register past a million Wh: `:g` printed it 1.68709e+06.
START_WH, STOP_WH = 1_680_000, 1_687_093


def ok(ran: Ran) -> str:
    assert ran.code == 0, (ran.out, ran.err)
    return ran.out


def as_json(ran: Ran) -> Any:
    assert ran.code == 0, (ran.out, ran.err)
    return json.loads(ran.out)


async def session(server: Running, cp_id: str, tag: str) -> int:
    """One OCPP 1.6 session on `cp_id` from START_WH to STOP_WH; its transaction id."""
    ws = await open_raw(server.url, cp_id)
    try:
        await call(ws, "BootNotification", BOOT)
        await call(ws, "Heartbeat", {})
        started_at = datetime.now(UTC) - timedelta(minutes=30)
        started = await call(
            ws,
            "StartTransaction",
            {"connectorId": 1, "idTag": tag, "meterStart": START_WH, "timestamp": ts(started_at)},
        )
        tx_id = int(started[2]["transactionId"])
        await call(
            ws,
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx_id,
                "meterValue": [register(started_at + timedelta(minutes=10), STOP_WH)],
            },
        )
        await call(
            ws,
            "StopTransaction",
            {
                "transactionId": tx_id,
                "meterStop": STOP_WH,
                "timestamp": ts(started_at + timedelta(minutes=20)),
            },
        )
    finally:
        await ws.close()
    return tx_id


async def billed(server: Running, tx_id: int) -> Any:
    async def made() -> Any:
        return await server.app.billing.cdrs_of(tx_id)

    (cdr,) = await until(made, f"the CDR of transaction {tx_id}")
    return cdr


@pytest.fixture
async def world(server: Running, tmp_path: Path) -> dict[str, Any]:
    """A tariff (the default), a location with one charger, a charger at no location, a
    session on each (each makes a CDR), a partner invited, tokens and an audit entry."""
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(TARIFF))
    ok(await csms(server, "tariffs", "import", str(path)))
    assigned = await csms(server, "tariffs", "assign", "T1", "--default")
    assert assigned.out == "tariff T1 is now the default: it applies where no other does\n"
    ok(await csms(server, "tokens", "add", "CARD1"))
    ok(await csms(server, "tokens", "add", "CARD2", "--expires", "2099-01-01T00:00:00Z"))
    ok(await csms(server, "locations", "add", "LOC-1", *SITE))
    ok(await csms(server, "locations", "link", "LOC-1", "--charger", "CP-AT"))
    at = await session(server, "CP-AT", "CARD1")
    first = await billed(server, at)
    nowhere = await session(server, "CP-NOWHERE", "CARD2")
    env = cli_env(server)
    env["CSMS_OCPI_BASE_URL"] = server.ocpi_url
    ok(await csms(server, "ocpi", "partners", "add", "emsp1", env=env))
    reset = await csms(server, "remote", "reset", "CP-GONE")
    assert reset.code == 3, reset.err  # not connected: in the audit log all the same
    return {"at": at, "nowhere": nowhere, "cdrs": [first, await billed(server, nowhere)]}


async def test_every_list_and_show_takes_json(server: Running, world: dict[str, Any]) -> None:
    at, nowhere = world["at"], world["nowhere"]
    chargers = as_json(await csms(server, "chargers", "list", "--json"))
    assert [c["id"] for c in chargers] == ["CP-NOWHERE", "CP-AT"]  # newest first
    assert all(ISO_UTC.match(c["last_boot_at"]) for c in chargers)
    charger = as_json(await csms(server, "chargers", "show", "CP-AT", "--json"))
    assert charger["id"] == "CP-AT" and charger["connected"] is False

    tokens = as_json(await csms(server, "tokens", "list", "--json"))
    assert [t["uid"] for t in tokens] == ["CARD2", "CARD1"]
    card = as_json(await csms(server, "tokens", "show", "card2", "--json"))
    assert (card["uid"], card["expires_at"]) == ("CARD2", "2099-01-01T00:00:00Z")

    txs = as_json(await csms(server, "transactions", "list", "--json"))
    assert [t["id"] for t in txs] == [nowhere, at]
    assert all(t["energy_wh"] == STOP_WH - START_WH for t in txs)
    tx = as_json(await csms(server, "transactions", "show", str(at), "--json"))
    assert (tx["meter_start_wh"], tx["meter_stop_wh"]) == (START_WH, STOP_WH)
    assert STOP_WH in [s["value"] for s in tx["samples"] if s["unit"] == "Wh"]
    assert tx["tariff_id"] == "T1" and tx["cost"]["total_energy"] == 7.093
    assert as_json(await csms(server, "transactions", "unmatched", "--json")) == []

    cdrs = as_json(await csms(server, "cdrs", "list", "--json"))
    assert [c["session_id"] for c in cdrs] == [str(nowhere), str(at)]
    cdr = as_json(await csms(server, "cdrs", "show", cdrs[1]["id"], "--json"))
    assert cdr == cdrs[1] and cdr["cdr_location"]["id"] == "LOC-1"
    assert (cdr["total_cost"]["excl_vat"], cdr["total_cost"]["incl_vat"]) == (2.6279, 3.1798)

    tariffs = as_json(await csms(server, "tariffs", "list", "--json"))
    assert [(t["id"], t["assigned_to"]) for t in tariffs] == [("T1", ["default"])]
    tariff = as_json(await csms(server, "tariffs", "show", "T1", "--json"))
    assert tariff == tariffs[0] and tariff["elements"] == TARIFF["elements"]

    locations = as_json(await csms(server, "locations", "list", "--json"))
    assert [(loc["id"], loc["chargers"]) for loc in locations] == [("LOC-1", ["CP-AT"])]
    location = as_json(await csms(server, "locations", "show", "LOC-1", "--json"))
    assert [c["charger"] for c in location["chargers"]] == ["CP-AT"]

    partners = as_json(await csms(server, "ocpi", "partners", "list", "--json"))
    assert [(p["name"], p["status"]) for p in partners] == [("emsp1", "pending")]
    partner = as_json(await csms(server, "ocpi", "partners", "show", "emsp1", "--json"))
    assert partner == partners[0]
    assert as_json(await csms(server, "ocpi", "tokens", "list", "--json")) == []
    assert as_json(await csms(server, "ocpi", "parties", "--json")) == []
    outbox = as_json(await csms(server, "ocpi", "outbox", "--json"))
    assert outbox["entries"] == [] and outbox["counts"] == {}

    audit = as_json(await csms(server, "commands", "list", "--json"))
    assert [(e["charger"], e["command"], e["outcome"]) for e in audit] == [
        ("CP-GONE", "reset", "not_connected")
    ]
    entry = as_json(await csms(server, "commands", "show", str(audit[0]["id"]), "--json"))
    assert entry == audit[0] and ISO_UTC.match(entry["created_at"])


async def test_people_get_tables_and_text_with_one_time_format(
    server: Running, world: dict[str, Any]
) -> None:
    at = world["at"]
    cdr_id = world["cdrs"][0].id
    for args in (
        ("chargers", "list"),
        ("chargers", "show", "CP-AT"),
        ("tokens", "list"),
        ("tokens", "show", "CARD1"),
        ("transactions", "list"),
        ("transactions", "show", str(at)),
        ("cdrs", "list"),
        ("cdrs", "show", cdr_id),
        ("tariffs", "list"),
        ("tariffs", "show", "T1"),
        ("locations", "show", "LOC-1"),
        ("ocpi", "partners", "list"),
        ("ocpi", "partners", "show", "emsp1"),
        ("commands", "list"),
    ):
        out = ok(await csms(server, *args))
        assert PEOPLE_TIME.search(out), (args, out)
        if args[:2] != ("chargers", "show"):  # whose recent messages quote the payloads
            assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", out), (args, out)
        assert not out.lstrip().startswith(("{", "[")), args
    tokens = ok(await csms(server, "tokens", "list"))
    assert re.search(r"CARD2 +Accepted +2099-01-01 00:00:00 \(in \d+d\d\dh\)", tokens)
    shown = ok(await csms(server, "cdrs", "show", cdr_id))
    for line in (
        f"cdr +{cdr_id}",
        r"energy +7\.093 kWh",
        r"total +2\.6279 EUR excl\. VAT, 3\.1798 EUR incl\. VAT",
        r"location +LOC-1, EVSE CP-AT\*1 \(NL\*CSM\*ECPAT\*1\)",
        r"authorized by +AUTH_REQUEST",
        r"tariffs +T1",
    ):
        assert re.search(f"^{line}$", shown, re.MULTILINE), (line, shown)
    tariff = ok(await csms(server, "tariffs", "show", "T1"))
    assert "applies to       default" in tariff
    assert re.search(r"ENERGY 0\.3 EUR/kWh +1 Wh +21%", tariff)
    listed = ok(await csms(server, "cdrs", "list"))
    nowhere_row = next(line for line in listed.splitlines() if "CP-NOWHERE" in line)
    assert "no location" in nowhere_row and "2.6279 EUR" in nowhere_row


async def test_exact_numbers(server: Running, world: dict[str, Any]) -> None:
    shown = ok(await csms(server, "transactions", "show", str(world["at"])))
    assert "meter start  1680000 Wh" in shown and "meter stop   1687093 Wh" in shown
    assert "energy       7.093 kWh" in shown
    assert re.search(r"Energy\.Active\.Import\.Register +- +1687093 +Wh", shown)
    assert "e+" not in shown
    listed = ok(await csms(server, "transactions", "list"))
    assert " 7.093 " in listed and "e+" not in listed


async def test_lists_cut_at_the_limit_say_so(server: Running) -> None:
    for uid in ("A1", "A2", "A3"):
        ok(await csms(server, "tokens", "add", uid))
    human = await csms(server, "tokens", "list", "--limit", "2")
    lines = ok(human).splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["A3", "A2"]
    assert lines[-1] == "showing 2 of 3; --limit to see more"
    machine = await csms(server, "tokens", "list", "--limit", "2", "--json")
    assert [t["uid"] for t in as_json(machine)] == ["A3", "A2"]
    assert machine.err == "showing 2 of 3; --limit to see more\n"
    whole = await csms(server, "tokens", "list")
    assert "showing" not in whole.out + whole.err  # the default limit (100) holds them all
    zero = await csms(server, "tokens", "list", "--limit", "0")
    assert zero.code == 2 and zero.err == (
        "error: invalid value for '--limit': 0 is not in the range 1<=x<=1000000; "
        "usage: csms tokens list [OPTIONS]; help: csms tokens list -h\n"
    )


async def test_cdr_exports_hold_the_same_cdrs(server: Running, world: dict[str, Any]) -> None:
    ids = sorted(c.id for c in world["cdrs"])
    as_json_export = await csms(server, "cdrs", "export", "--format", "json")
    as_csv_export = await csms(server, "cdrs", "export", "--format", "csv")
    exported = as_json(as_json_export)
    rows = list(csv.DictReader(io.StringIO(ok(as_csv_export))))
    assert sorted(c["id"] for c in exported) == sorted(r["id"] for r in rows) == ids
    # The CDR of the charger at no location is in both, and both say so.
    nowhere = next(c for c in exported if c["session_id"] == str(world["nowhere"]))
    assert "cdr_location" not in nowhere
    assert next(r for r in rows if r["id"] == nowhere["id"])["location_id"] == ""
    warning = (
        "warning: 1 CDR(s) have no cdr_location: their charger is not linked to a location "
        "(`csms locations link`); partners do not get them\n"
    )
    assert as_json_export.err == as_csv_export.err == warning
    # The same numbers, exactly.
    for row in rows:
        cdr = next(c for c in exported if c["id"] == row["id"])
        assert row["total_energy_kwh"] == "7.093" == str(cdr["total_energy"])
        assert row["total_excl_vat"] == "2.6279" == str(cdr["total_cost"]["excl_vat"])


async def test_removals_need_yes_without_a_terminal(server: Running, world: dict[str, Any]) -> None:
    env = cli_env(server)
    refused = await csms(server, "chargers", "remove", "CP-AT")
    one_line_error(refused, "remove charger CP-AT: add --yes to confirm (no terminal to ask on)")
    assert [c["id"] for c in as_json(await csms(server, "chargers", "list", "--json"))] == [
        "CP-NOWHERE",
        "CP-AT",
    ]
    assert ok(await csms(server, "chargers", "remove", "CP-AT", "--yes")) == (
        "charger CP-AT removed\n"
    )
    for args, line in (
        (("tokens", "remove", "CARD1"), "remove token CARD1"),
        (("tariffs", "remove", "T1"), "remove tariff T1"),
        (("ocpi", "partners", "remove", "emsp1"), "remove partner emsp1"),
        (("ocpi", "outbox", "--drop", "1"), "drop push 1 (it will not be sent)"),
    ):
        one_line_error(await csms(server, *args, env=env), f"{line}: add --yes to confirm")
    assert len(as_json(await csms(server, "tokens", "list", "--json"))) == 2
    assert ok(await csms(server, "tokens", "remove", "CARD1", "-y")) == "token CARD1 removed\n"
    assert [t["uid"] for t in as_json(await csms(server, "tokens", "list", "--json"))] == ["CARD2"]
    one_line_error(await csms(server, "tokens", "remove", "CARD1", "--yes"), "no token CARD1")
    ok(await csms(server, "tariffs", "remove", "T1", "--yes"))
    ok(await csms(server, "ocpi", "partners", "remove", "emsp1", "--yes"))
    # A published location is not removed, asked or not.
    one_line_error(
        await csms(server, "locations", "remove", "LOC-1"), "remove location LOC-1: add --yes"
    )
    one_line_error(await csms(server, "locations", "remove", "LOC-1", "--yes"), "is published")


async def answered(server: Running, answer: bytes, *args: str) -> Ran:
    """`csms ARGS` with a terminal on its standard input, typing `answer`."""
    main, terminal = os.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "csms.cli.main",
            *args,
            stdin=terminal,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(server),
        )
        os.write(main, answer)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.close(main)
        os.close(terminal)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def test_removals_ask_on_a_terminal(server: Running) -> None:
    ok(await csms(server, "tokens", "add", "ASKED"))
    no = await answered(server, b"n\n", "tokens", "remove", "ASKED")
    assert no.code == 1 and no.out == ""
    assert no.err == "Remove token ASKED? [y/N]: error: not confirmed: did not remove token ASKED\n"
    assert [t["uid"] for t in as_json(await csms(server, "tokens", "list", "--json"))] == ["ASKED"]
    yes = await answered(server, b"y\n", "tokens", "remove", "ASKED")
    assert yes.code == 0 and yes.out == "token ASKED removed\n", yes
    assert yes.err == "Remove token ASKED? [y/N]: "
    assert as_json(await csms(server, "tokens", "list", "--json")) == []


async def test_remote_parameters_are_checked_before_the_connection(server: Running) -> None:
    # Checked by the CLI, which names the valid messages; the server is not even asked.
    bad = await csms(server, "remote", "trigger", "CP1", "Heartbeet")
    one_line_error(bad, "'Heartbeet' is not a message TriggerMessage can ask for; choose one of:")
    assert "Heartbeat" in bad.err and "StatusNotification" in bad.err
    past = await csms(server, "remote", "reserve", "CP1", "--tag", "X", "--expires", "2020-01-01")
    one_line_error(past, "--expires 2020-01-01 is in the past")
    one_line_error(
        await csms(server, "remote", "firmware", "CP1", "--location", "u", "--retrieve", "soon"),
        "--retrieve: not an ISO 8601 date/time: 'soon'",
    )
    assert as_json(await csms(server, "commands", "list", "--json")) == []
    # Checked by the API before it looks for the charger: invalid (exit 1), not "not
    # connected" (exit 3).
    capped = await csms(
        server,
        "remote",
        "profile",
        "set",
        "CP1",
        "--evse",
        "1",
        "--limit",
        "11000",
        "--unit",
        "W",
        "--purpose",
        "ChargePointMaxProfile",
    )
    one_line_error(capped, "a ChargePointMaxProfile applies to the whole charger: --evse 0")
    auth = {"Authorization": f"Bearer {server.config.api.token}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        url = f"{server.api_url}/api/chargers/CP1/remote/trigger"
        async with http.post(url, json={"message": "Heartbeet"}) as response:
            assert response.status == 400
            body = await response.json()
        assert body["outcome"] == "invalid"
        assert body["message"].startswith("'Heartbeet' is not a message TriggerMessage can ask")
        assert "BootNotification" in body["message"]
        async with http.post(url, json={"message": "heartbeat"}) as response:
            assert response.status == 409  # a good one: only now is the connection checked
            assert (await response.json())["outcome"] == "not_connected"
    audit = as_json(await csms(server, "commands", "list", "--json"))
    assert [(e["command"], e["outcome"]) for e in audit] == [
        ("trigger", "not_connected"),
        ("trigger", "invalid"),
        ("profile-set", "invalid"),
    ]


@pytest.mark.parametrize(
    ("args", "line", "code"),
    [
        (
            ["tokens", "add", "X", "--status", "Foo"],
            "--status must be one of Accepted, Blocked, Expired or Invalid, not 'Foo'",
            1,
        ),
        (
            ["tokens", "add", "X", "--max-concurrent", "lots"],
            "--max-concurrent must be a number of at least 1 or 'unlimited', not 'lots'",
            1,
        ),
        (
            ["tokens", "set", "X", "--owner", "Germany"],
            "--owner must be COUNTRY*PARTY, a 2-letter country code and a 3-character party id "
            "(letters and digits), e.g. NL*EMS (or local), not 'Germany'",
            1,
        ),
        (
            ["cdrs", "show", "1"],
            "no CDR '1': CDR ids look like NLCSM0000000001 (see `csms cdrs list`)",
            1,
        ),
        (
            ["transactions", "show", "abc"],
            "no transaction 'abc': transaction ids are whole numbers (see `csms transactions "
            "list`)",
            1,
        ),
        (
            ["commands", "show", "x1"],
            "no audit log entry 'x1': entry ids are whole numbers (see `csms commands list`)",
            1,
        ),
        (
            ["ocpi", "tokens", "list", "--party", "Germany"],
            "--party must be COUNTRY*PARTY, a 2-letter country code and a 3-character party id "
            "(letters and digits), e.g. NL*EMS, not 'Germany'",
            1,
        ),
        (
            ["tokens", "add"],
            "missing argument 'UID'; usage: csms tokens add [OPTIONS] UID; "
            "help: csms tokens add -h",
            2,
        ),
        (
            ["tokens", "lsit"],
            "no such command 'lsit'. Did you mean 'list'?; help: csms tokens -h",
            2,
        ),
        (
            ["transactions", "list", "--limit", "many"],
            "invalid value for '--limit': 'many' is not a valid integer range; "
            "usage: csms transactions list [OPTIONS]; help: csms transactions list -h",
            2,
        ),
    ],
)
async def test_messages_read_naturally(
    server: Running, args: list[str], line: str, code: int
) -> None:
    ran = await csms(server, *args)
    assert ran.code == code, ran
    assert ran.err == f"error: {line}\n" and ran.out == ""
