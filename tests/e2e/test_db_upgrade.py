"""`csms db upgrade` on a database made by an older version keeps its data and brings the
schema to the newest migration, on SQLite and on PostgreSQL; the data commands then read
what the older version stored. Run as a subprocess, as an operator upgrading would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import text

from csms.core.ids import token_key
from csms.storage.database import create_engine
from csms.storage.migrate import current, upgrade
from tests.postgres import db_url_for

CSMS = [sys.executable, "-m", "csms.cli.main"]
# Before token limits (0008), quotas (0011), the stored charging state (0012) and TLS (0014).
OLD_REVISION = "0007"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _old_database(url: str) -> None:
    """The schema at OLD_REVISION with a charger, a token and a 2.0.1 transaction in it, as
    that version wrote them."""
    engine = create_engine(url)
    try:
        await upgrade(engine, OLD_REVISION)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO charge_points (id, registration, ocpp_version, vendor,"
                    " connected, created_at, updated_at) VALUES ('OLD-CP', 'Accepted',"
                    " '2.0.1', 'OldVendor', false, :at, :at)"
                ),
                {"at": AT},
            )
            await conn.execute(
                text(
                    "INSERT INTO id_tokens (uid_key, uid, type, status, origin, created_at,"
                    " updated_at) VALUES (:key, 'OLDCARD', 'ISO14443', 'Accepted', 'local',"
                    " :at, :at)"
                ),
                {"key": token_key("OLDCARD"), "at": AT},
            )
            tx_id = (
                await conn.execute(
                    text(
                        "INSERT INTO transactions (charge_point_id, ocpp_version,"
                        " ocpp_transaction_id, evse_id, connector_id, id_tag, id_tag_key,"
                        " auth_status, state, start_at, meter_start_wh, received_at,"
                        " updated_at) VALUES ('OLD-CP', '2.0.1', 'T-OLD', 1, 1, 'OLDCARD',"
                        " :key, 'Accepted', 'active', :at, 1000, :at, :at) RETURNING id"
                    ),
                    {"key": token_key("OLDCARD"), "at": AT},
                )
            ).scalar_one()
            info = {"transactionId": "T-OLD", "chargingState": "EVConnected"}
            payload = {"transactionInfo": info}
            await conn.execute(
                text(
                    "INSERT INTO transaction_events (transaction_id, charge_point_id,"
                    " ocpp_transaction_id, seq_no, event_type, trigger_reason, timestamp,"
                    " offline, payload, received_at) VALUES (:tx, 'OLD-CP', 'T-OLD', 0,"
                    " 'Started', 'Authorized', :at, false, :payload, :at)"
                ),
                {"tx": tx_id, "at": AT, "payload": orjson.dumps(payload).decode()},
            )
    finally:
        await engine.dispose()


async def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await current(engine)
    finally:
        await engine.dispose()


async def _charging_state(url: str) -> list[tuple[str, str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT ocpp_transaction_id, charging_state FROM transaction_events")
            )
            return [(r[0], r[1]) for r in rows]
    finally:
        await engine.dispose()


def _csms(url: str, cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env["CSMS_DATABASE_URL"] = url
    done = subprocess.run(
        [*CSMS, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_db_upgrade_keeps_an_older_versions_data(tmp_path: Path) -> None:
    url = db_url_for(tmp_path / "old.db", empty=True)
    asyncio.run(_old_database(url))
    assert asyncio.run(_revision(url)) == OLD_REVISION
    # The newest revision, as the migrations directory names it.
    versions = Path(__file__).parents[2] / "csms/storage/migrations/versions"
    newest = max(p.name.split("_")[0] for p in versions.glob("[0-9]*_*.py"))

    _csms(url, tmp_path, "db", "upgrade")
    assert asyncio.run(_revision(url)) == newest
    charger = json.loads(_csms(url, tmp_path, "chargers", "show", "OLD-CP", "--json"))
    assert (charger["id"], charger["vendor"], charger["ocpp_version"]) == (
        "OLD-CP",
        "OldVendor",
        "2.0.1",
    )
    assert charger["security_profile"] == 1  # 0014's default for chargers stored before it
    token = json.loads(_csms(url, tmp_path, "tokens", "show", "OLDCARD", "--json"))
    assert (token["uid"], token["status"], token["max_concurrent"]) == ("OLDCARD", "Accepted", 1)
    (tx,) = json.loads(_csms(url, tmp_path, "transactions", "list", "--json"))
    assert (tx["charger"], tx["ocpp_transaction_id"], tx["state"], tx["meter_start_wh"]) == (
        "OLD-CP",
        "T-OLD",
        "active",
        1000,
    )
    assert tx["start_at"].startswith("2026-03-01T12:00:00")
    # 0012 copied the charging state out of the stored event's JSON.
    assert asyncio.run(_charging_state(url)) == [("T-OLD", "EVConnected")]
    # Upgrading again changes nothing.
    _csms(url, tmp_path, "db", "upgrade")
    assert asyncio.run(_revision(url)) == newest
    assert json.loads(_csms(url, tmp_path, "tokens", "show", "OLDCARD", "--json"))["uid"] == (
        "OLDCARD"
    )
