"""Signed meter values (Eichrecht) end to end, driven by raw OCPP frames: both versions'
values stored exactly as sent, the meter key from each source, verification at billing
(held with the reason, released by staff), the CDR's signed_data, and an unsigned charger
billed as before. Records are signed in the test with a P-256 key of its own."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.core.authorization import Token, TokenStatus
from csms.core.charger import METER_KEY_CHANGE, SIGNATURE_RELEASE
from csms.core.commands import CommandRecord
from csms.core.transactions import Transaction
from csms.storage import commands as audit_repo
from csms.storage import signed_values as signed_repo
from csms.storage import transactions as tx_repo
from csms.storage.signed_values import MeterKey, StoredSignedValue
from tests.e2e.cli import csms, ok, one_line_error
from tests.e2e.conftest import Running, StartServer
from tests.e2e.raw import BOOT, BOOT201, call, open_raw
from tests.e2e.sim import register, ts, until
from tests.ocmf_data import Meter, tamper


class SigningMeter:
    """A meter with its own P-256 key writing one transaction's OCMF records."""

    def __init__(self, serial: str = "EMH-0001") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.meter = Meter(sign=self.sign, serial=serial, counter=40)

    def sign(self, payload: bytes) -> bytes:
        return self.key.sign(payload, ec.ECDSA(hashes.SHA256()))

    @property
    def der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def hex(self) -> str:
        return self.der.hex().upper()

    def record(self, kwh: str, tx: str, **kwargs: Any) -> str:
        return self.meter.record(kwh, tx, **kwargs)


def spaced(meter: SigningMeter, kwh: str, tx: str) -> str:
    """A record whose payload a re-serialiser would change (spaces, key order, an escaped
    character): only the exact bytes verify."""
    compact = meter.meter.payload(kwh, tx)
    payload = compact.replace('"FV":"1.0",', '"FV" : "1.0" ,  ').replace(
        '"GI":"SIM"', '"GI":"SIM \\u00e9"'
    )
    return meter.meter.sign_payload(payload)


def verifies(der: bytes, record: str) -> bool:
    """An independent check of a record: the signature (hex DER) over the exact bytes
    between the first and the last pipe."""
    first, last = record.index("|"), record.rindex("|")
    payload = record[first + 1 : last].encode("utf-8")
    signature = bytes.fromhex(orjson.loads(record[last + 1 :])["SD"])
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def signed(moment: datetime, data: str, context: str) -> dict[str, Any]:
    """A 1.6 meterValue with the plain register and the signed record."""
    return {
        "timestamp": ts(moment),
        "sampledValue": [
            {
                "value": data,
                "format": "SignedData",
                "measurand": "Energy.Active.Import.Register",
                "context": context,
            }
        ],
    }


async def stored_signed(server: Running, tx_id: int) -> list[StoredSignedValue]:
    async with server.app.db.read() as conn:
        return (await signed_repo.signed_of(conn, [tx_id])).get(tx_id, [])


async def keys(server: Running, cp_id: str) -> list[MeterKey]:
    async with server.app.db.read() as conn:
        return await signed_repo.keys_of(conn, cp_id)


async def audit(server: Running, cp_id: str, command: str) -> list[CommandRecord]:
    async with server.app.db.read() as conn:
        page = await audit_repo.browse(conn, cp_id=cp_id, command=command, limit=50)
    return list(page.items)


async def settled(server: Running, tx_id: int) -> Transaction:
    async def check() -> Transaction | None:
        async with server.app.db.read() as conn:
            tx = await tx_repo.get(conn, tx_id)
        return tx if tx is not None and tx.billing not in (None, "pending") else None

    found: Transaction = await until(check, f"transaction {tx_id} settled")
    return found


async def v16_session(
    server: Running,
    cp_id: str,
    records: tuple[str | None, str | None, str | None],
    *,
    wh: tuple[int, int, int] = (1000, 1250, 1500),
    publish: SigningMeter | None = None,
) -> int:
    """A 1.6 session on connector 1: begin record with the start, an intermediate one with a
    periodic reading, the end record in StopTransaction's transactionData (None: left out);
    the meter's key published by DataTransfer first when `publish` is given."""
    ws = await open_raw(server.url, cp_id)
    await call(ws, "BootNotification", BOOT)
    if publish is not None:
        data = {
            "meters": [
                {
                    "connectorId": 1,
                    "meterSerial": publish.meter.serial,
                    "type": "SIGNATURE",
                    "publicKey": publish.hex,
                }
            ]
        }
        answer = await call(
            ws,
            "DataTransfer",
            {
                "vendorId": "generalConfiguration",
                "messageId": "setMeterConfiguration",
                "data": orjson.dumps(data).decode(),
            },
        )
        assert answer[2] == {"status": "Accepted"}
    begin = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    started = await call(
        ws,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD1", "meterStart": wh[0], "timestamp": ts(begin)},
    )
    tx_id: int = started[2]["transactionId"]
    contexts = ("Transaction.Begin", "Sample.Periodic")
    pairs = zip(records[:2], wh[:2], contexts, strict=True)
    for minute, (record, value, context) in enumerate(pairs):
        readings = [register(begin + timedelta(minutes=minute), value, context)]
        if record is not None:
            readings.append(signed(begin + timedelta(minutes=minute), record, context))
        await call(
            ws, "MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": readings}
        )
    end = begin + timedelta(minutes=10)
    stop: dict[str, Any] = {
        "transactionId": tx_id,
        "meterStop": wh[2],
        "timestamp": ts(end),
        "idTag": "CARD1",
    }
    if records[2] is not None:
        stop["transactionData"] = [
            register(end, wh[2], "Transaction.End"),
            signed(end, records[2], "Transaction.End"),
        ]
    await call(ws, "StopTransaction", stop)
    await ws.close()
    return tx_id


@pytest.mark.slow
async def test_a_signed_16_session_is_kept_byte_exact_verified_and_in_its_cdr(
    server: Running,
) -> None:
    """The key comes by DataTransfer; the begin record as plain text with spaces and an
    escaped character, the intermediate one base64 (as some chargers send it), the end one
    in the stop: stored exactly as sent, verified, and the CDR carries begin and end, which
    verify again here over their exact bytes."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    meter = SigningMeter()
    sent = (
        spaced(meter, "1.000", "B"),
        base64.b64encode(meter.record("1.250", "C").encode()).decode(),
        meter.record("1.500", "E"),
    )
    tx_id = await v16_session(server, "EICH-16", sent, publish=meter)
    (key,) = await keys(server, "EICH-16")
    assert (key.evse_id, key.public_key, key.source) == (1, meter.hex, "data_transfer")
    assert key.meter_serial == "EMH-0001"
    (entry,) = await audit(server, "EICH-16", METER_KEY_CHANGE)
    assert entry.source == "charger" and entry.params["source"] == "data_transfer"
    assert entry.params["previous"] is None

    tx = await settled(server, tx_id)
    assert (tx.billing, tx.signature_state, tx.signature_problem) == ("billed", "verified", None)
    values = await stored_signed(server, tx_id)
    assert [v.data for v in values] == list(sent)
    assert [v.context for v in values] == [
        "Transaction.Begin",
        "Sample.Periodic",
        "Transaction.End",
    ]
    assert {v.meter_serial for v in values} == {"EMH-0001"}
    assert {(v.encoding_method, v.public_key) for v in values} == {(None, None)}

    (cdr,) = await server.app.billing.cdrs_of(tx_id)
    data = cdr.data["signed_data"]
    assert data["encoding_method"] == "OCMF" and data["encoding_method_version"] == 1
    # OCPI carries the key and the records base64 encoded: decoded, the exact bytes.
    assert base64.b64decode(data["public_key"]) == meter.der
    assert [v["nature"] for v in data["signed_values"]] == ["Start", "End"]
    carried = [base64.b64decode(v["signed_data"]).decode() for v in data["signed_values"]]
    assert carried == [sent[0], sent[2]]
    assert all(verifies(meter.der, record) for record in carried)
    assert "url" not in data
    assert all(len(v["plain_data"]) <= 512 for v in data["signed_values"])


@pytest.mark.slow
async def test_a_signed_201_session_is_kept_with_its_methods_and_key(server: Running) -> None:
    """2.0.1: signedMeterData (base64 of the record), signingMethod, encodingMethod and
    publicKey (base64 of the DER) kept as sent; the key stored for the EVSE from the first
    value, verified at billing, and in the CDR."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    meter = SigningMeter("EMH-2001")
    public = base64.b64encode(meter.der).decode()
    records = [meter.record("2.000", "B"), meter.record("2.400", "C"), meter.record("3.000", "E")]
    sent = [base64.b64encode(r.encode()).decode() for r in records]
    ws = await open_raw(server.url, "EICH-201", subprotocols=["ocpp2.0.1"])
    await call(ws, "BootNotification", BOOT201)
    begin = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    events = [("Started", "Transaction.Begin", 2000), ("Updated", "Sample.Periodic", 2400)]
    events.append(("Ended", "Transaction.End", 3000))
    for seq, ((kind, context, wh), data) in enumerate(zip(events, sent, strict=True)):
        value: dict[str, Any] = {
            "value": wh,
            "measurand": "Energy.Active.Import.Register",
            "context": context,
            "unitOfMeasure": {"unit": "Wh"},
            "signedMeterValue": {
                "signedMeterData": data,
                "signingMethod": "ECDSA-secp256r1-SHA256",
                "encodingMethod": "OCMF",
                # Sent with the first value only, as the specification allows.
                "publicKey": public if seq == 0 else "",
            },
        }
        event: dict[str, Any] = {
            "eventType": kind,
            "timestamp": ts(begin + timedelta(minutes=5 * seq)),
            "triggerReason": "Authorized" if seq == 0 else "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "TX-EICH"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [
                {"timestamp": ts(begin + timedelta(minutes=5 * seq)), "sampledValue": [value]}
            ],
        }
        if seq == 0:
            event["idToken"] = {"idToken": "CARD1", "type": "ISO14443"}
        if kind == "Ended":
            event["transactionInfo"]["stoppedReason"] = "Local"
        answer = await call(ws, "TransactionEvent", event)
        assert answer[0] == 3, answer
    await ws.close()
    (key,) = await keys(server, "EICH-201")
    assert (key.evse_id, key.public_key, key.source) == (1, meter.hex, "ocpp")
    async with server.app.db.read() as conn:
        tx = await tx_repo.find_by_ocpp_id(conn, "EICH-201", "TX-EICH")
    assert tx is not None
    values = await stored_signed(server, tx.id)
    assert [v.data for v in values] == sent
    assert [v.public_key for v in values] == [public, None, None]
    assert {(v.encoding_method, v.signing_method) for v in values} == {
        ("OCMF", "ECDSA-secp256r1-SHA256")
    }
    billed = await settled(server, tx.id)
    assert (billed.billing, billed.signature_state) == ("billed", "verified")
    (cdr,) = await server.app.billing.cdrs_of(tx.id)
    in_cdr = cdr.data["signed_data"]["signed_values"]
    carried = [base64.b64decode(v["signed_data"]).decode() for v in in_cdr]
    assert carried == [records[0], records[2]]
    assert all(verifies(meter.der, r) for r in carried)
    shown = (await csms(server, "transactions", "show", str(tx.id), "--json")).json()
    assert shown["signature_state"] == "verified" and shown["signature_problem"] is None
    assert [v["data"] for v in shown["signed_values"]] == sent
    human = ok(await csms(server, "transactions", "show", str(tx.id)))
    assert re.search(r"\nsignature +verified, 3 signed values\n", human)
    assert "signed meter values (3):" in human


def _faulty(meter: SigningMeter, fault: str) -> tuple[str | None, str | None, str | None]:
    begin = meter.record("1.000", "B")
    if fault == "tamper":
        return (
            begin,
            meter.record("1.250", "C"),
            tamper(meter.record("1.500", "E"), "1.500", "1.600"),
        )
    if fault == "wrong-key":
        other = SigningMeter()
        other.meter.counter = meter.meter.counter
        return begin, other.record("1.250", "C"), other.record("1.500", "E")
    if fault == "no-end":
        return begin, meter.record("1.250", "C"), None
    assert fault == "gap"
    middle = meter.record("1.250", "C")
    meter.meter.counter += 1
    return begin, middle, meter.record("1.500", "E")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("tamper", "bad_signature"),
        ("wrong-key", "bad_signature"),
        ("no-end", "no_end"),
        ("gap", "pagination_gap"),
    ],
)
async def test_a_failing_signature_holds_the_transaction_until_staff_release_it(
    server: Running, fault: str, problem: str
) -> None:
    """Each fault holds the transaction with its reason (list, show, the metric); staff
    release it with a reason (audited) and it is billed, its state `released`."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    meter = SigningMeter()
    cp_id = f"EICH-{fault}"
    tx_id = await v16_session(server, cp_id, _faulty(meter, fault), publish=meter)
    tx = await settled(server, tx_id)
    assert tx.billing == "held" and tx.signature_state == "failed"
    assert tx.held_reason is not None and tx.held_reason.startswith(f"signature: {problem}: ")
    assert tx.signature_problem is not None and tx.signature_problem.startswith(f"{problem}: ")
    assert await server.app.billing.cdrs_of(tx_id) == []
    assert server.app.metrics.signature_held == {problem: 1}
    assert server.app.metrics.held.get("signature") == 1
    listed = (await csms(server, "transactions", "list", "--charger", cp_id, "--json")).json()
    assert listed[0]["signature_state"] == "failed"
    assert listed[0]["held_reason"] == tx.held_reason
    assert f"signature: {problem}" in ok(await csms(server, "transactions", "list"))

    refused = await csms(server, "transactions", "resolve", str(tx_id), "--release-signature")
    one_line_error(refused, "--reason")
    ran = await csms(
        server,
        "transactions",
        "resolve",
        str(tx_id),
        "--release-signature",
        "--reason",
        "meter checked on site",
    )
    assert "CDR " in ok(ran)
    released = await settled(server, tx_id)
    assert (released.billing, released.signature_state) == ("billed", "released")
    assert released.signature_problem == tx.signature_problem
    (entry,) = await audit(server, cp_id, SIGNATURE_RELEASE)
    assert entry.params == {
        "transaction_id": tx_id,
        "problem": tx.signature_problem,
        "reason": "meter checked on site",
    }
    assert entry.requested_by is not None
    (cdr,) = await server.app.billing.cdrs_of(tx_id)
    # The records go with the CDR where there are a begin and an end: the driver sees them.
    assert ("signed_data" in cdr.data) is (fault != "no-end")
    again = await csms(
        server, "transactions", "resolve", str(tx_id), "--release-signature", "--reason", "x"
    )
    one_line_error(again, "is billed")


@pytest.mark.slow
async def test_an_unsigned_charger_is_billed_as_before(server: Running) -> None:
    """No signed value, no key: nothing is checked, no state, no signed_data."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    tx_id = await v16_session(server, "EICH-PLAIN", (None, None, None))
    tx = await settled(server, tx_id)
    assert (tx.billing, tx.signature_state, tx.signature_problem) == ("billed", None, None)
    (cdr,) = await server.app.billing.cdrs_of(tx_id)
    assert "signed_data" not in cdr.data
    assert await stored_signed(server, tx_id) == []


@pytest.mark.slow
async def test_a_key_without_signed_values_and_values_without_a_key_are_held(
    server: Running,
) -> None:
    """A charger whose meter has a key but whose session signed nothing, and a session
    with signed values whose key nobody published: both held with their reason."""
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    meter = SigningMeter()
    unsigned = await v16_session(server, "EICH-NOVAL", (None, None, None), publish=meter)
    keyless = SigningMeter()
    records = (keyless.record("1.000", "B"), None, keyless.record("1.500", "E"))
    no_key = await v16_session(server, "EICH-NOKEY", records)
    first, second = await settled(server, unsigned), await settled(server, no_key)
    assert first.signature_problem is not None and second.signature_problem is not None
    assert first.signature_problem.startswith("no_signed_values: ")
    assert second.signature_problem.startswith("no_public_key: ")
    # Staff set the key, and trying again bills it: verified.
    ok(await csms(server, "chargers", "set", "EICH-NOKEY", "--meter-public-key", keyless.hex))
    ok(await csms(server, "transactions", "resolve", str(no_key), "--retry"))
    billed = await settled(server, no_key)
    assert (billed.billing, billed.signature_state) == ("billed", "verified")


@pytest.mark.slow
async def test_staff_set_a_meter_key_that_chargers_do_not_replace(server: Running) -> None:
    """`csms chargers set --meter-public-key` (base64 here, per EVSE): stored canonical,
    audited with the operator; a station reporting another key does not replace it; an
    unreadable key is one line of error; `--no-meter-public-key` removes it."""
    meter, other = SigningMeter(), SigningMeter()
    ws = await open_raw(server.url, "EICH-STAFF", subprotocols=["ocpp2.0.1"])
    await call(ws, "BootNotification", BOOT201)
    base = base64.b64encode(meter.der).decode()
    out = ok(
        await csms(
            server, "chargers", "set", "EICH-STAFF", "--meter-public-key", base, "--evse", "2"
        )
    )
    assert "meter public key" in out and "audit log" in out
    (key,) = await keys(server, "EICH-STAFF")
    assert (key.evse_id, key.public_key, key.source) == (2, meter.hex, "staff")
    (entry,) = await audit(server, "EICH-STAFF", METER_KEY_CHANGE)
    assert entry.source == "cli" and entry.requested_by is not None
    # The station sends another key with a signed value on EVSE 2: kept as it was.
    value = {
        "timestamp": ts(datetime.now(UTC)),
        "sampledValue": [
            {
                "value": 10,
                "signedMeterValue": {
                    "signedMeterData": base64.b64encode(other.record("1.0", "C").encode()).decode(),
                    "signingMethod": "",
                    "encodingMethod": "OCMF",
                    "publicKey": base64.b64encode(other.der).decode(),
                },
            }
        ],
    }
    assert (await call(ws, "MeterValues", {"evseId": 2, "meterValue": [value]}))[0] == 3
    await ws.close()
    assert await keys(server, "EICH-STAFF") == [key]
    shown = (await csms(server, "chargers", "show", "EICH-STAFF", "--json")).json()
    assert shown["meter_public_keys"][0]["source"] == "staff"
    one_line_error(
        await csms(server, "chargers", "set", "EICH-STAFF", "--meter-public-key", "00ZZ"),
        "cannot be read",
    )
    ok(await csms(server, "chargers", "set", "EICH-STAFF", "--no-meter-public-key", "--evse", "2"))
    assert await keys(server, "EICH-STAFF") == []
    assert len(await audit(server, "EICH-STAFF", METER_KEY_CHANGE)) == 2
    one_line_error(
        await csms(server, "chargers", "set", "EICH-STAFF", "--no-meter-public-key"),
        "no meter public key",
    )
    # A removed charger's keys go with it.
    ok(await csms(server, "chargers", "set", "EICH-STAFF", "--meter-public-key", meter.hex))
    ok(await csms(server, "chargers", "remove", "EICH-STAFF", "--yes"))
    assert await keys(server, "EICH-STAFF") == []


@pytest.mark.slow
async def test_a_16_charger_whose_vendor_keeps_the_key_in_a_configuration_key(
    start_server: StartServer,
) -> None:
    """eichrecht.vendor_key_sources names config_key for the vendor: after the accepted
    boot the CSMS asks GetConfiguration for the configured key name and stores its value;
    the DataTransfer of that vendor is not trusted."""
    server = await start_server(
        eichrecht={
            "vendor_key_sources": {"TestVendor": "config_key"},
            "vendor_config_keys": {"TestVendor": "SignatureKey"},
        }
    )
    meter = SigningMeter()
    ws = await open_raw(server.url, "EICH-CFG")
    await ws.send(orjson.dumps([2, "b1", "BootNotification", BOOT]).decode())
    asked: list[Any] = []
    while not asked:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame[0] == 2:
            asked.append(frame)
    assert asked[0][2:] == ["GetConfiguration", {"key": ["SignatureKey"]}]
    answer = {"configurationKey": [{"key": "SignatureKey", "readonly": True, "value": meter.hex}]}
    await ws.send(orjson.dumps([3, asked[0][1], answer]).decode())

    async def stored() -> list[MeterKey]:
        return await keys(server, "EICH-CFG")

    (key,) = await until(stored, "the configuration key's meter key")
    assert (key.evse_id, key.public_key, key.source) == (0, meter.hex, "config_key")
    transfer = await call(
        ws,
        "DataTransfer",
        {"vendorId": "generalConfiguration", "messageId": "setMeterConfiguration", "data": "{}"},
    )
    assert transfer[2] == {"status": "Rejected"}
    await ws.close()
