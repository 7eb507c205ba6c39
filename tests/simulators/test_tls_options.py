"""The simulator's TLS options: checked when the options are built, and turned into a
client context that trusts the given CA and presents the given certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from simulators.errors import ConnectError, OptionsError
from simulators.link import client_tls
from simulators.options import ChargerOptions
from tests.e2e.certs import Authority, pem, write_pair


def test_tls_files_need_a_wss_url_and_a_certificate_needs_its_key() -> None:
    with pytest.raises(OptionsError, match="need a wss:// url"):
        ChargerOptions(url="ws://h:9000/ocpp", charger_id="CP1", ca_file="ca.pem")
    with pytest.raises(OptionsError, match="needs both --cert and --key"):
        ChargerOptions(url="wss://h:9443/ocpp", charger_id="CP1", cert_file="cp.crt")
    ok = ChargerOptions(
        url="wss://h:9443/ocpp", charger_id="CP1", cert_file="a", key_file="b", ca_file="c"
    )
    assert (ok.ca_file, ok.cert_file, ok.key_file) == ("c", "a", "b")


def test_the_client_context_trusts_the_ca_and_holds_the_certificate(tmp_path: Path) -> None:
    ca = Authority.new("Sim CA")
    (tmp_path / "ca.pem").write_bytes(pem(ca.cert))
    cert, key = write_pair(tmp_path, "cp1", *ca.issue("CP1", "Org"))
    context = client_tls(str(tmp_path / "ca.pem"), cert, key)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "Test"),), (("commonName", "Sim CA"),))
    ]
    with pytest.raises(ConnectError, match="cannot use the TLS files"):
        client_tls(str(tmp_path / "missing.pem"), None, None)
