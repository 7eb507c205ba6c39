"""The Authorization header in both encodings."""

from __future__ import annotations

import base64

import pytest

from csms.core.partners import TokenEncoding, hash_token, new_token, valid_token
from ocpi_cpo.authorization import header_value, token_candidates


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_header_value_in_each_encoding() -> None:
    assert header_value("example-token", TokenEncoding.BASE64) == "Token ZXhhbXBsZS10b2tlbg=="
    assert header_value("example-token", TokenEncoding.RAW) == "Token example-token"


def test_base64_and_raw_are_both_candidates() -> None:
    token = new_token()
    assert token_candidates(f"Token {b64(token)}")[0] == (token, TokenEncoding.BASE64)
    # Our tokens use the URL-safe alphabet: raw, they never decode as Base64.
    assert token_candidates(f"Token {token}") == [(token, TokenEncoding.RAW)]
    # A raw token that happens to be Base64 of something printable gives both readings.
    assert token_candidates("Token dGVzdA==") == [
        ("test", TokenEncoding.BASE64),
        ("dGVzdA==", TokenEncoding.RAW),
    ]


@pytest.mark.parametrize("scheme", ["Token", "token", "TOKEN"])
def test_scheme_is_case_insensitive_and_spaces_tolerated(scheme: str) -> None:
    assert token_candidates(f"  {scheme}   abc-123  ") == [("abc-123", TokenEncoding.RAW)]


@pytest.mark.parametrize("header", [None, "", "Token", "Token ", "Bearer abc", "Basic dTpw"])
def test_no_token_no_candidates(header: str | None) -> None:
    assert token_candidates(header) == []


def test_missing_padding_is_tolerated() -> None:
    assert token_candidates("Token ZXhhbXBsZS10b2tlbg")[0] == (
        "example-token",
        TokenEncoding.BASE64,
    )


def test_tokens_are_random_valid_and_hashed() -> None:
    a, b = new_token(), new_token()
    assert a != b and valid_token(a) and len(a) <= 64
    assert hash_token(a) == hash_token(a) != hash_token(b)
    assert a not in hash_token(a)
    assert not valid_token("has space") and not valid_token("") and not valid_token("x" * 65)
    assert not valid_token("é")
