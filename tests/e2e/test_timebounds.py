"""Hostile times and readings on the real server (issue 15, README "timebounds").

A session stamped across a thousand years, a charger whose clock restarts in 1970,
timestamps beyond what UTC holds, readings of 1e308 kWh, NaN, a multiplier of 400 and a
meterStart of -2^63: each is answered (a CALLERROR where the message cannot be taken),
stored in a form every reader can handle, and its transaction waits for staff instead of
being priced. Another charger's Heartbeats are answered promptly all the while.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert
from structlog.testing import capture_logs

from csms.core.authorization import Token, TokenStatus
from csms.core.clock import utc_now
from csms.core.cost import TooManyPeriods
from csms.core.ids import token_key
from csms.core.locations import Location
from csms.services.locations import LocationService
from csms.services.sessions import SessionService
from csms.storage.models import MeterValueRow, TransactionRow
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from tests.e2e.cli import csms, ok
from tests.e2e.conftest import Running, StartServer
from tests.e2e.ocpi_rules import session_errors
from tests.e2e.raw import call, exchange, open_booted
from tests.e2e.sim import until
from tests.e2e.sql import execute

# Cheaper from 22:00 to 06:00 (UTC: no location, the default tariff): two boundaries a day.
TIME_OF_DAY = {
    "id": "TOD",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.2, "step_size": 1}],
            "restrictions": {"start_time": "22:00", "end_time": "06:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]},
    ],
}
BEYOND_UTC = ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00")
OUT_OF_RANGE = "is outside the years 1 to 9999 once converted to UTC"
PERIODIC = "Sample.Periodic"
# The event loop unavailable for longer than this is a stall (the issue measured 17.7 s).
# While 90 years are priced in the worker thread it waits about 0.05 s at most here (with
# the cyclic collector running during pricing, which walks the whole test process's heap
# holding the GIL, it was up to 1.7 s). Generous for a loaded machine.
PROMPT_S = 1.0
# Half the bystander's Heartbeats are answered within this (each waits for a commit, which
# a busy disk may hold up now and then).
ANSWERED_S = 0.25


async def _tariff(server: Running) -> None:
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    await server.app.billing.import_tariffs(TIME_OF_DAY)
    await server.app.billing.assign("TOD", default=True)


@dataclass
class Pulse:
    """What a bystander saw: its Heartbeats (sent at, seconds until answered) and how late
    the event loop woke a task that slept 10 ms (at, seconds late). A loop that stalls
    shows in both; a slow disk (every answer waits for a commit) only in the first."""

    beats: list[tuple[float, float]] = field(default_factory=list)
    lags: list[tuple[float, float]] = field(default_factory=list)

    def stalled(self, since: float = 0.0, until_: float = math.inf) -> float:
        """The longest the event loop was unavailable."""
        return max((lag for at, lag in self.lags if since <= at <= until_), default=0.0)

    def answers(self, since: float = 0.0, until_: float = math.inf) -> list[float]:
        return sorted(s for at, s in self.beats if since <= at <= until_)

    def median(self, since: float = 0.0, until_: float = math.inf) -> float:
        answers = self.answers(since, until_)
        return answers[len(answers) // 2] if answers else math.inf


@asynccontextmanager
async def bystander(server: Running) -> AsyncIterator[Pulse]:
    """A 1.6 charger sending Heartbeats back to back (20 ms apart), and a task measuring the
    event loop's lag, while the body runs."""
    ws = await open_booted(server.url, "BYSTANDER", "1.6")
    pulse = Pulse()
    stop = asyncio.Event()

    async def beat() -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            reply = await exchange(ws, [2, f"hb{len(pulse.beats)}", "Heartbeat", {}], timeout=60)
            assert reply[0] == 3, reply
            pulse.beats.append((sent, time.perf_counter() - sent))
            await asyncio.sleep(0.02)

    async def tick() -> None:
        while not stop.is_set():
            slept = time.perf_counter()
            await asyncio.sleep(0.01)
            woke = time.perf_counter()
            pulse.lags.append((slept, woke - slept - 0.01))

    tasks = [asyncio.create_task(beat()), asyncio.create_task(tick())]
    try:
        yield pulse
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await ws.close()


async def _metrics(server: Running) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        assert response.status == 200
        return (await response.text()).splitlines()


async def _settled(server: Running, tx_id: int) -> Any:
    async def check() -> Any:
        (tx,) = [t for t in await server.staff.transactions() if t.id == tx_id]
        return tx if tx.billing not in (None, "pending") else None

    return await until(check, f"transaction {tx_id} to be settled", seconds=30)


async def _timed_cli(server: Running, *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    out = ok(await csms(server, *args))
    return out, time.perf_counter() - started


# --- a session across a thousand years ------------------------------------------------------


async def test_a_session_across_a_thousand_years_is_held_and_nobody_waits(
    server: Running,
) -> None:
    await _tariff(server)
    async with bystander(server) as pulse:
        ws = await open_booted(server.url, "CENTURIES", "1.6")
        before = utc_now()
        with capture_logs() as logs:
            started = await call(
                ws,
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "CARD1",
                    "meterStart": 1000,
                    "timestamp": "2000-01-01T00:00:00Z",
                },
            )
            assert started[0] == 3 and started[2]["idTagInfo"]["status"] == "Accepted"
            tx_id = started[2]["transactionId"]
            meter = {
                "connectorId": 1,
                "transactionId": tx_id,
                "meterValue": [
                    {"timestamp": "2500-06-01T00:00:00Z", "sampledValue": [{"value": "6000"}]}
                ],
            }
            assert (await call(ws, "MeterValues", meter))[0] == 3
            stopped = await call(
                ws,
                "StopTransaction",
                {"transactionId": tx_id, "meterStop": 11000, "timestamp": "3000-01-01T00:00:00Z"},
            )
            assert stopped[0] == 3
            after = utc_now()
            tx = await _settled(server, tx_id)
        await ws.close()
    # Stored as received, flagged, held: never priced.
    assert before <= tx.start_at <= tx.stop_at <= after
    assert (tx.energy_wh, tx.state.value) == (10_000, "completed")
    # 10 kWh in the moments between receipt of the start and of the stop: that looks
    # implausible too, once the times are the real ones.
    assert tx.flags == ("implausible_timestamp", "implausible_energy")
    assert tx.billing == "held"
    assert tx.held_reason == "flagged: implausible_timestamp,implausible_energy"
    assert await server.app.billing.cdrs_of(tx_id) == []
    detail = await server.staff.transaction(tx_id)
    assert [s.value for s in detail.samples] == [6000.0]
    assert before <= detail.samples[0].timestamp <= after
    replaced = [e for e in logs if e["event"] == "implausible_timestamp_replaced"]
    assert [(e["action"], e["field"], e["sent"][:4]) for e in replaced] == [
        ("StartTransaction", "timestamp", "2000"),
        ("MeterValues", "meterValue.timestamp", "2500"),
        ("StopTransaction", "timestamp", "3000"),
    ]
    assert {e["charge_point_id"] for e in replaced} == {"CENTURIES"}
    assert pulse.stalled() < PROMPT_S, pulse.stalled()
    assert pulse.median() < ANSWERED_S, pulse.answers()

    lines = await _metrics(server)
    flagged = "csms_charger_values_flagged_total"
    for action in ("StartTransaction", "MeterValues", "StopTransaction"):
        assert f'{flagged}{{kind="timestamp",action="{action}"}} 1' in lines
    assert 'csms_billing_held_total{reason="flagged"} 1' in lines
    listed, listed_s = await _timed_cli(server, "transactions", "list", "--json")
    (row,) = [t for t in json.loads(listed) if t["id"] == tx_id]
    assert (row["billing"], row["flags"]) == (
        "held",
        ["implausible_timestamp", "implausible_energy"],
    )
    shown, shown_s = await _timed_cli(server, "transactions", "show", str(tx_id))
    assert "held: flagged: implausible_timestamp" in shown
    assert max(listed_s, shown_s) < 30  # a CLI start; the issue's `show` never returned


async def test_with_the_window_opened_the_period_bound_holds_it_at_once(
    start_server: StartServer,
) -> None:
    # Everything since the year 1 and a century ahead is plausible here: only the bound
    # on periods stands between this session and 90,000 charging periods.
    server = await start_server(
        ocpp={"earliest_timestamp": "0001-01-01T00:00:00Z", "max_clock_ahead": 3_000_000_000.0}
    )
    await _tariff(server)
    start = "2000-01-01T00:00:00Z"
    stop = (utc_now() + timedelta(days=365 * 90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with bystander(server) as pulse:
        ws = await open_booted(server.url, "LONG", "1.6")
        begin = {"connectorId": 1, "idTag": "CARD1", "meterStart": 0, "timestamp": start}
        tx_id = (await call(ws, "StartTransaction", begin))[2]["transactionId"]
        end = {"transactionId": tx_id, "meterStop": 5000, "timestamp": stop}
        assert (await call(ws, "StopTransaction", end))[0] == 3
        tx = await _settled(server, tx_id)
        await ws.close()
    assert (tx.start_at.year, tx.flags) == (2000, ())
    assert tx.billing == "held"
    assert tx.held_reason.startswith("too_large: pricing needs about ")
    assert tx.held_reason.endswith("more than the 1000 allowed (billing.max_periods)")
    assert await server.app.billing.cdrs_of(tx_id) == []
    assert pulse.stalled() < PROMPT_S, pulse.stalled()
    assert pulse.median() < ANSWERED_S, pulse.answers()
    assert 'csms_billing_held_total{reason="too_large"} 1' in await _metrics(server)
    shown, _ = await _timed_cli(server, "transactions", "show", str(tx_id), "--json")
    detail = json.loads(shown)
    assert detail["billing"] == "held" and detail["cost"] is None
    assert "more than the 1000 allowed" in detail["cost_error"]


async def test_a_long_pricing_runs_off_the_event_loop(start_server: StartServer) -> None:
    # The period bound raised out of the way: 90 years of a time-of-day tariff are priced
    # (about 66,000 periods, a second or more of CPU) while the bystander is answered; the
    # CDR then exceeds its byte bound and the transaction is held.
    server = await start_server(
        ocpp={"earliest_timestamp": "0001-01-01T00:00:00Z", "max_clock_ahead": 3_000_000_000.0},
        billing={"max_periods": 10_000_000},
    )
    await _tariff(server)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    stop = start + timedelta(days=365 * 90)
    async with bystander(server) as pulse:
        ws = await open_booted(server.url, "PRICEY", "1.6")
        begin = {
            "connectorId": 1,
            "idTag": "CARD1",
            "meterStart": 0,
            "timestamp": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        tx_id = (await call(ws, "StartTransaction", begin))[2]["transactionId"]
        end = {
            "transactionId": tx_id,
            "meterStop": 5000,
            "timestamp": stop.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        assert (await call(ws, "StopTransaction", end))[0] == 3
        stopped_at = time.perf_counter()
        tx = await _settled(server, tx_id)
        settled_at = time.perf_counter()
        await asyncio.sleep(0.1)
        await ws.close()
    assert tx.billing == "held"
    assert tx.held_reason.startswith("too_large: the CDR would take ")
    assert tx.held_reason.endswith("more than the 1000000 allowed (billing.max_cdr_bytes)")
    # Pricing took a while, and the bystander was answered promptly throughout.
    answered = pulse.answers(stopped_at, settled_at)
    assert len(answered) >= 5, (answered, settled_at - stopped_at)
    assert pulse.median(stopped_at, settled_at) < ANSWERED_S, answered
    assert pulse.stalled(stopped_at, settled_at) < PROMPT_S, pulse.stalled()


# --- a charger whose clock restarts in 1970 ------------------------------------------------


async def test_a_charger_whose_clock_reset_to_1970_is_answered_and_its_session_held(
    server: Running,
) -> None:
    await _tariff(server)
    booted = time.monotonic()

    def clock() -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=time.monotonic() - booted)

    before = utc_now()
    for cp in (
        V16Charger(_session_options(server, "EPOCH16"), clock=clock),
        V201Charger(_session_options(server, "EPOCH201", version="2.0.1"), clock=clock),
    ):
        summary = await cp.run()
        assert summary.sessions_completed == 1
    after = utc_now()
    for cp_id in ("EPOCH16", "EPOCH201"):
        (tx,) = await server.staff.transactions(cp_id=cp_id)
        tx = await _settled(server, tx.id)
        assert before <= tx.start_at <= tx.stop_at <= after, cp_id
        assert tx.energy_wh is not None and tx.energy_wh > 0
        assert "implausible_timestamp" in tx.flags
        assert tx.billing == "held" and tx.held_reason.startswith("flagged: ")
        assert "implausible_timestamp" in tx.held_reason
        detail = await server.staff.transaction(tx.id)
        assert detail.samples and all(before <= s.timestamp <= after for s in detail.samples)
        history = (await server.staff.charger(cp_id)).history
        assert history and all(report.timestamp.year > 2000 for report, _ in history)
    # The 2.0.1 event log keeps what the station sent.
    (tx201,) = await server.staff.transactions(cp_id="EPOCH201")
    events = await server.staff.transaction_events(tx201.id)
    assert all(before <= e.timestamp <= after for e in events)
    shown = json.loads(ok(await csms(server, "transactions", "show", str(tx201.id), "--json")))
    assert shown["billing"] == "held"


def _session_options(server: Running, cp_id: str, version: str = "1.6") -> ChargerOptions:
    return ChargerOptions(
        url=server.url,
        charger_id=cp_id,
        version=version,
        sessions=1,
        session_seconds=1.0,
        meter_interval=0.3,
        tag="CARD1",
        exit_when_done=True,
        response_timeout=10,
    )


# --- timestamps beyond UTC -------------------------------------------------------------------


def _v16_frames(stamp: str) -> list[tuple[str, dict[str, Any]]]:
    reading = {"timestamp": stamp, "sampledValue": [{"value": "10"}]}
    return [
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": stamp},
        ),
        (
            "StartTransaction",
            {"connectorId": 1, "idTag": "CARD1", "meterStart": 0, "timestamp": stamp},
        ),
        ("StopTransaction", {"transactionId": 1, "meterStop": 10, "timestamp": stamp}),
        (
            "StopTransaction",
            {
                "transactionId": 1,
                "meterStop": 10,
                "timestamp": "2026-01-01T00:00:00Z",
                "transactionData": [reading],
            },
        ),
        ("MeterValues", {"connectorId": 1, "meterValue": [reading]}),
        ("SecurityEventNotification", {"type": "Tamper", "timestamp": stamp}),
    ]


def _v201_frames(stamp: str) -> list[tuple[str, dict[str, Any]]]:
    reading = {"timestamp": stamp, "sampledValue": [{"value": 10}]}
    event = {
        "eventType": "Started",
        "timestamp": stamp,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T-BEYOND"},
        "evse": {"id": 1, "connectorId": 1},
    }
    return [
        (
            "StatusNotification",
            {"timestamp": stamp, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        ),
        ("TransactionEvent", event),
        (
            "TransactionEvent",
            {**event, "timestamp": "2026-01-01T00:00:00Z", "meterValue": [reading]},
        ),
        ("MeterValues", {"evseId": 1, "meterValue": [reading]}),
        ("SecurityEventNotification", {"type": "Tamper", "timestamp": stamp}),
        ("NotifyReport", {"requestId": 1, "generatedAt": stamp, "seqNo": 0}),
    ]


async def test_timestamps_beyond_utc_get_a_property_violation_and_the_connection_stays(
    server: Running,
) -> None:
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    await server.staff.add_charger("LENIENT16", validation="lenient")
    cases = [
        ("STRICT16", "1.6", _v16_frames),
        ("LENIENT16", "1.6", _v16_frames),
        ("STRICT201", "2.0.1", _v201_frames),
    ]
    with capture_logs() as logs:
        for cp_id, version, frames in cases:
            ws = await open_booted(server.url, cp_id, version)
            lenient = cp_id.startswith("LENIENT")
            for stamp in BEYOND_UTC:
                for action, payload in frames(stamp):
                    if lenient and action == "SecurityEventNotification":
                        continue  # kept as sent: nothing reads its time
                    reply = await call(ws, action, payload)
                    assert reply[0] == 4, (cp_id, action, reply)
                    assert reply[2] == "PropertyConstraintViolation", (cp_id, action, reply)
                    assert OUT_OF_RANGE in reply[3], reply
            heartbeat = await call(ws, "Heartbeat", {})
            assert heartbeat[0] == 3 and "currentTime" in heartbeat[2]
            await ws.close()
    rejected = [e for e in logs if e["event"] == "call_rejected"]
    assert len(rejected) == 2 * (6 + 5 + 6)
    assert all(e["code"] == "PropertyConstraintViolation" for e in rejected)
    assert not [e for e in logs if e["event"] == "call_failed" or e.get("exc_info")]
    # Nothing was stored from them.
    assert await server.staff.transactions() == []


# --- readings that break readers -------------------------------------------------------------


async def test_readings_of_1e308_and_nan_are_kept_as_text_and_the_session_ends(
    server: Running,
) -> None:
    await _tariff(server)
    now = utc_now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    an_hour_ago = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ws = await open_booted(server.url, "HUGE16", "1.6")
    begin = {"connectorId": 1, "idTag": "CARD1", "meterStart": 1000, "timestamp": an_hour_ago}
    tx_id = (await call(ws, "StartTransaction", begin))[2]["transactionId"]
    with capture_logs() as logs:
        for value, unit in (("1e308", "kWh"), ("NaN", "Wh"), ("-1e308", "W")):
            measurand = "Power.Active.Import" if unit == "W" else "Energy.Active.Import.Register"
            sampled = {"value": value, "unit": unit, "measurand": measurand}
            meter = {
                "connectorId": 1,
                "transactionId": tx_id,
                "meterValue": [{"timestamp": stamp, "sampledValue": [sampled]}],
            }
            reply = await call(ws, "MeterValues", meter)
            assert reply[0] == 3 and reply[2] == {}, reply
    listed = json.loads(ok(await csms(server, "transactions", "list", "--json")))
    (row,) = [t for t in listed if t["id"] == tx_id]
    assert row["state"] == "active" and row["flags"] == ["unusable_reading"]
    shown = json.loads(ok(await csms(server, "transactions", "show", str(tx_id), "--json")))
    assert [(s["raw_value"], s["value"]) for s in shown["samples"]] == [
        ("1e308", None),
        ("NaN", None),
        ("-1e308", None),
    ]
    refused = [e for e in logs if e["event"] == "unusable_reading_refused"]
    assert [e["sent"] for e in refused] == ["1e308", "NaN", "-1e308"]
    end = {"transactionId": tx_id, "meterStop": 6000, "timestamp": stamp}
    assert (await call(ws, "StopTransaction", end))[0] == 3
    await ws.close()
    tx = await _settled(server, tx_id)
    assert (tx.state.value, tx.energy_wh) == ("completed", 5000)
    assert (tx.billing, tx.held_reason) == ("held", "flagged: unusable_reading")
    ok(await csms(server, "transactions", "show", str(tx_id)))
    lines = await _metrics(server)
    assert 'csms_charger_values_flagged_total{kind="reading",action="MeterValues"} 3' in lines


async def test_a_2_0_1_session_ends_despite_1e308_and_a_multiplier_of_400(
    server: Running,
) -> None:
    await _tariff(server)
    stamp = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def reading(value: float, context: str, multiplier: int = 0) -> dict[str, Any]:
        unit: dict[str, Any] = {"unit": "kWh"}
        if multiplier:
            unit["multiplier"] = multiplier
        return {
            "timestamp": stamp,
            "sampledValue": [
                {
                    "value": value,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": unit,
                }
            ],
        }

    def event(kind: str, seq: int, meter: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {
            "eventType": kind,
            "timestamp": stamp,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "T-HUGE"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [meter],
            **more,
        }

    ws = await open_booted(server.url, "HUGE201", "2.0.1")
    started = event(
        "Started",
        0,
        reading(10.0, "Transaction.Begin"),
        idToken={"idToken": "CARD1", "type": "ISO14443"},
    )
    answers = [
        await call(ws, "TransactionEvent", started),
        await call(ws, "TransactionEvent", event("Updated", 1, reading(12.0, PERIODIC, 400))),
        await call(ws, "MeterValues", {"evseId": 1, "meterValue": [reading(1.0, PERIODIC, 400)]}),
        await call(ws, "TransactionEvent", event("Updated", 2, reading(1e308, PERIODIC))),
        await call(
            ws,
            "TransactionEvent",
            event("Ended", 3, reading(1e308, "Transaction.End"), triggerReason="StopAuthorized"),
        ),
    ]
    assert [a[0] for a in answers] == [3, 3, 3, 3, 3], answers
    heartbeat = await call(ws, "Heartbeat", {})
    assert heartbeat[0] == 3
    await ws.close()
    (tx,) = await server.staff.transactions(cp_id="HUGE201")
    tx = await _settled(server, tx.id)
    assert tx.state.value == "completed"
    assert tx.meter_start_wh == 10_000
    assert "unusable_reading" in tx.flags
    assert tx.billing == "held" and "unusable_reading" in (tx.held_reason or "")
    shown = json.loads(ok(await csms(server, "transactions", "show", str(tx.id), "--json")))
    assert {s["value"] for s in shown["samples"]} == {10_000.0, None}
    ok(await csms(server, "transactions", "list"))


async def test_a_meter_start_of_minus_2_63_can_still_be_stopped(server: Running) -> None:
    await _tariff(server)
    stamp = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    ws = await open_booted(server.url, "NEGATIVE", "1.6")
    begin = {"connectorId": 1, "idTag": "CARD1", "meterStart": -(2**63), "timestamp": stamp}
    # -2^63 itself is beyond the integer bound every field has (64-bit, symmetric): refused
    # before any handler, nothing stored. One above it is an integer, but no register.
    refused = await call(ws, "StartTransaction", begin)
    assert refused[0] == 4 and refused[2] == "PropertyConstraintViolation", refused
    assert await server.staff.transactions() == []
    with capture_logs() as logs:
        started = await call(ws, "StartTransaction", {**begin, "meterStart": -(2**63) + 1})
        assert started[0] == 3 and started[2]["idTagInfo"]["status"] == "Accepted"
        tx_id = started[2]["transactionId"]
        end = {"transactionId": tx_id, "meterStop": 5000, "timestamp": stamp}
        stopped = await call(ws, "StopTransaction", end)
        assert stopped[0] == 3, stopped
    await ws.close()
    unusable = [e for e in logs if e["event"] == "unusable_register_refused"]
    assert [(e["field"], e["sent"]) for e in unusable] == [("meterStart", -(2**63) + 1)]
    tx = await _settled(server, tx_id)
    assert (tx.state.value, tx.meter_start_wh, tx.meter_stop_wh) == ("completed", None, 5000)
    assert tx.energy_wh is None
    assert tx.flags == ("unusable_register", "no_meter_readings")
    assert tx.billing == "held"
    listed = json.loads(ok(await csms(server, "transactions", "list", "--json")))
    assert [t["id"] for t in listed] == [tx_id]
    ok(await csms(server, "transactions", "show", str(tx_id)))


# --- rows stored before the bounds ------------------------------------------------------------


def _old_rows(db_path: Path) -> dict[str, int]:
    """What an older version could store: +inf and 1e300 readings and a meterStart of
    -2^63, in a session of an hour (OLDSHORT) and in one from the year 1 to 9999 (OLDLONG);
    returns their transaction ids."""
    now = utc_now()
    times = {
        "OLDSHORT": (now - timedelta(hours=1), now),
        "OLDLONG": (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)),
    }
    samples = [["Energy.Active.Import.Register", 1e300, "Wh", None, None, None, "1e300", False]]
    ids = {}
    for cp_id, (start, stop) in times.items():
        transaction = {
            "charge_point_id": cp_id,
            "ocpp_version": "1.6",
            "evse_id": 1,
            "connector_id": 1,
            "id_tag": "CARD1",
            "id_tag_key": token_key("CARD1"),
            "auth_status": "Accepted",
            "state": "completed",
            "start_at": start,
            "meter_start_wh": -(2**63),
            "stop_at": stop,
            "meter_stop_wh": 5000,
            "energy_wh": 5000,
            "stop_reason": "Local",
            "billing": "pending",
            "billing_attempts": 0,
            "received_at": now,
            "updated_at": now,
        }
        ((tx_id,),) = execute(
            db_path, insert(TransactionRow).values(transaction).returning(TransactionRow.id)
        )
        ids[cp_id] = tx_id
        reading = {
            "transaction_id": tx_id,
            "charge_point_id": cp_id,
            "evse_id": 1,
            "connector_id": 1,
            "timestamp": now,
            "samples": samples,
        }
        execute(
            db_path,
            (
                insert(MeterValueRow),
                [
                    {**reading, "energy_wh": math.inf, "power_w": -math.inf},
                    {**reading, "energy_wh": 1e300, "power_w": None},
                ],
            ),
        )
    return ids


async def test_readers_survive_rows_stored_before_the_bounds(server: Running) -> None:
    await _tariff(server)
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id="OLD-SITE",
            name="Old site",
            address="Kade 1",
            city="Amsterdam",
            postal_code="1011AA",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    for cp_id in ("OLDSHORT", "OLDLONG"):
        await locations.link("OLD-SITE", cp_id, None)
    ids = await asyncio.to_thread(_old_rows, server.db_path)
    listed = json.loads(ok(await csms(server, "transactions", "list", "--json")))
    assert {t["id"]: t["last_meter_wh"] for t in listed} == {
        ids["OLDSHORT"]: None,
        ids["OLDLONG"]: None,
    }
    (long_row,) = [t for t in listed if t["id"] == ids["OLDLONG"]]
    assert long_row["start_at"].startswith("0001-01-01")
    ok(await csms(server, "transactions", "list"))
    for tx_id in ids.values():
        ok(await csms(server, "transactions", "show", str(tx_id)))
        shown = json.loads(ok(await csms(server, "transactions", "show", str(tx_id), "--json")))
        assert [s["value"] for s in shown["samples"]] == [None, None]
        if tx_id == ids["OLDLONG"]:
            assert shown["cost"] is None
            assert "more than the 1000 allowed" in shown["cost_error"]
        else:
            assert shown["cost"]["total_energy"] == 5
    # OCPI: the short session renders; the long one fails with a clear error (its page
    # and the publisher leave it out and log it) instead of pricing 9999 years.
    sessions = SessionService(server.app.db, utc_now, server.app.billing)
    session = await sessions.session(ids["OLDSHORT"])
    assert session is not None and session_errors(session) == []
    assert session["kwh"] == 5
    with pytest.raises(TooManyPeriods):
        await sessions.session(ids["OLDLONG"])
    # Billing: the short one gets its CDR; the long one is held (its times are outside the
    # window) instead of priced.
    server.app.billing.wake()
    short = await _settled(server, ids["OLDSHORT"])
    assert short.billing == "billed"
    (cdr,) = await server.app.billing.cdrs_of(ids["OLDSHORT"])
    assert cdr.energy_wh == 5000
    long = await _settled(server, ids["OLDLONG"])
    assert (long.billing, long.held_reason) == ("held", "flagged: implausible_timestamp")
