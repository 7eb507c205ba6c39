"""Ad-hoc payment on a real server with a simulated charger of each OCPP version and the
test payment provider: a driver holds 10 EUR, pays, the session starts for the one-time
token, is stopped before the cap (0.50 EUR/kWh excl. VAT: before 20 kWh), and the CDR's
total incl. VAT is captured; a charger that never starts the session leaves the hold
voided; a webhook replayed changes nothing.

The server and the simulated charger run on a clock 200 times faster than the real one
(the charger's meter counts 20 kWh in about 16 s; the stop's lookahead of a minute is 0.3 s
of real time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest

from csms.core.clock import utc_now
from csms.core.errors import InvalidInput
from csms.core.locations import Location
from csms.core.payments import BadSignature, NotPayable, PaymentState, StopReason
from csms.services.locations import LocationService
from csms.services.payments import PaymentService, UnknownEvse
from simulators.options import ChargerOptions
from simulators.v16 import V16Charger
from simulators.v201 import V201Charger
from tests.e2e.conftest import Running, StartServer
from tests.e2e.sim import until

VERSIONS = ["1.6", "2.0.1"]
LOCATION = "LOC-PAY"
SPEED = 200.0
CALL_TIMEOUT = 2.0
# Seconds (real) an authorised payment waits for its session.
START_TIMEOUT_S = 8.0
TARIFF = {
    "id": "ADHOC-1",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.50, "vat": 19.0, "step_size": 1}]}
    ],
}
PAYING_CARD = "4242 4242 4242 4242"


class FastClock:
    """A clock that runs `speed` times faster than the real one, from now."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start = datetime.now(UTC)
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.started) * self.speed)


@dataclass
class World:
    server: Running
    cp: V16Charger | V201Charger
    cp_id: str
    version: str
    task: asyncio.Task[object]

    @property
    def payments(self) -> PaymentService:
        return self.server.app.payments

    @property
    def evse(self) -> str:
        return f"{self.cp_id}*1"


@pytest.fixture(params=VERSIONS)
async def world(request: pytest.FixtureRequest, start_server: StartServer) -> AsyncIterator[World]:
    version: str = request.param
    clock = FastClock(SPEED)
    server = await start_server(
        clock,
        ocpp={"call_timeout": CALL_TIMEOUT},
        # The timeouts in seconds of the fast clock.
        payments={
            "enabled": True,
            "provider": "test",
            "start_timeout": START_TIMEOUT_S * SPEED,
            # A euro kept free below the cap: about 1.4 s of this clock's charging, for a
            # stop that reaches a charger late on a busy machine.
            "stop_margin": 1.0,
            "checkout_timeout": 3600 * SPEED,
        },
    )
    cp_id = f"PAY-{version}"
    locations = LocationService(server.app.db, utc_now)
    await locations.add(
        Location(
            id=LOCATION,
            name="Pay depot",
            address="Kade 3",
            city="Amsterdam",
            postal_code="1011AB",
            country="NLD",
            latitude="52.3702",
            longitude="4.8952",
            time_zone="Europe/Amsterdam",
        )
    )
    await locations.link(LOCATION, cp_id, None)
    await server.app.billing.import_tariffs(TARIFF)
    await server.app.billing.assign("ADHOC-1", location=LOCATION, ad_hoc=True)
    options = ChargerOptions(
        url=server.url,
        charger_id=cp_id,
        version=version,
        connectors=1,
        sessions=0,
        meter_interval=0.2,
        seed=12,  # a vehicle with room for more than 20 kWh
        response_timeout=10,
        ev_max_current_a=32,
    )
    cls = V16Charger if version == "1.6" else V201Charger
    cp = cls(options, clock=clock)
    task: asyncio.Task[object] = asyncio.create_task(cp.run())
    world = World(server, cp, cp_id, version, task)

    async def payable() -> bool:
        try:
            return (await world.payments.page(world.evse)).payable
        except UnknownEvse:  # the charger has not told its EVSEs yet
            return False

    await until(payable, "the EVSE payable")
    yield world
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cp.close()


async def _state(world: World, payment_id: str, state: PaymentState) -> bool:
    return (await world.payments.progress(payment_id)).payment.state is state


@pytest.mark.slow
async def test_a_paid_session_is_stopped_at_the_cap_and_the_cdr_total_captured(
    world: World,
) -> None:
    payments = world.payments
    page = await payments.page(world.evse)
    assert (page.currency, page.location_name, page.address) == (
        "EUR",
        "Pay depot",
        "Kade 3, 1011AB Amsterdam",
    )
    assert page.status == "AVAILABLE" and page.tariff is not None
    assert page.tariff.id == "ADHOC-1" and page.default_cap == Decimal(30)

    payment, url = await payments.begin(world.evse, Decimal(10), email="driver@example.com")
    assert payment.state is PaymentState.CREATED and payment.cap_minor == 1000
    assert payment.id_tag.startswith("PAY") and len(payment.id_tag) == 20
    assert payment.checkout_ref is not None
    base = world.server.ocpi_url
    assert url == f"{base}/pay/-/test-psp/{payment.checkout_ref}"
    tester = payments.test_provider
    assert tester is not None
    intent = await tester.intent(payment.checkout_ref)
    assert (intent.amount_minor, intent.currency) == (1000, "EUR")
    assert intent.cancel_url == f"{base}/pay/{world.evse}"
    # The driver pays: the service is told at once and starts the session.
    back = await tester.pay(payment.checkout_ref, PAYING_CARD)
    assert back == f"{base}/pay/-/payments/{payment.id}"
    # A second page load changes nothing.
    assert (await payments.returned(payment.id)).state is not PaymentState.CREATED

    async def charging() -> bool:
        return await _state(world, payment.id, PaymentState.CHARGING)

    await until(charging, "the paid session charging", seconds=30)
    live = await payments.progress(payment.id)
    assert live.payment.transaction_id is not None and live.receipt is None

    async def captured() -> bool:
        return await _state(world, payment.id, PaymentState.CAPTURED)

    await until(captured, "the capture", seconds=90)
    done = await payments.progress(payment.id)
    final = done.payment
    assert final.stop_reason is StopReason.CAP
    receipt = done.receipt
    assert receipt is not None
    cdr = await world.server.app.billing.cdr(receipt.cdr_id)
    assert cdr.total_incl_vat is not None
    # Stopped before the cap: under 20 kWh (0.50 excl. VAT, 0.595 incl.), at most 10 EUR.
    assert Decimal(cdr.energy_wh) < Decimal(20_000)
    assert cdr.total_incl_vat <= Decimal(10)
    assert cdr.total_incl_vat >= Decimal(8)  # it did charge up to near the cap
    assert receipt.captured == cdr.total_incl_vat.quantize(Decimal("0.01"))
    assert final.captured_minor == int(receipt.captured * 100)
    assert receipt.released == Decimal(10) - receipt.captured
    assert receipt.total_excl_vat == cdr.total_excl_vat
    assert receipt.vat == cdr.total_incl_vat - cdr.total_excl_vat and receipt.vat > 0
    assert receipt.evse_uid == world.evse and receipt.location_name == "Pay depot"
    assert cdr.data["cdr_token"]["type"] == "AD_HOC_USER"
    assert cdr.data["cdr_token"]["uid"] == final.id_tag
    assert cdr.data["auth_method"] == "COMMAND"
    # The provider holds what we say it captured; every move is in the audit trail.
    held = await tester.intent(payment.checkout_ref)
    assert (held.state, held.captured_minor) == ("captured", final.captured_minor)
    _, events = await payments.show(payment.id)
    moves = [e.to_state for e in events if e.to_state is not None]
    assert moves == [
        PaymentState.CREATED,
        PaymentState.AUTHORIZED,
        PaymentState.STARTING,
        PaymentState.CHARGING,
        PaymentState.STOPPING,
        PaymentState.ENDED,
        PaymentState.CAPTURED,
    ]
    transaction = await world.server.staff.transaction(final.transaction_id or 0)
    assert transaction.transaction.stop_reason == "Remote"
    # The EVSE is payable again; /metrics counts the payment's states.
    assert (await payments.page(world.evse)).payable
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{world.server.api_url}/metrics", headers={"Authorization": "Bearer test-token"}
        ) as response,
    ):
        metrics = await response.text()
    for state in ("created", "authorized", "starting", "charging", "stopping", "ended"):
        assert f'csms_payments_total{{state="{state}"}} 1' in metrics, state
    assert 'csms_payments_total{state="captured"} 1' in metrics
    assert "csms_payment_capture_failures_total 0" in metrics


@pytest.mark.parametrize("charger", ["silent", "refusing"])
async def test_a_charger_that_never_starts_leaves_the_hold_voided(
    world: World, charger: str
) -> None:
    """A charger that does not answer the remote start may still start the session: the
    hold is voided after start_timeout; one that refuses it: at once."""
    payments = world.payments
    tester = payments.test_provider
    assert tester is not None
    action = "RemoteStartTransaction" if world.version == "1.6" else "RequestStartTransaction"
    payment, _ = await payments.begin(world.evse, Decimal(20), email=None)
    assert payment.checkout_ref is not None
    if charger == "silent":
        world.cp.unanswered.add(action)
    else:
        # Out of order the moment the driver pays (too late for the page to know).
        world.cp.station.set_operative(1, False)
    await tester.pay(payment.checkout_ref, PAYING_CARD)

    async def voided() -> bool:
        return await _state(world, payment.id, PaymentState.VOIDED)

    waited = time.monotonic()
    await until(voided, "the hold voided", seconds=START_TIMEOUT_S + 20)
    waited = time.monotonic() - waited
    intent = await tester.intent(payment.checkout_ref)
    assert intent.state == "canceled" and intent.captured_minor is None
    shown, events = await payments.show(payment.id)
    assert shown.transaction_id is None and shown.captured_minor is None
    why = [e.what for e in events if e.to_state is PaymentState.VOIDED]
    if charger == "silent":
        assert why == ["start_timed_out"] and waited > START_TIMEOUT_S - CALL_TIMEOUT - 1
    else:
        assert why == ["start_refused"] and waited < START_TIMEOUT_S / 2


async def test_a_webhook_replayed_changes_nothing(world: World) -> None:
    payments = world.payments
    tester = payments.test_provider
    assert tester is not None
    world.cp.unanswered.add(
        "RemoteStartTransaction" if world.version == "1.6" else "RequestStartTransaction"
    )
    payment, _ = await payments.begin(world.evse, Decimal(15), email=None)
    assert payment.checkout_ref is not None
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    intent = await tester.intent(payment.checkout_ref)
    event = tester.event_for(intent)
    body, headers = tester.webhook(event)
    # The provider's event was taken when the driver paid: its webhook is a replay.
    for _ in range(2):
        assert await payments.webhook("test", body, headers) is False
    shown, events = await payments.show(payment.id)
    assert [e.what for e in events if e.provider_event_id == event.event_id] == [
        "webhook intent.authorized"
    ]
    assert [e.to_state for e in events].count(PaymentState.AUTHORIZED) == 1
    assert shown.authorized_minor == 1500
    with pytest.raises(BadSignature):
        await payments.webhook("test", body + b" ", headers)


@pytest.mark.parametrize("who", ["driver", "charger"])
async def test_a_paid_session_stopped_by_the_driver_or_at_the_charger(
    world: World, who: str
) -> None:
    payments = world.payments
    tester = payments.test_provider
    assert tester is not None
    payment, _ = await payments.begin(world.evse, Decimal(30), email=None)
    assert payment.checkout_ref is not None
    await tester.pay(payment.checkout_ref, PAYING_CARD)

    async def some_energy() -> bool:
        progress = await payments.progress(payment.id)
        return progress.energy_kwh is not None and progress.energy_kwh > 2

    await until(some_energy, "two kWh charged", seconds=30)
    live = await payments.progress(payment.id)
    assert live.payment.state is PaymentState.CHARGING
    assert live.cost_so_far is not None and live.cost_so_far > Decimal("1.00")
    assert live.duration_s is not None and live.duration_s > 0
    if who == "driver":
        stopped = await payments.stop(payment.id)
        assert stopped.payment.stop_reason is StopReason.DRIVER
    else:
        control = world.cp.sessions.on_connector(1)
        assert control is not None
        control.stop("EVDisconnected")  # the driver unplugs

    async def captured() -> bool:
        return await _state(world, payment.id, PaymentState.CAPTURED)

    await until(captured, "the capture", seconds=60)
    done = await payments.progress(payment.id)
    expected = StopReason.DRIVER if who == "driver" else StopReason.CHARGER
    assert done.payment.stop_reason is expected
    assert done.receipt is not None and done.cost_so_far is not None
    assert done.receipt.captured == done.cost_so_far.quantize(Decimal("0.01"))
    assert done.receipt.captured < Decimal(30)
    assert done.receipt.released == Decimal(30) - done.receipt.captured


async def test_the_page_says_why_an_evse_cannot_be_paid_and_begin_refuses(world: World) -> None:
    payments = world.payments
    with pytest.raises(UnknownEvse):
        await payments.page(f"{world.cp_id}*7x")
    with pytest.raises(UnknownEvse):
        await payments.page("NOBODY*1")
    for cap, email in (
        (Decimal("4.99"), None),
        (Decimal("150.01"), None),
        (Decimal("10.001"), None),
        (Decimal("NaN"), None),
        (Decimal(10), "not an address"),
    ):
        with pytest.raises(InvalidInput):
            await payments.begin(world.evse, cap, email=email)
    assert await payments.list() == []
    # A paid session runs: the EVSE is in use for everyone else.
    tester = payments.test_provider
    assert tester is not None
    payment, _ = await payments.begin(world.evse, Decimal(5), email=None)
    assert payment.checkout_ref is not None
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    page = await payments.page(world.evse)
    assert not page.payable and page.reason is not None and "in use" in page.reason
    with pytest.raises(NotPayable, match="in use"):
        await payments.begin(world.evse, Decimal(10), email=None)
    # No ad-hoc tariff: nothing to pay by.
    await world.server.app.billing.remove_tariff("ADHOC-1")
    page = await payments.page(world.evse)
    assert not page.payable and page.tariff is None
    assert page.reason == "No price for paying on the spot is set at this charger."


async def test_the_driver_back_before_the_webhook_starts_the_session(world: World) -> None:
    """The provider's word is lost (no webhook): the driver's return asks the provider, and
    the session starts all the same."""
    payments = world.payments
    tester = payments.test_provider
    assert tester is not None
    tester.on_event = None
    payment, _ = await payments.begin(world.evse, Decimal(12), email=None)
    assert payment.checkout_ref is not None
    await tester.pay(payment.checkout_ref, PAYING_CARD)
    assert (await payments.show(payment.id))[0].state is PaymentState.CREATED
    back = await payments.returned(payment.id)
    assert back.state in (PaymentState.AUTHORIZED, PaymentState.STARTING)
    assert back.authorized_minor == 1200

    async def charging() -> bool:
        return await _state(world, payment.id, PaymentState.CHARGING)

    await until(charging, "the paid session charging", seconds=30)
    await payments.stop(payment.id)

    async def captured() -> bool:
        return await _state(world, payment.id, PaymentState.CAPTURED)

    await until(captured, "the capture", seconds=60)
    events = (await payments.show(payment.id))[1]
    assert [(e.what, e.actor) for e in events if e.to_state is PaymentState.AUTHORIZED] == [
        ("authorized", "provider")
    ]
