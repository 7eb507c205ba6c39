"""The credentials handshake both ways against the real server (`csms serve` in-process,
port 0, a real SQLite file) and a fake eMSP: every error path, both token encodings,
token rotation on PUT, DELETE, and nothing half-stored on failure."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from csms.core.partners import Direction, InterfaceRole, PartnerStatus, TokenEncoding
from csms.services.partners import PartnerExists, UnknownPartner
from ocpi_cpo.client import OcpiClient
from ocpi_cpo.context import OcpiSettings
from ocpi_cpo.errors import (
    MissingEndpoints,
    NoCommonVersion,
    PartnerApiUnusable,
    PartnerHttpError,
)
from ocpi_cpo.registration import Registrar
from tests.e2e.conftest import Running, StartServer
from tests.e2e.fake_partner import FakePartner, RefusedByPeer

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")


@pytest.fixture
async def partner() -> AsyncIterator[FakePartner]:
    fake = await FakePartner().start()
    yield fake
    await fake.stop()


def versions_url(server: Running) -> str:
    return f"{server.ocpi_url}/ocpi/versions"


def check_our_credentials(server: Running, data: dict[str, Any]) -> None:
    assert data["url"] == versions_url(server)
    assert data["roles"] == [
        {
            "role": "CPO",
            "business_details": {"name": "CSMS"},
            "party_id": "CSM",
            "country_code": "NL",
        }
    ]
    assert 0 < len(data["token"]) <= 64


async def refused(coro: Any) -> RefusedByPeer:
    with pytest.raises(RefusedByPeer) as info:
        await coro
    body = info.value.body
    assert DATETIME.match(body["timestamp"]) and "data" not in body
    return info.value


# --- a partner registers with us -------------------------------------------------------------


async def test_partner_registers_with_us(server: Running, partner: FakePartner) -> None:
    invitation = await server.app.partners.add("emsp1")
    ours = await partner.register_with(versions_url(server), invitation.token_a)
    check_our_credentials(server, ours)
    token_c = ours["token"]
    assert token_c != invitation.token_a

    stored = await server.app.partners.get("emsp1")
    assert stored.status is PartnerStatus.REGISTERED
    assert stored.direction is Direction.INBOUND
    assert stored.version == "2.2.1" and stored.versions_url == partner.versions_url
    assert stored.token_encoding is TokenEncoding.BASE64
    assert stored.their_token == partner.their_token_b
    assert [(r.role.value, r.country_code, r.party_id) for r in stored.roles] == [
        ("EMSP", "DE", "EMS")
    ]
    assert {(e.identifier, e.role) for e in stored.endpoints} == {
        ("credentials", InterfaceRole.SENDER),
        ("locations", InterfaceRole.RECEIVER),
        ("sessions", InterfaceRole.RECEIVER),
        ("cdrs", InterfaceRole.RECEIVER),
        ("tokens", InterfaceRole.SENDER),
        ("commands", InterfaceRole.SENDER),
    }
    # Before answering the POST we fetched its versions and details with its token B,
    # Base64-encoded as it sent its own, with our ids and the POST's correlation id.
    fetched = [s for s in partner.seen if s.method == "GET"]
    assert [s.path for s in fetched] == ["/ocpi/emsp/versions", "/ocpi/emsp/2.2.1"]
    for seen in fetched:
        assert seen.headers["Authorization"] == (
            "Token " + base64.b64encode(str(partner.their_token_b).encode()).decode()
        )
        assert seen.headers["X-Request-ID"] and seen.headers["X-Correlation-ID"]
        assert not any(h.lower().startswith("ocpi-") for h in seen.headers)
    assert fetched[0].headers["X-Request-ID"] != fetched[1].headers["X-Request-ID"]
    assert fetched[0].headers["X-Correlation-ID"] == fetched[1].headers["X-Correlation-ID"]

    # Token A is spent; token C opens our credentials.
    status, body, _ = await partner.call("GET", versions_url(server), invitation.token_a)
    assert status == 401 and body["status_code"] == 2000
    cred_url = f"{server.ocpi_url}/ocpi/2.2.1/credentials"
    status, body, _ = await partner.call("GET", cred_url, token_c)
    assert status == 200 and body["data"]["token"] == token_c
    # POST again once registered: 405.
    failure = await refused(partner.register_with(versions_url(server), token_c))
    assert failure.status == 405


async def test_the_correlation_id_of_the_post_is_kept_on_our_calls(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    cred_url = await partner.credentials_url(versions_url(server), invitation.token_a)
    partner.seen.clear()
    partner.tokens.add("b-token")
    status, body, headers = await partner.call(
        "POST",
        cred_url,
        invitation.token_a,
        {"token": "b-token", "url": partner.versions_url, "roles": list(partner.roles)},
        headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "req-1"},
    )
    assert status == 200 and body["status_code"] == 1000
    assert (headers["X-Request-ID"], headers["X-Correlation-ID"]) == ("req-1", "corr-1")
    assert {s.headers["X-Correlation-ID"] for s in partner.seen} == {"corr-1"}
    assert "req-1" not in {s.headers["X-Request-ID"] for s in partner.seen}


async def test_raw_tokens_both_ways(server: Running, partner: FakePartner) -> None:
    partner.sends = "raw"
    partner.accepts = "raw"
    invitation = await server.app.partners.add("old-emsp")
    ours = await partner.register_with(versions_url(server), invitation.token_a)
    stored = await server.app.partners.get("old-emsp")
    assert stored.token_encoding is TokenEncoding.RAW
    assert all(
        s.headers["Authorization"] == f"Token {partner.their_token_b}"
        for s in partner.seen
        if s.method == "GET"
    )
    status, _, _ = await partner.call(
        "GET", f"{server.ocpi_url}/ocpi/2.2.1/credentials", ours["token"]
    )
    assert status == 200


async def test_we_fall_back_to_the_other_encoding_after_a_401(
    server: Running, partner: FakePartner
) -> None:
    partner.sends = "base64"  # it writes 2.2.1 style but reads only raw tokens
    partner.accepts = "raw"
    invitation = await server.app.partners.add("mixed")
    await partner.register_with(versions_url(server), invitation.token_a)
    assert (await server.app.partners.get("mixed")).token_encoding is TokenEncoding.RAW
    statuses = [s.headers["Authorization"].startswith("Token fake-b-") for s in partner.seen]
    assert statuses[:2] == [False, True]  # Base64 refused, then raw


async def test_unreachable_partner_is_3001_and_nothing_is_stored(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    cred_url = await partner.credentials_url(versions_url(server), invitation.token_a)
    status, body, _ = await partner.call(
        "POST",
        cred_url,
        invitation.token_a,
        {"token": "b", "url": "http://127.0.0.1:9/versions", "roles": list(partner.roles)},
    )
    assert status == 200  # reached the OCPI layer: no HTTP error (2.2.1 errata)
    assert body["status_code"] == 3001
    assert "http://127.0.0.1:9/versions" in body["status_message"]
    stored = await server.app.partners.get("emsp1")
    assert stored.status is PartnerStatus.PENDING and not stored.endpoints and not stored.roles
    # Token A still works: the partner fixes its side and registers.
    await partner.register_with(versions_url(server), invitation.token_a)
    assert (await server.app.partners.get("emsp1")).status is PartnerStatus.REGISTERED


async def test_partner_refusing_its_own_token_is_3001(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    cred_url = await partner.credentials_url(versions_url(server), invitation.token_a)
    status, body, _ = await partner.call(
        "POST",
        cred_url,
        invitation.token_a,
        {"token": "not-known-there", "url": partner.versions_url, "roles": list(partner.roles)},
    )
    assert status == 200 and body["status_code"] == 3001
    assert "HTTP 401" in body["status_message"]


async def test_no_common_version_is_3002(server: Running, partner: FakePartner) -> None:
    partner.versions = ("2.1.1", "2.2")
    invitation = await server.app.partners.add("emsp1")
    failure = await refused(partner.register_with(versions_url(server), invitation.token_a))
    assert failure.status == 200 and failure.body["status_code"] == 3002
    assert "2.1.1, 2.2" in failure.body["status_message"]
    assert (await server.app.partners.get("emsp1")).status is PartnerStatus.PENDING


async def test_missing_required_endpoints_is_3003(
    start_server: StartServer, partner: FakePartner
) -> None:
    server = await start_server(ocpi={"required_endpoints": "credentials,tariffs:RECEIVER"})
    invitation = await server.app.partners.add("emsp1")
    failure = await refused(partner.register_with(versions_url(server), invitation.token_a))
    assert failure.body["status_code"] == 3003
    assert "tariffs RECEIVER" in failure.body["status_message"]
    # Without a credentials endpoint nobody can register.
    partner.endpoints = (("locations", "RECEIVER"), ("tariffs", "RECEIVER"))
    failure = await refused(partner.register_with(versions_url(server), invitation.token_a))
    assert failure.body["status_code"] == 3003
    assert "credentials" in failure.body["status_message"]
    stored = await server.app.partners.get("emsp1")
    assert stored.status is PartnerStatus.PENDING and not stored.endpoints


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://x/versions", "roles": []}, "token"),
        ({"token": "t", "roles": []}, "url"),
        ({"token": "t", "url": "http://x/versions", "roles": []}, "roles"),
        ({"token": "t", "url": "http://x/versions", "roles": [{"role": "EMSP"}]}, "country_code"),
        ([], "JSON object"),
    ],
)
async def test_invalid_credentials_are_2001(
    server: Running, partner: FakePartner, body: Any, field: str
) -> None:
    invitation = await server.app.partners.add("emsp1")
    cred_url = f"{server.ocpi_url}/ocpi/2.2.1/credentials"
    status, answer, _ = await partner.call("POST", cred_url, invitation.token_a, body)
    assert status == 200 and answer["status_code"] == 2001
    assert field in answer["status_message"]


async def test_put_and_delete_before_registration_are_405(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    cred_url = f"{server.ocpi_url}/ocpi/2.2.1/credentials"
    body = {"token": "b", "url": partner.versions_url, "roles": list(partner.roles)}
    for method in ("PUT", "DELETE"):
        status, answer, _ = await partner.call(method, cred_url, invitation.token_a, body)
        assert status == 405, method
        assert answer["status_code"] == 2000 and DATETIME.match(answer["timestamp"])
    assert partner.seen == []  # nothing was fetched for a refused PUT
    assert (await server.app.partners.get("emsp1")).status is PartnerStatus.PENDING


async def test_put_refetches_endpoints_and_rotates_tokens(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    first = await partner.register_with(versions_url(server), invitation.token_a)
    old_b = partner.their_token_b
    assert old_b is not None
    partner.endpoints = (("credentials", "SENDER"), ("cdrs", "RECEIVER"))
    partner.seen.clear()
    second = await partner.update(versions_url(server))
    check_our_credentials(server, second)
    assert second["token"] != first["token"]
    # Fetched again with the new token B, and stored.
    fetched = [s for s in partner.seen if s.method == "GET" and s.path.startswith("/ocpi/emsp")]
    assert fetched and old_b not in str([s.headers for s in fetched])
    stored = await server.app.partners.get("emsp1")
    assert stored.their_token == partner.their_token_b != old_b
    assert {e.identifier for e in stored.endpoints} == {"credentials", "cdrs"}
    cred_url = f"{server.ocpi_url}/ocpi/2.2.1/credentials"
    status, _, _ = await partner.call("GET", cred_url, first["token"])
    assert status == 401
    status, body, _ = await partner.call("GET", cred_url, second["token"])
    assert status == 200 and body["data"]["token"] == second["token"]


async def test_a_failed_put_keeps_the_old_registration(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    first = await partner.register_with(versions_url(server), invitation.token_a)
    partner.versions = ("2.1.1",)
    failure = await refused(partner.update(versions_url(server)))
    assert failure.body["status_code"] == 3002
    stored = await server.app.partners.get("emsp1")
    assert stored.status is PartnerStatus.REGISTERED and len(stored.endpoints) == 6
    status, _, _ = await partner.call(
        "GET", f"{server.ocpi_url}/ocpi/2.2.1/credentials", first["token"]
    )
    assert status == 200


async def test_delete_unregisters_and_old_tokens_get_401(
    server: Running, partner: FakePartner
) -> None:
    invitation = await server.app.partners.add("emsp1")
    ours = await partner.register_with(versions_url(server), invitation.token_a)
    await partner.unregister(versions_url(server))
    stored = await server.app.partners.get("emsp1")
    assert stored.status is PartnerStatus.UNREGISTERED
    assert stored.their_token is None and not stored.endpoints
    for path in ("/ocpi/versions", "/ocpi/2.2.1/credentials"):
        status, body, _ = await partner.call("GET", server.ocpi_url + path, ours["token"])
        assert status == 401 and body["status_code"] == 2000


async def test_several_partners_at_once(server: Running) -> None:
    fakes = [await FakePartner(roles=(role,)).start() for role in _roles(3)]
    try:
        tokens = []
        for i, fake in enumerate(fakes):
            invitation = await server.app.partners.add(f"p{i}")
            tokens.append(
                (await fake.register_with(versions_url(server), invitation.token_a))["token"]
            )
        listed = await server.app.partners.list_all()
        assert [(p.name, p.status.value, p.roles[0].party_id) for p in listed] == [
            ("p0", "registered", "EM0"),
            ("p1", "registered", "EM1"),
            ("p2", "registered", "EM2"),
        ]
        assert len(set(tokens)) == 3
        # Removing one leaves the others working.
        await server.app.partners.remove("p1")
        cred_url = f"{server.ocpi_url}/ocpi/2.2.1/credentials"
        codes = [(await fakes[0].call("GET", cred_url, t))[0] for t in tokens]
        assert codes == [200, 401, 200]
    finally:
        for fake in fakes:
            await fake.stop()


def _roles(n: int) -> list[dict[str, Any]]:
    return [
        {
            "role": "EMSP",
            "country_code": "DE",
            "party_id": f"EM{i}",
            "business_details": {"name": f"eMSP {i}"},
        }
        for i in range(n)
    ]


# --- we register with a partner ---------------------------------------------------------------


@pytest.fixture
async def registrar(server: Running) -> AsyncIterator[Registrar]:
    settings = OcpiSettings.from_config(server.config.ocpi, server.ocpi_url)
    async with aiohttp.ClientSession() as session:
        yield Registrar(
            server.app.partners, OcpiClient(session, timeout=5), settings.us, settings.required
        )


async def test_we_register_with_a_partner(
    server: Running, partner: FakePartner, registrar: Registrar
) -> None:
    stored = await registrar.register_with("hub", partner.versions_url, partner.token_a)
    assert stored.status is PartnerStatus.REGISTERED
    assert stored.direction is Direction.OUTBOUND
    assert stored.version == "2.2.1" and len(stored.endpoints) == 6
    assert stored.their_token is not None and stored.their_token.startswith("fake-c-")
    assert [r.party for r in stored.roles] == ["DE/EMS"]
    # While answering our POST, the partner called our versions with the token we offered.
    assert partner.callbacks and partner.callbacks[0][0] == 200
    assert partner.callbacks[0][1]["status_code"] == 1000
    # What we POSTed: our credentials with a token for it, token A in the header.
    (post,) = [s for s in partner.seen if s.method == "POST"]
    check_our_credentials(server, post.body)
    assert post.body["token"] == partner.our_token
    assert partner.our_token is not None
    assert post.headers["X-Request-ID"] and post.headers["X-Correlation-ID"]
    # That token now works on our side, as a registered partner's.
    cred_url = f"{server.ocpi_url}/ocpi/2.2.1/credentials"
    status, body, _ = await partner.call("GET", cred_url, partner.our_token)
    assert status == 200 and body["data"]["token"] == partner.our_token
    caller = await server.app.partners.authenticate([(partner.our_token, TokenEncoding.RAW)])
    assert caller is not None and caller.registered


async def test_we_register_with_a_raw_token_partner(
    server: Running, partner: FakePartner, registrar: Registrar
) -> None:
    partner.accepts = "raw"
    partner.sends = "raw"
    stored = await registrar.register_with("old", partner.versions_url, partner.token_a)
    assert stored.token_encoding is TokenEncoding.RAW
    assert partner.seen[-1].headers["Authorization"] == f"Token {partner.token_a}"


async def test_our_registration_errors_store_nothing(
    server: Running, partner: FakePartner, registrar: Registrar
) -> None:
    with pytest.raises(PartnerApiUnusable, match="cannot connect"):
        await registrar.register_with("x", "http://127.0.0.1:9/versions", "tok")
    with pytest.raises(PartnerApiUnusable, match="HTTP 401"):
        await registrar.register_with("x", partner.versions_url, "wrong-token")
    partner.versions = ("2.0", "2.2")
    with pytest.raises(NoCommonVersion, match=r"2\.0, 2\.2; we speak 2\.2\.1 and 2\.1\.1"):
        await registrar.register_with("x", partner.versions_url, partner.token_a)
    partner.versions = ("2.2.1",)
    partner.endpoints = (("locations", "RECEIVER"),)
    with pytest.raises(MissingEndpoints, match="credentials"):
        await registrar.register_with("x", partner.versions_url, partner.token_a)
    assert await server.app.partners.list_all() == []
    with pytest.raises(UnknownPartner):
        await server.app.partners.get("x")


async def test_a_refused_post_leaves_nothing_and_the_offered_token_dies(
    server: Running, partner: FakePartner, registrar: Registrar
) -> None:
    await registrar.register_with("hub", partner.versions_url, partner.token_a)
    # Token A is spent at the partner: a second registration is refused at the POST...
    other = await FakePartner(token_a=partner.token_a).start()
    try:
        other.tokens.add(partner.token_a)
        other.token_a = "something-else"
        with pytest.raises(PartnerHttpError, match="HTTP 405"):
            await registrar.register_with("hub2", other.versions_url, partner.token_a)
        (post,) = [s for s in other.seen if s.method == "POST"]
        offered = post.body["token"]
    finally:
        await other.stop()
    assert [p.name for p in await server.app.partners.list_all()] == ["hub"]
    # ... and the token we had offered there opens nothing.
    assert await server.app.partners.authenticate([(offered, TokenEncoding.RAW)]) is None
    with pytest.raises(PartnerExists):
        await registrar.register_with("hub", partner.versions_url, partner.token_a)
