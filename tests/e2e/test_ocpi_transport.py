"""OCPI transport rules on a real server (127.0.0.1, port 0, a real SQLite file): tokens in
both encodings, 401 cases, envelope and timestamps on every answer, request ids, routing
headers, malformed JSON, unknown paths, trailing slashes, faults as 3000, pagination.

The OCPI app is built with two probe modules besides credentials: a functional list
endpoint that pages over fixed objects, and one that fails on purpose; and an application
that is not OCPI is mounted on it at /sub (as csms.app mounts the payment pages at /pay),
whose requests pass the OCPI transport untouched.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from csms.core.partners import InterfaceRole, TokenEncoding
from csms.services.partners import PartnerService
from csms.storage.database import Database
from csms.storage.migrate import upgrade
from ocpi_cpo.app import build_ocpi_app
from ocpi_cpo.context import OcpiSettings
from ocpi_cpo.errors import OcpiFailure
from ocpi_cpo.routes import credentials
from ocpi_cpo.transport import (
    add_endpoint,
    add_route,
    caller_of,
    page_of,
    read_json,
    reply,
    reply_page,
)
from tests.e2e.fake_partner import FakePartner
from tests.postgres import db_url_for

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
OBJECTS: list[dict[str, Any]] = [
    {"id": f"OBJ{i}", "last_updated": START + timedelta(hours=i)} for i in range(5)
]


class SteppingClock:
    """Every reading is one second later than the one before."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def list_probes(request: web.Request) -> web.Response:
    caller_of(request)  # a registered partner, or the transport would not get here
    page = page_of(request)
    matching = [o for o in OBJECTS if page.matches(o["last_updated"])]
    items = matching[page.offset : page.offset + page.limit]
    return reply_page(request, items, len(matching), page)


async def post_probe(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or "id" not in body:
        raise OcpiFailure(2001, "id is missing")
    return reply(request, {"echo": body["id"]})


async def fail(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail of a bug")


def probes(app: web.Application) -> None:
    add_endpoint(app, "probes", InterfaceRole.SENDER, "/ocpi/2.2.1/probes")
    add_route(app, "GET", "/ocpi/2.2.1/probes", list_probes)
    add_route(app, "POST", "/ocpi/2.2.1/probes", post_probe)
    add_route(app, "GET", "/ocpi/2.2.1/fail", fail)


async def sub_page(request: web.Request) -> web.Response:
    return web.Response(text="<p>not OCPI</p>", content_type="text/html")


async def sub_echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="text/plain", status=202)


def sub_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/page/{name}", sub_page)
    app.router.add_post("/echo", sub_echo)
    return app


@dataclass
class Bridge:
    base: str
    partners: PartnerService
    clock: SteppingClock

    @property
    def versions_url(self) -> str:
        return f"{self.base}/ocpi/versions"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    db = Database.from_url(db_url_for(tmp_path / "ocpi.db"))
    await upgrade(db.engine)
    db.start()
    clock = SteppingClock()
    partners = PartnerService(db, clock)
    sock = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = OcpiSettings(base_url=base, page_limit=2, clock=clock)
    app = build_ocpi_app(settings, partners, (credentials.setup, probes))
    app.add_subapp("/sub", sub_app())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    yield Bridge(base, partners, clock)
    await runner.cleanup()
    await db.close()


@pytest.fixture
async def partner(bridge: Bridge) -> AsyncIterator[FakePartner]:
    fake = await FakePartner().start()
    yield fake
    await fake.stop()


async def registered(bridge: Bridge, partner: FakePartner) -> str:
    invitation = await bridge.partners.add("emsp")
    await partner.register_with(bridge.versions_url, invitation.token_a)
    assert partner.our_token is not None
    return partner.our_token


def check_envelope(body: dict[str, Any], bridge: Bridge, status_code: int) -> None:
    """Every answer: status_code, status_message, a fresh OCPI DateTime, nothing else but
    data."""
    assert set(body) <= {"data", "status_code", "status_message", "timestamp"}
    assert body["status_code"] == status_code
    assert isinstance(body["status_message"], str) and body["status_message"]
    assert DATETIME.match(body["timestamp"])
    # Read from the clock for this answer, not at start-up.
    assert body["timestamp"] == bridge.clock.now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert "Traceback" not in str(body)


async def test_versions_with_token_a_in_both_encodings(
    bridge: Bridge, partner: FakePartner
) -> None:
    invitation = await bridge.partners.add("emsp")
    for encoding in ("base64", "raw"):
        status, body, headers = await partner.call(
            "GET", bridge.versions_url, invitation.token_a, encoding=encoding
        )
        assert status == 200
        check_envelope(body, bridge, 1000)
        assert body["data"] == [
            {"version": "2.2.1", "url": f"{bridge.base}/ocpi/2.2.1"},
            {"version": "2.1.1", "url": f"{bridge.base}/ocpi/2.1.1"},
        ]
        assert not any(h.lower().startswith("ocpi-") for h in headers)
    status, body, headers = await partner.call(
        "GET", f"{bridge.base}/ocpi/2.2.1/", invitation.token_a
    )
    assert status == 200
    check_envelope(body, bridge, 1000)
    assert body["data"] == {
        "version": "2.2.1",
        "endpoints": [
            {
                "identifier": "credentials",
                "role": "SENDER",
                "url": f"{bridge.base}/ocpi/2.2.1/credentials",
            },
            {"identifier": "probes", "role": "SENDER", "url": f"{bridge.base}/ocpi/2.2.1/probes"},
        ],
    }
    assert not any(h.lower().startswith("ocpi-") for h in headers)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Token", "Token unknown-token", "Bearer whatever", "Basic dXNlcjpwYXNz"],
)
async def test_missing_or_unknown_token_is_401_with_the_envelope(
    bridge: Bridge, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/ocpi/versions", "/ocpi/2.2.1", "/ocpi/2.2.1/credentials", "/ocpi/2.2.1/probes"):
        async with (
            aiohttp.ClientSession() as session,
            session.get(bridge.base + path, headers=headers) as response,
        ):
            assert response.status == 401, path
            assert response.headers["WWW-Authenticate"] == "Token"
            assert response.content_type == "application/json"
            check_envelope(await response.json(), bridge, 2000)


async def test_token_a_only_on_versions_and_credentials(
    bridge: Bridge, partner: FakePartner
) -> None:
    invitation = await bridge.partners.add("emsp")
    status, body, headers = await partner.call(
        "GET", f"{bridge.base}/ocpi/2.2.1/probes", invitation.token_a
    )
    assert status == 401
    check_envelope(body, bridge, 2000)
    assert "versions and credentials" in body["status_message"]
    assert not any(h.lower().startswith("ocpi-") for h in headers)
    status, body, _ = await partner.call(
        "GET", f"{bridge.base}/ocpi/2.2.1/credentials", invitation.token_a
    )
    assert status == 200
    assert body["data"]["token"] == invitation.token_a


async def test_request_ids_are_echoed_or_generated(bridge: Bridge, partner: FakePartner) -> None:
    token = await registered(bridge, partner)
    rid, cid = str(uuid.uuid4()), str(uuid.uuid4())
    # Lower-case header names: header case does not matter.
    status, _, headers = await partner.call(
        "GET",
        f"{bridge.base}/ocpi/2.2.1/probes",
        token,
        headers={"x-request-id": rid, "x-correlation-id": cid},
    )
    assert status == 200
    assert (headers["X-Request-ID"], headers["X-Correlation-ID"]) == (rid, cid)
    # Absent: generated (and different each time); also on 401 and 404.
    for path, auth in (("/ocpi/2.2.1/probes", True), ("/ocpi/versions", False), ("/nope", False)):
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                bridge.base + path,
                headers={"Authorization": f"Token {token}"} if auth else {},
            ) as response,
        ):
            assert UUID.match(response.headers["X-Request-ID"])
            assert UUID.match(response.headers["X-Correlation-ID"])
            assert response.headers["X-Request-ID"] != response.headers["X-Correlation-ID"]


async def test_routing_headers_on_functional_modules_only_swapped(
    bridge: Bridge, partner: FakePartner
) -> None:
    token = await registered(bridge, partner)
    _, _, headers = await partner.call("GET", f"{bridge.base}/ocpi/2.2.1/probes", token)
    # Peer to peer, no routing headers in the request: from us, to the caller's party.
    assert {k: v for k, v in headers.items() if k.lower().startswith("ocpi-")} == {
        "OCPI-from-country-code": "NL",
        "OCPI-from-party-id": "CSM",
        "OCPI-to-country-code": "DE",
        "OCPI-to-party-id": "EMS",
    }
    # Via a hub: the answer goes to whoever the request said it came from.
    _, _, headers = await partner.call(
        "GET",
        f"{bridge.base}/ocpi/2.2.1/probes",
        token,
        headers={
            "ocpi-from-country-code": "FR",
            "ocpi-from-party-id": "XYZ",
            "OCPI-to-country-code": "NL",
            "OCPI-to-party-id": "CSM",
        },
    )
    assert headers["OCPI-to-country-code"] == "FR" and headers["OCPI-to-party-id"] == "XYZ"
    assert headers["OCPI-from-country-code"] == "NL" and headers["OCPI-from-party-id"] == "CSM"
    # Also on an OCPI error of a functional module ...
    _, body, headers = await partner.call(
        "POST", f"{bridge.base}/ocpi/2.2.1/probes", token, {"no": "id"}
    )
    assert body["status_code"] == 2001 and "OCPI-from-party-id" in headers
    # ... never on versions and credentials.
    for path in ("/ocpi/versions", "/ocpi/2.2.1", "/ocpi/2.2.1/credentials"):
        _, _, headers = await partner.call("GET", bridge.base + path, token)
        assert not any(h.lower().startswith("ocpi-") for h in headers), path


async def test_malformed_json_is_400_with_2001(bridge: Bridge, partner: FakePartner) -> None:
    token = await registered(bridge, partner)
    for path in ("/ocpi/2.2.1/probes", "/ocpi/2.2.1/credentials"):
        status, body, _ = await partner.call(
            "PUT" if "credentials" in path else "POST",
            bridge.base + path,
            token,
            raw_body=b'{"id": "x",',
        )
        assert status == 400, path
        check_envelope(body, bridge, 2001)
        assert "not valid JSON" in body["status_message"]
    # Valid JSON, invalid content: the OCPI layer answers (HTTP 200, 2001).
    status, body, _ = await partner.call("POST", f"{bridge.base}/ocpi/2.2.1/probes", token, [])
    assert status == 200
    check_envelope(body, bridge, 2001)
    status, body, _ = await partner.call(
        "POST", f"{bridge.base}/ocpi/2.2.1/probes", token, {"id": "P1"}
    )
    assert status == 200 and body["data"] == {"echo": "P1"}


async def test_nul_in_the_url_or_the_body_is_400_with_2001(
    bridge: Bridge, partner: FakePartner
) -> None:
    """U+0000 cannot be stored in PostgreSQL's text: refused before any look-up, on both
    databases."""
    token = await registered(bridge, partner)
    for method, path, raw in (
        ("GET", "/ocpi/2.2.1/probes?offset=0&x=%00", None),
        ("POST", "/ocpi/2.2.1/probes", b'{"id": "P\\u0000"}'),
    ):
        status, body, _ = await partner.call(method, bridge.base + path, token, raw_body=raw)
        assert status == 400, path
        check_envelope(body, bridge, 2001)
        assert "U+0000" in body["status_message"]


async def test_unknown_path_and_method(bridge: Bridge, partner: FakePartner) -> None:
    token = await registered(bridge, partner)
    for path in ("/ocpi/2.2.1/nothing", "/ocpi/2.1.1/versions", "/", "/ocpi/2.2.1/probes/x/y"):
        status, body, _ = await partner.call("GET", bridge.base + path, token)
        assert status == 404, path
        check_envelope(body, bridge, 2000)
    status, body, headers = await partner.call(
        "PATCH", f"{bridge.base}/ocpi/2.2.1/credentials", token, {}
    )
    assert status == 405
    check_envelope(body, bridge, 2000)
    assert "GET" in headers["Allow"]


async def test_a_mounted_application_is_served_untouched(
    bridge: Bridge, partner: FakePartner
) -> None:
    """No token, no envelope, no request ids: the mounted app answers as it does alone,
    its unknown paths and methods too; OCPI's own paths keep their rules beside it."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bridge.base}/sub/page/one") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert await response.text() == "<p>not OCPI</p>"
            assert "X-Request-ID" not in response.headers
            assert "X-Correlation-ID" not in response.headers
        # A body that is not JSON is the mounted app's business, not a 2001.
        async with session.post(f"{bridge.base}/sub/echo", data=b"cap=30&email=") as response:
            assert response.status == 202
            assert await response.read() == b"cap=30&email="
        for method, path, status in (
            ("GET", "/sub/nothing", 404),
            ("GET", "/sub/page/one/two", 404),
            ("PUT", "/sub/echo", 405),
        ):
            async with session.request(method, bridge.base + path) as response:
                assert response.status == status, path
                assert response.content_type == "text/plain", path
                assert "X-Request-ID" not in response.headers
        # Beside it, OCPI paths still want a token and answer with the envelope.
        async with session.get(f"{bridge.base}/ocpi/2.2.1/probes") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Token"
            check_envelope(await response.json(), bridge, 2000)
        # A path that only begins like the mount's is OCPI's unknown path.
        async with session.get(f"{bridge.base}/subway") as response:
            assert response.status == 404
            assert "X-Request-ID" in response.headers
            check_envelope(await response.json(), bridge, 2000)
    token = await registered(bridge, partner)
    status, body, headers = await partner.call("GET", f"{bridge.base}/ocpi/2.2.1/probes", token)
    assert status == 200 and len(body["data"]) == 2
    assert "X-Request-ID" in headers


async def test_trailing_slashes_are_tolerated(bridge: Bridge, partner: FakePartner) -> None:
    token = await registered(bridge, partner)
    for path in ("/ocpi/versions/", "/ocpi/2.2.1/", "/ocpi/2.2.1/credentials/"):
        status, body, _ = await partner.call("GET", bridge.base + path, token)
        assert status == 200 and body["status_code"] == 1000, path
    status, body, headers = await partner.call("GET", f"{bridge.base}/ocpi/2.2.1/probes/", token)
    assert status == 200 and len(body["data"]) == 2
    assert headers["Link"].startswith(f"<{bridge.base}/ocpi/2.2.1/probes/?offset=2&limit=2")


async def test_a_fault_is_3000_without_traceback_and_logged_with_the_request_id(
    bridge: Bridge, partner: FakePartner
) -> None:
    token = await registered(bridge, partner)
    rid = str(uuid.uuid4())
    with capture_logs() as logs:
        status, body, headers = await partner.call(
            "GET", f"{bridge.base}/ocpi/2.2.1/fail", token, headers={"X-Request-ID": rid}
        )
    assert status == 500
    check_envelope(body, bridge, 3000)
    assert rid in body["status_message"]
    assert "secret detail" not in str(body) and "RuntimeError" not in str(body)
    assert headers["X-Request-ID"] == rid
    (failed,) = [e for e in logs if e["event"] == "ocpi_request_failed"]
    assert failed["request_id"] == rid
    assert failed["log_level"] == "error" and failed["exc_info"] is True


async def test_pagination_headers_links_and_filters(bridge: Bridge, partner: FakePartner) -> None:
    token = await registered(bridge, partner)
    url = f"{bridge.base}/ocpi/2.2.1/probes"
    seen: list[str] = []
    next_url: str | None = f"{url}?limit=1&date_from=2026-05-01T13:00:00Z"
    totals = set()
    while next_url is not None:
        status, body, headers = await partner.call("GET", next_url, token)
        assert status == 200
        check_envelope(body, bridge, 1000)
        seen += [o["id"] for o in body["data"]]
        assert all(DATETIME.match(o["last_updated"]) for o in body["data"])
        totals.add(headers["X-Total-Count"])
        assert headers["X-Limit"] == "2"  # our maximum, configured
        link = headers.get("Link")
        if link is None:
            next_url = None
        else:
            assert link.startswith(f"<{url}?") and link.endswith('>; rel="next"')
            assert "date_from=2026-05-01T13:00:00Z" in link
            next_url = link[1 : link.index(">")]
    # date_from inclusive: OBJ1 (13:00) is in.
    assert seen == ["OBJ1", "OBJ2", "OBJ3", "OBJ4"] and totals == {"4"}
    # date_to exclusive; a limit above ours is capped.
    _, body, headers = await partner.call(
        "GET", f"{url}?limit=50&date_to=2026-05-01T14:00:00Z", token
    )
    assert [o["id"] for o in body["data"]] == ["OBJ0", "OBJ1"]
    assert headers["X-Total-Count"] == "2" and "Link" not in headers
    # Bad parameters: 2001 from the OCPI layer.
    status, body, _ = await partner.call("GET", f"{url}?offset=-3", token)
    assert status == 200
    check_envelope(body, bridge, 2001)
    assert "offset" in body["status_message"]


async def test_the_encoding_a_partner_uses_is_remembered(
    bridge: Bridge, partner: FakePartner
) -> None:
    token = await registered(bridge, partner)
    assert (await bridge.partners.get("emsp")).token_encoding is TokenEncoding.BASE64
    status, _, _ = await partner.call(
        "GET", f"{bridge.base}/ocpi/2.2.1/probes", token, encoding="raw"
    )
    assert status == 200
    assert (await bridge.partners.get("emsp")).token_encoding is TokenEncoding.RAW
