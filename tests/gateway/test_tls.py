"""csms.gateway.tls without sockets: which context a configuration gives, what is said
about unusable files, and the security profile rules at the handshake."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from csms.config import build_config, with_data_dir
from csms.core.certificates import CaSettings
from csms.core.clock import utc_now
from csms.gateway.tls import (
    PeerCertificate,
    ServerTls,
    TlsError,
    TlsFiles,
    https_port,
    ocpp_tls,
    profile_refusal,
)
from csms.services.pki import CertificateAuthority
from tests.e2e.certs import Authority, write_pair


def server_files(where: Path) -> tuple[str, str]:
    return write_pair(where, "server", *Authority.new("CA").issue("localhost", "T", server=True))


def test_profiles_1_and_2_need_no_certificate_and_3_needs_ours_for_its_id() -> None:
    ours = PeerCertificate("CP1", "CPO")
    assert profile_refusal(1, False, None, "CP1", "CPO") is None
    assert profile_refusal(2, True, None, "CP1", "CPO") is None
    assert (
        profile_refusal(2, False, None, "CP1", "CPO") == "security profile 2 requires wss:// (TLS)"
    )
    assert profile_refusal(3, True, ours, "CP1", "CPO") is None
    assert (
        profile_refusal(3, False, ours, "CP1", "CPO") == "security profile 3 requires wss:// (TLS)"
    )
    assert profile_refusal(3, True, None, "CP1", "CPO") == (
        "security profile 3 requires a client certificate; none was presented"
    )
    assert profile_refusal(3, True, PeerCertificate("CP2", "CPO"), "CP1", "CPO") == (
        "the client certificate is for 'CP2', not this charge point"
    )
    assert profile_refusal(3, True, PeerCertificate("CP1", "Other"), "CP1", "CPO") == (
        "the client certificate's organisation is 'Other', not 'CPO'"
    )


def test_the_client_ca_defaults_to_our_cas_trusted_bundle(tmp_path: Path) -> None:
    cert, key = server_files(tmp_path)
    raw = {"ocpp": {"tls_cert_file": cert, "tls_key_file": key}}
    config = with_data_dir(build_config(raw, {}), tmp_path)
    assert ocpp_tls(with_data_dir(build_config({}, {}), tmp_path)) is None
    without_ca = ocpp_tls(config)
    assert without_ca is not None and without_ca.files.client_ca_file is None
    assert without_ca.context.verify_mode == ssl.CERT_NONE
    assert without_ca.context.minimum_version == ssl.TLSVersion.TLSv1_2
    CertificateAuthority(config.ca.directory, CaSettings(), utc_now).create()
    with_ca = ocpp_tls(config)
    assert with_ca is not None
    assert with_ca.files.client_ca_file == str(tmp_path / ".csms" / "ca" / "trusted.pem")
    assert with_ca.context.verify_mode == ssl.CERT_OPTIONAL
    api = https_port("api", with_data_dir(build_config({"api": raw["ocpp"]}, {}), tmp_path).api)
    assert api is not None and (api.host, api.port) == ("127.0.0.1", 9201)


def test_unusable_files_name_the_setting_and_a_reload_keeps_the_old_ones(tmp_path: Path) -> None:
    cert, key = server_files(tmp_path)
    with pytest.raises(TlsError) as missing:
        ServerTls(TlsFiles("ocpp", cert, str(tmp_path / "none.key")))
    assert str(missing.value) == (
        f"ocpp.tls_key_file: {tmp_path / 'none.key'} does not exist or is not a file"
    )
    other = tmp_path / "other"
    other.mkdir()
    other_key = server_files(other)[1]
    with pytest.raises(TlsError) as mismatched:
        ServerTls(TlsFiles("api", cert, other_key))
    assert "api.tls_cert_file / tls_key_file" in str(mismatched.value)
    with pytest.raises(TlsError) as bad_ca:
        ServerTls(TlsFiles("ocpp", cert, key, key))
    assert "ocpp.tls_client_ca_file" in str(bad_ca.value)
    with pytest.raises(TlsError) as bad_ciphers:
        ServerTls(TlsFiles("ocpp", cert, key, ciphers="NO-SUCH-CIPHER"))
    assert str(bad_ciphers.value) == (
        "ocpp.tls_ciphers: 'NO-SUCH-CIPHER' selects no cipher OpenSSL knows"
    )
    rsa_too = ServerTls(TlsFiles("ocpp", cert, key, ciphers="ECDHE+AESGCM:AES128-GCM-SHA256"))
    names = {c["name"] for c in rsa_too.context.get_ciphers()}
    assert "AES128-GCM-SHA256" in names and "ECDHE-ECDSA-AES128-GCM-SHA256" in names
    assert "AES128-GCM-SHA256" not in {
        c["name"] for c in ServerTls(TlsFiles("ocpp", cert, key)).context.get_ciphers()
    }
    live = ServerTls(TlsFiles("ocpp", cert, key))
    Path(cert).write_text("spoiled")
    assert live.reload() is False
