"""The OCPP conversation with one charger, free of sockets: frames in, frames out.

Dispatches the charger's CALLs to its version adapter, answers with results or CALLERRORs,
and matches answers to the CSMS's own CALLs. Transport lives in csms.gateway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import jsonschema_rs
import structlog

from csms.core.charger import RegistrationStatus
from csms.core.commands import Answer, ChargerBusy, ChargerCallError, Command, CommandRefused
from csms.core.versions import OcppVersion
from csms.handlers.rpc import (
    Call,
    CallError,
    CallResult,
    ErrorKind,
    FrameError,
    OcppCallError,
    UnreadableFrame,
    call_frame,
    error_frame,
    parse_frame,
    result_frame,
)
from csms.handlers.schemas import SchemaSet, schema_error
from csms.logcontext import CURRENT_CALL
from csms.metrics import Metrics

log = structlog.get_logger("csms.ocpp")

Send = Callable[[str], Awaitable[None]]
Handler = Callable[["OcppSession", dict[str, Any]], Awaitable[dict[str, Any]]]


class Adapter(Protocol):
    """What a version adapter offers the session."""

    version: OcppVersion
    subprotocol: str
    errors: Mapping[ErrorKind, str]
    schemas: SchemaSet
    handlers: Mapping[str, Handler]
    # Every action name of the version (to tell NotSupported from NotImplemented).
    actions: frozenset[str]
    # Actions a charger may send before it is Accepted.
    before_acceptance: frozenset[str]

    def encode_command(self, command: Command) -> tuple[str, dict[str, Any]]:
        """The CALL (action, payload) for a CSMS command."""
        ...

    def decode_answer(self, command: Command, answer: dict[str, Any]) -> Answer:
        """The neutral answer from the charger's CALLRESULT payload."""
        ...


# The charger answered one of our CALLs with a CALLERROR (a domain error: commands report it).
CallFailed = ChargerCallError


class OcppSession:
    """One charger's conversation. Created per connection; handed over on reconnect."""

    __slots__ = (
        "_call_lock",
        "_deviations",
        "_pending",
        "adapter",
        "cp_id",
        "handling",
        "last_seen",
        "lenient",
        "metrics",
        "registration",
        "send",
    )

    def __init__(
        self,
        cp_id: str,
        adapter: Adapter,
        send: Send,
        *,
        registration: RegistrationStatus | None,
        lenient: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.cp_id = cp_id
        self.adapter = adapter
        self.send = send
        self.registration = registration
        self.lenient = lenient
        self.metrics = metrics
        self.last_seen = time.time()
        # Frames being handled now: a charger waiting for our answer is not idle.
        self.handling = 0
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] | None = None
        self._call_lock: asyncio.Lock | None = None
        self._deviations: set[tuple[str, str, str]] | None = None

    @property
    def version(self) -> OcppVersion:
        return self.adapter.version

    # --- incoming ----------------------------------------------------------------------

    async def on_text(self, text: str | bytes) -> None:
        """Handle one frame; replies go out through `send`."""
        self.last_seen = time.time()
        self.handling += 1
        try:
            await self._on_text(text)
        finally:
            self.handling -= 1

    async def _on_text(self, text: str | bytes) -> None:
        try:
            frame = parse_frame(text)
        except UnreadableFrame as exc:
            log.warning(
                "frame_unreadable",
                charge_point_id=self.cp_id,
                reason=str(exc),
                frame=_preview(text),
            )
            # OCPP 2.0.1 answers a frame whose id cannot be read with the id "-1"; 1.6 has
            # no rule for it and gets the same answer (FormationViolation), not silence.
            await self.send(
                error_frame("-1", self.adapter.errors[ErrorKind.RPC_FRAMEWORK], str(exc))
            )
            return
        except FrameError as exc:
            log.warning(
                "frame_invalid",
                charge_point_id=self.cp_id,
                message_id=exc.message_id,
                reason=exc.error.description,
            )
            await self._send_error(exc.message_id, exc.error)
            return
        if isinstance(frame, Call):
            await self._on_call(frame)
        else:
            self._on_answer(frame)

    async def _on_call(self, call: Call) -> None:
        token = CURRENT_CALL.set((call.action, call.message_id))
        started = time.perf_counter()
        kind = "error"
        try:
            reply = await self._dispatch(call)
        except OcppCallError as exc:
            log.warning("call_rejected", code=self.adapter.errors[exc.kind], reason=exc.description)
            await self._send_error(call.message_id, exc)
        except Exception:
            log.exception("call_failed")
            await self._send_error(
                call.message_id,
                OcppCallError(ErrorKind.INTERNAL, "The CSMS could not process this message"),
            )
        else:
            kind = "result"
            await self.send(result_frame(call.message_id, reply))
        finally:
            CURRENT_CALL.reset(token)
            metrics = self.metrics
            if metrics is not None:
                metrics.message("in", call.action, "call")
                metrics.message("out", call.action, kind)
                metrics.handled_in(call.action, time.perf_counter() - started)

    async def _dispatch(self, call: Call) -> dict[str, Any]:
        adapter = self.adapter
        handler = adapter.handlers.get(call.action)
        if handler is None:
            if call.action in adapter.actions:
                raise OcppCallError(
                    ErrorKind.NOT_SUPPORTED, f"{call.action} is not sent by a charging station"
                )
            raise OcppCallError(ErrorKind.NOT_IMPLEMENTED, f"Unknown action {call.action!r}")
        if self.registration is None and call.action != "BootNotification":
            # Not stored yet: it registers (or not) with its first boot.
            raise OcppCallError(
                ErrorKind.SECURITY, "Unknown charging station: send a BootNotification first"
            )
        if (
            self.registration is not RegistrationStatus.ACCEPTED
            and call.action not in adapter.before_acceptance
        ):
            raise OcppCallError(
                ErrorKind.SECURITY,
                f"Charging station is not accepted (registration {self._registration_name()})",
            )
        deviation = adapter.schemas.check_request(call.action, call.payload, lenient=self.lenient)
        if deviation is not None:
            self._note_deviation(call.action, deviation.rule, deviation.path, deviation.message)
        return await handler(self, call.payload)

    def _registration_name(self) -> str:
        return "unknown" if self.registration is None else self.registration.value

    def _note_deviation(self, action: str, rule: str, path: str, message: str) -> None:
        seen = self._deviations
        if seen is None:
            seen = self._deviations = set()
        key = (action, rule, path)
        if key in seen or len(seen) > 256:
            return
        seen.add(key)
        log.warning(
            "schema_deviation_accepted", action=action, rule=rule, field=path, detail=message
        )

    async def _send_error(self, message_id: str, error: OcppCallError) -> None:
        code = self.adapter.errors[error.kind]
        await self.send(error_frame(message_id, code, error.description, error.details))

    # --- our own CALLs -------------------------------------------------------------------

    def encode_command(self, command: Command) -> tuple[str, dict[str, Any]]:
        """The CALL for a command, checked against the version's schema (a payload the charger
        would refuse is refused here, with the field that is wrong)."""
        action, payload = self.adapter.encode_command(command)
        validate = self.adapter.schemas.request_validator(action)
        if validate is not None:
            try:
                validate(payload)
            except jsonschema_rs.ValidationError as exc:
                error = schema_error(exc)
                raise CommandRefused(f"{action}: {error.description}") from None
        return action, payload

    def decode_answer(self, command: Command, action: str, answer: dict[str, Any]) -> Answer:
        validate = self.adapter.schemas.response_validator(action)
        if validate is not None:
            try:
                validate(answer)
            except jsonschema_rs.ValidationError as exc:
                log.warning(
                    "answer_schema_deviation",
                    charge_point_id=self.cp_id,
                    action=action,
                    detail=str(exc.message),
                )
        try:
            return self.adapter.decode_answer(command, answer)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning(
                "answer_unreadable", charge_point_id=self.cp_id, action=action, detail=str(exc)
            )
            return Answer("Unreadable", False, f"the charger's answer could not be read: {exc}")

    def _on_answer(self, frame: CallResult | CallError) -> None:
        entry = None if self._pending is None else self._pending.pop(frame.message_id, None)
        if entry is None:
            log.warning("answer_unmatched", charge_point_id=self.cp_id, message_id=frame.message_id)
            return
        action, future = entry
        if future.done():
            return
        if self.metrics is not None:
            self.metrics.message(
                "in", action, "result" if isinstance(frame, CallResult) else "error"
            )
        if isinstance(frame, CallResult):
            future.set_result(frame.payload)
        else:
            future.set_exception(CallFailed(frame.code, frame.description, frame.details))

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 - a deadline for the charger's answer
    ) -> dict[str, Any]:
        """Send a CALL to the charger and wait for its answer (one CALL in flight at a time).

        `timeout` covers waiting for earlier CALLs too. Raises ChargerBusy (a TimeoutError)
        when those were still unanswered, TimeoutError when ours got no answer, CallFailed
        for a CALLERROR and ConnectionError when the connection went away.
        """
        if self._call_lock is None:
            self._call_lock = asyncio.Lock()
        if self._pending is None:
            self._pending = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        lock = self._call_lock
        try:
            async with asyncio.timeout_at(deadline):
                await lock.acquire()
        except TimeoutError:
            raise ChargerBusy(
                f"{self.cp_id}: earlier CALLs still unanswered after {timeout:g} s"
            ) from None
        try:
            async with asyncio.timeout_at(deadline):
                return await self._exchange(loop, action, payload)
        finally:
            lock.release()

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        assert self._pending is not None
        message_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[message_id] = (action, future)
        try:
            try:
                await self.send(call_frame(message_id, action, payload))
            except Exception as exc:
                raise ConnectionError(f"{self.cp_id}: connection lost ({exc})") from exc
            sent = time.perf_counter()
            if self.metrics is not None:
                self.metrics.message("out", action, "call")
            answer = await future
            if self.metrics is not None:
                self.metrics.call_answered(action, time.perf_counter() - sent)
            return answer
        finally:
            self._pending.pop(message_id, None)

    def fail_pending(self, exc: BaseException) -> None:
        """The connection is gone: every CALL still waiting fails with `exc`."""
        if not self._pending:
            return
        for _action, future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()


def _preview(text: str | bytes, limit: int = 120) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "..."
