"""Certificates on chargers without I/O: hash data as staff write it, the certificate
requests read from the API's parameters, and their CALLs in both versions (schema-valid;
a kind 1.6 does not know refused) with the answers read back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from csms.core.charger_certificates import HashData, deletion, parse_hash_data
from csms.core.command_requests import (
    CertificateDeleteRequest,
    CertificateInstallRequest,
    CertificateListRequest,
    CertificateSignedRequest,
    parse_request,
)
from csms.core.commands import (
    INTERNAL_COMMANDS,
    CommandName,
    CommandRefused,
    GetInstalledCertificates,
    InstallCertificate,
    RequestCertificate,
    SendCertificate,
)
from csms.handlers.schemas import SchemaSet
from csms.handlers.v16 import commands as v16
from csms.handlers.v16.limits import LIMITS as V16_LIMITS
from csms.handlers.v201 import commands as v201
from csms.handlers.v201.limits import LIMITS as V201_LIMITS

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
HASH = HashData("SHA256", "ab" * 32, "cd" * 32, "1f")


def parse(name: CommandName, raw: Mapping[str, object]) -> object:
    return parse_request(name, raw, NOW, (V16_LIMITS, V201_LIMITS))


def test_hash_data_as_staff_write_it() -> None:
    data = parse_hash_data(f"sha256:{'AB' * 32}:{'cd' * 32}:001F")
    assert data == HASH
    assert str(data) == f"SHA256:{'ab' * 32}:{'cd' * 32}:1f"
    assert parse_hash_data(str(data)) == data
    with pytest.raises(CommandRefused, match="ALGORITHM:ISSUER_NAME_HASH"):
        parse_hash_data("SHA256:ab:cd")
    with pytest.raises(CommandRefused, match="MD5"):
        parse_hash_data("MD5:ab:cd:01")
    with pytest.raises(CommandRefused, match="serial must be hexadecimal"):
        parse_hash_data("SHA256:ab:cd:xyz")


def test_certificate_requests_from_api_parameters() -> None:
    install = parse(CommandName.CERTIFICATES_INSTALL, {"certificate": PEM})
    assert install == CertificateInstallRequest("csms-root", PEM)
    assert parse(CommandName.CERTIFICATES_LIST, {"type": ["csms-root", "V2G-Chain"]}) == (
        CertificateListRequest(("csms-root", "v2g-chain"))
    )
    delete = parse(CommandName.CERTIFICATES_DELETE, {"hash_data": str(HASH)})
    assert delete == CertificateDeleteRequest(HASH)
    assert isinstance(delete, CertificateDeleteRequest)
    assert delete.params() == {"hash_data": str(HASH)}
    for raw in ({}, {"hash_data": str(HASH), "certificate": PEM}):
        with pytest.raises(CommandRefused, match="either hash_data or a certificate"):
            parse(CommandName.CERTIFICATES_DELETE, raw)
    with pytest.raises(CommandRefused, match="must be a PEM certificate"):
        parse(CommandName.CERTIFICATES_INSTALL, {"certificate": "hello"})
    with pytest.raises(CommandRefused, match="must be some of"):
        parse(CommandName.CERTIFICATES_LIST, {"type": ["nope"]})
    signed = parse(CommandName.CERTIFICATE_SIGNED, {"chain": PEM, "type": "V2GCertificate"})
    assert isinstance(signed, CertificateSignedRequest)
    assert signed.params() == {"chain": PEM, "type": "V2GCertificate"}
    assert {CommandName.CERTIFICATE_SIGNED} == INTERNAL_COMMANDS


@pytest.mark.parametrize(
    ("codec", "version", "command", "action"),
    [
        (v16, "1.6", InstallCertificate("csms-root", PEM), "InstallCertificate"),
        (v201, "2.0.1", InstallCertificate("mo-root", PEM), "InstallCertificate"),
        (v16, "1.6", GetInstalledCertificates(()), "GetInstalledCertificateIds"),
        (v201, "2.0.1", GetInstalledCertificates(()), "GetInstalledCertificateIds"),
        (v201, "2.0.1", GetInstalledCertificates(("v2g-chain",)), "GetInstalledCertificateIds"),
        (v16, "1.6", deletion(HASH), "DeleteCertificate"),
        (v201, "2.0.1", deletion(HASH), "DeleteCertificate"),
        (v16, "1.6", RequestCertificate(), "ExtendedTriggerMessage"),
        (v201, "2.0.1", RequestCertificate(), "TriggerMessage"),
        (v16, "1.6", SendCertificate(PEM), "CertificateSigned"),
        (v201, "2.0.1", SendCertificate(PEM), "CertificateSigned"),
    ],
)
def test_certificate_calls_are_schema_valid(
    codec: object, version: str, command: object, action: str
) -> None:
    got, payload = codec.encode(command)  # type: ignore[attr-defined]
    assert got == action
    validate = SchemaSet(version).request_validator(action)
    assert validate is not None
    validate(payload)


def test_v16_knows_two_kinds_and_lists_one_at_a_time() -> None:
    assert v16.encode(GetInstalledCertificates(()))[1] == {
        "certificateType": "CentralSystemRootCertificate"
    }
    with pytest.raises(CommandRefused, match="no v2g-root certificates"):
        v16.encode(InstallCertificate("v2g-root", PEM))
    with pytest.raises(CommandRefused, match="one type at a time"):
        v16.encode(GetInstalledCertificates(("csms-root", "manufacturer-root")))


def test_listings_read_back() -> None:
    wire = {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "AB" * 32,
        "issuerKeyHash": "cd" * 32,
        "serialNumber": "01F",
    }
    answer = v201.decode(
        GetInstalledCertificates(()),
        {
            "status": "Accepted",
            "certificateHashDataChain": [
                {"certificateType": "CSMSRootCertificate", "certificateHashData": wire}
            ],
        },
    )
    assert answer.ok
    assert answer.data["certificates"] == [{"type": "csms-root", **HASH.json()}]
    old = v16.decode(
        GetInstalledCertificates(("manufacturer-root",)),
        {"status": "Accepted", "certificateHashData": [wire]},
    )
    assert old.data["certificates"] == [{"type": "manufacturer-root", **HASH.json()}]
    none = v16.decode(GetInstalledCertificates(()), {"status": "NotFound"})
    assert none.ok and none.data == {"certificates": []}
    missing = v201.decode(deletion(HASH), {"status": "NotFound"})
    assert not missing.ok and missing.status == "NotFound"
