"""The OpenADR VEN (csms.openadr) against a real openleadr VTN on 127.0.0.1, the reading of
events without one, and the [openadr] settings.

The VEN's cap sink here records calls and applies the prefix rule of `CapSink.cancel_cap`;
the whole chain with the real site service is the end-to-end tests' (tests/e2e)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openleadr import OpenADRServer
from openleadr.service import VTNService
from openleadr.utils import certificate_fingerprint, increment_event_modification_number
from structlog.testing import capture_logs

from csms.config import ConfigError, OpenAdrConfig, build_config, load_config
from csms.openadr import SOURCE, CapWindow, OpenAdrVen, event_reference, plan_event
from tests.e2e.certs import Authority, pem, write_pair

# openleadr's VTN stores itself in its aiohttp app under a string key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")

VTN_ID = "VTN-1"
VEN_ID = "ven-1"
PREFIX = "/OpenADR2/Simple/2.0b"


@dataclass
class Cap:
    site: str
    limit_w: float
    start: datetime
    end: datetime
    source: str
    reference: str
    requested_by: str


@dataclass
class RecordingSink:
    """A CapSink that keeps the caps it was given and cancels by reference prefix."""

    active: dict[int, Cap] = field(default_factory=dict)
    added: list[Cap] = field(default_factory=list)
    cancels: list[tuple[str, str, str, str]] = field(default_factory=list)

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
    ) -> int:
        cap = Cap(site, limit_w, start, end, source, reference, requested_by)
        self.added.append(cap)
        self.active[len(self.added)] = cap
        return len(self.added)

    async def cancel_cap(
        self, site: str, *, source: str, reference: str, requested_by: str
    ) -> bool:
        self.cancels.append((site, source, reference, requested_by))
        ended = [
            key
            for key, cap in self.active.items()
            if cap.site == site and cap.source == source and cap.reference.startswith(reference)
        ]
        for key in ended:
            del self.active[key]
        return bool(ended)


class Vtn:
    """A real openleadr VTN that registers one VEN as VEN_ID and records its opt answers."""

    def __init__(self, port: int = 0, **tls: Any) -> None:
        self.server = OpenADRServer(
            vtn_id=VTN_ID,
            http_host="127.0.0.1",
            http_port=port,
            requested_poll_freq=timedelta(seconds=1),
            show_fingerprint=False,
            **tls,
        )
        self.server.add_handler("on_create_party_registration", self._register)
        self.opts: dict[str, str] = {}
        self.port = port
        self.scheme = "https" if tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{PREFIX}"

    async def start(self) -> None:
        await self.server.run()
        self.port = int(self.server.app_runner.addresses[0][1])

    async def stop(self) -> None:
        await self.server.stop()

    async def _register(self, info: dict[str, Any]) -> tuple[str, str]:
        return VEN_ID, "reg-1"

    def _opted(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts[event_id] = opt_type

    def add(
        self, signal_name: str, signal_type: str, intervals: list[dict[str, Any]], **kw: Any
    ) -> str:
        event_id = self.server.add_event(
            ven_id=VEN_ID,
            signal_name=signal_name,
            signal_type=signal_type,
            intervals=intervals,
            callback=self._opted,
            **kw,
        )
        return str(event_id)

    def event(self, event_id: str) -> Any:
        return next(
            e for e in self.server.events[VEN_ID] if e.event_descriptor.event_id == event_id
        )

    def modified(self, event_id: str) -> None:
        increment_event_modification_number(self.event(event_id))
        self.server.events_updated[VEN_ID] = True


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    server = Vtn()
    await server.start()
    yield server
    await server.stop()


def settings(url: str, **kw: Any) -> OpenAdrConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "vtn_url": url,
        "ven_name": "csms-test",
        "poll_interval": 1.0,
        "site": "depot",
    }
    values.update(kw)
    return OpenAdrConfig(**values)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[OpenAdrConfig], Any]]:
    """Starts VENs (with a fresh RecordingSink each) and stops them after the test."""
    vens: list[OpenAdrVen] = []

    async def start(
        cfg: OpenAdrConfig, sink: RecordingSink | None = None
    ) -> tuple[OpenAdrVen, RecordingSink]:
        sink = RecordingSink() if sink is None else sink
        ven = OpenAdrVen(cfg, sink)
        vens.append(ven)
        await ven.start()
        return ven, sink

    yield start
    for ven in vens:
        await ven.stop()


async def until(check: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


# ---------------------------------------------------------------------------------------
# Against a real VTN


async def test_a_setpoint_event_caps_the_site_and_its_cancellation_ends_the_cap(
    vtn: Vtn, running: Any
) -> None:
    ven, sink = await running(settings(vtn.url))
    await until(lambda: ven.registered)
    assert ven.ven_id == VEN_ID and ven.vtn_id == VTN_ID
    start = at(30)
    with capture_logs() as logs:
        event_id = vtn.add(
            "LOAD_CONTROL",
            "x-loadControlSetpoint",
            [{"dtstart": start, "duration": timedelta(minutes=15), "signal_payload": 11.0}],
        )
        await until(lambda: bool(sink.added) and event_id in vtn.opts)
    assert vtn.opts[event_id] == "optIn"
    (cap,) = sink.added
    assert cap == Cap(
        site="depot",
        limit_w=11000.0,
        start=start,
        end=start + timedelta(minutes=15),
        source=SOURCE,
        reference=f"{event_id}:0:0",
        requested_by=f"openadr:{VTN_ID}",
    )
    added = [e for e in logs if e["event"] == "openadr_cap_added"]
    assert [(e["event_id"], e["site"], e["limit_kw"], e["start"], e["end"]) for e in added] == [
        (event_id, "depot", 11.0, start.isoformat(), (start + timedelta(minutes=15)).isoformat())
    ]
    assert next(e["event"] for e in logs if e.get("event_id") == event_id) == (
        "openadr_event_received"
    )

    with capture_logs() as logs:
        vtn.server.cancel_event(VEN_ID, event_id)
        await until(lambda: not sink.active)
    assert sink.cancels[-1] == ("depot", SOURCE, f"{event_id}:", f"openadr:{VTN_ID}")
    cancelled = [e for e in logs if e["event"] == "openadr_event_cancelled"]
    assert [(e["event_id"], e["site"], e["caps_cancelled"]) for e in cancelled] == [
        (event_id, "depot", True)
    ]
    # The VEN acknowledged the cancellation: the VTN dropped the event.
    await until(lambda: not vtn.server.events[VEN_ID])
    assert len(sink.added) == 1


async def test_simple_levels_are_shares_of_the_site_limit_on_the_mapped_site(
    vtn: Vtn, running: Any
) -> None:
    cfg = settings(vtn.url, site="", site_limit_kw=40.0, resource_sites=(("meter-7", "yard"),))
    ven, sink = await running(cfg)
    await until(lambda: ven.registered)
    start = at(20)
    event_id = vtn.add(
        "SIMPLE",
        "level",
        [
            {"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 1},
            {
                "dtstart": start + timedelta(minutes=5),
                "duration": timedelta(minutes=5),
                "signal_payload": 0,
            },
            {
                "dtstart": start + timedelta(minutes=10),
                "duration": timedelta(minutes=5),
                "signal_payload": 3,
            },
        ],
        targets=[{"resource_id": "meter-7"}],
    )
    await until(lambda: event_id in vtn.opts)
    assert vtn.opts[event_id] == "optIn"
    # Level 1: 70 % of 40 kW; level 0: no cap; level 3: 0 % (charging paused).
    assert [(c.site, c.limit_w, c.start, c.end, c.reference) for c in sink.added] == [
        ("yard", 28000.0, start, start + timedelta(minutes=5), f"{event_id}:0:0"),
        (
            "yard",
            0.0,
            start + timedelta(minutes=10),
            start + timedelta(minutes=15),
            f"{event_id}:0:2",
        ),
    ]


async def test_a_modified_event_replaces_its_caps(vtn: Vtn, running: Any) -> None:
    ven, sink = await running(settings(vtn.url))
    await until(lambda: ven.registered)
    start = at(60)
    event_id = vtn.add(
        "LOAD_DISPATCH",
        "setpoint",
        [{"dtstart": start, "duration": timedelta(minutes=15), "signal_payload": 11.0}],
    )
    await until(lambda: len(sink.added) == 1)
    signal = vtn.event(event_id).event_signals[0]
    signal.intervals[0]["signal_payload"] = 7.5
    vtn.modified(event_id)
    await until(lambda: len(sink.added) == 2)
    assert [(c.limit_w, c.reference) for c in sink.active.values()] == [(7500.0, f"{event_id}:1:0")]
    assert sink.cancels[-1] == ("depot", SOURCE, f"{event_id}:", f"openadr:{VTN_ID}")


async def test_an_event_for_an_unknown_resource_is_opted_out(vtn: Vtn, running: Any) -> None:
    ven, sink = await running(settings(vtn.url, resource_sites=(("meter-7", "yard"),)))
    await until(lambda: ven.registered)
    with capture_logs() as logs:
        event_id = vtn.add(
            "LOAD_CONTROL",
            "x-loadControlSetpoint",
            [{"dtstart": at(30), "duration": timedelta(minutes=15), "signal_payload": 11.0}],
            targets=[{"resource_id": "meter-9"}],
        )
        await until(lambda: event_id in vtn.opts)
    assert vtn.opts[event_id] == "optOut"
    assert sink.added == []
    (line,) = [e for e in logs if e["event"] == "openadr_opted_out"]
    assert line["event_id"] == event_id
    assert line["reason"] == "unknown resource meter-9 (map it in openadr.resource_sites)"


async def test_an_event_with_an_unknown_signal_is_opted_out(vtn: Vtn, running: Any) -> None:
    ven, sink = await running(settings(vtn.url))
    await until(lambda: ven.registered)
    event_id = vtn.add(
        "ELECTRICITY_PRICE",
        "price",
        [{"dtstart": at(30), "duration": timedelta(minutes=15), "signal_payload": 0.31}],
    )
    await until(lambda: event_id in vtn.opts)
    assert vtn.opts[event_id] == "optOut"
    assert sink.added == []


async def test_the_ven_survives_a_vtn_outage_and_says_so_once(vtn: Vtn, running: Any) -> None:
    ven, _ = await running(settings(vtn.url))
    await until(lambda: ven.registered)
    port = vtn.port
    with capture_logs() as logs:
        await vtn.stop()
        await asyncio.sleep(3.2)  # three polls into the outage
        again = Vtn(port)
        await again.start()
        try:
            await until(lambda: any(e["event"] == "openadr_vtn_reachable" for e in logs))
            event_id = again.add(
                "LOAD_CONTROL",
                "x-loadControlCapacity",
                [{"dtstart": at(30), "duration": timedelta(minutes=5), "signal_payload": 0.25}],
            )
            await until(lambda: event_id in again.opts)
        finally:
            await again.stop()
    events = [e["event"] for e in logs]
    assert events.count("openadr_vtn_unreachable") == 1
    (down,) = [e for e in logs if e["event"] == "openadr_vtn_unreachable"]
    assert down["vtn_url"] == vtn.url and "connect" in down["detail"].lower()
    # A capacity signal needs the site's limit: this VEN has none, so it opts out.
    assert again.opts[event_id] == "optOut"


async def test_the_ven_retries_registration_until_the_vtn_comes(running: Any) -> None:
    port = free_port()
    with capture_logs() as logs:
        ven, _ = await running(settings(f"http://127.0.0.1:{port}{PREFIX}"))
        await asyncio.sleep(2.2)
        assert not ven.registered
        vtn = Vtn(port)
        await vtn.start()
        try:
            # Its next attempt comes within a poll; a loaded machine may take longer. The
            # round that registers ends (and logs the VTN reachable) after `registered`
            # turns true: waited for too, before the VTN goes.
            await until(lambda: ven.registered, 20.0)
            await until(lambda: any(e["event"] == "openadr_vtn_reachable" for e in logs), 20.0)
        finally:
            await vtn.stop()
    events = [e["event"] for e in logs]
    assert events.count("openadr_vtn_unreachable") == 1
    assert events.count("openadr_vtn_reachable") == 1 and "openadr_registered" in events


async def test_an_event_the_vtn_no_longer_sends_is_cancelled(vtn: Vtn, running: Any) -> None:
    ven, sink = await running(settings(vtn.url))
    await until(lambda: ven.registered)
    interval = {"duration": timedelta(minutes=15), "signal_payload": 11.0}
    first = vtn.add("LOAD_CONTROL", "x-loadControlSetpoint", [{**interval, "dtstart": at(30)}])
    second = vtn.add("LOAD_CONTROL", "x-loadControlSetpoint", [{**interval, "dtstart": at(60)}])
    await until(lambda: len(sink.active) == 2)
    with capture_logs() as logs:
        vtn.server.events[VEN_ID].remove(vtn.event(first))
        vtn.server.events_updated[VEN_ID] = True
        await until(lambda: len(sink.active) == 1)
    assert [c.reference for c in sink.active.values()] == [f"{second}:0:0"]
    (line,) = [e for e in logs if e["event"] == "openadr_event_cancelled"]
    assert (line["event_id"], line["implied"], line["caps_cancelled"]) == (first, True, True)


async def test_a_restarted_ven_does_not_cap_twice(vtn: Vtn, running: Any) -> None:
    ven, sink = await running(settings(vtn.url))
    await until(lambda: ven.registered)
    event_id = vtn.add(
        "LOAD_CONTROL",
        "x-loadControlSetpoint",
        [{"dtstart": at(30), "duration": timedelta(minutes=15), "signal_payload": 11.0}],
    )
    await until(lambda: len(sink.added) == 1)
    await ven.stop()
    again, _ = await running(settings(vtn.url), sink)
    # At registration the VTN sends its events again: the old caps go, the same come back.
    await until(lambda: len(sink.added) == 2)
    assert [c.reference for c in sink.active.values()] == [f"{event_id}:0:0"]
    assert again.registered


@dataclass
class FailingOnceSink(RecordingSink):
    failed: bool = False

    async def add_cap(self, site: str, limit_w: float, *args: Any, **kw: Any) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("database unavailable")
        return await super().add_cap(site, limit_w, *args, **kw)


async def test_a_cap_that_cannot_be_stored_is_tried_again_before_the_answer(
    vtn: Vtn, running: Any
) -> None:
    sink = FailingOnceSink()
    ven, _ = await running(settings(vtn.url), sink)
    await until(lambda: ven.registered)
    with capture_logs() as logs:
        event_id = vtn.add(
            "LOAD_CONTROL",
            "x-loadControlSetpoint",
            [{"dtstart": at(30), "duration": timedelta(minutes=15), "signal_payload": 11.0}],
        )
        await until(lambda: event_id in vtn.opts)
    assert vtn.opts[event_id] == "optIn"
    assert sink.failed and [c.reference for c in sink.active.values()] == [f"{event_id}:0:0"]
    assert [e["worker"] for e in logs if e["event"] == "worker_failed"] == ["openadr-ven"]


async def test_mutual_tls_with_signed_messages(tmp_path: Path, running: Any) -> None:
    authority = Authority.new("OpenADR test CA")
    vtn_pair = authority.issue("localhost", "Utility", server=True)
    ven_pair = authority.issue("csms-test", "CPO")
    vtn_cert, vtn_key = write_pair(tmp_path, "vtn", *vtn_pair)
    ven_cert, ven_key = write_pair(tmp_path, "ven", *ven_pair)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pem(authority.cert))
    ven_print = certificate_fingerprint(pem(ven_pair[0]))
    vtn_print = certificate_fingerprint(pem(vtn_pair[0]))

    def lookup(ven_id: str) -> dict[str, str] | None:
        if ven_id != VEN_ID:
            return None
        return {"ven_id": VEN_ID, "fingerprint": ven_print, "registration_id": "reg-1"}

    vtn = Vtn(
        cert=vtn_cert,
        key=vtn_key,
        http_cert=vtn_cert,
        http_key=vtn_key,
        http_ca_file=str(ca_file),
        ven_lookup=lookup,
    )
    await vtn.start()
    try:
        tls = {"cert_file": ven_cert, "key_file": ven_key, "ca_file": str(ca_file)}
        with capture_logs() as logs:
            ven, sink = await running(settings(vtn.url, vtn_fingerprint=vtn_print, **tls))
            await until(lambda: ven.registered)
            event_id = vtn.add(
                "LOAD_CONTROL",
                "x-loadControlSetpoint",
                [{"dtstart": at(30), "duration": timedelta(minutes=15), "signal_payload": 11.0}],
            )
            await until(lambda: event_id in vtn.opts)
        assert vtn.opts[event_id] == "optIn" and [c.limit_w for c in sink.added] == [11000.0]
        (line,) = [e for e in logs if e["event"] == "openadr_ven_certificate"]
        assert line["fingerprint"] == ven_print
        # A VTN whose messages are not signed by the expected certificate is not used.
        wrong = ":".join(["00"] * 10)
        with capture_logs() as logs:
            other, _ = await running(settings(vtn.url, vtn_fingerprint=wrong, **tls))
            await until(lambda: any(e["event"] == "openadr_vtn_unreachable" for e in logs))
        assert not other.registered
        (down,) = [e for e in logs if e["event"] == "openadr_vtn_unreachable"]
        assert "fingerprint" in down["detail"].lower()
    finally:
        await vtn.stop()
        # openleadr keeps the lookup on its service class: later VTNs must not inherit it.
        del VTNService.ven_lookup


# ---------------------------------------------------------------------------------------
# Reading events (no VTN)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def event(
    *signals: dict[str, Any],
    start: datetime = NOW + timedelta(minutes=1),
    duration: timedelta = timedelta(minutes=30),
    status: str = "far",
    targets: list[dict[str, Any]] | None = None,
    **descriptor: Any,
) -> dict[str, Any]:
    return {
        "event_descriptor": {
            "event_id": "ev1",
            "modification_number": 2,
            "event_status": status,
            **descriptor,
        },
        "active_period": {"dtstart": start, "duration": duration},
        "event_signals": list(signals),
        "targets": targets if targets is not None else [{"ven_id": VEN_ID}],
        "response_required": "always",
    }


def signal(name: str, kind: str, *values: float, minutes: int = 10, **extra: Any) -> dict[str, Any]:
    intervals = [
        {"duration": timedelta(minutes=minutes), "signal_payload": v, "uid": i}
        for i, v in enumerate(values)
    ]
    return {"signal_name": name, "signal_type": kind, "intervals": intervals, **extra}


CFG = OpenAdrConfig(site="depot", site_limit_kw=100.0)


def test_intervals_follow_each_other_and_past_ones_are_left_out() -> None:
    ev = event(signal("LOAD_DISPATCH", "setpoint", 20, 10, 5), start=NOW - timedelta(minutes=15))
    plan = plan_event(ev, CFG, now=NOW)
    t0 = NOW - timedelta(minutes=15)
    assert plan.opt_out is None and plan.sites == frozenset({"depot"})
    assert plan.caps == (
        CapWindow(
            "depot", 10000.0, t0 + timedelta(minutes=10), t0 + timedelta(minutes=20), "ev1:2:1"
        ),
        CapWindow(
            "depot", 5000.0, t0 + timedelta(minutes=20), t0 + timedelta(minutes=30), "ev1:2:2"
        ),
    )


def test_a_setpoint_is_read_in_its_units_and_an_explicit_power_wins() -> None:
    watts = {"name": "powerReal", "unit": "W", "scale": "none"}
    mega = {"name": "powerReal", "unit": "W", "scale": "M"}
    simple = signal("SIMPLE", "level", 2)
    for measurement, limit in ((watts, 9000.0), (mega, 9e6)):
        ev = event(
            simple,
            signal(
                "LOAD_CONTROL",
                "x-loadControlSetpoint",
                9000 if measurement is watts else 9,
                measurement=measurement,
            ),
        )
        plan = plan_event(ev, CFG, now=NOW)
        assert plan.signal == "LOAD_CONTROL/x-loadControlSetpoint"
        assert [c.limit_w for c in plan.caps] == [limit]
    amps = {"name": "current", "unit": "A", "scale": "none"}
    plan = plan_event(
        event(signal("LOAD_DISPATCH", "setpoint", 16, measurement=amps)), CFG, now=NOW
    )
    assert plan.opt_out is not None and "not a power" in plan.opt_out


def test_capacity_and_levels_need_the_site_limit() -> None:
    capacity = event(signal("LOAD_CONTROL", "x-loadControlCapacity", 0.4, 1.0))
    plan = plan_event(capacity, CFG, now=NOW)
    assert [c.limit_w for c in plan.caps] == [40000.0]  # 1.0: full capacity, no cap
    plan = plan_event(capacity, OpenAdrConfig(site="depot"), now=NOW)
    assert plan.caps == () and plan.opt_out == (
        "a capacity signal is a share of the site's limit: set openadr.site_limit_kw"
    )
    levels = OpenAdrConfig(site="depot", site_limit_kw=50.0, simple_levels=(0.8, 0.4, 0.1))
    plan = plan_event(event(signal("SIMPLE", "level", 1, 2, 3, 0)), levels, now=NOW)
    assert [c.limit_w for c in plan.caps] == [40000.0, 20000.0, 5000.0]
    plan = plan_event(event(signal("simple", "level", 4)), levels, now=NOW)
    assert plan.opt_out == "SIMPLE level 4.0 is not 0, 1, 2 or 3"


def test_open_ended_cancelled_and_test_events() -> None:
    # A last interval of duration 0 lasts to the event's end.
    plan = plan_event(event(signal("LOAD_DISPATCH", "setpoint", 3, 4, minutes=0)), CFG, now=NOW)
    assert [(c.start, c.end) for c in plan.caps] == [
        (NOW + timedelta(minutes=1), NOW + timedelta(minutes=31))
    ]
    open_ended = event(signal("LOAD_DISPATCH", "setpoint", 3, minutes=0), duration=timedelta(0))
    assert plan_event(open_ended, CFG, now=NOW).opt_out == (
        "an open-ended event (no duration) cannot be a cap"
    )
    cancelled = plan_event(
        event(signal("LOAD_DISPATCH", "setpoint", 3), status="cancelled"), CFG, now=NOW
    )
    assert cancelled.cancelled and cancelled.caps == () and cancelled.opt_out is None
    test = plan_event(event(signal("LOAD_DISPATCH", "setpoint", 3), test_event=True), CFG, now=NOW)
    assert test.caps == () and test.opt_out is None


def test_sites_come_from_the_mapping_then_the_default() -> None:
    mapped = OpenAdrConfig(site="depot", resource_sites=(("m1", "north"), ("g1", "south")))
    ev = event(
        signal("LOAD_DISPATCH", "setpoint", 3, targets=[{"resource_id": "m1"}]),
        targets=[{"group_id": "g1"}],
    )
    plan = plan_event(ev, mapped, now=NOW)
    assert plan.sites == frozenset({"north", "south"})
    assert [c.site for c in plan.caps] == ["north", "south"]
    assert plan_event(event(signal("LOAD_DISPATCH", "setpoint", 3)), mapped, now=NOW).sites == {
        "depot"
    }
    nowhere = plan_event(event(signal("LOAD_DISPATCH", "setpoint", 3)), OpenAdrConfig(), now=NOW)
    assert nowhere.opt_out == ("no site for this event: set openadr.site or openadr.resource_sites")
    assert event_reference("ev1") == "ev1:"


# ---------------------------------------------------------------------------------------
# Settings


def test_openadr_settings_from_toml_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "csms.toml"
    path.write_text(
        "[openadr]\n"
        "enabled = true\n"
        'vtn_url = "https://vtn.example/OpenADR2/Simple/2.0b"\n'
        'ven_name = "depot-ven"\n'
        "simple_levels = [0.8, 0.5, 0]\n"
        'cert_file = "certs/ven.pem"\n'
        'key_file = "certs/ven.key"\n'
        "[openadr.resource_sites]\n"
        '"meter-1" = "depot"\n'
        'grp = "yard"\n'
    )
    cfg = load_config(path, env={"CSMS_OPENADR_POLL_INTERVAL": "2.5"}, data_dir=tmp_path).openadr
    assert cfg.enabled and cfg.ven_name == "depot-ven" and cfg.poll_interval == 2.5
    assert cfg.resource_sites == (("grp", "yard"), ("meter-1", "depot"))
    assert cfg.simple_levels == (0.8, 0.5, 0.0)
    assert cfg.cert_file == str(tmp_path / "certs/ven.pem")
    assert cfg.key_file == str(tmp_path / "certs/ven.key") and cfg.ca_file == ""
    env = {
        "CSMS_OPENADR_RESOURCE_SITES": "m1=north, m2 = south",
        "CSMS_OPENADR_SIMPLE_LEVELS": "0.9,0.6,0.2",
        "CSMS_OPENADR_ENABLED": "false",
        "CSMS_OPENADR_SITE_LIMIT_KW": "44",
    }
    cfg = build_config({}, env).openadr
    assert cfg.resource_sites == (("m1", "north"), ("m2", "south"))
    assert (cfg.simple_levels, cfg.enabled, cfg.site_limit_kw) == ((0.9, 0.6, 0.2), False, 44.0)
    defaults = build_config({}, {}).openadr
    assert defaults == OpenAdrConfig()
    assert (defaults.enabled, defaults.poll_interval, defaults.simple_levels) == (
        False,
        10.0,
        (0.7, 0.5, 0.0),
    )


ENABLED = {"enabled": True, "vtn_url": "http://vtn/x", "ven_name": "v", "site": "s"}


@pytest.mark.parametrize(
    ("section", "env", "message"),
    [
        ({"enabled": True}, {}, "openadr.enabled = true needs openadr.vtn_url"),
        ({**ENABLED, "ven_name": ""}, {}, "openadr.enabled = true needs openadr.ven_name"),
        (
            {**ENABLED, "site": ""},
            {},
            "openadr.enabled = true needs openadr.site or openadr.resource_sites "
            "(which site an event caps)",
        ),
        (
            {"vtn_url": "vtn.example"},
            {},
            "openadr.vtn_url must be an http(s) URL, not 'vtn.example'",
        ),
        (
            {"poll_interval": 0},
            {},
            "openadr.poll_interval must be above 0 and at most 86400 seconds",
        ),
        (
            {"simple_levels": [0.5, 0.2]},
            {},
            "openadr.simple_levels must hold 3 fractions (SIMPLE levels 1, 2, 3), not 2",
        ),
        (
            {"simple_levels": [0.5, 0.7, 0]},
            {},
            "openadr.simple_levels must not rise from level 1 to level 3",
        ),
        (
            {"simple_levels": [1.5, 0.7, 0]},
            {},
            "openadr.simple_levels must be fractions between 0 and 1",
        ),
        (
            {"simple_levels": "0.5"},
            {},
            "openadr.simple_levels must be an array of numbers, not '0.5'",
        ),
        (
            {"simple_levels": [0.5, "x", 0]},
            {},
            "openadr.simple_levels[1] must be a number, not 'x'",
        ),
        (
            {},
            {"CSMS_OPENADR_SIMPLE_LEVELS": "0.5,x,0"},
            "openadr.simple_levels (from environment) must be a number, not 'x'",
        ),
        ({"resource_sites": {"m1": 3}}, {}, "openadr.resource_sites.m1 must be a string, not 3"),
        ({"resource_sites": {"m1": " "}}, {}, "openadr.resource_sites.m1 must name a site"),
        (
            {"resource_sites": "m1"},
            {},
            "openadr.resource_sites must be a table of strings, not 'm1'",
        ),
        (
            {},
            {"CSMS_OPENADR_RESOURCE_SITES": "m1"},
            "openadr.resource_sites (from environment) must be `key=value` pairs separated by "
            "commas, not 'm1'",
        ),
        (
            {"cert_file": "a.pem"},
            {},
            "openadr.cert_file is set but openadr.key_file is not: TLS needs both",
        ),
        (
            {"vtn_fingerprint": "AB:CD"},
            {},
            "openadr.vtn_fingerprint must be 10 hex bytes separated by colons (AB:CD:...), "
            "not 'AB:CD'",
        ),
        ({"site_limit_kw": -1}, {}, "openadr.site_limit_kw must not be negative"),
    ],
)
def test_bad_openadr_settings_are_one_line(
    section: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"openadr": section}, env)
    assert str(info.value) == message


def test_enabled_without_openleadr_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "openleadr" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError) as info:
        build_config({"openadr": ENABLED}, {})
    assert str(info.value) == (
        "openadr.enabled = true needs the openleadr package: pip install 'csms[openadr]'"
    )
    assert build_config({"openadr": {**ENABLED, "enabled": False}}, {}).openadr.site == "s"


def test_the_example_config_documents_every_openadr_key() -> None:
    text = (Path(__file__).parents[1] / "config.example.toml").read_text()
    assert "\n[openadr]\n" in text
    for key in OpenAdrConfig.__dataclass_fields__:
        assert f"\n{key} = " in text or f"\n# {key} = " in text or f"[openadr.{key}]" in text, key
