"""`ChargerBase`: what every simulated charger does whatever its OCPP version: the connection
over time, boot and heartbeat state, owned tasks, step reports, the station model and its clock,
and what the station keeps for the CSMS: reservations, charging profiles, the local list.

No message of any OCPP version is built here; `V16Charger` and `V201Charger` build theirs.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from simulators.certificates import CertificateStore, request_certificate
from simulators.clock import Clock, wire_time
from simulators.errors import NotConnectedError, OptionsError, SimulatorError
from simulators.events import Sink, Step, StepKind, Tally
from simulators.firmware import STEP_SECONDS
from simulators.link import CallHandler, Dialect, Link, client_tls, open_link
from simulators.local_list import ListEntry, LocalList
from simulators.offline import Delivery
from simulators.options import ChargerOptions
from simulators.profiles import (
    ChargingProfiles,
    CompositePeriod,
    Profile,
    ProfilePolicy,
    ProfileRules,
    Rating,
)
from simulators.reservations import Reservation, ReservationBook
from simulators.signed_meter import MeterIdentity, SignedFault, SignedMeter, load_or_create_key
from simulators.station import OCCUPIED, ConnectorStatus, EvProfile, Reading, Station

__all__ = ["LOCAL_LIST_MAX_LENGTH", "ChargerBase", "Timestamp"]

log = logging.getLogger(__name__)

#: Entries the local authorization list holds at most.
LOCAL_LIST_MAX_LENGTH = 100

#: A moment as given to message methods: aware datetime, wire text as is, or None for now.
Timestamp = datetime | str | None


class ChargerBase(abc.ABC):
    """Connection, tasks and bookkeeping shared by the chargers of every OCPP version.

    A subclass names its `dialect`, sets `_requests` (its answers to CSMS CALLs) in its
    constructor, and provides `boot()`, `flush()`, the HeartbeatInterval it keeps, whether a
    connector has a session or transaction, and `wait_idle()`.

    What tests may read or set: `firmware_version` (booted with; a firmware update changes
    it), `firmware_state` and `upload_state` (the last status step, Idle when nothing runs),
    `step_seconds` (pause between those steps), `reservations`, `profiles`, `local_list`,
    `unanswered` (CSMS actions it ignores: their CALLs get no answer at all).
    """

    dialect: ClassVar[Dialect]
    _requests: CallHandler

    def __init__(
        self,
        options: ChargerOptions,
        *,
        sink: Sink,
        clock: Clock,
        rng: random.Random | None,
    ) -> None:
        if options.version != self.dialect.version:
            raise OptionsError(
                f"{type(self).__name__} plays OCPP {self.dialect.version}, not {options.version}"
            )
        self.options = options
        self.id = options.charger_id
        self.tally = Tally()
        self.station = Station(
            options.connectors,
            rng if rng is not None else random.Random(options.seed),
            rated_current_a=options.rated_current_a,
            phases=options.phases,
            ev=EvProfile(options.ev_phases, options.ev_max_current_a, options.energy_need_wh),
        )
        self._jitter = random.Random(None if options.seed is None else options.seed + 1)
        self.boot_status: str | None = None
        #: The firmware version BootNotification reports; a firmware update changes it.
        self.firmware_version = options.firmware
        #: The last FirmwareStatusNotification status, Idle when no update runs.
        self.firmware_state = "Idle"
        #: The last DiagnosticsStatusNotification (1.6) or LogStatusNotification (2.0.1).
        self.upload_state = "Idle"
        #: Pause between the status steps of a firmware update or an upload.
        self.step_seconds = STEP_SECONDS
        self.reservations = ReservationBook()
        self.profiles = ChargingProfiles()
        #: Profiles this charger declines whatever they say (`--reject-profiles`, `--reject-zero`).
        self.profile_policy = ProfilePolicy(options.reject_profiles, options.reject_zero)
        self.local_list = LocalList(LOCAL_LIST_MAX_LENGTH)
        self.certificates = CertificateStore(self.id, options.cert_dir)
        #: The Eichrecht meter signing the energy register (`--signed-meter`), else None.
        self.signed_meter = signing_meter(options)
        #: CSMS actions (e.g. "ReserveNow") this charger receives and never answers.
        self.unanswered: set[str] = set()
        self._sink = sink
        self._clock = clock
        self._last_advance = clock()
        self._link: Link | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._online = asyncio.Event()
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        self._ready = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()

    # -- what each version provides -----------------------------------------------------

    @abc.abstractmethod
    async def boot(self) -> dict[str, Any]:
        """BootNotification; an answer is passed to `_booted_with()`."""

    @abc.abstractmethod
    async def flush(self) -> list[Delivery]:
        """Send the messages queued while offline."""

    @property
    @abc.abstractmethod
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats (0: none)."""

    @abc.abstractmethod
    def _set_heartbeat_interval(self, seconds: int) -> None:
        """Record the interval an accepted BootNotification asked for."""

    @abc.abstractmethod
    def connector_busy(self, connector_id: int) -> bool:
        """A session runs or a transaction is open on the connector."""

    @abc.abstractmethod
    async def wait_idle(self) -> None:
        """Wait until no session runs and no transaction is open."""

    @abc.abstractmethod
    def local_list_enabled(self) -> bool:
        """The local authorization list is in use (configuration or device model)."""

    @property
    @abc.abstractmethod
    def pre_authorize(self) -> bool:
        """An Accepted local-list entry starts a session without Authorize."""

    # -- connection ---------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._link is not None and not self._link.closed

    @property
    def booted(self) -> bool:
        """True once a BootNotification was accepted (until a reset)."""
        return self._booted.is_set()

    async def connect(self) -> None:
        """Open the websocket; raises `ConnectError` with a one-line reason."""
        if self.online:
            return
        link = await open_link(
            self.dialect,
            self.options.endpoint,
            self.id,
            self.options.password,
            self._requests,
            self.spawn,
            response_timeout=self.options.response_timeout,
            unanswered=self.unanswered,
            tls=_tls(self.options),
        )
        self._link = link
        self._lost.clear()
        self._reader = asyncio.create_task(self._read(link), name=f"{self.id} reader")
        self._online.set()
        self.report(StepKind.CONNECTED, f"connected to {self.options.endpoint}")

    async def close(self) -> None:
        """Stop everything this charger runs and close the websocket."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        was_online = self.online
        await self.disconnect()
        if was_online:
            self.report(StepKind.DISCONNECTED, "disconnected")

    async def go_offline(self) -> None:
        """Lose the connection on purpose; transaction messages are queued until `reconnect()`."""
        await self.disconnect()
        self.report(StepKind.DISCONNECTED, "offline: transaction messages are queued")

    async def disconnect(self) -> None:
        """Close the websocket on purpose; tasks keep running and no reconnect follows."""
        link, reader = self._link, self._reader
        self._link, self._reader = None, None
        self._online.clear()
        if link is not None:
            await link.close()
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.gather(reader, return_exceptions=True)

    async def reconnect(self, *, boot: bool = False) -> list[Delivery]:
        """Connect again (optionally boot) and send the queued messages in order."""
        await self.connect()
        if boot:
            await self.boot()
        return await self.flush()

    async def wait_online(self) -> None:
        await self._online.wait()

    async def wait_lost(self) -> None:
        """Wait until the connection drops without us closing it."""
        await self._lost.wait()

    async def wait_booted(self, seconds: float | None = None) -> bool:
        """Wait up to `seconds` for an accepted boot; True if there is one."""
        try:
            async with asyncio.timeout(seconds):
                await self._booted.wait()
        except TimeoutError:
            return False
        return True

    def set_ready(self) -> None:
        """Booted and connectors announced: the script may start sessions."""
        self._ready.set()

    async def wait_ready(self) -> None:
        """Wait until connected, booted and announced (see `set_ready`)."""
        while not (self.online and self._ready.is_set()):
            await self._online.wait()
            await self._ready.wait()

    def forget_boot(self) -> None:
        """A reboot is under way: the next BootNotification must be accepted again."""
        self._booted.clear()
        self._ready.clear()
        self.boot_status = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- messages of every version ------------------------------------------------------

    async def call(
        self, action: str, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        """Any charger-initiated action with a camelCase payload; never queued.

        `validate=False` skips the schema check of the request and the answer."""
        return await self._call(action, payload, validate=validate)

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call("Heartbeat", {})

    async def send_raw(self, text: str, timeout: float = 5.0) -> str | None:  # noqa: ASYNC109
        """Send any text frame on the socket; return the reply frame as received, or None
        when nothing came within `timeout`. Raises `NotConnectedError` if the CSMS closes."""
        link = self._link
        if link is None or link.closed:
            raise NotConnectedError(f"{self.id} is not connected")
        return await link.send_raw(text, timeout)

    # -- station ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The charger's clock (timezone-aware UTC)."""
        return self._clock()

    def reading(self, connector_id: int) -> Reading:
        """The meter of a connector now (time since the last look is counted first)."""
        self._advance()
        return self.station.reading(connector_id)

    def connector_free(self, connector_id: int) -> bool:
        """A connector can take a new session (reservations aside): operative, no vehicle,
        not faulted, no session or transaction."""
        connector = self.station.connector(connector_id)
        return (
            connector.operative
            and connector.status not in OCCUPIED
            and connector.status is not ConnectorStatus.FAULTED
            and not self.connector_busy(connector_id)
        )

    def connector_for(
        self, id_tag: str, candidates: Iterable[int], parent_id_tag: str | None = None
    ) -> int | None:
        """Of `candidates`, the connector a session of `id_tag` would take: free and not
        reserved for another tag, the one reserved for this tag first. None: no such one."""
        usable = [
            cid
            for cid in candidates
            if self.station.has_connector(cid)
            and self.connector_free(cid)
            and self.reservation_blocking(cid, id_tag, parent_id_tag) is None
        ]
        usable.sort(key=lambda cid: self.reservations.on_connector(cid) is None)
        return usable[0] if usable else None

    def remote_start_target(
        self, id_tag: str, candidates: Iterable[int], *, authorizes: bool
    ) -> int | None:
        """The connector a remote start of `id_tag` takes (see `connector_for`). One reserved
        for a parent or group is taken too when the Authorize answer can still tell that the
        tag belongs to it."""
        candidates = tuple(candidates)
        entry = self.local_entry(id_tag)
        parent = None if entry is None else entry.parent_id_tag
        found = self.connector_for(id_tag, candidates, parent)
        if found is not None or not authorizes or parent is not None:
            return found
        for cid in candidates:
            if not (self.station.has_connector(cid) and self.connector_free(cid)):
                continue
            held = self.reservation_blocking(cid, id_tag)
            if held is not None and held.parent_id_tag is not None:
                return cid
        return None

    def local_entry(self, id_tag: str) -> ListEntry | None:
        """What the local list says about a tag (None: not listed, or no list in use)."""
        return self.local_list.lookup(id_tag) if self.local_list_enabled() else None

    def idle_status(self, connector_id: int) -> ConnectorStatus:
        """The status of a connector once its vehicle is gone: Unavailable when inoperative,
        Reserved when a reservation holds it, else Available."""
        connector = self.station.connector(connector_id)
        if not connector.operative:
            return connector.idle_status
        free = self._free_connectors() | {connector_id}
        if connector_id in self.reservations.shown_reserved(free):
            return ConnectorStatus.RESERVED
        return ConnectorStatus.AVAILABLE

    def heartbeat_changed(self) -> None:
        self._heartbeat_changed.set()

    # -- reservations -------------------------------------------------------------------

    def reserve(self, reservation: Reservation) -> tuple[str, list[int]]:
        """ReserveNow decided: Accepted, Faulted, Occupied or Unavailable, and the connectors
        whose status changed (to be announced). A known reservation id is replaced."""
        previous = self.reservations.remove(reservation.reservation_id)
        refusal = self._reservation_refusal(reservation.connector_id)
        if refusal is not None:
            if previous is not None:
                self.reservations.add(previous)
            return refusal, []
        self.reservations.add(reservation)
        return "Accepted", self.refresh_reserved()

    def cancel_reservation(self, reservation_id: int) -> tuple[Reservation | None, list[int]]:
        """Drop a reservation; returns it (None if unknown) and the connectors that changed."""
        reservation = self.reservations.remove(reservation_id)
        return reservation, (self.refresh_reserved() if reservation is not None else [])

    def reservation_blocking(
        self, connector_id: int, id_tag: str | None, parent_id_tag: str | None = None
    ) -> Reservation | None:
        """The reservation that keeps `id_tag` from starting on the connector, if any."""
        return self.reservations.blocking(
            connector_id, id_tag, parent_id_tag, self._free_connectors()
        )

    def use_reservation(
        self, connector_id: int, id_tag: str | None, parent_id_tag: str | None = None
    ) -> int | None:
        """A session of `id_tag` starts on the connector: the reservation it uses ends."""
        reservation = self.reservations.usable(connector_id, id_tag, parent_id_tag)
        if reservation is None:
            return None
        self.reservations.remove(reservation.reservation_id)
        return reservation.reservation_id

    def refresh_reserved(self) -> list[int]:
        """Show Reserved on the free connectors reservations hold, and Available on the others
        that were Reserved; returns the connectors whose status changed."""
        free = self._free_connectors()
        reserved = self.reservations.shown_reserved(free)
        changed: list[int] = []
        for connector_id in sorted(free):
            connector = self.station.connector(connector_id)
            wanted = ConnectorStatus.RESERVED if connector_id in reserved else connector.idle_status
            if connector.status is not wanted:
                self.station.set_status(connector_id, wanted)
                changed.append(connector_id)
        return changed

    async def expire_reservation(
        self,
        reservation: Reservation,
        expired: Callable[[Reservation, list[int]], Awaitable[None]],
    ) -> None:
        """At its expiry the reservation ends (unless used, cancelled or replaced before);
        `expired` announces it with the connectors whose status changed."""
        await asyncio.sleep(max(0.0, (reservation.expires_at - self.now()).total_seconds()))
        if self.reservations.get(reservation.reservation_id) is not reservation:
            return
        self.reservations.remove(reservation.reservation_id)
        await expired(reservation, self.refresh_reserved())

    def _reservation_refusal(self, connector_id: int) -> str | None:
        ids = self.station.connector_ids if connector_id == 0 else (connector_id,)
        connectors = [self.station.connector(cid) for cid in ids]
        if all(c.status is ConnectorStatus.FAULTED for c in connectors):
            return "Faulted"
        if not any(c.operative for c in connectors):
            return "Unavailable"
        return self.reservations.refusal(connector_id, self._free_connectors())

    def _free_connectors(self) -> set[int]:
        return {cid for cid in self.station.connector_ids if self.connector_free(cid)}

    # -- charging profiles --------------------------------------------------------------

    def profile_refusal(self, profile: Profile, rules: ProfileRules) -> str | None:
        """Why SetChargingProfile (or a remote start's profile) is refused: this charger's
        policy first, then what it can keep (None: it is accepted)."""
        started = self.profiles.started(profile.connector_id)
        reason = self.profile_policy.refusal(profile, self._clock(), started)
        if reason is None:
            reason = self.profiles.refusal(profile, rules)
        if reason is not None:
            self.report(StepKind.INFO, f"charging profile {profile.profile_id} refused: {reason}")
        return reason

    def apply_charging_limits(self) -> None:
        """Cap every connector at what the installed charging profiles allow now."""
        self._advance()

    def composite_schedule(self, connector_id: int, duration_s: int) -> list[CompositePeriod]:
        """The cap on a connector (0: the whole station) over the next `duration_s` seconds;
        without profiles the rated power."""
        self._advance()
        ratings = {
            cid: Rating(float(connector.rated_current_a), connector.phases_available)
            for cid in self.station.connector_ids
            for connector in (self.station.connector(cid),)
        }
        return self.profiles.composite(connector_id, ratings, self._clock(), duration_s)

    async def wait_heartbeat_change(self, seconds: float | None) -> bool:
        """Wait `seconds` (None: forever); True if HeartbeatInterval changed meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                await self._heartbeat_changed.wait()
        except TimeoutError:
            return False
        self._heartbeat_changed.clear()
        return True

    # -- tasks and reporting ------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], name: str | None = None) -> asyncio.Task[None]:
        """Run a coroutine as a task owned by this charger; `close()` cancels it."""
        task = asyncio.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def jittered(self, seconds: float) -> float:
        """`seconds` give or take 20 %, so that many chargers do not retry in lockstep."""
        return seconds * self._jitter.uniform(0.8, 1.2)

    def report(self, kind: StepKind, text: str) -> None:
        step = Step(self.id, kind, text)
        self.tally.count(step)
        self._sink(step)

    # -- internals ----------------------------------------------------------------------

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except NotConnectedError:
            pass
        except SimulatorError as exc:
            self.report(StepKind.ERROR, str(exc))
        except Exception:  # task boundary: report and keep the charger alive
            log.exception("%s: background task failed", self.id)
            self.report(StepKind.ERROR, "internal error in a background task (see log)")

    async def _read(self, link: Link) -> None:
        try:
            await link.serve()
        except Exception:  # task boundary
            log.exception("%s: reading from the CSMS failed", self.id)
            with contextlib.suppress(Exception):
                await link.close()
        finally:
            if self._link is link:  # not closed by us: the connection was lost
                self._link = None
                self._online.clear()
                self._lost.set()
                self.report(StepKind.DISCONNECTED, "connection lost")

    async def _call(
        self, action: str, payload: Mapping[str, Any], *, validate: bool = True
    ) -> dict[str, Any]:
        link = self._link
        if link is None or link.closed:
            raise NotConnectedError(f"{self.id} is not connected")
        return await link.call(action, payload, validate=validate)

    def _booted_with(self, answer: Mapping[str, Any]) -> None:
        status = str(answer.get("status"))
        interval = int(answer.get("interval", 0))
        self.boot_status = status
        if status == "Accepted":
            if interval > 0:
                self._set_heartbeat_interval(interval)
                self._heartbeat_changed.set()
            self._booted.set()
            if self.options.csr and not self.certificates.csr_count:
                self.spawn(request_certificate(self, self.dialect.version), name=f"{self.id} csr")
            self.report(StepKind.BOOT_ACCEPTED, f"boot Accepted heartbeat={interval}s")
        else:
            self.report(StepKind.BOOT_REFUSED, f"boot {status} interval={interval}s")

    def _advance(self) -> None:
        """Let the time since the last look pass on the station, then cap each connector at
        what the charging profiles allow from now on. Time passes in steps that end where a
        schedule changes, so that the draw (and the energy) follows the composite schedule
        even when nobody looked for a while."""
        now = self._clock()
        last = self._last_advance
        if now <= last:
            self._cap_connectors(now)
            return
        for moment in [*self.profiles.moments(last, now), now]:
            self.station.advance((moment - last).total_seconds())
            self._cap_connectors(moment)
            last = moment
        self._last_advance = now

    def _cap_connectors(self, at: datetime) -> None:
        ids = self.station.connector_ids
        sharing = sum(1 for cid in ids if self.station.connector(cid).charging)
        for cid in ids:
            cap = self.profiles.limit(cid, at, sharing)
            if self.station.connector(cid).cap != cap:
                self.station.set_cap(cid, cap)

    def _stamp(self, timestamp: Timestamp) -> str:
        if isinstance(timestamp, str):
            return timestamp
        return wire_time(timestamp if timestamp is not None else self._clock())


def signing_meter(options: ChargerOptions) -> SignedMeter | None:
    """The signing meter a charger with `--signed-meter` has; its key loaded or made now."""
    if not options.signed_meter:
        return None
    identity = MeterIdentity(
        gateway=f"{options.vendor} {options.model}",
        gateway_serial=options.serial_number,
        gateway_version=options.firmware,
        meter_serial=f"M-{options.serial_number}",
    )
    fault = None if options.signed_fault is None else SignedFault(options.signed_fault)
    return SignedMeter(identity, load_or_create_key(options.meter_key_file), fault)


def _tls(options: ChargerOptions) -> ssl.SSLContext | None:
    """The client TLS context of a wss:// url (files read at each connection)."""
    if not options.url.startswith("wss:"):
        return None
    return client_tls(options.ca_file, options.cert_file, options.key_file)
