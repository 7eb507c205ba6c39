"""Eichrecht from the meter to the driver: a simulated charger of each version with a
signing meter (its own P-256 key, `simulators/signed_meter.py`) charges under a tariff; the
CSMS learns the meter's key the way the version publishes it, verifies the transaction,
bills it, and its CDR, as the OCPI partner and the driver get it, verifies again with
nothing of ours (`cryptography` over the exact bytes). A meter whose end record was
tampered with holds its transaction until staff release it, and the released CDR still
fails a driver's check."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.locations import ConnectorSpec, Location
from csms.services.locations import LocationService
from simulators.options import ChargerOptions
from simulators.signed_meter import load_or_create_key
from simulators.versions import create_charger
from tests.e2e.cli import Ran, csms
from tests.e2e.conftest import Running
from tests.e2e.ocpi_rules import cdr_errors
from tests.e2e.sim import until

TAG = "EICHCARD"
TARIFF = {
    "id": "EICH-1",
    "currency": "EUR",
    "type": "REGULAR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.40, "vat": 19.0, "step_size": 1}]}
    ],
}


def ok(ran: Ran) -> str:
    assert ran.code == 0, (ran.out, ran.err)
    return ran.out


async def _set_up(server: Running, tmp_path: Path, cp_ids: list[str]) -> None:
    await server.staff.add_token(Token(TAG, TokenStatus.ACCEPTED))
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps([TARIFF]))
    ok(await csms(server, "tariffs", "import", str(path)))
    places = LocationService(server.app.db, utc_now)
    await places.add(
        Location(
            id="EICH-LOC",
            name="Eichrecht depot",
            address="Hauptstr. 1",
            city="Berlin",
            postal_code="10115",
            country="DEU",
            latitude="52.5200",
            longitude="13.4050",
            time_zone="Europe/Berlin",
        )
    )
    for cp_id in cp_ids:
        await places.link("EICH-LOC", cp_id, ConnectorSpec())
    ok(await csms(server, "tariffs", "assign", "EICH-1", "--location", "EICH-LOC"))


async def _charge(server: Running, cp_id: str, version: str, key_file: Path, **extra: Any) -> Any:
    """One signed session of about 2 s run to its end; the charger's one transaction."""
    charger = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            sessions=1,
            session_seconds=2.0,
            meter_interval=0.5,
            tag=TAG,
            exit_when_done=True,
            seed=5,
            signed_meter=True,
            meter_key_file=str(key_file),
            **extra,
        )
    )
    await charger.run()
    (tx,) = await server.staff.transactions(cp_id=cp_id)
    return tx


def _der(key_file: Path) -> bytes:
    public = load_or_create_key(str(key_file)).public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _driver_check(signed_data: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    """What a driver's tool does with a CDR's signed_data, using nothing of ours: each
    record (base64 in OCPI) split at its pipes and its payload's exact bytes checked with
    the CDR's public key (base64 of the DER key). (nature, TX, kWh) of each; raises
    InvalidSignature when one does not verify."""
    public = serialization.load_der_public_key(base64.b64decode(signed_data["public_key"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    seen = []
    for value in signed_data["signed_values"]:
        text = base64.b64decode(value["signed_data"]).decode("utf-8")
        assert text.startswith("OCMF|")
        payload = text[len("OCMF|") : text.rindex("|")]
        signature = json.loads(text[text.rindex("|") + 1 :])
        assert signature.get("SA", "ECDSA-secp256r1-SHA256") == "ECDSA-secp256r1-SHA256"
        public.verify(
            bytes.fromhex(signature["SD"]), payload.encode("utf-8"), ec.ECDSA(hashes.SHA256())
        )
        reading = json.loads(payload, parse_float=Decimal)["RD"][-1]
        seen.append((value["nature"], reading["TX"], Decimal(str(reading["RV"]))))
    return seen


async def _ocpi_cdr_shape(server: Running, cdr_id: str) -> dict[str, Any]:
    exported = json.loads(ok(await csms(server, "cdrs", "export", "--format", "json")))
    (cdr,) = [c for c in exported if c["id"] == cdr_id]
    assert cdr_errors(cdr) == []
    return dict(cdr)


async def _metric(server: Running, name: str) -> float:
    """The sum of a counter's samples on /metrics (0 when it has none yet)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        assert response.status == 200
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_signed_session_is_verified_billed_and_verifiable_by_the_driver(
    server: Running, tmp_path: Path, version: str
) -> None:
    cp_id = f"EICH-OK-{version}"
    key_file = tmp_path / "meter.pem"
    await _set_up(server, tmp_path, [cp_id])
    tx = await _charge(server, cp_id, version, key_file)
    assert tx.energy_wh and tx.energy_wh > 0

    (stored,) = await until(lambda: server.app.billing.cdrs_of(tx.id), "the CDR")
    shown = json.loads(ok(await csms(server, "transactions", "show", str(tx.id), "--json")))
    assert shown["signature_state"] == "verified"
    assert shown["signature_problem"] is None
    assert shown["billing"] == "billed"

    # The key the CSMS learned: 1.6 from the DataTransfer after boot, 2.0.1 from publicKey.
    charger = json.loads(ok(await csms(server, "chargers", "show", cp_id, "--json")))
    (key,) = charger["meter_public_keys"]
    assert bytes.fromhex(key["public_key"]) == _der(key_file)
    assert key["source"] == ("data_transfer" if version == "1.6" else "ocpp")

    cdr = await _ocpi_cdr_shape(server, stored.id)
    signed = cdr["signed_data"]
    assert signed["encoding_method"] == "OCMF"
    assert signed["encoding_method_version"] == 1
    assert base64.b64decode(signed["public_key"]) == _der(key_file)
    natures = _driver_check(signed)
    assert [(n, t) for n, t, _ in natures] == [("Start", "B"), ("End", "E")]
    signed_kwh = natures[1][2] - natures[0][2]
    assert signed_kwh * 1000 == tx.energy_wh
    assert Decimal(str(cdr["total_energy"])) == signed_kwh
    assert all(v["plain_data"] for v in signed["signed_values"])

    # The operator's own check and the driver's file for the Transparenzsoftware.
    verified = ok(await csms(server, "cdrs", "show", stored.id, "--verify"))
    assert verified.splitlines()[-1].startswith("verified: 2 records")
    target = tmp_path / "safe"
    ok(await csms(server, "cdrs", "export", "--safe", str(target)))
    root = ElementTree.parse(target / f"{stored.id}.xml").getroot()
    texts = [v.findtext("signedData") for v in root.findall("value")]
    assert texts == [base64.b64decode(v["signed_data"]).decode() for v in signed["signed_values"]]
    assert {v.findtext("publicKey") for v in root.findall("value")} == {
        _der(key_file).hex().upper()
    }


async def test_a_tampered_end_record_holds_the_transaction_until_staff_release_it(
    server: Running, tmp_path: Path
) -> None:
    cp_ids = ["EICH-BAD-16", "EICH-BAD-201"]
    await _set_up(server, tmp_path, cp_ids)
    held_before = await _metric(server, "csms_billing_signature_held_total")
    txs = [
        await _charge(server, cp_id, version, tmp_path / f"{cp_id}.pem", signed_fault=fault)
        for cp_id, version, fault in (
            (cp_ids[0], "1.6", "tamper"),
            (cp_ids[1], "2.0.1", "gap"),
        )
    ]

    async def held() -> list[dict[str, Any]]:
        shown = [
            json.loads(ok(await csms(server, "transactions", "show", str(t.id), "--json")))
            for t in txs
        ]
        return shown if all(s["billing"] == "held" for s in shown) else []

    tampered, gapped = await until(held, "both transactions held")
    assert tampered["signature_state"] == "failed"
    assert tampered["signature_problem"].startswith("bad_signature")
    assert gapped["signature_state"] == "failed"
    assert gapped["signature_problem"].startswith("pagination_gap")
    assert await server.app.billing.cdrs_of(txs[0].id) == []
    listed = ok(await csms(server, "transactions", "list", "--charger", cp_ids[0]))
    assert "failed" in listed and "bad_signature" in listed
    assert await _metric(server, "csms_billing_signature_held_total") == held_before + 2

    # Release needs a reason; then the CDR is issued, and the driver's check still fails.
    refused = await csms(server, "transactions", "resolve", str(txs[0].id), "--release-signature")
    assert refused.code != 0 and "--reason" in refused.err and "Traceback" not in refused.err
    released = ok(
        await csms(
            server,
            "transactions",
            "resolve",
            str(txs[0].id),
            "--release-signature",
            "--reason",
            "meter replaced, reading confirmed on site",
        )
    )
    assert "CDR" in released
    shown = json.loads(ok(await csms(server, "transactions", "show", str(txs[0].id), "--json")))
    assert shown["signature_state"] == "released" and shown["billing"] == "billed"
    (cdr_row,) = await server.app.billing.cdrs_of(txs[0].id)
    cdr = await _ocpi_cdr_shape(server, cdr_row.id)
    check = await csms(server, "cdrs", "show", cdr_row.id, "--verify")
    assert check.code == 1 and "bad_signature" in check.err
    assert len(check.err.strip().splitlines()) == 1
    with pytest.raises(InvalidSignature):
        _driver_check(cdr["signed_data"])
