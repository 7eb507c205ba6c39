import base64
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.core.ocmf import OcmfError, SignatureProblem, parse
from csms.services.meter_signatures import (
    canonical_public_key,
    load_public_key,
    verify_signature,
    verify_transaction,
)
from tests.ocmf_data import Meter, tamper

CURVES = {
    "ECDSA-secp256r1-SHA256": ec.SECP256R1(),
    "ECDSA-secp384r1-SHA256": ec.SECP384R1(),
    "ECDSA-brainpool256r1-SHA256": ec.BrainpoolP256R1(),
    "ECDSA-brainpool384r1-SHA256": ec.BrainpoolP384R1(),
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
