"""A fake of the part of Stripe's HTTP API the Stripe provider uses, on 127.0.0.1, port 0:
Checkout Sessions (with a hosted page that pays, declines or cancels), PaymentIntents
with manual capture (capture, partial capture, cancel), refunds, and signed webhooks.

It reads bodies form-encoded as Stripe's client sends them (`a[b][0][c]=...`), answers
objects and errors in Stripe's shapes, honours `Idempotency-Key` (the same key with the
same request replays the first answer; with another request it is an idempotency_error),
and signs every event it sends to `webhook_url` as Stripe does (`Stripe-Signature:
t=...,v1=HMAC-SHA256(secret, "t.body")`). Every event is kept (`events`, with the exact
body and header of its delivery) so that tests can replay one or hand it to the provider.

Test cards as Stripe's: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined,
4000 0000 0000 9995 is declined for insufficient funds; other numbers are invalid.
`fail_next` makes the next matching requests answer an HTTP error (5xx: Stripe trouble).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

API_VERSION = "2026-01-01.fake"
PAYING_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
_DECLINES = {
    DECLINED_CARD: ("card_declined", "generic_decline", "Your card was declined."),
    INSUFFICIENT_FUNDS_CARD: (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
}
# PaymentIntent states Stripe lets a cancel through from.
_CANCELABLE = frozenset(
    {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}
)


class StripeFailure(Exception):
    """An error answer in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "error": {
                "type": type_,
                "message": message,
                **({"code": code} if code else {}),
                **({"param": param} if param else {}),
                **({"decline_code": decline_code} if decline_code else {}),
            }
        }


@dataclass
class Request:
    """A request the fake's API received (the hosted page's are not kept)."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int
    replayed: bool


@dataclass
class Event:
    """An event as delivered: `body` and `signature` are exactly what Stripe sends, so a
    test can verify or replay it. `answers` are the webhook endpoint's HTTP statuses (one
    per delivery; none without a webhook_url)."""

    id: str
    type: str
    object: dict[str, Any]
    body: bytes
    signature: str
    answers: list[int] = field(default_factory=list)


@dataclass
class _Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    saved: bool


@dataclass
class FakeStripe:
    secret_key: str = "sk_test_fake"
    webhook_secret: str = "whsec_fake"
    # Where events are POSTed (our /pay/-/webhooks/stripe); None: only kept in `events`.
    webhook_url: str | None = None
    # Whether the hosted page delivers its events before sending the driver back (as a
    # fast Stripe would); False: the driver is back before any webhook (tests of the
    # return path), `deliver` sends them later.
    deliver_webhooks: bool = True

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _idempotent: dict[str, tuple[str, str, int, dict[str, Any]]] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeStripe:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._api)
        app.router.add_get("/c/pay/{session}", self._page)
        app.router.add_post("/c/pay/{session}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- knobs for tests ------------------------------------------------------------------

    def fail_next(
        self, method: str, path: str, *, status: int = 500, times: int = 1, saved: bool = True
    ) -> None:
        """The next `times` requests of `method` to a path matching the regular expression
        `path` (e.g. r"/v1/payment_intents/.*/capture") answer `status` (an api_error).
        `saved`: the failure happened inside the call, so, as Stripe does, it is kept under
        the request's idempotency key and answered again to every request with that key
        (for 24 hours); not saved: it failed before the call began (nothing kept)."""
        self._failures.append(_Failure(method.upper(), re.compile(path), status, times, saved))

    def requests_to(self, method: str, pattern: str) -> list[Request]:
        return [
            r for r in self.requests if r.method == method.upper() and re.fullmatch(pattern, r.path)
        ]

    def session_of(self, payment_id: str) -> dict[str, Any]:
        """The Checkout Session made for our payment `payment_id` (its metadata)."""
        for session in self.sessions.values():
            if session["metadata"].get("payment_id") == payment_id:
                return session
        raise KeyError(payment_id)

    def events_of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    async def pay(self, session_id: str, card: str = PAYING_CARD) -> str:
        """What the driver does on the hosted page: pay with `card`. Returns the URL the
        page sends the driver to (the success URL), or raises StripeFailure (402) when
        the card is declined (the session stays open, as Stripe's does)."""
        return await self._pay(session_id, card)

    async def expire(self, session_id: str) -> None:
        """The session's time runs out (Stripe expires it after 24 hours at most)."""
        await self._expire(self.sessions[session_id])

    async def deliver(self, event: Event) -> int:
        """Send `event` (again: a replay has the same id and body) to the webhook URL;
        returns the endpoint's HTTP status."""
        if self.webhook_url is None:
            raise RuntimeError("no webhook_url to deliver to")
        if self._client is None:
            self._client = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json", "Stripe-Signature": event.signature}
        async with self._client.post(self.webhook_url, data=event.body, headers=headers) as r:
            await r.read()
            event.answers.append(r.status)
            return r.status

    def sign(self, body: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
        """A Stripe-Signature header for `body` (another secret or an old time: a forgery
        or a replay from long ago)."""
        t = int(time.time()) if timestamp is None else timestamp
        key = (self.webhook_secret if secret is None else secret).encode()
        mac = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    # --- the API --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        path = request.path
        if request.method == "POST":
            raw = await request.text()
        else:
            raw = request.query_string
        params = _nested(parse_qsl(raw, keep_blank_values=True))
        key = request.headers.get("Idempotency-Key")
        status, body, replayed = await self._answer(request, path, raw, params, key)
        self.requests.append(Request(request.method, path, params, key, status, replayed))
        headers = {"Request-Id": f"req_{self._next()}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return web.json_response(body, status=status, headers=headers)

    async def _answer(
        self, request: web.Request, path: str, raw: str, params: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any], bool]:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            failure = StripeFailure(401, "Invalid API Key provided.")
            return failure.status, failure.body, False
        if request.method == "POST" and key:
            seen = self._idempotent.get(key)
            if seen is not None:
                seen_path, seen_raw, status, body = seen
                if (seen_path, seen_raw) != (path, raw):
                    error = StripeFailure(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                        type_="idempotency_error",
                    )
                    return error.status, error.body, False
                return status, body, True
        for rule in self._failures:
            if rule.times > 0 and rule.method == request.method and rule.path.fullmatch(path):
                rule.times -= 1
                error = StripeFailure(rule.status, "An unknown error occurred", type_="api_error")
                if rule.saved and request.method == "POST" and key:
                    self._idempotent[key] = (path, raw, error.status, error.body)
                return error.status, error.body, False
        try:
            status, body = 200, await self._route(request.method, path, params)
        except StripeFailure as exc:
            status, body = exc.status, exc.body
        if request.method == "POST" and key:
            self._idempotent[key] = (path, raw, status, body)
        return status, body, False

    async def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")[1:]  # after "v1"
        expand = list(params.get("expand", []))
        match (method, parts):
            case ("POST", ["checkout", "sessions"]):
                return self._render(self._create_session(params), expand)
            case ("GET", ["checkout", "sessions", sid]):
                return self._render(self._get(self.sessions, sid, "checkout.session"), expand)
            case ("POST", ["checkout", "sessions", sid, "expire"]):
                session = self._get(self.sessions, sid, "checkout.session")
                if session["status"] != "open":
                    raise StripeFailure(
                        400, 'Only Checkout Sessions with a status in ["open"] can be expired.'
                    )
                await self._expire(session)
                return self._render(session, expand)
            case ("GET", ["payment_intents", pid]):
                return self._render(self._get(self.intents, pid, "payment_intent"), expand)
            case ("POST", ["payment_intents", pid, "capture"]):
                return self._render(await self._capture(pid, params), expand)
            case ("POST", ["payment_intents", pid, "cancel"]):
                return self._render(await self._cancel(pid, params), expand)
            case ("POST", ["refunds"]):
                return self._render(await self._refund(params), expand)
            case ("GET", ["refunds", rid]):
                return self._render(self._get(self.refunds, rid, "refund"), expand)
        raise StripeFailure(404, f"Unrecognized request URL ({method}: {path}).")

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeFailure(400, "Only mode=payment is faked.", param="mode")
        for name in ("success_url", "cancel_url"):
            if not params.get(name):
                raise StripeFailure(400, f"Missing required param: {name}.", param=name)
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeFailure(400, "Missing required param: line_items.", param="line_items")
        currencies = set()
        total = 0
        for i, item in enumerate(items):
            data = item.get("price_data") or {}
            try:
                unit = int(data["unit_amount"])
                quantity = int(item.get("quantity", "1"))
            except (KeyError, ValueError):
                raise StripeFailure(
                    400, "Invalid line item.", param=f"line_items[{i}][price_data]"
                ) from None
            if unit < 0 or quantity < 1:
                raise StripeFailure(
                    400, "Invalid integer.", code="parameter_invalid_integer", param="line_items"
                )
            currencies.add(str(data.get("currency", "")).lower())
            total += unit * quantity
        if len(currencies) != 1 or not re.fullmatch(r"[a-z]{3}", next(iter(currencies))):
            raise StripeFailure(400, "Invalid currency.", param="line_items")
        if total < 50:
            raise StripeFailure(
                400,
                "The Checkout Session's total amount due must add up to at least 0.50.",
                code="amount_too_small",
            )
        now = int(time.time())
        expires_at = _integer(params, "expires_at", now + 24 * 3600)
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            raise StripeFailure(
                400,
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                "Checkout Session creation.",
                param="expires_at",
            )
        sid = f"cs_test_{secrets.token_hex(12)}"
        intent_data = params.get("payment_intent_data") or {}
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "currency": next(iter(currencies)),
            "metadata": dict(params.get("metadata") or {}),
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"{self.api_base}/c/pay/{sid}",
            "payment_intent": None,
            "allowed_payment_method_types": params.get("allowed_payment_method_types"),
            "created": now,
            "expires_at": expires_at,
            "livemode": False,
            # What the PaymentIntent is made with once the driver pays (not Stripe's field).
            "_intent_data": {
                "capture_method": intent_data.get("capture_method", "automatic_async"),
                "description": intent_data.get("description"),
                "metadata": dict(intent_data.get("metadata") or {}),
            },
        }
        self.sessions[sid] = session
        return session

    async def _pay(self, session_id: str, card: str) -> str:
        session = self._get(self.sessions, session_id, "checkout.session")
        if session["status"] != "open":
            raise StripeFailure(400, "This Checkout Session is no longer active.")
        number = re.sub(r"[\s-]", "", card)
        if number != PAYING_CARD and number not in _DECLINES:
            raise StripeFailure(402, "Your card number is invalid.", type_="card_error")
        intent = self._intent_for(session)
        charge = self._charge(intent, paid=number == PAYING_CARD)
        intent["latest_charge"] = charge["id"]
        if number in _DECLINES:
            code, decline_code, message = _DECLINES[number]
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "charge": charge["id"],
            }
            await self._emit("charge.failed", charge)
            await self._emit("payment_intent.payment_failed", intent)
            raise StripeFailure(
                402, message, type_="card_error", code=code, decline_code=decline_code
            )
        intent["last_payment_error"] = None
        if intent["capture_method"] == "manual":
            intent["status"] = "requires_capture"
            intent["amount_capturable"] = intent["amount"]
            await self._emit("charge.succeeded", charge)
            await self._emit("payment_intent.amount_capturable_updated", intent)
        else:
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            charge.update(captured=True, amount_captured=intent["amount"])
            await self._emit("charge.succeeded", charge)
            await self._emit("payment_intent.succeeded", intent)
            session["payment_status"] = "paid"
        session["status"] = "complete"
        await self._emit("checkout.session.completed", session)
        return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)

    def _intent_for(self, session: dict[str, Any]) -> dict[str, Any]:
        if session["payment_intent"] is not None:
            return self.intents[session["payment_intent"]]
        data = session["_intent_data"]
        pid = f"pi_{secrets.token_hex(12)}"
        intent = {
            "id": pid,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": session["currency"],
            "capture_method": data["capture_method"],
            "description": data["description"],
            "metadata": dict(data["metadata"]),
            "status": "requires_payment_method",
            "latest_charge": None,
            "last_payment_error": None,
            "cancellation_reason": None,
            "canceled_at": None,
            "created": int(time.time()),
            "livemode": False,
            "_session": session["id"],
        }
        self.intents[pid] = intent
        session["payment_intent"] = pid
        return intent

    def _charge(self, intent: dict[str, Any], *, paid: bool) -> dict[str, Any]:
        cid = f"ch_{secrets.token_hex(12)}"
        charge = {
            "id": cid,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "captured": False,
            "refunded": False,
            "paid": paid,
            "status": "succeeded" if paid else "failed",
            "currency": intent["currency"],
            "metadata": dict(intent["metadata"]),
            "payment_intent": intent["id"],
            "created": int(time.time()),
            "livemode": False,
        }
        self.charges[cid] = charge
        return charge

    async def _capture(self, pid: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self._get(self.intents, pid, "payment_intent")
        if intent["status"] != "requires_capture":
            raise StripeFailure(
                400,
                f"This PaymentIntent could not be captured because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following "
                "statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = _integer(params, "amount_to_capture", intent["amount_capturable"])
        if amount < 1:
            raise StripeFailure(
                400,
                "This value must be greater than or equal to 1.",
                code="parameter_invalid_integer",
                param="amount_to_capture",
            )
        if amount > intent["amount_capturable"]:
            raise StripeFailure(
                400,
                "The amount to capture must be less than or equal to the capturable amount.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        charge = self.charges[intent["latest_charge"]]
        charge.update(captured=True, amount_captured=amount)
        await self._emit("charge.captured", charge)
        await self._emit("payment_intent.succeeded", intent)
        return intent

    async def _cancel(self, pid: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self._get(self.intents, pid, "payment_intent")
        if intent["status"] not in _CANCELABLE:
            raise StripeFailure(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        session = self.sessions.get(intent.get("_session") or "")
        if session is not None and intent["status"] != "requires_capture":
            raise StripeFailure(
                400,
                "You cannot cancel this PaymentIntent because it was created by Checkout. "
                "To cancel, expire the Checkout Session instead.",
                code="payment_intent_unexpected_state",
            )
        await self._cancel_intent(intent, params.get("cancellation_reason"))
        return intent

    async def _cancel_intent(self, intent: dict[str, Any], reason: str | None) -> None:
        intent.update(
            status="canceled",
            amount_capturable=0,
            cancellation_reason=reason,
            canceled_at=int(time.time()),
        )
        await self._emit("payment_intent.canceled", intent)

    async def _expire(self, session: dict[str, Any]) -> None:
        session["status"] = "expired"
        intent = self.intents.get(session["payment_intent"] or "")
        if intent is not None and intent["status"] in _CANCELABLE:
            await self._cancel_intent(intent, "abandoned")
        await self._emit("checkout.session.expired", session)

    async def _refund(self, params: dict[str, Any]) -> dict[str, Any]:
        pid = params.get("payment_intent")
        if not pid:
            raise StripeFailure(400, "Missing required param: payment_intent.")
        intent = self._get(self.intents, pid, "payment_intent")
        if intent["status"] != "succeeded":
            raise StripeFailure(
                400,
                f"This PaymentIntent does not have a successful charge to refund "
                f"(status {intent['status']}).",
                code="charge_not_captured",
            )
        charge = self.charges[intent["latest_charge"]]
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = _integer(params, "amount", left)
        if amount < 1 or amount > left:
            raise StripeFailure(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
                if amount > left
                else "This value must be greater than or equal to 1.",
                code="amount_too_large" if amount > left else "parameter_invalid_integer",
                param="amount",
            )
        rid = f"re_{secrets.token_hex(12)}"
        refund = {
            "id": rid,
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": pid,
            "currency": intent["currency"],
            "status": "succeeded",
            "created": int(time.time()),
        }
        self.refunds[rid] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        await self._emit("charge.refunded", charge)
        await self._emit("refund.created", refund)
        return refund

    # --- the hosted checkout page ---------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        sid = request.match_info["session"]
        session = self.sessions.get(sid)
        if session is None:
            return web.Response(status=404, text="Something went wrong")
        message = ""
        if request.method == "POST":
            form = await request.post()
            if form.get("action") == "cancel":
                raise web.HTTPSeeOther(session["cancel_url"])
            try:
                url = await self._pay(sid, str(form.get("card", "")))
            except StripeFailure as exc:
                message = str(exc)
            else:
                raise web.HTTPSeeOther(url)
        if session["status"] != "open":
            return web.Response(text="This Checkout Session is no longer active.")
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        page = (
            "<!doctype html><title>Fake Stripe Checkout</title>"
            f"<p id=amount>{html.escape(amount)}</p>"
            f"<p id=error>{html.escape(message)}</p>"
            f'<form method=post action="/c/pay/{html.escape(sid)}">'
            "<input name=card autocomplete=cc-number><button name=action value=pay>Pay</button>"
            "<button name=action value=cancel>Cancel</button></form>"
        )
        return web.Response(text=page, content_type="text/html")

    # --- events ---------------------------------------------------------------------------

    async def _emit(self, type_: str, obj: dict[str, Any]) -> None:
        eid = f"evt_{secrets.token_hex(12)}"
        public = _public(obj)
        event = {
            "id": eid,
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": public},
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        body = json.dumps(event).encode()
        kept = Event(eid, type_, public, body, self.sign(body))
        self.events.append(kept)
        if self.webhook_url is not None and self.deliver_webhooks:
            await self.deliver(kept)

    # --- objects --------------------------------------------------------------------------

    def _next(self) -> int:
        return next(self._ids)

    def _get(self, table: dict[str, dict[str, Any]], oid: str, kind: str) -> dict[str, Any]:
        found = table.get(oid)
        if found is None:
            raise StripeFailure(
                404, f"No such {kind}: '{oid}'", code="resource_missing", param="id"
            )
        return found

    def _lookup(self, oid: str) -> dict[str, Any] | None:
        for prefix, table in (
            ("pi_", self.intents),
            ("ch_", self.charges),
            ("cs_", self.sessions),
            ("re_", self.refunds),
        ):
            if oid.startswith(prefix):
                return table.get(oid)
        return None

    def _render(self, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        """The object as the API answers it, with the fields named in `expand` (dotted
        paths) replaced by the objects they name."""
        out = _public(obj)
        for path in expand:
            head, _, rest = path.partition(".")
            value = out.get(head)
            if isinstance(value, str):
                target = self._lookup(value)
                if target is not None:
                    out[head] = self._render(target, [rest] if rest else [])
            elif isinstance(value, dict) and rest:
                inner = self._lookup(value["id"])
                if inner is not None:
                    out[head] = self._render(inner, [rest])
        return out


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy without the fake's own bookkeeping fields (those starting with _)."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def _integer(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeFailure(
            400, "Invalid integer.", code="parameter_invalid_integer", param=name
        ) from None


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back into objects: `a[b][0][c]=v` -> {"a": {"b": [{"c": v}]}}
    (also `a[]=v` for lists)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        base, _, tail = key.partition("[")
        names = [base, *re.findall(r"\[([^\]]*)\]", "[" + tail)] if tail else [base]
        node = root
        for name in names[:-1]:
            node = node.setdefault(name, {})
        if names[-1] == "":
            node.setdefault("", []).append(value)
        else:
            node[names[-1]] = value
    nested = _lists(root)
    assert isinstance(nested, dict)
    return nested


def _lists(node: Any) -> Any:
    """Tables whose keys are all indexes (or the empty `[]`) become lists, in order."""
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    if list(converted) == [""]:
        return list(converted[""])
    return converted
