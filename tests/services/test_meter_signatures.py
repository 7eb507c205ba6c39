import base64
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.core.ocmf import OcmfError, SignatureProblem, cdr_signed_data, parse
from csms.services.meter_signatures import (
    canonical_public_key,
    load_public_key,
    verify_cdr,
    verify_signature,
    verify_transaction,
)
from tests.ocmf_data import Meter, tamper

CURVES = {
    "ECDSA-secp256r1-SHA256": ec.SECP256R1(),
    "ECDSA-secp384r1-SHA256": ec.SECP384R1(),
    "ECDSA-brainpool256r1-SHA256": ec.BrainpoolP256R1(),
    "ECDSA-brainpool384r1-SHA256": ec.BrainpoolP384R1(),
    # Also in the specification's table, less common on German meters.
    "ECDSA-secp256k1-SHA256": ec.SECP256K1(),
    "ECDSA-secp192r1-SHA256": ec.SECP192R1(),
}


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signing_meter(key: ec.EllipticCurvePrivateKey, **kwargs: object) -> Meter:
    return Meter(sign=lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("algorithm", sorted(CURVES))
def test_each_curve_verifies_and_refuses_a_tampered_value(algorithm: str) -> None:
    key = ec.generate_private_key(CURVES[algorithm])
    meter = signing_meter(key, algorithm=algorithm)
    signed = meter.session("10.000", "11.250", "12.500")
    public = spki(key).hex().upper()
    verdict = verify_transaction(signed, public, billed_wh=2500)
    assert verdict.ok, verdict.detail
    assert verdict.signed_energy_wh == Decimal("2500.000")
    forged = [*signed[:2], tamper(signed[2], '"RV":12.500', '"RV":13.500')]
    verdict = verify_transaction(forged, public, billed_wh=3500)
    assert verdict.problem is SignatureProblem.BAD_SIGNATURE
    assert verdict.detail == "T14: the signature does not verify with the public key"


def test_the_spec_spelling_and_the_rfc_spelling_of_brainpool() -> None:
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    meter = signing_meter(key, algorithm="ECDSA-brainpoolP256r1-SHA256")
    assert verify_signature(parse(meter.record("1.000", "B")), spki(key).hex())


def test_a_wrong_key_fails(p256: ec.EllipticCurvePrivateKey) -> None:
    signed = signing_meter(p256).session("1.000", "4.000")
    other = spki(ec.generate_private_key(ec.SECP256R1())).hex()
    verdict = verify_transaction(signed, other, billed_wh=3000)
    assert verdict.problem is SignatureProblem.BAD_SIGNATURE
    assert verdict.detail == "T12: the signature does not verify with the public key"


def test_a_key_on_another_curve_is_a_bad_key(p256: ec.EllipticCurvePrivateKey) -> None:
    signed = signing_meter(p256).session("1.000", "4.000")
    p384 = spki(ec.generate_private_key(ec.SECP384R1())).hex()
    verdict = verify_transaction(signed, p384, billed_wh=3000)
    assert verdict.problem is SignatureProblem.BAD_KEY
    assert verdict.detail == "T12: the public key is on secp384r1, the signature uses secp256r1"


@pytest.mark.parametrize(
    ("algorithm", "problem"),
    [
        ("ECDSA-secp192k1-SHA256", SignatureProblem.UNKNOWN_ALGORITHM),
        ("RSA-SHA256", SignatureProblem.UNKNOWN_ALGORITHM),
    ],
)
def test_unknown_algorithms(
    p256: ec.EllipticCurvePrivateKey, algorithm: str, problem: SignatureProblem
) -> None:
    signed = signing_meter(p256, algorithm=algorithm).session("1.000", "4.000")
    verdict = verify_transaction(signed, spki(p256).hex(), billed_wh=3000)
    assert verdict.problem is problem
    assert verdict.detail == f"T12: signature algorithm {algorithm!r} not supported"


def test_a_signature_format_other_than_der(p256: ec.EllipticCurvePrivateKey) -> None:
    meter = signing_meter(p256)
    text = meter.record("1.000", "B").replace('|{"SD"', '|{"SM":"application/x-raw","SD"')
    with pytest.raises(OcmfError) as caught:
        verify_signature(parse(text), spki(p256).hex())
    assert caught.value.problem is SignatureProblem.UNKNOWN_ALGORITHM


def test_base64_signatures_and_base64_records(p256: ec.EllipticCurvePrivateKey) -> None:
    signed = signing_meter(p256, encoding="base64").session("1.000", "4.000")
    assert '"SE":"base64"' in signed[0]
    # As OCPP 2.0.1 signedMeterData carries it: base64 of the whole record.
    wire = [base64.b64encode(t.encode()).decode() for t in signed]
    verdict = verify_transaction(wire, spki(p256).hex(), billed_wh=3000)
    assert verdict.ok
    assert verdict.begin is not None
    assert verdict.begin.text == signed[0]


def test_white_space_is_part_of_what_was_signed(p256: ec.EllipticCurvePrivateKey) -> None:
    meter = signing_meter(p256)
    text = meter.record("1.000", "B")
    key = spki(p256).hex()
    assert verify_signature(parse(text), key)
    assert not verify_signature(parse(text.replace('"FV":', '"FV": ', 1)), key)
    # A signature that is not DER at all simply does not verify.
    garbage = text[: text.rindex("|")] + '|{"SD":"00FF"}'
    assert not verify_signature(parse(garbage), key)


def test_the_forms_a_key_comes_in(p256: ec.EllipticCurvePrivateKey) -> None:
    der = spki(p256)
    point = p256.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    compressed = p256.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    pem = p256.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = der.hex().upper()
    assert expected.startswith("3059301306072A8648CE3D0201")
    forms = [
        der.hex(),
        der.hex().upper(),
        " ".join(der.hex()[i : i + 8] for i in range(0, len(der.hex()), 8)),
        base64.b64encode(der).decode(),
        pem.decode(),
        point.hex(),
        base64.b64encode(point).decode(),
        compressed.hex(),
    ]
    for form in forms:
        assert canonical_public_key(form) == expected, form
        assert canonical_public_key(form, "ECDSA-secp256r1-SHA256") == expected


def test_a_bare_point_takes_its_curve_from_the_algorithm() -> None:
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    canonical = canonical_public_key(point.hex(), "ECDSA-brainpool256r1-SHA256")
    assert canonical == spki(key).hex().upper()
    assert load_public_key(canonical).curve.name == "brainpoolP256r1"
    meter = signing_meter(key, algorithm="ECDSA-brainpool256r1-SHA256")
    signed = meter.session("1.000", "4.000")
    assert verify_transaction(signed, point.hex(), billed_wh=3000).ok


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a DER SubjectPublicKeyInfo"),
        ("zz-not-a-key", "neither hex, base64 nor PEM"),
        ("3059301306", "not a DER SubjectPublicKeyInfo"),
        ("04" + "00" * 64, "not a point on secp256r1"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM public key"),
    ],
)
def test_unreadable_keys(text: str, message: str) -> None:
    with pytest.raises(OcmfError) as caught:
        canonical_public_key(text)
    assert caught.value.problem is SignatureProblem.BAD_KEY
    assert message in str(caught.value)


def test_a_key_that_is_not_elliptic_curve() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    der = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(OcmfError) as caught:
        canonical_public_key(der.hex())
    assert caught.value.problem is SignatureProblem.BAD_KEY
    assert str(caught.value) == "the public key is not an elliptic-curve key"


def test_independent_check_of_the_exact_bytes(p256: ec.EllipticCurvePrivateKey) -> None:
    # What a driver's verifier does: split at the pipes, verify the payload bytes.
    text = signing_meter(p256).record("1.000", "B")
    payload = text[len("OCMF|") : text.rindex("|")]
    sd = text[text.rindex("|") + 1 :].split('"SD":"')[1].rstrip('"}')
    p256.public_key().verify(bytes.fromhex(sd), payload.encode(), ec.ECDSA(hashes.SHA256()))
    assert parse(text).payload_text == payload


# --- records signed by real meters ----------------------------------------------------------
# Test resources of the S.A.F.E. Transparenzsoftware (GitHub SAFE-eV/transparenzsoftware,
# src/test/resources/xml/): NZR EcoCount SL on brainpoolP256r1 (brainpoolP256r1.xml, begin
# and end) and on secp384r1 (nistP384_0Wh.xml, the end record), a DZG meter in a TwinCharger
# with a base64 signature, FV as a number and quoted RV (chargepoint_3.xml), a KEBA KCP30
# with start and end in one record and only the gateway serial (keba_test.xml, the first).

NZR_BRAINPOOL_KEY = (
    "305A301406072A8648CE3D020106092B240303020801010703420004607201339EF7C61EB1270C0B"
    "EA675585711CB160835F0F55975A311EA6F14AE98981A9276ABC6C70ADA4F8CE25A5502336C738B9"
    "E86FB1ED62150FF1B0FAD5A2"
)
NZR_BRAINPOOL_BEGIN = (
    'OCMF|{"FV":"1.0","GI":"NZR GATEWAY","GS":"21751020","GV":"1.0.0.0","PG":"T274","'
    'MV":"NZR","MM":"EcoCount SL","MS":"12345678","MF":"1.11","IS":false,"IL":"NONE",'
    '"IF":[],"IT":"NONE","ID":"","CT":"","CI":"","RD":[{"TM":"2021-10-26T11:15:09,000'
    '+0000 S","TX":"B","RV":1833,"RI":"1-0:1.8.1","RU":"Wh","RT":"AC","EF":"","ST":"G'
    '"}]}|{"SD":"304402202CC410E10CD9141394AE77B3DC17A523C359F65B0117C098703DF1F2AB77'
    '3A3302204C6CC011FE4920F87CF413F6FB94EDD78DAA26BB5DB4048DA9B3D3AB513CC23C","SA":"'
    'ECDSA-brainpoolP256r1-SHA256"}'
)
NZR_BRAINPOOL_END = (
    'OCMF|{"FV":"1.0","GI":"NZR GATEWAY","GS":"21751020","GV":"1.0.0.0","PG":"T275","'
    'MV":"NZR","MM":"EcoCount SL","MS":"12345678","MF":"1.11","IS":false,"IL":"NONE",'
    '"IF":[],"IT":"NONE","ID":"","CT":"","CI":"","RD":[{"TM":"2021-10-26T11:15:12,000'
    '+0000 S","TX":"E","RV":1833,"RI":"1-0:1.8.1","RU":"Wh","RT":"AC","EF":"","ST":"G'
    '"}]}|{"SD":"304402202E573CC84746A5FDC4DDDE74A2C859C5FFB681D3F839C12AF460BD092EBB'
    '53A4022049DBE3A14F60F77571AF6321AD7FBE25157731161178B04EF4B9B3AEFBE404FB","SA":"'
    'ECDSA-brainpoolP256r1-SHA256"}'
)
NZR_P384_KEY = (
    "3076301006072A8648CE3D020106052B81040022036200047991E23A9815893FF8D3C9EF47D682B3"
    "9297FA3C47DA345EF3D150245814120F48AD31C51536341B80E679C3138E316ADB9F39BCB42E8CE2"
    "8D4C824844B4C6B16E48F056FD803EC7F3CD1B6BA1BCA125DA5E211842D5FB61F01BAA3DE9B2F10C"
)
NZR_P384_END = (
    'OCMF|{"FV":"1.0","GI":"NZR GATEWAY","GS":"21751020","GV":"1.0.0.0","PG":"T6","MV'
    '":"NZR","MM":"EcoCount SL","MS":"12345678","MF":"1.11","IS":false,"IL":"NONE","I'
    'F":[],"IT":"NONE","ID":"","CT":"","CI":"","RD":[{"TM":"2021-10-26T12:24:59,000+0'
    '000 S","TX":"E","RV":0,"RI":"1-0:1.8.1","RU":"Wh","RT":"AC","EF":"","ST":"G"}]}|'
    '{"SD":"306502300EE0FA7E9C65A633FB200CD2C80EA0AEE79F42E2B974C77A9CA97C3AB5FB685AB'
    "CAF17C6B705A4B414E2BBD09D14A2BE023100FCCA269395F181688C1C289572B659DA4911E8F0BB1"
    'FB02755EBEC6701DE873347902C173ACC66C3214AD30670912560","SA":"ECDSA-secp384r1-SHA'
    '256"}'
)
DZG_KEY = (
    "3059301306072a8648ce3d020106082a8648ce3d030107034200042c2646046965328e8db4700e78"
    "c19816f91a9a389f61aa9c5b3b87dae6cba7a277afafb163900031a1b507291f1c3d8d951bfd48b1"
    "edab4b406551a9c26ad12a"
)
DZG_RECORD = (
    'OCMF|{"FV": 1.0, "GI": "TwinCharger Pro 2.1.0", "GS": "TC_00010", "GV": "0.5.15-'
    '1", "PG": "T2", "MV": "DZG", "MM": "DVH4013", "MS": "33019230", "CT": 0, "CI": "'
    'DE*EBW*EP006120*1", "UCPN": "101", "RD": [{"TM": "2021-04-09T09:09:51,000+0200 I'
    '", "TX": "B", "RV": "0.0", "RI": "1-0:1.8.0", "RU": "kWh", "RT": "AC", "EF": "",'
    ' "ST": "G"}, {"TM": "2021-04-09T09:21:30,000+0200 I", "TX": "E", "RV": "1.304", '
    '"RI": "1-0:1.8.0", "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}], "IS": true, "'
    'IL": "HEARSAY", "IT": "ISO14443", "ID": "ad228beb"}|{"SD":"MEUCIQCW6ui2zIeCPLfEl'
    'YuJoT0HJBmx7JTauGrWEAb+5l3LmAIgN4Q9vTm86z0rRJFF3p+gHnXp7YmRbJiuUrp61a+vHB4=","SA'
    '":"ECDSA-secp256r1-SHA256","SE":"base64"}'
)
KEBA_KEY = (
    "3059301306072A8648CE3D020106082A8648CE3D03010703420004A2C53580D26835738B70B952D9"
    "9D324B3414D9C0D93A6CE484FC809C18716809447A3CFF93F051507B3B486ACCB513356AB68E8AE2"
    "01EE320F7F7DF4A1633B3C"
)
KEBA_RECORD = (
    'OCMF|{"FV":"1.0","GI":"KEBA_KCP30","GS":"16913115","GV":"2080000","PG":"T46669",'
    '"IS":false,"IF":[],"ID":"","RD":[{"TM":"1970-01-01T01:01:49,000+0100 U","TX":"B"'
    ',"EF":"","ST":"G","RV":1234.56,"RI":"1-b:1.8.0","RU":"kWh"},{"TM":"1970-01-01T01'
    ':01:49,000+0100 R","TX":"E","EF":"","ST":"G","RV":1234.56,"RI":"1-b:1.8.0","RU":'
    '"kWh"},{"RV":0.00,"RI":"1-b:1.9.0","RU":"kWh"}]}|{"SD":"3046022100E09BE3AB97B453'
    "FDB9643079108005436724A84DF2B299F219A92BCC2F021F23022100E01212F1CDCD4A8DCAD157FD"
    '69E4CACF18272D4093A9C5D59B9E67F0846F1312"}'
)


def test_real_meters_brainpool_transaction() -> None:
    signed = [NZR_BRAINPOOL_BEGIN, NZR_BRAINPOOL_END]
    verdict = verify_transaction(signed, NZR_BRAINPOOL_KEY, billed_wh=0)
    assert verdict.ok, verdict.detail
    assert verdict.signed_energy_wh == 0
    assert verdict.begin is not None
    assert verdict.begin.algorithm == "ECDSA-brainpoolP256r1-SHA256"
    assert verify_transaction(signed, NZR_BRAINPOOL_KEY, billed_wh=2).problem is (
        SignatureProblem.ENERGY_MISMATCH
    )
    forged = tamper(NZR_BRAINPOOL_END, '"RV":1833', '"RV":1933')
    verdict = verify_transaction([NZR_BRAINPOOL_BEGIN, forged], NZR_BRAINPOOL_KEY, billed_wh=100)
    assert verdict.problem is SignatureProblem.BAD_SIGNATURE
    assert verdict.detail == "T275: the signature does not verify with the public key"
    verdict = verify_transaction(signed, KEBA_KEY, billed_wh=0)
    assert verdict.problem is SignatureProblem.BAD_KEY


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (NZR_BRAINPOOL_BEGIN, NZR_BRAINPOOL_KEY),
        (NZR_P384_END, NZR_P384_KEY),
        (DZG_RECORD, DZG_KEY),
        (KEBA_RECORD, KEBA_KEY),
    ],
)
def test_real_meters_signatures(text: str, key: str) -> None:
    record = parse(text)
    assert verify_signature(record, key)
    assert verify_signature(record, canonical_public_key(key, record.algorithm))
    assert not verify_signature(parse(tamper(text, '"FV":', '"FV": ')), key)


def test_real_meters_start_and_end_in_one_record() -> None:
    verdict = verify_transaction([DZG_RECORD], DZG_KEY, billed_wh=1304)
    assert verdict.ok, verdict.detail
    assert verdict.signed_energy_wh == Decimal("1304.000")
    assert verdict.begin is verdict.end
    verdict = verify_transaction([KEBA_RECORD], KEBA_KEY, billed_wh=0)
    assert verdict.ok, verdict.detail
    assert verdict.begin is not None
    assert verdict.begin.meter_serial == "16913115"  # GS: the wallbox writes no MS
    assert verdict.begin.readings[2].time == verdict.begin.readings[1].time  # inherited


def test_verify_cdr(p256: ec.EllipticCurvePrivateKey) -> None:
    signed = signing_meter(p256).session("1.000", "2.000", "4.000")
    key = spki(p256).hex()
    data = cdr_signed_data(verify_transaction(signed, key, billed_wh=3000), key, url=None)
    assert data is not None
    cdr = {"total_energy": 3, "signed_data": data}
    checked = verify_cdr(cdr)
    assert checked.verdict.ok
    assert checked.billed_wh == 3000
    assert [(v.nature, v.pagination, v.signature) for v in checked.values] == [
        ("Start", "T12", "valid"),
        ("End", "T14", "valid"),
    ]
    assert checked.values[0].summary.startswith("meter BQ27400330016, T12, ")
    # Without total_energy the energy rule is not checked; a key given wins over the CDR's.
    assert verify_cdr({"signed_data": data}).billed_wh is None
    other = spki(ec.generate_private_key(ec.SECP256R1())).hex()
    checked = verify_cdr(cdr, public_key=other)
    assert checked.verdict.problem is SignatureProblem.BAD_SIGNATURE
    assert {v.signature for v in checked.values} == {"invalid"}
    keyless = {**cdr, "signed_data": {k: v for k, v in data.items() if k != "public_key"}}
    checked = verify_cdr(keyless)
    assert checked.verdict.problem is SignatureProblem.NO_PUBLIC_KEY
    assert {v.signature for v in checked.values} == {"no public key"}
    broken = json.loads(json.dumps(cdr))
    broken["signed_data"]["signed_values"][1]["signed_data"] = "garbage"
    checked = verify_cdr(broken)
    assert checked.verdict.problem is SignatureProblem.MALFORMED
    assert checked.values[1].pagination is None
    assert checked.values[1].signature.startswith("malformed: not an OCMF record")
    checked = verify_cdr(cdr, public_key=spki(ec.generate_private_key(ec.SECP384R1())).hex())
    assert checked.verdict.problem is SignatureProblem.BAD_KEY
    assert checked.values[0].signature.startswith("bad_key: the public key is on secp384r1")


@pytest.mark.parametrize(
    ("cdr", "problem", "message"),
    [
        ({}, SignatureProblem.NO_SIGNED_VALUES, "the CDR carries no signed_data"),
        (
            {"signed_data": {"encoding_method": "Alfen Eichrecht", "signed_values": []}},
            SignatureProblem.UNKNOWN_ALGORITHM,
            "signed_data encoding_method 'Alfen Eichrecht': only OCMF is verified",
        ),
        (
            {"signed_data": {"encoding_method": "ocmf", "signed_values": []}},
            SignatureProblem.NO_SIGNED_VALUES,
            "signed_data has no signed_values",
        ),
    ],
)
def test_verify_cdr_refuses(
    cdr: dict[str, object], problem: SignatureProblem, message: str
) -> None:
    with pytest.raises(OcmfError) as caught:
        verify_cdr(cdr)
    assert caught.value.problem is problem
    assert str(caught.value) == message
