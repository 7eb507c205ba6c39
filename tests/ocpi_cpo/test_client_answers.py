"""What the OCPI client accepts from a partner's answer (ocpi_cpo.client._read)."""

from __future__ import annotations

import pytest

from ocpi_cpo.client import _read
from ocpi_cpo.errors import PartnerBadResponse

URL = "https://emsp.example/ocpi/2.2.1/tokens"


def test_a_nul_anywhere_in_the_data_is_a_bad_response() -> None:
    raw = b'{"status_code": 1000, "data": [{"uid": "A\\u0000B"}], "timestamp": "x"}'
    with pytest.raises(PartnerBadResponse, match="U\\+0000"):
        _read("GET", URL, 200, raw)


def test_an_escaped_backslash_before_u0000_is_text() -> None:
    raw = b'{"status_code": 1000, "data": [{"uid": "A\\\\u0000"}], "timestamp": "x"}'
    assert _read("GET", URL, 200, raw) == (1000, None, [{"uid": "A\\u0000"}])
