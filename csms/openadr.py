"""The OpenADR 2.0b VEN: registers with a utility's VTN, polls it, and turns its load-control
events into site caps through a `CapSink` (the site service), opting in or out of each.

Only the VEN and the reading of events live here: what a cap does to charging is the site
service's and the allocation's. `openleadr` (an optional extra) is imported when the VEN
starts, so this module loads without it.

Reading an event (`plan_event`, no I/O):
- Its site: the resource, group or VEN ids the event and its signals target, looked up in
  `openadr.resource_sites`; an event that names none we map falls to `openadr.site`, unless
  it names a resource or group we do not know (opted out: that load is not ours to cut).
- Its signal, the most explicit one it carries: a power setpoint (LOAD_DISPATCH/setpoint,
  LOAD_CONTROL/x-loadControlSetpoint or /setpoint; in the signal's unit, kW when it names
  none), else a capacity (LOAD_CONTROL/x-loadControlCapacity: a fraction of
  `openadr.site_limit_kw`), else SIMPLE/level (levels 1, 2, 3: `openadr.simple_levels` of
  `openadr.site_limit_kw`; level 0: no cap). Any other signal is not applied.
- Each interval still to come becomes one cap (limit in W, start, end) with the reference
  `{event_id}:{modification_number}:{interval}`; an open-ended event cannot be a cap.
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
import structlog

from csms.config import OpenAdrConfig
from csms.core.clock import Clock, utc_now
from csms.workers import Worker

log = structlog.get_logger("csms.openadr")

# The `source` of every cap the VEN adds or cancels.
SOURCE = "openadr"


class CapSink(Protocol):
    """Where the VEN puts caps: the site service (csms.services.sites.SiteService).

    `add_cap` caps `site` to `limit_w` watts (all phases together) from `start` to `end`
    (aware UTC) and returns the cap's id. `cancel_cap` ends, at once, every cap of `site`
    from `source` whose reference starts with `reference` (the VEN passes `"{event_id}:"`,
    which matches the caps of every modification and interval of that event and of no
    other event) and says whether there was one. Both are recorded (audited) as asked by
    `requested_by`."""

    async def add_cap(
        self,
        site: str,
        limit_w: float,
        start: datetime,
        end: datetime,
        *,
        source: str,
        reference: str,
        requested_by: str,
    ) -> int: ...

    async def cancel_cap(
        self, site: str, *, source: str, reference: str, requested_by: str
    ) -> bool: ...


def event_reference(event_id: str) -> str:
    """The reference prefix of every cap made from the event `event_id`."""
    return f"{event_id}:"


# ---------------------------------------------------------------------------------------
# Reading events (pure)

SignalKind = Literal["setpoint", "capacity", "level"]

# (signal name, signal type) -> how its values read; the order of SignalKind is the
# preference when an event carries several (an explicit power first).
_SIGNALS: dict[tuple[str, str], SignalKind] = {
    ("LOAD_DISPATCH", "setpoint"): "setpoint",
    ("LOAD_CONTROL", "x-loadControlSetpoint"): "setpoint",
    ("LOAD_CONTROL", "setpoint"): "setpoint",
    ("LOAD_CONTROL", "x-loadControlCapacity"): "capacity",
    ("SIMPLE", "level"): "level",
    ("simple", "level"): "level",
}
_PREFERENCE: tuple[SignalKind, ...] = ("setpoint", "capacity", "level")

# SI scale codes of an itemBase (siScaleCode) -> factor.
_SCALES = {"none": 1.0, "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
# Units of a power itemBase -> watts (before the scale).
_POWER_UNITS = {"W": 1.0, "kW": 1e3, "MW": 1e6}
_POWER_ITEMS = {"powerReal", "powerApparent", "customUnit"}


@dataclass(frozen=True, slots=True)
class CapWindow:
    """One cap an event asks for."""

    site: str
    limit_w: float
    start: datetime
    end: datetime
    reference: str


@dataclass(frozen=True, slots=True)
class EventPlan:
    """What the VEN makes of one event: the sites it caps and the caps, or why it opts out
    (`opt_out`; None: it opts in)."""

    event_id: str
    modification_number: int
    status: str
    sites: frozenset[str]
    signal: str = ""
    caps: tuple[CapWindow, ...] = ()
    opt_out: str | None = None
    # The end of the event's active period (None: open-ended).
    end: datetime | None = None

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def completed(self) -> bool:
        return self.status == "completed"


class _Unusable(Exception):
    """The event cannot be applied; the message says why (it goes to the opt-out log)."""


def plan_event(event: Mapping[str, Any], settings: OpenAdrConfig, *, now: datetime) -> EventPlan:
    """The caps `event` (as openleadr parses an oadrEvent) asks of the sites `settings` maps,
    leaving out intervals that ended before `now`."""
    descriptor = _mapping(event.get("event_descriptor"))
    event_id = str(descriptor.get("event_id") or "")
    modification = _integer(descriptor.get("modification_number"))
    status = str(descriptor.get("event_status") or "")
    period = _mapping(event.get("active_period"))
    start = _aware(period.get("dtstart"))
    duration = period.get("duration")
    end = (
        start + duration
        if start is not None and isinstance(duration, timedelta) and duration > timedelta(0)
        else None
    )
    signals = _signals(event)
    sites, site_problem = _sites(event, signals, settings)
    plan = EventPlan(event_id, modification, status, sites, end=end)
    if plan.cancelled or plan.completed:
        return plan
    if _is_test_event(descriptor.get("test_event")):
        return replace(plan, signal="test event (not applied)")
    if site_problem is not None:
        return replace(plan, opt_out=site_problem)
    try:
        kind, signal = _pick_signal(signals)
        name = f"{signal.get('signal_name')}/{signal.get('signal_type')}"
        if start is None:
            raise _Unusable("the event has no start (active period dtstart)")
        caps = _caps(event_id, modification, kind, signal, sites, start, end, settings, now)
    except _Unusable as exc:
        return replace(plan, opt_out=str(exc))
    return replace(plan, signal=name, caps=caps)


def _caps(
    event_id: str,
    modification: int,
    kind: SignalKind,
    signal: Mapping[str, Any],
    sites: frozenset[str],
    start: datetime,
    end: datetime | None,
    settings: OpenAdrConfig,
    now: datetime,
) -> tuple[CapWindow, ...]:
    factor = _watts_per_unit(signal) if kind == "setpoint" else 1.0
    if kind != "setpoint" and not settings.site_limit_kw > 0:
        raise _Unusable(
            f"a {kind} signal is a share of the site's limit: set openadr.site_limit_kw"
        )
    caps: list[CapWindow] = []
    for index, (first, last, value) in enumerate(_intervals(signal, start, end)):
        limit_w = _limit_w(kind, value, factor, settings)
        if limit_w is None or last <= now:
            continue
        reference = f"{event_id}:{modification}:{index}"
        caps += [CapWindow(site, limit_w, first, last, reference) for site in sorted(sites)]
    return tuple(caps)


def _limit_w(
    kind: SignalKind, value: float, factor: float, settings: OpenAdrConfig
) -> float | None:
    """The cap one interval's value asks for, in W; None: no cap in that interval."""
    site_w = settings.site_limit_kw * 1000.0
    if kind == "setpoint":
        if value < 0:
            raise _Unusable(f"a negative power setpoint ({value}) cannot be a site cap")
        return value * factor
    if kind == "capacity":
        if value < 0:
            raise _Unusable(f"a negative capacity ({value}) cannot be a site cap")
        return None if value >= 1 else value * site_w
    if value != int(value) or not 0 <= value <= 3:
        raise _Unusable(f"SIMPLE level {value} is not 0, 1, 2 or 3")
    level = int(value)
    return None if level == 0 else settings.simple_levels[level - 1] * site_w


def _intervals(
    signal: Mapping[str, Any], start: datetime, end: datetime | None
) -> list[tuple[datetime, datetime, float]]:
    """(start, end, value) of each interval, in order: each starts where the one before
    ended (or at its own dtstart when it has one); a zero duration lasts to the event's
    end."""
    raw = signal.get("intervals")
    items = [_mapping(item) for item in raw] if isinstance(raw, list) else []
    if not items:
        raise _Unusable("the signal has no intervals")
    items.sort(key=lambda item: _integer(item.get("uid"), default=0))
    out: list[tuple[datetime, datetime, float]] = []
    cursor = start
    for item in items:
        first = _aware(item.get("dtstart")) or cursor
        duration = item.get("duration")
        if isinstance(duration, timedelta) and duration > timedelta(0):
            last = first + duration
        elif end is not None:
            last = end
        else:
            raise _Unusable("an open-ended event (no duration) cannot be a cap")
        if end is not None:
            last = min(last, end)
        value = item.get("signal_payload")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _Unusable(f"interval value {value!r} is not a number")
        cursor = last
        if last > first:
            out.append((first, last, float(value)))
    return out


def _watts_per_unit(signal: Mapping[str, Any]) -> float:
    """Watts per unit of a setpoint signal's values (its itemBase; none: kW)."""
    item = signal.get("measurement")
    if item is None:
        return 1e3
    item = _mapping(item)
    name, unit = str(item.get("name") or ""), str(item.get("unit") or "")
    scale = str(item.get("scale") or "none")
    if name not in _POWER_ITEMS or unit not in _POWER_UNITS or scale not in _SCALES:
        raise _Unusable(f"a setpoint in {name} {scale} {unit} is not a power the VEN can cap")
    return _POWER_UNITS[unit] * _SCALES[scale]


def _pick_signal(signals: list[Mapping[str, Any]]) -> tuple[SignalKind, Mapping[str, Any]]:
    known: dict[SignalKind, Mapping[str, Any]] = {}
    for signal in signals:
        kind = _SIGNALS.get((str(signal.get("signal_name")), str(signal.get("signal_type"))))
        if kind is not None:
            known.setdefault(kind, signal)
    for kind in _PREFERENCE:
        if kind in known:
            return kind, known[kind]
    names = ", ".join(f"{s.get('signal_name')}/{s.get('signal_type')}" for s in signals)
    raise _Unusable(f"no signal the VEN applies (got {names or 'none'})")


def _signals(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = event.get("event_signals")
    if isinstance(raw, Mapping):  # openleadr leaves one nesting level on some payloads
        raw = raw.get("event_signals")
    if isinstance(raw, Mapping):
        raw = [raw]
    return [_mapping(s) for s in raw] if isinstance(raw, list) else []


_TARGET_KINDS = ("resource_id", "group_id", "ven_id")


def _targets(holder: Mapping[str, Any]) -> dict[str, set[str]]:
    """Ids by kind (resource_id, group_id, ven_id) that an event or a signal targets."""
    found: dict[str, set[str]] = {kind: set() for kind in _TARGET_KINDS}
    groups: list[Mapping[str, Any]] = []
    by_type = holder.get("targets_by_type")
    if isinstance(by_type, Mapping):
        groups.append(by_type)
    targets = holder.get("targets")
    if isinstance(targets, Mapping):
        targets = [targets]
    if isinstance(targets, list):
        groups += [_mapping(t) for t in targets]
    for group in groups:
        for kind in _TARGET_KINDS:
            value = group.get(kind)
            values = value if isinstance(value, list) else [value]
            found[kind].update(str(v) for v in values if v not in (None, ""))
    return found


def _sites(
    event: Mapping[str, Any], signals: Iterable[Mapping[str, Any]], settings: OpenAdrConfig
) -> tuple[frozenset[str], str | None]:
    """The sites the event caps, or why it has none."""
    named = _targets(event)
    for signal in signals:
        for kind, ids in _targets(signal).items():
            named[kind] |= ids
    sites = dict(settings.resource_sites)
    every = named["resource_id"] | named["group_id"] | named["ven_id"]
    mapped = frozenset(sites[i] for i in every if i in sites)
    if mapped:
        return mapped, None
    unknown = named["resource_id"] | named["group_id"]
    if unknown:
        return frozenset(), (
            f"unknown resource {', '.join(sorted(unknown))} (map it in openadr.resource_sites)"
        )
    if settings.site:
        return frozenset({settings.site}), None
    return frozenset(), "no site for this event: set openadr.site or openadr.resource_sites"


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _integer(value: Any, *, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_test_event(value: Any) -> bool:
    """testEvent: anything but false marks a test event (acknowledged, never applied)."""
    if value is None or value is False:
        return False
    return str(value).strip().lower() not in ("", "false")


# ---------------------------------------------------------------------------------------
# The VEN

# While the VEN talks to the VTN, the openleadr records of that exchange (it logs every
# failed request at ERROR and its progress at INFO) are collected here instead of written:
# the VEN reports an outage once, in its own words.
_EXCHANGE: ContextVar[list[str] | None] = ContextVar("openadr_exchange", default=None)
_LIBRARY_LOGGER = "openleadr"
_DETAIL_CHARS = 300


class _Collect(logging.Filter):
    """Keeps openleadr's warnings and errors raised during the VEN's exchange (in that
    task only, not a VTN's in the same process) and drops every record of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        problems = _EXCHANGE.get()
        if problems is None:
            return True
        if record.levelno >= logging.WARNING:
            problems.append(record.getMessage()[:_DETAIL_CHARS])
        return False


@dataclass(frozen=True, slots=True)
class _Received:
    """An event as the VTN last sent it, with the request its answer refers to."""

    event: Mapping[str, Any]
    request_id: str | None


@dataclass(frozen=True, slots=True)
class _Applied:
    """What the VEN did with an event: for which modification, the sites it capped."""

    modification_number: int
    sites: frozenset[str]
    end: datetime | None


class OpenAdrVen:
    """The VEN: one loop (a `Worker`) that registers with the VTN (again after an outage
    or when the VTN asks), then polls it every `poll_interval` seconds (sooner when the
    VTN asks for a shorter one) and applies what it sends.

    Every event the VTN sends (new or modified) is applied: the caps of its earlier
    modification are cancelled, then its caps added (also at the first sight of an event,
    so that a restarted VEN does not cap twice), and the VEN answers optIn, or optOut when
    it cannot apply it (logged). A cancelled event, or one the VTN no longer sends (implied
    cancellation) before its end, has its caps cancelled. A cap that cannot be stored is
    tried again at the next poll, before the answer is sent.

    Lifecycle: `await start()` runs the loop as a task and `await stop()` ends it (and
    closes the connection to the VTN); `run()` is the loop itself (until cancelled);
    `running()` is both as an async context (an exit stack, singleton hosting)."""

    def __init__(self, settings: OpenAdrConfig, sink: CapSink, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.sink = sink
        self._clock = clock
        self._worker = Worker("openadr-ven", self._step, period=settings.poll_interval)
        self._client: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._filter = _Collect()
        # What the VTN said about itself and us.
        self.vtn_id = ""
        # The events of the VTN's last oadrDistributeEvent, and what the VEN did with each.
        self._latest: dict[str, _Received] = {}
        self._applied: dict[str, _Applied] = {}
        # When the VTN stopped answering (None: it answers).
        self._down_since: datetime | None = None

    @property
    def registered(self) -> bool:
        """Whether the VEN is registered with the VTN now."""
        return self._client is not None and self._client.registration_id is not None

    @property
    def ven_id(self) -> str:
        """The VEN id the VTN gave (or the configured one before registration)."""
        if self._client is not None and self._client.ven_id:
            return str(self._client.ven_id)
        return self.settings.ven_id

    async def start(self) -> None:
        self._attach()
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()
        await self._close()

    async def run(self) -> None:
        self._attach()
        try:
            await self._worker.run()
        finally:
            await self._close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def _attach(self) -> None:
        library = logging.getLogger(_LIBRARY_LOGGER)
        if self._filter not in library.filters:
            library.addFilter(self._filter)

    async def _close(self) -> None:
        logging.getLogger(_LIBRARY_LOGGER).removeFilter(self._filter)
        session, self._session, self._client = self._session, None, None
        if session is not None:
            await session.close()

    # -- one pass ------------------------------------------------------------------------

    async def _step(self) -> float | None:
        """Register if needed, poll, apply what changed; the delay until the next poll."""
        problems: list[str] = []
        token = _EXCHANGE.set(problems)
        try:
            answered = await self._exchange()
            self._note_reachability(answered, problems)
            await self._reconcile()
        finally:
            _EXCHANGE.reset(token)
        frequency = getattr(self._client, "poll_frequency", None)
        if self.registered and isinstance(frequency, timedelta) and frequency.total_seconds() > 0:
            return min(self.settings.poll_interval, frequency.total_seconds())
        return None

    async def _exchange(self) -> bool:
        """One round with the VTN; False when it gave no usable answer."""
        client = self._ensure_client()
        if client.registration_id is None:
            if not await self._register(client):
                return False
            kind, payload = await client.request_event()
        else:
            kind, payload = await client.poll()
        if kind is None:
            return False
        await self._on_message(client, kind, _mapping(payload))
        return True

    def _ensure_client(self) -> Any:
        if self._session is None:
            self._session = self._new_session()
        if self._client is None:
            self._client = self._new_client(self._session)
        return self._client

    def _new_session(self) -> aiohttp.ClientSession:
        s = self.settings
        connector = None
        if s.vtn_url.startswith("https://"):
            context = ssl.create_default_context(cafile=s.ca_file or None)
            if s.cert_file:
                context.load_cert_chain(s.cert_file, s.key_file)
            connector = aiohttp.TCPConnector(ssl=context)
        return aiohttp.ClientSession(
            connector=connector,
            headers={"content-type": "application/xml"},
            timeout=aiohttp.ClientTimeout(total=30, sock_connect=5, sock_read=10),
        )

    def _new_client(self, session: aiohttp.ClientSession) -> Any:
        from openleadr import OpenADRClient  # the optional extra: only when the VEN runs

        s = self.settings
        client = OpenADRClient(
            ven_name=s.ven_name,
            vtn_url=s.vtn_url,
            ven_id=s.ven_id or None,
            cert=s.cert_file or None,
            key=s.key_file or None,
            ca_file=s.ca_file or None,
            vtn_fingerprint=s.vtn_fingerprint or None,
            show_fingerprint=False,
        )
        # Our session: TLS with the configured CA also without a client certificate (the
        # library's own uses the CA file only with one).
        client.client_session = session
        if s.cert_file:
            from openleadr.utils import certificate_fingerprint

            fingerprint = certificate_fingerprint(Path(s.cert_file).read_text(encoding="ascii"))
            # What the VTN's operator needs to know this VEN (OpenADR's certificate id).
            log.info("openadr_ven_certificate", fingerprint=fingerprint, ven_name=s.ven_name)
        return client

    async def _register(self, client: Any) -> bool:
        kind, payload = await client.query_registration()
        if kind is None:
            return False
        self._note_vtn(payload)
        request_id = _mapping(_mapping(payload).get("response")).get("request_id")
        answer = await client.create_party_registration(ven_id=client.ven_id, request_id=request_id)
        if answer is None or client.registration_id is None:
            return False
        self._note_vtn(answer[1])
        await client.register_reports([])
        frequency = client.poll_frequency
        log.info(
            "openadr_registered",
            vtn_url=self.settings.vtn_url,
            vtn_id=self.vtn_id,
            ven_id=client.ven_id,
            registration_id=client.registration_id,
            vtn_poll_s=frequency.total_seconds() if isinstance(frequency, timedelta) else None,
        )
        return True

    async def _on_message(self, client: Any, kind: str, payload: Mapping[str, Any]) -> None:
        self._note_vtn(payload)
        if kind == "oadrDistributeEvent":
            self._distributed(payload)
        elif kind == "oadrResponse":
            code = _mapping(payload.get("response")).get("response_code")
            if code not in (None, 200, "200"):
                # The VTN no longer knows us (restarted, registration dropped): register again.
                log.warning("openadr_registration_lost", vtn_url=self.settings.vtn_url, code=code)
                client.registration_id = None
        elif kind == "oadrRequestReregistration":
            await client.send_response(service="EiRegisterParty")
            log.info("openadr_reregistration_requested", vtn_id=self.vtn_id)
            client.registration_id = None
        elif kind == "oadrCancelPartyRegistration":
            await client.on_cancel_party_registration(payload)
            log.warning("openadr_registration_cancelled", vtn_id=self.vtn_id)
            # The library has dropped its state: a new client registers at the next poll.
            self._client = None
        else:
            log.info("openadr_message_ignored", message_type=kind, vtn_id=self.vtn_id)

    def _note_vtn(self, payload: Any) -> None:
        vtn_id = _mapping(payload).get("vtn_id")
        if vtn_id:
            self.vtn_id = str(vtn_id)

    def _note_reachability(self, answered: bool, problems: list[str]) -> None:
        now = self._clock()
        if not answered:
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "openadr_vtn_unreachable",
                    vtn_url=self.settings.vtn_url,
                    detail="; ".join(problems) or "no answer",
                )
            return
        if self._down_since is not None:
            log.info(
                "openadr_vtn_reachable",
                vtn_url=self.settings.vtn_url,
                down_s=round((now - self._down_since).total_seconds(), 1),
            )
            self._down_since = None
        for problem in problems:
            log.warning("openadr_vtn_warning", vtn_url=self.settings.vtn_url, detail=problem)

    # -- events --------------------------------------------------------------------------

    def _distributed(self, payload: Mapping[str, Any]) -> None:
        """Take the VTN's list of events (every event it holds for us) as the truth."""
        request_id = payload.get("request_id")
        events = payload.get("events")
        latest: dict[str, _Received] = {}
        for event in events if isinstance(events, list) else []:
            event = _mapping(event)
            event_id = _mapping(event.get("event_descriptor")).get("event_id")
            if event_id:
                latest[str(event_id)] = _Received(
                    event, None if request_id is None else str(request_id)
                )
        self._latest = latest

    async def _reconcile(self) -> None:
        """Bring the caps in line with the VTN's events: implied cancellations, then every
        event whose modification the VEN has not applied yet."""
        now = self._clock()
        for event_id in [e for e in self._applied if e not in self._latest]:
            gone = self._applied[event_id]
            if gone.end is None or gone.end > now:
                await self._cancel(event_id, gone.sites, implied=True)
            del self._applied[event_id]
        for event_id, received in list(self._latest.items()):
            descriptor = _mapping(received.event.get("event_descriptor"))
            applied = self._applied.get(event_id)
            modification = _integer(descriptor.get("modification_number"))
            if applied is not None and applied.modification_number == modification:
                continue
            await self._apply(received, applied, now)

    async def _apply(self, received: _Received, applied: _Applied | None, now: datetime) -> None:
        plan = plan_event(received.event, self.settings, now=now)
        log.info(
            "openadr_event_received",
            event_id=plan.event_id,
            modification_number=plan.modification_number,
            status=plan.status,
            signal=plan.signal or None,
            site=",".join(sorted(plan.sites)) or None,
        )
        before = applied.sites if applied is not None else frozenset()
        if plan.cancelled:
            await self._cancel(plan.event_id, before | plan.sites, implied=False)
        elif not plan.completed:
            # The caps of an earlier modification (or of this one, by an earlier run) go first.
            for site in sorted(before | plan.sites):
                await self.sink.cancel_cap(
                    site,
                    source=SOURCE,
                    reference=event_reference(plan.event_id),
                    requested_by=self._requested_by(),
                )
        opt = "optIn"
        capped: frozenset[str] = frozenset()
        if plan.opt_out is not None:
            opt = "optOut"
            log.warning(
                "openadr_opted_out",
                event_id=plan.event_id,
                site=",".join(sorted(plan.sites)) or None,
                reason=plan.opt_out,
            )
        elif not (plan.cancelled or plan.completed):
            for cap in plan.caps:
                await self._add(plan, cap)
            capped = frozenset(cap.site for cap in plan.caps)
        self._applied[plan.event_id] = _Applied(plan.modification_number, capped, plan.end)
        client = self._client
        if (
            client is not None
            and received.event.get("response_required") == "always"
            and not plan.completed
        ):
            await client.created_event(
                received.request_id, plan.event_id, opt, plan.modification_number
            )

    async def _add(self, plan: EventPlan, cap: CapWindow) -> None:
        cap_id = await self.sink.add_cap(
            cap.site,
            cap.limit_w,
            cap.start,
            cap.end,
            source=SOURCE,
            reference=cap.reference,
            requested_by=self._requested_by(),
        )
        log.info(
            "openadr_cap_added",
            event_id=plan.event_id,
            site=cap.site,
            limit_kw=round(cap.limit_w / 1000.0, 3),
            start=cap.start.isoformat(),
            end=cap.end.isoformat(),
            reference=cap.reference,
            cap_id=cap_id,
        )

    async def _cancel(self, event_id: str, sites: frozenset[str], *, implied: bool) -> None:
        if not sites:
            log.info("openadr_event_cancelled", event_id=event_id, site=None, implied=implied)
        for site in sorted(sites):
            ended = await self.sink.cancel_cap(
                site,
                source=SOURCE,
                reference=event_reference(event_id),
                requested_by=self._requested_by(),
            )
            log.info(
                "openadr_event_cancelled",
                event_id=event_id,
                site=site,
                implied=implied,
                caps_cancelled=ended,
            )

    def _requested_by(self) -> str:
        return f"openadr:{self.vtn_id}"


__all__ = [
    "SOURCE",
    "CapSink",
    "CapWindow",
    "EventPlan",
    "OpenAdrVen",
    "event_reference",
    "plan_event",
]
