"""`csms ocpi partners ...` and `csms serve --only` as subprocesses, against a real server
and a fake eMSP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.core.partners import Direction, PartnerStatus
from tests.e2e.cli import Ran, cli_env, csms, one_line_error
from tests.e2e.conftest import Running
from tests.e2e.fake_partner import FakePartner
from tests.postgres import db_url_for


@pytest.fixture
async def partner() -> AsyncIterator[FakePartner]:
    fake = await FakePartner().start()
    yield fake
    await fake.stop()


async def ocpi(server: Running, *args: str) -> Ran:
    env = cli_env(server)
    env["CSMS_OCPI_BASE_URL"] = server.ocpi_url
    return await csms(server, "ocpi", "partners", *args, env=env)


@pytest.mark.slow
async def test_add_list_show_remove(server: Running, partner: FakePartner) -> None:
    added = await ocpi(server, "add", "emsp1")
    assert added.code == 0, added.err
    lines = dict(line.split(":", 1) for line in added.out.splitlines() if ":" in line)
    url, token_a = lines["versions URL"].strip(), lines["token A"].strip()
    assert url == f"{server.ocpi_url}/ocpi/versions"
    ours = await partner.register_with(url, token_a)

    listed = (await ocpi(server, "list", "--json")).json()
    assert [(p["name"], p["status"], p["direction"]) for p in listed] == [
        ("emsp1", "registered", "inbound")
    ]
    assert listed[0]["roles"][0]["party_id"] == "EMS"
    human = (await ocpi(server, "list")).out
    assert "emsp1" in human and "registered" in human and "DE/EMS EMSP" in human
    shown = await ocpi(server, "show", "emsp1")
    assert "cdrs" in shown.out and partner.versions_url in shown.out
    as_json = await ocpi(server, "show", "emsp1", "--json")
    # Never a token in the output.
    for token in (str(partner.their_token_b), ours["token"], token_a):
        assert token not in shown.out + as_json.out
    assert as_json.json()["token_encoding"] == "base64"

    one_line_error(await ocpi(server, "add", "emsp1"), "partner emsp1 exists")
    one_line_error(await ocpi(server, "add", "bad name!"), "partner name")
    one_line_error(await ocpi(server, "show", "nope"), "no partner nope")

    removed = await ocpi(server, "remove", "emsp1", "--yes")
    assert removed.code == 0 and "removed" in removed.out
    status, body, _ = await partner.call(
        "GET", f"{server.ocpi_url}/ocpi/2.2.1/credentials", ours["token"]
    )
    assert status == 401 and body["status_code"] == 2000
    assert (await ocpi(server, "list")).out.strip() == "no partners"
    one_line_error(await ocpi(server, "remove", "emsp1", "--yes"), "no partner emsp1")


@pytest.mark.slow
async def test_register_with_a_partner(server: Running, partner: FakePartner) -> None:
    ran = await ocpi(
        server,
        "register",
        "hub",
        "--versions-url",
        partner.versions_url,
        "--token",
        partner.token_a,
        "--json",
    )
    assert ran.code == 0, ran.err
    shown = ran.json()
    assert (shown["status"], shown["direction"], shown["version"]) == (
        "registered",
        "outbound",
        "2.2.1",
    )
    assert partner.callbacks[0][0] == 200  # it reached our server with the token we offered
    stored = await server.app.partners.get("hub")
    assert stored.status is PartnerStatus.REGISTERED and stored.direction is Direction.OUTBOUND

    one_line_error(
        await ocpi(
            server, "register", "hub", "--versions-url", partner.versions_url, "--token", "x"
        ),
        "partner hub exists",
    )
    one_line_error(
        await ocpi(
            server, "register", "h2", "--versions-url", "http://127.0.0.1:9/v", "--token", "x"
        ),
        "registration with h2 failed: versions: GET http://127.0.0.1:9/v: cannot connect",
    )
    one_line_error(
        await ocpi(
            server, "register", "h2", "--versions-url", partner.versions_url, "--token", "nope"
        ),
        "HTTP 401",
    )
    partner.versions = ("2.0",)
    partner.tokens.add("another-token-a")
    one_line_error(
        await ocpi(
            server,
            "register",
            "h2",
            "--versions-url",
            partner.versions_url,
            "--token",
            "another-token-a",
        ),
        "the partner offers OCPI 2.0; we speak 2.2.1 and 2.1.1",
    )
    one_line_error(
        await ocpi(server, "register", "h2", "--versions-url", "ftp://x", "--token", "t"),
        "--versions-url",
    )
    assert [p.name for p in await server.app.partners.list_all()] == ["hub"]


# --- csms serve --only -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


def serve(tmp_path: Path, *only: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    ports = {"ocpp": free_port(), "api": free_port(), "ocpi": free_port()}
    (tmp_path / "csms.toml").write_text(
        f'[database]\nurl = "{db_url_for(tmp_path / "csms.db")}"\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {ports["ocpp"]}\nping_interval = 0\n'
        f'[api]\nhost = "127.0.0.1"\nport = {ports["api"]}\ntoken = "t"\n'
        f'[ocpi]\nhost = "127.0.0.1"\nport = {ports["ocpi"]}\n'
        f'base_url = "http://127.0.0.1:{ports["ocpi"]}"\n'
        '[log]\nformat = "json"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    args = [arg for name in only for arg in ("--only", name)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "csms.cli.main", "serve", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, ports


def wait_for(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 20
    while not listening(port):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_serve_only_ocpi(tmp_path: Path) -> None:
    proc, ports = serve(tmp_path, "ocpi")
    try:
        wait_for(proc, ports["ocpi"])
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{ports['ocpi']}/ocpi/versions", timeout=5)
        assert info.value.code == 401
        assert json.loads(info.value.read())["status_code"] == 2000
        assert not listening(ports["ocpp"]) and not listening(ports["api"])
    finally:
        err = stop(proc)
    started = [json.loads(line) for line in err.splitlines() if '"csms_started"' in line]
    assert started[0]["components"] == ["ocpi"]


def test_serve_only_ocpp_and_api_as_a_comma_list(tmp_path: Path) -> None:
    proc, ports = serve(tmp_path, "ocpp,api")
    try:
        wait_for(proc, ports["ocpp"])
        wait_for(proc, ports["api"])
        assert not listening(ports["ocpi"])
    finally:
        stop(proc)


def test_serve_only_rejects_unknown_parts(tmp_path: Path) -> None:
    proc, _ = serve(tmp_path, "ocpp", "web")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip() == "error: --only: 'web' is not one of ocpp, ocpi, api"
