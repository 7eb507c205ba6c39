"""The `csms` command line against a real server process and its database (a SQLite file,
or a PostgreSQL database: tests/postgres.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import run_csms
from tests.e2e.raw import BOOT
from tests.postgres import Current, db_url_for

CSMS = [sys.executable, "-m", "csms.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database `csms db init` made, once: only it, `serve` and `demo` create one."""
    where = tmp_path_factory.mktemp("template")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    subprocess.run(
        [*CSMS, "--data-dir", str(where), "db", "init"],
        capture_output=True,
        timeout=60,
        env=env,
        check=True,
    )
    return where / "csms.db"


@pytest.fixture
def workdir(tmp_path: Path, empty_database: Path) -> Path:
    if Current.backend == "sqlite":
        shutil.copyfile(empty_database, tmp_path / "csms.db")
    # On PostgreSQL a database of its own, made from the migrated template.
    url = db_url_for(tmp_path / "csms.db")
    port = free_port()
    (tmp_path / "csms.toml").write_text(
        f'[database]\nurl = "{url}"\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {port}\nping_interval = 0\n'
        f'[api]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        '[ocpi]\nhost = "127.0.0.1"\nport = 0\n'
        '[log]\nformat = "json"\n'
    )
    return tmp_path


def csms(workdir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    result = run_csms(args, env=env, cwd=workdir)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def port_of(workdir: Path) -> int:
    text = (workdir / "csms.toml").read_text()
    return int(text.split("port = ")[1].split()[0])


@pytest.fixture
def served(workdir: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    proc = subprocess.Popen(
        [*CSMS, "serve"],
        cwd=workdir,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port_of(workdir)), 0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.mark.slow
def test_chargers_and_tokens_without_a_server(workdir: Path) -> None:
    out = csms(workdir, "chargers", "add", "CP-A", "--password", "long-enough-pw", "--json")
    assert json.loads(out.stdout)["password_set"] is True
    csms(workdir, "chargers", "add", "CP-B", "--pending")
    listed = json.loads(csms(workdir, "chargers", "list", "--json").stdout)
    assert [(c["id"], c["registration"]) for c in listed] == [  # newest first
        ("CP-B", "Pending"),
        ("CP-A", "Accepted"),
    ]
    csms(workdir, "chargers", "accept", "CP-B")
    assert (
        json.loads(csms(workdir, "chargers", "show", "CP-B", "--json").stdout)["registration"]
        == "Accepted"
    )
    human = csms(workdir, "chargers", "list").stdout
    assert "CP-A" in human and "offline" in human
    csms(
        workdir, "tokens", "add", "CARD1", "--expires", "2030-01-01T00:00:00Z", "--parent", "FLEET"
    )
    csms(workdir, "tokens", "block", "card1")
    tokens = json.loads(csms(workdir, "tokens", "list", "--json").stdout)
    assert tokens == [
        {
            "uid": "CARD1",
            "type": "ISO14443",
            "status": "Blocked",
            "expires_at": "2030-01-01T00:00:00Z",
            "parent": "FLEET",
            "origin": "local",
            "max_concurrent": 1,
            "priority": None,
            "updated_at": tokens[0]["updated_at"],
        }
    ]
    csms(workdir, "tokens", "unblock", "CARD1")
    csms(workdir, "chargers", "remove", "CP-A", "--yes")
    assert "CP-A" not in csms(workdir, "chargers", "list").stdout


def test_token_import(workdir: Path) -> None:
    good = workdir / "good.csv"
    good.write_text("uid,status,expires,parent\nAA01,Accepted,,\nAA02,Blocked,2031-05-01,AA01\n")
    out = csms(workdir, "tokens", "import", str(good))
    assert "imported 2 tokens (2 new, 0 updated)" in out.stdout
    bad = workdir / "bad.csv"
    bad.write_text("uid,status\nAA03,Accepted\nAA04,Sometimes\n")
    result = csms(workdir, "tokens", "import", str(bad), ok=False)
    assert result.returncode == 1
    assert "line 3" in result.stderr and "Sometimes" in result.stderr
    # Nothing of the bad file was imported.
    uids = [t["uid"] for t in json.loads(csms(workdir, "tokens", "list", "--json").stdout)]
    assert uids == ["AA02", "AA01"]  # added at once: by uid, newest first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chargers", "show", "NOPE"], "no charger NOPE"),
        (["chargers", "add", "X", "--password", "short"], "at least 8 characters"),
        (["chargers", "add", "CP{1}"], "the charge point id contains '{'"),
        (["chargers", "add", "CP 1"], "allowed are a-z, A-Z, 0-9 and * - _ = : + | @ ."),
        (["chargers", "add", "X" * 49], "longer than 48 characters"),
        (["tokens", "add", "T", "--status", "Maybe"], "status must be one of"),
        (["tokens", "add", "T", "--expires", "soon"], "not an ISO 8601"),
        (["tokens", "block", "NOPE"], "no token NOPE"),
        (["transactions", "show", "999"], "no transaction 999"),
        (["tokens", "import", "/nonexistent.csv"], "No such file"),
        (["chargers", "list", "--config", "/nonexistent.toml"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(workdir: Path, args: list[str], message: str) -> None:
    result = csms(workdir, *args, ok=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["chargers", "lst"],
            "no such command 'lst' (Did you mean one of: 'list', 'set'?); help: csms chargers -h",
        ),
        (
            ["tokens", "add"],
            "missing argument 'UID'; usage: csms tokens add [OPTIONS] UID; "
            "help: csms tokens add -h",
        ),
        (["--bogus", "chargers", "list"], "no such option '--bogus'; help: csms -h"),
        (
            ["cdrs", "export", "--format", "xml"],
            "invalid value for '--format': 'xml' is not one of 'json', 'csv'; "
            "usage: csms cdrs export [OPTIONS]; help: csms cdrs export -h",
        ),
        (
            ["cdrs", "export"],
            "missing option '--format'. Choose from: json, csv; "
            "usage: csms cdrs export [OPTIONS]; help: csms cdrs export -h",
        ),
    ],
)
def test_bad_usage_is_one_line_with_where_help_is(
    tmp_path: Path, args: list[str], line: str
) -> None:
    """Click's four-line usage block becomes one line; exit status 2 (bad usage)."""
    result = csms(tmp_path, *args, ok=False)
    assert result.returncode == 2
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def test_a_group_alone_shows_its_help(tmp_path: Path) -> None:
    result = csms(tmp_path, "chargers", ok=False)
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: csms chargers [OPTIONS] COMMAND [ARGS]...")
    assert "  list " in result.stderr


def one_line_refusal(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"error: {line}\n"


@pytest.mark.slow
def test_tariffs_import_refuses_another_partys_tariff(workdir: Path) -> None:
    """We publish our tariffs under our own URL: each carries our party (NL*CSM here)."""
    pc = {"type": "ENERGY", "price": 0.3, "step_size": 1}
    tariff = {"currency": "EUR", "elements": [{"price_components": [pc]}]}
    ours = [
        {**tariff, "id": "T1"},  # no party: ours
        {**tariff, "id": "T2", "country_code": "nl", "party_id": "csm"},  # ours, any case
    ]
    path = workdir / "tariffs.json"
    path.write_text(json.dumps([*ours, {**tariff, "id": "T3", "country_code": "DE"}]))
    one_line_refusal(
        csms(workdir, "tariffs", "import", str(path), ok=False),
        "tariff \"T3\": [2].country_code: 'DE' is not ours (NL)",
    )
    path.write_text(json.dumps({**tariff, "id": "T4", "country_code": "NL", "party_id": "ABC"}))
    one_line_refusal(
        csms(workdir, "tariffs", "import", str(path), ok=False),
        "tariff \"T4\": party_id: 'ABC' is not ours (CSM)",
    )
    assert json.loads(csms(workdir, "tariffs", "list", "--json").stdout) == []
    path.write_text(json.dumps(ours))
    assert "2 new" in csms(workdir, "tariffs", "import", str(path)).stdout
    for tariff_id in ("T1", "T2"):
        shown = json.loads(csms(workdir, "tariffs", "show", tariff_id, "--json").stdout)
        assert (shown["country_code"], shown["party_id"]) == ("NL", "CSM")


@pytest.mark.slow
def test_locations_import_refuses_another_partys_location(workdir: Path) -> None:
    site = {
        "address": "Weg 1",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": "52.09", "longitude": "5.12"},
        "time_zone": "Europe/Amsterdam",
    }
    ours = [{**site, "id": "L1"}, {**site, "id": "L2", "country_code": "NL", "party_id": "CSM"}]
    path = workdir / "locations.json"
    for foreign, line in (
        ({"country_code": "DE"}, "item 2 (location 'L3'): country_code 'DE' is not ours (NL)"),
        ({"party_id": "ABC"}, "item 2 (location 'L3'): party_id 'ABC' is not ours (CSM)"),
    ):
        path.write_text(json.dumps([*ours, {**site, "id": "L3", **foreign}]))
        # Each problem on its line, where it is in the file, then one summary line.
        refused = csms(workdir, "locations", "import", str(path), ok=False)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr == (
            f"locations.json: {line}\nerror: 1 problem(s) in 1 row(s); nothing imported\n"
        )
    assert json.loads(csms(workdir, "locations", "list", "--json").stdout) == []
    path.write_text(json.dumps(ours))
    assert "2 new" in csms(workdir, "locations", "import", str(path)).stdout


def test_bad_config_stops_serve_with_one_line(workdir: Path) -> None:
    (workdir / "csms.toml").write_text("[ocpp]\nport = 'nine'\n")
    result = csms(workdir, "serve", ok=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: ocpp.port must be an integer, not 'nine'"


def test_nan_and_inf_stop_serve_with_one_line(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    result = subprocess.run(
        [*CSMS, "serve"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "CSMS_OCPP_CALL_TIMEOUT": "nan"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: ocpp.call_timeout (from environment) must be a finite number, not 'nan'\n"
    )
    (workdir / "csms.toml").write_text("[ocpi]\npush_interval = inf\n")
    result = csms(workdir, "serve", ok=False)
    assert result.returncode == 1
    assert result.stderr == "error: ocpi.push_interval must be a finite number, not inf\n"


@pytest.mark.slow
def test_serve_session_then_sigterm_keeps_everything(
    workdir: Path, served: subprocess.Popen[str]
) -> None:
    import asyncio

    from simulators.options import ChargerOptions
    from simulators.v16 import V16Charger

    csms(workdir, "tokens", "add", "SIMTAG01")
    url = f"ws://127.0.0.1:{port_of(workdir)}/ocpp"

    async def drive() -> None:
        cp = V16Charger(
            ChargerOptions(
                url=url,
                charger_id="CLI-CP",
                sessions=1,
                session_seconds=1,
                meter_interval=0.4,
                exit_when_done=True,
            )
        )
        await cp.run()

    asyncio.run(drive())
    # While the server runs the CLI sees its data ...
    listed = json.loads(csms(workdir, "chargers", "list", "--json").stdout)
    assert listed[0]["id"] == "CLI-CP" and listed[0]["vendor"] == "CsmsSim"
    served.send_signal(signal.SIGTERM)
    _, stderr = served.communicate(timeout=20)
    assert served.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "csms_stopping" in events and events[-1] == "csms_stopped"
    # ... and after a graceful stop everything is in the file.
    (tx,) = json.loads(csms(workdir, "transactions", "list", "--json").stdout)
    assert tx["state"] == "completed"
    assert tx["energy_wh"] == tx["meter_stop_wh"] - tx["meter_start_wh"] > 0
    shown = json.loads(csms(workdir, "transactions", "show", str(tx["id"]), "--json").stdout)
    assert any(s["measurand"] == "Energy.Active.Import.Register" for s in shown["samples"])
    human = csms(workdir, "transactions", "list").stdout
    assert "CLI-CP" in human and "completed" in human
    charger = json.loads(csms(workdir, "chargers", "show", "CLI-CP", "--json").stdout)
    assert charger["connected"] is False


def test_json_logs_carry_charge_point_action_and_message_id(
    workdir: Path, served: subprocess.Popen[str]
) -> None:
    import asyncio

    from tests.e2e.raw import call, open_raw

    async def drive() -> None:
        ws = await open_raw(f"ws://127.0.0.1:{port_of(workdir)}/ocpp", "LOG-CP")
        await call(ws, "BootNotification", BOOT)
        await call(
            ws,
            "StartTransaction",
            {"connectorId": 1, "idTag": "X", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"},
        )
        await ws.close()

    asyncio.run(drive())
    served.send_signal(signal.SIGTERM)
    _, stderr = served.communicate(timeout=20)
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    started = [r for r in records if r["event"] == "transaction_started"]
    assert started
    assert started[0]["charge_point_id"] == "LOG-CP"
    assert started[0]["action"] == "StartTransaction"
    assert started[0]["message_id"]
    assert started[0]["level"] == "info"


def test_json_logs_are_one_object_per_line_library_records_included(
    workdir: Path, served: subprocess.Popen[str]
) -> None:
    import asyncio

    from websockets.exceptions import InvalidStatus

    from tests.e2e.raw import call, open_raw

    config = tomllib.loads((workdir / "csms.toml").read_text())
    # A library's own record: aiohttp refuses a malformed request to the operator API and
    # logs it (logger aiohttp.server, level error, with the exception).
    with socket.create_connection(("127.0.0.1", config["api"]["port"]), 5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 400")

    async def drive() -> None:
        url = f"ws://127.0.0.1:{port_of(workdir)}"
        ws = await open_raw(f"{url}/ocpp", "JSON-LOG-CP")
        await call(ws, "BootNotification", BOOT)
        await ws.close()
        with pytest.raises(InvalidStatus):
            await open_raw(f"{url}/not-ocpp", "X")  # our own warning: handshake_refused

    asyncio.run(drive())
    served.send_signal(signal.SIGTERM)
    _, stderr = served.communicate(timeout=20)
    assert served.returncode == 0, stderr
    records = []
    for line in stderr.splitlines():
        record = json.loads(line)  # every line is one JSON object ...
        assert {"logger", "level", "timestamp", "event"} <= record.keys(), line  # ... with these
        records.append(record)
    by_logger = {r["logger"]: r for r in records}
    refused = by_logger["aiohttp.server"]
    assert refused["level"] == "error" and refused["event"].startswith("Error handling request")
    assert "BadHttpMessage" in refused["exception"]  # the traceback is a field of that line
    events = {(r["logger"], r["event"]) for r in records}
    assert {
        ("csms.app", "csms_started"),
        ("csms.gateway", "charger_connected"),
        ("csms.gateway", "handshake_refused"),
        ("csms.app", "csms_stopped"),
    } <= events


@pytest.mark.slow
def test_201_station_in_the_cli(workdir: Path, served: subprocess.Popen[str]) -> None:
    import asyncio

    from tests.e2e.raw import BOOT201, call, open_raw
    from tests.e2e.sim import hours_ago
    from tests.e2e.v201 import V201, new_tx_id, session_events

    tx_id = new_tx_id()

    async def drive() -> None:
        ws = await open_raw(f"ws://127.0.0.1:{port_of(workdir)}/ocpp", "ST-CLI", subprotocols=V201)
        await call(ws, "BootNotification", BOOT201)
        await call(
            ws,
            "NotifyReport",
            {
                "requestId": 1,
                "generatedAt": "2026-01-01T00:00:00Z",
                "seqNo": 0,
                "reportData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "variableAttribute": [{"value": "300"}],
                    }
                ],
            },
        )
        for event in session_events(tx_id, hours_ago(2)):
            await call(ws, "TransactionEvent", event)
        await ws.close()

    asyncio.run(drive())
    listed = json.loads(csms(workdir, "chargers", "list", "--json").stdout)
    assert listed[0]["ocpp_version"] == "2.0.1"
    variables = json.loads(csms(workdir, "chargers", "variables", "ST-CLI", "--json").stdout)
    assert [(v["key"], v["value"]) for v in variables] == [
        ("OCPPCommCtrlr.HeartbeatInterval", "300")
    ]
    assert "HeartbeatInterval" in csms(workdir, "chargers", "variables", "ST-CLI").stdout
    (tx,) = json.loads(csms(workdir, "transactions", "list", "--json").stdout)
    assert (tx["ocpp_version"], tx["ocpp_transaction_id"], tx["energy_wh"]) == (
        "2.0.1",
        tx_id,
        11_000,
    )
    shown = json.loads(csms(workdir, "transactions", "show", str(tx["id"]), "--json").stdout)
    assert [e["event_type"] for e in shown["events"]] == ["Started", "Updated", "Updated", "Ended"]
    human = csms(workdir, "transactions", "show", str(tx["id"])).stdout
    assert "transaction events (4)" in human and tx_id in human


def test_port_in_use_is_one_line(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port_of(workdir)))
        taken.listen()
        result = csms(workdir, "serve", ok=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot start:")
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_line(workdir: Path) -> None:
    config = workdir / "pg.toml"
    config.write_text('[database]\nurl = "postgresql+asyncpg://u:p@127.0.0.1:1/none"\n')
    for args in (["chargers", "list"], ["serve"]):
        result = csms(workdir, *args, "--config", str(config), ok=False)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:")
        assert "database" in lines[0]


def test_live_commands_find_the_generated_api_token(
    workdir: Path, served: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + 20
    while True:
        result = csms(workdir, "remote", "reset", "NOT-HERE", ok=False)
        if "cannot reach" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.returncode == 3, result.stderr
    assert result.stderr == "error: NOT-HERE reset: not connected (unknown charger 'NOT-HERE')\n"
    token_file = workdir / ".csms" / "api-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert len(token_file.read_text().strip()) >= 40
    audit = json.loads(csms(workdir, "commands", "list", "--json").stdout)
    assert [(e["command"], e["outcome"], e["source"]) for e in audit] == [
        ("reset", "not_connected", "cli")
    ]
    # A wrong token is refused with one line.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env["CSMS_API_TOKEN"] = "wrong"
    bad = subprocess.run(
        [*CSMS, "remote", "reset", "NOT-HERE"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: the API at http://127.0.0.1:") and "refused the token" in (
        bad.stderr
    )
