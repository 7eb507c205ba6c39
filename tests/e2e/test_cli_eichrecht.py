"""`csms cdrs show ID --verify` and `csms cdrs export --safe DIR`: the real command line
against a real database holding CDRs whose signed_data a test meter (a P-256 key made
here) and a real NZR meter signed; the XML files checked again with `cryptography` alone."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import create_async_engine

from csms.core.ocmf import cdr_signed_data
from csms.services.meter_signatures import canonical_public_key, verify_transaction
from csms.storage import cdrs
from tests.e2e.cli import run_csms
from tests.ocmf_data import Meter, tamper
from tests.postgres import db_url_for
from tests.services.test_meter_signatures import (
    NZR_BRAINPOOL_BEGIN,
    NZR_BRAINPOOL_END,
    NZR_BRAINPOOL_KEY,
)

# The command line's checks of a stored CDR, on SQLite only: a CDR is one JSON column on
# either database, and tests/e2e/test_eichrecht_flow.py runs `cdrs show --verify` and
# `cdrs export --safe` on PostgreSQL too (about 40 s of CI).
pytestmark = pytest.mark.sqlite_only

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class World:
    workdir: Path
    key: ec.EllipticCurvePrivateKey
    records: list[str]  # the good session's begin, intermediate and end records
    ids: dict[str, str]  # name -> CDR id


def cdr_data(cdr_id: str, kwh: str, signed_data: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "CSM",
        "id": cdr_id,
        "start_date_time": "2026-11-02T08:00:00Z",
        "end_date_time": "2026-11-02T09:00:00Z",
        "currency": "EUR",
        "total_energy": float(kwh),
        "total_time": 1.0,
        "total_cost": {"excl_vat": 1.0},
        "cdr_token": {"uid": "CARD1", "type": "RFID", "country_code": "NL", "party_id": "CSM"},
        "auth_method": "WHITELIST",
        "tariffs": [],
        "charging_periods": [],
        "last_updated": "2026-11-02T09:00:00Z",
    }
    if signed_data is not None:
        data["signed_data"] = signed_data
    return data


def stored(seq: int, cdr_id: str, kwh: str, signed_data: dict[str, Any] | None) -> Any:
    return cdrs.StoredCdr(
        seq=seq,
        id=cdr_id,
        transaction_id=100 + seq,
        charge_point_id="CP-EICH",
        start_at=AT - timedelta(hours=1),
        end_at=AT + timedelta(minutes=seq),
        currency="EUR",
        total_excl_vat=Decimal("1.00"),
        total_incl_vat=None,
        energy_wh=int(Decimal(kwh) * 1000),
        credit=False,
        credit_reference_id=None,
        reason=None,
        data=cdr_data(cdr_id, kwh, signed_data),
        created_at=AT + timedelta(minutes=seq),
    )


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return run_csms(args, env=env, cwd=workdir)


def one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and text in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, backend: str) -> World:
    workdir = tmp_path_factory.mktemp(f"eichrecht-{backend}")
    url = db_url_for(workdir / "csms.db")
    (workdir / "csms.toml").write_text(
        f'[database]\nurl = "{url}"\n[ocpi]\ncountry_code = "NL"\nparty_id = "CSM"\n'
    )
    initialised = run(workdir, "db", "init")
    assert initialised.returncode == 0, initialised.stderr

    key = ec.generate_private_key(ec.SECP256R1())
    meter = Meter(sign=lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))
    records = meter.session("1.000", "2.000", "4.000")
    public_hex = canonical_public_key(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    good = cdr_signed_data(
        verify_transaction(records, public_hex, billed_wh=3000),
        public_hex,
        url="https://cpo.example/eichrecht/NLCSM0000000001",
    )
    assert good is not None
    # The end value changed after the meter signed it (base64 of the changed record).
    forged_end = tamper(records[2], '"RV":4.000', '"RV":4.500')
    tampered = json.loads(json.dumps(good))
    tampered["signed_values"][1]["signed_data"] = base64.b64encode(forged_end.encode()).decode()
    real = cdr_signed_data(
        verify_transaction(
            [NZR_BRAINPOOL_BEGIN, NZR_BRAINPOOL_END], NZR_BRAINPOOL_KEY, billed_wh=0
        ),
        NZR_BRAINPOOL_KEY,
        url=None,
    )
    assert real is not None
    ids = {
        "good": "NLCSM0000000001",
        "tampered": "NLCSM0000000002",
        "unsigned": "NLCSM0000000003",
        "billed_more": "NLCSM0000000004",
        "real_meter": "NLCSM0000000005",
    }
    rows = [
        stored(1, ids["good"], "3.000", good),
        stored(2, ids["tampered"], "3.500", tampered),
        stored(3, ids["unsigned"], "2.000", None),
        stored(4, ids["billed_more"], "3.500", good),
        stored(5, ids["real_meter"], "0", real),
    ]

    async def seed() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for row in rows:
                    await cdrs.add(conn, row)
        finally:
            await engine.dispose()

    asyncio.run(seed())
    return World(workdir, key, records, ids)


def test_a_signed_cdr_verifies(world: World) -> None:
    result = run(world.workdir, "cdrs", "show", world.ids["good"], "--verify")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NATURE", "PG", "SIGNATURE", "READING"]
    assert lines[1].split()[:4] == ["Start", "T12", "valid", "meter"]
    assert "TX B, 1.000 kWh" in lines[1]
    assert lines[2].split()[:3] == ["End", "T14", "valid"]
    assert "TX E, 4.000 kWh" in lines[2]
    assert lines[3] == (
        "verified: 2 records T12..T14 of meter BQ27400330016, signed 3000.000 Wh;"
        " the CDR bills 3.0 kWh"
    )
    assert len(lines) == 4
    assert result.stderr == ""


def test_verify_as_json(world: World) -> None:
    result = run(world.workdir, "cdrs", "show", world.ids["good"], "--verify", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["verified"] is True
    assert body["problem"] is None
    assert body["signed_energy_wh"] == "3000.000"
    assert body["billed_energy_kwh"] == "3.0"
    assert [(v["nature"], v["pagination"], v["signature"]) for v in body["signed_values"]] == [
        ("Start", "T12", "valid"),
        ("End", "T14", "valid"),
    ]


def test_a_real_meters_cdr_verifies(world: World) -> None:
    result = run(world.workdir, "cdrs", "show", world.ids["real_meter"], "--verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "verified: 2 records T274..T275 of meter 12345678, signed 0 Wh; the CDR bills 0.0 kWh"
    )


def test_a_tampered_value_fails(world: World) -> None:
    result = run(world.workdir, "cdrs", "show", world.ids["tampered"], "--verify")
    one_line_error(
        result,
        "CDR NLCSM0000000002 not verified: bad_signature:"
        " T14: the signature does not verify with the public key",
    )
    rows = [line.split()[:3] for line in result.stdout.splitlines()[1:]]
    assert rows == [["Start", "T12", "valid"], ["End", "T14", "invalid"]]


def test_billed_energy_other_than_signed_fails(world: World) -> None:
    result = run(world.workdir, "cdrs", "show", world.ids["billed_more"], "--verify")
    one_line_error(
        result,
        "CDR NLCSM0000000004 not verified: energy_mismatch: T12..T14: signed 3000.000 Wh"
        " (1.000 kWh to 4.000 kWh), billed 3500 Wh, resolution 1.000 Wh",
    )


def test_another_key_fails(world: World) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    args = ("cdrs", "show", world.ids["good"], "--verify", "--public-key")
    one_line_error(run(world.workdir, *args, der.hex()), "bad_signature: T12")
    one_line_error(run(world.workdir, *args, NZR_BRAINPOOL_KEY), "bad_key: T12")
    one_line_error(run(world.workdir, *args, "not-a-key"), "bad_key: T12")


def test_the_right_key_given_verifies(world: World) -> None:
    pem = world.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    result = run(
        world.workdir, "cdrs", "show", world.ids["good"], "--verify", "--public-key", pem.decode()
    )
    assert result.returncode == 0, result.stderr


def test_bad_input(world: World) -> None:
    one_line_error(
        run(world.workdir, "cdrs", "show", world.ids["unsigned"], "--verify"),
        "CDR NLCSM0000000003: the CDR carries no signed_data",
    )
    one_line_error(
        run(world.workdir, "cdrs", "show", "NLCSM0000000099", "--verify"),
        "NLCSM0000000099",
    )
    one_line_error(
        run(world.workdir, "cdrs", "show", world.ids["good"], "--public-key", "AB"),
        "--public-key is for --verify",
    )


def test_show_without_verify_is_unchanged(world: World) -> None:
    result = run(world.workdir, "cdrs", "show", world.ids["good"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cdr ")
    assert "energy" in result.stdout and "3.000 kWh" in result.stdout


def verify_xml(path: Path) -> list[tuple[str | None, str]]:
    """What a driver's tool does with the file: each record's payload verified with the
    key beside it, using nothing of ours."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == "values"
    seen: list[tuple[str | None, str]] = []
    for value in root.findall("value"):
        signed = value.find("signedData")
        key = value.find("publicKey")
        assert signed is not None and signed.text is not None
        assert (signed.get("format"), signed.get("encoding")) == ("OCMF", "plain")
        assert key is not None and key.get("encoding") == "hex" and key.text is not None
        text = signed.text
        payload = text[len("OCMF|") : text.rindex("|")]
        signature = json.loads(text[text.rindex("|") + 1 :])
        public = serialization.load_der_public_key(bytes.fromhex(key.text))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(
            bytes.fromhex(signature["SD"]), payload.encode("utf-8"), ec.ECDSA(hashes.SHA256())
        )
        seen.append((value.get("context"), text))
    return seen


def test_export_safe_writes_one_file_per_signed_cdr(world: World, tmp_path: Path) -> None:
    target = tmp_path / "safe"
    result = run(world.workdir, "cdrs", "export", "--safe", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"wrote 4 S.A.F.E. file(s) to {target}; 1 CDR(s) without signed meter values\n"
    )
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(
        f"{world.ids[n]}.xml" for n in ("good", "tampered", "billed_more", "real_meter")
    )
    good = verify_xml(target / f"{world.ids['good']}.xml")
    assert good == [
        ("Transaction.Begin", world.records[0]),
        ("Transaction.End", world.records[2]),
    ]
    root = ElementTree.parse(target / f"{world.ids['good']}.xml").getroot()
    assert {v.get("transactionId") for v in root.findall("value")} == {"101"}
    assert [c for c, _ in verify_xml(target / f"{world.ids['real_meter']}.xml")] == [
        "Transaction.Begin",
        "Transaction.End",
    ]
    # The tampered record is written as stored: the driver's check refuses it.
    with pytest.raises(InvalidSignature):
        verify_xml(target / f"{world.ids['tampered']}.xml")


def test_export_safe_beside_json_and_csv(world: World, tmp_path: Path) -> None:
    target = tmp_path / "both"
    result = run(world.workdir, "cdrs", "export", "--format", "json", "--safe", str(target))
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert sorted(c["id"] for c in exported) == sorted(world.ids.values())
    assert f"wrote 4 S.A.F.E. file(s) to {target}" in result.stderr
    assert len(list(target.iterdir())) == 4
    result = run(world.workdir, "cdrs", "export", "--format", "csv", "--to", "2026-11-02T09:02:30Z")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3  # header and the two CDRs ended before


def test_export_bad_input(world: World, tmp_path: Path) -> None:
    result = run(world.workdir, "cdrs", "export")
    assert result.returncode == 2
    assert result.stderr.startswith("error: missing option '--format'. Choose from: json, csv;")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(run(world.workdir, "cdrs", "export", "--safe", str(blocker / "sub")), "a-file")
