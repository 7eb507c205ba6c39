"""Staff users on the operator API, against the real server over HTTP: what each role may
do (403 naming the role needed), the audit log recording the token's user and never a
name the client sends, disabled and rotated-away tokens refused at once, the data
directory's token as the `local` admin, and the back-off after wrong tokens."""

from __future__ import annotations

import asyncio
import getpass
import re
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from tests.e2e.cli import Ran, cli_env, csms, ok, one_line_error
from tests.e2e.conftest import Running, StartServer
from tests.e2e.logs import captured_logs
from tests.e2e.sim import charger
from tests.e2e.sql import execute

TRIGGER = "/api/chargers/USERS-1/remote/trigger"


class Api:
    def __init__(self, server: Running, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.server.api_url + path, json=body, headers=sent
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json(), response.headers
            return response.status, await response.text(), response.headers


def _env(server: Running, token: str | None) -> dict[str, str]:
    """The CLI's environment: the data directory's token file, or a user's token."""
    env = cli_env(server)
    del env["CSMS_API_TOKEN"]
    env["CSMS_API_TOKEN_FILE"] = server.config.api.token_file
    if token is not None:
        env["CSMS_API_TOKEN"] = token
    return env


async def _add(server: Running, name: str, role: str) -> str:
    ran = await csms(server, "users", "add", name, "--role", role, "--json")
    added = ran.json()
    assert ran.code == 0 and added["user"]["name"] == name and added["user"]["role"] == role
    token = added["token"]
    assert isinstance(token, str) and token.startswith("csms_u_")
    return token


async def _data_dir_server(start_server: StartServer, tmp_path: Path) -> tuple[Running, str]:
    token_file = tmp_path / "data" / ".csms" / "api-token"
    server = await start_server(api={"token": "", "token_file": str(token_file)})
    return server, token_file.read_text().strip()


async def test_roles_audit_and_refused_tokens(start_server: StartServer, tmp_path: Path) -> None:
    server, admin = await _data_dir_server(start_server, tmp_path)
    viewer = await _add(server, "vera", "viewer")
    operator = await _add(server, "otto", "operator")
    async with aiohttp.ClientSession() as http, charger(server.url, "USERS-1"):
        api = Api(server, http)

        # A viewer reads ...
        status, chargers, _ = await api.call("GET", "/api/chargers", viewer)
        assert status == 200 and [c["id"] for c in chargers["items"]] == ["USERS-1"]
        status, _, _ = await api.call("GET", "/api/audit", viewer)
        assert status == 200
        # ... but sends no command: 403 naming the role needed, and nothing is audited.
        status, body, _ = await api.call("POST", TRIGGER, viewer, body={"message": "Heartbeat"})
        assert status == 403, body
        assert body["error"] == ("this needs the operator role (or higher); user vera is a viewer")
        assert (body["role_needed"], body["role"], body["user"]) == ("operator", "viewer", "vera")
        # Managing users is for admins.
        for token, name, role in ((viewer, "vera", "viewer"), (operator, "otto", "operator")):
            status, body, _ = await api.call("GET", "/api/users", token)
            assert status == 403 and body["role_needed"] == "admin", body
            assert body["error"].endswith(
                f"user {name} is {'a' if role == 'viewer' else 'an'} {role}"
            )

        # An operator sends; the audit records its user, not the name it claims.
        status, result, _ = await api.call(
            "POST",
            TRIGGER,
            operator,
            body={"message": "Heartbeat"},
            headers={"X-CSMS-User": "mallory", "X-CSMS-Source": "api"},
        )
        assert status == 200 and result["outcome"] == "accepted", result
        status, audit, _ = await api.call("GET", "/api/audit", viewer)
        (entry,) = audit["items"]
        assert (entry["id"], entry["source"], entry["requested_by"]) == (
            result["id"],
            "api",
            "otto",
        )

        # The data directory's token is the local admin: it manages users ...
        status, page, _ = await api.call("GET", "/api/users", admin)
        listed = page["items"]
        assert status == 200 and page["total"] == 2 and page["next_cursor"] is None
        assert [(u["name"], u["role"], u["enabled"]) for u in listed] == [
            ("otto", "operator", True),
            ("vera", "viewer", True),
        ]
        assert all("token" not in key for u in listed for key in u if key != "token_issued_at")
        status, first, _ = await api.call("GET", "/api/users?limit=1", admin)
        assert status == 200 and first["items"] == listed[:1] and first["total"] == 2
        status, second, _ = await api.call("GET", first["next"], admin)
        assert status == 200 and second["items"] == listed[1:] and second["next"] is None
        status, body, _ = await api.call("GET", "/api/users?limit=0", admin)
        assert status == 400 and body["parameter"] == "limit"
        status, body, _ = await api.call("GET", "/api/users?role=admin", admin)
        assert status == 400 and body["error"].startswith("unknown parameter 'role'")
        status, shown, _ = await api.call("GET", "/api/users/otto", admin)
        assert status == 200 and shown == listed[0]
        status, body, _ = await api.call("GET", "/api/users/nobody", admin)
        assert status == 404 and body["error"] == "no user nobody"
        # ... and the CLI on the server machine uses it as before: the audit shows the OS
        # user (what the CLI sends with that token) and the source cli.
        ran = await csms(
            server, "remote", "trigger", "USERS-1", "Heartbeat", env=_env(server, None)
        )
        assert ran.code == 0, ran
        history = ok(await csms(server, "commands", "list", "--json", env=_env(server, None)))
        newest = re.findall(r'"requested_by": "([^"]*)"', history)
        assert newest == [getpass.getuser(), "otto"]
        assert '"source": "cli"' in history

        # The CLI with a viewer's token: refused in one line naming the role needed.
        ran = await csms(
            server, "remote", "trigger", "USERS-1", "Heartbeat", env=_env(server, viewer)
        )
        one_line_error(ran, "this needs the operator role (or higher); user vera is a viewer")
        # With the operator's token the CLI's command is recorded as that user's.
        ran = await csms(
            server, "remote", "trigger", "USERS-1", "Heartbeat", env=_env(server, operator)
        )
        assert ran.code == 0, ran
        status, audit, _ = await api.call("GET", "/api/audit", operator)
        assert [(e["source"], e["requested_by"]) for e in audit["items"]] == [
            ("cli", "otto"),
            ("cli", getpass.getuser()),
            ("api", "otto"),
        ]

        # Disabled: refused at its next request (the CLI changed the database the server
        # reads); enabled again: taken.
        ok(await csms(server, "users", "disable", "otto", "--yes"))
        status, body, _ = await api.call("GET", "/api/chargers", operator)
        assert status == 401 and body["error"] == "missing or wrong bearer token"
        ok(await csms(server, "users", "enable", "otto"))
        status, _, _ = await api.call("GET", "/api/chargers", operator)
        assert status == 200

        # Rotated: the old token is refused at once, the new one taken.
        ran = await csms(server, "users", "rotate", "otto", "--json")
        rotated = ran.json()["token"]
        assert rotated != operator
        status, _, _ = await api.call("POST", TRIGGER, operator, body={"message": "Heartbeat"})
        assert status == 401
        status, result, _ = await api.call("POST", TRIGGER, rotated, body={"message": "Heartbeat"})
        assert status == 200 and result["outcome"] == "accepted"


async def test_wrong_tokens_back_off_and_the_right_token_then_works(
    start_server: StartServer, tmp_path: Path
) -> None:
    server, admin = await _data_dir_server(start_server, tmp_path)
    viewer = await _add(server, "vera", "viewer")
    async with aiohttp.ClientSession() as http:
        api = Api(server, http)
        with captured_logs() as logs:
            # Ten wrong tokens are answered 401 as they come (and a missing one never counts).
            for n in range(10):
                status, _, _ = await api.call("GET", "/api/chargers", f"csms_u_guess{n}")
                assert status == 401
            for _ in range(5):
                status, _, _ = await api.call("GET", "/api/chargers", None)
                assert status == 401
            # The eleventh is refused too, and starts the back-off: 1 s, then 2 s ...
            status, _, _ = await api.call("GET", "/api/chargers", "csms_u_guess10")
            assert status == 401
            # Meanwhile nothing from this address is looked at, not even a right token.
            for token in ("csms_u_guess11", viewer, admin):
                status, body, headers = await api.call("GET", "/api/chargers", token)
                assert status == 429, body
                assert headers["Retry-After"] == "1"
                assert body == {
                    "error": "too many wrong tokens from your address: try again in 1 s",
                    "retry_after_s": 1,
                }
            await asyncio.sleep(1.05)
            # After the back-off the right token works ...
            status, _, _ = await api.call("GET", "/api/chargers", viewer)
            assert status == 200
            # ... and the next wrong one doubles the wait.
            status, _, _ = await api.call("GET", "/api/chargers", "csms_u_guess12")
            assert status == 401
            status, _, headers = await api.call("GET", "/api/chargers", viewer)
            assert status == 429 and headers["Retry-After"] == "2"
        limited = logs.named("auth_failures_limited")
        assert len(limited) == 1, limited  # once per window
        assert (limited[0]["listener"], limited[0]["peer"], limited[0]["failures"]) == (
            "api",
            "127.0.0.1",
            11,
        )
        assert limited[0]["log_level"] == "warning"
        assert not any("csms_u_guess" in str(e) for e in logs.events)  # never a token
        await asyncio.sleep(2.05)
        status, metrics, _ = await api.call("GET", "/metrics", viewer)
        assert status == 200
        assert 'csms_auth_failures_total{listener="api"} 12\n' in metrics
        assert 'csms_auth_limited_total{listener="api"} 4\n' in metrics


async def test_users_cli_messages_and_exit_codes(server: Running) -> None:
    async def run(*args: str) -> Ran:
        return await csms(server, "users", *args)

    added = ok(await run("add", "alice", "--role", "Operator"))
    lines = added.splitlines()
    assert lines[0] == "user alice added (operator)"
    assert re.fullmatch(r"token: csms_u_[A-Za-z0-9_-]{43}", lines[1])
    one_line_error(await run("add", "alice", "--role", "viewer"), "user alice already exists")
    one_line_error(
        await run("add", "local", "--role", "viewer"),
        "invalid user name 'local': 'local' is the user of the API's own token",
    )
    one_line_error(
        await run("add", "bob", "--role", "boss"),
        "--role must be one of viewer, operator or admin, not 'boss'",
    )
    missing = await run("add", "bob")
    assert missing.code == 2 and "missing option '--role'" in missing.err
    one_line_error(await run("add", "bad name", "--role", "viewer"), "invalid user name")

    listed = ok(await run("list"))
    assert listed.splitlines()[0].split() == ["NAME", "ROLE", "STATE", "TOKEN", "ISSUED", "ADDED"]
    assert listed.splitlines()[1].split()[:3] == ["alice", "operator", "enabled"]
    assert "alice" in listed and "csms_u_" not in listed
    assert (
        listed.splitlines()[-1] == "(and local, admin: the API's own token, api.token or its file)"
    )

    one_line_error(
        await run("disable", "alice"), "disable user alice: add --yes to confirm (no terminal"
    )
    assert ok(await run("show", "alice", "--json"))  # still enabled: nothing was done
    shown = (await run("show", "alice", "--json")).json()
    assert shown["enabled"] is True and shown["role"] == "operator"
    assert ok(await run("disable", "alice", "-y")) == "user alice disabled: its token is refused\n"
    assert (await run("list", "--json")).json()[0]["enabled"] is False
    assert "state:        disabled" in ok(await run("show", "alice"))
    assert ok(await run("enable", "alice")) == "user alice enabled (operator)\n"
    assert ok(await run("set", "alice", "--role", "admin")) == "user alice is now admin\n"
    rotated = ok(await run("rotate", "alice")).splitlines()
    assert rotated[0] == "user alice has a new token; the old one is refused from now on"
    assert rotated[1].startswith("token: csms_u_") and rotated[1] != lines[1]
    for command in ("show", "enable", "rotate"):
        one_line_error(await run(command, "nobody"), "no user nobody")
    one_line_error(await run("disable", "nobody", "--yes"), "no user nobody")


async def test_unknown_ocpi_tokens_back_off_the_same_way(server: Running) -> None:
    invitation = await server.app.partners.add("emsp")
    versions = f"{server.ocpi_url}/ocpi/versions"

    async def get(token: str) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Token {token}"}
        async with aiohttp.ClientSession() as http, http.get(versions, headers=headers) as got:
            return got.status, await got.json(), got.headers

    with captured_logs() as logs:
        for n in range(11):
            status, body, _ = await get(f"unknown-{n}")
            assert status == 401 and body["status_message"] == "unknown credentials token"
        status, body, headers = await get(invitation.token_a)
        assert status == 429 and headers["Retry-After"] == "1"
        assert body["status_code"] == 2000
        assert body["status_message"] == (
            "too many unknown tokens from your address: try again in 1 s"
        )
        await asyncio.sleep(1.05)
        status, body, _ = await get(invitation.token_a)
        assert status == 200 and body["status_code"] == 1000
    (limited,) = logs.named("auth_failures_limited")
    assert (limited["listener"], limited["failures"]) == ("ocpi", 11)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        metrics = await response.text()
    assert 'csms_auth_failures_total{listener="ocpi"} 11\n' in metrics
    assert 'csms_auth_limited_total{listener="ocpi"} 1\n' in metrics
    # The API's own back-off is another: nothing was counted there.
    assert 'csms_auth_failures_total{listener="api"}' not in metrics


async def test_a_user_token_is_503_while_the_database_fails_the_local_one_still_works(
    server: Running,
) -> None:
    viewer = await _add(server, "vera", "viewer")
    async with aiohttp.ClientSession() as http:
        api = Api(server, http)
        status, _, _ = await api.call("GET", "/metrics", viewer)
        assert status == 200
        # A real failure of the database: the users' table is gone under the server.
        await asyncio.to_thread(
            execute, server.db_path, "ALTER TABLE staff_users RENAME TO staff_users_away"
        )
        try:
            with captured_logs() as logs:
                status, body, _ = await api.call("GET", "/metrics", viewer)
            assert status == 503, body
            assert body == {
                "error": "cannot check the token now: the database failed (see the log)"
            }
            (failed,) = logs.named("api_token_check_failed")
            assert "staff_users" in failed["error"]
            status, metrics, _ = await api.call("GET", "/metrics", "test-token")
            assert status == 200 and "csms_database_up 1\n" in metrics
        finally:
            await asyncio.to_thread(
                execute, server.db_path, "ALTER TABLE staff_users_away RENAME TO staff_users"
            )
        status, _, _ = await api.call("GET", "/metrics", viewer)
        assert status == 200
