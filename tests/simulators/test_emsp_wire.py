"""The eMSP simulator's OCPI wire rules without sockets: Token headers, answers, the
pagination Link, versions and credentials of a CPO."""

from __future__ import annotations

import base64
import json

import pytest

from simulators.emsp_wire import (
    accepted_token,
    authorization,
    details_url,
    endpoints_of,
    next_link,
    read_answer,
    their_credentials,
)
from simulators.errors import EmspError


def test_tokens_go_out_base64_and_come_in_either_way() -> None:
    assert authorization("abc") == "Token " + base64.b64encode(b"abc").decode()
    tokens = {"abc", "x-y"}
    assert accepted_token(authorization("abc"), tokens) == "abc"
    assert accepted_token("token   x-y ", tokens) == "x-y"  # raw, any case of the scheme
    assert accepted_token("Token " + base64.b64encode(b"x-y").decode().rstrip("="), tokens)
    for header in (None, "", "Bearer abc", "Token", authorization("nope")):
        assert accepted_token(header, tokens) is None


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_answers() -> None:
    answer = read_answer("GET u", 200, body(status_code=1000, data=[1]), ("<n>",), " 7 ")
    assert (answer.data, answer.links, answer.total) == ([1], ("<n>",), 7)
    for status, raw, text in [
        (401, body(status_code=2000, status_message="no"), r"^GET u: HTTP 401 \(2000 no\)$"),
        (502, b"<html>", r"^GET u: HTTP 502$"),
        (200, b"<html>", "not an OCPI answer"),
        (200, body(status_code=True), "not an OCPI answer"),
        (200, body(status_code=2001, status_message="bad"), r"OCPI status 2001: bad$"),
    ]:
        with pytest.raises(EmspError, match=text):
            read_answer("GET u", status, raw, (), None)


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (('<https://cpo/x?offset=2&limit=1>; rel="next"',), "https://cpo/x?offset=2&limit=1"),
        (("</x?offset=2>; REL=next",), "https://cpo/x?offset=2"),
        (('<https://a/prev>; rel="prev", <https://a/n>; rel="next"',), "https://a/n"),
        (('<https://a/prev>; rel="prev"',), None),
        ((), None),
    ],
)
def test_next_link(links: tuple[str, ...], expected: str | None) -> None:
    assert next_link(links, "https://cpo/x?limit=1") == expected


def test_versions_and_credentials() -> None:
    versions = [{"version": "2.1.1", "url": "http://a/211"}, {"version": "2.2.1", "url": "u"}]
    assert details_url(versions, "GET v") == "u"
    with pytest.raises(EmspError, match=r"offers OCPI 2\.1\.1; the simulator speaks 2\.2\.1"):
        details_url(versions[:1], "GET v")
    with pytest.raises(EmspError, match=r"^GET v: the versions are not a list"):
        details_url({}, "GET v")
    details = {"endpoints": [{"identifier": "tariffs", "role": "sender", "url": "t"}, {"x": 1}]}
    assert endpoints_of(details, "GET d") == (("tariffs", "SENDER", "t"),)
    roles = [{"role": "CPO", "country_code": "NL", "party_id": "CSM"}]
    assert their_credentials({"token": "c", "roles": roles}) == ("c", tuple(roles))
    bad: list[object] = [
        [],
        {"token": "", "roles": roles},
        {"token": "c"},
        {"token": "c", "roles": [{}]},
    ]
    for data in bad:
        with pytest.raises(EmspError, match="the CPO's credentials"):
            their_credentials(data)
