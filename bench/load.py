"""Load benchmark: many OCPP-J chargers on loopback against the CSMS; latency, memory and CPU.

Not a charger simulator (that is simulators/) and not a client of the `ocpp` library: frames are
built with orjson, never validated on the hot path, and replies are matched by message id.

    python bench/load.py connections [--chargers 10000] [--version 1.6|2.0.1] [--ramp-rate 500]
    python bench/load.py metervalues [--chargers 1000] [--rate 2000] [--duration 30]
                                     [--bad-charger [--bad-rate 12]]
    python bench/load.py sessions [--chargers 1000] [--rate 2000] [--meter-messages 10]
                                  [--shared-card] [--cards unknown|known] [--burst]
                                  [--database SEEDED.db]
    python bench/load.py ... --postgres | --database-url postgresql+asyncpg://...
    python bench/load.py --self-check

By default the server is spawned (`csms serve --config FILE` with a fresh SQLite file in a temp
directory); `--postgres` gives it a fresh database on a throw-away PostgreSQL server started for
the run (tests/postgres.py, with fsync and synchronous commit on, as in production) and reports
that server's CPU as well; `--database-url` points it at a PostgreSQL database of yours (empty,
or a csms one); `--url ws://127.0.0.1:PORT/ocpp [--server-pid PID]` uses a running one. Only
loopback addresses are accepted. Phases, each bounded in time:

1. ramp: chargers connect at --ramp-rate per second and boot (plus StatusNotification, and for
   metervalues Authorize and a started transaction); server RSS is read before and after;
2. measured phase (--duration): Heartbeats (connections), open-loop MeterValues (metervalues),
   or whole sessions (sessions): every charger loops Authorize, start (StartTransaction or
   TransactionEvent Started), --meter-messages meter messages, stop, one CALL per slot of its
   open-loop schedule; with --burst every charger authorizes and starts at the same moment
   first (as after a power cut) and those first calls are reported apart;
3. teardown (not measured): transactions are stopped, connections closed, the server stopped.

With --bad-charger (metervalues) the measured phase runs twice, first as above, then with one
more charger sending MeterValues the server must refuse (connectorId / evseId 2^64-1) at
--bad-rate a second; the others' throughput and latency are printed for both phases with the
change in percent.

Workers (--workers K) are processes that each drive a share of the chargers and send their
counters and latency samples back to the parent, which reads the server's RSS and CPU time with
psutil and prints the figures (or one JSON object with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import ipaddress
import math
import multiprocessing
import os
import random
import resource
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import orjson
import psutil
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI, parse_uri

Json = dict[str, Any]
Payload = Json | orjson.Fragment
Call = tuple[str, Payload]
T = TypeVar("T")

VENDOR: Final = "BenchVendor"
MODEL: Final = "BenchModel"
FIRMWARE: Final = "1.0.0-bench"
HEARTBEAT: Final = orjson.Fragment(b"{}")
CLOSE_GRACE_S: Final = 5.0  # how long a closing connection may wait for the server's TCP close
EXIT_SERVER: Final = 2  # exit status when the server cannot be started or reached
EXIT_FAILED: Final = 1
BAD_ID: Final = 2**64 - 1  # --bad-charger: beyond any database integer


class BenchError(Exception):
    """A condition that ends the benchmark with a one-line error."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------
# Charger state and OCPP payloads (1.6J and 2.0.1), kept free of I/O so --self-check can
# validate exactly what goes on the wire.
# --------------------------------------------------------------------------------------------


def iso_now() -> str:
    """Now in UTC as RFC 3339 with milliseconds and a Z, as chargers send it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Reading:
    energy_wh: int
    power_w: float
    currents_a: tuple[float, float, float]
    voltage_v: float
    soc_percent: float


@dataclass(slots=True)
class Meter:
    """A session's meter: the lifetime register accrues at a constant 3-phase power in real time."""

    start_wh: int
    power_w: float
    soc_start: float
    capacity_wh: float
    t_start: float = 0.0

    @classmethod
    def pick(cls, rng: random.Random) -> Meter:
        return cls(
            start_wh=rng.randint(100_000, 40_000_000),
            power_w=rng.choice((7_360.0, 11_040.0, 22_080.0)),
            soc_start=rng.uniform(10.0, 60.0),
            capacity_wh=rng.choice((40_000.0, 60_000.0, 77_000.0, 100_000.0)),
        )

    def energy_wh(self, now: float) -> int:
        return self.start_wh + int(self.power_w * max(0.0, now - self.t_start) / 3600.0)

    def read(self, now: float, rng: random.Random) -> Reading:
        energy = self.energy_wh(now)
        voltage = round(230.0 + rng.uniform(-3.0, 3.0), 1)
        power = round(self.power_w * rng.uniform(0.97, 1.0))
        per_phase = power / (3 * voltage)
        soc = min(100.0, self.soc_start + (energy - self.start_wh) * 100.0 / self.capacity_wh)
        return Reading(
            energy_wh=energy,
            power_w=float(power),
            currents_a=(
                round(per_phase * rng.uniform(0.98, 1.02), 2),
                round(per_phase * rng.uniform(0.98, 1.02), 2),
                round(per_phase * rng.uniform(0.98, 1.02), 2),
            ),
            voltage_v=voltage,
            soc_percent=round(soc, 1),
        )


@dataclass(slots=True)
class Charger:
    index: int
    cp_id: str
    id_token: str
    meter: Meter
    link: Link | None = None
    tx_id: int | str | None = None
    seq_no: int = 0

    # Session progress (sessions scenario): the next step and whether a transaction runs.
    step: int = 0
    in_transaction: bool = False

    @classmethod
    def make(cls, index: int, prefix: str, rng: random.Random, shared: bool = False) -> Charger:
        return cls(index, f"{prefix}{index:06d}", card_uid(index, shared), Meter.pick(rng))


SHARED_CARD: Final = "04BE0C5A4ED0CA"


def card_uid(index: int, shared: bool) -> str:
    """A 7-byte ISO 14443 UID as hex: the charger's own card, or the one fleet card that every
    charger uses with --shared-card. Unknown to the server unless --cards known."""
    return SHARED_CARD if shared else f"04{index:012X}"


def id_tag_status(reply: Any) -> str:
    """The idTagInfo (1.6) or idTokenInfo (2.0.1) status of a CALLRESULT, else '-'."""
    if isinstance(reply, dict):
        info = reply.get("idTagInfo") or reply.get("idTokenInfo")
        if isinstance(info, dict) and isinstance(info.get("status"), str):
            return str(info["status"])
    return "-"


class V16:
    """OCPP 1.6J payloads."""

    version: Final = "1.6"
    subprotocol: Final = "ocpp1.6"

    def boot(self, ch: Charger) -> Call:
        return "BootNotification", {
            "chargePointVendor": VENDOR,
            "chargePointModel": MODEL,
            "chargePointSerialNumber": ch.cp_id[-25:],
            "firmwareVersion": FIRMWARE,
        }

    def _status(self, connector: int, status: str) -> Call:
        return "StatusNotification", {
            "connectorId": connector,
            "errorCode": "NoError",
            "status": status,
            "timestamp": iso_now(),
        }

    def idle_statuses(self, ch: Charger) -> list[Call]:
        return [self._status(0, "Available"), self._status(1, "Available")]

    def plug_in(self, ch: Charger) -> Call:
        return self._status(1, "Preparing")

    def authorize(self, ch: Charger) -> Call:
        return "Authorize", {"idTag": ch.id_token}

    def start(self, ch: Charger, now: float) -> Call:
        ch.meter.t_start = now
        return "StartTransaction", {
            "connectorId": 1,
            "idTag": ch.id_token,
            "meterStart": ch.meter.start_wh,
            "timestamp": iso_now(),
        }

    def started(self, ch: Charger, reply: Any) -> bool:
        tx_id = reply.get("transactionId") if isinstance(reply, dict) else None
        if isinstance(tx_id, int) and not isinstance(tx_id, bool):
            ch.tx_id = tx_id
            return True
        return False

    def periodic(self, ch: Charger, now: float, rng: random.Random) -> Call:
        r = ch.meter.read(now, rng)
        sample = "Sample.Periodic"
        values: list[Json] = [
            {
                "value": str(r.energy_wh),
                "context": sample,
                "format": "Raw",
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": "Wh",
            },
            {
                "value": f"{r.power_w:.0f}",
                "context": sample,
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        for phase, amps in zip(("L1", "L2", "L3"), r.currents_a, strict=True):
            values.append(
                {
                    "value": f"{amps:.2f}",
                    "context": sample,
                    "measurand": "Current.Import",
                    "phase": phase,
                    "location": "Outlet",
                    "unit": "A",
                }
            )
        values.append(
            {
                "value": f"{r.voltage_v:.1f}",
                "context": sample,
                "measurand": "Voltage",
                "phase": "L1-N",
                "location": "Outlet",
                "unit": "V",
            }
        )
        values.append(
            {
                "value": f"{r.soc_percent:.0f}",
                "context": sample,
                "measurand": "SoC",
                "location": "EV",
                "unit": "Percent",
            }
        )
        return "MeterValues", {
            "connectorId": 1,
            "transactionId": ch.tx_id,
            "meterValue": [{"timestamp": iso_now(), "sampledValue": values}],
        }

    def bad_meter_values(self, ch: Charger) -> Call:
        """MeterValues on a connector id no charger has (2^64-1): refused by the server."""
        return "MeterValues", {
            "connectorId": BAD_ID,
            "meterValue": [
                {
                    "timestamp": iso_now(),
                    "sampledValue": [
                        {"value": "1", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                    ],
                }
            ],
        }

    def stop(self, ch: Charger, now: float) -> Call:
        energy = ch.meter.energy_wh(now)
        ts = iso_now()
        return "StopTransaction", {
            "transactionId": ch.tx_id,
            "idTag": ch.id_token,
            "meterStop": energy,
            "timestamp": ts,
            "reason": "Local",
            "transactionData": [
                {
                    "timestamp": ts,
                    "sampledValue": [
                        {
                            "value": str(energy),
                            "context": "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        }
                    ],
                }
            ],
        }

    STATIC_ANSWERS: Final[dict[str, Json]] = {
        "ChangeConfiguration": {"status": "Accepted"},
        "ChangeAvailability": {"status": "Accepted"},
        "ClearCache": {"status": "Accepted"},
        "TriggerMessage": {"status": "Rejected"},
        "Reset": {"status": "Rejected"},
        "RemoteStartTransaction": {"status": "Rejected"},
        "RemoteStopTransaction": {"status": "Rejected"},
        "DataTransfer": {"status": "UnknownVendorId"},
        "UnlockConnector": {"status": "NotSupported"},
        # The load manager's profiles (--site) are taken; nothing else changes.
        "SetChargingProfile": {"status": "Accepted"},
        "ClearChargingProfile": {"status": "Unknown"},
        "GetLocalListVersion": {"listVersion": 0},
        "SendLocalList": {"status": "NotSupported"},
        "ReserveNow": {"status": "Rejected"},
        "CancelReservation": {"status": "Rejected"},
    }

    def answer(self, action: str, payload: Any) -> Json | None:
        """The reply to a CALL from the server, or None for a NotImplemented CALLERROR."""
        if action == "GetConfiguration":
            keys = payload.get("key") if isinstance(payload, dict) else None
            keys = keys if isinstance(keys, list) else []
            unknown = [k for k in keys if isinstance(k, str)][:100]
            return {"configurationKey": [], "unknownKey": unknown}
        return self.STATIC_ANSWERS.get(action)


class V201:
    """OCPP 2.0.1 payloads (checked against the schemas shipped with `ocpp` by --self-check)."""

    version: Final = "2.0.1"
    subprotocol: Final = "ocpp2.0.1"

    def __init__(self, mv_kind: str = "transactionevent") -> None:
        self.mv_kind = mv_kind

    def boot(self, ch: Charger) -> Call:
        return "BootNotification", {
            "reason": "PowerUp",
            "chargingStation": {
                "model": MODEL,
                "vendorName": VENDOR,
                "serialNumber": ch.cp_id[-25:],
                "firmwareVersion": FIRMWARE,
            },
        }

    def _status(self, status: str) -> Call:
        return "StatusNotification", {
            "timestamp": iso_now(),
            "connectorStatus": status,
            "evseId": 1,
            "connectorId": 1,
        }

    def idle_statuses(self, ch: Charger) -> list[Call]:
        return [self._status("Available")]

    def plug_in(self, ch: Charger) -> Call:
        return self._status("Occupied")

    def _id_token(self, ch: Charger) -> Json:
        return {"idToken": ch.id_token, "type": "ISO14443"}

    def authorize(self, ch: Charger) -> Call:
        return "Authorize", {"idToken": self._id_token(ch)}

    @staticmethod
    def _register(energy_wh: int, context: str) -> Json:
        return {
            "timestamp": iso_now(),
            "sampledValue": [
                {
                    "value": energy_wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "location": "Outlet",
                    "unitOfMeasure": {"unit": "Wh"},
                }
            ],
        }

    def _event(self, ch: Charger, event_type: str, trigger: str, info: Json, **extra: Any) -> Call:
        payload: Json = {
            "eventType": event_type,
            "timestamp": iso_now(),
            "triggerReason": trigger,
            "seqNo": ch.seq_no,
            "transactionInfo": {"transactionId": ch.tx_id, **info},
            **extra,
        }
        ch.seq_no += 1
        return "TransactionEvent", payload

    def start(self, ch: Charger, now: float) -> Call:
        ch.meter.t_start = now
        ch.tx_id = str(uuid.uuid4())
        ch.seq_no = 0
        return self._event(
            ch,
            "Started",
            "Authorized",
            {"chargingState": "Charging"},
            evse={"id": 1, "connectorId": 1},
            idToken=self._id_token(ch),
            meterValue=[self._register(ch.meter.start_wh, "Transaction.Begin")],
        )

    def started(self, ch: Charger, reply: Any) -> bool:
        return isinstance(reply, dict)

    def bad_meter_values(self, ch: Charger) -> Call:
        """MeterValues on an EVSE id no station has (2^64-1): refused by the server."""
        return "MeterValues", {
            "evseId": BAD_ID,
            "meterValue": [
                {
                    "timestamp": iso_now(),
                    "sampledValue": [
                        {
                            "value": 1.0,
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"},
                        }
                    ],
                }
            ],
        }

    def _meter_value(self, ch: Charger, now: float, rng: random.Random) -> Json:
        r = ch.meter.read(now, rng)
        sample = "Sample.Periodic"
        values: list[Json] = [
            {
                "value": r.energy_wh,
                "context": sample,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "Wh"},
            },
            {
                "value": r.power_w,
                "context": sample,
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "W"},
            },
        ]
        for phase, amps in zip(("L1", "L2", "L3"), r.currents_a, strict=True):
            values.append(
                {
                    "value": amps,
                    "context": sample,
                    "measurand": "Current.Import",
                    "phase": phase,
                    "location": "Outlet",
                    "unitOfMeasure": {"unit": "A"},
                }
            )
        values.append(
            {
                "value": r.voltage_v,
                "context": sample,
                "measurand": "Voltage",
                "phase": "L1-N",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "V"},
            }
        )
        values.append(
            {
                "value": r.soc_percent,
                "context": sample,
                "measurand": "SoC",
                "location": "EV",
                "unitOfMeasure": {"unit": "Percent"},
            }
        )
        return {"timestamp": iso_now(), "sampledValue": values}

    def periodic(self, ch: Charger, now: float, rng: random.Random) -> Call:
        meter_value = self._meter_value(ch, now, rng)
        if self.mv_kind == "metervalues":
            return "MeterValues", {"evseId": 1, "meterValue": [meter_value]}
        return self._event(
            ch,
            "Updated",
            "MeterValuePeriodic",
            {"chargingState": "Charging"},
            meterValue=[meter_value],
        )

    def stop(self, ch: Charger, now: float) -> Call:
        return self._event(
            ch,
            "Ended",
            "StopAuthorized",
            {"chargingState": "EVConnected", "stoppedReason": "Local"},
            idToken=self._id_token(ch),
            meterValue=[self._register(ch.meter.energy_wh(now), "Transaction.End")],
        )

    STATIC_ANSWERS: Final[dict[str, Json]] = {
        "ChangeAvailability": {"status": "Accepted"},
        "ClearCache": {"status": "Accepted"},
        "TriggerMessage": {"status": "Rejected"},
        "Reset": {"status": "Rejected"},
        "RequestStartTransaction": {"status": "Rejected"},
        "RequestStopTransaction": {"status": "Rejected"},
        "DataTransfer": {"status": "UnknownVendorId"},
        "UnlockConnector": {"status": "UnknownConnector"},
        "SetChargingProfile": {"status": "Accepted"},
        "GetBaseReport": {"status": "NotSupported"},
    }

    def answer(self, action: str, payload: Any) -> Json | None:
        """The reply to a CALL from the server, or None for a NotImplemented CALLERROR."""
        if action in ("GetVariables", "SetVariables"):
            get = action == "GetVariables"
            items = payload.get("getVariableData" if get else "setVariableData")
            results = []
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    results.append(
                        {
                            "attributeStatus": "UnknownVariable" if get else "Accepted",
                            "component": item.get("component"),
                            "variable": item.get("variable"),
                        }
                    )
            return {"getVariableResult" if get else "setVariableResult": results}
        return self.STATIC_ANSWERS.get(action)


Dialect = V16 | V201


def session_warmup(spec: Spec, period: float) -> float:
    """How long the sessions run before the measured phase: one session, so that the
    chargers' sessions are spread over every step when it begins (none with --burst)."""
    if spec.scenario != "sessions" or spec.burst:
        return 0.0
    return (spec.meter_messages + 3) * period


# Kinds of calls timed apart in the sessions scenario.
SESSION_KINDS: Final = ("authorize", "start", "meter", "stop", "burst_authorize", "burst_start")


def make_dialect(version: str, mv_kind: str) -> Dialect:
    return V16() if version == "1.6" else V201(mv_kind)


# --------------------------------------------------------------------------------------------
# One charger's WebSocket: sans-I/O websockets protocol on an asyncio.Protocol, no tasks of its
# own. At most one CALL outstanding; replies are timed on arrival in data_received.
# --------------------------------------------------------------------------------------------


class Samples:
    """Latencies in seconds in a preallocated array; extra samples are only counted."""

    __slots__ = ("buf", "capacity", "n", "overflow")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.buf = array("d", bytes(8 * self.capacity))
        self.n = 0
        self.overflow = 0

    def add(self, value: float) -> None:
        if self.n < self.capacity:
            self.buf[self.n] = value
            self.n += 1
        else:
            self.overflow += 1

    def to_bytes(self) -> bytes:
        return self.buf[: self.n].tobytes()


class Tally:
    """Counters and latencies of the measured phase, shared by one worker's links."""

    __slots__ = (
        "answered",
        "by_kind",
        "call_errors",
        "errors_by_kind",
        "from_schedule",
        "late_replies",
        "lost",
        "rtt",
        "scheduled",
        "sent",
        "skipped",
        "statuses",
        "timeouts",
    )

    def __init__(self, capacity: int, kinds: Iterable[str] = ()) -> None:
        self.rtt = Samples(capacity)
        self.from_schedule = Samples(capacity)
        # Latency per kind of call (sessions: authorize, start, meter, stop, burst_*).
        self.by_kind = {kind: Samples(capacity) for kind in kinds}
        self.errors_by_kind: dict[str, int] = {}
        # "kind status" -> answers (idTagInfo / idTokenInfo statuses of the sessions scenario)
        self.statuses: dict[str, int] = {}
        self.sent = 0
        self.answered = 0
        self.call_errors = 0
        self.timeouts = 0
        self.lost = 0
        self.late_replies = 0
        self.scheduled = 0
        self.skipped = 0

    def status(self, kind: str, status: str) -> None:
        key = f"{kind} {status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def counters(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "call_errors": self.call_errors,
            "timeouts": self.timeouts,
            "lost": self.lost,
            "late_replies": self.late_replies,
            "scheduled": self.scheduled,
            "skipped_backpressure": self.skipped,
            "samples_overflow": self.rtt.overflow,
        }


class CallFailed(Exception):
    """A CALL got a CALLERROR, no reply in time, or lost its connection."""


class Link(asyncio.Protocol):
    """An OCPP-J client connection; `opened` resolves to None or an error text."""

    def __init__(
        self,
        uri: WebSocketURI,
        subprotocol: str,
        answer: Callable[[str, Any], Json | None],
        loop: asyncio.AbstractEventLoop,
        *,
        deflate: bool = False,
    ) -> None:
        self.ws = ClientProtocol(
            uri,
            subprotocols=[Subprotocol(subprotocol)],
            extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
            max_size=2**20,
        )
        self.subprotocol = subprotocol
        self.answer = answer
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[str | None] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.closed = False
        self.next_id = 0
        self.pending_id: str | None = None
        self.pending_kind = ""
        self.waiter: asyncio.Future[list[Any] | None] | None = None
        self.t_sent = 0.0
        self.t_sched = 0.0
        self.last_rtt = 0.0
        self.tally: Tally | None = None
        # Calls scheduled before this moment (a warm-up) are not counted; `call_tally` is
        # where the outstanding call counts (None: nowhere).
        self.count_from = 0.0
        self.call_tally: Tally | None = None
        self.fragments: list[bytes | bytearray | memoryview] | None = None
        self.server_calls = 0
        self.bad_frames = 0
        self.close_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if event.fin:
                        self._on_message(event.data, now)
                    else:
                        self.fragments = [event.data]
                elif opcode is Opcode.CONT and self.fragments is not None:
                    self.fragments.append(event.data)
                    if event.fin:
                        message, self.fragments = b"".join(self.fragments), None
                        self._on_message(message, now)
            elif isinstance(event, Response):
                self._on_handshake()
        self._flush()
        if self.ws.close_expected():
            self._arm_close_timer()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.close_timer is not None:
            self.close_timer.cancel()
        if not self.opened.done():
            self.opened.set_result(f"connection closed during handshake ({exc or 'EOF'})")
        if self.pending_id is not None:
            self.pending_id = None
            if self.call_tally is not None:
                self.call_tally.lost += 1
        self._resolve(None)
        if not self.gone.done():
            self.gone.set_result(None)

    # OCPP-J

    def send_call(self, action: str, payload: Payload, t_sched: float, kind: str = "") -> None:
        """Send a CALL now; the reply is timed and counted (under `kind` too) when it arrives."""
        if self.closed or self.ws.state is not State.OPEN:
            raise ConnectionError("connection is closed")
        if self.pending_id is not None:
            raise RuntimeError("a CALL is already outstanding on this connection")
        self.next_id += 1
        message_id = str(self.next_id)
        self.ws.send_text(orjson.dumps([2, message_id, action, payload]))
        self.pending_id = message_id
        self.pending_kind = kind
        self.t_sched = t_sched
        self.t_sent = time.monotonic()
        self.call_tally = self.tally if t_sched >= self.count_from else None
        if self.call_tally is not None:
            self.call_tally.sent += 1
        self._flush()

    def reply(self) -> asyncio.Future[list[Any] | None]:
        """A future for the reply to the outstanding CALL (None if the connection is lost)."""
        if self.waiter is None:
            self.waiter = self.loop.create_future()
            if self.pending_id is None:  # nothing outstanding (connection already lost)
                waiter = self.waiter
                self._resolve(None)
                return waiter
        return self.waiter

    def abandon(self) -> None:
        """Give up on the outstanding CALL (timed out); a late reply is only counted."""
        if self.pending_id is not None:
            self.pending_id = None
            if self.call_tally is not None:
                self.call_tally.timeouts += 1
        self._resolve(None)

    async def call(
        self, action: str, payload: Payload, limit_s: float, t_sched: float | None = None
    ) -> Any:
        """Send a CALL and wait up to `limit_s` for its CALLRESULT payload; else CallFailed."""
        try:
            self.send_call(action, payload, time.monotonic() if t_sched is None else t_sched)
        except ConnectionError as exc:
            raise CallFailed(f"{action}: connection closed") from exc
        try:
            message = await asyncio.wait_for(self.reply(), limit_s)
        except TimeoutError as exc:
            self.abandon()
            raise CallFailed(f"{action}: no reply within {limit_s:g} s") from exc
        if message is None:
            raise CallFailed(f"{action}: connection lost")
        if message[0] == 4:
            raise CallFailed(f"{action}: CALLERROR {message[2:4]}")
        return message[2]

    def close(self) -> None:
        """Start the closing handshake; the TCP connection is aborted after a grace period."""
        if self.closed or self.transport is None:
            return
        if self.ws.state is State.OPEN:
            self.ws.send_close(1000)
            self._flush()
        self._arm_close_timer()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # internals

    def _resolve(self, message: list[Any] | None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def _on_handshake(self) -> None:
        if self.opened.done():
            return
        if self.ws.handshake_exc is not None:
            self.opened.set_result(f"handshake failed: {self.ws.handshake_exc}")
        elif self.ws.subprotocol != self.subprotocol:
            self.opened.set_result(f"server chose subprotocol {self.ws.subprotocol!r}")
            self.close()
        else:
            self.opened.set_result(None)

    def _on_message(self, data: bytes | bytearray | memoryview, now: float) -> None:
        try:
            message = orjson.loads(data)
            kind = message[0]
            message_id = message[1]
        except (orjson.JSONDecodeError, TypeError, KeyError, IndexError):
            self.bad_frames += 1
            return
        if kind == 3 or kind == 4:
            if message_id != self.pending_id or self.pending_id is None:
                if self.tally is not None:
                    self.tally.late_replies += 1
                return
            tally = self.call_tally
            self.pending_id = None
            self.last_rtt = now - self.t_sent
            if tally is not None:
                call_kind = self.pending_kind
                if kind == 3:
                    tally.answered += 1
                    tally.rtt.add(now - self.t_sent)
                    tally.from_schedule.add(now - self.t_sched)
                    if call_kind:
                        tally.by_kind[call_kind].add(now - self.t_sent)
                else:
                    tally.call_errors += 1
                    if call_kind:
                        tally.errors_by_kind[call_kind] = tally.errors_by_kind.get(call_kind, 0) + 1
            self._resolve(message)
        elif kind == 2 and isinstance(message, list) and len(message) >= 4:
            self._answer(message)
        else:
            self.bad_frames += 1

    def _answer(self, message: list[Any]) -> None:
        self.server_calls += 1
        action = message[2]
        reply = self.answer(action, message[3]) if isinstance(action, str) else None
        if reply is None:
            frame = [4, message[1], "NotImplemented", f"{action} not supported by bench", {}]
        else:
            frame = [3, message[1], reply]
        if self.ws.state is State.OPEN:
            self.ws.send_text(orjson.dumps(frame))
            self._flush()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.ws.data_to_send()
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def _arm_close_timer(self) -> None:
        if self.close_timer is None and not self.closed:
            self.close_timer = self.loop.call_later(CLOSE_GRACE_S, self.abort)


# --------------------------------------------------------------------------------------------
# Worker: one process, one event loop, every `workers`-th charger.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """What every worker needs to know (sent to worker processes, so picklable)."""

    scenario: str
    version: str
    url: str
    chargers: int
    workers: int
    ramp_rate: float
    duration: float
    heartbeat_interval: float
    rate: float
    mv_kind: str
    call_timeout: float
    open_timeout: float
    id_prefix: str
    seed: int
    deflate: bool
    use_uvloop: bool
    meter_messages: int = 10
    shared_card: bool = False
    burst: bool = False
    bad_charger: bool = False
    bad_rate: float = 12.0

    @property
    def setup_bound(self) -> float:
        """Upper bound of one charger's bring-up: connect plus at most five CALLs."""
        return self.open_timeout + 5 * self.call_timeout + 5.0

    @property
    def ramp_bound(self) -> float:
        return self.chargers / self.ramp_rate + self.setup_bound + 10.0

    @property
    def teardown_bound(self) -> float:
        """Upper bound of the unmeasured stop of all transactions (paced at the ramp rate)."""
        return self.chargers / self.ramp_rate + 2 * self.call_timeout + 10.0


@dataclass(slots=True)
class SetupTally:
    attempted: int = 0
    connected: int = 0
    booted: int = 0
    ready: int = 0
    connect_failed: int = 0
    handshake_failed: int = 0
    boot_rejected: int = 0
    boot_errors: int = 0
    setup_errors: int = 0
    no_transaction: int = 0
    stuck: int = 0
    first_error: str = ""

    def note(self, error: str) -> None:
        if not self.first_error:
            self.first_error = error


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def spawn(coros: Iterable[Coroutine[Any, Any, None]]) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    return [loop.create_task(coro) for coro in coros]


async def finish(tasks: list[asyncio.Task[None]], limit_s: float) -> int:
    """Wait for tasks; cancel those not done after `limit_s` and return how many were."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, limit_s))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5.0)
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    return len(pending)


async def watch_lag(until: float, samples: Samples, tick: float = 0.01) -> None:
    """Record how late a short timer fires: the generator's own stalls, which inflate latency."""
    for _ in range(int((until - time.monotonic()) / tick) + 2):
        expected = time.monotonic() + tick
        if expected > until:
            return
        await asyncio.sleep(tick)
        samples.add(max(0.0, time.monotonic() - expected))


class Control:
    """The worker's end of the pipe to the parent; reads block a helper thread, not the loop.

    (Watching the pipe with loop.add_reader would make it non-blocking, and a large "done"
    message would then fail to send.)
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    def _receive(self, limit_s: float) -> tuple[Any, ...] | None:
        try:
            return self.conn.recv() if self.conn.poll(limit_s) else None
        except (EOFError, OSError):
            return ("eof",)

    async def expect(self, kind: str, limit_s: float, *others: str) -> tuple[Any, ...]:
        """The parent's next message, which must be of `kind` (or one of `others`)."""
        loop = asyncio.get_running_loop()
        message = await loop.run_in_executor(None, self._receive, limit_s)
        if message is None:
            raise BenchError(f"worker: no {kind!r} from the parent in {limit_s:.0f} s")
        if message[0] != kind and message[0] not in others:
            raise BenchError(f"worker: expected {kind!r} from the parent, got {message[0]!r}")
        return message


class Worker:
    def __init__(self, spec: Spec, index: int, conn: Connection) -> None:
        self.spec = spec
        self.index = index
        self.conn = conn
        self.dialect = make_dialect(spec.version, spec.mv_kind)
        self.rng = random.Random(spec.seed * 1009 + index)
        self.base = spec.url.rstrip("/")
        self.host, self.port = loopback_address(spec.url)
        self.mine = range(index, spec.chargers, spec.workers)
        self.setup = SetupTally()
        self.boot_rtt = Samples(len(self.mine))
        self.links: list[Link] = []
        self.ready: list[Charger] = []
        # --bad-charger: worker 0's extra charger, or why it could not be brought up.
        self.bad: Charger | None = None
        self.bad_error = ""

    async def run(self) -> None:
        spec = self.spec
        control = Control(self.conn)
        try:
            control.send("hello", os.getpid())
            _, t_ramp = await control.expect("ramp", 120.0)
            await self.ramp(t_ramp)
            # The connections live to the end: keep the cyclic GC from rescanning them.
            gc.collect()
            gc.freeze()
            control.send(
                "ready",
                {
                    **asdict(self.setup),
                    "open": sum(1 for link in self.links if not link.closed),
                    "boot_rtt": self.boot_rtt.to_bytes(),
                    "cpu_s": time.process_time(),
                },
            )
            wait = spec.ramp_bound + 60.0
            while True:  # one measured phase per "go" (two with --bad-charger)
                message = await control.expect("go", wait, "close")
                if message[0] == "close":
                    break
                _, t0, t1, period, bad, last = message
                control.send("done", await self.measure(t0, t1, period, bad=bad, last=last))
                wait = spec.duration + spec.teardown_bound + spec.call_timeout + 120.0
        finally:
            await self.close_all()
        control.send("closed")

    # ramp

    async def ramp(self, t_ramp: float) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        tasks = []
        for i in self.mine:
            await sleep_until(t_ramp + i / spec.ramp_rate)
            charger = Charger.make(i, spec.id_prefix, self.rng, spec.shared_card)
            tasks.append(loop.create_task(self.bring_up(charger)))
        if spec.bad_charger and self.index == 0:
            tasks.append(loop.create_task(self.bring_up_bad()))
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=spec.setup_bound)
            for task in stuck:
                task.cancel()
            if stuck:
                self.setup.stuck += len(stuck)
                await asyncio.wait(stuck, timeout=5.0)

    async def bring_up(self, ch: Charger) -> None:
        spec, s, dialect = self.spec, self.setup, self.dialect
        loop = asyncio.get_running_loop()
        s.attempted += 1
        link = Link(
            parse_uri(f"{self.base}/{ch.cp_id}"),
            dialect.subprotocol,
            dialect.answer,
            loop,
            deflate=spec.deflate,
        )
        try:
            async with asyncio.timeout(spec.open_timeout):
                await loop.create_connection(lambda: link, self.host, self.port)
                error = await link.opened
        except TimeoutError:
            if link.transport is None:
                s.connect_failed += 1
                s.note(f"connect: no connection within {spec.open_timeout:g} s")
            else:
                s.handshake_failed += 1
                s.note(f"handshake: no answer within {spec.open_timeout:g} s")
            link.abort()
            return
        except OSError as exc:
            s.connect_failed += 1
            s.note(f"connect: {exc}")
            return
        if error is not None:
            s.handshake_failed += 1
            s.note(error)
            link.abort()
            return
        s.connected += 1
        self.links.append(link)
        ch.link = link
        timeout = spec.call_timeout
        try:
            reply = await link.call(*dialect.boot(ch), timeout)
        except CallFailed as exc:
            s.boot_errors += 1
            s.note(str(exc))
            link.close()
            return
        self.boot_rtt.add(link.last_rtt)
        status = reply.get("status") if isinstance(reply, dict) else None
        if status != "Accepted":
            s.boot_rejected += 1
            s.note(f"BootNotification: status {status!r}")
            link.close()
            return
        s.booted += 1
        if spec.scenario == "connections":
            calls = dialect.idle_statuses(ch)
        elif spec.scenario == "sessions":
            calls = [*dialect.idle_statuses(ch), dialect.plug_in(ch)]
        else:
            calls = [dialect.plug_in(ch), dialect.authorize(ch)]
        for action, payload in calls:
            try:
                await link.call(action, payload, timeout)
            except CallFailed as exc:
                s.setup_errors += 1
                s.note(str(exc))
                if link.closed:
                    return
        if spec.scenario == "metervalues":
            try:
                reply = await link.call(*dialect.start(ch, time.monotonic()), timeout)
            except CallFailed as exc:
                s.setup_errors += 1
                s.no_transaction += 1
                s.note(str(exc))
                return
            if not dialect.started(ch, reply):
                s.no_transaction += 1
                s.note(f"transaction not started: reply {reply!r}"[:200])
                return
        s.ready += 1
        self.ready.append(ch)

    async def bring_up_bad(self) -> None:
        """--bad-charger: one more charger that connects and boots, and nothing else yet."""
        spec = self.spec
        loop = asyncio.get_running_loop()
        ch = Charger.make(0, f"{spec.id_prefix}BAD-", self.rng)
        link = Link(
            parse_uri(f"{self.base}/{ch.cp_id}"),
            self.dialect.subprotocol,
            self.dialect.answer,
            loop,
        )
        try:
            async with asyncio.timeout(spec.open_timeout):
                await loop.create_connection(lambda: link, self.host, self.port)
                error = await link.opened
            if error is None:
                # Kept out of self.links: not one of the chargers the figures are about.
                reply = await link.call(*self.dialect.boot(ch), spec.call_timeout)
                status = reply.get("status") if isinstance(reply, dict) else None
                if status != "Accepted":
                    error = f"BootNotification: status {status!r}"
        except (TimeoutError, OSError, CallFailed) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            self.bad_error = f"bad charger: {error}"
            link.abort()
            return
        ch.link = link
        self.bad = ch

    async def bad_loop(self, ch: Charger, t0: float, t1: float) -> Json:
        """--bad-charger: a refused MeterValues every 1/--bad-rate s (the next one goes as
        soon as the answer is in when that takes longer). Counted apart from the others."""
        spec = self.spec
        link = ch.link
        assert link is not None
        counts = {"sent": 0, "answered": 0, "call_errors": 0, "timeouts": 0}
        codes: dict[str, int] = {}
        step = 1.0 / spec.bad_rate
        t = t0
        for _ in range(int((t1 - t0) / step) + 2):
            if t >= t1 or link.closed:
                break
            await sleep_until(t)
            try:
                link.send_call(*self.dialect.bad_meter_values(ch), t_sched=t)
            except (ConnectionError, RuntimeError):
                break
            counts["sent"] += 1
            message = None
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(link.reply(), spec.call_timeout)
            if link.pending_id is not None:
                link.abandon()
            if message is None:
                counts["timeouts"] += 1
            elif message[0] == 3:
                counts["answered"] += 1
            else:
                counts["call_errors"] += 1
                code = str(message[2]) if len(message) > 2 else "?"
                codes[code] = codes.get(code, 0) + 1
            t = max(t + step, time.monotonic())
        return {**counts, "codes": codes}

    # measured phase

    async def measure(
        self, t0: float, t1: float, period: float, *, bad: bool = False, last: bool = True
    ) -> Json:
        """One measured phase; `bad`: with the bad charger; `last`: the teardown follows."""
        spec = self.spec
        ready = [ch for ch in self.ready if ch.link is not None and not ch.link.closed]
        if spec.scenario == "connections":
            per_charger = spec.duration / spec.heartbeat_interval + 2
        else:
            per_charger = spec.duration / period + 2 if period > 0 else 2
        kinds = SESSION_KINDS if spec.scenario == "sessions" else ()
        tally = Tally(int(len(ready) * per_charger) + 16, kinds)
        links = [ch.link for ch in ready if ch.link is not None]
        for link in links:
            link.tally = tally
            link.count_from = t0
        # Tasks are created before t0 (each sleeps until its first slot), so that creating
        # thousands of them does not stall the loop inside the measured phase.
        if spec.scenario == "connections":
            tasks = spawn(self.heartbeats(link, t0, t1, tally) for link in links)
        elif spec.scenario == "sessions":
            warm = session_warmup(spec, period)
            tasks = spawn(self.sessions(ch, t0 - warm, t0, t1, period, tally) for ch in ready)
        else:
            tasks = spawn(self.meter_values(ch, t0, t1, period, tally) for ch in ready)
        bad_task = None
        if bad and self.bad is not None:
            bad_task = asyncio.get_running_loop().create_task(self.bad_loop(self.bad, t0, t1))
        await sleep_until(t0)
        cpu0 = time.process_time()
        lag = Samples(int(spec.duration / 0.01) + 16)
        lag_watch = asyncio.get_running_loop().create_task(watch_lag(t1, lag))
        stuck = await finish(tasks, t1 - time.monotonic() + spec.call_timeout + 10.0)
        cpu_s = time.process_time() - cpu0
        bad_counts = None
        if bad_task is not None:
            await asyncio.wait([bad_task], timeout=spec.call_timeout + 5.0)
            if bad_task.done() and not bad_task.cancelled():
                bad_counts = bad_task.result()
            else:
                bad_task.cancel()
        await asyncio.wait([lag_watch], timeout=1.0)
        lag_watch.cancel()
        held = sum(1 for link in self.links if not link.closed)
        for link in links:
            link.tally = None
        stopped, stop_errors = 0, 0
        if not last:
            pass
        elif spec.scenario == "metervalues":
            stopped, stop_errors = await self.stop_transactions(ready)
        elif spec.scenario == "sessions":
            running = [ch for ch in ready if ch.in_transaction]
            stopped, stop_errors = await self.stop_transactions(running)
        return {
            "counters": tally.counters(),
            "by_kind": {kind: samples.to_bytes() for kind, samples in tally.by_kind.items()},
            "errors_by_kind": tally.errors_by_kind,
            "statuses": tally.statuses,
            "rtt": tally.rtt.to_bytes(),
            "from_schedule": tally.from_schedule.to_bytes(),
            "loop_lag": lag.to_bytes(),
            "active": len(ready),
            "held": held,
            "dropped": sum(1 for link in links if link.closed),
            "stuck": stuck,
            "cpu_s": cpu_s,
            "stopped": stopped,
            "stop_errors": stop_errors,
            "server_calls": sum(link.server_calls for link in self.links),
            "bad_frames": sum(link.bad_frames for link in self.links),
            "bad_charger": bad_counts,
            "bad_charger_error": self.bad_error,
        }

    async def heartbeats(self, link: Link, t0: float, t1: float, tally: Tally) -> None:
        """Closed loop per charger: a Heartbeat every interval from a random phase."""
        spec = self.spec
        interval = spec.heartbeat_interval
        t = t0 + self.rng.uniform(0.0, interval)
        for _ in range(int(spec.duration / interval) + 2):
            if t >= t1 or link.closed:
                return
            await sleep_until(t)
            tally.scheduled += 1
            with contextlib.suppress(CallFailed):
                await link.call("Heartbeat", HEARTBEAT, spec.call_timeout, t_sched=t)
            t += interval

    async def _settle(self, link: Link) -> None:
        """Wait for the outstanding CALL's reply, at most until its timeout; then give up on it."""
        remaining = link.t_sent + self.spec.call_timeout - time.monotonic()
        if link.pending_id is not None and remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.reply(), remaining)
        if link.pending_id is not None:
            link.abandon()

    async def meter_values(
        self, ch: Charger, t0: float, t1: float, period: float, tally: Tally
    ) -> None:
        """Open loop per charger: one slot every `period` from a random phase.

        A slot that finds the previous CALL still outstanding counts as skipped; the send then
        goes as soon as that reply arrives (or times out), and slots that came due meanwhile are
        skipped too and merged into that one send, so at most one CALL is outstanding.
        """
        link = ch.link
        assert link is not None
        t = t0 + self.rng.uniform(0.0, period)
        for _ in range(int((t1 - t0) / period) + 2):
            if t >= t1 or link.closed:
                break
            await sleep_until(t)
            tally.scheduled += 1
            merged = 0
            if link.pending_id is not None:
                tally.skipped += 1
                await self._settle(link)
                if link.closed:
                    break
                merged = min(int((time.monotonic() - t) / period), math.ceil((t1 - t) / period) - 1)
                merged = max(0, merged)
                tally.scheduled += merged
                tally.skipped += merged
            try:
                link.send_call(*self.dialect.periodic(ch, time.monotonic(), self.rng), t_sched=t)
            except ConnectionError:
                break
            t += (merged + 1) * period
        await self._settle(link)

    def session_call(self, ch: Charger, now: float) -> tuple[str, Payload, str]:
        """The CALL of the charger's current session step, and its kind."""
        d, last_meter = self.dialect, self.spec.meter_messages + 1
        if ch.step == 0:
            return (*d.authorize(ch), "authorize")
        if ch.step == 1:
            return (*d.start(ch, now), "start")
        if ch.step <= last_meter:
            return (*d.periodic(ch, now, self.rng), "meter")
        return (*d.stop(ch, now), "stop")

    async def answer_of(self, link: Link) -> list[Any] | None:
        """The reply to the CALL just sent (None on timeout, CALLERROR or a lost link)."""
        remaining = link.t_sent + self.spec.call_timeout - time.monotonic()
        message = None
        if link.pending_id is not None and remaining > 0:
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(link.reply(), remaining)
        if link.pending_id is not None:
            link.abandon()
        return message if message is not None and message[0] == 3 else None

    async def session_step(
        self,
        ch: Charger,
        link: Link,
        t_sched: float,
        tally: Tally,
        burst: bool = False,
        counted: bool = True,
    ) -> None:
        """Send the charger's next session CALL; read the answers that decide what follows.
        `burst`: the call belongs to the burst start (reported as burst_authorize/_start)."""
        action, payload, kind = self.session_call(ch, time.monotonic())
        first = burst and kind in ("authorize", "start")
        link.send_call(action, payload, t_sched=t_sched, kind=f"burst_{kind}" if first else kind)
        if kind == "meter":
            ch.step += 1
            return
        message = await self.answer_of(link)
        if message is not None and counted:
            tally.status(f"burst_{kind}" if first else kind, id_tag_status(message[2]))
        if kind == "authorize":
            ch.step = 1
        elif kind == "start":
            if message is not None and self.dialect.started(ch, message[2]):
                ch.in_transaction = True
                ch.step = 2
            else:
                ch.step = 0  # no transaction: the driver presents the card again
        else:
            ch.in_transaction = False
            ch.tx_id = None
            ch.step = 0

    async def sessions(
        self, ch: Charger, begin: float, t0: float, t1: float, period: float, tally: Tally
    ) -> None:
        """Open loop per charger: one session CALL per slot every `period` (Authorize, start,
        meter messages, stop, again); a slot that finds the previous CALL outstanding is
        skipped as in meter_values. The first slot falls anywhere in [begin, t0) (one session
        long: a warm-up, not counted), so that at t0 the chargers are at every point of their
        sessions. With --burst the first Authorize goes at t0 exactly and the start right
        after its answer."""
        link = ch.link
        assert link is not None
        burst = self.spec.burst
        t = t0 if burst else begin + self.rng.uniform(0.0, max(period, t0 - begin))
        if burst:
            await sleep_until(t0)
            for _ in range(2):  # Authorize, then the start at once
                tally.scheduled += 1
                try:
                    await self.session_step(ch, link, time.monotonic(), tally, burst=True)
                except ConnectionError:
                    return
                if ch.step != 1:
                    break
            t = t0 + self.rng.uniform(0.0, period) + period
        for _ in range(int((t1 - begin) / period) + 2):
            if t >= t1 or link.closed:
                break
            await sleep_until(t)
            counted = t >= t0
            tally.scheduled += counted
            merged = 0
            if link.pending_id is not None:
                tally.skipped += counted
                await self._settle(link)
                if link.closed:
                    break
                merged = min(int((time.monotonic() - t) / period), math.ceil((t1 - t) / period) - 1)
                merged = max(0, merged)
                tally.scheduled += merged * counted
                tally.skipped += merged * counted
            try:
                await self.session_step(ch, link, t, tally, counted=counted)
            except ConnectionError:
                break
            t += (merged + 1) * period
        await self._settle(link)

    async def stop_transactions(self, ready: list[Charger]) -> tuple[int, int]:
        """Stop every transaction, paced at the ramp rate; not measured."""
        spec = self.spec
        pace = spec.ramp_rate / spec.workers
        start = time.monotonic()
        outcome = {"ok": 0, "failed": 0}

        async def stop(ch: Charger, k: int) -> None:
            link = ch.link
            if link is None or link.closed:
                outcome["failed"] += 1
                return
            await sleep_until(start + k / pace)
            await self._settle(link)
            try:
                await link.call(*self.dialect.stop(ch, time.monotonic()), spec.call_timeout)
            except CallFailed:
                outcome["failed"] += 1
            else:
                outcome["ok"] += 1

        await finish(spawn(stop(ch, k) for k, ch in enumerate(ready)), spec.teardown_bound)
        return outcome["ok"], outcome["failed"]

    async def close_all(self) -> None:
        bad = [] if self.bad is None or self.bad.link is None else [self.bad.link]
        open_links = [link for link in (*self.links, *bad) if not link.closed]
        for link in open_links:
            link.close()
        if open_links:
            await asyncio.wait([link.gone for link in open_links], timeout=CLOSE_GRACE_S + 1.0)
        for link in open_links:
            link.abort()


def run_event_loop(main: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def raise_fd_limit() -> int:
    """Raise this process's soft open-file limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def worker_main(spec: Spec, index: int, conn: Connection) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    raise_fd_limit()
    try:
        run_event_loop(Worker(spec, index, conn).run(), spec.use_uvloop)
    except BenchError as exc:
        with contextlib.suppress(OSError):
            conn.send(("failed", str(exc)))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise


# --------------------------------------------------------------------------------------------
# Parent: the server under test, the worker processes, figures.
# --------------------------------------------------------------------------------------------

CONFIG_TEMPLATE: Final = """\
[database]
url = "{database_url}"

[ocpp]
host = "127.0.0.1"
port = {ocpp_port}
path = "/ocpp"
registration = "accept"
# Every bench charger is an unknown id that registers itself at its boot.
auto_register_per_hour = 0
auto_register_limit = 0
ping_interval = 0
heartbeat_interval = 300

[api]
port = {api_port}

[ocpi]
port = {ocpi_port}

[log]
level = "warning"
format = "json"
"""


def loopback_address(url: str) -> tuple[str, int]:
    """Host and port of a ws:// URL, refused unless the host is a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise BenchError(f"only ws:// URLs are supported, not {url!r}")
    host = parts.hostname or ""
    if host == "localhost":  # no name lookup: it could return a non-loopback address
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BenchError(f"refusing {host!r}: only loopback addresses (127.0.0.1, ::1) are allowed")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise BenchError(f"bad port in {url!r}") from exc
    return host, port


def free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 2):
        if proc is not None and (status := proc.poll()) is not None:
            raise BenchError(
                f"server exited with status {status} during start-up (log: {log})", EXIT_SERVER
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    where = f" (log: {log})" if log else ""
    raise BenchError(
        f"server not accepting on {host}:{port} after {timeout:g} s{where}", EXIT_SERVER
    )


class ServerProbe:
    """RSS, CPU time and open files of the server process and its children, via psutil."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def _processes(self) -> list[psutil.Process]:
        if self.pid is None:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _sum(self, read: Callable[[psutil.Process], float]) -> float | None:
        total, seen = 0.0, False
        for proc in self._processes():
            with contextlib.suppress(psutil.Error):
                total += read(proc)
                seen = True
        return total if seen else None

    def rss(self) -> float | None:
        return self._sum(lambda p: p.memory_info().rss)

    def cpu(self) -> float | None:
        return self._sum(lambda p: p.cpu_times().user + p.cpu_times().system)

    def fds(self) -> float | None:
        return self._sum(lambda p: p.num_fds())


@dataclass(frozen=True)
class SiteSpec:
    """--site: every charger linked to one load-managed site (SQLite), under `circuits`
    circuits with `sub` sub-circuits each, the site limited to `amps` per phase."""

    amps: float
    chargers: int
    id_prefix: str
    circuits: int = 10
    sub: int = 5

    def write(self, path: Path) -> None:
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        db = sqlite3.connect(path)
        try:
            with db:
                db.execute(
                    "INSERT INTO sites (id, max_current_a, phases, voltage_v, created_at, "
                    "updated_at) VALUES ('BENCH', ?, 3, 230.0, ?, ?)",
                    (self.amps, now, now),
                )
                per_circuit = self.amps / self.circuits * 1.5
                rows = []
                for c in range(self.circuits):
                    rows.append((f"C{c}", None, per_circuit))
                    for k in range(self.sub):
                        rows.append((f"C{c}.{k}", f"C{c}", per_circuit / self.sub * 1.5))
                db.executemany(
                    "INSERT INTO site_circuits (site_id, name, parent, max_current_a, phases, "
                    "created_at, updated_at) VALUES ('BENCH', ?, ?, ?, 3, ?, ?)",
                    [(*row, now, now) for row in rows],
                )
                db.executemany(
                    "INSERT INTO site_links (charge_point_id, site_id, circuit, max_current_a, "
                    "profile_mode, managed, created_at, updated_at) "
                    "VALUES (?, 'BENCH', ?, 32.0, 'auto', 1, ?, ?)",
                    [
                        (
                            f"{self.id_prefix}{i:06d}",
                            f"C{i % self.circuits}.{i // self.circuits % self.sub}",
                            now,
                            now,
                        )
                        for i in range(self.chargers)
                    ],
                )
        finally:
            db.close()


class SpawnedServer:
    """`csms serve --config FILE` in a fresh temp directory, on free loopback ports."""

    def __init__(
        self,
        command: list[str],
        start_timeout: float,
        keep_dir: bool,
        database: Path | None = None,
        tokens_csv: str | None = None,
        database_url: str | None = None,
        site: SiteSpec | None = None,
    ) -> None:
        self.command = command
        self.site = site
        self.start_timeout = start_timeout
        self.keep_dir = keep_dir
        self.database = database
        self.tokens_csv = tokens_csv
        self.dir = Path(tempfile.mkdtemp(prefix="csms-bench-"))
        # A PostgreSQL database, or the SQLite file in the server's directory.
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.dir / 'csms.db'}"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None

    def start(self) -> str:
        ocpp_port, api_port, ocpi_port = free_ports(3)
        config = self.dir / "csms.toml"
        config.write_text(
            CONFIG_TEMPLATE.format(
                database_url=self.database_url,
                ocpp_port=ocpp_port,
                api_port=api_port,
                ocpi_port=ocpi_port,
            )
        )
        # CSMS_* variables would override the config file: the server sees only ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        if self.database is not None:
            shutil.copyfile(self.database, self.dir / "csms.db")
        wanted = self.tokens_csv is not None or self.site is not None
        if wanted and self.database is None:
            # Only `csms db init` and `serve` create a database.
            self._cli(["db", "init", "--config", str(config)], env)
        if self.site is not None:
            self.site.write(self.dir / "csms.db")
        if self.tokens_csv is not None:
            cards = self.dir / "cards.csv"
            cards.write_text(self.tokens_csv)
            self._cli(["tokens", "import", str(cards), "--config", str(config)], env)
        with self.log_path.open("wb") as log:
            try:
                self.proc = subprocess.Popen(
                    [*self.command, "serve", "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.dir,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BenchError(f"cannot start {self.command[0]}: {exc}", EXIT_SERVER) from exc
        try:
            wait_for_port("127.0.0.1", ocpp_port, self.start_timeout, self.proc, str(self.log_path))
        except BenchError:
            self.keep_dir = True
            raise
        return f"ws://127.0.0.1:{ocpp_port}/ocpp"

    def _cli(self, argv: list[str], env: dict[str, str]) -> None:
        done = subprocess.run(
            [*self.command, *argv], env=env, cwd=self.dir, capture_output=True, text=True
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise BenchError(
                f"{shlex.join(argv[:2])} failed: {detail[-1] if detail else done.returncode}",
                EXIT_SERVER,
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc is not None:
            self.exit_status = proc.returncode
        if self.keep_dir:
            print(f"server directory kept: {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class WorkerPool:
    """Worker processes and their pipes; every wait is bounded."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.conns: list[Connection] = []

    def start(self) -> None:
        for index in range(self.spec.workers):
            parent_end, child_end = self.context.Pipe()
            proc = self.context.Process(
                target=worker_main,
                args=(self.spec, index, child_end),
                name=f"load-worker-{index}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            self.processes.append(proc)
            self.conns.append(parent_end)

    def broadcast(self, *message: Any) -> None:
        for conn in self.conns:
            conn.send(message)

    def collect(self, kind: str, timeout: float) -> list[Any]:
        """One `kind` message from every worker, in worker order; BenchError otherwise."""
        deadline = time.monotonic() + timeout
        got: dict[int, Any] = {}
        for _ in range(4 * len(self.conns) + 4):
            waiting = [c for i, c in enumerate(self.conns) if i not in got]
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:
                break
            for conn in wait_connections(waiting, timeout=remaining):
                assert isinstance(conn, Connection)
                index = self.conns.index(conn)
                try:
                    message = conn.recv()
                except (EOFError, OSError) as exc:
                    raise BenchError(f"load worker {index} exited unexpectedly") from exc
                if message[0] == "failed":
                    raise BenchError(f"load worker {index} failed: {message[1]}")
                if message[0] != kind:
                    raise BenchError(f"load worker {index}: expected {kind!r}, got {message[0]!r}")
                got[index] = message[1] if len(message) > 1 else None
        if len(got) < len(self.conns):
            raise BenchError(f"timed out after {timeout:.0f} s waiting for workers ({kind!r})")
        return [got[i] for i in range(len(self.conns))]

    def shutdown(self) -> None:
        for proc in self.processes:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()


def sleep_until_sync(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def latency_ms(chunks: Iterable[bytes]) -> Json:
    values = array("d")
    for chunk in chunks:
        values.frombytes(chunk)
    n = len(values)
    if n == 0:
        return {"count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000.0, 3)

    return {
        "count": n,
        "mean": round(sum(ordered) / n * 1000.0, 3),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p99.9": at(0.999),
        "max": round(ordered[-1] * 1000.0, 3),
    }


def delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def busy_fraction(before: Any, after: Any) -> float:
    """Share of all CPUs' time that was not idle between two psutil.cpu_times() readings."""

    def busy_total(times: Any) -> float:  # guest time is already counted in user time
        return float(sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0))

    total = busy_total(after) - busy_total(before)

    def idle(times: Any) -> float:
        return float(times.idle + getattr(times, "iowait", 0.0))

    return 0.0 if total <= 0 else max(0.0, 1.0 - (idle(after) - idle(before)) / total)


def postgres_database(stack: contextlib.ExitStack) -> tuple[str, ServerProbe]:
    """A fresh database on a PostgreSQL server started for this run (stopped when `stack`
    closes), durable as in production; its URL and a probe of the server's processes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.postgres import Cluster, create_database

    print("starting a throw-away PostgreSQL server (durable) ...", file=sys.stderr)
    try:
        cluster = Cluster.start(durable=True)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot start PostgreSQL: {exc}", EXIT_SERVER) from exc
    stack.callback(cluster.stop)
    url = create_database(cluster.url, "csms_bench")
    return url, ServerProbe(cluster.pid())


def run_benchmark(args: argparse.Namespace) -> tuple[Json, int]:
    spawned: SpawnedServer | None = None
    with contextlib.ExitStack() as stack:
        database_url: str | None = args.database_url
        db_probe = ServerProbe(None)
        if args.postgres:
            database_url, db_probe = postgres_database(stack)
        if args.url:
            host, port = loopback_address(args.url)
            wait_for_port(host, port, 3.0)
            url = args.url
            probe = ServerProbe(args.server_pid)
            if args.server_pid is not None and not psutil.pid_exists(args.server_pid):
                raise BenchError(f"no process with pid {args.server_pid}")
        else:
            command = shlex.split(args.csms_cmd) if args.csms_cmd else [default_csms()]
            spawned = SpawnedServer(
                command,
                args.start_timeout,
                args.keep_server_dir,
                database=args.database,
                tokens_csv=cards_csv(args) if args.cards == "known" else None,
                database_url=database_url,
                site=None
                if args.site is None
                else SiteSpec(args.site, args.chargers, args.id_prefix),
            )
            stack.callback(spawned.stop)
            print(f"starting server: {shlex.join(command)} serve ...", file=sys.stderr)
            url = spawned.start()
            probe = ServerProbe(spawned.pid)
        spec = Spec(
            scenario=args.scenario,
            version=args.ocpp_version,
            url=url,
            chargers=args.chargers,
            workers=args.workers,
            ramp_rate=args.ramp_rate,
            duration=args.duration,
            heartbeat_interval=args.heartbeat_interval,
            rate=args.rate,
            mv_kind=args.mv_kind,
            call_timeout=args.call_timeout,
            open_timeout=args.open_timeout,
            id_prefix=args.id_prefix,
            seed=args.seed,
            deflate=args.deflate,
            use_uvloop=not args.no_uvloop,
            meter_messages=args.meter_messages,
            shared_card=args.shared_card,
            burst=args.burst,
            bad_charger=args.bad_charger,
            bad_rate=args.bad_rate,
        )
        time.sleep(args.settle)
        rss_baseline = probe.rss()

        pool = WorkerPool(spec)
        stack.callback(pool.shutdown)
        pool.start()
        worker_pids = pool.collect("hello", 60.0)
        print(
            f"ramp: {spec.chargers} chargers ({spec.scenario}, OCPP {spec.version}) at "
            f"{spec.ramp_rate:g}/s on {url}, {spec.workers} worker(s)",
            file=sys.stderr,
        )
        cpu_ramp0 = probe.cpu()
        t_ramp = time.monotonic() + 0.2
        pool.broadcast("ramp", t_ramp)
        readies = pool.collect("ready", spec.ramp_bound + 10.0)
        ramp_s = time.monotonic() - t_ramp
        cpu_ramp1 = probe.cpu()
        rss_booted = probe.rss()
        fds_booted = probe.fds()
        generator_rss = sum(ServerProbe(pid).rss() or 0.0 for pid in worker_pids)
        active = sum(r["ready"] for r in readies)
        paced = spec.scenario in ("metervalues", "sessions")
        period = active / spec.rate if paced and active else 0.0

        # With --bad-charger: a phase without it, then one with it (the one reported in full).
        phases = [False, True] if spec.bad_charger else [False]
        compared: list[Json] = []
        for n, bad in enumerate(phases):
            last = n == len(phases) - 1
            t0 = time.monotonic() + 1.0 + session_warmup(spec, period)
            t1 = t0 + spec.duration
            print(
                f"measured phase: {spec.duration:g} s with {active} chargers"
                + (f" and the bad charger at {spec.bad_rate:g}/s" if bad else ""),
                file=sys.stderr,
            )
            pool.broadcast("go", t0, t1, period, bad, last)
            sleep_until_sync(t0)
            cpu0, machine0, db_cpu0 = probe.cpu(), psutil.cpu_times(), db_probe.cpu()
            sleep_until_sync(t1)
            cpu1, machine1, db_cpu1 = probe.cpu(), psutil.cpu_times(), db_probe.cpu()
            rss_end = probe.rss()
            dones = pool.collect("done", spec.call_timeout + spec.teardown_bound + 60.0)
            compared.append(phase_figures(dones, spec.duration, delta(cpu1, cpu0)))
        pool.broadcast("close")
        pool.collect("closed", CLOSE_GRACE_S + 30.0)

    setup = {
        key: sum(r[key] for r in readies) for key in asdict(SetupTally()) if key != "first_error"
    }
    first_error = next((r["first_error"] for r in readies if r["first_error"]), "")
    boot_failures = (
        setup["connect_failed"]
        + setup["handshake_failed"]
        + setup["boot_rejected"]
        + setup["boot_errors"]
    )
    counters = {key: sum(d["counters"][key] for d in dones) for key in dones[0]["counters"]}
    open_at_booted = sum(r["open"] for r in readies)
    rss_per_charger = (  # per open connection: equal to per booted charger when all boot
        (rss_booted - rss_baseline) / open_at_booted / 1024.0
        if rss_booted is not None and rss_baseline is not None and open_at_booted
        else None
    )
    server_cpu = delta(cpu1, cpu0)
    database_cpu = delta(db_cpu1, db_cpu0)
    generator_cpu = sum(d["cpu_s"] for d in dones)
    errors = counters["call_errors"] + counters["timeouts"] + counters["lost"]
    metervalues = spec.scenario in ("metervalues", "sessions")
    sessions = spec.scenario == "sessions"
    by_kind = (
        {
            kind: latency_ms(d["by_kind"][kind] for d in dones)
            for kind in SESSION_KINDS
            if not kind.startswith("burst") or spec.burst
        }
        if sessions
        else None
    )
    statuses: dict[str, int] = {}
    errors_by_kind: dict[str, int] = {}
    for d in dones:
        for key, n in d["statuses"].items():
            statuses[key] = statuses.get(key, 0) + n
        for key, n in d["errors_by_kind"].items():
            errors_by_kind[key] = errors_by_kind.get(key, 0) + n
    report: Json = {
        "scenario": spec.scenario,
        "ocpp_version": spec.version,
        "mv_kind": spec.mv_kind if metervalues and spec.version == "2.0.1" else None,
        "sessions": {
            "meter_messages": spec.meter_messages,
            "card": ("one shared card" if spec.shared_card else "a card per charger")
            + (", in the token table" if args.cards == "known" else ", unknown to the server"),
            "burst": spec.burst,
            "database": None if args.database is None else str(args.database),
            "latency_ms": by_kind,
            "statuses": dict(sorted(statuses.items())),
            "errors": errors_by_kind,
        }
        if sessions
        else None,
        "url": url,
        "chargers": spec.chargers,
        "workers": spec.workers,
        "ramp": {
            "rate_target_per_s": spec.ramp_rate,
            "seconds": round(ramp_s, 2),
            "connected": setup["connected"],
            "booted": setup["booted"],
            "ready": setup["ready"],
            "boot_failures": boot_failures,
            "connect_failed": setup["connect_failed"],
            "handshake_failed": setup["handshake_failed"],
            "boot_rejected": setup["boot_rejected"],
            "boot_errors": setup["boot_errors"],
            "setup_errors": setup["setup_errors"],
            "no_transaction": setup["no_transaction"],
            "stuck": setup["stuck"],
            "first_error": first_error,
            "boot_latency_ms": latency_ms(r["boot_rtt"] for r in readies),
            "server_cpu_s": rounded(delta(cpu_ramp1, cpu_ramp0), 2),
            "generator_cpu_s": round(sum(r["cpu_s"] for r in readies), 2),
        },
        "measured": {
            "duration_s": spec.duration,
            "active_chargers": active,
            "heartbeat_interval_s": None if metervalues else spec.heartbeat_interval,
            "rate_target_per_s": spec.rate if metervalues else None,
            "per_charger_period_s": round(period, 4) if period else None,
            **counters,
            "errors": errors,
            "answered_per_s": round(counters["answered"] / spec.duration, 1),
            "latency_ms": latency_ms(d["rtt"] for d in dones),
            "latency_from_schedule_ms": latency_ms(d["from_schedule"] for d in dones),
            "held": sum(d["held"] for d in dones),
            "dropped": sum(d["dropped"] for d in dones),
            "stuck": sum(d["stuck"] for d in dones),
            "server_calls": sum(d["server_calls"] for d in dones),
            "bad_frames": sum(d["bad_frames"] for d in dones),
        },
        "teardown": {
            "transactions_stopped": sum(d["stopped"] for d in dones),
            "stop_errors": sum(d["stop_errors"] for d in dones),
        },
        "server": {
            "pid": probe.pid,
            "rss_baseline_mb": rounded(None if rss_baseline is None else rss_baseline / 2**20),
            "rss_booted_mb": rounded(None if rss_booted is None else rss_booted / 2**20),
            "rss_end_mb": rounded(None if rss_end is None else rss_end / 2**20),
            "connections_open_booted": open_at_booted,
            "rss_per_charger_kb": rounded(rss_per_charger),
            "open_files_booted": None if fds_booted is None else int(fds_booted),
            "cpu_measured_s": rounded(server_cpu, 2),
            "cpu_measured_pct_one_core": rounded(
                None if server_cpu is None else 100.0 * server_cpu / spec.duration
            ),
            "exit_status": None if spawned is None else spawned.exit_status,
        },
        "database": {
            "kind": "sqlite" if database_url is None else "postgresql",
            # The PostgreSQL server's processes (SQLite works inside the server's process).
            "cpu_measured_s": rounded(database_cpu, 2),
            "cpu_measured_pct_one_core": rounded(
                None if database_cpu is None else 100.0 * database_cpu / spec.duration
            ),
        },
        "generator": {
            "cpu_measured_s": round(generator_cpu, 2),
            "cpu_measured_pct_one_core": round(100.0 * generator_cpu / spec.duration, 1),
            "loop_lag_ms": latency_ms(d["loop_lag"] for d in dones),
            "rss_booted_mb": round(generator_rss / 2**20, 1),
        },
        "machine": {
            "cpus": psutil.cpu_count(),
            "busy_pct_all_cpus": round(100.0 * busy_fraction(machine0, machine1), 1),
        },
    }
    report["bad_charger"] = bad_charger_report(spec, compared, dones) if spec.bad_charger else None
    status = 0
    if active == 0:
        status = EXIT_FAILED
    return report, status


def phase_figures(dones: list[Json], duration: float, server_cpu: float | None) -> Json:
    """The well-behaved chargers' figures of one measured phase."""
    answered = sum(d["counters"]["answered"] for d in dones)
    errors = sum(d["counters"][key] for d in dones for key in ("call_errors", "timeouts", "lost"))
    return {
        "answered_per_s": round(answered / duration, 1),
        "errors": errors,
        "skipped_backpressure": sum(d["counters"]["skipped_backpressure"] for d in dones),
        "latency_ms": latency_ms(d["rtt"] for d in dones),
        "server_cpu_s": rounded(server_cpu, 2),
    }


def change_pct(after: float | None, before: float | None) -> float | None:
    if after is None or before is None or before == 0:
        return None
    return round(100.0 * (after - before) / before, 1)


def bad_charger_report(spec: Spec, compared: list[Json], dones: list[Json]) -> Json:
    without, with_bad = compared
    sent: dict[str, int] = {}
    codes: dict[str, int] = {}
    for d in dones:
        counts = d.get("bad_charger") or {}
        for key, value in counts.items():
            if key == "codes":
                for code, n in value.items():
                    codes[code] = codes.get(code, 0) + n
            else:
                sent[key] = sent.get(key, 0) + value
    lat0, lat1 = without["latency_ms"], with_bad["latency_ms"]
    return {
        "rate_target_per_s": spec.bad_rate,
        "message": "MeterValues with connectorId 2^64-1"
        if spec.version == "1.6"
        else "MeterValues with evseId 2^64-1",
        "error": next((d["bad_charger_error"] for d in dones if d["bad_charger_error"]), ""),
        **{key: sent.get(key, 0) for key in ("sent", "answered", "call_errors", "timeouts")},
        "codes": codes,
        "without": without,
        "with": with_bad,
        "change_pct": {
            "throughput": change_pct(with_bad["answered_per_s"], without["answered_per_s"]),
            "p50": change_pct(lat1.get("p50"), lat0.get("p50")),
            "p99": change_pct(lat1.get("p99"), lat0.get("p99")),
        },
    }


def cards_csv(args: argparse.Namespace) -> str:
    """The token table rows for --cards known (csms tokens import): the shared card may
    hold any number of transactions at once, a charger's own card one."""
    if args.shared_card:
        return f"uid,status,max_concurrent\n{SHARED_CARD},Accepted,unlimited\n"
    rows = [f"{card_uid(i, False)},Accepted" for i in range(args.chargers)]
    return "uid,status\n" + "\n".join(rows) + "\n"


def default_csms() -> str:
    candidate = Path(sys.executable).parent / "csms"
    return str(candidate) if candidate.exists() else "csms"


def fmt_latency(lat: Json) -> str:
    if not lat.get("count"):
        return "no samples"
    return (
        f"p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  "
        f"p99.9 {lat['p99.9']:.2f}  max {lat['max']:.2f} ms  (n={lat['count']})"
    )


def fmt_opt(value: float | None, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def human_report(r: Json) -> list[str]:
    ramp, m, srv, gen = r["ramp"], r["measured"], r["server"], r["generator"]
    version = r["ocpp_version"] + (f" ({r['mv_kind']})" if r["mv_kind"] else "")
    lines = [
        f"scenario {r['scenario']}  OCPP {version}  chargers {r['chargers']}  "
        f"workers {r['workers']}  {r['url']}",
        f"ramp: {ramp['connected']} connected, {ramp['booted']} booted, {ramp['ready']} ready "
        f"in {ramp['seconds']:.1f} s (target {ramp['rate_target_per_s']:g}/s); boot failures "
        f"{ramp['boot_failures']} (connect {ramp['connect_failed']}, handshake "
        f"{ramp['handshake_failed']}, rejected {ramp['boot_rejected']}, errors "
        f"{ramp['boot_errors']}); setup errors {ramp['setup_errors']}",
        f"  boot latency: {fmt_latency(ramp['boot_latency_ms'])}",
    ]
    if ramp["first_error"]:
        lines.append(f"  first error: {ramp['first_error']}")
    lines.append(
        f"server memory: baseline {fmt_opt(srv['rss_baseline_mb'], 'MB')}, booted "
        f"{fmt_opt(srv['rss_booted_mb'], 'MB')} with {srv['connections_open_booted']} open "
        f"-> {fmt_opt(srv['rss_per_charger_kb'], 'KB')} per charger; end "
        f"{fmt_opt(srv['rss_end_mb'], 'MB')}; open files {srv['open_files_booted']}"
    )
    lines.append(
        f"server CPU: ramp {fmt_opt(ramp['server_cpu_s'], 's', 2)}, measured "
        f"{fmt_opt(srv['cpu_measured_s'], 's', 2)} = "
        f"{fmt_opt(srv['cpu_measured_pct_one_core'], '% of one core')}"
    )
    db = r["database"]
    if db["cpu_measured_s"] is not None:
        lines.append(
            f"{db['kind']} server CPU: measured {fmt_opt(db['cpu_measured_s'], 's', 2)} = "
            f"{fmt_opt(db['cpu_measured_pct_one_core'], '% of one core')}"
        )
    elif db["kind"] != "sqlite":
        lines.append(f"database: {db['kind']} (its CPU not measured)")
    what = "heartbeats" if r["scenario"] == "connections" else "calls"
    lines.append(
        f"measured {m['duration_s']:g} s, {m['active_chargers']} chargers: {what} sent "
        f"{m['sent']}, answered {m['answered']} ({m['answered_per_s']:.1f}/s), errors "
        f"{m['errors']} (CALLERROR {m['call_errors']}, timeout {m['timeouts']}, "
        f"lost {m['lost']}), late replies {m['late_replies']}"
    )
    if r["scenario"] in ("metervalues", "sessions"):
        lines.append(
            f"  target {m['rate_target_per_s']:g}/s "
            f"({fmt_opt(m['per_charger_period_s'], 's', 3)} per charger): "
            f"scheduled {m['scheduled']}, skipped (backpressure) {m['skipped_backpressure']}"
        )
    lines.append(f"  latency: {fmt_latency(m['latency_ms'])}")
    if r["scenario"] in ("metervalues", "sessions"):
        lines.append(f"  from schedule: {fmt_latency(m['latency_from_schedule_ms'])}")
    sessions = r["sessions"]
    if sessions is not None:
        lines.append(
            f"  sessions: {sessions['meter_messages']} meter messages each, "
            f"{sessions['card']}{', burst start' if sessions['burst'] else ''}"
            + (f", database {sessions['database']}" if sessions["database"] else "")
        )
        for kind, lat in sessions["latency_ms"].items():
            errors = sessions["errors"].get(kind, 0)
            lines.append(
                f"    {kind:<15} {fmt_latency(lat)}" + (f"  CALLERROR {errors}" if errors else "")
            )
        answers = ", ".join(f"{k} {n}" for k, n in sessions["statuses"].items())
        lines.append(f"    answers: {answers or 'none'}")
    lines.append(
        f"chargers held connected: {m['held']} of {r['chargers']} (dropped during phase "
        f"{m['dropped']}); server-initiated CALLs answered {m['server_calls']}"
    )
    if r["scenario"] in ("metervalues", "sessions"):
        t = r["teardown"]
        lines.append(
            f"teardown: {t['transactions_stopped']} transactions stopped, {t['stop_errors']} failed"
        )
    lines.append(
        f"generator CPU: {gen['cpu_measured_s']:.2f} s = {gen['cpu_measured_pct_one_core']:.1f}% "
        f"of one core; machine busy {r['machine']['busy_pct_all_cpus']:.1f}% of "
        f"{r['machine']['cpus']} CPUs"
    )
    bad = r.get("bad_charger")
    if bad is not None:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(bad["codes"].items()))
        lines.append(
            f"bad charger ({bad['message']}, target {bad['rate_target_per_s']:g}/s): sent "
            f"{bad['sent']}, answered {bad['answered']}, CALLERROR {bad['call_errors']}"
            + (f" ({codes})" if codes else "")
            + f", timeouts {bad['timeouts']}"
        )
        if bad["error"]:
            lines.append(f"  {bad['error']}")
        for name in ("without", "with"):
            phase = bad[name]
            lines.append(
                f"  {name:<7} {phase['answered_per_s']:.1f}/s answered, errors "
                f"{phase['errors']}, skipped {phase['skipped_backpressure']}; "
                f"{fmt_latency(phase['latency_ms'])}"
            )
        change = bad["change_pct"]

        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{value:+.1f} %"

        lines.append(
            f"  change: throughput {pct(change['throughput'])}, p50 {pct(change['p50'])}, "
            f"p99 {pct(change['p99'])}"
        )
    lag = gen["loop_lag_ms"]
    if lag.get("count"):
        lines.append(
            f"  generator event-loop lag (10 ms timer): p50 {lag['p50']:.2f}  p99 "
            f"{lag['p99']:.2f}  max {lag['max']:.2f} ms; generator RSS "
            f"{gen['rss_booted_mb']:.1f} MB"
        )
    return lines


# --------------------------------------------------------------------------------------------
# --self-check: the generated payloads against the OCPP JSON schemas shipped with `ocpp`.
# --------------------------------------------------------------------------------------------


def sample_calls(dialect: Dialect, rng: random.Random) -> list[Call]:
    """Every CALL a charger of this dialect sends, in order, as the scenarios send them."""
    ch = Charger.make(1, "BENCH-", rng)
    now = time.monotonic()
    calls: list[Call] = [dialect.boot(ch), *dialect.idle_statuses(ch), ("Heartbeat", HEARTBEAT)]
    calls += [dialect.plug_in(ch), dialect.authorize(ch), dialect.start(ch, now)]
    if isinstance(dialect, V16):
        assert dialect.started(ch, {"transactionId": 42, "idTagInfo": {"status": "Invalid"}})
    calls += [dialect.periodic(ch, now + 60.0, rng), dialect.periodic(ch, now + 120.0, rng)]
    calls.append(dialect.stop(ch, now + 180.0))
    return calls


def sample_server_calls(dialect: Dialect) -> list[tuple[str, Json]]:
    """CALLs a server may send, with requests, whose answers the self-check validates."""
    static: list[tuple[str, Json]] = [(action, {}) for action in dialect.STATIC_ANSWERS]
    if isinstance(dialect, V16):
        return [("GetConfiguration", {"key": ["HeartbeatInterval"]}), *static]
    ref = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    return [
        ("GetVariables", {"getVariableData": [ref]}),
        ("SetVariables", {"setVariableData": [{"attributeValue": "300", **ref}]}),
        *static,
    ]


def self_check() -> int:
    import jsonschema

    found = importlib.util.find_spec("ocpp")
    if found is None or found.origin is None:
        print("error: the ocpp package (which ships the schemas) is not installed")
        return EXIT_FAILED
    root = Path(found.origin).parent
    rng = random.Random(7)
    checked, failures = 0, 0
    # jsonschema checks "date-time" only with an optional package; this check needs none.
    formats = jsonschema.FormatChecker()

    def is_date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parsed = datetime.fromisoformat(value)
        return "T" in value and parsed.tzinfo is not None

    formats.checks("date-time", raises=ValueError)(is_date_time)

    def check(folder: str, name: str, payload: Payload) -> None:
        nonlocal checked, failures
        wire = orjson.loads(orjson.dumps([2, "1", name, payload]))[3]
        schema = orjson.loads((root / folder / "schemas" / f"{name}.json").read_bytes())
        validator_class = jsonschema.validators.validator_for(schema)
        validator = validator_class(schema, format_checker=formats)
        errors = sorted(validator.iter_errors(wire), key=str)
        checked += 1
        if errors:
            failures += 1
            for error in errors:
                where = "/".join(str(p) for p in error.absolute_path)
                print(f"FAIL {folder} {name} at {where or '(root)'}: {error.message}")

    for dialect in (V16(), V201("transactionevent"), V201("metervalues")):
        folder, suffix = ("v16", "") if isinstance(dialect, V16) else ("v201", "Request")
        for action, payload in sample_calls(dialect, rng):
            check(folder, action + suffix, payload)
        for action, request in sample_server_calls(dialect):
            if request:  # the static answers are checked without a request
                check(folder, action + suffix, request)
            answer = dialect.answer(action, request)
            assert answer is not None, action
            check(folder, action + "Response", answer)
    v201 = V201()
    ch = Charger.make(2, "BENCH-", rng)
    seq = [v201.start(ch, 0.0)[1], v201.periodic(ch, 1.0, rng)[1], v201.stop(ch, 2.0)[1]]
    if [p["seqNo"] for p in seq if isinstance(p, dict)] != [0, 1, 2]:
        failures += 1
        print("FAIL v201 TransactionEvent seqNo is not 0, 1, 2")
    print(f"self-check: {checked} payloads validated against the ocpp schemas, {failures} failed")
    return EXIT_FAILED if failures else 0


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/load.py", description="OCPP-J load generator for the CSMS (loopback only)."
    )
    add = parser.add_argument
    add("scenario", nargs="?", choices=["connections", "metervalues", "sessions"])
    add("--self-check", action="store_true", help="validate the payloads against the schemas")
    add("--version", dest="ocpp_version", choices=["1.6", "2.0.1"], default="1.6")
    add("--chargers", type=int, help="default 10000 (connections), 1000 (the others)")
    add("--duration", type=float, help="measured seconds, default 60 (connections), 30")
    add("--ramp-rate", type=float, default=500.0, help="connections/s (%(default)g)")
    add("--heartbeat-interval", type=float, default=30.0, help="seconds (%(default)g)")
    add("--rate", type=float, default=2000.0, help="total calls/s (%(default)g)")
    add(
        "--meter-messages",
        type=int,
        default=10,
        help="sessions: meter messages per session (%(default)s)",
    )
    add("--shared-card", action="store_true", help="sessions: every charger uses one card")
    add(
        "--cards",
        choices=["unknown", "known"],
        default="unknown",
        help="sessions: cards unknown to the server (answered Invalid) or imported into its "
        "token table first (a shared card with --max-concurrent unlimited) (%(default)s)",
    )
    add("--burst", action="store_true", help="sessions: every charger starts at t0 at once")
    add(
        "--bad-charger",
        action="store_true",
        help="metervalues: measure without, then with one more charger sending MeterValues "
        "the server refuses (connectorId/evseId 2^64-1), and print the change",
    )
    add("--bad-rate", type=float, default=12.0, help="--bad-charger: calls/s (%(default)g)")
    add(
        "--database",
        type=Path,
        help="spawned server: start from a copy of this database (bench/seed_history.py)",
    )
    add(
        "--postgres",
        action="store_true",
        help="spawned server: on a fresh database of a throw-away PostgreSQL server started "
        "for the run (durable), whose CPU is reported too",
    )
    add(
        "--database-url",
        help="spawned server: this PostgreSQL database (postgresql+asyncpg://...; empty or csms)",
    )
    add(
        "--mv-kind",
        choices=["transactionevent", "metervalues"],
        default="transactionevent",
        help="2.0.1 periodic message: TransactionEvent(Updated) or MeterValues (%(default)s)",
    )
    add(
        "--site",
        type=float,
        metavar="AMPS",
        help="spawned SQLite server: link every charger to one load-managed site of AMPS "
        "per phase (10 circuits of 5 sub-circuits): the load manager shares it and sends "
        "each session its TxProfile",
    )
    add("--workers", type=int, default=1, help="generator processes (%(default)s)")
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--spawn", action="store_true", help="start the server (the default)")
    server.add_argument("--url", help="use a running server, e.g. ws://127.0.0.1:9000/ocpp")
    add("--server-pid", type=int, help="with --url: its pid, for RSS and CPU figures")
    add("--csms-cmd", help="server command, run as CMD serve --config FILE (csms beside python)")
    add("--keep-server-dir", action="store_true", help="keep the config, database and log")
    add("--start-timeout", type=float, default=30.0, help="seconds (%(default)g)")
    add(
        "--settle",
        type=float,
        default=1.0,
        help="idle seconds before the baseline RSS (%(default)g)",
    )
    add("--call-timeout", type=float, default=10.0, help="seconds per CALL (%(default)g)")
    add("--open-timeout", type=float, default=10.0, help="seconds per connection (%(default)g)")
    add("--id-prefix", default="BENCH-", help="charge point ids are PREFIX000001... (%(default)s)")
    add("--seed", type=int, default=1, help="random phases and meter values (%(default)s)")
    add("--deflate", action="store_true", help="offer permessage-deflate")
    add("--no-uvloop", action="store_true", help="use the asyncio event loop")
    add("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.self_check:
        return args
    if args.scenario is None:
        parser.error("a scenario is required (connections, metervalues or sessions)")
    if args.bad_charger and args.scenario != "metervalues":
        parser.error("--bad-charger goes with the metervalues scenario")
    if args.url and (args.cards == "known" or args.database):
        parser.error("--cards known and --database need a spawned server (not --url)")
    if args.site is not None and (args.url or args.postgres or args.database_url):
        parser.error("--site needs a spawned SQLite server")
    if args.site is not None and not 6 <= args.site <= 1_000_000:
        parser.error("--site must be within [6, 1000000] A")
    if args.url and (args.postgres or args.database_url):
        parser.error("--postgres and --database-url need a spawned server (not --url)")
    if sum(map(bool, (args.postgres, args.database_url, args.database))) > 1:
        parser.error("--postgres, --database-url and --database exclude each other")
    if args.database_url and not args.database_url.startswith("postgresql+asyncpg://"):
        parser.error("--database-url must be postgresql+asyncpg://... (SQLite is the default)")
    if args.database is not None and not args.database.is_file():
        parser.error(f"--database: no file {args.database}")
    connections = args.scenario == "connections"
    if args.chargers is None:
        args.chargers = 10_000 if connections else 1_000
    if args.duration is None:
        args.duration = 60.0 if connections else 30.0
    limits = {
        "--chargers": (args.chargers, 1, 100_000),
        "--workers": (args.workers, 1, 64),
        "--duration": (args.duration, 0.1, 3_600),
        "--ramp-rate": (args.ramp_rate, 0.1, 100_000),
        "--heartbeat-interval": (args.heartbeat_interval, 0.01, 3_600),
        "--rate": (args.rate, 0.01, 1_000_000),
        "--call-timeout": (args.call_timeout, 0.1, 600),
        "--open-timeout": (args.open_timeout, 0.1, 600),
        "--start-timeout": (args.start_timeout, 0.1, 600),
        "--settle": (args.settle, 0, 60),
        "--meter-messages": (args.meter_messages, 0, 10_000),
        "--bad-rate": (args.bad_rate, 0.1, 10_000),
    }
    for name, (value, low, high) in limits.items():
        if not low <= value <= high:
            parser.error(f"{name} must be within [{low}, {high}]")
    if args.server_pid is not None and not args.url:
        parser.error("--server-pid goes with --url")
    if not args.id_prefix.replace("-", "").replace("_", "").replace(".", "").isalnum():
        parser.error("--id-prefix may hold only letters, digits, '-', '_' and '.'")
    per_worker = math.ceil(args.chargers / args.workers)
    fd_limit = raise_fd_limit()
    if per_worker + 64 > fd_limit:
        parser.error(
            f"{per_worker} connections per worker exceed the open-file limit {fd_limit}; "
            f"use --workers {math.ceil(args.chargers / (fd_limit - 64))} or more"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.self_check:
        return self_check()
    try:
        report, status = run_benchmark(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    lines = human_report(report)
    if args.json:
        print("\n".join(lines), file=sys.stderr)
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        print("\n".join(lines))
    if status:
        print("error: no charger got ready; see 'first error' above", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
