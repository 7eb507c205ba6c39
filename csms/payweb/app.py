"""The ad-hoc payment pages as an aiohttp application (`build_pay_app`), which csms.app
mounts at /pay on the OCPI listener (the CSMS's public port): the EVSE's page and its form,
the payment's progress page with its status JSON and Stop, the providers' webhooks, and
the test provider's hosted checkout.

HTTP in, PaymentService calls, HTML or JSON out; the rules are the service's. No login:
an EVSE's page is public, a payment's pages are reached by its unguessable id only.
Routes (under the mount):

    GET  /{evse_uid}                      the EVSE's page (404 page for an unknown EVSE)
    POST /{evse_uid}                      form cap, email -> begin -> 303 to the checkout
    GET  /-/evses/{evse_uid}              the EVSE's status as JSON (the page polls it)
    GET  /-/payments/{id}                 progress page (calls `returned` while CREATED)
    GET  /-/payments/{id}/status          progress as JSON (the page polls it every 2 s)
    POST /-/payments/{id}/stop            the driver's stop (JSON or 303 back)
    POST /-/webhooks/{provider}           200 {"received": true}; 400 bad signature; 404
    GET|POST /-/test-psp/{checkout_ref}   the test provider's checkout (when configured)
    GET  /-/static/...                    style and script
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path

import structlog
from aiohttp import web

from csms.core.cost import display_amount
from csms.core.errors import InvalidInput, NotFound
from csms.core.payments import (
    BadSignature,
    NotPayable,
    PaymentDeclined,
    PaymentError,
    PaymentState,
    ProviderState,
    ProviderUnavailable,
    from_minor,
)
from csms.payweb.render import (
    Links,
    checkout_page,
    evse_json,
    evse_page,
    message_page,
    progress_json,
    progress_page,
)
from csms.services.payments import PaymentService

__all__ = ["SERVICE", "build_pay_app"]

log = structlog.get_logger("csms.payweb")

STATIC = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE = web.AppKey("pay_service", PaymentService)

# A payment id is new_payment_id()'s 22 URL-safe characters; anything else names nothing.
_PAYMENT_ID = r"{payment_id:[A-Za-z0-9_-]{1,64}}"
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_MAX_EMAIL = 254
_MAX_FORM = 4096

_HEADERS = {
    # Scripts, styles and calls from this server only; nothing from elsewhere, no framing.
    # No form-action: the EVSE's form is answered with a redirect to the provider's page.
    "Content-Security-Policy": "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    ),
    "X-Content-Type-Options": "nosniff",
    # A payment's page URL is its only key: never sent on to the provider or anyone.
    "Referrer-Policy": "no-referrer",
}


def build_pay_app(service: PaymentService) -> web.Application:
    """The pages over `service`; the test provider's checkout only when it is configured."""
    app = web.Application(middlewares=[_pages])
    app[SERVICE] = service
    r = app.router
    r.add_get("/-/evses/{evse_uid}", evse_status, name="evse_status")
    r.add_get(f"/-/payments/{_PAYMENT_ID}", payment_page, name="payment")
    r.add_get(f"/-/payments/{_PAYMENT_ID}/status", payment_status, name="payment_status")
    r.add_post(f"/-/payments/{_PAYMENT_ID}/stop", payment_stop, name="payment_stop")
    r.add_post("/-/webhooks/{provider}", webhook, name="webhook")
    if service.test_provider is not None:
        r.add_get("/-/test-psp/{checkout_ref}", psp_checkout, name="test_psp")
        r.add_post("/-/test-psp/{checkout_ref}", psp_pay)
    r.add_static("/-/static", STATIC, name="static", follow_symlinks=False)
    r.add_get("/{evse_uid}", evse, name="evse")
    r.add_post("/{evse_uid}", evse_pay)
    return app


# --- helpers ----------------------------------------------------------------------------------


def _links(request: web.Request, *, evse_uid: str = "", payment_id: str = "") -> Links:
    """Where the page's links go, from the app's named routes (so under its mount)."""
    router = request.app.router
    static = str(router["static"].url_for(filename="pay.css")).rsplit("/", 1)[0]
    links = Links(static=static)
    if evse_uid:
        links = dataclasses.replace(
            links,
            evse=str(router["evse"].url_for(evse_uid=evse_uid)),
            evse_status=str(router["evse_status"].url_for(evse_uid=evse_uid)),
        )
    if payment_id:
        links = dataclasses.replace(
            links,
            status=str(router["payment_status"].url_for(payment_id=payment_id)),
            stop=str(router["payment_stop"].url_for(payment_id=payment_id)),
        )
    return links


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _see_other(location: str) -> web.Response:
    """303: the browser follows with a GET (raising HTTPSeeOther would skip our headers)."""
    return web.Response(status=303, headers={"Location": location})


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


async def _form(request: web.Request) -> dict[str, str]:
    """A small urlencoded form's text fields (a larger body is no form of ours)."""
    if request.content_length is not None and request.content_length > _MAX_FORM:
        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_FORM, actual_size=request.content_length)
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


@web.middleware
async def _pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer with the security headers; errors as a page (or JSON where JSON was
    asked for), never a traceback. One log line per answer, naming the route (not the
    path: a payment's path is its key)."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _failure(request, exc.status, _http_words(exc.status))
    except NotFound as exc:
        response = _failure(request, 404, str(exc))
    except InvalidInput as exc:
        response = _failure(request, 400, str(exc))
    except Exception:  # the request's boundary: logged, answered, never shown
        log.exception(
            "pay_request_failed", method=request.method, route=request.match_info.route.name
        )
        response = _failure(request, 500, "Something went wrong on our side. Please try again.")
    response.headers.update(_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    (log.debug if response.status < 400 else log.info)(
        "pay_request_answered",
        method=request.method,
        route=request.match_info.route.name,
        http_status=response.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return response


def _http_words(status: int) -> str:
    if status == 404:
        return "There is no such page. Scan the code on the charging point again."
    if status == 405:
        return "That cannot be done here."
    if status == 413:
        return "That is more than this page takes."
    return "That request cannot be answered."


def _failure(request: web.Request, status: int, message: str) -> web.Response:
    if _wants_json(request) or "/-/webhooks/" in request.path:
        return _json({"error": message}, status)
    title = "Not found" if status == 404 else "Sorry"
    return _html(message_page(title, message, _links(request)), status)


# --- the EVSE's page --------------------------------------------------------------------------


async def evse(request: web.Request) -> web.Response:
    uid = request.match_info["evse_uid"]
    page = await request.app[SERVICE].page(uid)
    return _html(evse_page(page, _links(request, evse_uid=uid)))


async def evse_status(request: web.Request) -> web.Response:
    uid = request.match_info["evse_uid"]
    try:
        page = await request.app[SERVICE].page(uid)
    except NotFound as exc:
        return _json({"error": str(exc)}, 404)
    return _json(evse_json(page))


async def evse_pay(request: web.Request) -> web.Response:
    """The form: hold the cap with the provider, then send the driver to its checkout. A
    refusal shows the page again with the reason and what was filled in."""
    uid = request.match_info["evse_uid"]
    service = request.app[SERVICE]
    form = await _form(request)
    cap_text = form.get("cap", "").strip()
    email = form.get("email", "").strip()
    status, error = 400, None
    try:
        cap = _amount(cap_text)
        if email and (len(email) > _MAX_EMAIL or not _EMAIL.fullmatch(email)):
            raise InvalidInput("Enter a valid e-mail address, or leave it empty.")
        payment, redirect = await service.begin(uid, cap, email=email or None)
    except NotPayable as exc:
        status, error = 409, str(exc)
    except InvalidInput as exc:
        status, error = 400, str(exc)
    except PaymentDeclined as exc:
        status, error = 402, f"The payment provider refused: {exc}"
    except ProviderUnavailable:
        status = 503
        error = "The payment provider cannot be reached just now. Please try again in a minute."
    else:
        log.info("pay_checkout_sent", payment_id=payment.id, evse_uid=uid)
        return _see_other(redirect)
    page = await service.page(uid)
    links = _links(request, evse_uid=uid)
    return _html(evse_page(page, links, error=error, cap=cap_text, email=email), status)


def _amount(text: str) -> Decimal:
    """What the driver typed as the cap: "30", "30.5", "30,50"."""
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise InvalidInput("Enter the most you want to spend as a number, such as 30.") from None
    if not value.is_finite():
        raise InvalidInput("Enter the most you want to spend as a number, such as 30.")
    return value


# --- the payment --------------------------------------------------------------------------------


async def payment_page(request: web.Request) -> web.Response:
    """The progress page. While the payment is CREATED the driver is back from the
    provider's checkout (or came by again): ask the service to look at the provider once."""
    payment_id = request.match_info["payment_id"]
    service = request.app[SERVICE]
    progress = await service.progress(payment_id)
    if progress.payment.state is PaymentState.CREATED:
        try:
            await service.returned(payment_id)
        except (ProviderUnavailable, PaymentError) as exc:
            # The page says "waiting"; the webhook or the next visit moves it on.
            log.info("pay_return_unresolved", payment_id=payment_id, error=str(exc))
        progress = await service.progress(payment_id)
    links = _links(request, evse_uid=progress.payment.evse_uid, payment_id=payment_id)
    return _html(progress_page(progress, links))


async def payment_status(request: web.Request) -> web.Response:
    payment_id = request.match_info["payment_id"]
    try:
        progress = await request.app[SERVICE].progress(payment_id)
    except NotFound as exc:
        return _json({"error": str(exc)}, 404)
    return _json(progress_json(progress))


async def payment_stop(request: web.Request) -> web.Response:
    """The driver's Stop: JSON for the page's script, else back to the page."""
    payment_id = request.match_info["payment_id"]
    service = request.app[SERVICE]
    try:
        progress = await service.stop(payment_id)
    except NotFound as exc:
        if _wants_json(request):
            return _json({"error": str(exc)}, 404)
        raise
    except (PaymentError, InvalidInput) as exc:  # not started yet, already over
        if _wants_json(request):
            return _json({"error": str(exc)}, 409)
        log.info("pay_stop_refused", payment_id=payment_id, error=str(exc))
    else:
        if _wants_json(request):
            return _json(progress_json(progress))
    return _see_other(str(request.app.router["payment"].url_for(payment_id=payment_id)))


# --- providers ------------------------------------------------------------------------------------


async def webhook(request: web.Request) -> web.Response:
    """A provider's event: acknowledged whether new or replayed (the service stores each
    event id once); a bad signature is 400 so the provider shows it to the operator."""
    provider = request.match_info["provider"]
    body = await request.read()
    try:
        new = await request.app[SERVICE].webhook(provider, body, request.headers)
    except BadSignature as exc:
        log.warning("pay_webhook_refused", provider=provider, error=str(exc))
        return _json({"error": str(exc)}, 400)
    except NotFound as exc:
        return _json({"error": str(exc)}, 404)
    log.debug("pay_webhook_received", provider=provider, new=new)
    return _json({"received": True})


async def psp_checkout(request: web.Request, *, error: str | None = None) -> web.Response:
    """The test provider's hosted page: what is held, a card number field, Cancel."""
    provider = request.app[SERVICE].test_provider
    if provider is None:
        raise web.HTTPNotFound()
    ref = request.match_info["checkout_ref"]
    intent = await provider.intent(ref)
    amount = display_amount(from_minor(intent.amount_minor, intent.currency), intent.currency)
    body = checkout_page(
        amount=amount,
        description=intent.description,
        links=_links(request),
        action=str(request.app.router["test_psp"].url_for(checkout_ref=ref)),
        cancel_url=intent.cancel_url,
        open_=intent.state == ProviderState.PENDING,
        return_url=intent.return_url,
        error=error,
    )
    return _html(body, 402 if error else 200)


async def psp_pay(request: web.Request) -> web.Response:
    provider = request.app[SERVICE].test_provider
    if provider is None:
        raise web.HTTPNotFound()
    form = await _form(request)
    card = form.get("card", "")
    try:
        url = await provider.pay(request.match_info["checkout_ref"], card)
    except PaymentDeclined as exc:
        return await psp_checkout(request, error=f"Your card was declined: {exc}")
    except InvalidInput as exc:
        return await psp_checkout(request, error=str(exc))
    return _see_other(url)
