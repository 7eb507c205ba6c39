"""The simulated chargers of both OCPP versions under smart charging, against the real
server: profiles sent through the CSMS's command path cap the current the charger draws, as
the meter values the CSMS stores show, and a charger that takes no profiles says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from csms.core.authorization import Token, TokenStatus
from csms.core.errors import UnknownChargePoint
from csms.core.metering import Sample
from simulators.charger import ChargerBase
from simulators.options import ChargerOptions
from simulators.versions import create_charger
from tests.e2e.cli import Ran, remote
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until

VERSIONS = ["1.6", "2.0.1"]


def ok(ran: Ran) -> dict[str, Any]:
    assert ran.code == 0, (ran.out, ran.err)
    body: dict[str, Any] = ran.json()
    assert body["ok"] is True and body["outcome"] == "accepted", body
    return body


@asynccontextmanager
async def running(
    server: Running, cp_id: str, version: str, **options: Any
) -> AsyncIterator[ChargerBase]:
    """A simulated charger booted, its connector announced, no scripted sessions."""
    cp = create_charger(
        ChargerOptions(
            url=server.url,
            charger_id=cp_id,
            version=version,
            sessions=0,
            meter_interval=1,
            seed=11,
            response_timeout=10,
            **options,
        )
    )
    assert isinstance(cp, ChargerBase)
    task = asyncio.create_task(cp.run())

    async def announced() -> bool:
        try:
            detail = await server.staff.charger(cp_id)
        except UnknownChargePoint:
            return False
        return any(c.evse_id == 1 for c in detail.connectors)

    try:
        await until(announced, f"{cp_id}'s connector")
        yield cp
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cp.close()


async def api_profile(server: Running, cp_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """profile/set through the operator API: a schedule of periods can say 0, which the
    command line's --limit cannot."""
    url = f"{server.api_url}/api/chargers/{cp_id}/remote/profile/set"
    headers = {"Authorization": f"Bearer {server.config.api.token}"}
    async with aiohttp.ClientSession() as http, http.post(url, json=params, headers=headers) as r:
        body: dict[str, Any] = await r.json()
    assert r.status == 200 and body["outcome"] == "accepted", body
    return body


def latest(samples: tuple[Sample, ...], since: datetime) -> dict[tuple[str, str | None], float]:
    """The values of the newest periodic meter value stamped after `since`."""
    periodic = [
        s
        for s in samples
        if s.timestamp > since and s.context == "Sample.Periodic" and s.value is not None
    ]
    if not periodic:
        return {}
    newest = max(s.timestamp for s in periodic)
    return {(s.measurand, s.phase): s.value or 0.0 for s in periodic if s.timestamp == newest}


@pytest.mark.parametrize("version", VERSIONS)
async def test_profiles_cap_the_current_the_csms_sees(
    start_server: StartServer, version: str
) -> None:
    server = await start_server()
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    cp_id = f"SMART-{version}"
    async with running(server, cp_id, version, ev_max_current_a=32):
        # a TxDefaultProfile of 10 A installed before the transaction
        ok(
            await remote(
                server, "profile", "set", cp_id, "--evse", "1", "--limit", "10", "--unit", "A"
            )
        )
        ok(await remote(server, "start", cp_id, "--tag", "CARD1", "--evse", "1"))

        async def transaction() -> Any:
            active = await server.staff.transactions(active_only=True, cp_id=cp_id)
            return active[0] if active else None

        tx = await until(transaction, "the remote-started transaction")
        began = datetime.now(UTC)

        async def capped_at(
            since: datetime, amps: float, *, checked: list[dict[Any, float]]
        ) -> bool:
            values = latest((await server.staff.transaction(tx.id)).samples, since)
            if values:
                checked.append(values)
            return bool(values) and values[("Current.Offered", None)] == amps

        seen: list[dict[Any, float]] = []
        await until(lambda: capped_at(began, 10, checked=seen), "meter values at 10 A")
        values = seen[-1]
        currents = [values[("Current.Import", phase)] for phase in ("L1", "L2", "L3")]
        assert all(9.5 <= amps <= 10 for amps in currents), values
        assert 3 * 230 * 9.5 * 0.98 <= values[("Power.Active.Import", None)] <= 3 * 235 * 10

        # a TxProfile of 0 A during the transaction: within one meter interval the charger
        # draws nothing, and every meter value stamped afterwards says so
        await api_profile(
            server,
            cp_id,
            {"evse": 1, "unit": "A", "periods": ["0:0"], "purpose": "TxProfile"},
        )
        paused = datetime.now(UTC)
        seen = []
        await until(lambda: capped_at(paused, 0, checked=seen), "meter values at 0 A")
        detail = await server.staff.transaction(tx.id)
        after = [
            s
            for s in detail.samples
            if s.timestamp > paused and s.measurand in ("Power.Active.Import", "Current.Import")
        ]
        assert after and all(s.value == 0 for s in after), after
        energy = [
            s.value
            for s in detail.samples
            if s.timestamp > paused
            and s.measurand == "Energy.Active.Import.Register"
            and s.value is not None
        ]
        assert energy and max(energy) - min(energy) <= 1  # nothing flows (Wh carried over)

        # SuspendedEVSE while capped at 0 A: 1.6 says so in StatusNotification, 2.0.1 in the
        # chargingState of a TransactionEvent
        async def suspended() -> bool:
            if version == "1.6":
                detail = await server.staff.charger(cp_id)
                return any(c.status.value == "SuspendedEVSE" for c in detail.connectors)
            events = await server.staff.transaction_events(tx.id)
            return any(
                e.trigger_reason == "ChargingStateChanged"
                and e.payload["transactionInfo"].get("chargingState") == "SuspendedEVSE"
                for e in events
            )

        await until(suspended, "SuspendedEVSE")

        # a TxProfile of 16 A in its place: the charger draws again, at most 16 A a phase
        ok(
            await remote(
                server,
                "profile",
                "set",
                cp_id,
                "--evse",
                "1",
                "--limit",
                "16",
                "--unit",
                "A",
                "--purpose",
                "TxProfile",
            )
        )
        resumed = datetime.now(UTC)
        seen = []
        await until(lambda: capped_at(resumed, 16, checked=seen), "meter values at 16 A")
        values = seen[-1]
        currents = [values[("Current.Import", phase)] for phase in ("L1", "L2", "L3")]
        assert all(15 <= amps <= 16 for amps in currents), values
        if version == "1.6":

            async def charging() -> bool:
                detail = await server.staff.charger(cp_id)
                return any(c.status.value == "Charging" for c in detail.connectors)

            await until(charging, "Charging again")
        ok(await remote(server, "stop", cp_id, "--transaction", str(tx.id)))


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_charger_that_takes_no_profiles_rejects_the_command(
    start_server: StartServer, version: str
) -> None:
    server = await start_server()
    cp_id = f"NOPROFILE-{version}"
    async with running(server, cp_id, version, reject_profiles="all") as cp:
        ran = await remote(
            server, "profile", "set", cp_id, "--evse", "1", "--limit", "10", "--unit", "A"
        )
        assert ran.code == 1, (ran.out, ran.err)
        body = ran.json()
        assert body["outcome"] == "rejected" and body["status"] == "Rejected", body
        assert len(cp.profiles) == 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_single_phase_ev_turns_a_cap_in_watts_into_current_on_l1(
    start_server: StartServer, version: str
) -> None:
    server = await start_server()
    await server.staff.add_token(Token("CARD1", TokenStatus.ACCEPTED))
    cp_id = f"ONEPHASE-{version}"
    async with running(server, cp_id, version, ev_phases=1, ev_max_current_a=32):
        limit = ["--evse", "1", "--limit", "2300", "--unit", "W"]  # 10 A on one phase
        ok(await remote(server, "profile", "set", cp_id, *limit))
        ok(await remote(server, "start", cp_id, "--tag", "CARD1", "--evse", "1"))

        async def transaction() -> Any:
            active = await server.staff.transactions(active_only=True, cp_id=cp_id)
            return active[0] if active else None

        tx = await until(transaction, "the remote-started transaction")
        began = datetime.now(UTC)

        async def metered() -> dict[tuple[str, str | None], float]:
            values = latest((await server.staff.transaction(tx.id)).samples, began)
            return values if values.get(("Power.Active.Import", None)) else {}

        values = await until(metered, "meter values while charging")
        assert 9.5 <= values[("Current.Import", "L1")] <= 10, values
        assert values[("Current.Import", "L2")] == values[("Current.Import", "L3")] == 0
        assert values[("Current.Offered", None)] == 10
        assert values[("Power.Active.Import", None)] <= 2300
        ok(await remote(server, "stop", cp_id, "--transaction", str(tx.id)))
