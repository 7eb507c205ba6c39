"""Shared cards end to end: a token's limit of concurrent transactions (`csms tokens add|set
UID --max-concurrent N|unlimited`), with many simulated chargers of both versions starting at
the same moment on the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from csms.core.authorization import Token, TokenStatus
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from tests.e2e.cli import csms, ok, one_line_error
from tests.e2e.conftest import Running, StartServer

FLEET = "04F1EE7CA4D001"


@asynccontextmanager
async def stations(
    server: Running, count: int, version: str, prefix: str
) -> AsyncIterator[list[V16Charger] | list[V201Charger]]:
    """`count` booted simulators of one version."""
    kind = V16Charger if version == "1.6" else V201Charger
    made = [
        kind(
            ChargerOptions(
                url=server.url,
                charger_id=f"{prefix}{i:02d}",
                version=version,
                response_timeout=15,
            )
        )
        for i in range(count)
    ]
    async with AsyncExitStack() as stack:
        for cp in made:
            await cp.connect()
            stack.push_async_callback(cp.close)
        booted = await asyncio.gather(*(cp.boot() for cp in made))
        assert all(b["status"] == "Accepted" for b in booted)
        yield made  # type: ignore[misc]


async def start_all(chargers: list[V16Charger] | list[V201Charger], card: str) -> list[str]:
    """Every charger authorizes `card` and starts with it at the same moment; the statuses
    of the starts, in charger order."""

    async def one(cp: V16Charger | V201Charger) -> str:
        if isinstance(cp, V16Charger):
            await cp.authorize(card)
            answer = await cp.start_transaction(1, card, 1000)
            return str(answer["idTagInfo"]["status"])
        await cp.authorize(card)
        _, answer = await cp.start_transaction(1, card, 1000)
        return str(answer["idTokenInfo"]["status"])

    return list(await asyncio.gather(*(one(cp) for cp in chargers)))


async def test_a_fleet_card_without_limit_charges_on_20_chargers_at_once_16(
    server: Running,
) -> None:
    await server.staff.add_token(Token(FLEET, TokenStatus.ACCEPTED, max_concurrent=None))
    async with stations(server, 20, "1.6", "FL") as chargers:
        assert await start_all(chargers, FLEET) == ["Accepted"] * 20
        running = await server.staff.transactions(active_only=True)
        assert len(running) == 20
        assert {t.auth_status for t in running} == {"Accepted"}
        assert {t.charge_point_id for t in running} == {f"FL{i:02d}" for i in range(20)}
        # A 21st driver with the same card is still welcome.
        answer = await chargers[0].authorize(FLEET)
        assert answer["idTagInfo"]["status"] == "Accepted"
        for cp, tx in zip(chargers, sorted(running, key=lambda t: t.charge_point_id), strict=True):
            assert isinstance(cp, V16Charger)
            stopped = await cp.stop_transaction(tx.id, 2000, id_tag=FLEET)
            assert stopped["idTagInfo"]["status"] == "Accepted"
    assert await server.staff.transactions(active_only=True) == []


async def test_a_fleet_card_without_limit_charges_on_20_chargers_at_once_201(
    server: Running,
) -> None:
    await server.staff.add_token(Token(FLEET, TokenStatus.ACCEPTED, max_concurrent=None))
    async with stations(server, 20, "2.0.1", "FS") as chargers:
        assert await start_all(chargers, FLEET) == ["Accepted"] * 20
        running = await server.staff.transactions(active_only=True)
        assert len(running) == 20
        assert {t.auth_status for t in running} == {"Accepted"}


async def test_a_limit_of_two_refuses_the_third_that_starts_at_the_same_moment_16(
    server: Running,
) -> None:
    await server.staff.add_token(Token(FLEET, TokenStatus.ACCEPTED, max_concurrent=2))
    async with stations(server, 4, "1.6", "LT") as chargers:
        statuses = await start_all(chargers[:3], FLEET)
        assert sorted(statuses) == ["Accepted", "Accepted", "ConcurrentTx"]
        fourth = chargers[3]
        assert isinstance(fourth, V16Charger)
        assert (await fourth.authorize(FLEET))["idTagInfo"]["status"] == "ConcurrentTx"
        # The refused start is kept (its energy is not lost) but holds nothing.
        running = await server.staff.transactions(active_only=True)
        accepted = [t for t in running if t.auth_status == "Accepted"]
        assert len(running) == 3 and len(accepted) == 2
        # One of the two ends: the card is free for one more.
        first = accepted[0]
        owner = next(cp for cp in chargers if cp.options.charger_id == first.charge_point_id)
        assert isinstance(owner, V16Charger)
        await owner.stop_transaction(first.id, 1500, id_tag=FLEET)
        assert (await fourth.authorize(FLEET))["idTagInfo"]["status"] == "Accepted"
        again = await fourth.start_transaction(1, FLEET, 1000)
        assert again["idTagInfo"]["status"] == "Accepted"


async def test_a_limit_of_two_refuses_the_third_that_starts_at_the_same_moment_201(
    server: Running,
) -> None:
    await server.staff.add_token(Token(FLEET, TokenStatus.ACCEPTED, max_concurrent=2))
    async with stations(server, 4, "2.0.1", "LS") as chargers:
        statuses = await start_all(chargers[:3], FLEET)
        assert sorted(statuses) == ["Accepted", "Accepted", "ConcurrentTx"]
        fourth = chargers[3]
        assert isinstance(fourth, V201Charger)
        answer = await fourth.authorize(FLEET)
        assert answer["idTokenInfo"]["status"] == "ConcurrentTx"
        running = await server.staff.transactions(active_only=True)
        accepted = [t for t in running if t.auth_status == "Accepted"]
        assert len(accepted) == 2
        owner = next(cp for cp in chargers if cp.options.charger_id == accepted[0].charge_point_id)
        assert isinstance(owner, V201Charger)
        assert accepted[0].ocpp_transaction_id is not None
        await owner.end_transaction(accepted[0].ocpp_transaction_id, 1500)
        assert (await fourth.authorize(FLEET))["idTokenInfo"]["status"] == "Accepted"


async def test_a_lowered_limit_counts_what_runs_and_survives_a_restart(
    start_server: StartServer,
) -> None:
    first = await start_server()
    await first.staff.add_token(Token(FLEET, TokenStatus.ACCEPTED, max_concurrent=None))
    async with stations(first, 3, "1.6", "RS") as chargers:
        assert await start_all(chargers, FLEET) == ["Accepted"] * 3
    # Staff lower the limit while three run (from another process, as the CLI would).
    await first.staff.update_token(FLEET, max_concurrent=3)
    async with stations(first, 1, "1.6", "RX") as (late,):
        assert isinstance(late, V16Charger)
        assert (await late.start_transaction(1, FLEET, 0))["idTagInfo"]["status"] == "ConcurrentTx"
    await first.stop()
    second = await start_server()
    async with stations(second, 1, "1.6", "RY") as (later,):
        assert isinstance(later, V16Charger)
        # The new process reads what the card holds from the database.
        assert (await later.authorize(FLEET))["idTagInfo"]["status"] == "ConcurrentTx"
    await second.staff.update_token(FLEET, max_concurrent=4)
    async with stations(second, 1, "1.6", "RZ") as (last,):
        assert isinstance(last, V16Charger)
        assert (await last.start_transaction(1, FLEET, 0))["idTagInfo"]["status"] == "Accepted"


@pytest.mark.slow
async def test_cli_sets_and_shows_the_limit(server: Running, tmp_path: Path) -> None:
    ok(await csms(server, "tokens", "add", FLEET, "--max-concurrent", "unlimited"))
    shown = (await csms(server, "tokens", "show", FLEET, "--json")).json()
    assert shown["max_concurrent"] is None
    assert "unlimited" in ok(await csms(server, "tokens", "show", FLEET))
    changed = ok(await csms(server, "tokens", "set", FLEET, "--max-concurrent", "3"))
    assert "max concurrent 3" in changed
    assert (await server.staff.token(FLEET)).max_concurrent == 3
    listed = ok(await csms(server, "tokens", "list"))
    assert "MAX TX" in listed.splitlines()[0]
    assert (await csms(server, "tokens", "show", FLEET, "--json")).json()["max_concurrent"] == 3
    # A personal card holds one by default.
    ok(await csms(server, "tokens", "add", "PERSONAL1"))
    assert (await server.staff.token("PERSONAL1")).max_concurrent == 1
    for bad in ("0", "-2", "many", "1.5"):
        one_line_error(
            await csms(server, "tokens", "set", FLEET, "--max-concurrent", bad), "--max-concurrent"
        )
        one_line_error(
            await csms(server, "tokens", "add", "X" + bad, "--max-concurrent", bad),
            "--max-concurrent must be",
        )
    assert (await server.staff.token(FLEET)).max_concurrent == 3
    one_line_error(await csms(server, "tokens", "set", FLEET), "nothing to change")
    one_line_error(await csms(server, "tokens", "set", "NOPE", "--status", "Blocked"), "NOPE")
    # Import: the column sets limits; a file without it leaves stored limits alone.
    with_limits = tmp_path / "limits.csv"
    with_limits.write_text(f"uid,max_concurrent\n{FLEET},unlimited\nVAN2,2\nVAN3,\n")
    ok(await csms(server, "tokens", "import", str(with_limits)))
    assert (await server.staff.token(FLEET)).max_concurrent is None
    assert (await server.staff.token("VAN2")).max_concurrent == 2
    assert (await server.staff.token("VAN3")).max_concurrent == 1
    without = tmp_path / "plain.csv"
    without.write_text(f"uid,status\n{FLEET},Accepted\nVAN2,Blocked\n")
    ok(await csms(server, "tokens", "import", str(without)))
    assert (await server.staff.token(FLEET)).max_concurrent is None
    vans = await server.staff.token("VAN2")
    assert (vans.max_concurrent, vans.status) == (2, TokenStatus.BLOCKED)
    bad_file = tmp_path / "bad.csv"
    bad_file.write_text("uid,max_concurrent\nA1,2\nA2,zero\n")
    one_line_error(await csms(server, "tokens", "import", str(bad_file)), "line 3")
