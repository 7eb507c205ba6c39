"""The payment pages over HTTP (csms.payweb), mounted at /pay as csms.app mounts them, in
front of a stand-in for PaymentService that holds fixed values: what each page shows, the
form's refusals, the JSON, the webhook's answers, headers, escaping, error pages.

The real service behind these pages is exercised end to end in
tests/e2e/test_pay_browser.py (Chromium) and H1's e2e tests (HTTP).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from csms.core.errors import InvalidInput, NotFound
from csms.core.payments import (
    BadSignature,
    NotPayable,
    Payment,
    PaymentDeclined,
    PaymentState,
    ProviderState,
    ProviderUnavailable,
    StopReason,
)
from csms.core.tariffs import (
    DimensionType,
    DisplayText,
    PriceComponent,
    Tariff,
    TariffElement,
)
from csms.payweb import build_pay_app
from csms.services.payments import PaymentService, PayPage, Progress, Receipt

D = Decimal
T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
EVSE = "CP1*1"
PAYMENT_ID = "Abc_def-0123456789ABCD"
TARIFF = Tariff(
    country_code="DE",
    party_id="ABC",
    id="ADHOC",
    currency="EUR",
    elements=(
        TariffElement(
            (
                PriceComponent(DimensionType.ENERGY, D("0.42"), vat=D(19)),
                PriceComponent(DimensionType.FLAT, D("0.84"), vat=D(19)),
            )
        ),
    ),
    last_updated=T0,
)
PAGE = PayPage(
    evse_uid=EVSE,
    location_name="Car park <Nord>",
    address="Hauptstr. 1, 10115 Berlin",
    status="AVAILABLE",
    connectors=[(1, "IEC_62196_T2", D(22))],
    tariff=TARIFF,
    currency="EUR",
    default_cap=D(30),
    min_cap=D(5),
    max_cap=D(150),
    payable=True,
    reason=None,
)
PAYMENT = Payment(
    id=PAYMENT_ID,
    evse_uid=EVSE,
    charge_point_id="CP1",
    evse_id=1,
    connector_id=None,
    location_id="LOC1",
    tariff_id="ADHOC",
    provider="test",
    checkout_ref="chk_1",
    provider_ref=None,
    state=PaymentState.CREATED,
    currency="EUR",
    cap_minor=3000,
    authorized_minor=None,
    captured_minor=None,
    refunded_minor=0,
    id_tag="PAYABCDEFGHJKLMNPQR",
    transaction_id=None,
    cdr_id=None,
    email=None,
    stop_reason=None,
    attempts=0,
    next_try_at=None,
    last_error=None,
    created_at=T0,
    updated_at=T0,
)


@dataclasses.dataclass
class Intent:
    amount_minor: int
    currency: str
    description: str
    state: ProviderState
    return_url: str
    cancel_url: str


class StandInCheckout:
    """The test provider's two calls the checkout page makes."""

    def __init__(self) -> None:
        self.paid: list[tuple[str, str]] = []

    async def intent(self, checkout_ref: str) -> Intent:
        if checkout_ref != "chk_1":
            raise NotFound(f"no checkout {checkout_ref}")
        return Intent(3000, "EUR", "Charging at CP1*1", ProviderState.PENDING, "/back", "/cancel")

    async def pay(self, checkout_ref: str, card_number: str) -> str:
        if card_number.replace(" ", "") == "4000000000000002":
            raise PaymentDeclined("card declined")
        self.paid.append((checkout_ref, card_number))
        return f"/pay/-/payments/{PAYMENT_ID}"


class StandIn:
    """PaymentService's calls as the pages make them, over fixed values."""

    def __init__(self) -> None:
        self.page_value = PAGE
        self.payment = PAYMENT
        self.begun: list[tuple[str, Decimal, str | None]] = []
        self.returned_calls = 0
        self.stopped = 0
        self.begin_error: Exception | None = None
        self.webhooks: list[tuple[str, bytes, str | None]] = []
        self.test_provider = StandInCheckout()
        self.receipt: Receipt | None = None

    async def page(self, evse_uid: str) -> PayPage:
        if evse_uid != EVSE:
            raise NotFound(f"no EVSE {evse_uid}")
        return self.page_value

    async def begin(self, evse_uid: str, cap: Decimal, *, email: str | None) -> tuple[Any, str]:
        if self.begin_error is not None:
            raise self.begin_error
        if not D(5) <= cap <= D(150):
            raise InvalidInput("the amount must be between 5 and 150 EUR")
        self.begun.append((evse_uid, cap, email))
        return self.payment, "http://psp.example/checkout/chk_1"

    async def returned(self, payment_id: str) -> Payment:
        self.returned_calls += 1
        self.payment = dataclasses.replace(
            self.payment, state=PaymentState.STARTING, authorized_minor=3000
        )
        return self.payment

    async def progress(self, payment_id: str) -> Progress:
        if payment_id != PAYMENT_ID:
            raise NotFound("no such payment")
        charging = self.payment.state not in (PaymentState.CREATED, PaymentState.STARTING)
        return Progress(
            self.payment,
            D("3.2105") if charging else None,
            D("1.87") if charging else None,
            3725 if charging else None,
            self.receipt,
        )

    async def stop(self, payment_id: str) -> Progress:
        if self.payment.state is PaymentState.STARTING:
            raise InvalidInput("the session has not started yet")
        self.stopped += 1
        self.payment = dataclasses.replace(
            self.payment, state=PaymentState.STOPPING, stop_reason=StopReason.DRIVER
        )
        return await self.progress(payment_id)

    async def webhook(self, provider: str, body: bytes, headers: Mapping[str, str]) -> bool:
        if provider != "test":
            raise NotFound("no provider")
        if headers.get("x-signature") != "good":
            raise BadSignature("bad signature")
        self.webhooks.append((provider, body, headers.get("X-Signature")))
        return len(self.webhooks) == 1


@pytest.fixture
def service() -> StandIn:
    return StandIn()


@pytest.fixture
async def client(service: StandIn) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    root = web.Application()
    root.add_subapp("/pay", build_pay_app(cast(PaymentService, service)))
    async with TestClient(TestServer(root)) as test_client:
        yield test_client


Client = TestClient[web.Request, web.Application]


async def test_the_evse_page(client: Client) -> None:
    response = await client.get("/pay/CP1*1")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<h1 id="location">Car park &lt;Nord&gt;</h1>' in page
    assert "Hauptstr. 1, 10115 Berlin" in page
    assert 'data-status="AVAILABLE">Available</span>' in page
    assert "<li>Connector 1: Type 2, up to 22 kW</li>" in page
    assert "<li>0.4998 EUR per kWh</li>" in page
    assert "<li>1.00 EUR start fee</li>" in page
    assert "<li>Prices incl. 19 % VAT</li>" in page
    assert 'id="cap" name="cap"' in page and 'value="30"' in page
    assert 'min="5" max="150" step="0.01"' in page
    assert 'href="/pay/-/static/pay.css"' in page and 'src="/pay/-/static/pay.js"' in page
    assert 'action="/pay/CP1*1"' in page
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


async def test_the_operator_s_own_words_for_the_tariff(client: Client, service: StandIn) -> None:
    words = (DisplayText("nl", "Vijftig cent per kWh"), DisplayText("en", "50 cents a <kWh>"))
    tariff = dataclasses.replace(TARIFF, tariff_alt_text=words)
    service.page_value = dataclasses.replace(PAGE, tariff=tariff)
    page = await (await client.get("/pay/CP1*1")).text()
    assert '<p id="tariff-note" class="hint">50 cents a &lt;kWh&gt;</p>' in page
    assert "<li>0.4998 EUR per kWh</li>" in page
    service.page_value = PAGE
    assert 'id="tariff-note"' not in await (await client.get("/pay/CP1*1")).text()


async def test_an_evse_not_payable_says_why_without_a_form(
    client: Client, service: StandIn
) -> None:
    service.page_value = dataclasses.replace(
        PAGE, payable=False, reason="The charging point is offline.", status="UNKNOWN"
    )
    page = await (await client.get("/pay/CP1*1")).text()
    assert "The charging point is offline." in page
    assert 'id="pay-form"' not in page and 'id="pay-button"' not in page
    assert ">Offline</span>" in page
    status = await (await client.get("/pay/-/evses/CP1*1")).json()
    assert status == {
        "evse_uid": EVSE,
        "status": "UNKNOWN",
        "status_text": "Offline",
        "status_class": "down",
        "payable": False,
        "reason": "The charging point is offline.",
    }


async def test_unknown_evse_and_paths_are_404_pages(client: Client) -> None:
    with capture_logs() as logs:
        for path in ("/pay/CP9*9", "/pay/-/nothing/here", f"/pay/-/payments/{PAYMENT_ID}x"):
            response = await client.get(path)
            assert response.status == 404, path
            assert response.content_type == "text/html"
            assert 'id="message-title">Not found<' in await response.text()
    answered = [e for e in logs if e["event"] == "pay_request_answered"]
    assert [(e["route"], e["http_status"], e["log_level"]) for e in answered] == [
        ("evse", 404, "info"),
        (None, 404, "info"),
        ("payment", 404, "info"),
    ]
    response = await client.get("/pay/-/evses/CP9*9")
    assert response.status == 404 and await response.json() == {"error": "no EVSE CP9*9"}


async def test_the_form_begins_and_sends_the_driver_to_the_checkout(
    client: Client, service: StandIn
) -> None:
    response = await client.post(
        "/pay/CP1*1", data={"cap": "25,50", "email": " a@b.de "}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "http://psp.example/checkout/chk_1"
    assert service.begun == [(EVSE, D("25.50"), "a@b.de")]
    await client.post("/pay/CP1*1", data={"cap": "30", "email": ""}, allow_redirects=False)
    assert service.begun[-1] == (EVSE, D(30), None)


@pytest.mark.parametrize(
    ("form", "error", "status", "message"),
    [
        ({"cap": "lots"}, None, 400, "such as 30"),
        ({"cap": "NaN"}, None, 400, "such as 30"),
        ({"cap": "500"}, None, 400, "between 5 and 150 EUR"),
        ({"cap": "30", "email": "not-an-address"}, None, 400, "valid e-mail"),
        ({"cap": "30"}, NotPayable("The charging point is in use."), 409, "in use"),
        ({"cap": "30"}, ProviderUnavailable("timeout"), 503, "cannot be reached"),
        ({"cap": "30"}, PaymentDeclined("amount too high"), 402, "amount too high"),
    ],
)
async def test_a_refused_form_is_shown_again_with_the_reason(
    client: Client,
    service: StandIn,
    form: dict[str, str],
    error: Exception | None,
    status: int,
    message: str,
) -> None:
    service.begin_error = error
    response = await client.post("/pay/CP1*1", data=form, allow_redirects=False)
    assert response.status == status
    page = await response.text()
    assert 'id="error" role="alert"' in page and message in page
    assert f'value="{form["cap"]}"' in page  # as the driver typed it
    assert service.begun == []


async def test_the_progress_page_asks_the_service_once_while_created(
    client: Client, service: StandIn
) -> None:
    response = await client.get(f"/pay/-/payments/{PAYMENT_ID}")
    assert response.status == 200
    page = await response.text()
    assert service.returned_calls == 1
    assert 'data-state="starting"' in page and ">Starting</h1>" in page
    assert 'id="cap-held">30.00 EUR<' in page
    assert 'id="stop-form" method="post" action="/pay/-/payments/' in page
    assert "hidden>" in page  # no Stop before charging
    assert f'data-status-url="/pay/-/payments/{PAYMENT_ID}/status"' in page
    await client.get(f"/pay/-/payments/{PAYMENT_ID}")
    assert service.returned_calls == 1


async def test_stop_before_the_session_starts_is_refused(client: Client, service: StandIn) -> None:
    service.payment = dataclasses.replace(PAYMENT, state=PaymentState.STARTING)
    path = f"/pay/-/payments/{PAYMENT_ID}/stop"
    refused = await client.post(path, headers={"Accept": "application/json"})
    assert refused.status == 409
    assert await refused.json() == {"error": "the session has not started yet"}
    back = await client.post(path, allow_redirects=False)
    assert back.status == 303 and back.headers["Location"] == f"/pay/-/payments/{PAYMENT_ID}"
    assert service.stopped == 0


async def test_status_json_and_stop(client: Client, service: StandIn) -> None:
    service.payment = dataclasses.replace(
        PAYMENT, state=PaymentState.CHARGING, authorized_minor=3000, transaction_id=7
    )
    page = await (await client.get(f"/pay/-/payments/{PAYMENT_ID}")).text()
    assert 'id="energy">3.211 kWh<' in page
    assert 'id="cost">1.87 EUR<' in page
    assert 'id="duration">1:02:05<' in page
    assert '<form id="stop-form" method="post" action="/pay/-/payments/' in page
    assert f'action="/pay/-/payments/{PAYMENT_ID}/stop" >' in page  # not hidden
    status = await (await client.get(f"/pay/-/payments/{PAYMENT_ID}/status")).json()
    assert status["state"] == "charging" and status["settled"] is False
    assert status["cap"] == "30.00" and status["authorized"] == "30.00"
    assert status["energy_kwh"] == "3.2105" and status["cost_so_far"] == "1.87"
    assert status["energy_text"] == "3.211 kWh" and status["duration_text"] == "1:02:05"
    assert status["receipt"] is None
    stopped = await client.post(
        f"/pay/-/payments/{PAYMENT_ID}/stop", headers={"Accept": "application/json"}
    )
    assert stopped.status == 200
    body = await stopped.json()
    assert body["state"] == "stopping" and body["stop_reason"] == "driver"
    # Without the script: back to the page.
    again = await client.post(f"/pay/-/payments/{PAYMENT_ID}/stop", allow_redirects=False)
    assert again.status == 303
    assert again.headers["Location"] == f"/pay/-/payments/{PAYMENT_ID}"


async def test_the_receipt(client: Client, service: StandIn) -> None:
    service.payment = dataclasses.replace(
        PAYMENT,
        state=PaymentState.CAPTURED,
        authorized_minor=3000,
        captured_minor=482,
        stop_reason=StopReason.CAP,
    )
    service.receipt = Receipt(
        cdr_id="CDR-1",
        start_at=T0,
        end_at=T0 + timedelta(minutes=75),
        energy_kwh=D("9.125"),
        total_excl_vat=D("4.0504"),
        total_incl_vat=D("4.8200"),
        vat=D("0.7696"),
        currency="EUR",
        captured=D("4.82"),
        released=D("25.18"),
        location_name="Car park Nord",
        address="Hauptstr. 1, 10115 Berlin",
        evse_uid=EVSE,
    )
    page = await (await client.get(f"/pay/-/payments/{PAYMENT_ID}")).text()
    assert 'data-settled="true"' in page
    assert "amount held was nearly reached" in page
    for field, text in (
        ("receipt-total-incl", "4.82 EUR"),
        ("receipt-total-excl", "4.05 EUR"),
        ("receipt-vat", "0.77 EUR"),
        ("receipt-energy", "9.125 kWh"),
        ("receipt-captured", "4.82 EUR"),
        ("receipt-released", "25.18 EUR"),
        ("receipt-start", "2026-12-06 10:00 UTC"),
        ("receipt-end", "2026-12-06 11:15 UTC"),
        ("receipt-cdr", "CDR-1"),
    ):
        assert f'id="{field}"' in page and f">{text}</td>" in page, field
    status = await (await client.get(f"/pay/-/payments/{PAYMENT_ID}/status")).json()
    assert status["settled"] is True
    assert status["receipt"]["total_incl_vat"] == "4.8200"
    assert status["receipt"]["captured"] == "4.82"


async def test_webhooks(client: Client, service: StandIn) -> None:
    for _ in range(2):  # new, then replayed: both acknowledged
        response = await client.post(
            "/pay/-/webhooks/test", data=b'{"id": "evt_1"}', headers={"X-Signature": "good"}
        )
        assert response.status == 200 and await response.json() == {"received": True}
    assert service.webhooks == [("test", b'{"id": "evt_1"}', "good")] * 2
    bad = await client.post("/pay/-/webhooks/test", data=b"{}", headers={"X-Signature": "x"})
    assert bad.status == 400 and await bad.json() == {"error": "bad signature"}
    unknown = await client.post("/pay/-/webhooks/paypal", data=b"{}")
    assert unknown.status == 404 and await unknown.json() == {"error": "no provider"}
    wrong_method = await client.get("/pay/-/webhooks/test")
    assert wrong_method.status == 405
    assert "error" in await wrong_method.json()


async def test_the_test_provider_s_checkout(client: Client, service: StandIn) -> None:
    page = await (await client.get("/pay/-/test-psp/chk_1")).text()
    assert 'id="amount">30.00 EUR<' in page
    assert "Charging at CP1*1" in page
    assert 'href="/cancel"' in page and 'id="card"' in page
    declined = await client.post("/pay/-/test-psp/chk_1", data={"card": "4000 0000 0000 0002"})
    assert declined.status == 402
    assert "Your card was declined" in await declined.text()
    paid = await client.post(
        "/pay/-/test-psp/chk_1", data={"card": "4242 4242 4242 4242"}, allow_redirects=False
    )
    assert paid.status == 303 and paid.headers["Location"] == f"/pay/-/payments/{PAYMENT_ID}"
    assert service.test_provider.paid == [("chk_1", "4242 4242 4242 4242")]
    assert (await client.get("/pay/-/test-psp/chk_9")).status == 404


async def test_without_the_test_provider_there_is_no_checkout(service: StandIn) -> None:
    service.test_provider = None  # type: ignore[assignment]
    root = web.Application()
    root.add_subapp("/pay", build_pay_app(cast(PaymentService, service)))
    async with TestClient(TestServer(root)) as test_client:
        assert (await test_client.get("/pay/-/test-psp/chk_1")).status == 404


async def test_static_files(client: Client) -> None:
    css = await client.get("/pay/-/static/pay.css")
    assert css.status == 200 and css.content_type == "text/css"
    js = await client.get("/pay/-/static/pay.js")
    assert js.status == 200 and "javascript" in js.content_type
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/pay/-/static/../app.py")).status == 404


async def test_a_fault_is_a_plain_500_page_and_logged(client: Client, service: StandIn) -> None:
    async def broken(evse_uid: str) -> PayPage:
        raise RuntimeError("secret detail of a bug")

    service.page = broken  # type: ignore[method-assign]
    with capture_logs() as logs:
        response = await client.get("/pay/CP1*1")
        as_json = await client.get("/pay/CP1*1", headers={"Accept": "application/json"})
    assert response.status == 500
    page = await response.text()
    assert "Something went wrong on our side." in page and "secret" not in page
    assert as_json.status == 500
    assert await as_json.json() == {"error": "Something went wrong on our side. Please try again."}
    failed = [e for e in logs if e["event"] == "pay_request_failed"]
    assert [(e["route"], e["log_level"]) for e in failed] == [("evse", "error")] * 2
