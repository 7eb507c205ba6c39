"""The signing meter against the real CSMS: a simulated 1.6 charger and 2.0.1 station run
with `--signed-meter` (through the simulator's command line, and in process for the faults),
and what the CSMS stored is read back with `csms transactions show --json` and checked
with `cryptography` over the exact payload bytes."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from csms.app import CsmsApp
from csms.core.authorization import Token, TokenStatus
from csms.views import transaction_detail_json
from simulators.options import ChargerOptions
from simulators.signed_meter import load_or_create_key
from simulators.versions import create_charger
from tests.e2e.cli import Ran, csms, remote
from tests.e2e.conftest import Running, make_config
from tests.e2e.sim import until
from tests.simulators.test_signed_meter import split, verifies

# What the simulated meter sends, on SQLite only: the database does not change what a
# simulator sends, and tests/e2e/test_eichrecht.py and test_eichrecht_flow.py store and
# verify signed values on PostgreSQL too (about 40 s of CI).
pytestmark = pytest.mark.sqlite_only

VERSIONS = ["1.6", "2.0.1"]
TAG = "EICH0001"
REGISTER = "Energy.Active.Import.Register"


@pytest.fixture
async def server(backend: str, tmp_path: Path) -> AsyncIterator[Running]:
    """A real CSMS on loopback ports, on each selected database, knowing the tag."""
    config = make_config(tmp_path / "csms.db")
    app = CsmsApp(config)
    await app.start()
    running = Running(app, config, tmp_path / "csms.db")
    await running.staff.add_token(Token(TAG, TokenStatus.ACCEPTED))
    yield running
    await app.stop()


def published_key(path: Path) -> str:
    """Hex of the DER SPKI of the meter key the simulator made in `path`."""
    key = load_or_create_key(str(path)).public_key()
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ).hex()


async def simulate(*args: str) -> Ran:
    """`csms-sim` (as `python -m simulators`) run to its end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def stored(server: Running, cp_id: str) -> dict[str, Any]:
    """The charger's one transaction as `csms transactions show ID --json` prints it."""
    listed = await csms(server, "transactions", "list", "--charger", cp_id, "--json")
    assert listed.code == 0, listed
    [tx] = listed.json()
    shown = await csms(server, "transactions", "show", str(tx["id"]), "--json")
    assert shown.code == 0, shown
    detail: dict[str, Any] = shown.json()
    return detail


async def stored_in_process(server: Running, cp_id: str) -> dict[str, Any]:
    """The same JSON as `csms transactions show --json` (the CLI's view function) without a
    subprocess: the fault runs read it through the staff service."""
    [tx] = await server.staff.transactions(cp_id=cp_id)
    detail = await server.staff.transaction(tx.id)
    return transaction_detail_json(detail, datetime.now(UTC), None, None)


def ocmf_text(raw: str, version: str) -> str:
    """1.6 carries the OCMF text as is, 2.0.1 base64 of it."""
    return raw if version == "1.6" else base64.b64decode(raw).decode("utf-8")


def signed_records(detail: dict[str, Any], version: str) -> list[tuple[dict[str, Any], str]]:
    """(stored value, OCMF text) of each signed value of the transaction, in time order:
    from `signed_values` where the CSMS keeps them apart (their `data` as received), else
    the samples marked `signed` (their `raw_value`)."""
    if "signed_values" in detail:
        return [(v, ocmf_text(v["data"], version)) for v in detail["signed_values"]]
    return [
        (s, ocmf_text(s["raw_value"], version)) for s in detail["samples"] if s["signed"] is True
    ]


def plain_registers(detail: dict[str, Any], context: str) -> list[float]:
    """The plain energy registers stored with `context`, in time order."""
    values = [
        s["value"]
        for s in detail["samples"]
        if not s["signed"]
        and s["measurand"] == REGISTER
        and s["phase"] is None
        and s["context"] == context
    ]
    assert all(isinstance(v, float | int) for v in values)
    return [float(v) for v in values]


def paired(
    detail: dict[str, Any], records: list[tuple[dict[str, Any], str]]
) -> list[tuple[Decimal, Decimal]]:
    """(plain register Wh, signed RV in Wh) of each record: the simulator sends one signed
    value beside each plain register of a transaction's meter values, so the n-th signed
    value of a context goes with the n-th plain register of that context."""
    out: list[tuple[Decimal, Decimal]] = []
    contexts = {str(value["context"]) for value, _ in records}
    for context in contexts:
        texts = [text for value, text in records if value["context"] == context]
        plain = plain_registers(detail, context)
        assert len(plain) == len(texts), (context, plain, len(texts))
        for wh, text in zip(plain, texts, strict=True):
            out.append((Decimal(str(wh)), reading(text)["RV"] * 1000))
    return out


def reading(record: str) -> dict[str, Any]:
    reading: dict[str, Any] = split(record)[1]["RD"][0]
    return reading


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_signed_session_arrives_and_verifies(
    server: Running, tmp_path: Path, version: str
) -> None:
    cp_id = f"EICH-{version}"
    key_file = tmp_path / "meter.pem"
    ran = await simulate(
        "charger",
        "--url",
        server.url,
        "--id",
        cp_id,
        "--version",
        version,
        "--tag",
        TAG,
        "--signed-meter",
        "--meter-key",
        str(key_file),
        "--sessions",
        "1",
        "--session-seconds",
        "1.5",
        "--meter-interval",
        "0.4",
        "--seed",
        "3",
        "--exit-when-done",
    )
    assert ran.code == 0, ran
    assert "sessions_completed=1/1 errors=0" in ran.out
    # 1.6 published the key by DataTransfer and had an answer (whichever the CSMS gives)
    assert ("meter key published: DataTransfer" in ran.out) is (version == "1.6")
    public_key = published_key(key_file)
    detail = await stored(server, cp_id)
    assert detail["state"] == "completed"
    records = signed_records(detail, version)
    contexts = [s["context"] for s, _ in records]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert set(contexts[1:-1]) == {"Sample.Periodic"} and len(contexts) >= 3
    assert all(value["measurand"] == REGISTER for value, _ in records)
    assert all(verifies(text, public_key) for _, text in records)
    assert [reading(text)["TX"] for _, text in records] == ["B"] + ["C"] * (len(records) - 2) + [
        "E"
    ]
    pages = [split(text)[1]["PG"] for _, text in records]
    first = int(pages[0][1:])
    assert pages == [f"T{n}" for n in range(first, first + len(records))]
    assert {split(text)[1]["MS"] for _, text in records} == {"M-SN-" + cp_id + "-1"}
    assert {split(text)[1]["ID"] for _, text in records} == {TAG}
    # the plain register is the signed value: RV kWh * 1000 = Wh, begin = meter start,
    # end = meter stop, and so the energy billed is the signed energy
    pairs = paired(detail, records)
    assert len(pairs) == len(records) and all(wh == rv for wh, rv in pairs)
    begin = reading(records[0][1])["RV"] * 1000
    end = reading(records[-1][1])["RV"] * 1000
    assert (detail["meter_start_wh"], detail["meter_stop_wh"]) == (int(begin), int(end))
    assert detail["energy_wh"] == int(end - begin) > 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_charger_answers_how_it_signs_to_the_csms(server: Running, version: str) -> None:
    """1.6: GetConfiguration MeterPublicKey is the published key; 2.0.1: GetVariables
    SignReadings and PublicKeyWithSignedMeterValue; asked with `csms remote config-get`."""
    cp_id = f"EICH-KEY-{version}"
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            sessions=0,
            signed_meter=True,
            response_timeout=10,
        )
    )
    task = asyncio.create_task(cp.run())
    try:
        await until(lambda: asyncio.sleep(0, cp.online), "the charger online")
        if version == "1.6":
            keys = ["MeterPublicKey"]
        else:
            keys = ["SampledDataCtrlr.SignReadings", "OCPPCommCtrlr.PublicKeyWithSignedMeterValue"]
        got = await remote(server, "config-get", cp_id, *keys)
        assert got.code == 0, got
        answered = {entry["key"]: entry["value"] for entry in got.json()["data"]["keys"]}
        meter = getattr(cp, "signed_meter", None)
        assert meter is not None
        if version == "1.6":
            assert answered == {"MeterPublicKey": meter.public_key_hex}
        else:
            assert answered == {
                "SampledDataCtrlr.SignReadings": "true",
                "OCPPCommCtrlr.PublicKeyWithSignedMeterValue": "EveryMeterValue",
            }
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cp.close()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fault", ["tamper", "wrong-key", "no-end", "gap"])
async def test_each_fault_reaches_the_csms_as_it_was_made(
    server: Running, tmp_path: Path, version: str, fault: str
) -> None:
    cp_id = f"F-{fault}-{version}"
    key_file = tmp_path / "meter.pem"
    charger = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            tag=TAG,
            sessions=1,
            session_seconds=1.0,
            meter_interval=0.3,
            exit_when_done=True,
            seed=4,
            signed_meter=True,
            meter_key_file=str(key_file),
            signed_fault=fault,
            response_timeout=10,
        )
    )
    summary = await charger.run()
    assert (summary.sessions_completed, summary.errors) == (1, 0)
    public_key = published_key(key_file)
    detail = await stored_in_process(server, cp_id)
    records = signed_records(detail, version)
    valid = [verifies(text, public_key) for _, text in records]
    phases = [reading(text)["TX"] for _, text in records]
    pages = [int(split(text)[1]["PG"][1:]) for _, text in records]
    if fault == "tamper":
        assert valid[:-1] == [True] * (len(records) - 1) and valid[-1] is False
        assert phases[-1] == "E"
        [end_plain] = plain_registers(detail, "Transaction.End")
        assert reading(records[-1][1])["RV"] * 1000 == Decimal(str(end_plain)) + 1000
    elif fault == "wrong-key":
        assert valid == [False] * len(records) and phases[-1] == "E"
    elif fault == "no-end":
        assert all(valid) and "E" not in phases and phases[0] == "B"
        assert all(value["context"] != "Transaction.End" for value, _ in records)
        assert len(plain_registers(detail, "Transaction.End")) == 1
    else:
        assert all(valid) and phases[0] == "B" and phases[-1] == "E"
        assert pages[1] == pages[0] + 2
        assert pages[1:] == list(range(pages[1], pages[1] + len(pages) - 1))
    if fault != "gap":
        assert pages == list(range(pages[0], pages[0] + len(pages)))
